"""The walker: raw bytes -> ParsedMessage.

Built on ``email`` with policy.compat32 because it is the most tolerant of
garbage headers and keeps raw values (surrogate-escaped 8-bit bytes) that we
decode ourselves (see headers.py / charsets.py), with parameter splitting
made linear (mimeparams.py). The MIME tree is walked iteratively with a part
budget so hostile nesting cannot blow the stack or the time budget. Every
result passes through sanitize.py, so its text is storable in PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from email import policy
from email.message import Message
from email.parser import BytesParser
from itertools import islice

from . import flags
from .attachments import message_bytes, part_bytes, raw_filename, safe_filename
from .charsets import decode_bytes, header_codecs, is_utf8
from .fallback import parse_with_mailparser
from .headers import decode_header, fold_ws, parse_addresses, parse_date, parse_msgids, pick_sender
from .html import html_to_text
from .language import guess_language
from .message import Attachment, ParsedMessage, ParseError
from .mimeparams import Message as _LinearParamMessage
from .quotes import strip_quotes
from .sanitize import sanitize_message

MAX_PARTS = 500
MAX_HEADERS = 1000
MAX_HEAD = 256_000  # bytes of header block the repairs below look at
_PARSER = BytesParser(_class=_LinearParamMessage, policy=policy.compat32)
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


def _text_of(part: Message, is_html: bool = False) -> tuple[str, str | None]:
    """Decoded text of a body part and the charset label it was decoded as."""
    data = part_bytes(part)
    label = _charset(part)
    if label is None and is_html:
        m = _META_CHARSET_RE.search(data[:4096])
        if m:
            label = m.group(1).decode("ascii", "replace")
    return _lines(decode_bytes(data, label)), label


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


def _name_params_ascii(part: Message) -> bool:
    """False when a header that can carry a filename holds raw 8-bit bytes."""
    return all(
        value.isascii()
        for key, value in part.raw_items()
        if key.lower() in ("content-type", "content-disposition")
    )


class _Walk:
    """State collected while walking one MIME tree."""

    def __init__(self) -> None:
        self.plain: str | None = None
        self.html: str | None = None
        self.attachments: list[Attachment] = []
        # Parts whose name parameters hold raw 8-bit bytes: their names are
        # decoded again once the message's charset evidence is known.
        self.raw_named: list[tuple[int, Message, str]] = []
        self.charsets: list[str] = []  # labels of the body parts, in order
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
        if name is not None and not ctype.startswith("message/") and not _name_params_ascii(part):
            self.raw_named.append((index - 1, part, ctype))
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
            self.plain, label = _text_of(part)
            self._label(label)
            return
        if body_like and ctype == "text/html" and self.html is None:
            self.html, label = _text_of(part, is_html=True)
            self._label(label)
            return
        self.attach(part, ctype, part_bytes(part), name)

    def _label(self, label: str | None) -> None:
        if label:
            self.charsets.append(label)

    def rename_raw_named(self, codecs: Sequence[str]) -> None:
        """Decode raw 8-bit attachment names again with the message's codecs."""
        for index, part, ctype in self.raw_named:
            att = self.attachments[index]
            self.attachments[index] = Attachment(
                filename=safe_filename(raw_filename(part, codecs), ctype, index + 1),
                content_type=att.content_type,
                content=att.content,
                inline=att.inline,
                content_id=att.content_id,
            )


def _headers(msg: Message, defects: list[str], codecs: Sequence[str]) -> tuple[tuple[str, str], ...]:
    items = msg.raw_items()
    out: list[tuple[str, str]] = []
    for i, (name, value) in enumerate(items):
        if i >= MAX_HEADERS:
            defects.append(f"HeaderLimitExceeded: more than {MAX_HEADERS} header fields")
            break
        out.append((str(name), fold_ws(decode_header(str(value), codecs))))
    return tuple(out)


_EW_CHARSET_RE = re.compile(r"=\?([^?\s*]++)[^?\s]*+\?[bBqQ]\?")


def _raw_utf8(value: str) -> bool:
    """True for ASCII and for raw 8-bit header text that is valid UTF-8."""
    return value.isascii() or is_utf8(value.encode("utf-8", "surrogateescape"))


def _header_codecs(msg: Message, state: _Walk, text: str) -> tuple[str, ...]:
    """Legacy codecs for raw 8-bit header bytes, from the rest of the message.

    Evidence, strongest first: charsets of encoded words in the headers (the
    sender's client wrote them), then the body parts' charsets, then the
    script of the body text. Empty (and nothing computed) when every raw
    header value and attachment name is ASCII or UTF-8, the common case.
    """
    items = list(islice(msg.raw_items(), MAX_HEADERS))
    raw_names = [str(v) for _, part, _ in state.raw_named for _, v in part.raw_items()]
    if all(_raw_utf8(str(v)) for _, v in items) and all(_raw_utf8(v) for v in raw_names):
        return ()
    labels = [m.group(1) for _, v in items for m in _EW_CHARSET_RE.finditer(str(v))]
    top = _charset(msg)
    return header_codecs([*labels, *state.charsets, *([top] if top else [])], text[:4000])


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
    m = _BLANK_LINE_RE.search(raw, 0, MAX_HEAD)
    end = m.start() if m else min(len(raw), MAX_HEAD)
    head = raw[:end]
    if not _OBS_HEADER_RE.match(head):
        return None
    return _OBS_HEADER_RE.sub(rb"\1:", head) + raw[end:]


