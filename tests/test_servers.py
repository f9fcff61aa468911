"""Prove the test-server fixtures behave like the real servers casegate meets.

If these fail, every integration test built on them is meaningless, so they
check exactly the features the IMAP source and notifier rely on: APPEND/FETCH
round trips, IDLE wake-ups, MOVE with UIDPLUS, surviving a server restart,
SMTP delivery, and a working PostgreSQL URL.
"""

from __future__ import annotations

import email.policy
import smtplib
import socket
from email.message import EmailMessage

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError
from sqlalchemy import create_engine, text

from servers.dovecot import DovecotServer, DovecotUser
from servers.postgres import PostgresServer
from servers.smtp_sink import SmtpSink


def _raw_mail(subject: str, body: str = "Printer on floor 3 is jammed again.\n") -> bytes:
    """A message with CRLF line ends, as IMAP stores and returns them.

    (Appending bare-LF bytes works, but Dovecot hands them back as CRLF.)
    """
    message = EmailMessage()
    message["From"] = "Customer <customer@example.com>"
    message["To"] = "service@casegate.test"
    message["Subject"] = subject
    message["Message-ID"] = f"<{abs(hash(subject))}@example.com>"
    message.set_content(body)
    return message.as_bytes(policy=email.policy.SMTP)


# ------------------------------------------------------------------ Dovecot


def test_dovecot_capabilities_needed_by_the_imap_source(dovecot_user: DovecotUser) -> None:
    with dovecot_user.client() as client:
        capabilities = set(client.capabilities())
        folders = {name for _flags, _delim, name in client.list_folders()}
    assert {b"IDLE", b"MOVE", b"UIDPLUS"} <= capabilities
    assert {"INBOX", "Processed", "Failed", "Fax"} <= folders


def test_append_then_fetch_round_trips_bytes(dovecot_user: DovecotUser) -> None:
    raw = _raw_mail("工单: 打印机卡纸", "第三层的打印机又卡纸了。\n")
    uid = dovecot_user.append("INBOX", raw)
    assert uid == 1  # UIDPLUS APPENDUID, first message of a fresh mailbox
    assert dovecot_user.count("INBOX") == 1
    assert dovecot_user.fetch_all("INBOX") == [raw]


def test_fresh_users_do_not_see_each_others_mail(dovecot: DovecotServer) -> None:
    first, second = dovecot.add_user(), dovecot.add_user()
    first.append("INBOX", _raw_mail("only for the first"))
    assert first.count() == 1
    assert second.count() == 0


def test_wrong_password_is_rejected_quickly(dovecot_user: DovecotUser) -> None:
    client = IMAPClient(dovecot_user.host, port=dovecot_user.port, ssl=False, timeout=5)
    try:
        with pytest.raises(LoginError):
            client.login(dovecot_user.name, "not-the-password")
    finally:
        client.shutdown()
    # No auth penalty lingers for the next login from 127.0.0.1.
    with dovecot_user.client(timeout=2) as client:
        client.noop()


def test_idle_reports_mail_appended_by_another_client(dovecot_user: DovecotUser) -> None:
    with dovecot_user.client() as watcher:
        watcher.select_folder("INBOX")
        watcher.idle()
        try:
            dovecot_user.append("INBOX", _raw_mail("wake up"))
            responses = watcher.idle_check(timeout=5)
        finally:
            watcher.idle_done()
    assert any(len(r) >= 2 and r[1] == b"EXISTS" for r in responses), responses


def test_move_to_processed(dovecot_user: DovecotUser) -> None:
    dovecot_user.append("INBOX", _raw_mail("to be moved"))
    with dovecot_user.client() as client:
        client.select_folder("INBOX")
        uids = client.search("ALL")
        client.move(uids, "Processed")
    assert dovecot_user.count("INBOX") == 0
    assert dovecot_user.count("Processed") == 1


def test_restart_keeps_port_and_mail_and_drops_clients(dovecot: DovecotServer) -> None:
    # A private server, so the session one stays untouched for other tests.
    with DovecotServer() as server:
        raw = _raw_mail("survives restart")
        server.append("service", "INBOX", raw)
        port = server.port
        stale = server.client("service")
        stale.select_folder("INBOX")

        server.restart()

        assert server.port == port
        assert server.fetch_all("service", "INBOX") == [raw]
        with pytest.raises((OSError, IMAPClient.Error, IMAPClient.AbortError)):
            stale.noop()
        stale.shutdown()


def test_kill_then_start_recovers(dovecot: DovecotServer) -> None:
    with DovecotServer(users={"fax": "fax-secret"}) as server:
        server.append("fax", "Fax", _raw_mail("fax page 1"))
        server.kill()
        assert not server.running
        with pytest.raises(OSError):
            socket.create_connection((server.host, server.port), timeout=1).close()
        server.start()
        assert server.count("fax", "Fax") == 1


# --------------------------------------------------------------------- SMTP


def test_smtp_sink_receives_and_parses(smtp_sink: SmtpSink) -> None:
    message = EmailMessage()
    message["From"] = "casegate@casegate.test"
    message["To"] = "customer@example.com"
    message["Subject"] = "Ihr Fall #42 / 您的工单 #42"
    message.set_content("Wir haben Ihre Anfrage erhalten.\n我们已收到您的请求。\n")

    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=5) as smtp:
        smtp.send_message(
            message,
            from_addr="bounces@casegate.test",
            to_addrs=["customer@example.com", "engineer@casegate.test"],
        )

    [received] = smtp_sink.wait_for(1, timeout=5)
    assert received["Subject"] == "Ihr Fall #42 / 您的工单 #42"
    assert "我们已收到您的请求。" in received.get_content()
    [envelope] = smtp_sink.received
    assert envelope.mail_from == "bounces@casegate.test"
    assert envelope.rcpt_tos == ("customer@example.com", "engineer@casegate.test")

    smtp_sink.clear()
    assert smtp_sink.messages == []


def test_smtp_sink_wait_for_times_out_clearly(smtp_sink: SmtpSink) -> None:
    with pytest.raises(TimeoutError, match="expected 1 message"):
        smtp_sink.wait_for(1, timeout=0.1)


# --------------------------------------------------------------- PostgreSQL


def test_postgres_url_works_with_sqlalchemy(postgres: PostgresServer) -> None:
    assert postgres.url == (
        f"postgresql+psycopg://postgres@127.0.0.1:{postgres.port}/casegate_test"
    )
    engine = create_engine(postgres.url)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("select 1")).scalar_one() == 1
            assert connection.execute(text("select current_database()")).scalar_one() == (
                "casegate_test"
            )
    finally:
        engine.dispose()
