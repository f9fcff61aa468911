"""Tests for the working-time calendar (casegate.daemon.timekeeping.worktime).

Dates are checked against chinesecalendar's 2026 data first, so that a change
in the upstream data shows up as a clear precondition failure, not as a
puzzling arithmetic one.
"""

from __future__ import annotations

import logging
import random
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest

from casegate.daemon.timekeeping import worktime
from casegate.daemon.timekeeping.worktime import MAX_SCAN_DAYS, TimeBasis, WallClock, WorkCalendar

SH = ZoneInfo("Asia/Shanghai")
H = timedelta(hours=1)


def sh(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=SH)


@pytest.fixture(scope="module")
def cal() -> WorkCalendar:
    return WorkCalendar()


# -- preconditions on the upstream holiday data --------------------------------


def test_chinese_calendar_2026_data_as_assumed() -> None:
    # A normal week: Fri 13 and Mon 16 March 2026 are plain workdays.
    assert chinese_calendar.is_workday(date(2026, 3, 13))
    assert chinese_calendar.is_workday(date(2026, 3, 16))
    # National Day 2026: Oct 1-7 off, Sun Sep 20 and Sat Oct 10 are 调休 workdays.
    assert all(chinese_calendar.is_holiday(date(2026, 10, d)) for d in range(1, 8))
    assert chinese_calendar.is_workday(date(2026, 9, 20))
    assert chinese_calendar.is_workday(date(2026, 10, 10))
    # Spring Festival 2026: Feb 15-23 off, Sat Feb 14 and Sat Feb 28 are workdays.
    assert all(chinese_calendar.is_holiday(date(2026, 2, d)) for d in range(15, 24))
    assert chinese_calendar.is_workday(date(2026, 2, 14))
    assert chinese_calendar.is_workday(date(2026, 2, 28))


# -- add -----------------------------------------------------------------------


def test_friday_close_plus_two_hours_is_monday_eleven(cal: WorkCalendar) -> None:
    assert cal.add(sh(2026, 3, 13, 17, 30), 2 * H) == sh(2026, 3, 16, 11, 0)


def test_add_lands_at_end_of_day_not_next_morning(cal: WorkCalendar) -> None:
    # The earliest instant with 2 h elapsed is Friday 17:30 itself.
    assert cal.add(sh(2026, 3, 13, 15, 30), 2 * H) == sh(2026, 3, 13, 17, 30)


def test_lunch_break_is_skipped(cal: WorkCalendar) -> None:
    assert cal.add(sh(2026, 3, 16, 11, 0), 2 * H) == sh(2026, 3, 16, 14, 0)
    # Starting inside the break counts from 13:00.
    assert cal.add(sh(2026, 3, 16, 12, 15), 30 * timedelta(minutes=1)) == sh(2026, 3, 16, 13, 30)
    assert cal.elapsed(sh(2026, 3, 16, 11, 0), sh(2026, 3, 16, 14, 0)) == 2 * H


def test_national_day_week_is_skipped(cal: WorkCalendar) -> None:
    # Wed Sep 30, 16:00: 1.5 h left that day, then Oct 1-7 off, Thu Oct 8 09:00 + 1.5 h.
    assert cal.add(sh(2026, 9, 30, 16, 0), 3 * H) == sh(2026, 10, 8, 10, 30)
    assert cal.elapsed(sh(2026, 9, 30, 17, 30), sh(2026, 10, 8, 9, 0)) == timedelta(0)


def test_adjusted_working_saturday_and_sunday_count(cal: WorkCalendar) -> None:
    # Fri Oct 9 -> Sat Oct 10 (调休) with Monday-Friday hours.
    assert cal.add(sh(2026, 10, 9, 16, 0), 3 * H) == sh(2026, 10, 10, 10, 30)
    assert cal.is_working_time(sh(2026, 10, 10, 14, 0))
    assert not cal.is_working_time(sh(2026, 10, 10, 12, 30))  # lunch on that Saturday too
    # Fri Sep 18 -> Sun Sep 20 (调休).
    assert cal.add(sh(2026, 9, 18, 16, 0), 3 * H) == sh(2026, 9, 20, 10, 30)
    # An ordinary Saturday is off.
    assert not cal.is_working_day(date(2026, 3, 14))


def test_spring_festival_2026(cal: WorkCalendar) -> None:
    # Fri Feb 13 -> Sat Feb 14 (调休) -> holiday Feb 15-23 -> Tue Feb 24.
    assert cal.add(sh(2026, 2, 13, 16, 0), 3 * H) == sh(2026, 2, 14, 10, 30)
    assert cal.add(sh(2026, 2, 14, 16, 0), 3 * H) == sh(2026, 2, 24, 10, 30)
    assert cal.elapsed(sh(2026, 2, 14, 0, 0), sh(2026, 2, 25, 0, 0)) == 2 * cal.working_day


