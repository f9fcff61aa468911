"""The case history (``event`` rows), written in bulk with the batch.

Every change to a case adds an event; a new case alone adds three to five.
They are only ever written, then read by queries, so they are buffered as
plain rows (storage/row_buffer.py) and inserted in one statement before any
reader of the ``event`` table and before the commit. An event added inside
a savepoint that is rolled back goes with it; the ``Case.events``
collection of a case loaded in the same session does not see them (no
writer reads it).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from .models import Case, Event
from .row_buffer import BUFFER_CHECKED, buffer_row, buffered, write_buffered

EVENT_TABLE = Event.__table__

#: Execution option of a query that has looked at the pending events itself
#: (``newest_pending``) and needs only what is stored.
PENDING_CHECKED = BUFFER_CHECKED


def add_event(
    session: Session,
    case: Case | None,
    now: datetime,
    actor: str,
    action: str,
    old: str | None = None,
    new: str | None = None,
    detail: Any = None,
) -> None:
    """Record one change to ``case`` (written with the batch's other events)."""
    row = {
        "at": now, "actor": actor, "action": action, "old": old, "new": new,
        "detail": json.dumps(detail, ensure_ascii=False) if detail is not None else None,
    }
    buffer_row(session, EVENT_TABLE, row, case)


def newest_pending(session: Session, case: Case, action: str) -> Event | None:
    """The newest event ``action`` of ``case`` added but not yet written (a
    detached copy), so a reader of one case's newest event need not write
    the whole batch's rows, and flush them, to find it."""
    newest = None
    for owner, row in buffered(session, EVENT_TABLE):
        if owner is case and row["action"] == action:
            newest = row
    return Event(case_id=case.id, **newest) if newest is not None else None


def write_pending_events(session: Session) -> None:
    """Insert the events (and every other buffered row) added so far."""
    write_buffered(session)
