"""The compiled rule set and ``classify``.

Matching cost must not grow with the number of rules: every keyword of
every rule (and every word of the word lists) goes into one Aho-Corasick
automaton per field, the folded text of each field is scanned once, and
only rules that one of the hits points at (plus the few rules without
positive keywords) are evaluated.

Rules with a context (``near``, ``not_after``, ``if_<list>``) look at each
hit of their keywords in its clause: the text between two clause marks
(, ; : 、 and the sentence ends 。 ! ? . and line breaks), or its sentence.
The word-list hits needed for that come from the same scan, with their
positions; clauses are only cut around the hits such a rule reads.

The automata run over the UTF-8 bytes of the text (held in a str, one
character per byte), not over its characters: pyahocorasick looks up a
node's children one by one, so by character the cost of every step grows
with the number of distinct characters keywords start with (hundreds in a
Chinese rule set, thousands with 10,000 keywords); by byte a node has at
most a few dozen children.  Positions are byte offsets; text is decoded
only to show a clause or count the words between a negation and a keyword.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, replace

import ahocorasick

from .model import (
    PRIORITIES,
    Classification,
    ClassifyInput,
    Condition,
    Context,
    Keyword,
    Rule,
    RuleMatch,
    WordList,
)
from .normalize import fold, fold_text, is_cjk_char, is_word_char

__all__ = ["RuleSet", "field_values", "NEGATION_WINDOW"]

#: At most this many words (a CJK character or a Latin word each) between a
#: negation and the keyword it negates: "并没有宕机", "did not go down",
#: "没有出现过任何宕机".
NEGATION_WINDOW = 6
#: Priorities that mean "a fault": a match at one of them, of a rule that
#: sets no route itself (a severity rule), sets aside every rule routing to
#: "ignore" (spam and marketing apply only to mail without a fault in it).
FAULT_PRIORITIES = ("P1", "P2", "P3")
#: Fields read as prose (clauses, line breaks); the others are values.
_PROSE = ("subject", "body")
# Clause marks in the UTF-8 bytes of folded text (，；：！？ are ASCII by
# then; 、 is E3 80 81 and 。 E3 80 82); ',' and ':' not before a digit
# (1,000 and 10:15), '.' only before a space or the end.
_CLAUSE_MARK = re.compile("[;!?\n\x00]|\xe3\x80[\x81\x82]|[,:](?![0-9])|\\.(?=[ \n]|$)")
_SENTENCE_MARK = re.compile("[!?\n\x00]|\xe3\x80\x82|\\.(?=[ \n]|$)")
# The same marks searched in reversed bytes (what followed a mark now precedes it).
_CLAUSE_MARK_REV = re.compile("[;!?\n\x00]|[\x81\x82]\x80\xe3|(?<![0-9])[,:]|(?<=[ \n])\\.")
_SENTENCE_MARK_REV = re.compile("[!?\n\x00]|\x82\x80\xe3|(?<=[ \n])\\.")
_LOOK_BACK = 1200  # bytes
# A line that starts with a time to the second (and maybe a date before it)
# is a pasted log line: "05/14 19:42:07 On Battery", "2026-03-09 22:41:07 ...".
_ANY_STAMP = re.compile(r":\d\d:\d\d")  # a literal first: a fast scan
_LOG_STAMP = re.compile(r"[ \t]*(?:\d{2,4}[-/.]\d{1,2}(?:[-/.]\d{1,4})?[ t]+)?\d{1,2}:\d{2}:\d{2}\b")
_LATIN_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
_CLAUSE_SHOWN = 160  # characters of a clause kept in an explanation

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
    if name == "contract_level":
        return (inp.contract_level,) if inp.contract_level else ()
    raise KeyError(name)


class _Hits:
    """Keywords found in one field, with their positions.

    ``spans`` are (start, end, folded keyword, whole word) in the order the
    automaton reports them (by end position); the word sets and the index
    by word are derived on first use.  ``prefix`` holds every word found
    (a prefix hit of a Latin keyword included), ``full`` those found as
    whole words.
    """

    __slots__ = ("spans", "_prefix", "_full", "_span_ends", "_within", "listed", "absent")

    def __init__(self, spans: list[tuple[int, int, str, bool]] | None = None) -> None:
        self.spans = spans if spans is not None else []
        self._prefix: set[str] | None = None
        self._full: set[str] | None = None
        self._span_ends: list[int] | None = None
        self._within: dict[tuple[int, int], list[tuple[int, int, str, bool]]] = {}
        # (list name, start, end) -> the list's own word hits there: a list
        # reaching the whole message is filtered once, not once per keyword hit
        self.listed: dict[tuple[str, int, int], list[tuple[int, int, str, bool]]] = {}
        # id of a word set -> none of its words is in the field: asked for
        # every list, by every hit of every rule with a context
        self.absent: dict[int, bool] = {}

    @property
    def prefix(self) -> set[str]:
        if self._prefix is None:
            self._prefix = {sp[2] for sp in self.spans}
        return self._prefix

    @property
    def full(self) -> set[str]:
        if self._full is None:
            self._full = {sp[2] for sp in self.spans if sp[3]}
        return self._full

    def has(self, kw: Keyword) -> bool:
        return kw.folded in (self.prefix if kw.prefix else self.full)

    def where(self, kw: Keyword) -> list[tuple[int, int]]:
        """(start, end) of every hit of ``kw``, in text order (one word's
        hits end, and so start, in increasing order)."""
        word = kw.folded
        return [(s, e) for s, e, w, full in self.spans if w == word and (full or kw.prefix)]

    def within(self, start: int, end: int) -> list[tuple[int, int, str, bool]]:
        """Spans lying inside [start, end)."""
        key = (start, end)
        got = self._within.get(key)
        if got is None:
            if self._span_ends is None:
                self._span_ends = [sp[1] for sp in self.spans]
            lo = bisect_left(self._span_ends, start + 1)
            hi = bisect_right(self._span_ends, end)
            got = [sp for sp in self.spans[lo:hi] if sp[0] >= start]
            self._within[key] = got
        return got


_NO_HITS = _Hits()


class _Scan:
    """Lazily folded field texts and keyword hits for one classify call."""

    def __init__(self, ruleset: RuleSet, inp: ClassifyInput) -> None:
        self.ruleset = ruleset
        self.inp = inp
        self._values: dict[str, tuple[str, ...]] = {}
        self._btext: dict[str, str] = {}
        self._hits: dict[str, _Hits] = {}
        self._segments: dict[str, _Segments] = {}
        # (field, list name) -> the word of a list reaching the whole
        # message that applies there, when it does not depend on the hit;
        # ``elsewhere``: the same, found in the other prose field
        self.marks: dict[tuple[str, str], str | None] = {}
        self.elsewhere: dict[tuple[str, str], str | None] = {}

    def values(self, name: str) -> tuple[str, ...]:
        got = self._values.get(name)
        if got is None:
            folder = fold_text if name in _PROSE else fold
            got = tuple(folder(v) for v in field_values(self.inp, name))
            self._values[name] = got
        return got

    def text(self, name: str) -> str:
        """The folded values of a field joined as one text."""
        return _SEP.join(self.values(name))

    def btext(self, name: str) -> str:
        """``text`` as UTF-8 bytes, one character per byte: what is scanned."""
        got = self._btext.get(name)
        if got is None:
            got = _to_bytes(self.text(name))
            self._btext[name] = got
        return got

    def to_byte(self, name: str, pos: int) -> int:
        """The byte offset of character offset ``pos`` of ``text(name)``."""
        return len(self.text(name)[:pos].encode("utf-8"))

    def hits(self, name: str) -> _Hits:
        got = self._hits.get(name)
        if got is None:
            automaton = self.ruleset._automata.get(name)
            got = _scan(automaton, self.btext(name)) if automaton else _NO_HITS
            self._hits[name] = got
        return got

    def segments(self, name: str) -> _Segments:
        got = self._segments.get(name)
        if got is None:
            got = _Segments(self.btext(name))
            self._segments[name] = got
        return got


def _to_bytes(text: str) -> str:
    """UTF-8 bytes of ``text`` as a str of one character per byte."""
    return text.encode("utf-8").decode("latin-1")


def _from_bytes(data: str) -> str:
    return data.encode("latin-1").decode("utf-8", "replace")


def _scan(automaton: ahocorasick.Automaton, data: str) -> _Hits:
    """All keyword hits in ``data`` (UTF-8 bytes), Latin word boundaries checked."""
    spans: list[tuple[int, int, str, bool]] = []
    if not data:
        return _Hits(spans)
    last = len(data) - 1
    add = spans.append
    for end, (kw, size, check_start, check_end) in automaton.iter(data):
        start = end - size + 1
        if check_start and start > 0 and _word_before(data, start):
            continue
        add((start, end + 1, kw, not (check_end and end < last and _word_after(data, end + 1))))
    return _Hits(spans)


def _word_before(data: str, i: int) -> bool:
    """Does the character ending at byte ``i`` continue a Latin word?"""
    ch = data[i - 1]
    if ch < "\x80":
        return ch.isalnum() or ch == "_"
    j = i - 1
    while j > 0 and j > i - 4 and "\x80" <= data[j] < "\xc0":  # continuation bytes
        j -= 1
    return is_word_char(_from_bytes(data[j:i])[-1:] or " ")


def _word_after(data: str, i: int) -> bool:
    """Does the character starting at byte ``i`` continue a Latin word?"""
    ch = data[i]
    if ch < "\x80":
        return ch.isalnum() or ch == "_"
    size = 2 if ch < "\xe0" else 3 if ch < "\xf0" else 4
    return is_word_char(_from_bytes(data[i:i + size])[:1] or " ")


class _Segments:
    """Clause and sentence boundaries of one folded text (its UTF-8 bytes),
    found around a position on demand: a forward regex search, and a
    reversed one over at most ``_LOOK_BACK`` bytes before it."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._cache: dict[tuple[bool, int], tuple[int, int]] = {}
        self._has_stamp: bool | None = None

    def _around(self, pos: int, sentence: bool) -> tuple[int, int]:
        key = (sentence, pos)
        got = self._cache.get(key)
        if got is not None:
            return got
        text = self.text
        forward, backward = (_SENTENCE_MARK, _SENTENCE_MARK_REV) if sentence else (_CLAUSE_MARK, _CLAUSE_MARK_REV)
        m = forward.search(text, pos + 1)  # marks at or before pos belong to the left
        end = m.start() if m else len(text)
        # Reversed window text[lo:pos+2]: index k is position pos+1-k; the
        # character after pos is kept so a mark right before pos is judged
        # by what follows it (1,000 / end of text: a sentinel space).
        start = 0
        lo = pos - _LOOK_BACK
        while True:
            ext = text[max(lo, 0):pos + 2]
            if pos + 2 > len(text):
                ext += " "
            m = backward.search(ext[::-1], 1)
            if m is not None:
                start = pos + 2 - m.start()
                break
            if lo <= 0:
                break
            lo -= _LOOK_BACK  # a very long clause: look further back
        got = (start, end)
        self._cache[key] = got
        return got

    def clause(self, pos: int) -> tuple[int, int]:
        """[start, end) of the clause holding ``pos``; end is its mark."""
        return self._around(pos, False)

    def sentence(self, pos: int) -> tuple[int, int]:
        return self._around(pos, True)

    def span(self, reach: str, pos: int) -> tuple[int, int]:
        if reach == "message":
            return (0, len(self.text))
        if reach == "before":
            # the sentence up to the hit: a log mark ("ORA-", "[ERROR]")
            # heads the line it marks; one after the customer's words
            # ("crashed: 'ORA-00600'") quotes an error in prose
            return (self._around(pos, True)[0], pos)
        return self._around(pos, reach == "sentence")

    def any_stamp(self) -> bool:
        """Is there a time to the second anywhere?  Most mail has none, and
        then no sentence needs to be cut to look for a log line."""
        if self._has_stamp is None:
            self._has_stamp = _ANY_STAMP.search(self.text) is not None
        return self._has_stamp

    def stamped(self, pos: int) -> bool:
        """True when the sentence holding ``pos`` starts with a time stamp."""
        return self.any_stamp() and _LOG_STAMP.match(self.text, self.sentence(pos)[0]) is not None

    def asks(self, end: int) -> bool:
        """True when the clause or sentence ending at ``end`` ends with '?'."""
        return end < len(self.text) and self.text[end] == "?"

    def show(self, start: int, end: int) -> str:
        shown = _from_bytes(self.text[start:end]).strip()
        return shown if len(shown) <= _CLAUSE_SHOWN else shown[: _CLAUSE_SHOWN - 1] + "…"


