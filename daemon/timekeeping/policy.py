"""The SLA policy: typed, validated configuration plus deadline helpers.

Every figure of the service procedures (response times, status-update
intervals, resolution targets, the escalation matrix, follow-ups, complaint
handling) is configuration, not code. This module turns the ``[policy]`` table
of ``casegate.toml`` into frozen dataclasses, rejects mistakes with a message
that names the file and the exact key (admins edit this file by hand, and a
typo such as ``first_respons`` must not silently fall back to a default), and
answers the scheduler's questions ("when is the first response due?").

Defaults are seed 003's figures from DOMAIN.md (see :meth:`Policy.default`).

Duration syntax (TOML strings)
------------------------------
* ``"90s"``, ``"30m"``, ``"2h"``, ``"1d"``, ``"1d12h"``, ``"2h30m"``: integer
  amounts with units ``d`` (24 hours), ``h``, ``m``, ``s``, largest unit first,
  no spaces. The amount is counted on the *basis* of where it is used: for a
  priority with ``working_time = true`` it is working time ("4h" = four office
  hours, so "1d" would be 24 *working* hours, about three working days — write
  "1wd" instead); for a wall-clock priority it is elapsed time.
* ``"1wd"``, ``"3wd"``: working days. Always counted on the working calendar,
  whatever the priority's basis; one working day is the length of a standard
  working day of the calendar (7 h 30 min by default), so "1wd" after Tuesday
  10:00 is Wednesday 10:00. Cannot be combined with other units.
* Follow-ups, ``close_after_silence`` and ``reopen_window`` are calendar
  periods after an event ("3 days after resolution"): plain durations there
  are wall-clock time; "wd" still counts working days.

Config layout (all keys optional; what is given overrides the default)::

    [policy]
    close_after_silence = "3d"
    reopen_window = "14d"
    survey_on_close = true

    [policy.calendar]            # replaces the calendar key by key
    timezone = "Asia/Shanghai"
    country = "CN"
    hours = { mon = ["09:00-12:00", "13:00-17:30"], tue = [...], ... }
    extra_holidays = ["2026-12-24"]
    extra_workdays = []
    holidays_file = "holidays-2027.toml"   # a year's official schedule (holiday_file.py)

    [policy.P2]                  # merges into the default P2, key by key
    working_time = true
    first_response = "2h"
    status_update_every = "4h"   # or "none"
    resolution = { root_cause = "1wd", fix = "3wd" }   # replaces the whole table
    escalation = [ { after = "1h", role = "service-engineer" }, ... ]
    followups = ["3d"]

    [policy.complaint]
    respond = "2h"
    plan = "24h"
    close = "48h"
    working_time = false

    [policy.contract_levels.gold.P2]   # a contract level's own targets, merged over
    working_time = false               # the priority above, key by key (a case whose
    first_response = "1h"              # contract has this level gets them)

``hours`` replaces the whole week when given: a day not listed is a day off,
so what the file shows is what the desk works.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from functools import cached_property
from types import MappingProxyType
from typing import Any

from ..durations import DURATION_HINT, Duration
from . import holiday_file
from .worktime import DEFAULT_HOURS, OfficialSchedule, TimeBasis, WallClock, WorkCalendar, load_zone

__all__ = [
    "PRIORITIES",
    "ComplaintPolicy",
    "Duration",
    "FAULT",
    "KindPolicy",
    "EscalationStep",
    "Policy",
    "PolicyError",
    "PriorityPolicy",
    "calendar_from_dict",
    "parse_duration",
]

PRIORITIES: tuple[str, ...] = ("P1", "P2", "P3", "P4")

_DAY_KEYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class PolicyError(ValueError):
    """A configuration mistake, with the file and the dotted key it concerns.

    ``str()`` reads ``"casegate.toml: policy.P1.first_respons: unknown key
    (...)"`` so it can be shown to the admin as is; ``where``/``key`` let
    callers (e.g. a config check command) point at the key programmatically.
    """

    def __init__(self, where: str, key: str, message: str) -> None:
        self.where = where
        self.key = key
        self.message = message
        super().__init__(f"{where}: {key}: {message}")


# --------------------------------------------------------------------------
# Durations
# --------------------------------------------------------------------------

def _d(text: str) -> Duration:
    return Duration.parse(text)


# --------------------------------------------------------------------------
# Policy dataclasses
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class EscalationStep:
    """Notify ``role`` once ``after`` has passed since opening without resolution."""

    after: Duration
    role: str


@dataclass(frozen=True)
class PriorityPolicy:
    """Targets of one priority level. All durations run from the event named.

    ``working_time`` picks the basis of plain durations: True = the working
    calendar, False = the wall clock (7x24).
    """

    working_time: bool
    first_response: Duration
    status_update_every: Duration | None
    resolution: Mapping[str, Duration]
    escalation: tuple[EscalationStep, ...]
    followups: tuple[Duration, ...]


@dataclass(frozen=True)
class ComplaintPolicy:
    """Complaint handling (seed 003): respond, present a plan, close.

    Wall clock by default: the seed's "within 48 h" is a promise to an
    unhappy customer, not an engineering target paused overnight.
    """

    respond: Duration = field(default_factory=lambda: _d("2h"))
    plan: Duration = field(default_factory=lambda: _d("24h"))
    close: Duration = field(default_factory=lambda: _d("48h"))
    working_time: bool = False


def _steps(*pairs: tuple[str, str]) -> tuple[EscalationStep, ...]:
    return tuple(EscalationStep(_d(after), role) for after, role in pairs)


# Basis choice for the defaults: P1 and P2 are 7x24 commitments (seed 002's
# duty engineer, seed 000's "P2 same as P1"), so they run on the wall clock;
# P3 and P4 count working time (office hours, PRC holidays and 调休). Their
# resolution targets in working days ("1wd") count on the calendar whatever
# the basis. P4's "24h" is 24 *working* hours, and every text says so
# ("24 个工作小时内") with the real deadline.
_DEFAULT_PRIORITIES: dict[str, PriorityPolicy] = {
    "P1": PriorityPolicy(
        working_time=False,
        first_response=_d("30m"),
        status_update_every=_d("1h"),
        resolution=MappingProxyType({"root_cause": _d("4h"), "workaround": _d("8h"), "fix": _d("24h")}),
        escalation=_steps(("30m", "service-engineer"), ("1h", "support-supervisor"), ("2h", "general-manager")),
        followups=(_d("1d"), _d("3d"), _d("7d")),
    ),
    "P2": PriorityPolicy(
        working_time=False,
        first_response=_d("2h"),
        status_update_every=_d("4h"),
        resolution=MappingProxyType({"root_cause": _d("1wd"), "fix": _d("3wd")}),
        escalation=_steps(("1h", "service-engineer"), ("2h", "support-supervisor"), ("4h", "general-manager")),
        followups=(_d("3d"),),
    ),
    "P3": PriorityPolicy(
        working_time=True,
        first_response=_d("4h"),
        status_update_every=_d("1wd"),
        resolution=MappingProxyType({"guidance": _d("2wd")}),
        escalation=_steps(("2h", "service-engineer"), ("4h", "support-supervisor"), ("8h", "general-manager")),
        followups=(_d("7d"),),
    ),
    "P4": PriorityPolicy(
        working_time=True,
        first_response=_d("24h"),
        status_update_every=None,
        resolution=MappingProxyType({"answer": _d("24h")}),
        escalation=(),
        followups=(),
    ),
}


@dataclass(frozen=True)
class KindPolicy:
    """A kind of case (fault, complaint, feature request ...): which cases are
    of it, the number series they take, and which clock they get.

    ``fault_sla`` False: no escalation matrix, no status updates, no
    resolution targets; only ``respond`` (a first answer, recorded when missed).
    ``complaint`` True: the complaint deadlines (respond, plan, close) too.
    """

    name: str
    categories: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()
    number_format: str | None = None  # None: the service's case_number_format, shared series
    # Where a case of this kind that casegate opens itself goes (a new need in a follow-up answer).
    queue: str = ""
    fault_sla: bool = True
    complaint: bool = False
    respond: Duration | None = None


FAULT = "fault"
_DEFAULT_KINDS: dict[str, KindPolicy] = {
    "complaint": KindPolicy("complaint", categories=("complaint",), complaint=True),
    # Seed 001: requests for new features are not faults; sales answers them,
    # numbered in their own series (…-XXQ-…).
    "feature": KindPolicy("feature", categories=("feature-request",),
                          number_format="XQ-{year}-{seq:06d}", queue="sales", fault_sla=False, respond=_d("2wd")),
    FAULT: KindPolicy(FAULT),
}


def _default_kinds() -> Mapping[str, KindPolicy]:
    return MappingProxyType(dict(_DEFAULT_KINDS))


def _default_priorities() -> Mapping[str, PriorityPolicy]:
    return MappingProxyType(dict(_DEFAULT_PRIORITIES))


@dataclass(frozen=True)
class Policy:
    """The whole SLA policy, plus the deadline helpers the scheduler uses.

    Helpers accept a priority as "P1".."P4" (or an enum whose ``value`` is
    such a string) and raise ``LookupError`` for anything else. All returned
    datetimes are aware and expressed in the calendar's zone.
    """

    calendar: WorkCalendar = field(default_factory=WorkCalendar)
    priorities: Mapping[str, PriorityPolicy] = field(default_factory=_default_priorities)
    complaint: ComplaintPolicy = field(default_factory=ComplaintPolicy)
    # Resolved cases with no customer answer close themselves after this.
    close_after_silence: Duration = field(default_factory=lambda: _d("3d"))
    # A reply to a closed case within this window reopens it; a later reply
    # opens a new case linked to the old one. "0s" = never reopen.
    reopen_window: Duration = field(default_factory=lambda: _d("14d"))
    survey_on_close: bool = True
    # Kinds of case, checked in order; a case of no listed kind is a fault.
    kinds: Mapping[str, KindPolicy] = field(default_factory=_default_kinds)
    # Follow-ups never come closer than this to each other or to the survey.
    followup_min_gap: Duration = field(default_factory=lambda: _d("1d"))
    # Who hears of a missed resolution target.
    resolution_role: str = "support-supervisor"
    # Contract levels (customer master data) with targets of their own:
    # level -> priority -> the merged PriorityPolicy.
    contract_levels: Mapping[str, Mapping[str, PriorityPolicy]] = field(
        default_factory=lambda: MappingProxyType({}))

    def fingerprint(self) -> str:
        """A short digest of the whole policy: the daemon re-plans open cases at
        start only when it differs from the one their timers were planned under."""
        text = repr(replace(self, calendar=WorkCalendar())) + self.calendar.identity()
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]

    @classmethod
    def default(cls) -> Policy:
        """Seed 003's figures from DOMAIN.md."""
        return cls()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> Policy:
        """Build a policy from the ``[policy]`` table of a config file.

        ``where`` (the file name) prefixes every error message. Keys not given
        keep their defaults; see the module docstring for merge rules.
        """
        return _PolicyReader(where).policy(data)

    def for_contract(self, level: str | None) -> Policy:
        """The policy of a case under a contract of ``level`` (itself when the level has no overrides)."""
        overrides = self.contract_levels.get(level or "")
        if not overrides:
            return self
        return replace(self, priorities=MappingProxyType({**self.priorities, **overrides}),
                       contract_levels=MappingProxyType({}))

    # -- bases --------------------------------------------------------------

    @cached_property
    def wall_clock(self) -> WallClock:
        """Wall-clock basis whose results are in the calendar's zone."""
        return WallClock(self.calendar.timezone)

    def priority(self, priority: object) -> PriorityPolicy:
        """The policy of one priority level."""
        key = getattr(priority, "value", priority)
        try:
            return self.priorities[key]  # type: ignore[index]
        except (KeyError, TypeError):
            raise LookupError(f"unknown priority {priority!r} (expected one of: {', '.join(self.priorities)})") from None

    def basis_for(self, priority: object) -> TimeBasis:
        """The basis plain durations of ``priority`` are counted on."""
        return self.calendar if self.priority(priority).working_time else self.wall_clock

    def due(self, priority: object, start: datetime, duration: Duration) -> datetime:
        """``duration`` after ``start`` on the priority's basis (working days on the calendar)."""
        return duration.after(start, self.basis_for(priority), self.calendar)

    def kind_of(self, category: str | None, route: str | None) -> KindPolicy:
        """The kind of a case with this category and route (fault when none claims it)."""
        for kind in self.kinds.values():
            if (category and category in kind.categories) or (route and route in kind.routes):
                return kind
        return self.kinds.get(FAULT) or KindPolicy(FAULT)

    def kind(self, name: str | None) -> KindPolicy:
        return self.kinds.get(name or FAULT) or KindPolicy(name or FAULT)

    # -- scheduler helpers --------------------------------------------------

    def first_response_due(self, priority: object, opened_at: datetime) -> datetime:
        """When the first answer to the customer is due."""
        return self.due(priority, opened_at, self.priority(priority).first_response)

    def response_promise(self, priority: object, category: str | None, route: str | None) -> tuple[Duration, bool]:
        """The first-response promise of a case, and whether it counts working time."""
        kind = self.kind_of(category, route)
        if not kind.fault_sla and kind.respond is not None:
            return kind.respond, True
        pp = self.priority(priority)
        return pp.first_response, pp.working_time

    def response_due(self, priority: object, category: str | None, route: str | None, opened_at: datetime) -> datetime:
        """When the first answer is due, by the case's kind and priority."""
        kind = self.kind_of(category, route)
        if not kind.fault_sla and kind.respond is not None:
            return kind.respond.after(opened_at, self.calendar, self.calendar)
        return self.first_response_due(priority, opened_at)

    def resolution_due(self, priority: object, opened_at: datetime) -> dict[str, datetime]:
        """Each resolution target ("root_cause", "fix", ...) as a deadline."""
        pp = self.priority(priority)
        return {name: self.due(priority, opened_at, d) for name, d in pp.resolution.items()}

    def escalation_steps(self, priority: object, opened_at: datetime) -> list[tuple[datetime, str]]:
        """``(due_at, role)`` for every escalation step, in order."""
        pp = self.priority(priority)
        return [(self.due(priority, opened_at, step.after), step.role) for step in pp.escalation]

    def next_status_update(self, priority: object, last_update_at: datetime) -> datetime | None:
        """When the next status update is owed, or None if the priority needs none."""
        every = self.priority(priority).status_update_every
        if every is None:
            return None
        return self.due(priority, last_update_at, every)

    def followup_times(self, priority: object, resolved_at: datetime,
                       survey_at: datetime | None = None) -> list[datetime]:
        """When to contact the customer after resolution.

        Offsets are calendar periods (wall clock), then moved to the next
        working time, because a follow-up is a person calling or writing
        during office hours: "1 day after Friday's fix" is Monday morning.
        Follow-ups come after the survey (``survey_at``; by default when
        silence closes the case), so the score is asked once, after the
        customer confirmed, and never within ``followup_min_gap`` of the
        survey or of each other: one that would is moved to a gap after it.
        """
        gap = self.followup_min_gap
        survey = survey_at if survey_at is not None else self.auto_close_at(resolved_at)
        out: list[datetime] = []
        for offset in self.priority(priority).followups:
            at = self.calendar.next_working_start(offset.after(resolved_at, self.wall_clock, self.calendar))
            for _ in range(10):
                moved = at
                if out and moved < gap.after(out[-1], self.wall_clock, self.calendar):
                    moved = gap.after(out[-1], self.wall_clock, self.calendar)
                if moved < gap.after(survey, self.wall_clock, self.calendar):
                    moved = gap.after(survey, self.wall_clock, self.calendar)
                moved = self.calendar.next_working_start(moved)
                if moved == at:
                    break
                at = moved
            out.append(at)
        return out

    def auto_close_at(self, resolved_at: datetime) -> datetime:
        """When a resolved case without customer answer closes itself."""
        return self.close_after_silence.after(resolved_at, self.wall_clock, self.calendar)

    def reopen_deadline(self, closed_at: datetime) -> datetime:
        """Last instant at which a customer reply reopens the closed case."""
        return self.reopen_window.after(closed_at, self.wall_clock, self.calendar)

    def reply_reopens(self, closed_at: datetime, reply_at: datetime) -> bool:
        """True if a reply at ``reply_at`` reopens the case, False if it opens a new linked case."""
        return reply_at <= self.reopen_deadline(closed_at)

    def complaint_deadlines(self, opened_at: datetime) -> dict[str, datetime]:
        """Deadlines of a complaint: "respond", "plan" and "close"."""
        c = self.complaint
        basis: TimeBasis = self.calendar if c.working_time else self.wall_clock
        return {
            "respond": c.respond.after(opened_at, basis, self.calendar),
            "plan": c.plan.after(opened_at, basis, self.calendar),
            "close": c.close.after(opened_at, basis, self.calendar),
        }


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------

