"""`casegate run` against a real Dovecot: ingestion, IDLE, moves, crash
recovery (kill -9 at every step), poison messages, server restarts."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from casegate.daemon.runtime.app import App
from casegate.daemon.config import load_config
from casegate.storage.models import Case, Message, OutboxMessage, Quarantine
from daemon_proc import DaemonProcess, wait_until
from helpers import mail

DATA = Path(__file__).parent / "data" / "mail"
pytestmark = pytest.mark.dovecot


def daemon_config(user, sink, **imap) -> dict:
    source = {
        "name": "imap-main", "kind": "imap", "host": user.host, "port": user.port, "tls": "none",
        "user": user.name, "password_env": "CG_TEST_IMAP_PASSWORD", "poll_interval": "60s",
        "batch_size": 50,
    }
    source.update(imap)
    return {
        "service": {"address": "service@desk.example.cn"},
        "outgoing": {"transport": "smtp", "host": sink.host, "port": sink.port, "poll_interval": "1s"},
        "logging": {"level": "INFO"},
        "sources": [source],
    }


def start(tmp_path: Path, user, sink, env: dict | None = None, **imap) -> DaemonProcess:
    d = DaemonProcess(tmp_path, daemon_config(user, sink, **imap), env={"CG_TEST_IMAP_PASSWORD": user.password})
    return d.start(extra_env=env)


def counts(tmp_path: Path) -> dict[str, int]:
    app = App(load_config(str(tmp_path / "casegate.toml")))
    try:
        with app.db.session() as s:
            def n(model, *where):
                return s.execute(select(func.count()).select_from(model).where(*where)).scalar_one()
            return {
                "cases": n(Case),
                "in": n(Message, Message.direction == "in"),
                "acks": n(OutboxMessage, OutboxMessage.kind == "ack"),
                "quarantine": n(Quarantine),
            }
    finally:
        app.close()


def test_appended_mail_becomes_a_case_is_moved_and_acknowledged(tmp_path, dovecot_user, smtp_sink) -> None:
    dovecot_user.append("INBOX", mail(subject="系统宕机", sender="李四 <lisi@customer.cn>"))
    dovecot_user.append("INBOX", mail(subject="如何配置打印机", sender="王五 <wangwu@customer.cn>"))
    dovecot_user.append("INBOX", (DATA / "garbage.eml").read_bytes())
    d = start(tmp_path, dovecot_user, smtp_sink)
    try:
        wait_until(lambda: dovecot_user.count("Processed") == 2 and dovecot_user.count("Failed") == 1,
                   what="messages moved")
        acks = smtp_sink.wait_for(2, timeout=10)
        assert dovecot_user.count("INBOX") == 0
        assert sorted(str(m["To"]).split("<")[-1].rstrip(">") for m in acks) == [
            "lisi@customer.cn", "wangwu@customer.cn"]
        assert all(str(m["Subject"]).startswith("[SR-") for m in acks), [str(m["Subject"]) for m in acks]
        assert "moved to Failed" in d.log()
    finally:
        assert d.terminate() == 0
    c = counts(tmp_path)
    assert c == {"cases": 2, "in": 2, "acks": 2, "quarantine": 1}


def test_idle_ingests_new_mail_without_waiting_for_the_poll(tmp_path, dovecot_user, smtp_sink) -> None:
    d = start(tmp_path, dovecot_user, smtp_sink, poll_interval="300s")
    try:
        d.wait_for_log("connected to")
        dovecot_user.append("INBOX", mail(subject="网络中断", sender="a@customer.cn"))
        # poll_interval is 5 minutes: only IDLE can deliver this in time
        smtp_sink.wait_for(1, timeout=15)
        assert dovecot_user.count("Processed") == 1
    finally:
        assert d.terminate() == 0


def test_polling_without_idle_also_works(tmp_path, dovecot_user, smtp_sink) -> None:
    d = start(tmp_path, dovecot_user, smtp_sink, idle=False, poll_interval="1s")
    try:
        d.wait_for_log("connected to")
        dovecot_user.append("INBOX", mail(subject="打印机报错", sender="b@customer.cn"))
        smtp_sink.wait_for(1, timeout=15)
    finally:
        assert d.terminate() == 0


@pytest.mark.parametrize("point", ["imap.after_fetch", "imap.ingest:1", "imap.after_commit", "imap.after_move"])
def test_kill_minus_nine_at_any_step_leaves_each_message_ingested_once(tmp_path, dovecot_user, smtp_sink, point) -> None:
    total = 7
    for i in range(total):
        dovecot_user.append("INBOX", mail(subject=f"故障 {i}", sender=f"c{i}@customer.cn"))
    name, _, nth = point.partition(":")
    cfg = daemon_config(dovecot_user, smtp_sink, batch_size=3)
    # The maildir transport is exactly-once across crashes (SMTP cannot be:
    # see README), so the acknowledgements can be counted exactly too.
    cfg["outgoing"] = {"transport": "maildir", "maildir": "outbox", "poll_interval": "1s"}
    env = {"CG_TEST_IMAP_PASSWORD": dovecot_user.password}
    # batch_size 3: the kill lands in the middle of the work, with batches on both sides
    d = DaemonProcess(tmp_path, cfg, env=env).start(extra_env={"CASEGATE_FAULT": f"{name}:{nth or 2}"})
    assert d.wait_exit(timeout=30) == -9, d.log()
    assert dovecot_user.count("Processed") < total
    d2 = DaemonProcess(tmp_path, cfg, env=env).start()
    acks = tmp_path / "outbox" / "new"
    try:
        wait_until(lambda: dovecot_user.count("Processed") == total, what="all processed")
        wait_until(lambda: len(list(acks.iterdir())) >= total, what="all acknowledgements written")
    finally:
        assert d2.terminate() == 0
    assert dovecot_user.count("INBOX") == 0
    assert dovecot_user.count("Failed") == 0
    c = counts(tmp_path)
    assert c["cases"] == total and c["in"] == total and c["acks"] == total
    recipients = sorted(f.read_text().split("\nTo: ")[1].split("\n")[0] for f in acks.iterdir())
    assert len(recipients) == total and len(set(recipients)) == total


def test_poison_message_that_kills_the_daemon_is_set_aside(tmp_path, dovecot_user, smtp_sink) -> None:
    dovecot_user.append("INBOX", mail(subject="正常 1", sender="g1@customer.cn"))
    dovecot_user.append("INBOX", mail(subject="poison", sender="p@customer.cn", headers={"X-Test": "Poison-Pill"}))
    dovecot_user.append("INBOX", mail(subject="正常 2", sender="g2@customer.cn"))
    env = {"CASEGATE_FAULT": "imap.ingest~Poison-Pill"}
    runs = 0
    while dovecot_user.count("INBOX") and runs < 8:
        runs += 1
        d = DaemonProcess(tmp_path, daemon_config(dovecot_user, smtp_sink, max_attempts=3),
                          env={"CG_TEST_IMAP_PASSWORD": dovecot_user.password, **env})
        d.start(wait_ready=False)
        try:
            wait_until(lambda: d.proc.poll() is not None or dovecot_user.count("INBOX") == 0, timeout=20)
        finally:
            if d.proc.poll() is None:
                d.terminate()
            else:
                d.wait_exit()
    assert dovecot_user.count("INBOX") == 0, f"still not drained after {runs} runs"
    assert dovecot_user.count("Processed") == 2
    assert dovecot_user.count("Failed") == 1
    c = counts(tmp_path)
    assert c["cases"] == 2 and c["quarantine"] == 1
    assert runs <= 5  # bounded: the poison message cost at most max_attempts crashes


def test_source_survives_a_server_restart(tmp_path, dovecot, dovecot_user, smtp_sink) -> None:
    d = start(tmp_path, dovecot_user, smtp_sink, poll_interval="1s")
    try:
        d.wait_for_log("connected to")
        dovecot.restart(graceful=False)
        dovecot_user.append("INBOX", mail(subject="重启之后", sender="r@customer.cn"))
        smtp_sink.wait_for(1, timeout=30)
        assert "retrying with backoff" in d.log()
    finally:
        if not dovecot.running:
            dovecot.start()
        assert d.terminate() == 0


def test_wrong_password_is_reported_and_other_sources_keep_running(tmp_path, dovecot_user, smtp_sink) -> None:
    import smtplib

    cfg = daemon_config(dovecot_user, smtp_sink)
    cfg["sources"].append({"name": "smtp-in", "kind": "smtp", "host": "127.0.0.1", "port": _free_port(),
                           "accept_domains": ["desk.example.cn"]})
    d = DaemonProcess(tmp_path, cfg, env={"CG_TEST_IMAP_PASSWORD": "wrong"}).start()
    try:
        d.wait_for_log("login failed")
        port = cfg["sources"][1]["port"]
        with smtplib.SMTP("127.0.0.1", port) as s:
            s.sendmail("x@customer.cn", ["service@desk.example.cn"], mail(sender="x@customer.cn"))
        smtp_sink.wait_for(1, timeout=10)
    finally:
        assert d.terminate() == 0
    import subprocess, sys
    out = subprocess.run([sys.executable, "-m", "casegate.daemon.cli", "--config", str(tmp_path / "casegate.toml"),
                          "status"], capture_output=True, text=True, cwd=tmp_path)
    assert "imap-main" in out.stdout and "login failed" in out.stdout
    assert "smtp-in" in out.stdout


def _free_port() -> int:
    from servers.ports import free_port

    return free_port("127.0.0.1")
