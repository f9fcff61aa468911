"""The customer master data at work on cases: linking by command, and each customer's statistics.

Engineers link a case to a known customer or product by mail (``#customer
C001``, ``#product SN-0001``, ``#lang en``; daemon/workflow/commands.py); the
contract covering the case then follows, and with it the contract level's
own clock (``[policy.contract_levels]``), so the timers are re-planned.

Seeds 000 and 002 promise each customer its statistics and a quarterly
revisit: ``casegate report --customer ID --quarter 2026Q4`` (or ``--month``)
computes the figures of the monthly report for that customer's cases, and,
with ``[report] customer_reports = true``, the scheduler's sweep mails the
last quarter's to the customer's people who receive reports
(``reports = yes`` in the import) on the first working day of a quarter,
through the outbox, each in their language. A quarter is mailed once per
customer: the outbox kind names quarter and customer, and a kind already
queued is not queued again.
"""

from __future__ import annotations

import html
import json
import re
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from . import lifecycle
from .desk import Desk
from .policy import Policy
from .report import figures, month_bounds
from .report_mail import first_working_day
from ..directory.master_data import contract_for
from ..notify.notifier import Letter, Notifier
from ..notify.wording import STATUS_LABELS, lang_of
from ...storage import customers as master
from ...storage import repository as repo
from ...storage.models import Case, Customer

_QUARTER = re.compile(r"^(\d{4})\s*-?\s*Q([1-4])$", re.IGNORECASE)


# ---------------------------------------------------------------- linking a case


def link_master_data(session: Session, desk: Desk, case: Case, what: str, value: str, now: datetime, actor: str,
                     detail: dict[str, Any]) -> None:
    """Apply ``#customer``, ``#product`` or ``#lang`` (validated) to ``case``."""
    if what == "lang":
        old = case.language
        case.language = value
        if case.person is not None:  # the person's preference, for every later case too
            master.set_person_language(session, case.person, value)
        repo.add_event(session, case, now, actor, "language", old=old, new=value, detail=detail)
        return
    level = case.contract_level
    if what == "product":
        product = master.product_by_serial(session, value)
        assert product is not None  # validated
        old = case.product.serial if case.product is not None else None
        case.product = product
        case.customer = session.get(Customer, product.customer_id)
    else:
        customer = master.customer_by_external_id(session, value)
        assert customer is not None  # validated
        old = (case.customer.external_id or str(case.customer.id)) if case.customer is not None else None
        case.customer = customer
        if case.product is not None and case.product.customer_id != customer.id:
            case.product = None
    customer = case.customer
    assert customer is not None
    if case.person is not None and case.person.customer_id != customer.id:
        case.person = None
    if case.person is None:  # the person who wrote, when the master data knows the address
        first = repo.first_inbound_message(session, case)
        person = master.person_by_address(session, "email", first.from_addr.lower()) if first else None
        case.person = person if person is not None and person.customer_id == customer.id else None
    case.contract = contract_for(session, customer, case.product, now.date())
    case.updated_at = now
    repo.add_event(session, case, now, actor, f"{what}-linked", old=old, new=value,
                   detail={**detail, "contract": case.contract.external_id if case.contract else None})
    if case.contract_level != level:  # another contract level: another clock
        lifecycle.replan(session, desk.policy, case, now, cause=f"contract:{level}->{case.contract_level}",
                         actor=actor)


# ---------------------------------------------------------------- periods


def quarter_bounds(quarter: str, tz: str) -> tuple[datetime, datetime]:
    """``"2026Q4"`` -> [1 Oct 2026, 1 Jan 2027) in ``tz``."""
    m = _QUARTER.match(quarter.strip())
    if m is None:
        raise ValueError(f"quarter must look like 2026Q4, got {quarter!r}")
    year, q = int(m.group(1)), int(m.group(2))
    start = datetime(year, 3 * q - 2, 1, tzinfo=ZoneInfo(tz))
    end = datetime(year + (q == 4), 1 if q == 4 else 3 * q + 1, 1, tzinfo=ZoneInfo(tz))
    return start, end


