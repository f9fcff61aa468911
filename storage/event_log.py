"""The case history (``event`` rows), written in bulk at the end of a batch.

Every change to a case adds an event; a new case alone adds three to five.
As ORM objects they were a quarter of the cost of storing a message (object
construction, the ``Case.events`` back-reference, the unit of work sorting
them). They are only ever written, then read by queries, so they are kept
here as plain rows and written with one multi-row INSERT:

- before any query that reads the ``event`` table in the same transaction
  (so a reader sees every event added before it, as with autoflush),
- before the transaction commits.

An event added inside a savepoint that is rolled back goes with it, as the
ORM object would have; the ``Case.events`` collection of a case loaded in
the same session does not see rows written this way (no writer reads it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event as sa_event, insert
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction
from sqlalchemy.sql.util import find_tables

from .models import Case, Event

_KEY = "casegate.pending_events"
EVENT_TABLE = Event.__table__


@dataclass
class _Pending:
    transaction: SessionTransaction | None  # the (nested) transaction it was added in
    case: Case | None
    row: dict[str, Any]


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
    where = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(_KEY, []).append(_Pending(where, case, row))


def newest_pending(session: Session, case: Case, action: str) -> Event | None:
    """The newest event ``action`` of ``case`` added but not yet written (a
    detached copy), so a reader of one case's newest event need not write
    the whole batch's history, and flush its rows, to find it."""
    for p in reversed(session.info.get(_KEY) or ()):
        if p.case is case and p.row["action"] == action:
            return Event(case_id=case.id, **p.row)
    return None


def write_pending_events(session: Session) -> None:
    """Insert the events added so far, in the order they were added."""
    pending: list[_Pending] | None = session.info.pop(_KEY, None)
    if not pending:
        return
    if any(p.case is not None and p.case.id is None for p in pending):
        session.flush()  # the new cases get their ids
    rows = [{**p.row, "case_id": p.case.id if p.case is not None else None} for p in pending]
    session.connection().execute(insert(EVENT_TABLE), rows)


def _within(transaction: SessionTransaction | None, ended: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ended:
            return True
        transaction = transaction.parent
    return False


#: Execution option of a query that has looked at the pending events itself
#: (``newest_pending``) and needs only what is stored.
PENDING_CHECKED = "casegate_pending_events_checked"


@sa_event.listens_for(Session, "do_orm_execute")
def _before_reading(state: ORMExecuteState) -> None:
    if state.execution_options.get(PENDING_CHECKED):
        return
    if state.session.info.get(_KEY) and any(t is EVENT_TABLE for t in find_tables(state.statement, include_joins=True)):
        write_pending_events(state.session)


@sa_event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    write_pending_events(session)


@sa_event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    pending: list[_Pending] | None = session.info.get(_KEY)
    if pending:
        pending[:] = [p for p in pending if not _within(p.transaction, previous_transaction)]
