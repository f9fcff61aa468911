"""Mail that opened no case: kept whole, listed, and fed again on request.

Automatic mail, staff mail naming no case and mail the rules route to
"ignore" are stored as messages without a case (raw bytes and all), with
the reason in ``kind``. Nothing is dropped: an admin who changes a rule can
list them and ingest them again.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .models import Message


def ignored_messages(session: Session, ids: Sequence[int] | None = None, limit: int = 200) -> list[Message]:
    """Unlinked inbound messages, newest first (or the ones ``ids`` names)."""
    stmt = select(Message).where(Message.case_id.is_(None), Message.direction != "out")
    if ids:
        stmt = stmt.where(Message.id.in_(list(ids)))
    return list(session.execute(stmt.order_by(Message.id.desc()).limit(limit)).scalars())


def set_aside_for_retry(session: Session, message_id: int) -> None:
    """Free the message's dedupe key so the same bytes can be ingested again;
    the row (and its raw bytes) stays until the new ingest has stored them."""
    message = session.get(Message, message_id)
    if message is not None and message.dedupe_key and not message.dedupe_key.startswith("retried:"):
        message.dedupe_key = f"retried:{message.id}:{message.dedupe_key}"[:600]


def forget_ignored(session: Session, message_id: int) -> None:
    session.execute(delete(Message).where(Message.id == message_id, Message.case_id.is_(None)))
