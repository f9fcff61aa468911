"""Signed reply addresses: ``service+SR-2026-000042.k3f9a1b2c4d5@example.com``.

Every notification to staff carries such an address in Reply-To. The token
is an HMAC of (case number, recipient address) under a secret only the
daemon knows, so a reply *to* it proves two things no header can forge:
which case it belongs to (even when the subject was rewritten) and that
the replier received our notification for that case at that address.

Pure: no I/O, no database; the secret is handed in.

Format: ``<local>+<case number>.<token>@<domain>``. The case number may
contain '-' and even '.', so the token is split off at the *last* dot.
The token is lower-case base32 (some MTAs lower-case local parts; base32
survives that), 12 characters = 60 bits by default.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from ...parsers.message import ParsedMessage

DEFAULT_TOKEN_LENGTH = 12
MIN_TOKEN_LENGTH = 10
# Headers where the address we issued can show up on the way back.
RECIPIENT_HEADERS = ("To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To")


@dataclass(frozen=True)
class ReplyAddressFound:
    """A plus-address of the service mailbox carrying a case and a token."""

    address: str
    case_number: str
    token: str


class ReplyAddressSigner:
    def __init__(self, secret: bytes, service_address: str, token_length: int = DEFAULT_TOKEN_LENGTH) -> None:
        if len(secret) < 16:
            raise ValueError("reply-address secret must be at least 16 bytes")
        if token_length < MIN_TOKEN_LENGTH:
            raise ValueError(f"token length must be at least {MIN_TOKEN_LENGTH}")
        local, at, domain = service_address.strip().lower().partition("@")
        if not at or not local or not domain:
            raise ValueError(f"not an e-mail address: {service_address!r}")
        self._secret = secret
        self.local = local.split("+", 1)[0]
        self.domain = domain
        self.token_length = token_length

    def token(self, case_number: str, recipient: str) -> str:
        msg = f"casegate-reply\x00{case_number.strip().upper()}\x00{recipient.strip().lower()}".encode()
        digest = hmac.new(self._secret, msg, hashlib.sha256).digest()
        return base64.b32encode(digest).decode("ascii").lower()[: self.token_length]

    def address(self, case_number: str, recipient: str) -> str:
        """The Reply-To address for a mail about ``case_number`` sent to ``recipient``."""
        return f"{self.local}+{case_number.strip().upper()}.{self.token(case_number, recipient)}@{self.domain}"

    def parse(self, address: str) -> ReplyAddressFound | None:
        """Split a plus-address of *our* mailbox; None for any other address."""
        addr = address.strip().strip("<>").lower()
        local, at, domain = addr.rpartition("@")
        if not at or domain != self.domain:
            return None
        base, plus, tag = local.partition("+")
        if not plus or base != self.local:
            return None
        number, dot, token = tag.rpartition(".")
        if not dot or not number or not token:
            return None
        return ReplyAddressFound(addr, number.upper(), token)

    def verify(self, found: ReplyAddressFound, recipient: str) -> bool:
        """True when ``found`` was issued to ``recipient`` (constant-time compare)."""
        if len(found.token) != self.token_length:
            return False
        return hmac.compare_digest(found.token, self.token(found.case_number, recipient))

    def find(self, parsed: ParsedMessage) -> list[ReplyAddressFound]:
        """Every plus-address of our mailbox among the recipient headers."""
        seen: dict[str, ReplyAddressFound] = {}
        for candidate in _candidates(parsed):
            found = self.parse(candidate)
            if found is not None and found.address not in seen:
                seen[found.address] = found
        return list(seen.values())

    def verified(self, parsed: ParsedMessage) -> tuple[str, str] | None:
        """(case number, issued-to address) when a reply address verifies for the sender.

        This is the ``verify_reply_address`` callable the Threader takes. A
        token is only checked against the sender (From): the HMAC cannot be
        inverted to learn whom it was issued to, and a reply address used by
        anyone else proves nothing about them.
        """
        sender = parsed.sender_email
        if not sender:
            return None
        for found in self.find(parsed):
            if self.verify(found, sender):
                return found.case_number, sender.lower()
        return None


def _candidates(parsed: ParsedMessage) -> Iterable[str]:
    for addr in (*parsed.to, *parsed.cc):
        yield addr.email
    for name in RECIPIENT_HEADERS:
        for value in parsed.header_all(name):
            for part in value.replace(";", ",").split(","):
                part = part.strip()
                if "<" in part and ">" in part:
                    part = part[part.index("<") + 1 : part.index(">")]
                if part:
                    yield part
