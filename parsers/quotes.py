"""Cut quoted history and signatures off a reply, leaving the new text.

Line-based and regex-only so it stays linear in the text size. The first
reply marker wins (top posting, the common case for support mail). When the
marker is the very first thing (bottom posting, e.g. Thunderbird), the
quoted block is skipped and what follows is the new text. When stripping
would leave nothing, the caller keeps the full text.
"""

from __future__ import annotations

import re

MAX_LINES = 5000  # markers after this many lines are not looked for
MAX_MARKER_LINE = 1000  # longer lines are never a marker (but may be quoted)

# Quantifiers next to each other that can match the same characters
# ('\s*' then '\**' then '\s*') are possessive ('*+'): with backtracking,
# a line of spaces cost time quadratic in its length (minutes for 100 KB).

_SEPARATOR_RE = re.compile(
    r"^\s*+-{2,}+\s*+(?:original message|original|原始邮件|原始郵件|原邮件|回复的原邮件)\s*+-{2,}+\s*+$"
    r"|^\s*+_{20,}+\s*+$",
    re.IGNORECASE,
)
_ATTRIBUTION_RE = re.compile(
    r"^\s*+(?:"
    r"on\b.{0,300}\b(?:wrote|writes)\s*+:"
    r"|.{0,80}?(?:在|于|於)\s*+\d.{0,300}(?:写道|寫道)\s*+[:：]?"
    r"|\d{4}\s*+[年/.-].{0,300}(?:写道|寫道)\s*+[:：]"
    r"|(?:le|am|el|il|op|den)\b.{0,300}(?:a écrit|schrieb|escribió|ha scritto|schreef|skrev)\s*+:"
    r")\s*+$",
    re.IGNORECASE,
)
_SIGNATURE_RE = re.compile(
    r"^(?:--|-- )$"
    r"|^\s*+(?:sent from my\b|sent from (?:mail|outlook|yahoo|samsung|my)\b|get outlook for\b"
    r"|发自我的|来自我的|發自我的|从我的.{0,20}发送|發送自我的)",
    re.IGNORECASE,
)
_HEADER_FROM_RE = re.compile(r"^\s*+\**+\s*+(?:from|发件人|寄件者|寄件人|von|de)\s*+\**+\s*+[:：]", re.IGNORECASE)
_HEADER_NEXT_RE = re.compile(
    r"^\s*+\**+\s*+(?:sent|date|to|subject|cc|发送时间|时间|日期|收件人|主题|抄送|寄件日期|傳送時間|收件者|主旨|gesendet|an|betreff|envoyé|objet)\s*+\**+\s*+[:：]",
    re.IGNORECASE,
)
_ATTR_HINT_RE = re.compile(r"[\d@]")


def _is_quote(line: str) -> bool:
    return line.lstrip().startswith(">")


def _header_block_at(lines: list[str], i: int) -> bool:
    """An Outlook-style 'From: / Sent: / To: / Subject:' block starts at i."""
    if not _HEADER_FROM_RE.match(lines[i]):
        return False
    hits = 0
    for line in lines[i + 1 : i + 7]:
        if _HEADER_NEXT_RE.match(line):
            hits += 1
            if hits >= 2:
                return True
    return False


def _marker_at(lines: list[str], i: int) -> int | None:
    """Index where the reply history begins if line i starts it, else None."""
    line = lines[i]
    if _is_quote(line):
        return _attribution_start(lines, i)
    if len(line) > MAX_MARKER_LINE:
        return None
    if _SEPARATOR_RE.match(line) or _SIGNATURE_RE.match(line) or _ATTRIBUTION_RE.match(line):
        return i
    if i + 1 < len(lines) and len(line) < 200 and _ATTRIBUTION_RE.match(line.rstrip() + " " + lines[i + 1].strip()):
        return i
    if _header_block_at(lines, i):
        return i
    return None


def _attribution_start(lines: list[str], q: int) -> int:
    """Back up over an unrecognised attribution line ('... написал:').

    Up to two non-blank lines right before a quote block that end in a colon
    and contain a digit or '@' are taken as the client's 'X wrote:' line.
    """
    j = q - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    if j < 0 or not lines[j].rstrip().endswith((":", "：")):
        return q
    start = j
    if j - 1 >= 0 and lines[j - 1].strip() and not _is_quote(lines[j - 1]):
        start = j - 1
    block = " ".join(lines[start : j + 1])
    if _ATTR_HINT_RE.search(block) and len(block) < 400:
        return start
    return q


def _first_marker(lines: list[str], start: int = 0) -> int | None:
    for i in range(start, min(len(lines), MAX_LINES)):
        cut = _marker_at(lines, i)
        if cut is not None:
            return cut
    return None


def strip_quotes(text: str) -> str:
    """New text of a reply (``text`` must have '\\n' line endings)."""
    lines = text.split("\n")
    cut = _first_marker(lines)
    if cut is None:
        return text.strip()
    new = "\n".join(lines[:cut]).strip()
    if new:
        return new
    # Bottom posting: skip the attribution and quoted block, keep what follows.
    i = cut
    while i < len(lines) and (
        not lines[i].strip() or _is_quote(lines[i]) or _ATTRIBUTION_RE.match(lines[i]) or i == cut
    ):
        i += 1
    rest = lines[i:]
    if not rest:
        return ""
    after = _first_marker(rest)
    return "\n".join(rest[:after] if after is not None else rest).strip()
