"""IMAP source: fetch, ingest, and only then move out of the watched folder.

The source is a thin edge: it fetches raw bytes by UID (``BODY.PEEK[]``, so
nothing is marked read before it is safe), hands a batch to the pipeline,
and moves each message to ``processed_folder`` (or ``failed_folder`` when it
was quarantined) *after* the pipeline's commit. A crash anywhere in between
leaves the message in the folder; the next pass fetches it again and the
pipeline's dedupe answers "duplicate", so it is moved, not stored twice.

Poison messages: before a batch is ingested, each message gets a keyword
``$CasegateTry<n>``. A message that already carries one was in a batch that
never finished (the process died). After one such death the messages of
that batch are tried once more together (a daemon killed from outside
leaves up to two batches behind, which would take long one by one); after
two (or with ``max_attempts`` below 3, at once) each is retried alone, so
one poison message cannot take its neighbours down with it; after
``max_attempts`` it is stored raw in quarantine and moved to
``failed_folder`` without being ingested again. The keywords live on the
server, so this survives restarts without a table of UIDs.

Several daemons on one mailbox: only the holder of the source's lease
(daemon/sources/lease.py) fetches, marks and moves; the others stand by
without an IMAP connection and take over within seconds when the holder
dies. So the attempt keywords are only ever set by the one daemon working
the folder, and a keyword found by the next holder means what it says:
the previous holder died with that message in hand. Should two daemons
still meet in one folder (a holder stalled past its lease), a message a
peer moved away between SEARCH and FETCH (a NIL body, or no answer for its
UID) or before our MOVE (``NO [EXPUNGEISSUED]``) is simply the peer's.

The source is one step of a loop (``step``: connect when needed, drain,
then wait in IDLE); the daemon runs it as a ``runtime.periodic.Periodic``,
which owns reconnecting with backoff and reporting an outage. imapclient is
blocking, so that loop has a thread of its own; ``stop`` is the loop's
threading.Event, checked between batches and during IDLE.
"""

from __future__ import annotations

import logging
import shlex
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import imapclient
from imapclient.exceptions import IMAPClientError, LoginError

from ..clock import utcnow
from ..config import ImapSourceConfig, read_secret
from ..inbound import Inbound, Source
from ..stages.context import IngestResult
from ..stages.pipeline import Pipeline
from .faults import fault_point
from .lease import LeaseLost, SourceLease
from .parse_pool import ParsePool, Parsing
from .status import SourceStatus
from ...storage.db import DatabaseUnavailable

log = logging.getLogger("casegate.source.imap")

TRY_PREFIX = "$CasegateTry"
#: Seconds a daemon standing by waits between looks at the source's lease.
STANDBY_POLL = 1.0
#: How often a MOVE is narrowed to the UIDs still there after ``NO [EXPUNGEISSUED]``.
MOVE_TRIES = 3
#: Messages one pass takes before it ends and the next selects the folder
#: again. imaplib keeps every untagged response a session receives (an
#: EXPUNGE line for each message moved away) until the next SELECT: a pass
#: over a backlog of 100,000 held them all. The next pass follows at once.
#: A pass also asks only for these messages' UIDs (``_first_uids``).
PASS_LIMIT = 5000


@dataclass
class FetchedMessage:
    uid: int
    raw: bytes
    attempts: int  # finished-less attempts recorded on the server so far


@dataclass
class _Batch:
    """Fetched messages whose parsing is under way in the parse pool."""

    msgs: list[FetchedMessage]
    parsing: Parsing
    received_at: datetime


def _attempts(flags: tuple[bytes, ...]) -> int:
    best = 0
    for f in flags:
        text = f.decode("ascii", "replace") if isinstance(f, bytes) else str(f)
        if text.startswith(TRY_PREFIX):
            try:
                best = max(best, int(text[len(TRY_PREFIX):]))
            except ValueError:
                pass
    return best


