"""After resolution: confirmation, closing, satisfaction survey, follow-ups, recurrence.

Seed 003's procedure: the customer confirms the fix before the case closes
(or stays silent for ``policy.close_after_silence``); closing sends a
satisfaction survey; follow-up contacts go out on the priority's schedule;
a fault that comes back reopens the process.

Two entry points: timer handlers (called by the sweeps) and reply hooks
(called by the pipeline inside the ingest transaction). Reading what the
customer wrote is left to the pure ``survey`` module.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from . import lifecycle, notices, timers
from .desk import Desk
from ..directory.roles import CUSTOMER
from ..notify.wording import local_time
from .survey import read_reply, reopens
from ...parsers.message import ParsedMessage
from ...storage import repository as repo
from ...storage import timers as store
from ...storage.models import Case, CaseTimer, Message, SurveyResponse

log = logging.getLogger("casegate.aftercare")

SURVEY = "survey"


def _current(case: Case, timer: CaseTimer) -> bool:
    """True while ``timer`` belongs to the case's current resolution."""
    return case.status in timers.AFTER_RESOLUTION and case.resolved_at == timer.anchor_at


# ---------------------------------------------------------------- timer handlers


def handle_confirm(session: Session, desk: Desk, timer: CaseTimer, case: Case, now: datetime) -> None:
    """Ask the customer to confirm the fix, saying when silence will close the case."""
    if case.status == "closed" and case.resolved_at == timer.anchor_at:
        # Closed by staff straight away: nothing to confirm, but still ask how we did.
        timers.finish(timer, now, "skipped:closed")
        send_survey(session, desk, case, now, timer.cycle)
        return
    if case.status != "resolved" or case.resolved_at != timer.anchor_at:
        timers.finish(timer, now, f"skipped:{case.status}")
        return
    tz = desk.service.timezone
    sent = desk.notifier.to_customer(
        session, case, "confirm_request", "confirm-request", now, event="confirmation-requested",
        close_at=local_time(desk.policy.auto_close_at(case.resolved_at), tz, case.language),
        progress=_resolution_text(session, desk, case),
    )
    timers.finish_notice(timer, now, sent)


def handle_auto_close(session: Session, desk: Desk, timer: CaseTimer, case: Case, now: datetime) -> None:
    """Close a resolved case the customer never answered."""
    if case.status != "resolved" or case.resolved_at != timer.anchor_at:
        timers.finish(timer, now, f"skipped:{case.status}")
        return
    timers.finish(timer, now, "sent")
    close_case(session, desk, case, now, actor="scheduler", reason="no answer after resolution",
               cycle=timer.cycle)


def handle_followup(session: Session, desk: Desk, timer: CaseTimer, case: Case, now: datetime) -> None:
    """A follow-up contact: score, has the fault come back, any new needs."""
    if not _current(case, timer):
        timers.finish(timer, now, f"skipped:{case.status}")
        return
    total = len(desk.policy.priority(case.priority).followups)
    tz = desk.service.timezone
    sent = desk.notifier.to_customer(
        session, case, "followup", "followup", now, event="followup-sent",
        event_detail={"step": timer.step, "of": total},
        step=timer.step, steps=total, ask_score=ask_score(session, case),
        resolved=local_time(case.resolved_at, tz, case.language) if case.resolved_at else "",
    )
    timers.finish_notice(timer, now, sent)


def ask_score(session: Session, case: Case) -> bool:
    """Ask for a 1-5 score only once the case is closed (the fix confirmed, or
    silence after it), and not again once a score came for this resolution."""
    if case.status != "closed" or case.resolved_at is None:
        return False
    return not store.scored_since(session, case, case.resolved_at)


def _resolution_text(session: Session, desk: Desk, case: Case) -> str:
    who = desk.notifier.customers.requester(session, case)
    last = notices.last_staff_reply(session, case, who.email if who else None)
    return (last.new_text or last.text).strip() if last is not None else ""


# ---------------------------------------------------------------- state changes


def close_case(session: Session, desk: Desk, case: Case, now: datetime, *, actor: str, reason: str,
               cycle: int | None = None) -> None:
    """Close a resolved case and send the satisfaction survey once per resolution."""
    role = lifecycle.SYSTEM if actor == "scheduler" else CUSTOMER
    lifecycle.transition(session, desk.policy, case, "close", now, actor=actor, role=role, reason=reason)
    if cycle is None:
        cycle = max(timers.next_cycle(session, case) - 1, 0)
    send_survey(session, desk, case, now, cycle)