class _WordSet:
    """The folded words of a word list, for membership tests on spans."""

    __slots__ = ("full", "prefix")

    def __init__(self, words: Sequence[Keyword]) -> None:
        self.full = frozenset(k.folded for k in words if not k.prefix)
        self.prefix = frozenset(k.folded for k in words if k.prefix)

    def __bool__(self) -> bool:
        return bool(self.full or self.prefix)

    def has(self, word: str, whole: bool) -> bool:
        return (whole and word in self.full) or word in self.prefix

    def absent(self, hits: _Hits) -> bool:
        """True when no word of the set was found anywhere in the field."""
        got = hits.absent.get(id(self))
        if got is None:
            got = self.full.isdisjoint(hits.full) and self.prefix.isdisjoint(hits.prefix)
            hits.absent[id(self)] = got
        return got


_EMPTY = _WordSet(())


@dataclass(slots=True)
class _CompiledList:
    name: str
    words: _WordSet
    except_: _WordSet
    not_in: _WordSet
    reach: str
    with_: _WordSet


@dataclass(frozen=True, slots=True)
class _HitOutcome:
    """What one keyword hit of a context rule counts for."""

    start: int
    end: int
    field: str
    keyword: str
    counts: bool
    priority: str | None
    reason: str | None = None
    because: str | None = None
    clause: tuple[int, int] = (0, 0)


