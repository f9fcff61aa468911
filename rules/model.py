"""Plain data: compiled rules, the classifier's input and its result.

Kept apart from the loader and the matcher so the pipeline, the CLI and
the event store can use these types without pulling in TOML or
Aho-Corasick code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..parsers.message import ParsedMessage

__all__ = [
    "FIELDS",
    "DEFAULT_FIELDS",
    "PRIORITIES",
    "ROUTES",
    "Keyword",
    "Pattern",
    "WordList",
    "Context",
    "Condition",
    "Actions",
    "Rule",
    "ClassifyInput",
    "RuleMatch",
    "Classification",
]

#: Message fields a condition can look at.  Multi-valued ones (recipient,
#: attachment_names, customer) match if any value matches.
FIELDS: tuple[str, ...] = (
    "subject",
    "body",
    "sender",
    "sender_domain",
    "recipient",
    "attachment_names",
    "source",
    "source_kind",
    "customer",
    "contract",
    "contract_level",
)
#: Fields used by keyword/regex conditions that do not name their fields.
#: Attachment names are deliberately absent: "error.log" is not an error.
DEFAULT_FIELDS: tuple[str, ...] = ("subject", "body")
PRIORITIES: tuple[str, ...] = ("P1", "P2", "P3", "P4")  # P1 = most severe
ROUTES: tuple[str, ...] = ("support", "sales", "ignore")


@dataclass(frozen=True, slots=True)
class Keyword:
    """A keyword as the admin wrote it and in folded (matching) form.

    ``prefix`` is set by a trailing '*' ("install*"): the end of a Latin
    keyword then need not fall on a word boundary.
    """

    raw: str
    folded: str
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class Pattern:
    """A regular expression; ``compiled`` runs on folded text."""

    raw: str
    compiled: re.Pattern[str]


@dataclass(frozen=True, slots=True)
class WordList:
    """A named list of words that rules refer to (``[lists.NAME]``, ``@NAME``).

    ``except_``: words that cancel the list where they appear (in the same
    clause or sentence; for a negation, between the negation and the
    keyword).  ``not_in``: longer words that contain a list word without
    meaning it ("无" in "无线", "怎么" in "怎么办"): a list word inside one of
    them is not a hit.  ``with_``: when set, a list word counts only with
    one of these in its own clause ("其他" + "正常": the rest works).
    ``reach``: how far from a keyword the list is looked for, "clause"
    (between commas), "sentence", "before" (the sentence up to the
    keyword) or "message" (anywhere in the field).
    """

    name: str
    words: tuple[Keyword, ...]
    except_: tuple[Keyword, ...] = ()
    not_in: tuple[Keyword, ...] = ()
    reach: str = "clause"
    with_: tuple[Keyword, ...] = ()


@dataclass(frozen=True, slots=True)
class Context:
    """How a rule reads the clause around each of its keyword hits.

    ``near``: names of word lists (and literal words) one of which must be
    in the hit's clause (or sentence, by the list's reach);
    ``not_after``: lists (and words) that, found before the hit in its
    clause (at most ``matcher.NEGATION_WINDOW`` words away), make the hit not count;
    ``discounts``: (list name, priority or None) pairs from ``if_<list>``:
    a hit whose clause contains a word of the list counts at that priority
    (None: does not count).  An ``except`` word of the list cancels it,
    unless the except word overlaps a word of the list ("不是所有" is a
    scope of one even though "所有" cancels it).
    """

    near: tuple[str, ...] = ()
    near_words: tuple[Keyword, ...] = ()
    not_after: tuple[str, ...] = ()
    not_after_words: tuple[Keyword, ...] = ()
    discounts: tuple[tuple[str, str | None], ...] = ()
    any_lists: tuple[str, ...] = ()  # lists named in `any`: their not_in applies to the hits

    def lists(self) -> tuple[str, ...]:
        return (*self.near, *self.not_after, *(name for name, _ in self.discounts))


@dataclass(frozen=True, slots=True)
class Condition:
    """Keyword/regex tests on a set of fields; all parts must hold.

    ``any``: at least one keyword found; ``all``: every keyword found (each
    in any of the fields); ``none``: no keyword found; ``regex``: at least
    one pattern matches.  Empty parts are not tested.
    """

    fields: tuple[str, ...]
    any: tuple[Keyword, ...] = ()
    all: tuple[Keyword, ...] = ()
    none: tuple[Keyword, ...] = ()
    regex: tuple[Pattern, ...] = ()

    @property
    def positive(self) -> tuple[Keyword, ...]:
        """Keywords one of which must be present for the condition to hold."""
        return self.any + self.all


@dataclass(frozen=True, slots=True)
class Actions:
    """What a matching rule asks for; None / () = "not set by this rule"."""

    priority: str | None = None
    category: str | None = None
    queue: str | None = None
    tags: tuple[str, ...] = ()
    assignee_group: str | None = None
    route: str | None = None
    language: str | None = None

    def items(self) -> list[tuple[str, str]]:
        """(action, value) pairs this rule sets, in a fixed order."""
        out: list[tuple[str, str]] = []
        for name in ("priority", "category", "queue", "assignee_group", "route", "language"):
            value = getattr(self, name)
            if value is not None:
                out.append((name, value))
        if self.tags:
            out.append(("tags", ",".join(self.tags)))
        return out


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled rule; ``order`` is its global position in the set."""

    name: str
    file: str  # file name (not path): what admins see in explanations
    line: int
    order: int
    conditions: tuple[Condition, ...]
    actions: Actions
    description: str = ""
    outside_working_hours: bool | None = None
    warranty_expired: bool | None = None
    context: Context | None = None  # set when the rule reads clauses


