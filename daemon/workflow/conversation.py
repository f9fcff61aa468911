"""Working a case by e-mail: assignment, notifications, engineers' replies,
the customer conversation.

Engineers never log in. Each new case is assigned within its queue and the
assignee gets a notification whose Reply-To is a signed plus-address of the
service mailbox (daemon/workflow/reply_address.py). The engineer works the case by
replying: command lines at the top change the case (daemon/workflow/commands.py),
the remaining text goes to the customer from the service address, in the
case's thread. Customer replies come back to the assignee the same way.

Trust: commands and relayed text are accepted only from a configured staff
address that *proves* it sent the mail -- by replying to a reply address
issued to that very address, or by a pass in an Authentication-Results
header written by a trusted authserv-id (daemon/workflow/auth_results.py). Anything
else is stored on the case as an internal message, and the case gets a
``command-refused`` / ``reply-refused`` event saying why. A customer's mail
is never parsed for commands at all.

Loop protection: every mail goes through the notifier's guard (no mail to
our own, no-reply or rate-limited addresses). Mail the system writes
(notifications, errors, history) carries ``Auto-Submitted: auto-generated``
or ``auto-replied``. The engineer's text relayed to the customer is a human
reply, so it carries no Auto-Submitted (RFC 3834 reserves it for automatic
mail, and customer systems may file such mail away), but it asks Exchange
not to answer it with out-of-office replies (X-Auto-Response-Suppress).

Everything here runs inside the pipeline's transaction (called by the
"apply" stage): the case change, its events and the queued mail commit
together or not at all.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from . import commands as cmdlib
from ..directory.auth_results import header_values, verify_sender
from ..directory.reply_address import ReplyAddressSigner
from ..directory.security import SecurityConfig
from ..directory.roles import CUSTOMER, CUSTOMER_TEXT, STAFF, THIRD_PARTY, may
from ..directory.staff import StaffMember
from ..notify.notifier import Letter, Queued
from ..notify.wording import local_time, priority_label, say_promise
from ..timekeeping import lifecycle
from ..timekeeping.desk import Desk
from ..timekeeping.survey import asks_for_new
from ..timekeeping.customers import link_master_data
from ..timekeeping.vendors import escalate_to_vendor
from ...parsers.message import ParsedMessage
from ...storage import customers as master
from ...storage import repository as repo
from ...storage.models import Case, Message
from ...storage.numbering import allocate_case_number

log = logging.getLogger("casegate.workflow")

# A reply that consists of one of these lines asks for the case history.
HISTORY_REQUESTS = {"history", "status", "progress", "查询进度", "进度", "查询", "历史", "查询历史", "案例进度", "進度"}
# Free-mail domains: sharing one does not make two people colleagues.
PUBLIC_DOMAINS = {
    "qq.com", "foxmail.com", "163.com", "126.com", "yeah.net", "sina.com", "sina.cn", "sohu.com", "139.com",
    "189.cn", "aliyun.com", "gmail.com", "outlook.com", "hotmail.com", "live.com", "yahoo.com", "icloud.com",
}
MAX_CC = 10
# A request opened from a follow-up answer: P3, as the shipped feature-request rules set it.
LINKED_REQUEST_PRIORITY = "P3"
MAX_ATTACHMENT_BYTES = 15 * 1024 * 1024  # per notification; larger ones are only listed
_PUNCT = re.compile(r"[\s\.,;:!?。，；：！？、\"'“”‘’()（）\[\]【】]+")


@dataclass(frozen=True)
class Proof:
    """Whether a staff sender proved the mail is theirs, and how / why not."""

    ok: bool
    how: str


class Workflow:
    def __init__(
        self,
        desk: Desk,
        signer: ReplyAddressSigner,
        security: SecurityConfig,
        clock: Callable[[], datetime],
    ) -> None:
        self.desk = desk
        self.service = desk.service
        self.staff = desk.staff
        self.notifier = desk.notifier
        self.signer = signer
        self.security = security
        self.clock = clock

    def is_staff(self, address: str | None) -> bool:
        return self.staff.by_email(address) is not None

    # ------------------------------------------------------------ what the stages call

    def after_store(self, session: Session, case: Case, message: Message, parsed: ParsedMessage, outcome: str,
                    role: str) -> None:
        """What a stored message means for the people on the case, by the sender's role."""
        now = self.clock()
        if outcome == "new":
            member = self.assign(session, case, now)
            if member is not None and not self._flooding(session, case, member, now):
                self.notify(session, case, member, message, now, kind="new")
        elif outcome == "reply":
            member = self.staff.by_email(parsed.sender_email)
            if role == STAFF and member is not None:
                self.staff_reply(session, case, message, parsed, member, now)
            elif may(role, CUSTOMER_TEXT):  # only the case's customer: history, "the customer replied"
                self.customer_reply(session, case, message, parsed, now)
            else:  # a vendor or a third party: the engineer reads it, with the real sender
                if role == THIRD_PARTY:
                    repo.add_event(session, case, now, (parsed.sender_email or "unknown").lower(), "third-party-mail",
                                   detail={"subject": (parsed.subject or "")[:200]})
                assignee = self.staff.by_email(case.assignee) if case.assignee else None
                if assignee is not None:
                    self.notify(session, case, assignee, message, now, kind=role)

    def _flooding(self, session: Session, case: Case, member: StaffMember, now: datetime) -> bool:
        """Many new cases from one sender within an hour: one digest notice, then quiet.

        A flood (a looping system, a spammer, a customer pasting one problem
        ten times) must neither bury the engineers nor silence them: the
        notice that crosses the threshold says so, later ones are recorded
        on their cases only.
        """
        customer = case.customer
        limit = self.service.max_new_case_notices_per_sender
        if customer is None or limit <= 0:
            return False
        opened = repo.cases_opened_by_since(session, customer, now - timedelta(hours=1))
        if opened <= limit:
            return False
        if opened == limit + 1:
            self._send(session, Letter(
                kind="notify-flood", case=case, to=member.email, to_name=member.name, template="flood",
                language=self._staff_language(member), now=now, event="notify-flood", mail_class="staff",
                auto_submitted="auto-generated",
                fields={"case": case, "member": member, "count": opened, "limit": limit,
                        "customer_name": customer.name or "", "customer_email": customer.contact("email") or "",
                        "service_name": self.service.display_name},
            ))
        repo.add_event(session, case, now, "system", "notify-new-batched",
                       detail={"reason": f"more than {limit} new cases from this customer within an hour"})
        return True

    def unthreaded_staff(self, session: Session, message: Message, parsed: ParsedMessage) -> None:
        """Staff mail naming no case: tell the sender instead of opening one."""
        member = self.staff.by_email(parsed.sender_email)
        if member is None:
            return
        message.direction = "internal"
        now = self.clock()
        self._send(session, Letter(
            kind="staff-error", case=None, to=member.email, to_name=member.name, template="no_case",
            language=self._staff_language(member), now=now, event="staff-error",
            fields={"subject": parsed.subject or "", "member": member, "service_name": self.service.display_name},
            in_reply_to=parsed.message_id, references=parsed.references,
        ))

    # ------------------------------------------------------------ assignment

    def assign(self, session: Session, case: Case, now: datetime) -> StaffMember | None:
        """Round robin among the queue's on-duty engineers, persisted in events.

        The engineer whose last "assigned" event is oldest (or who has none)
        gets the case, ties in config order; the event table survives
        restarts and is shared by every daemon on the database.
        """
        candidates = self.staff.engineers_for(case.queue)
        if not candidates:
            repo.add_event(session, case, now, "system", "assignment-skipped",
                           detail={"reason": f"no on-duty engineer takes queue {case.queue!r}"})
            return None
        emails = [m.email for m in candidates]
        last = repo.last_assignments(session, emails)
        chosen = min(candidates, key=lambda m: (last.get(m.email, 0), emails.index(m.email)))
        old, case.assignee = case.assignee, chosen.email
        repo.add_event(session, case, now, "system", "assigned", old=old, new=chosen.email,
                       detail={"reason": "round-robin", "queue": case.queue})
        repo.note_assignment(session, chosen.email)
        return chosen

    # ------------------------------------------------------------ notifications

    def notify(self, session: Session, case: Case, member: StaffMember, message: Message | None,
               now: datetime, kind: str) -> bool:
        """Tell ``member`` about the case: new, assigned to them, or a customer reply.

        The mail carries the customer's text and attachments, the priority
        and the rules that set it, and a Reply-To signed for this member.
        """
        lang = self._staff_language(member)
        customer = case.customer
        customer_email = (customer.contact("email") if customer else None) or (message.from_addr if message else "")
        attachments, skipped = self._attachments(message)
        fields = dict(
            kind=kind,
            case=case,
            member=member,
            customer_name=(customer.name if customer else "") or "",
            customer_company=(customer.company if customer else "") or "",
            customer_email=customer_email or "",
            priority_label=priority_label(case.priority, lang),
            reasons=self._reasons(session, case),
            text=(message.new_text or message.text) if message else "",
            attachments=[a[0] for a in attachments] + skipped,
            skipped=skipped,
            service_name=self.service.display_name,
        )
        fields.update(
            sender_email=(message.from_addr if message else "") or "",
            sender_role=(message.role if message else "") or "",
            failing=[c.value for c in (customer.contacts if customer else []) if c.failing_since is not None],
        )
        return self._send(session, Letter(
            kind=f"notify-{kind}", case=case, to=member.email, to_name=member.name, template="notify",
            language=lang, fields=fields, now=now, event=f"notify-{kind}", mail_class="staff",
            reply_to=self.signer.address(case.number, member.email),
            in_reply_to=message.message_id if message else None,
            references=message.references.split() if message and message.references else (),
            attachments=attachments, auto_submitted="auto-generated",
        ))

    def _reasons(self, session: Session, case: Case) -> list[str]:
        ev = repo.last_event(session, case, "classified")
        if ev is None or not ev.detail:
            return []
        try:
            detail = json.loads(ev.detail)
        except ValueError:
            return []
        out = []
        for m in detail.get("matches", []):
            where = f" ({m.get('field')}: {m.get('keyword')})" if m.get("keyword") else ""
            out.append(f"{m.get('rule')}{where}")
        return out

    def _attachments(self, message: Message | None) -> tuple[list[tuple[str, str, bytes]], list[str]]:
        out: list[tuple[str, str, bytes]] = []
        skipped: list[str] = []
        total = 0
        for att in (message.attachments if message else []):
            if att.inline and att.content_type.startswith("image/"):
                continue
            if total + att.size > MAX_ATTACHMENT_BYTES:
                skipped.append(att.filename)
                continue
            try:
                content = self.desk.blobs.get(att.sha256)
            except (OSError, ValueError):
                skipped.append(att.filename)
                continue
            total += att.size
            out.append((att.filename, att.content_type, content))
        return out, skipped

    # ------------------------------------------------------------ staff replies

    def prove(self, parsed: ParsedMessage, member: StaffMember, case: Case, raw: bytes | None = None) -> Proof:
        """Did ``member`` really send this? (signed reply address, or a trusted
        Authentication-Results header at the top that proves the mailbox)."""
        refusal = ""
        for found in self.signer.find(parsed):
            if self.signer.verify(found, member.email):
                if found.case_number == case.number.upper():
                    return Proof(True, f"reply address {found.address}")
                refusal = f"reply address {found.address} belongs to case {found.case_number}"
            else:
                refusal = f"reply address {found.address} does not verify for {member.email} (tampered or issued to someone else)"
        # From the raw bytes: parsed headers are RFC 2047-decoded, and an encoded
        # word in a value the sender controls would decode into "; auth=pass ...".
        verdict = verify_sender(header_values(raw) if raw else [], member.email,
                                self.security.trusted_authserv_ids,
                                accept_domain=self.security.accept_domain_authentication,
                                user_domain=self.security.auth_user_domain)
        if verdict.proven:
            return Proof(True, verdict.how)
        if not refusal:
            refusal = f"sender not proven: no reply address issued to it, and {verdict.how}"
        return Proof(False, refusal)

    def staff_reply(self, session: Session, case: Case, message: Message, parsed: ParsedMessage,
                    member: StaffMember, now: datetime) -> None:
        message.direction = "internal"  # staff mail is never part of the public history
        parsed_cmds = cmdlib.parse(parsed.new_text or parsed.text)
        proof = self.prove(parsed, member, case, message.raw)
        actor = member.email
        if not proof.ok:
            if parsed_cmds.any:
                repo.add_event(session, case, now, actor, "command-refused",
                               detail={"reason": proof.how, "commands": [c.line for c in parsed_cmds.commands]})
            if parsed_cmds.public_text or parsed_cmds.note:
                repo.add_event(session, case, now, actor, "reply-refused", detail={"reason": proof.how})
            self._answer_engineer(session, case, member, parsed, now, errors=[], refused=proof.how)
            return
        valid, errors = cmdlib.validate(parsed_cmds, self._context(session, case))
        if errors:
            repo.add_event(session, case, now, actor, "command-failed",
                           detail={"errors": [{"line": e.line, "reason": e.reason_en} for e in errors]})
            self._answer_engineer(session, case, member, parsed, now, errors=errors, refused=None)
            return
        for cmd in valid:
            self._apply(session, case, cmd, member, message, now, proof)
        if parsed_cmds.note is None and parsed_cmds.public_text:
            self.relay_to_customer(session, case, member, parsed_cmds.public_text, now, parsed)
        case.updated_at = now

    def _context(self, session: Session, case: Case) -> cmdlib.CommandContext:
        def find_staff(name: str) -> str | None:
            m = self.staff.by_name(name)
            return m.email if m else None

        return cmdlib.CommandContext(
            case_number=case.number,
            case_status=case.status,
            find_staff=find_staff,
            case_exists=lambda number: repo.case_by_number(session, number) is not None,
            known_vendor=self.desk.vendors.known if self.desk.vendors.vendors else None,
            timezone=self.service.timezone,
            customer_exists=lambda ref: master.customer_by_external_id(session, ref) is not None,
            product_exists=lambda serial: master.product_by_serial(session, serial) is not None,
            product_vendor=(case.product.vendor or None) if case.product is not None else None,
        )

    def _apply(self, session: Session, case: Case, cmd: cmdlib.ValidCommand, member: StaffMember,
               message: Message, now: datetime, proof: Proof) -> None:
        actor = member.email
        detail: dict[str, object] = {"command": cmd.line, "proof": proof.how}
        if cmd.name in ("status", "reopen"):
            target = cmd.value or "open"
            if target == case.status:
                repo.add_event(session, case, now, actor, "status", old=case.status, new=target, detail=detail)
            else:  # the lifecycle checks, records and re-plans the timers
                lifecycle.transition(session, self.desk.policy, case, lifecycle.event_to(case.status, target), now,
                                     actor=actor, role=STAFF, detail=detail)
        elif cmd.name == "priority":
            lifecycle.change(session, self.desk.policy, case, "priority", cmd.value or case.priority, now,
                             actor=actor, detail=detail)
        elif cmd.name == "assign":
            lifecycle.change(session, self.desk.policy, case, "assignee", cmd.value, now, actor=actor, detail=detail)
            new_member = self.staff.by_email(cmd.value)
            if new_member is not None and new_member.email != actor:
                self.notify(session, case, new_member, self._first_customer_message(case), now, kind="assigned")
        elif cmd.name == "note":
            repo.add_event(session, case, now, actor, "note", new=(cmd.value or "")[:10000], detail=detail)
        elif cmd.name == "vendor":
            repo.add_event(session, case, now, actor, "vendor", new=cmd.value,
                           detail={**detail, "vendor_case_number": cmd.extra, "handoff": "pending"})
            if self.desk.vendors.vendors:  # without [[vendors]] the hand-off is only recorded
                escalate_to_vendor(session, self.desk, case, cmd.value or "", cmd.extra, actor, now)
        elif cmd.name in cmdlib.ACTIVITIES or cmd.name in ("eta", "plan"):
            lifecycle.record(session, self.desk.policy, case, cmd.name, cmd.value, cmd.extra, now, actor=actor,
                             detail=detail)
        elif cmd.name in ("customer", "product", "lang"):
            link_master_data(session, self.desk, case, cmd.name, cmd.value or "", now, actor, detail)
        elif cmd.name == "merge":
            target = repo.case_by_number(session, cmd.value or "")
            assert target is not None  # validated
            old = case.status
            case.linked_case_id = target.id
            if case.status != "closed":
                lifecycle.transition(session, self.desk.policy, case, lifecycle.event_to(case.status, "closed"), now,
                                     actor=actor, role=STAFF, reason=f"merged into {target.number}")
            repo.add_event(session, case, now, actor, "merged", old=old, new=target.number, detail=detail)
            repo.add_event(session, target, now, actor, "merged-from", new=case.number, detail=detail)
            target.updated_at = now

    @staticmethod
    def set_status(case: Case, status: str, now: datetime) -> None:
        """Change status and keep the timestamps the SLA reports read consistent."""
        if status in ("open", "pending", "new"):
            case.closed_at = None
            if status == "open" and case.status in ("resolved", "closed"):
                case.resolved_at = None
        if status == "resolved":
            case.resolved_at = now
            case.closed_at = None
        if status == "closed":
            case.resolved_at = case.resolved_at or now
            case.closed_at = now
        case.status = status
        case.updated_at = now

    def _answer_engineer(self, session: Session, case: Case, member: StaffMember, parsed: ParsedMessage,
                         now: datetime, errors: list[cmdlib.CommandError], refused: str | None,
                         not_sent: str | None = None) -> None:
        self._send(session, Letter(
            kind="command-result", case=case, to=member.email, to_name=member.name, template="command_result",
            language=self._staff_language(member), now=now, event="command-result",
            fields={"case": case, "member": member, "errors": errors, "refused": refused,
                    "not_sent": not_sent, "service_name": self.service.display_name},
            reply_to=self.signer.address(case.number, member.email),
            in_reply_to=parsed.message_id, references=parsed.references,
        ))

    # ------------------------------------------------------------ customer side

    def relay_to_customer(self, session: Session, case: Case, member: StaffMember, text: str, now: datetime,
                          engineer_mail: ParsedMessage) -> bool:
        """Send the engineer's text to the customer, in the case's thread."""
        last = self._last_customer_message(case)
        to = (case.customer.contact("email") if case.customer else None) or (last.from_addr if last else None)
        name = case.customer.name if case.customer else ""
        who = self.notifier.customers.requester(session, case)
        fax_route = who.route if who is not None else None
        if fax_route is not None:  # a fax case: never the gateway's own From
            to, name = who.email, who.name
        refs = (last.references.split() if last and last.references else []) + ([last.message_id] if last and last.message_id else [])
        sent = self._send(session, Letter(
            kind="reply", case=case, to=to, to_name=name, template="engineer_reply", language=case.language,
            fields={"case": case, "text": text, "member": member, "service_name": self.service.display_name},
            now=now, event="reply", route=fax_route, mail_class="personal",
            cc=self._company_cc(case, to or "") if fax_route is None else (),
            in_reply_to=last.message_id if last else None,
            references=refs, auto_submitted=None,
            extra_headers=[("X-Auto-Response-Suppress", "OOF, AutoReply")], record_text=text,
        ))
        if not sent:
            # A person wrote this: it is never dropped silently. The engineer
            # hears why it did not go (the refusal is on the case as well).
            self._answer_engineer(session, case, member, engineer_mail, now, errors=[], refused=None,
                                  not_sent=sent.refusal or "not sent")
            return False
        repo.add_event(session, case, now, member.email, "public-reply", new=(to or "").lower())
        if case.first_response_at is None:
            case.first_response_at = now
            repo.add_event(session, case, now, member.email, "first-response")
        if case.status == "new":
            lifecycle.transition(session, self.desk.policy, case, "respond", now, actor=member.email, role=STAFF,
                                 reason="first public reply")
        return True

    def customer_reply(self, session: Session, case: Case, message: Message, parsed: ParsedMessage,
                       now: datetime) -> None:
        actor = (parsed.sender_email or "unknown").lower()
        if is_history_request(parsed.new_text or parsed.text):
            self.send_history(session, case, parsed, now)
            return
        if case.status == "pending":
            lifecycle.transition(session, self.desk.policy, case, "work", now, actor=actor, role=CUSTOMER,
                                 reason="customer replied")
        if case.status in ("resolved", "closed") and asks_for_new(parsed.new_text or parsed.text or ""):
            self.open_linked_request(session, case, message, parsed, now)
        member = self.staff.by_email(case.assignee) if case.assignee else None
        if member is None:
            member = self.assign(session, case, now)
        if member is not None:
            self.notify(session, case, member, message, now, kind="reply")

    def open_linked_request(self, session: Session, case: Case, message: Message, parsed: ParsedMessage,
                            now: datetime) -> Case | None:
        """A new need stated in an answer on a finished case ("希望增加导出功能")
        is no fault: it opens a request of the kind sales answers (seed 001), in
        that kind's number series and queue, linked to the case it came from.
        The answer itself stays on the old case (a survey or follow-up answer)."""
        policy = self.desk.policy
        kind = next((k for k in policy.kinds.values() if not k.fault_sla and k.queue), None)
        if kind is None or policy.kind_of(case.category, case.route) == kind:
            return None  # no such kind configured, or the case is one already
        svc = self.service
        number = allocate_case_number(session, kind.number_format or svc.case_number_format, now, svc.timezone,
                                      series=kind.name if kind.number_format else "")
        text = (parsed.new_text or parsed.text or "").strip()
        new = Case(
            number=number, subject=f"{case.subject} ({case.number})"[:1000], status="new",
            priority=LINKED_REQUEST_PRIORITY, category=kind.categories[0] if kind.categories else kind.name,
            queue=kind.queue, route=kind.routes[0] if kind.routes else kind.queue, language=case.language,
            source_kind=case.source_kind, customer=case.customer, person=case.person, product=case.product,
            contract=case.contract, opened_at=now, updated_at=now, linked_case_id=case.id,
        )
        session.add(new)
        repo.remember_case(session, new)
        actor = (parsed.sender_email or "customer").lower()
        repo.add_event(session, new, now, actor, "created", new=number,
                       detail={"source": "followup-answer", "linked_to": case.number, "text": text[:2000]})
        repo.add_event(session, case, now, actor, "new-need", new=number, detail={"text": text[:500]})
        self._acknowledge_request(session, new, kind.name, parsed, now)
        member = self.assign(session, new, now)
        if member is not None:
            self.notify(session, new, member, message, now, kind="new")
        return new

    def _acknowledge_request(self, session: Session, case: Case, kind: str, parsed: ParsedMessage,
                             now: datetime) -> None:
        """The acknowledgement of a request casegate opened: its number and when it is answered."""
        lang = case.language
        policy = self.desk.policy
        promise, working_time = policy.response_promise(case.priority, case.category, case.route)
        due = policy.response_due(case.priority, case.category, case.route, case.opened_at)
        name = parsed.from_.name if parsed.from_ else ""
        self._send(session, Letter(
            kind="ack", case=case, to=parsed.sender_email, to_name=name, template="ack", language=lang, now=now,
            event="ack", in_reply_to=parsed.message_id, references=parsed.references,
            fields=dict(case=case, subject=case.subject, customer_name=name,
                        customer_company=case.customer.company if case.customer is not None else "",
                        priority_label=priority_label(case.priority, lang),
                        first_response=say_promise(promise, working_time, lang),
                        first_response_due=local_time(due, self.service.timezone, lang),
                        service_name=self.service.display_name),
        ))

    def send_history(self, session: Session, case: Case, parsed: ParsedMessage, now: datetime) -> None:
        tz = self.service.timezone
        entries = []
        for m in case.messages:
            if m.direction == "in" and not m.is_auto_reply and not m.is_bounce:
                who = "customer"
            elif m.direction == "out" and m.kind in ("reply", "ack"):
                who = "service"
            else:
                continue
            text = " ".join((m.new_text or m.text or "").split())
            entries.append({"at": local_time(m.created_at, tz, case.language), "who": who,
                            "text": text[:300] + ("…" if len(text) > 300 else "")})
        to = parsed.sender_email
        if self._send(session, Letter(
            kind="history", case=case, to=to, to_name=parsed.from_.name if parsed.from_ else "", template="history",
            language=case.language, now=now, event="history",
            fields={"case": case, "entries": entries, "opened": local_time(case.opened_at, tz, case.language),
                    "service_name": self.service.display_name},
            in_reply_to=parsed.message_id, references=parsed.references,
        )):
            repo.add_event(session, case, now, "system", "history-sent", new=(to or "").lower())

    def _company_cc(self, case: Case, customer_addr: str) -> list[str]:
        """Colleagues of the customer (same, non-public domain) seen on the thread."""
        domain = customer_addr.lower().rpartition("@")[2]
        if not domain or domain in PUBLIC_DOMAINS:
            return []
        own = self.service.address.lower()
        seen: list[str] = []
        for m in case.messages:
            if m.direction != "in":
                continue
            for addr in _split_addrs(m.from_addr, m.to_addrs, m.cc_addrs):
                if (addr.rpartition("@")[2] == domain and addr != customer_addr.lower() and addr != own
                        and self.staff.by_email(addr) is None and addr not in seen):
                    seen.append(addr)
        return seen[:MAX_CC]

    @staticmethod
    def _last_customer_message(case: Case) -> Message | None:
        for m in reversed(case.messages):
            if m.direction == "in":
                return m
        return None

    @staticmethod
    def _first_customer_message(case: Case) -> Message | None:
        for m in case.messages:
            if m.direction == "in":
                return m
        return None

    # ------------------------------------------------------------ sending

    def _staff_language(self, member: StaffMember) -> str:
        return member.language or self.service.default_language

    def _send(self, session: Session, letter: Letter) -> Queued:
        """Queue one mail through the notifier (which records a refusal on the case)."""
        return self.notifier.send(session, letter)


def is_history_request(text: str) -> bool:
    """A reply whose only line is e.g. "history" / "查询进度" asks for the case history."""
    lines = [ln for ln in (text or "").splitlines() if ln.strip()]
    if len(lines) != 1:
        return False
    return _PUNCT.sub("", lines[0]).casefold() in HISTORY_REQUESTS


def _split_addrs(*fields: str) -> list[str]:
    out = []
    for f in fields:
        for part in (f or "").split(","):
            part = part.strip().lower()
            if "<" in part and ">" in part:
                part = part[part.index("<") + 1 : part.index(">")]
            if "@" in part:
                out.append(part)
    return out
