"""Notify: who hears of what the message did.

A new case is acknowledged to its customer (through the fax gateway for a
fax-only customer), then assigned and its engineer notified. Staff mail that
names no case is answered with a short "which case?" instead of opening one.
Replies are told by the workflow while it applies them (an engineer's text
relayed to the customer, a customer's reply to the assignee).
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from ..config import ServiceConfig
from ..fax.config import FaxConfig
from ..notify.fax_route import reply_route
from ..notify.notifier import Letter, Notifier
from ..notify.wording import NO_SUBJECT, local_time, priority_label, say_promise
from ..timekeeping.policy import Policy
from ..workflow.conversation import Workflow
from .context import MessageContext
from ...storage import repository as repo
from ...storage.db import DatabaseUnavailable
from ...storage.models import Case

log = logging.getLogger("casegate.pipeline")


class Notify:
    name = "notify"
    after_settled = True

    def __init__(self, service: ServiceConfig, policy: Policy, notifier: Notifier, fax: FaxConfig,
                 workflow: Workflow) -> None:
        self.service = service
        self.policy = policy
        self.notifier = notifier
        self.fax = fax
        self.workflow = workflow

    def run(self, session: Session, ctx: MessageContext) -> None:
        result = ctx.result
        if result is None:
            return
        if result.outcome == "new" and ctx.case is not None and ctx.message is not None and ctx.quiet:
            # A customer's monitoring system or list post: a case, but RFC 3834
            # says automatic mail is not answered automatically.
            repo.add_event(session, ctx.case, ctx.now, "system", "ack-suppressed",
                           detail={"reason": "automatic mail from a customer's system: not acknowledged"})
            self.workflow.after_store(session, ctx.case, ctx.message, ctx.parsed, "new", ctx.role)
        elif result.outcome == "new" and ctx.case is not None and ctx.message is not None:
            try:
                # No savepoint (it would cost a flush per message): everything
                # that can fail in composing comes before the first row is added.
                self.acknowledge(session, ctx, ctx.case)
            except (OperationalError, DatabaseUnavailable):
                raise
            except Exception as exc:
                # The case matters more than its acknowledgement: keep the case,
                # record why no acknowledgement went out.
                log.exception("case=%s acknowledgement not queued", ctx.case.number)
                repo.add_event(session, ctx.case, ctx.now, "system", "ack-failed",
                               detail={"reason": f"{type(exc).__name__}: {exc}"})
            self.workflow.after_store(session, ctx.case, ctx.message, ctx.parsed, "new", ctx.role)
        elif ctx.staff is not None and ctx.case is None and ctx.message is not None:
            self.workflow.unthreaded_staff(session, ctx.message, ctx.parsed)

    def acknowledge(self, session: Session, ctx: MessageContext, case: Case) -> None:
        parsed, now = ctx.parsed, ctx.now
        assert parsed is not None and now is not None
        route = reply_route(case.customer, parsed, self.fax, case.person)
        svc = self.service
        lang = case.language
        policy = self.policy.for_contract(case.contract_level)  # a gold contract promises its own time
        promise, working_time = policy.response_promise(case.priority, case.category, case.route)
        due = policy.response_due(case.priority, case.category, case.route, case.opened_at)
        name = parsed.from_.name if parsed.from_ else ""
        queued = self.notifier.send(session, Letter(
            kind="ack", case=case, to=parsed.sender_email, to_name=name,
            template=route.template if route is not None else "ack", language=lang, now=now, event="ack",
            route=route, in_reply_to=parsed.message_id, references=parsed.references,
            fields=dict(
                case=case,
                subject=parsed.subject or NO_SUBJECT.get(lang, NO_SUBJECT["en"]),
                # The master data's person and company, when known: "广州某银行 张三，您好".
                customer_name=(case.person.name if case.person is not None and case.person.name
                               else route.name if route is not None and route.address else name),
                customer_company=case.customer.company if case.customer is not None else "",
                priority_label=priority_label(case.priority, lang),
                first_response=say_promise(promise, working_time, lang),
                first_response_due=local_time(due, svc.timezone, lang),
                service_name=svc.display_name,
            ),
        ))
        if queued.address:
            repo.add_event(session, case, now, "system", "ack-queued", new=queued.address)
