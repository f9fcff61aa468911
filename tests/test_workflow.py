"""Working a case by e-mail alone, through a real Dovecot and a real SMTP sink.

customer -> case + ack + engineer notified -> engineer replies to the signed
Reply-To with a command and text -> the customer gets the text only ->
customer replies -> forwarded to the engineer -> engineer closes the case.
"""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from casegate.daemon.sources.status import SourceStatus
from casegate.daemon.sources.imap import ImapSource
from helpers import mail
from workflow_support import (
    CUSTOMER,
    ENGINEER,
    SERVICE,
    FakeClock,
    body_of,
    case_events,
    load,
    make_app,
    mails_to,
    send_out,
    to_of,
)

pytestmark = pytest.mark.dovecot


def reply_from(msg: EmailMessage, sender: str, body: str, *, to: str | None = None, subject: str | None = None,
               thread: bool = True) -> bytes:
    """What a mail client sends when ``sender`` answers ``msg``."""
    reply_to = msg["Reply-To"]
    target = to or (reply_to.addresses[0].addr_spec if reply_to else SERVICE)
    mid = msg["Message-ID"].strip()
    return mail(
        subject=subject if subject is not None else "Re: " + str(msg["Subject"]),
        body=body,
        sender=sender,
        to=target,
        in_reply_to=mid if thread else None,
        references=mid if thread else None,
    )


def test_full_conversation_by_email_through_dovecot(tmp_path, dovecot_user, smtp_sink) -> None:
    (tmp_path / "imap.pw").write_text(dovecot_user.password)
    clock = FakeClock()
    app = make_app(tmp_path, smtp_sink, clock, sources=[{
        "name": "imap-main", "kind": "imap", "host": dovecot_user.host, "port": dovecot_user.port, "tls": "none",
        "user": dovecot_user.name, "password_file": str(tmp_path / "imap.pw"), "idle": False,
    }])
    source = ImapSource(app.config.sources[0], app.pipeline, SourceStatus(app.db, "imap-main", "imap", clock))
    source.client = source.connect()

    def deliver(raw: bytes) -> None:
        dovecot_user.append("INBOX", raw)
        source.client.noop()  # let the selected INBOX see the new message
        assert source.drain() == 1
        send_out(app)

    try:
        # 1. The customer writes; a case opens, the customer is acknowledged,
        #    the engineer is notified with a signed Reply-To.
        deliver(mail(subject="UPS 告警，机房断电", body="UPS 一直在报警，请尽快处理。", sender=f"张三 <{CUSTOMER}>"))
        smtp_sink.wait_for(2)
        (ack,) = mails_to(smtp_sink, CUSTOMER)
        (note,) = mails_to(smtp_sink, ENGINEER)
        number = str(ack["Subject"]).strip().split("]")[0].strip("[")
        assert number in str(note["Subject"])
        assert note["Auto-Submitted"] == "auto-generated"
        reply_to = note["Reply-To"].addresses[0].addr_spec
        assert reply_to.startswith(f"service+{number}.") and reply_to.endswith("@desk.example.cn")
        assert "UPS 一直在报警" in body_of(note)
        assert load(app, number).assignee == ENGINEER

        # 2. The engineer answers with a command and text, and a rewritten
        #    subject without the case number and no threading headers: the
        #    signed address alone threads it.
        smtp_sink.clear()
        deliver(reply_from(note, f"Wang Wei <{ENGINEER}>",
                           "#priority P1\n\nPlease check the input breaker and send us a photo.\n\n"
                           "-- \nWang Wei\n", subject="about the UPS", thread=False))
        (to_customer,) = smtp_sink.wait_for(1)
        assert to_of(to_customer) == [CUSTOMER]
        text = body_of(to_customer)
        assert "Please check the input breaker" in text
        assert "#priority" not in text and "P1" not in str(to_customer["Subject"])
        assert f"[{number}]" in str(to_customer["Subject"])
        assert to_customer["In-Reply-To"]
        assert to_customer["Auto-Submitted"] is None  # a human reply, relayed
        case = load(app, number)
        assert case.priority == "P1" and case.status == "open" and case.first_response_at == clock.now
        prio = [e for e in case_events(app, number) if e[0] == "priority"]
        assert len(prio) == 1 and prio[0][1] == ENGINEER and prio[0][3] == "P1"

        # 3. The customer answers the engineer's mail: the case gets it and
        #    the engineer gets it with a signed Reply-To.
        clock.advance(minutes=20)
        smtp_sink.clear()
        deliver(reply_from(to_customer, CUSTOMER, "断路器是好的，照片见附件。"))
        (forward,) = smtp_sink.wait_for(1)
        assert to_of(forward) == [ENGINEER]
        assert "断路器是好的" in body_of(forward)
        assert forward["Reply-To"].addresses[0].addr_spec == reply_to

        # 4. The engineer closes the case by e-mail.
        clock.advance(minutes=20)
        smtp_sink.clear()
        deliver(reply_from(forward, ENGINEER, "#status closed\nThe unit was replaced. Closing the case, thank you."))
        (closing,) = smtp_sink.wait_for(1)
        assert to_of(closing) == [CUSTOMER]
        assert "The unit was replaced" in body_of(closing) and "#status" not in body_of(closing)
        case = load(app, number)
        assert case.status == "closed" and case.closed_at == clock.now
        actions = [e[0] for e in case_events(app, number)]
        for expected in ("created", "assigned", "priority", "first-response", "public-reply", "status"):
            assert expected in actions
        # Every one of the four mails was moved out of the inbox.
        assert dovecot_user.count("INBOX") == 0 and dovecot_user.count("Processed") == 4
    finally:
        source.release()
        app.close()
