"""Faxes through the pipeline: recognition, OCR text for the rules, the fax
customer, threading by a case number written on the fax, the "not read"
flag, and answers through the e-mail-to-fax gateway (delivered for real)."""

from __future__ import annotations

import email
import email.policy
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from casegate.daemon.inbound import Inbound
from casegate.daemon.notify.fax_route import customer_route
from casegate.daemon.runtime.app import App
from casegate.daemon.config import ConfigError
from casegate.daemon.fax.config import load_fax_config
from casegate.daemon.notify.fax_route import render_letter_pdf
from casegate.daemon.inbound import Source
from casegate.daemon.sources.status import SourceStatus
from casegate.daemon.sources.imap import ImapSource
from casegate.storage import repository as repo
from casegate.storage.models import Case, Customer, OutboxMessage
from fax_support import FakeOcr, fax_app, require_font, require_ocr
from faxgen import gateway_mail, render_fax_pdf, render_fax_tiff
from helpers import make_config, mail, sink_outgoing

FAXBOX = Source("faxbox", "fax")
OUTAGE = "系统宕机，请速派工程师"
FAKE_TIFF = b"II*\x00" + b"\x00" * 64  # enough for recognition; the fake OCR reads it


def load(app: App, number: str) -> Case:
    with app.db.session() as s:
        case = repo.load_case(s, number)
        assert case is not None
        case.customer and case.customer.contacts  # load while the session is open
        return case


def events(case: Case, action: str) -> list[dict]:
    return [json.loads(e.detail) if e.detail else {} for e in case.events if e.action == action]


def outbox(app: App) -> list[OutboxMessage]:
    with app.db.session() as s:
        return list(s.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars())


# ---------------------------------------------------------------- config


def test_fax_section_is_validated_with_file_and_key(tmp_path: Path) -> None:
    cfg = load_fax_config(make_config(tmp_path))
    assert cfg.default_region == "CN" and cfg.reply_format == "pdf" and cfg.default_priority == "P2"
    for section, key in (
        ({"default_priorty": "P2"}, "fax.default_priorty"),
        ({"default_priority": "P9"}, "fax.default_priority"),
        ({"reply_format": "tiff"}, "fax.reply_format"),
        ({"ocr_timeout": "soon"}, "fax.ocr_timeout"),
        ({"default_region": "XX"}, "fax.default_region"),
        ({"reply_gateway": "{phone}@gw.example"}, "fax.reply_gateway"),
        ({"patterns": [{"name": "x", "subjct": "Fax"}]}, "fax.patterns[0]"),
    ):
        with pytest.raises(ConfigError, match=key.replace("[", r"\[")):
            load_fax_config(make_config(tmp_path, fax=section))
    with pytest.raises(ConfigError, match="fax.default_priority"):
        fax_app(tmp_path, fax={"default_priority": "urgent"})  # the App refuses to start


def test_gateway_address_template(tmp_path: Path) -> None:
    cfg = load_fax_config(make_config(tmp_path, fax={"reply_gateway": "{national}@gw.example"}))
    assert cfg.gateway_address("+862087681011") == "02087681011@gw.example"
    cfg = load_fax_config(make_config(tmp_path, fax={"reply_gateway": "{number}@gw.example"}))
    assert cfg.gateway_address("+862087681011") == "862087681011@gw.example"


def test_configured_pattern_recognises_a_custom_gateway(tmp_path: Path) -> None:
    ocr = FakeOcr(OUTAGE)
    app = fax_app(tmp_path, ocr, fax={"gateway_senders": ["@example.com"], "patterns": [
        {"name": "acme-box", "subject": r"^ACME-FAX (?P<number>[\d-]+)$"}]})
    raw = gateway_mail("020-87681011", FAKE_TIFF, "generic", pages=1)
    raw = raw.replace(b"Subject: Fax from 020-87681011 (1 pages)", b"Subject: ACME-FAX 020-87681011")
    res = app.pipeline.ingest(Inbound(raw, Source("mail", "imap")))  # an ordinary mailbox
    case = load(app, res.case_number)
    assert case.customer.contact("fax") == "+862087681011"
    assert events(case, "fax-received")[0]["gateway"] == "acme-box"


