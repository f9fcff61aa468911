"""Parsing in worker processes, with a time budget per message.

Parsing is pure CPU work (parsers/ does no I/O) and the daemon's storing is
bound to one core by the GIL; a worker process puts the second core to use,
so a batch is parsed while the previous one is being stored.

A worker is also the only place where a parse can be stopped: a thread
cannot be interrupted inside a regular expression, a process can be killed.
Each worker process has a feeder thread in the daemon that hands it a batch
and reads one outcome per message as it is ready. When one message takes
longer than ``timeout`` (counted from the previous message's outcome), the
process is killed, that message gets the reason ``parse timeout`` (it is
stored raw in quarantine) and the rest of the batch goes on in a fresh
process. A message whose parse kills the process (a poison message) is
retried alone once in a fresh process and then gets ``parser process
died``. The normal path pays one pickled round trip per batch, nothing more.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from ..stages.intake import ParseOutcome, parse_outcome

log = logging.getLogger("casegate.parse")

#: How long a new worker process may take to import the parsers.
STARTUP_TIMEOUT = 60.0

#: One message for a worker: raw bytes and the envelope sender, if known.
Item = tuple[bytes, str | None]
#: What parses one message (a module-level function: it is sent to the worker by name).
ParseFunction = Callable[[bytes, str | None], ParseOutcome]


def _parse_many(items: Sequence[Item], parse: ParseFunction = parse_outcome) -> list[ParseOutcome]:
    return [parse(raw, envelope_from) for raw, envelope_from in items]


def _serve(conn: Connection, parse: ParseFunction) -> None:
    """The worker process: parse each batch received, one outcome sent per message."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon decides when to stop
    conn.send("ready")  # imports done: the budget of the first message starts now
    while True:
        try:
            items: list[Item] = conn.recv()
        except (EOFError, OSError):
            return
        for raw, envelope_from in items:
            conn.send(parse(raw, envelope_from))


class Parsed:
    """A finished result with the Future interface (for inline parsing)."""

    def __init__(self, value: list[ParseOutcome]) -> None:
        self._value = value

    def result(self, timeout: float | None = None) -> list[ParseOutcome]:
        return self._value


#: Parsing under way: in a worker process, or already done inline.
Parsing = Future[list[ParseOutcome]] | Parsed


@dataclass
class _Job:
    items: list[Item]
    future: Future[list[ParseOutcome]] = field(default_factory=Future)


class _Worker:
    """One parser process and the daemon thread that feeds it."""

    def __init__(self, jobs: queue.Queue[_Job | None], timeout: float, number: int, parse: ParseFunction) -> None:
        self.jobs = jobs
        self.parse = parse
        self.timeout = timeout
        self.number = number
        self.process: BaseProcess | None = None
        self.conn: Connection | None = None
        self.thread = threading.Thread(target=self._run, name=f"parse-feeder-{number}", daemon=True)
        self.thread.start()

    # ------------------------------------------------------------ the process

    def _spawn(self) -> Connection:
        if self.process is not None and self.process.is_alive() and self.conn is not None:
            return self.conn
        self._kill()
        # spawn: the daemon has threads, and forking a threaded process can
        # copy a held lock into the child.
        ctx = multiprocessing.get_context("spawn")
        ours, theirs = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(theirs, self.parse), name=f"casegate-parse-{self.number}",
                                   daemon=True)
        self.process.start()
        theirs.close()
        self.conn = ours
        if not ours.poll(STARTUP_TIMEOUT) or ours.recv() != "ready":
            raise OSError("a parser process did not start")
        return ours

    def _kill(self) -> None:
        process, conn, self.process, self.conn = self.process, self.conn, None, None
        if process is not None:
            if process.is_alive():
                process.kill()
            process.join(5)
        if conn is not None:
            conn.close()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.is_alive() else None

    # ------------------------------------------------------------ the feeder

    def _run(self) -> None:
        try:
            self._spawn()  # ready before the first batch: a new process takes a second to import
        except (OSError, ValueError, EOFError):
            self._kill()  # the first batch tries again
        while True:
            job = self.jobs.get()
            if job is None:
                self._kill()
                return
            if not job.future.set_running_or_notify_cancel():
                continue
            try:
                job.future.set_result(self._parse(job.items))
            except Exception as exc:  # never leave a caller waiting
                job.future.set_exception(exc)

    def _parse(self, items: list[Item]) -> list[ParseOutcome]:
        out: list[ParseOutcome] = []
        retried = False  # a dead process earns the message in hand one retry alone
        while len(out) < len(items):
            pending = items[len(out):] if not retried else items[len(out):len(out) + 1]
            try:
                conn = self._spawn()
                conn.send(pending)
            except (OSError, ValueError, EOFError):  # the process died while idle: a fresh one
                self._kill()
                conn = self._spawn()
                conn.send(pending)
            for _ in pending:
                started = time.monotonic()
                if not conn.poll(self.timeout):
                    log.error("parsing a message took over %.0f s; the parser was stopped and the message "
                              "is kept raw", self.timeout)
                    self._kill()
                    out.append(f"parse timeout: over the {self.timeout:g} s budget "
                               f"(stopped after {time.monotonic() - started:.1f} s)")
                    retried = False
                    break
                try:
                    out.append(conn.recv())
                    retried = False
                except (EOFError, OSError):
                    self._kill()
                    if retried:
                        log.error("a message killed the parser process twice; it is kept raw")
                        out.append("parser process died on this message")
                        retried = False
                    else:
                        log.error("a parser process died; retrying the message it held alone")
                        retried = True
                    break
        return out

    def stop(self) -> None:
        self._kill()


class ParsePool:
    """Worker processes that parse, each message within ``timeout`` seconds."""

    def __init__(self, workers: int, timeout: float = 10.0, parse: ParseFunction = parse_outcome) -> None:
        self.workers = workers
        self.timeout = timeout
        self.parse = parse
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._feeders: list[_Worker] = []
        self._lock = threading.Lock()

    def _ensure_started(self) -> None:
        with self._lock:
            while len(self._feeders) < self.workers:
                self._feeders.append(_Worker(self._jobs, self.timeout, len(self._feeders) + 1, self.parse))

    def start(self) -> None:
        """Start the worker processes now (the daemon, at start), not with the first batch."""
        if self.workers > 0:
            self._ensure_started()

    def submit(self, raws: Sequence[bytes], envelope_froms: Sequence[str | None] | None = None) -> Parsing:
        """Start parsing ``raws``; ``.result()`` gives one outcome per message.

        ``envelope_froms``, one per message, are the envelope senders a source knows.
        """
        froms = list(envelope_froms) if envelope_froms is not None else [None] * len(raws)
        items = list(zip(raws, froms))
        if self.workers <= 0 or not items:
            return Parsed(_parse_many(items, self.parse))
        self._ensure_started()
        job = _Job(items)
        self._jobs.put(job)
        return job.future

    def results(self, future: Parsing, raws: Sequence[bytes]) -> list[ParseOutcome]:
        return future.result()

    def parse_one(self, raw: bytes, envelope_from: str | None = None) -> ParseOutcome:
        """Parse one message, waiting for it (from a worker thread, never the event loop)."""
        return self.submit([raw], [envelope_from]).result()[0]

    def pids(self) -> list[int]:
        """The worker processes running now."""
        return [pid for pid in (w.pid for w in self._feeders) if pid is not None]

    def close(self) -> None:
        with self._lock:
            feeders, self._feeders = self._feeders, []
        for _ in feeders:
            self._jobs.put(None)
        for feeder in feeders:
            feeder.thread.join(5)
