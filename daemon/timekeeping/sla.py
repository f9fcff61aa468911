"""While a case is open: first-response check, escalation matrix, status updates, complaints.

Each handler gets a claimed, due timer and decides in one transaction what
the timer means now: a notice (queued, recorded as an event) or a reasoned
skip (the case was resolved, staff already answered). Nothing here reads
the clock: ``now`` is given, so tests drive every instant explicitly.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from . import lifecycle, notices, timers
from .desk import Desk
from ..notify.wording import PRIORITY_LABELS, lang_of, local_time, priority_label, say_delta, say_promise
from ...storage import repository as repo
from ...storage import timers as store
from ...storage.models import Case, CaseTimer


def _sla_lines(session: Session, desk: Desk, case: Case, now: datetime) -> dict[str, Any]:
    """What was promised and how it went, for escalation mail."""
    policy = desk.policy
    tz = desk.service.timezone
    pp = policy.priority(case.priority)
    start = lifecycle.round_start(session, case)
    due = policy.first_response_due(case.priority, start)
    responded = _responded(session, case, start)
    return {
        "first_response_target": pp.first_response,
        "first_response_due": local_time(due, tz),
        "first_response_at": local_time(responded, tz) if responded else None,
        "first_response_breached": (responded or now) > due,
        "resolution_due": {k: local_time(v, tz) for k, v in policy.resolution_due(case.priority, start).items()},
        "working_time": pp.working_time,
        "reopened": start != case.opened_at,
    }


def _responded(session: Session, case: Case, start: datetime) -> datetime | None:
    """The first public reply of the round that started at ``start``."""
    if start == case.opened_at:
        return case.first_response_at
    return store.first_event_at(session, case, ("public-reply",), start)


def handle_first_response(session: Session, desk: Desk, timer: CaseTimer, case: Case, now: datetime) -> None:
    """Record a first-response breach on the case (the escalation steps do the mailing)."""
    responded = _responded(session, case, timer.anchor_at)
    if responded is not None and responded <= timer.due_at:
        timers.finish(timer, now, "skipped:answered")
        return
    if case.status in timers.AFTER_RESOLUTION:
        timers.finish(timer, now, "skipped:resolved")
        return
    repo.add_event(session, case, now, "scheduler", "sla-breached", new="first_response",
                   detail={"due": timer.due_at.isoformat(), "target": str(desk.policy.priority(case.priority).first_response)})
    timers.finish(timer, now, "breached")


def handle_escalation(session: Session, desk: Desk, timer: CaseTimer, case: Case, now: datetime) -> None:
    """One step of the escalation matrix: mail the role's members once."""
    if case.status in timers.AFTER_RESOLUTION:
        timers.finish(timer, now, "skipped:resolved")
        return
    role = timers.detail_of(timer)["role"]
    members = desk.staff.with_role(role)
    assignee = desk.staff.by_email(case.assignee) if case.assignee else None
    if assignee is not None and assignee.role == role:
        # The step of the assignee's own role reaches the engineer working the
        # case, not every engineer; the higher steps reach their roles.
        members = [assignee]
    if not members:
        repo.add_event(session, case, now, "scheduler", "escalation-unrouted", new=role,
                       detail={"step": timer.step, "reason": f"no staff with role {role}"})
        timers.finish(timer, now, "skipped:no-staff")
        return
    basis = desk.policy.basis_for(case.priority)
    start = lifecycle.round_start(session, case)
    pp = desk.policy.priority(case.priority)
    who = desk.notifier.customers.requester(session, case)
    sent = desk.notifier.to_staff(
        session, case, members, "escalation", "escalation", now,
        role=role,
        step=timer.step,
        steps=len(desk.policy.priority(case.priority).escalation),
        elapsed_zh=say_delta(basis.elapsed(start, now), "zh"),
        elapsed_en=say_delta(basis.elapsed(start, now), "en"),
        requester=who.email if who else "",
        symptoms=notices.first_text(session, case, 1500),
        priority_label_zh=PRIORITY_LABELS["zh"].get(case.priority, case.priority),
        priority_label_en=PRIORITY_LABELS["en"].get(case.priority, case.priority),
        target_zh=say_promise(pp.first_response, pp.working_time, "zh"),
        target_en=say_promise(pp.first_response, pp.working_time, "en"),
        **_sla_lines(session, desk, case, now),
    )
    repo.add_event(session, case, now, "scheduler", "escalated", new=role,
                   detail={"step": timer.step, "to": sent, "due": timer.due_at.isoformat()})
    timers.finish(timer, now, "sent", to=sent)


