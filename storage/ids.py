"""Primary keys for the rows a batch adds, handed out before the flush.

The ORM inserts rows of one table in one multi-row statement only when it
need not read each new row's key back in order: with server-generated keys
on SQLite ("no INSERT form ties new ROWIDs to the order of the parameter
sets", SQLAlchemy's insertmanyvalues notes) it falls back to one INSERT per
row, which was most of the cost of storing a batch (four to six rows a
message). So the keys of the hot tables are given out here, just before
each flush, and every table's new rows go in a few statements:

- SQLite: the next keys after the table's highest, read in the flushing
  transaction. Every write transaction starts with ``BEGIN IMMEDIATE``
  (storage/db.py), so no other writer can insert between that read and the
  flush that uses the keys.
- PostgreSQL: drawn from the table's own sequence in one round trip
  (``nextval`` over ``generate_series``), so concurrent daemons never meet.

Rows of other tables, and any table on other databases, keep their
server-generated keys.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event as sa_event, func, select, text
from sqlalchemy.orm import Session, UOWTransaction

from .models import Attachment, Case, CaseTimer, Customer, CustomerContact, Message, OutboxMessage

#: The tables a stored message adds rows to.
HOT_MODELS = (Customer, CustomerContact, Case, Message, Attachment, OutboxMessage, CaseTimer)


def _next_keys(session: Session, model: type, count: int) -> list[int]:
    table = model.__table__  # type: ignore[attr-defined]
    if session.get_bind().dialect.name == "postgresql":
        rows = session.connection().execute(
            text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"),
            {"table": table.name, "n": count})
        return [r[0] for r in rows]
    highest = session.connection().execute(select(func.max(table.c.id))).scalar() or 0
    return list(range(highest + 1, highest + 1 + count))


@sa_event.listens_for(Session, "before_flush")
def _assign_keys(session: Session, _flush: UOWTransaction, _instances: Any) -> None:
    if session.get_bind().dialect.name not in ("sqlite", "postgresql"):
        return
    waiting: dict[type, list[Any]] = {}
    for obj in session.new:
        model = type(obj)
        if model in HOT_MODELS and obj.id is None:
            waiting.setdefault(model, []).append(obj)
    for model, objs in waiting.items():
        if len(objs) < 2:
            continue  # one row: the database's own key costs nothing more
        for obj, key in zip(objs, _next_keys(session, model, len(objs))):
            obj.id = key
