"""Several daemons on one database and one mailbox (issue 16).

Migrations under a lock, so any number of processes start together on an
empty database; and four `casegate run` processes sharing one PostgreSQL
database and one Dovecot mailbox.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from sqlalchemy import create_engine, func, select, text

from casegate.daemon.inbound import Inbound, Source
from casegate.daemon.runtime.app import App
from casegate.storage.models import Customer, Message, Quarantine
from helpers import make_config, mail

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


# ---------------------------------------------------------------- two writers, one database


def test_two_daemons_storing_the_same_mail_and_new_senders_at_once_lose_nothing(tmp_path: Path, postgres) -> None:
    """Unique violations raised by a peer's commit (the same message, the same new
    contact) end as "duplicate" or reuse the peer's row: nothing is quarantined,
    no batch is thrown away."""
    url = postgres.create_database("t_" + uuid.uuid4().hex)
    cfg = make_config(tmp_path, database={"url": url})
    apps = [App(cfg), App(cfg)]
    src = Source("imap-main", "imap")
    # The same 60 messages for both, in batches of 10; and 40 different messages
    # per daemon whose 20 senders are new to both.
    same = [mail(subject=f"同一封 {i}", sender=f"s{i} <s{i}@customer.cn>") for i in range(60)]
    own = [[mail(subject=f"各自 {k}-{i}", sender=f"n{i % 20} <n{i % 20}@customer.cn>") for i in range(40)]
           for k in range(2)]
    results: list[list[str]] = [[], []]
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def work(k: int) -> None:
        try:
            start.wait()
            for batch in (same[i:i + 10] for i in range(0, len(same), 10)):
                results[k] += [r.outcome for r in apps[k].pipeline.ingest_batch([Inbound(raw, src) for raw in batch])]
            for batch in (own[k][i:i + 5] for i in range(0, 40, 5)):
                results[k] += [r.outcome for r in apps[k].pipeline.ingest_batch([Inbound(raw, src) for raw in batch])]
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        outcomes = Counter(results[0][:60] + results[1][:60])
        assert outcomes == {"new": 60, "duplicate": 60}
        assert Counter(results[0][60:] + results[1][60:]) == {"new": 80}
        with apps[0].db.session() as s:
            assert s.execute(select(func.count()).select_from(Quarantine)).scalar_one() == 0
            assert s.execute(select(func.count()).select_from(Message)).scalar_one() >= 140
            assert s.execute(select(func.count()).select_from(Customer)).scalar_one() == 80
    finally:
        for a in apps:
            a.close()
