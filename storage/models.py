"""SQLAlchemy 2.x models: the durable record of every case and message.

Portable by construction: only types both SQLite and PostgreSQL have, no
dialect-specific defaults, and every uniqueness rule that dedupe and case
numbering rely on is a real constraint in the schema, so two daemons on one
PostgreSQL cannot both win a race.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """Timezone-aware datetimes stored as UTC on every backend.

    SQLite has no time zones; storing naive UTC and re-attaching UTC on read
    makes comparisons in Python and SQL agree on both databases.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):  # type: ignore[override]
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect):  # type: ignore[override]
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Customer(Base):
    __tablename__ = "customer"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    company: Mapped[str] = mapped_column(String(200), default="")
    address: Mapped[str] = mapped_column(Text, default="")
    contract_id: Mapped[str | None] = mapped_column(String(100))
    product: Mapped[str | None] = mapped_column(String(200))
    serial_number: Mapped[str | None] = mapped_column(String(100))
    warranty_end: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Master data (issue 15, storage/customers.py): the admin's own key for an
    # imported customer (re-imports update by it); NULL for one learned from mail.
    external_id: Mapped[str | None] = mapped_column(String(100), index=True, unique=True)

    contacts: Mapped[list["CustomerContact"]] = relationship(
        back_populates="customer", cascade="all, delete-orphan", lazy="selectin"
    )

    def contact(self, kind: str) -> str | None:
        for c in self.contacts:
            if c.kind == kind:
                return c.value
        return None


class CustomerContact(Base):
    """One way to reach a customer: an e-mail address, phone or fax number.

    A separate table so one customer can have many addresses and so the
    lookup by sender address (or fax number) is one indexed query.
    """

    __tablename__ = "customer_contact"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # email | phone | fax
    value: Mapped[str] = mapped_column(String(320))  # lower-cased e-mail or E.164
    # The person this address belongs to (NULL: the customer's, e.g. learned from mail).
    person_id: Mapped[int | None] = mapped_column(ForeignKey("contact_person.id", ondelete="CASCADE"), index=True)
    # A hard bounce (DSN "failed") marks an e-mail address as failing.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failing_reason: Mapped[str | None] = mapped_column(Text)

    customer: Mapped[Customer] = relationship(back_populates="contacts")


