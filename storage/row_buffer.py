"""Rows a batch only ever writes, kept as plain dicts and inserted in bulk.

A new case adds three to five history events and six or seven timers. As
ORM objects they were most of the cost of storing a message (construction,
back-references, the unit of work sorting them), yet nothing in the batch
reads them back as objects: they are written, then found again by queries.
So they are buffered here per table and written with one multi-row INSERT
per table:

- before any query (through the session) that reads a buffered table in
  the same transaction, so a reader sees every row added before it, as with
  autoflush;
- before the transaction commits.

A row added inside a savepoint that is rolled back goes with it, as the ORM
object would have. A row may name a case opened in the same transaction
(not yet flushed): the case is flushed for its key when the rows are
written. Relationship collections of a case loaded in the same session do
not see rows written this way (no writer reads them).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, event as sa_event, insert
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction
from sqlalchemy.sql.util import find_tables

from .models import Case

_KEY = "casegate.buffered_rows"

#: Execution option of a query that has looked at the buffered rows itself
#: and needs only what is stored (so they are not written for it).
BUFFER_CHECKED = "casegate_buffered_rows_checked"


@dataclass
class _Buffered:
    transaction: SessionTransaction | None  # the (nested) transaction it was added in
    table: Table
    case: Case | None
    row: dict[str, Any]


def buffer_row(session: Session, table: Table, row: dict[str, Any], case: Case | None = None) -> None:
    """Add one row of ``table`` to this transaction; ``case`` fills its ``case_id`` when written."""
    where = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(_KEY, []).append(_Buffered(where, table, case, row))


def buffered(session: Session, table: Table) -> Iterator[tuple[Case | None, dict[str, Any]]]:
    """The rows of ``table`` added and not yet written, oldest first, with their case."""
    for b in session.info.get(_KEY) or ():
        if b.table is table:
            yield b.case, b.row


def write_buffered(session: Session) -> None:
    """Insert every buffered row, table by table, in the order they were added."""
    pending: list[_Buffered] | None = session.info.pop(_KEY, None)
    if not pending:
        return
    if any(b.case is not None and b.case.id is None for b in pending):
        session.flush()  # the new cases get their keys
    by_table: dict[Table, list[dict[str, Any]]] = {}
    for b in pending:
        row = {**b.row, "case_id": b.case.id} if b.case is not None else b.row
        by_table.setdefault(b.table, []).append(row)
    connection = session.connection()
    for table, rows in by_table.items():
        connection.execute(insert(table), rows)


def _within(transaction: SessionTransaction | None, ended: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ended:
            return True
        transaction = transaction.parent
    return False


@sa_event.listens_for(Session, "do_orm_execute")
def _before_reading(state: ORMExecuteState) -> None:
    pending: list[_Buffered] | None = state.session.info.get(_KEY)
    if not pending or state.execution_options.get(BUFFER_CHECKED):
        return
    tables = {b.table for b in pending}
    if any(t in tables for t in find_tables(state.statement, include_joins=True)):
        write_buffered(state.session)


@sa_event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    write_buffered(session)


@sa_event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    pending: list[_Buffered] | None = session.info.get(_KEY)
    if pending:
        pending[:] = [b for b in pending if not _within(b.transaction, previous_transaction)]
