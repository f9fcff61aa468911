"""Parsing in worker processes, so a batch is parsed while the previous one
is being stored.

Parsing is pure CPU work (parsers/ does no I/O) and the daemon's storing is
bound to one core by the GIL; a worker process puts the second core to use.
A parser crash that takes its process down (a poison message) then costs a
worker, not the daemon: the pool is rebuilt and the batch parsed inline,
where the usual error handling quarantines the culprit.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from ..stages.intake import ParseOutcome, parse_outcome

log = logging.getLogger("casegate.parse")

# Below this many messages a round trip to a worker costs more than it saves.
MIN_POOL_BATCH = 16


def _parse_many(raws: Sequence[bytes]) -> list[ParseOutcome]:
    return [parse_outcome(raw) for raw in raws]


class Parsed:
    """A finished result with the Future interface (for inline parsing)."""

    def __init__(self, value: list[ParseOutcome]) -> None:
        self._value = value

    def result(self, timeout: float | None = None) -> list[ParseOutcome]:
        return self._value


#: Parsing under way: in a worker process, or already done inline.
Parsing = Future[list[ParseOutcome]] | Parsed


class ParsePool:
    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn: the daemon has threads, and forking a threaded process
            # can copy a held lock into the child.
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    def submit(self, raws: Sequence[bytes]) -> Parsing:
        """Start parsing ``raws``; ``.result()`` gives one outcome per message."""
        if self.workers <= 0 or len(raws) < MIN_POOL_BATCH:
            return Parsed(_parse_many(raws))
        try:
            return self._executor().submit(_parse_many, list(raws))
        except (BrokenProcessPool, RuntimeError):
            self._reset()
            return Parsed(_parse_many(raws))

    def results(self, future: Parsing, raws: Sequence[bytes]) -> list[ParseOutcome]:
        try:
            return future.result()
        except BrokenProcessPool:
            log.error("a parser worker died; parsing this batch in the daemon process instead")
            self._reset()
            return _parse_many(raws)

    def _reset(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self._reset()
