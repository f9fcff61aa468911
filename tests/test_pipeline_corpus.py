"""The whole shared corpus through the real pipeline: nothing raises,
nothing is lost, re-ingesting changes nothing, and the mislabelled Chinese
charset fixtures end up decoded in the stored case."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from casegate.daemon.inbound import Inbound
from casegate.daemon.runtime.app import App
from casegate.daemon.inbound import Source
from casegate.daemon.stages.intake import dedupe_key
from casegate.parsers import ParseError, parse_message
from casegate.storage.models import Case, Message, OutboxMessage, Quarantine
from helpers import make_app

pytestmark = pytest.mark.corpus

BATCH = 50
SRC = Source("corpus", "file")
EXPECTATION_SUFFIXES = (".json", ".xml", ".md", ".tsv")

# From ../shared/corpus/mail-parser/EXPECTED.md (GB2312-labelled GBK, and a
# GB2312 label on UTF-8 text) and the webklex fixture of the same kind.
CHARSET_FIXTURES = {
    "mail-parser/tests/mails/mail_test_9": "我把镜头拉近些，你们看看这个是什么屄，这种场合自然少不了内射",
    "mail-parser/tests/mails/mail_test_12": "代开各地增值税发票",
    "webklex-php-imap/tests/messages/gbk_charset.eml": "Nuu",
}


def is_expectation(root: Path, path: Path) -> bool:
    name = path.name
    return (
        name.endswith(EXPECTATION_SUFFIXES)
        or name.startswith(("LICENSE", "EXPECTED"))
        or name.endswith("_reply_text")
        or "expected" in path.relative_to(root).parts[:-1]
    )


def corpus_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not is_expectation(root, p))


def count(app: App, model, *where) -> int:
    with app.db.session() as s:
        return s.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def ingest_all(app: App, raws: list[bytes]) -> list:
    results = []
    for i in range(0, len(raws), BATCH):
        chunk = raws[i:i + BATCH]
        out = app.pipeline.ingest_batch([Inbound(raw, SRC) for raw in chunk])
        assert len(out) == len(chunk)
        results += out
    return results


def identity(raw: bytes, outcome: str) -> tuple[str, str]:
    """What the store keys this input by: its dedupe key, or its bytes when quarantined."""
    sha = hashlib.sha256(raw).hexdigest()
    if outcome == "quarantined":
        return ("quarantine", sha)
    try:
        parsed = parse_message(raw)
    except ParseError as exc:  # pragma: no cover - would contradict the outcome
        raise AssertionError(f"stored although it does not parse: {exc}") from None
    return ("message", dedupe_key(parsed, sha))


@pytest.fixture(scope="module")
def corpus_run(corpus_dir: Path, tmp_path_factory):
    files = corpus_files(corpus_dir)
    assert len(files) > 500, "the corpus looks incomplete"
    raws = [f.read_bytes() for f in files]
    app = make_app(tmp_path_factory.mktemp("corpus"))
    results = ingest_all(app, raws)
    yield app, files, raws, results
    app.close()


def test_every_input_yields_one_result_and_nothing_is_lost(corpus_run) -> None:
    app, files, raws, results = corpus_run
    assert len(results) == len(files)
    outcomes = Counter(r.outcome for r in results)
    print("\ncorpus outcomes:", dict(sorted(outcomes.items())), f"({len(files)} files)")
    assert set(outcomes) <= {"new", "reply", "duplicate", "ignored", "quarantined"}
    assert outcomes["new"] > 0 and outcomes["quarantined"] > 0

    seen: set[tuple[str, str]] = set()
    for path, raw, res in zip(files, raws, results):
        key = identity(raw, res.outcome)
        if res.outcome == "duplicate":
            assert key in seen, f"{path}: duplicate of nothing ingested before"
        elif res.outcome != "quarantined":
            assert key not in seen, f"{path}: {res.outcome}, but an earlier input had the same dedupe key"
        if res.outcome == "new":
            assert res.case_number
        seen.add(key)

    # Inbound mail is "in", or "internal" when a third party wrote to a case.
    stored_keys = count(app, Message, Message.direction != "out")
    distinct_stored = count(app, Message, Message.direction != "out", Message.dedupe_key.is_not(None))
    assert distinct_stored == stored_keys  # every inbound message has a dedupe key
    quarantined = count(app, Quarantine)
    assert len(seen) == stored_keys + quarantined, (len(seen), stored_keys, quarantined)
    assert sum(1 for k in seen if k[0] == "quarantine") == quarantined

    # every stored input is really in the table under its key
    with app.db.session() as s:
        keys = set(s.execute(select(Message.dedupe_key).where(Message.direction != "out")).scalars())
        shas = set(s.execute(select(Quarantine.sha256)).scalars())
    assert {k for kind, k in seen if kind == "message"} == keys
    assert {k for kind, k in seen if kind == "quarantine"} == shas
    assert count(app, Case) == outcomes["new"]


def test_reingesting_the_corpus_changes_nothing(corpus_run) -> None:
    app, _files, raws, first = corpus_run
    cases, outbox = count(app, Case), count(app, OutboxMessage)
    messages, quarantined = count(app, Message), count(app, Quarantine)
    again = ingest_all(app, raws)
    print("\nre-ingest outcomes:", dict(sorted(Counter(r.outcome for r in again).items())))
    for before, after in zip(first, again):
        if before.outcome == "quarantined":
            assert after.outcome == "quarantined"
        else:
            assert after.outcome == "duplicate", (before, after)
            if before.case_number:
                assert after.case_number == before.case_number
    assert count(app, Case) == cases
    assert count(app, OutboxMessage) == outbox
    assert count(app, Message) == messages
    assert count(app, Quarantine) == quarantined


@pytest.mark.parametrize("rel", sorted(CHARSET_FIXTURES))
def test_mislabelled_chinese_subjects_are_stored_decoded(corpus_run, corpus_dir: Path, rel: str) -> None:
    app, files, _raws, results = corpus_run
    subject = CHARSET_FIXTURES[rel]
    index = files.index(corpus_dir / rel)
    res = results[index]
    assert res.outcome in ("new", "reply", "duplicate", "ignored"), res
    raw = (corpus_dir / rel).read_bytes()
    key = dedupe_key(parse_message(raw), hashlib.sha256(raw).hexdigest())
    with app.db.session() as s:
        message = s.execute(select(Message).where(Message.dedupe_key == key)).scalar_one()
        assert message.subject == subject
        assert "\ufffd" not in (message.text or "")
        if res.outcome == "new":
            assert message.case is not None and message.case.number == res.case_number
            assert message.case.subject == subject
