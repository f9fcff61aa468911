"""The outbox: outgoing mail queued in the same transaction as its cause,
then sent by a worker with retries.

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
from datetime import datetime, timedelta, timezone
from email.header import decode_header, make_header
from email.message import Message

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..notify.compose import to_wire
from ..config import OutgoingConfig
from .mailer import DeliveryResult, Outgoing, Transport
from ...storage import repository as repo
from ...storage.db import Database
from ...storage.models import Case, Message, OutboxMessage

log = logging.getLogger("casegate.outbox")

LEASE = timedelta(minutes=2)


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def enqueue(
    session: Session,
    msg: Message,
    *,
    kind: str,
    case_id: int | None = None,
    case: Case | None = None,
    mail_from: str,
    rcpt_to: list[str],
    now: datetime,
    text: str | None = None,
    record: bool = True,
) -> OutboxMessage:
    """Queue ``msg`` and, when ``record``, store it as an outgoing message on the case.

    Give ``case`` (the object) rather than ``case_id`` for a case created in
    the same transaction: no flush is needed to learn its id.
    """
    if case is not None:
        case_id = case.id
    message_id = str(msg["Message-ID"]).strip().strip("<>")
    # Stored in wire form (CRLF): SMTP relays need it, and smtplib sends
    # bytes as they are.
    raw = to_wire(msg)
    # Only set the relationship when given: assigning None would clear case_id.
    links = {"case": case} if case is not None else {"case_id": case_id}
    row = OutboxMessage(
        **links,
        kind=kind,
        message_id=message_id,
        mail_from=mail_from,
        rcpt_to=",".join(rcpt_to),
        raw=raw,
        state="queued",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(row)
    repo.count_queued(session, row.rcpt_to)
    if record and (case is not None or case_id is not None):
        session.add(
            Message(
                **links,
                direction="out",
                message_id=message_id,
                in_reply_to=str(msg.get("In-Reply-To", "")).strip("<>"),
                references=str(msg.get("References", "")),
                from_addr=mail_from,
                to_addrs=",".join(rcpt_to),
                cc_addrs=_decoded(msg.get("Cc", "")),
                subject=_decoded(msg["Subject"]),
                date=now,
                text=text if text is not None else "",
                new_text=text if text is not None else "",
                raw=None,  # the rendered bytes live in the outbox row
                source=f"outbox:{kind}",
                created_at=now,
            )
        )
    return row


def _decoded(value: object) -> str:
    return str(make_header(decode_header(str(value or ""))))


@dataclass
class SendReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0

    def __str__(self) -> str:
        return f"sent {self.sent}, retry later {self.retried}, failed {self.failed}"


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
        host = socket.gethostname()
        now = self.clock()
        released = 0
        with self.db.transaction() as s:
            rows = s.execute(
                select(OutboxMessage).where(OutboxMessage.state == "sending", OutboxMessage.claimed_by.like(f"{host}:%"))
            ).scalars()
            for row in rows:
                pid = int(row.claimed_by.rpartition(":")[2] or 0)
                if pid != os.getpid() and not _pid_alive(pid):
                    row.next_attempt_at = now
                    released += 1
        if released:
            log.warning("outbox: released %d message(s) claimed by a process that died while sending", released)
        return released

    def _claim(self, limit: int) -> list[Outgoing]:
        """Take a lease on up to ``limit`` due rows (Core statements: this runs
        beside ingestion, so it keeps its share of the write lock short)."""
        now = self.clock()
        t = OutboxMessage.__table__
        with self.db.transaction() as s:
            stmt = (
                select(t.c.id, t.c.message_id, t.c.mail_from, t.c.rcpt_to, t.c.raw, t.c.state)
                .where(t.c.state.in_(("queued", "sending")), t.c.next_attempt_at <= now)
                .order_by(t.c.next_attempt_at, t.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            claimed, recovered = [], []
            for row in s.execute(stmt):
                item = Outgoing(row.id, row.message_id, row.mail_from, tuple(row.rcpt_to.split(",")), row.raw)
                if row.state == "sending" and self.transport.already_delivered(item):
                    recovered.append(row.id)  # delivered before a crash; only the bookkeeping was lost
                else:
                    claimed.append(item)
            if recovered:
                s.execute(update(t).where(t.c.id.in_(recovered)).values(state="sent", sent_at=now, last_error=None))
            if claimed:
                s.execute(
                    update(t)
                    .where(t.c.id.in_([i.id for i in claimed]))
                    .values(state="sending", claimed_by=self.holder, attempts=t.c.attempts + 1,
                            next_attempt_at=now + LEASE)
                )
        return claimed

    def _backoff(self, attempts: int) -> timedelta:
        delay = self.cfg.retry_initial * (2 ** max(0, attempts - 1))
        return min(delay, self.cfg.retry_max)

    def _record(self, results: dict[int, DeliveryResult]) -> SendReport:
        now = self.clock()
        report = SendReport()
        t = OutboxMessage.__table__
        with self.db.transaction() as s:
            sent = [i for i, r in results.items() if r.ok and r.error is None]
            if sent:  # the common case, in one statement
                s.execute(update(t).where(t.c.id.in_(sent)).values(state="sent", sent_at=now, last_error=None))
                report.sent += len(sent)
            others = [i for i in results if i not in set(sent)]
            if not others:
                return report
            for row in s.execute(select(OutboxMessage).where(OutboxMessage.id.in_(others))).scalars():
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
            batch = self._claim(batch_size)
            if not batch:
                break
            report = self._record(self.transport.deliver(batch))
            total.sent += report.sent
            total.retried += report.retried
            total.failed += report.failed
            if remaining is not None:
                remaining -= len(batch)
            if report.sent == 0:
                break  # the relay is failing: leave the rest for the backoff
        return total
