"""Rule files: errors an admin sees, with the right file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from casegate.rules import RuleError, RuleLoadError, check_folder, default_folder, load_rules

GOOD = """\
# comment
[[rule]]
name = "a"
any = ["宕机"]
priority = "P1"
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def errors_of(tmp_path: Path, text: str) -> list[RuleError]:
    write(tmp_path, "10-test.toml", text)
    return check_folder(tmp_path)


def test_shipped_rules_are_clean() -> None:
    assert check_folder(default_folder()) == []
    names = sorted(p.name for p in default_folder().glob("*.toml"))
    assert load_rules().files == tuple(names)
    for path in default_folder().glob("*.toml"):
        head = path.read_text(encoding="utf-8")[:1200]
        assert "FIRST" in head and "name order" in head.lower(), path.name  # documented resolution


def test_rule_error_str() -> None:
    assert str(RuleError("r/10.toml", 7, "bad")) == "r/10.toml:7: bad"
    assert str(RuleError("r", 0, "missing")) == "r: missing"


def test_good_file_loads(tmp_path: Path) -> None:
    write(tmp_path, "10-test.toml", GOOD)
    rules = load_rules(tmp_path)
    assert [r.name for r in rules.rules] == ["a"]
    assert rules.rules[0].line == 2


def test_toml_syntax_error_line(tmp_path: Path) -> None:
    errs = errors_of(tmp_path, GOOD + '\n[[rule]]\nname = "b"\nany = ["x"\npriority = "P2"\n')
    assert len(errs) == 1
    assert errs[0].line in (9, 10)  # tomllib reports where it noticed the unclosed array
    assert "TOML syntax error" in errs[0].reason
    assert str(errs[0]).startswith(f"{tmp_path / '10-test.toml'}:{errs[0].line}: ")


def test_unknown_key_names_key_and_rule(tmp_path: Path) -> None:
    errs = errors_of(tmp_path, GOOD + '\n[[rule]]\nname = "b"\nany = ["x"]\nprority = "P2"\n')
    assert [(e.line, e.reason) for e in errs] == [(10, "unknown key 'prority' in rule 'b'")]


def test_wrong_types(tmp_path: Path) -> None:
    text = GOOD + '\n[[rule]]\nname = "b"\nany = "宕机"\ntags = "x"\npriority = "P2"\n'
    errs = errors_of(tmp_path, text)
    by_line = {e.line: e.reason for e in errs}
    assert "'any' must be a list of strings" in by_line[9]
    assert "'tags' must be a list" in by_line[10]


def test_unknown_field(tmp_path: Path) -> None:
    errs = errors_of(tmp_path, '[[rule]]\nname = "a"\nfields = ["subjct"]\nany = ["x"]\npriority = "P1"\n')
    assert len(errs) == 1 and errs[0].line == 3
    assert "unknown field 'subjct'" in errs[0].reason


def test_unknown_subkey_of_field(tmp_path: Path) -> None:
    errs = errors_of(tmp_path, '[[rule]]\nname = "a"\npriority = "P1"\nsender_domain.anyy = ["x.cn"]\n')
    assert any(e.line == 4 and "sender_domain.anyy" in e.reason for e in errs)


def test_invalid_regex(tmp_path: Path) -> None:
    errs = errors_of(tmp_path, GOOD + "\n[[rule]]\nname = \"b\"\n\nbody.regex = '(unclosed'\ntags = [\"x\"]\n")
    assert len(errs) == 1 and errs[0].line == 10
    assert "invalid regex '(unclosed'" in errs[0].reason


def test_invalid_priority_and_route(tmp_path: Path) -> None:
    errs = errors_of(tmp_path, '[[rule]]\nname = "a"\nany = ["x"]\npriority = "P0"\nroute = "trash"\n')
    assert [(e.line, e.reason.split(":")[1].strip().split(" (")[0]) for e in errs] == [
        (4, "invalid priority 'P0'"),
        (5, "invalid route 'trash'"),
    ]


def test_duplicate_names_across_files(tmp_path: Path) -> None:
    write(tmp_path, "10-a.toml", GOOD)
    write(tmp_path, "20-b.toml", "# other\n\n" + GOOD)
    errs = check_folder(tmp_path)
    assert len(errs) == 1
    assert errs[0].path.endswith("20-b.toml") and errs[0].line == 4
    assert "duplicate rule name 'a'" in errs[0].reason and "10-a.toml:2" in errs[0].reason


def test_missing_name_condition_action(tmp_path: Path) -> None:
    errs = errors_of(tmp_path, '[[rule]]\nany = ["x"]\npriority = "P1"\n\n[[rule]]\nname = "b"\npriority = "P1"\n\n[[rule]]\nname = "c"\nany = ["x"]\n')
    reasons = {(e.line, e.reason) for e in errs}
    assert (1, "rule #1 has no 'name' (a non-empty string)") in reasons
    assert (5, "rule 'b' has no condition (any/all/none/regex or a flag)") in reasons
    assert (9, "rule 'c' has no action (priority, category, queue, tags, ...)") in reasons


def test_single_table_and_top_level_key(tmp_path: Path) -> None:
    errs = errors_of(tmp_path, 'version = 1\n[rule]\nname = "a"\n')
    assert {e.reason.split(" (")[0].split(":")[0] for e in errs} == {
        "unknown top-level key 'version'",
        "'rule' must be an array of tables",
    }


def test_all_errors_collected(tmp_path: Path) -> None:
    write(tmp_path, "10-a.toml", '[[rule]]\nname = "a"\nany = ["x"]\npriority = "P9"\n')
    write(tmp_path, "20-b.toml", "[[rule\n")
    with pytest.raises(RuleLoadError) as info:
        load_rules(tmp_path)
    assert [Path(e.path).name for e in info.value.errors] == ["10-a.toml", "20-b.toml"]
    assert "10-a.toml:4:" in str(info.value)


def test_missing_folder(tmp_path: Path) -> None:
    errs = check_folder(tmp_path / "nope")
    assert len(errs) == 1 and errs[0].line == 0


def test_disabled_rule_is_validated_but_skipped(tmp_path: Path) -> None:
    write(tmp_path, "10-a.toml", GOOD.replace('name = "a"', 'name = "a"\nenabled = false'))
    assert len(load_rules(tmp_path)) == 0
