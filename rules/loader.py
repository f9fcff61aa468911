"""Reading rule folders: TOML -> validated, compiled ``Rule`` objects.

Every problem becomes a ``RuleError`` with the file and the line of the
offending rule or key, and all of them are collected before giving up, so
one ``casegate rules check`` run shows the admin everything to fix.
tomllib does not report positions of valid keys, so lines are found by
scanning the file text for the N-th ``[[rule]]`` header and for the key
below it (good enough for hand-written files; falls back to the header).

Loading has two steps: the ``[lists]`` tables of EVERY file are read and
merged first (so a local file can add words to a shipped list), then the
rules of each file are compiled with them (``@name`` and ``if_<name>``
refer to a list).
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
    Context,
    Keyword,
    Pattern,
    Rule,
    WordList,
)
from .normalize import fold, to_simplified

__all__ = ["default_folder", "load_rules", "check_folder", "parse_file", "list_rule_files", "expand"]

_HEADER = re.compile(r"^\s*\[\[\s*rule\s*\]\]")
_TOML_POS = re.compile(r"\(at line (\d+), column \d+\)")
_CONDITION_KEYS = ("any", "all", "none", "regex")
_STRING_ACTIONS = ("category", "queue", "assignee_group")
_CONTEXT_KEYS = ("near", "not_after")
_RULE_KEYS = frozenset(
    {
        "name",
        "description",
        "enabled",
        "fields",
        *_CONDITION_KEYS,
        *_CONTEXT_KEYS,
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
_LIST_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_LIST_KEYS = frozenset({"words", "except", "not_in", "with", "reach", "description"})
REACHES = ("clause", "sentence", "before", "message")
# "{登|连|付}不了": one written word standing for each alternative in braces.
_BRACES = re.compile(r"\{([^{}]*)\}")
SKIP = "skip"  # if_<list> = "skip": the hit does not count at all


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

    def list_def(self, name: str) -> int:
        """Line of the definition of word list ``name`` (1 when not found)."""
        q = re.escape(name)
        table = re.compile(rf"^\s*\[\s*lists\s*\.\s*[\"']?{q}[\"']?\s*\]")
        dotted = re.compile(rf"^\s*lists\s*\.\s*[\"']?{q}[\"']?\s*[=.]")
        plain = re.compile(rf"^\s*[\"']?{q}[\"']?\s*=")
        in_lists = False
        for i, ln in enumerate(self.lines, 1):
            if table.match(ln) or dotted.match(ln) or (in_lists and plain.match(ln)):
                return i
            if re.match(r"^\s*\[", ln):
                in_lists = bool(re.match(r"^\s*\[\s*lists\s*\]", ln))
        return 1


class _RawList:
    """A word list as written, merged over files; compiled once all are read."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.words: list[tuple[str, str, int]] = []  # (word, file, line)
        self.except_: list[tuple[str, str, int]] = []
        self.not_in: list[tuple[str, str, int]] = []
        self.with_: list[tuple[str, str, int]] = []
        self.reach: tuple[str, str, int] | None = None


