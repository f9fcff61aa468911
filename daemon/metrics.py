"""What the daemon counts while it runs, for Prometheus and for `/readyz`.

One :class:`Metrics` per App, with a ``CollectorRegistry`` of its own (never
the process-wide default registry), so two apps in one process count apart.
It is passed down to whoever knows a fact: the pipeline (messages ingested by
source and outcome, parse and store times, batch sizes), the sources through
their :class:`~daemon.sources.status.SourceStatus` (connection state, last
successful poll, IDLE wake-ups), the loops (steps and failures), the outbox
worker's reports (send failures) and the sweeps (escalations sent).

Facts that live in the database (outbox depth, quarantine, due timers) are
read when Prometheus scrapes, by the collector in runtime/health.py.

:class:`SourceHealth` is the in-memory view of each source that `/readyz`
reads: connected, and seen working within its poll interval.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# Seconds; parse and store times of a batch range from a millisecond to
# minutes (OCR of a fax, a slow database).
TIME_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500)


@dataclass
class _SourceState:
    kind: str
    allowed_silence: float  # seconds without a sign of life before the source is not ready
    connected: bool = False
    last_ok: float | None = None  # time.monotonic() of the last successful poll, connect or IDLE check
    last_ok_wall: float | None = None  # time.time() of the same, for the exported timestamp
    error: str | None = None


class SourceHealth(Collector):
    """Per source: connected or not, and when it last worked (in memory, thread-safe)."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._sources: dict[str, _SourceState] = {}
        self._monotonic = monotonic

    def register(self, name: str, kind: str, allowed_silence: float) -> None:
        with self._lock:
            self._sources.setdefault(name, _SourceState(kind, allowed_silence))

    def ok(self, name: str) -> None:
        """The source just worked: connected, polled, or its IDLE answered."""
        with self._lock:
            state = self._sources.get(name)
            if state is None:
                return
            state.connected, state.error = True, None
            state.last_ok, state.last_ok_wall = self._monotonic(), time.time()

    def failed(self, name: str, message: str) -> None:
        with self._lock:
            state = self._sources.get(name)
            if state is not None:
                state.connected, state.error = False, message

    def problems(self) -> list[str]:
        """Why the daemon is not ready, one line per source; empty when every source is."""
        now = self._monotonic()
        out = []
        with self._lock:
            for name, s in sorted(self._sources.items()):
                if not s.connected:
                    out.append(f"source {name}: not connected" + (f" ({s.error})" if s.error else ""))
                elif s.last_ok is None or now - s.last_ok > s.allowed_silence:
                    out.append(f"source {name}: no successful poll for {now - (s.last_ok or now):.0f} s")
        return out

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self._monotonic()
        connected = GaugeMetricFamily("casegate_source_connected",
                                      "1 when the source is connected (or its listener is up)", labels=["source", "kind"])
        last = GaugeMetricFamily("casegate_source_last_success_timestamp_seconds",
                                 "Unix time of the source's last successful poll", labels=["source"])
        age = GaugeMetricFamily("casegate_source_last_success_age_seconds",
                                "Seconds since the source's last successful poll", labels=["source"])
        with self._lock:
            for name, s in sorted(self._sources.items()):
                connected.add_metric([name, s.kind], 1.0 if s.connected else 0.0)
                if s.last_ok is not None and s.last_ok_wall is not None:
                    last.add_metric([name], s.last_ok_wall)
                    age.add_metric([name], now - s.last_ok)
        yield connected
        yield last
        yield age


class Metrics:
    """The daemon's counters and histograms, on a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.ingested = Counter("casegate_messages_ingested", "Messages ingested, by source and outcome",
                                ["source", "outcome"], registry=r)
        self.parse_seconds = Histogram("casegate_parse_seconds",
                                       "Time to parse and prepare a batch (attachments, fax OCR)",
                                       ["source"], buckets=TIME_BUCKETS, registry=r)
        self.store_seconds = Histogram("casegate_store_seconds", "Time to store a batch in one transaction",
                                       ["source"], buckets=TIME_BUCKETS, registry=r)
        self.batch_size = Histogram("casegate_batch_size", "Messages per ingested batch", ["source"],
                                    buckets=BATCH_BUCKETS, registry=r)
        self.idle_wakeups = Counter("casegate_imap_idle_wakeups", "IDLE responses announcing new mail",
                                    ["source"], registry=r)
        self.loop_steps = Counter("casegate_loop_steps", "Steps of the daemon's loops, by result (ok, failed)",
                                  ["loop", "result"], registry=r)
        self.send_failures = Counter("casegate_outbox_send_failures",
                                     "Outgoing mails that failed to send (retried or given up)",
                                     ["result"], registry=r)
        self.outbox_sent = Counter("casegate_outbox_sent", "Outgoing mails sent", registry=r)
        self.sweep_handled = Counter("casegate_sweep_timers_handled", "SLA timers handled by the sweeps, by kind",
                                     ["kind"], registry=r)
        self.sources = SourceHealth()
        r.register(self.sources)

    # -- the pipeline

    def batch(self, source: str, size: int, parse_seconds: float, store_seconds: float) -> None:
        self.batch_size.labels(source).observe(size)
        self.parse_seconds.labels(source).observe(parse_seconds)
        self.store_seconds.labels(source).observe(store_seconds)

    def ingested_one(self, source: str, outcome: str) -> None:
        self.ingested.labels(source, outcome).inc()

    # -- the loops

    def step(self, loop: str, ok: bool) -> None:
        self.loop_steps.labels(loop, "ok" if ok else "failed").inc()
