"""What scheduled notices say about a case: the symptoms, the latest progress.

Sending is the notifier's (daemon/notify/notifier.py); this module only reads
the case's history for the facts a notice quotes.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from ..notify.notifier import AUTOMATIC_KINDS
from ...storage import repository as repo
from ...storage.models import Case, Message


def first_text(session: Session, case: Case, limit: int = 4000) -> str:
    """The symptoms as the customer first wrote them."""
    first = repo.first_inbound_message(session, case)
    if first is None:
        return ""
    text = (first.new_text or first.text or "").strip()
    return text if len(text) <= limit else text[:limit] + " …"


def _sent_to(messages: list[Message], to: str | None) -> Message | None:
    for msg in messages:
        if to is None or to.lower() in (msg.to_addrs or "").lower():
            return msg
    return None


def last_public_update(session: Session, case: Case, to: str | None) -> Message | None:
    """The newest message sent to the customer, acknowledgements excluded."""
    return _sent_to(repo.recent_outgoing(session, case, exclude_kinds=("ack",)), to)


def last_staff_reply(session: Session, case: Case, to: str | None) -> Message | None:
    """The newest message a person (not a timer) sent to the customer: the latest progress."""
    return _sent_to(repo.recent_outgoing(session, case, exclude_kinds=AUTOMATIC_KINDS), to)