# ---------------------------------------------------------------- intake logic (fake OCR)


def test_fax_text_goes_to_the_rules_and_is_stored(tmp_path: Path) -> None:
    ocr = FakeOcr(OUTAGE)
    app = fax_app(tmp_path, ocr)
    res = app.pipeline.ingest(Inbound(gateway_mail("+86 20 8768 1011", FAKE_TIFF, pages=1), FAXBOX))
    assert res.outcome == "new"
    case = load(app, res.case_number)
    assert case.priority == "P1"
    msg = case.messages[0]
    assert OUTAGE in msg.text and "Sender:" in msg.text  # OCR text plus the mail's own text
    assert [a.filename for a in msg.attachments] == ["fax000000123.tif"]
    assert ocr.calls == [("image/tiff", len(FAKE_TIFF))]
    classified = events(case, "classified")[0]
    assert "fax" in classified["tags"]  # source_kind "fax" reached the rules


def test_unknown_number_creates_a_fax_customer_named_after_the_station(tmp_path: Path) -> None:
    app = fax_app(tmp_path, FakeOcr("请检查打印机"))
    res = app.pipeline.ingest(Inbound(gateway_mail("ACME GZ +86 20 8768 1011", FAKE_TIFF, pages=1), FAXBOX))
    case = load(app, res.case_number)
    assert case.customer.name == "ACME GZ +86 20 8768 1011"
    assert [(c.kind, c.value) for c in case.customer.contacts] == [("fax", "+862087681011")]
    # The gateway's own From never becomes a customer.
    with app.db.session() as s:
        assert repo.find_customer(s, "email", "fax@fax.example.com") is None


def test_known_fax_number_finds_its_customer(tmp_path: Path) -> None:
    app = fax_app(tmp_path, FakeOcr("请检查打印机"))
    with app.db.transaction() as s:
        cust = repo.create_customer(s, app.clock(), name="王工", company="ACME",
                                    contacts=[("fax", "+862087681011")])
        s.flush()
        cust_id = cust.id
    res = app.pipeline.ingest(Inbound(gateway_mail("020-8768 1011", FAKE_TIFF, pages=1), FAXBOX))
    case = load(app, res.case_number)
    assert case.customer_id == cust_id
    with app.db.session() as s:
        assert len(list(s.execute(select(Customer)).scalars())) == 1


def test_phone_contact_also_matches(tmp_path: Path) -> None:
    app = fax_app(tmp_path, FakeOcr("请检查打印机"))
    with app.db.transaction() as s:
        cust = repo.create_customer(s, app.clock(), name="李工", contacts=[("phone", "+862087681011")])
        s.flush()
        cust_id = cust.id
    res = app.pipeline.ingest(Inbound(gateway_mail("02087681011", FAKE_TIFF, pages=1), FAXBOX))
    assert load(app, res.case_number).customer_id == cust_id


def test_unreadable_fax_is_still_a_case_flagged_not_read(tmp_path: Path) -> None:
    app = fax_app(tmp_path, FakeOcr(error="tesseract not available ('tesseract' not found or not working)"))
    res = app.pipeline.ingest(Inbound(gateway_mail("020-87681011", FAKE_TIFF, pages=1), FAXBOX))
    assert res.outcome == "new"
    case = load(app, res.case_number)
    assert case.priority == "P2"  # [fax] default_priority, above the P3 default
    assert "tesseract not available" in events(case, "fax-not-read")[0]["reason"]
    assert "fax-not-read" in events(case, "classified")[0]["tags"]
    assert case.messages[0].attachments[0].size == len(FAKE_TIFF)


