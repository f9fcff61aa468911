"""Make every text field of a ParsedMessage storable in PostgreSQL.

PostgreSQL's text type rejects NUL characters, and its UTF-8 encoding
rejects lone surrogates, which Python strings from mail carry easily (NUL
bytes in a body or header, surrogate-escaped 8-bit bytes the stdlib leaves
in header values, broken UTF-16 in HTML entities). One such character fails
the whole transaction, so parse_message runs every message through
:func:`sanitize_message` once, at the end, instead of trusting each decoder.
NULs are dropped and lone surrogates become U+FFFD; the raw bytes, kept
whole beside the message, are not touched, and neither are attachment
contents.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from typing import TypeVar

from .message import Address, Attachment, FaxInfo, ParsedMessage

_UNSTORABLE_RE = re.compile("[\x00\ud800-\udfff]")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_T = TypeVar("_T")


def clean_text(value: str) -> str:
    """``value`` without NUL and with each lone surrogate as U+FFFD."""
    if _UNSTORABLE_RE.search(value) is None:
        return value
    return _SURROGATE_RE.sub("\ufffd", value.replace("\x00", ""))


def _clean_optional(value: str | None) -> str | None:
    return None if value is None else clean_text(value)


def _clean_address(address: Address) -> Address:
    name, email = clean_text(address.name), clean_text(address.email)
    if name is address.name and email is address.email:
        return address
    return Address(name, email)


def _clean_addresses(addresses: tuple[Address, ...]) -> tuple[Address, ...]:
    return tuple(_clean_address(a) for a in addresses)


def _clean_strings(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(clean_text(v) for v in values)


def _clean_attachment(att: Attachment) -> Attachment:
    filename = clean_text(att.filename)
    content_type = clean_text(att.content_type)
    content_id = _clean_optional(att.content_id)
    if filename is att.filename and content_type is att.content_type and content_id is att.content_id:
        return att
    # A name emptied by cleaning would break the "never empty" promise.
    return dataclasses.replace(
        att, filename=filename or "attachment", content_type=content_type, content_id=content_id
    )


def _clean_header(pair: tuple[str, str]) -> tuple[str, str]:
    name, value = clean_text(pair[0]), clean_text(pair[1])
    return pair if name is pair[0] and value is pair[1] else (name, value)


def _clean_fax(fax: FaxInfo | None) -> FaxInfo | None:
    if fax is None:
        return None
    fields = ("sender_number", "raw_sender", "gateway", "not_read")
    cleaned = {f: _clean_optional(getattr(fax, f)) for f in fields}
    changed = {f: v for f, v in cleaned.items() if v is not getattr(fax, f)}
    return dataclasses.replace(fax, **changed) if changed else fax


def _same(old: _T, new: _T) -> bool:
    if isinstance(old, tuple) and isinstance(new, tuple):
        return len(old) == len(new) and all(a is b for a, b in zip(old, new))
    return old is new


def _texts(msg: ParsedMessage) -> Iterator[str]:
    """Every text of ``msg`` (the fast check before any rebuilding)."""
    yield from (msg.subject, msg.text, msg.new_text, *msg.in_reply_to, *msg.references, *msg.defects)
    for optional in (msg.message_id, msg.html, msg.language):
        if optional is not None:
            yield optional
    for address in (*((msg.from_,) if msg.from_ else ()), *msg.reply_to, *msg.to, *msg.cc):
        yield address.name
        yield address.email
    for att in msg.attachments:
        yield att.filename
        yield att.content_type
        if att.content_id is not None:
            yield att.content_id
    for name, value in msg.headers:
        yield name
        yield value
    if msg.fax is not None:
        for optional in (msg.fax.sender_number, msg.fax.raw_sender, msg.fax.gateway, msg.fax.not_read):
            if optional is not None:
                yield optional


def sanitize_message(msg: ParsedMessage) -> ParsedMessage:
    """``msg`` with every text field storable; the same object when it was."""
    if not any(_UNSTORABLE_RE.search(text) for text in _texts(msg)):
        return msg
    cleaned = {
        "message_id": _clean_optional(msg.message_id),
        "in_reply_to": _clean_strings(msg.in_reply_to),
        "references": _clean_strings(msg.references),
        "from_": None if msg.from_ is None else _clean_address(msg.from_),
        "reply_to": _clean_addresses(msg.reply_to),
        "to": _clean_addresses(msg.to),
        "cc": _clean_addresses(msg.cc),
        "subject": clean_text(msg.subject),
        "text": clean_text(msg.text),
        "new_text": clean_text(msg.new_text),
        "html": _clean_optional(msg.html),
        "attachments": tuple(_clean_attachment(a) for a in msg.attachments),
        "headers": tuple(_clean_header(pair) for pair in msg.headers),
        "defects": _clean_strings(msg.defects),
        "fax": _clean_fax(msg.fax),
        "language": _clean_optional(msg.language),
    }
    changed = {k: v for k, v in cleaned.items() if not _same(getattr(msg, k), v)}
    return dataclasses.replace(msg, **changed) if changed else msg
