"""The typed record one message carries through the stages.

Each stage reads what earlier stages found and adds its own finding, the
way Zammad's postmaster filters fill the mail hash and Mailman's handlers
fill ``msgdata``. Nothing about a message travels in untyped dictionaries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session

from ..directory.staff import StaffMember
from ..inbound import Inbound
from ...parsers.message import Attachment as ParsedAttachment
from ...parsers.message import ParsedMessage
from ...rules import Classification
from ...storage.models import Case, ContactPerson, Contract, Customer, Message, Product
from .match import ThreadMatch


@dataclass(frozen=True)
class IngestResult:
    outcome: str  # new | reply | duplicate | ignored | quarantined
    case_number: str | None = None
    message_id: str | None = None
    reason: str = ""


@dataclass
class MessageContext:
    inbound: Inbound
    sha256: str
    # Intake (outside the transaction): the parse and what it yields.
    parsed: ParsedMessage | None = None
    error: str | None = None  # why the message is quarantined instead
    dedupe_key: str | None = None
    blobs: list[tuple[ParsedAttachment, str]] = field(default_factory=list)
    fax_text: str | None = None  # a fax's own words plus its OCR text: the text rules and history see
    # Inside the transaction.
    now: datetime | None = None
    automatic: str | None = None  # bounce | abuse-report | read-receipt | auto-reply | ...: never a case
    quiet: bool = False  # monitoring or list mail from a known customer: a case, but never answered
    staff: StaffMember | None = None
    customer: Customer | None = None
    # Master data (issue 15): the person who wrote, the product and contract the mail is about.
    person: ContactPerson | None = None
    product: Product | None = None
    contract: Contract | None = None
    match: ThreadMatch | None = None
    role: str = ""  # the sender's role towards the case (daemon/directory/roles.py)
    linked: Case | None = None  # a closed case this mail follows up on (a new, linked case opens)
    reopen: bool = False  # the matched case is closed and this reply reopens it
    classification: Classification | None = None
    case: Case | None = None
    message: Message | None = None
    result: IngestResult | None = None  # set when the message is settled

    @property
    def settled(self) -> bool:
        return self.result is not None

    def settle(self, outcome: str, reason: str = "") -> None:
        parsed = self.parsed
        self.result = IngestResult(outcome, self.case.number if self.case is not None else None,
                                   parsed.message_id if parsed is not None else None, reason)


class Stage(Protocol):
    """One step of handling a message inside the batch transaction."""

    name: str
    after_settled: bool  # runs for a message an earlier stage settled (to tell people)

    def run(self, session: Session, ctx: MessageContext) -> None: ...
