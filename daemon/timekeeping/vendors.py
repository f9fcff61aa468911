"""Vendor escalation: opening a case with the equipment vendor and following it.

When the team cannot solve a case, an engineer writes ``#vendor NAME
[CASE-NO]``. We mail the vendor's support centre the case facts (customer
record, product, serial, our customer number with the vendor, the symptoms
as first written, the attachments), thread the vendor's replies back into
the case (they answer our message, and the subject keeps our case number),
capture the vendor's own case number from their reply, tell the customer
that number in a status update, and remind the vendor when it has been
silent for longer than its configured interval.

Config (``[[vendors]]``, all figures per vendor)::

    [[vendors]]
    name = "Huawei"
    address = "support@huawei.example"       # where cases are opened
    customer_number = "CN-88-1234"           # our contract/customer number with the vendor
    case_number_regex = "(?:Case|SR)[ #:]*(\\d{8,})"   # group 1 (or the match) is their number
    reminder_every = "1d"                    # "wd" = working days; "none" = never remind
    language = "en"                          # language of our mail to them
    aliases = ["华为"]                        # other names accepted by #vendor
    domains = ["huawei.example"]             # other sender domains that are this vendor
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import notices, timers
from ..notify.compose import build_message, local_time, make_address
from ..config import Config, ConfigError
from ..runtime.outbox import enqueue
from ..durations import Duration
from ...parsers.message import ParsedMessage
from ...storage import repository as repo
from ...storage.models import Attachment, Case, CaseTimer, Message, VendorCase

MAX_ATTACHMENT_BYTES = 15 * 1024 * 1024  # per vendor notice; larger files are only listed
_KEYS = ("name", "address", "customer_number", "case_number_regex", "reminder_every", "language", "aliases",
         "domains")


class UnknownVendor(ValueError):
    """``#vendor NAME`` named no configured vendor."""


@dataclass(frozen=True)
class Vendor:
    name: str
    address: str
    customer_number: str
    case_number: re.Pattern[str] | None
    reminder_every: Duration | None
    language: str
    aliases: tuple[str, ...]
    domains: tuple[str, ...]

    def names(self) -> set[str]:
        return {n.casefold() for n in (self.name, *self.aliases)}

    def sends_from(self, address: str) -> bool:
        addr = address.strip().lower()
        return addr == self.address or addr.rpartition("@")[2] in self.domains

    def find_case_number(self, text: str) -> str | None:
        if self.case_number is None or not text:
            return None
        m = self.case_number.search(text)
        if m is None:
            return None
        return (m.group(1) if m.groups() and m.group(1) else m.group(0)).strip()[:100] or None


class VendorDirectory:
    """The configured vendors, looked up by name/alias or by sender address."""

    def __init__(self, vendors: tuple[Vendor, ...] = ()) -> None:
        self.vendors = vendors

    @classmethod
    def from_config(cls, config: Config) -> VendorDirectory:
        file = str(config.path) if config.path else "<defaults>"
        data = config.extra.get("vendors", [])
        if not isinstance(data, list):
            raise ConfigError(f"{file}: vendors: expected an array of tables ([[vendors]])")
        out: list[Vendor] = []
        for i, item in enumerate(data):
            out.append(_vendor(item, f"{file}: vendors[{i}]"))
        names: dict[str, int] = {}
        for i, v in enumerate(out):
            for n in v.names():
                if n in names:
                    raise ConfigError(f"{file}: vendors[{i}]: name or alias {n!r} is also vendors[{names[n]}]")
                names[n] = i
        return cls(tuple(out))

    def by_name(self, name: str) -> Vendor | None:
        key = name.strip().casefold()
        return next((v for v in self.vendors if key in v.names()), None)

    def by_address(self, address: str | None) -> Vendor | None:
        if not address:
            return None
        return next((v for v in self.vendors if v.sends_from(address)), None)

    def known(self, name: str) -> bool:
        return self.by_name(name) is not None


def _vendor(item: Any, where: str) -> Vendor:
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: expected a table")
    unknown = sorted(set(item) - set(_KEYS))
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key (expected one of: {', '.join(_KEYS)})")
    for key in ("name", "address"):
        if not isinstance(item.get(key), str) or not item[key].strip():
            raise ConfigError(f"{where}.{key}: required string is missing")
    address = item["address"].strip().lower()
    try:
        make_address(address)
    except ValueError:
        raise ConfigError(f"{where}.address: not a single e-mail address: {item['address']!r}") from None
    regex = None
    if item.get("case_number_regex"):
        try:
            regex = re.compile(str(item["case_number_regex"]), re.IGNORECASE)
        except re.error as exc:
            raise ConfigError(f"{where}.case_number_regex: invalid regular expression: {exc}") from None
    every_text = item.get("reminder_every", "1d")
    every: Duration | None = None
    if every_text != "none":
        try:
            every = Duration.parse(every_text)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}.reminder_every: {exc}") from None
        if not every:
            raise ConfigError(f"{where}.reminder_every: must be more than zero (or \"none\")")
    language = item.get("language", "en")
    if language not in ("zh", "en"):
        raise ConfigError(f"{where}.language: expected zh or en, got {language!r}")
    lists = {}
    for key in ("aliases", "domains"):
        value = item.get(key, [])
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            raise ConfigError(f"{where}.{key}: expected a list of strings")
        lists[key] = tuple(x.strip() for x in value if x.strip())
    return Vendor(
        name=item["name"].strip(), address=address, customer_number=str(item.get("customer_number", "")),
        case_number=regex, reminder_every=every, language=language, aliases=lists["aliases"],
        domains=tuple(d.lower() for d in lists["domains"]),
    )


