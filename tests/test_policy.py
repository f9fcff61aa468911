"""Tests for the SLA policy configuration (casegate.daemon.timekeeping.policy)."""

from __future__ import annotations

import tomllib
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from casegate.daemon.durations import Duration
from casegate.daemon.timekeeping.policy import (
    ComplaintPolicy,
    EscalationStep,
    Policy,
    PolicyError,
    calendar_from_dict,
)

parse_duration = Duration.parse
from casegate.daemon.timekeeping.worktime import WallClock, WorkCalendar

SH = ZoneInfo("Asia/Shanghai")
WHERE = "casegate.toml"


def sh(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=SH)


def td(**kw: int) -> timedelta:
    return timedelta(**kw)


def wd(n: int) -> Duration:
    return Duration(working_days=n)


def dur(**kw: int) -> Duration:
    return Duration(timedelta(**kw))


# -- duration syntax --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", dur(minutes=30)),
        ("2h", dur(hours=2)),
        ("1d", dur(days=1)),
        ("1d12h", dur(days=1, hours=12)),
        ("90s", dur(seconds=90)),
        ("2h30m", dur(hours=2, minutes=30)),
        ("1h0m5s", dur(hours=1, seconds=5)),
        ("0s", Duration()),
        ("1wd", wd(1)),
        ("3wd", wd(3)),
    ],
)
def test_parse_duration(text: str, expected: Duration) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "30", "m", "1.5h", "30 m", "2H", "30m2h", "1wd2h", "-1h", "1w", "h1", "99999999999999d"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("text", ["30m", "2h", "1d12h", "1m30s", "45s", "3wd", "0s"])
def test_duration_str_round_trips(text: str) -> None:
    assert str(parse_duration(text)) == text


def test_duration_str_is_canonical() -> None:
    assert str(parse_duration("90m")) == "1h30m"
    assert str(parse_duration("24h")) == "1d"
    assert str(parse_duration("90s")) == "1m30s"


# -- defaults = DOMAIN.md (seed 003) ---------------------------------------------------------


def test_defaults_match_domain_figures() -> None:
    p = Policy.default()
    p1, p2, p3, p4 = (p.priorities[k] for k in ("P1", "P2", "P3", "P4"))

    assert [x.first_response for x in (p1, p2, p3, p4)] == [dur(minutes=30), dur(hours=2), dur(hours=4), dur(hours=24)]
    assert [x.status_update_every for x in (p1, p2, p3, p4)] == [dur(hours=1), dur(hours=4), wd(1), None]
    assert dict(p1.resolution) == {"root_cause": dur(hours=4), "workaround": dur(hours=8), "fix": dur(hours=24)}
    assert dict(p2.resolution) == {"root_cause": wd(1), "fix": wd(3)}
    assert dict(p3.resolution) == {"guidance": wd(2)}
    assert dict(p4.resolution) == {"answer": dur(hours=24)}

    # Basis: P1 and P2 7x24 wall clock (issue 13), P3-P4 working time.
    assert [x.working_time for x in (p1, p2, p3, p4)] == [False, False, True, True]

    roles = ["service-engineer", "support-supervisor", "general-manager"]
    assert p1.escalation == tuple(EscalationStep(d, r) for d, r in zip([dur(minutes=30), dur(hours=1), dur(hours=2)], roles))
    assert p2.escalation == tuple(EscalationStep(d, r) for d, r in zip([dur(hours=1), dur(hours=2), dur(hours=4)], roles))
    assert p3.escalation == tuple(EscalationStep(d, r) for d, r in zip([dur(hours=2), dur(hours=4), dur(hours=8)], roles))
    assert p4.escalation == ()

    assert p1.followups == (dur(days=1), dur(days=3), dur(days=7))
    assert p2.followups == (dur(days=3),)
    assert p3.followups == (dur(days=7),)
    assert p4.followups == ()

    assert p.complaint == ComplaintPolicy(dur(hours=2), dur(hours=24), dur(hours=48), working_time=False)
    assert p.close_after_silence == dur(days=3)
    assert p.reopen_window == dur(days=14)
    assert p.survey_on_close is True

    assert p.calendar == WorkCalendar()
    assert p.calendar.timezone == "Asia/Shanghai"
    assert p.calendar.country == "CN"
    assert p.calendar.hours[0] == ((time(9), time(12)), (time(13), time(17, 30)))
    assert p.calendar.hours[5] == p.calendar.hours[6] == ()


