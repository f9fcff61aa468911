"""Outgoing mail written as the bytes SMTP sends (RFC 5322 / MIME, CRLF).

Every mail casegate sends has the same few shapes: a UTF-8 text part,
optionally beside an HTML part (multipart/alternative), optionally with
attachments (multipart/mixed), and a fixed set of headers whose values are
already cleaned (``clean_header``: one line, no controls) and whose
addresses are single mailboxes (``make_address``). For these shapes this
module writes the bytes directly: the stdlib generator (``email.generator``
over ``email.mime``) took about 1.2 ms per acknowledgement, most of it
folding headers through ``email.header`` and compiling a fresh regular
expression for every random MIME boundary, which was the largest single
cost of ingesting a message. Here it takes a tenth of that.

The output is what the generator would write for these shapes: every body
part base64 (so no line of a body can look like a boundary), RFC 2047
B-encoded words for non-ASCII header text, RFC 2231 file names. A mail to
or from an internationalized address (张三@example.cn) carries raw UTF-8
headers instead (RFC 6532; the SMTP transport then uses SMTPUTF8).
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address as HeaderAddress
from email.utils import format_datetime, formataddr
from urllib.parse import quote

from ..addresses import clean_header

CRLF = "\r\n"
#: RFC 5322's recommended line length; longer header values are folded.
MAX_LINE = 78
#: UTF-8 bytes per encoded word: 36 bytes are 48 base64 characters, so
#: "=?utf-8?b?" + 48 + "?=" stays well inside RFC 2047's 75.
WORD_BYTES = 36


def new_message_id(domain: str) -> str:
    """A Message-ID without angle brackets (stored that way everywhere)."""
    return f"{uuid.uuid4().hex}.casegate@{domain}"


@dataclass(frozen=True)
class Outgoing:
    """One composed mail: the wire bytes and the header values the case history records."""

    message_id: str
    subject: str
    cc: str
    in_reply_to: str
    references: str
    raw: bytes


def _encoded_words(text: str) -> list[str]:
    """``text`` as RFC 2047 B-encoded words, split between characters."""
    words, chunk, size = [], [], 0
    for ch in text:
        n = len(ch.encode("utf-8"))
        if size + n > WORD_BYTES and chunk:
            words.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(ch)
        size += n
    if chunk:
        words.append("".join(chunk))
    return [f"=?utf-8?b?{base64.b64encode(w.encode('utf-8')).decode('ascii')}?=" for w in words]


def _fold(name: str, tokens: Sequence[str]) -> str:
    """``Name: tokens`` folded at the spaces between tokens, lines kept under MAX_LINE where a token allows."""
    lines, line = [], f"{name}:"
    for token in tokens:
        # Never fold before an empty token: a folded line may not be blank.
        if token and len(line) + 1 + len(token) > MAX_LINE and line != f"{name}:":
            lines.append(line)
            line = " " + token
        else:
            line = f"{line} {token}"
    lines.append(line)
    return CRLF.join(lines) + CRLF


def _text_header(name: str, value: str, utf8: bool) -> str:
    """A free-text header (Subject, custom fields): encoded words when not ASCII."""
    if value.isascii() or utf8:
        return _fold(name, value.split(" ") if value else [""])
    return _fold(name, _encoded_words(value))


def _display_name(name: str, utf8: bool) -> str:
    if not name:
        return ""
    if name.isascii() or utf8:
        return formataddr((name, "x@x"))[: -len(" <x@x>")]  # quoted as the stdlib quotes it
    return " ".join(_encoded_words(name))


def _address(addr: HeaderAddress, utf8: bool) -> str:
    name = _display_name(addr.display_name, utf8)
    return f"{name} <{addr.addr_spec}>" if name else addr.addr_spec


def _address_header(name: str, addrs: Sequence[HeaderAddress], utf8: bool) -> str:
    tokens: list[str] = []
    for i, addr in enumerate(addrs):
        parts = _address(addr, utf8).split(" ")
        if i < len(addrs) - 1:
            parts[-1] += ","
        tokens.extend(parts)
    return _fold(name, tokens)


def _base64_body(data: bytes) -> str:
    return base64.encodebytes(data).decode("ascii").replace("\n", CRLF)


def _text_part(content: str, subtype: str) -> str:
    return (f'Content-Type: text/{subtype}; charset="utf-8"{CRLF}MIME-Version: 1.0{CRLF}'
            f"Content-Transfer-Encoding: base64{CRLF}{CRLF}{_base64_body(content.encode('utf-8'))}")


def _attachment_part(filename: str, ctype: str, content: bytes) -> str:
    maintype, _, subtype = ctype.partition("/")
    name = clean_header(filename, 200)
    disposition = (f'attachment; filename="{name}"' if name.isascii() and '"' not in name and "\\" not in name
                   else f"attachment; filename*=utf-8''{quote(name, safe='')}")
    return (f"Content-Type: {maintype or 'application'}/{subtype or 'octet-stream'}{CRLF}MIME-Version: 1.0{CRLF}"
            f"Content-Transfer-Encoding: base64{CRLF}Content-Disposition: {disposition}{CRLF}{CRLF}"
            f"{_base64_body(content)}")


def _multipart(subtype: str, parts: Sequence[str]) -> tuple[str, str]:
    """(the Content-Type header block, the body) of a multipart entity.

    The boundary is random and starts with "=_": that pair never begins a
    line of base64, which is all the parts hold, so no collision check is needed.
    """
    boundary = f"=_cg{secrets.token_hex(12)}"
    head = f'Content-Type: multipart/{subtype};{CRLF} boundary="{boundary}"{CRLF}MIME-Version: 1.0{CRLF}'
    body = "".join(f"--{boundary}{CRLF}{part}" for part in parts) + f"--{boundary}--{CRLF}"
    return head, body


def _split(part: str) -> tuple[str, str]:
    head, _, body = part.partition(CRLF + CRLF)
    return head + CRLF, body


def write_message(
    *,
    from_addr: HeaderAddress,
    to: Sequence[HeaderAddress],
    subject: str,
    body: str,
    domain: str,
    now: datetime,
    cc: Sequence[HeaderAddress] = (),
    reply_to: HeaderAddress | None = None,
    in_reply_to: str | None = None,
    references: Iterable[str] = (),
    auto_submitted: str | None = "auto-replied",
    extra_headers: Iterable[tuple[str, str]] = (),
    attachments: Iterable[tuple[str, str, bytes]] = (),
    html: str | None = None,
) -> Outgoing:
    """Compose one outgoing mail; all header text is cleaned here."""
    everyone = [from_addr, *to, *cc, *([reply_to] if reply_to is not None else [])]
    utf8 = not all(a.addr_spec.isascii() for a in everyone)

    content = _text_part(body, "plain")
    if html is not None:
        head, parts = _multipart("alternative", [content, _text_part(html, "html")])
        content = head + CRLF + parts
    files = list(attachments)
    if files:
        head, parts = _multipart("mixed", [content, *(_attachment_part(*f) for f in files)])
        content_head, content_body = head, parts
    else:
        content_head, content_body = _split(content)

    message_id = new_message_id(domain)
    subject = clean_header(subject, 250)
    refs = [clean_header(r, 500) for r in references if r]
    reply_id = clean_header(in_reply_to, 500) if in_reply_to else ""
    if reply_id and reply_id not in refs:
        refs.append(reply_id)
    references_value = " ".join(f"<{r}>" for r in refs[-20:])

    lines = [content_head, _address_header("From", [from_addr], utf8), _address_header("To", to, utf8)]
    if cc:
        lines.append(_address_header("Cc", cc, utf8))
    if reply_to is not None:
        lines.append(_address_header("Reply-To", [reply_to], utf8))
    lines.append(_text_header("Subject", subject, utf8))
    lines.append(f"Date: {format_datetime(now)}{CRLF}")
    lines.append(f"Message-ID: <{message_id}>{CRLF}")
    if reply_id:
        lines.append(f"In-Reply-To: <{reply_id}>{CRLF}")
    if references_value:
        lines.append(_fold("References", references_value.split(" ")))
    if auto_submitted:
        # RFC 3834: marks our automatic mail so well-behaved responders stay quiet.
        lines.append(f"Auto-Submitted: {clean_header(auto_submitted, 60)}{CRLF}")
        lines.append(f"X-Auto-Response-Suppress: All{CRLF}")
    for name, value in extra_headers:
        key = clean_header(name, 60).replace(":", "").replace(" ", "-")
        lines.append(_text_header(key, clean_header(value, 500), utf8))
    raw = ("".join(lines) + CRLF + content_body).encode("utf-8" if utf8 else "ascii")
    cc_text = ", ".join(f"{a.display_name} <{a.addr_spec}>" if a.display_name else a.addr_spec for a in cc)
    return Outgoing(message_id, subject, cc_text, reply_id, references_value, raw)