def directory(ctx: Any) -> VendorDirectory:
    found = getattr(ctx, "vendor_directory", None)
    if not isinstance(found, VendorDirectory):
        found = VendorDirectory.from_config(ctx.config)
        try:
            ctx.vendor_directory = found
        except AttributeError:
            pass
    return found


def vendor_for_address(ctx: Any, address: str | None) -> Vendor | None:
    return directory(ctx).by_address(address)


def open_vendor_case(session: Session, case: Case) -> VendorCase | None:
    """The newest vendor case of an unresolved case."""
    return session.execute(
        select(VendorCase).where(VendorCase.case_id == case.id).order_by(VendorCase.id.desc()).limit(1)
    ).scalars().first()


# ---------------------------------------------------------------- escalation


def _attachments(ctx: Any, session: Session, case: Case) -> tuple[list[tuple[str, str, bytes]], list[str]]:
    """Every customer attachment of the case: files to attach, and names too large to attach."""
    rows = session.execute(
        select(Attachment).join(Message, Message.id == Attachment.message_id)
        .where(Message.case_id == case.id, Message.direction == "in").order_by(Attachment.id)
    ).scalars().all()
    files, listed, total = [], [], 0
    for att in rows:
        if att.inline:
            continue
        if total + att.size > MAX_ATTACHMENT_BYTES:
            listed.append(att.filename)
            continue
        try:
            files.append((att.filename, att.content_type, ctx.blobs.get(att.sha256)))
            total += att.size
        except OSError:
            listed.append(att.filename)
    return files, listed


def _mail_vendor(session: Session, ctx: Any, case: Case, vendor: Vendor, vc: VendorCase, template: str,
                 kind: str, now: datetime, with_attachments: bool) -> None:
    svc = ctx.config.service
    fields = notices.case_context(ctx, case, vendor.language)
    files, listed = _attachments(ctx, session, case) if with_attachments else ([], [])
    who = notices.requester(session, ctx, case)
    c = case.customer
    fields.update(
        vendor=vendor, vendor_case=vc, symptoms=notices.first_text(session, case), too_large=listed,
        attached=[f[0] for f in files], requester=who.email if who else "",
        warranty_end=c.warranty_end.isoformat() if c and c.warranty_end else "",
        escalated=local_time(vc.escalated_at, svc.timezone),
    )
    subject, body = ctx.renderer.render(template, vendor.language, **fields)
    previous = session.execute(
        select(Message.message_id).where(Message.case_id == case.id, Message.direction == "out",
                                         Message.to_addrs == vendor.address).order_by(Message.id.desc()).limit(1)
    ).scalar()
    # A human request to a support centre, not an automatic reply: vendors'
    # ticket systems may drop mail marked Auto-Submitted.
    msg = build_message(
        from_addr=make_address(svc.address, svc.display_name), to=[make_address(vendor.address, vendor.name)],
        subject=subject, body=body, domain=svc.domain, now=now, in_reply_to=previous, auto_submitted=None,
        attachments=files,
    )
    enqueue(session, msg, kind=kind, case_id=case.id, mail_from=svc.address, rcpt_to=[vendor.address],
            now=now, text=body)
    vc.last_sent_at = now


def escalate_to_vendor(session: Session, ctx: Any, case: Case, vendor_name: str, vendor_case_no: str | None,
                       actor: str, now: datetime) -> VendorCase:
    """Open (or update) the vendor case for ``case``: notice to the vendor, reminder planned.

    Called by the ``#vendor`` command inside the engineer's transaction.
    Repeating the command with a case number only records the number and
    tells the customer; it does not send the vendor a second notice.
    Raises ``UnknownVendor`` for a name no ``[[vendors]]`` entry has.
    """
    vendor = directory(ctx).by_name(vendor_name)
    if vendor is None:
        raise UnknownVendor(f"unknown vendor {vendor_name!r}")
    vc = session.execute(
        select(VendorCase).where(VendorCase.case_id == case.id, VendorCase.vendor == vendor.name)
    ).scalars().first()
    if vc is None:
        vc = VendorCase(case_id=case.id, vendor=vendor.name, address=vendor.address, escalated_at=now,
                        escalated_by=actor, last_sent_at=now)
        session.add(vc)
        session.flush()
        _mail_vendor(session, ctx, case, vendor, vc, "vendor_escalation", "vendor-escalation", now, True)
        repo.add_event(session, case, now, actor, "vendor-escalated", new=vendor.name,
                       detail={"address": vendor.address, "vendor_case_number": vendor_case_no})
        if vendor.reminder_every is not None:
            timers.add_timer(session, case, timers.VENDOR_REMINDER, cycle=vc.id, step=1, anchor_at=now,
                             due_at=_after(ctx, now, vendor.reminder_every), detail={"vendor": vendor.name})
    if vendor_case_no:
        record_vendor_case_number(session, ctx, case, vc, vendor_case_no, actor, now)
    case.updated_at = now
    return vc


