"""One way for the daemon's loops to run, sleep, back off and report an outage.

Every loop of ``casegate run`` is a :class:`Periodic`: the IMAP and spool
sources, the outbox sender, the rule-folder check, the systemd watchdog and
the SLA sweeps. In the spirit of Mailman's ``core/runner.py`` (``run``,
``_one_iteration``, ``_snooze``) a Periodic runs one *step* at a time, in a
thread of its own:

- a step returns True when more work may be waiting (the next step follows at
  once) and False when it is done for now: the loop then snoozes until its
  :class:`Cadence` says the next step is due, or until :meth:`Periodic.wake`
  (the outbox is woken after an ingest);
- a step that raises is an outage: logged once at ERROR (with the traceback
  when it is not a failure the loop expects, such as the database or a server
  being away), written to the source's status, then retried quietly with
  exponential backoff and jitter; the first step that works again logs
  "recovered";
- :meth:`Periodic.stop` ends the loop after the step in hand; a step that
  waits (IMAP IDLE) or works through a batch checks the same ``stop`` event,
  so SIGTERM finishes the batch in hand and no more.

APScheduler 3 is the clock of the SLA sweeps, not the runner of every loop.
Its jobs run at times; our loops also block for minutes in IMAP IDLE, are
woken early by an ingest and back off while a downstream is away, none of
which an APScheduler job does without reaching into the scheduler from inside
the job (rescheduling on each failure, ``modify`` to wake it). So running,
backing off and reporting are written once, here, and APScheduler keeps what
it is good at: its trigger says when the sweeps are due, with the coalescing
and misfire grace its documentation defines (:class:`OnTrigger`). Its FAQ's
warning about sharing job stores does not apply: the sweeps read due work
from our own tables, so several daemons may sweep one database.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from apscheduler.triggers.base import BaseTrigger

from ..metrics import Metrics
from ...storage.db import DatabaseUnavailable

Step = Callable[[], bool]
#: The message of a failure a loop expects (a server away, a login refused);
#: None for anything else, which is then logged with its traceback.
Explain = Callable[[Exception], str | None]


class Cadence(Protocol):
    """When a loop's next regular step is due."""

    def due(self) -> bool:
        """Whether a step runs now (False: snooze again)."""
        ...

    def pause(self) -> float | None:
        """Seconds to snooze before the next step; None: until woken."""
        ...


@dataclass(frozen=True)
class Every:
    """A step ``seconds`` after the previous one ended, or as soon as woken."""

    seconds: float

    def due(self) -> bool:
        return True

    def pause(self) -> float | None:
        return self.seconds


