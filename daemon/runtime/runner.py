"""`casegate run`: one asyncio process running every source and the outbox.

Blocking clients (imapclient, smtplib, the database) run in worker threads
started from the loop; the SMTP/LMTP listeners are aiosmtpd servers in the
loop itself. SIGTERM/SIGINT stop cleanly: listeners close, IMAP loops finish
the batch in hand, and the process exits 0 within ``STOP_TIMEOUT``. SIGHUP
re-reads the configuration and applies what is safe to change live (log
level, outgoing relay); source changes need a restart and are logged.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import replace

from . import systemd
from .app import App
from ..config import Config, ConfigError, ImapSourceConfig, SmtpSourceConfig, SpoolSourceConfig, load_config
from .mailer import make_transport
from ..stages.context import IngestResult
from ..timekeeping.scheduler import start as start_scheduler
from .source_state import SourceStatus
from ..sources.imap import ImapSource
from ..sources.smtp import start_listener
from ...storage.db import DatabaseUnavailable

log = logging.getLogger("casegate.daemon")

STOP_TIMEOUT = 20.0
EMBEDDED_LISTENER = SmtpSourceConfig(name="smtp-local", kind="smtp", host="127.0.0.1", port=2525)


def effective_sources(config: Config) -> tuple:
    """The configured sources, or the embedded SMTP listener when there are none."""
    return config.sources or (EMBEDDED_LISTENER,)


class Daemon:
    def __init__(self, config: Config, config_arg: str | None = None) -> None:
        self.config = config
        self.config_arg = config_arg
        self.app = App(config)
        self.stop_event = asyncio.Event()
        self.outbox_wake = asyncio.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        # Sources that run a blocking loop in a worker thread (IMAP, spool):
        # each has a ``stop`` event and a ``run()`` method.
        self.thread_sources: list = []
        self.servers: list[asyncio.AbstractServer] = []
        self.threads: list[asyncio.Future] = []
        self.statuses: list[SourceStatus] = []
        self.extra_tasks: list = []  # coroutine functions started with the daemon (scheduler)

    # ------------------------------------------------------------ callbacks

    def _on_ingested(self, results: list[IngestResult]) -> None:
        """Called from source threads after a commit: wake the outbox now."""
        if self.loop is not None and results:
            self.loop.call_soon_threadsafe(self.outbox_wake.set)

    def request_stop(self) -> None:
        if not self.stop_event.is_set():
            log.info("stopping: finishing the work in hand")
            systemd.notify("STOPPING=1")
            self.stop_event.set()

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
        self.config = replace(self.config, logging=new.logging, outgoing=new.outgoing)
        log.info("configuration reloaded")

    # ------------------------------------------------------------ tasks

    async def _outbox_loop(self) -> None:
        interval = self.config.outgoing.poll_interval.total_seconds()
        last_error = None
        while not self.stop_event.is_set():
            try:
                report = await asyncio.to_thread(self.app.outbox.send_due)
                if report.sent or report.failed or report.retried:
                    log.info("outbox %s", report)
                last_error = None
            except DatabaseUnavailable as exc:
                if str(exc) != last_error:
                    log.error("outbox: database unavailable: %s", exc)
                last_error = str(exc)
            except Exception:
                log.exception("outbox worker error")
            self.outbox_wake.clear()
            try:
                await asyncio.wait_for(self.outbox_wake.wait(), timeout=interval)
            except TimeoutError:
                pass

    async def _rules_loop(self) -> None:
        """Look at the rule folder even while no mail arrives, so an admin's
        edit is loaded (or its file:line error logged) within a second, not
        only when the next message happens to be classified."""
        rules = self.app.rules
        while not self.stop_event.is_set():
            try:
                await asyncio.wait_for(self.stop_event.wait(), timeout=max(rules.check_interval, 0.1))
            except TimeoutError:
                await asyncio.to_thread(rules.current)  # never raises; reloads when the files changed

    async def _watchdog_loop(self, every: float) -> None:
        while not self.stop_event.is_set():
            systemd.notify("WATCHDOG=1")
            try:
                await asyncio.wait_for(self.stop_event.wait(), timeout=every)
            except TimeoutError:
                pass

    async def _start_sources(self) -> None:
        for src in effective_sources(self.config):
            status = SourceStatus(self.app.db, src.name, src.kind, self.app.clock)
            self.statuses.append(status)
            if isinstance(src, ImapSourceConfig):
                imap = ImapSource(src, self.app.pipeline, status, self._on_ingested, parse_pool=self.app.parse_pool)
                self.thread_sources.append(imap)
                self.threads.append(asyncio.ensure_future(asyncio.to_thread(imap.run)))
            elif isinstance(src, SmtpSourceConfig):
                self.servers.append(await start_listener(src, self.config.service, self.app.pipeline, status, self._on_ingested))
            elif isinstance(src, SpoolSourceConfig):
                from ..sources.spool import SpoolSource

                spool = SpoolSource(src, self.config, self.app.pipeline, status, self._on_ingested)
                self.thread_sources.append(spool)
                self.threads.append(asyncio.ensure_future(asyncio.to_thread(spool.run)))

    async def run(self) -> int:
        self.loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self.request_stop)
        self.loop.add_signal_handler(signal.SIGHUP, self.reload)
        await asyncio.to_thread(self.app.outbox.recover)
        await self._start_sources()
        tasks = [asyncio.create_task(self._outbox_loop()), asyncio.create_task(self._rules_loop())]
        every = systemd.watchdog_interval()
        if every:
            tasks.append(asyncio.create_task(self._watchdog_loop(every)))
        for start in self.extra_tasks:
            tasks.append(asyncio.create_task(start(self)))
        names = ", ".join(f"{s.name}({s.kind})" for s in effective_sources(self.config))
        log.info("casegate running: sources %s; database %s; outgoing %s",
                 names, self.app.db.safe_url, self.config.outgoing.transport)
        systemd.notify("READY=1\nSTATUS=running")
        await self.stop_event.wait()
        await self._shutdown(tasks)
        return 0

    async def _shutdown(self, tasks: list[asyncio.Task]) -> None:
        for server in self.servers:
            server.close()
        for src in self.thread_sources:
            src.stop.set()
        waiters = [*(s.wait_closed() for s in self.servers), *self.threads]
        if waiters:
            done, pending = await asyncio.wait([asyncio.ensure_future(w) for w in waiters], timeout=STOP_TIMEOUT)
            if pending:
                log.warning("%d source(s) did not stop within %.0f s", len(pending), STOP_TIMEOUT)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for status in self.statuses:
            status.flush()
        self.app.close()
        log.info("stopped")


def run_daemon(config: Config, config_arg: str | None) -> int:
    daemon = Daemon(config, config_arg)
    daemon.extra_tasks.append(start_scheduler)  # SLA sweeps (daemon/timekeeping/scheduler.py)
    return asyncio.run(daemon.run())

