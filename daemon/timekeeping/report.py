"""The monthly service report: figures from the case record, as text, JSON or HTML.

Seeds 002/003 name the indicators: response-on-time rate, resolution rate,
customer satisfaction, case counts by category and priority, complaint
count, and the major cases. Everything is computed from what the database
already records (cases, their first response, survey answers, escalation
events), for the cases *opened* in the month, in the service's time zone.

HTML is one self-contained page with inline SVG bar charts: no scripts, no
external files, so a manager can open it from a mail attachment.
"""

from __future__ import annotations

import html
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from .policy import Policy
from ...storage import repository as repo
from ...storage import timers as store
from ...storage.models import Case


LONGEST = 5


def month_bounds(month: str, tz: str) -> tuple[datetime, datetime]:
    """``"2026-11"`` -> [first instant, first instant of the next month) in ``tz``."""
    try:
        year, mon = (int(x) for x in month.split("-"))
        start = datetime(year, mon, 1, tzinfo=ZoneInfo(tz))
    except (ValueError, TypeError):
        raise ValueError(f"month must look like 2026-11, got {month!r}") from None
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=ZoneInfo(tz))
    return start, end


@dataclass
class _Group:
    cases: int = 0
    answered: int = 0  # first response given or overdue: the denominator of the on-time rate
    on_time: int = 0
    resolved: int = 0
    scores: list[int] | None = None
    targeted: int = 0  # resolved, or past its last resolution target: the denominator
    resolved_on_time: int = 0

    def add_resolution(self, on_time: bool | None) -> None:
        if on_time is not None:
            self.targeted += 1
            self.resolved_on_time += int(on_time)

    def add(self, on_time: bool | None, resolved: bool, scores: list[int]) -> None:
        self.cases += 1
        if on_time is not None:
            self.answered += 1
            self.on_time += int(on_time)
        self.resolved += int(resolved)
        self.scores = (self.scores or []) + scores

    def as_dict(self) -> dict[str, Any]:
        scores = self.scores or []
        return {
            "cases": self.cases,
            "response_on_time_rate": round(self.on_time / self.answered, 4) if self.answered else None,
            "resolution_rate": round(self.resolved / self.cases, 4) if self.cases else None,
            "resolution_on_time_rate": round(self.resolved_on_time / self.targeted, 4) if self.targeted else None,
            "mean_satisfaction": round(sum(scores) / len(scores), 2) if scores else None,
            "survey_answers": len(scores),
        }


def compute(session: Session, policy: Policy, month: str, now: datetime, *, tz: str,
            complaint_category: str = "complaint") -> dict[str, Any]:
    """All figures of one month as plain data (what ``--json`` prints)."""
    start, end = month_bounds(month, tz)
    cases = repo.cases_opened_between(session, start, end)
    return {"month": month, **figures(session, policy, cases, now, tz=tz, complaint_category=complaint_category)}


