"""The conversation around a case: notes, history, colleagues on Cc,
pending/reopen/merge/assign/vendor, round-robin assignment, loop protection."""

from __future__ import annotations

import json

import stat
from email.message import EmailMessage

import pytest

from casegate.daemon.inbound import Inbound
from helpers import mail
from workflow_support import (
    CUSTOMER,
    ENGINEER,
    ENGINEER2,
    SERVICE,
    SOURCE,
    FakeClock,
    body_of,
    case_events,
    load,
    make_app,
    mails_to,
    open_case,
    send_out,
    signed_reply_to,
    staff_mail,
    to_of,
)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def app(tmp_path, smtp_sink, clock):
    app = make_app(tmp_path, smtp_sink, clock)
    yield app
    app.close()


def engineer_says(app, note: EmailMessage, body: str, sender: str = ENGINEER):
    res = app.pipeline.ingest(Inbound(staff_mail(sender, body, to=signed_reply_to(note), subject="Re: x",
                                         in_reply_to=note["Message-ID"].strip()), SOURCE))
    send_out(app)
    return res


def test_note_is_never_sent_to_the_customer(app, smtp_sink) -> None:
    number, note = open_case(app, smtp_sink)
    smtp_sink.clear()
    engineer_says(app, note, "#note customer's contract expired last month\nask sales before replying")
    assert not mails_to(smtp_sink, CUSTOMER)
    case = load(app, number)
    assert case.first_response_at is None and case.status == "new"
    (ev,) = [e for e in case_events(app, number) if e[0] == "note"]
    assert "ask sales" in ev[3]


def test_full_width_and_chinese_commands(app, smtp_sink) -> None:
    number, note = open_case(app, smtp_sink)
    engineer_says(app, note, "＃优先级 P2\n＃状态 待定\n请提供设备序列号。")
    case = load(app, number)
    assert case.priority == "P2" and case.status == "pending"
    # The customer answers: a case waiting for the customer returns to open.
    out = [m for m in mails_to(smtp_sink, CUSTOMER) if "请提供设备序列号" in body_of(m)][0]
    app.pipeline.ingest(Inbound(mail(subject="Re: " + str(out["Subject"]), body="序列号 SN123", sender=CUSTOMER,
                             in_reply_to=out["Message-ID"].strip()), SOURCE))
    assert load(app, number).status == "open"


def test_customer_asks_for_history(app, smtp_sink) -> None:
    number, note = open_case(app, smtp_sink)
    engineer_says(app, note, "We are looking into it.")
    smtp_sink.clear()
    res = app.pipeline.ingest(Inbound(mail(subject=f"Re: [{number}]", body="查询进度\n", sender=CUSTOMER), SOURCE))
    assert res.outcome == "reply"
    send_out(app)
    (hist,) = mails_to(smtp_sink, CUSTOMER)
    text = body_of(hist)
    assert number in str(hist["Subject"]) and "We are looking into it." in text and "交换机的一个端口偶尔掉线" in text
    assert hist["Auto-Submitted"] == "auto-replied"
    assert not mails_to(smtp_sink, ENGINEER)  # a history request is not forwarded


def test_colleagues_on_cc_stay_on_the_thread(app, smtp_sink) -> None:
    number, note = open_case(app, smtp_sink, sender="张三 <zhangsan@bigcorp.cn>",
                             headers={"Cc": "lisi@bigcorp.cn, outsider@other.cn, wang.wei@desk.example.cn"})
    smtp_sink.clear()
    engineer_says(app, note, "We will send an engineer tomorrow.")
    (out,) = smtp_sink.wait_for(1)
    assert to_of(out) == ["zhangsan@bigcorp.cn"]
    assert [a.addr_spec for a in out["Cc"].addresses] == ["lisi@bigcorp.cn"]
    assert set(smtp_sink.received[0].rcpt_tos) == {"zhangsan@bigcorp.cn", "lisi@bigcorp.cn"}


def test_assign_notifies_the_new_assignee(app, smtp_sink) -> None:
    number, note = open_case(app, smtp_sink)
    smtp_sink.clear()
    engineer_says(app, note, "#指派 李娜")
    assert load(app, number).assignee == ENGINEER2
    (n2,) = mails_to(smtp_sink, ENGINEER2)
    assert signed_reply_to(n2) != signed_reply_to(note)
    # Li Na now works the case through her own signed address.
    engineer_says(app, n2, "#status resolved\n已更换电源模块。", sender=ENGINEER2)
    assert load(app, number).status == "resolved"


