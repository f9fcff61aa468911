"""Data access: the queries the pipeline, CLI and scheduler share.

Plain functions taking a Session, so each caller decides the transaction
boundary (one per message or one per batch) and this module never commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, selectinload

from .batch import batch_cache
from .event_log import PENDING_CHECKED, add_event, newest_pending  # noqa: F401 - add_event: part of this module's API (repo.add_event)
from .models import (
    Case,
    Customer,
    Attachment,
    CustomerContact,
    Event,
    Message,
    OutboxMessage,
    Quarantine,
    SurveyResponse,
    VendorCase,
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
    # Cases opened earlier in this transaction are in the batch cache (see
    # remember_case), so the lookup need not flush the whole batch.
    cache = batch_cache(session)
    pending, checked = cache.cases, cache.checked_numbers
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
    cache = batch_cache(session)
    for start in range(0, len(wanted), 500):
        for case in session.execute(select(Case).where(Case.number.in_(wanted[start:start + 500]))).scalars():
            cache.cases[case.number] = case
    cache.checked_numbers = set(wanted)


def remember_case(session: Session, case: Case) -> None:
    batch_cache(session).cases[case.number] = case


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


def _sent_to(address: str):  # noqa: ANN202 - a SQL condition
    """Outbox rows addressed to ``address``, alone or among several recipients."""
    return or_(OutboxMessage.rcpt_to == address, OutboxMessage.rcpt_to.like(f"{address},%"),
               OutboxMessage.rcpt_to.like(f"%,{address}"), OutboxMessage.rcpt_to.like(f"%,{address},%"))


def auto_mails_since(session: Session, address: str, since: datetime) -> int:
    """Mails queued to ``address`` since ``since``, this transaction's included, each counted once.

    The stored count is taken the first time an address is asked about in a
    transaction (always before we queue anything to it: the guard asks
    first) and kept in the batch cache; mail this transaction queues is
    counted in the cache as it is queued, so nothing is counted twice.
    """
    cache = batch_cache(session)
    recent = cache.recent_mails
    if recent is None:
        recent = cache.recent_mails = {}
    queued = cache.queued_to.get(address, [])
    if address not in recent:
        stmt = select(func.count(OutboxMessage.id)).where(_sent_to(address), OutboxMessage.created_at >= since)
        with session.no_autoflush:
            stored = int(session.execute(stmt).scalar_one())
        # Rows of ours already flushed (they have ids) are in that count too.
        recent[address] = stored - sum(1 for row in queued if row.id is not None)
    return recent[address] + len(queued)


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
    batch_cache(session).recent_mails = recent


def count_queued(session: Session, row: OutboxMessage, rcpt_to: Sequence[str]) -> None:
    """Note a mail queued in this transaction, once per recipient (see auto_mails_since)."""
    queued = batch_cache(session).queued_to
    for address in rcpt_to:
        queued.setdefault(address, []).append(row)


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


# ---------------------------------------------------------------- a case's history


def last_event(session: Session, case: Case, action: str) -> Event | None:
    """The newest event ``action`` of ``case`` (e.g. "fax-received", "classified")."""
    pending = newest_pending(session, case, action)  # newer than any stored one
    if pending is not None:
        return pending
    stmt = (
        select(Event).where(Event.case_id == case.id, Event.action == action)
        .order_by(Event.id.desc()).limit(1)
        .execution_options(**{PENDING_CHECKED: True})  # none pending matches: the stored newest is it
    )
    with session.no_autoflush:  # events are written apart from the ORM's rows: a flush adds none
        return session.execute(stmt).scalars().first()


def inbound_messages(session: Session, case: Case) -> list[Message]:
    """Mail the case received, oldest first."""
    stmt = select(Message).where(Message.case_id == case.id, Message.direction == "in").order_by(Message.id)
    return list(session.execute(stmt).scalars())


def first_inbound_message(session: Session, case: Case) -> Message | None:
    stmt = (
        select(Message).where(Message.case_id == case.id, Message.direction == "in")
        .order_by(Message.id).limit(1)
    )
    return session.execute(stmt).scalars().first()


def recent_outgoing(session: Session, case: Case, *, exclude_kinds: Sequence[str] = (),
                    limit: int = 50) -> list[Message]:
    """Mail we sent on the case, newest first, without the kinds named."""
    stmt = select(Message).where(Message.case_id == case.id, Message.direction == "out")
    if exclude_kinds:
        stmt = stmt.where(Message.kind.not_in(list(exclude_kinds)))
    return list(session.execute(stmt.order_by(Message.id.desc()).limit(limit)).scalars())


def last_message_id_sent_to(session: Session, case: Case, address: str) -> str | None:
    """The Message-ID of our newest mail on the case to exactly ``address``."""
    stmt = (
        select(Message.message_id).where(Message.case_id == case.id, Message.direction == "out",
                                         Message.to_addrs == address)
        .order_by(Message.id.desc()).limit(1)
    )
    return session.execute(stmt).scalar()


def inbound_attachments(session: Session, case: Case) -> list[Attachment]:
    """Every attachment of mail the case received, in order."""
    stmt = (
        select(Attachment).join(Message, Message.id == Attachment.message_id)
        .where(Message.case_id == case.id, Message.direction == "in").order_by(Attachment.id)
    )
    return list(session.execute(stmt).scalars())


def last_assignments(session: Session, emails: Sequence[str]) -> dict[str, int]:
    """For each address, an ordering key of its newest assignment (round robin): the id
    of its newest stored "assigned" event, or a higher number for one this
    transaction made (``note_assignment``).

    Each address is read from the database once per transaction; without
    that, every new case of a batch flushed the batch and wrote its history
    early, only to learn whom the batch itself had just assigned.
    """
    known = batch_cache(session).assignments
    missing = [e for e in emails if e not in known]
    if missing:
        stmt = (
            select(Event.new, func.max(Event.id))
            .where(Event.action == "assigned", Event.new.in_(missing))
            .group_by(Event.new)
        )
        stored = {email: int(last) for email, last in session.execute(stmt).all()}
        for email in missing:
            known[email] = stored.get(email, 0)
    return {e: known[e] for e in emails if known[e]}


def note_assignment(session: Session, email: str) -> None:
    """Record that this transaction assigned a case to ``email`` (newest of all)."""
    known = batch_cache(session).assignments
    known[email] = max(known.values(), default=0) + 1


# ---------------------------------------------------------------- vendor cases


def newest_vendor_case(session: Session, case: Case) -> VendorCase | None:
    stmt = select(VendorCase).where(VendorCase.case_id == case.id).order_by(VendorCase.id.desc()).limit(1)
    return session.execute(stmt).scalars().first()


def vendor_case(session: Session, case: Case, vendor: str) -> VendorCase | None:
    stmt = select(VendorCase).where(VendorCase.case_id == case.id, VendorCase.vendor == vendor)
    return session.execute(stmt).scalars().first()


# ---------------------------------------------------------------- outgoing mail


def queue_outgoing(
    session: Session,
    *,
    case: Case | None,
    kind: str,
    message_id: str,
    mail_from: str,
    rcpt_to: Sequence[str],
    raw: bytes,
    now: datetime,
    record: Message | None = None,
) -> OutboxMessage:
    """Queue one rendered mail in the outbox, and keep ``record`` on the case.

    ``record`` is the outgoing message as the case history shows it; both
    rows are added to the caller's transaction, so a notice and its cause
    commit together. The case object (not its id) links the rows, so a case
    opened in the same transaction needs no flush.
    """
    links = {"case": case} if case is not None else {}
    row = OutboxMessage(
        **links, kind=kind, message_id=message_id, mail_from=mail_from, rcpt_to=",".join(rcpt_to),
        raw=raw, state="queued", attempts=0, next_attempt_at=now, created_at=now,
    )
    session.add(row)
    count_queued(session, row, list(rcpt_to))
    if record is not None and case is not None:
        record.case = case
        session.add(record)
    return row


def quarantine(session: Session, *, sha256: str, source: str, error: str, raw: bytes, now: datetime) -> None:
    """Keep a message's raw bytes aside with the reason (once per content)."""
    if quarantine_by_sha(session, sha256) is None:
        session.add(Quarantine(sha256=sha256, source=source, error=error, raw=raw, created_at=now))


