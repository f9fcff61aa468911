"""Attachment filenames made safe, and part payloads decoded tolerantly.

Filenames come from hostile senders: RFC 2231 values in any charset,
RFC 2047 words inside name=, raw 8-bit bytes, Windows or Unix paths meant to
escape a directory. Whatever reaches storage must be a plain base name.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Sequence
from email.message import Message

from .charsets import decode_bytes, decode_header_bytes
from .headers import decode_header, fold_ws

MAX_NAME = 200
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
# Built-in table only (no /etc/mime.types) so results do not depend on the host.
_MIME = mimetypes.MimeTypes(filenames=())
_EXT_OVERRIDES = {"text/plain": ".txt", "image/jpeg": ".jpg", "message/rfc822": ".eml",
    "text/rfc822-headers": ".txt",
    "application/octet-stream": ".bin"}


def raw_filename(part: Message, codecs: Sequence[str] = ()) -> str | None:
    """Decoded filename from Content-Disposition or Content-Type, or None.

    ``codecs`` are the legacy charsets the rest of the message points to,
    for names sent as raw 8-bit bytes (see charsets.header_codecs).
    """
    for param, header in (("filename", "content-disposition"), ("name", "content-type")):
        try:
            value = part.get_param(param, header=header)
        except Exception:  # noqa: BLE001 - malformed parameter lists
            continue
        if value is None:
            continue
        if isinstance(value, tuple):  # RFC 2231: (charset, language, latin-1 text)
            charset, _lang, text = value
            try:
                data = text.encode("latin-1", "surrogateescape")
            except UnicodeEncodeError:
                name = text
            else:
                name = decode_bytes(data, charset) if charset else decode_header_bytes(data, codecs)
            name = decode_header(name) if "=?" in name else name
        else:
            name = decode_header(str(value), codecs)
        name = name.strip().strip('"')
        if name:
            return name
    return None


def guess_extension(content_type: str) -> str:
    return _EXT_OVERRIDES.get(content_type) or _MIME.guess_extension(content_type, strict=False) or ".bin"


def safe_filename(name: str | None, content_type: str, index: int) -> str:
    """A base name that is never empty, '.', '..' nor longer than MAX_NAME."""
    if name:
        name = name.replace("\\", "/").rsplit("/", 1)[-1]
        name = _CONTROL_RE.sub("", name)
        name = fold_ws(name).strip(". ")
        if ":" in name[:3]:  # "C:x.doc" drive-relative leftovers
            name = name.split(":", 1)[1]
    if not name or name in (".", ".."):
        return f"attachment-{index}{guess_extension(content_type)}"
    if len(name) > MAX_NAME:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            name = stem[: MAX_NAME - len(ext) - 1] + "." + ext
        else:
            name = name[:MAX_NAME]
    return name


def part_bytes(part: Message) -> bytes:
    """Decoded leaf payload (base64/qp/uuencode); bad encodings tolerated."""
    try:
        data = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001 - stdlib decoders on broken input
        data = None
    if data is None:
        payload = part.get_payload()
        if isinstance(payload, str):
            return payload.encode("utf-8", "surrogateescape")
        return b""
    return data


def message_bytes(part: Message) -> bytes:
    """Bytes of an embedded message/* part (its payload is parsed objects)."""
    payload = part.get_payload()
    if isinstance(payload, list):
        chunks: list[bytes] = []
        for sub in payload:
            try:
                chunks.append(sub.as_bytes())
            except Exception:  # noqa: BLE001 - RecursionError on absurd nesting, bad headers
                try:
                    chunks.append(sub.as_string().encode("utf-8", "surrogateescape"))
                except Exception:  # noqa: BLE001
                    chunks.append(b"")
        return b"\n".join(chunks)
    return part_bytes(part)
