"""Outgoing mail: templates rendered into safe RFC 5322 messages.

Everything a customer wrote (subject, name) can reach our headers, so every
header value passes through ``clean_header`` (no CR, LF or other control
characters) and addresses are built with ``email.headerregistry.Address``,
which refuses anything that is not one mailbox. That closes header
injection at the one place all outgoing mail is built.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
import email.policy
from email import encoders
from email.header import Header
from email.headerregistry import Address as HeaderAddress
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import format_datetime, formataddr
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2

from ... import templates as templates_package
from ..addresses import clean_header, make_address

# The shipped templates are package data of ``casegate.templates``.
TEMPLATES_DIR = Path(templates_package.__file__).resolve().parent
LANGUAGES = ("zh", "en")
WIRE_POLICY = compat32.clone(linesep="\r\n")


def new_message_id(domain: str) -> str:
    """A Message-ID without angle brackets (stored that way everywhere)."""
    return f"{uuid.uuid4().hex}.casegate@{domain}"


class Renderer:
    """Jinja2 templates per language: ``<lang>/<name>.subject.j2`` and ``.txt.j2``."""

    def __init__(self, folder: Path = TEMPLATES_DIR, default_language: str = "zh") -> None:
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(folder)),
            autoescape=False,  # plain-text mail
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )
        self.default_language = default_language

    def render(self, name: str, language: str | None, **context: object) -> tuple[str, str]:
        lang = language if language in LANGUAGES else self.default_language
        subject = self.env.get_template(f"{lang}/{name}.subject.j2").render(**context)
        body = self.env.get_template(f"{lang}/{name}.txt.j2").render(**context)
        return clean_header(subject, 250), body


def _header(text: str, name: str) -> Header:
    return Header(text, "us-ascii" if text.isascii() else "utf-8", header_name=name)


def _format_address(addr: HeaderAddress) -> str:
    if addr.addr_spec.isascii():
        return formataddr((addr.display_name, addr.addr_spec), charset="utf-8")
    # An internationalized address (RFC 6531/6532, e.g. 张三@example.cn) is
    # written as UTF-8; to_wire and the SMTP transport then use SMTPUTF8.
    name = Header(addr.display_name, "utf-8").encode() if addr.display_name else ""
    return f"{name} <{addr.addr_spec}>" if name else addr.addr_spec


def build_message(
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
) -> Message:
    """Assemble one outgoing message; all header text is cleaned here.

    Built with the compat32 MIME classes and explicit RFC 2047 encoding:
    every value is already cleaned, and this is several times faster than
    EmailMessage's header registry, which matters at hundreds of
    acknowledgements per second.
    """
    text_part = MIMEText(body, "plain", "utf-8")
    files = list(attachments)
    msg: Message
    if files:
        msg = MIMEMultipart()
        msg.attach(text_part)
        for filename, ctype, content in files:
            maintype, _, subtype = ctype.partition("/")
            part = MIMEBase(maintype or "application", subtype or "octet-stream")
            part.set_payload(content)
            encoders.encode_base64(part)
            part.add_header("Content-Disposition", "attachment", filename=("utf-8", "", clean_header(filename, 200)))
            msg.attach(part)
    else:
        msg = text_part
    msg["From"] = _format_address(from_addr)
    msg["To"] = ", ".join(_format_address(a) for a in to)
    if cc:
        msg["Cc"] = ", ".join(_format_address(a) for a in cc)
    if reply_to is not None:
        msg["Reply-To"] = _format_address(reply_to)
    msg["Subject"] = _header(clean_header(subject, 250), "Subject")
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = f"<{new_message_id(domain)}>"
    refs = [clean_header(r, 500) for r in references if r]
    if in_reply_to:
        msg["In-Reply-To"] = f"<{clean_header(in_reply_to, 500)}>"
        if in_reply_to not in refs:
            refs.append(clean_header(in_reply_to, 500))
    if refs:
        msg["References"] = " ".join(f"<{r}>" for r in refs[-20:])
    if auto_submitted:
        # RFC 3834: marks our automatic mail so well-behaved responders stay quiet.
        msg["Auto-Submitted"] = auto_submitted
        msg["X-Auto-Response-Suppress"] = "All"
    for name, value in extra_headers:
        key = clean_header(name, 60).replace(":", "")
        msg[key] = _header(clean_header(value, 500), key)
    return msg


def to_wire(msg: Message) -> bytes:
    """The message as SMTP sends it (CRLF line ends).

    A message to or from an internationalized address carries raw UTF-8
    headers (RFC 6532) and is sent with SMTPUTF8.
    """
    if all(isinstance(v, Header) or str(v).isascii() for v in msg.values()):
        return msg.as_bytes(policy=WIRE_POLICY)
    for name, value in msg.items():
        if isinstance(value, Header):  # the UTF-8 policy folds text, not Header objects
            msg.replace_header(name, str(value))
    return msg.as_bytes(policy=email.policy.SMTPUTF8)


def message_id_of(msg: Message) -> str:
    return str(msg["Message-ID"]).strip().strip("<>")
