"""Answers to fax-only customers go back through the e-mail-to-fax gateway.

A customer with an e-mail address gets e-mail, even when they wrote by fax.
A customer whose only contact is a fax number gets mail addressed to the
gateway's e-mail-to-fax address for that number (``[fax] reply_gateway``),
carrying the letter as a one-page PDF (what most gateways fax) or as plain
text. The notification's own From (the gateway) is never an answer address.

The PDF is drawn with Pillow and a CJK font found on the system; without
such a font, Chinese cannot be drawn, so the route falls back to plain text
rather than faxing boxes.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ..fax.config import FaxConfig
from ...parsers.message import ParsedMessage
from ...storage.models import ContactPerson, Customer

log = logging.getLogger("casegate.fax")

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
)
_FONT_KEYS = ("cjk", "wqy", "zenhei", "microhei", "uming", "ukai", "droidsansfallback", "simsun", "simhei")

# A4 at 200 dpi, the fine fax resolution; margins of 1 cm.
PAGE_W, PAGE_H, DPI = 1654, 2339, 200
MARGIN = 80


@dataclass(frozen=True)
class ReplyRoute:
    """Where an automatic answer goes and in which form.

    ``address`` None means "do not send", with ``reason`` saying why.
    ``format``: "email" (ordinary mail), "pdf" (letter attached as PDF) or
    "text" (plain text body for a text-faxing gateway).
    """

    address: str | None
    format: str = "email"
    name: str = ""
    reason: str = ""
    template: str = "ack"
    font: str = ""

    def attachments(self, subject: str, body: str) -> list[tuple[str, str, bytes]]:
        """The files the gateway should fax (empty for e-mail and text)."""
        if self.format != "pdf":
            return []
        pdf = render_letter_pdf(subject, body, self.font or None)
        return [("reply.pdf", "application/pdf", pdf)] if pdf is not None else []


@lru_cache(maxsize=4)
def find_cjk_font(configured: str | None = None) -> str | None:
    """A font file that can draw Chinese: configured, known paths, then a scan."""
    if configured and Path(configured).is_file():
        return configured
    for cand in FONT_CANDIDATES:
        if Path(cand).is_file():
            return cand
    for root in (Path("/usr/share/fonts"), Path("/usr/local/share/fonts")):
        if root.is_dir():
            for path in sorted(root.rglob("*")):
                if path.suffix.lower() in (".ttc", ".ttf", ".otf") and any(k in path.name.lower() for k in _FONT_KEYS):
                    return str(path)
    return None


def _wrap(draw, text: str, font, width: int) -> list[str]:  # type: ignore[no-untyped-def]
    """Break lines by pixel width; character-wise, which suits Chinese and is
    acceptable for the short English of a template."""
    out: list[str] = []
    for para in text.splitlines() or [""]:
        line = ""
        for ch in para:
            if draw.textlength(line + ch, font=font) > width and line:
                out.append(line)
                line = ""
            line += ch
        out.append(line)
    return out


def render_letter_pdf(subject: str, body: str, font_path: str | None = None) -> bytes | None:
    """``subject`` and ``body`` on one A4 page as a 1-bit PDF; None without a CJK font.

    One page by design: an acknowledgement fits, and a gateway bills per
    page. Text that does not fit is cut with a marker rather than spilling.
    """
    path = find_cjk_font(font_path)
    if path is None:
        return None
    title_font = ImageFont.truetype(path, 44, index=0)
    font = ImageFont.truetype(path, 34, index=0)
    page = Image.new("L", (PAGE_W, PAGE_H), 255)
    draw = ImageDraw.Draw(page)
    y = MARGIN
    width = PAGE_W - 2 * MARGIN
    for line in _wrap(draw, subject, title_font, width):
        draw.text((MARGIN, y), line, font=title_font, fill=0)
        y += 62
    y += 30
    lines = _wrap(draw, body, font, width)
    step = 50
    room = (PAGE_H - MARGIN - y) // step
    if len(lines) > room:
        lines = lines[: room - 1] + ["……（略 / truncated）"]
    for line in lines:
        draw.text((MARGIN, y), line, font=font, fill=0)
        y += step
    bw = page.point(lambda v: 255 if v > 160 else 0).convert("1")
    buf = io.BytesIO()
    bw.save(buf, format="PDF", resolution=float(DPI))
    return buf.getvalue()


def reply_route(customer: Customer | None, parsed: ParsedMessage, cfg: FaxConfig,
                person: ContactPerson | None = None) -> ReplyRoute | None:
    """Where to answer a message; None: the pipeline's default (the sender).

    Only faxes are routed here: the customer's e-mail when they have one,
    otherwise the e-mail-to-fax gateway for their number.
    """
    if parsed.fax is None:
        return None
    return fax_route(customer, cfg, parsed.fax.sender_number, person)


def fax_route(customer: Customer | None, cfg: FaxConfig, number: str | None = None,
              person: ContactPerson | None = None) -> ReplyRoute:
    """Where automatic mail about a fax goes (the acknowledgement of a fax
    message, or a scheduled notice on a case that came by fax): the route of
    :func:`customer_route`, or "do not send" when there is no way back."""
    route = customer_route(customer, cfg, number, person)
    if route is None:
        return ReplyRoute(address=None, reason="fax without a usable sender number")
    return route


@dataclass(frozen=True)
class Recipient:
    """Who one automatic customer mail goes to; ``address`` None: refused, see ``refusal``."""

    address: str | None
    name: str = ""
    refusal: str = ""
    route: ReplyRoute | None = None

    def attachments(self, subject: str, body: str) -> list[tuple[str, str, bytes]]:
        """The letter as PDF for a fax gateway; nothing for e-mail."""
        return self.route.attachments(subject, body) if self.route is not None else []


def choose_recipient(
    route: ReplyRoute | None,
    address: str | None,
    name: str,
    refuse: Callable[[str | None], str | None],
) -> Recipient:
    """The one place automatic customer mail (acknowledgement, scheduled
    notices) picks its recipient: the fax route when there is one, else
    ``address``; then ``refuse`` (the pipeline's ``may_auto_answer``) on the
    address actually used, so loop protection and the hourly limit apply to
    a gateway address too."""
    if route is not None:
        if route.address is None:
            return Recipient(None, refusal=route.reason)
        address, name = route.address, route.name
    refusal = refuse(address)
    if refusal is not None:
        return Recipient(None, refusal=refusal)
    return Recipient(address, name, route=route)


def customer_route(customer: Customer | None, cfg: FaxConfig, number: str | None = None,
                   person: ContactPerson | None = None) -> ReplyRoute | None:
    """How to reach ``customer`` without a message in hand (status updates).

    E-mail when they have an address; else the fax gateway for their fax
    number (or ``number``); None when there is neither. With ``person`` (the
    master data's person who faxed) only that person's own addresses count:
    a colleague's mailbox is not theirs.
    """
    if person is not None:
        own = {c.kind: c.value for c in reversed(person.addresses)}  # each kind's first address
        email, fax = own.get("email"), own.get("fax")
    else:
        email = customer.contact("email") if customer is not None else None
        fax = customer.contact("fax") if customer is not None else None
    who = person.name if person is not None else customer.name if customer is not None else ""
    if email:
        return ReplyRoute(address=email, name=who)
    number = fax or number
    if not number:
        return None
    address = cfg.gateway_address(number)
    if address is None:
        return ReplyRoute(address=None, reason="fax-only customer and no [fax] reply_gateway configured")
    fmt = cfg.reply_format
    if fmt == "pdf" and find_cjk_font(cfg.reply_font or None) is None:
        log.warning("no CJK font for fax replies; sending plain text to %s", address)
        fmt = "text"
    name = who if who not in (number, "fax") else ""
    return ReplyRoute(address=address, format=fmt, name=name, template="fax_ack", font=cfg.reply_font)
