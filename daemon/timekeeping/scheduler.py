"""The clock of the service desk: sweeps that turn due timers into notices.

APScheduler 3 runs one interval job inside ``casegate run``. The job does
not hold any state of its own: every sweep reads due work from the database
(``case_timer`` rows, see daemon/timekeeping/timers.py), so a restarted daemon, or a
second daemon on the same PostgreSQL, simply picks up where things are. As
APScheduler's FAQ warns, job stores cannot be shared between processes;
ours is a plain in-memory store and the sharing happens in our own tables.

A missed run (daemon suspended, database down) is caught up once:
``coalesce=True`` folds the backlog into one run and ``misfire_grace_time``
lets a late run still happen. A failing sweep is logged and the next run
tries again; it never stops the scheduler.

``run_sweeps(app, now)`` is the whole job, callable from tests with any
``now``: no sleeping, no wall clock.

Config (``[scheduler]``, all optional)::

    [scheduler]
    enabled = true
    interval = "60s"         # how often due work is looked for
    misfire_grace = "10m"    # a run this late still happens (once)
    batch_size = 100         # timers handled per transaction
    complaint_role = "support-supervisor"    # who hears of a missed complaint deadline
    complaint_category = "complaint"         # cases of this category get complaint deadlines
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from . import aftercare, sla, timers, vendors
from ..config import ConfigError
from ..durations import DurationError, parse_duration
from ...storage.models import Case, CaseTimer

log = logging.getLogger("casegate.scheduler")

Handler = Callable[[Session, Any, CaseTimer, Case, datetime], None]

# What each timer kind means when it falls due: a data table, not code.
HANDLERS: dict[str, Handler] = {
    timers.FIRST_RESPONSE: sla.handle_first_response,
    timers.ESCALATION: sla.handle_escalation,
    timers.STATUS_UPDATE: sla.handle_status_update,
    timers.COMPLAINT: sla.handle_complaint,
    timers.CONFIRM: aftercare.handle_confirm,
    timers.AUTO_CLOSE: aftercare.handle_auto_close,
    timers.FOLLOWUP: aftercare.handle_followup,
    timers.VENDOR_REMINDER: vendors.handle_reminder,
}


@dataclass(frozen=True)
class SchedulerConfig:
    enabled: bool = True
    interval: timedelta = timedelta(seconds=60)
    misfire_grace: timedelta = timedelta(minutes=10)
    batch_size: int = 100
    complaint_role: str = "support-supervisor"
    complaint_category: str = "complaint"

    @classmethod
    def from_config(cls, config: Any) -> SchedulerConfig:
        file = str(config.path) if config.path else "<defaults>"
        data = config.extra.get("scheduler", {})
        if not isinstance(data, dict):
            raise ConfigError(f"{file}: scheduler: expected a table")
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            where = f"{file}: scheduler.{key}"
            if key in ("interval", "misfire_grace"):
                try:
                    kwargs[key] = parse_duration(value) if isinstance(value, str) else timedelta(seconds=value)
                except (DurationError, TypeError) as exc:
                    raise ConfigError(f"{where}: {exc}") from None
            elif key == "enabled" and isinstance(value, bool):
                kwargs[key] = value
            elif key == "batch_size" and isinstance(value, int) and not isinstance(value, bool) and value > 0:
                kwargs[key] = value
            elif key in ("complaint_role", "complaint_category") and isinstance(value, str) and value:
                kwargs[key] = value
            else:
                raise ConfigError(f"{where}: unknown key or wrong type ({value!r})")
        return cls(**kwargs)


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


def _plan(app: Any, now: datetime, batch: int, report: SweepReport) -> None:
    """Give new, resolved and re-opened cases their timers (one transaction per query)."""
    complaint = SchedulerConfig.from_config(app.config).complaint_category
    with app.db.transaction() as s:
        for case in timers.cases_needing_open_plan(s, batch):
            report.planned += timers.plan_open(s, app.policy, case, complaint)
    with app.db.transaction() as s:
        for case in timers.cases_needing_resolution_plan(s, batch):
            report.planned += timers.plan_resolution(s, app.policy, case)
    with app.db.transaction() as s:
        for case in timers.cases_needing_update_plan(s, app.policy, batch):
            report.planned += 1 if timers.plan_status_update(s, app.policy, case, now) else 0


def _handle_batch(app: Any, now: datetime, batch: int, report: SweepReport) -> int:
    """Claim up to ``batch`` due timers and handle each in a savepoint of one transaction."""
    with app.db.transaction() as s:
        claimed = timers.claim_due(s, now, batch)
        for timer in claimed:
            handler = HANDLERS.get(timer.kind)
            try:
                with s.begin_nested():
                    case = s.get(Case, timer.case_id)
                    if handler is None or case is None:
                        timers.finish(timer, now, "skipped:unknown-kind" if handler is None else "skipped:no-case")
                    else:
                        handler(s, app, timer, case, now)
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


def run_sweeps(app: Any, now: datetime | None = None, *, batch: int | None = None) -> SweepReport:
    """Plan timers for cases that need them, then handle everything due at ``now``.

    Safe to run concurrently in several processes or threads: planning is
    guarded by the timers' unique key, handling by row locks (SKIP LOCKED).
    """
    now = now or app.clock()
    batch = batch or SchedulerConfig.from_config(app.config).batch_size
    report = SweepReport()
    _plan(app, now, batch, report)
    for _ in range(1000):  # bounded: a handler that keeps rescheduling cannot spin forever
        if _handle_batch(app, now, batch, report) < batch:
            break
    # Handling can create work due at once (a reopened case, a new resolution).
    _plan(app, now, batch, report)
    _handle_batch(app, now, batch, report)
    return report


# ---------------------------------------------------------------- in the daemon


def install(app: Any) -> None:
    """Plug the timekeeping hooks into the app's pipeline and the ``#vendor`` command."""
    care = aftercare.Aftercare(app)
    mail = vendors.VendorMail(app)
    SchedulerConfig.from_config(app.config)  # refuse a bad [scheduler] table at start
    vendors.directory(app)  # likewise [[vendors]]
    app.pipeline.not_customer.append(mail.not_customer)
    app.pipeline.keep_closed.append(care.keep_closed)
    app.pipeline.after_store.append(mail.after_store)
    app.pipeline.after_store.append(care.after_store)
    vendors.install_handoff(app)


async def start(daemon: Any) -> None:
    """``Daemon.extra_tasks`` entry: run the sweeps on an APScheduler interval job."""
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    cfg = SchedulerConfig.from_config(daemon.config)
    if not cfg.enabled:
        log.info("scheduler disabled by configuration")
        return
    app = daemon.app
    running = asyncio.Lock()

    async def tick() -> None:
        if running.locked():
            return
        async with running:
            try:
                report = await asyncio.to_thread(run_sweeps, app, app.clock())
            except Exception:
                log.exception("sweep failed; the next run tries again")
                return
            if report.total or report.failed:
                log.info("sweep: %s", report)
                daemon.outbox_wake.set()

    scheduler = AsyncIOScheduler(timezone=app.policy.calendar.timezone)
    scheduler.add_job(
        tick, "interval", seconds=cfg.interval.total_seconds(), id="sweeps", coalesce=True, max_instances=1,
        misfire_grace_time=int(cfg.misfire_grace.total_seconds()), next_run_time=datetime.now(app.policy.calendar.tz),
    )
    scheduler.start()
    log.info("scheduler running: sweeps every %s", cfg.interval)
    try:
        await daemon.stop_event.wait()
    finally:
        scheduler.shutdown(wait=False)