class ContactPerson(Base):
    """A person at a customer (issue 15): name, language preference, whether
    they receive the customer's quarterly statistics. Their e-mail addresses,
    phone and fax numbers are ``customer_contact`` rows with ``person_id``."""

    __tablename__ = "contact_person"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    external_id: Mapped[str | None] = mapped_column(String(100), index=True, unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    language: Mapped[str | None] = mapped_column(String(10))  # zh | en; NULL: guess from the mail
    reports: Mapped[bool] = mapped_column(Boolean, default=False)

    customer: Mapped[Customer] = relationship()
    addresses: Mapped[list[CustomerContact]] = relationship(lazy="selectin", viewonly=True,
                                                            order_by=CustomerContact.id)


class CustomerDomain(Base):
    """A mail domain declared for a customer: a new colleague there is that customer."""

    __tablename__ = "customer_domain"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    domain: Mapped[str] = mapped_column(String(255), index=True, unique=True)


class Contract(Base):
    """A service contract of a customer: its level picks policy overrides."""

    __tablename__ = "contract"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    external_id: Mapped[str] = mapped_column(String(100), index=True, unique=True)  # the contract ID
    level: Mapped[str] = mapped_column(String(40), default="")
    starts: Mapped[date | None] = mapped_column(Date)
    ends: Mapped[date | None] = mapped_column(Date)

    def valid_on(self, day: date) -> bool:
        return (self.starts is None or self.starts <= day) and (self.ends is None or day <= self.ends)


class Product(Base):
    """An installed product at a customer's site, known by its serial number."""

    __tablename__ = "product"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    serial: Mapped[str] = mapped_column(String(100), index=True, unique=True)
    model: Mapped[str] = mapped_column(String(200), default="")
    version: Mapped[str] = mapped_column(String(100), default="")
    site: Mapped[str] = mapped_column(String(300), default="")
    warranty_end: Mapped[date | None] = mapped_column(Date)
    vendor: Mapped[str] = mapped_column(String(100), default="")  # a [[vendors]] name or alias
    contract_id: Mapped[int | None] = mapped_column(ForeignKey("contract.id", ondelete="SET NULL"))

    contract: Mapped[Contract | None] = relationship()


class CaseCounter(Base):
    """Next sequence number per numbering scope (e.g. the year).

    Incremented with UPDATE ... RETURNING inside the writer's transaction:
    the row lock serialises concurrent writers, and a rolled-back
    transaction simply leaves a gap, which the numbering tolerates.
    """

    __tablename__ = "case_counter"

    scope: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


class Case(Base):
    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(60), unique=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default="new", index=True)
    priority: Mapped[str] = mapped_column(String(4))
    category: Mapped[str] = mapped_column(String(60))
    queue: Mapped[str] = mapped_column(String(60))
    route: Mapped[str] = mapped_column(String(20), default="support")
    language: Mapped[str] = mapped_column(String(10))
    source_kind: Mapped[str] = mapped_column(String(20), default="")
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id"), index=True)
    assignee: Mapped[str | None] = mapped_column(String(320))
    linked_case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    # Master data the case is about (issue 15): who wrote, which product, which contract.
    person_id: Mapped[int | None] = mapped_column(ForeignKey("contact_person.id", ondelete="SET NULL"))
    product_id: Mapped[int | None] = mapped_column(ForeignKey("product.id", ondelete="SET NULL"))
    contract_id: Mapped[int | None] = mapped_column(ForeignKey("contract.id", ondelete="SET NULL"))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    customer: Mapped[Customer | None] = relationship(lazy="joined")
    person: Mapped[ContactPerson | None] = relationship()
    product: Mapped[Product | None] = relationship()
    contract: Mapped[Contract | None] = relationship()
    messages: Mapped[list["Message"]] = relationship(
        back_populates="case", order_by="Message.id", foreign_keys="Message.case_id"
    )
    events: Mapped[list["Event"]] = relationship(back_populates="case", order_by="Event.id")

    @property
    def contract_level(self) -> str | None:
        """The level of the contract covering the case (it picks policy overrides)."""
        return (self.contract.level or None) if self.contract is not None else None


class Message(Base):
    """Every message in or out, with the inbound raw bytes kept whole."""

    __tablename__ = "message"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    direction: Mapped[str] = mapped_column(String(10))  # in | out | internal
    # Inbound dedupe: "mid:<Message-ID>" or "sha256:<hex>"; NULL for outbound.
    dedupe_key: Mapped[str | None] = mapped_column(String(600), unique=True)
    message_id: Mapped[str | None] = mapped_column(String(500), index=True)
    in_reply_to: Mapped[str] = mapped_column(Text, default="")
    references: Mapped[str] = mapped_column(Text, default="")
    from_addr: Mapped[str] = mapped_column(String(320), default="")
    from_name: Mapped[str] = mapped_column(String(300), default="")
    to_addrs: Mapped[str] = mapped_column(Text, default="")
    cc_addrs: Mapped[str] = mapped_column(Text, default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    text: Mapped[str] = mapped_column(Text, default="")
    new_text: Mapped[str] = mapped_column(Text, default="")
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    source: Mapped[str] = mapped_column(String(100), default="")
    # Outgoing messages: what they are (ack, reply, status-update, ...), the
    # outbox kind; empty for inbound mail.
    kind: Mapped[str] = mapped_column(String(40), default="", server_default="")
    # Inbound messages: the sender's role towards the case (customer, staff,
    # vendor, third-party, automation); see daemon/stages/roles.py.
    role: Mapped[str] = mapped_column(String(20), default="", server_default="")
    is_auto_reply: Mapped[bool] = mapped_column(Boolean, default=False)
    is_bounce: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    case: Mapped[Case | None] = relationship(back_populates="messages", foreign_keys=[case_id])
    attachments: Mapped[list["Attachment"]] = relationship(
        back_populates="message", order_by="Attachment.id", cascade="all, delete-orphan"
    )


class Attachment(Base):
    """Attachment metadata; the bytes live in the blob store under sha256."""

    __tablename__ = "attachment"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("message.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    inline: Mapped[bool] = mapped_column(Boolean, default=False)

    message: Mapped[Message] = relationship(back_populates="attachments")


class Event(Base):
    """Audit log: one row for every change to a case, by whom and when."""

    __tablename__ = "event"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(60))
    old: Mapped[str | None] = mapped_column(Text)
    new: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[str | None] = mapped_column(Text)  # JSON when structured

    case: Mapped[Case | None] = relationship(back_populates="events")


class OutboxMessage(Base):
    """A rendered outgoing message waiting to be sent, with its attempts."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_state_next", "state", "next_attempt_at"),
        Index("ix_outbox_rcpt_created", "rcpt_to", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(40))  # ack, notify, reply, ...
    message_id: Mapped[str] = mapped_column(String(500), unique=True)
    mail_from: Mapped[str] = mapped_column(String(320))
    rcpt_to: Mapped[str] = mapped_column(Text)  # comma-separated
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(12), default="queued")  # queued|sending|sent|failed
    # Who holds the sending lease ("host:pid"), so a restarted daemon can
    # take back at once what its dead predecessor on this host had claimed.
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    case: Mapped[Case | None] = relationship()


class Quarantine(Base):
    """A message that could not be ingested, kept whole with the reason."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(String(100))
    error: Mapped[str] = mapped_column(Text)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SourceState(Base):
    """Per-source bookkeeping shown by `casegate status`."""

    __tablename__ = "source_state"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    last_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ingested: Mapped[int] = mapped_column(Integer, default=0)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)