def handle_resolution(session: Session, desk: Desk, timer: CaseTimer, case: Case, now: datetime) -> None:
    """A resolution target (root cause, workaround, fix ...) passed with the case unresolved."""
    target = timers.detail_of(timer).get("target", "")
    if case.status in timers.AFTER_RESOLUTION:
        timers.finish(timer, now, "skipped:met")
        return
    repo.add_event(session, case, now, "scheduler", "sla-breached", new=f"resolution:{target}",
                   detail={"due": timer.due_at.isoformat()})
    _deadline_notice(session, desk, timer, case, now, desk.policy.resolution_role, "resolution_breach", target,
                     {"resolution_target": target})


def handle_complaint(session: Session, desk: Desk, timer: CaseTimer, case: Case, now: datetime) -> None:
    """A complaint deadline passed unmet: tell the role that owns complaints."""
    deadline = timers.detail_of(timer)["deadline"]
    met = (
        case.status in timers.AFTER_RESOLUTION
        or (deadline == "respond" and case.first_response_at is not None and case.first_response_at <= timer.due_at)
        or (deadline == "plan" and store.last_event_at(session, case, ("plan-given",), timer.anchor_at) is not None)
    )
    if met:
        timers.finish(timer, now, "skipped:met")
        return
    _deadline_notice(session, desk, timer, case, now, desk.settings.complaint_role, "complaint_deadline", deadline,
                     {"complaint_deadline": deadline})


def _deadline_notice(session: Session, desk: Desk, timer: CaseTimer, case: Case, now: datetime, role: str,
                     template: str, deadline: str, detail: dict[str, Any]) -> None:
    """A missed deadline (complaint or resolution target): tell the role that owns it."""
    members = desk.staff.with_role(role)
    sent = desk.notifier.to_staff(session, case, members, template, "escalation", now,
                                  role=role, deadline=deadline, due=local_time(timer.due_at, desk.service.timezone),
                                  symptoms=notices.first_text(session, case, 1500))
    repo.add_event(session, case, now, "scheduler", "escalated", new=role, detail={**detail, "to": sent})
    timers.finish(timer, now, "sent" if sent else "skipped:no-staff", to=sent)


def _next_step(session: Session, case: Case) -> tuple[str, str]:
    """What happens next, in the customer's words (zh, en)."""
    vc = repo.newest_vendor_case(session, case)
    if vc is not None:
        no = f"（厂商案例号 {vc.vendor_case_no}）" if vc.vendor_case_no else ""
        no_en = f" (vendor case number {vc.vendor_case_no})" if vc.vendor_case_no else ""
        return (f"我们已将问题提交给设备厂商 {vc.vendor}{no}，正在等待厂商的分析结果，并会持续跟进。",
                f"We have escalated the issue to the vendor {vc.vendor}{no_en} and are following up on their analysis.")
    if case.first_response_at is None:
        return ("工程师将尽快与您联系。", "An engineer will contact you shortly.")
    return ("工程师正在继续处理您的问题。", "Our engineer continues to work on your issue.")


def handle_status_update(session: Session, desk: Desk, timer: CaseTimer, case: Case, now: datetime) -> None:
    """The periodic progress mail; skipped when a person wrote within the cadence."""
    if timers.STATUS_UPDATE not in lifecycle.OWNS.get(case.status, ()):
        # The chain stops; the lifecycle restarts it when the case is worked again.
        timers.finish(timer, now, f"skipped:{case.status}")
        return
    who = desk.notifier.customers.requester(session, case)
    # Without a customer to write to, staff notices on the case are no update
    # to them: the notice is due and mail_customer records why it is suppressed.
    last = notices.last_public_update(session, case, who.email) if who is not None else None
    if last is not None:
        again = desk.policy.next_status_update(case.priority, last.created_at)
        if again is not None and again > now:
            timer.due_at = again  # staff wrote recently: owe the next update a cadence after that
            return
    progress = notices.last_staff_reply(session, case, who.email if who else None)
    next_due = desk.policy.next_status_update(case.priority, now)
    step_zh, step_en = _next_step(session, case)
    tz = desk.service.timezone
    lang = lang_of(case.language, desk.service.default_language)
    eta = store.newest_event(session, case, "eta")  # the expected time the engineer set (#eta)
    sent = desk.notifier.to_customer(
        session, case, "status_update", "status-update", now, event="status-update-sent",
        event_detail={"step": timer.step},
        progress=(progress.new_text or progress.text).strip() if progress else "",
        progress_at=local_time(progress.created_at, tz, lang) if progress else "",
        next_step=step_zh if lang == "zh" else step_en,
        next_update=local_time(next_due, tz, lang) if next_due else "",
        priority_label=priority_label(case.priority, lang),
        eta=local_time(datetime.fromisoformat(eta.new), tz, lang) if eta is not None and eta.new else "",
    )
    timers.finish_notice(timer, now, sent)
    timers.plan_status_update(session, desk.policy, case, now)
