"""Threading: which existing case, if any, an incoming message belongs to.

Order of evidence, strongest first:
1. a signed reply address (``service+SR-2026-000042.k3f9a1@...``) among the
   recipients: it names the case and proves the sender got our mail;
2. a case number anywhere in the subject (after any Re:/Fwd:/回复:/答复:/
   转发:/AW:/SV: prefix, with or without brackets);
   (for a fax, then in its OCR text);
3. In-Reply-To / References naming a message we stored or sent.
Anything else opens a new case.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from .context import MessageContext
from .match import ThreadMatch
from ...parsers.message import ParsedMessage
from ...storage import repository as repo
from ...storage.models import Case
from ...storage.numbering import number_pattern


# A callable that finds a (case number, issued-to address) in the recipients
# from a signed reply address; supplied by the reply-address module.
ReplyAddressVerifier = Callable[[ParsedMessage], tuple[str, str] | None]


class Threader:
    def __init__(self, number_formats: str | Sequence[str],
                 verify_reply_address: ReplyAddressVerifier | None = None) -> None:
        # Every series a case number may come from (faults, feature requests...).
        formats = [number_formats] if isinstance(number_formats, str) else list(dict.fromkeys(number_formats))
        self.patterns = [number_pattern(fmt) for fmt in formats]
        self.verify_reply_address = verify_reply_address

    def numbers_in(self, text: str) -> list[str]:
        return [m.upper() for pattern in self.patterns for m in pattern.findall(text or "")]

    def find(self, session: Session, msg: ParsedMessage, fax_text: str | None = None) -> ThreadMatch | None:
        """``fax_text``: a fax's OCR text, searched after the subject, because a
        fax has no useful subject and customers write the case number on it."""
        if self.verify_reply_address is not None:
            signed = self.verify_reply_address(msg)
            if signed is not None:
                number, issued_to = signed
                case = repo.case_by_number(session, number)
                if case is not None:
                    return ThreadMatch(case, "reply-address", issued_to)
        for number in self.numbers_in(msg.subject):
            case = repo.case_by_number(session, number)
            if case is not None:
                return ThreadMatch(case, "subject")
        # OCR reads "SR-2026-000042" as "SR - 2026-000042" now and then.
        for number in self.numbers_in(re.sub(r"[ \t]*[-‐–—－][ \t]*", "-", fax_text or "")):
            case = repo.case_by_number(session, number)
            if case is not None:
                return ThreadMatch(case, "fax-text")
        ids = [*msg.references, *msg.in_reply_to]
        if ids:
            case = repo.case_by_message_ids(session, ids)
            if case is not None:
                return ThreadMatch(case, "references")
        return None


log = logging.getLogger("casegate.pipeline")


class Thread:
    """The thread stage: which case a message names (whether it may join it is the role's)."""

    name = "thread"
    after_settled = False

    def __init__(self, threader: Threader) -> None:
        self.threader = threader

    def run(self, session: Session, ctx: MessageContext) -> None:
        parsed = ctx.parsed
        assert parsed is not None and ctx.now is not None
        match = self.threader.find(session, parsed, ctx.fax_text if parsed.fax is not None else None)
        if (match is not None and match.how == "fax-text" and ctx.customer is not None
                and match.case.customer_id != ctx.customer.id):
            # A case number read by OCR from another customer's fax is more
            # likely a misread than a reply: it must not join that case.
            log.warning("case number %s read on a fax from another customer; not threading it there",
                        match.case.number)
            match = None
        ctx.match = match
