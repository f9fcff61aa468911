"""The outbox sender: outgoing mail is queued in the same transaction as its
cause (daemon/notify/notifier.py), then sent by this worker with retries.

Claiming works by lease: a row being sent is set to ``sending`` with
``next_attempt_at`` = now + lease and committed before the transport is
touched. If the process dies mid-send, the lease expires and the row is
claimed again; for the maildir transport the worker first asks whether the
file already landed, so nothing is written twice. On PostgreSQL the claim
uses ``FOR UPDATE SKIP LOCKED`` so several daemons share one outbox; SQLite
has a single writer at a time (BEGIN IMMEDIATE), which gives the same.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..clock import utcnow
from ..config import OutgoingConfig
from .mailer import DeliveryResult, Transport
from ..sources.lease import pid_alive
from ...storage import outbox as table
from ...storage.db import Database
from ...storage.outbox import Outgoing

log = logging.getLogger("casegate.outbox")

LEASE = timedelta(minutes=2)


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class SendReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0

    def __str__(self) -> str:
        return f"sent {self.sent}, retry later {self.retried}, failed {self.failed}"

    def add(self, other: SendReport) -> None:
        self.sent += other.sent
        self.retried += other.retried
        self.failed += other.failed


class OutboxWorker:
    def __init__(
        self,
        db: Database,
        transport: Transport,
        cfg: OutgoingConfig,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.transport = transport
        self.cfg = cfg
        self.clock = clock
        self.holder = holder_id()

    def recover(self) -> int:
        """Release leases held by dead processes on this host (run at start).

        A lease of a process that died mid-send would otherwise hold its
        messages back until it expires; leases of other hosts are left to
        expire, since we cannot see whether their holder is alive.
        """
        now = self.clock()
        released = 0
        with self.db.transaction() as s:
            for holder in table.holders_on_host(s, socket.gethostname()):
                pid = int(holder.rpartition(":")[2] or 0)
                if pid != os.getpid() and not pid_alive(pid):
                    released += table.release_claims(s, holder, now)
        if released:
            log.warning("outbox: released %d message(s) claimed by a process that died while sending", released)
        return released

    def claim(self, limit: int) -> list[Outgoing]:
        """Take a lease on up to ``limit`` due mails; the ones to send now."""
        now = self.clock()
        with self.db.transaction() as s:
            claimed, recovered = [], []
            for due in table.due_mail(s, now, limit):
                if due.was_leased and self.transport.already_delivered(due.mail):
                    recovered.append(due.mail.id)  # delivered before a crash; only the bookkeeping was lost
                else:
                    claimed.append(due.mail)
            table.mark_sent(s, recovered, now)
            table.lease_mail(s, [m.id for m in claimed], self.holder, now + LEASE)
        return claimed

    def _backoff(self, attempts: int) -> timedelta:
        delay = self.cfg.retry_initial * (2 ** max(0, attempts - 1))
        return min(delay, self.cfg.retry_max)

    def _record(self, results: dict[int, DeliveryResult]) -> SendReport:
        now = self.clock()
        report = SendReport()
        with self.db.transaction() as s:
            sent = [i for i, r in results.items() if r.ok and r.error is None]
            table.mark_sent(s, sent, now)  # the common case, in one statement
            report.sent += len(sent)
            others = [i for i in results if i not in set(sent)]
            if not others:
                return report
            for row in table.outbox_rows(s, others):
                res = results[row.id]
                row.last_error = res.error
                if res.ok:  # delivered, with a note (e.g. some recipients refused)
                    row.state, row.sent_at = "sent", now
                    report.sent += 1
                elif res.permanent or now - row.created_at >= self.cfg.give_up_after:
                    row.state = "failed"
                    report.failed += 1
                    log.error("outbox message %s failed for good: %s", row.message_id, res.error)
                else:
                    row.state = "queued"
                    row.next_attempt_at = now + self._backoff(row.attempts)
                    report.retried += 1
                    log.warning(
                        "outbox message %s not sent (attempt %d, retry at %s): %s",
                        row.message_id, row.attempts, row.next_attempt_at.isoformat(), res.error,
                    )
        return report

    def send_due(self, limit: int | None = None) -> SendReport:
        """Send everything due now, in batches; returns what happened."""
        total = SendReport()
        remaining = limit
        while True:
            batch_size = self.cfg.batch_size if remaining is None else min(self.cfg.batch_size, remaining)
            if batch_size <= 0:
                break
            batch = self.claim(batch_size)
            if not batch:
                break
            report = self._record(self.transport.deliver(batch))
            total.add(report)
            if remaining is not None:
                remaining -= len(batch)
            if report.sent == 0:
                break  # the relay is failing: leave the rest for the backoff
        return total