def test_unread_fax_keeps_a_more_severe_rule_priority(tmp_path: Path) -> None:
    app = fax_app(tmp_path, FakeOcr(error="OCR time limit reached"))
    msg = email.message_from_bytes(gateway_mail("020-87681011", FAKE_TIFF, pages=1), policy=email.policy.default)
    msg.replace_header("Subject", "系统宕机")
    res = app.pipeline.ingest(Inbound(msg.as_bytes(), FAXBOX))
    assert load(app, res.case_number).priority == "P1"


def test_fax_without_document_is_flagged(tmp_path: Path) -> None:
    app = fax_app(tmp_path, FakeOcr(OUTAGE))
    res = app.pipeline.ingest(Inbound(mail(subject="Fax from 020-87681011 (1 pages)", sender="fax@gw.example"), FAXBOX))
    case = load(app, res.case_number)
    assert "no fax document" in events(case, "fax-not-read")[0]["reason"]


def test_ordinary_mail_is_not_a_fax(tmp_path: Path) -> None:
    ocr = FakeOcr(OUTAGE)
    app = fax_app(tmp_path, ocr)
    res = app.pipeline.ingest(Inbound(mail(subject="打印机卡纸", body="请帮忙看看。"), Source("mail", "imap")))
    case = load(app, res.case_number)
    assert ocr.calls == [] and not events(case, "fax-received")
    assert case.customer.contact("email") == "zhangsan@customer.cn"


def test_case_number_written_on_a_fax_threads_to_that_case(tmp_path: Path) -> None:
    app = fax_app(tmp_path, FakeOcr(OUTAGE))
    first = app.pipeline.ingest(Inbound(gateway_mail("020-87681011", FAKE_TIFF, pages=1), FAXBOX))
    app.fax.ocr = FakeOcr(f"关于案例 {first.case_number.replace('-', ' - ', 1)}：工程师已到，谢谢")
    second = app.pipeline.ingest(Inbound(gateway_mail("020-87681011", FAKE_TIFF + b"2", pages=1), FAXBOX))
    assert second.outcome == "reply" and second.case_number == first.case_number
    case = load(app, first.case_number)
    assert len([m for m in case.messages if m.direction == "in"]) == 2
    assert [e.new for e in case.events if e.action == "message"] == ["fax-text"]


# ---------------------------------------------------------------- answers


def test_fax_only_customer_is_answered_through_the_gateway(tmp_path: Path) -> None:
    app = fax_app(tmp_path, FakeOcr(OUTAGE))
    res = app.pipeline.ingest(Inbound(gateway_mail("+86 20 8768 1011", FAKE_TIFF, pages=1), FAXBOX))
    rows = outbox(app)
    assert [r.rcpt_to for r in rows] == ["862087681011@fax.gateway.example"]
    msg = email.message_from_bytes(rows[0].raw, policy=email.policy.default)
    assert "fax@fax.example.com" not in str(msg["To"])
    assert res.case_number in str(msg["Subject"])
    if require_font_quietly():
        pdfs = [p for p in msg.iter_attachments() if p.get_content_type() == "application/pdf"]
        assert len(pdfs) == 1 and pdfs[0].get_content().startswith(b"%PDF")
    assert "传真" in msg.get_body(("plain",)).get_content()


def require_font_quietly() -> bool:
    from casegate.daemon.notify.fax_route import find_cjk_font

    return find_cjk_font() is not None


def test_customer_with_email_gets_email_even_for_a_fax(tmp_path: Path) -> None:
    app = fax_app(tmp_path, FakeOcr(OUTAGE))
    with app.db.transaction() as s:
        repo.create_customer(s, app.clock(), name="王工",
                             contacts=[("fax", "+862087681011"), ("email", "wang@acme.cn")])
    app.pipeline.ingest(Inbound(gateway_mail("020-87681011", FAKE_TIFF, pages=1), FAXBOX))
    rows = outbox(app)
    assert [r.rcpt_to for r in rows] == ["wang@acme.cn"]
    msg = email.message_from_bytes(rows[0].raw, policy=email.policy.default)
    assert not list(msg.iter_attachments())


