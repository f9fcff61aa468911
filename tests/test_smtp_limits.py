"""The SMTP listener under hostile senders (issue 12): bounded sessions and
bytes in flight answered with 4xx (never a dropped DATA), the envelope
sender as the last From fallback, AUTH only over TLS with a hashed users file."""

from __future__ import annotations

import json
import os
import smtplib
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from daemon_proc import DaemonProcess
from helpers import mail
from servers.ports import free_port
from test_daemon_smtp import listener_config


@pytest.fixture
def port() -> int:
    return free_port("127.0.0.1")


def cli(config: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "casegate.daemon.cli", "--config", str(config), *args],
                          input=stdin, capture_output=True, timeout=120)


@pytest.fixture
def tls_pair(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def client_context(cert: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    return context


def test_sessions_above_the_cap_get_421_and_a_slot_frees_when_one_ends(tmp_path: Path, port: int) -> None:
    d = DaemonProcess(tmp_path, listener_config(port, max_sessions=2)).start()
    try:
        first, second = smtplib.SMTP("127.0.0.1", port), smtplib.SMTP("127.0.0.1", port)
        with pytest.raises(smtplib.SMTPConnectError) as refused:
            smtplib.SMTP("127.0.0.1", port)
        assert refused.value.smtp_code == 421
        first.quit()
        with smtplib.SMTP("127.0.0.1", port) as third:  # the sender's retry gets in
            third.sendmail("h@customer.cn", ["service@desk.example.cn"], mail(sender="h@customer.cn"))
        second.quit()
    finally:
        assert d.terminate() == 0
    assert d.log().count("outcome=new") == 1


def test_data_above_the_bytes_in_flight_gets_452_before_354_and_the_retry_is_stored(tmp_path: Path,
                                                                                     port: int) -> None:
    d = DaemonProcess(tmp_path, listener_config(port, max_message_size=200_000, max_bytes_in_flight=300_000)).start()
    big = mail(sender="j@customer.cn", body="磁盘阵列告警，请处理。\n" * 3000).replace(b"\n", b"\r\n")  # 100 KB
    try:
        holder = smtplib.SMTP("127.0.0.1", port)
        holder.ehlo()
        holder.mail("i@customer.cn")  # no SIZE: reserves max_message_size at DATA
        holder.rcpt("service@desk.example.cn")
        holder.putcmd("data")
        assert holder.getreply()[0] == 354  # 200,000 of 300,000 bytes now in flight
        with smtplib.SMTP("127.0.0.1", port) as s:
            with pytest.raises(smtplib.SMTPDataError) as err:
                s.sendmail("j@customer.cn", ["service@desk.example.cn"], big)
            assert err.value.smtp_code == 452
            assert s.noop()[0] == 250  # the connection is kept, with a reply to every command
        holder.send(mail(sender="i@customer.cn").replace(b"\n", b"\r\n") + b"\r\n.\r\n")
        assert holder.getreply()[0] == 250
        holder.quit()
        with smtplib.SMTP("127.0.0.1", port) as s:  # the sending MTA retries
            s.sendmail("j@customer.cn", ["service@desk.example.cn"], big)
    finally:
        assert d.terminate() == 0
    log = d.log()
    assert log.count("outcome=new") == 2
    assert "refused DATA" in log


def test_a_sender_is_held_to_the_size_it_declared(tmp_path: Path, port: int) -> None:
    d = DaemonProcess(tmp_path, listener_config(port, max_message_size=200_000)).start()
    try:
        with smtplib.SMTP("127.0.0.1", port) as s:
            s.ehlo()
            s.mail("k@customer.cn", ["SIZE=1000"])
            s.rcpt("service@desk.example.cn")
            code, _ = s.data(mail(sender="k@customer.cn", body="x\n" * 25_000).replace(b"\n", b"\r\n"))
            assert code == 552
    finally:
        assert d.terminate() == 0
    assert "outcome=new" not in d.log()


def test_the_envelope_sender_is_the_customer_when_the_headers_name_nobody(tmp_path: Path, port: int) -> None:
    d = DaemonProcess(tmp_path, listener_config(port)).start()
    raw = ("Subject: 打印机全部无法打印\r\nTo: service@desk.example.cn\r\nMessage-ID: <nofrom-1@x>\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n\r\n三楼的打印机全部无法打印。\r\n").encode()
    try:
        with smtplib.SMTP("127.0.0.1", port) as s:
            s.sendmail("wu.gang@customer.cn", ["service@desk.example.cn"], raw)
    finally:
        assert d.terminate() == 0
    listed = cli(d.config_path, "cases", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (case,) = json.loads(listed.stdout)
    assert case["customer"]["email"] == "wu.gang@customer.cn"


# ---------------------------------------------------------------- AUTH


def users_file(tmp_path: Path, config: Path, name: str = "gateway", password: str = "s3cret") -> Path:
    users = tmp_path / "smtp-users"
    done = cli(config, "users", "add", name, "--file", str(users), stdin=password.encode() + b"\n")
    assert done.returncode == 0, done.stderr
    return users


def test_users_add_writes_a_hash_in_a_private_file(tmp_path: Path) -> None:
    config = tmp_path / "casegate.toml"
    config.write_text('[service]\naddress = "service@desk.example.cn"\n')
    users = users_file(tmp_path, config)
    text = users.read_text()
    assert text.startswith("gateway:$scrypt$") and "s3cret" not in text
    assert users.stat().st_mode & 0o777 == 0o600
    users_file(tmp_path, config, password="n3w")  # a new password replaces the line
    assert users.read_text().count("gateway:") == 1


def test_auth_is_offered_only_after_starttls_and_checks_the_hash(tmp_path: Path, port: int,
                                                                  tls_pair: tuple[Path, Path]) -> None:
    cert, key = tls_pair
    cfg = listener_config(port, tls_cert_file=str(cert), tls_key_file=str(key), require_auth=True)
    d = DaemonProcess(tmp_path, cfg)
    cfg["sources"][0]["auth_users_file"] = str(users_file(tmp_path, d.config_path))
    d = DaemonProcess(tmp_path, cfg).start()
    try:
        with smtplib.SMTP("127.0.0.1", port) as s:
            s.ehlo()
            assert not s.has_extn("auth")  # never a password in clear text
            s.starttls(context=client_context(cert))
            s.ehlo()
            assert s.has_extn("auth")
            with pytest.raises(smtplib.SMTPAuthenticationError):
                s.login("gateway", "wrong")
        with smtplib.SMTP("127.0.0.1", port) as s:
            s.starttls(context=client_context(cert))
            with pytest.raises(smtplib.SMTPAuthenticationError):
                s.login("nobody", "s3cret")
        with smtplib.SMTP("127.0.0.1", port) as s:
            s.starttls(context=client_context(cert))
            s.login("gateway", "s3cret")
            s.sendmail("e@customer.cn", ["service@desk.example.cn"], mail(sender="e@customer.cn"))
    finally:
        assert d.terminate() == 0
    assert d.log().count("outcome=new") == 1


def test_auth_on_implicit_tls(tmp_path: Path, port: int, tls_pair: tuple[Path, Path]) -> None:
    cert, key = tls_pair
    cfg = listener_config(port, tls_cert_file=str(cert), tls_key_file=str(key), implicit_tls=True, require_auth=True)
    cfg["sources"][0]["auth_users_file"] = str(users_file(tmp_path, DaemonProcess(tmp_path, cfg).config_path))
    d = DaemonProcess(tmp_path, cfg).start()
    try:
        with smtplib.SMTP_SSL("127.0.0.1", port, context=client_context(cert)) as s:
            s.login("gateway", "s3cret")
            s.sendmail("e@customer.cn", ["service@desk.example.cn"], mail(sender="e@customer.cn"))
    finally:
        assert d.terminate() == 0
    assert d.log().count("outcome=new") == 1


@pytest.mark.parametrize("problem", ["world-readable", "plain-text", "no-tls"])
def test_the_daemon_refuses_to_start_with_an_unsafe_users_file(tmp_path: Path, port: int,
                                                               tls_pair: tuple[Path, Path], problem: str) -> None:
    cert, key = tls_pair
    tls = {} if problem == "no-tls" else {"tls_cert_file": str(cert), "tls_key_file": str(key)}
    cfg = listener_config(port, **tls)
    users = users_file(tmp_path, DaemonProcess(tmp_path, cfg).config_path)
    if problem == "world-readable":
        os.chmod(users, 0o644)
    if problem == "plain-text":
        users.write_text("gateway:s3cret\n")
    cfg["sources"][0]["auth_users_file"] = str(users)
    d = DaemonProcess(tmp_path, cfg).start(wait_ready=False)
    code = d.wait_exit(30)
    assert code == 78, d.log()
    expected = {"world-readable": "chmod 600", "plain-text": "casegate users add", "no-tls": "only over TLS"}[problem]
    assert expected in d.log()
    assert "Traceback" not in d.log()
