"""What a source knows beside the message reaches the stages: the SMTP envelope.

``MAIL FROM:<>`` is the null reverse path RFC 5321 reserves for delivery
status notifications: such a message is a bounce whatever its headers say,
and must never be answered (an acknowledgement to it could start a loop).
"""

from __future__ import annotations

import smtplib
from pathlib import Path

from casegate.daemon.inbound import Envelope, Inbound, Source
from daemon_proc import DaemonProcess
from casegate.storage.models import Case
from helpers import make_app, mail
from servers.ports import free_port
from test_daemon_smtp import listener_config

SMTP_SOURCE = Source("push", "smtp")


def plain_notice() -> bytes:
    """A bounce-like text without any of the headers that would mark it (no
    Return-Path, no multipart/report, no auto-reply markers)."""
    return mail(subject="Delivery problem", body="Your message could not be delivered.",
                sender="mailer <postbox@relay.example>")


def test_null_sender_in_the_envelope_is_a_bounce(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    try:
        res = app.pipeline.ingest(Inbound(plain_notice(), SMTP_SOURCE, envelope=Envelope("", ("service@x.cn",))))
        assert (res.outcome, res.reason) == ("ignored", "bounce")
        with app.db.session() as s:
            assert s.query(Case).count() == 0
        # Positive control: the same bytes with a real envelope sender open a case.
        again = app.pipeline.ingest(Inbound(plain_notice().replace(b"Delivery problem", b"Delivery problem 2"),
                                            SMTP_SOURCE, envelope=Envelope("postbox@relay.example")))
        assert again.outcome == "new"
    finally:
        app.close()


def test_mail_from_null_over_smtp_gets_no_acknowledgement(tmp_path: Path, smtp_sink) -> None:
    port = free_port("127.0.0.1")
    d = DaemonProcess(tmp_path, listener_config(port, smtp_sink)).start()
    try:
        with smtplib.SMTP("127.0.0.1", port) as s:
            s.sendmail("", ["service@desk.example.cn"], plain_notice())  # MAIL FROM:<>
            s.sendmail("zhao@customer.cn", ["service@desk.example.cn"], mail(sender="赵 <zhao@customer.cn>"))
        (ack,) = smtp_sink.wait_for(1, timeout=10)
        assert ack["To"].addresses[0].addr_spec == "zhao@customer.cn"
    finally:
        assert d.terminate() == 0
    log = d.log()
    assert "outcome=ignored" in log and "reason='bounce'" in log
    assert len(smtp_sink.messages) == 1
