"""The outbox worker: retries with backoff, permanent failures, giving up,
and no second copy after a crash between delivery and bookkeeping."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import select

from casegate.daemon.inbound import Inbound
from casegate.daemon.runtime.app import App
from casegate.daemon.runtime.outbox import LEASE
from casegate.daemon.inbound import Source
from casegate.storage import outbox as outbox_table
from casegate.storage.models import OutboxMessage
from helpers import make_config, mail
from servers.ports import free_port

SRC = Source("test", "file")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def rows(app: App) -> list[OutboxMessage]:
    with app.db.session() as s:
        return list(s.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars())


def relay_app(tmp_path: Path, port: int, clock: Clock, **outgoing) -> App:
    cfg = make_config(tmp_path, outgoing={"transport": "smtp", "host": "127.0.0.1", "port": port,
                                          "retry_initial": "1m", "retry_max": "10m", "give_up_after": "1h",
                                          "timeout": "5s", **outgoing})
    return App(cfg, clock=clock)


def test_relay_down_retries_with_backoff_then_delivers(tmp_path: Path, smtp_sink) -> None:
    clock = Clock(datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc))
    app = relay_app(tmp_path, free_port(), clock)  # nothing listens there
    app.pipeline.ingest(Inbound(mail(), SRC))
    delays = []
    for _ in range(3):
        report = app.outbox.send_due()
        assert report.retried == 1 and report.sent == 0
        row = rows(app)[0]
        assert row.state == "queued" and row.last_error and "relay 127.0.0.1" in row.last_error
        delays.append(row.next_attempt_at - clock.now)
        # nothing is tried again before it is due
        clock.now = row.next_attempt_at - timedelta(seconds=1)
        assert app.outbox.send_due().retried == 0
        clock.now = row.next_attempt_at
    assert delays == [timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=4)]
    assert rows(app)[0].attempts == 3
    # the relay comes back (same app, relay reconfigured to the live sink)
    app.outbox.transport.cfg = app.outbox.transport.cfg.__class__(
        **{**app.outbox.transport.cfg.__dict__, "port": smtp_sink.port})
    clock.now += timedelta(minutes=10)
    assert app.outbox.send_due().sent == 1
    assert len(smtp_sink.wait_for(1)) == 1
    row = rows(app)[0]
    assert row.state == "sent" and row.attempts == 4 and row.last_error is None


def test_message_still_unsent_after_give_up_time_is_marked_failed(tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc))
    app = relay_app(tmp_path, free_port(), clock)
    app.pipeline.ingest(Inbound(mail(), SRC))
    app.outbox.send_due()
    clock.now += timedelta(hours=2)
    report = app.outbox.send_due()
    assert report.failed == 1
    assert rows(app)[0].state == "failed"
    out = subprocess.run(
        [sys.executable, "-m", "casegate.daemon.cli", "outbox", "list", "--state", "failed"],
        capture_output=True, text=True, cwd=tmp_path,
        env={**os.environ, "CASEGATE_CONFIG": ""},
    )
    assert out.returncode == 0
    assert " failed " in out.stdout and "Connection refused" in out.stdout


def test_recipient_refused_with_5xx_fails_at_once(tmp_path: Path) -> None:
    from servers.smtp_sink import SmtpSink

    sink = SmtpSink()
    sink.start()
    try:
        # make this relay refuse every recipient with a permanent error
        handler = sink._controller.handler  # type: ignore[attr-defined]

        async def handle_RCPT(server, session, envelope, address, rcpt_options):
            return "550 5.1.1 no such user"

        handler.handle_RCPT = handle_RCPT
        clock = Clock(datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc))
        app = relay_app(tmp_path, sink.port, clock)
        app.pipeline.ingest(Inbound(mail(), SRC))
        report = app.outbox.send_due()
        assert report.failed == 1
        row = rows(app)[0]
        assert row.state == "failed" and "550" in row.last_error
    finally:
        sink.stop()


def test_crash_after_maildir_write_does_not_write_twice(tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc))
    app = App(make_config(tmp_path), clock=clock)
    app.pipeline.ingest(Inbound(mail(), SRC))
    # a worker claims and writes the file, then "dies" before recording it
    batch = app.outbox.claim(10)
    app.outbox.transport.deliver(batch)
    assert rows(app)[0].state == "sending"
    # after the lease runs out, the next worker finds the file already there
    clock.now += LEASE + timedelta(seconds=1)
    app.outbox.send_due()
    assert rows(app)[0].state == "sent"
    assert len(list((tmp_path / "outbox" / "new").iterdir())) == 1


def test_leases_of_a_dead_process_on_this_host_are_released_at_start(tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc))
    app = App(make_config(tmp_path), clock=clock)
    app.pipeline.ingest(Inbound(mail(), SRC))
    app.outbox.claim(10)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with app.db.transaction() as s:
        row = s.execute(select(OutboxMessage)).scalars().one()
        row.claimed_by = f"{row.claimed_by.rpartition(':')[0]}:{dead.pid}"
    assert app.outbox.send_due().sent == 0  # still leased
    assert app.outbox.recover() == 1
    assert app.outbox.send_due().sent == 1
    assert len(list((tmp_path / "outbox" / "new").iterdir())) == 1


def test_a_late_recovery_does_not_take_mail_from_the_daemon_that_claimed_it_since(tmp_path: Path) -> None:
    """Two daemons recovering a dead peer's mails at once: one releases them and
    a third daemon claims them; the other's recovery, which looked before that,
    must leave them with the third (an update by id sent them twice)."""
    clock = Clock(datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc))
    app = App(make_config(tmp_path), clock=clock)
    app.pipeline.ingest(Inbound(mail(), SRC))
    host = socket.gethostname()
    dead_holder = f"{host}:999999999"
    with app.db.transaction() as s:
        row = s.execute(select(OutboxMessage)).scalars().one()
        row.state, row.claimed_by, row.next_attempt_at = "sending", dead_holder, clock.now + LEASE
    with app.db.transaction() as s:
        assert outbox_table.holders_on_host(s, host) == {dead_holder}  # the late recovery's look
    with app.db.transaction() as s:
        assert outbox_table.release_claims(s, dead_holder, clock.now) == 1  # the first recovery
    claimed = app.outbox.claim(10)  # a third daemon (here: this one) takes the mail
    assert len(claimed) == 1
    with app.db.transaction() as s:
        assert outbox_table.release_claims(s, dead_holder, clock.now) == 0  # the late one: nothing
    assert app.outbox.claim(10) == []  # nobody else may take it while it is being sent
