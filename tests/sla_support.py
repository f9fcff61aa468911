"""Shared set-up for the SLA / aftercare / vendor tests: an app on the SMTP sink,
staff for every escalation role, a controllable clock and mail builders."""

from __future__ import annotations

import itertools
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from casegate.daemon.inbound import Inbound
from casegate.daemon.runtime.app import App
from casegate.daemon.config import build_config
from casegate.daemon.inbound import Source

from casegate.storage import repository as repo
from casegate.storage.models import Case, CaseTimer

SH = ZoneInfo("Asia/Shanghai")
SERVICE = "service@desk.example.cn"
ENGINEER = "wang.wei@desk.example.cn"
SUPERVISOR = "zhao.min@desk.example.cn"
MANAGER = "sun.li@desk.example.cn"
CUSTOMER = "zhangsan@customer.cn"
VENDOR = "tac@vendor.example.com"
SOURCE = Source("test", "imap")

STAFF = [
    {"name": "Wang Wei", "email": ENGINEER, "role": "service-engineer", "queues": ["*"], "aliases": ["王伟"]},
    {"name": "Zhao Min", "email": SUPERVISOR, "role": "support-supervisor"},
    {"name": "Sun Li", "email": MANAGER, "role": "general-manager", "language": "en"},
]
VENDORS = [
    {"name": "Huawei", "address": VENDOR, "customer_number": "HW-CN-0088", "aliases": ["华为"],
     "case_number_regex": r"(?:case|SR)\s*(?:no\.?|number|#)?\s*[:：]?\s*(\d{8,})", "reminder_every": "1d"},
]

_seq = itertools.count(1)


def sh(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=SH)


class Clock:
    """Time under the test's control (never sleep)."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def set(self, when: datetime) -> None:
        self.now = when


def make_app(tmp_path: Path, sink: Any, clock: Clock, url: str | None = None, **sections: Any) -> App:
    data: dict[str, Any] = {
        "service": {"address": SERVICE, "max_auto_mails_per_hour": 30},
        "database": {"url": url or "sqlite:///casegate.db"},
        "outgoing": {"transport": "smtp", "host": sink.host, "port": sink.port},
        "staff": STAFF,
        "vendors": VENDORS,
    }
    data.update(sections)
    return App(build_config(data, base_dir=tmp_path), clock=clock)


def mail(sender: str = CUSTOMER, subject: str = "服务器宕机，业务中断", body: str = "您好，我们的核心服务器宕机了，业务全部中断。",
         *, to: str = SERVICE, in_reply_to: str | None = None, when: datetime | None = None,
         attachments: list[tuple[str, str, bytes]] = ()) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when or datetime.now(SH))
    msg["Message-ID"] = make_msgid(f"t{next(_seq)}", domain=sender.partition("@")[2] or "x")
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
        msg["References"] = f"<{in_reply_to}>"
    msg.set_content(body)
    for name, ctype, content in attachments:
        main, _, sub = ctype.partition("/")
        msg.add_attachment(content, maintype=main, subtype=sub, filename=name)
    return msg.as_bytes()


def ingest(app: App, raw: bytes) -> str:
    res = app.pipeline.ingest(Inbound(raw, SOURCE))
    assert res.outcome in ("new", "reply"), res
    assert res.case_number
    return res.case_number


def sweep_and_send(app: App, sink: Any, clock: Clock, when: datetime) -> list[EmailMessage]:
    """Run the sweeps at ``when``, deliver to the sink, return what arrived."""
    clock.set(when)
    before = len(sink.received)
    app.sweep(when)
    report = app.outbox.send_due()
    assert report.failed == 0 and report.retried == 0, report
    return [m.message for m in sink.received[before:]]


def deliver(app: App, sink: Any) -> list[EmailMessage]:
    before = len(sink.received)
    report = app.outbox.send_due()
    assert report.failed == 0 and report.retried == 0, report
    return [m.message for m in sink.received[before:]]


def rcpts(msg: EmailMessage) -> list[str]:
    return sorted(a.addr_spec.lower() for a in msg["To"].addresses)


def summary(msgs: list[EmailMessage]) -> list[tuple[str, str]]:
    """(recipient, kind) of each mail, kind read from the subject."""
    out = []
    for m in msgs:
        out.append((",".join(rcpts(m)), str(m["Subject"])))
    return out


def body_of(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return part.get_content()


def case_of(app: App, number: str) -> Case:
    with app.db.session() as s:
        case = repo.load_case(s, number)
        assert case is not None
        s.expunge_all()
        return case


def events(app: App, number: str, action: str | None = None) -> list[tuple[str, str | None]]:
    case = case_of(app, number)
    return [(e.action, e.new) for e in case.events if action is None or e.action == action]


def timers_of(app: App, number: str) -> list[CaseTimer]:
    with app.db.session() as s:
        case = repo.case_by_number(s, number)
        rows = list(s.execute(select(CaseTimer).where(CaseTimer.case_id == case.id).order_by(CaseTimer.id)).scalars())
        s.expunge_all()
        return rows


def staff_reply(app: App, number: str, text: str, sender: str = ENGINEER, subject: str | None = None) -> None:
    """An engineer answering through the signed reply address the workflow issued."""
    signed = app.workflow.signer.address(number, sender)
    raw = mail(sender, subject or f"Re: [{number}] 服务器宕机", text, to=signed)
    res = app.pipeline.ingest(Inbound(raw, SOURCE))
    assert res.outcome == "reply", res


def cli_config(tmp_path: Path) -> Path:
    """A casegate.toml for the command line on the database ``make_app`` used in ``tmp_path``."""
    path = tmp_path / "casegate.toml"
    path.write_text(f'[service]\naddress = "{SERVICE}"\ndata_dir = "{tmp_path}"\n'
                    f'[database]\nurl = "sqlite:///casegate.db"\n', encoding="utf-8")
    return path
