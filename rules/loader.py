"""Reading rule folders: TOML -> validated, compiled ``Rule`` objects.

Every problem becomes a ``RuleError`` with the file and the line of the
offending rule or key, and all of them are collected before giving up, so
one ``casegate rules check`` run shows the admin everything to fix.
tomllib does not report positions of valid keys, so lines are found by
scanning the file text for the N-th ``[[rule]]`` header and for the key
below it (good enough for hand-written files; falls back to the header).
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from pathlib import Path
from typing import Any

from .errors import RuleError, RuleLoadError
from .model import (
    DEFAULT_FIELDS,
    FIELDS,
    PRIORITIES,
    ROUTES,
    Actions,
    Condition,
    Keyword,
    Pattern,
    Rule,
)
from .normalize import fold, to_simplified

__all__ = ["default_folder", "load_rules", "check_folder", "parse_file", "list_rule_files"]

_HEADER = re.compile(r"^\s*\[\[\s*rule\s*\]\]")
_TOML_POS = re.compile(r"\(at line (\d+), column \d+\)")
_CONDITION_KEYS = ("any", "all", "none", "regex")
_STRING_ACTIONS = ("category", "queue", "assignee_group")
_RULE_KEYS = frozenset(
    {
        "name",
        "description",
        "enabled",
        "fields",
        *_CONDITION_KEYS,
        "outside_working_hours",
        "warranty_expired",
        "priority",
        "route",
        "language",
        "tags",
        *_STRING_ACTIONS,
        *FIELDS,
    }
)
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$", re.IGNORECASE)


def default_folder() -> Path:
    """The rule files shipped with casegate (package data)."""
    return Path(__file__).resolve().parent / "default"


def list_rule_files(folder: Path) -> list[Path]:
    """The *.toml files of ``folder`` in name order (= rule order)."""
    return sorted((p for p in folder.glob("*.toml") if p.is_file()), key=lambda p: p.name)


class _Lines:
    """Finds the line of rule N, or of a key inside it, in the file text."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.headers = [i + 1 for i, ln in enumerate(self.lines) if _HEADER.match(ln)]

    def rule(self, index: int) -> int:
        return self.headers[index] if index < len(self.headers) else 1

    def key(self, index: int, *path: str) -> int:
        """Line of ``path`` (e.g. ("subject", "any")) inside rule ``index``."""
        start = self.rule(index)
        end = self.headers[index + 1] if index + 1 < len(self.headers) else len(self.lines) + 1
        found = start
        for depth, seg in enumerate(path):
            q = re.escape(seg)
            if depth == 0:
                pat = re.compile(rf"^\s*(?:\[\s*rule\s*\.\s*)?(?:{q}|\"{q}\"|'{q}')\s*[=.\]]")
            else:
                pat = re.compile(rf"(?:^|[.\s{{,])(?:{q}|\"{q}\"|'{q}')\s*=")
            for lineno in range(found, end):
                if pat.search(self.lines[lineno - 1]):
                    found = lineno
                    break
            else:
                return found
        return found


