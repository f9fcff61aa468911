"""Queries over case timers: insert once, find what needs planning, claim what is due.

Exactly-once is carried by the database: a timer is inserted under its
unique key (case, kind, cycle, step) inside a savepoint, so a second daemon
planning the same case meets an ``IntegrityError`` and moves on; due rows are
claimed with ``SELECT ... FOR UPDATE SKIP LOCKED`` (SQLite serialises writers
with ``BEGIN IMMEDIATE``, which gives the same).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy import Insert
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, aliased, make_transient_to_detached

from .models import Case, CaseTimer, Event, SurveyResponse
from .row_buffer import buffer_row, buffered, write_buffered

TIMER_TABLE = CaseTimer.__table__


def buffer_new_case_timer(session: Session, case: Case, **row: object) -> None:
    """A timer of a case opened in this transaction, as a plain row of the
    batch: nobody else can have planned it, so there is no conflict to guard
    (written by storage/row_buffer.py before any reader and at commit)."""
    buffer_row(session, TIMER_TABLE, {"done_at": None, "outcome": None, **row}, case)


def insert_timer(session: Session, timer: CaseTimer) -> bool:
    """Add ``timer``; False when another writer already planned the same one.

    One ``INSERT ... ON CONFLICT DO NOTHING RETURNING id`` (SQLite and
    PostgreSQL): the unique key decides, as before, without a savepoint and
    a flush per timer, which made planning a new case cost more than storing
    it. The row is then attached to the session as the persistent object.
    """
    if next(buffered(session, TIMER_TABLE), None) is not None:
        write_buffered(session)  # a new case's timers first: the unique key must see them
    if timer.case_id is None:  # a case not flushed yet: the ORM orders the rows
        try:
            with session.begin_nested():
                session.add(timer)
                session.flush()
        except IntegrityError:
            return False
        return True
    values = {c.key: getattr(timer, c.key) for c in _TIMER_COLUMNS}
    values["cycle"] = values["cycle"] or 0
    values["step"] = values["step"] or 0
    new_id = session.connection().execute(_insert_once(session.get_bind().dialect.name), values).scalar()
    if new_id is None:
        return False
    for key, value in values.items():
        setattr(timer, key, value)  # every column loaded: nothing is expired and read back
    timer.id = new_id
    make_transient_to_detached(timer)
    session.add(timer)
    return True


_TIMER_COLUMNS = [c for c in CaseTimer.__table__.columns if c.key != "id"]
_INSERT_ONCE: dict[str, Insert] = {}


def _insert_once(dialect: str) -> Insert:
    """The statement, built once per dialect (its values come as parameters)."""
    stmt = _INSERT_ONCE.get(dialect)
    if stmt is None:
        dialect_insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
        stmt = _INSERT_ONCE[dialect] = (
            dialect_insert(CaseTimer.__table__)
            .on_conflict_do_nothing(index_elements=["case_id", "kind", "cycle", "step"])
            .returning(CaseTimer.__table__.c.id))
    return stmt


def highest(session: Session, case: Case, kind: str, column: str) -> int | None:
    """The highest ``cycle`` or ``step`` of the case's timers of ``kind``."""
    col = CaseTimer.cycle if column == "cycle" else CaseTimer.step
    return session.execute(
        select(func.max(col)).where(CaseTimer.case_id == case.id, CaseTimer.kind == kind)
    ).scalar()


def pending_timers(session: Session, case: Case, kinds: Sequence[str]) -> list[CaseTimer]:
    """The case's unhandled timers of ``kinds``, soonest first."""
    stmt = (
        select(CaseTimer).where(CaseTimer.case_id == case.id, CaseTimer.kind.in_(list(kinds)),
                                CaseTimer.done_at.is_(None))
        .order_by(CaseTimer.due_at, CaseTimer.id)
    )
    return list(session.execute(stmt).scalars())


def newest_sent(session: Session, case: Case, kinds: Sequence[str]) -> CaseTimer | None:
    """The newest timer of ``kinds`` that was handled by sending."""
    stmt = (
        select(CaseTimer)
        .where(CaseTimer.case_id == case.id, CaseTimer.kind.in_(list(kinds)), CaseTimer.outcome == "sent")
        .order_by(CaseTimer.done_at.desc(), CaseTimer.id.desc()).limit(1)
    )
    return session.execute(stmt).scalars().first()


def cases_without(session: Session, statuses: Sequence[str], kinds: Sequence[str], limit: int) -> list[Case]:
    """Cases in ``statuses`` with no timer of ``kinds`` at all, locked for planning."""
    planned = exists().where(CaseTimer.case_id == Case.id, CaseTimer.kind.in_(list(kinds)))
    stmt = (
        select(Case).where(Case.status.in_(list(statuses)), ~planned)
        .order_by(Case.id).limit(limit).with_for_update(skip_locked=True, of=Case)
    )
    return list(session.execute(stmt).scalars())


