"""Intake: what is done to each message before the transaction opens.

Parsing, storing attachment blobs and reading faxes (OCR) are slow or pure
CPU work; doing them outside the database transaction keeps the write lock
short. A message that cannot be parsed is not an error here: it is marked
for quarantine with the reason and flows on.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from ..fax.intake import FaxIntake
from ..inbound import Inbound
from .context import MessageContext
from ...parsers import ParseError, parse_message
from ...parsers.message import ParsedMessage
from ...storage.blobs import BlobStore

log = logging.getLogger("casegate.pipeline")

ParseOutcome = ParsedMessage | str  # the message, or the reason it could not be parsed


def parse_outcome(raw: bytes, envelope_from: str | None = None) -> ParseOutcome:
    """Parse ``raw``; a failure is returned as its reason, never raised.

    ``envelope_from`` (the SMTP ``MAIL FROM``, when a source knows it) is the
    last fallback for the sender, after From, Sender, Reply-To and Return-Path.
    """
    try:
        return parse_message(raw, envelope_from=envelope_from or None)
    except ParseError as exc:
        return f"cannot parse: {exc.reason}"
    except Exception as exc:  # a parser bug must not lose the message
        return f"parser error: {type(exc).__name__}: {exc}"


def parse_and_keep_attachments(blob_root: str, raw: bytes, envelope_from: str | None = None) -> ParseOutcome:
    """``parse_outcome``, then the attachments written to the blob store.

    Run in a parse worker process (daemon/sources/parse_pool.py): hashing,
    writing and fsyncing attachments there takes that work off the daemon's
    storing thread (the GIL's one core) onto the other. ``Intake.prepare``
    then finds each blob in place (content addressing) and only checks it.
    A write that fails here is tried again there, where it is reported.
    """
    outcome = parse_outcome(raw, envelope_from)
    if not isinstance(outcome, str) and outcome.attachments:
        store = BlobStore(Path(blob_root))
        try:
            for att in outcome.attachments:
                store.put(att.content)
        except OSError:
            pass
    return outcome


def envelope_sender(inbound: Inbound) -> str | None:
    """The envelope sender a source handed on; None for the null sender or none known."""
    env = inbound.envelope
    if env is None or env.null_sender:
        return None
    return env.mail_from.strip().strip("<>")


def dedupe_key(parsed: ParsedMessage, sha256: str) -> str:
    """Same Message-ID, or same bytes when there is none: the same message."""
    if parsed.message_id:
        mid = parsed.message_id.strip()
        if len(mid) <= 400:
            return "mid:" + mid
        return "midsha:" + hashlib.sha256(mid.encode("utf-8", "surrogateescape")).hexdigest()
    return "sha256:" + sha256


class Intake:
    def __init__(self, blobs: BlobStore, fax: FaxIntake) -> None:
        self.blobs = blobs
        self.fax = fax

    def prepare(self, inbound: Inbound, outcome: ParseOutcome) -> MessageContext:
        ctx = MessageContext(inbound=inbound, sha256=hashlib.sha256(inbound.raw).hexdigest())
        if isinstance(outcome, str):
            ctx.error = outcome
            if outcome.startswith("parser error"):
                log.error("parser crashed on a message from %s: %s", inbound.source.name, outcome)
            return ctx
        ctx.parsed = outcome
        ctx.dedupe_key = dedupe_key(outcome, ctx.sha256)
        try:
            ctx.blobs = [(att, self.blobs.put(att.content)) for att in outcome.attachments]
        except OSError as exc:
            ctx.error = f"cannot store attachments: {exc}"
            return ctx
        try:
            reading = self.fax.read_fax(outcome, inbound)
        except Exception:  # a fax-reading bug must not lose the message: it goes on as plain mail
            log.exception("reading a fax from %s failed; keeping it as plain mail", inbound.source.name)
            reading = None
        if reading is not None:
            ctx.parsed, ctx.fax_text = reading.parsed, reading.text
        return ctx