def quarter_of(day: date) -> str:
    return f"{day.year}Q{(day.month - 1) // 3 + 1}"


def previous_quarter(day: date) -> str:
    q = (day.month - 1) // 3 + 1
    return f"{day.year - 1}Q4" if q == 1 else f"{day.year}Q{q - 1}"


def period_bounds(period: str, tz: str) -> tuple[datetime, datetime]:
    """A quarter ("2026Q4") or a month ("2026-11")."""
    return quarter_bounds(period, tz) if "q" in period.lower() else month_bounds(period, tz)


# ---------------------------------------------------------------- the figures


def compute_customer(session: Session, policy: Policy, customer: Customer, period: str, now: datetime, *, tz: str,
                     complaint_category: str = "complaint") -> dict[str, Any]:
    """One customer's figures for a quarter or month, as plain data (what ``--json`` prints)."""
    start, end = period_bounds(period, tz)
    cases = master.customer_cases_between(session, customer, start, end)
    data = figures(session, policy, cases, now, tz=tz, complaint_category=complaint_category)
    zone = ZoneInfo(tz)
    return {
        "customer": {"id": customer.external_id or str(customer.id), "name": customer.company or customer.name},
        "period": period,
        **data,
        "cases": [{"number": c.number, "subject": c.subject, "priority": c.priority, "status": c.status,
                   "opened_at": c.opened_at.astimezone(zone).isoformat(timespec="minutes"),
                   "product": c.product.serial if c.product is not None else None} for c in cases],
    }


LABELS = {
    "zh": {"title": "服务统计", "cases": "案例数", "on_time": "按时首次响应", "resolved": "已解决",
           "resolved_on_time": "按时解决", "satisfaction": "满意度（1-5）", "complaints": "投诉",
           "by_priority": "按优先级", "list": "案例", "none": "本期没有案例。", "priority": "优先级",
           "status": "状态", "opened": "建立时间", "subject": "主题", "number": "案例编号", "sep": "："},
    "en": {"title": "Service statistics", "cases": "cases", "on_time": "first response on time",
           "resolved": "resolved", "resolved_on_time": "resolved on time", "satisfaction": "satisfaction (1-5)",
           "complaints": "complaints", "by_priority": "by priority", "list": "cases", "none": "No cases in this period.",
           "priority": "priority", "status": "status", "opened": "opened", "subject": "subject", "number": "case",
           "sep": ": "},
}


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.0f}%"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def render_customer_text(data: dict[str, Any], lang: str) -> str:
    w, t = LABELS[lang], data["total"]
    status = STATUS_LABELS[lang]
    sep = w["sep"]
    lines = [f"{w['title']} {data['period']}{sep}{data['customer']['name']} ({data['customer']['id']})", "",
             f"  {w['cases']}{sep}{t['cases']}", f"  {w['on_time']}{sep}{_pct(t['response_on_time_rate'])}",
             f"  {w['resolved']}{sep}{_pct(t['resolution_rate'])}",
             f"  {w['resolved_on_time']}{sep}{_pct(t['resolution_on_time_rate'])}",
             f"  {w['satisfaction']}{sep}{_num(t['mean_satisfaction'])}",
             f"  {w['complaints']}{sep}{data['complaints']}", "", w["by_priority"]]
    for p, g in data["by_priority"].items():
        lines.append(f"  {p}{sep}{g['cases']}  {w['on_time']} {_pct(g['response_on_time_rate'])}  "
                     f"{w['resolved']} {_pct(g['resolution_rate'])}")
    lines += ["", w["list"]]
    for c in data["cases"]:
        lines.append(f"  {c['number']}  {c['priority']}  {status.get(c['status'], c['status'])}  "
                     f"{c['opened_at'][:10]}  {c['subject'][:60]}")
    if not data["cases"]:
        lines.append(f"  {w['none']}")
    return "\n".join(lines) + "\n"


