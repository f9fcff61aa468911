"""Who is writing: every message gets a sender role towards its case, and each
role may do only what the permission table (daemon/directory/roles.py) allows.

Each test is a finding of issue 11, with its positive control: the real
customer can still do the thing an outsider no longer can.
"""

from __future__ import annotations

import json
from email.message import EmailMessage

import pytest

from casegate.daemon.inbound import Inbound
from casegate.storage import repository as repo
from casegate.storage.models import Message
from helpers import mail
from workflow_support import (
    CUSTOMER,
    ENGINEER,
    SERVICE,
    SOURCE,
    FakeClock,
    body_of,
    case_events,
    load,
    mails_to,
    make_app,
    open_case,
    send_out,
    signed_reply_to,
    staff_mail,
)

MALLORY = "mallory@evil.example"


@pytest.fixture
def app(tmp_path, smtp_sink):
    application = make_app(tmp_path, smtp_sink, clock=FakeClock())
    yield application
    application.close()


def write(app, subject: str, body: str, sender: str, **kw) -> str:
    res = app.pipeline.ingest(Inbound(mail(subject=subject, body=body, sender=sender, to=SERVICE, **kw), SOURCE))
    send_out(app)
    return res.outcome


def roles(app, number: str) -> list[tuple[str, str]]:
    with app.db.session() as s:
        case = repo.load_case(s, number)
        return [(m.from_addr, m.role) for m in case.messages if m.direction != "out"]


def engineer_says(app, note: EmailMessage, body: str) -> None:
    app.pipeline.ingest(Inbound(staff_mail(ENGINEER, body, to=signed_reply_to(note), subject="Re: x",
                                           in_reply_to=note["Message-ID"].strip()), SOURCE))
    send_out(app)


# ---------------------------------------------------------------- 1. history


def test_history_goes_only_to_the_customer(app, smtp_sink) -> None:
    number, _note = open_case(app, smtp_sink)
    smtp_sink.clear()
    assert write(app, f"Re: [{number}]", "查询进度", MALLORY) == "reply"
    assert not mails_to(smtp_sink, MALLORY), "an outsider got the case history"
    assert (MALLORY, "third-party") in roles(app, number)
    assert any(e[0] == "third-party-mail" for e in case_events(app, number))
    # Positive control: the customer asks and gets it.
    write(app, f"Re: [{number}]", "查询进度", f"张三 <{CUSTOMER}>")
    (history,) = mails_to(smtp_sink, CUSTOMER)
    assert number in str(history["Subject"])


def test_an_outsider_does_not_reopen_a_closed_case(app, smtp_sink) -> None:
    number, note = open_case(app, smtp_sink)
    engineer_says(app, note, "#status closed")
    assert load(app, number).status == "closed"
    write(app, f"Re: [{number}] 又坏了", "还是不行", MALLORY)
    assert load(app, number).status == "closed"


# ---------------------------------------------------------------- 2. acting on a case


def test_an_outsiders_confirmation_and_score_change_nothing(app, smtp_sink) -> None:
    number, note = open_case(app, smtp_sink)
    engineer_says(app, note, "#status resolved\n已更换电源。")
    smtp_sink.clear()
    write(app, f"Re: [{number}]", "确认已解决，可以关闭。5分", MALLORY)
    case = load(app, number)
    assert case.status == "resolved"
    assert not any(e[0] in ("customer-confirmed", "survey-answered") for e in case_events(app, number))
    assert not mails_to(smtp_sink, CUSTOMER), "the real customer was sent a survey because of an outsider"
    # Positive control.
    write(app, f"Re: [{number}]", "确认已解决，可以关闭。", f"张三 <{CUSTOMER}>")
    assert load(app, number).status == "closed"


def test_an_outsiders_text_reaches_the_engineer_as_third_party_mail(app, smtp_sink) -> None:
    number, _note = open_case(app, smtp_sink)
    smtp_sink.clear()
    write(app, f"Re: [{number}]", "请把服务器密码发给我", MALLORY)
    (notice,) = mails_to(smtp_sink, ENGINEER)
    text = body_of(notice)
    assert "NOT the customer" in text and MALLORY in text
    assert "The customer replied" not in text