def test_extra_holidays_and_workdays() -> None:
    cal = WorkCalendar(extra_holidays=[date(2026, 12, 24)], extra_workdays=[date(2026, 12, 26)])
    # Wed Dec 23 17:00 + 1 h skips Thu Dec 24 (company holiday).
    assert cal.add(sh(2026, 12, 23, 17, 0), H) == sh(2026, 12, 25, 9, 30)
    # Sat Dec 26 is an extra working day with weekday hours.
    assert cal.add(sh(2026, 12, 25, 17, 0), H) == sh(2026, 12, 26, 9, 30)
    assert not cal.is_working_day(date(2026, 12, 24))
    assert cal.is_working_day(date(2026, 12, 26))
    # extra_workdays win over public holidays (e.g. an on-call desk on Oct 2).
    oncall = WorkCalendar(extra_workdays=[date(2026, 10, 2)])
    assert oncall.add(sh(2026, 9, 30, 17, 0), H) == sh(2026, 10, 2, 9, 30)


def test_custom_hours_and_half_day_saturday() -> None:
    hours = {wd: [(time(8, 0), time(16, 0))] for wd in range(5)} | {5: [(time(9, 0), time(12, 0))]}
    cal = WorkCalendar(hours=hours)
    assert cal.working_day == 8 * H
    assert cal.add(sh(2026, 3, 13, 15, 0), 2 * H) == sh(2026, 3, 14, 10, 0)
    # A 调休 Saturday replaces a weekday: full weekday hours, not the half day.
    assert cal.add(sh(2026, 10, 10, 8, 0), 7 * H) == sh(2026, 10, 10, 15, 0)
    # ... and public holidays still win over configured Saturday hours.
    assert not cal.is_working_day(date(2026, 10, 3))


def test_round_the_clock_hours_with_midnight_end() -> None:
    cal = WorkCalendar(hours={wd: [(time(0), time(0))] for wd in range(7)}, country="DE")
    assert cal.working_day == 24 * H
    assert cal.add(sh(2026, 3, 13, 23, 0), 2 * H) == sh(2026, 3, 14, 1, 0)


def test_default_working_day_length(cal: WorkCalendar) -> None:
    assert cal.working_day == timedelta(hours=7, minutes=30)
    # One working day after Tuesday 10:00 is Wednesday 10:00.
    assert cal.add(sh(2026, 3, 17, 10, 0), cal.working_day) == sh(2026, 3, 18, 10, 0)


def test_add_zero_and_negative(cal: WorkCalendar) -> None:
    start = sh(2026, 3, 14, 3, 0)  # Saturday night
    assert cal.add(start, timedelta(0)) == start
    with pytest.raises(ValueError):
        cal.add(start, -H)


def test_add_is_efficient_and_bounded() -> None:
    cal = WorkCalendar()
    # ~400 working days: must not iterate minute by minute.
    end = cal.add(sh(2025, 1, 2, 9, 0), 400 * cal.working_day)
    assert cal.elapsed(sh(2025, 1, 2, 9, 0), end) == 400 * cal.working_day
    never = WorkCalendar(hours={})
    with pytest.raises(ValueError, match="days"):
        never.add(sh(2026, 1, 5, 9, 0), H)
    with pytest.raises(ValueError):
        never.next_working_start(sh(2026, 1, 5, 9, 0))
    assert MAX_SCAN_DAYS >= 3 * 365


# -- elapsed / add inverse ----------------------------------------------------------


def test_elapsed_is_inverse_of_add_on_random_samples(cal: WorkCalendar) -> None:
    rng = random.Random(20260101)
    base = sh(2025, 12, 1, 0, 0)
    for _ in range(400):
        start = base + timedelta(minutes=rng.randrange(0, 400 * 24 * 60))
        delta = timedelta(minutes=rng.randrange(0, 60 * 60), seconds=rng.randrange(60))
        end = cal.add(start, delta)
        assert end >= start
        assert cal.elapsed(start, end) == delta, (start, delta, end)
        assert cal.elapsed(end, start) == -delta

        other = start + timedelta(minutes=rng.randrange(1, 30 * 24 * 60))
        worked = cal.elapsed(start, other)
        back = cal.add(start, worked)
        assert back <= other
        if worked and cal.is_working_time(other):
            assert back == other, (start, other, worked, back)


def test_next_working_start(cal: WorkCalendar) -> None:
    assert cal.next_working_start(sh(2026, 3, 16, 10, 0)) == sh(2026, 3, 16, 10, 0)
    assert cal.next_working_start(sh(2026, 3, 16, 12, 0)) == sh(2026, 3, 16, 13, 0)
    assert cal.next_working_start(sh(2026, 3, 13, 17, 30)) == sh(2026, 3, 16, 9, 0)
    assert cal.next_working_start(sh(2026, 9, 30, 18, 0)) == sh(2026, 10, 8, 9, 0)


def test_is_working_time_half_open(cal: WorkCalendar) -> None:
    assert cal.is_working_time(sh(2026, 3, 16, 9, 0))
    assert not cal.is_working_time(sh(2026, 3, 16, 8, 59))
    assert not cal.is_working_time(sh(2026, 3, 16, 12, 0))
    assert cal.is_working_time(sh(2026, 3, 16, 13, 0))
    assert not cal.is_working_time(sh(2026, 3, 16, 17, 30))
    assert not cal.is_working_time(sh(2026, 10, 1, 10, 0))


