"""Who the customer of a case is, and how to reach them.

The first inbound sender who is neither staff nor a vendor is the customer;
a case that came by fax is answered like its acknowledgement (the
customer's e-mail, else the e-mail-to-fax gateway for their number), never
at the gateway's own From address.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from ..directory.staff import StaffDirectory
from ..directory.vendors import VendorDirectory
from ..fax.config import FaxConfig
from .fax_route import ReplyRoute, fax_route
from ...storage import repository as repo
from ...storage.models import Case, Message


@dataclass(frozen=True)
class Requester:
    email: str
    name: str
    last_message_id: str | None
    references: tuple[str, ...]
    route: ReplyRoute | None = None  # a case that came by fax: how it is answered


def _references(message: Message) -> tuple[str, ...]:
    return tuple(r.strip("<>") for r in (message.references or "").split() if r)


class CustomerFinder:
    """Finds the customer side of a case from its stored mail and events."""

    def __init__(self, staff: StaffDirectory, vendors: VendorDirectory, fax: FaxConfig) -> None:
        self.staff = staff
        self.vendors = vendors
        self.fax = fax

    def fax_route(self, session: Session, case: Case) -> ReplyRoute | None:
        """The fax route of a case that came by fax; None for an e-mail case."""
        received = repo.last_event(session, case, "fax-received")
        if received is None:
            return None
        return fax_route(case.customer, self.fax, received.new or None, case.person)

    def requester(self, session: Session, case: Case) -> Requester | None:
        inbound = repo.inbound_messages(session, case)
        route = self.fax_route(session, case)
        if route is not None:
            if route.address is None:
                return None
            from_customer = [m for m in inbound if not m.is_auto_reply and not m.is_bounce
                             and self.staff.by_email(m.from_addr) is None]
            last = from_customer[-1] if from_customer else None
            return Requester(route.address.lower(), route.name, last.message_id if last else None,
                             _references(last) if last else (), route)
        customer_mail = [
            m for m in inbound
            if m.from_addr and not m.is_auto_reply and not m.is_bounce
            and self.staff.by_email(m.from_addr) is None and self.vendors.by_address(m.from_addr) is None
        ]
        if customer_mail:
            first, last = customer_mail[0], customer_mail[-1]
            return Requester(first.from_addr.lower(), first.from_name, last.message_id, _references(last))
        if case.customer is not None:
            email = case.customer.contact("email")
            if email:
                return Requester(email, case.customer.name, None, ())
        return None
