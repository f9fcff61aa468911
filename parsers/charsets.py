"""Charset labels to Python codecs, and decoding that never raises.

Mail in the wild lies about its charset: GB2312 labels on GBK (or UTF-8)
text, Latin-1 labels on UTF-8, ISO-2022-JP with Microsoft extensions that
Python's iso2022 codecs refuse. This module maps a declared label to the
codec that actually decodes such mail and falls back in a fixed, cheap order;
charset-normalizer is only the last resort because it is slow (~ms).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Sequence

# Labels whose real-world content is a superset encoding.
_ALIASES: dict[str, str] = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "ms936": "gb18030",
    "windows-936": "gb18030",
    "gb_2312-80": "gb18030",
    "gb_2312": "gb18030",
    "csgb2312": "gb18030",
    "euc-cn": "gb18030",
    "x-euc-cn": "gb18030",
    "chinese": "gb18030",
    "gb18030": "gb18030",
    "big5": "big5hkscs",
    "big-5": "big5hkscs",
    "x-big5": "big5hkscs",
    "big5-hkscs": "big5hkscs",
    "big5hkscs": "big5hkscs",
    "cp950": "big5hkscs",
    "ms950": "big5hkscs",
    "csbig5": "big5hkscs",
    "iso-2022-jp": "iso-2022-jp",
    "csiso2022jp": "iso-2022-jp",
    "iso-2022-jp-2": "iso-2022-jp",
    "iso-2022-jp-ext": "iso-2022-jp",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "windows-31j": "cp932",
    "cp932": "cp932",
    "euc-jp": "euc_jis_2004",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "euc-kr": "cp949",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "ansi_x3.4-1968": "cp1252",
    "unknown-8bit": "",
    "x-unknown": "",
    "default": "",
    "utf8": "utf-8",
}

# Labels under which UTF-8 bytes are commonly mis-sent (decoders never fail
# on them, so strict UTF-8 must be tried first).
_WEAK_LABELS = frozenset({"cp1252", "latin_1", "iso8859-1", "ascii"})
_CJK_CODECS = frozenset({"gb18030", "big5hkscs", "cp932", "cp949", "euc_jis_2004", "iso-2022-jp"})
_STATEFUL = frozenset({"iso-2022-jp", "utf-7", "hz", "iso2022_kr", "iso2022_jp_2"})

_codec_cache: dict[str, str | None] = {}


def codec_for(label: str | None) -> str | None:
    """Python codec name for a MIME charset label; None when unknown/absent."""
    if not label:
        return None
    key = label.strip().strip("\"'").lower()
    if key in _codec_cache:
        return _codec_cache[key]
    codec: str | None = _ALIASES.get(key)
    if codec is None:
        try:
            codec = codecs.lookup(key).name
        except (LookupError, ValueError):
            codec = None
        if codec in ("latin-1", "iso8859-1", "ascii"):
            codec = "cp1252"
    elif codec == "":
        codec = None
    if len(_codec_cache) < 1000:
        _codec_cache[key] = codec
    return codec


def _try(data: bytes, codec: str) -> str | None:
    try:
        if codec == "iso-2022-jp":
            return decode_iso2022jp(data, strict=True)
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError, ValueError):
        return None


def _looks_like_real_utf8(text: str) -> bool:
    """True when UTF-8 decoding of CJK-labelled bytes is believable.

    Short GBK/Big5 strings are sometimes valid UTF-8 by accident, yielding
    Latin/Cyrillic letters (U+0080..U+07FF). Real mislabelled Chinese UTF-8
    produces characters from U+0800 upward.
    """
    return all(ord(c) < 0x80 or ord(c) >= 0x800 for c in text)


def decode_bytes(data: bytes, label: str | None = None) -> str:
    """Decode ``data`` declared as ``label``; never raises."""
    codec = codec_for(label)
    if data.isascii() and codec not in _STATEFUL:
        return data.decode("ascii")
    if codec is None or codec in _WEAK_LABELS or codec == "utf-8":
        text = _try(data, "utf-8")
        if text is not None:
            return text
        if codec is not None:
            return data.decode(codec, errors="replace")
        return _guess(data)
    if codec in _CJK_CODECS and codec != "iso-2022-jp":
        text = _try(data, "utf-8")
        if text is not None and _looks_like_real_utf8(text):
            return text
    text = _try(data, codec)
    if text is not None:
        return text
    if codec == "big5hkscs":
        text = _try(data, "cp950")
        if text is not None:
            return text
    if codec == "iso-2022-jp":
        for alt in ("iso2022_jp_2", "iso2022_jp_ext"):
            text = _try(data, alt)
            if text is not None:
                return text
        return decode_iso2022jp(data, strict=False)
    return data.decode(codec, errors="replace")


def _guess(data: bytes) -> str:
    """Undeclared or unknown charset: cheap strict tries, then detection."""
    for codec in ("gb18030", "big5hkscs"):
        text = _try(data, codec)
        if text is not None:
            return text
    try:
        from charset_normalizer import from_bytes

        best = from_bytes(data[:20000]).best()
        if best is not None:
            return data.decode(best.encoding, errors="replace")
    except Exception:  # noqa: BLE001 - detection is best effort
        pass
    return data.decode("utf-8", errors="replace")


_ESC_RE = re.compile(rb"\x1b(\(B|\(J|\(I|\$@|\$B|\$\(D|\$\(Q|\$\(O|\$A|\$\(C|\.A|\.F|N)")


def decode_iso2022jp(data: bytes, strict: bool = True) -> str:
    """ISO-2022-JP decoded through cp932, so NEC/IBM extensions survive.

    Python's iso2022_jp* codecs reject characters Microsoft clients emit
    (①, ㈱, ...) because they live in JIS row 13 / IBM rows. Converting each
    JIS X 0208 pair to Shift_JIS and decoding with cp932 keeps them.
    """
    errors = "strict" if strict else "replace"
    out: list[str] = []
    pos = 0
    mode = b"(B"
    for m in _ESC_RE.finditer(data):
        out.append(_jis_chunk(data[pos : m.start()], mode, errors))
        mode = m.group(1)
        pos = m.end()
    out.append(_jis_chunk(data[pos:], mode, errors))
    return "".join(out)


def _jis_chunk(chunk: bytes, mode: bytes, errors: str) -> str:
    if not chunk:
        return ""
    if mode in (b"(B", b"(J"):
        return chunk.decode("cp932" if not chunk.isascii() else "ascii", errors)
    if mode == b"(I":
        return bytes((b | 0x80) if 0x21 <= b <= 0x5F else b for b in chunk).decode("cp932", errors)
    if mode in (b"$@", b"$B"):
        sjis = bytearray()
        i = 0
        n = len(chunk)
        while i < n:
            j1 = chunk[i]
            if j1 in (0x0A, 0x0D) or i + 1 >= n:
                sjis.append(j1)
                i += 1
                continue
            j2 = chunk[i + 1]
            if not (0x21 <= j1 <= 0x7E and 0x21 <= j2 <= 0x7E):
                if errors == "strict":
                    raise UnicodeDecodeError("iso-2022-jp", chunk, i, i + 2, "bad JIS pair")
                sjis += b"?"
                i += 2
                continue
            s1 = ((j1 + 1) >> 1) + 0x70
            if s1 >= 0xA0:
                s1 += 0x40
            if j1 & 1:
                s2 = j2 + 0x1F
                if s2 >= 0x7F:
                    s2 += 1
            else:
                s2 = j2 + 0x7E
            sjis += bytes((s1, s2))
            i += 2
        return bytes(sjis).decode("cp932", errors)
    # JIS X 0212 and other ISO-2022-JP-2 sets: let Python's codec try.
    return (b"\x1b" + mode + chunk + b"\x1b(B").decode("iso2022_jp_2", errors)


# --------------------------------------------------------------------------
# Raw 8-bit header text: which legacy charset, judged from the whole message
#
# Raw bytes in headers carry no label. GB18030 accepts almost any byte pair,
# so Shift_JIS and Big5 headers "decode" as GB18030 into mojibake Chinese.
# The message usually says what its sender's client writes: the charsets of
# its encoded words and body parts, or failing those the script of its body.

# Codecs to try on raw header bytes when the message declares ``codec``
# elsewhere: a client that writes ISO-2022-JP bodies writes Shift_JIS (or,
# on Unix, EUC-JP) in raw headers.
_HEADER_FAMILY: dict[str, tuple[str, ...]] = {
    "iso-2022-jp": ("cp932", "euc_jis_2004"),
    "cp932": ("cp932", "euc_jis_2004"),
    "euc_jis_2004": ("euc_jis_2004", "cp932"),
    "big5hkscs": ("big5hkscs",),
    "gb18030": ("gb18030",),
}
_KANA_RE = re.compile(r"[\u3041-\u309f\u30a0-\u30ff]")
_HAN_RE = re.compile(r"[\u4e00-\u9fff]")
# In a header decoded with the wrong legacy codec these show up: half-width
# katakana (EUC-JP read as Shift_JIS), C1 controls, private use, U+FFFD.
_SUSPECT_RE = re.compile(r"[\u0080-\u009f\ue000-\uf8ff\uff61-\uff9f\ufffd]")
_SAMPLE_HAN = 100


def _script_codecs(sample: str) -> tuple[str, ...]:
    """Codecs suggested by the script of already-decoded text of the message.

    Kana means Japanese. Han text is Traditional Chinese (Big5) when more of
    its characters exist only in Big5 than only in GB2312.
    """
    if _KANA_RE.search(sample):
        return _HEADER_FAMILY["cp932"]
    traditional = simplified = 0
    for ch in _HAN_RE.findall(sample)[:_SAMPLE_HAN]:
        in_gb = _encodable(ch, "gb2312")
        in_big5 = _encodable(ch, "big5")
        traditional += in_big5 and not in_gb
        simplified += in_gb and not in_big5
    if traditional > simplified:
        return _HEADER_FAMILY["big5hkscs"]
    if simplified:
        return _HEADER_FAMILY["gb18030"]
    return ()


def _encodable(ch: str, codec: str) -> bool:
    try:
        ch.encode(codec)
    except UnicodeEncodeError:
        return False
    return True


def header_codecs(labels: Iterable[str | None], sample: str = "") -> tuple[str, ...]:
    """Codecs to try, in order, on the raw 8-bit header bytes of one message.

    ``labels`` are the charsets the message declares elsewhere, strongest
    evidence first (encoded words in its headers, then its body parts);
    UTF-8 and the Latin labels UTF-8 hides behind say nothing about legacy
    bytes and are skipped. Without a usable label, ``sample`` (decoded body
    text) decides by its script. Empty when there is no evidence.
    """
    out: list[str] = []
    for label in labels:
        codec = codec_for(label)
        if codec is None or codec == "utf-8" or codec in _WEAK_LABELS or codec in ("utf-7", "hz"):
            continue
        for candidate in _HEADER_FAMILY.get(codec, (codec,)):
            if candidate not in out:
                out.append(candidate)
    if not out and sample:
        out.extend(_script_codecs(sample))
    return tuple(out)


def decode_header_bytes(data: bytes, codecs: Sequence[str] = ()) -> str:
    """Raw 8-bit header bytes to text, preferring the message's own codecs.

    Valid UTF-8 first, as before (modern clients; a Latin name in UTF-8 in a
    Chinese mail must not turn into GBK mojibake); then each of ``codecs``
    strictly, taking the first result that shows no sign of a wrong codec
    (else the first that decoded at all); without evidence, the same guess
    as an unlabelled body.
    """
    if not codecs:
        return decode_bytes(data, None)
    text = _try(data, "utf-8")
    if text is not None:
        return text
    fallback: str | None = None
    for codec in codecs:
        candidate = _try(data, codec)
        if candidate is None:
            continue
        if _SUSPECT_RE.search(candidate) is None:
            return candidate
        fallback = fallback or candidate
    return fallback if fallback is not None else decode_bytes(data, None)


def is_utf8(data: bytes) -> bool:
    """True when ``data`` is valid UTF-8 (then no legacy codec is needed)."""
    return _try(data, "utf-8") is not None
