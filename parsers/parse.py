"""The walker: raw bytes -> ParsedMessage.

Built on ``email`` with policy.compat32 because it is the most tolerant of
garbage headers and keeps raw values (surrogate-escaped 8-bit bytes) that we
decode ourselves (see headers.py / charsets.py). The MIME tree is walked
iteratively with a part budget so hostile nesting cannot blow the stack or
the time budget.
"""

from __future__ import annotations

import re
from email import policy
from email.message import Message
from email.parser import BytesParser

from . import flags
from .attachments import message_bytes, part_bytes, raw_filename, safe_filename
from .charsets import decode_bytes
from .fallback import parse_with_mailparser
from .headers import decode_header, fold_ws, parse_addresses, parse_date, parse_msgids
from .html import html_to_text
from .language import guess_language
from .message import Address, Attachment, ParsedMessage, ParseError
from .quotes import strip_quotes

MAX_PARTS = 500
MAX_HEADERS = 1000
_PARSER = BytesParser(policy=policy.compat32)
_HEADER_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
_META_CHARSET_RE = re.compile(rb"<meta[^>]{0,200}charset\s*=\s*[\"']?([A-Za-z0-9_.:-]+)", re.IGNORECASE)


def _lines(text: str) -> str:
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def _charset(part: Message) -> str | None:
    try:
        return part.get_content_charset()
    except Exception:  # noqa: BLE001
        return None


def _text_of(part: Message, is_html: bool = False) -> str:
    data = part_bytes(part)
    label = _charset(part)
    if label is None and is_html:
        m = _META_CHARSET_RE.search(data[:4096])
        if m:
            label = m.group(1).decode("ascii", "replace")
    return _lines(decode_bytes(data, label))


def _disposition(part: Message) -> str | None:
    try:
        return part.get_content_disposition()
    except Exception:  # noqa: BLE001
        return None


def _content_id(part: Message) -> str | None:
    value = part.get("Content-ID")
    if not value:
        return None
    return str(value).strip().strip("<>") or None


class _Walk:
    """State collected while walking one MIME tree."""

    def __init__(self) -> None:
        self.plain: str | None = None
        self.html: str | None = None
        self.attachments: list[Attachment] = []
        self.content_types: set[str] = set()
        self.defects: list[str] = []
        self.report_type: str | None = None
        self.forwarded = 0

    def add_defects(self, part: Message) -> None:
        for d in part.defects:
            name = type(d).__name__
            if name not in self.defects:
                self.defects.append(name)

    def attach(self, part: Message, ctype: str, content: bytes, name: str | None) -> None:
        index = len(self.attachments) + 1
        disposition = _disposition(part)
        self.attachments.append(
            Attachment(
                filename=safe_filename(name, ctype, index),
                content_type=ctype,
                content=content,
                inline=disposition == "inline" or (disposition is None and _content_id(part) is not None),
                content_id=_content_id(part),
            )
        )

    def walk(self, root: Message) -> None:
        stack: list[Message] = [root]
        walked = 0
        while stack:
            part = stack.pop()
            walked += 1
            if walked > MAX_PARTS:
                self.defects.append(f"PartLimitExceeded: more than {MAX_PARTS} MIME parts, rest ignored")
                return
            self.add_defects(part)
            ctype = part.get_content_type()
            self.content_types.add(ctype)
            if ctype == "multipart/report" and self.report_type is None:
                self.report_type = (part.get_param("report-type") or "").lower() or None
            if ctype.startswith("message/") and isinstance(part.get_payload(), list):
                self._message_part(part, ctype)
                continue
            if part.is_multipart():
                children = part.get_payload()
                if isinstance(children, list):
                    stack.extend(reversed(children))
                continue
            self._leaf(part, ctype)

    def _message_part(self, part: Message, ctype: str) -> None:
        name = raw_filename(part)
        if ctype == "message/rfc822" or ctype == "message/global":
            self.forwarded += 1
            name = name or f"forwarded-{self.forwarded}.eml"
            if not name.lower().endswith(".eml"):
                name = f"forwarded-{self.forwarded}.eml"
        elif name is None:
            name = ctype.split("/", 1)[1] + ".txt"
        self.attach(part, ctype, message_bytes(part), name)

    def _leaf(self, part: Message, ctype: str) -> None:
        disposition = _disposition(part)
        name = raw_filename(part)
        body_like = disposition != "attachment" and name is None
        if body_like and ctype == "text/plain" and self.plain is None:
            self.plain = _text_of(part)
            return
        if body_like and ctype == "text/html" and self.html is None:
            self.html = _text_of(part, is_html=True)
            return
        self.attach(part, ctype, part_bytes(part), name)


