"""Per-source health, kept in the database so `casegate status` can show it
from another process: last poll, last error, messages ingested; and, when
the daemon has metrics, in memory for `/readyz` and Prometheus
(daemon/metrics.py: connected, last successful poll, IDLE wake-ups).

Writes are small and throttled (a poll is recorded at most every few
seconds) so bookkeeping never competes with ingestion for the write lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from ..metrics import Metrics
from ...storage.db import Database, DatabaseUnavailable
from ...storage.source_state import record_source_state

log = logging.getLogger("casegate.source")


class SourceStatus:
    def __init__(self, db: Database, name: str, kind: str, clock: Callable[[], datetime], throttle: float = 5.0,
                 *, metrics: Metrics | None = None, allowed_silence: float = float("inf")) -> None:
        self.db = db
        self.metrics = metrics
        if metrics is not None:
            metrics.sources.register(name, kind, allowed_silence)
        self.name = name
        self.kind = kind
        self.clock = clock
        self.throttle = throttle
        self._lock = threading.Lock()
        self._pending_ingested = 0
        self._last_write = 0.0

    def _write(self, force: bool, *, error: str | None = None, clear_error: bool = False,
               uidvalidity: int | None = None) -> None:
        now_mono = time.monotonic()
        with self._lock:
            if not force and now_mono - self._last_write < self.throttle:
                return
            self._last_write = now_mono
            added, self._pending_ingested = self._pending_ingested, 0
        now = self.clock()
        try:
            with self.db.transaction() as s:
                record_source_state(
                    s, self.name, self.kind, ingested=added,
                    last_poll_at=None if error is not None else now,
                    last_error=error, last_error_at=now if error is not None else None,
                    clear_error=clear_error, uidvalidity=uidvalidity,
                )
        except (DatabaseUnavailable, SQLAlchemyError) as exc:
            with self._lock:
                self._pending_ingested += added
            log.debug("source=%s status not recorded: %s", self.name, exc)

    def connected(self, uidvalidity: int | None = None) -> None:
        self.alive()
        self._write(True, clear_error=True, uidvalidity=uidvalidity)

    def polled(self) -> None:
        self.alive()
        self._write(False)

    def alive(self) -> None:
        """The source works (an IDLE check answered); kept in memory only."""
        if self.metrics is not None:
            self.metrics.sources.ok(self.name)

    def woken(self) -> None:
        """IDLE announced new mail."""
        if self.metrics is not None:
            self.metrics.idle_wakeups.labels(self.name).inc()

    def ingested(self, count: int) -> None:
        self.alive()
        with self._lock:
            self._pending_ingested += count
        self._write(False)

    def error(self, message: str) -> None:
        if self.metrics is not None:
            self.metrics.sources.failed(self.name, message[:300])
        self._write(True, error=message[:2000])

    def flush(self) -> None:
        self._write(True)
