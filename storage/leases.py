"""The ``inbound_lease`` table: which daemon fetches from a shared source now.

The rules (who may take a lease, when it counts as abandoned) live in
daemon/sources/lease.py; these are the statements. Every change is a
compare-and-set ``UPDATE`` whose ``WHERE`` names what the caller last saw,
so of two daemons racing for one lease exactly one sees its row updated,
on SQLite and on PostgreSQL alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .models import InboundLease

_T = cast(Table, InboundLease.__table__)


@dataclass(frozen=True)
class LeaseState:
    """A lease as read: who holds it (None: free) and its heartbeat counter."""

    holder: str | None
    beat: int


def read_lease(session: Session, name: str) -> LeaseState:
    """The lease of ``name``, made (free) on first use."""
    row = session.execute(select(_T.c.holder, _T.c.beat).where(_T.c.name == name)).first()
    if row is not None:
        return LeaseState(row.holder, row.beat)
    try:
        with session.begin_nested():
            session.execute(_T.insert().values(name=name, holder=None, beat=0))
    except IntegrityError:  # a peer made it first
        row = session.execute(select(_T.c.holder, _T.c.beat).where(_T.c.name == name)).one()
        return LeaseState(row.holder, row.beat)
    return LeaseState(None, 0)


def take_lease(session: Session, name: str, holder: str, seen: LeaseState, now: datetime) -> bool:
    """Make ``holder`` the holder, if the lease is still as ``seen``; True when it is ours."""
    held_as_seen = _T.c.holder.is_(None) if seen.holder is None else _T.c.holder == seen.holder
    result = session.execute(
        update(_T).where(_T.c.name == name, held_as_seen, _T.c.beat == seen.beat)
        .values(holder=holder, beat=_T.c.beat + 1, acquired_at=now, renewed_at=now)
    )
    return result.rowcount == 1


def renew_lease(session: Session, name: str, holder: str, now: datetime) -> bool:
    """One heartbeat of ``holder``; False when the lease is no longer its own."""
    result = session.execute(
        update(_T).where(_T.c.name == name, _T.c.holder == holder)
        .values(beat=_T.c.beat + 1, renewed_at=now)
    )
    return result.rowcount == 1


def release_lease(session: Session, name: str, holder: str, now: datetime) -> None:
    """Give the lease up (a clean stop), so a peer takes it at once."""
    session.execute(
        update(_T).where(_T.c.name == name, _T.c.holder == holder)
        .values(holder=None, beat=_T.c.beat + 1, renewed_at=now)
    )
