"""The same pipeline on PostgreSQL: cases, threading, dedupe, quarantine,
several writers on one database, and the shared outbox claimed with
FOR UPDATE SKIP LOCKED so each acknowledgement goes out exactly once."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from casegate.daemon.inbound import Inbound
from casegate.daemon.runtime.app import App
from casegate.daemon.inbound import Source
from casegate.storage import repository as repo
from casegate.storage.models import Case, Message, OutboxMessage, Quarantine
from helpers import make_config, mail, sink_outgoing

pytestmark = pytest.mark.postgres

DATA = Path(__file__).parent / "data" / "mail"
SRC = Source("test", "file")


@pytest.fixture
def pg_url(postgres) -> str:
    """A brand-new database per test."""
    return postgres.create_database("t_" + uuid.uuid4().hex)


@pytest.fixture
def app(tmp_path: Path, pg_url: str):
    a = App(make_config(tmp_path, database={"url": pg_url}))
    assert a.db.dialect == "postgresql"
    yield a
    a.close()


def count(app: App, model, *where) -> int:
    with app.db.session() as s:
        return s.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def test_new_case_is_created_and_acknowledged(app: App) -> None:
    res = app.pipeline.ingest(Inbound(mail(), SRC))
    assert res.outcome == "new" and res.case_number.endswith("-000001")
    with app.db.session() as s:
        case = repo.load_case(s, res.case_number)
        assert case.priority == "P1"
        assert case.customer.contact("email") == "zhangsan@customer.cn"
        assert "ack-queued" in [e.action for e in case.events]
        ack = s.execute(select(OutboxMessage)).scalars().one()
        assert ack.rcpt_to == "zhangsan@customer.cn" and ack.state == "queued"
        assert ack.case_id == case.id


def test_reply_threads_by_subject_and_by_in_reply_to(app: App) -> None:
    number = app.pipeline.ingest(Inbound(mail(), SRC)).case_number
    by_subject = app.pipeline.ingest(Inbound(mail(subject=f"回复: [{number}] 还是不行", body="补充日志"), SRC))
    assert (by_subject.outcome, by_subject.case_number) == ("reply", number)
    with app.db.session() as s:
        ack_id = s.execute(select(OutboxMessage.message_id)).scalar_one()
    by_header = app.pipeline.ingest(Inbound(mail(subject="谢谢", in_reply_to=f"<{ack_id}>"), SRC))
    assert (by_header.outcome, by_header.case_number) == ("reply", number)
    assert count(app, Case) == 1
    assert count(app, OutboxMessage) == 1  # replies are not acknowledged again
    assert count(app, Message, Message.direction == "in") == 3


def test_dedupe_by_message_id_and_by_content(app: App) -> None:
    raw = mail()
    first = app.pipeline.ingest(Inbound(raw, SRC))
    assert app.pipeline.ingest(Inbound(raw, SRC)) == type(first)("duplicate", first.case_number, first.message_id)
    no_id = (DATA / "no_message_id.eml").read_bytes()
    assert app.pipeline.ingest(Inbound(no_id, SRC)).outcome == "new"
    # a batch holding the same message twice stores it once
    results = app.pipeline.ingest_batch([Inbound(no_id, SRC), Inbound(raw, SRC), Inbound(mail(subject="新问题"), SRC)])
    assert [r.outcome for r in results] == ["duplicate", "duplicate", "new"]
    assert count(app, Case) == 3
    assert count(app, OutboxMessage) == 3


def test_garbage_is_quarantined_whole(app: App) -> None:
    raw = (DATA / "garbage.eml").read_bytes()
    results = app.pipeline.ingest_batch([Inbound(mail(), SRC), Inbound(raw, SRC), Inbound(raw, SRC)])
    assert [r.outcome for r in results] == ["new", "quarantined", "quarantined"]
    with app.db.session() as s:
        q = s.execute(select(Quarantine)).scalars().one()
        assert q.raw == raw and q.source == "test" and "cannot parse" in q.error
    assert count(app, Case) == 1


def test_two_apps_ingesting_concurrently_get_unique_case_numbers(tmp_path: Path, pg_url: str) -> None:
    cfg = make_config(tmp_path, database={"url": pg_url})
    apps = [App(cfg), App(cfg)]
    errors: list[BaseException] = []
    results: list = []
    lock = threading.Lock()
    start = threading.Barrier(2)

    def work(app: App, k: int) -> None:
        try:
            start.wait()
            for i in range(30):
                raw = mail(subject=f"并发问题 {k}-{i}", sender=f"user{k}x{i} <user{k}x{i}@customer.cn>")
                # alternate single messages and small batches: both paths race
                if i % 3 == 2:
                    out = app.pipeline.ingest_batch([Inbound(raw, SRC)])
                else:
                    out = [app.pipeline.ingest(Inbound(raw, SRC))]
                with lock:
                    results.extend(out)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(a, k)) for k, a in enumerate(apps)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors, errors
        assert Counter(r.outcome for r in results) == {"new": 60}
        with apps[0].db.session() as s:
            numbers = list(s.execute(select(Case.number)).scalars())
        assert len(numbers) == 60 and len(set(numbers)) == 60
        assert sorted(numbers) == sorted(r.case_number for r in results)
        assert count(apps[0], OutboxMessage) == 60
    finally:
        for a in apps:
            a.close()


def test_two_apps_sending_the_outbox_concurrently_send_each_ack_once(tmp_path: Path, pg_url: str, smtp_sink) -> None:
    cfg = make_config(tmp_path, database={"url": pg_url}, outgoing={**sink_outgoing(smtp_sink), "batch_size": 3})
    apps = [App(cfg), App(cfg)]
    try:
        results = apps[0].pipeline.ingest_batch(
            [Inbound(mail(subject=f"问题 {i}", sender=f"c{i} <c{i}@customer.cn>"), SRC) for i in range(30)]
        )
        assert Counter(r.outcome for r in results) == {"new": 30}
        reports: list = []
        errors: list[BaseException] = []
        start = threading.Barrier(2)

        def send(app: App) -> None:
            try:
                start.wait()
                reports.append(app.outbox.send_due())
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=send, args=(a,)) for a in apps]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert sum(r.sent for r in reports) == 30
        assert sum(r.failed + r.retried for r in reports) == 0
        received = smtp_sink.wait_for(30)
        assert len(smtp_sink.received) == 30  # not one more
        ids = [str(m["Message-ID"]) for m in received]
        assert len(set(ids)) == 30
        rcpts = Counter(r for mail_ in smtp_sink.received for r in mail_.rcpt_tos)
        assert rcpts == {f"c{i}@customer.cn": 1 for i in range(30)}
        with apps[0].db.session() as s:
            rows = list(s.execute(select(OutboxMessage)).scalars())
        assert {r.state for r in rows} == {"sent"}
        assert {r.attempts for r in rows} == {1}
        # nothing left: another round sends nothing
        assert apps[1].outbox.send_due().sent == 0
        assert len(smtp_sink.received) == 30
    finally:
        for a in apps:
            a.close()


def test_nul_bytes_from_mail_never_cost_a_batch_on_postgresql(app: App) -> None:
    """PostgreSQL text holds no NUL: what a mail says is made safe, its raw bytes stay whole."""
    nul_id = mail(subject="NUL 在 Message-ID").replace(b"Message-ID: <", b"Message-ID: <a\x00b", 1)
    nul_body = mail(subject="正文有\x00空字符", body="打印机\x00卡纸")
    results = app.pipeline.ingest_batch([Inbound(mail(subject="普通邮件"), SRC), Inbound(nul_id, SRC),
                                         Inbound(nul_body, SRC)])
    assert [r.outcome for r in results] == ["new", "new", "new"]
    with app.db.session() as s:
        raws = set(s.execute(select(Message.raw).where(Message.direction == "in")).scalars())
        texts = list(s.execute(select(Message.text).where(Message.direction == "in")).scalars())
    assert nul_id in raws and nul_body in raws  # the evidence is kept byte for byte
    assert not any("\x00" in t for t in texts)
