"""Working-time arithmetic for SLA clocks.

Service-level targets in the seed procedures are partly counted in *working*
time ("root cause within 1 working day"): office hours with a lunch break,
minus weekends and PRC public holidays, plus the adjusted working days (调休)
on which the State Council moves a weekday's work to a Saturday or Sunday.
Other targets (P1, 7x24) run on the wall clock. Both are modelled here behind
one small interface, :class:`TimeBasis`, so the scheduler computes every
deadline the same way and never needs to know which basis applies.

Design notes:

* Every public method takes and returns timezone-aware datetimes. A naive
  datetime is ambiguous (server local time? Beijing time? UTC from the
  database?) and a silent guess would shift deadlines by hours, so it is a
  ``ValueError``.
* Arithmetic is done on UTC instants. Subtracting two aware datetimes that
  share a ``tzinfo`` object ignores UTC offsets in Python, which would be wrong
  across DST changes in zones other than Asia/Shanghai.
* Working intervals are half-open ``[start, end)``: at 17:30 sharp the office
  is closed, at 09:00 sharp it is open.
* The holiday data of ``chinesecalendar`` stops at the last year the State
  Council has published. For later (or much earlier) years we fall back to the
  ``holidays`` package (public holidays, no adjusted working days) plus plain
  weekends, and log that once per year, so the daemon keeps running on 1 Jan
  before the new package release is installed.
* This module does no I/O apart from that one log line.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import chinese_calendar
import chinese_calendar.constants as cn_constants
import holidays as holidays_pkg

__all__ = [
    "DEFAULT_HOURS",
    "MAX_SCAN_DAYS",
    "DayInfo",
    "OfficialSchedule",
    "TimeBasis",
    "WallClock",
    "WorkCalendar",
]

log = logging.getLogger(__name__)

#: Upper bound on the number of calendar days ``add``/``next_working_start``
#: will scan. A calendar without any working hours (or a misconfigured one)
#: would otherwise loop forever; three years is far beyond any SLA target.
MAX_SCAN_DAYS = 3 * 366

_MORNING = (time(9, 0), time(12, 0))
_AFTERNOON = (time(13, 0), time(17, 30))

#: Default office hours: Monday-Friday 09:00-12:00 and 13:00-17:30 (lunch
#: break 12:00-13:00), Saturday and Sunday off. Keys are ``date.weekday()``
#: numbers (0 = Monday).
DEFAULT_HOURS: Mapping[int, tuple[tuple[time, time], ...]] = {
    **{wd: (_MORNING, _AFTERNOON) for wd in range(5)},
    5: (),
    6: (),
}

_DAY = timedelta(days=1)
_MIDNIGHT_END = timedelta(hours=24)

# The years chinesecalendar has the State Council's schedule for (holidays and 调休).
_CN_YEARS = range(min(d.year for d in cn_constants.holidays), max(d.year for d in cn_constants.holidays) + 1)

# Where a year's public holidays come from (WorkCalendar.coverage).
FROM_FILE = "file"  # an official schedule an admin loaded (holidays_file)
FROM_PACKAGE = "chinesecalendar"  # the package's copy of the official schedule
FALLBACK = "fallback"  # computed public holidays, NO adjusted working days
COMPUTED = "holidays"  # another country: the holidays package computes any year


@dataclass(frozen=True)
class OfficialSchedule:
    """Years of official holidays and adjusted working days (调休) an admin loaded
    from a file, because the State Council publishes each year's schedule in
    November or December and chinesecalendar's release follows later. For a
    year it covers it is the whole truth: a day not listed is an ordinary day."""

    years: frozenset[int] = frozenset()
    off: Mapping[date, str] = field(default_factory=dict)  # day -> the holiday's name
    workdays: Mapping[date, str] = field(default_factory=dict)  # adjusted working day -> the holiday's name
    sources: tuple[str, ...] = ()  # the files, for `casegate policy calendar`

    def _key(self) -> tuple[object, ...]:
        return (self.years, tuple(sorted(self.off.items())), tuple(sorted(self.workdays.items())))


@dataclass(frozen=True)
class DayInfo:
    """One day that is not an ordinary day of the week, and why (`casegate policy calendar`)."""

    day: date
    working: bool
    name: str
    source: str

# Years for which the chinesecalendar fallback has already been logged. Module
# level on purpose: several WorkCalendar instances (one per reload) should not
# repeat the same warning.
_warned_years: set[int] = set()
_warned_lock = threading.Lock()


def _require_aware(dt: datetime, name: str = "datetime") -> None:
    """Reject naive datetimes: guessing their zone would shift deadlines."""
    if not isinstance(dt, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(dt).__name__}")
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {dt.isoformat()}")


def _require_nonnegative(delta: timedelta) -> None:
    """Deadlines only move forward; a negative delta is a caller bug."""
    if not isinstance(delta, timedelta):
        raise TypeError(f"delta must be a timedelta, got {type(delta).__name__}")
    if delta < timedelta(0):
        raise ValueError(f"delta must not be negative, got {delta}")


@runtime_checkable
class TimeBasis(Protocol):
    """What the SLA scheduler needs from a clock basis (working or wall time).

    Named "basis" rather than "clock" because it never tells the current time;
    it only measures and adds durations.
    """

    def add(self, start: datetime, delta: timedelta) -> datetime:
        """Return the instant at which ``delta`` of counted time has elapsed after ``start``."""
        ...

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Return the counted time between ``start`` and ``end`` (negative if ``end < start``)."""
        ...


