"""Apply: the message changes its case (or opens one), and the case reacts.

A reply is stored on its case; what it means is asked of the parts that
know: an engineer's commands and text (workflow), a customer's confirmation,
score or recurrence (aftercare), a vendor's case number (vendors), a fax's
metadata (fax intake). Mail that opens no case is kept (raw bytes and all),
unlinked, so nothing is lost: automatic mail, staff mail naming no case, and
mail the rules route to "ignore".
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from ..config import ServiceConfig
from ..fax.intake import FaxIntake
from ..timekeeping.aftercare import Aftercare, reopen_case
from ..timekeeping.desk import Desk
from ..timekeeping.lifecycle import plan_opened
from ..timekeeping.vendors import vendor_replied
from ..workflow.conversation import Workflow
from ..directory.roles import AUTOMATION, CUSTOMER, THIRD_PARTY, VENDOR, VENDOR_NUMBER, may
from .bounces import Bounces
from .context import MessageContext
from ...storage import repository as repo
from ...storage.batch import batch_cache
from ...storage.models import Attachment, Case, Message
from ...storage.numbering import allocate_case_number


class ApplyToCase:
    name = "apply"
    after_settled = False

    def __init__(self, service: ServiceConfig, desk: Desk, workflow: Workflow, aftercare: Aftercare,
                 fax: FaxIntake, bounces: Bounces) -> None:
        self.service = service
        self.bounces = bounces
        self.desk = desk
        self.workflow = workflow
        self.aftercare = aftercare
        self.fax = fax

    def run(self, session: Session, ctx: MessageContext) -> None:
        if ctx.automatic == "bounce":
            self.bounces.record(session, ctx)
        if ctx.match is not None:
            self._reply(session, ctx)
        elif ctx.automatic is not None:
            self.store_message(session, ctx, None, ignored=ctx.automatic)
            ctx.settle("ignored", ctx.automatic)
        elif ctx.staff is not None:
            ctx.message = self.store_message(session, ctx, None, ignored="staff mail that names no case")
            ctx.settle("ignored", "staff mail that names no case")
        else:
            self._open(session, ctx)

    # ------------------------------------------------------------ replies

    def _reply(self, session: Session, ctx: MessageContext) -> None:
        """A message on an existing case: kept, then what the sender's role allows."""
        parsed, now = ctx.parsed, ctx.now
        assert parsed is not None and now is not None and ctx.match is not None
        case = ctx.case = ctx.match.case
        actor = parsed.sender_email or "unknown"
        if ctx.reopen:  # the lifecycle restarts first response and escalation from now
            reopen_case(session, self.desk, case, now, actor=actor, reason="customer replied within the reopen window")
        message = ctx.message = self.store_message(session, ctx, case)
        if ctx.role == AUTOMATION:
            repo.add_event(session, case, now, actor, "automatic-mail", new=ctx.automatic)
            self.fax.record(session, case, message, parsed)
            if may(ctx.role, VENDOR_NUMBER):  # a vendor's automatic acknowledgement names its case number
                vendor_replied(session, self.desk, case, message, parsed)
            ctx.settle("ignored", ctx.automatic or "")
            return
        case.updated_at = now
        repo.add_event(session, case, now, actor, "message", new=ctx.match.how, detail={"role": ctx.role})
        ctx.settle("reply")
        self.fax.record(session, case, message, parsed)
        if ctx.role == VENDOR:
            vendor_replied(session, self.desk, case, message, parsed)
        self.workflow.after_store(session, case, message, parsed, "reply", ctx.role)
        if ctx.role == CUSTOMER:
            self.aftercare.after_store(session, case, message, parsed, "reply")

    # ------------------------------------------------------------ new cases

    def _open(self, session: Session, ctx: MessageContext) -> None:
        parsed, now, result = ctx.parsed, ctx.now, ctx.classification
        assert parsed is not None and now is not None and result is not None
        if result.route == "ignore":
            reason = "rules: route ignore (" + ", ".join(sorted({m.rule for m in result.matches})) + ")"
            self.store_message(session, ctx, None, ignored=reason)
            ctx.settle("ignored", reason)
            return
        svc = self.service
        # A person's language preference (master data, or #lang) beats the guess:
        # a Chinese customer who pastes an English log still reads Chinese.
        preferred = ctx.person.language if ctx.person is not None else None
        language = preferred or result.language or parsed.language or svc.default_language
        kind = self.desk.policy.kind_of(result.category, result.route)
        # A kind with a number format of its own (feature requests) has its own series.
        number = allocate_case_number(session, kind.number_format or svc.case_number_format, now, svc.timezone,
                                      series=kind.name if kind.number_format else "")
        linked = ctx.linked
        case = ctx.case = Case(
            number=number,
            subject=parsed.subject[:1000],
            status="new",
            priority=result.priority,
            category=result.category,
            queue=result.queue,
            route=result.route,
            language=language if language in ("zh", "en") else svc.default_language,
            source_kind=ctx.inbound.source.kind,
            customer=ctx.customer,
            person=ctx.person,
            product=ctx.product,
            contract=ctx.contract,
            opened_at=now,
            updated_at=now,
            linked_case_id=linked.id if linked is not None else None,
        )
        session.add(case)
        repo.remember_case(session, case)
        actor = parsed.sender_email or "unknown"
        repo.add_event(session, case, now, actor, "created", new=number,
                       detail={"source": ctx.inbound.source.name, "linked_to": linked.number if linked else None})
        repo.add_event(session, case, now, "rules", "classified", new=result.priority, detail=result.to_dict())
        ctx.message = self.store_message(session, ctx, case)
        ctx.settle("new")
        self.fax.record(session, case, ctx.message, parsed)
        plan_opened(session, self.desk.policy, case)  # its clock starts with it, in the same commit

    # ------------------------------------------------------------ the row

    @staticmethod
    def store_message(session: Session, ctx: MessageContext, case: Case | None, ignored: str = "") -> Message:
        """The message row: normalized fields, the raw bytes whole, attachments by digest.

        Mail that opens no case is kept the same way, unlinked, with why in
        ``kind`` (``casegate ignored list`` shows it, ``retry`` feeds it again).
        """
        parsed = ctx.parsed
        assert parsed is not None and ctx.now is not None
        message = Message(
            case=case,
            # A third party's mail is kept for the engineers, never part of
            # what the customer is shown as the case's history.
            direction="internal" if ctx.role == THIRD_PARTY else "in",
            dedupe_key=ctx.dedupe_key,
            message_id=(parsed.message_id or "")[:500] or None,
            in_reply_to=" ".join(parsed.in_reply_to),
            references=" ".join(parsed.references),
            from_addr=(parsed.sender_email or "")[:320],
            from_name=(parsed.from_.name if parsed.from_ else "")[:300],
            to_addrs=", ".join(a.email for a in parsed.to),
            cc_addrs=", ".join(a.email for a in parsed.cc),
            subject=parsed.subject,
            date=parsed.date if parsed.date is not None and parsed.date.tzinfo is not None else None,
            text=ctx.fax_text if ctx.fax_text is not None else parsed.text,
            new_text=parsed.new_text,
            raw=ctx.inbound.raw,
            source=ctx.inbound.source.name,
            role=ctx.role,
            kind=ignored[:40],
            is_auto_reply=parsed.is_auto_reply,
            is_bounce=parsed.is_bounce or ctx.automatic == "bounce",
            created_at=ctx.now,
        )
        message.attachments = [
            Attachment(filename=att.filename, content_type=att.content_type[:255], size=att.size,
                       sha256=digest, inline=att.inline)
            for att, digest in ctx.blobs
        ]
        session.add(message)
        known = batch_cache(session).messages
        if known is not None and ctx.dedupe_key:
            known[ctx.dedupe_key] = message
        return message