class UnindentedContinuationDefect(Exception):
    """Marker defect: header lines without leading whitespace were joined to
    the field before them instead of ending the header block."""


# A line email.feedparser accepts inside a header block (its headerRE), and
# a line that starts a named field, obsolete 'Name  :' syntax included.
_HEADER_LINE_RE = re.compile(rb"From |[\041-\071\073-\176]*:|[\t ]")
_NAMED_FIELD_RE = re.compile(rb"([\041-\071\073-\176]++)[ \t]*+:")


def _repair_unindented_continuations(raw: bytes) -> bytes | None:
    """Indent stray lines inside the header block so later fields survive.

    A long header folded without leading whitespace (base64 tracking data)
    makes the stdlib end the headers there, and the Subject and From after
    it become body text. Lenient readers take everything up to the first
    empty line as headers; so do we, but only up to the last 'Name:' line:
    lines after it stay body, for mail that lacks the empty line altogether.
    A 'Name  :' line (obsolete syntax) in between loses its blanks instead.
    Returns None when there is nothing to repair.
    """
    m = _BLANK_LINE_RE.search(raw, 0, MAX_HEAD)
    end = m.start() if m else min(len(raw), MAX_HEAD)
    lines = raw[:end].splitlines(keepends=True)
    last_named = -1
    for i, line in enumerate(lines):
        if _NAMED_FIELD_RE.match(line):
            last_named = i
    changed = False
    for i in range(1, last_named):
        line = lines[i]
        if _HEADER_LINE_RE.match(line):
            continue
        named = _NAMED_FIELD_RE.match(line)  # 'Name  : value', which the stdlib rejects
        lines[i] = named.group(1) + b":" + line[named.end() :] if named else b" " + line
        changed = True
    return b"".join(lines) + raw[end:] if changed else None


def _parse_bytes(raw: bytes) -> Message:
    """The stdlib parse, with the header block repaired when it needs it."""
    try:
        msg = _PARSER.parsebytes(raw)
    except Exception as exc:  # noqa: BLE001 - the stdlib parser should not raise, but be sure
        raise ParseError(f"unparseable MIME structure: {type(exc).__name__}") from exc
    markers: list[Exception] = []
    if not msg.keys():
        repaired = _repair_obsolete_headers(raw)
        if repaired is not None:
            raw = repaired
            msg = _PARSER.parsebytes(raw)
            markers.append(ObsoleteHeaderSyntaxDefect())
    if msg.keys() and any(type(d).__name__ == "MissingHeaderBodySeparatorDefect" for d in msg.defects):
        repaired = _repair_unindented_continuations(raw)
        if repaired is not None:
            msg = _PARSER.parsebytes(repaired)
            markers.append(UnindentedContinuationDefect())
    msg.defects.extend(markers)
    return msg


def parse_message(raw: bytes, *, envelope_from: str | None = None) -> ParsedMessage:
    """Decode one raw RFC 5322 message; raise ParseError only when hopeless.

    ``envelope_from`` is the SMTP envelope sender when the source knows it:
    the last place a sender is looked for when the headers name none.
    """
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise ParseError(f"expected bytes, got {type(raw).__name__}")
    raw = bytes(raw)
    if not raw.strip():
        raise ParseError("empty input")
    msg = _parse_bytes(raw)
    names = msg.keys()
    if not names:
        raise ParseError("no header lines found")
    if not any(_HEADER_NAME_RE.match(n) for n in names[:50]):
        raise ParseError("no valid header field name found")
    try:
        parsed = _build(msg, envelope_from)
    except RecursionError as exc:
        raise ParseError("message too deeply nested") from exc
    except Exception as exc:  # noqa: BLE001 - a walker bug must not lose the mail
        parsed = parse_with_mailparser(
            raw, f"walker failed: {type(exc).__name__}: {exc}", envelope_from=envelope_from
        )
    return sanitize_message(parsed)


def _body_text(state: _Walk) -> str:
    """The best full text: plain when it has content, else HTML converted."""
    if state.plain is not None and state.plain.strip():
        return state.plain.strip("\n")
    if state.html is not None:
        return html_to_text(state.html)
    return (state.plain or "").strip("\n")


def _build(msg: Message, envelope_from: str | None) -> ParsedMessage:
    state = _Walk()
    state.walk(msg)
    defects = state.defects
    text = _body_text(state)
    new_text = strip_quotes(text) or text.strip()
    codecs = _header_codecs(msg, state, text)
    if codecs:
        state.rename_raw_named(codecs)
    headers = _headers(msg, defects, codecs)
    first: dict[str, str] = {}
    for name, value in headers:
        first.setdefault(name.lower(), value)

    subject = fold_ws(first.get("subject", ""))
    from_, source = pick_sender(lambda name: _raw_all(msg, name), envelope_from, codecs)
    if source not in (None, "From"):
        defects.append(f"NoFromAddress: sender taken from {source}")

    return ParsedMessage(
        message_id=(parse_msgids(_raw_all(msg, "Message-ID")) or (None,))[0],
        in_reply_to=parse_msgids(_raw_all(msg, "In-Reply-To")),
        references=parse_msgids(_raw_all(msg, "References")),
        from_=from_,
        reply_to=parse_addresses(_raw_all(msg, "Reply-To"), codecs),
        to=parse_addresses(_raw_all(msg, "To"), codecs),
        cc=parse_addresses(_raw_all(msg, "Cc"), codecs),
        subject=subject,
        date=parse_date(first.get("date")),
        text=text,
        new_text=new_text,
        html=state.html,
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