class OnTrigger:
    """Steps at the fire times of an APScheduler trigger.

    As APScheduler's ``coalesce=True``: fire times missed while a step ran or
    the process slept fold into one run. As its ``misfire_grace_time``: a run
    later than ``grace`` is skipped with a warning, and the next fire time is
    waited for.
    """

    def __init__(self, trigger: BaseTrigger, grace: timedelta, clock: Callable[[], datetime],
                 log: logging.Logger, label: str) -> None:
        self.trigger = trigger
        self.grace = grace
        self.clock = clock
        self.log = log
        self.label = label
        self.next_run: datetime | None = trigger.get_next_fire_time(None, clock())

    def due(self) -> bool:
        now = self.clock()
        if self.next_run is None or self.next_run > now:
            return False
        last, following = self.next_run, self.trigger.get_next_fire_time(self.next_run, now)
        while following is not None and following <= now:
            last, following = following, self.trigger.get_next_fire_time(following, now)
        self.next_run = following
        if now - last > self.grace:
            self.log.warning("%s: run time %s was missed by %s; waiting for the next", self.label,
                             last.isoformat(timespec="seconds"), now - last)
            return False
        return True

    def pause(self) -> float | None:
        if self.next_run is None:
            return None
        return max(0.0, (self.next_run - self.clock()).total_seconds())


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: ``first``, twice that, ... at most ``most`` seconds."""

    first: float = 1.0
    most: float = 300.0
    jitter: float = 0.25

    def delay(self, failures: int) -> float:
        base = min(self.first * 2.0 ** min(max(failures - 1, 0), 32), self.most)
        return base * random.uniform(1.0 - self.jitter, 1.0 + self.jitter)


class Health(Protocol):
    """Where a loop's outage is recorded for `casegate status` (a source's status)."""

    def error(self, message: str) -> None: ...


def expected_failure(exc: Exception) -> str | None:
    """The message of a failure every loop expects: the database or a server away."""
    if isinstance(exc, DatabaseUnavailable):
        return f"database unavailable: {exc}"
    if isinstance(exc, OSError):  # connection refused or reset, timeouts, TLS errors
        return f"{type(exc).__name__}: {exc}"
    return None


class Periodic:
    """One loop of the daemon: step, snooze, back off, report; see the module docstring."""

    def __init__(
        self,
        label: str,
        step: Step,
        cadence: Cadence,
        *,
        log: logging.Logger,
        stop: threading.Event | None = None,
        backoff: Backoff = Backoff(),
        explain: Explain | None = None,
        health: Health | None = None,
        release: Callable[[], None] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.label = label
        self.metrics = metrics  # counts steps by result (casegate_loop_steps_total)
        self.step = step
        self.cadence = cadence
        self.log = log
        # Shared with a step that waits or works through a batch, so it can
        # stop early; set by stop().
        self.stopping = stop if stop is not None else threading.Event()
        self.backoff = backoff
        self.explain = explain
        self.health = health
        self.release = release  # drops what a failed step may have left broken (a connection)
        self.failing: str | None = None  # the outage in progress, if any
        self.failures = 0
        self.thread: threading.Thread | None = None
        self._wake = threading.Event()

    # ------------------------------------------------------------ the loop

    def run(self) -> None:
        """Step and snooze until stopped; the body of the loop's thread."""
        try:
            while not self.stopping.is_set():
                if (self.failures or self.cadence.due()) and self.run_once():
                    continue  # more may be waiting
                if self.stopping.is_set():
                    break
                self._snooze(self.backoff.delay(self.failures) if self.failures else self.cadence.pause())
        finally:
            if self.release is not None:
                self.release()

    def run_once(self) -> bool:
        """One step with the outage handling; True when the step said more is waiting."""
        try:
            busy = self.step()
        except Exception as exc:  # one failing loop never takes the daemon down
            self._failed(exc)
            if self.release is not None:
                self.release()
            return False
        if self.metrics is not None:
            self.metrics.step(self.label, True)
        if self.failing is not None:
            self.log.info("%s: recovered", self.label)
        self.failing, self.failures = None, 0
        return busy

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        if self.metrics is not None:
            self.metrics.step(self.label, False)
        message = (self.explain(exc) if self.explain is not None else None) or expected_failure(exc)
        unexpected = message is None
        if message is None:
            message = f"{type(exc).__name__}: {exc}"
        if message != self.failing:  # an outage is logged once, then retried quietly
            self.log.error("%s: %s (retrying with backoff)", self.label, message,
                           exc_info=exc if unexpected else None)
        else:
            self.log.debug("%s: still failing: %s", self.label, message)
        self.failing = message
        if self.health is not None:
            self.health.error(message)

    def _snooze(self, seconds: float | None) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    # ------------------------------------------------------------ control

    def wake(self) -> None:
        """Run the next step now instead of at the end of the snooze (thread-safe)."""
        self._wake.set()

    def stop(self) -> None:
        """End the loop after the step in hand (thread-safe)."""
        self.stopping.set()
        self._wake.set()

    def start(self) -> threading.Thread:
        """Run the loop in a thread of its own."""
        self.thread = threading.Thread(target=self.run, name=self.label, daemon=True)
        self.thread.start()
        return self.thread

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the loop's thread to end; True when it has."""
        if self.thread is not None:
            self.thread.join(timeout)
            return not self.thread.is_alive()
        return True
