"""Case timers: planning the notices a case is owed, and claiming due ones.

A timer row (``case_timer``) is one promised notice: "escalate to the
support supervisor at 21:00", "ask for confirmation", "follow up on day 3".
Rows are planned from the SLA policy when a case enters a phase (opened,
resolved, handed to a vendor) and handled once by a sweep. Exactly-once is
carried by the database, not by the process:

* planning inserts under the unique key (case, kind, cycle, step) inside a
  savepoint, so a second daemon planning the same case gets an
  ``IntegrityError`` and moves on;
* sweeps claim due rows with ``SELECT ... FOR UPDATE SKIP LOCKED`` and mark
  them done in the same transaction that queues the mail, so a row is
  either handled and its mail queued, or neither.
SQLite serialises writers with ``BEGIN IMMEDIATE``, which gives the same.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from .policy import Policy
from ...storage import timers as store
from ...storage.models import Case, CaseTimer

# Case states (the lifecycle, daemon/timekeeping/lifecycle.py, owns which timers each state keeps).
UNRESOLVED = ("new", "open", "pending", "pending-vendor")
AFTER_RESOLUTION = ("resolved", "closed")

# Timer kinds.
FIRST_RESPONSE = "first_response"
ESCALATION = "escalation"
STATUS_UPDATE = "status_update"
COMPLAINT = "complaint"
CONFIRM = "confirm"
AUTO_CLOSE = "auto_close"
FOLLOWUP = "followup"
VENDOR_REMINDER = "vendor_reminder"
OPEN_PHASE = (FIRST_RESPONSE, ESCALATION, STATUS_UPDATE, COMPLAINT)
RESOLUTION_PHASE = (CONFIRM, AUTO_CLOSE, FOLLOWUP)

COMPLAINT_STEPS = ("respond", "plan", "close")


def add_timer(
    session: Session,
    case: Case,
    kind: str,
    *,
    step: int,
    anchor_at: datetime,
    due_at: datetime,
    cycle: int = 0,
    detail: dict[str, Any] | None = None,
    new_case: bool = False,
) -> CaseTimer | None:
    """Insert one timer; None when another writer already planned it (or
    when it is a new case's timer, which is only buffered).

    ``new_case``: the case was opened in this transaction, so no other writer
    can plan it; the timer is a plain row written in bulk with the batch (no
    conflict to guard, no object to build: see storage/row_buffer.py).
    """
    encoded = json.dumps(detail, ensure_ascii=False) if detail is not None else None
    if new_case:
        store.buffer_new_case_timer(session, case, kind=kind, cycle=cycle, step=step, anchor_at=anchor_at,
                                    due_at=due_at, detail=encoded)
        return None
    timer = CaseTimer(kind=kind, cycle=cycle, step=step, anchor_at=anchor_at, due_at=due_at, detail=encoded)
    timer.case_id = case.id
    return timer if store.insert_timer(session, timer) else None


def detail_of(timer: CaseTimer) -> dict[str, Any]:
    return json.loads(timer.detail) if timer.detail else {}


def finish(timer: CaseTimer, now: datetime, outcome: str, **detail: Any) -> None:
    """Mark a timer handled; ``outcome`` is "sent", "skipped:<why>" or "cancelled"."""
    timer.done_at = now
    timer.outcome = outcome[:40]
    if detail:
        merged = detail_of(timer)
        merged.update(detail)
        timer.detail = json.dumps(merged, ensure_ascii=False, default=str)


def finish_notice(timer: CaseTimer, now: datetime, sent_to: str | None) -> None:
    """Mark a notice to the customer handled: the address it went to (the timeline shows it), or suppressed."""
    if sent_to:
        finish(timer, now, "sent", to=sent_to)
    else:
        finish(timer, now, "skipped:suppressed")


# ---------------------------------------------------------------- planning


def next_cycle(session: Session, case: Case) -> int:
    """The number of the next resolution round of ``case`` (0 for the first)."""
    last = store.highest(session, case, CONFIRM, "cycle")
    return 0 if last is None else last + 1


def plan_status_update(session: Session, policy: Policy, case: Case, since: datetime) -> CaseTimer | None:
    """The next status update of a case, ``cadence`` after ``since``."""
    due = policy.next_status_update(case.priority, since)
    if due is None:
        return None
    last = store.highest(session, case, STATUS_UPDATE, "step")
    return add_timer(session, case, STATUS_UPDATE, step=(last or 0) + 1, anchor_at=since, due_at=due,
                     detail={"to": "customer", "reason": status_update_reason(policy, case.priority)})


def status_update_reason(policy: Policy, priority: str) -> str:
    """Why a status update is owed, as the timeline shows it ("P1 status update every 1h (7x24)")."""
    pp = policy.priority(priority)
    return f"{priority} status update every {pp.status_update_every} ({'working time' if pp.working_time else '7x24'})"


def cancel_pending(session: Session, case: Case, kinds: Iterable[str], now: datetime, why: str) -> int:
    """Close the pending timers of ``kinds`` without sending (e.g. on reopen)."""
    n = 0
    for timer in store.pending_timers(session, case, list(kinds)):
        finish(timer, now, f"cancelled:{why}")
        n += 1
    return n


def pending(session: Session, case: Case, kind: str) -> list[CaseTimer]:
    return store.pending_timers(session, case, [kind])


# ---------------------------------------------------------------- sweeps' queries


def cases_needing_open_plan(session: Session, limit: int) -> list[Case]:
    """Unresolved cases whose plan has not started (just opened, or older than this code).

    Any timer of the open phase is the mark: a case answered before the first
    sweep owes no first response, and must not be planned again at every sweep."""
    return store.cases_without(session, UNRESOLVED, OPEN_PHASE, limit)


def cases_needing_resolution_plan(session: Session, limit: int) -> list[Case]:
    """Resolved (or closed) cases whose current resolution has no confirmation timer."""
    return store.resolved_cases_without(session, AFTER_RESOLUTION, CONFIRM, limit)


def claim_due(session: Session, now: datetime, limit: int) -> list[CaseTimer]:
    """Due, unhandled timers, locked for this transaction (others skip them)."""
    return store.claim_due(session, now, limit)


def newest_sent(session: Session, case: Case, kinds: Iterable[str]) -> CaseTimer | None:
    return store.newest_sent(session, case, list(kinds))


def unfinished_cases(session: Session, limit: int, after_id: int = 0) -> list[Case]:
    """Cases not yet closed (ids above ``after_id``), locked for re-planning."""
    return store.cases_in(session, ("new", "open", "pending", "pending-vendor", "resolved"), limit, after_id)
