"""HTML body to readable text, in bounded time.

html2text gives readable output (paragraphs, lists, blockquotes as '>'
lines that quotes.py can cut) but is a pure-Python parser, so input is
pre-cleaned with regexes (scripts, styles, comments, head dropped) and capped
in size; beyond the cap a plain tag-stripper is used instead.
"""

from __future__ import annotations

import html as _htmlmod
import re

import html2text

MAX_HTML2TEXT = 300_000  # characters fed to html2text
MAX_STRIP = 2_000_000  # characters fed to the regex fallback

_DROP_RE = re.compile(
    r"<(script|style|head|title|xml|noscript|template)\b[^>]*>.*?</\1\s*>|<!--.*?-->|<!\[CDATA\[.*?\]\]>",
    re.IGNORECASE | re.DOTALL,
)
_OPEN_DROP_RE = re.compile(r"<(script|style)\b.*", re.IGNORECASE | re.DOTALL)
_TAG_RE = re.compile(r"<[^>]{0,2000}>")
_BLOCK_RE = re.compile(r"<\s*(br|/p|/div|/tr|/li|/h\d|/blockquote)\b[^>]{0,2000}>", re.IGNORECASE)
_BLANKS_RE = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
_TRAIL_WS = re.compile(r"[ \t]+\n")


def _converter() -> html2text.HTML2Text:
    conv = html2text.HTML2Text()
    conv.body_width = 0
    conv.ignore_images = True
    conv.ignore_emphasis = True
    conv.ignore_tables = True
    conv.ignore_links = False
    conv.inline_links = False
    conv.skip_internal_links = True
    conv.protect_links = False
    conv.unicode_snob = True
    conv.single_line_break = False
    conv.mark_code = False
    return conv


def strip_tags(markup: str) -> str:
    """Crude but linear tag removal, the fallback for huge or broken HTML."""
    text = _BLOCK_RE.sub("\n", markup[:MAX_STRIP])
    text = _TAG_RE.sub("", text)
    return _htmlmod.unescape(text)


def html_to_text(markup: str) -> str:
    """Readable text from an HTML body; never raises."""
    cleaned = _DROP_RE.sub("", markup)
    cleaned = _OPEN_DROP_RE.sub("", cleaned)
    text: str
    if len(cleaned) > MAX_HTML2TEXT:
        text = strip_tags(cleaned)
    else:
        try:
            text = _converter().handle(cleaned)
        except Exception:  # noqa: BLE001 - html2text on hostile markup
            text = strip_tags(cleaned)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\xa0", " ")
    text = _TRAIL_WS.sub("\n", text)
    text = _BLANKS_RE.sub("\n\n", text)
    return text.strip()
