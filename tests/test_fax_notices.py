"""Scheduled notices to a fax-only customer go through the e-mail-to-fax
gateway like the acknowledgement: a PDF letter to ``[fax] reply_gateway``,
never mail to the gateway's own From, and loop protection still applies."""

from __future__ import annotations

import json

from sla_support import ENGINEER, SUPERVISOR, Clock, case_of, deliver, make_app, sh, sweep_and_send
from sqlalchemy import select

from casegate.daemon.inbound import Inbound
from casegate.daemon.notify.fax_route import find_cjk_font
from casegate.daemon.inbound import Source
from casegate.storage.models import OutboxMessage
from fax_support import GATEWAY, FakeOcr
from faxgen import gateway_mail

FAXBOX = Source("faxbox", "fax")
OUTAGE = "系统宕机，核心业务全部中断，请速派工程师"
FAKE_TIFF = b"II*\x00" + b"\x00" * 64
GATEWAY_ADDRESS = "862087681011@fax.gateway.example"


def fax_case(tmp_path, smtp_sink, **fax):  # type: ignore[no-untyped-def]
    clock = Clock(sh(2026, 10, 9, 20, 0))
    app = make_app(tmp_path, smtp_sink, clock, fax={"reply_gateway": GATEWAY, **fax})
    app.fax.ocr = FakeOcr(OUTAGE)
    res = app.pipeline.ingest(Inbound(gateway_mail("+86 20 8768 1011", FAKE_TIFF, pages=1), FAXBOX))
    assert res.outcome == "new" and res.case_number
    return app, clock, res.case_number


def to_of(msg) -> str:  # type: ignore[no-untyped-def]
    return ",".join(a.addr_spec.lower() for a in msg["To"].addresses)


def test_fax_only_p1_case_gets_its_hourly_status_update_through_the_gateway(tmp_path, smtp_sink) -> None:
    app, clock, number = fax_case(tmp_path, smtp_sink)
    case = case_of(app, number)
    assert case.priority == "P1" and case.customer.contact("email") is None
    first = deliver(app, smtp_sink)
    assert sorted(to_of(m) for m in first) == sorted([GATEWAY_ADDRESS, ENGINEER])  # ack + staff notice

    assert [to_of(m) for m in sweep_and_send(app, smtp_sink, clock, sh(2026, 10, 9, 20, 59))] == [ENGINEER]
    arrived = sweep_and_send(app, smtp_sink, clock, sh(2026, 10, 9, 21, 0))
    to_customer = [m for m in arrived if to_of(m) != SUPERVISOR]
    assert [to_of(m) for m in to_customer] == [GATEWAY_ADDRESS]  # not fax@fax.example.com, the gateway's From
    update = to_customer[0]
    assert number in str(update["Subject"]) and "进展" in str(update["Subject"])
    assert smtp_sink.received[-len(arrived):][arrived.index(update)].rcpt_tos == (GATEWAY_ADDRESS,)
    if find_cjk_font() is not None:
        pdfs = [p for p in update.iter_attachments() if p.get_content_type() == "application/pdf"]
        assert len(pdfs) == 1 and pdfs[0].get_content().startswith(b"%PDF")
    with app.db.session() as s:
        kinds = [(r.kind, r.rcpt_to) for r in s.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars()]
    assert ("status-update", GATEWAY_ADDRESS) in kinds

    # The next hour: the cadence goes on through the gateway.
    again = sweep_and_send(app, smtp_sink, clock, sh(2026, 10, 9, 22, 0))
    assert GATEWAY_ADDRESS in [to_of(m) for m in again]