def _after(ctx: Any, start: datetime, every: Duration) -> datetime:
    return every.after(start, ctx.policy.wall_clock, ctx.policy.calendar)


def record_vendor_case_number(session: Session, ctx: Any, case: Case, vc: VendorCase, number: str, actor: str,
                              now: datetime) -> None:
    """Keep the vendor's case number and tell the customer (once per number)."""
    number = number.strip()[:100]
    if not number or number == vc.vendor_case_no:
        return
    old, vc.vendor_case_no = vc.vendor_case_no, number
    repo.add_event(session, case, now, actor, "vendor-case-number", old=old, new=number, detail={"vendor": vc.vendor})
    if case.status in timers.AFTER_RESOLUTION:
        return
    sent = notices.mail_customer(
        session, ctx, case, "vendor_case_number", "vendor-case-number", now, event="vendor-case-number-sent",
        event_detail={"vendor": vc.vendor, "number": number}, vendor_name=vc.vendor, vendor_case_no=number,
    )
    if sent:
        vc.customer_told_at = now


# ---------------------------------------------------------------- replies and reminders


def handle_reminder(session: Session, ctx: Any, timer: CaseTimer, case: Case, now: datetime) -> None:
    """Remind a vendor that has been silent for its interval; plan the next reminder."""
    vc = session.get(VendorCase, timer.cycle)
    vendor = directory(ctx).by_name(vc.vendor) if vc is not None else None
    if vc is None or vendor is None or vendor.reminder_every is None:
        timers.finish(timer, now, "skipped:no-vendor")
        return
    if case.status in timers.AFTER_RESOLUTION:
        timers.finish(timer, now, f"skipped:{case.status}")
        return
    last_heard = max(vc.last_sent_at, vc.last_reply_at or vc.last_sent_at)
    due = _after(ctx, last_heard, vendor.reminder_every)
    if due > now:
        timer.due_at = due  # they answered (or we wrote) recently
        return
    _mail_vendor(session, ctx, case, vendor, vc, "vendor_reminder", "vendor-reminder", now, False)
    repo.add_event(session, case, now, "scheduler", "vendor-reminded", new=vendor.name,
                   detail={"step": timer.step, "silent_since": last_heard.isoformat()})
    timers.finish(timer, now, "sent")
    timers.add_timer(session, case, timers.VENDOR_REMINDER, cycle=vc.id, step=timer.step + 1, anchor_at=now,
                     due_at=_after(ctx, now, vendor.reminder_every), detail={"vendor": vendor.name})


class VendorMail:
    """Pipeline hooks: vendors are not customers; their replies feed the vendor case."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    def not_customer(self, address: str) -> str | None:
        vendor = vendor_for_address(self.ctx, address)
        return f"sender is the vendor {vendor.name}" if vendor is not None else None

    def after_store(self, session: Session, case: Case, message: Message, parsed: ParsedMessage,
                    outcome: str) -> None:
        vendor = vendor_for_address(self.ctx, parsed.sender_email)
        if vendor is None or outcome not in ("reply", "new"):
            return
        vc = session.execute(
            select(VendorCase).where(VendorCase.case_id == case.id, VendorCase.vendor == vendor.name)
        ).scalars().first()
        if vc is None:
            return
        now = message.created_at
        vc.last_reply_at = now
        repo.add_event(session, case, now, (parsed.sender_email or vendor.address).lower(), "vendor-replied",
                       new=vendor.name)
        number = vendor.find_case_number(parsed.subject) or vendor.find_case_number(parsed.new_text or parsed.text)
        if number and vc.vendor_case_no is None:
            record_vendor_case_number(session, self.ctx, case, vc, number, vendor.name, now)


def install_handoff(ctx: Any) -> None:
    """Complete ``#vendor``: register with the workflow's hand-off registry, when there is one."""
    registry = getattr(getattr(ctx, "workflow", None), "vendors", None)
    if registry is None:
        return
    vendors = directory(ctx)

    def hand_off(session: Session, case: Case, request: Any) -> None:
        escalate_to_vendor(session, ctx, case, request.vendor, request.vendor_case_number, request.actor,
                           request.at)

    registry.add(hand_off)
    if vendors.vendors:
        registry.known_vendor = vendors.known