def figures(session: Session, policy: Policy, cases: list[Case], now: datetime, *, tz: str,
            complaint_category: str = "complaint") -> dict[str, Any]:
    """The indicators of a set of cases (a month's, or one customer's quarter: daemon/timekeeping/customers.py)."""
    ids = [c.id for c in cases]
    scores = repo.survey_scores(session, ids)
    escalations = repo.event_counts(session, ids, "escalated")
    reopens = repo.event_counts(session, ids, "reopened")
    activity_minutes: dict[str, int] = defaultdict(int)
    activity_count: dict[str, int] = defaultdict(int)
    for e in store.events_of(session, ids, ("activity",)):
        info = json.loads(e.detail or "{}")
        activity_count[info.get("activity", "other")] += 1
        activity_minutes[info.get("activity", "other")] += int(info.get("minutes", 0))
    total = _Group()
    by_priority: dict[str, _Group] = defaultdict(_Group)
    by_category: dict[str, _Group] = defaultdict(_Group)
    rows = []
    for c in cases:
        cp = policy.for_contract(c.contract_level)  # a contract level's own targets count for its cases
        due = cp.first_response_due(c.priority, c.opened_at) if c.priority in cp.priorities else None
        if c.first_response_at is not None and due is not None:
            on_time: bool | None = c.first_response_at <= due
        elif due is not None and due <= now:
            on_time = False
        else:
            on_time = None
        resolved = c.resolved_at is not None or c.status in ("resolved", "closed")
        targets = cp.resolution_due(c.priority, c.opened_at) if c.priority in cp.priorities else {}
        fault_sla = policy.kind_of(c.category, c.route).fault_sla
        last_target = max(targets.values()) if targets and fault_sla else None
        if last_target is None:
            resolution_on_time: bool | None = None
        elif c.resolved_at is not None:
            resolution_on_time = c.resolved_at <= last_target
        else:
            resolution_on_time = False if last_target <= now else None
        for group in (total, by_priority[c.priority], by_category[c.category]):
            group.add(on_time, resolved, scores.get(c.id, []))
            group.add_resolution(resolution_on_time)
        finished = c.closed_at or c.resolved_at
        rows.append({
            "number": c.number, "subject": c.subject, "priority": c.priority, "category": c.category,
            "status": c.status, "opened_at": c.opened_at.astimezone(ZoneInfo(tz)).isoformat(timespec="minutes"),
            "hours": round(((finished or now) - c.opened_at).total_seconds() / 3600, 1),
            "finished": finished is not None, "escalations": escalations.get(c.id, 0),
            "response_on_time": on_time,
        })
    rows.sort(key=lambda r: r["hours"], reverse=True)
    return {
        "generated_at": now.astimezone(ZoneInfo(tz)).isoformat(timespec="minutes"),
        "total": total.as_dict(),
        "by_priority": {p: by_priority[p].as_dict() for p in sorted(by_priority)},
        "by_category": {k: by_category[k].as_dict() for k in sorted(by_category)},
        "complaints": sum(1 for c in cases if c.category == complaint_category),
        "escalations": sum(escalations.values()),
        "reopened": sum(reopens.values()),
        "activities": {k: {"count": activity_count[k], "minutes": activity_minutes[k]} for k in sorted(activity_count)},
        "longest_cases": rows[:LONGEST],
    }


# ---------------------------------------------------------------- rendering


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.0f}%"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def render_text(data: dict[str, Any]) -> str:
    lines = [f"casegate monthly report {data['month']} (generated {data['generated_at']})", ""]
    head = f"{'':<14}{'cases':>7}{'on time':>9}{'resolved':>10}{'satisf.':>9}"
    for title, groups in (("by priority", data["by_priority"]), ("by category", data["by_category"])):
        lines += [title, head]
        for name, g in [*groups.items(), ("total", data["total"])]:
            lines.append(f"{name[:13]:<14}{g['cases']:>7}{_pct(g['response_on_time_rate']):>9}"
                         f"{_pct(g['resolution_rate']):>10}{_num(g['mean_satisfaction']):>9}")
        lines.append("")
    lines.append(f"complaints: {data['complaints']}    escalation notices: {data['escalations']}    "
                 f"reopened: {data.get('reopened', 0)}    resolved on time: "
                 f"{_pct(data['total'].get('resolution_on_time_rate'))}")
    for name, a in data.get("activities", {}).items():
        lines.append(f"activities {name}: {a['count']} ({a['minutes']} min)")
    lines += ["", "longest cases"]
    for r in data["longest_cases"]:
        state = "" if r["finished"] else " (still open)"
        lines.append(f"  {r['number']:<18} {r['priority']:<3} {r['hours']:>7.1f} h{state}  "
                     f"esc {r['escalations']}  {r['subject'][:50]}")
    return "\n".join(lines) + "\n"


