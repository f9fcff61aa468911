"""Identify the sender: automation, staff, or a customer (found or created).

Automatic mail is never answered. Most of it opens no case either: bounces
and DSNs (RFC 3464, or anything sent with the null reverse path
``MAIL FROM:<>``), read receipts (RFC 8098), abuse reports (RFC 5965 ARF),
out-of-office replies. "Do not auto-reply" (RFC 3834) is not "do not open a
case", though: a monitoring system's alert or a Google Group post from a
known customer opens or updates a case, quietly (no acknowledgement). Staff
mail never creates a customer or a case of its own. A fax's customer is the
owner of its sender number, never the gateway's From.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from ..directory.master_data import product_and_contract
from ..directory.staff import StaffDirectory
from ..directory.vendors import VendorDirectory
from ..fax.customer import fax_customer
from .context import MessageContext
from ...parsers.message import ParsedMessage
from ...storage import customers as master
from ...storage import repository as repo
from ...storage.batch import batch_cache
from ...storage.models import ContactPerson, Customer


# Kinds of automatic mail that may still be a customer's report.
QUIET_KINDS = ("monitoring", "mailing list")


def kind_of_automatic(parsed: ParsedMessage, null_sender: bool) -> str | None:
    """What kind of automatic mail this is (None: a person wrote it)."""
    ctype = (parsed.header("content-type") or "").lower()
    if "multipart/report" in ctype:
        if "feedback-report" in ctype:
            return "abuse-report"
        if "disposition-notification" in ctype:
            return "read-receipt"
        return "bounce"
    if parsed.is_bounce or null_sender:
        return "bounce"
    if parsed.is_auto_reply:
        submitted = (parsed.header("auto-submitted") or "").strip().lower()
        if submitted.startswith("auto-generated") and not _says_out_of_office(parsed):
            return "monitoring"
        return "auto-reply"
    if parsed.is_list:
        return "mailing list"
    return None


def _says_out_of_office(parsed: ParsedMessage) -> bool:
    if parsed.header("x-autoreply") or parsed.header("x-autorespond"):
        return True
    suppress = (parsed.header("x-auto-response-suppress") or "").lower()
    return "oof" in suppress or any(w in (parsed.subject or "").lower()
                                    for w in ("out of office", "automatic reply", "自动回复", "自動回覆"))


class IdentifySender:
    name = "identify-sender"
    after_settled = False

    def __init__(self, staff: StaffDirectory, vendors: VendorDirectory) -> None:
        self.staff = staff
        self.vendors = vendors

    def run(self, session: Session, ctx: MessageContext) -> None:
        parsed = ctx.parsed
        assert parsed is not None and ctx.now is not None
        envelope = ctx.inbound.envelope
        # A fax (from a fax source or a configured gateway sender) is a
        # customer's document, whatever forwarding headers the gateway added.
        ctx.automatic = None if parsed.fax is not None else kind_of_automatic(
            parsed, envelope is not None and envelope.null_sender)
        if ctx.automatic in QUIET_KINDS and self.known_customer(session, parsed):
            ctx.automatic, ctx.quiet = None, True
        if ctx.automatic is not None:
            return
        ctx.staff = self.staff.by_email(parsed.sender_email)
        if ctx.staff is None:
            ctx.customer, ctx.person = self.customer(session, parsed, ctx.now)
            ctx.product, ctx.contract = product_and_contract(
                session, ctx.customer, f"{parsed.subject}\n{ctx.fax_text or parsed.text}", ctx.now.date())

    @staticmethod
    def known_customer(session: Session, parsed: ParsedMessage) -> bool:
        """The sender is already on record as a customer's address."""
        email = parsed.sender_email
        if not email:
            return False
        cache = batch_cache(session).customers
        if cache is not None:  # prefetched for the batch: authoritative
            return email in cache
        return repo.find_customer(session, "email", email) is not None

    def customer(self, session: Session, parsed: ParsedMessage,
                 now: datetime) -> tuple[Customer | None, ContactPerson | None]:
        """The sender's customer record (found or created) and, from the master data, the person."""
        if parsed.fax is not None:  # the sender is a fax number, never the gateway's From
            return fax_customer(session, parsed.fax, now)
        email = parsed.sender_email
        if not email or self.vendors.by_address(email.lower()) is not None:
            return None, None  # a vendor's support centre is no customer of ours
        cache = batch_cache(session).customers
        customer = cache.get(email) if cache is not None else repo.find_customer(session, "email", email)
        if customer is not None:
            person = master.person_by_address(session, "email", email.lower()) if customer.external_id else None
            return customer, person
        name = (parsed.from_.name if parsed.from_ and parsed.from_.name else email.partition("@")[0])[:200]
        # A new colleague at a domain declared for a customer is that customer.
        domain = email.rpartition("@")[2].lower()
        domains = batch_cache(session).domains
        colleagues = (domains.get(domain) if domains is not None
                      else master.customer_by_domain(session, domain))
        person = None
        if colleagues is not None:
            customer, person = colleagues, master.add_person(session, colleagues, name, email)
        else:
            customer = repo.create_customer(session, now, name=name, contacts=[("email", email)])
        if cache is not None:
            cache[email] = customer
        return customer, person