class _FileParser:
    """Validates and compiles the rules of one file, collecting errors."""

    def __init__(self, path: Path, text: str, first_order: int) -> None:
        self.path = path
        self.text = text
        self.where = _Lines(text)
        self.errors: list[RuleError] = []
        self.order = first_order

    def error(self, line: int, reason: str) -> None:
        self.errors.append(RuleError(str(self.path), line, reason))

    def parse(self) -> list[Rule]:
        try:
            data = tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as exc:
            msg = str(exc)
            m = _TOML_POS.search(msg)
            line = int(m.group(1)) if m else max(len(self.where.lines), 1)
            self.error(line, f"TOML syntax error: {_TOML_POS.sub('', msg).strip()}")
            return []
        rules: list[Rule] = []
        for key in data:
            if key != "rule":
                self.error(1, f"unknown top-level key {key!r} (only [[rule]] tables are allowed)")
        raw_rules = data.get("rule", [])
        if not isinstance(raw_rules, list):
            self.error(1, "'rule' must be an array of tables: write [[rule]], not [rule]")
            return []
        for index, raw in enumerate(raw_rules):
            rule = self._rule(index, raw)
            if rule is not None:
                rules.append(rule)
        return rules

    # -- one rule -------------------------------------------------------

    def _rule(self, index: int, raw: Any) -> Rule | None:
        line = self.where.rule(index)
        if not isinstance(raw, dict):
            self.error(line, f"rule #{index + 1} must be a table")
            return None
        before = len(self.errors)
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            self.error(line, f"rule #{index + 1} has no 'name' (a non-empty string)")
            label = f"#{index + 1}"
            name = None
        else:
            name = name.strip()
            label = repr(name)

        def kline(*path: str) -> int:
            return self.where.key(index, *path)

        for key in raw:
            if key not in _RULE_KEYS:
                self.error(kline(key), f"unknown key {key!r} in rule {label}")

        description = raw.get("description", "")
        if not isinstance(description, str):
            self.error(kline("description"), f"rule {label}: 'description' must be a string")
            description = ""
        enabled = raw.get("enabled", True)
        if not isinstance(enabled, bool):
            self.error(kline("enabled"), f"rule {label}: 'enabled' must be true or false")

        conditions: list[Condition] = []
        fields = self._fields(raw.get("fields", list(DEFAULT_FIELDS)), label, kline("fields"))
        top = self._condition(raw, fields, label, lambda k: kline(k), prefix="")
        if top is not None:
            conditions.append(top)
        for fname in FIELDS:
            if fname not in raw:
                continue
            sub = raw[fname]
            if not isinstance(sub, dict):
                self.error(
                    kline(fname),
                    f"rule {label}: {fname!r} must be a table of any/all/none/regex "
                    f"(e.g. {fname}.any = [\"...\"])",
                )
                continue
            for key in sub:
                if key not in _CONDITION_KEYS:
                    self.error(kline(fname, key), f"unknown key '{fname}.{key}' in rule {label}")
            cond = self._condition(
                sub, (fname,), label, lambda k, f=fname: kline(f, k), prefix=f"{fname}."
            )
            if cond is not None:
                conditions.append(cond)

        flags: dict[str, bool | None] = {}
        for flag in ("outside_working_hours", "warranty_expired"):
            value = raw.get(flag)
            if value is not None and not isinstance(value, bool):
                self.error(kline(flag), f"rule {label}: {flag!r} must be true or false")
                value = None
            flags[flag] = value

        actions = self._actions(raw, label, kline)
        # "no condition/action" would only echo an error already reported
        # (a misspelt key, an invalid regex): say it only for clean rules.
        if len(self.errors) == before:
            has_flag = flags["outside_working_hours"] is not None or flags["warranty_expired"] is not None
            if not conditions and not has_flag:
                self.error(line, f"rule {label} has no condition (any/all/none/regex or a flag)")
            if actions is not None and not actions.items():
                self.error(line, f"rule {label} has no action (priority, category, queue, tags, ...)")

        if len(self.errors) != before or name is None or actions is None or enabled is False:
            return None
        self.order += 1
        return Rule(
            name=name,
            file=self.path.name,
            line=line,
            order=self.order,
            conditions=tuple(conditions),
            actions=actions,
            description=description,
            outside_working_hours=flags["outside_working_hours"],
            warranty_expired=flags["warranty_expired"],
        )

    def _fields(self, value: Any, label: str, line: int) -> tuple[str, ...]:
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            self.error(line, f"rule {label}: 'fields' must be a non-empty list of field names")
            return DEFAULT_FIELDS
        out = []
        for v in value:
            if v not in FIELDS:
                self.error(line, f"rule {label}: unknown field {v!r} (known: {', '.join(FIELDS)})")
            elif v not in out:
                out.append(v)
        return tuple(out) or DEFAULT_FIELDS

    def _condition(
        self, raw: dict[str, Any], fields: tuple[str, ...], label: str, kline: Any, prefix: str
    ) -> Condition | None:
        parts: dict[str, tuple[Any, ...]] = {}
        for key in ("any", "all", "none"):
            if key in raw:
                parts[key] = self._keywords(raw[key], f"{prefix}{key}", label, kline(key))
        if "regex" in raw:
            parts["regex"] = self._patterns(raw["regex"], f"{prefix}regex", label, kline("regex"))
        if not any(parts.values()):
            return None
        return Condition(fields=fields, **parts)

    def _keywords(self, value: Any, key: str, label: str, line: int) -> tuple[Keyword, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.error(line, f"rule {label}: {key!r} must be a list of strings")
            return ()
        out = []
        for raw in value:
            text = raw[:-1] if raw.endswith("*") else raw
            folded = fold(text)
            if not folded:
                self.error(line, f"rule {label}: empty keyword {raw!r} in {key!r}")
                continue
            out.append(Keyword(raw=raw, folded=folded, prefix=raw.endswith("*")))
        return tuple(out)

    def _patterns(self, value: Any, key: str, label: str, line: int) -> tuple[Pattern, ...]:
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            self.error(line, f"rule {label}: {key!r} must be a string or a list of strings")
            return ()
        out = []
        for raw in values:
            # Same folding as the text, minus casefold (it would break \S, \W...):
            # IGNORECASE covers case instead.
            source = to_simplified(unicodedata.normalize("NFKC", raw))
            try:
                out.append(Pattern(raw=raw, compiled=re.compile(source, re.IGNORECASE)))
            except re.error as exc:
                self.error(line, f"rule {label}: invalid regex {raw!r} in {key!r}: {exc}")
        return tuple(out)

    def _actions(self, raw: dict[str, Any], label: str, kline: Any) -> Actions | None:
        ok = True
        values: dict[str, Any] = {}
        priority = raw.get("priority")
        if priority is not None:
            if not isinstance(priority, str) or priority.strip().upper() not in PRIORITIES:
                self.error(kline("priority"), f"rule {label}: invalid priority {priority!r} (use P1, P2, P3 or P4)")
                ok = False
            else:
                values["priority"] = priority.strip().upper()
        route = raw.get("route")
        if route is not None:
            if not isinstance(route, str) or route.strip().lower() not in ROUTES:
                self.error(kline("route"), f"rule {label}: invalid route {route!r} (use {', '.join(ROUTES)})")
                ok = False
            else:
                values["route"] = route.strip().lower()
        language = raw.get("language")
        if language is not None:
            if not isinstance(language, str) or not _LANGUAGE.match(language):
                self.error(kline("language"), f"rule {label}: invalid language {language!r} (e.g. \"zh\", \"en\")")
                ok = False
            else:
                values["language"] = language
        for key in _STRING_ACTIONS:
            value = raw.get(key)
            if value is None:
                continue
            if not isinstance(value, str) or not value.strip():
                self.error(kline(key), f"rule {label}: {key!r} must be a non-empty string")
                ok = False
            else:
                values[key] = value.strip()
        tags = raw.get("tags")
        if tags is not None:
            if not isinstance(tags, list) or not all(isinstance(t, str) and t.strip() for t in tags):
                self.error(kline("tags"), f"rule {label}: 'tags' must be a list of non-empty strings")
                ok = False
            else:
                values["tags"] = tuple(dict.fromkeys(t.strip() for t in tags))
        return Actions(**values) if ok else None


def parse_file(path: Path, first_order: int = 0) -> tuple[list[Rule], list[RuleError]]:
    """Rules and errors of one file; ``first_order`` continues the numbering."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        return [], [RuleError(str(path), 0, f"not UTF-8: {exc}")]
    except OSError as exc:
        return [], [RuleError(str(path), 0, f"cannot read: {exc.strerror or exc}")]
    parser = _FileParser(path, text.lstrip("\ufeff"), first_order)
    rules = parser.parse()
    return rules, parser.errors


def _load(folder: Path) -> tuple[list[Rule], list[RuleError], tuple[str, ...]]:
    folder = Path(folder)
    if not folder.is_dir():
        return [], [RuleError(str(folder), 0, "rule folder does not exist or is not a folder")], ()
    rules: list[Rule] = []
    errors: list[RuleError] = []
    seen: dict[str, Rule] = {}
    files = list_rule_files(folder)
    for path in files:
        file_rules, file_errors = parse_file(path, first_order=len(rules))
        errors.extend(file_errors)
        for rule in file_rules:
            first = seen.get(rule.name)
            if first is not None:
                errors.append(
                    RuleError(
                        str(path),
                        rule.line,
                        f"duplicate rule name {rule.name!r} (first defined in {first.file}:{first.line})",
                    )
                )
                continue
            seen[rule.name] = rule
            rules.append(rule)
    return rules, errors, tuple(p.name for p in files)


def load_rules(folder: Path | str | None = None) -> "RuleSet":
    """Load and compile every *.toml of ``folder`` (None: shipped defaults).

    Raises ``RuleLoadError`` with all errors if any file has one: a rule
    set is only ever used whole.
    """
    from .matcher import RuleSet  # matcher imports model only; avoid a cycle

    path = Path(folder) if folder is not None else default_folder()
    rules, errors, files = _load(path)
    if errors:
        raise RuleLoadError(errors)
    return RuleSet(rules, files=files, folder=str(path))


def check_folder(path: Path | str) -> list[RuleError]:
    """Every error in the rule folder ``path``; empty when it loads cleanly."""
    _, errors, _ = _load(Path(path))
    return errors
