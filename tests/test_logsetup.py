"""[logging] format: json lines with stable keys, or text (journald-friendly under systemd)."""

from __future__ import annotations

import io
import json
import logging

from casegate.daemon.config import LoggingConfig
from casegate.daemon.runtime.logsetup import EVENT_KEYS, formatter


def emit(fmt: logging.Formatter, **extra: object) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(fmt)
    log = logging.getLogger("casegate.test.logsetup")
    log.propagate = False
    log.addHandler(handler)
    try:
        log.warning("ingested source=%s", "imap-main", extra=extra)
    finally:
        log.removeHandler(handler)
    return stream.getvalue()


def test_json_lines_have_the_stable_keys() -> None:
    line = emit(formatter(LoggingConfig(format="json"), False), source="imap-main", case="SR-2026-000001",
                message_id="m@x", outcome="new", duration_ms=3.5)
    record = json.loads(line)
    assert record["message"] == "ingested source=imap-main" and record["level"] == "WARNING"
    assert record["logger"] == "casegate.test.logsetup" and "time" in record
    assert {k: record[k] for k in EVENT_KEYS} == {"source": "imap-main", "case": "SR-2026-000001",
                                                  "message_id": "m@x", "outcome": "new", "duration_ms": 3.5}
    bare = json.loads(emit(formatter(LoggingConfig(format="json"), False)))
    assert all(bare[k] is None for k in EVENT_KEYS)


def test_text_has_no_timestamp_under_journald() -> None:
    assert emit(formatter(LoggingConfig(), True)).startswith("WARNING casegate.test.logsetup ingested")
    assert emit(formatter(LoggingConfig(), False))[:4].isdigit()
