"""Sidecar metadata for faxes dropped into a spool folder.

Gateways that do not send e-mail leave the fax image in a folder, often with a
small metadata file beside it. Two shapes are understood:

* HylaFAX ``faxinfo`` style text (what ``faxinfo recvq/fax000123.tif`` prints
  and what FaxDispatch scripts commonly save)::

      recvq/fax000000123.tif:
                Sender: +86 20 8768 1011
                 Pages: 3
               Quality: Fine
                  Size: ISO A4
              Received: 2026:11:20 10:15:03
               CallID1: 02087681011

  Any ``key: value`` lines; unknown keys are ignored because every HylaFAX
  version adds some.
* JSON objects: ``{"sender": ..., "pages": ..., "received": ..., "caller_id": ...}``.

The sidecar is machine-written, so a value that cannot be parsed means the
producer changed format; that is reported (ValueError) rather than guessed.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone, tzinfo
from typing import Any

from .fax import is_placeholder, normalize_number, parse_pages, parse_received
from .message import FaxInfo

__all__ = ["parse_sidecar", "MAX_SIDECAR_BYTES"]

#: Larger files are not metadata; refusing them bounds memory and time.
MAX_SIDECAR_BYTES = 256 * 1024

# Lower-cased keys (text and JSON alike) to FaxInfo roles. "Page" (singular)
# is NOT here: in faxinfo output it is the page *size* ("Page: 1728 by 2200").
_SENDER_KEYS = ("sender", "tsi", "csid", "remote station id", "remote_station_id",
                "station id", "station_id", "remotestationid", "from", "sender_number")
_CALLER_KEYS = ("caller_id", "callerid", "caller id", "callid", "callid1", "cidnumber",
                "cid_number", "cid")
_PAGES_KEYS = ("pages", "page_count", "pagecount", "npages")
_RECEIVED_KEYS = ("received", "received_at", "date", "time", "timestamp")
_KNOWN = set(_SENDER_KEYS + _CALLER_KEYS + _PAGES_KEYS + _RECEIVED_KEYS + ("gateway",))

# Possessive, with the blanks around key and value stripped in code: the lazy
# form backtracked quadratically over a long run of spaces.
_LINE = re.compile(r"^\s*+([A-Za-z][A-Za-z0-9 _()\-]*+)\s*+:\s*+(.*)")


def _decode(data: bytes) -> str:
    if b"\x00" in data:
        raise ValueError("binary data (NUL bytes), not a metadata file")
    for enc in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    raise ValueError("not valid UTF-8 or GB18030 text")


def _parse_text(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        m = _LINE.match(line)
        if not m:
            continue
        key, value = m.group(1).strip().lower(), m.group(2).strip()
        # HylaFAX appends a URL to some values: "CommID: 000000123 (ftp://...)".
        if key in _KNOWN and value and key not in values:
            values[key] = value
    if not values:
        raise ValueError(
            "no fax metadata found (expected 'Sender:', 'Pages:', 'Received:' "
            "or 'CallID1:' lines)"
        )
    return values


def _parse_json(text: str) -> dict[str, Any]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"JSON sidecar must be an object, got {type(obj).__name__}")
    values = {str(k).lower(): v for k, v in obj.items()}
    if not set(values) & _KNOWN:
        raise ValueError(
            "no fax metadata keys in JSON (expected sender, pages, received, caller_id)"
        )
    return values


def _first(values: dict[str, Any], keys: tuple[str, ...]) -> tuple[str | None, Any]:
    for key in keys:
        if key in values and values[key] is not None and values[key] != "":
            return key, values[key]
    return None, None


def parse_sidecar(
    path_name: str,
    data: bytes,
    default_region: str = "CN",
    tz: tzinfo | None = None,
) -> FaxInfo:
    """Parse one sidecar file into FaxInfo; ValueError with the reason on garbage.

    ``path_name`` is only used to choose the format (``.json`` or content
    starting with ``{`` means JSON) and in error messages. ``tz`` is attached
    to receive times that carry no zone (the gateway's local time).
    """
    try:
        if len(data) > MAX_SIDECAR_BYTES:
            raise ValueError(f"{len(data)} bytes is too large for a metadata file")
        text = _decode(data)
        if not text.strip():
            raise ValueError("empty file")
        is_json = path_name.lower().endswith(".json") or text.lstrip().startswith("{")
        values: dict[str, Any] = _parse_json(text) if is_json else _parse_text(text)
        gateway = values.get("gateway") if is_json else "hylafax"
        if gateway is not None and not isinstance(gateway, str):
            raise ValueError("'gateway' must be a string")

        _, sender = _first(values, _SENDER_KEYS)
        _, caller = _first(values, _CALLER_KEYS)
        for name, value in (("sender", sender), ("caller_id", caller)):
            if value is not None and not isinstance(value, (str, int)):
                raise ValueError(f"{name} must be a string, got {type(value).__name__}")
        sender_s = str(sender).strip() if sender is not None else None
        caller_s = str(caller).strip() if caller is not None else None

        pages_key, pages_raw = _first(values, _PAGES_KEYS)
        pages: int | None = None
        if pages_raw is not None:
            if isinstance(pages_raw, (float, bool)) or not isinstance(pages_raw, (int, str)):
                raise ValueError(f"{pages_key} must be an integer, got {pages_raw!r}")
            if isinstance(pages_raw, str) and not re.fullmatch(r"\s*\d+\s*", pages_raw):
                raise ValueError(f"{pages_key} is not a page count: {pages_raw!r}")
            pages = parse_pages(pages_raw)
            if pages is None:
                raise ValueError(f"{pages_key} out of range: {pages_raw!r}")

        received_key, received_raw = _first(values, _RECEIVED_KEYS)
        received: datetime | None = None
        if received_raw is not None:
            if isinstance(received_raw, (int, float)) and not isinstance(received_raw, bool):
                # Unix timestamp: an absolute instant, so always aware.
                received = datetime.fromtimestamp(float(received_raw), timezone.utc)
                if tz is not None:
                    received = received.astimezone(tz)
            elif isinstance(received_raw, str):
                received = parse_received(received_raw, tz)
            if received is None:
                raise ValueError(f"{received_key} is not a date/time: {received_raw!r}")

        sender_number = raw_sender = None
        for raw in (sender_s, caller_s):
            if raw and (e164 := normalize_number(raw, default_region)):
                sender_number, raw_sender = e164, raw
                break
        if raw_sender is None:
            raw_sender = next(
                (r for r in (sender_s, caller_s) if r and not is_placeholder(r)), None
            )
        return FaxInfo(
            sender_number=sender_number,
            raw_sender=raw_sender,
            pages=pages,
            received_at=received,
            gateway=gateway or "spool",
        )
    except ValueError as exc:
        raise ValueError(f"fax sidecar {path_name}: {exc}") from exc
    except (OverflowError, OSError) as exc:  # absurd timestamps
        raise ValueError(f"fax sidecar {path_name}: {exc}") from exc
