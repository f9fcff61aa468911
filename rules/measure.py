"""Measuring a rule set against labelled mail.

Priority is the decision that costs most when wrong: a false P1 wakes the
general manager at night, a missed P1 breaks the 30-minute promise.  So the
rules are measured, not assumed: a labelled file (TOML, one ``[[mail]]``
table per message, see ``tests/data/classification/README.md``) is
classified and compared.  Used by ``bench/classify.py`` and the tests.
"""

from __future__ import annotations

import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..parsers.message import Address, ParsedMessage
from .matcher import RuleSet
from .model import PRIORITIES, Classification, ClassifyInput

__all__ = ["LabelledMail", "Outcome", "Measurement", "load_labelled", "measure", "format_measurement"]

#: kind -> (route, category) expected for it
KINDS: dict[str, tuple[str, str]] = {
    "fault": ("support", "general"),
    "question": ("support", "general"),
    "request": ("support", "general"),
    "notice": ("support", "general"),
    "report": ("support", "general"),
    "other": ("support", "general"),
    "complaint": ("support", "complaint"),
    "feature-request": ("sales", "feature-request"),
    "quote": ("sales", "quote"),
    "spam": ("ignore", "spam"),
}
IGNORED = "ignored"  # the column of mail dropped by an ignore route


@dataclass(frozen=True, slots=True)
class LabelledMail:
    id: str
    subject: str
    body: str
    kind: str
    priority: str | None  # None: not scored (sales, ignore)
    lang: str = ""
    note: str = ""

    @property
    def route(self) -> str:
        return KINDS[self.kind][0]

    @property
    def category(self) -> str:
        return KINDS[self.kind][1]

    def message(self) -> ParsedMessage:
        return ParsedMessage(
            message_id=f"{self.id}@labelled.invalid", in_reply_to=(), references=(),
            from_=Address("", "customer@example.cn"), reply_to=(),
            to=(Address("", "service@desk.example.cn"),), cc=(), subject=self.subject, date=None,
            text=self.body, new_text=self.body, html=None, attachments=(),
            is_auto_reply=False, is_bounce=False, is_list=False,
        )


def load_labelled(path: Path | str) -> list[LabelledMail]:
    """The mails of one labelled TOML file; raises ValueError on a bad entry."""
    data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    out = []
    seen: set[str] = set()
    for raw in data.get("mail", []):
        mid = raw.get("id")
        kind = raw.get("kind")
        prio = raw.get("priority")
        if not mid or mid in seen:
            raise ValueError(f"{path}: missing or duplicate id {mid!r}")
        if kind not in KINDS:
            raise ValueError(f"{path}: {mid}: unknown kind {kind!r}")
        if prio is not None and prio not in PRIORITIES:
            raise ValueError(f"{path}: {mid}: invalid priority {prio!r}")
        if prio is None and KINDS[kind][0] == "support":
            raise ValueError(f"{path}: {mid}: support mail needs an expected priority")
        seen.add(mid)
        out.append(LabelledMail(mid, raw.get("subject", ""), raw.get("body", ""), kind, prio,
                                raw.get("lang", ""), raw.get("note", "")))
    return out


@dataclass(frozen=True, slots=True)
class Outcome:
    mail: LabelledMail
    result: Classification

    @property
    def got(self) -> str:
        """Predicted priority, or "ignored" when the mail was dropped."""
        return IGNORED if self.result.route == "ignore" else self.result.priority

    @property
    def priority_ok(self) -> bool:
        return self.mail.priority is None or self.got == self.mail.priority

    @property
    def ok(self) -> bool:
        r = self.result
        return self.priority_ok and r.route == self.mail.route and r.category == self.mail.category

    @property
    def severe_miss(self) -> bool:
        """A P1 taken as P3/P4 (or dropped)."""
        return self.mail.priority == "P1" and self.got in ("P3", "P4", IGNORED)

    @property
    def false_alarm(self) -> bool:
        """P1 for mail that is P3/P4, or that is not a support case at all."""
        return self.got == "P1" and self.mail.priority in ("P3", "P4", None)