@dataclass(frozen=True, slots=True)
class ClassifyInput:
    """Everything the rules may look at for one message.

    ``text_override`` replaces ``message.new_text`` as the body (e.g. OCR
    text of a fax).  ``warranty_expired`` None means "unknown": rules asking
    for either value do not match.
    """

    message: ParsedMessage
    source_name: str | None = None
    source_kind: str | None = None
    customer_name: str | None = None
    customer_company: str | None = None
    contract_id: str | None = None
    warranty_expired: bool | None = None
    contract_level: str | None = None  # the valid contract's level (customer master data)
    outside_working_hours: bool = False
    text_override: str | None = None


#: How `casegate rules test` names the discounts of the shipped word lists
#: (any other list is named as it is called).
_REASONS: dict[str, str] = {
    "hypothetical": "hypothetical",
    "group": "one group of users",
    "device": "one device",
    "others_fine": "the rest works",
    "rest_runs": "the rest of the system runs",
    "no_impact": "no impact on the business",
    "recovers": "a restart cures it for a while",
    "slow": "slow, not down",
    "retracted": "taken back",
    "log": "in a pasted log line",
    "redundant": "redundancy lost, service runs",
    "backup_power": "backup power lost",
    "marketing": "marketing copy",
    "hearsay": "someone else's, heard of",
    "boilerplate": "a signature's standing text",
    "account": "account work (a password)",
    "wish": "a wish for a next version",
}


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """Why one rule matched: the first evidence found, and what it set.

    ``field``/``keyword`` are None for rules matched on attributes only
    (time, warranty).  ``kind`` is "keyword", "regex" or "attribute";
    ``applied`` lists the actions of this rule that made it into the
    result (others were decided by a more severe or an earlier rule).

    ``clause`` is the clause (folded text, between punctuation) the evidence
    was found in.  ``discounted`` says why the match counts less than the
    rule asks or not at all: "negated", a word-list name from ``if_<list>``
    ("question", "past", "planned", "single", ...) or "severity" (an ignore
    route set aside because a fault was found); ``because`` is the word that
    did it.  ``priority`` is what the match counts for (None when it does
    not count); ``rule_priority`` is the rule's own priority.
    """

    rule: str
    priority: str | None
    field: str | None
    keyword: str | None
    file: str
    kind: str = "keyword"
    actions: tuple[tuple[str, str], ...] = ()
    applied: tuple[str, ...] = ()
    clause: str | None = None
    discounted: str | None = None
    because: str | None = None
    rule_priority: str | None = None

    def evidence(self) -> str:
        if self.kind == "regex":
            return f"{self.field} matches /{self.keyword}/"
        if self.kind == "keyword":
            return f"{self.field} contains {self.keyword!r}"
        return self.keyword or "matched"

    def why_discounted(self) -> str:
        """Human reason for a discount, e.g. "in a question ('会不会')"."""
        word = f" ({self.because!r})" if self.because else ""
        reason = self.discounted
        if reason == "negated":
            return f"negated{word}"
        if reason == "severity":
            return f"set aside: a fault was found{word}"
        if reason == "question":
            return f"in a question{word}"
        if reason in ("past", "planned"):
            return f"{reason}{word}"
        if reason == "single":
            return f"a scope of one{word}"
        return f"{_REASONS.get(reason or '', reason)}{word}"

    def explain(self) -> str:
        parts = []
        for name, value in self.actions:
            if name == "priority" and self.discounted and self.priority != self.rule_priority:
                value = f"{self.priority or 'none'} ({self.rule_priority} lowered: {self.why_discounted()})"
            label = f"{name} {value}"
            if name not in self.applied:
                label += " (not applied)"
            parts.append(label)
        acts = ", ".join(parts) if parts else "no action"
        return f"rule {self.rule} ({self.file}): {self.evidence()} -> {acts}"

    def explain_lines(self) -> list[str]:
        """The explanation, the clause, and (when not counted) why not."""
        if self.priority is None and self.discounted:
            lines = [f"not counted: rule {self.rule} ({self.file}): {self.evidence()}: {self.why_discounted()}"]
        else:
            lines = [self.explain()]
        if self.clause and self.clause.casefold() != (self.keyword or "").casefold():
            lines.append(f"    in: {self.clause}")  # the clause says more than the keyword
        return lines

    def to_dict(self) -> dict[str, Any]:
        out = {
            "rule": self.rule,
            "file": self.file,
            "priority": self.priority,
            "field": self.field,
            "keyword": self.keyword,
            "kind": self.kind,
            "actions": dict(self.actions),
            "applied": list(self.applied),
        }
        if self.clause is not None:
            out["clause"] = self.clause
        if self.discounted is not None:
            out["discounted"] = self.discounted
            out["because"] = self.because
            out["rule_priority"] = self.rule_priority
        return out


