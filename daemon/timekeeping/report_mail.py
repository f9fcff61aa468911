"""``[report]``: the monthly report mailed to the addresses the admin names.

Config::

    [report]
    recipients = []     # who receives it; empty: nobody (the report is not mailed)
    language = "zh"     # zh | en: the wording of the mail around the report
    customer_reports = false   # each customer's quarterly statistics to its people who
                               # receive reports (daemon/timekeeping/customers.py)

On the first working day of a month (the working calendar's), the report of
the previous month goes to each recipient through the notifier and the
outbox, like every mail casegate sends: the text report as the body, the
HTML report (charts inline as SVG, one self-contained page) as its HTML part. It is
sent once per month and recipient: the outbox kind names the month, and a
month already queued is not queued again (after a restart, or by a second
daemon on the same database).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from ..config import Config, ConfigError, build_section
from ..notify.notifier import Letter, Notifier
from .policy import Policy
from .report import compute, default_month, render
from .worktime import WorkCalendar
from ...storage.ops import outbox_kind_count


@dataclass(frozen=True)
class ReportConfig:
    recipients: tuple[str, ...] = ()
    language: str = "zh"
    customer_reports: bool = False

    @classmethod
    def from_config(cls, config: Config) -> ReportConfig:
        file = str(config.path) if config.path else "<defaults>"
        cfg = build_section(cls, config.extra.get("report", {}), f"{file}: report")
        if cfg.language not in ("zh", "en"):
            raise ConfigError(f"{file}: report.language: expected one of zh, en, got {cfg.language!r}")
        bad = [a for a in cfg.recipients if "@" not in a]
        if bad:
            raise ConfigError(f"{file}: report.recipients: not a mail address: {bad[0]!r}")
        return cfg


def first_working_day(calendar: WorkCalendar, year: int, month: int) -> date:
    day = date(year, month, 1)
    while not calendar.is_working_day(day):
        day = date.fromordinal(day.toordinal() + 1)
    return day


def report_kind(month: str) -> str:
    return f"monthly-report-{month}"


def due_month(calendar: WorkCalendar, now: datetime, tz: str) -> str | None:
    """The month whose report is due today (on the first working day of the next month), else None."""
    today = now.astimezone(ZoneInfo(tz)).date()
    if today != first_working_day(calendar, today.year, today.month):
        return None
    return default_month(now, tz)


def mail_report(session: Session, notifier: Notifier, policy: Policy, cfg: ReportConfig, month: str,
                now: datetime, *, tz: str, complaint_category: str) -> int:
    """Queue the report of ``month`` for every recipient; how many mails were queued."""
    data = compute(session, policy, month, now, tz=tz, complaint_category=complaint_category)
    text, page = render(data, "text"), render(data, "html")
    queued = 0
    for address in cfg.recipients:
        notifier.send(session, Letter(
            kind=report_kind(month), case=None, to=address, to_name="", template="monthly_report",
            language=cfg.language, now=now, guard=False, mail_class="staff", auto_submitted="auto-generated",
            fields={"month": month, "report_text": text},
            html=page,  # the page with its charts inline, beside the text part
        ))
        queued += 1
    return queued


def send_due_report(session: Session, notifier: Notifier, policy: Policy, cfg: ReportConfig, now: datetime,
                    *, tz: str, complaint_category: str) -> str | None:
    """The daemon's step: mail last month's report when today is the day and it was not yet queued."""
    if not cfg.recipients:
        return None
    month = due_month(policy.calendar, now, tz)
    if month is None or outbox_kind_count(session, report_kind(month)):
        return None
    mail_report(session, notifier, policy, cfg, month, now, tz=tz, complaint_category=complaint_category)
    return month