def test_empty_config_is_the_default() -> None:
    assert Policy.from_dict({}, WHERE) == Policy.default()


# -- loading a real TOML file --------------------------------------------------------------

SAMPLE = """
[policy]
close_after_silence = "5d"
reopen_window = "30d"
survey_on_close = false

[policy.calendar]
timezone = "Asia/Shanghai"
country = "CN"
extra_holidays = ["2026-12-24", 2026-12-31]
extra_workdays = []

[policy.calendar.hours]
mon = ["08:30-12:00", "13:30-18:00"]
tue = ["08:30-12:00", "13:30-18:00"]
wed = ["08:30-12:00", "13:30-18:00"]
thu = ["08:30-12:00", "13:30-18:00"]
fri = ["08:30-12:00", "13:30-18:00"]
sat = ["09:00-12:00"]

[policy.P2]
first_response = "1h"
status_update_every = "none"
resolution = { root_cause = "4h", fix = "2wd" }
escalation = [
  { after = "30m", role = "service-engineer" },
  { after = "1h", role = "support-supervisor" },
]

[policy.P4]
working_time = false

[policy.complaint]
respond = "1h"
working_time = true
"""


def test_from_toml() -> None:
    p = Policy.from_dict(tomllib.loads(SAMPLE)["policy"], WHERE)
    assert p.close_after_silence == dur(days=5)
    assert p.reopen_window == dur(days=30)
    assert p.survey_on_close is False
    assert p.calendar.extra_holidays == {date(2026, 12, 24), date(2026, 12, 31)}
    assert p.calendar.hours[0] == ((time(8, 30), time(12)), (time(13, 30), time(18)))
    assert p.calendar.hours[5] == ((time(9), time(12)),)
    assert p.calendar.hours[6] == ()
    assert p.calendar.working_day == timedelta(hours=8)

    p2 = p.priorities["P2"]
    assert p2.first_response == dur(hours=1)
    assert p2.status_update_every is None
    assert dict(p2.resolution) == {"root_cause": dur(hours=4), "fix": wd(2)}
    assert [s.role for s in p2.escalation] == ["service-engineer", "support-supervisor"]
    # Keys not given keep their defaults (P2 is on the 7x24 clock by default since issue 13).
    assert p2.working_time is False
    assert p2.followups == (dur(days=3),)
    assert p.priorities["P1"] == Policy.default().priorities["P1"]
    assert p.priorities["P4"].working_time is False
    assert p.priorities["P4"].first_response == dur(hours=24)
    assert p.complaint == ComplaintPolicy(respond=dur(hours=1), working_time=True)


def test_calendar_from_dict() -> None:
    cal = calendar_from_dict({"extra_holidays": ["2026-12-24"], "hours": {"mon": ["00:00-24:00"]}}, WHERE)
    assert isinstance(cal, WorkCalendar)
    assert cal.hours[0] == ((time(0), time(0)),)
    assert cal.working_day == timedelta(hours=24)
    assert cal.hours[1] == ()  # a given week replaces the default one


# -- validation errors name file and key -------------------------------------------------------


def test_unknown_key_message_is_exact() -> None:
    with pytest.raises(PolicyError) as exc:
        Policy.from_dict({"P1": {"first_respons": "30m"}}, WHERE)
    assert str(exc.value) == (
        "casegate.toml: policy.P1.first_respons: unknown key (expected one of: working_time, "
        "first_response, status_update_every, resolution, escalation, followups)"
    )
    assert exc.value.where == WHERE
    assert exc.value.key == "policy.P1.first_respons"


