"""Data files are private by default (issue 12): the SQLite database, the
attachment store and the maildir outbox are created 0600 (files) and 0700
(folders) whatever the umask, so mail is not readable by other local users."""

from __future__ import annotations

import os
import stat
from email.message import EmailMessage
from pathlib import Path

from test_cli import ok, run_cli, write_config


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_database_attachments_and_outbox_are_private(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    msg = EmailMessage()
    msg["From"] = "zhao@customer.cn"
    msg["To"] = "service@desk.example.cn"
    msg["Subject"] = "系统宕机"
    msg["Message-ID"] = "<modes-1@customer.cn>"
    msg.set_content("核心系统宕机，日志见附件。")
    msg.add_attachment(b"log line\n" * 100, maintype="text", subtype="plain", filename="error.log")
    path = tmp_path / "in.eml"
    path.write_bytes(msg.as_bytes())
    old = os.umask(0o022)  # the usual umask outside systemd
    try:
        ok(run_cli(config, "ingest", "--send", str(path)))
    finally:
        os.umask(old)
    db = tmp_path / "casegate.db"
    assert mode(db) == 0o600
    for side in ("casegate.db-wal", "casegate.db-shm"):
        if (tmp_path / side).exists():
            assert mode(tmp_path / side) == 0o600, side
    blobs = [p for p in (tmp_path / "attachments").rglob("*")]
    assert blobs and all(mode(p) == (0o700 if p.is_dir() else 0o600) for p in blobs), \
        [(p, oct(mode(p))) for p in blobs]
    assert mode(tmp_path / "attachments") == 0o700
    outbox = tmp_path / "outbox"
    assert all(mode(p) == 0o700 for p in (outbox, outbox / "new", outbox / "cur", outbox / "tmp"))
    sent = list((outbox / "new").iterdir())
    assert sent and all(mode(p) == 0o600 for p in sent)
