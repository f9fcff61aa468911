"""The compiled rule set and ``classify``.

Matching cost must not grow with the number of rules: every keyword of
every rule goes into one Aho-Corasick automaton per field, the folded text
of each field is scanned once, and only rules that one of the hits points
at (plus the few rules without positive keywords) are evaluated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import ahocorasick

from .model import (
    PRIORITIES,
    Classification,
    ClassifyInput,
    Condition,
    Keyword,
    Rule,
    RuleMatch,
)
from .normalize import fold, is_word_char

__all__ = ["RuleSet", "field_values"]

# Joins the values of multi-valued fields: not whitespace (so CJK-gap
# removal never glues two values), not a word character (so it is a
# boundary for Latin keywords).
_SEP = "\x00"


def field_values(inp: ClassifyInput, name: str) -> tuple[str, ...]:
    """The raw values of field ``name`` for this input."""
    msg = inp.message
    if name == "subject":
        return (msg.subject or "",)
    if name == "body":
        return (inp.text_override if inp.text_override is not None else msg.new_text or "",)
    if name == "sender":
        return (msg.from_.email,) if msg.from_ and msg.from_.email else ()
    if name == "sender_domain":
        email = msg.from_.email if msg.from_ else ""
        return (email.rpartition("@")[2],) if "@" in (email or "") else ()
    if name == "recipient":
        return tuple(a.email for a in (*msg.to, *msg.cc) if a.email)
    if name == "attachment_names":
        return tuple(a.filename for a in msg.attachments if a.filename)
    if name == "source":
        return (inp.source_name,) if inp.source_name else ()
    if name == "source_kind":
        return (inp.source_kind,) if inp.source_kind else ()
    if name == "customer":
        return tuple(v for v in (inp.customer_company, inp.customer_name) if v)
    if name == "contract":
        return (inp.contract_id,) if inp.contract_id else ()
    raise KeyError(name)


@dataclass(slots=True)
class _Hits:
    """Folded keywords found in one field: whole-word and prefix hits."""

    full: set[str]
    prefix: set[str]

    def has(self, kw: Keyword) -> bool:
        return kw.folded in (self.prefix if kw.prefix else self.full)


_NO_HITS = _Hits(set(), set())


class _Scan:
    """Lazily folded field texts and keyword hits for one classify call."""

    def __init__(self, ruleset: RuleSet, inp: ClassifyInput) -> None:
        self.ruleset = ruleset
        self.inp = inp
        self._values: dict[str, tuple[str, ...]] = {}
        self._hits: dict[str, _Hits] = {}

    def values(self, name: str) -> tuple[str, ...]:
        got = self._values.get(name)
        if got is None:
            got = tuple(fold(v) for v in field_values(self.inp, name))
            self._values[name] = got
        return got

    def hits(self, name: str) -> _Hits:
        got = self._hits.get(name)
        if got is None:
            automaton = self.ruleset._automata.get(name)
            got = _scan(automaton, _SEP.join(self.values(name))) if automaton else _NO_HITS
            self._hits[name] = got
        return got


def _scan(automaton: ahocorasick.Automaton, text: str) -> _Hits:
    """All keyword hits in ``text``, with Latin word boundaries checked."""
    hits = _Hits(set(), set())
    if not text:
        return hits
    last = len(text) - 1
    for end, (kw, size, check_start, check_end) in automaton.iter(text):
        start = end - size + 1
        if check_start and start > 0 and is_word_char(text[start - 1]):
            continue
        hits.prefix.add(kw)
        if check_end and end < last and is_word_char(text[end + 1]):
            continue
        hits.full.add(kw)
    return hits


class RuleSet:
    """An immutable, compiled set of rules in precedence order.

    Resolution: priority = the most severe (P1 > P4) of all matching rules;
    category, queue, assignee_group, route and language = the FIRST
    matching rule (file name order, then order in the file) that sets it;
    tags = union of all matching rules' tags, in rule order.
    """

    def __init__(self, rules: Sequence[Rule], files: Sequence[str] = (), folder: str | None = None) -> None:
        self.rules: tuple[Rule, ...] = tuple(sorted(rules, key=lambda r: r.order))
        self.files: tuple[str, ...] = tuple(files)
        self.folder = folder
        self._automata: dict[str, ahocorasick.Automaton] = {}
        # (field, folded keyword) -> indexes of rules this hit may satisfy
        self._triggers: dict[tuple[str, str], list[int]] = {}
        self._always: list[int] = []  # rules with no positive keyword
        self._words: dict[str, set[str]] = {}  # field -> folded keywords
        self._build()

    @classmethod
    def empty(cls) -> RuleSet:
        return cls(())

    def __len__(self) -> int:
        return len(self.rules)

    @property
    def keyword_count(self) -> int:
        """Distinct folded keywords over all rules and fields."""
        return len(set().union(*self._words.values())) if self._words else 0

    def __repr__(self) -> str:
        return f"<RuleSet {len(self.rules)} rules from {len(self.files)} files in {self.folder}>"

    def _build(self) -> None:
        words = self._words
        for index, rule in enumerate(self.rules):
            for cond in rule.conditions:
                for kw in (*cond.any, *cond.all, *cond.none):
                    for f in cond.fields:
                        words.setdefault(f, set()).add(kw.folded)
            # Index the rule under the positive keywords of one condition:
            # conditions are ANDed, so without a hit there it cannot match.
            trigger = next((c for c in rule.conditions if c.positive), None)
            if trigger is None:
                self._always.append(index)
                continue
            for kw in trigger.positive:
                for f in trigger.fields:
                    lst = self._triggers.setdefault((f, kw.folded), [])
                    if not lst or lst[-1] != index:
                        lst.append(index)
        for name, kws in words.items():
            automaton = ahocorasick.Automaton()
            for kw in kws:
                automaton.add_word(
                    kw, (kw, len(kw), is_word_char(kw[0]), is_word_char(kw[-1]))
                )
            automaton.make_automaton()
            self._automata[name] = automaton

    def _candidates(self, scan: _Scan) -> list[int]:
        found: set[int] = set(self._always)
        for name in self._automata:
            hits = scan.hits(name)
            for kw in hits.prefix:
                found.update(self._triggers.get((name, kw), ()))
        return sorted(found)

    def classify(
        self,
        inp: ClassifyInput,
        default_priority: str = "P3",
        default_queue: str = "support",
        default_category: str = "general",
    ) -> Classification:
        scan = _Scan(self, inp)
        matched: list[tuple[Rule, RuleMatch]] = []
        for index in self._candidates(scan):
            rule = self.rules[index]
            evidence = _match_rule(rule, scan, inp)
            if evidence is not None:
                matched.append((rule, evidence))

        priority = None
        for rule, _ in matched:
            p = rule.actions.priority
            if p is not None and (priority is None or PRIORITIES.index(p) < PRIORITIES.index(priority)):
                priority = p
        chosen: dict[str, str] = {}
        winner: dict[str, str] = {}  # action -> rule name that set it
        tags: list[str] = []
        for rule, _ in matched:
            for action in ("category", "queue", "assignee_group", "route", "language"):
                value = getattr(rule.actions, action)
                if value is not None and action not in chosen:
                    chosen[action] = value
                    winner[action] = rule.name
            tags.extend(t for t in rule.actions.tags if t not in tags)
        priority_rule = next((r.name for r, _ in matched if r.actions.priority == priority), None)

        matches = []
        for rule, ev in matched:
            applied = [a for a, r in winner.items() if r == rule.name]
            if rule.actions.priority is not None and rule.name == priority_rule:
                applied.insert(0, "priority")
            if rule.actions.tags:
                applied.append("tags")
            matches.append(
                RuleMatch(
                    rule=ev.rule,
                    priority=ev.priority,
                    field=ev.field,
                    keyword=ev.keyword,
                    file=ev.file,
                    kind=ev.kind,
                    actions=tuple(rule.actions.items()),
                    applied=tuple(applied),
                )
            )
        return Classification(
            priority=priority or default_priority,
            category=chosen.get("category", default_category),
            queue=chosen.get("queue", default_queue),
            tags=tuple(tags),
            assignee_group=chosen.get("assignee_group"),
            route=chosen.get("route", "support"),
            language=chosen.get("language", inp.message.language),
            matches=tuple(matches),
        )


def _match_rule(rule: Rule, scan: _Scan, inp: ClassifyInput) -> RuleMatch | None:
    """The evidence that ``rule`` matches, or None."""
    if rule.outside_working_hours is not None and rule.outside_working_hours != bool(inp.outside_working_hours):
        return None
    if rule.warranty_expired is not None and inp.warranty_expired is not rule.warranty_expired:
        return None
    evidence: tuple[str, str | None, str | None] | None = None  # kind, field, text
    for cond in rule.conditions:
        got = _match_condition(cond, scan)
        if got is False:
            return None
        if evidence is None and isinstance(got, tuple):
            evidence = got
    if evidence is None:
        attrs = []
        if rule.outside_working_hours is not None:
            attrs.append("outside working hours" if rule.outside_working_hours else "within working hours")
        if rule.warranty_expired is not None:
            attrs.append("warranty expired" if rule.warranty_expired else "under warranty")
        evidence = ("attribute", None, " and ".join(attrs) or "no keyword present")
    kind, field, text = evidence
    return RuleMatch(
        rule=rule.name,
        priority=rule.actions.priority,
        field=field,
        keyword=text,
        file=rule.file,
        kind=kind,
    )


def _match_condition(cond: Condition, scan: _Scan) -> bool | tuple[str, str, str]:
    """False, True (held without positive evidence) or (kind, field, text)."""
    evidence: tuple[str, str, str] | None = None
    if cond.any:
        evidence = _first_hit(cond.any, cond.fields, scan)
        if evidence is None:
            return False
    for kw in cond.all:
        hit = _first_hit((kw,), cond.fields, scan)
        if hit is None:
            return False
        evidence = evidence or hit
    if cond.none and _first_hit(cond.none, cond.fields, scan) is not None:
        return False
    if cond.regex:
        hit = None
        for f in cond.fields:
            for value in scan.values(f):
                pat = next((p for p in cond.regex if p.compiled.search(value)), None)
                if pat is not None:
                    hit = ("regex", f, pat.raw)
                    break
            if hit:
                break
        if hit is None:
            return False
        evidence = evidence or hit
    return evidence or True


def _first_hit(
    keywords: tuple[Keyword, ...], fields: tuple[str, ...], scan: _Scan
) -> tuple[str, str, str] | None:
    for f in fields:
        hits = scan.hits(f)
        for kw in keywords:
            if hits.has(kw):
                return ("keyword", f, kw.raw)
    return None