@dataclass(frozen=True, slots=True)
class Classification:
    """The resolved result of all matching rules plus the defaults."""

    priority: str
    category: str
    queue: str
    tags: tuple[str, ...]
    assignee_group: str | None
    route: str
    language: str | None
    matches: tuple[RuleMatch, ...] = field(default=())
    #: rules whose keywords were found but did not count (negated, in a
    #: question, past, ...; or an ignore route set aside by a fault)
    discounted: tuple[RuleMatch, ...] = field(default=())

    def explain(self) -> list[str]:
        """Lines per matching rule (with its clause), rules that did not
        count and why, then the resolved result."""
        lines = [line for m in self.matches for line in m.explain_lines()]
        if not self.matches:
            lines.append("no rule matched")
        lines.extend(line for m in self.discounted for line in m.explain_lines())
        summary = (
            f"=> priority {self.priority}, category {self.category}, "
            f"queue {self.queue}, route {self.route}"
        )
        if self.tags:
            summary += f", tags {','.join(self.tags)}"
        if self.assignee_group:
            summary += f", assignee_group {self.assignee_group}"
        if self.language:
            summary += f", language {self.language}"
        lines.append(summary)
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "priority": self.priority,
            "category": self.category,
            "queue": self.queue,
            "tags": list(self.tags),
            "assignee_group": self.assignee_group,
            "route": self.route,
            "language": self.language,
            "matches": [m.to_dict() for m in self.matches],
            "discounted": [m.to_dict() for m in self.discounted],
        }