_TYPE_NAMES: dict[type, str] = {
    bool: "boolean",
    int: "integer",
    float: "float",
    str: "string",
    list: "array",
    tuple: "array",
    dict: "table",
    datetime: "datetime",
    date: "date",
    time: "time",
}


def _type_name(value: object) -> str:
    for t, name in _TYPE_NAMES.items():
        if type(value) is t:
            return name
    if isinstance(value, Mapping):
        return "table"
    return type(value).__name__


_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_HOURS_RE = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


class _PolicyReader:
    """Walks the raw config, tracking the dotted key path for error messages."""

    def __init__(self, where: str) -> None:
        self.where = where

    def error(self, key: str, message: str) -> PolicyError:
        return PolicyError(self.where, key, message)

    # -- primitives ---------------------------------------------------------

    def table(self, value: object, key: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.error(key, f"expected a table, got {_type_name(value)}")
        for k in value:
            if k not in allowed:
                raise self.error(f"{key}.{k}", f"unknown key (expected one of: {', '.join(allowed)})")
        return value

    def boolean(self, value: object, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(key, f"expected a boolean (true/false), got {_type_name(value)} {value!r}")
        return value

    def string(self, value: object, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"expected a non-empty string, got {_type_name(value)} {value!r}")
        return value.strip()

    def array(self, value: object, key: str) -> list[Any]:
        if not isinstance(value, (list, tuple)):
            raise self.error(key, f"expected an array, got {_type_name(value)}")
        return list(value)

    def duration(self, value: object, key: str, allow_zero: bool = False) -> Duration:
        if not isinstance(value, str):
            raise self.error(key, f'expected a duration string such as "30m", got {_type_name(value)} {value!r}')
        try:
            d = Duration.parse(value)
        except ValueError:
            raise self.error(key, f"invalid duration {value!r}: {DURATION_HINT}") from None
        if not d and not allow_zero:
            raise self.error(key, f"duration must be greater than zero, got {value!r}")
        return d

    def day(self, value: object, key: str) -> date:
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
            raise self.error(key, f'invalid date {value!r}: expected "YYYY-MM-DD"')
        raise self.error(key, f'expected a date ("YYYY-MM-DD"), got {_type_name(value)} {value!r}')

    # -- calendar -----------------------------------------------------------

    def calendar(self, data: object, key: str) -> WorkCalendar:
        allowed = ("timezone", "country", "hours", "extra_holidays", "extra_workdays", "holidays_file")
        t = self.table(data, key, allowed)
        tz = "Asia/Shanghai"
        if "timezone" in t:
            tz = self.string(t["timezone"], f"{key}.timezone")
            try:
                load_zone(tz)
            except ValueError:
                raise self.error(f"{key}.timezone", f"unknown timezone {tz!r} (expected an IANA name such as \"Asia/Shanghai\")") from None
        country = "CN"
        if "country" in t:
            country = self.string(t["country"], f"{key}.country").upper()
        hours: Mapping[int, tuple[tuple[time, time], ...]] = DEFAULT_HOURS
        if "hours" in t:
            hours = self.hours(t["hours"], f"{key}.hours")
        extra = {}
        for name in ("extra_holidays", "extra_workdays"):
            values = self.array(t.get(name, []), f"{key}.{name}")
            extra[name] = [self.day(v, f"{key}.{name}[{i}]") for i, v in enumerate(values)]
        both = set(extra["extra_holidays"]) & set(extra["extra_workdays"])
        if both:
            listed = ", ".join(sorted(d.isoformat() for d in both))
            raise self.error(f"{key}.extra_workdays", f"dates also listed in extra_holidays: {listed}")
        official = self.holidays_files(t["holidays_file"], f"{key}.holidays_file") if "holidays_file" in t else None
        try:
            return WorkCalendar(tz=tz, hours=hours, country=country, official=official, **extra)
        except ValueError as exc:
            bad_key = f"{key}.country" if "country" in str(exc) else key
            raise self.error(bad_key, str(exc)) from None

    def holidays_files(self, value: object, key: str) -> OfficialSchedule:
        """``holidays_file``: one file or a list, relative to the configuration file's folder."""
        names = value if isinstance(value, list) else [value]
        paths = [Path(self.string(v, key if len(names) == 1 else f"{key}[{i}]")) for i, v in enumerate(names)]
        config = Path(self.where)
        base = config.parent if config.is_file() else Path.cwd()
        try:
            return holiday_file.load(p if p.is_absolute() else base / p for p in paths)
        except holiday_file.HolidayFileError as exc:
            raise self.error(key, str(exc)) from None

    def hours(self, data: object, key: str) -> dict[int, tuple[tuple[time, time], ...]]:
        t = self.table(data, key, _DAY_KEYS)
        out: dict[int, tuple[tuple[time, time], ...]] = {}
        for weekday, day_key in enumerate(_DAY_KEYS):
            intervals: list[tuple[time, time]] = []
            for i, item in enumerate(self.array(t.get(day_key, []), f"{key}.{day_key}")):
                item_key = f"{key}.{day_key}[{i}]"
                start, end = self.interval(item, item_key)
                if intervals and _minutes(start) < _minutes(intervals[-1][1], end_of_day=True):
                    raise self.error(item_key, f"{item!r} overlaps or precedes the previous interval (list them in order)")
                intervals.append((start, end))
            out[weekday] = tuple(intervals)
        return out

    def interval(self, value: object, key: str) -> tuple[time, time]:
        hint = 'expected "HH:MM-HH:MM" such as "09:00-12:00" (end may be "24:00")'
        if not isinstance(value, str):
            raise self.error(key, f"{hint}, got {_type_name(value)} {value!r}")
        m = _HOURS_RE.match(value.strip())
        if not m:
            raise self.error(key, f"invalid interval {value!r}: {hint}")
        h1, m1, h2, m2 = (int(x) for x in m.groups())
        if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
            raise self.error(key, f"invalid interval {value!r}: {hint}")
        start, end = time(h1, m1), time(0) if h2 == 24 else time(h2, m2)
        if _minutes(end, end_of_day=True) <= _minutes(start):
            raise self.error(key, f"invalid interval {value!r}: ends before it starts")
        return start, end

    # -- priorities ---------------------------------------------------------

    def priority(self, data: object, key: str, base: PriorityPolicy, cal: WorkCalendar) -> PriorityPolicy:
        allowed = ("working_time", "first_response", "status_update_every", "resolution", "escalation", "followups")
        t = self.table(data, key, allowed)
        changes: dict[str, Any] = {}
        if "working_time" in t:
            changes["working_time"] = self.boolean(t["working_time"], f"{key}.working_time")
        if "first_response" in t:
            changes["first_response"] = self.duration(t["first_response"], f"{key}.first_response")
        if "status_update_every" in t:
            value = t["status_update_every"]
            k = f"{key}.status_update_every"
            changes["status_update_every"] = None if value is False or value == "none" else self.duration(value, k)
        if "resolution" in t:
            changes["resolution"] = self.resolution(t["resolution"], f"{key}.resolution")
        if "escalation" in t:
            changes["escalation"] = self.escalation(t["escalation"], f"{key}.escalation", cal)
        if "followups" in t:
            changes["followups"] = self.increasing_durations(t["followups"], f"{key}.followups", cal)
        return replace(base, **changes)

    def resolution(self, data: object, key: str) -> Mapping[str, Duration]:
        if not isinstance(data, Mapping):
            raise self.error(key, f"expected a table of target = duration, got {_type_name(data)}")
        out: dict[str, Duration] = {}
        for name, value in data.items():
            if not isinstance(name, str) or not _NAME_RE.match(name):
                raise self.error(f"{key}.{name}", "target names must be lower_case_words such as root_cause")
            out[name] = self.duration(value, f"{key}.{name}")
        return MappingProxyType(out)

    def escalation(self, data: object, key: str, cal: WorkCalendar) -> tuple[EscalationStep, ...]:
        steps: list[EscalationStep] = []
        for i, item in enumerate(self.array(data, key)):
            item_key = f"{key}[{i}]"
            t = self.table(item, item_key, ("after", "role"))
            for required in ("after", "role"):
                if required not in t:
                    raise self.error(f"{item_key}.{required}", "missing key (each step needs after and role)")
            step = EscalationStep(
                after=self.duration(t["after"], f"{item_key}.after"),
                role=self.string(t["role"], f"{item_key}.role"),
            )
            if steps and step.after.nominal(cal) <= steps[-1].after.nominal(cal):
                raise self.error(
                    f"{item_key}.after",
                    f"escalation steps must be strictly increasing: {step.after} is not after {steps[-1].after}",
                )
            steps.append(step)
        return tuple(steps)

    def increasing_durations(self, data: object, key: str, cal: WorkCalendar) -> tuple[Duration, ...]:
        out: list[Duration] = []
        for i, value in enumerate(self.array(data, key)):
            d = self.duration(value, f"{key}[{i}]")
            if out and d.nominal(cal) <= out[-1].nominal(cal):
                raise self.error(f"{key}[{i}]", f"must be strictly increasing: {d} is not after {out[-1]}")
            out.append(d)
        return tuple(out)

    # -- whole policy -------------------------------------------------------

    def complaint(self, data: object, key: str, cal: WorkCalendar) -> ComplaintPolicy:
        t = self.table(data, key, ("respond", "plan", "close", "working_time"))
        changes: dict[str, Any] = {}
        for name in ("respond", "plan", "close"):
            if name in t:
                changes[name] = self.duration(t[name], f"{key}.{name}")
        if "working_time" in t:
            changes["working_time"] = self.boolean(t["working_time"], f"{key}.working_time")
        result = replace(ComplaintPolicy(), **changes)
        if not result.respond.nominal(cal) <= result.plan.nominal(cal) <= result.close.nominal(cal):
            raise self.error(key, f"expected respond <= plan <= close, got {result.respond}, {result.plan}, {result.close}")
        return result

    def kinds(self, data: object, key: str) -> Mapping[str, KindPolicy]:
        t = self.table(data, key, tuple(data) if isinstance(data, Mapping) else ())
        out = dict(_DEFAULT_KINDS)
        allowed = ("categories", "routes", "number_format", "queue", "fault_sla", "complaint", "respond")
        for name, value in t.items():
            k = f"{key}.{name}"
            if not isinstance(name, str) or not re.match(r"^[a-z][a-z0-9_-]*$", name):
                raise self.error(k, "kind names must be lower-case words such as feature")
            item = self.table(value, k, allowed)
            base = out.get(name, KindPolicy(name))
            changes: dict[str, Any] = {}
            for lst in ("categories", "routes"):
                if lst in item:
                    changes[lst] = tuple(self.string(v, f"{k}.{lst}[{i}]")
                                         for i, v in enumerate(self.array(item[lst], f"{k}.{lst}")))
            if "number_format" in item:
                fmt = self.string(item["number_format"], f"{k}.number_format")
                try:
                    fmt.format(year=2026, month=1, seq=1)
                except (KeyError, ValueError, IndexError) as exc:
                    raise self.error(f"{k}.number_format", f"cannot format ({exc}); use {{year}}, {{month}}, {{seq}}") from None
                if "{seq" not in fmt:
                    raise self.error(f"{k}.number_format", "must contain {seq}")
                changes["number_format"] = fmt
            if "queue" in item:
                changes["queue"] = self.string(item["queue"], f"{k}.queue")
            for flag in ("fault_sla", "complaint"):
                if flag in item:
                    changes[flag] = self.boolean(item[flag], f"{k}.{flag}")
            if "respond" in item:
                changes["respond"] = self.duration(item["respond"], f"{k}.respond")
            out[name] = replace(base, **changes)
        # The catch-all comes last, whatever order the file gives.
        fault = out.pop(FAULT, KindPolicy(FAULT))
        out[FAULT] = fault
        return MappingProxyType(out)

    def policy(self, data: object) -> Policy:
        key = "policy"
        allowed = (*PRIORITIES, "calendar", "complaint", "close_after_silence", "reopen_window", "survey_on_close",
                   "kinds", "followup_min_gap", "resolution_role", "contract_levels")
        t = self.table(data, key, allowed)
        cal = self.calendar(t["calendar"], f"{key}.calendar") if "calendar" in t else WorkCalendar()
        priorities = dict(_DEFAULT_PRIORITIES)
        for p in PRIORITIES:
            if p in t:
                priorities[p] = self.priority(t[p], f"{key}.{p}", priorities[p], cal)
        changes: dict[str, Any] = {"calendar": cal, "priorities": MappingProxyType(priorities)}
        if "complaint" in t:
            changes["complaint"] = self.complaint(t["complaint"], f"{key}.complaint", cal)
        if "close_after_silence" in t:
            changes["close_after_silence"] = self.duration(t["close_after_silence"], f"{key}.close_after_silence")
        if "reopen_window" in t:
            changes["reopen_window"] = self.duration(t["reopen_window"], f"{key}.reopen_window", allow_zero=True)
        if "survey_on_close" in t:
            changes["survey_on_close"] = self.boolean(t["survey_on_close"], f"{key}.survey_on_close")
        if "kinds" in t:
            changes["kinds"] = self.kinds(t["kinds"], f"{key}.kinds")
        if "followup_min_gap" in t:
            changes["followup_min_gap"] = self.duration(t["followup_min_gap"], f"{key}.followup_min_gap",
                                                        allow_zero=True)
        if "resolution_role" in t:
            changes["resolution_role"] = self.string(t["resolution_role"], f"{key}.resolution_role")
        if "contract_levels" in t:
            changes["contract_levels"] = self.contract_levels(t["contract_levels"], f"{key}.contract_levels",
                                                              priorities, cal)
        return Policy(**changes)

    def contract_levels(self, data: object, key: str, base: Mapping[str, PriorityPolicy],
                        cal: WorkCalendar) -> Mapping[str, Mapping[str, PriorityPolicy]]:
        """``[policy.contract_levels.<level>.P2]``: per level, priorities merged over the policy's."""
        if not isinstance(data, Mapping):
            raise self.error(key, f"expected a table of contract levels, got {_type_name(data)}")
        out: dict[str, Mapping[str, PriorityPolicy]] = {}
        for level, item in data.items():
            t = self.table(item, f"{key}.{level}", PRIORITIES)
            out[str(level).lower()] = MappingProxyType(
                {p: self.priority(t[p], f"{key}.{level}.{p}", base[p], cal) for p in PRIORITIES if p in t})
        return MappingProxyType(out)


def _minutes(t: time, end_of_day: bool = False) -> int:
    """Minutes since midnight; an end of 00:00 means 24:00."""
    m = t.hour * 60 + t.minute
    return 1440 if end_of_day and m == 0 else m


def calendar_from_dict(data: Mapping[str, Any], where: str, key: str = "policy.calendar") -> WorkCalendar:
    """Build a :class:`WorkCalendar` from a config table, with the same error messages as the policy."""
    return _PolicyReader(where).calendar(data, key)