def test_a_colleague_at_the_customers_domain_is_the_customer(app, smtp_sink) -> None:
    number, _note = open_case(app, smtp_sink)
    write(app, f"Re: [{number}]", "补充：机房温度正常。", "李四 <lisi@customer.cn>")
    assert ("lisi@customer.cn", "customer") in roles(app, number)


# ---------------------------------------------------------------- 3. limits


def test_staff_notices_are_not_silenced_by_the_customers_hourly_limit(tmp_path, smtp_sink) -> None:
    app = make_app(tmp_path, smtp_sink, clock=FakeClock(),
                   service={"address": SERVICE, "max_auto_mails_per_hour": 10, "max_new_case_notices_per_sender": 50})
    try:
        for i in range(12):
            write(app, f"垃圾 {i}", "广告", "junk <junk@spam.example>")
        # A real P1 from someone else still reaches an engineer.
        smtp_sink.clear()
        number, note = open_case(app, smtp_sink, subject="核心系统宕机")
        assert note is not None
    finally:
        app.close()


def test_a_flood_from_one_sender_becomes_one_digest(tmp_path, smtp_sink) -> None:
    app = make_app(tmp_path, smtp_sink, clock=FakeClock(),
                   service={"address": SERVICE, "max_auto_mails_per_hour": 100, "max_new_case_notices_per_sender": 3})
    try:
        for i in range(6):
            write(app, f"问题 {i}", "打印机卡纸", "flood <flood@customer2.cn>")
        staff = [m for m in mails_to(smtp_sink, ENGINEER) + mails_to(smtp_sink, "li.na@desk.example.cn")]
        subjects = [str(m["Subject"]) for m in staff]
        assert len([s for s in subjects if "新建了大量案例" in s or "Many new cases" in s]) == 1, subjects
        assert len(staff) == 4  # three notices, then the one digest
    finally:
        app.close()


def test_an_engineers_reply_is_not_dropped_by_the_automatic_limit(tmp_path, smtp_sink) -> None:
    app = make_app(tmp_path, smtp_sink, clock=FakeClock(),
                   service={"address": SERVICE, "max_auto_mails_per_hour": 2})
    try:
        number, note = open_case(app, smtp_sink)
        write(app, f"Re: [{number}]", "查询进度", f"张三 <{CUSTOMER}>")  # ack + history: the limit is used up
        smtp_sink.clear()
        engineer_says(app, note, "我们已更换电源模块，请确认。")
        assert [m for m in mails_to(smtp_sink, CUSTOMER) if "电源模块" in body_of(m)]
    finally:
        app.close()


def test_an_undeliverable_reply_is_reported_to_the_engineer(app, smtp_sink) -> None:
    number, note = open_case(app, smtp_sink, sender="系统 <noreply@customer.cn>")
    smtp_sink.clear()
    engineer_says(app, note, "已处理，请确认。")
    (answer,) = mails_to(smtp_sink, ENGINEER)
    assert "NOT sent" in body_of(answer) or "未能发给客户" in body_of(answer)


def test_a_batch_counts_each_queued_mail_once(tmp_path, smtp_sink) -> None:
    app = make_app(tmp_path, smtp_sink, clock=FakeClock(),
                   service={"address": SERVICE, "max_auto_mails_per_hour": 4, "max_new_case_notices_per_sender": 50})
    try:
        results = app.pipeline.ingest_batch([
            Inbound(mail(subject=f"问题 {i}", sender="王五 <wangwu@customer3.cn>"), SOURCE) for i in range(6)])
        assert [r.outcome for r in results] == ["new"] * 6
        send_out(app)
        assert len(mails_to(smtp_sink, "wangwu@customer3.cn")) == 4  # the limit, not half of it
    finally:
        app.close()


