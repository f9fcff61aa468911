"""`casegate run`: one process running every source, the outbox and the sweeps.

Every loop is a ``Periodic`` (runtime/periodic.py) in a thread of its own:
the IMAP and spool sources, the outbox sender (woken as soon as a source has
committed), the rule-folder check, the systemd watchdog and the SLA sweeps.
The SMTP/LMTP listeners are aiosmtpd servers in the asyncio loop, which also
takes the signals. SIGTERM/SIGINT stop cleanly: listeners close, each loop
finishes the step in hand (an IMAP batch is stored and moved) and the
process exits 0 within ``STOP_TIMEOUT``. SIGHUP re-reads the configuration
and applies what is safe to change live (log level, outgoing relay); source
changes need a restart and are logged.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from dataclasses import replace
from datetime import timezone

from apscheduler.triggers.interval import IntervalTrigger

from . import systemd
from .app import App
from .health import DatabaseCollector, MetricsConfig, OpsServer
from .mailer import make_transport
from .memory import TRIM_EVERY, trim_heap
from .periodic import Every, OnTrigger, Periodic
from ..config import (
    Config,
    ConfigError,
    ImapSourceConfig,
    SmtpSourceConfig,
    SourceConfig,
    SpoolSourceConfig,
    load_config,
)
from ..metrics import Metrics
from ..sources.imap import ImapSource
from ..sources.lease import SourceLease
from ..sources.smtp import start_listener
from ..sources.spool import SpoolSource
from ..sources.status import SourceStatus
from ..stages.context import IngestResult
from ..timekeeping.report_mail import ReportConfig, send_due_report
from ...storage.db import DatabaseUnavailable

log = logging.getLogger("casegate.daemon")
sweeps_log = logging.getLogger("casegate.scheduler")

STOP_TIMEOUT = 20.0
REPORT_CHECK_EVERY = 600.0  # seconds between looks at whether a monthly report is due
# Seconds between looks for outbox mail claimed by a dead process of this host
# (a peer daemon killed while sending): released then, not when its lease ends.
OUTBOX_RECOVER_EVERY = 10.0
EMBEDDED_LISTENER = SmtpSourceConfig(name="smtp-local", kind="smtp", host="127.0.0.1", port=2525)


def effective_sources(config: Config) -> tuple[SourceConfig, ...]:
    """The configured sources, or the embedded SMTP listener when there are none."""
    return config.sources or (EMBEDDED_LISTENER,)


def source_loop(source: ImapSource | SpoolSource, metrics: Metrics | None = None) -> Periodic:
    """The loop of a source that fetches: its step, reconnect backoff and outage report."""
    cfg = source.cfg
    return Periodic(
        f"source={cfg.name}", source.step, Every(cfg.poll_interval.total_seconds()),
        log=logging.getLogger(f"casegate.source.{cfg.kind}"), stop=source.stop,
        explain=source.explain, health=source.status, release=source.release, metrics=metrics,
    )


def allowed_silence(src: SourceConfig) -> float:
    """How long a source may go without a sign of life before `/readyz` says not ready:
    its poll interval plus the time one poll may take. A listener waits for mail
    and is ready while it listens."""
    if isinstance(src, ImapSourceConfig):
        return (src.poll_interval + src.timeout).total_seconds()
    if isinstance(src, SpoolSourceConfig):
        return 2 * src.poll_interval.total_seconds() + 30.0
    return float("inf")


def join_all(loops: list[Periodic], timeout: float) -> list[str]:
    """Wait for the loops' threads, ``timeout`` seconds in all; the labels still running."""
    deadline = time.monotonic() + timeout
    return [p.label for p in loops if not p.join(max(0.0, deadline - time.monotonic()))]