# -- time zones ------------------------------------------------------------------


def test_utc_input_gives_shanghai_result(cal: WorkCalendar) -> None:
    start = datetime(2026, 3, 13, 9, 30, tzinfo=UTC)  # = Friday 17:30 in Shanghai
    end = cal.add(start, 2 * H)
    assert end == sh(2026, 3, 16, 11, 0)
    assert end.utcoffset() == timedelta(hours=8)
    assert end.tzinfo == SH
    assert end.astimezone(UTC) == datetime(2026, 3, 16, 3, 0, tzinfo=UTC)
    # 01:30 UTC is 09:30 in Shanghai: working time.
    assert cal.is_working_time(datetime(2026, 3, 16, 1, 30, tzinfo=UTC))
    assert cal.elapsed(start, datetime(2026, 3, 16, 3, 0, tzinfo=UTC)) == 2 * H


def test_other_calendar_zone_counts_local_office_hours() -> None:
    berlin = WorkCalendar(tz="Europe/Berlin", country="DE")
    z = ZoneInfo("Europe/Berlin")
    # DST starts Sun 29 March 2026; Friday 17:00 + 1 h -> Monday 09:30 CEST.
    end = berlin.add(datetime(2026, 3, 27, 17, 0, tzinfo=z), H)
    assert end == datetime(2026, 3, 30, 9, 30, tzinfo=z)
    assert end.utcoffset() == 2 * H


@pytest.mark.parametrize("method", ["is_working_time", "next_working_start"])
def test_naive_datetime_is_rejected(cal: WorkCalendar, method: str) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        getattr(cal, method)(datetime(2026, 3, 16, 10, 0))


def test_naive_datetime_is_rejected_by_add_and_elapsed(cal: WorkCalendar) -> None:
    naive = datetime(2026, 3, 16, 10, 0)
    with pytest.raises(ValueError):
        cal.add(naive, H)
    with pytest.raises(ValueError):
        cal.elapsed(naive, sh(2026, 3, 16, 11, 0))
    with pytest.raises(ValueError):
        cal.elapsed(sh(2026, 3, 16, 11, 0), naive)
    with pytest.raises(ValueError):
        WallClock().add(naive, H)
    with pytest.raises(ValueError):
        WallClock().elapsed(naive, naive)


# -- configuration validation ------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tz": "Mars/Olympus"},
        {"hours": {0: [(time(12, 0), time(9, 0))]}},
        {"hours": {0: [(time(9, 0), time(12, 0)), (time(11, 0), time(13, 0))]}},
        {"hours": {7: [(time(9, 0), time(12, 0))]}},
        {"country": "XX"},
        {"extra_holidays": [date(2026, 5, 6)], "extra_workdays": [date(2026, 5, 6)]},
        {"extra_holidays": [datetime(2026, 5, 6, tzinfo=SH)]},
    ],
)
def test_bad_calendar_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        WorkCalendar(**kwargs)


def test_calendar_equality() -> None:
    assert WorkCalendar() == WorkCalendar()
    assert WorkCalendar() != WorkCalendar(extra_holidays=[date(2026, 12, 24)])


# -- fallback for years chinesecalendar does not know -------------------------------


def test_fallback_when_chinese_calendar_has_no_data(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def no_data(day: date) -> tuple[bool, str | None]:
        raise NotImplementedError(f"no available data for year {day.year}")

    monkeypatch.setattr(worktime.chinese_calendar, "get_holiday_detail", no_data)
    monkeypatch.setattr(worktime, "_warned_years", set())
    cal = WorkCalendar()
    with caplog.at_level(logging.WARNING, logger=worktime.__name__):
        # The holidays package knows only the statutory days (Oct 1-3) for
        # 2030, no 调休 arrangement; weekends are plain days off.
        assert not cal.is_working_day(date(2030, 10, 1))
        assert not cal.is_working_day(date(2030, 10, 5))  # Saturday
        assert cal.is_working_day(date(2030, 10, 4))
        assert cal.add(sh(2030, 9, 30, 17, 0), H) == sh(2030, 10, 4, 9, 30)
    warnings = [r for r in caplog.records if "2030" in r.getMessage()]
    assert len(warnings) == 1


# -- wall clock --------------------------------------------------------------------------


def test_wall_clock_is_plain_arithmetic() -> None:
    wall = WallClock("Asia/Shanghai")
    start = datetime(2026, 10, 1, 2, 0, tzinfo=UTC)  # holiday, night: irrelevant
    assert wall.add(start, 24 * H) == sh(2026, 10, 2, 10, 0)
    assert wall.add(start, 24 * H).tzinfo == SH
    assert wall.elapsed(start, sh(2026, 10, 2, 10, 0)) == 24 * H
    assert wall.elapsed(sh(2026, 10, 2, 10, 0), start) == -24 * H
    assert WallClock().add(start, H).tzinfo is UTC


def test_both_bases_satisfy_the_protocol() -> None:
    assert isinstance(WallClock(), TimeBasis)
    assert isinstance(WorkCalendar(), TimeBasis)