@pytest.mark.parametrize(
    ("data", "key", "fragment"),
    [
        # unknown keys at every level
        ({"P5": {}}, "policy.P5", "unknown key"),
        ({"survey": True}, "policy.survey", "unknown key"),
        ({"complaint": {"answer": "1h"}}, "policy.complaint.answer", "unknown key"),
        ({"calendar": {"tz": "UTC"}}, "policy.calendar.tz", "unknown key"),
        ({"calendar": {"hours": {"monday": []}}}, "policy.calendar.hours.monday", "unknown key"),
        ({"P1": {"escalation": [{"after": "1h", "role": "x", "who": "y"}]}}, "policy.P1.escalation[0].who", "unknown key"),
        # wrong types
        ({"P1": "fast"}, "policy.P1", "expected a table, got string"),
        ({"P1": {"working_time": "yes"}}, "policy.P1.working_time", "expected a boolean"),
        ({"P1": {"first_response": 30}}, "policy.P1.first_response", "expected a duration string"),
        ({"P1": {"escalation": {"after": "1h"}}}, "policy.P1.escalation", "expected an array"),
        ({"P1": {"escalation": ["30m"]}}, "policy.P1.escalation[0]", "expected a table"),
        ({"P1": {"escalation": [{"after": "1h", "role": 3}]}}, "policy.P1.escalation[0].role", "expected a non-empty string"),
        ({"P1": {"resolution": ["4h"]}}, "policy.P1.resolution", "expected a table"),
        ({"P1": {"followups": "1d"}}, "policy.P1.followups", "expected an array"),
        ({"survey_on_close": 1}, "policy.survey_on_close", "expected a boolean"),
        ({"calendar": {"extra_holidays": "2026-12-24"}}, "policy.calendar.extra_holidays", "expected an array"),
        ({"calendar": {"extra_holidays": [20261224]}}, "policy.calendar.extra_holidays[0]", "expected a date"),
        ({"calendar": {"hours": {"mon": [9]}}}, "policy.calendar.hours.mon[0]", "HH:MM-HH:MM"),
        # bad values
        ({"P1": {"first_response": "30 min"}}, "policy.P1.first_response", "invalid duration '30 min'"),
        ({"P1": {"first_response": "0m"}}, "policy.P1.first_response", "greater than zero"),
        ({"P1": {"status_update_every": "1hour"}}, "policy.P1.status_update_every", "invalid duration '1hour'"),
        ({"P1": {"resolution": {"fix": "soon"}}}, "policy.P1.resolution.fix", "invalid duration 'soon'"),
        ({"P1": {"resolution": {"Fix Time": "4h"}}}, "policy.P1.resolution.Fix Time", "lower_case"),
        ({"P2": {"followups": ["3d", "1x"]}}, "policy.P2.followups[1]", "invalid duration '1x'"),
        ({"close_after_silence": "3 days"}, "policy.close_after_silence", "invalid duration '3 days'"),
        ({"complaint": {"plan": "1h", "respond": "2h"}}, "policy.complaint", "respond <= plan <= close"),
        ({"P1": {"escalation": [{"role": "x"}]}}, "policy.P1.escalation[0].after", "missing key"),
        ({"P1": {"escalation": [{"after": "1h", "role": " "}]}}, "policy.P1.escalation[0].role", "non-empty"),
        # ordering
        (
            {"P1": {"escalation": [{"after": "1h", "role": "a"}, {"after": "30m", "role": "b"}]}},
            "policy.P1.escalation[1].after",
            "strictly increasing: 30m is not after 1h",
        ),
        (
            {"P2": {"escalation": [{"after": "1wd", "role": "a"}, {"after": "7h30m", "role": "b"}]}},
            "policy.P2.escalation[1].after",
            "strictly increasing",
        ),
        ({"P1": {"followups": ["3d", "1d"]}}, "policy.P1.followups[1]", "strictly increasing"),
        # calendar values
        ({"calendar": {"timezone": "Asia/Beijing"}}, "policy.calendar.timezone", "unknown timezone 'Asia/Beijing'"),
        ({"calendar": {"country": "XX"}}, "policy.calendar.country", "not supported"),
        ({"calendar": {"hours": {"mon": ["9:00-12:00"]}}}, "policy.calendar.hours.mon[0]", "invalid interval '9:00-12:00'"),
        ({"calendar": {"hours": {"mon": ["12:00-09:00"]}}}, "policy.calendar.hours.mon[0]", "ends before it starts"),
        ({"calendar": {"hours": {"mon": ["09:00-25:00"]}}}, "policy.calendar.hours.mon[0]", "invalid interval"),
        (
            {"calendar": {"hours": {"mon": ["09:00-12:00", "11:00-13:00"]}}},
            "policy.calendar.hours.mon[1]",
            "overlaps",
        ),
        ({"calendar": {"extra_workdays": ["2026-02-30"]}}, "policy.calendar.extra_workdays[0]", "invalid date '2026-02-30'"),
        (
            {"calendar": {"extra_holidays": ["2026-05-06"], "extra_workdays": ["2026-05-06"]}},
            "policy.calendar.extra_workdays",
            "also listed in extra_holidays",
        ),
    ],
)
def test_validation_errors_name_the_key(data: dict, key: str, fragment: str) -> None:
    with pytest.raises(PolicyError) as exc:
        Policy.from_dict(data, WHERE)
    assert exc.value.key == key
    assert str(exc.value).startswith(f"{WHERE}: {key}: ")
    assert fragment in str(exc.value)


