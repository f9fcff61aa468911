"""Queries for operating casegate: what a Prometheus scrape, `/readyz` and `casegate doctor` read.

Each is one small aggregate over an indexed column, cheap enough to run at
every scrape.
"""

from __future__ import annotations

from datetime import datetime

from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from .db import MIGRATIONS_DIR, Database
from .models import Case, CaseTimer, Event, Message, OutboxMessage, Quarantine

ESCALATION_KIND = "escalation"


def ping(session: Session) -> None:
    """Raises when the database does not answer."""
    session.execute(text("SELECT 1"))


def outbox_by_state(session: Session) -> dict[str, int]:
    rows = session.execute(select(OutboxMessage.state, func.count()).group_by(OutboxMessage.state))
    return {state: n for state, n in rows}


def quarantine_count(session: Session) -> int:
    return session.execute(select(func.count()).select_from(Quarantine)).scalar_one()


def ignored_count(session: Session) -> int:
    """Inbound messages that opened no case (see storage/ignored.py)."""
    stmt = select(func.count()).select_from(Message).where(Message.case_id.is_(None), Message.direction != "out")
    return session.execute(stmt).scalar_one()


def timers_due_by_priority(session: Session, now: datetime) -> dict[str, int]:
    """Pending SLA timers whose time has come, by the case's priority."""
    stmt = (select(Case.priority, func.count()).select_from(CaseTimer).join(Case, CaseTimer.case_id == Case.id)
            .where(CaseTimer.done_at.is_(None), CaseTimer.due_at <= now).group_by(Case.priority))
    return {p: n for p, n in session.execute(stmt)}


def breaches_by_priority(session: Session) -> dict[str, int]:
    """SLA breaches recorded on cases (``sla-breached`` events), by the case's priority."""
    stmt = (select(Case.priority, func.count()).select_from(Event).join(Case, Event.case_id == Case.id)
            .where(Event.action == "sla-breached").group_by(Case.priority))
    return {p: n for p, n in session.execute(stmt)}


def escalations_by_level(session: Session) -> dict[int, int]:
    """Escalation mails sent, by step of the escalation matrix (1 = the first level)."""
    stmt = (select(CaseTimer.step, func.count())
            .where(CaseTimer.kind == ESCALATION_KIND, CaseTimer.outcome == "sent").group_by(CaseTimer.step))
    return {int(step) + 1: n for step, n in session.execute(stmt)}


def schema_revision(db: Database) -> tuple[str | None, str | None, bool]:
    """(the database's Alembic revision, the newest revision this code knows,
    whether this code knows the database's revision: False when a newer
    casegate migrated it)."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    scripts = ScriptDirectory.from_config(cfg)
    head = scripts.get_current_head()
    with db.engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    known = True
    if current is not None:
        try:
            known = scripts.get_revision(current) is not None
        except Exception:  # alembic raises its own "no such revision" errors
            known = False
    return current, head, known


def outbox_kind_count(session: Session, kind: str) -> int:
    """Outgoing mails of one kind ever queued (e.g. one month's report)."""
    stmt = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == kind)
    return session.execute(stmt).scalar_one()
