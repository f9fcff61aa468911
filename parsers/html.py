"""HTML body to readable text, in time linear in the markup's size.

html2text gives readable output (paragraphs, lists, blockquotes as '>'
lines that quotes.py can cut) but is a pure-Python parser built on the
stdlib HTMLParser, which rescans to the end of the input for every
unterminated construct ('<a', '<!--', '<![if') it meets: quadratic time on
hostile markup. So the markup is first cleaned by a linear pass that drops
what is never shown (scripts, styles, comments, head, declarations) and
escapes every '<' that does not open a complete tag; only then is it given
to html2text, capped in size. Beyond the cap a plain tag-stripper is used.
"""

from __future__ import annotations

import html as _htmlmod
import re

import html2text

MAX_HTML2TEXT = 300_000  # characters fed to html2text
MAX_STRIP = 2_000_000  # characters fed to the regex fallback

# Constructs whose content is never shown. Possessive '[^<>]*+' stops at the
# next '<', so the scans from different starts never overlap.
_HIDDEN_OPEN_RE = re.compile(
    r"<!--|<!\[CDATA\[|<(script|style|head|title|xml|noscript|template)\b[^<>]*+>",
    re.IGNORECASE,
)
# An unterminated comment, CDATA section, script or style hides the rest of
# the document in a browser, so it hides the rest of the text here too.
_HIDES_REST = frozenset({"<!--", "<![cdata[", "script", "style"})
_DECLARATION_RE = re.compile(r"<[!?][^<>]*+>")  # <!DOCTYPE>, <![if !vml]>, <?xml?>
_STRAY_LT_RE = re.compile(r"<(?![^<>]*+>)")
_TAG_RE = re.compile(r"<[^<>]{0,2000}>")
_BLOCK_RE = re.compile(r"<\s*+(br|/p|/div|/tr|/li|/h\d|/blockquote)\b[^<>]{0,2000}>", re.IGNORECASE)
_BLANKS_RE = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
_TRAIL_WS = re.compile(r"[ \t]+\n")

_closer_cache: dict[str, re.Pattern[str]] = {}


def _closer(kind: str) -> re.Pattern[str]:
    """The pattern that ends a hidden construct of ``kind`` (lower-cased)."""
    pattern = _closer_cache.get(kind)
    if pattern is None:
        if kind == "<!--":
            pattern = re.compile(re.escape("-->"))
        elif kind == "<![cdata[":
            pattern = re.compile(re.escape("]]>"))
        else:
            pattern = re.compile(rf"</{kind}\s*+>", re.IGNORECASE)
        _closer_cache[kind] = pattern
    return pattern


def drop_hidden(markup: str) -> str:
    """Markup without comments, CDATA, scripts, styles, head and title.

    Linear: each search for a closer starts after the previous one ended,
    and a closer that was not found once is never searched for again (it
    cannot appear later either).
    """
    out: list[str] = []
    pos = 0
    missing: set[str] = set()
    while True:
        opener = _HIDDEN_OPEN_RE.search(markup, pos)
        if opener is None:
            break
        out.append(markup[pos : opener.start()])
        kind = (opener.group(1) or opener.group(0)).lower()
        close = None if kind in missing else _closer(kind).search(markup, opener.end())
        if close is not None:
            pos = close.end()
            continue
        missing.add(kind)
        if kind in _HIDES_REST:
            return "".join(out)
        out.append(opener.group(0))  # an unclosed <head> or <title>: keep what follows
        pos = opener.end()
    out.append(markup[pos:])
    return "".join(out)


def tame_markup(markup: str) -> str:
    """Markup on which HTMLParser (and so html2text) runs in linear time.

    Hidden constructs and declarations are removed, and every '<' that does
    not open a complete '<...>' tag becomes '&lt;', so no construct is left
    unterminated for the parser to rescan.
    """
    cleaned = drop_hidden(markup)
    cleaned = _DECLARATION_RE.sub("", cleaned)
    return _STRAY_LT_RE.sub("&lt;", cleaned)


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
    cleaned = tame_markup(markup)
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
