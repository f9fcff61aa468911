"""A throw-away PostgreSQL cluster for integration tests.

Why: casegate supports SQLite and PostgreSQL, and the dialects differ in ways
SQLite tests cannot show (locking, ``ON CONFLICT``, types, transactional DDL in
migrations).  ``initdb`` + ``pg_ctl`` from Debian's packages give a private
cluster in a temp dir within a couple of seconds, without touching the
packaged ``main`` cluster.

When we run as root the cluster runs as the ``postgres`` user, because the
server refuses to start as root.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .ports import ServerStartError, free_port, log_tail

__all__ = ["PostgresServer", "find_pg_bindir"]


def find_pg_bindir() -> Path | None:
    """Directory holding ``initdb``/``pg_ctl``, or None when PostgreSQL is missing.

    Debian keeps them off PATH in ``/usr/lib/postgresql/<major>/bin``; take the
    highest major version.  ``CASEGATE_PG_BINDIR`` overrides for other layouts.
    """
    override = os.environ.get("CASEGATE_PG_BINDIR")
    if override:
        return Path(override)
    candidates = glob.glob("/usr/lib/postgresql/*/bin/initdb")

    def major(path: str) -> int:
        match = re.search(r"/postgresql/(\d+)", path)
        return int(match.group(1)) if match else 0

    if candidates:
        return Path(max(candidates, key=major)).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


class PostgresServer:
    """Private PostgreSQL cluster on a free loopback port.

    ``url`` is a SQLAlchemy URL (psycopg 3 driver) for the database
    ``casegate_test``, created at start.  Trust auth on loopback and on the
    private unix socket, so no passwords are involved.  Durability settings
    are off because the data is thrown away anyway and this makes DDL-heavy
    tests (migrations) much faster.
    """

    def __init__(
        self,
        database: str = "casegate_test",
        *,
        host: str = "127.0.0.1",
        bindir: Path | None = None,
        start_timeout: float = 30.0,
        keep_dir: bool = False,
    ) -> None:
        found = bindir or find_pg_bindir()
        if found is None:
            raise FileNotFoundError("PostgreSQL server binaries not found (apt-get install postgresql)")
        self.bindir = Path(found)
        self.database = database
        self.host = host
        self.port = free_port(host)
        self.start_timeout = start_timeout
        self.keep_dir = keep_dir
        self.startup_seconds: float | None = None
        self._started = False

        self.dir = Path(tempfile.mkdtemp(prefix="casegate-pg-"))
        self.data_dir = self.dir / "data"
        self.socket_dir = self.dir / "sock"
        self.log_path = self.dir / "postgres.log"
        self.socket_dir.mkdir()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise ServerStartError(
                    "running as root needs the 'postgres' user (created by the postgresql package)"
                ) from exc
            self.dir.chmod(0o755)
            for path in (self.dir, self.socket_dir):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        atexit.register(self._atexit)

    # -------------------------------------------------------------- commands

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL binary, as ``postgres`` when we are root."""
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(
            command,
            cwd=self.dir,  # postgres cannot chdir into /root
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        if check and result.returncode != 0:
            raise ServerStartError(
                f"{' '.join(command)} failed with {result.returncode}\n"
                f"{result.stdout}{result.stderr}\n--- {self.log_path.name} (tail) ---\n"
                f"{log_tail(self.log_path)}"
            )
        return result

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the test database (psycopg 3 driver)."""
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{self.database}"

    def url_for(self, database: str) -> str:
        """SQLAlchemy URL of another database on this cluster (see :meth:`create_database`)."""
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{database}"

    @property
    def dsn(self) -> str:
        """libpq connection string for plain psycopg/psql use."""
        return f"host={self.host} port={self.port} user=postgres dbname={self.database}"

    @property
    def running(self) -> bool:
        return self._started

    def start(self) -> "PostgresServer":
        if self._started:
            return self
        started = time.monotonic()
        if not (self.data_dir / "PG_VERSION").exists():
            self._run(
                "initdb",
                "-D", str(self.data_dir),
                "-U", "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            )
        options = " ".join(
            [
                f"-p {self.port}",
                f"-k {self.socket_dir}",
                f"-c listen_addresses={self.host}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=50",
            ]
        )
        self._run(
            "pg_ctl",
            "-D", str(self.data_dir),
            "-l", str(self.log_path),
            "-o", options,
            "-w",
            "-t", str(int(self.start_timeout)),
            "start",
        )
        self._started = True
        self.create_database(self.database)
        self.startup_seconds = time.monotonic() - started
        return self

    def create_database(self, name: str) -> str:
        """CREATE DATABASE ``name`` (if missing) and return its SQLAlchemy URL.

        Handy for tests that need an empty database of their own, e.g. to run
        migrations from scratch.
        """
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"unsupported database name: {name!r}")
        exists = self._run(
            "psql", "-h", str(self.socket_dir), "-p", str(self.port), "-U", "postgres",
            "-d", "postgres", "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{name}'",
        ).stdout.strip()
        if exists != "1":
            self._run(
                "psql", "-h", str(self.socket_dir), "-p", str(self.port), "-U", "postgres",
                "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", f'CREATE DATABASE "{name}"',
            )
        return self.url_for(name)

    def stop(self) -> None:
        """Fast shutdown (rolls back open transactions, disconnects clients)."""
        if not self._started:
            return
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop", check=False)
        self._started = False

    def close(self) -> None:
        """Stop and remove the cluster directory (unless ``keep_dir``).

        Immediate shutdown unless the directory is kept: the data is thrown
        away anyway, and skipping the shutdown checkpoint saves about a second.
        """
        if self.keep_dir:
            self.stop()
        else:
            self._atexit()
        if not self.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        atexit.unregister(self._atexit)

    def _atexit(self) -> None:
        # pg_ctl daemonizes the server; make sure it never outlives pytest.
        if self._started:
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "stop", check=False)
            self._started = False

    def __enter__(self) -> "PostgresServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self._started else "stopped"
        return f"<PostgresServer {self.host}:{self.port} {state} dir={self.dir}>"
