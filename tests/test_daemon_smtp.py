"""The SMTP/LMTP listener of `casegate run`, driven with smtplib."""

from __future__ import annotations

import smtplib
import uuid
from pathlib import Path

import pytest

from daemon_proc import DaemonProcess
from helpers import mail
from servers.ports import free_port


def listener_config(port: int, sink=None, kind: str = "smtp", database: str | None = None, **extra) -> dict:
    src = {"name": "push", "kind": kind, "host": "127.0.0.1", "port": port,
           "accept_domains": ["desk.example.cn"], "max_message_size": 200_000}
    src.update(extra)
    cfg: dict = {
        "service": {"address": "service@desk.example.cn"},
        "logging": {"level": "INFO"},
        "sources": [src],
    }
    if sink is not None:
        cfg["outgoing"] = {"transport": "smtp", "host": sink.host, "port": sink.port, "poll_interval": "1s"}
    if database:
        cfg["database"] = {"url": database}
    return cfg


@pytest.fixture
def port() -> int:
    return free_port("127.0.0.1")


def test_mail_pushed_over_smtp_becomes_a_case_and_is_acknowledged(tmp_path: Path, port: int, smtp_sink) -> None:
    d = DaemonProcess(tmp_path, listener_config(port, smtp_sink)).start()
    try:
        with smtplib.SMTP("127.0.0.1", port) as s:
            code, _ = s.ehlo()
            assert code == 250
            s.sendmail("zhao@customer.cn", ["service@desk.example.cn"], mail(sender="赵 <zhao@customer.cn>"))
            reply = s.noop()
        ack = smtp_sink.wait_for(1, timeout=10)[0]
        assert "[SR-" in str(ack["Subject"])
        assert reply[0] == 250
    finally:
        assert d.terminate() == 0
    assert "outcome=new" in d.log()


def test_plus_address_of_the_service_is_accepted_and_recorded(tmp_path: Path, port: int) -> None:
    cfg = listener_config(port, accept_domains=[], accept_addresses=["service@desk.example.cn"])
    d = DaemonProcess(tmp_path, cfg).start()
    try:
        with smtplib.SMTP("127.0.0.1", port) as s:
            s.sendmail("q@customer.cn", ["service+SR-2026-000001.abc@desk.example.cn"], mail(sender="q@customer.cn"))
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                s.sendmail("q@customer.cn", ["other@desk.example.cn"], mail(sender="q@customer.cn"))
    finally:
        assert d.terminate() == 0


def test_relay_attempt_is_refused_with_550(tmp_path: Path, port: int, smtp_sink) -> None:
    d = DaemonProcess(tmp_path, listener_config(port, smtp_sink)).start()
    try:
        with smtplib.SMTP("127.0.0.1", port) as s:
            s.ehlo()
            s.mail("spammer@evil.example")
            code, msg = s.rcpt("victim@gmail.com")
            assert code == 550 and b"relaying denied" in msg
            s.rset()
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                s.sendmail("a@evil.example", ["victim@gmail.com", "x@other.example"], b"Subject: x\r\n\r\nx\r\n")
    finally:
        assert d.terminate() == 0
    assert "outcome=" not in d.log()  # nothing was ingested, nothing relayed
    assert not smtp_sink.received


def test_oversize_message_is_refused_with_552(tmp_path: Path, port: int) -> None:
    d = DaemonProcess(tmp_path, listener_config(port, max_message_size=10_000)).start()
    try:
        big = mail(body="大" * 20_000).replace(b"\n", b"\r\n")
        with smtplib.SMTP("127.0.0.1", port) as s:
            # announced with SIZE: refused at MAIL FROM
            with pytest.raises(smtplib.SMTPSenderRefused) as err:
                s.sendmail("b@customer.cn", ["service@desk.example.cn"], big)
            assert err.value.smtp_code == 552
            s.rset()
            # not announced: refused after DATA
            s.mail("b@customer.cn")
            s.rcpt("service@desk.example.cn")
            code, _ = s.data(big)
            assert code == 552
            s.rset()
            # a normal message on the same connection still goes through
            s.sendmail("b@customer.cn", ["service@desk.example.cn"], mail(sender="b@customer.cn"))
    finally:
        assert d.terminate() == 0
    assert d.log().count("outcome=new") == 1