class _FileParser:
    """Validates and compiles the rules of one file, collecting errors."""

    def __init__(self, path: Path, text: str, first_order: int = 0,
                 lists: dict[str, WordList] | None = None) -> None:
        self.path = path
        self.text = text
        self.where = _Lines(text)
        self.errors: list[RuleError] = []
        self.order = first_order
        self.lists: dict[str, WordList] = lists or {}

    def error(self, line: int, reason: str) -> None:
        self.errors.append(RuleError(str(self.path), line, reason))

    def read(self) -> dict[str, Any] | None:
        """The TOML data of the file, or None after a syntax error."""
        try:
            data = tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as exc:
            msg = str(exc)
            m = _TOML_POS.search(msg)
            line = int(m.group(1)) if m else max(len(self.where.lines), 1)
            self.error(line, f"TOML syntax error: {_TOML_POS.sub('', msg).strip()}")
            return None
        for key in data:
            if key not in ("rule", "lists"):
                self.error(1, f"unknown top-level key {key!r} (only [[rule]] and [lists] tables are allowed)")
        return data

    def collect_lists(self, data: dict[str, Any], into: dict[str, _RawList]) -> None:
        """Adds the ``[lists]`` of this file to ``into`` (merged by name)."""
        raw = data.get("lists")
        if raw is None:
            return
        if not isinstance(raw, dict):
            self.error(self.where.list_def("lists"), "'lists' must be a table: write [lists.NAME]")
            return
        file = str(self.path)
        for name, spec in raw.items():
            line = self.where.list_def(name)
            if not _LIST_NAME.match(name):
                self.error(line, f"word list name {name!r}: use lower-case letters, digits and '_'")
                continue
            entry = into.setdefault(name, _RawList(name))
            if isinstance(spec, list):
                spec = {"words": spec}
            if not isinstance(spec, dict):
                self.error(line, f"word list {name!r} must be a list of words or a table (zh = [...], en = [...])")
                continue
            for key, value in spec.items():
                if key == "reach":
                    if value not in REACHES:
                        self.error(line, f"word list {name!r}: 'reach' must be \"clause\", \"sentence\", "
                                         "\"before\" or \"message\"")
                    elif entry.reach is not None and entry.reach[0] != value:
                        self.error(line, f"word list {name!r}: reach {value!r} differs from "
                                         f"{entry.reach[0]!r} in {entry.reach[1]}:{entry.reach[2]}")
                    else:
                        entry.reach = (value, file, line)
                    continue
                if key == "description":
                    if not isinstance(value, str):
                        self.error(line, f"word list {name!r}: 'description' must be a string")
                    continue
                if key not in _LIST_KEYS and not _LANGUAGE.match(key):
                    self.error(line, f"word list {name!r}: unknown key {key!r} (a language such as zh or en, "
                                     "words, except, not_in, with, reach or description)")
                    continue
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    self.error(line, f"word list {name!r}: {key!r} must be a list of strings")
                    continue
                target = {"except": entry.except_, "not_in": entry.not_in, "with": entry.with_}.get(key, entry.words)
                target.extend((v, file, line) for v in value)

    def parse(self) -> list[Rule]:
        """Reads and compiles this file alone (its own word lists only)."""
        data = self.read()
        if data is None:
            return []
        raw: dict[str, _RawList] = {}
        self.collect_lists(data, raw)
        self.lists = _compile_lists(raw, self.errors)
        return self.compile(data)

    def compile(self, data: dict[str, Any]) -> list[Rule]:
        rules: list[Rule] = []
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
            if key not in _RULE_KEYS and not key.startswith("if_"):
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
        context = self._context(raw, top, actions, label, kline)
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
            context=context,
        )

    def _context(
        self, raw: dict[str, Any], top: Condition | None, actions: Actions | None, label: str, kline: Any
    ) -> Context | None:
        """near / not_after / if_<list>: how the rule reads clauses."""
        present = [k for k in raw if k in _CONTEXT_KEYS or k.startswith("if_")]
        if not present:
            return None
        refs: dict[str, tuple[tuple[str, ...], tuple[Keyword, ...]]] = {}
        for key in _CONTEXT_KEYS:
            if key not in raw:
                continue
            value = raw[key]
            if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
                self.error(kline(key), f"rule {label}: {key!r} must be a non-empty list of words or @lists")
                continue
            names, words = [], []
            for item in value:
                if item.startswith("@"):
                    if item[1:] not in self.lists:
                        self.error(kline(key), f"rule {label}: unknown word list {item!r} in {key!r}{self._known()}")
                    else:
                        names.append(item[1:])
                else:
                    words.extend(self._keywords([item], key, label, kline(key)))
            refs[key] = (tuple(dict.fromkeys(names)), tuple(words))
        discounts = []
        for key in present:
            if not key.startswith("if_"):
                continue
            name = key[3:]
            value = raw[key]
            if name not in self.lists:
                self.error(kline(key), f"unknown key {key!r} in rule {label}: no word list {name!r}{self._known()}")
                continue
            if not isinstance(value, str) or (value.strip().upper() not in PRIORITIES and value.strip().lower() != SKIP):
                self.error(kline(key), f"rule {label}: {key!r} must be a priority (P1..P4) or \"skip\"")
                continue
            value = value.strip()
            if value.lower() == SKIP:
                discounts.append((name, None))
            elif actions is not None and actions.priority is None:
                self.error(kline(key), f"rule {label}: {key!r} lowers the priority, but the rule sets none "
                                       "(use \"skip\")")
            else:
                discounts.append((name, value.upper()))
        if top is None or not (top.any or top.regex):
            self.error(kline(present[0]), f"rule {label}: {present[0]!r} reads the clause around a hit of "
                                          "'any' (or 'regex'): the rule needs one")
            return None
        near, near_words = refs.get("near", ((), ()))
        neg, neg_words = refs.get("not_after", ((), ()))
        any_raw = raw.get("any") if isinstance(raw.get("any"), list) else []
        any_lists = tuple(dict.fromkeys(
            w[1:] for w in any_raw if isinstance(w, str) and w.startswith("@") and w[1:] in self.lists
        ))
        return Context(near=near, near_words=near_words, not_after=neg, not_after_words=neg_words,
                       discounts=tuple(discounts), any_lists=any_lists)

    def _known(self) -> str:
        return f" (defined: {', '.join(sorted(self.lists))})" if self.lists else " (no [lists] defined)"

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
        out: list[Keyword] = []
        for raw in value:
            if raw.startswith("@") and len(raw) > 1:
                found = self.lists.get(raw[1:])
                if found is None:
                    self.error(line, f"rule {label}: unknown word list {raw!r} in {key!r}{self._known()}")
                else:
                    out.extend(found.words)
                continue
            for word in expand(raw):
                kw = _keyword(word)
                if kw is None:
                    self.error(line, f"rule {label}: empty keyword {raw!r} in {key!r}")
                    continue
                out.append(kw)
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