class WallClock:
    """Plain elapsed-time basis for 7x24 targets (e.g. P1 "fix within 24 h").

    Exists so that callers can treat wall-clock and working-time policies
    alike through :class:`TimeBasis`. Results are expressed in ``tz`` if
    given (so all deadlines of a policy print in the desk's zone), otherwise
    in the zone of the input.
    """

    def __init__(self, tz: str | None = None) -> None:
        self.timezone = tz
        self._tz = load_zone(tz) if tz is not None else None

    def __repr__(self) -> str:
        return f"WallClock(tz={self.timezone!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WallClock):
            return NotImplemented
        return self.timezone == other.timezone

    def __hash__(self) -> int:
        return hash(("WallClock", self.timezone))

    def is_working_time(self, dt: datetime) -> bool:
        """Always true: a 7x24 desk never closes."""
        _require_aware(dt)
        return True

    def next_working_start(self, dt: datetime) -> datetime:
        """Return ``dt`` itself (converted to ``tz``): every instant is working time."""
        _require_aware(dt)
        return dt.astimezone(self._tz or dt.tzinfo)

    def add(self, start: datetime, delta: timedelta) -> datetime:
        """Absolute-time addition (computed in UTC, so DST shifts are respected)."""
        _require_aware(start, "start")
        _require_nonnegative(delta)
        return (start.astimezone(UTC) + delta).astimezone(self._tz or start.tzinfo)

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Absolute time between two instants, regardless of their zones."""
        _require_aware(start, "start")
        _require_aware(end, "end")
        return end.astimezone(UTC) - start.astimezone(UTC)


def load_zone(tz: str) -> ZoneInfo:
    """Load a zone, turning the KeyError-like zoneinfo error into a ValueError."""
    if not isinstance(tz, str) or not tz:
        raise ValueError(f"timezone must be a non-empty IANA name, got {tz!r}")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {tz!r}") from exc


def _normalise_hours(
    hours: Mapping[int, Iterable[tuple[time, time]]],
) -> dict[int, tuple[tuple[time, time], ...]]:
    """Validate office hours and return them sorted, one entry per weekday.

    An end of ``time(0, 0)`` means 24:00 (end of the day), because
    ``datetime.time`` cannot represent 24:00 and a round-the-clock day must
    still be expressible. Intervals must not overlap: overlapping hours would
    count the same minute twice.
    """
    if not isinstance(hours, Mapping):
        raise TypeError("hours must be a mapping of weekday number (0=Monday) to intervals")
    result: dict[int, tuple[tuple[time, time], ...]] = {}
    for weekday, intervals in hours.items():
        if isinstance(weekday, bool) or not isinstance(weekday, int) or not 0 <= weekday <= 6:
            raise ValueError(f"hours: weekday must be an integer 0 (Monday) .. 6 (Sunday), got {weekday!r}")
        checked: list[tuple[time, time]] = []
        for interval in intervals:
            try:
                start, end = interval
            except (TypeError, ValueError):
                raise ValueError(f"hours[{weekday}]: interval must be a (start, end) pair, got {interval!r}") from None
            if not isinstance(start, time) or not isinstance(end, time):
                raise ValueError(f"hours[{weekday}]: interval bounds must be datetime.time, got {interval!r}")
            if start.tzinfo is not None or end.tzinfo is not None:
                raise ValueError(f"hours[{weekday}]: interval bounds must be naive local times")
            if _offset(end, is_end=True) <= _offset(start):
                raise ValueError(f"hours[{weekday}]: interval {start:%H:%M}-{end:%H:%M} ends before it starts")
            checked.append((start, end))
        checked.sort(key=lambda iv: _offset(iv[0]))
        for (_, prev_end), (nxt_start, _) in zip(checked, checked[1:]):
            if _offset(nxt_start) < _offset(prev_end, is_end=True):
                raise ValueError(f"hours[{weekday}]: intervals overlap")
        result[weekday] = tuple(checked)
    for weekday in range(7):
        result.setdefault(weekday, ())
    return result


def _offset(t: time, is_end: bool = False) -> timedelta:
    """Offset of a local time from midnight; an end of 00:00 means 24:00."""
    off = timedelta(hours=t.hour, minutes=t.minute, seconds=t.second, microseconds=t.microsecond)
    if is_end and off == timedelta(0):
        return _MIDNIGHT_END
    return off


class WorkCalendar:
    """Office hours plus the public-holiday calendar of one country.

    A day is a working day when it is listed in ``extra_workdays``; otherwise
    it is not when it is listed in ``extra_holidays`` or is a public holiday;
    otherwise it is when it is an adjusted working day (调休, a weekend day
    that the government turned into a working day) or its weekday has office
    hours. With the default hours this is exactly "chinese_calendar says it is
    a workday", and a custom half-day Saturday still works as expected.

    An adjusted working day uses the *standard weekday hours* (Monday's, or
    the first Monday-Friday day that has hours) because it replaces a normal
    weekday; so does an ``extra_workdays`` entry whose own weekday has no
    hours.

    ``country`` "CN" uses ``chinesecalendar`` (holidays and 调休) with a
    fallback to the ``holidays`` package for years it does not know; any other
    ISO code uses the ``holidays`` package directly.
    """

    def __init__(
        self,
        tz: str = "Asia/Shanghai",
        hours: Mapping[int, Iterable[tuple[time, time]]] | None = None,
        country: str = "CN",
        extra_holidays: Iterable[date] = (),
        extra_workdays: Iterable[date] = (),
        official: OfficialSchedule | None = None,
    ) -> None:
        self.timezone = tz
        self.official = official or OfficialSchedule()
        self.tz = load_zone(tz)
        # Read-only: the per-day interval cache depends on it.
        self.hours: Mapping[int, tuple[tuple[time, time], ...]] = MappingProxyType(
            _normalise_hours(DEFAULT_HOURS if hours is None else hours)
        )
        if not isinstance(country, str) or not country:
            raise ValueError(f"country must be an ISO 3166 code, got {country!r}")
        self.country = country.upper()
        self.extra_holidays = frozenset(_as_dates(extra_holidays, "extra_holidays"))
        self.extra_workdays = frozenset(_as_dates(extra_workdays, "extra_workdays"))
        both = self.extra_holidays & self.extra_workdays
        if both:
            listed = ", ".join(sorted(d.isoformat() for d in both))
            raise ValueError(f"dates listed both as extra holiday and extra workday: {listed}")
        self._substitute_hours = self._standard_weekday_hours()
        self._holiday_lock = threading.Lock()
        self._fallback: holidays_pkg.HolidayBase | None = None
        if self.country != "CN":
            self._fallback = self._holidays_for(self.country)
        # Bound per-instance cache: the scheduler asks about the same few
        # weeks over and over; old days simply fall out.
        self._intervals_cached = lru_cache(maxsize=4096)(self._compute_intervals)

    # -- identity -----------------------------------------------------------

    def _key(self) -> tuple[object, ...]:
        return (
            self.timezone,
            tuple(sorted(self.hours.items())),
            self.country,
            self.extra_holidays,
            self.extra_workdays,
            self.official._key(),
        )

    def identity(self) -> str:
        """A stable text of everything that decides working time (for the policy's fingerprint)."""
        tz, hours, country, holidays, workdays, (years, off, adjusted) = self._key()
        return repr((tz, hours, country, sorted(holidays), sorted(workdays), sorted(years), off, adjusted))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WorkCalendar):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"WorkCalendar(tz={self.timezone!r}, country={self.country!r}, "
            f"extra_holidays={len(self.extra_holidays)}, extra_workdays={len(self.extra_workdays)})"
        )

    # -- day classification -------------------------------------------------

    @property
    def working_day(self) -> timedelta:
        """Length of one standard working day (7 h 30 min with the default hours).

        This is what a "working day" duration ("1wd") counts: one such length
        of working time, i.e. "same time on the next working day" when days
        are uniform.
        """
        return sum((_offset(e, True) - _offset(s) for s, e in self._substitute_hours), timedelta(0))

    def _standard_weekday_hours(self) -> tuple[tuple[time, time], ...]:
        """Hours used on days that stand in for a weekday (adjusted working days)."""
        for weekday in (0, 1, 2, 3, 4, 5, 6):
            if self.hours[weekday]:
                return self.hours[weekday]
        return ()

    @staticmethod
    def _holidays_for(country: str, years: Iterable[int] = ()) -> holidays_pkg.HolidayBase:
        try:
            return holidays_pkg.country_holidays(country, years=list(years))
        except NotImplementedError as exc:
            raise ValueError(f"country {country!r} is not supported by the holidays package") from exc

    def _public_status(self, day: date) -> str | None:
        """Return "holiday", "workday" (adjusted working day) or None (ordinary day)."""
        if day.year in self.official.years:
            return "holiday" if day in self.official.off else "workday" if day in self.official.workdays else None
        if self.country == "CN":
            try:
                is_holiday, name = chinese_calendar.get_holiday_detail(day)
            except NotImplementedError:
                return self._fallback_status(day, warn=True)
            if is_holiday and (name is not None or day.weekday() < 5):
                return "holiday"
            if not is_holiday and day.weekday() >= 5:
                return "workday"
            return None
        return self._fallback_status(day, warn=False)

    def _fallback_status(self, day: date, warn: bool) -> str | None:
        if warn:
            with _warned_lock:
                first = day.year not in _warned_years
                _warned_years.add(day.year)
            if first:
                log.warning(
                    "chinesecalendar has no data for %d; using the holidays package's CN "
                    "public holidays and plain weekends (no adjusted working days). "
                    "Upgrade chinesecalendar or list extra_holidays/extra_workdays.",
                    day.year,
                )
        with self._holiday_lock:
            if self._fallback is None:
                self._fallback = self._holidays_for(self.country)
            if day in self._fallback:
                return "holiday"
            if day in getattr(self._fallback, "weekend_workdays", ()):
                return "workday"
        return None

    # -- what is in force ----------------------------------------------------

    def coverage(self, year: int) -> str:
        """Where ``year``'s public holidays come from: FROM_FILE, FROM_PACKAGE,
        FALLBACK (public holidays computed, no adjusted working days) or COMPUTED."""
        if year in self.official.years:
            return FROM_FILE
        if self.country != "CN":
            return COMPUTED
        return FROM_PACKAGE if year in _CN_YEARS else FALLBACK

    def warnings(self, today: date) -> list[str]:
        """What an admin must hear about this year and the next: a year with no
        adjusted working days counts plain weekends, so SLA times are wrong on
        every 调休 Saturday and around every holiday."""
        out = []
        for year in (today.year, today.year + 1):
            warning = self.warning_for(year, "this year" if year == today.year else f"from 1 January {year}")
            if warning:
                out.append(warning)
        return out

    def warning_for(self, year: int, when: str = "") -> str | None:
        """The warning for a year without an official schedule (None when it has one)."""
        if self.coverage(year) != FALLBACK:
            return None
        return (f"calendar: no official holiday schedule for {year} (chinesecalendar's data ends with "
                f"{_CN_YEARS[-1]}): {when or f'in {year}'} SLA times count computed public holidays and plain "
                f"weekends, without the adjusted working days (调休). Load the State Council's schedule with "
                f'[policy.calendar] holidays_file = "holidays-{year}.toml" (format: config.example.toml), '
                f"or upgrade chinesecalendar once it has {year}.")

    def special_days(self, year: int) -> list[DayInfo]:
        """Every day of ``year`` that is not an ordinary day of its week: public
        holidays and adjusted working days with their names and where they come
        from, and the configured extra_holidays / extra_workdays."""
        out = []
        source = self.coverage(year)
        day = date(year, 1, 1)
        while day.year == year:
            name = self._day_name(day, source)
            if day in self.extra_workdays:
                out.append(DayInfo(day, True, name or "extra working day", "extra_workdays"))
            elif day in self.extra_holidays:
                out.append(DayInfo(day, False, name or "extra holiday", "extra_holidays"))
            else:
                status = self._public_status(day)
                if status is not None:
                    out.append(DayInfo(day, status == "workday", name, source))
            day += _DAY
        return out

    def _day_name(self, day: date, source: str) -> str:
        if source == FROM_FILE:
            return self.official.off.get(day) or self.official.workdays.get(day) or ""
        if source == FROM_PACKAGE:
            return chinese_calendar.get_holiday_detail(day)[1] or ""
        with self._holiday_lock:
            if self._fallback is None:
                self._fallback = self._holidays_for(self.country)
            return self._fallback.get(day) or ""

    def hours_on(self, day: date) -> tuple[tuple[time, time], ...]:
        """Office hours of ``day`` (empty when it is not a working day)."""
        if day in self.extra_workdays:
            return self.hours[day.weekday()] or self._substitute_hours
        if day in self.extra_holidays:
            return ()
        status = self._public_status(day)
        if status == "holiday":
            return ()
        if status == "workday":
            return self._substitute_hours
        return self.hours[day.weekday()]

    def is_working_day(self, day: date) -> bool:
        """True when ``day`` has any office hours after holidays are applied."""
        return bool(self.hours_on(day))

    def _compute_intervals(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        """The working intervals of a local date, as UTC instants."""
        midnight = datetime.combine(day, time(0))
        out = []
        for start, end in self.hours_on(day):
            lo = (midnight + _offset(start)).replace(tzinfo=self.tz).astimezone(UTC)
            hi = (midnight + _offset(end, True)).replace(tzinfo=self.tz).astimezone(UTC)
            if hi > lo:  # a DST gap can swallow a short interval
                out.append((lo, hi))
        return tuple(out)

    def working_intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        """The working intervals of a local date, as aware datetimes in the calendar zone."""
        return [(a.astimezone(self.tz), b.astimezone(self.tz)) for a, b in self._intervals_cached(day)]

    # -- instants -----------------------------------------------------------

    def _local_date(self, instant_utc: datetime) -> date:
        return instant_utc.astimezone(self.tz).date()

    def is_working_time(self, dt: datetime) -> bool:
        """True when ``dt`` falls inside office hours of a working day."""
        _require_aware(dt)
        t = dt.astimezone(UTC)
        return any(a <= t < b for a, b in self._intervals_cached(self._local_date(t)))

    def next_working_start(self, dt: datetime) -> datetime:
        """``dt`` itself if it is working time, else the start of the next working interval."""
        _require_aware(dt)
        t = dt.astimezone(UTC)
        day = self._local_date(t)
        for _ in range(MAX_SCAN_DAYS):
            for a, b in self._intervals_cached(day):
                if b > t:
                    return max(a, t).astimezone(self.tz)
            day += _DAY
        raise ValueError(f"no working time within {MAX_SCAN_DAYS} days after {dt.isoformat()}")

    def add(self, start: datetime, delta: timedelta) -> datetime:
        """The earliest instant at which ``delta`` of working time has elapsed after ``start``.

        "Earliest" matters at the end of a day: 2 working hours after Friday
        15:30 is Friday 17:30, not Monday 09:00. Runs day by day (whole
        non-working days cost one cached lookup), never minute by minute, and
        gives up with ``ValueError`` after :data:`MAX_SCAN_DAYS` days.
        """
        _require_aware(start, "start")
        _require_nonnegative(delta)
        t = start.astimezone(UTC)
        if delta == timedelta(0):
            return t.astimezone(self.tz)
        remaining = delta
        day = self._local_date(t)
        for _ in range(MAX_SCAN_DAYS):
            for a, b in self._intervals_cached(day):
                if b <= t:
                    continue
                begin = max(a, t)
                available = b - begin
                if remaining <= available:
                    return (begin + remaining).astimezone(self.tz)
                remaining -= available
            day += _DAY
        raise ValueError(
            f"{delta} of working time after {start.isoformat()} is more than {MAX_SCAN_DAYS} days away"
        )

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Working time between two instants; negative when ``end`` is before ``start``.

        Antisymmetric so that "time left until a deadline" can go negative
        once it is overdue. Cost is one cached lookup per calendar day spanned.
        """
        _require_aware(start, "start")
        _require_aware(end, "end")
        s = start.astimezone(UTC)
        e = end.astimezone(UTC)
        if e < s:
            return -self.elapsed(end, start)
        total = timedelta(0)
        day = self._local_date(s)
        last = self._local_date(e)
        while day <= last:
            for a, b in self._intervals_cached(day):
                lo = max(a, s)
                hi = min(b, e)
                if hi > lo:
                    total += hi - lo
            day += _DAY
        return total


def _as_dates(values: Iterable[date], name: str) -> list[date]:
    """Validate a list of dates (datetimes are rejected: they carry a time of day)."""
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{name} must be an iterable of dates, not a string")
    out = []
    for value in values:
        if isinstance(value, datetime) or not isinstance(value, date):
            raise ValueError(f"{name}: expected datetime.date, got {value!r}")
        out.append(value)
    return out
