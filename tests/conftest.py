"""Shared pytest fixtures: real test servers and the optional shared corpus.

Only infrastructure lives here (servers, corpus location).  Project-specific
fixtures belong in the test modules that use them or in ``tests/helpers``.

Policy for servers whose binaries are missing: skip locally (a laptop without
Dovecot can still run the unit tests), but fail in CI (``CI=true``), where a
silently skipped integration suite would look green while testing nothing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Make ``tests/servers`` importable as ``servers`` regardless of pytest's
# import mode or of whether ``tests`` ever becomes a package.
_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from servers.dovecot import DovecotServer, DovecotUser, find_dovecot  # noqa: E402
from servers.postgres import PostgresServer, find_pg_bindir  # noqa: E402
from servers.smtp_sink import SmtpSink  # noqa: E402

CORPUS_DIR = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def in_ci() -> bool:
    """True on CI, where missing test servers are an error, not a skip."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _missing(what: str, install_hint: str) -> None:
    """Skip (locally) or fail (in CI) because a server binary is missing."""
    message = f"{what} not installed ({install_hint}; or run scripts/install-test-deps.sh as root)"
    if in_ci():
        pytest.fail(f"CI=true but {message}", pytrace=False)
    pytest.skip(message)


# Tests that use a server fixture get its marker automatically, so
# ``-m "not dovecot"`` / ``-m postgres`` select them without every test
# repeating the decorator.
_FIXTURE_MARKERS = {
    "dovecot": "dovecot",
    "dovecot_user": "dovecot",
    "postgres": "postgres",
    "postgres_url": "postgres",
    "corpus_dir": "corpus",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for fixture, marker in _FIXTURE_MARKERS.items():
            if fixture in getattr(item, "fixturenames", ()) and not item.get_closest_marker(marker):
                item.add_marker(marker)


# ---------------------------------------------------------------- Dovecot


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    """One real Dovecot IMAP server for the whole session.

    Users ``service``, ``fax``, ``engineer`` (password ``<user>-secret``);
    folders INBOX, Processed, Failed, Fax exist for everyone; separator "/".
    Tests that restart/kill it must leave it running (``start()``) at the end.
    Prefer ``dovecot_user`` for a mailbox no other test touches.
    """
    if find_dovecot() is None:
        _missing("dovecot", "apt-get install dovecot-imapd")
    server = DovecotServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def dovecot_user(dovecot: DovecotServer) -> DovecotUser:
    """A brand-new IMAP account with empty INBOX/Processed/Failed/Fax.

    A fresh account per test is cheaper and more reliable than clearing a
    shared one, and survives tests that crash half-way.  The server is
    (re)started if an earlier test left it stopped.
    """
    if not dovecot.running:
        dovecot.start()
    return dovecot.add_user()


# -------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A private PostgreSQL cluster; ``postgres.url`` is the SQLAlchemy URL.

    The database ``casegate_test`` is shared by the session: tests create
    their own tables/schemas or call ``postgres.create_database(name)``.
    """
    if find_pg_bindir() is None:
        _missing("PostgreSQL server (initdb/pg_ctl)", "apt-get install postgresql")
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def postgres_url(postgres: PostgresServer) -> str:
    """``postgresql+psycopg://postgres@127.0.0.1:PORT/casegate_test``."""
    return postgres.url


# -------------------------------------------------------------------- SMTP


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A fresh SMTP server per test that records every message it receives."""
    sink = SmtpSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


# ------------------------------------------------------------------ corpus


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """``../shared/corpus`` next to the checkout (real, unpublished samples).

    A fresh clone does not have it; the same code paths are then covered by
    the small fixtures in ``tests/data``.
    """
    if not CORPUS_DIR.is_dir():
        pytest.skip("../shared/corpus absent (fresh clone): covered by tests/data")
    return CORPUS_DIR