@dataclass(slots=True)
class Measurement:
    name: str
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.outcomes)

    @property
    def accuracy(self) -> float:
        return sum(o.ok for o in self.outcomes) / self.total if self.total else 0.0

    @property
    def scored(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.mail.priority is not None]

    @property
    def priority_accuracy(self) -> float:
        s = self.scored
        return sum(o.priority_ok for o in s) / len(s) if s else 0.0

    def recall(self, priority: str) -> tuple[int, int]:
        rows = [o for o in self.scored if o.mail.priority == priority]
        return sum(o.got == priority for o in rows), len(rows)

    def confusion(self) -> dict[str, Counter[str]]:
        out: dict[str, Counter[str]] = {p: Counter() for p in PRIORITIES}
        for o in self.scored:
            out[o.mail.priority][o.got] += 1  # type: ignore[index]
        return out

    @property
    def severe_misses(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.severe_miss]

    @property
    def false_alarms(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.false_alarm]

    @property
    def wrong(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]


def measure(rules: RuleSet, mails: list[LabelledMail], name: str = "", default_priority: str = "P3") -> Measurement:
    """Classify every mail as the pipeline does (default priority P3)."""
    m = Measurement(name)
    for mail in mails:
        result = rules.classify(ClassifyInput(message=mail.message(), source_kind="imap"),
                                default_priority=default_priority)
        m.outcomes.append(Outcome(mail, result))
    return m


def _one_line(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def format_measurement(m: Measurement, show_wrong: bool = False) -> str:
    lines = [f"== {m.name}: {m.total} mails"]
    ok = sum(o.ok for o in m.outcomes)
    lines.append(f"accuracy (priority, route and category all right): {ok}/{m.total} = {m.accuracy:.1%}")
    s = m.scored
    lines.append(f"priority accuracy (support mail): {sum(o.priority_ok for o in s)}/{len(s)} = {m.priority_accuracy:.1%}")
    routes = sum(o.result.route == o.mail.route for o in m.outcomes)
    cats = sum(o.result.category == o.mail.category for o in m.outcomes)
    lines.append(f"route right: {routes}/{m.total}, category right: {cats}/{m.total}")
    lines.append("recall: " + ", ".join(
        f"{p} {hit}/{n} = {hit / n:.0%}" if n else f"{p} -" for p in PRIORITIES for hit, n in [m.recall(p)]
    ))
    cols = [*PRIORITIES, IGNORED]
    lines.append("confusion (rows: expected, columns: classified as):")
    lines.append("          " + "".join(f"{c:>8}" for c in cols))
    for p, row in m.confusion().items():
        lines.append(f"      {p:<4}" + "".join(f"{row.get(c, 0):>8}" for c in cols))
    langs = Counter(o.mail.lang for o in m.outcomes)
    lines.append("by language: " + ", ".join(
        f"{lang} {sum(o.ok for o in m.outcomes if o.mail.lang == lang)}/{n}" for lang, n in sorted(langs.items())
    ))
    lines.append(f"severe misses (P1 taken as P3/P4 or dropped): {len(m.severe_misses)}")
    for o in m.severe_misses:
        lines.append(f"  {o.mail.id}: {o.got}  {_one_line(o.mail.subject + ' | ' + o.mail.body)}")
    lines.append(f"false alarms (P3/P4 or non-support mail taken as P1): {len(m.false_alarms)}")
    for o in m.false_alarms:
        lines.append(f"  {o.mail.id}: expected {o.mail.priority or o.mail.kind}  {_one_line(o.mail.subject + ' | ' + o.mail.body)}")
    if show_wrong:
        lines.append("wrong:")
        for o in m.wrong:
            r = o.result
            lines.append(
                f"  {o.mail.id} expected {o.mail.priority or '-'}/{o.mail.route}/{o.mail.category}"
                f" got {r.priority}/{r.route}/{r.category}: {_one_line(o.mail.subject + ' | ' + o.mail.body, 90)}"
            )
            for line in r.explain()[:-1]:
                lines.append(f"      {line}")
    return "\n".join(lines)
