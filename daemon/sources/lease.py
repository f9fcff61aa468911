"""One fetcher per shared source at a time: a lease in the database.

Several daemons may watch one IMAP mailbox (on one PostgreSQL database, or
one SQLite file on one machine). Two of them fetching together would ingest
every message twice (dedupe saves the database, not the work), move the
same UIDs twice (Dovecot then files two copies in the processed folder) and
read each other's attempt keywords as crashes. So one daemon at a time
holds a source's lease and fetches; the others stand by, serve their SMTP
listeners, outbox and sweeps, and look at the lease once a second.

The holder raises the lease's heartbeat counter every ``ttl / 6`` seconds
(``heartbeat``, run by its own loop, so a long batch does not stop it). A
peer takes the lease over when it is free (released at a clean stop), when
its holder is a dead process on this host, or when it has seen the counter
stand still for ``ttl`` seconds of its own clock. No clocks are compared
across machines: the holder trusts its lease only until ``ttl - margin``
after it *sent* its last successful heartbeat, and a peer waits ``ttl``
from when it *read* that heartbeat, which was later; between the two lies
the margin, within which the holder finishes what it began (a fetch, a
move). A holder whose heartbeats fail (the database is away) stops
fetching before any peer may begin.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime

from ..clock import utcnow
from ...storage.db import Database
from ...storage.leases import LeaseState, read_lease, release_lease, renew_lease, take_lease

log = logging.getLogger("casegate.source.lease")

#: Seconds a lease outlives its last heartbeat: the failover time after a
#: holder dies on another machine (a dead process on this host is seen at once).
LEASE_TTL = 6.0


class LeaseLost(Exception):
    """This daemon no longer holds the source's lease: stop fetching, stand by."""


def pid_alive(pid: int) -> bool:
    """Whether a process of this host has ``pid`` (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lease_holder_id() -> str:
    """``host:pid:token``; the token tells two holders in one process apart (tests
    run two daemons in one), and this process from an earlier one with its pid."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def dead_on_this_host(holder: str) -> bool:
    """True when ``holder`` names another process of this host that is gone.

    An earlier life of this very pid (a container's process 1 restarted)
    cannot be told from a live peer in this process; its lease is taken
    over when its heartbeat has stood still for the time to live.
    """
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    return pid != os.getpid() and not pid_alive(pid)


class SourceLease:
    """This daemon's view of one source's lease (thread-safe)."""

    def __init__(
        self,
        db: Database,
        name: str,
        *,
        ttl: float = LEASE_TTL,
        holder: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.name = name
        self.ttl = ttl
        self.margin = ttl / 3
        self.holder = holder or lease_holder_id()
        self.monotonic = monotonic
        self.clock = clock
        self._lock = threading.Lock()
        self._valid_until = 0.0  # monotonic; 0: not ours
        self._ours = False  # we took it and have not seen it lost
        self._seen: LeaseState | None = None  # a peer's lease as last read
        self._seen_since = 0.0  # when it was first read so
        self._standing_by_for: str | None = None  # for one log line per holder

    @property
    def heartbeat_interval(self) -> float:
        return self.ttl / 6

    def held(self) -> bool:
        """Whether this daemon may fetch and move now."""
        with self._lock:
            return self.monotonic() < self._valid_until

    def check(self) -> None:
        """Raise LeaseLost unless the lease is held."""
        if not self.held():
            raise LeaseLost(f"source={self.name}: lease not held any more")

    def acquire(self) -> bool:
        """Hold the lease: keep it, or take it when it is free or abandoned; True when held."""
        if self.held():
            return True
        sent = self.monotonic()
        with self.db.transaction() as s:
            state = read_lease(s, self.name)
            if state.holder == self.holder:
                ok = renew_lease(s, self.name, self.holder, self.clock())
            elif state.holder is None or dead_on_this_host(state.holder) or self._abandoned(state, sent):
                ok = take_lease(s, self.name, self.holder, state, self.clock())
            else:
                ok = False
        with self._lock:
            was_ours = self._ours
            if ok:
                self._valid_until, self._ours = sent + self.ttl - self.margin, True
        if ok and not was_ours:
            log.info("source=%s this daemon fetches now (lease taken from %s)", self.name, state.holder or "nobody")
            self._standing_by_for = None
        elif not ok and state.holder != self._standing_by_for:
            log.info("source=%s standing by: %s fetches", self.name, state.holder)
            self._standing_by_for = state.holder
        return ok

    def _abandoned(self, state: LeaseState, now: float) -> bool:
        """Whether a peer's lease has not moved for ``ttl`` seconds as we see it."""
        if state != self._seen:
            self._seen, self._seen_since = state, now
            return False
        return now - self._seen_since >= self.ttl

    def heartbeat(self) -> bool:
        """Renew the lease while it is ours (a step of the lease's loop); always False."""
        with self._lock:
            if not self._ours:
                return False
        sent = self.monotonic()
        with self.db.transaction() as s:
            ok = renew_lease(s, self.name, self.holder, self.clock())
        with self._lock:
            if ok:
                self._valid_until = sent + self.ttl - self.margin
            else:
                self._valid_until, self._ours = 0.0, False
        if not ok:
            log.warning("source=%s lease lost to a peer: this daemon stops fetching", self.name)
        return False

    def release(self) -> None:
        """Give the lease up at a clean stop, so a peer takes over at once."""
        with self._lock:
            ours, self._ours, self._valid_until = self._ours, False, 0.0
        if ours:
            with self.db.transaction() as s:
                release_lease(s, self.name, self.holder, self.clock())
            log.info("source=%s lease released", self.name)
