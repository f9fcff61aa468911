"""Which customer sent a fax: the normalised sender number, never the gateway.

A fax-gateway mail comes From the gateway (``fax@gateway``); taking that
address as the customer would merge every fax sender into one customer and
send acknowledgements to the gateway itself. So a fax is matched by its
E.164 sender number against the customers' ``fax`` (then ``phone``)
contacts, and an unknown number creates a customer holding just that
number, named after the station id the remote machine announced.

A number of the customer master data (``casegate customers import``
normalises numbers to E.164 the same way) names its person too: the case
is that person's, greeted by name, in their language.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy.orm import Session

from ...parsers.message import FaxInfo
from ...storage import customers as master
from ...storage import repository as repo
from ...storage.models import ContactPerson, Customer

# What a gateway writes around a bare number ("*49 201 ...", "020-8768 1011"):
# such a station id names nobody, so the customer is named by the E.164 number.
_ONLY_NUMBER = re.compile(r"^[\s+*#\d\-./()]*$")


def station_name(info: FaxInfo) -> str:
    """A display name for a new fax customer: the TSI text when it says more
    than the number ("ACME GZ +86 20 8768 1011"), else the number."""
    raw = (info.raw_sender or "").strip()
    if raw and not _ONLY_NUMBER.match(raw):
        return raw[:200]
    return info.sender_number or raw[:200] or "fax"


def fax_customer(session: Session, info: FaxInfo, now: datetime) -> tuple[Customer | None, ContactPerson | None]:
    """The customer (and person, when the master data names one) owning
    ``info.sender_number``; an unknown number creates a customer.

    (None, None) when the gateway gave no usable number: the case then has no
    customer (an operator assigns one) rather than the gateway's address.
    """
    number = info.sender_number
    if not number:
        return None, None
    for kind in ("fax", "phone"):
        person = master.person_by_address(session, kind, number)
        if person is not None:
            return person.customer, person
    customer = repo.find_customer(session, "fax", number) or repo.find_customer(session, "phone", number)
    if customer is None:
        customer = repo.create_customer(session, now, name=station_name(info), contacts=[("fax", number)])
        session.flush()
    return customer, None
