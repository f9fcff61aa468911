"""Building and queueing the notices the SLA timers promise.

One function per audience: ``mail_customer`` (status updates, confirmation
requests, surveys, follow-ups, the vendor's case number) and ``mail_staff``
(escalations). Both render the bilingual templates, queue the mail in the
caller's transaction (so the notice and the timer marked done commit
together) and record an event on the case. Customer mail goes through the
pipeline's ``may_auto_answer`` guard: never to bounce/auto-reply/no-reply
senders, never beyond the per-address hourly limit.

A case that came by fax is answered like its acknowledgement
(daemon/fax/reply.py): the customer's e-mail when they have one, else the
e-mail-to-fax gateway for their number with the letter as PDF; never the
gateway's own From address.

``ctx`` is the ``App`` (config, policy, renderer, pipeline, staff directory);
it is typed loosely on purpose so the command workflow can pass its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..notify.compose import build_message, local_time, make_address
from ..notify.fax_route import ReplyRoute, choose_recipient
from ..runtime.outbox import enqueue
from ...storage import repository as repo
from ...storage.models import Case, Event, Message

log = logging.getLogger("casegate.notices")

# Outbox kinds written by the timekeeping modules; everything else sent to
# the customer except the acknowledgement counts as a public reply by staff.
AUTOMATIC_KINDS = ("ack", "status-update", "confirm-request", "survey", "followup", "vendor-case-number")

STATUS_LABELS = {
    "zh": {"new": "新建", "open": "处理中", "pending": "等待您的回复", "resolved": "已解决", "closed": "已关闭"},
    "en": {"new": "new", "open": "in progress", "pending": "waiting for your reply", "resolved": "resolved",
           "closed": "closed"},
}
ROLE_LABELS = {
    "zh": {"service-engineer": "服务工程师", "support-supervisor": "技术支持主管", "general-manager": "总经理"},
    "en": {"service-engineer": "service engineer", "support-supervisor": "support supervisor",
           "general-manager": "general manager"},
}


def lang_of(language: str | None, default: str) -> str:
    return language if language in ("zh", "en") else default


def human_delta(delta: timedelta, lang: str) -> str:
    """An elapsed time as people say it: "2 小时 5 分钟" / "2 h 5 min"."""
    minutes = max(0, int(delta.total_seconds() // 60))
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    zh = lang == "zh"
    parts = []
    if days:
        parts.append(f"{days} 天" if zh else f"{days} d")
    if hours:
        parts.append(f"{hours} 小时" if zh else f"{hours} h")
    if mins or not parts:
        parts.append(f"{mins} 分钟" if zh else f"{mins} min")
    return " ".join(parts)


def staff_directory(ctx: Any) -> Any:
    """The staff directory of the running app (built from config when absent)."""
    found = getattr(ctx, "staff", None)
    if found is None:
        from ..directory.staff import StaffDirectory

        found = StaffDirectory.from_config(ctx.config)
        try:
            ctx.staff = found
        except AttributeError:
            pass
    return found


def reply_signer(ctx: Any) -> Any | None:
    """The signed reply-address issuer, so staff can answer an escalation with commands."""
    signer = getattr(ctx, "reply_signer", None) or getattr(getattr(ctx, "workflow", None), "signer", None)
    if signer is not None:
        return signer
    try:
        from ..directory.reply_address import ReplyAddressSigner
        from ..directory.security import SecurityConfig, load_secret

        sec = SecurityConfig.from_config(ctx.config)
        signer = ReplyAddressSigner(load_secret(ctx.config, sec), ctx.config.service.address, sec.token_length)
    except Exception:  # no secret available: plain service address in Reply-To
        log.warning("no reply-address signer; staff notices use the plain service address", exc_info=True)
        return None
    try:
        ctx.reply_signer = signer
    except AttributeError:
        pass
    return signer


# ---------------------------------------------------------------- case facts


@dataclass(frozen=True)
class Requester:
    email: str
    name: str
    last_message_id: str | None
    references: tuple[str, ...]
    route: ReplyRoute | None = None  # a case that came by fax: how it is answered


def fax_case_route(session: Session, ctx: Any, case: Case) -> ReplyRoute | None:
    """The fax route of a case that came by fax (a ``fax-received`` event); None otherwise.

    The same decision as the fax's acknowledgement: the customer's e-mail,
    else the gateway for their number, else "do not send" with the reason.
    """
    fax = getattr(ctx, "fax", None)
    if fax is None:
        return None
    number = session.execute(
        select(Event.new).where(Event.case_id == case.id, Event.action == "fax-received")
        .order_by(Event.id.desc()).limit(1)
    ).first()
    if number is None:
        return None
    return fax.fax_case_route(case.customer, number[0] or None)


def requester(session: Session, ctx: Any, case: Case) -> Requester | None:
    """Who the customer is on this case: the first inbound sender who is not
    staff or a vendor; on a fax case, whom its fax route names."""
    from .vendors import vendor_for_address

    staff = staff_directory(ctx)
    inbound = session.execute(
        select(Message).where(Message.case_id == case.id, Message.direction == "in").order_by(Message.id)
    ).scalars().all()
    route = fax_case_route(session, ctx, case)
    if route is not None:
        if route.address is None:
            return None
        from_customer = [m for m in inbound if not m.is_auto_reply and not m.is_bounce
                         and staff.by_email(m.from_addr) is None]
        last = from_customer[-1] if from_customer else None
        refs = tuple(r.strip("<>") for r in (last.references or "").split() if r) if last else ()
        return Requester(route.address.lower(), route.name, last.message_id if last else None, refs, route)
    customer_mail = [
        m for m in inbound
        if m.from_addr and not m.is_auto_reply and not m.is_bounce and staff.by_email(m.from_addr) is None
        and vendor_for_address(ctx, m.from_addr) is None
    ]
    if customer_mail:
        first, last = customer_mail[0], customer_mail[-1]
        refs = tuple(r.strip("<>") for r in (last.references or "").split() if r)
        return Requester(first.from_addr.lower(), first.from_name, last.message_id, refs)
    if case.customer is not None:
        email = case.customer.contact("email")
        if email:
            return Requester(email, case.customer.name, None, ())
    return None


def first_text(session: Session, case: Case, limit: int = 4000) -> str:
    """The symptoms as the customer first wrote them."""
    first = session.execute(
        select(Message).where(Message.case_id == case.id, Message.direction == "in").order_by(Message.id).limit(1)
    ).scalars().first()
    if first is None:
        return ""
    text = (first.new_text or first.text or "").strip()
    return text if len(text) <= limit else text[:limit] + " …"


def last_public_update(session: Session, case: Case, to: str | None) -> Message | None:
    """The newest message sent to the customer, acknowledgements excluded."""
    stmt = (
        select(Message).where(Message.case_id == case.id, Message.direction == "out",
                              Message.source != "outbox:ack")
        .order_by(Message.id.desc())
    )
    for msg in session.execute(stmt.limit(50)).scalars():
        if to is None or to.lower() in (msg.to_addrs or "").lower():
            return msg
    return None


def last_staff_reply(session: Session, case: Case, to: str | None) -> Message | None:
    """The newest message a person (not a timer) sent to the customer: the latest progress."""
    automatic = tuple(f"outbox:{k}" for k in AUTOMATIC_KINDS)
    stmt = (
        select(Message).where(Message.case_id == case.id, Message.direction == "out",
                              Message.source.not_in(automatic))
        .order_by(Message.id.desc()).limit(50)
    )
    for msg in session.execute(stmt).scalars():
        if to is None or to.lower() in (msg.to_addrs or "").lower():
            return msg
    return None


def case_context(ctx: Any, case: Case, lang: str) -> dict[str, Any]:
    """Fields every template may use about the case."""
    tz = ctx.config.service.timezone
    c = case.customer
    return {
        "case": case,
        "subject": case.subject or ("(无主题)" if lang == "zh" else "(no subject)"),
        "status_label": STATUS_LABELS[lang].get(case.status, case.status),
        "opened": local_time(case.opened_at, tz),
        "customer_name": (c.name if c else "") or "",
        "customer_company": (c.company if c else "") or "",
        "contract_id": (c.contract_id if c else "") or "",
        "product": (c.product if c else "") or "",
        "serial_number": (c.serial_number if c else "") or "",
        "service_name": ctx.config.service.display_name,
    }


# ---------------------------------------------------------------- sending


def mail_customer(
    session: Session,
    ctx: Any,
    case: Case,
    template: str,
    kind: str,
    now: datetime,
    *,
    event: str,
    event_detail: dict[str, Any] | None = None,
    **context: Any,
) -> str | None:
    """Queue ``template`` to the case's customer; returns the address, or None when refused.

    A refusal (no address, bounce/no-reply sender, rate limit) is recorded
    as ``<event>-suppressed`` so the case history says why nothing went out.
    """
    who = requester(session, ctx, case)
    if who is None:
        route = fax_case_route(session, ctx, case)
        refusal = route.reason if route is not None and route.reason else "no customer address on the case"
    else:
        rcpt = choose_recipient(who.route, who.email, who.name,
                                lambda address: ctx.pipeline.may_auto_answer(session, address, now))
        refusal = rcpt.refusal if rcpt.address is None else None
    if refusal is not None:
        repo.add_event(session, case, now, "scheduler", f"{event}-suppressed", detail={"reason": refusal})
        return None
    assert who is not None
    svc = ctx.config.service
    lang = lang_of(case.language, svc.default_language)
    fields = case_context(ctx, case, lang)
    fields.update(context)
    fields.setdefault("recipient_name", who.name or fields["customer_name"])
    # Through a fax gateway the customer answers by fax, not by replying.
    fields["by_fax"] = rcpt.route is not None and rcpt.route.format != "email"
    subject, body = ctx.renderer.render(template, lang, **fields)
    try:
        to = make_address(who.email, who.name)
    except ValueError as exc:
        repo.add_event(session, case, now, "scheduler", f"{event}-suppressed", detail={"reason": str(exc)})
        return None
    msg = build_message(
        from_addr=make_address(svc.address, svc.display_name), to=[to], subject=subject, body=body,
        domain=svc.domain, now=now, in_reply_to=who.last_message_id, references=who.references,
        attachments=rcpt.attachments(subject, body),
    )
    enqueue(session, msg, kind=kind, case_id=case.id, mail_from=svc.address, rcpt_to=[who.email], now=now, text=body)
    repo.add_event(session, case, now, "scheduler", event, new=who.email, detail=event_detail)
    return who.email


def mail_staff(
    session: Session,
    ctx: Any,
    case: Case,
    members: list[Any],
    template: str,
    kind: str,
    now: datetime,
    **context: Any,
) -> list[str]:
    """Queue one ``template`` mail per staff member, each in the member's language.

    Each carries a signed Reply-To, so the member can act on the case by
    replying with commands (``#assign``, ``#status``) from any mail client.
    """
    svc = ctx.config.service
    signer = reply_signer(ctx)
    sent = []
    for member in members:
        lang = lang_of(getattr(member, "language", ""), svc.default_language)
        fields = case_context(ctx, case, lang)
        fields.update(context)
        fields["member"] = member
        fields["role_label"] = ROLE_LABELS[lang].get(context.get("role", member.role), context.get("role", member.role))
        subject, body = ctx.renderer.render(template, lang, **fields)
        reply_to = make_address(signer.address(case.number, member.email)) if signer else None
        msg = build_message(
            from_addr=make_address(svc.address, svc.display_name), to=[make_address(member.email, member.name)],
            subject=subject, body=body, domain=svc.domain, now=now, reply_to=reply_to,
            auto_submitted="auto-generated",
        )
        enqueue(session, msg, kind=kind, case_id=case.id, mail_from=svc.address, rcpt_to=[member.email],
                now=now, text=body)
        sent.append(member.email)
    return sent
