"""Parsing batches in a worker process: same outcomes as inline, and a dead
worker costs a retry inline, never a message."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from casegate.daemon.sources.parse_pool import MIN_POOL_BATCH, ParsePool
from casegate.daemon.stages.intake import parse_outcome

DATA = Path(__file__).parent / "data" / "mail"


def corpus() -> list[bytes]:
    raws = [p.read_bytes() for p in sorted(DATA.glob("*.eml"))]
    return (raws * (MIN_POOL_BATCH // len(raws) + 2))[: max(MIN_POOL_BATCH, len(raws))]


def test_pool_gives_the_same_outcomes_as_inline_parsing() -> None:
    raws = corpus()
    pool = ParsePool(1)
    try:
        got = pool.results(pool.submit(raws), raws)
    finally:
        pool.close()
    want = [parse_outcome(r) for r in raws]
    assert got == want
    assert any(isinstance(o, str) and o.startswith("cannot parse") for o in got)  # garbage.eml


def test_a_killed_worker_falls_back_to_inline_parsing() -> None:
    raws = corpus()
    pool = ParsePool(1)
    try:
        pool.submit(raws).result()  # worker is up
        for pid in list(pool._executor()._processes):  # type: ignore[attr-defined]
            os.kill(pid, signal.SIGKILL)
        future = pool.submit(raws)
        got = pool.results(future, raws)
        assert got == [parse_outcome(r) for r in raws]
        # and the pool works again afterwards
        assert pool.results(pool.submit(raws), raws) == got
    finally:
        pool.close()


def test_small_batches_and_zero_workers_parse_inline() -> None:
    pool = ParsePool(0)
    raws = corpus()
    assert pool.results(pool.submit(raws), raws) == [parse_outcome(r) for r in raws]
    assert pool._pool is None