# ---------------------------------------------------------------- 4. "do not auto-reply" is not "ignore"


@pytest.mark.parametrize("subject", ["休假系统无法登录", "外出办公VPN无法连接", "Automatic reply rules broken"])
def test_subjects_that_look_like_out_of_office_are_cases(app, smtp_sink, subject) -> None:
    assert write(app, subject, "请尽快处理。", f"张三 <{CUSTOMER}>") == "new"


def test_a_real_out_of_office_reply_is_not_a_case(app, smtp_sink) -> None:
    number, _note = open_case(app, smtp_sink)
    res = app.pipeline.ingest(Inbound(mail(subject=f"自动回复: [{number}] 交换机故障", body="我休假至周一。",
                                           sender=f"张三 <{CUSTOMER}>", in_reply_to="<x@desk.example.cn>",
                                           headers={"Auto-Submitted": "auto-replied"}), SOURCE))
    assert (res.outcome, res.reason) == ("ignored", "auto-reply")


def test_a_monitoring_alert_from_a_known_customer_opens_a_quiet_case(app, smtp_sink) -> None:
    open_case(app, smtp_sink, sender="运维 <zabbix@customer.cn>", subject="first contact")
    smtp_sink.clear()
    res = app.pipeline.ingest(Inbound(mail(subject="PROBLEM: core-sw01 is unreachable", body="Severity: Disaster",
                                           sender="Zabbix <zabbix@customer.cn>",
                                           headers={"Auto-Submitted": "auto-generated"}), SOURCE))
    send_out(app)
    assert res.outcome == "new"
    assert not mails_to(smtp_sink, "zabbix@customer.cn"), "an automatic alert was acknowledged"
    assert mails_to(smtp_sink, ENGINEER) or mails_to(smtp_sink, "li.na@desk.example.cn")
    # An unknown system's alert is kept, listed, but opens nothing.
    other = app.pipeline.ingest(Inbound(mail(subject="PROBLEM: x", sender="nagios@unknown.example",
                                             headers={"Auto-Submitted": "auto-generated"}), SOURCE))
    assert (other.outcome, other.reason) == ("ignored", "monitoring")


def test_list_mail_from_a_known_customer_opens_a_case(app, smtp_sink) -> None:
    open_case(app, smtp_sink)
    res = app.pipeline.ingest(Inbound(mail(subject="打印机又不能用了", sender=f"张三 <{CUSTOMER}>",
                                           headers={"List-Id": "<it-help.customer.cn>"}), SOURCE))
    assert res.outcome == "new"


# ---------------------------------------------------------------- 5. bounces and abuse reports


ARF = b"""From: abuse@isp.example
To: service@desk.example.cn
Subject: Abuse report
Message-ID: <arf1@isp.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="b1"

--b1
Content-Type: text/plain

This is an email abuse report.
--b1
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: SomeGenerator/1.0
Version: 1

--b1
Content-Type: message/rfc822

From: service@desk.example.cn
Subject: [SR-2026-000001] ack

hello
--b1--
"""


def dsn(failed: str) -> bytes:
    return f"""From: Mail Delivery System <MAILER-DAEMON@mx.customer.cn>
To: service@desk.example.cn
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn-{failed}@mx.customer.cn>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="d1"

--d1
Content-Type: text/plain

I'm sorry to have to inform you that your message could not be delivered.
--d1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.customer.cn

Final-Recipient: rfc822; {failed}
Original-Recipient: rfc822; {failed}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <{failed}>: Recipient address rejected: User unknown

--d1--
""".encode()


def test_an_abuse_report_is_never_answered(app, smtp_sink) -> None:
    res = app.pipeline.ingest(Inbound(ARF, SOURCE))
    send_out(app)
    assert (res.outcome, res.reason) == ("ignored", "abuse-report")
    assert not mails_to(smtp_sink, "abuse@isp.example")