def resolved_cases_without(session: Session, statuses: Sequence[str], kind: str, limit: int) -> list[Case]:
    """Resolved cases whose current resolution has no timer of ``kind``."""
    planned = exists().where(CaseTimer.case_id == Case.id, CaseTimer.kind == kind,
                             CaseTimer.anchor_at == Case.resolved_at)
    stmt = (
        select(Case).where(Case.status.in_(list(statuses)), Case.resolved_at.is_not(None), ~planned)
        .order_by(Case.id).limit(limit).with_for_update(skip_locked=True, of=Case)
    )
    return list(session.execute(stmt).scalars())


def cases_without_pending(session: Session, statuses: Sequence[str], priorities: Sequence[str], kind: str,
                          planned_kind: str, limit: int) -> list[Case]:
    """Cases of ``priorities`` in ``statuses`` that were planned (``planned_kind``)
    but have no pending timer of ``kind`` (e.g. a reopened case's status updates)."""
    t = aliased(CaseTimer)
    waiting = exists().where(and_(t.case_id == Case.id, t.kind == kind, t.done_at.is_(None)))
    opened = exists().where(CaseTimer.case_id == Case.id, CaseTimer.kind == planned_kind)
    stmt = (
        select(Case).where(Case.status.in_(list(statuses)), Case.priority.in_(list(priorities)), opened, ~waiting)
        .order_by(Case.id).limit(limit).with_for_update(skip_locked=True, of=Case)
    )
    return list(session.execute(stmt).scalars())


def claim_due(session: Session, now: datetime, limit: int) -> list[CaseTimer]:
    """Due, unhandled timers, locked for this transaction (others skip them)."""
    stmt = (
        select(CaseTimer).where(CaseTimer.done_at.is_(None), CaseTimer.due_at <= now)
        .order_by(CaseTimer.due_at, CaseTimer.id).limit(limit).with_for_update(skip_locked=True)
    )
    return list(session.execute(stmt).scalars())


def case_timers(session: Session, case: Case) -> list[CaseTimer]:
    """Every timer of the case, past and pending, in due order."""
    stmt = select(CaseTimer).where(CaseTimer.case_id == case.id).order_by(CaseTimer.due_at, CaseTimer.id)
    return list(session.execute(stmt).scalars())


def last_event_at(session: Session, case: Case, actions: Sequence[str], since: datetime | None = None) -> datetime | None:
    """When the newest event of ``actions`` on the case happened (at or after ``since``)."""
    stmt = select(func.max(Event.at)).where(Event.case_id == case.id, Event.action.in_(list(actions)))
    if since is not None:
        stmt = stmt.where(Event.at >= since)
    return session.execute(stmt).scalar()


def first_event_at(session: Session, case: Case, actions: Sequence[str], since: datetime) -> datetime | None:
    """When the first event of ``actions`` at or after ``since`` happened."""
    stmt = select(func.min(Event.at)).where(Event.case_id == case.id, Event.action.in_(list(actions)),
                                            Event.at >= since)
    return session.execute(stmt).scalar()


def newest_event(session: Session, case: Case, action: str) -> Event | None:
    stmt = (select(Event).where(Event.case_id == case.id, Event.action == action)
            .order_by(Event.at.desc(), Event.id.desc()).limit(1))
    return session.execute(stmt).scalars().first()


def events_of(session: Session, case_ids: Sequence[int], actions: Sequence[str]) -> list[Event]:
    """Events of ``actions`` on the given cases, oldest first (for reports)."""
    if not case_ids:
        return []
    stmt = (select(Event).where(Event.case_id.in_(list(case_ids)), Event.action.in_(list(actions)))
            .order_by(Event.at, Event.id))
    return list(session.execute(stmt).scalars())


def cases_in(session: Session, statuses: Sequence[str], limit: int, after_id: int = 0) -> list[Case]:
    """Cases in ``statuses`` with an id above ``after_id``, by id, locked (others skip them)."""
    stmt = (select(Case).where(Case.status.in_(list(statuses)), Case.id > after_id).order_by(Case.id).limit(limit)
            .with_for_update(skip_locked=True, of=Case))
    return list(session.execute(stmt).scalars())


POLICY_IN_FORCE = "policy-in-force"


def policy_in_force(session: Session) -> str | None:
    """The fingerprint of the policy open cases were last re-planned under (None: never)."""
    stmt = (select(Event.new).where(Event.case_id.is_(None), Event.action == POLICY_IN_FORCE)
            .order_by(Event.id.desc()).limit(1))
    return session.execute(stmt).scalar()


def scored_since(session: Session, case: Case, since: datetime) -> bool:
    """Whether the customer gave a satisfaction score on the case at or after ``since``."""
    stmt = select(func.count(SurveyResponse.id)).where(
        SurveyResponse.case_id == case.id, SurveyResponse.score.is_not(None), SurveyResponse.received_at >= since)
    return bool(session.execute(stmt).scalar())
