"""Real servers for integration tests: Dovecot IMAP, an SMTP sink, PostgreSQL.

The helpers start genuine server processes on free loopback ports inside
throw-away directories, so tests exercise the same protocol quirks (IDLE,
MOVE, UIDPLUS, reconnects, PostgreSQL SQL dialect) that production sees,
without touching any system-wide service or configuration.

``tests/conftest.py`` puts ``tests/`` on ``sys.path``, so test modules import
these as ``from servers.dovecot import DovecotServer`` etc.
"""

from __future__ import annotations

from .dovecot import DovecotServer, DovecotUser, ServerStartError
from .ports import free_port
from .postgres import PostgresServer
from .smtp_sink import ReceivedMail, SmtpSink

__all__ = [
    "DovecotServer",
    "DovecotUser",
    "PostgresServer",
    "ReceivedMail",
    "ServerStartError",
    "SmtpSink",
    "free_port",
]