def test_no_ack_without_number_or_without_gateway(tmp_path: Path) -> None:
    app = fax_app(tmp_path, FakeOcr(OUTAGE))
    res = app.pipeline.ingest(Inbound(gateway_mail("<UNSPECIFIED>", FAKE_TIFF, pages=1, caller_id=""), FAXBOX))
    case = load(app, res.case_number)
    assert case.customer is None
    assert "usable sender number" in events(case, "ack-suppressed")[0]["reason"]
    assert outbox(app) == []

    app2 = fax_app(tmp_path / "b", FakeOcr(OUTAGE), fax={"reply_gateway": ""})
    res2 = app2.pipeline.ingest(Inbound(gateway_mail("020-87681011", FAKE_TIFF, pages=1), FAXBOX))
    assert "reply_gateway" in events(load(app2, res2.case_number), "ack-suppressed")[0]["reason"]
    assert outbox(app2) == []


def test_text_reply_format(tmp_path: Path) -> None:
    app = fax_app(tmp_path, FakeOcr(OUTAGE), fax={"reply_format": "text"})
    app.pipeline.ingest(Inbound(gateway_mail("020-87681011", FAKE_TIFF, pages=1), FAXBOX))
    msg = email.message_from_bytes(outbox(app)[0].raw, policy=email.policy.default)
    assert not list(msg.iter_attachments())
    assert msg.get_content_type() == "text/plain"


def test_letter_pdf_is_one_page_with_chinese(tmp_path: Path) -> None:
    require_font()
    from pypdf import PdfReader

    pdf = render_letter_pdf("[SR-2026-000001] 我们已收到您的传真", "您好：\n" + "很长的一行文字。" * 400)
    assert pdf is not None
    assert len(PdfReader(io.BytesIO(pdf)).pages) == 1


def test_gateway_ack_arrives_at_the_smtp_sink(tmp_path: Path, smtp_sink) -> None:
    app = fax_app(tmp_path, FakeOcr(OUTAGE), outgoing=sink_outgoing(smtp_sink))
    res = app.pipeline.ingest(Inbound(gateway_mail("+86 20 8768 1011", FAKE_TIFF, pages=1), FAXBOX))
    app.outbox.send_due()
    (msg,) = smtp_sink.wait_for(1)
    assert smtp_sink.received[0].rcpt_tos == ("862087681011@fax.gateway.example",)
    assert res.case_number in str(msg["Subject"])
    if require_font_quietly():
        assert [p.get_content_type() for p in msg.iter_attachments()] == ["application/pdf"]


# ---------------------------------------------------------------- real OCR


@pytest.mark.ocr
@pytest.mark.parametrize("render", [render_fax_tiff, render_fax_pdf], ids=["tiff", "pdf"])
def test_scanned_fax_becomes_a_p1_case(tmp_path: Path, render) -> None:
    require_ocr()
    app = fax_app(tmp_path)
    doc = render([[OUTAGE], ["Customer: ACME 20-8768-1011"]])
    res = app.pipeline.ingest(Inbound(gateway_mail("020-87681011", doc, "efax" if render is render_fax_pdf else "hylafax"), FAXBOX))
    case = load(app, res.case_number)
    assert case.priority == "P1", case.messages[0].text
    assert "宕机" in case.messages[0].text and "ACME" in case.messages[0].text
    assert not events(case, "fax-not-read")