def test_garbage_is_accepted_and_kept_in_quarantine(tmp_path: Path, port: int) -> None:
    import subprocess
    import sys

    d = DaemonProcess(tmp_path, listener_config(port)).start()
    try:
        with smtplib.SMTP("127.0.0.1", port) as s:
            s.sendmail("c@customer.cn", ["service@desk.example.cn"], b"\x00\x01\x02 not a mail at all\r\n")
    finally:
        assert d.terminate() == 0
    out = subprocess.run([sys.executable, "-m", "casegate.daemon.cli", "--config", str(d.config_path), "quarantine", "list"],
                         capture_output=True, text=True)
    assert "cannot parse" in out.stdout


def test_lmtp_answers_once_per_recipient(tmp_path: Path, port: int) -> None:
    d = DaemonProcess(tmp_path, listener_config(port, kind="lmtp")).start()
    try:
        with smtplib.LMTP("127.0.0.1", port) as s:
            s.ehlo_or_helo_if_needed()
            s.mail("d@customer.cn")
            assert s.rcpt("service@desk.example.cn")[0] == 250
            assert s.rcpt("support@desk.example.cn")[0] == 250
            s.putcmd("data")
            assert s.getreply()[0] == 354
            s.send(mail(sender="d@customer.cn").replace(b"\n", b"\r\n") + b"\r\n.\r\n")
            # RFC 2033: one reply per accepted recipient
            first, second = s.getreply(), s.getreply()
            assert first[0] == 250 and second[0] == 250
            assert s.noop()[0] == 250
    finally:
        assert d.terminate() == 0
    assert d.log().count("outcome=new") == 1


def test_database_outage_answers_451_then_accepts_after_it_returns(tmp_path: Path, port: int, postgres) -> None:
    url = postgres.create_database("outage_" + uuid.uuid4().hex[:8])
    d = DaemonProcess(tmp_path, listener_config(port, database=url)).start()
    try:
        postgres.stop()
        raw = mail(sender="f@customer.cn")
        with smtplib.SMTP("127.0.0.1", port) as s:
            with pytest.raises(smtplib.SMTPDataError) as err:
                s.sendmail("f@customer.cn", ["service@desk.example.cn"], raw)
            assert err.value.smtp_code == 451
        postgres.start()
        with smtplib.SMTP("127.0.0.1", port) as s:  # the sending MTA retries
            s.sendmail("f@customer.cn", ["service@desk.example.cn"], raw)
    finally:
        if not postgres.running:
            postgres.start()
        assert d.terminate() == 0
    log = d.log()
    assert "answered 451" in log
    assert log.count("outcome=new") == 1


def test_starttls_is_offered_and_required_when_configured(tmp_path: Path, port: int) -> None:
    import ssl
    import subprocess

    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    d = DaemonProcess(tmp_path, listener_config(port, tls_cert_file=str(cert), tls_key_file=str(key),
                                                require_tls=True)).start()
    try:
        with smtplib.SMTP("127.0.0.1", port) as s:
            s.ehlo()
            assert s.has_extn("starttls")
            with pytest.raises(smtplib.SMTPSenderRefused):  # plain text refused: TLS required
                s.sendmail("g@customer.cn", ["service@desk.example.cn"], mail(sender="g@customer.cn"))
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        with smtplib.SMTP("127.0.0.1", port) as s:
            s.starttls(context=context)
            s.sendmail("g@customer.cn", ["service@desk.example.cn"], mail(sender="g@customer.cn"))
    finally:
        assert d.terminate() == 0
    assert d.log().count("outcome=new") == 1
