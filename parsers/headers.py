"""Header decoding: RFC 2047 words, raw 8-bit values, addresses, IDs, dates.

We decode ourselves instead of trusting ``email.header`` because real mail
splits one multibyte character across two encoded words, puts encoded words
inside quoted strings, mislabels charsets and sends raw UTF-8/GBK bytes.
Adjacent encoded words with the same charset are joined at the byte level
before decoding so split characters survive.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from email.utils import getaddresses, parsedate_to_datetime

from .charsets import decode_bytes, decode_header_bytes
from .message import Address

_EW_RE = re.compile(r"=\?([^?\s]+?)\?([bBqQ])\?([^?]*?)\?=")
_BETWEEN_WS = re.compile(r"[ \t\r\n]*")
_WS_RE = re.compile(r"\s+")
_QP_HEX = re.compile(rb"=([0-9A-Fa-f]{2})")
_MSGID_RE = re.compile(r"<([^<>\s]+)>")
_LOCAL = r"[\w.!#$%&'*+/=?^`{|}~-]"
# Starts only where a run of local-part characters starts (the lookbehind),
# and never gives characters back (possessive): linear in the header size.
_EMAIL_RE = re.compile(rf"(?<!{_LOCAL}){_LOCAL}++@[\w-]++(?:\.[\w-]++)*+", re.UNICODE)


def raw_to_str(value: str, codecs: Sequence[str] = ()) -> str:
    """Undo the surrogateescape the stdlib uses for 8-bit header bytes.

    ``codecs`` are the legacy charsets the rest of the message points to
    (charsets.header_codecs); raw bytes carry no label of their own.
    """
    if value.isascii():
        return value
    try:
        data = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8")
    return decode_header_bytes(data, codecs)


def _word_bytes(enc: str, text: str) -> bytes:
    if enc in "bB":
        cleaned = re.sub(r"[^A-Za-z0-9+/]", "", text)
        if len(cleaned) % 4 == 1:  # a dangling sextet carries no whole byte
            cleaned = cleaned[:-1]
        cleaned += "=" * (-len(cleaned) % 4)
        try:
            return base64.b64decode(cleaned)
        except (binascii.Error, ValueError):
            return b""
    data = text.replace("_", " ").encode("ascii", "replace")
    return _QP_HEX.sub(lambda m: bytes((int(m.group(1), 16),)), data)


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words anywhere in ``value`` (never raises)."""
    if "=?" not in value:
        return value
    out: list[str] = []
    pos = 0
    pending: bytearray = bytearray()
    pending_cs: str | None = None

    def flush() -> None:
        nonlocal pending, pending_cs
        if pending_cs is not None:
            out.append(decode_bytes(bytes(pending), pending_cs))
        pending = bytearray()
        pending_cs = None

    for m in _EW_RE.finditer(value):
        gap = value[pos : m.start()]
        if gap and (pending_cs is None or _BETWEEN_WS.fullmatch(gap) is None):
            flush()
            out.append(gap)
        charset = m.group(1).split("*", 1)[0].lower()
        if pending_cs is not None and charset != pending_cs:
            flush()
        pending_cs = charset
        pending += _word_bytes(m.group(2), m.group(3))
        pos = m.end()
    flush()
    out.append(value[pos:])
    return "".join(out)


def decode_header(value: str, codecs: Sequence[str] = ()) -> str:
    """Raw header value (as the compat32 parser keeps it) to clean text."""
    return decode_words(raw_to_str(value, codecs))


def fold_ws(value: str) -> str:
    return _WS_RE.sub(" ", value).strip()


# One comma-separated segment up to its '<'. The class excludes ',' and '<',
# so segments never overlap and the scan is linear; the old form with an
# '@' in the middle of two such classes backtracked quadratically.
_SEGMENT_BEFORE_ANGLE_RE = re.compile(r'(^|,)([^",<>()]*+)<')


def _quote_segment(m: re.Match[str]) -> str:
    name = m.group(2).strip()
    if "@" not in name:
        return m.group(0)
    return f'{m.group(1)} "{name}" <'


def _quote_bare_names(text: str) -> str:
    """'alice@x <bob@y>' -> '"alice@x" <bob@y>' so the stdlib keeps bob@y."""
    if "@" not in text or "<" not in text:
        return text
    return _SEGMENT_BEFORE_ANGLE_RE.sub(_quote_segment, text)


def parse_addresses(values: list[str], codecs: Sequence[str] = ()) -> tuple[Address, ...]:
    """Addresses from raw header values; names decoded after splitting.

    Splitting before decoding keeps commas inside encoded names intact.
    """
    if not values:
        return ()
    texts = [_quote_bare_names(raw_to_str(v, codecs).replace("\r", " ").replace("\n", " ")) for v in values]
    result: list[Address] = []
    seen: set[tuple[str, str]] = set()
    try:
        pairs = getaddresses(texts)
    except Exception:  # noqa: BLE001 - stdlib address parsing can choke on garbage
        pairs = []
    for name, email in pairs:
        email = email.strip().strip("<>").lower()
        if "@" not in email:
            continue
        name = fold_ws(decode_words(name)).strip("\"' ")
        if name.lower() == email:
            name = ""
        key = (name, email)
        if key not in seen:
            seen.add(key)
            result.append(Address(name, email))
    if not result:
        for text in texts:
            for email in _EMAIL_RE.findall(text):
                result.append(Address("", email.lower()))
    return tuple(result)


# Where a sender is looked for when From gives none, in order. Old spam-style
# clients (Outlook Express era) send only Reply-To and Return-Path.
SENDER_FALLBACK = ("Sender", "Reply-To", "Return-Path")


def pick_sender(
    values_of: Callable[[str], list[str]],
    envelope_from: str | None = None,
    codecs: Sequence[str] = (),
) -> tuple[Address | None, str | None]:
    """The sender and the header it came from ('From', 'Sender', ...).

    ``values_of(name)`` gives the raw values of header ``name``. The envelope
    sender (SMTP MAIL FROM, as a source saw it) is the last resort, named
    'envelope'. (None, None) when nothing yields an address.
    """
    for name in ("From", *SENDER_FALLBACK):
        found = parse_addresses(values_of(name), codecs)
        if found:
            return found[0], name
    if envelope_from:
        found = parse_addresses([envelope_from])
        if found:
            return found[0], "envelope"
    return None, None


def parse_msgids(values: list[str]) -> tuple[str, ...]:
    """All <...> tokens, in order, without duplicates or angle brackets."""
    ids: dict[str, None] = {}  # ordered and O(1) membership, for long References
    for value in values:
        text = raw_to_str(value)
        found = _MSGID_RE.findall(text)
        if not found:
            found = [t for t in text.split() if "@" in t]
        for token in found:
            token = token.strip("<>")
            if token:
                ids.setdefault(token)
    return tuple(ids)


def parse_date(value: str | None) -> datetime | None:
    """Aware datetime or None; a missing zone is taken as UTC."""
    if not value:
        return None
    try:
        dt = parsedate_to_datetime(fold_ws(raw_to_str(value)))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt
