"""What a source hands to the stages: the raw bytes and what it knows beside them.

A source knows things the message does not say, or says unreliably: which
source and kind of source it came from, when it arrived, the SMTP envelope
(``MAIL FROM:<>`` marks a bounce whatever the headers claim; ``RCPT TO`` may
carry a signed reply address), and for a fax spool the sidecar the gateway
wrote. These travel as data next to the bytes, the way Mailman's runners pass
``msgdata``; they are never written into headers to be parsed back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..parsers.message import FaxInfo


@dataclass(frozen=True)
class Source:
    """Where a message came from: the configured source name and its kind."""

    name: str
    kind: str  # file | stdin | retry | imap | fax | smtp | lmtp | spool


@dataclass(frozen=True)
class Envelope:
    """The SMTP envelope as the listener received it.

    ``mail_from`` is ``""`` for the null reverse path (``MAIL FROM:<>``),
    which RFC 5321 reserves for delivery status notifications.
    """

    mail_from: str
    rcpt_to: tuple[str, ...] = ()

    @property
    def null_sender(self) -> bool:
        return self.mail_from.strip().strip("<>") == ""


@dataclass(frozen=True)
class Inbound:
    """One message as a source hands it on; the only input of the pipeline."""

    raw: bytes
    source: Source
    received_at: datetime | None = None
    envelope: Envelope | None = None
    # A fax spool's sidecar data (number, pages, time), and what the source
    # found wrong with the file (damaged TIFF, unreadable sidecar).
    fax: FaxInfo | None = None
    problems: tuple[str, ...] = ()
