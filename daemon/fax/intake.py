"""Faxes inside the pipeline: recognise them, read them (OCR), flag the unread.

The sources stay thin: a fax-gateway mailbox and the spool folder hand raw
RFC 5322 bytes to the pipeline like any other source. This module plugs into
the pipeline's hooks (see :func:`install`):

* ``prepare`` (outside the database transaction, because OCR takes about a
  second per page): decide whether the message is a fax (a fax source, or a
  gateway notice recognised by ``[fax]`` patterns), attach its FaxInfo, and
  give the rules the OCR text of the TIFF/PDF attachments as the body; the
  original file stays attached by the pipeline;
* ``adjust_classification``: a fax whose text could not be read cannot be
  judged by keyword rules, so it gets at least ``[fax] default_priority``;
* ``record`` (after store): events ``fax-received`` and ``fax-not-read``
  (with the reason) on the case, so an operator sees what happened;
* ``reply_route``: acknowledgements to fax-only customers go through the
  e-mail-to-fax gateway (daemon/fax/reply.py); ``fax_case_route`` does the
  same for the scheduler's notices on a case that came by fax.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import tzinfo
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from ..config import Config, ImapSourceConfig, SpoolSourceConfig
from .config import FaxConfig, load_fax_config
from ..notify.fax_route import ReplyRoute, customer_route, fax_route, reply_route
from ...parsers.fax import extract_fax_info
from ...parsers.language import guess_language
from ...parsers.message import Attachment, FaxInfo, ParsedMessage
from ...parsers.ocr import OcrResult, ocr_document
from ...rules import Classification
from ...storage import repository as repo
from ...storage.models import Case, Customer, Message

if TYPE_CHECKING:
    from ..stages.pipeline import Pipeline, _Prepared

log = logging.getLogger("casegate.fax")

FAX_SOURCE_KINDS = ("fax", "spool")
_PRIORITY_ORDER = ("P1", "P2", "P3", "P4")
OcrFunc = Callable[..., OcrResult]


def fax_documents(attachments: Sequence[Attachment]) -> list[Attachment]:
    """The attachments that are the fax itself: TIFF or PDF, by bytes or type.

    Gateways label attachments application/octet-stream often enough that
    the magic bytes and the file name count as much as the content type.
    """
    docs = []
    for att in attachments:
        head = att.content[:1024]
        ctype = att.content_type.split(";")[0].strip().lower()
        name = att.filename.lower()
        if (
            head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
            or b"%PDF-" in head
            or ctype in ("image/tiff", "image/tif", "image/x-tiff", "application/pdf", "application/x-pdf")
            or name.endswith((".tif", ".tiff", ".pdf"))
        ):
            docs.append(att)
    return docs


def more_severe(a: str, b: str) -> str:
    rank = {p: i for i, p in enumerate(_PRIORITY_ORDER)}
    return a if rank.get(a, 99) <= rank.get(b, 99) else b


@dataclass(frozen=True)
class FaxText:
    """What reading the fax documents gave: text, pages, and why not (if not)."""

    text: str
    pages: int
    not_read: str | None
    seconds: float


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

    def detect(self, parsed: ParsedMessage, kind: str, name: str) -> FaxInfo | None:
        """FaxInfo when the message is a fax; None for ordinary mail."""
        forced = self.is_fax_source(kind, name)
        if parsed.fax is not None:
            return parsed.fax
        if not forced and not self.cfg.detect_in_mail:
            return None
        info = extract_fax_info(
            parsed.subject, parsed.text, parsed.headers, [a.filename for a in parsed.attachments],
            self.cfg.all_patterns, self.cfg.default_region, self.tz,
        )
        if info is None and forced:
            info = FaxInfo(gateway=kind if kind != "fax" else name)
        return info

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
        pages = 0
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
            pages_left -= res.pages
            if res.text.strip():
                texts.append(res.text.replace("\f", "\n\n"))
            if not res.ok:
                errors.append(f"{doc.filename}: {res.error}")
            elif not res.text.strip():
                errors.append(f"{doc.filename}: no text found on {res.pages} page(s)")
        not_read = "; ".join(errors) if errors else None
        return FaxText("\n\n".join(texts), pages, not_read, round(time.monotonic() - start, 3))

    def prepare(self, prep: _Prepared) -> None:
        """Pipeline prepare hook: mark a fax, OCR it, give the rules its text."""
        parsed = prep.parsed
        if parsed is None or prep.error is not None:
            return
        info = self.detect(parsed, prep.inbound.source.kind, prep.inbound.source.name)
        if info is None:
            return
        docs = fax_documents(parsed.attachments)
        if not docs and not self.is_fax_source(prep.inbound.source.kind, prep.inbound.source.name):
            # In an ordinary mailbox, "Fax from the Beijing office" without a
            # TIFF/PDF is a customer's mail, not a gateway notice.
            return
        result = self.read(docs)
        info = replace(info, not_read=result.not_read)
        # The language is the fax's, not the gateway notice's (often English);
        # unread, it is unknown and the service default applies.
        prep.parsed = replace(parsed, fax=info, language=guess_language(result.text) if result.text else None)
        own = parsed.new_text.strip()
        parts = [own] if own else []
        if result.text:
            parts.append(f"—— 传真内容 (OCR) / fax text (OCR) ——\n{result.text}")
        prep.text_override = "\n\n".join(parts)
        if result.not_read:
            log.warning("fax from %s (source=%s) not read: %s",
                        info.sender_number or info.raw_sender or "unknown number", prep.inbound.source.name, result.not_read)
        else:
            log.info("fax from %s (source=%s): %d page(s) read in %.1f s",
                     info.sender_number or "unknown number", prep.inbound.source.name, result.pages, result.seconds)

    # ------------------------------------------------------------ classify / store

    def adjust_classification(self, parsed: ParsedMessage, result: Classification) -> Classification:
        """An unread fax gets at least ``default_priority``: rules could not see it."""
        if parsed.fax is None or not parsed.fax.not_read:
            return result
        tags = result.tags if "fax-not-read" in result.tags else (*result.tags, "fax-not-read")
        return replace(result, priority=more_severe(result.priority, self.cfg.default_priority), tags=tags)

    def record(self, session: Session, case: Case | None, message: Message, parsed: ParsedMessage, outcome: str) -> None:
        """After-store hook: the fax's metadata and unread state as case events."""
        info = parsed.fax
        if info is None or case is None:
            return
        now = message.created_at
        repo.add_event(session, case, now, info.sender_number or "fax", "fax-received", new=info.sender_number,
                       detail={"raw_sender": info.raw_sender, "gateway": info.gateway, "pages": info.pages,
                               "received_at": info.received_at.isoformat() if info.received_at else None})
        if info.not_read:
            repo.add_event(session, case, now, "system", "fax-not-read", detail={"reason": info.not_read})

    def reply_route(self, customer: Customer | None, parsed: ParsedMessage) -> ReplyRoute | None:
        return reply_route(customer, parsed, self.cfg)

    def customer_route(self, customer: Customer) -> ReplyRoute | None:
        """For status updates: e-mail, else the fax gateway (see fax_reply)."""
        return customer_route(customer, self.cfg)

    def fax_case_route(self, customer: Customer | None, number: str | None = None) -> ReplyRoute:
        """For notices on a case that came by fax: like the acknowledgement's route."""
        return fax_route(customer, self.cfg, number)


def fax_source_names(config: Config) -> frozenset[str]:
    """Sources whose every message is a fax (IMAP ``fax = true``, spools)."""
    return frozenset(
        s.name for s in config.sources
        if (isinstance(s, ImapSourceConfig) and s.fax) or isinstance(s, SpoolSourceConfig)
    )


def install(pipeline: Pipeline, config: Config, ocr: OcrFunc = ocr_document) -> FaxIntake:
    """Validate ``[fax]`` and plug fax handling into ``pipeline``'s hooks."""
    cfg = load_fax_config(config)
    intake = FaxIntake(cfg, cfg.tzinfo(config), fax_source_names(config), ocr)
    pipeline.prepare_hooks.append(intake.prepare)
    pipeline.classify_hooks.append(intake.adjust_classification)
    pipeline.after_store.append(intake.record)
    pipeline.reply_route = intake.reply_route
    return intake


__all__ = ["FaxIntake", "FaxText", "fax_documents", "install", "more_severe"]
