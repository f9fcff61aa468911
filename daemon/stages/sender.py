"""Identify the sender: automation, staff, or a customer (found or created).

Automatic mail (bounces, auto-replies, list mail, and anything sent with the
null reverse path ``MAIL FROM:<>``) is never answered and never creates a
customer. Staff mail never creates a customer or a case of its own. A fax's
customer is the owner of its sender number, never the gateway's From.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from ..directory.staff import StaffDirectory
from ..directory.vendors import VendorDirectory
from ..fax.customer import fax_customer
from .context import MessageContext
from ...parsers.message import ParsedMessage
from ...storage import repository as repo
from ...storage.batch import batch_cache
from ...storage.models import Customer


def kind_of_automatic(parsed: ParsedMessage, null_sender: bool) -> str | None:
    if parsed.is_bounce or null_sender:
        return "bounce"
    if parsed.is_auto_reply:
        return "auto-reply"
    if parsed.is_list:
        return "mailing list"
    return None


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
        ctx.automatic = kind_of_automatic(parsed, envelope is not None and envelope.null_sender)
        if ctx.automatic is not None:
            return
        ctx.staff = self.staff.by_email(parsed.sender_email)
        if ctx.staff is None:
            ctx.customer = self.customer(session, parsed, ctx.now)

    def customer(self, session: Session, parsed: ParsedMessage, now: datetime) -> Customer | None:
        if parsed.fax is not None:  # the sender is a fax number, never the gateway's From
            return fax_customer(session, parsed.fax, now)
        email = parsed.sender_email
        if not email or self.vendors.by_address(email.lower()) is not None:
            return None  # a vendor's support centre is no customer of ours
        cache = batch_cache(session).customers
        customer = cache.get(email) if cache is not None else repo.find_customer(session, "email", email)
        if customer is None:
            name = parsed.from_.name if parsed.from_ and parsed.from_.name else email.partition("@")[0]
            customer = repo.create_customer(session, now, name=name[:200], contacts=[("email", email)])
            if cache is not None:
                cache[email] = customer
        return customer
