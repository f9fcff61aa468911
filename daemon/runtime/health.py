"""The operator's HTTP listener: ``/metrics`` (Prometheus), ``/healthz`` and ``/readyz``.

Off by default; ``[metrics]`` turns it on::

    [metrics]
    enabled = false
    address = "127.0.0.1"
    port = 9488

- ``/healthz`` answers 200 while the process serves HTTP at all (liveness).
- ``/readyz`` answers 200 when the database answers and every source has
  been connected and seen working within its poll interval; 503 otherwise,
  with one line per problem.
- ``/metrics`` is the App's own registry (daemon/metrics.py) plus what the
  database knows, read at each scrape: outbox depth by state, quarantined and
  ignored messages, SLA timers due and breaches by priority, escalations by
  level, and the last year the working calendar has holiday data for.

The server is the standard library's threading HTTP server in a thread of
its own; a slow scrape never blocks the daemon's loops.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import chinese_calendar.constants as cn_calendar
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.exc import OperationalError

from ..config import Config, build_section
from ..metrics import Metrics
from ...storage import ops
from ...storage.db import Database, DatabaseUnavailable

log = logging.getLogger("casegate.metrics")

PRIORITIES = ("P1", "P2", "P3", "P4")


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool = False
    address: str = "127.0.0.1"
    port: int = 9488

    @classmethod
    def from_config(cls, config: Config) -> MetricsConfig:
        file = str(config.path) if config.path else "<defaults>"
        return build_section(cls, config.extra.get("metrics", {}), f"{file}: metrics")


def calendar_last_year(country: str) -> int | None:
    """The last year the working calendar has published holidays for (None: computed, no end)."""
    if country.upper() != "CN":
        return None  # the holidays package computes any year's public holidays
    return max(day.year for day in cn_calendar.holidays)


class DatabaseCollector(Collector):
    """Gauges read from the database at scrape time; ``casegate_database_up`` 0 when it does not answer."""

    def __init__(self, db: Database, clock: Callable[[], datetime], country: str) -> None:
        self.db = db
        self.clock = clock
        self.country = country

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("casegate_database_up", "1 when the database answered this scrape")
        families: list[GaugeMetricFamily] = []
        try:
            with self.db.session() as s:
                outbox = ops.outbox_by_state(s)
                quarantined = ops.quarantine_count(s)
                ignored = ops.ignored_count(s)
                due = ops.timers_due_by_priority(s, self.clock())
                breached = ops.breaches_by_priority(s)
                escalations = ops.escalations_by_level(s)
        except (DatabaseUnavailable, OperationalError) as exc:  # the scrape still answers, database down
            log.debug("metrics: database not read: %s", exc)
            up.add_metric([], 0.0)
        except Exception:
            log.exception("metrics: reading the database failed")
            up.add_metric([], 0.0)
        else:
            up.add_metric([], 1.0)
            depth = GaugeMetricFamily("casegate_outbox_messages", "Outgoing mails by state", labels=["state"])
            for state in sorted({"queued", "sending", "sent", "failed", *outbox}):
                depth.add_metric([state], outbox.get(state, 0))
            families.append(depth)
            families.append(GaugeMetricFamily("casegate_quarantined_messages",
                                              "Messages kept in quarantine", value=quarantined))
            families.append(GaugeMetricFamily("casegate_ignored_messages",
                                              "Inbound messages that opened no case", value=ignored))
            due_f = GaugeMetricFamily("casegate_sla_timers_due", "Pending SLA timers past their due time",
                                      labels=["priority"])
            breach_f = GaugeMetricFamily("casegate_sla_breaches", "SLA breaches recorded on cases",
                                         labels=["priority"])
            for p in sorted({*PRIORITIES, *due, *breached}):
                due_f.add_metric([p], due.get(p, 0))
                breach_f.add_metric([p], breached.get(p, 0))
            families += [due_f, breach_f]
            esc = GaugeMetricFamily("casegate_escalations_sent", "Escalation mails sent, by level",
                                    labels=["level"])
            for level, n in sorted(escalations.items()):
                esc.add_metric([str(level)], n)
            families.append(esc)
        yield up
        yield from families
        year = calendar_last_year(self.country)
        if year is not None:
            yield GaugeMetricFamily("casegate_calendar_last_covered_year",
                                    "The last year the working calendar has holiday data for", value=year)


class OpsServer:
    """``/metrics``, ``/healthz``, ``/readyz`` on one listener, in a thread of its own."""

    def __init__(self, cfg: MetricsConfig, metrics: Metrics, db: Database) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self.db = db
        self.httpd: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    def readiness(self) -> list[str]:
        """Why the daemon is not ready; empty when it is."""
        problems = []
        try:
            with self.db.session() as s:
                ops.ping(s)
        except Exception as exc:
            problems.append(f"database: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
        return problems + self.metrics.sources.problems()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._answer(200, generate_latest(server.metrics.registry), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    self._answer(200, b"ok\n")
                elif path == "/readyz":
                    problems = server.readiness()
                    body = ("\n".join(problems) if problems else "ready") + "\n"
                    self._answer(503 if problems else 200, body.encode())
                else:
                    self._answer(404, b"not found: try /metrics, /healthz or /readyz\n")

            def _answer(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base's name)
                log.debug("http %s", format % args)

        return Handler

    def start(self) -> None:
        self.httpd = ThreadingHTTPServer((self.cfg.address, self.cfg.port), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="metrics-http", daemon=True)
        self.thread.start()
        host, port = self.httpd.server_address[:2]
        log.info("metrics listening on http://%s:%s/metrics (/healthz, /readyz)", host, port)

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None