@pytest.mark.ocr
def test_corrupt_tiff_in_mail_is_a_case_flagged_not_read(tmp_path: Path) -> None:
    require_ocr()
    app = fax_app(tmp_path)
    broken = render_fax_tiff([[OUTAGE]])[:300]
    res = app.pipeline.ingest(Inbound(gateway_mail("020-87681011", broken, pages=1), FAXBOX))
    case = load(app, res.case_number)
    assert case.priority == "P2"
    assert events(case, "fax-not-read")[0]["reason"].startswith("fax000000123.tif:")
    assert case.messages[0].attachments[0].size == 300


@pytest.mark.ocr
def test_imap_fax_mailbox(tmp_path: Path, dovecot_user, monkeypatch) -> None:
    require_ocr()
    monkeypatch.setenv("CG_TEST_FAX_PASSWORD", dovecot_user.password)
    src_cfg = {
        "name": "faxbox", "kind": "imap", "host": dovecot_user.host, "port": dovecot_user.port, "tls": "none",
        "user": dovecot_user.name, "password_env": "CG_TEST_FAX_PASSWORD", "fax": True,
    }
    app = fax_app(tmp_path, sources=[src_cfg])
    with app.db.transaction() as s:
        repo.create_customer(s, app.clock(), name="ACME", contacts=[("fax", "+862087681011")])
    dovecot_user.append("INBOX", gateway_mail("+86 20 8768 1011", render_fax_tiff([[OUTAGE]]), "hylafax"))
    cfg = app.config.source("faxbox")
    src = ImapSource(cfg, app.pipeline, SourceStatus(app.db, "faxbox", "imap", app.clock))
    src.client = src.connect()
    try:
        assert src.drain() == 1
    finally:
        src.release()
    assert dovecot_user.count("INBOX") == 0 and dovecot_user.count("Processed") == 1
    with app.db.session() as s:
        (case,) = list(s.execute(select(Case)).scalars())
        assert (case.priority, case.source_kind, case.customer.name) == ("P1", "fax", "ACME")
    assert [r.rcpt_to for r in outbox(app)] == ["862087681011@fax.gateway.example"]


def test_fax_like_subject_without_document_in_ordinary_mail_is_mail(tmp_path: Path) -> None:
    app = fax_app(tmp_path, FakeOcr(OUTAGE))
    res = app.pipeline.ingest(Inbound(mail(subject="Fax from Beijing office", body="请回电。"), Source("mail", "imap")))
    case = load(app, res.case_number)
    assert case.customer.contact("email") == "zhangsan@customer.cn"
    assert [r.rcpt_to for r in outbox(app)] == ["zhangsan@customer.cn"]


def test_customer_route_for_status_updates(tmp_path: Path) -> None:
    app = fax_app(tmp_path)
    with app.db.transaction() as s:
        fax_only = repo.create_customer(s, app.clock(), name="ACME", contacts=[("fax", "+862087681011")])
        both = repo.create_customer(s, app.clock(), name="B", contacts=[("fax", "+862087681012"),
                                                                      ("email", "b@acme.cn")])
        nothing = repo.create_customer(s, app.clock(), name="C")
        s.flush()
        assert customer_route(fax_only, app.fax.cfg).address == "862087681011@fax.gateway.example"
        assert customer_route(both, app.fax.cfg).address == "b@acme.cn"
        assert customer_route(nothing, app.fax.cfg) is None


def test_case_number_on_another_customers_fax_does_not_join_that_case(tmp_path: Path) -> None:
    """An OCR'd case number only threads a fax from the case's own customer."""
    app = fax_app(tmp_path, FakeOcr(OUTAGE))
    first = app.pipeline.ingest(Inbound(gateway_mail("020-87681011", FAKE_TIFF, pages=1), FAXBOX))
    app.fax.ocr = FakeOcr(f"参考案例 {first.case_number}：我们的打印机也坏了")
    other = app.pipeline.ingest(Inbound(gateway_mail("010-66778899", FAKE_TIFF + b"3", pages=1), FAXBOX))
    assert other.outcome == "new" and other.case_number != first.case_number
    assert len([m for m in load(app, first.case_number).messages if m.direction == "in"]) == 1
