"""The ingestion pipeline: dedupe, threading through every path, reopen,
automatic mail, quarantine, and the acknowledgement delivered for real."""

from __future__ import annotations

import email
import email.policy
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from casegate.daemon.inbound import Inbound
from casegate.daemon.runtime.app import App
from casegate.daemon.inbound import Source
from casegate.storage import repository as repo
from casegate.storage.models import Case, Event, Message, OutboxMessage, Quarantine
from helpers import make_app, make_config, mail, sink_outgoing

DATA = Path(__file__).parent / "data" / "mail"
SRC = Source("test", "file")


class Clock:
    """A settable clock for the pipeline (time is never slept through)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def app(tmp_path: Path) -> App:
    a = make_app(tmp_path)
    yield a
    a.close()


def count(app: App, model) -> int:
    with app.db.session() as s:
        return s.execute(select(func.count()).select_from(model)).scalar_one()


def case_of(app: App, number: str) -> Case:
    with app.db.session() as s:
        return repo.load_case(s, number)


def ack_message_id(app: App, number: str) -> str:
    with app.db.session() as s:
        case = repo.case_by_number(s, number)
        row = s.execute(select(OutboxMessage).where(OutboxMessage.case_id == case.id)).scalars().first()
        return row.message_id


def test_new_case_is_numbered_classified_and_acknowledged(app: App) -> None:
    res = app.pipeline.ingest(Inbound(mail(), SRC))
    assert res.outcome == "new"
    assert res.case_number == f"SR-{datetime.now(timezone.utc).year}-000001"
    case = case_of(app, res.case_number)
    assert case.priority == "P1"  # 宕机 / 业务全部中断 by the shipped rules
    assert case.customer.contact("email") == "zhangsan@customer.cn"
    assert case.customer.name == "张三"
    actions = [e.action for e in case.events]
    assert actions[:2] == ["created", "classified"]
    assert "ack-queued" in actions
    inbound = [m for m in case.messages if m.direction == "in"]
    assert inbound[0].raw.startswith(b"From:")


def test_raw_bytes_are_kept_whole(app: App) -> None:
    raw = (DATA / "gbk.eml").read_bytes()
    res = app.pipeline.ingest(Inbound(raw, SRC))
    with app.db.session() as s:
        stored = s.execute(select(Message.raw).where(Message.direction == "in")).scalar_one()
    assert stored == raw
    assert res.outcome == "new"


def test_same_message_twice_is_a_duplicate(app: App) -> None:
    raw = mail()
    first = app.pipeline.ingest(Inbound(raw, SRC))
    second = app.pipeline.ingest(Inbound(raw, SRC))
    assert second.outcome == "duplicate"
    assert second.case_number == first.case_number
    assert count(app, Case) == 1
    assert count(app, OutboxMessage) == 1


def test_message_without_message_id_dedupes_by_content(app: App) -> None:
    raw = (DATA / "no_message_id.eml").read_bytes()
    assert app.pipeline.ingest(Inbound(raw, SRC)).outcome == "new"
    assert app.pipeline.ingest(Inbound(raw, SRC)).outcome == "duplicate"
    # different bytes, still no Message-ID: a different message
    assert app.pipeline.ingest(Inbound(raw + b"\nmore\n", SRC)).outcome == "new"


@pytest.mark.parametrize(
    "subject",
    [
        "Re: [{n}] 系统宕机",
        "回复: 答复: {n} 进展如何",
        "转发：关于{n}的问题",
        "AW: SV: Fwd: ticket {n}",
        "RE: 还是不行 ({n})",
    ],
)
def test_reply_threads_by_case_number_in_subject(app: App, subject: str) -> None:
    number = app.pipeline.ingest(Inbound(mail(), SRC)).case_number
    res = app.pipeline.ingest(Inbound(mail(subject=subject.format(n=number), body="补充：日志见附件"), SRC))
    assert (res.outcome, res.case_number) == ("reply", number)
    assert count(app, Case) == 1


def test_case_number_in_lower_case_still_threads(app: App) -> None:
    number = app.pipeline.ingest(Inbound(mail(), SRC)).case_number
    res = app.pipeline.ingest(Inbound(mail(subject=f"re: {number.lower()}"), SRC))
    assert res.case_number == number


def test_unknown_case_number_opens_a_new_case(app: App) -> None:
    res = app.pipeline.ingest(Inbound(mail(subject="Re: [SR-1999-000777] old"), SRC))
    assert res.outcome == "new"
    assert res.case_number != "SR-1999-000777"


def test_reply_threads_by_in_reply_to_our_acknowledgement(app: App) -> None:
    number = app.pipeline.ingest(Inbound(mail(), SRC)).case_number
    ack_id = ack_message_id(app, number)
    res = app.pipeline.ingest(Inbound(mail(subject="谢谢", in_reply_to=f"<{ack_id}>"), SRC))
    assert (res.outcome, res.case_number) == ("reply", number)


def test_reply_threads_by_references_to_the_customer_message(app: App) -> None:
    first = mail(message_id="<first@customer.cn>")
    number = app.pipeline.ingest(Inbound(first, SRC)).case_number
    res = app.pipeline.ingest(Inbound(mail(subject="subject rewritten", references="<unrelated@x> <first@customer.cn>"), SRC))
    assert (res.outcome, res.case_number) == ("reply", number)


def test_reply_adds_message_and_event_without_second_ack(app: App) -> None:
    number = app.pipeline.ingest(Inbound(mail(), SRC)).case_number
    app.pipeline.ingest(Inbound(mail(subject=f"Re: [{number}]", body="又出现了"), SRC))
    case = case_of(app, number)
    assert [m.direction for m in case.messages] == ["in", "out", "in"]
    assert count(app, OutboxMessage) == 1


def _close(app: App, number: str, closed_at: datetime) -> None:
    with app.db.transaction() as s:
        case = repo.case_by_number(s, number)
        case.status, case.closed_at = "closed", closed_at


def test_reply_to_closed_case_within_window_reopens_it(tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 11, 2, 2, 0, tzinfo=timezone.utc))
    app = App(make_config(tmp_path), clock=clock)
    number = app.pipeline.ingest(Inbound(mail(), SRC)).case_number
    _close(app, number, clock.now)
    clock.now += timedelta(days=3)
    res = app.pipeline.ingest(Inbound(mail(subject=f"Re: [{number}] 又坏了"), SRC))
    assert (res.outcome, res.case_number) == ("reply", number)
    case = case_of(app, number)
    assert case.status == "open"
    assert any(e.action == "status" and e.old == "closed" and e.new == "open" for e in case.events)


def test_reply_to_long_closed_case_opens_a_linked_case(tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 11, 2, 2, 0, tzinfo=timezone.utc))
    app = App(make_config(tmp_path), clock=clock)
    number = app.pipeline.ingest(Inbound(mail(), SRC)).case_number
    _close(app, number, clock.now)
    clock.now += timedelta(days=30)
    res = app.pipeline.ingest(Inbound(mail(subject=f"Re: [{number}] 又坏了"), SRC))
    assert res.outcome == "new" and res.case_number != number
    new_case, old_case = case_of(app, res.case_number), case_of(app, number)
    assert new_case.linked_case_id == old_case.id
    assert old_case.status == "closed"


def test_auto_reply_is_stored_on_its_case_but_never_answered(app: App) -> None:
    number = app.pipeline.ingest(Inbound(mail(), SRC)).case_number
    ack_id = ack_message_id(app, number)
    res = app.pipeline.ingest(Inbound(mail(subject="自动回复: 我正在休假", in_reply_to=f"<{ack_id}>", headers={"Auto-Submitted": "auto-replied"}), SRC))
    assert (res.outcome, res.case_number) == ("ignored", number)
    assert count(app, OutboxMessage) == 1
    case = case_of(app, number)
    assert case.messages[-1].is_auto_reply


# ooo_no_headers.eml is no longer automatic: an out-of-office subject counts only on a
# reply (issue 11: customers' subjects such as "休假系统无法登录" are reports).
@pytest.mark.parametrize("name", ["auto_reply.eml", "dsn_bounce.eml", "list_mail.eml"])
def test_unmatched_automatic_mail_is_kept_unattached_and_unanswered(app: App, name: str) -> None:
    res = app.pipeline.ingest(Inbound((DATA / name).read_bytes(), SRC))
    assert res.outcome == "ignored" and res.case_number is None
    assert count(app, Case) == 0
    assert count(app, OutboxMessage) == 0
    with app.db.session() as s:
        assert s.execute(select(Message).where(Message.case_id.is_(None))).scalars().one().raw


def test_garbage_is_quarantined_whole_and_reported(app: App) -> None:
    raw = (DATA / "garbage.eml").read_bytes()
    res = app.pipeline.ingest(Inbound(raw, SRC))
    assert res.outcome == "quarantined"
    assert "cannot parse" in res.reason
    with app.db.session() as s:
        q = s.execute(select(Quarantine)).scalars().one()
        assert q.raw == raw and q.source == "test"
    # quarantined again, still one row
    assert app.pipeline.ingest(Inbound(raw, SRC)).outcome == "quarantined"
    assert count(app, Quarantine) == 1


def test_a_bad_message_does_not_spoil_its_batch(app: App) -> None:
    good1, good2 = mail(), mail(subject="打印机如何配置")
    bad = (DATA / "garbage.eml").read_bytes()
    results = app.pipeline.ingest_batch([Inbound(good1, SRC), Inbound(bad, SRC), Inbound(good2, SRC)])
    assert [r.outcome for r in results] == ["new", "quarantined", "new"]
    assert count(app, Case) == 2


def test_internal_error_in_one_message_quarantines_only_that_one(app: App, monkeypatch) -> None:
    original = app.pipeline.classifier.classify

    def explode(parsed, *a, **kw):
        if "爆炸" in parsed.subject:
            raise RuntimeError("boom")
        return original(parsed, *a, **kw)

    monkeypatch.setattr(app.pipeline.classifier, "classify", explode)
    results = app.pipeline.ingest_batch([Inbound(mail(subject="爆炸"), SRC), Inbound(mail(), SRC)])
    assert [r.outcome for r in results] == ["quarantined", "new"]
    assert "RuntimeError: boom" in results[0].reason
    assert count(app, Case) == 1  # the failed one left nothing half-written
    assert count(app, OutboxMessage) == 1


def test_sender_with_no_reply_address_gets_no_ack(app: App) -> None:
    res = app.pipeline.ingest(Inbound(mail(sender="noreply@vendor.com", subject="系统通知：服务中断"), SRC))
    assert res.outcome == "new"
    assert count(app, OutboxMessage) == 0
    assert any(e.action == "ack-suppressed" for e in case_of(app, res.case_number).events)


def test_mail_from_our_own_address_is_never_answered(app: App) -> None:
    res = app.pipeline.ingest(Inbound(mail(sender="service+x@desk.example.cn", subject="loop?"), SRC))
    assert count(app, OutboxMessage) == 0, res


def test_acks_per_sender_are_rate_limited(tmp_path: Path) -> None:
    app = make_app(tmp_path, service={"max_auto_mails_per_hour": 3})
    for i in range(6):
        app.pipeline.ingest(Inbound(mail(subject=f"问题 {i}"), SRC))
    assert count(app, Case) == 6
    assert count(app, OutboxMessage) == 3


def test_header_injection_through_subject_and_name_is_neutralised(app: App, smtp_sink) -> None:
    raw = (
        b"From: =?utf-8?b?" + __import__("base64").b64encode("坏人\r\nBcc: victim@evil.example".encode()) + b"?= <bad@customer.cn>\r\n"
        b"To: service@desk.example.cn\r\n"
        b"Subject: =?utf-8?q?hello=0D=0ABcc:_victim2@evil.example?=\r\n"
        b"Message-ID: <inject@customer.cn>\r\n\r\nbody\r\n"
    )
    app.pipeline.ingest(Inbound(raw, SRC))
    with app.db.session() as s:
        out = s.execute(select(OutboxMessage)).scalars().one()
    msg = email.message_from_bytes(out.raw, policy=email.policy.default)
    assert msg.get_all("Bcc") is None
    assert "victim" not in str(msg.get("To", "")).split("<")[-1]
    assert out.rcpt_to == "bad@customer.cn"
    assert "\n" not in str(msg["Subject"])


def test_acknowledgement_arrives_at_the_smtp_sink_in_the_customers_language(tmp_path: Path, smtp_sink) -> None:
    app = make_app(tmp_path, outgoing=sink_outgoing(smtp_sink))
    zh = app.pipeline.ingest(Inbound(mail(), SRC)).case_number
    en = app.pipeline.ingest(Inbound(mail(subject="How to configure VPN", body="Hello, how do I configure the VPN client?",
             sender="John Smith <john@acme.example>"), SRC)).case_number
    report = app.outbox.send_due()
    assert report.sent == 2
    msgs = smtp_sink.wait_for(2)
    by_to = {str(m["To"]).split("<")[-1].strip(">"): m for m in msgs}
    zh_msg, en_msg = by_to["zhangsan@customer.cn"], by_to["john@acme.example"]
    assert f"[{zh}]" in str(zh_msg["Subject"]) and "我们已收到您的问题" in str(zh_msg["Subject"])
    zh_body = zh_msg.get_body(("plain",)).get_content()
    assert "P1" in zh_body and "30 分钟" in zh_body  # P1 first response from the policy
    assert f"[{en}]" in str(en_msg["Subject"]) and "We have received" in str(en_msg["Subject"])
    en_body = en_msg.get_body(("plain",)).get_content()
    assert "P4" in en_body and "first response within" in en_body
    assert zh_msg["Auto-Submitted"] == "auto-replied"
    assert zh_msg["In-Reply-To"] is not None
    # the stored Message-ID is the one that went out, so replies thread
    assert str(zh_msg["Message-ID"]).strip("<>") == ack_message_id(app, zh)


def test_case_numbers_unique_under_concurrent_writers(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    apps = [App(cfg), App(cfg)]
    errors: list[BaseException] = []

    def work(app: App, k: int) -> None:
        try:
            for i in range(15):
                app.pipeline.ingest(Inbound(mail(subject=f"并发 {k}-{i}"), SRC))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(a, k)) for k, a in enumerate(apps)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with apps[0].db.session() as s:
        numbers = list(s.execute(select(Case.number)).scalars())
    assert len(numbers) == 30 and len(set(numbers)) == 30


def test_events_record_the_rules_that_classified(app: App) -> None:
    number = app.pipeline.ingest(Inbound(mail(), SRC)).case_number
    with app.db.session() as s:
        ev = s.execute(select(Event).where(Event.action == "classified")).scalars().one()
    assert ev.new == "P1"
    assert "p1" in ev.detail.lower() and number


def test_batches_take_case_numbers_without_gaps(app: App) -> None:
    """Numbers are reserved in a block per batch; the unused rest is given back."""
    first = app.pipeline.ingest_batch([Inbound(mail(subject=f"批次一 {i}"), SRC) for i in range(5)])
    number = first[0].case_number
    # a batch mixing new cases, a reply, a duplicate and garbage
    second = app.pipeline.ingest_batch([
        Inbound(mail(subject=f"Re: [{number}] 补充"), SRC),
        Inbound(mail(subject="批次二 新问题"), SRC),
        Inbound((DATA / "garbage.eml").read_bytes(), SRC),
        Inbound(mail(message_id="<same@customer.cn>"), SRC),
        Inbound(mail(message_id="<same@customer.cn>"), SRC),
    ])
    assert [r.outcome for r in second] == ["reply", "new", "quarantined", "new", "duplicate"]
    third = app.pipeline.ingest(Inbound(mail(subject="批次三"), SRC))
    seqs = [int(r.case_number.rsplit("-", 1)[1]) for r in [*first, second[1], second[3], third]]
    assert seqs == list(range(1, 9))


def test_internationalized_sender_address_gets_its_ack_over_smtputf8(tmp_path: Path, smtp_sink) -> None:
    app = make_app(tmp_path, outgoing=sink_outgoing(smtp_sink))
    raw = ("From: 张三 <张三@example.cn>\r\nTo: service@desk.example.cn\r\nSubject: 系统宕机\r\n"
           "Message-ID: <eai-1@example.cn>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
           "核心系统宕机\r\n").encode()  # RFC 6532: raw UTF-8 headers
    res = app.pipeline.ingest(Inbound(raw, SRC))
    assert res.outcome == "new"
    assert app.outbox.send_due().sent == 1
    got = smtp_sink.received[0]
    assert list(got.rcpt_tos) == ["张三@example.cn"]
    # RFC 6532 headers are UTF-8: parse them as text (the bytes parser would not)
    msg = email.message_from_string(got.raw.decode("utf-8"), policy=email.policy.default)
    assert msg["To"].addresses[0].addr_spec == "张三@example.cn"
    assert f"[{res.case_number}]" in str(msg["Subject"])


def test_a_failing_acknowledgement_does_not_cost_the_case(app: App, monkeypatch) -> None:
    def broken(*a, **kw):
        raise ValueError("template exploded")

    monkeypatch.setattr(app.notifier.renderer, "render", broken)
    res = app.pipeline.ingest(Inbound(mail(), SRC))
    assert res.outcome == "new"
    case = case_of(app, res.case_number)
    failed = [e for e in case.events if e.action == "ack-failed"]
    assert failed and "template exploded" in failed[0].detail
    assert count(app, OutboxMessage) == 0