def expand(word: str) -> list[str]:
    """The words a written word stands for: "{登|连|付}不了" is 登不了,
    连不了 and 付不了 (every combination when there are several braces).

    A vocabulary class is written once instead of phrase by phrase, and
    costs nothing at matching time: each word is one more automaton entry.
    """
    m = _BRACES.search(word)
    if m is None:
        return [word]
    head, tail = word[: m.start()], word[m.end():]
    return [w for alt in m.group(1).split("|") for w in expand(head + alt + tail)]


def _keyword(raw: str) -> Keyword | None:
    text = raw[:-1] if raw.endswith("*") else raw
    folded = fold(text)
    return Keyword(raw=raw, folded=folded, prefix=raw.endswith("*")) if folded else None


def _compile_lists(raw: dict[str, _RawList], errors: list[RuleError]) -> dict[str, WordList]:
    """Word lists with their @references expanded (no cycles)."""
    done: dict[str, WordList] = {}
    active: set[str] = set()

    def words_of(items: list[tuple[str, str, int]], owner: str) -> tuple[Keyword, ...]:
        out: dict[str, Keyword] = {}
        for word, file, line in items:
            if word.startswith("@") and len(word) > 1:
                ref = word[1:]
                if ref not in raw:
                    errors.append(RuleError(file, line, f"word list {owner!r}: unknown word list {word!r}"))
                    continue
                got = build(ref, file, line)
                for kw in got.words if got else ():
                    out.setdefault(kw.raw, kw)
                continue
            for one in expand(word):
                kw = _keyword(one)
                if kw is None:
                    errors.append(RuleError(file, line, f"word list {owner!r}: empty word {word!r}"))
                    continue
                out.setdefault(kw.raw, kw)
        return tuple(out.values())

    def build(name: str, file: str, line: int) -> WordList | None:
        if name in done:
            return done[name]
        if name in active:
            errors.append(RuleError(file, line, f"word list {name!r} refers to itself"))
            return None
        active.add(name)
        entry = raw[name]
        wl = WordList(name=name, words=words_of(entry.words, name), except_=words_of(entry.except_, name),
                      not_in=words_of(entry.not_in, name), with_=words_of(entry.with_, name),
                      reach=entry.reach[0] if entry.reach else "clause")
        active.discard(name)
        done[name] = wl
        return wl

    for name, entry in raw.items():
        where = (entry.words or entry.except_ or entry.not_in or [("", "", 1)])[0]
        build(name, where[1], where[2])
    return done


