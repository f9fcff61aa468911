"""Several daemons on one database and one mailbox (issue 16).

Migrations under a lock, so any number of processes start together on an
empty database; and four `casegate run` processes sharing one PostgreSQL
database and one Dovecot mailbox.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

# Each process waits for the same instant, then migrates, so they really race.
MIGRATE_AT = """
import sys, time
from casegate.storage.db import Database
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
db = Database(sys.argv[1])
db.migrate()
db.dispose()
"""


def migrate_together(url: str, processes: int) -> list[subprocess.CompletedProcess[str]]:
    at = time.time() + 3.0  # the interpreters and imports are ready by then
    procs = [subprocess.Popen([sys.executable, "-c", MIGRATE_AT, url, repr(at)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(processes)]
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=120), p.communicate()[0]) for p in procs]


def head_tables(url: str) -> tuple[list[str], set[str]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            versions = list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
            tables = set(conn.execute(text(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
                if engine.dialect.name == "postgresql" else
                "SELECT name FROM sqlite_master WHERE type = 'table'")).scalars())
    finally:
        engine.dispose()
    return versions, tables


def test_four_processes_migrate_an_empty_postgresql_database_at_once(postgres) -> None:
    url = postgres.create_database("t_" + uuid.uuid4().hex)
    runs = migrate_together(url, 4)
    assert [r.returncode for r in runs] == [0, 0, 0, 0], "\n".join(r.stdout for r in runs)
    versions, tables = head_tables(url)
    assert versions == ["0005"]
    assert {"cases", "message", "inbound_lease"} <= tables


def test_four_processes_migrate_an_empty_sqlite_database_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'casegate.db'}"
    runs = migrate_together(url, 4)
    assert [r.returncode for r in runs] == [0, 0, 0, 0], "\n".join(r.stdout for r in runs)
    versions, tables = head_tables(url)
    assert versions == ["0005"]
    assert {"cases", "message", "inbound_lease"} <= tables
