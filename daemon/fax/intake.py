"""Faxes inside the pipeline: recognise them, read them (OCR), flag the unread.

The sources stay thin: a fax-gateway mailbox and the spool folder hand raw
RFC 5322 bytes (and, for the spool, the sidecar's data) to the pipeline like
any other source. The stages ask this module three things:

* ``read_fax`` (at intake, outside the database transaction, because OCR
  takes about a second per page): is the message a fax (a fax source, or a
  gateway notice recognised by ``[fax]`` patterns from a configured gateway
  sender)? Then its FaxInfo, and the OCR text of the fax documents (the
  parts Internet fax marks ``application=faxbw``, else the TIFF/PDF
  attachments) as the text rules see; the original file stays attached;
* ``adjust_classification``: a fax whose text could not be read cannot be
  judged by keyword rules, so it gets at least ``[fax] default_priority``;
* ``record``: events ``fax-received`` and ``fax-not-read`` (with the
  reason) on the case, so an operator sees what happened.

``explain`` tells the same decision in words, for ``casegate fax test``.
Answers to fax-only customers are the notifier's (daemon/notify/fax_route.py).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import tzinfo

from sqlalchemy.orm import Session

from ..config import Config, ImapSourceConfig, SpoolSourceConfig
from ..inbound import Inbound
from .config import FaxConfig
from ...parsers.fax import FaxRecognition, MimePart, fax_sub_address, leaf_parts, recognise_fax, sender_address
from ...parsers.language import guess_language
from ...parsers.message import Attachment, FaxInfo, ParsedMessage
from ...parsers.ocr import OcrResult, count_pages, ocr_document
from ...rules import Classification
from ...storage import repository as repo
from ...storage.models import Case, Message

log = logging.getLogger("casegate.fax")

FAX_SOURCE_KINDS = ("fax", "spool")
_PRIORITY_ORDER = ("P1", "P2", "P3", "P4")
OcrFunc = Callable[..., OcrResult]


_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_TIFF_TYPES = ("image/tiff", "image/tif", "image/x-tiff")
_PDF_TYPES = ("application/pdf", "application/x-pdf")


@dataclass(frozen=True)
class FaxDocument:
    """An attachment taken as (part of) the fax, and why."""

    attachment: Attachment
    why: str
    part: int | None = None  # its leaf part number in the message (1-based), when known


def _document_reason(att: Attachment) -> str | None:
    """Why ``att`` is a TIFF or PDF document, or None. Gateways label
    attachments application/octet-stream often enough that the magic bytes
    and the file name count as much as the content type."""
    head = att.content[:1024]
    ctype = att.content_type.split(";")[0].strip().lower()
    name = att.filename.lower()
    if head[:4] in _TIFF_MAGIC:
        return "a TIFF image (by its bytes)"
    if b"%PDF-" in head:
        return "a PDF document (by its bytes)"
    if ctype in _TIFF_TYPES or ctype in _PDF_TYPES:
        return f"{ctype} (by its content type)"
    if name.endswith((".tif", ".tiff", ".pdf")):
        return "by its file name"
    return None


def find_fax_documents(attachments: Sequence[Attachment], parts: Sequence[MimePart] = ()) -> list[FaxDocument]:
    """The attachments that are the fax itself.

    When the message marks its fax image (Internet fax: ``image/tiff;
    application=faxbw``, read from ``parts``, see parsers.fax.leaf_parts),
    that part is the fax and nothing else is; otherwise every TIFF or PDF
    attachment is. The same content attached twice is read once.
    """
    by_digest = {p.sha256: p for p in parts}
    marked: list[FaxDocument] = []
    others: list[FaxDocument] = []
    seen: set[str] = set()
    for att in attachments:
        digest = hashlib.sha256(att.content).hexdigest()
        if digest in seen:
            continue
        part = by_digest.get(digest)
        if part is not None and part.is_fax_image:
            seen.add(digest)
            marked.append(FaxDocument(att, f"marked as the fax image ({part.content_type})", part.index))
            continue
        why = _document_reason(att)
        if why is not None:
            seen.add(digest)
            others.append(FaxDocument(att, why, part.index if part is not None else None))
    return marked or others


def fax_documents(attachments: Sequence[Attachment], parts: Sequence[MimePart] = ()) -> list[Attachment]:
    """The attachments that are the fax itself (see :func:`find_fax_documents`)."""
    return [doc.attachment for doc in find_fax_documents(attachments, parts)]


def more_severe(a: str, b: str) -> str:
    rank = {p: i for i, p in enumerate(_PRIORITY_ORDER)}
    return a if rank.get(a, 99) <= rank.get(b, 99) else b


@dataclass(frozen=True)
class FaxReading:
    """A message read as a fax: with its FaxInfo, and the text the rules see."""

    parsed: ParsedMessage
    text: str


@dataclass(frozen=True)
class FaxText:
    """What reading the fax documents gave: text, pages, and why not (if not).

    ``pages`` were read; ``total_pages`` the documents have (as far as known).
    """

    text: str
    pages: int
    not_read: str | None
    seconds: float
    total_pages: int = 0


@dataclass(frozen=True)
class Verdict:
    """Whether a message is read as a fax in one kind of source, and why."""

    fax: bool
    why: str


@dataclass(frozen=True)
class FaxExplanation:
    """What ``casegate fax test`` shows: what was recognised, which parts
    are the fax, and how a fax source and an ordinary mailbox would take it."""

    sender: str
    recognition: FaxRecognition
    documents: tuple[tuple[FaxDocument, int | None], ...]  # with their page counts
    in_fax_source: Verdict
    in_mailbox: Verdict

    @property
    def pages(self) -> int | None:
        """Pages as the gateway stated them, else as counted in the documents."""
        info = self.recognition.info
        if info is not None and info.pages is not None:
            return info.pages
        counts = [n for _, n in self.documents if n is not None]
        return sum(counts) if counts else None


class FaxIntake:
    def __init__(
        self,
        cfg: FaxConfig,
        tz: tzinfo,
        fax_source_names: frozenset[str] = frozenset(),
        ocr: OcrFunc = ocr_document,
    ) -> None:
        self.cfg = cfg
        self.tz = tz
        self.fax_source_names = fax_source_names
        self.ocr = ocr

    # ------------------------------------------------------------ prepare

    def is_fax_source(self, kind: str, name: str) -> bool:
        return kind in FAX_SOURCE_KINDS or name in self.fax_source_names

    def recognise(self, parsed: ParsedMessage, parts: Sequence[MimePart] = ()) -> FaxRecognition:
        """The ``[fax]`` patterns applied to the message, whatever its source."""
        return recognise_fax(
            parsed.subject, parsed.text, parsed.headers, [a.filename for a in parsed.attachments],
            self.cfg.all_patterns, self.cfg.default_region, self.tz,
            content_types=[p.content_type for p in parts],
        )

    def mailbox_refusal(self, parsed: ParsedMessage) -> str | None:
        """Why a message in an ordinary mailbox cannot be a fax; None: it may be.

        Anyone can write "Fax from +1 900 ..." into a subject, or send from
        FAX=+1900...@anywhere: in an ordinary mailbox only a configured
        gateway's notices are faxes, or casegate would answer premium numbers
        through the fax gateway.
        """
        if not self.cfg.detect_in_mail:
            return "[fax] detect_in_mail = false"
        if not self.cfg.is_gateway_sender(parsed.sender_email):
            return f"its sender {parsed.sender_email or '(none)'} is not in [fax] gateway_senders"
        return None

    def detect(
        self, parsed: ParsedMessage, inbound: Inbound, parts: Sequence[MimePart] | None = None
    ) -> FaxInfo | None:
        """FaxInfo when the message is a fax; None for ordinary mail.

        ``parts``: the message's leaf parts when already read (else read here,
        and only for a message that may be a fax).
        """
        kind, name = inbound.source.kind, inbound.source.name
        forced = self.is_fax_source(kind, name)
        if inbound.fax is not None:  # what the spool's sidecar said
            return inbound.fax
        if parsed.fax is not None:
            return parsed.fax
        if not forced and self.mailbox_refusal(parsed) is not None:
            return None
        info = self.recognise(parsed, leaf_parts(inbound.raw) if parts is None else parts).info
        if info is None and forced:
            info = FaxInfo(gateway=kind if kind != "fax" else name)
        return info

    def explain(self, parsed: ParsedMessage, raw: bytes) -> FaxExplanation:
        """How this message would be taken, in words (``casegate fax test``)."""
        parts = leaf_parts(raw)
        recognition = self.recognise(parsed, parts)
        docs = find_fax_documents(parsed.attachments, parts)
        counted = tuple((doc, count_pages(doc.attachment.content, doc.attachment.content_type)) for doc in docs)
        if recognition.info is not None:
            source = Verdict(True, "every message of a fax source is a fax")
        else:
            source = Verdict(True, "every message of a fax source is a fax; no pattern recognised this one, "
                                   "so it has no number (no customer, no answer)")
        if not docs:
            source = Verdict(True, source.why + "; it has no TIFF or PDF to read (flagged fax-not-read)")
        refusal = self.mailbox_refusal(parsed)
        if refusal is None and recognition.info is None:
            refusal = "no fax pattern recognises it"
        if refusal is None and not docs:
            refusal = "it has no fax document (TIFF or PDF)"
        mailbox = (Verdict(True, f"its sender {parsed.sender_email} is a configured gateway sender")
                   if refusal is None else Verdict(False, refusal))
        return FaxExplanation(sender_address(parsed.headers), recognition, counted, source, mailbox)

    def read(self, docs: Sequence[Attachment]) -> FaxText:
        """OCR every fax document within one page and time budget."""
        if not docs:
            return FaxText("", 0, "no fax document (TIFF or PDF) attached", 0.0)
        if not self.cfg.ocr:
            return FaxText("", 0, "OCR is switched off ([fax] ocr = false)", 0.0)
        start = time.monotonic()
        budget = self.cfg.ocr_timeout.total_seconds()
        pages_left = self.cfg.ocr_max_pages
        texts: list[str] = []
        errors: list[str] = []
        pages = total = 0
        for doc in docs:
            remaining = budget - (time.monotonic() - start)
            if pages_left < 1 or remaining <= 0:
                errors.append(f"{doc.filename}: not read (page or time limit reached)")
                continue
            res = self.ocr(
                doc.content, doc.content_type, self.cfg.ocr_languages, pages_left, remaining,
                self.cfg.ocr_dpi, workers=self.cfg.ocr_workers,
            )
            pages += res.pages
            total += res.total_pages if res.total_pages is not None else res.pages
            pages_left -= res.pages
            if res.text.strip():
                texts.append(res.text.replace("\f", "\n\n"))
            if not res.ok:
                errors.append(f"{doc.filename}: {res.error}")
            elif not res.text.strip():
                errors.append(f"{doc.filename}: no text found on {res.pages} page(s)")
        not_read = "; ".join(errors) if errors else None
        return FaxText("\n\n".join(texts), pages, not_read, round(time.monotonic() - start, 3), total)

    def read_fax(self, parsed: ParsedMessage, inbound: Inbound) -> FaxReading | None:
        """The message as a fax (FaxInfo set) and the text rules should read; None for mail."""
        source = inbound.source
        if (inbound.fax is None and parsed.fax is None and not self.is_fax_source(source.kind, source.name)
                and self.mailbox_refusal(parsed) is not None):
            return None  # ordinary mail: its parts are not even read
        parts = leaf_parts(inbound.raw)
        info = self.detect(parsed, inbound, parts)
        if info is None:
            return None
        docs = fax_documents(parsed.attachments, parts)
        if not docs and not self.is_fax_source(source.kind, source.name):
            # In an ordinary mailbox, "Fax from the Beijing office" without a
            # TIFF/PDF is a customer's mail, not a gateway notice.
            return None
        result = self.read(docs)
        # Internet fax states no page count: the documents tell it.
        info = replace(info, not_read=result.not_read, pages=info.pages or result.total_pages or None)
        # The language is the fax's, not the gateway notice's (often English);
        # unread, it is unknown and the service default applies.
        as_fax = replace(parsed, fax=info, language=guess_language(result.text) if result.text else None)
        own = parsed.new_text.strip()
        parts = [own] if own else []
        if result.text:
            parts.append(f"—— 传真内容 (OCR) / fax text (OCR) ——\n{result.text}")
        if result.not_read:
            log.warning("fax from %s (source=%s) not read: %s",
                        info.sender_number or info.raw_sender or "unknown number", source.name, result.not_read)
        else:
            log.info("fax from %s (source=%s): %d page(s) read in %.1f s",
                     info.sender_number or "unknown number", source.name, result.pages, result.seconds)
        return FaxReading(as_fax, "\n\n".join(parts))

    # ------------------------------------------------------------ classify / store

    def adjust_classification(self, parsed: ParsedMessage, result: Classification) -> Classification:
        """An unread fax gets at least ``default_priority``: rules could not see it."""
        if parsed.fax is None or not parsed.fax.not_read:
            return result
        tags = result.tags if "fax-not-read" in result.tags else (*result.tags, "fax-not-read")
        return replace(result, priority=more_severe(result.priority, self.cfg.default_priority), tags=tags)

    def record(self, session: Session, case: Case | None, message: Message, parsed: ParsedMessage) -> None:
        """The fax's metadata and unread state as case events."""
        info = parsed.fax
        if info is None or case is None:
            return
        now = message.created_at
        detail = {"raw_sender": info.raw_sender, "gateway": info.gateway, "pages": info.pages,
                  "received_at": info.received_at.isoformat() if info.received_at else None}
        sub_address = fax_sub_address(sender_address(parsed.headers))
        if sub_address:  # RFC 3192 /T33S=: the extension behind the sender's fax number
            detail["sub_address"] = sub_address
        repo.add_event(session, case, now, info.sender_number or "fax", "fax-received", new=info.sender_number,
                       detail=detail)
        if info.not_read:
            repo.add_event(session, case, now, "system", "fax-not-read", detail={"reason": info.not_read})


def fax_source_names(config: Config) -> frozenset[str]:
    """Sources whose every message is a fax (IMAP ``fax = true``, spools)."""
    return frozenset(
        s.name for s in config.sources
        if (isinstance(s, ImapSourceConfig) and s.fax) or isinstance(s, SpoolSourceConfig)
    )


def build_fax_intake(config: Config, cfg: FaxConfig, ocr: OcrFunc = ocr_document) -> FaxIntake:
    """The fax intake for ``config``'s sources, with ``[fax]`` already validated."""
    return FaxIntake(cfg, cfg.tzinfo(config), fax_source_names(config), ocr)


__all__ = [
    "FaxDocument", "FaxExplanation", "FaxIntake", "FaxReading", "FaxText", "Verdict", "build_fax_intake",
    "fax_documents", "find_fax_documents", "more_severe",
]