def test_loop_protection_applies_to_the_gateway_address(tmp_path, smtp_sink) -> None:
    app, clock, number = fax_case(tmp_path, smtp_sink)
    deliver(app, smtp_sink)
    seen: list[str] = []

    guard = app.notifier.refusal

    def refuse(session, address, now, *rest):  # type: ignore[no-untyped-def]
        seen.append(address)
        return "test: refused" if address == GATEWAY_ADDRESS else guard(session, address, now, *rest)

    app.notifier.refusal = refuse
    arrived = sweep_and_send(app, smtp_sink, clock, sh(2026, 10, 9, 21, 0))
    assert GATEWAY_ADDRESS not in [to_of(m) for m in arrived]
    assert GATEWAY_ADDRESS in seen
    case = case_of(app, number)
    (detail,) = [json.loads(e.detail) for e in case.events if e.action == "status-update-sent-suppressed"]
    assert detail["reason"] == "test: refused"


def test_no_gateway_configured_suppresses_with_the_reason(tmp_path, smtp_sink) -> None:
    app, clock, number = fax_case(tmp_path, smtp_sink, reply_gateway="")
    deliver(app, smtp_sink)
    arrived = sweep_and_send(app, smtp_sink, clock, sh(2026, 10, 9, 21, 0))
    assert all("fax.example.com" not in to_of(m) for m in arrived)  # never the gateway's own From
    case = case_of(app, number)
    (detail,) = [json.loads(e.detail) for e in case.events if e.action == "status-update-sent-suppressed"]
    assert "reply_gateway" in detail["reason"]


def test_fax_customer_with_email_gets_the_update_by_email(tmp_path, smtp_sink) -> None:
    from casegate.storage import repository as repo

    clock = Clock(sh(2026, 10, 9, 20, 0))
    app = make_app(tmp_path, smtp_sink, clock, fax={"reply_gateway": GATEWAY})
    app.fax.ocr = FakeOcr(OUTAGE)
    with app.db.transaction() as s:
        repo.create_customer(s, clock(), name="王工", contacts=[("fax", "+862087681011"), ("email", "wang@acme.cn")])
    app.pipeline.ingest(Inbound(gateway_mail("020-87681011", FAKE_TIFF, pages=1), FAXBOX))
    deliver(app, smtp_sink)
    arrived = sweep_and_send(app, smtp_sink, clock, sh(2026, 10, 9, 21, 0))
    (update,) = [m for m in arrived if to_of(m) == "wang@acme.cn"]
    assert not list(update.iter_attachments())


def test_notice_wording_matches_the_channel(tmp_path) -> None:
    """By fax the customer is asked to fax back; by e-mail, to reply."""
    from casegate.daemon.notify.compose import Renderer

    class Case:
        number, priority, status, subject = "SR-2026-000001", "P1", "open", "宕机"

    r = Renderer()
    base = dict(case=Case(), recipient_name="王", subject="宕机", status_label="处理中", progress="", progress_at="",
                priority_label="紧急",
                next_step="现场处理", next_update="", eta="", service_name="客服")
    by_fax = r.render("status_update", "zh", by_fax=True, **base).text
    by_mail = r.render("status_update", "zh", by_fax=False, **base).text
    assert "发送传真" in by_fax and "回复本邮件" not in by_fax
    assert "回复本邮件" in by_mail


def test_engineer_reply_to_a_fax_case_goes_through_the_gateway(tmp_path, smtp_sink) -> None:
    """The engineer's text reaches a fax-only customer as a fax, never the gateway's From."""
    from sla_support import staff_reply

    app, clock, number = fax_case(tmp_path, smtp_sink)
    deliver(app, smtp_sink)
    clock.now = sh(2026, 10, 9, 20, 10)
    staff_reply(app, number, "您好，工程师已出发，预计 30 分钟到达现场。")
    arrived = deliver(app, smtp_sink)
    to_customer = [m for m in arrived if to_of(m) not in (ENGINEER, SUPERVISOR)]
    assert [to_of(m) for m in to_customer] == [GATEWAY_ADDRESS]
    if find_cjk_font() is not None:
        assert any(p.get_content_type() == "application/pdf" for p in to_customer[0].iter_attachments())
    case = case_of(app, number)
    assert case.first_response_at is not None
    assert ("public-reply", GATEWAY_ADDRESS) in [(e.action, e.new) for e in case.events]
