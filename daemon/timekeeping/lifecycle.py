"""The case lifecycle: states, the events that move a case between them, who
may cause each, and the timers each state owns.

States::

    new ──respond──▶ open ◀──work── pending (customer) / pending-vendor
     │                │  ▲                     ▲
     └──── resolve ───┴──┼── wait-customer / wait-vendor
                      ▼  │
                  resolved ──close──▶ closed
                      └──── reopen ◀───┘        (reopened is an event: the round restarts)

Every transition, and every change of priority, assignee or policy, re-plans
the case's pending timers from one function (``replan``): what the new state,
priority and kind owe is computed from the policy (``plan``, pure, also the
admin's dry run ``casegate policy plan``), what is pending and no longer owed
is cancelled, what is owed and missing is added, and the difference is
recorded on the case as a ``replanned`` event.

A *round* starts when the case opens and again at each reopen: first
response, escalation, complaint deadlines and resolution targets count from
the round's start. Escalation steps that are already overdue when a change
makes them owed (a P3 raised to P1 after three hours) fold into one notice,
due now, to the highest of them; a role already told in this round is not
told again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from . import timers
from .policy import KindPolicy, Policy
from ..directory.roles import CUSTOMER, STAFF
from ...storage import repository as repo
from ...storage import timers as store
from ...storage.models import Case, CaseTimer

NEW = "new"
OPEN = "open"
PENDING = "pending"  # waiting for the customer
PENDING_VENDOR = "pending-vendor"
RESOLVED = "resolved"
CLOSED = "closed"
STATES = (NEW, OPEN, PENDING, PENDING_VENDOR, RESOLVED, CLOSED)
UNRESOLVED = (NEW, OPEN, PENDING, PENDING_VENDOR)
STATE_NAMES = {PENDING: "pending customer", PENDING_VENDOR: "pending vendor"}

SYSTEM = "system"  # the scheduler and the pipeline itself

RESOLUTION = "resolution"  # a resolution target (root cause, workaround, fix ...)


class LifecycleError(ValueError):
    """A transition the lifecycle does not allow (wrong state or role)."""


@dataclass(frozen=True)
class Transition:
    event: str
    sources: tuple[str, ...]
    target: str
    roles: frozenset[str]


TRANSITIONS: tuple[Transition, ...] = (
    Transition("respond", (NEW,), OPEN, frozenset({STAFF})),
    Transition("work", (NEW, PENDING, PENDING_VENDOR), OPEN, frozenset({STAFF, CUSTOMER, SYSTEM})),
    Transition("wait-customer", (NEW, OPEN, PENDING_VENDOR), PENDING, frozenset({STAFF})),
    Transition("wait-vendor", (NEW, OPEN, PENDING), PENDING_VENDOR, frozenset({STAFF, SYSTEM})),
    Transition("resolve", UNRESOLVED, RESOLVED, frozenset({STAFF})),
    Transition("close", (RESOLVED,), CLOSED, frozenset({STAFF, CUSTOMER, SYSTEM})),
    Transition("close-unresolved", UNRESOLVED, CLOSED, frozenset({STAFF})),  # #status closed, #merge
    Transition("reopen", (RESOLVED, CLOSED), OPEN, frozenset({STAFF, CUSTOMER})),
)

# The timers each state owns; a timer of a kind its state does not own is cancelled.
_OPEN_PHASE = (timers.FIRST_RESPONSE, timers.ESCALATION, timers.COMPLAINT, RESOLUTION)
OWNS: dict[str, tuple[str, ...]] = {
    NEW: (*_OPEN_PHASE, timers.STATUS_UPDATE),
    OPEN: (*_OPEN_PHASE, timers.STATUS_UPDATE),
    # Waiting for the customer: no progress to report, the SLA still runs.
    PENDING: _OPEN_PHASE,
    # The vendor works on it: we keep the customer informed (seeds 000/002).
    PENDING_VENDOR: (*_OPEN_PHASE, timers.STATUS_UPDATE),
    RESOLVED: (timers.CONFIRM, timers.AUTO_CLOSE),
    # Follow-ups come after closing and its survey (policy.followup_times).
    CLOSED: (timers.FOLLOWUP,),
}
PLANNED_KINDS = (*_OPEN_PHASE, timers.STATUS_UPDATE, timers.CONFIRM, timers.AUTO_CLOSE, timers.FOLLOWUP)


def transition_for(event: str, state: str) -> Transition | None:
    for t in TRANSITIONS:
        if t.event == event and state in t.sources:
            return t
    return None


def event_to(current: str, target: str) -> str:
    """The lifecycle event that takes a case from ``current`` to ``target`` (for #status)."""
    if target == OPEN:
        return "reopen" if current in (RESOLVED, CLOSED) else "work"
    if target == PENDING:
        return "wait-customer"
    if target == PENDING_VENDOR:
        return "wait-vendor"
    if target == RESOLVED:
        return "resolve"
    if target == CLOSED:
        return "close" if current == RESOLVED else "close-unresolved"
    raise LifecycleError(f"no transition to {target!r}")


# ---------------------------------------------------------------- the plan (pure)

#: Raise when ``plan`` changes what it plans for the same policy: open cases
#: are then re-planned at the next start, as after a change of policy.
PLANNING_REVISION = 1


@dataclass(frozen=True)
class Facts:
    """What planning needs to know about a case, read once from the database."""

    status: str
    priority: str
    kind: KindPolicy
    opened_at: datetime
    round_start: datetime  # opening, or the last reopen
    responded_at: datetime | None = None  # first public reply in this round
    plan_at: datetime | None = None  # a complaint's plan given (#plan) in this round
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    update_since: datetime | None = None  # the status-update chain counts from here
    told_roles: frozenset[str] = frozenset()  # escalation roles already told in this round


@dataclass(frozen=True)
class Planned:
    kind: str
    step: int
    anchor: datetime
    due: datetime
    detail: dict[str, Any] = field(default_factory=dict)
    to: str = ""  # the role or address it goes to
    reason: str = ""


def plan(policy: Policy, facts: Facts, now: datetime) -> list[Planned]:
    """Every timer the case owes in its state, priority and kind."""
    owned = OWNS.get(facts.status, ())
    out: list[Planned] = []
    kind = facts.kind
    pri = facts.priority
    start = facts.round_start
    pp = policy.priority(pri)
    basis = "working time" if pp.working_time else "7x24"
    if timers.FIRST_RESPONSE in owned and facts.responded_at is None:
        if kind.fault_sla:
            due = policy.first_response_due(pri, start)
            out.append(Planned(timers.FIRST_RESPONSE, 0, start, due, to="record",
                               reason=f"{pri} first response {pp.first_response} ({basis})"))
        elif kind.respond is not None:
            due = kind.respond.after(start, policy.calendar, policy.calendar)
            out.append(Planned(timers.FIRST_RESPONSE, 0, start, due, to="record",
                               reason=f"{kind.name}: answer within {kind.respond}"))
    if timers.ESCALATION in owned and kind.fault_sla:
        overdue: list[Planned] = []
        steps = policy.escalation_steps(pri, start)
        # Escalation goes up level by level: once a level was told in this round,
        # the levels below it are passed (a folded notice covers them).
        passed = max((i for i, (_, role) in enumerate(steps, start=1) if role in facts.told_roles), default=0)
        for i, (due, role) in enumerate(steps, start=1):
            if i <= passed:
                continue
            p = Planned(timers.ESCALATION, i, start, due, {"role": role}, to=role,
                        reason=f"{pri} unresolved after {pp.escalation[i - 1].after} ({basis})")
            (overdue if due < now else out).append(p)
        if overdue:  # fold the overdue steps into one notice, now, to the highest of them
            top = overdue[-1]
            out.append(Planned(top.kind, top.step, start, now, top.detail, to=top.to,
                               reason=top.reason + "; overdue when planned"))
    if timers.STATUS_UPDATE in owned and kind.fault_sla:
        since = facts.update_since or start
        due = policy.next_status_update(pri, since)
        if due is not None:
            out.append(Planned(timers.STATUS_UPDATE, 0, since, due, to="customer",
                               reason=timers.status_update_reason(policy, pri)))
    if timers.COMPLAINT in owned and kind.complaint:
        for i, (name, due) in enumerate(policy.complaint_deadlines(start).items()):
            if (name == "respond" and facts.responded_at is not None) or (name == "plan" and facts.plan_at):
                continue
            out.append(Planned(timers.COMPLAINT, i, start, due, {"deadline": name}, to="complaint-role",
                               reason=f"complaint: {name} by then"))
    if RESOLUTION in owned and kind.fault_sla:
        for i, (name, due) in enumerate(policy.resolution_due(pri, start).items(), start=1):
            out.append(Planned(RESOLUTION, i, start, due, {"target": name}, to=policy.resolution_role,
                               reason=f"{pri} resolution target {name} {pp.resolution[name]}"))
    resolved = facts.resolved_at
    if resolved is not None:
        if timers.CONFIRM in owned:
            out.append(Planned(timers.CONFIRM, 0, resolved, resolved, to="customer", reason="ask to confirm the fix"))
        if timers.AUTO_CLOSE in owned:
            out.append(Planned(timers.AUTO_CLOSE, 0, resolved, policy.auto_close_at(resolved), to="record",
                               reason=f"close after {policy.close_after_silence} of silence"))
        if timers.FOLLOWUP in owned and kind.fault_sla:
            survey = facts.closed_at if facts.status == CLOSED else None
            for i, due in enumerate(policy.followup_times(pri, resolved, survey), start=1):
                out.append(Planned(timers.FOLLOWUP, i, resolved, due, to="customer",
                                   reason=f"{pri} follow-up {i} (at least {policy.followup_min_gap} apart)"))
    out.sort(key=lambda p: (p.due, p.kind, p.step))
    return out


def dry_run(policy: Policy, priority: str, opened: datetime, kind: str | None = None) -> list[Planned]:
    """The timers a case opened at ``opened`` would get (``casegate policy plan``)."""
    facts = Facts(status=NEW, priority=priority, kind=policy.kind(kind), opened_at=opened, round_start=opened)
    return plan(policy, facts, opened)


# ---------------------------------------------------------------- reading the case


def round_start(session: Session, case: Case) -> datetime:
    return store.last_event_at(session, case, ("reopened",)) or case.opened_at


def facts_of(session: Session, policy: Policy, case: Case, existing: Iterable[CaseTimer] = ()) -> Facts:
    start = round_start(session, case)
    if start == case.opened_at:
        responded = case.first_response_at
    else:
        responded = store.first_event_at(session, case, ("public-reply",), start)
    told: set[str] = set()
    update_since: datetime | None = None
    for t in existing:
        if t.kind == timers.ESCALATION and t.anchor_at == start and t.outcome == "sent":
            role = timers.detail_of(t).get("role")
            if role:
                told.add(role)
        if t.kind == timers.STATUS_UPDATE and t.done_at is None:
            update_since = t.anchor_at
    return Facts(
        status=case.status, priority=case.priority, kind=policy.kind_of(case.category, case.route),
        opened_at=case.opened_at, round_start=start, responded_at=responded,
        plan_at=store.last_event_at(session, case, ("plan-given",), start),
        resolved_at=case.resolved_at if case.status in (RESOLVED, CLOSED) else None,
        closed_at=case.closed_at, update_since=update_since, told_roles=frozenset(told),
    )


# ---------------------------------------------------------------- re-planning


_IDENT = ("role", "target", "deadline")
_BY_STEP = (timers.FIRST_RESPONSE, timers.CONFIRM, timers.AUTO_CLOSE, timers.FOLLOWUP)


def _ident(kind: str, step: int, anchor: datetime, detail: dict[str, Any]) -> tuple[str, int, datetime, str]:
    """What makes two timers the same promise: kind, round, and the step, role, target or deadline."""
    name = next((str(detail[k]) for k in _IDENT if k in detail), "")
    return kind, step if kind in _BY_STEP else 0, anchor, name


def replan(session: Session, policy: Policy, case: Case, now: datetime, *, cause: str, actor: str = SYSTEM) -> dict[str, list[str]]:
    """Bring the case's pending timers in line with what its state owes now.

    Returns what changed ({"cancelled": [...], "added": [...]}) and records it
    as a ``replanned`` event when anything did.
    """
    policy = policy.for_contract(case.contract_level)  # a gold contract's own clock
    existing = store.case_timers(session, case)
    facts = facts_of(session, policy, case, existing)
    if facts.update_since is None and cause not in ("opened",):
        facts = _with_update_since(facts, now)
    wanted = plan(policy, facts, now)
    pending = [t for t in existing if t.done_at is None and t.kind in PLANNED_KINDS]
    done = {_ident(t.kind, t.step, t.anchor_at, timers.detail_of(t)) for t in existing
            if t.done_at is not None and not (t.outcome or "").startswith("cancelled")}
    cancelled: list[str] = []
    added: list[str] = []
    keep: set[int] = set()
    for p in wanted:
        if p.kind == timers.STATUS_UPDATE:
            match = next((t for t in pending if t.kind == p.kind and t.id not in keep), None)
            if match is not None and match.due_at == p.due:
                keep.add(match.id)
                continue
            if match is not None:  # the cadence changed: same chain, new due time
                match.due_at = p.due
                keep.add(match.id)
                added.append(f"{p.kind}@{p.due.isoformat()}")
                continue
        if p.kind == timers.AUTO_CLOSE:
            match = next((t for t in pending if t.kind == p.kind and t.anchor_at == p.anchor), None)
            if match is not None:  # silence is counted from the last reply (aftercare moves it)
                keep.add(match.id)
                continue
        ident = _ident(p.kind, p.step, p.anchor, p.detail)
        match = next((t for t in pending if t.id not in keep and t.due_at == p.due
                      and _ident(t.kind, t.step, t.anchor_at, timers.detail_of(t)) == ident), None)
        if match is not None:
            keep.add(match.id)
            continue
        if ident in done and p.kind not in (timers.STATUS_UPDATE, timers.ESCALATION):
            continue  # already handled in this round (escalation: told_roles decides)
        timer = _insert(session, case, p, existing)
        if timer is not None:
            existing.append(timer)
            keep.add(timer.id)
            added.append(f"{p.kind}:{p.step}@{p.due.isoformat()}")
    for t in pending:
        if t.id not in keep:
            timers.finish(t, now, f"cancelled:{cause}"[:40])
            cancelled.append(f"{t.kind}:{t.step}@{t.due_at.isoformat()}")
    changes = {"cancelled": cancelled, "added": added}
    if cancelled or (added and cause != "opened"):
        repo.add_event(session, case, now, actor, "replanned", new=cause,
                       detail={**changes, "status": case.status, "priority": case.priority})
    return changes


def _with_update_since(facts: Facts, now: datetime) -> Facts:
    return Facts(**{**facts.__dict__, "update_since": now})


def _detail(p: Planned) -> dict[str, Any]:
    detail = dict(p.detail)
    if p.reason:
        detail["reason"] = p.reason
    if p.to:
        detail["to"] = p.to
    return detail


def _insert(session: Session, case: Case, p: Planned, existing: list[CaseTimer]) -> CaseTimer | None:
    cycle = 1 + max((t.cycle for t in existing if t.kind == p.kind and t.step == p.step), default=-1)
    return timers.add_timer(session, case, p.kind, step=p.step, cycle=cycle, anchor_at=p.anchor, due_at=p.due,
                            detail=_detail(p))


def plan_opened(session: Session, policy: Policy, case: Case) -> int:
    """Give a case opened in this transaction its timers; how many.

    Nothing needs reading back: the case has no timers, no reopen and no
    reply yet, and no other writer can see it before the commit, so the
    timers are added as plain rows of the batch (no conflict to guard). A
    sweep no longer has to find and plan each new case (a few queries and
    a savepoint per timer, more work than storing the message itself).
    """
    policy = policy.for_contract(case.contract_level)
    facts = Facts(status=case.status, priority=case.priority, kind=policy.kind_of(case.category, case.route),
                  opened_at=case.opened_at, round_start=case.opened_at)
    wanted = plan(policy, facts, case.opened_at)
    for p in wanted:
        timers.add_timer(session, case, p.kind, step=p.step, anchor_at=p.anchor, due_at=p.due, detail=_detail(p),
                         new_case=True)
    return len(wanted)


# ---------------------------------------------------------------- transitions and changes


def set_state(case: Case, status: str, now: datetime) -> None:
    """Move the case to ``status`` and keep the timestamps the reports read consistent."""
    if status in UNRESOLVED:
        case.closed_at = None
        if case.status in (RESOLVED, CLOSED):
            case.resolved_at = None
    if status == RESOLVED:
        case.resolved_at = now
        case.closed_at = None
    if status == CLOSED:
        case.resolved_at = case.resolved_at or now
        case.closed_at = now
    case.status = status
    case.updated_at = now


def transition(session: Session, policy: Policy, case: Case, event: str, now: datetime, *, actor: str, role: str,
               reason: str = "", detail: dict[str, Any] | None = None) -> str:
    """Apply one lifecycle event: check it, change the state, record it, re-plan the timers."""
    t = transition_for(event, case.status)
    if t is None:
        raise LifecycleError(f"{event} is not possible from {case.status}")
    if role not in t.roles:
        raise LifecycleError(f"a {role} may not {event} a case")
    old = case.status
    set_state(case, t.target, now)
    info: dict[str, Any] = dict(detail or {})
    if reason:
        info["reason"] = reason
    info["event"] = event
    repo.add_event(session, case, now, actor, "status", old=old, new=case.status, detail=info)
    if event == "reopen":
        repo.add_event(session, case, now, actor, "reopened", old=old, detail={"reason": reason})
    replan(session, policy, case, now, cause=event, actor=actor)
    return case.status


def change(session: Session, policy: Policy, case: Case, what: str, value: str | None, now: datetime, *,
           actor: str, detail: dict[str, Any] | None = None) -> None:
    """Change the priority or the assignee, record it, re-plan the timers."""
    if what == "priority":
        policy.priority(value)  # LookupError for an unknown one
        old, case.priority = case.priority, value or case.priority
        action = "priority"
    elif what == "assignee":
        old, case.assignee = case.assignee, value
        action = "assigned"
        if value:
            repo.note_assignment(session, value)  # the round robin counts it
    else:
        raise LifecycleError(f"cannot change {what}")
    case.updated_at = now
    repo.add_event(session, case, now, actor, action, old=old, new=value, detail=detail)
    if old != value:
        replan(session, policy, case, now, cause=f"{what}:{old}->{value}", actor=actor)


def ensure_planned(session: Session, policy: Policy, case: Case, now: datetime) -> dict[str, list[str]]:
    """Plan a case that has no timers yet (just opened, or older than this code)."""
    return replan(session, policy, case, now, cause="opened")


def timeline(session: Session, case: Case) -> list[dict[str, Any]]:
    """Every timer of the case, past and pending (``casegate cases timeline``)."""
    out = []
    for t in store.case_timers(session, case):
        d = timers.detail_of(t)
        outcome = t.outcome or ""
        state = ("pending" if t.done_at is None else "cancelled" if outcome.startswith("cancelled")
                 else "skipped" if outcome.startswith("skipped") else "done")
        to = d.get("to") or d.get("role") or ""
        if isinstance(to, list):
            to = ",".join(str(x) for x in to)
        out.append({"kind": t.kind, "step": t.step, "due": t.due_at, "state": state, "to": str(to),
                    "reason": d.get("reason") or outcome, "outcome": outcome})
    return out


def planned_as_dicts(items: Iterable[Planned]) -> list[dict[str, Any]]:
    return [{"kind": p.kind, "step": p.step, "due": p.due, "state": "pending", "to": p.to, "reason": p.reason}
            for p in items]


def dump(rows: list[dict[str, Any]], tz: str) -> str:
    """Rows as JSON with due times in ISO 8601 with the service zone's offset."""
    from_zone = [{**r, "due": _iso(r["due"], tz)} for r in rows]
    return json.dumps(from_zone, ensure_ascii=False, indent=2)


def _iso(dt: datetime, tz: str) -> str:
    return dt.astimezone(ZoneInfo(tz)).isoformat(timespec="minutes")


def record(session: Session, policy: Policy, case: Case, what: str, value: str | None, extra: str | None,
           now: datetime, *, actor: str, detail: dict[str, Any] | None = None) -> None:
    """What an engineer records without changing the state: the expected time
    (``#eta``, shown in status updates), a complaint's plan (``#plan``, meets the
    plan deadline) and support activities (calls, on-site visits, equipment
    status) with the time they took."""
    info = dict(detail or {})
    if what == "eta":
        repo.add_event(session, case, now, actor, "eta", new=value, detail=info)
    elif what == "plan":
        repo.add_event(session, case, now, actor, "plan-given", new=(value or "")[:2000], detail=info)
        replan(session, policy, case, now, cause="plan-given", actor=actor)
    else:
        info.update({"activity": what, "minutes": int(extra or 0)})
        repo.add_event(session, case, now, actor, "activity", new=(value or "")[:2000], detail=info)
