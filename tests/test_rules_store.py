"""Hot reload: edits take effect without a restart; broken edits never do."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from casegate.parsers.message import Address, ParsedMessage
from casegate.rules import ClassifyInput, RuleSet, RuleStore, load_rules


def make_message(subject: str, new_text: str = "") -> ParsedMessage:
    return ParsedMessage(
        message_id=None, in_reply_to=(), references=(), from_=Address("", "li@example.cn"),
        reply_to=(), to=(), cc=(), subject=subject, date=None, text=new_text,
        new_text=new_text, html=None, attachments=(), is_auto_reply=False,
        is_bounce=False, is_list=False,
    )


RULE = '[[rule]]\nname = "{name}"\nany = ["{word}"]\npriority = "{prio}"\n'


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def write(path: Path, text: str, bump: int = 0) -> None:
    path.write_text(text, encoding="utf-8")
    st = path.stat()
    # Coarse file-system timestamps: move mtime explicitly so the change is seen.
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + bump * 1_000_000_000))


def priority(store: RuleStore, subject: str) -> str:
    return store.current().classify(ClassifyInput(message=make_message(subject))).priority


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Clock, RuleStore]:
    write(tmp_path / "10-a.toml", RULE.format(name="a", word="宕机", prio="P1"))
    clock = Clock()
    return tmp_path, clock, RuleStore(tmp_path, check_interval=1.0, clock=clock)


def test_initial_load(setup: tuple[Path, Clock, RuleStore]) -> None:
    _, _, store = setup
    assert [r.name for r in store.current().rules] == ["a"]
    assert priority(store, "系统宕机") == "P1"


def test_new_file_swaps_after_interval(setup: tuple[Path, Clock, RuleStore]) -> None:
    folder, clock, store = setup
    before = store.current()
    write(folder / "20-b.toml", RULE.format(name="b", word="slow", prio="P2"), bump=1)
    clock.now += 0.5
    assert store.current() is before  # not re-checked within the interval
    clock.now += 0.6
    after = store.current()
    assert after is not before
    assert [r.name for r in after.rules] == ["a", "b"]
    assert priority(store, "very slow") == "P2"
    assert store.current() is after  # unchanged folder: same object


def test_edit_and_delete(setup: tuple[Path, Clock, RuleStore]) -> None:
    folder, clock, store = setup
    write(folder / "10-a.toml", RULE.format(name="a", word="宕机", prio="P2"), bump=2)
    clock.now += 2
    assert priority(store, "宕机") == "P2"
    (folder / "10-a.toml").unlink()
    clock.now += 2
    assert len(store.current()) == 0


def test_broken_file_keeps_old_set_and_logs(
    setup: tuple[Path, Clock, RuleStore], caplog: pytest.LogCaptureFixture
) -> None:
    folder, clock, store = setup
    good = store.current()
    caplog.set_level(logging.ERROR, logger="casegate.rules")
    write(folder / "20-b.toml", '[[rule]]\nname = "b"\nany = ["x"]\npriority = "P7"\n', bump=1)
    clock.now += 2
    assert store.current() is good
    assert priority(store, "宕机") == "P1"
    logged = [r.getMessage() for r in caplog.records if r.name == "casegate.rules"]
    assert len(logged) == 1 and "20-b.toml:4: rule 'b': invalid priority 'P7'" in logged[0]
    assert [e.line for e in store.last_errors] == [4]
    # reported once, not on every check
    clock.now += 2
    store.current()
    assert len([r for r in caplog.records if r.name == "casegate.rules"]) == 1
    # fixing the file swaps the new rules in
    write(folder / "20-b.toml", RULE.format(name="b", word="x", prio="P4"), bump=2)
    clock.now += 2
    assert [r.name for r in store.current().rules] == ["a", "b"]
    assert store.last_errors == []


def test_reload_returns_errors(setup: tuple[Path, Clock, RuleStore]) -> None:
    folder, _, store = setup
    write(folder / "10-a.toml", "[[rule]\n", bump=1)
    errors = store.reload()
    assert len(errors) == 1 and errors[0].line == 1
    assert [r.name for r in store.current().rules] == ["a"]


def test_broken_at_start_uses_defaults(tmp_path: Path) -> None:
    write(tmp_path / "10-a.toml", "not toml at all [")
    defaults = RuleSet.empty()
    store = RuleStore(tmp_path, defaults=defaults)
    assert store.current() is defaults
    shipped = RuleStore(tmp_path)  # defaults=None: the shipped rule files
    assert len(shipped.current()) == len(load_rules())


def test_current_never_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "10-a.toml", RULE.format(name="a", word="x", prio="P1"))
    clock = Clock()
    store = RuleStore(tmp_path, clock=clock)
    good = store.current()

    def boom(*_: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store, "_stat", boom)
    clock.now += 5
    assert store.current() is good
