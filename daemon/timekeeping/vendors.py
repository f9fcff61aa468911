"""Vendor escalation: opening a case with the equipment vendor and following it.

When the team cannot solve a case, an engineer writes ``#vendor NAME
[CASE-NO]``. We mail the vendor's support centre the case facts (customer
record, product, serial, our customer number with the vendor, the symptoms
as first written, the attachments), thread the vendor's replies back into
the case (they answer our message, and the subject keeps our case number),
capture the vendor's own case number from their reply, tell the customer
that number in a status update, and remind the vendor when it has been
silent for longer than its configured interval.

The vendors themselves are configured in ``[[vendors]]`` (daemon/directory/vendors.py).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from . import notices, timers
from .desk import Desk
from ..directory.vendors import UnknownVendor, Vendor
from ..durations import Duration
from ..notify.notifier import Letter
from ..notify.wording import local_time
from ...parsers.message import ParsedMessage
from ...storage import repository as repo
from ...storage.models import Case, CaseTimer, Message, VendorCase

MAX_ATTACHMENT_BYTES = 15 * 1024 * 1024  # per vendor notice; larger files are only listed


# ---------------------------------------------------------------- escalation


def _attachments(desk: Desk, session: Session, case: Case) -> tuple[list[tuple[str, str, bytes]], list[str]]:
    """Every customer attachment of the case: files to attach, and names too large to attach."""
    files, listed, total = [], [], 0
    for att in repo.inbound_attachments(session, case):
        if att.inline:
            continue
        if total + att.size > MAX_ATTACHMENT_BYTES:
            listed.append(att.filename)
            continue
        try:
            files.append((att.filename, att.content_type, desk.blobs.get(att.sha256)))
            total += att.size
        except OSError:
            listed.append(att.filename)
    return files, listed


def _warranty_end(case: Case) -> str:
    """The product's warranty end (customer master data), else the customer record's."""
    end = case.product.warranty_end if case.product is not None else None
    if end is None and case.customer is not None:
        end = case.customer.warranty_end
    return end.isoformat() if end else ""


def _mail_vendor(session: Session, desk: Desk, case: Case, vendor: Vendor, vc: VendorCase, template: str,
                 kind: str, now: datetime, with_attachments: bool) -> None:
    fields = desk.notifier.case_fields(case, vendor.language)
    files, listed = _attachments(desk, session, case) if with_attachments else ([], [])
    who = desk.notifier.customers.requester(session, case)
    fields.update(
        vendor=vendor, vendor_case=vc, symptoms=notices.first_text(session, case), too_large=listed,
        attached=[f[0] for f in files], requester=who.email if who else "",
        warranty_end=_warranty_end(case),
        escalated=local_time(vc.escalated_at, desk.service.timezone),
    )
    # A human request to a support centre, not an automatic reply: vendors'
    # ticket systems may drop mail marked Auto-Submitted.
    desk.notifier.send(session, Letter(
        kind=kind, case=case, to=vendor.address, to_name=vendor.name, template=template,
        language=vendor.language, fields=fields, now=now, guard=False, auto_submitted=None,
        in_reply_to=repo.last_message_id_sent_to(session, case, vendor.address), attachments=files,
    ))
    vc.last_sent_at = now


def escalate_to_vendor(session: Session, desk: Desk, case: Case, vendor_name: str, vendor_case_no: str | None,
                       actor: str, now: datetime) -> VendorCase:
    """Open (or update) the vendor case for ``case``: notice to the vendor, reminder planned.

    Called by the ``#vendor`` command inside the engineer's transaction.
    Repeating the command with a case number only records the number and
    tells the customer; it does not send the vendor a second notice.
    Raises ``UnknownVendor`` for a name no ``[[vendors]]`` entry has. An
    empty name means the vendor of the case's product (customer master data).
    """
    if not vendor_name and case.product is not None:
        vendor_name = case.product.vendor
    vendor = desk.vendors.by_name(vendor_name)
    if vendor is None:
        raise UnknownVendor(f"unknown vendor {vendor_name!r}")
    vc = repo.vendor_case(session, case, vendor.name)
    if vc is None:
        vc = VendorCase(case_id=case.id, vendor=vendor.name, address=vendor.address, escalated_at=now,
                        escalated_by=actor, last_sent_at=now)
        session.add(vc)
        session.flush()
        _mail_vendor(session, desk, case, vendor, vc, "vendor_escalation", "vendor-escalation", now, True)
        repo.add_event(session, case, now, actor, "vendor-escalated", new=vendor.name,
                       detail={"address": vendor.address, "vendor_case_number": vendor_case_no})
        if vendor.reminder_every is not None:
            timers.add_timer(session, case, timers.VENDOR_REMINDER, cycle=vc.id, step=1, anchor_at=now,
                             due_at=_after(desk, now, vendor.reminder_every), detail={"vendor": vendor.name})
    if vendor_case_no:
        record_vendor_case_number(session, desk, case, vc, vendor_case_no, actor, now)
    case.updated_at = now
    return vc


def _after(desk: Desk, start: datetime, every: Duration) -> datetime:
    return every.after(start, desk.policy.wall_clock, desk.policy.calendar)


def record_vendor_case_number(session: Session, desk: Desk, case: Case, vc: VendorCase, number: str, actor: str,
                              now: datetime) -> None:
    """Keep the vendor's case number and tell the customer (once per number)."""
    number = number.strip()[:100]
    if not number or number == vc.vendor_case_no:
        return
    old, vc.vendor_case_no = vc.vendor_case_no, number
    repo.add_event(session, case, now, actor, "vendor-case-number", old=old, new=number, detail={"vendor": vc.vendor})
    if case.status in timers.AFTER_RESOLUTION:
        return
    sent = desk.notifier.to_customer(
        session, case, "vendor_case_number", "vendor-case-number", now, event="vendor-case-number-sent",
        event_detail={"vendor": vc.vendor, "number": number}, vendor_name=vc.vendor, vendor_case_no=number,
    )
    if sent:
        vc.customer_told_at = now


