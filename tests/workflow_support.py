"""Shared set-up for the e-mail workflow tests (tests/test_workflow*.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from casegate.daemon.inbound import Inbound
from casegate.daemon.runtime.app import App
from casegate.daemon.config import build_config
from casegate.daemon.inbound import Source
from casegate.storage import repository as repo

SERVICE = "service@desk.example.cn"
ENGINEER = "wang.wei@desk.example.cn"
ENGINEER2 = "li.na@desk.example.cn"
CUSTOMER = "zhangsan@customer.cn"
SOURCE = Source("test", "imap")

STAFF = [
    {"name": "Wang Wei", "email": ENGINEER, "role": "service-engineer", "queues": ["*"], "aliases": ["王伟"],
     "language": "en"},
    {"name": "Li Na", "email": ENGINEER2, "role": "service-engineer", "queues": ["*"], "aliases": ["李娜"]},
    {"name": "Zhao Min", "email": "zhao.min@desk.example.cn", "role": "support-supervisor"},
]


class FakeClock:
    """Time under the test's control (never sleep)."""

    def __init__(self, start: datetime = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def make_app(tmp_path: Path, sink: Any, clock: FakeClock | None = None, **sections: Any) -> App:
    data: dict[str, Any] = {
        "service": {"address": SERVICE, "max_auto_mails_per_hour": 10},
        "database": {"url": "sqlite:///casegate.db"},
        "outgoing": {"transport": "smtp", "host": sink.host, "port": sink.port},
        "staff": STAFF,
    }
    data.update(sections)
    return App(build_config(data, base_dir=tmp_path), clock=clock or FakeClock())


def send_out(app: App) -> None:
    report = app.outbox.send_due()
    assert report.failed == 0 and report.retried == 0, report


def to_of(msg: EmailMessage) -> list[str]:
    return [a.addr_spec.lower() for a in msg["To"].addresses] if msg["To"] else []


def mails_to(sink: Any, address: str) -> list[EmailMessage]:
    return [m.message for m in sink.received if address in [r.lower() for r in m.rcpt_tos]]


def body_of(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return part.get_content()


def case_events(app: App, number: str) -> list[tuple[str, str, str | None, str | None, str | None]]:
    with app.db.session() as s:
        case = repo.load_case(s, number)
        assert case is not None
        return [(e.action, e.actor, e.old, e.new, e.detail) for e in case.events]


def load(app: App, number: str):
    with app.db.session() as s:
        case = repo.load_case(s, number)
        assert case is not None
        s.expunge_all()
        return case


def open_case(app: App, sink: Any, subject: str = "交换机故障", body: str = "三楼一台交换机的一个端口偶尔掉线，其他都正常。",
              sender: str = CUSTOMER, **kw: Any) -> tuple[str, EmailMessage]:
    """A customer mail opens a case; returns (case number, engineer notification)."""
    from helpers import mail

    before = len(sink.received)
    res = app.pipeline.ingest(Inbound(mail(subject=subject, body=body, sender=sender, to=SERVICE, **kw), SOURCE))
    assert res.outcome == "new", res
    send_out(app)
    new = [m.message for m in sink.received[before:]]
    notes = [m for m in new if res.case_number in str(m["Subject"]) and m["Reply-To"] is not None]
    assert len(notes) == 1, [str(m["Subject"]) for m in new]
    return res.case_number, notes[0]


def signed_reply_to(note: EmailMessage) -> str:
    return note["Reply-To"].addresses[0].addr_spec


def staff_mail(sender: str, body: str, *, to: str, subject: str = "Re: case", in_reply_to: str | None = None,
               headers: dict[str, str] | None = None) -> bytes:
    from helpers import mail

    return mail(subject=subject, body=body, sender=sender, to=to, in_reply_to=in_reply_to,
                references=in_reply_to, headers=headers)
