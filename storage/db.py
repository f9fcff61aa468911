"""Engine, sessions, migrations and the one-transaction helper.

Every writer goes through ``Database.transaction()``: one unit of work, one
commit, rolled back whole on any error, so no half-written case survives.
Connection failures surface as ``DatabaseUnavailable`` so callers (the CLI,
the SMTP listener) can answer "try again later" instead of losing mail.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

# Session hooks every unit of work relies on: the case history written in
# bulk (event_log) and the hot tables' keys handed out before a flush (ids).
from . import event_log, ids  # noqa: F401

log = logging.getLogger("casegate.storage")

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


# The key of the PostgreSQL advisory lock the migrations run under (any
# constant; "casegate" in ASCII, so it reads as ours in pg_locks).
MIGRATION_LOCK_KEY = 0x6361736567617465


class DatabaseUnavailable(Exception):
    """The database cannot be reached or is locked; retry later."""


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL lets readers (the CLI) work while the daemon writes; NORMAL
    # synchronous is durable across process crashes in WAL mode, which is
    # the crash model the exactly-once guarantee is stated for.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


# A new SQLite file is private to the daemon's user, whatever the umask;
# SQLite gives its -wal and -shm files the mode of the database file.
SQLITE_FILE_MODE = 0o600


def sqlite_path(url: str) -> Path | None:
    """The file of an SQLite URL; None for an in-memory or URI database."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _create_private(url: str) -> None:
    """Create the SQLite file of ``url`` 0600 before SQLite creates it with the umask's mode."""
    path = sqlite_path(url)
    if path is None:
        return
    if path.exists() or not path.parent.is_dir():
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SQLITE_FILE_MODE))
        os.chmod(path, SQLITE_FILE_MODE)
    except FileExistsError:
        pass  # another process made it first


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        _create_private(url)
        engine = create_engine(url, connect_args={"timeout": 10}, pool_pre_ping=False)
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own BEGIN handling defers locking until the first write,
        # which lets two writers deadlock on upgrade; take the write lock at
        # BEGIN instead (documented SQLAlchemy recipe).
        event.listen(engine, "connect", lambda c, _r: setattr(c, "isolation_level", None))
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def is_unavailable(exc: BaseException) -> bool:
    """True for errors that mean "the database is not there right now"."""
    if isinstance(exc, DatabaseUnavailable):
        return True
    if isinstance(exc, OperationalError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return False


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def migrate(self) -> None:
        """Bring the schema to the newest revision (run at every start).

        Any number of daemons may start together on an empty or an old
        database: the upgrade runs under a lock (a PostgreSQL advisory lock
        held by the migrating transaction; a file lock beside an SQLite file),
        and whoever gets the lock second finds the schema at head and does
        nothing. An up-to-date database is recognised without the lock.
        """
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        head = ScriptDirectory.from_config(cfg).get_current_head()
        try:
            with self.engine.connect() as conn:
                if MigrationContext.configure(conn).get_current_revision() == head:
                    return
            with self._migration_file_lock(), self.engine.begin() as conn:
                if self.dialect == "postgresql":
                    # Released by the commit (or rollback) of this transaction,
                    # also when the process dies with the connection.
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
                self._upgrade(conn, cfg, head)
        except OperationalError as exc:
            raise DatabaseUnavailable(f"cannot migrate {self.safe_url}: {exc.orig}") from exc

    @staticmethod
    def _upgrade(conn: Connection, cfg: AlembicConfig, head: str | None) -> None:
        """Upgrade to ``head`` on ``conn``, unless a peer did while we waited for the lock."""
        current = MigrationContext.configure(conn).get_current_revision()
        if current == head:
            return
        log.info("migrating database from %s to %s", current or "empty", head)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")

    @contextmanager
    def _migration_file_lock(self) -> Iterator[None]:
        """For SQLite, an exclusive flock on ``<db>.migrate.lock`` (blocking);
        nothing for other databases or an in-memory SQLite database."""
        path = sqlite_path(self.url) if self.dialect == "sqlite" else None
        if path is None:
            yield
            return
        fd = os.open(f"{path}.migrate.lock", os.O_RDWR | os.O_CREAT, SQLITE_FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    @property
    def safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def session(self) -> Session:
        return self._sessions()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: commit on success, roll back whole on error."""
        session = self._sessions()
        try:
            with session.begin():
                yield session
        except OperationalError as exc:
            raise DatabaseUnavailable(str(exc.orig)) from exc
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