def test_top_level_must_be_a_table() -> None:
    with pytest.raises(PolicyError, match=r"^etc/casegate\.toml: policy: expected a table"):
        Policy.from_dict(["P1"], "etc/casegate.toml")  # type: ignore[arg-type]


def test_none_status_update_and_zero_reopen_window_allowed() -> None:
    p = Policy.from_dict({"P1": {"status_update_every": False}, "reopen_window": "0s"}, WHERE)
    assert p.priorities["P1"].status_update_every is None
    assert p.reopen_window == Duration()


# -- scheduler helpers -----------------------------------------------------------------------------

P = Policy.default()
# P2 on working time, as admins who count office hours configure it (the default is 7x24 since issue 13).
PW = Policy.from_dict({"P2": {"working_time": True}}, "test.toml")


def test_basis_for() -> None:
    assert isinstance(P.basis_for("P1"), WallClock)
    assert isinstance(P.basis_for("P2"), WallClock)  # issue 13: P2 is 7x24 by default
    assert PW.basis_for("P2") is PW.calendar
    with pytest.raises(LookupError):
        P.basis_for("P9")


def test_first_response_due() -> None:
    fri_evening = sh(2026, 3, 13, 17, 20)
    # P1 is 7x24: 30 min later, Friday 17:50.
    assert P.first_response_due("P1", fri_evening) == sh(2026, 3, 13, 17, 50)
    # P2 on working time: 10 min on Friday, 1 h 50 min on Monday; by default 7x24: 2 h later.
    assert PW.first_response_due("P2", fri_evening) == sh(2026, 3, 16, 10, 50)
    assert P.first_response_due("P2", fri_evening) == sh(2026, 3, 13, 19, 20)
    # P4: 24 working hours = 3 x 7.5 h + 1.5 h from Monday 09:00.
    assert P.first_response_due("P4", sh(2026, 3, 16, 9, 0)) == sh(2026, 3, 19, 10, 30)


def test_priority_enum_like_values_are_accepted() -> None:
    class Prio:
        value = "P1"

    assert P.first_response_due(Prio(), sh(2026, 3, 13, 10, 0)) == sh(2026, 3, 13, 10, 30)


