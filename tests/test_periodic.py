"""The one loop mechanism of the daemon (daemon/runtime/periodic.py): steps,
snoozes, wake-ups, backoff, an outage logged once, and the sweeps' APScheduler
trigger. Time is a fake clock; threads wait on events, never on sleeps."""

from __future__ import annotations

import logging
import queue
from datetime import datetime, timedelta, timezone

import pytest
from apscheduler.triggers.interval import IntervalTrigger

from casegate.daemon.runtime.periodic import Backoff, Every, OnTrigger, Periodic
from casegate.storage.db import DatabaseUnavailable

LOG = logging.getLogger("casegate.test.periodic")


class Steps:
    """A step that fails or succeeds as told, and records each call."""

    def __init__(self, *outcomes: Exception | bool) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0
        self.released = 0
        self.errors: list[str] = []

    def step(self) -> bool:
        self.calls += 1
        outcome = self.outcomes.pop(0) if self.outcomes else False
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def release(self) -> None:
        self.released += 1

    def error(self, message: str) -> None:  # Health
        self.errors.append(message)


def loop_of(steps: Steps, **kwargs: object) -> Periodic:
    return Periodic("source=test", steps.step, Every(3600), log=LOG, release=steps.release,
                    health=steps, **kwargs)  # type: ignore[arg-type]


def test_an_outage_is_logged_once_then_retried_quietly_and_its_recovery_logged(caplog) -> None:
    down = DatabaseUnavailable("connection refused")
    steps = Steps(down, down, down, False)
    loop = loop_of(steps)
    caplog.set_level(logging.DEBUG, logger=LOG.name)
    for _ in range(4):
        loop.run_once()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "source=test: database unavailable: connection refused (retrying with backoff)"]
    assert errors[0].exc_info is None  # an expected outage: no traceback
    assert sum("still failing" in r.getMessage() for r in caplog.records) == 2
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == ["source=test: recovered"]
    assert steps.errors == ["database unavailable: connection refused"] * 3  # the status shows each
    assert steps.released == 3  # a failed step drops its connection
    assert loop.failing is None and loop.failures == 0


def test_a_new_kind_of_failure_is_logged_again_and_a_surprise_with_its_traceback(caplog) -> None:
    steps = Steps(OSError("refused"), KeyError("bug"))
    loop = loop_of(steps, explain=lambda exc: "login failed" if isinstance(exc, PermissionError) else None)
    caplog.set_level(logging.INFO, logger=LOG.name)
    loop.run_once()
    loop.run_once()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == ["source=test: OSError: refused (retrying with backoff)",
                                                "source=test: KeyError: 'bug' (retrying with backoff)"]
    assert errors[0].exc_info is None and errors[1].exc_info is not None
    assert loop.failures == 2


def test_a_source_names_its_own_expected_failures(caplog) -> None:
    steps = Steps(PermissionError("no"))
    loop = loop_of(steps, explain=lambda exc: "login failed for bob" if isinstance(exc, PermissionError) else None)
    caplog.set_level(logging.INFO, logger=LOG.name)
    loop.run_once()
    assert steps.errors == ["login failed for bob"]


def test_backoff_doubles_with_jitter_up_to_its_most() -> None:
    backoff = Backoff(first=1.0, most=300.0, jitter=0.25)
    for failures, base in ((1, 1.0), (2, 2.0), (3, 4.0), (9, 256.0), (10, 300.0), (10_000, 300.0)):
        for _ in range(20):
            assert base * 0.75 <= backoff.delay(failures) <= base * 1.25
    assert Backoff(jitter=0.0).delay(2) == 2.0


def test_wake_runs_the_next_step_at_once_and_stop_ends_the_loop() -> None:
    ran: queue.Queue[int] = queue.Queue()
    count = 0

    def step() -> bool:
        nonlocal count
        count += 1
        ran.put(count)
        return False

    loop = Periodic("outbox", step, Every(3600), log=LOG)  # would snooze an hour
    thread = loop.start()
    try:
        assert ran.get(timeout=5) == 1
        loop.wake()
        assert ran.get(timeout=5) == 2
    finally:
        loop.stop()
        thread.join(5)
    assert not thread.is_alive() and loop.join(0)


def test_a_busy_step_is_followed_at_once_and_stop_is_seen_by_the_step() -> None:
    seen: list[bool] = []
    loop: Periodic

    def step() -> bool:
        seen.append(True)
        if len(seen) == 3:
            loop.stop()  # e.g. SIGTERM during a batch: the step in hand finishes
        return True  # more waiting

    loop = Periodic("imap", step, Every(3600), log=LOG)
    thread = loop.start()
    thread.join(5)
    assert not thread.is_alive()
    assert len(seen) == 3 and loop.stopping.is_set()


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def sweeps_cadence(clock: FakeClock, grace: timedelta = timedelta(minutes=10)) -> OnTrigger:
    trigger = IntervalTrigger(seconds=60, start_date=clock(), timezone=timezone.utc)
    return OnTrigger(trigger, grace, clock, LOG, "sweeps")


def test_sweeps_run_at_start_then_on_the_triggers_interval() -> None:
    clock = FakeClock(START)
    cadence = sweeps_cadence(clock)
    assert cadence.due()  # the first sweep at start
    assert not cadence.due()
    assert cadence.pause() == pytest.approx(60)
    clock.advance(seconds=45)  # e.g. a long sweep: the interval is kept from the start, not from its end
    assert not cadence.due() and cadence.pause() == pytest.approx(15)
    clock.advance(seconds=15)
    assert cadence.due()


def test_missed_sweeps_are_coalesced_into_one_run() -> None:
    clock = FakeClock(START)
    cadence = sweeps_cadence(clock)
    assert cadence.due()
    clock.advance(seconds=5 * 60 + 20)  # suspended: five fire times missed
    assert cadence.due()
    assert not cadence.due()  # once, not five times
    assert cadence.next_run == START + timedelta(minutes=6)


def test_a_sweep_later_than_the_misfire_grace_is_skipped(caplog) -> None:
    clock = FakeClock(START)
    cadence = OnTrigger(IntervalTrigger(minutes=30, start_date=START, timezone=timezone.utc),
                        timedelta(minutes=10), clock, LOG, "sweeps")
    assert cadence.due()
    clock.advance(minutes=30 + 15)  # the 09:30 run is 15 minutes late
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        assert not cadence.due()
    assert "was missed by" in caplog.text
    assert cadence.next_run == START + timedelta(hours=1)