def _read(path: Path) -> tuple[str | None, list[RuleError]]:
    try:
        return path.read_bytes().decode("utf-8").lstrip("\ufeff"), []
    except UnicodeDecodeError as exc:
        return None, [RuleError(str(path), 0, f"not UTF-8: {exc}")]
    except OSError as exc:
        return None, [RuleError(str(path), 0, f"cannot read: {exc.strerror or exc}")]


def parse_file(path: Path, first_order: int = 0) -> tuple[list[Rule], list[RuleError]]:
    """Rules and errors of one file alone (its own word lists only)."""
    text, errors = _read(path)
    if text is None:
        return [], errors
    parser = _FileParser(path, text, first_order)
    rules = parser.parse()
    return rules, parser.errors


def read_folder(folder: Path) -> tuple[list[Rule], list[RuleError], tuple[str, ...], dict[str, WordList]]:
    folder = Path(folder)
    if not folder.is_dir():
        return [], [RuleError(str(folder), 0, "rule folder does not exist or is not a folder")], (), {}
    return _read_files(list_rule_files(folder))


def _read_files(files: list[Path]) -> tuple[list[Rule], list[RuleError], tuple[str, ...], dict[str, WordList]]:
    rules: list[Rule] = []
    errors: list[RuleError] = []
    seen: dict[str, Rule] = {}
    # 1. read every file, merge the word lists of all of them
    parsed: list[tuple[_FileParser, dict[str, Any] | None]] = []
    raw_lists: dict[str, _RawList] = {}
    for path in files:
        text, read_errors = _read(path)
        errors.extend(read_errors)
        if text is None:
            continue
        parser = _FileParser(path, text)
        data = parser.read()
        if data is not None:
            parser.collect_lists(data, raw_lists)
        parsed.append((parser, data))
    list_errors: list[RuleError] = []
    lists = _compile_lists(raw_lists, list_errors)
    # 2. compile the rules of each file with them
    for parser, data in parsed:
        parser.lists = lists
        parser.order = len(rules)
        file_rules = parser.compile(data) if data is not None else []
        errors.extend(parser.errors)
        for rule in file_rules:
            first = seen.get(rule.name)
            if first is not None:
                errors.append(
                    RuleError(
                        str(parser.path),
                        rule.line,
                        f"duplicate rule name {rule.name!r} (first defined in {first.file}:{first.line})",
                    )
                )
                continue
            seen[rule.name] = rule
            rules.append(rule)
    errors.extend(list_errors)
    return rules, errors, tuple(p.name for p in files), lists


def load_rules(folder: Path | str | None = None) -> "RuleSet":
    """Load and compile every *.toml of ``folder`` (None: shipped defaults).

    Raises ``RuleLoadError`` with all errors if any file has one: a rule
    set is only ever used whole.
    """
    from .matcher import RuleSet  # matcher imports model only; avoid a cycle

    path = Path(folder) if folder is not None else default_folder()
    rules, errors, files, lists = read_folder(path)
    if errors:
        raise RuleLoadError(errors)
    return RuleSet(rules, files=files, folder=str(path), lists=lists)


def check_folder(path: Path | str) -> list[RuleError]:
    """Every error in the rule folder ``path``; empty when it loads cleanly."""
    _, errors, _, _ = read_folder(Path(path))
    return errors


def check_file(path: Path | str, folder: Path | str) -> list[RuleError]:
    """The errors of the one rule file ``path``, read as if it were in the rule
    folder ``folder`` (whose word lists it may use; it replaces a file of the
    same name there)."""
    path = Path(path)
    if not path.is_file():
        return [RuleError(str(path), 0, "rule file does not exist or is not a file")]
    others = [f for f in list_rule_files(Path(folder)) if f.name != path.name] if Path(folder).is_dir() else []
    _, errors, _, _ = _read_files(sorted([*others, path], key=lambda f: f.name))
    return [e for e in errors if e.path == str(path)]
