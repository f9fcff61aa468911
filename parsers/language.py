"""Cheap language guess: the rules only need to tell Chinese from the rest."""

from __future__ import annotations

import re

_HAN_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
_LATIN_RE = re.compile(r"[A-Za-z]+")
_SAMPLE = 4000


def guess_language(text: str) -> str | None:
    """"zh" when Han characters are a real share of the words, else "en".

    Counts Han characters against Latin words (not letters) so a Chinese
    mail quoting an English product name still reads as Chinese.
    """
    sample = text[:_SAMPLE]
    if not sample.strip():
        return None
    han = len(_HAN_RE.findall(sample))
    if han == 0:
        return "en"
    words = len(_LATIN_RE.findall(sample))
    return "zh" if han >= 2 and han >= words * 0.5 else "en"