def _headers(msg: Message, defects: list[str]) -> tuple[tuple[str, str], ...]:
    items = msg.raw_items()
    out: list[tuple[str, str]] = []
    for i, (name, value) in enumerate(items):
        if i >= MAX_HEADERS:
            defects.append(f"HeaderLimitExceeded: more than {MAX_HEADERS} header fields")
            break
        out.append((str(name), fold_ws(decode_header(str(value)))))
    return tuple(out)


def _raw_all(msg: Message, name: str) -> list[str]:
    """Raw values (surrogate-escaped 8-bit kept), unlike compat32's get_all
    which turns 8-bit values into Header objects that stringify as U+FFFD."""
    lname = name.lower()
    return [str(v) for k, v in msg.raw_items() if k.lower() == lname]


class ObsoleteHeaderSyntaxDefect(Exception):
    """Marker defect: 'Name  : value' headers (RFC 5322 obs-syntax) were repaired."""


_OBS_HEADER_RE = re.compile(rb"^([!-9;-~]+)[ \t]+:", re.MULTILINE)
_BLANK_LINE_RE = re.compile(rb"\r?\n\r?\n|\r\r")


def _repair_obsolete_headers(raw: bytes) -> bytes | None:
    """Remove whitespace before header colons, which the stdlib rejects.

    Only tried when the normal parse found no header at all, so the fast
    path never pays for it. Returns None when there is nothing to repair.
    """
    m = _BLANK_LINE_RE.search(raw, 0, 256_000)
    end = m.start() if m else min(len(raw), 256_000)
    head = raw[:end]
    if not _OBS_HEADER_RE.match(head):
        return None
    return _OBS_HEADER_RE.sub(rb"\1:", head) + raw[end:]


def parse_message(raw: bytes) -> ParsedMessage:
    """Decode one raw RFC 5322 message; raise ParseError only when hopeless."""
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise ParseError(f"expected bytes, got {type(raw).__name__}")
    raw = bytes(raw)
    if not raw.strip():
        raise ParseError("empty input")
    try:
        msg = _PARSER.parsebytes(raw)
    except Exception as exc:  # noqa: BLE001 - the stdlib parser should not raise, but be sure
        raise ParseError(f"unparseable MIME structure: {type(exc).__name__}") from exc
    names = msg.keys()
    if not names:
        repaired = _repair_obsolete_headers(raw)
        if repaired is not None:
            msg = _PARSER.parsebytes(repaired)
            msg.defects.append(ObsoleteHeaderSyntaxDefect())
            names = msg.keys()
    if not names:
        raise ParseError("no header lines found")
    if not any(_HEADER_NAME_RE.match(n) for n in names[:50]):
        raise ParseError("no valid header field name found")
    try:
        return _build(msg)
    except RecursionError as exc:
        raise ParseError("message too deeply nested") from exc
    except Exception as exc:  # noqa: BLE001 - a walker bug must not lose the mail
        return parse_with_mailparser(raw, f"walker failed: {type(exc).__name__}: {exc}")


def _build(msg: Message) -> ParsedMessage:
    state = _Walk()
    state.walk(msg)
    defects = state.defects
    headers = _headers(msg, defects)
    first: dict[str, str] = {}
    for name, value in headers:
        first.setdefault(name.lower(), value)

    subject = fold_ws(first.get("subject", ""))
    from_list = parse_addresses(_raw_all(msg, "From"))
    from_: Address | None = from_list[0] if from_list else None
    if from_ is None:
        sender = parse_addresses(_raw_all(msg, "Sender"))
        from_ = sender[0] if sender else None

    html = state.html
    plain = state.plain
    if plain is not None and plain.strip():
        text = plain.strip("\n")
    elif html is not None:
        text = html_to_text(html)
    else:
        text = (plain or "").strip("\n")
    new_text = strip_quotes(text) or text.strip()

    return ParsedMessage(
        message_id=(parse_msgids(_raw_all(msg, "Message-ID")) or (None,))[0],
        in_reply_to=parse_msgids(_raw_all(msg, "In-Reply-To")),
        references=parse_msgids(_raw_all(msg, "References")),
        from_=from_,
        reply_to=parse_addresses(_raw_all(msg, "Reply-To")),
        to=parse_addresses(_raw_all(msg, "To")),
        cc=parse_addresses(_raw_all(msg, "Cc")),
        subject=subject,
        date=parse_date(first.get("date")),
        text=text,
        new_text=new_text,
        html=html,
        attachments=tuple(state.attachments),
        is_auto_reply=flags.is_auto_reply(first, subject, state.content_types, state.report_type),
        is_bounce=flags.is_bounce(
            first, subject, from_.email if from_ else None, state.content_types, state.report_type
        ),
        is_list=flags.is_list(first),
        headers=headers,
        defects=tuple(defects),
        language=guess_language(new_text or subject),
    )
