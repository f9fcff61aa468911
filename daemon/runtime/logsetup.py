"""How `casegate run` writes its log: text for people and journald, JSON for a log pipeline.

``[logging] format``:

- ``"text"`` (default): one line per event. Under systemd (``$JOURNAL_STREAM``
  set) without a timestamp, since the journal stamps each line itself;
  elsewhere with an ISO timestamp.
- ``"json"``: one JSON object per line (python-json-logger) with stable keys:
  ``time``, ``level``, ``logger``, ``message``, and, when the event knows
  them, ``source``, ``case``, ``message_id``, ``outcome``, ``duration_ms``
  (given with ``extra=`` at the call, e.g. the pipeline's "ingested" line),
  plus ``exc_info`` for a traceback.
"""

from __future__ import annotations

import logging
import os
import sys

from pythonjsonlogger.json import JsonFormatter

from ..config import LoggingConfig

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
JOURNAL_FORMAT = "%(levelname)s %(name)s %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
#: The keys an event may carry beside its message; always present in JSON (null when unknown).
EVENT_KEYS = ("source", "case", "message_id", "outcome", "duration_ms")


class EventJsonFormatter(JsonFormatter):
    """python-json-logger with casegate's stable key names."""

    def add_fields(self, log_record: dict, record: logging.LogRecord, message_dict: dict) -> None:
        super().add_fields(log_record, record, message_dict)
        for key in EVENT_KEYS:
            log_record.setdefault(key, None)


def formatter(cfg: LoggingConfig, under_journald: bool) -> logging.Formatter:
    if cfg.format == "json":
        return EventJsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            datefmt=DATE_FORMAT,
            json_ensure_ascii=False,
        )
    return logging.Formatter(JOURNAL_FORMAT if under_journald else TEXT_FORMAT, datefmt=DATE_FORMAT)


def configure(cfg: LoggingConfig, level: str | None = None) -> None:
    """Send the root logger's records to stderr in the configured format (replacing earlier handlers)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(cfg, bool(os.environ.get("JOURNAL_STREAM"))))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel((level or cfg.level).upper())
    # aiosmtpd logs every SMTP command at INFO; keep its warnings only.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
