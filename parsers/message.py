"""The normalized message: what every later stage sees of an incoming mail.

Frozen dataclasses, so no stage can quietly rewrite what another stage read.
The raw bytes travel beside it (the pipeline keeps them whole); this object
only holds what was decoded from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


class ParseError(Exception):
    """The message cannot be turned into a ParsedMessage.

    The one error type the parser raises; ``reason`` says why in words an
    operator can act on. The caller keeps the raw bytes (quarantine).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Address:
    """One mailbox: decoded display name and lower-cased address."""

    name: str
    email: str

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>" if self.name else self.email


@dataclass(frozen=True, slots=True)
class Attachment:
    """One attachment or inline part that is not the chosen text body.

    ``filename`` is already safe: decoded (RFC 2047/2231), path parts and
    control characters stripped, never empty, never '.' or '..'.
    """

    filename: str
    content_type: str
    content: bytes
    inline: bool = False
    content_id: str | None = None

    @property
    def size(self) -> int:
        return len(self.content)


@dataclass(frozen=True, slots=True)
class FaxInfo:
    """What a fax gateway told us about a received fax (see parsers.fax)."""

    sender_number: str | None = None  # E.164 when it could be normalised
    raw_sender: str | None = None  # TSI/CSID or caller ID as the gateway wrote it
    pages: int | None = None
    received_at: datetime | None = None
    gateway: str | None = None
    # Why the fax's text could not be read (OCR failed, no document...);
    # None when it was read. Set by daemon.fax_intake, not by the parsers.
    not_read: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """Raw bytes decoded into one normalized message.

    ``text`` is the best full text body (plain, else HTML converted);
    ``new_text`` is that text with quoted history and signature cut off, which
    is what rules and commands look at.
    """

    message_id: str | None  # without angle brackets; None when absent
    in_reply_to: tuple[str, ...]  # Message-IDs, without angle brackets
    references: tuple[str, ...]
    from_: Address | None
    reply_to: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    subject: str
    date: datetime | None  # timezone-aware when the header had a zone
    text: str
    new_text: str
    html: str | None
    attachments: tuple[Attachment, ...]
    is_auto_reply: bool
    is_bounce: bool
    is_list: bool
    headers: tuple[tuple[str, str], ...] = ()  # decoded, in order
    defects: tuple[str, ...] = ()  # non-fatal problems found while parsing
    fax: FaxInfo | None = None
    language: str | None = None  # "zh" or "en" guess from the text

    def header(self, name: str) -> str | None:
        """First decoded value of header ``name`` (case-insensitive)."""
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None

    def header_all(self, name: str) -> list[str]:
        lname = name.lower()
        return [v for k, v in self.headers if k.lower() == lname]

    @property
    def sender_email(self) -> str | None:
        return self.from_.email if self.from_ else None