# ---------------------------------------------------------------- the monthly report


def cases_opened_between(session: Session, start: datetime, end: datetime) -> list[Case]:
    stmt = select(Case).where(Case.opened_at >= start, Case.opened_at < end).order_by(Case.id)
    return list(session.execute(stmt).scalars())


def survey_scores(session: Session, case_ids: Sequence[int]) -> dict[int, list[int]]:
    """The satisfaction scores given per case."""
    scores: dict[int, list[int]] = {}
    if case_ids:
        stmt = (select(SurveyResponse.case_id, SurveyResponse.score)
                .where(SurveyResponse.case_id.in_(list(case_ids)), SurveyResponse.score.is_not(None)))
        for case_id, score in session.execute(stmt):
            scores.setdefault(case_id, []).append(score)
    return scores


def event_counts(session: Session, case_ids: Sequence[int], action: str) -> dict[int, int]:
    """How many ``action`` events each case has."""
    if not case_ids:
        return {}
    stmt = (select(Event.case_id, func.count(Event.id))
            .where(Event.case_id.in_(list(case_ids)), Event.action == action).group_by(Event.case_id))
    return {case_id: int(n) for case_id, n in session.execute(stmt)}


# ---------------------------------------------------------------- failing addresses


def mark_address_failing(session: Session, address: str, now: datetime, reason: str) -> Customer | None:
    """Mark a customer's e-mail address failing (a hard bounce); its customer, or None."""
    contact = session.execute(
        select(CustomerContact).where(CustomerContact.kind == "email", CustomerContact.value == address.lower())
    ).scalars().first()
    if contact is None:
        return None
    contact.failing_since = contact.failing_since or now
    contact.failing_reason = reason
    return contact.customer


def unresolved_cases_of(session: Session, customer: Customer) -> list[Case]:
    stmt = select(Case).where(Case.customer_id == customer.id, Case.status.in_(("new", "open", "pending")))
    return list(session.execute(stmt.order_by(Case.id)).scalars())


def cases_opened_by_since(session: Session, customer: Customer, since: datetime) -> int:
    """How many cases ``customer`` opened since ``since`` (flood detection).

    Counted without a flush (the batch fast path flushes once, at commit):
    stored cases from the database, this transaction's from the batch cache.
    """
    cache = batch_cache(session)
    mine = [c for c in cache.cases.values() if c.customer is customer and c.opened_at >= since]
    stored = 0
    if customer.id is not None:
        stmt = select(func.count(Case.id)).where(Case.customer_id == customer.id, Case.opened_at >= since)
        with session.no_autoflush:
            stored = int(session.execute(stmt).scalar_one())
    return stored - sum(1 for c in mine if c.id is not None) + len(mine)