def render_customer_html(data: dict[str, Any], lang: str) -> str:
    w, t, esc = LABELS[lang], data["total"], html.escape
    status = STATUS_LABELS[lang]
    figures_rows = "".join(f"<tr><td>{esc(label)}</td><td>{esc(value)}</td></tr>" for label, value in (
        (w["cases"], str(t["cases"])), (w["on_time"], _pct(t["response_on_time_rate"])),
        (w["resolved"], _pct(t["resolution_rate"])), (w["resolved_on_time"], _pct(t["resolution_on_time_rate"])),
        (w["satisfaction"], _num(t["mean_satisfaction"])), (w["complaints"], str(data["complaints"]))))
    case_rows = "".join(
        f"<tr><td>{esc(c['number'])}</td><td>{esc(c['priority'])}</td><td>{esc(status.get(c['status'], c['status']))}"
        f"</td><td>{esc(c['opened_at'][:10])}</td><td>{esc(c['subject'])}</td></tr>" for c in data["cases"])
    title = f"{w['title']} {data['period']}{w['sep']}{data['customer']['name']}"
    return f"""<!DOCTYPE html>
<html lang="{lang}"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:900px}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:left}}</style></head><body>
<h1>{esc(title)}</h1>
<table>{figures_rows}</table>
<h2>{esc(w['list'])}</h2>
<table><tr><th>{esc(w['number'])}</th><th>{esc(w['priority'])}</th><th>{esc(w['status'])}</th>
<th>{esc(w['opened'])}</th><th>{esc(w['subject'])}</th></tr>{case_rows}</table>
{'' if data['cases'] else f"<p>{esc(w['none'])}</p>"}
</body></html>
"""


def render_customer(data: dict[str, Any], fmt: str, lang: str) -> str:
    if fmt == "json":
        return json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    if fmt == "html":
        return render_customer_html(data, lang)
    return render_customer_text(data, lang)


# ---------------------------------------------------------------- the quarterly mail


def report_kind(period: str, customer: Customer) -> str:
    return f"customer-report-{period}-{customer.id}"


def due_quarter(policy: Policy, now: datetime, tz: str) -> str | None:
    """The quarter whose statistics are due today (the first working day of the next quarter), else None."""
    today = now.astimezone(ZoneInfo(tz)).date()
    if today.month % 3 != 1 or today != first_working_day(policy.calendar, today.year, today.month):
        return None
    return previous_quarter(today)


def send_due_customer_reports(session: Session, notifier: Notifier, policy: Policy, now: datetime, *, tz: str,
                              default_language: str, complaint_category: str = "complaint") -> int:
    """The sweep's step: on the first working day of a quarter, last quarter's statistics to every
    customer's people who receive reports, each in their language; how many mails were queued."""
    period = due_quarter(policy, now, tz)
    if period is None:
        return 0
    queued_kinds = master.queued_kinds(session, "customer-report-" + period + "-")
    by_customer: dict[int, list[Any]] = {}
    for customer, person, email in master.report_recipients(session):
        if report_kind(period, customer) not in queued_kinds:
            by_customer.setdefault(customer.id, []).append((customer, person, email))
    queued = 0
    for recipients in by_customer.values():
        customer = recipients[0][0]
        data = compute_customer(session, policy, customer, period, now, tz=tz, complaint_category=complaint_category)
        for _, person, email in recipients:
            lang = lang_of(person.language, default_language)
            notifier.send(session, Letter(
                kind=report_kind(period, customer), case=None, to=email, to_name=person.name,
                template="customer_report", language=lang, now=now,
                fields={"period": period, "report_text": render_customer_text(data, lang),
                        "recipient_name": person.name, "customer_company": customer.company or customer.name,
                        "service_name": notifier.service.display_name},
                html=render_customer_html(data, lang), auto_submitted="auto-generated",
            ))
            queued += 1
    return queued
