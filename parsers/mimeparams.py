"""MIME header parameters split in linear time.

The stdlib's ``email.message._parseparam`` (used by compat32 for every
``get_param``: charset, boundary, filename) recounts the quotes from the
start of the value for each ';' it meets and copies the rest of the value
for each parameter, so a 60 KB ``Content-Type: text/plain; name="";;;;...``
costs seconds, and the feed parser asks for the boundary of every
multipart. :class:`Message` is the stdlib class with only that splitting
replaced; the parser builds every part with it.

It also splits the raw header value (8-bit bytes surrogate-escaped, as the
parser stored them) where compat32 would hand over a Header object whose
text has those bytes replaced: a raw Shift_JIS filename then still has its
bytes for attachments.py to decode, and an 8-bit boundary still matches.
"""

from __future__ import annotations

import re
from email import message, utils
from typing import Any

# The tokens that matter while splitting: an escaped quote (never counts),
# a quote (opens or closes a quoted string) and a ';' (ends a parameter
# when outside quotes).
_PARAM_TOKEN_RE = re.compile(r'\\"|"|;')


def _normalise(segment: str) -> str:
    """'Name = value' -> 'name=value', as the stdlib does."""
    if "=" in segment:
        name, _, value = segment.partition("=")
        segment = name.strip().lower() + "=" + value.strip()
    return segment.strip()


def split_params(value: object) -> list[str]:
    """Same result as ``email.message._parseparam``, in one pass."""
    text = str(value)
    params: list[str] = []
    start = 0
    in_quotes = False
    for token in _PARAM_TOKEN_RE.finditer(text):
        kind = token.group(0)
        if kind == '"':
            in_quotes = not in_quotes
        elif kind == ";" and not in_quotes:
            params.append(_normalise(text[start : token.start()]))
            start = token.end()
            in_quotes = False
    params.append(_normalise(text[start:]))
    return params


class Message(message.Message):
    """compat32 Message whose parameter parsing is linear (see module doc)."""

    def _raw_value(self, name: str) -> str | None:
        """First raw value of header ``name``, as the parser stored it."""
        lname = name.lower()
        for key, value in self.raw_items():
            if key.lower() == lname:
                return str(value)
        return None

    def _get_params_preserve(self, failobj: Any, header: str) -> Any:
        value = self._raw_value(header)
        if value is None:
            return failobj
        params: list[tuple[str, str]] = []
        for p in split_params(value):
            name, sep, val = p.partition("=")
            params.append((name.strip(), val.strip()) if sep else (p.strip(), ""))
        return utils.decode_params(params)
