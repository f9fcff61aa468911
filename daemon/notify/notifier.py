"""The one owner of outgoing mail.

Every mail casegate writes (acknowledgements, engineers' replies relayed to
the customer, staff notifications, escalations, scheduled customer notices,
vendor escalations) is a ``Letter`` handed to ``Notifier.send``, which does
the same five things for all of them, in this order:

1. the route: a fax-only customer is reached through the e-mail-to-fax
   gateway (with the letter as PDF), never at the gateway's own From;
2. the guard, by the letter's class: *automatic* mail to outside addresses
   (acknowledgements, status updates, surveys) never goes to our own,
   no-reply or vendor addresses and at most ``max_auto_mails_per_hour`` per
   address (RFC 3834 loop protection); mail *written by a person* (an
   engineer's reply) has the loop checks but no hourly limit: it is never
   dropped for being the eleventh mail of the hour; *staff* mail has its own,
   larger limit (``max_staff_mails_per_hour``), so a flood of customer mail
   never silences the engineers' notices. A Cc address that cannot be used
   is dropped with an event; the mail still goes to the others;
3. rendering: the language's Jinja2 templates;
4. composing: one RFC 5322 message whose every header is cleaned;
5. queueing: the outbox row and the case's record of it, in the caller's
   transaction, so a notice commits with its cause or not at all.

A refused letter is recorded on the case as ``<event>-suppressed`` with the
reason, so the case history says why nothing went out.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.headerregistry import Address as HeaderAddress
from typing import Any

from sqlalchemy.orm import Session

from ..addresses import make_address
from ..config import ServiceConfig
from ..directory.reply_address import ReplyAddressSigner
from ..directory.staff import StaffMember
from ..directory.vendors import VendorDirectory
from .compose import Renderer
from .wire import Outgoing, write_message
from .fax_route import ReplyRoute
from .recipients import CustomerFinder
from .wording import NO_SUBJECT, ROLE_LABELS, STATUS_LABELS, lang_of, local_time
from ...storage import repository as repo
from ...storage.models import Case, Message

log = logging.getLogger("casegate.notify")

NO_REPLY_LOCALPARTS = ("mailer-daemon", "postmaster", "noreply", "no-reply", "donotreply", "do-not-reply", "bounce")

# Outgoing kinds a timer or the pipeline sends on its own; every other mail
# to the customer was written by a person.
AUTOMATIC_KINDS = ("ack", "status-update", "confirm-request", "survey", "followup", "vendor-case-number")

Attachments = Iterable[tuple[str, str, bytes]]


@dataclass
class Letter:
    """One mail to be sent: to whom, what, and how it is guarded and recorded."""

    kind: str                     # the outbox kind: ack, reply, notify-new, escalation, ...
    case: Case | None
    to: str | None
    to_name: str
    template: str
    language: str
    fields: dict[str, Any]
    now: datetime
    event: str | None = None      # "<event>-suppressed" is recorded when refused
    actor: str = "system"
    guard: bool = True            # apply loop protection and the hourly limit
    mail_class: str = "automatic"  # automatic | personal | staff: which limit applies
    route: ReplyRoute | None = None
    cc: Sequence[str] = ()
    reply_to: str | None = None
    in_reply_to: str | None = None
    references: Iterable[str] = ()
    attachments: Attachments = ()
    auto_submitted: str | None = "auto-replied"
    extra_headers: Iterable[tuple[str, str]] = ()
    record_text: str | None = None  # what the case history keeps (default: the body)
    files_from_route: bool = True   # attach the fax letter PDF when routed through a fax gateway
    html: str | None = None         # a ready-made HTML part (e.g. the monthly report page)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Queued:
    """What ``send`` did: the address queued to (None: refused, see ``refusal``)."""

    address: str | None
    refusal: str | None = None
    subject: str = ""
    body: str = ""

    def __bool__(self) -> bool:
        return self.address is not None


class Notifier:
    def __init__(
        self,
        service: ServiceConfig,
        renderer: Renderer,
        customers: CustomerFinder,
        vendors: VendorDirectory,
        signer: ReplyAddressSigner | None,
    ) -> None:
        self.service = service
        self.renderer = renderer
        self.customers = customers
        self.vendors = vendors
        self.signer = signer
        self.own_addresses = {service.address.lower()}

    # ------------------------------------------------------------ the guard

    def refusal(self, session: Session, address: str | None, now: datetime, mail_class: str = "automatic") -> str | None:
        """Why we must not send mail of ``mail_class`` to ``address`` (None: we may)."""
        if not address:
            return "no sender address"
        addr = address.lower()
        local, _, domain = addr.partition("@")
        base_local = local.split("+", 1)[0]
        if addr in self.own_addresses or f"{base_local}@{domain}" in self.own_addresses:
            return "sender is our own address"
        if any(base_local == p or base_local.startswith(p + "-") for p in NO_REPLY_LOCALPARTS):
            return "sender is a no-reply or system address"
        if mail_class == "staff":
            limit = self.service.max_staff_mails_per_hour
            if repo.auto_mails_since(session, addr, now - timedelta(hours=1)) >= limit:
                return f"rate limit: {limit} staff notices per hour to this address"
            return None
        vendor = self.vendors.by_address(addr)
        if vendor is not None:
            return f"sender is the vendor {vendor.name}"
        if mail_class == "personal":
            return None  # written by a person: never held back by the automatic limit
        limit = self.service.max_auto_mails_per_hour
        if repo.auto_mails_since(session, addr, now - timedelta(hours=1)) >= limit:
            return f"rate limit: {limit} automatic mails per hour to this address"
        return None

    # ------------------------------------------------------------ sending

    def send(self, session: Session, letter: Letter) -> Queued:
        """Route, guard, render, compose and queue one letter."""
        to, name, route = letter.to, letter.to_name, letter.route
        if route is not None:
            if route.address is None:
                return self._refuse(session, letter, to, route.reason)
            to, name = route.address, route.name
        if letter.guard:
            refusal = self.refusal(session, to, letter.now, letter.mail_class)
            if refusal is not None:
                return self._refuse(session, letter, to, refusal)
        if not to:
            return self._refuse(session, letter, to, "no recipient address")
        rendered = self.renderer.render(letter.template, letter.language, **letter.fields)
        subject, body = rendered.subject, rendered.text
        # A fax gateway faxes the text (or its PDF): no HTML part for it.
        html = (letter.html or rendered.html) if route is None or route.format == "email" else None
        try:
            recipient = make_address(to, name)
        except ValueError as exc:
            return self._refuse(session, letter, to, str(exc))
        cc = self._usable_cc(session, letter)
        files = list(letter.attachments)
        if route is not None and letter.files_from_route:
            files += route.attachments(subject, body)
        svc = self.service
        mail = write_message(
            from_addr=make_address(svc.address, svc.display_name), to=[recipient], cc=cc,
            subject=subject, body=body, domain=svc.domain, now=letter.now,
            reply_to=make_address(letter.reply_to) if letter.reply_to else None,
            in_reply_to=letter.in_reply_to, references=letter.references,
            auto_submitted=letter.auto_submitted, extra_headers=letter.extra_headers, attachments=files,
            html=html,
        )
        rcpts = [str(recipient.addr_spec).lower(), *(str(a.addr_spec).lower() for a in cc)]
        self._queue(session, letter, mail, rcpts, body)
        return Queued(rcpts[0], None, subject, body)

    def _usable_cc(self, session: Session, letter: Letter) -> list[HeaderAddress]:
        """The Cc addresses that may and can be used; each other one is dropped with an event."""
        usable = []
        for address in letter.cc:
            reason = self.refusal(session, address, letter.now, letter.mail_class) if letter.guard else None
            if reason is None:
                try:
                    usable.append(make_address(address))
                    continue
                except ValueError as exc:
                    reason = str(exc)
            if letter.case is not None:
                repo.add_event(session, letter.case, letter.now, letter.actor, "cc-dropped",
                               detail={"to": address, "reason": reason, "mail": letter.kind})
        return usable

    def _refuse(self, session: Session, letter: Letter, to: str | None, reason: str) -> Queued:
        if letter.event is not None:
            repo.add_event(session, letter.case, letter.now, letter.actor, f"{letter.event}-suppressed",
                           detail={"to": to, "reason": reason})
        log.info("not sending %s for case %s to %s: %s", letter.kind,
                 letter.case.number if letter.case is not None else "-", to, reason)
        return Queued(None, reason)

    def _queue(self, session: Session, letter: Letter, mail: Outgoing, rcpts: list[str], body: str) -> None:
        text = letter.record_text if letter.record_text is not None else body
        # Every column the inbound rows set is set here too: the ORM inserts
        # a run of rows in one statement only while their column sets match,
        # and a batch alternates inbound messages with these records.
        record = Message(
            direction="out", message_id=mail.message_id, in_reply_to=mail.in_reply_to or "",
            references=mail.references or "", from_addr=self.service.address, from_name="",
            to_addrs=",".join(rcpts), cc_addrs=mail.cc or "", subject=mail.subject,
            date=letter.now, text=text, new_text=text, raw=None,  # the rendered bytes live in the outbox row
            source="outbox", kind=letter.kind, role="", is_auto_reply=False, is_bounce=False,
            created_at=letter.now,
        ) if letter.case is not None else None
        # Stored in wire form (CRLF): SMTP relays need it, and smtplib sends bytes as they are.
        repo.queue_outgoing(session, case=letter.case, kind=letter.kind, message_id=mail.message_id,
                            mail_from=self.service.address, rcpt_to=rcpts, raw=mail.raw, now=letter.now,
                            record=record)

    # ------------------------------------------------------------ audiences

    def case_fields(self, case: Case, lang: str) -> dict[str, Any]:
        """Fields every template may use about the case."""
        tz = self.service.timezone
        c = case.customer
        # The master data's product and contract (issue 15), else the customer record's own fields.
        product, contract = case.product, case.contract
        return {
            "case": case,
            "subject": case.subject or NO_SUBJECT[lang],
            "status_label": STATUS_LABELS[lang].get(case.status, case.status),
            "opened": local_time(case.opened_at, tz, lang),
            "customer_name": (c.name if c else "") or "",
            "customer_company": (c.company if c else "") or "",
            "contract_id": (contract.external_id if contract else c.contract_id if c else "") or "",
            "contract_level": (contract.level if contract else "") or "",
            "product": (product.model if product else c.product if c else "") or "",
            "product_version": (product.version if product else "") or "",
            "product_site": (product.site if product else "") or "",
            "serial_number": (product.serial if product else c.serial_number if c else "") or "",
            "service_name": self.service.display_name,
        }

    def to_customer(self, session: Session, case: Case, template: str, kind: str, now: datetime, *,
                    event: str, event_detail: dict[str, Any] | None = None, actor: str = "scheduler",
                    **fields: Any) -> str | None:
        """A scheduled notice to the case's customer; the address, or None when refused."""
        who = self.customers.requester(session, case)
        lang = lang_of(case.language, self.service.default_language)
        if who is None:
            route = self.customers.fax_route(session, case)
            reason = route.reason if route is not None and route.reason else "no customer address on the case"
            repo.add_event(session, case, now, actor, f"{event}-suppressed", detail={"reason": reason})
            return None
        values = self.case_fields(case, lang)
        values.update(fields)
        person = case.person.name if case.person is not None else ""
        values.setdefault("recipient_name", person or who.name or values["customer_name"])
        # Through a fax gateway the customer answers by fax, not by replying.
        values["by_fax"] = who.route is not None and who.route.format != "email"
        queued = self.send(session, Letter(
            kind=kind, case=case, to=who.email, to_name=who.name, template=template, language=lang,
            fields=values, now=now, event=event, actor=actor, route=who.route,
            in_reply_to=who.last_message_id, references=who.references,
        ))
        if not queued:
            return None
        repo.add_event(session, case, now, actor, event, new=who.email, detail=event_detail)
        return who.email

    def to_staff(self, session: Session, case: Case, members: Sequence[StaffMember], template: str, kind: str,
                 now: datetime, **fields: Any) -> list[str]:
        """One mail per staff member, each in the member's language, with a
        signed Reply-To so the member can act on the case by replying."""
        sent = []
        for member in members:
            lang = lang_of(member.language, self.service.default_language)
            values = self.case_fields(case, lang)
            values.update(fields)
            values["member"] = member
            role = fields.get("role", member.role)
            values["role_label"] = ROLE_LABELS[lang].get(role, role)
            queued = self.send(session, Letter(
                kind=kind, case=case, to=member.email, to_name=member.name, template=template, language=lang,
                fields=values, now=now, guard=False, mail_class="staff", auto_submitted="auto-generated",
                reply_to=self.signer.address(case.number, member.email) if self.signer else None,
            ))
            if queued.address:
                sent.append(member.email)
        return sent


__all__ = ["AUTOMATIC_KINDS", "Letter", "Notifier", "Queued"]
