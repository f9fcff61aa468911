"""Text folding shared by keywords, regex patterns and message text.

Customers write the same word many ways: full-width (ＤＯＷＮ), upper case,
traditional characters (系統當機), with stray spaces from OCR or IME habits
(系 统 宕 机).  Keywords and text go through the *same* ``fold`` so a rule
written once matches all of them.  Offsets into the original text are not
kept: matches are reported by keyword and by the folded clause they were
found in.

``fold_text`` folds a message text the same way but keeps the line breaks
that end something (a short line, a blank line): a line break is a clause
boundary for the context rules (negation, questions, ...), while a long line
that was only hard-wrapped is joined to the next as before.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import zhconv

__all__ = ["fold", "fold_text", "is_word_char", "is_cjk_char", "to_simplified"]

# Han ideographs (BMP + extension A + compatibility) plus kana and hangul:
# scripts written without spaces, where keywords match as plain substrings.
_CJK_CLASS = (
    "\u2e80-\u2fdf\u3005-\u3007\u3021-\u3029\u3040-\u30ff\u3100-\u312f"
    "\u31a0-\u31bf\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
    "\U00020000-\U0003134f"
)
_CJK_RUN = re.compile(f"[{_CJK_CLASS}]+")
_CJK_CHAR = re.compile(f"[{_CJK_CLASS}]")
# A (single, already collapsed) space between two CJK characters carries
# no meaning ("系 统 宕 机"). No look-behind: it is twice as slow here.
_CJK_GAP = re.compile(f"([{_CJK_CLASS}]) (?=[{_CJK_CLASS}])")


def _trad_trigger_chars() -> frozenset[str]:
    """Characters that zhconv's zh2Hans table changes on their own.

    A text with none of them is already simplified (the common case:
    mainland customers), so zhconv is skipped for it.  The ~50 phrase
    entries made only of non-trigger characters (么九 -> 幺九 ...) are
    irrelevant to support keywords.  Falls back to an empty set (= always
    convert) if zhconv's internals move.
    """
    try:
        from zhconv import zhconv as _impl

        table = _impl.getdict("zh-hans")
        return frozenset(k for k, v in table.items() if len(k) == 1 and k != v)
    except Exception:  # pragma: no cover - depends on zhconv internals
        return frozenset()


_TRAD_FIRST = _trad_trigger_chars()


@lru_cache(maxsize=8192)
def _convert_run(run: str) -> str:
    return zhconv.convert(run, "zh-hans")


def _simplify_run(match: re.Match[str]) -> str:
    run = match.group(0)
    if _TRAD_FIRST and _TRAD_FIRST.isdisjoint(run):
        return run
    return _convert_run(run)


def to_simplified(text: str) -> str:
    """Traditional -> simplified Chinese, converting only CJK runs.

    zhconv is a pure-Python maximum-forward-match loop (~0.2 µs per
    character); converting only the CJK runs that contain a convertible
    character, with an LRU cache for repeated runs (signatures, templates),
    keeps a 2 KB message well under the cost of a full conversion.
    """
    if _TRAD_FIRST and _TRAD_FIRST.isdisjoint(text):
        return text
    return _CJK_RUN.sub(_simplify_run, text)


# Typographic apostrophes and quotes NFKC leaves alone: "isn’t" = "isn't".
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u2032": "'", "\u201c": '"', "\u201d": '"'})
_HAS_QUOTE = re.compile("[\u2018\u2019\u2032\u201c\u201d]")


def fold(text: str) -> str:
    """The one canonical form keywords and text are compared in.

    NFKC (full-width -> ASCII, compatibility forms), typographic quotes ->
    ASCII, casefold, every whitespace run collapsed to one space
    (leading/trailing dropped), spaces between CJK characters removed,
    traditional -> simplified.
    """
    if not text:
        return ""
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    if _HAS_QUOTE.search(text):
        text = text.translate(_QUOTES)
    text = " ".join(text.casefold().split())
    if " " in text:
        text = _CJK_GAP.sub(r"\1", text)
    return to_simplified(text)


def is_cjk_char(ch: str) -> bool:
    return bool(_CJK_CHAR.match(ch))


def is_word_char(ch: str) -> bool:
    """True for characters that continue a Latin-script word.

    Letters, digits and '_' outside the CJK scripts: "down" inside
    "download" is not a word hit, but "down" in "系统down了" is.
    """
    return (ch.isalnum() or ch == "_") and not _CJK_CHAR.match(ch)


# A line at least this wide (CJK characters count twice) was probably
# hard-wrapped by the mail client: it continues on the next line.
WRAP_WIDTH = 60
_CJK_WIDE = re.compile(f"[{_CJK_CLASS}\uff00-\uffef]")
_ENDS_SENTENCE = frozenset("。！？!?；;：:…")  # (after NFKC only the ASCII ones remain)


def _ends_unit(line: str) -> bool:
    if line[-1] in _ENDS_SENTENCE:
        return True
    return len(line) + len(_CJK_WIDE.findall(line)) < WRAP_WIDTH


def fold_text(text: str) -> str:
    """``fold`` for message text, keeping meaningful line breaks as "\\n".

    A line break ends a unit (a clause boundary) after a blank line, a line
    ending in sentence punctuation, or a line shorter than ``WRAP_WIDTH``
    (a log line, a form field, a signature); after a longer line it is taken
    for a hard wrap and folded to a space, as ``fold`` does.  The folding
    steps run once over the whole text (they never cross a line break).
    """
    if "\n" not in text and "\r" not in text:
        return fold(text)
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    if _HAS_QUOTE.search(text):
        text = text.translate(_QUOTES)
    units: list[str] = []
    current: list[str] = []
    for raw in text.casefold().splitlines():
        line = " ".join(raw.split())
        if not line:
            if current:
                units.append(" ".join(current))
                current = []
            continue
        current.append(line)
        if _ends_unit(line):
            units.append(" ".join(current))
            current = []
    if current:
        units.append(" ".join(current))
    out = "\n".join(units)
    if " " in out:
        out = _CJK_GAP.sub(r"\1", out)
    return to_simplified(out)
