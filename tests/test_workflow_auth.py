"""Who may change a case by e-mail: signed reply addresses, Authentication-Results,
and everyone else (forgers, customers) refused with a recorded reason."""

from __future__ import annotations

import pytest

from casegate.daemon.inbound import Inbound
from casegate.storage import repository as repo
from casegate.storage.models import Customer
from sqlalchemy import func, select
from workflow_support import (
    CUSTOMER,
    ENGINEER,
    ENGINEER2,
    SERVICE,
    SOURCE,
    body_of,
    case_events,
    load,
    make_app,
    mails_to,
    open_case,
    send_out,
    signed_reply_to,
    staff_mail,
)


@pytest.fixture
def app(tmp_path, smtp_sink):
    app = make_app(tmp_path, smtp_sink, security={"trusted_authserv_ids": ["mx.desk.example.cn"]})
    yield app
    app.close()


def refused_events(app, number):
    return [e for e in case_events(app, number) if e[0] == "command-refused"]


def test_forged_engineer_without_proof_changes_nothing(app, smtp_sink) -> None:
    number, note = open_case(app, smtp_sink)
    before = load(app, number)
    smtp_sink.clear()
    # Forger: engineer's From, case number in the subject, sent to the plain service address.
    raw = staff_mail(ENGINEER, "#status closed\n#priority P4\nPlease ignore this case.",
                     to=SERVICE, subject=f"Re: [{number}] 交换机故障")
    res = app.pipeline.ingest(Inbound(raw, SOURCE))
    assert res.outcome == "reply" and res.case_number == number
    send_out(app)
    after = load(app, number)
    assert (after.status, after.priority, after.assignee) == (before.status, before.priority, before.assignee)
    assert after.first_response_at is None
    (ev,) = refused_events(app, number)
    assert "not proven" in ev[4]
    assert not mails_to(smtp_sink, CUSTOMER)  # nothing relayed to the customer
    (warning,) = mails_to(smtp_sink, ENGINEER)  # the real engineer is told
    assert "not applied" in str(warning["Subject"])


def test_tampered_token_is_refused(app, smtp_sink) -> None:
    number, note = open_case(app, smtp_sink)
    addr = signed_reply_to(note)
    local, _, domain = addr.partition("@")
    token = local.rsplit(".", 1)[1]
    forged = local[: -len(token)] + ("a" if token[0] != "a" else "b") + token[1:] + "@" + domain
    smtp_sink.clear()
    raw = staff_mail(ENGINEER, "#status resolved\nDone.", to=forged, subject=f"Re: [{number}] x")
    assert app.pipeline.ingest(Inbound(raw, SOURCE)).case_number == number
    send_out(app)
    assert load(app, number).status == "new"
    (ev,) = refused_events(app, number)
    assert "does not verify" in ev[4]
    assert not mails_to(smtp_sink, CUSTOMER)


def test_token_issued_to_another_engineer_is_refused(app, smtp_sink) -> None:
    number, note = open_case(app, smtp_sink)
    assert load(app, number).assignee == ENGINEER
    raw = staff_mail(ENGINEER2, "#priority P1", to=signed_reply_to(note), subject=f"Re: [{number}]")
    app.pipeline.ingest(Inbound(raw, SOURCE))
    assert load(app, number).priority != "P1"
    assert refused_events(app, number)


def test_trusted_authentication_results_authorise_commands(app, smtp_sink) -> None:
    # Authenticated submission proves the mailbox; DKIM/SPF alone prove only the
    # domain (tests/test_staff_auth.py).
    number, _ = open_case(app, smtp_sink)
    ar = ("mx.desk.example.cn; auth=pass (cram-md5) smtp.auth=wang.wei@desk.example.cn; "
          "dkim=pass (2048-bit key) header.d=desk.example.cn header.s=sel")
    raw = staff_mail(ENGINEER, "#priority P2\n#note checked logs, waiting for the vendor",
                     to=SERVICE, subject=f"Re: [{number}] 交换机故障", headers={"Authentication-Results": ar})
    app.pipeline.ingest(Inbound(raw, SOURCE))
    case = load(app, number)
    assert case.priority == "P2"
    notes = [e for e in case_events(app, number) if e[0] == "note"]
    assert notes and notes[0][3] == "checked logs, waiting for the vendor"
    assert "smtp.auth=wang.wei@desk.example.cn" in notes[0][4]


def test_untrusted_or_misaligned_authentication_results_are_ignored(app, smtp_sink) -> None:
    number, _ = open_case(app, smtp_sink)
    for ar in ("evil.example; dkim=pass header.d=desk.example.cn",  # not our MTA
               "mx.desk.example.cn; dkim=pass header.d=attacker.example",  # wrong domain
               "mx.desk.example.cn; dkim=fail header.d=desk.example.cn"):
        raw = staff_mail(ENGINEER, "#priority P1", to=SERVICE, subject=f"Re: [{number}]",
                         headers={"Authentication-Results": ar})
        app.pipeline.ingest(Inbound(raw, SOURCE))
    assert load(app, number).priority != "P1"
    assert len(refused_events(app, number)) == 3


def test_customer_cannot_use_commands(app, smtp_sink) -> None:
    number, _ = open_case(app, smtp_sink)
    smtp_sink.clear()
    raw = staff_mail(CUSTOMER, "#status closed\n#priority P1\n#assign Li Na\n还是不通。", to=SERVICE,
                     subject=f"Re: [{number}] 交换机故障")
    app.pipeline.ingest(Inbound(raw, SOURCE))
    send_out(app)
    case = load(app, number)
    assert case.status == "new" and case.priority != "P1" and case.assignee == ENGINEER
    # The text (commands included, as plain text) is forwarded to the engineer.
    (fwd,) = mails_to(smtp_sink, ENGINEER)
    assert "#status closed" in body_of(fwd)


def test_invalid_command_applies_nothing_and_answers_the_engineer(app, smtp_sink) -> None:
    number, note = open_case(app, smtp_sink)
    smtp_sink.clear()
    raw = staff_mail(ENGINEER, "#priority P1\n#status maybe\n#frobnicate\nText for the customer.",
                     to=signed_reply_to(note), subject="Re: whatever")
    app.pipeline.ingest(Inbound(raw, SOURCE))
    send_out(app)
    case = load(app, number)
    assert case.priority != "P1" and case.status == "new" and case.first_response_at is None
    assert not mails_to(smtp_sink, CUSTOMER)
    (err,) = mails_to(smtp_sink, ENGINEER)
    text = body_of(err)
    assert "#status maybe" in text and "#frobnicate" in text
    assert err["Reply-To"].addresses[0].addr_spec == signed_reply_to(note)
    assert any(e[0] == "command-failed" for e in case_events(app, number))


def test_staff_mail_never_creates_customers_acks_or_cases(app, smtp_sink) -> None:
    raw = staff_mail(ENGINEER, "Hello, is this the right address?", to=SERVICE, subject="测试")
    res = app.pipeline.ingest(Inbound(raw, SOURCE))
    assert res.outcome == "ignored" and res.case_number is None
    send_out(app)
    with app.db.session() as s:
        assert s.execute(select(func.count()).select_from(Customer)).scalar_one() == 0
        assert repo.list_cases(s) == []
    (err,) = smtp_sink.wait_for(1)
    assert [a.addr_spec for a in err["To"].addresses] == [ENGINEER]
    assert "测试" in str(err["Subject"])