class RuleSet:
    """An immutable, compiled set of rules in precedence order.

    Resolution: priority = the most severe (P1 > P4) of all matching rules
    (a discounted match counts at its lowered priority); category, queue,
    assignee_group, route and language = the FIRST matching rule (file name
    order, then order in the file) that sets it, among matches that were not
    discounted; tags = union of those rules' tags, in rule order.  When a
    match of a rule that sets no route counts at P1-P3 (a fault), rules
    routing to "ignore" are set aside.
    """

    def __init__(
        self,
        rules: Sequence[Rule],
        files: Sequence[str] = (),
        folder: str | None = None,
        lists: dict[str, WordList] | None = None,
    ) -> None:
        self.rules: tuple[Rule, ...] = tuple(sorted(rules, key=lambda r: r.order))
        self._by_name: dict[str, Rule] = {r.name: r for r in self.rules}
        self.files: tuple[str, ...] = tuple(files)
        self.folder = folder
        self.lists: dict[str, WordList] = dict(lists or {})
        self._automata: dict[str, ahocorasick.Automaton] = {}
        # (field, folded keyword) -> indexes of rules this hit may satisfy
        self._triggers: dict[tuple[str, str], list[int]] = {}
        self._always: list[int] = []  # rules with no positive keyword
        self._words: dict[str, set[str]] = {}  # field -> folded keywords
        self._lists: dict[str, _CompiledList] = {
            name: _CompiledList(name, _WordSet(wl.words), _WordSet(wl.except_), _WordSet(wl.not_in), wl.reach,
                                _WordSet(wl.with_))
            for name, wl in self.lists.items()
        }
        self._literal: dict[int, tuple[_WordSet, _WordSet]] = {}  # rule index -> (near, not_after) words
        self._any_index: dict[int, dict[str, list[Keyword]]] = {}  # rule index -> folded -> any-keywords
        self._build()

    @classmethod
    def empty(cls) -> RuleSet:
        return cls(())

    def __len__(self) -> int:
        return len(self.rules)

    @property
    def keyword_count(self) -> int:
        """Distinct folded keywords (and list words) over all rules and fields."""
        return len(set().union(*self._words.values())) if self._words else 0

    def __repr__(self) -> str:
        return f"<RuleSet {len(self.rules)} rules from {len(self.files)} files in {self.folder}>"

    def _build(self) -> None:
        words = self._words
        context_fields: set[str] = set()
        for index, rule in enumerate(self.rules):
            for cond in rule.conditions:
                for kw in (*cond.any, *cond.all, *cond.none):
                    for f in cond.fields:
                        words.setdefault(f, set()).add(kw.folded)
            ctx = rule.context
            if ctx is not None and rule.conditions:
                top = rule.conditions[0]
                context_fields.update(top.fields)
                for kw in (*ctx.near_words, *ctx.not_after_words):
                    for f in top.fields:
                        words.setdefault(f, set()).add(kw.folded)
                self._literal[index] = (_WordSet(ctx.near_words), _WordSet(ctx.not_after_words))
                by_word: dict[str, list[Keyword]] = {}
                for kw in top.any:
                    by_word.setdefault(kw.folded, []).append(kw)
                self._any_index[index] = by_word
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
        # Word lists are found by the same scan, in the fields that rules
        # with a context read.
        for wl in self.lists.values():
            for kw in (*wl.words, *wl.except_, *wl.not_in, *wl.with_):
                for f in context_fields:
                    words.setdefault(f, set()).add(kw.folded)
        for name, kws in words.items():
            automaton = ahocorasick.Automaton()
            for kw in kws:
                key = _to_bytes(kw)
                automaton.add_word(key, (kw, len(key), is_word_char(kw[0]), is_word_char(kw[-1])))
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
        discounted: list[RuleMatch] = []
        for index in self._candidates(scan):
            rule = self.rules[index]
            evidence = self._match_rule(index, rule, scan, inp)
            if evidence is None:
                continue
            if evidence.discounted is not None and evidence.priority is None:
                discounted.append(evidence)  # found, but does not count
            else:
                matched.append((rule, evidence))

        # Severity beats an ignore route: spam and marketing rules apply only
        # to mail in which no fault was found.
        fault = next((m for r, m in matched if m.priority in FAULT_PRIORITIES and r.actions.route is None), None)
        if fault is not None and any(r.actions.route == "ignore" for r, _ in matched):
            kept = []
            for rule, m in matched:
                if rule.actions.route == "ignore":
                    discounted.append(replace(m, priority=None, discounted="severity", because=fault.rule))
                else:
                    kept.append((rule, m))
            matched = kept

        priority = None
        for _, m in matched:
            p = m.priority
            if p is not None and (priority is None or PRIORITIES.index(p) < PRIORITIES.index(priority)):
                priority = p
        chosen: dict[str, str] = {}
        winner: dict[str, str] = {}  # action -> rule name that set it
        tags: list[str] = []
        for rule, m in matched:
            if m.discounted is not None:
                continue  # a discounted match only lowers: its other actions do not apply
            for action in ("category", "queue", "assignee_group", "route", "language"):
                value = getattr(rule.actions, action)
                if value is not None and action not in chosen:
                    chosen[action] = value
                    winner[action] = rule.name
            tags.extend(t for t in rule.actions.tags if t not in tags)
        priority_rule = next((r.name for r, m in matched if priority is not None and m.priority == priority), None)

        matches = []
        for rule, ev in matched:
            applied = [a for a, r in winner.items() if r == rule.name]
            if ev.priority is not None and rule.name == priority_rule:
                applied.insert(0, "priority")
            if rule.actions.tags and ev.discounted is None:
                applied.append("tags")
            matches.append(replace(ev, actions=tuple(rule.actions.items()), applied=tuple(applied)))
        discounted = [replace(m, actions=tuple(self._by_name[m.rule].actions.items())) for m in discounted]
        return Classification(
            priority=priority or default_priority,
            category=chosen.get("category", default_category),
            queue=chosen.get("queue", default_queue),
            tags=tuple(tags),
            assignee_group=chosen.get("assignee_group"),
            route=chosen.get("route", "support"),
            language=chosen.get("language", inp.message.language),
            matches=tuple(matches),
            discounted=tuple(discounted),
        )

    # -- one rule ---------------------------------------------------------

    def _match_rule(self, index: int, rule: Rule, scan: _Scan, inp: ClassifyInput) -> RuleMatch | None:
        """The evidence that ``rule`` matches, or None.

        For a rule with a context the evidence is its best hit: one that
        counts in full, else the most severe discounted one; when no hit
        counts, a RuleMatch with priority None and the discount reason.
        """
        if rule.outside_working_hours is not None and rule.outside_working_hours != bool(inp.outside_working_hours):
            return None
        if rule.warranty_expired is not None and inp.warranty_expired is not rule.warranty_expired:
            return None
        best: _HitOutcome | None = None
        conditions = rule.conditions
        if rule.context is not None:
            best = self._best_hit(index, rule, scan)
            if best is None:
                return None
        evidence: tuple[str, str | None, str | None, tuple[int, int] | None] | None = None
        for i, cond in enumerate(conditions):
            got = _match_condition(cond, scan, skip_trigger=(best is not None and i == 0))
            if got is False:
                return None
            if evidence is None and isinstance(got, tuple):
                evidence = got
        rule_priority = rule.actions.priority
        if best is not None:
            kind = "keyword" if best.keyword and not best.keyword.startswith("/") else "regex"
            keyword = best.keyword[1:-1] if kind == "regex" else best.keyword
            segs = scan.segments(best.field)
            clause = segs.show(*best.clause)
            if not best.counts:
                return RuleMatch(rule=rule.name, priority=None, field=best.field, keyword=keyword, file=rule.file,
                                 kind=kind, clause=clause, discounted=best.reason, because=best.because,
                                 rule_priority=rule_priority)
            return RuleMatch(rule=rule.name, priority=best.priority, field=best.field, keyword=keyword,
                             file=rule.file, kind=kind, clause=clause, discounted=best.reason,
                             because=best.because, rule_priority=rule_priority)
        if evidence is None:
            attrs = []
            if rule.outside_working_hours is not None:
                attrs.append("outside working hours" if rule.outside_working_hours else "within working hours")
            if rule.warranty_expired is not None:
                attrs.append("warranty expired" if rule.warranty_expired else "under warranty")
            evidence = ("attribute", None, " and ".join(attrs) or "no keyword present", None)
        kind, field, text, where = evidence
        clause = None
        if where is not None and field is not None:
            segs = scan.segments(field)
            pos = where[0]
            if pos > 0 and _CLAUSE_MARK.match(segs.text, pos):
                pos -= 1  # the match starts on a mark ('?'): show the clause it ends
            span = segs.clause(pos)
            clause = segs.show(*span)
        return RuleMatch(
            rule=rule.name,
            priority=rule_priority,
            field=field,
            keyword=text,
            file=rule.file,
            kind=kind,
            clause=clause,
            rule_priority=rule_priority,
        )

    def _best_hit(self, index: int, rule: Rule, scan: _Scan) -> _HitOutcome | None:
        top = rule.conditions[0]
        ctx = rule.context
        assert ctx is not None
        not_in = [self._lists[n].not_in for n in ctx.any_lists if self._lists[n].not_in]
        best: _HitOutcome | None = None
        found = {f: _trigger_hits(top, self._any_index[index], scan, f) for f in top.fields}
        # A subject is a title: a keyword the body also has is read where
        # the body tells it ("宕机怎么办" over "万一服务器宕机了，...").
        in_body = {label for _, _, label in found.get("body", ())} if "subject" in found else set()
        for f in top.fields:
            for start, end, label in found[f]:
                if f == "subject" and label in in_body:
                    continue
                if not_in:
                    around = scan.hits(f).within(*scan.segments(f).clause(start))
                    if any(_covered(around, words, start, end) for words in not_in):
                        continue  # 坏了 in 划坏了: not this list's word
                got = self._read_hit(index, rule, scan, f, start, end, label)
                if got is None:
                    continue
                if got.counts and got.reason is None:
                    return got  # counts in full: nothing beats it
                if best is None or _better(got, best):
                    best = got
        return best

    def _read_hit(
        self, index: int, rule: Rule, scan: _Scan, f: str, start: int, end: int, label: str
    ) -> _HitOutcome | None:
        """Reads the clause around one hit; None when ``near`` is missing."""
        ctx = rule.context
        assert ctx is not None
        hits = scan.hits(f)
        segs = scan.segments(f)
        clause = segs.clause(start)
        near_literal, neg_literal = self._literal.get(index, (_EMPTY, _EMPTY))
        if ctx.near or near_literal:
            if not self._has_near(ctx, near_literal, neg_literal, hits, segs, start, end):
                return None
        negation = self._negated(ctx, neg_literal, hits, segs, clause, start)
        if negation is not None:
            return _HitOutcome(start, end, f, label, False, None, "negated", negation, clause)
        rule_priority = rule.actions.priority
        found: tuple[str | None, str, str] | None = None  # (priority, list, word)
        for name, lowered in ctx.discounts:
            if found is not None and not _less_severe(lowered, found[0]):
                continue  # could not lower it further: not worth reading
            cl = self._lists[name]
            if cl.reach == "message" and f in _PROSE:
                word = self._message_marker(cl, scan, f, clause, start)
            else:
                word = self._marker(cl, hits, segs, clause, start)
            if word is None:
                continue
            if found is None or _less_severe(lowered, found[0]):
                found = (lowered, name, word)
        if found is None:
            return _HitOutcome(start, end, f, label, True, rule_priority, clause=clause)
        lowered, name, word = found
        if lowered is None:
            return _HitOutcome(start, end, f, label, False, None, name, word, clause)
        if rule_priority is not None and PRIORITIES.index(lowered) < PRIORITIES.index(rule_priority):
            lowered = rule_priority  # if_<list> never raises
        return _HitOutcome(start, end, f, label, True, lowered, name, word, clause)

    def _marker(
        self, cl: _CompiledList, hits: _Hits, segs: _Segments, clause: tuple[int, int] | None, start: int
    ) -> str | None:
        """The word of list ``cl`` that applies to the hit at ``start``.

        A list word counts in the hit's clause (or sentence, by the list's
        reach) unless an ``except`` word stands in the list word's clause,
        the hit's clause or between them; a list with ``with`` words needs
        one of them in the list word's clause.  For "question", a clause
        ending in '?' counts as a word; for "log", a sentence that starts
        with a time stamp to the second.  ``clause`` None: the hit is in
        another field (only the list word's own clause is read).
        """
        asks = cl.name == "question"
        if cl.words.absent(hits) and not asks:
            return self._stamp(cl, segs, start)  # no word of the list anywhere in the field
        lo, hi = segs.span(cl.reach, start)
        inside = hits.within(lo, hi)
        key = (cl.name, lo, hi)
        own = hits.listed.get(key)
        if own is None:
            own = [sp for sp in inside if cl.words.has(sp[2], sp[3])
                   and not (cl.not_in and _covered(inside, cl.not_in, sp[0], sp[1]))]
            hits.listed[key] = own
        for s, e, word, whole in own:
            mark = segs.clause(s)
            if cl.with_ and _first_in(hits, cl.with_, *mark) is None:
                continue
            lo_, hi_ = mark if clause is None else (min(mark[0], clause[0]), max(mark[1], clause[1]))
            if not _cancelled(inside, cl, lo_, hi_):
                return word
        if asks and clause is not None and segs.asks(clause[1]) and not _cancelled(inside, cl, *clause):
            return "?"
        return self._stamp(cl, segs, start)

    @staticmethod
    def _stamp(cl: _CompiledList, segs: _Segments, start: int) -> str | None:
        """"time stamp" for a hit of list "log" in a sentence that starts with
        one (a log line without a mark the list knows), else None."""
        if cl.name == "log" and segs.stamped(start):
            return "time stamp"
        return None

    def _message_marker(
        self, cl: _CompiledList, scan: _Scan, f: str, clause: tuple[int, int], start: int
    ) -> str | None:
        """``_marker`` for a list reaching the whole message (subject and
        body).  Without ``except`` words its answer does not depend on the
        hit, so it is worked out once per field, not once per hit and rule."""
        key = (f, cl.name)
        if not cl.except_ and key in scan.marks:
            return scan.marks[key]
        word = self._marker(cl, scan.hits(f), scan.segments(f), clause, start)
        if word is None:
            if key not in scan.elsewhere:  # never depends on the hit
                scan.elsewhere[key] = self._marker_in_other(cl, scan, f)
            word = scan.elsewhere[key]
        if not cl.except_:
            scan.marks[key] = word
        return word

    def _marker_in_other(self, cl: _CompiledList, scan: _Scan, f: str) -> str | None:
        """The word of a list reaching the whole message, looked for in the
        other prose field (subject or body): the message is both, so the
        body tells whether the rest runs under a subject "电信专线中断"
        ("暂时没有影响业务"), and a subject "Please ignore my last email"
        takes back the body's report."""
        other = "body" if f == "subject" else "subject"
        if other not in self._automata:
            return None
        return self._marker(cl, scan.hits(other), scan.segments(other), None, 0)

    def _has_near(
        self, ctx: Context, literal: _WordSet, neg_literal: _WordSet, hits: _Hits, segs: _Segments,
        start: int, end: int,
    ) -> bool:
        empty = _EMPTY
        wanted: list[tuple[_WordSet, _WordSet, _WordSet, str]] = [
            (self._lists[n].words, self._lists[n].except_, self._lists[n].not_in, self._lists[n].reach)
            for n in ctx.near
        ]
        if literal:
            wanted.append((literal, empty, empty, "clause"))
        for words, except_, not_in, reach in wanted:
            if words.absent(hits):
                continue
            lo, hi = segs.span(reach, start)
            inside = hits.within(lo, hi)
            for s, e, word, whole in inside:
                if not words.has(word, whole) or (s < end and e > start) or _covered(inside, not_in, s, e):
                    continue
                near_clause = segs.clause(s)
                if except_ and _first_in(hits, except_, *near_clause) is not None:
                    continue
                if self._negated(ctx, neg_literal, hits, segs, near_clause, s) is None:
                    return True
        return False

    def _negated(
        self, ctx: Context, literal: _WordSet, hits: _Hits, segs: _Segments, clause: tuple[int, int], start: int
    ) -> str | None:
        """The negation before ``start`` in its clause, or None."""
        if not ctx.not_after and not literal:
            return None
        lo = clause[0]
        before = hits.within(lo, start)
        if not before:
            return None
        empty = _EMPTY
        sources: list[tuple[_WordSet, _WordSet, _WordSet]] = [
            (self._lists[n].words, self._lists[n].except_, self._lists[n].not_in) for n in ctx.not_after
        ]
        if literal:
            sources.append((literal, empty, empty))
        text = segs.text
        around = hits.within(lo, clause[1])  # not_in words may reach past the keyword
        for words, except_, not_in in sources:
            if words.absent(hits):
                continue
            # nearest first; of two ending together the longer (并没有, not 没有)
            for s, e, word, whole in sorted(before, key=lambda sp: (-sp[1], sp[0])):
                if not words.has(word, whole):
                    continue
                if _distance(_from_bytes(text[e:start])) > NEGATION_WINDOW:
                    break  # earlier ones are further away still
                if _covered(around, not_in, s, e):
                    continue  # part of a longer word: 无线, 没想到, 无法
                if except_ and any(except_.has(w2, wh2) and s2 >= e for s2, e2, w2, wh2 in before):
                    continue  # 但, 就, but ... between the negation and the keyword
                return word
        return None