def send_survey(session: Session, desk: Desk, case: Case, now: datetime, cycle: int) -> None:
    """The satisfaction survey, at most once per resolution (a timer row is the proof)."""
    if not desk.policy.survey_on_close or case.resolved_at is None:
        return
    survey = timers.add_timer(session, case, SURVEY, cycle=cycle, step=0, anchor_at=case.resolved_at, due_at=now,
                              detail={"to": "customer", "reason": "satisfaction survey on closing"})
    if survey is None:
        return  # already surveyed for this resolution
    sent = desk.notifier.to_customer(session, case, "survey", "survey", now, event="survey-sent",
                                     ask_score=ask_score(session, case))
    timers.finish_notice(survey, now, sent)


def reopen_case(session: Session, desk: Desk, case: Case, now: datetime, *, actor: str, reason: str,
                role: str = CUSTOMER) -> None:
    """Reopen after a recurrence or a new question: a new round of first
    response, escalation and status updates starts now (lifecycle.replan)."""
    lifecycle.transition(session, desk.policy, case, "reopen", now, actor=actor, role=role, reason=reason)


# ---------------------------------------------------------------- replies


def _surveyed(session: Session, case: Case) -> CaseTimer | None:
    """The newest survey or follow-up sent on this case, if any."""
    return timers.newest_sent(session, case, (SURVEY, timers.FOLLOWUP))


def _is_customer(desk: Desk, address: str | None) -> bool:
    if not address:
        return False
    return desk.staff.by_email(address) is None and desk.vendors.by_address(address) is None


def _record_answer(session: Session, case: Case, message: Message | None, text: str, now: datetime) -> None:
    asked = _surveyed(session, case)
    if asked is None:
        return
    reading = read_reply(text)
    if reading.score is None and not reading.recurred and len(text.strip()) == 0:
        return
    session.add(SurveyResponse(
        case_id=case.id, kind=asked.kind, step=asked.step, score=reading.score, recurred=reading.recurred,
        text=text.strip()[:4000], message_id=message.id if message is not None else None, received_at=now,
    ))
    repo.add_event(session, case, now, message.from_addr if message else "customer", "survey-answered",
                   new=str(reading.score) if reading.score is not None else None,
                   detail={"kind": asked.kind, "step": asked.step, "recurred": reading.recurred})


class Aftercare:
    """What the stages ask of aftercare: may a reply stay on a closed case (``keep_closed``), and what a customer reply means for a resolved case (``after_store``)."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk

    def keep_closed(self, session: Session, case: Case, parsed: ParsedMessage, now: datetime) -> bool:
        """A reply that stays on the closed case: thanks, a score, a confirmation.
        Only a recurrence or a new question reopens (or, late, opens a linked case)."""
        if not _is_customer(self.desk, parsed.sender_email):
            return False
        return not reopens(parsed.new_text or parsed.text or "")

    def after_store(self, session: Session, case: Case, message: Message, parsed: ParsedMessage,
                    outcome: str) -> None:
        if outcome != "reply" or not _is_customer(self.desk, parsed.sender_email):
            return
        now = message.created_at
        text = parsed.new_text or parsed.text or ""
        reading = read_reply(text)
        actor = (parsed.sender_email or "customer").lower()
        if case.status == "resolved":
            if reading.score is not None or _surveyed(session, case) is not None:
                _record_answer(session, case, message, text, now)
            if reading.recurred:
                repo.add_event(session, case, now, actor, "recurrence", detail={"text": text.strip()[:500]})
                reopen_case(session, self.desk, case, now, actor=actor, reason="customer reports the fault is back")
            elif reading.confirmed:
                repo.add_event(session, case, now, actor, "customer-confirmed")
                close_case(session, self.desk, case, now, actor=actor, reason="customer confirmed the fix")
            else:
                # The customer is not silent: silence is counted from the last reply.
                for timer in timers.pending(session, case, timers.AUTO_CLOSE):
                    timer.due_at = self.desk.policy.auto_close_at(now)
        elif case.status == "closed":
            _record_answer(session, case, message, text, now)
        elif reading.recurred and _surveyed(session, case) is not None:
            # The pipeline reopened a closed case for this reply; keep what it said.
            _record_answer(session, case, message, text, now)
            repo.add_event(session, case, now, actor, "recurrence", detail={"text": text.strip()[:500]})