def test_reopen_merge_and_vendor(app, smtp_sink) -> None:
    # No [[vendors]] configured: #vendor is recorded on the case and nothing is
    # mailed; the escalation itself (daemon/timekeeping/vendors.py) is tested
    # with its configuration elsewhere.
    a, note_a = open_case(app, smtp_sink, subject="问题 A")
    b, note_b = open_case(app, smtp_sink, subject="问题 B", sender="lisi@customer.cn")
    engineer_says(app, note_a, "#vendor Huawei 2026-7788\n#status closed")
    vendor_events = [e for e in case_events(app, a) if e[0] == "vendor"]
    assert [(e[1], e[3], json.loads(e[4])["vendor_case_number"]) for e in vendor_events] == [
        (ENGINEER, "Huawei", "2026-7788")]
    assert load(app, a).status == "closed"
    engineer_says(app, note_a, "#重开")
    assert load(app, a).status == "open" and load(app, a).closed_at is None
    b_engineer = load(app, b).assignee
    note_for_b = note_b
    engineer_says(app, note_for_b, f"#merge {a}", sender=b_engineer)
    case_b = load(app, b)
    assert case_b.status == "closed" and case_b.linked_case_id == load(app, a).id
    assert any(e[0] == "merged-from" and e[3] == b for e in case_events(app, a))


def test_round_robin_survives_a_restart(tmp_path, smtp_sink, clock) -> None:
    app = make_app(tmp_path, smtp_sink, clock)
    first = [load(app, open_case(app, smtp_sink, sender=f"c{i}@customer.cn")[0]).assignee for i in range(3)]
    app.close()
    app = make_app(tmp_path, smtp_sink, clock)
    nxt = load(app, open_case(app, smtp_sink, sender="c9@customer.cn")[0]).assignee
    app.close()
    assert first == [ENGINEER, ENGINEER2, ENGINEER] and nxt == ENGINEER2


def test_notification_carries_attachments_and_reasons(app, smtp_sink) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = CUSTOMER, SERVICE, "服务器宕机"
    msg["Message-ID"] = "<att-1@customer.cn>"
    msg.set_content("服务器宕机，业务中断，日志见附件。")
    msg.add_attachment(b"log line 1\n", maintype="text", subtype="plain", filename="error.log")
    res = app.pipeline.ingest(Inbound(msg.as_bytes(), SOURCE))
    send_out(app)
    (note,) = mails_to(smtp_sink, ENGINEER)
    names = [p.get_filename() for p in note.iter_attachments()]
    assert names == ["error.log"]
    assert res.case_number in str(note["Subject"])


def test_auto_responder_peer_cannot_make_a_loop(app, smtp_sink, clock) -> None:
    """A peer that answers every mail, without any auto-reply headers."""
    peer = "robot@customer.cn"
    app.pipeline.ingest(Inbound(mail(subject="help", body="help", sender=peer), SOURCE))
    send_out(app)
    for i in range(40):
        to_peer = mails_to(smtp_sink, peer)
        for m in to_peer[-1:]:
            # Answers with a fresh subject and no threading: looks like new mail.
            app.pipeline.ingest(Inbound(mail(subject=f"Received your mail {i}", body="Thank you for your mail.",
                                     sender=peer), SOURCE))
        send_out(app)
        clock.advance(seconds=30)
    assert len(mails_to(smtp_sink, peer)) <= 10  # service.max_auto_mails_per_hour


def test_mail_to_our_own_addresses_and_no_reply_senders_is_suppressed(app, smtp_sink) -> None:
    res = app.pipeline.ingest(Inbound(mail(subject="notice", body="x", sender="noreply@vendor.cn"), SOURCE))
    send_out(app)
    assert not mails_to(smtp_sink, "noreply@vendor.cn")
    assert any(e[0] == "ack-suppressed" for e in case_events(app, res.case_number))


def test_secret_is_generated_once_with_private_permissions(app, tmp_path, smtp_sink) -> None:
    path = app.config.data_dir / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_text()
    again = make_app(tmp_path, smtp_sink)
    again.close()
    assert path.read_text() == first


def test_round_robin_inside_one_batch_and_after_it(app, smtp_sink) -> None:
    """A batch assigns in turn without reading its own history back; the next batch goes on from it."""
    raws = [mail(subject=f"第{i}台服务器宕机", body="服务器宕机，业务中断。", sender=f"b{i}@customer.cn")
            for i in range(5)]
    first = app.pipeline.ingest_batch([Inbound(raw, SOURCE) for raw in raws])
    second = app.pipeline.ingest_batch([Inbound(mail(subject="打印机卡纸", body="打印机卡纸。",
                                                     sender="b9@customer.cn"), SOURCE)])
    assignees = [load(app, r.case_number).assignee for r in [*first, *second]]
    assert assignees == [ENGINEER, ENGINEER2, ENGINEER, ENGINEER2, ENGINEER, ENGINEER2]