def _trigger_hits(
    top: Condition, by_word: dict[str, list[Keyword]], scan: _Scan, f: str
) -> list[tuple[int, int, str]]:
    """(start, end, label) of each hit of the rule's any-keywords (indexed
    by folded word in ``by_word``) or regex matches, labelled "/pattern/",
    in field ``f``."""
    out: list[tuple[int, int, str]] = []
    if top.any:
        for s, e, word, whole in [sp for sp in scan.hits(f).spans if sp[2] in by_word]:
            for kw in by_word[word]:
                if whole or kw.prefix:
                    out.append((s, e, kw.raw))
    else:
        for offset, value in _offsets(scan.values(f)):
            for pat in top.regex:
                out.extend((scan.to_byte(f, offset + m.start()), scan.to_byte(f, offset + m.end()), f"/{pat.raw}/")
                           for m in pat.compiled.finditer(value))
    out.sort()
    return out


def _offsets(values: tuple[str, ...]) -> list[tuple[int, str]]:
    """(offset in the joined text, value) of each value of a field."""
    out, offset = [], 0
    for value in values:
        out.append((offset, value))
        offset += len(value) + len(_SEP)
    return out


def _first_in(hits: _Hits, words: _WordSet, lo: int, hi: int, not_in: _WordSet | None = None) -> str | None:
    if not words:
        return None
    inside = hits.within(lo, hi)
    for s, e, word, whole in inside:
        if words.has(word, whole) and not (not_in and _covered(inside, not_in, s, e)):
            return word
    return None