class InboundLease(Base):
    """Which daemon fetches from a shared source now (daemon/sources/lease.py).

    ``holder`` is NULL while the source is free; the holder raises ``beat``
    every second or so, and a peer that sees it stand still for the lease's
    time to live takes the source over.
    """

    __tablename__ = "inbound_lease"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(200))
    beat: Mapped[int] = mapped_column(BigInteger, default=0)
    acquired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    renewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CaseTimer(Base):
    """One promised notice of a case: due time, and when (if) it was handled.

    Sweeps read due rows with one indexed query and claim them with
    ``FOR UPDATE SKIP LOCKED``; the unique key (case, kind, cycle, step) makes
    "this notice is recorded once" a database rule, so two daemons on one
    PostgreSQL can never both plan or send it. ``cycle`` numbers the
    resolution rounds of a case (a reopened and re-resolved case asks for
    confirmation again); ``anchor_at`` is the instant the timer counts from
    (opening, resolution, vendor escalation), used to tell stale timers from
    current ones.
    """

    __tablename__ = "case_timer"
    __table_args__ = (
        UniqueConstraint("case_id", "kind", "cycle", "step", name="uq_case_timer_case_id"),
        Index("ix_case_timer_pending", "done_at", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    cycle: Mapped[int] = mapped_column(Integer, default=0)
    step: Mapped[int] = mapped_column(Integer, default=0)
    anchor_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(40))  # sent | skipped:<why> | cancelled
    detail: Mapped[str | None] = mapped_column(Text)  # JSON when structured

    case: Mapped[Case] = relationship()


class SurveyResponse(Base):
    """A customer's answer to a satisfaction survey or a follow-up contact."""

    __tablename__ = "survey_response"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # survey | followup
    step: Mapped[int] = mapped_column(Integer, default=0)
    score: Mapped[int | None] = mapped_column(Integer)
    recurred: Mapped[bool] = mapped_column(Boolean, default=False)
    text: Mapped[str] = mapped_column(Text, default="")
    message_id: Mapped[int | None] = mapped_column(ForeignKey("message.id", ondelete="SET NULL"))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class VendorCase(Base):
    """A case opened with an equipment vendor's support centre for one of ours."""

    __tablename__ = "vendor_case"
    __table_args__ = (UniqueConstraint("case_id", "vendor"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    vendor: Mapped[str] = mapped_column(String(100))
    address: Mapped[str] = mapped_column(String(320))
    vendor_case_no: Mapped[str | None] = mapped_column(String(100), index=True)
    escalated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    escalated_by: Mapped[str] = mapped_column(String(320), default="")
    last_sent_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_reply_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    customer_told_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
