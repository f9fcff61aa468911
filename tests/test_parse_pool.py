"""Parsing in worker processes: same outcomes as inline, a dead worker costs
a retry, never a message, and a message over its time budget is stopped and
kept raw while the rest of its batch goes on."""

from __future__ import annotations

import functools
import hashlib
import os
import signal
import time
from pathlib import Path

import pytest

from casegate.daemon.sources.parse_pool import ParsePool
from casegate.daemon.stages.intake import ParseOutcome, parse_and_keep_attachments, parse_outcome
from casegate.storage.blobs import BlobStore

DATA = Path(__file__).parent / "data" / "mail"


SLOW_MARK = b"X-Test-Endless-Parse: yes\r\n"


def endless_on_mark(raw: bytes, envelope_from: str | None) -> ParseOutcome:
    """Stands for a pathological input the parsers do not yet handle in linear time."""
    if raw.startswith(SLOW_MARK):
        while True:
            time.sleep(0.05)
    return parse_outcome(raw, envelope_from)


def corpus() -> list[bytes]:
    raws = [p.read_bytes() for p in sorted(DATA.glob("*.eml"))]
    return (raws * (16 // len(raws) + 2))[: max(16, len(raws))]


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


def test_a_killed_worker_costs_no_message() -> None:
    raws = corpus()
    pool = ParsePool(1)
    try:
        pool.submit(raws).result()  # worker is up
        for pid in pool.pids():
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        got = pool.results(pool.submit(raws), raws)
        assert got == [parse_outcome(r) for r in raws]
        # and the pool works again afterwards
        assert pool.results(pool.submit(raws), raws) == got
    finally:
        pool.close()


def test_zero_workers_parse_inline() -> None:
    pool = ParsePool(0)
    raws = corpus()
    assert pool.results(pool.submit(raws), raws) == [parse_outcome(r) for r in raws]
    assert pool.pids() == []


def test_envelope_sender_is_the_last_fallback_in_the_worker() -> None:
    raw = b"Subject: no from\r\nTo: service@desk.example.cn\r\n\r\nhello\r\n"
    pool = ParsePool(1)
    try:
        outcome = pool.parse_one(raw, "bounce-7@relay.example.cn")
    finally:
        pool.close()
    assert not isinstance(outcome, str)
    assert outcome.sender_email == "bounce-7@relay.example.cn"


@pytest.mark.parametrize("position", [0, 2])
def test_a_message_over_budget_is_stopped_and_the_batch_goes_on(position: int) -> None:
    raws = corpus()[:4]
    raws.insert(position, SLOW_MARK + corpus()[0])
    pool = ParsePool(1, timeout=1.0, parse=endless_on_mark)
    try:
        pids_before = None
        started = time.monotonic()
        got = pool.results(pool.submit(raws), raws)
        elapsed = time.monotonic() - started
        pids_before = pool.pids()
    finally:
        pool.close()
    assert isinstance(got[position], str) and got[position].startswith("parse timeout")
    others = [o for i, o in enumerate(got) if i != position]
    assert others == [parse_outcome(r) for i, r in enumerate(raws) if i != position]
    assert elapsed < 1.0 + 10  # the budget plus a fresh worker's start, never the endless parse
    assert pids_before  # a fresh worker took over


def test_workers_write_the_attachments_to_the_blob_store_before_the_outcome_returns(tmp_path: Path) -> None:
    """The daemon's pool (App) parses with parse_and_keep_attachments: every
    attachment is a durable blob by the time the storing thread sees the
    outcome, which then finds it in place instead of writing it."""
    raw = (DATA / "attachment_names.eml").read_bytes()
    blobs = BlobStore(tmp_path / "attachments")
    pool = ParsePool(1, parse=functools.partial(parse_and_keep_attachments, str(blobs.root)))
    try:
        (outcome,) = pool.results(pool.submit([raw]), [raw])
    finally:
        pool.close()
    assert not isinstance(outcome, str) and outcome.attachments
    for att in outcome.attachments:
        path = blobs.path_for(hashlib.sha256(att.content).hexdigest())
        assert path.read_bytes() == att.content