def _cancelled(spans: list[tuple[int, int, str, bool]], cl: _CompiledList, lo: int, hi: int) -> bool:
    """Does an ``except`` word of the list stand in [lo, hi)?  One that
    lies inside or across a word of the list itself does not count (所有 in
    不是所有); one that contains it does (怎么办 cancels 怎么)."""
    if not cl.except_:
        return False
    inside = [sp for sp in spans if sp[0] >= lo and sp[1] <= hi]
    for s, e, word, whole in inside:
        if cl.except_.has(word, whole) and not any(
            cl.words.has(w2, wh2) and s2 < e and s < e2 and not (s <= s2 and e2 <= e)
            for s2, e2, w2, wh2 in inside
        ):
            return True
    return False


def _covered(spans: list[tuple[int, int, str, bool]], not_in: _WordSet, s: int, e: int) -> bool:
    """Is [s, e) inside a longer hit of a ``not_in`` word?"""
    if not not_in:
        return False
    return any(s2 <= s and e <= e2 and (e2 - s2) > (e - s) and not_in.has(w, whole) for s2, e2, w, whole in spans)


def _distance(gap: str) -> int:
    """Words in ``gap``: each CJK character and each Latin word is one."""
    if not gap.strip():
        return 0
    cjk = sum(1 for ch in gap if is_cjk_char(ch))
    return cjk + len(_LATIN_WORD.findall(gap))


