"""The ``source_state`` table: each source's health, for `casegate status`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import SourceState


def record_source_state(
    session: Session,
    name: str,
    kind: str,
    *,
    ingested: int = 0,
    last_poll_at: datetime | None = None,
    last_error: str | None = None,
    last_error_at: datetime | None = None,
    clear_error: bool = False,
    uidvalidity: int | None = None,
) -> None:
    """Add ``ingested`` to the source's count and set what is given (a row is made on first use).

    ``clear_error`` forgets the last error (the source connected again).
    """
    row = session.get(SourceState, name)
    if row is None:
        row = SourceState(name=name, kind=kind, ingested=0)
        session.add(row)
    row.kind = kind
    row.ingested = (row.ingested or 0) + ingested
    if last_poll_at is not None:
        row.last_poll_at = last_poll_at
    if clear_error:
        row.last_error = None
    if last_error is not None:
        row.last_error, row.last_error_at = last_error, last_error_at
    if uidvalidity is not None:
        row.uidvalidity = uidvalidity


def source_states(session: Session) -> dict[str, SourceState]:
    """Every source's row, by source name."""
    return {row.name: row for row in session.execute(select(SourceState)).scalars()}
