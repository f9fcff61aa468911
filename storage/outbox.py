"""The outbox table: what is due for sending, who holds a lease, what became of each mail.

Claiming works by lease (see daemon/runtime/outbox.py): these are the
statements, kept to Core ``update`` where they run beside ingestion, so the
sender's share of the write lock stays short.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, func, select, update
from sqlalchemy.orm import Session

from .models import OutboxMessage

_T = cast(Table, OutboxMessage.__table__)


@dataclass(frozen=True)
class Outgoing:
    """What a transport needs of an outbox row."""

    id: int
    message_id: str
    mail_from: str
    rcpt_to: tuple[str, ...]
    raw: bytes


@dataclass(frozen=True)
class DueMail:
    mail: Outgoing
    # Claimed before and never recorded: its sender died, or its lease ran out.
    was_leased: bool


def due_mail(session: Session, now: datetime, limit: int) -> list[DueMail]:
    """Up to ``limit`` mails due at ``now``, oldest due first, locked for this transaction.

    On PostgreSQL rows another daemon has locked are skipped (SKIP LOCKED).
    """
    stmt = (
        select(_T.c.id, _T.c.message_id, _T.c.mail_from, _T.c.rcpt_to, _T.c.raw, _T.c.state)
        .where(_T.c.state.in_(("queued", "sending")), _T.c.next_attempt_at <= now)
        .order_by(_T.c.next_attempt_at, _T.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [
        DueMail(Outgoing(row.id, row.message_id, row.mail_from, tuple(row.rcpt_to.split(",")), row.raw),
                row.state == "sending")
        for row in session.execute(stmt)
    ]


def lease_mail(session: Session, ids: Sequence[int], holder: str, until: datetime) -> None:
    """Mark these mails as being sent by ``holder`` until ``until``, one attempt more."""
    if ids:
        session.execute(
            update(_T).where(_T.c.id.in_(list(ids)))
            .values(state="sending", claimed_by=holder, attempts=_T.c.attempts + 1, next_attempt_at=until)
        )


def mark_sent(session: Session, ids: Sequence[int], now: datetime) -> None:
    if ids:
        session.execute(update(_T).where(_T.c.id.in_(list(ids))).values(state="sent", sent_at=now, last_error=None))


def outbox_rows(session: Session, ids: Sequence[int]) -> list[OutboxMessage]:
    return list(session.execute(select(OutboxMessage).where(OutboxMessage.id.in_(list(ids)))).scalars())


def holders_on_host(session: Session, host: str) -> set[str]:
    """The holders (``host:pid``) of mails being sent by processes of ``host``."""
    stmt = select(_T.c.claimed_by).where(_T.c.state == "sending", _T.c.claimed_by.like(f"{host}:%")).distinct()
    return set(session.execute(stmt).scalars())


def release_claims(session: Session, holder: str, now: datetime) -> int:
    """Make the mails ``holder`` is still sending due at ``now``; how many.

    A compare-and-set on the holder, not an update by id: two daemons may
    recover a dead peer's mails at once, and between one's look and its
    update the other may have released them and a third claimed them. An
    update by id would then take them back from the third while it sends
    them, and a fourth would send them again.
    """
    result = session.execute(
        update(_T).where(_T.c.state == "sending", _T.c.claimed_by == holder).values(next_attempt_at=now)
    )
    return int(result.rowcount or 0)


def latest_outbox(session: Session, state: str | None = None, limit: int = 50) -> list[OutboxMessage]:
    """The newest mails of the outbox, in any state or in ``state``."""
    stmt = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)
    if state:
        stmt = stmt.where(OutboxMessage.state == state)
    return list(session.execute(stmt).scalars())


def outbox_counts(session: Session) -> dict[str, int]:
    """How many mails are in each state."""
    stmt = select(OutboxMessage.state, func.count()).group_by(OutboxMessage.state)
    return {state: int(n) for state, n in session.execute(stmt).all()}
