"""Case numbers from a configurable format such as ``SR-{year}-{seq:06d}``.

The sequence lives in the ``case_counter`` table, one row per scope (the
year, or year and month, when the format contains them, prefixed by the
series when a kind of case has numbers of its own: ``feature:2026``). Year
and month are those of the service's time zone: a case opened on
1 January 00:30 Beijing time is numbered in the new year. ``UPDATE ...
RETURNING`` takes the row lock inside the writer's transaction, so two
daemons on one PostgreSQL never hand out the same number; a rolled-back
transaction leaves a gap, which is allowed.
"""

from __future__ import annotations

import re
import string
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .batch import batch_cache
from .models import CaseCounter


def _fields(fmt: str) -> set[str]:
    return {name for _lit, name, _spec, _conv in string.Formatter().parse(fmt) if name}


def counter_scope(fmt: str, now: datetime, series: str = "") -> str:
    names = _fields(fmt)
    prefix = f"{series}:" if series else ""
    if "month" in names:
        return f"{prefix}{now.year:04d}-{now.month:02d}"
    if "year" in names:
        return f"{prefix}{now.year:04d}"
    return f"{prefix}all"


def _local(now: datetime, tz: str | None) -> datetime:
    return now.astimezone(ZoneInfo(tz)) if tz else now


def number_pattern(fmt: str) -> re.Pattern[str]:
    """A regex that finds numbers of this format anywhere in a subject."""
    parts = []
    for literal, name, spec, _conv in string.Formatter().parse(fmt):
        parts.append(re.escape(literal))
        if name == "year":
            parts.append(r"\d{4}")
        elif name == "month":
            parts.append(r"\d{1,2}")
        elif name == "seq":
            width = re.match(r"0?(\d+)", spec or "")
            parts.append(r"\d{%d,}" % int(width.group(1)) if width else r"\d+")
        elif name:
            parts.append(r"\w+")
    # ASCII-only boundaries: CJK characters count as \w, and a subject such
    # as "关于SR-2026-000042的进展" must still match.
    return re.compile(r"(?<![A-Za-z0-9-])(" + "".join(parts) + r")(?![A-Za-z0-9])", re.IGNORECASE)


def _advance(session: Session, scope: str, count: int) -> int:
    """Move the scope's counter on by ``count``; returns the new last value."""
    stmt = (
        update(CaseCounter)
        .where(CaseCounter.scope == scope)
        .values(value=CaseCounter.value + count)
        .returning(CaseCounter.value)
    )
    # Executed on the connection: no autoflush of the caller's pending rows.
    value = session.connection().execute(stmt).scalar()
    if value is None:
        try:
            with session.begin_nested():
                session.execute(insert(CaseCounter).values(scope=scope, value=count))
            value = count
        except IntegrityError:  # another writer created the scope first
            value = session.connection().execute(stmt).scalar_one()
    return value


def reserve_case_numbers(session: Session, count: int) -> None:
    """Let this transaction take numbers in blocks of ``count`` (batch ingest).

    Only for a transaction without savepoints around allocations: a
    savepoint rollback would undo the counter update but not the block.
    Call ``release_unused_case_numbers`` before committing.
    """
    batch_cache(session).number_block = max(1, count)


def allocate_case_number(session: Session, fmt: str, now: datetime, tz: str | None = None,
                         series: str = "") -> str:
    """The next number of ``fmt``'s series; year and month taken in ``tz``."""
    now = _local(now, tz)
    scope = counter_scope(fmt, now, series)
    cache = batch_cache(session)
    block_size = cache.number_block
    if not block_size:
        value = _advance(session, scope, 1)
        return fmt.format(year=now.year, month=now.month, seq=value)
    blocks = cache.number_blocks
    block = blocks.get(scope)
    if block is None or block[0] > block[1]:
        last = _advance(session, scope, block_size)
        block = blocks[scope] = [last - block_size + 1, last]
    value = block[0]
    block[0] += 1
    return fmt.format(year=now.year, month=now.month, seq=value)


def release_unused_case_numbers(session: Session) -> None:
    """Give back reserved numbers this transaction did not use.

    The counter row stays locked by our UPDATE until commit (PostgreSQL row
    lock; SQLite's single writer), so nobody can have moved it since: the
    guard on ``value == last`` only makes that assumption explicit.
    """
    cache = batch_cache(session)
    blocks, cache.number_blocks = cache.number_blocks, {}
    for scope, (next_value, last) in blocks.items():
        if next_value <= last:
            session.connection().execute(
                update(CaseCounter)
                .where(CaseCounter.scope == scope, CaseCounter.value == last)
                .values(value=next_value - 1)
            )