class Daemon:
    def __init__(self, config: Config, config_arg: str | None = None) -> None:
        self.config = config
        self.config_arg = config_arg
        self.app = App(config)
        self.metrics = self.app.metrics
        self.ops_cfg = MetricsConfig.from_config(config)  # validated at start, like every section
        self.report_cfg = ReportConfig.from_config(config)
        self.ops: OpsServer | None = None
        self.stopped = asyncio.Event()
        self.servers: list[asyncio.AbstractServer] = []
        self.statuses: list[SourceStatus] = []
        # One per IMAP source: several daemons may watch one mailbox; one fetches.
        self.leases: list[SourceLease] = []
        self.sender = Periodic("outbox", self.send_outbox, Every(config.outgoing.poll_interval.total_seconds()),
                               log=logging.getLogger("casegate.outbox"), metrics=self.metrics)
        # Freed heap pages back to the system now and then, so memory stays flat in volume.
        self.loops: list[Periodic] = [self.sender, Periodic("memory", trim_heap, Every(TRIM_EVERY),
                                                            log=logging.getLogger("casegate.memory"))]
        self._recovered_at = time.monotonic()

    # ------------------------------------------------------------ steps

    def send_outbox(self) -> bool:
        if time.monotonic() - self._recovered_at >= OUTBOX_RECOVER_EVERY:
            self._recovered_at = time.monotonic()
            self.app.outbox.recover()
        report = self.app.outbox.send_due()
        if report.sent or report.failed or report.retried:
            log.info("outbox %s", report)
            self.metrics.outbox_sent.inc(report.sent)
            self.metrics.send_failures.labels("retry").inc(report.retried)
            self.metrics.send_failures.labels("failed").inc(report.failed)
        return False

    def check_rules(self) -> bool:
        """Look at the rule folder even while no mail arrives, so an admin's
        edit is loaded (or its file:line error logged) within a second, not
        only when the next message happens to be classified."""
        self.app.rules.current()  # never raises; reloads when the files changed
        return False

    def sweep(self) -> bool:
        """The SLA sweeps: due timers become notices (daemon/timekeeping/scheduler.py)."""
        report = self.app.sweep(self.app.clock())
        for kind, n in report.handled.items():
            self.metrics.sweep_handled.labels(kind).inc(n)
        if report.total or report.failed:
            sweeps_log.info("sweep: %s", report)
            self.sender.wake()
        return False

    def mail_report(self) -> bool:
        """On the first working day of a month, last month's report to ``[report] recipients``."""
        app = self.app
        with app.db.transaction() as s:
            month = send_due_report(s, app.notifier, app.policy, self.report_cfg, app.clock(),
                                    tz=self.config.service.timezone,
                                    complaint_category=app.desk.settings.complaint_category)
        if month is not None:
            sweeps_log.info("monthly report %s queued for %s", month, ", ".join(self.report_cfg.recipients))
            self.sender.wake()
        return False

    def _on_ingested(self, results: list[IngestResult]) -> None:
        """Called by the sources after a commit: send the acknowledgements now."""
        if results:
            self.sender.wake()

    # ------------------------------------------------------------ loops

    async def _start_sources(self) -> None:
        app = self.app
        for src in effective_sources(self.config):
            status = SourceStatus(app.db, src.name, src.kind, app.clock, metrics=self.metrics,
                                  allowed_silence=allowed_silence(src))
            self.statuses.append(status)
            if isinstance(src, SmtpSourceConfig):
                self.servers.append(await start_listener(src, self.config.service, app.pipeline, status,
                                                         self._on_ingested, app.clock))
            elif isinstance(src, ImapSourceConfig):
                lease = SourceLease(app.db, src.name)
                self.leases.append(lease)
                self.loops.append(source_loop(ImapSource(src, app.pipeline, status, self._on_ingested,
                                                         parse_pool=app.parse_pool, clock=app.clock, lease=lease),
                                              self.metrics))
                # The heartbeat has a loop of its own, so a long batch does not let the lease lapse.
                self.loops.append(Periodic(f"lease={src.name}", lease.heartbeat, Every(lease.heartbeat_interval),
                                           log=logging.getLogger("casegate.source.lease"), metrics=self.metrics))
            else:
                self.loops.append(source_loop(SpoolSource(src, self.config, app.pipeline, status,
                                                          self._on_ingested), self.metrics))
        # Every source is up (a refused configuration stopped us before any
        # child process existed): the first mail need not wait for a parser to
        # import. A daemon whose only sources are shared IMAP mailboxes starts
        # them when it takes a lease (ImapSource.step): standing by, it parses
        # nothing, and four daemons starting together spent a core-second each
        # importing parsers beside the one that fetched.
        if any(not isinstance(src, ImapSourceConfig) for src in effective_sources(self.config)):
            app.parse_pool.start()

    def _start_ops(self) -> None:
        """The `/metrics`, `/healthz`, `/readyz` listener, when ``[metrics]`` enables it."""
        cfg = self.ops_cfg
        if not cfg.enabled:
            return
        calendar = self.app.policy.calendar
        self.metrics.registry.register(DatabaseCollector(self.app.db, self.app.clock, calendar.country))
        self.ops = OpsServer(cfg, self.metrics, self.app.db)
        self.ops.start()

    def _watchdog_loop(self, every: float) -> Periodic:
        event_loop = asyncio.get_running_loop()

        def ping() -> bool:
            # Pinged from the event loop: while the loop is stuck, no ping goes out.
            event_loop.call_soon_threadsafe(systemd.notify, "WATCHDOG=1")
            return False

        return Periodic("watchdog", ping, Every(every), log=log)

    def _sweeps_loop(self) -> Periodic | None:
        settings = self.app.desk.settings
        if not settings.enabled:
            sweeps_log.info("scheduler disabled by configuration")
            return None
        trigger = IntervalTrigger(seconds=settings.interval.total_seconds(), start_date=self.app.clock(),
                                  timezone=timezone.utc)
        cadence = OnTrigger(trigger, settings.misfire_grace, self.app.clock, sweeps_log, "sweeps")
        sweeps_log.info("scheduler running: sweeps every %s", settings.interval)
        return Periodic("sweeps", self.sweep, cadence, log=sweeps_log, metrics=self.metrics)

    # ------------------------------------------------------------ signals

    def request_stop(self) -> None:
        if not self.stopped.is_set():
            log.info("stopping: finishing the work in hand")
            systemd.notify("STOPPING=1")
            self.stopped.set()
        for loop in self.loops:
            loop.stop()

    def reload(self) -> None:
        try:
            new = load_config(self.config_arg)
        except ConfigError as exc:
            log.error("reload refused, keeping the running configuration: %s", exc)
            return
        logging.getLogger().setLevel(new.logging.level.upper())
        if new.outgoing != self.config.outgoing:
            self.app.outbox.transport = make_transport(new.outgoing, new.resolve(new.outgoing.maildir))
            self.app.outbox.cfg = new.outgoing
            log.info("reload: outgoing transport now %s", new.outgoing.transport)
        if new.sources != self.config.sources or new.database != self.config.database:
            log.warning("reload: changes to sources or database take effect after a restart")
        if new.extra.get("policy") != self.config.extra.get("policy"):
            log.warning("reload: SLA policy changes take effect after a restart, which re-plans every open case")
        self.config = replace(self.config, logging=new.logging, outgoing=new.outgoing)
        log.info("configuration reloaded")

    # ------------------------------------------------------------ run

    async def run(self) -> int:
        event_loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            event_loop.add_signal_handler(sig, self.request_stop)
        event_loop.add_signal_handler(signal.SIGHUP, self.reload)
        await asyncio.to_thread(self.app.outbox.recover)
        replanned = await asyncio.to_thread(self.app.replan_if_policy_changed, self.app.clock())
        if replanned is None:
            log.info("policy: unchanged since the open cases were planned")
        else:
            log.info("policy: new or changed; re-planned the timers of %d open case(s)", replanned)
        calendar = self.app.policy.calendar
        for warning in calendar.warnings(self.app.clock().astimezone(calendar.tz).date()):
            log.warning("%s", warning)  # a year without 调休 gets SLA times wrong: loud, at every start
        self._start_ops()
        await self._start_sources()
        self.loops.append(Periodic("rules", self.check_rules, Every(max(self.app.rules.check_interval, 0.1)),
                                   log=logging.getLogger("casegate.rules"), metrics=self.metrics))
        every = systemd.watchdog_interval()
        if every:
            self.loops.append(self._watchdog_loop(every))
        if self.report_cfg.recipients:
            self.loops.append(Periodic("report", self.mail_report, Every(REPORT_CHECK_EVERY), log=sweeps_log,
                                       metrics=self.metrics))
        sweeps = self._sweeps_loop()
        if sweeps is not None:
            self.loops.append(sweeps)
        for loop in self.loops:
            loop.start()
        names = ", ".join(f"{s.name}({s.kind})" for s in effective_sources(self.config))
        log.info("casegate running: sources %s; database %s; outgoing %s",
                 names, self.app.db.safe_url, self.config.outgoing.transport)
        systemd.notify("READY=1\nSTATUS=running")
        await self.stopped.wait()
        await self._shutdown()
        return 0

    async def _shutdown(self) -> None:
        for server in self.servers:
            server.close()
        for loop in self.loops:
            loop.stop()
        closing = [asyncio.ensure_future(server.wait_closed()) for server in self.servers]
        running = await asyncio.to_thread(join_all, self.loops, STOP_TIMEOUT)
        if closing:
            await asyncio.wait(closing, timeout=STOP_TIMEOUT)
        if running:
            log.warning("did not stop within %.0f s: %s", STOP_TIMEOUT, ", ".join(running))
        for status in self.statuses:
            status.flush()
        for lease in self.leases:
            try:
                lease.release()
            except DatabaseUnavailable as exc:  # it lapses by itself: peers take over after its time to live
                log.warning("lease of source=%s not released: %s", lease.name, exc)
        if self.ops is not None:
            self.ops.stop()
        self.app.close()
        log.info("stopped")


def run_daemon(config: Config, config_arg: str | None) -> int:
    return asyncio.run(Daemon(config, config_arg).run())