class ImapSource:
    def __init__(
        self,
        cfg: ImapSourceConfig,
        pipeline: Pipeline,
        status: SourceStatus,
        on_ingested: Callable[[list[IngestResult]], None] = lambda results: None,
        *,
        parse_pool: ParsePool | None = None,
        stop: threading.Event | None = None,
        clock: Callable[[], datetime] = utcnow,
        lease: SourceLease | None = None,
    ) -> None:
        self.cfg = cfg
        # Shared with other daemons: fetch only while holding this (None: alone).
        self.lease = lease
        self.pipeline = pipeline
        # Batches are parsed here, beside the store of the previous batch
        # (the App's pool; without one, inline).
        self.parse_pool = parse_pool if parse_pool is not None else ParsePool(0)
        self.status = status
        self.on_ingested = on_ingested
        self.source = Source(cfg.name, "fax" if cfg.fax else "imap")
        self.stop = stop if stop is not None else threading.Event()
        self.clock = clock
        self.client: imapclient.IMAPClient | None = None
        self._has_move = False
        self._uidvalidity: int | None = None

    # ------------------------------------------------------------ connection

    def _password(self) -> str:
        if self.cfg.auth == "xoauth2":
            if self.cfg.oauth_token_command:
                out = subprocess.run(
                    shlex.split(self.cfg.oauth_token_command), capture_output=True, timeout=30, check=True
                )
                return out.stdout.decode().strip()
            return Path(self.cfg.oauth_token_file or "").read_text().strip()
        return read_secret(self.cfg.password_env, self.cfg.password_file, f"source {self.cfg.name}") or ""

    def connect(self) -> imapclient.IMAPClient:
        cfg = self.cfg
        timeout = cfg.timeout.total_seconds()
        context = ssl.create_default_context()
        client = imapclient.IMAPClient(
            cfg.host, port=cfg.port, ssl=cfg.tls == "tls", ssl_context=context if cfg.tls == "tls" else None,
            timeout=timeout,
        )
        try:
            if cfg.tls == "starttls":
                client.starttls(context)
            secret = self._password()
            if cfg.auth == "xoauth2":
                client.oauth2_login(cfg.user, secret)
            else:
                client.login(cfg.user, secret)
            caps = client.capabilities()
            self._has_move = b"MOVE" in caps
            for folder in (cfg.processed_folder, cfg.failed_folder):
                if not client.folder_exists(folder):
                    client.create_folder(folder)
            info = client.select_folder(cfg.folder)
        except BaseException:
            try:
                client.logout()
            except Exception:
                pass
            raise
        self._note_uidvalidity(info)
        self.status.connected(self._uidvalidity)
        log.info("source=%s connected to %s:%s folder=%s move=%s", cfg.name, cfg.host, cfg.port, cfg.folder, self._has_move)
        return client

    def _note_uidvalidity(self, select_info: dict[bytes, Any]) -> None:
        uidvalidity = int(select_info.get(b"UIDVALIDITY", 0))
        if self._uidvalidity is not None and uidvalidity != self._uidvalidity:
            # Nothing we keep depends on UIDs across sessions (the folder is
            # emptied as we go and dedupe is by Message-ID/content), so a
            # new UIDVALIDITY only needs a rescan, which every pass does.
            log.warning("source=%s UIDVALIDITY changed %s -> %s; rescanning folder",
                        self.cfg.name, self._uidvalidity, uidvalidity)
        self._uidvalidity = uidvalidity

    def release(self) -> None:
        """Log out and drop the connection (after a failed step, and when the loop ends)."""
        client, self.client = self.client, None
        if client is None:
            return
        try:
            client.logout()
        except Exception:
            try:
                client.shutdown()
            except Exception:
                pass

    # ------------------------------------------------------------ one step

    def step(self) -> bool:
        """Connect when not connected, take what is in the folder, then wait
        for more (IDLE); True when the next step should follow at once.

        A daemon without the source's lease stands by: no connection, a look
        at the lease every ``STANDBY_POLL`` seconds.
        """
        if self.lease is not None and not self.lease.acquire():
            self.release()
            self.status.alive()
            self.stop.wait(STANDBY_POLL)
            return True
        self.parse_pool.start()  # once: the worker processes import while we connect
        try:
            if self.client is None:
                self.client = self.connect()
            if self.drain():
                return True
            return self.wait_for_mail()
        except LeaseLost as exc:
            log.warning("%s; standing by", exc)
            return True
        except Exception:
            self._hand_over()
            raise

    def _hand_over(self) -> None:
        """After a failed step, give the lease up so that a peer may try.

        A holder that cannot reach the mailbox from where it runs (its network,
        its credentials file) would otherwise keep the lease alive with its
        heartbeats and the mailbox would wait for it. Peers look at the lease
        every ``STANDBY_POLL`` seconds, sooner than this daemon retries (its
        loop backs off), so one that can do the work takes it over; when none
        can, the lease just passes round at the pace of the retries.
        """
        if self.lease is None:
            return
        try:
            self.lease.release()  # nothing when it is not ours
        except Exception:  # the database is away as well: the lease runs out by itself
            log.debug("source=%s could not release the lease", self.cfg.name, exc_info=True)

    def _check_lease(self) -> None:
        """Before touching the folder (fetch and mark, move): raise LeaseLost unless ours."""
        if self.lease is not None:
            self.lease.check()

    def explain(self, exc: Exception) -> str | None:
        """The message of a failure this source expects; None for a surprise."""
        if isinstance(exc, LoginError):
            return f"login failed for {self.cfg.user}: {exc}"
        if isinstance(exc, (IMAPClientError, subprocess.SubprocessError)):
            return f"{type(exc).__name__}: {exc}"
        return None

    def wait_for_mail(self) -> bool:
        """Wait in IDLE until the server announces mail (or the IDLE is renewed);
        False when the server cannot IDLE: the loop polls at ``poll_interval``."""
        client = self.client
        assert client is not None
        if not (self.cfg.idle and b"IDLE" in client.capabilities()):
            return False
        client.idle()
        try:
            deadline = time.monotonic() + self.cfg.idle_timeout.total_seconds()
            while time.monotonic() < deadline:
                if self.stop.is_set() or (self.lease is not None and not self.lease.held()):
                    break
                started = time.monotonic()
                responses = client.idle_check(timeout=1.0)
                if any(len(r) >= 2 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
                    self.status.woken()
                    break
                if not responses and time.monotonic() - started < 0.5:
                    # imapclient swallows EOF inside idle_check and returns
                    # nothing at once: leave IDLE so the next command finds
                    # out whether the connection is still there.
                    break
                self.status.alive()
        finally:
            client.idle_done()
        return True

    # ------------------------------------------------------------ one pass

    def drain(self) -> int:
        """Process what is in the folder now; returns how many were handled.

        Batches overlap: while batch N is stored and moved, batch N+1 is
        already fetched, marked and being parsed in a worker process.
        """
        client = self.client
        assert client is not None
        # Re-select on every pass: a folder deleted and recreated under this
        # session gets a fresh view (and its new UIDVALIDITY) instead of a
        # stale index the server may keep serving.
        selected = client.select_folder(self.cfg.folder)
        self._note_uidvalidity(selected)
        uids = self._first_uids(client, int(selected.get(b"EXISTS", 0)))
        self.status.polled()
        handled = 0
        pending: _Batch | None = None
        try:
            for start in range(0, len(uids), self.cfg.batch_size):
                if self.stop.is_set():
                    break
                self._check_lease()
                fetched = self._fetch(uids[start:start + self.cfg.batch_size])
                fault_point("imap.after_fetch")
                fresh = [m for m in fetched if m.attempts == 0]
                done, pending = pending, (self._begin(fresh) if fresh else None)
                if done is not None:
                    handled += self._finish(done)
                # Messages of an unfinished batch: once more together, then alone.
                again = [m for m in fetched if m.attempts == 1 and self.cfg.max_attempts > 2]
                if again and not self.stop.is_set():
                    handled += self._finish(self._begin(again))
                retried = {m.uid for m in again}
                for msg in (m for m in fetched if m.attempts > 0 and m.uid not in retried):
                    if self.stop.is_set():
                        break
                    if msg.attempts >= self.cfg.max_attempts:
                        self._give_up(msg)
                        handled += 1
                    else:
                        handled += self._finish(self._begin([msg]))
            if pending is not None:
                done, pending = pending, None
                handled += self._finish(done)
        finally:
            if pending is not None:  # never stored: the attempt did not happen
                self._unmark_attempt(pending.msgs)
        return handled

    @staticmethod
    def _first_uids(client: imapclient.IMAPClient, exists: int) -> list[int]:
        """The UIDs of the folder's first PASS_LIMIT messages, oldest first.

        Asked by message sequence number (``UID SEARCH 1:n``), not ``ALL``:
        a backlog of 80,000 messages would otherwise come back as one
        80,000-UID answer every pass, and the memory it took stayed with
        the daemon after the backlog was gone. Sequence numbers are this
        session's view as of the SELECT, which no peer's EXPUNGE changes
        before the session is told.
        """
        if exists <= 0:
            return []
        return sorted(client.search([f"1:{min(exists, PASS_LIMIT)}"]))

    def _fetch(self, uids: list[int]) -> list[FetchedMessage]:
        assert self.client is not None
        data = self.client.fetch(uids, ["BODY.PEEK[]", "FLAGS"])
        out = []
        for uid in uids:
            item = data.get(uid)
            raw = item.get(b"BODY[]") if item is not None else None
            if not isinstance(raw, bytes):
                # No answer, or a NIL body: expunged since our SEARCH by
                # someone else (a peer daemon, a user); it is theirs.
                log.debug("source=%s uid=%s gone before fetch: a peer took it", self.cfg.name, uid)
                continue
            out.append(FetchedMessage(uid, raw, _attempts(item.get(b"FLAGS", ()))))
        return out

    def _mark_attempt(self, msgs: list[FetchedMessage]) -> None:
        assert self.client is not None
        by_try: dict[int, list[int]] = {}
        for m in msgs:
            by_try.setdefault(m.attempts + 1, []).append(m.uid)
        for n, uids in by_try.items():
            self.client.add_flags(uids, [f"{TRY_PREFIX}{n}".encode()], silent=True)

    def _begin(self, msgs: list[FetchedMessage]) -> _Batch:
        """Record the attempt on the server, then start parsing."""
        self._mark_attempt(msgs)
        return _Batch(msgs, self.parse_pool.submit([m.raw for m in msgs]), self.clock())

    def _finish(self, batch: _Batch) -> int:
        """Store a batch, then move its messages out of the folder."""
        msgs = batch.msgs
        raws = [m.raw for m in msgs]
        fault_point("imap.ingest", b"".join(raws))
        parsed = self.parse_pool.results(batch.parsing, raws)
        try:
            results = self.pipeline.ingest_batch(
                [Inbound(raw, self.source, received_at=batch.received_at) for raw in raws], parsed)
        except DatabaseUnavailable:
            # Not the messages' fault: take the attempt back.
            self._unmark_attempt(msgs)
            raise
        fault_point("imap.after_commit")
        # Stored (or known) now; if a peer took the folder over meanwhile it
        # finds them again, as duplicates, and moves them itself.
        self._check_lease()
        processed = [m.uid for m, r in zip(msgs, results) if r.outcome != "quarantined"]
        failed = [(m.uid, r.reason) for m, r in zip(msgs, results) if r.outcome == "quarantined"]
        if processed:
            self._move(processed, self.cfg.processed_folder)
        if failed:
            for uid, reason in failed:
                log.warning("source=%s uid=%s moved to %s: %s", self.cfg.name, uid, self.cfg.failed_folder, reason)
            self._move([uid for uid, _ in failed], self.cfg.failed_folder)
        fault_point("imap.after_move")
        self.status.ingested(len(msgs))
        self.on_ingested(results)
        return len(msgs)

    def _unmark_attempt(self, msgs: list[FetchedMessage]) -> None:
        try:
            assert self.client is not None
            for m in msgs:
                self.client.remove_flags([m.uid], [f"{TRY_PREFIX}{m.attempts + 1}".encode()], silent=True)
        except (IMAPClientError, OSError):
            pass

    def _give_up(self, msg: FetchedMessage) -> None:
        reason = f"gave up after {msg.attempts} unfinished attempts (the process died while ingesting it)"
        self.pipeline.quarantine(Inbound(msg.raw, self.source, received_at=self.clock()), reason)
        log.error("source=%s uid=%s poison message moved to %s: %s", self.cfg.name, msg.uid, self.cfg.failed_folder, reason)
        self._move([msg.uid], self.cfg.failed_folder)

    def _move(self, uids: list[int], folder: str) -> None:
        """Move ``uids`` to ``folder``; UIDs already gone were taken by a peer.

        Dovecot refuses a MOVE whose UIDs are all expunged with ``NO
        [EXPUNGEISSUED]`` (the others of a set it moves); the move is then
        narrowed to the UIDs still in the folder.
        """
        for _ in range(MOVE_TRIES):
            try:
                self._move_once(uids, folder)
                return
            except IMAPClientError as exc:
                if "EXPUNGEISSUED" not in str(exc):
                    raise
            assert self.client is not None
            still_here = set(self.client.search(["UID", ",".join(map(str, uids))]))
            log.debug("source=%s uids %s gone before the move: a peer took them", self.cfg.name,
                      sorted(set(uids) - still_here))
            uids = [uid for uid in uids if uid in still_here]
            if not uids:
                return
        self._move_once(uids, folder)

    def _move_once(self, uids: list[int], folder: str) -> None:
        assert self.client is not None
        if self._has_move:
            self.client.move(uids, folder)
            return
        self.client.copy(uids, folder)
        self.client.delete_messages(uids, silent=True)
        if self.client.has_capability("UIDPLUS"):
            self.client.uid_expunge(uids)
        else:
            self.client.expunge()
