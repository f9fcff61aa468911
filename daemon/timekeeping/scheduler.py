"""The clock of the service desk: sweeps that turn due timers into notices.

``casegate run`` runs the sweeps on an APScheduler interval trigger, as one
of its loops (daemon/runtime/runner.py, daemon/runtime/periodic.py). A sweep
holds no state of its own: it reads due work from the database
(``case_timer`` rows, see daemon/timekeeping/timers.py), so a restarted daemon, or a
second daemon on the same PostgreSQL, simply picks up where things are. As
APScheduler's FAQ warns, job stores cannot be shared between processes;
there is none: the sharing happens in our own tables.

A missed run (daemon suspended, database down) is caught up once: missed
fire times fold into one run, and a run later than ``misfire_grace`` is
skipped. A failing sweep is logged and retried with backoff; it never stops
the daemon.

``run_sweeps(desk, db, now)`` is the whole job, callable from tests with any
``now``: no sleeping, no wall clock. Its settings are ``[scheduler]``
(daemon/timekeeping/settings.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy.orm import Session

from . import aftercare, lifecycle, sla, timers, vendors
from .customers import send_due_customer_reports
from .desk import Desk
from ...storage import repository as repo
from ...storage import timers as store
from ...storage.db import Database
from ...storage.models import Case, CaseTimer

log = logging.getLogger("casegate.scheduler")

Handler = Callable[[Session, Desk, CaseTimer, Case, datetime], None]

# What each timer kind means when it falls due: a data table, not code.
HANDLERS: dict[str, Handler] = {
    timers.FIRST_RESPONSE: sla.handle_first_response,
    timers.ESCALATION: sla.handle_escalation,
    timers.STATUS_UPDATE: sla.handle_status_update,
    timers.COMPLAINT: sla.handle_complaint,
    lifecycle.RESOLUTION: sla.handle_resolution,
    timers.CONFIRM: aftercare.handle_confirm,
    timers.AUTO_CLOSE: aftercare.handle_auto_close,
    timers.FOLLOWUP: aftercare.handle_followup,
    timers.VENDOR_REMINDER: vendors.handle_reminder,
}


@dataclass
class SweepReport:
    planned: int = 0
    handled: dict[str, int] = field(default_factory=dict)
    failed: int = 0

    @property
    def total(self) -> int:
        return sum(self.handled.values())

    def __str__(self) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.handled.items())) or "nothing due"
        return f"planned {self.planned}; handled {kinds}; failed {self.failed}"


#: Planning rounds (of ``batch`` cases, one transaction each) in one sweep.
MAX_PLAN_ROUNDS = 100


def _plan(desk: Desk, db: Database, now: datetime, batch: int, report: SweepReport) -> None:
    """Give cases that have no plan yet their timers (the lifecycle plans every
    later change itself; this catches new cases and ones older than this code)."""
    # One transaction per batch, until the backlog is planned: at hundreds of
    # new cases a second, one batch per sweep would leave cases unplanned (no
    # first-response clock) for many minutes. Bounded, and a round that adds
    # nothing ends it, so cases that owe nothing cannot make it spin.
    for _ in range(MAX_PLAN_ROUNDS):
        with db.transaction() as s:
            cases = timers.cases_needing_open_plan(s, batch)
            added = sum(len(lifecycle.ensure_planned(s, desk.policy, case, now)["added"]) for case in cases)
        report.planned += added
        if len(cases) < batch or not added:
            break
    with db.transaction() as s:
        for case in timers.cases_needing_resolution_plan(s, batch):
            report.planned += len(lifecycle.replan(s, desk.policy, case, now, cause="resolved")["added"])


def replan_open_cases(desk: Desk, db: Database, now: datetime, *, batch: int = 500) -> int:
    """Re-plan every unfinished case against ``desk.policy``, batch by batch; how many changed."""
    changed, after = 0, 0
    while True:
        with db.transaction() as s:
            cases = timers.unfinished_cases(s, batch, after)
            for case in cases:
                result = lifecycle.replan(s, desk.policy, case, now, cause="policy")
                changed += int(bool(result["added"] or result["cancelled"]))
            after = cases[-1].id if cases else after
        if len(cases) < batch:
            return changed


def replan_if_policy_changed(desk: Desk, db: Database, now: datetime) -> int | None:
    """At start: re-plan the open cases when the policy in force is not the one
    they were planned under (None: it is, nothing to do). Re-planning every
    open case at every start made a start of a large desk take minutes."""
    fingerprint = f"{desk.policy.fingerprint()}/{lifecycle.PLANNING_REVISION}"
    with db.transaction() as s:
        if store.policy_in_force(s) == fingerprint:
            return None
    changed = replan_open_cases(desk, db, now)
    with db.transaction() as s:
        repo.add_event(s, None, now, "system", store.POLICY_IN_FORCE, new=fingerprint)
    return changed


def _handle_batch(desk: Desk, db: Database, now: datetime, batch: int, report: SweepReport) -> int:
    """Claim up to ``batch`` due timers and handle each in a savepoint of one transaction."""
    with db.transaction() as s:
        claimed = timers.claim_due(s, now, batch)
        for timer in claimed:
            handler = HANDLERS.get(timer.kind)
            try:
                with s.begin_nested():
                    case = s.get(Case, timer.case_id)
                    if handler is None or case is None:
                        timers.finish(timer, now, "skipped:unknown-kind" if handler is None else "skipped:no-case")
                    else:  # a case under a contract level with targets of its own is handled by them
                        policy = desk.policy.for_contract(case.contract_level)
                        handler(s, desk if policy is desk.policy else replace(desk, policy=policy), timer, case, now)
            except Exception:
                # One broken timer must not block the others: it is parked
                # as failed (with the traceback in the log) and the sweep goes on.
                log.exception("timer %s (%s step %s) of case %s failed", timer.id, timer.kind, timer.step,
                              timer.case_id)
                timers.finish(timer, now, "failed")
                report.failed += 1
                continue
            if timer.done_at is not None:
                report.handled[timer.kind] = report.handled.get(timer.kind, 0) + 1
        return len(claimed)


def run_sweeps(desk: Desk, db: Database, now: datetime, *, batch: int | None = None) -> SweepReport:
    """Plan timers for cases that need them, then handle everything due at ``now``.

    Safe to run concurrently in several processes or threads: planning is
    guarded by the timers' unique key, handling by row locks (SKIP LOCKED).
    """
    batch = batch or desk.settings.batch_size
    report = SweepReport()
    _plan(desk, db, now, batch, report)
    for _ in range(1000):  # bounded: a handler that keeps rescheduling cannot spin forever
        if _handle_batch(desk, db, now, batch, report) < batch:
            break
    # Handling can create work due at once (a reopened case, a new resolution).
    _plan(desk, db, now, batch, report)
    _handle_batch(desk, db, now, batch, report)
    if desk.customer_reports:  # each customer's quarterly statistics, once, on the quarter's first working day
        with db.transaction() as s:
            sent = send_due_customer_reports(s, desk.notifier, desk.policy, now, tz=desk.service.timezone,
                                             default_language=desk.service.default_language,
                                             complaint_category=desk.settings.complaint_category)
        if sent:
            report.handled["customer-report"] = sent
    return report
