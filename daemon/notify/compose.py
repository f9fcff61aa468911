"""Outgoing mail: templates rendered into safe RFC 5322 messages.

Everything a customer wrote (subject, name) can reach our headers, so every
header value passes through ``clean_header`` (no CR, LF or other control
characters) and addresses are built with ``email.headerregistry.Address``,
which refuses anything that is not one mailbox. That closes header
injection at the one place all outgoing mail is built.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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

import jinja2

from ... import templates as templates_package
from ..addresses import clean_header, make_address

# The shipped templates are package data of ``casegate.templates``.
TEMPLATES_DIR = Path(templates_package.__file__).resolve().parent
LANGUAGES = ("zh", "en")
class _CleanHeaders(type(compat32)):  # type: ignore[misc]
    """compat32 that writes a short, plain ASCII header as it is.

    Every value we set is already cleaned (one line, no controls) and
    RFC 2047-encoded where it needs to be (a Header object), so folding a
    short ASCII value through ``email.header.Header`` (most of the cost of
    serialising an acknowledgement) gives back the same line. Longer or
    non-ASCII values still take the stdlib's path.
    """

    def fold_binary(self, name: str, value: object) -> bytes:
        if (isinstance(value, str) and value.isascii() and "\n" not in value and "\r" not in value
                and len(name) + len(value) + 2 <= self.max_line_length):
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


WIRE_POLICY = _CleanHeaders(linesep="\r\n")


def new_message_id(domain: str) -> str:
    """A Message-ID without angle brackets (stored that way everywhere)."""
    return f"{uuid.uuid4().hex}.casegate@{domain}"


# Mail a customer reads: it gets an HTML part beside the text (their clients
# show text in a proportional font, which breaks aligned columns).
CUSTOMER_TEMPLATES = frozenset({
    "ack", "status_update", "confirm_request", "survey", "followup", "vendor_case_number", "engineer_reply",
    "history",
})


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str | None = None


class Renderer:
    """Jinja2 templates per language: ``<lang>/<name>.subject.j2``, ``.txt.j2``
    and, for customer mail, an HTML part from the same data.

    An admin's folder (``[templates] dir``) overrides the shipped templates
    file by file; Jinja2 checks each file's modification time when it is
    used, so an edited template applies to the next mail without a restart.
    """

    def __init__(self, folder: Path = TEMPLATES_DIR, default_language: str = "zh", *,
                 override: Path | None = None, service: dict[str, str] | None = None) -> None:
        loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(str(folder))]
        if override is not None:
            loaders.insert(0, jinja2.FileSystemLoader(str(override)))
        self.env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            autoescape=False,  # plain-text mail; the HTML layout escapes explicitly
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            auto_reload=True,
        )
        self.env.globals["service"] = {"name": "", "hotline": "", "address": "", "signature": "", **(service or {})}
        self.default_language = default_language
        self.override = override
        self._override_seen = self._override_signature()

    def _override_signature(self) -> tuple[int, ...]:
        """When a file appears in or leaves the admin's folder, its folders'
        times change (an edited file is caught by Jinja2 itself)."""
        if self.override is None:
            return ()
        out = []
        for folder in (self.override, *(self.override / lang for lang in LANGUAGES)):
            try:
                out.append(folder.stat().st_mtime_ns)
            except OSError:
                out.append(0)
        return tuple(out)

    def _follow_override(self) -> None:
        seen = self._override_signature()
        if seen != self._override_seen:
            self._override_seen = seen
            self.env.cache.clear()  # the next lookup asks the override folder first again

    def language(self, language: str | None) -> str:
        return language if language in LANGUAGES else self.default_language

    def render(self, name: str, language: str | None, **context: object) -> Rendered:
        lang = self.language(language)
        self._follow_override()
        subject = self.env.get_template(f"{lang}/{name}.subject.j2").render(**context)
        body = self.env.get_template(f"{lang}/{name}.txt.j2").render(**context)
        html = None
        if name in CUSTOMER_TEMPLATES:
            html = self.env.get_template(f"{lang}/_layout.html.j2").render(
                **{**context, "subject_line": clean_header(subject, 250), "body_text": body})
        return Rendered(clean_header(subject, 250), body, html)


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
    html: str | None = None,
) -> Message:
    """Assemble one outgoing message; all header text is cleaned here.

    Built with the compat32 MIME classes and explicit RFC 2047 encoding:
    every value is already cleaned, and this is several times faster than
    EmailMessage's header registry, which matters at hundreds of
    acknowledgements per second.
    """
    text_part: Message = MIMEText(body, "plain", "utf-8")
    if html is not None:
        alternative = MIMEMultipart("alternative")
        alternative.attach(text_part)
        alternative.attach(MIMEText(html, "html", "utf-8"))
        text_part = alternative
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