# ---------------------------------------------------------------- replies and reminders


def handle_reminder(session: Session, desk: Desk, timer: CaseTimer, case: Case, now: datetime) -> None:
    """Remind a vendor that has been silent for its interval; plan the next reminder."""
    vc = session.get(VendorCase, timer.cycle)
    vendor = desk.vendors.by_name(vc.vendor) if vc is not None else None
    if vc is None or vendor is None or vendor.reminder_every is None:
        timers.finish(timer, now, "skipped:no-vendor")
        return
    if case.status in timers.AFTER_RESOLUTION:
        timers.finish(timer, now, f"skipped:{case.status}")
        return
    last_heard = max(vc.last_sent_at, vc.last_reply_at or vc.last_sent_at)
    due = _after(desk, last_heard, vendor.reminder_every)
    if due > now:
        timer.due_at = due  # they answered (or we wrote) recently
        return
    _mail_vendor(session, desk, case, vendor, vc, "vendor_reminder", "vendor-reminder", now, False)
    repo.add_event(session, case, now, "scheduler", "vendor-reminded", new=vendor.name,
                   detail={"step": timer.step, "silent_since": last_heard.isoformat()})
    timers.finish(timer, now, "sent")
    timers.add_timer(session, case, timers.VENDOR_REMINDER, cycle=vc.id, step=timer.step + 1, anchor_at=now,
                     due_at=_after(desk, now, vendor.reminder_every), detail={"vendor": vendor.name})


def vendor_replied(session: Session, desk: Desk, case: Case, message: Message, parsed: ParsedMessage) -> None:
    """A vendor's mail on the case: note the reply and capture their case number."""
    vendor = desk.vendors.by_address(parsed.sender_email)
    if vendor is None:
        return
    vc = repo.vendor_case(session, case, vendor.name)
    if vc is None:
        return
    now = message.created_at
    vc.last_reply_at = now
    repo.add_event(session, case, now, (parsed.sender_email or vendor.address).lower(), "vendor-replied",
                   new=vendor.name)
    number = vendor.find_case_number(parsed.subject) or vendor.find_case_number(parsed.new_text or parsed.text)
    if number and vc.vendor_case_no is None:
        record_vendor_case_number(session, desk, case, vc, number, vendor.name, now)
