"""Builders shared by casegate's own tests: configs, apps and messages."""

from __future__ import annotations

import itertools
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from casegate.daemon.runtime.app import App
from casegate.daemon.config import Config, build_config

_counter = itertools.count(1)


def make_config(tmp_path: Path, **sections: Any) -> Config:
    """A config rooted in ``tmp_path``: SQLite there, maildir outbox there."""
    data: dict[str, Any] = {"service": {"address": "service@desk.example.cn"}}
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return build_config(data, base_dir=tmp_path)


def make_app(tmp_path: Path, **sections: Any) -> App:
    return App(make_config(tmp_path, **sections))


def sink_outgoing(sink) -> dict[str, Any]:
    """An [outgoing] section that relays to the test SMTP sink."""
    return {"transport": "smtp", "host": sink.host, "port": sink.port, "retry_initial": "1s"}


def mail(
    subject: str = "系统宕机，请尽快处理",
    body: str = "您好，我们的核心交换机宕机了，业务全部中断。",
    sender: str = "张三 <zhangsan@customer.cn>",
    to: str = "service@desk.example.cn",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: str | None = None,
    headers: dict[str, str] | None = None,
    date: datetime | None = None,
) -> bytes:
    """A UTF-8 test message as raw bytes (a unique Message-ID unless given)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date or datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc))
    msg["Message-ID"] = message_id if message_id is not None else make_msgid(f"t{next(_counter)}", "customer.cn")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = references
    for k, v in (headers or {}).items():
        msg[k] = v
    msg.set_content(body)
    return msg.as_bytes()