def test_a_hard_bounce_marks_the_customers_address_failing(app, smtp_sink) -> None:
    number, _note = open_case(app, smtp_sink)
    smtp_sink.clear()
    res = app.pipeline.ingest(Inbound(dsn(CUSTOMER), SOURCE))
    send_out(app)
    assert (res.outcome, res.reason) == ("ignored", "bounce")
    assert not smtp_sink.received, "a bounce was answered"
    assert any(e[0] == "address-failing" and e[3] == CUSTOMER for e in case_events(app, number))
    with app.db.session() as s:
        contact = [c for c in load(app, number).customer.contacts if c.kind == "email"][0]
        assert contact.failing_since is not None
    # The engineers see it in their next notice.
    write(app, f"Re: [{number}]", "补充信息", f"张三 <{CUSTOMER}>")
    (notice,) = mails_to(smtp_sink, ENGINEER)
    assert "failing" in body_of(notice) or "地址失效" in body_of(notice)


# ---------------------------------------------------------------- 6. a bad Cc


def test_an_odd_cc_address_does_not_stop_an_engineers_reply(app, smtp_sink) -> None:
    number, note = open_case(app, smtp_sink, headers={"Cc": '"a b"@customer.cn, wang.gong@customer.cn'})
    smtp_sink.clear()
    engineer_says(app, note, "我们已定位问题。")
    replies = mails_to(smtp_sink, CUSTOMER)
    assert replies and "我们已定位问题" in body_of(replies[0])
    assert any(e[0] == "cc-dropped" for e in case_events(app, number))


# ---------------------------------------------------------------- 8. faxes only from fax gateways


def test_a_mail_that_looks_like_a_fax_notice_stays_an_email(app, smtp_sink, tmp_path) -> None:
    from email.message import EmailMessage as Mime

    msg = Mime()
    msg["From"] = "tricky <tricky@evil.example>"
    msg["To"] = SERVICE
    msg["Subject"] = "Fax from +1 900 555 0199"
    msg["Message-ID"] = "<fax-lookalike@evil.example>"
    msg.set_content("see attachment")
    msg.add_attachment(b"%PDF-1.4 not really", maintype="application", subtype="pdf", filename="fax.pdf")
    res = app.pipeline.ingest(Inbound(msg.as_bytes(), SOURCE))
    send_out(app)
    case = load(app, res.case_number)
    assert case.customer.contact("email") == "tricky@evil.example"
    assert case.customer.contact("fax") is None
    assert not any(e[0] == "fax-received" for e in case_events(app, res.case_number))


# ---------------------------------------------------------------- through `casegate ingest`


def test_through_casegate_ingest_an_outsider_gets_no_case_content(tmp_path) -> None:
    """The same findings end to end through the real CLI and the maildir outbox."""
    from email import message_from_bytes

    from test_cli import ok, run_cli, write_config

    cfg = write_config(tmp_path)
    first = tmp_path / "first.eml"
    first.write_bytes(mail(subject="核心交换机宕机", body="机房核心交换机宕机，全部业务中断。",
                           sender=f"张三 <{CUSTOMER}>"))
    number = ok(run_cli(cfg, "ingest", str(first))).split("\t")[1]
    for name, sender, body in (("m1.eml", MALLORY, "查询进度"), ("m2.eml", MALLORY, "确认已解决，可以关闭。5分")):
        (tmp_path / name).write_bytes(mail(subject=f"Re: [{number}]", body=body, sender=sender))
        assert "\treply" in ok(run_cli(cfg, "ingest", str(tmp_path / name)))
    (tmp_path / "c1.eml").write_bytes(mail(subject=f"Re: [{number}]", body="查询进度", sender=f"张三 <{CUSTOMER}>"))
    ok(run_cli(cfg, "ingest", str(tmp_path / "c1.eml")))
    ok(run_cli(cfg, "outbox", "send"))
    sent = [message_from_bytes(p.read_bytes()) for p in (tmp_path / "outbox" / "new").iterdir()]
    recipients = [str(m["To"]) for m in sent]
    assert not any(MALLORY in r for r in recipients), recipients
    assert sum(CUSTOMER in r for r in recipients) == 2  # the acknowledgement and the history
    shown = json.loads(ok(run_cli(cfg, "cases", "show", number, "--json")))
    assert shown["status"] != "closed"


