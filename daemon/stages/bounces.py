"""Hard bounces mark a customer's address as failing.

A delivery status notification (RFC 3464) that reports a permanent failure
for one of our customers' addresses means our mail to them is not arriving:
the address is marked failing (shown on the customer's open cases and in the
engineers' notices), so somebody phones instead of waiting for an answer.
The failed recipients are read by flufl.bounce, GNU Mailman's bounce
detectors, which know the DSN formats real MTAs write.
"""

from __future__ import annotations

import email
import logging
from email.message import Message as MimeMessage

from flufl.bounce import scan_message
from sqlalchemy.orm import Session

from .context import MessageContext
from ...storage import repository as repo

log = logging.getLogger("casegate.pipeline")


def permanent_failures(raw: bytes) -> set[str]:
    """The addresses a bounce reports as permanently failed (lower case)."""
    try:
        msg: MimeMessage = email.message_from_bytes(raw)
        found = scan_message(msg)
    except Exception:  # a detector tripping over a strange DSN must not lose the message
        log.warning("bounce detectors failed on a message; no failing address recorded", exc_info=True)
        return set()
    out = set()
    for addr in found:
        text = addr.decode("utf-8", "replace") if isinstance(addr, bytes) else str(addr)
        text = text.strip().strip("<>").lower()
        if "@" in text:
            out.add(text)
    return out


class Bounces:
    def record(self, session: Session, ctx: MessageContext) -> None:
        assert ctx.now is not None
        reason = (ctx.parsed.subject if ctx.parsed is not None else "") or "permanent delivery failure"
        for address in sorted(permanent_failures(ctx.inbound.raw)):
            customer = repo.mark_address_failing(session, address, ctx.now, reason[:500])
            if customer is None:
                continue
            log.warning("customer address %s marked failing: %s", address, reason)
            for case in repo.unresolved_cases_of(session, customer):
                repo.add_event(session, case, ctx.now, "system", "address-failing", new=address,
                               detail={"reason": reason[:500]})
