"""The quarantine: messages that could not be ingested, kept whole with the reason."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .models import Quarantine


def quarantined(session: Session, ids: Sequence[int] | None = None) -> list[Quarantine]:
    """Quarantined messages, oldest first: all of them, or those with these ids."""
    stmt = select(Quarantine).order_by(Quarantine.id)
    if ids is not None:
        stmt = stmt.where(Quarantine.id.in_(list(ids)))
    return list(session.execute(stmt).scalars())


def quarantined_message(session: Session, qid: int) -> Quarantine | None:
    return session.get(Quarantine, qid)


def count_quarantined(session: Session) -> int:
    return int(session.execute(select(func.count(Quarantine.id))).scalar_one())


def release_quarantined(session: Session, qid: int) -> None:
    """Take a message out of quarantine (it went through after all)."""
    row = session.get(Quarantine, qid)
    if row is not None:
        session.delete(row)


def note_quarantine_reason(session: Session, qid: int, reason: str) -> None:
    """Replace the reason a message is kept with today's."""
    row = session.get(Quarantine, qid)
    if row is not None:
        row.error = reason