def _less_severe(a: str | None, b: str | None) -> bool:
    """True when ``a`` is less severe than ``b`` (None = not counted = least)."""
    if a is None:
        return b is not None
    if b is None:
        return False
    return PRIORITIES.index(a) > PRIORITIES.index(b)


def _better(a: _HitOutcome, b: _HitOutcome) -> bool:
    """Is hit ``a`` better evidence than ``b``? Counting beats not counting,
    then the more severe priority, then the earlier hit."""
    if a.counts != b.counts:
        return a.counts
    if a.priority != b.priority:
        return _less_severe(b.priority, a.priority)
    return False


def _match_condition(
    cond: Condition, scan: _Scan, skip_trigger: bool = False
) -> bool | tuple[str, str, str, tuple[int, int] | None]:
    """False, True (held without positive evidence) or (kind, field, text, span).

    ``skip_trigger``: the any-keywords (or the regex, for a rule without
    them) were already read hit by hit by the rule's context.
    """
    evidence: tuple[str, str, str, tuple[int, int] | None] | None = None
    if cond.any and not skip_trigger:
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
    if cond.regex and not (skip_trigger and not cond.any):
        hit = None
        for f in cond.fields:
            for offset, value in _offsets(scan.values(f)):
                for pat in cond.regex:
                    m = pat.compiled.search(value)
                    if m is not None:
                        where = (scan.to_byte(f, offset + m.start()), scan.to_byte(f, offset + m.end()))
                        hit = ("regex", f, pat.raw, where)
                        break
                if hit:
                    break
            if hit:
                break
        if hit is None:
            return False
        evidence = evidence or hit
    return evidence or True


def _first_hit(
    keywords: tuple[Keyword, ...], fields: tuple[str, ...], scan: _Scan
) -> tuple[str, str, str, tuple[int, int] | None] | None:
    for f in fields:
        hits = scan.hits(f)
        for kw in keywords:
            if hits.has(kw):
                where = hits.where(kw)
                return ("keyword", f, kw.raw, where[0] if where else None)
    return None