def test_escalation_steps() -> None:
    opened = sh(2026, 3, 13, 15, 0)  # Friday
    assert P.escalation_steps("P1", opened) == [
        (sh(2026, 3, 13, 15, 30), "service-engineer"),
        (sh(2026, 3, 13, 16, 0), "support-supervisor"),
        (sh(2026, 3, 13, 17, 0), "general-manager"),
    ]
    assert P.escalation_steps("P3", opened) == [
        (sh(2026, 3, 13, 17, 0), "service-engineer"),
        (sh(2026, 3, 16, 10, 30), "support-supervisor"),
        (sh(2026, 3, 16, 15, 30), "general-manager"),
    ]
    assert P.escalation_steps("P4", opened) == []


def test_resolution_due_working_days() -> None:
    opened = sh(2026, 9, 30, 10, 0)  # Wednesday before National Day
    due = P.resolution_due("P2", opened)
    assert due["root_cause"] == sh(2026, 10, 8, 10, 0)
    assert due["fix"] == sh(2026, 10, 10, 10, 0)  # Thu, Fri, then the 调休 Saturday
    # "wd" counts working days even for the wall-clock P1.
    custom = Policy.from_dict({"P1": {"resolution": {"fix": "1wd"}}}, WHERE)
    assert custom.resolution_due("P1", opened) == {"fix": sh(2026, 10, 8, 10, 0)}


def test_next_status_update() -> None:
    last = sh(2026, 3, 13, 16, 0)
    assert P.next_status_update("P1", last) == sh(2026, 3, 13, 17, 0)
    assert PW.next_status_update("P2", last) == sh(2026, 3, 16, 11, 30)
    assert P.next_status_update("P2", last) == sh(2026, 3, 13, 20, 0)
    assert P.next_status_update("P3", last) == sh(2026, 3, 16, 16, 0)
    assert P.next_status_update("P4", last) is None


def test_followup_times_move_into_working_hours() -> None:
    resolved = sh(2026, 3, 13, 16, 0)  # Friday
    no_gap = Policy.from_dict({"followup_min_gap": "0s"}, WHERE)
    # Surveyed at resolution (the customer confirmed at once), no gap: the plain schedule.
    assert no_gap.followup_times("P1", resolved, survey_at=resolved) == [
        sh(2026, 3, 16, 9, 0),  # Sat 16:00 -> Monday morning
        sh(2026, 3, 16, 16, 0),  # Monday 16:00
        sh(2026, 3, 20, 16, 0),  # Friday 16:00
    ]
    # Issue 13: after the survey (silence closes Monday 16:00), a day apart from it and each other.
    assert P.followup_times("P1", resolved) == [
        sh(2026, 3, 17, 16, 0),  # a day after the survey
        sh(2026, 3, 18, 16, 0),  # a day after follow-up 1
        sh(2026, 3, 20, 16, 0),
    ]
    assert no_gap.followup_times("P2", resolved, survey_at=resolved) == [sh(2026, 3, 16, 16, 0)]
    assert P.followup_times("P2", resolved) == [sh(2026, 3, 17, 16, 0)]  # a day after the survey
    assert P.followup_times("P4", resolved) == []


def test_close_and_reopen() -> None:
    resolved = sh(2026, 3, 13, 16, 0)
    assert P.auto_close_at(resolved) == sh(2026, 3, 16, 16, 0)
    closed = sh(2026, 3, 1, 10, 0)
    assert P.reopen_deadline(closed) == sh(2026, 3, 15, 10, 0)
    assert P.reply_reopens(closed, sh(2026, 3, 15, 10, 0))
    assert not P.reply_reopens(closed, sh(2026, 3, 15, 10, 1))


def test_complaint_deadlines() -> None:
    opened = sh(2026, 3, 13, 17, 0)
    assert P.complaint_deadlines(opened) == {
        "respond": sh(2026, 3, 13, 19, 0),
        "plan": sh(2026, 3, 14, 17, 0),
        "close": sh(2026, 3, 15, 17, 0),
    }


def test_helpers_reject_naive_datetimes() -> None:
    with pytest.raises(ValueError):
        P.first_response_due("P1", datetime(2026, 3, 13, 10, 0))
    with pytest.raises(ValueError):
        P.first_response_due("P2", datetime(2026, 3, 13, 10, 0))
