"""Second-chance decoding with mail-parser when our walker hits a bug.

mail-parser (a project dependency) is kept OFF the hot path: it builds many
derived views per message (received hops, defects categories, attachments
with hashes, JSON-able dicts) and costs several milliseconds per small
message versus ~0.2 ms for parse.py, which would break the 500 msg/s
budget. It earns its place here as an independent implementation: if
parse.py raises an unexpected exception on some odd input, we still
deliver subject, sender and body instead of quarantining the mail.
"""

from __future__ import annotations

from email.message import Message

from .charsets import decode_bytes
from .headers import fold_ws, parse_addresses, parse_date, pick_sender
from .language import guess_language
from .message import ParsedMessage, ParseError
from .quotes import strip_quotes


def _raw_all(msg: Message, name: str) -> list[str]:
    return [str(v) for k, v in msg.raw_items() if k.lower() == name.lower()]


def parse_with_mailparser(raw: bytes, reason: str, *, envelope_from: str | None = None) -> ParsedMessage:
    """Minimal ParsedMessage from mail-parser; ParseError if it fails too.

    The sender falls back as in parse.py (Sender, Reply-To, Return-Path,
    then ``envelope_from``) when mail-parser finds no From address.
    """
    try:
        import mailparser

        mail = mailparser.parse_from_bytes(raw)
        subject = fold_ws(str(mail.subject or ""))
        from_list = parse_addresses([f"{n} <{e}>" if n else e for n, e in (mail.from_ or [])])
        if not from_list:
            sender, _source = pick_sender(lambda name: _raw_all(mail.message, name), envelope_from)
            from_list = (sender,) if sender else ()
        text = "\n".join(mail.text_plain or []) or "\n".join(mail.text_html or [])
    except Exception as exc:  # noqa: BLE001 - last resort; anything means "cannot parse"
        raise ParseError(f"{reason}; mail-parser fallback failed: {type(exc).__name__}") from exc
    if isinstance(text, bytes):
        text = decode_bytes(text)
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    return ParsedMessage(
        message_id=(str(mail.message_id).strip().strip("<>") or None) if mail.message_id else None,
        in_reply_to=(),
        references=(),
        from_=from_list[0] if from_list else None,
        reply_to=(),
        to=(),
        cc=(),
        subject=subject,
        date=parse_date(raw_date) if (raw_date := mail.headers.get("Date")) else None,
        text=text,
        new_text=strip_quotes(text) or text,
        html=None,
        attachments=(),
        is_auto_reply=False,
        is_bounce=False,
        is_list=False,
        headers=(),
        defects=(f"FallbackMailParser: {reason}",),
        language=guess_language(text),
    )
