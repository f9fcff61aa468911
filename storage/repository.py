"""Data access: the queries the pipeline, CLI and scheduler share.

Plain functions taking a Session, so each caller decides the transaction
boundary (one per message or one per batch) and this module never commits.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from .models import (
    Case,
    Customer,
    CustomerContact,
    Event,
    Message,
    OutboxMessage,
    Quarantine,
)


def find_customer(session: Session, kind: str, value: str) -> Customer | None:
    stmt = (
        select(Customer)
        .join(CustomerContact)
        .where(CustomerContact.kind == kind, CustomerContact.value == value)
    )
    return session.execute(stmt).scalars().first()


def create_customer(
    session: Session, now: datetime, *, name: str = "", company: str = "", contacts: Iterable[tuple[str, str]] = ()
) -> Customer:
    customer = Customer(name=name, company=company, address="", created_at=now)
    customer.contacts = [CustomerContact(kind=k, value=v) for k, v in contacts]
    session.add(customer)
    return customer


def message_by_dedupe_key(session: Session, key: str) -> Message | None:
    return session.execute(select(Message).where(Message.dedupe_key == key)).scalars().first()


def messages_by_dedupe_keys(session: Session, keys: Iterable[str]) -> dict[str, Message]:
    """Stored messages for many dedupe keys in one query (case loaded too)."""
    wanted = list(set(keys))
    found: dict[str, Message] = {}
    for start in range(0, len(wanted), 500):
        stmt = (
            select(Message)
            .where(Message.dedupe_key.in_(wanted[start:start + 500]))
            .options(selectinload(Message.case))
        )
        for m in session.execute(stmt).scalars():
            found[m.dedupe_key] = m  # type: ignore[index]
    return found


def customers_by_emails(session: Session, emails: Iterable[str]) -> dict[str, Customer]:
    """Customers for many e-mail addresses in one query."""
    wanted = list(set(emails))
    found: dict[str, Customer] = {}
    for start in range(0, len(wanted), 500):
        stmt = (
            select(CustomerContact.value, Customer)
            .join(Customer, CustomerContact.customer_id == Customer.id)
            .where(CustomerContact.kind == "email", CustomerContact.value.in_(wanted[start:start + 500]))
        )
        for value, customer in session.execute(stmt).all():
            found[value] = customer
    return found


def case_by_number(session: Session, number: str) -> Case | None:
    # Cases opened earlier in this transaction are indexed in session.info
    # (see remember_case), so the lookup need not flush the whole batch.
    pending = session.info.get("cases_by_number", {})
    checked = session.info.get("case_numbers_checked", ())
    with session.no_autoflush:
        for candidate in dict.fromkeys((number, number.upper())):
            case = pending.get(candidate)
            if case is None and candidate not in checked:
                case = session.execute(select(Case).where(Case.number == candidate)).scalars().first()
            if case is not None:
                return case
    return None


def prefetch_cases(session: Session, numbers: Iterable[str]) -> None:
    """Load the cases a batch names in its subjects with one query."""
    wanted = list({n.upper() for n in numbers})
    found = session.info.setdefault("cases_by_number", {})
    for start in range(0, len(wanted), 500):
        for case in session.execute(select(Case).where(Case.number.in_(wanted[start:start + 500]))).scalars():
            found[case.number] = case
    session.info["case_numbers_checked"] = set(wanted)


def remember_case(session: Session, case: Case) -> None:
    session.info.setdefault("cases_by_number", {})[case.number] = case


def case_by_message_ids(session: Session, message_ids: Sequence[str]) -> Case | None:
    """The case of the newest stored message whose Message-ID is listed."""
    ids = [m for m in message_ids if m][-50:]
    if not ids:
        return None
    stmt = (
        select(Case)
        .join(Message, Message.case_id == Case.id)
        .where(Message.message_id.in_(ids))
        .order_by(Message.id.desc())
        .limit(1)
    )
    found = session.execute(stmt).scalars().first()
    if found is None:
        # Outgoing mail is queued in the outbox before (and as well as) being
        # recorded as a message; a reply can arrive for either.
        stmt2 = (
            select(Case)
            .join(OutboxMessage, OutboxMessage.case_id == Case.id)
            .where(OutboxMessage.message_id.in_(ids))
            .limit(1)
        )
        found = session.execute(stmt2).scalars().first()
    return found


def add_event(
    session: Session,
    case: Case | None,
    now: datetime,
    actor: str,
    action: str,
    old: str | None = None,
    new: str | None = None,
    detail: Any = None,
) -> Event:
    ev = Event(
        case=case,
        at=now,
        actor=actor,
        action=action,
        old=old,
        new=new,
        detail=json.dumps(detail, ensure_ascii=False) if detail is not None else None,
    )
    session.add(ev)
    return ev


def auto_mails_since(session: Session, address: str, since: datetime) -> int:
    """Mails queued to ``address`` since ``since``, this transaction's included."""
    stmt = select(func.count(OutboxMessage.id)).where(
        OutboxMessage.rcpt_to == address, OutboxMessage.created_at >= since
    )
    recent = session.info.get("recent_mails")
    if recent is not None and address in recent:
        stored = recent[address]
    else:
        with session.no_autoflush:  # unflushed rows are counted from session.info
            stored = int(session.execute(stmt).scalar_one())
    return stored + session.info.get("queued_to", {}).get(address, 0)


def prefetch_recent_mails(session: Session, addresses: Iterable[str], since: datetime) -> None:
    """Stored mail counts per address since ``since``, for a whole batch in one query."""
    wanted = list(set(addresses))
    recent = dict.fromkeys(wanted, 0)
    for start in range(0, len(wanted), 500):
        stmt = (
            select(OutboxMessage.rcpt_to, func.count(OutboxMessage.id))
            .where(OutboxMessage.rcpt_to.in_(wanted[start:start + 500]), OutboxMessage.created_at >= since)
            .group_by(OutboxMessage.rcpt_to)
        )
        recent.update({rcpt: int(n) for rcpt, n in session.execute(stmt).all()})
    session.info["recent_mails"] = recent


def count_queued(session: Session, rcpt_to: str) -> None:
    """Note an outbox row added in this transaction (see auto_mails_since)."""
    queued = session.info.setdefault("queued_to", {})
    queued[rcpt_to] = queued.get(rcpt_to, 0) + 1


def list_cases(session: Session, status: str | None = None, limit: int = 200) -> list[Case]:
    stmt = select(Case).order_by(Case.id.desc()).limit(limit)
    if status:
        stmt = stmt.where(Case.status == status)
    return list(session.execute(stmt).scalars())


def load_case(session: Session, number: str) -> Case | None:
    case = case_by_number(session, number)
    if case is None:
        return None
    stmt = (
        select(Case)
        .where(Case.id == case.id)
        .options(
            selectinload(Case.messages).selectinload(Message.attachments),
            selectinload(Case.events),
        )
    )
    return session.execute(stmt).scalars().one()


def quarantine_by_sha(session: Session, sha256: str) -> Quarantine | None:
    return session.execute(select(Quarantine).where(Quarantine.sha256 == sha256)).scalars().first()
