"""The sender's role towards the case, decided once per message.

Threading found which case a message names; this stage decides who the
sender is *to that case* (daemon/directory/roles.py has the roles and the
permission table) and so what the message may do: only the case's customer
reopens a closed case, a third party's mail is only kept for the engineers.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from ..directory.roles import AUTOMATION, CUSTOMER, REOPEN, STAFF, THIRD_PARTY, VENDOR, may
from ..directory.vendors import VendorDirectory
from ..timekeeping.aftercare import Aftercare
from ..timekeeping.policy import Policy
from .context import MessageContext
from ...storage.models import Case

# Free-mail domains: sharing one does not make two people colleagues.
PUBLIC_DOMAINS = frozenset({
    "qq.com", "foxmail.com", "163.com", "126.com", "yeah.net", "sina.com", "sina.cn", "sohu.com", "139.com",
    "189.cn", "aliyun.com", "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com",
    "yahoo.com", "icloud.com", "me.com", "proton.me", "protonmail.com",
})


def is_case_customer(case: Case, address: str, signed_for: str | None) -> bool:
    """Is ``address`` the customer of ``case`` (on record, a colleague, or the
    recipient a signed reply address of this case was issued to)?"""
    addr = address.lower()
    if signed_for is not None and signed_for.lower() == addr:
        return True
    customer = case.customer
    if customer is None:
        return False
    emails = [c.value.lower() for c in customer.contacts if c.kind == "email"]
    if addr in emails:
        return True
    domain = addr.rpartition("@")[2]
    return bool(domain) and domain not in PUBLIC_DOMAINS and any(e.rpartition("@")[2] == domain for e in emails)


class DecideRole:
    name = "role"
    after_settled = False

    def __init__(self, vendors: VendorDirectory, policy: Policy, aftercare: Aftercare) -> None:
        self.vendors = vendors
        self.policy = policy
        self.aftercare = aftercare

    def run(self, session: Session, ctx: MessageContext) -> None:
        parsed = ctx.parsed
        assert parsed is not None and ctx.now is not None
        sender = (parsed.sender_email or "").lower()
        if ctx.automatic is not None:
            ctx.role = AUTOMATION
        elif ctx.staff is not None:
            ctx.role = STAFF
        elif sender and self.vendors.by_address(sender) is not None:
            ctx.role = VENDOR
        elif ctx.match is None:
            ctx.role = CUSTOMER  # of the case this mail opens
        elif parsed.fax is not None and ctx.customer is not None and ctx.customer.id == ctx.match.case.customer_id:
            ctx.role = CUSTOMER  # a fax from the case's own number
        elif is_case_customer(ctx.match.case, sender, ctx.match.signed_by if ctx.match.how == "reply-address" else None):
            ctx.role = CUSTOMER
        else:
            ctx.role = THIRD_PARTY
        self._closed_case(session, ctx)

    def _closed_case(self, session: Session, ctx: MessageContext) -> None:
        """A customer's reply to a closed case stays on it when aftercare claims
        it (a survey answer), reopens it inside the reopen window, and otherwise
        opens a new case linked to the old one. Nobody else reopens anything."""
        match = ctx.match
        if match is None or match.case.status != "closed" or not may(ctx.role, REOPEN):
            return
        case, parsed = match.case, ctx.parsed
        assert parsed is not None and ctx.now is not None
        if self.aftercare.keep_closed(session, case, parsed, ctx.now):
            return
        if case.closed_at is not None and self.policy.reply_reopens(case.closed_at, ctx.now):
            ctx.reopen = True
        else:
            ctx.linked, ctx.match = case, None
