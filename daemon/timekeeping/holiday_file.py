"""A year's official holiday schedule, from a file an admin writes.

The State Council publishes each year's holidays and adjusted working days
(调休) in November or December; chinesecalendar's release with them comes
later, and without them casegate counts plain weekends. So an admin copies
the notice into a TOML file and names it in ``[policy.calendar]
holidays_file`` (one file or a list; a relative path is read from the
configuration file's folder)::

    # 国务院办公厅关于2027年部分节假日安排的通知
    year = 2027

    [[holiday]]
    name = "春节 Spring Festival"
    off = ["2027-02-05..2027-02-11"]          # days off: dates, or first..last
    workdays = ["2027-02-14", "2027-02-20"]  # adjusted working days (Saturdays, Sundays)

    [[holiday]]
    name = "国庆节 National Day"
    off = ["2027-10-01..2027-10-07"]
    workdays = ["2027-09-26", "2027-10-09"]

For the years a file covers it is the whole truth: a day it does not list is
an ordinary day of its week. Dates may be TOML dates or "YYYY-MM-DD" strings;
each must fall in the file's ``year``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from .worktime import OfficialSchedule


class HolidayFileError(ValueError):
    """A mistake in a holiday file; ``key`` names where (``holiday[1].off[0]``)."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(f"{key}: {message}")


def _day(value: object, key: str) -> date:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise HolidayFileError(key, f'expected a date "YYYY-MM-DD", got {value!r}')


def _days(values: object, key: str, year: int) -> list[date]:
    """Dates and "first..last" ranges, each in ``year``."""
    if not isinstance(values, list):
        raise HolidayFileError(key, f"expected an array of dates, got {type(values).__name__}")
    out: list[date] = []
    for i, value in enumerate(values):
        k = f"{key}[{i}]"
        if isinstance(value, str) and ".." in value:
            first_s, _, last_s = value.partition("..")
            first, last = _day(first_s, k), _day(last_s, k)
            if last < first:
                raise HolidayFileError(k, f"{value!r} ends before it starts")
            span = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        else:
            span = [_day(value, k)]
        for d in span:
            if d.year != year:
                raise HolidayFileError(k, f"{d.isoformat()} is not in {year}, the file's year")
        out.extend(span)
    return out


def parse(data: dict[str, Any]) -> OfficialSchedule:
    """The schedule of one file's table, or HolidayFileError naming the key."""
    for k in data:
        if k not in ("year", "holiday"):
            raise HolidayFileError(k, "unknown key (expected year and [[holiday]] tables)")
    year = data.get("year")
    if not isinstance(year, int) or isinstance(year, bool) or not 1900 < year < 3000:
        raise HolidayFileError("year", f"expected the year the file covers, such as 2027, got {year!r}")
    items = data.get("holiday", [])
    if not isinstance(items, list) or not items:
        raise HolidayFileError("holiday", "expected [[holiday]] tables with name, off and workdays")
    off: dict[date, str] = {}
    workdays: dict[date, str] = {}
    for i, item in enumerate(items):
        key = f"holiday[{i}]"
        if not isinstance(item, dict):
            raise HolidayFileError(key, "expected a table")
        for k in item:
            if k not in ("name", "off", "workdays"):
                raise HolidayFileError(f"{key}.{k}", "unknown key (expected name, off, workdays)")
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise HolidayFileError(f"{key}.name", "expected the holiday's name")
        for d in _days(item.get("off", []), f"{key}.off", year):
            off[d] = name.strip()
        for d in _days(item.get("workdays", []), f"{key}.workdays", year):
            workdays[d] = name.strip()
    both = sorted(set(off) & set(workdays))
    if both:
        raise HolidayFileError("holiday", "listed both off and as a working day: "
                                          + ", ".join(d.isoformat() for d in both))
    return OfficialSchedule(years=frozenset({year}), off=off, workdays=workdays)


def load(paths: Iterable[Path]) -> OfficialSchedule:
    """Every file's schedule, merged; a year given twice is a mistake.
    Raises HolidayFileError with the file name in front of the key."""
    years: set[int] = set()
    off: dict[date, str] = {}
    workdays: dict[date, str] = {}
    sources: list[str] = []
    for path in paths:
        try:
            with open(path, "rb") as fh:
                one = parse(tomllib.load(fh))
        except OSError as exc:
            raise HolidayFileError(str(path), f"cannot read: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise HolidayFileError(str(path), f"not valid TOML: {exc}") from None
        except HolidayFileError as exc:
            raise HolidayFileError(f"{path}: {exc.key}", str(exc).partition(": ")[2]) from None
        again = years & one.years
        if again:
            raise HolidayFileError(str(path), f"{min(again)} is already given by another holidays_file")
        years |= one.years
        off.update(one.off)
        workdays.update(one.workdays)
        sources.append(str(path))
    return OfficialSchedule(years=frozenset(years), off=off, workdays=workdays, sources=tuple(sources))