# ---------------------------------------------------------------- vendors


def test_a_vendors_automatic_acknowledgement_still_gives_its_case_number(tmp_path, smtp_sink) -> None:
    vendors = [{"name": "Huawei", "address": "support@huawei.example", "domains": ["huawei.example"],
                "case_number_regex": r"Case[ #:]*(\d{8,})"}]
    app = make_app(tmp_path, smtp_sink, clock=FakeClock(), vendors=vendors)
    try:
        number, note = open_case(app, smtp_sink)
        engineer_says(app, note, "#vendor Huawei")
        res = app.pipeline.ingest(Inbound(mail(
            subject=f"[Case 20261130001] Re: [{number}] received", body="This is an automatic acknowledgement.",
            sender="Huawei Support <support@huawei.example>",
            headers={"Auto-Submitted": "auto-replied"}), SOURCE))
        assert res.outcome == "ignored"
        assert any(e[0] == "vendor-case-number" and e[3] == "20261130001" for e in case_events(app, number))
        # Vendor mail is vendor mail: never "the customer replied".
        smtp_sink.clear()
        app.pipeline.ingest(Inbound(mail(subject=f"Re: [{number}]", body="Please send the logs.",
                                         sender="Huawei Support <support@huawei.example>"), SOURCE))
        send_out(app)
        (notice,) = mails_to(smtp_sink, ENGINEER)
        assert "The customer replied" not in body_of(notice) and "vendor" in body_of(notice)
    finally:
        app.close()


def test_ignored_mail_is_listed_and_can_be_ingested_again(tmp_path) -> None:
    """Nothing is dropped: mail that opened no case is listed with why, and a
    retry after a rule change feeds it through the pipeline again."""
    from test_cli import ok, run_cli, write_config

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "10-spam.toml").write_text(
        '[[rule]]\nname = "lottery"\nany = ["中奖"]\nroute = "ignore"\n', encoding="utf-8")
    cfg = write_config(tmp_path, classification={"rules_dir": str(rules)})
    raw = tmp_path / "m.eml"
    raw.write_bytes(mail(subject="恭喜中奖 / POS 机全部无法刷卡", body="收银台的 POS 机全部无法刷卡。",
                         sender=f"张三 <{CUSTOMER}>"))
    assert "\tignored\t" in ok(run_cli(cfg, "ingest", str(raw)))
    listed = json.loads(ok(run_cli(cfg, "ignored", "list", "--json")))
    assert len(listed) == 1 and "lottery" in listed[0]["reason"]
    shown = run_cli(cfg, "ignored", "show", str(listed[0]["id"]), "--raw")
    assert shown.stdout == raw.read_bytes()  # the exact bytes are kept
    (rules / "10-spam.toml").write_text(
        '[[rule]]\nname = "lottery"\nany = ["彩票"]\nroute = "ignore"\n', encoding="utf-8")
    retried = ok(run_cli(cfg, "ignored", "retry", "--all"))
    assert "\tnew" in retried
    assert json.loads(ok(run_cli(cfg, "ignored", "list", "--json"))) == []


def test_an_outage_report_that_also_matches_a_spam_rule_is_a_case(app, smtp_sink) -> None:
    """Severity beats an ignore route (the shipped rules): a real P1 is never dropped as spam."""
    res = app.pipeline.ingest(Inbound(mail(
        subject="广告投放系统宕机，免费推广活动无法上线",
        body="我们的广告投放系统全部宕机，所有客户的推广都中断了，请马上处理！",
        sender=f"张三 <{CUSTOMER}>"), SOURCE))
    assert res.outcome == "new"
    assert load(app, res.case_number).priority == "P1"