def _bars(title: str, items: list[tuple[str, float | None]], maximum: float, fmt) -> str:  # noqa: ANN001
    """One horizontal bar chart as inline SVG."""
    width, label_w, bar_h, gap = 460, 110, 22, 8
    height = 30 + len(items) * (bar_h + gap)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{html.escape(title)}">',
             f'<text x="0" y="16" font-size="14" font-weight="bold">{html.escape(title)}</text>']
    for i, (label, value) in enumerate(items):
        y = 28 + i * (bar_h + gap)
        w = 0 if value is None or maximum <= 0 else (width - label_w - 70) * value / maximum
        parts.append(f'<text x="0" y="{y + 16}" font-size="12">{html.escape(label)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="#3b7dd8"/>')
        parts.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 16}" font-size="12">{html.escape(fmt(value))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(data: dict[str, Any]) -> str:
    esc = html.escape
    pri = data["by_priority"]
    cat = data["by_category"]
    charts = [
        _bars("Response on time / 响应及时率", [(p, g["response_on_time_rate"]) for p, g in pri.items()], 1.0, _pct),
        _bars("Resolution rate / 解决率", [(p, g["resolution_rate"]) for p, g in pri.items()], 1.0, _pct),
        _bars("Satisfaction / 满意度 (1-5)", [(p, g["mean_satisfaction"]) for p, g in pri.items()], 5.0, _num),
        _bars("Cases by category / 按类别", [(k, g["cases"]) for k, g in cat.items()],
              float(max([g["cases"] for g in cat.values()] or [0])), lambda v: str(int(v or 0))),
    ]

    def table(groups: dict[str, dict[str, Any]], first: str) -> str:
        rows = "".join(
            f"<tr><td>{esc(k)}</td><td>{g['cases']}</td><td>{_pct(g['response_on_time_rate'])}</td>"
            f"<td>{_pct(g['resolution_rate'])}</td><td>{_num(g['mean_satisfaction'])}</td></tr>"
            for k, g in [*groups.items(), ("total", data["total"])]
        )
        return (f"<table><tr><th>{first}</th><th>cases</th><th>on time</th><th>resolved</th>"
                f"<th>satisfaction</th></tr>{rows}</table>")

    acts = data.get("activities", {})
    activities = ("<h2>Support activities / 支持活动</h2><table><tr><th>activity</th><th>count</th><th>minutes</th></tr>"
                  + "".join(f"<tr><td>{esc(k)}</td><td>{a['count']}</td><td>{a['minutes']}</td></tr>"
                            for k, a in acts.items()) + "</table>") if acts else ""
    longest = "".join(
        f"<tr><td>{esc(r['number'])}</td><td>{esc(r['priority'])}</td><td>{esc(r['status'])}</td>"
        f"<td>{r['hours']:.1f}</td><td>{r['escalations']}</td><td>{esc(r['subject'])}</td></tr>"
        for r in data["longest_cases"]
    )
    return f"""<!DOCTYPE html>
<html lang="zh"><head><meta charset="utf-8"><title>Service report {esc(data['month'])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1000px}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}td:first-child,th:first-child{{text-align:left}}
.charts{{display:flex;flex-wrap:wrap;gap:2em}}
@page{{size:A4;margin:15mm}}
@media print{{body{{margin:0;max-width:none}}svg,table{{break-inside:avoid}}}}</style></head><body>
<h1>服务月报 / Monthly service report {esc(data['month'])}</h1>
<p>Generated {esc(data['generated_at'])}. Complaints / 投诉: <b>{data['complaints']}</b>.
Escalation notices / 升级通知: <b>{data['escalations']}</b>.
Resolved on time / 按时解决: <b>{_pct(data['total'].get('resolution_on_time_rate'))}</b>.
Reopened / 重开: <b>{data.get('reopened', 0)}</b>.</p>
<div class="charts">{''.join(charts)}</div>
{activities}
<h2>By priority / 按优先级</h2>{table(pri, 'priority')}
<h2>By category / 按类别</h2>{table(cat, 'category')}
<h2>Longest cases / 耗时最长的案例</h2>
<table><tr><th>case</th><th>priority</th><th>status</th><th>hours</th><th>escalations</th><th>subject</th></tr>
{longest}</table>
</body></html>
"""


def render(data: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    if fmt == "html":
        return render_html(data)
    return render_text(data)


def default_month(now: datetime, tz: str) -> str:
    """The previous calendar month: what a report run on the 1st is about."""
    local = now.astimezone(ZoneInfo(tz)).replace(day=1) - timedelta(days=1)
    return f"{local.year:04d}-{local.month:02d}"
