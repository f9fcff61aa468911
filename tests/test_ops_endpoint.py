"""The operator's HTTP listener of `casegate run`: /metrics, /healthz, /readyz,
scraped from a real daemon process reading a real Dovecot."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from daemon_proc import DaemonProcess, wait_until
from helpers import mail
from servers.ports import free_port
from test_daemon_imap import counts, daemon_config

pytestmark = pytest.mark.dovecot


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def ingested(text: str, outcome: str) -> float:
    return samples(text).get(("casegate_messages_ingested_total",
                              (("outcome", outcome), ("source", "imap-main"))), 0.0)


def start(tmp_path: Path, user, sink, port: int, **imap) -> DaemonProcess:
    cfg = daemon_config(user, sink, **imap)
    cfg["metrics"] = {"enabled": True, "address": "127.0.0.1", "port": port}
    d = DaemonProcess(tmp_path, cfg, env={"CG_TEST_IMAP_PASSWORD": user.password})
    return d.start()


def test_metrics_show_ingested_count_matching_the_cases(tmp_path, dovecot_user, smtp_sink) -> None:
    for i in range(3):
        dovecot_user.append("INBOX", mail(subject=f"系统宕机 {i}", sender=f"c{i}@customer.cn"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    d = start(tmp_path, dovecot_user, smtp_sink, port)
    try:
        wait_until(lambda: dovecot_user.count("Processed") == 3, what="messages moved")
        smtp_sink.wait_for(3, timeout=15)
        # IDLE delivers the fourth one: a wake-up is counted
        dovecot_user.append("INBOX", mail(subject="网络中断", sender="late@customer.cn"))
        wait_until(lambda: ingested(get(f"{base}/metrics")[1], "new") == 4, what="4 counted")
        assert get(f"{base}/healthz") == (200, "ok\n")
        wait_until(lambda: get(f"{base}/readyz")[0] == 200, what="ready")
        wait_until(lambda: samples(get(f"{base}/metrics")[1]).get(
            ("casegate_outbox_messages", (("state", "sent"),))) == 4, what="outbox sent 4")
        text = get(f"{base}/metrics")[1]
        s = samples(text)
        assert s[("casegate_source_connected", (("kind", "imap"), ("source", "imap-main")))] == 1
        assert s[("casegate_imap_idle_wakeups_total", (("source", "imap-main"),))] >= 1
        assert s[("casegate_database_up", ())] == 1
        assert s[("casegate_quarantined_messages", ())] == 0
        assert s[("casegate_source_last_success_age_seconds", (("source", "imap-main"),))] < 60
        assert ("casegate_batch_size_count", (("source", "imap-main"),)) in s
        assert ("casegate_store_seconds_bucket", (("le", "+Inf"), ("source", "imap-main"))) in s
        assert s[("casegate_calendar_last_covered_year", ())] >= 2026
        assert s[("casegate_loop_steps_total", (("loop", "outbox"), ("result", "ok")))] >= 1
        assert get(f"{base}/nothing")[0] == 404
    finally:
        assert d.terminate() == 0
    c = counts(tmp_path)
    assert c["cases"] == 4 == ingested(text, "new")


def test_readyz_turns_unhealthy_when_dovecot_stops_and_healthy_when_it_is_back(
        tmp_path, dovecot, dovecot_user, smtp_sink) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    d = start(tmp_path, dovecot_user, smtp_sink, port, poll_interval="2s", timeout="5s")
    try:
        wait_until(lambda: get(f"{base}/readyz")[0] == 200, what="ready at start")
        dovecot.stop()
        wait_until(lambda: get(f"{base}/readyz")[0] == 503, timeout=20, what="not ready with Dovecot stopped")
        status, body = get(f"{base}/readyz")
        assert "source imap-main" in body, body
        assert get(f"{base}/healthz")[0] == 200  # alive all the same
        s = samples(get(f"{base}/metrics")[1])
        assert s[("casegate_source_connected", (("kind", "imap"), ("source", "imap-main")))] == 0
        dovecot.start()
        # the loop backs off (at most a few seconds after a short outage), then reconnects
        wait_until(lambda: get(f"{base}/readyz")[0] == 200, timeout=40, what="ready again")
        dovecot_user.append("INBOX", mail(subject="恢复之后", sender="back@customer.cn"))
        smtp_sink.wait_for(1, timeout=20)
    finally:
        if not dovecot.running:
            dovecot.start()
        assert d.terminate() == 0
