"""Spool source: fax files a gateway drops into a folder become messages.

A thin edge like the IMAP source. For each settled file (no mtime change for
``settle_time``: the gateway may still be writing) it reads the fax and its
optional sidecar (same stem + ``.json``, or a HylaFAX-style ``.info``/
``.txt`` file). The stored message is a synthesized RFC 5322 wrapper with the
fax attached (human-readable ``X-Casegate-Fax-*`` headers and body); what
the sidecar says (number, pages, time) and what was found wrong with the
files travel beside it as data (``Inbound.fax``, ``Inbound.problems``), never
as headers to be parsed back. The pipeline reads (OCR) and files it like any
fax. Only *after* the commit are the file and its sidecar moved to
``done_folder``, or to ``failed_folder`` (with a ``.error.txt`` note) when the
file was damaged, the sidecar unreadable or the message quarantined.

The source is one step of a loop (``step``: take every settled file); the
daemon runs it as a ``runtime.periodic.Periodic`` every ``poll_interval``,
which owns the backoff and the outage report.

Exactly once across crashes: the Message-ID is derived from the file's
sha256, so a file still in the spool after a crash between commit and move
is ingested again as a "duplicate" and then moved; nothing is stored twice
and nothing is lost. A damaged file still becomes a case (flagged "not
read", with the file attached), so the customer's fax is never dropped.

Poison files: before a file is read for ingest, an attempt counter is
written and fsynced to ``.casegate/<name>.attempts`` inside the spool (with
the file's sha256, so a new fax reusing the name starts at zero). The
counter is removed once the file is moved. A file whose counter already
reached ``max_attempts`` crashed the process that often (a counter left
behind means the attempt never finished), so it is not read again: it is
kept whole in quarantine and moved to ``failed_folder`` with a note.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from pypdf import PdfReader

from ..addresses import clean_header
from ..config import Config, SpoolSourceConfig
from ..fax.config import load_fax_config
from ..inbound import Inbound, Source
from ..stages.context import IngestResult
from ..stages.pipeline import Pipeline
from .faults import fault_point
from .status import SourceStatus
from ...parsers.message import FaxInfo
from ...parsers.spool_meta import MAX_SIDECAR_BYTES, parse_sidecar
from ...storage.blobs import fsync_dir
from ...storage.db import DatabaseUnavailable

log = logging.getLogger("casegate.source.spool")

SIDECAR_SUFFIXES = (".json", ".info", ".txt", ".meta")
TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".lock", ".swp", "~")
#: A sidecar whose fax never arrived is moved to failed/ after this long.
ORPHAN_SIDECAR_AGE = 3600.0
#: Inside the spool: the attempt counters (a dot folder, so scan skips it).
STATE_FOLDER = ".casegate"
ATTEMPTS_SUFFIX = ".attempts"
_TYPES = {".tif": "image/tiff", ".tiff": "image/tiff", ".pdf": "application/pdf",
          ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


@dataclass(frozen=True)
class SpoolItem:
    """One fax file ready to be taken, with its sidecar if there is one."""

    path: Path
    sidecar: Path | None


def check_document(content: bytes) -> str | None:
    """Why ``content`` is not a readable fax (TIFF, PDF or image); None if it is.

    Decoding every page is cheap next to OCR and tells a damaged file from a
    fax that merely has no recognisable text.
    """
    if not content:
        return "empty file"
    try:
        if content.startswith(b"%PDF") or b"%PDF-" in content[:1024]:
            if len(PdfReader(io.BytesIO(content)).pages) < 1:
                return "PDF without pages"
            return None
        try:
            with Image.open(io.BytesIO(content)) as im:
                for i in range(getattr(im, "n_frames", 1)):
                    im.seek(i)
                    im.load()
        except UnidentifiedImageError:
            if content[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
                return "damaged TIFF: the header is there but no image can be decoded"
            return f"not a TIFF, PDF or image file (starts with {content[:8]!r})"
        return None
    except Exception as exc:  # any decoder error means a damaged file
        kind = "PDF" if content.startswith(b"%PDF") else "TIFF" if content[:2] in (b"II", b"MM") else "image"
        return f"damaged {kind}: {type(exc).__name__}: {exc}"


def spool_message(
    name: str,
    content: bytes,
    *,
    source_name: str,
    info: FaxInfo | None,
    received: datetime,
    problems: list[str],
) -> bytes:
    """The synthesized e-mail for one spool file; a pure function of its inputs.

    The Message-ID is the file's sha256, so the same file always gives the
    same ID (dedupe across crashes). ``From`` is a non-deliverable
    ``.invalid`` address: answers go by the fax number, never to it. The
    number and problems are written for people to read; the pipeline gets
    them as data (``Inbound.fax``, ``Inbound.problems``).
    """
    sha = hashlib.sha256(content).hexdigest()
    ext = Path(name).suffix.lower()
    ctype = _TYPES.get(ext, "application/octet-stream")
    number = (info.raw_sender or info.sender_number) if info else None
    msg = EmailMessage()
    msg["From"] = Address(display_name=clean_header(f"传真 Fax {number or ''}".strip(), 100),
                          username="fax-spool", domain="spool.invalid")
    msg["To"] = Address(username=source_name.replace(" ", "-") or "spool", domain="spool.invalid")
    msg["Subject"] = f"传真 / Fax {clean_header(number or '')}".strip()
    msg["Date"] = format_datetime(received)
    msg["Message-ID"] = f"<{sha}.fax-spool@casegate.invalid>"
    msg["X-Casegate-Fax-File"] = clean_header(name, 250)
    msg["X-Casegate-Spool"] = clean_header(source_name)
    for problem in problems:  # for the reader of the stored message; nothing parses them
        msg["X-Casegate-Fax-Problem"] = clean_header(problem, 500)
    body = f"传真文件 {name}，由传真目录 {source_name} 接收。\nFax file {name}, received in spool {source_name}.\n"
    if problems:
        body += "\n" + "\n".join(f"问题 / problem: {p}" for p in problems) + "\n"
    msg.set_content(body, charset="utf-8")
    maintype, _, subtype = ctype.partition("/")
    msg.add_attachment(content, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes()


class SpoolSource:
    def __init__(
        self,
        cfg: SpoolSourceConfig,
        config: Config,
        pipeline: Pipeline,
        status: SourceStatus,
        on_ingested: Callable[[list[IngestResult]], None] = lambda results: None,
        now: Callable[[], float] = time.time,
        stop: threading.Event | None = None,
    ) -> None:
        self.cfg = cfg
        self.pipeline = pipeline
        self.status = status
        self.on_ingested = on_ingested
        self.now = now
        fax = load_fax_config(config)
        self.region = fax.default_region
        self.tz = fax.tzinfo(config)
        self.path = config.resolve(cfg.path)
        self.done = self.path / cfg.done_folder
        self.failed = self.path / cfg.failed_folder
        self.state = self.path / STATE_FOLDER
        self.source = Source(cfg.name, "spool")
        self.stop = stop if stop is not None else threading.Event()
        self.opened = False

    # ------------------------------------------------------------ one step

    def step(self) -> bool:
        """Take every settled file; False: the next look is after ``poll_interval``."""
        if not self.opened:
            self.status.connected()  # (again, after an outage: clears the error shown)
            self.opened = True
        self.drain()
        return False

    def release(self) -> None:
        """After a failed step: report "connected" again once a step works."""
        self.opened = False

    def explain(self, exc: Exception) -> str | None:
        """No failures beyond those every loop expects (database, file system)."""
        return None

    # ------------------------------------------------------------ one pass

    def scan(self) -> list[SpoolItem]:
        """Settled fax files, oldest first; orphan sidecars are moved aside."""
        self.path.mkdir(parents=True, exist_ok=True)
        settle = self.cfg.settle_time.total_seconds()
        now = self.now()
        files: dict[str, Path] = {}
        for entry in os.scandir(self.path):
            if entry.is_file(follow_symlinks=False) and not entry.name.startswith(".") \
                    and not entry.name.lower().endswith(TEMP_SUFFIXES):
                files[entry.name] = Path(entry.path)
        sidecars = {n for n in files if Path(n).suffix.lower() in SIDECAR_SUFFIXES}
        items: list[tuple[float, SpoolItem]] = []
        claimed: set[str] = set()
        for name, path in files.items():
            if name in sidecars:
                continue
            sidecar = self._sidecar_of(name, files)
            try:
                mtimes = [path.stat().st_mtime] + ([sidecar.stat().st_mtime] if sidecar else [])
            except FileNotFoundError:
                continue  # moved away meanwhile
            if sidecar is not None:
                claimed.add(sidecar.name)
            if now - max(mtimes) < settle:
                continue  # still being written (or a clock in the future)
            items.append((mtimes[0], SpoolItem(path, sidecar)))
        for name in sidecars - claimed:
            path = files[name]
            try:
                if now - path.stat().st_mtime >= ORPHAN_SIDECAR_AGE:
                    reason = f"sidecar without a fax file for {ORPHAN_SIDECAR_AGE / 60:.0f} minutes"
                    log.error("source=%s %s moved to %s: %s", self.cfg.name, name, self.failed, reason)
                    self._move(path, self.failed, reason)
            except FileNotFoundError:
                pass
        self._forget_stale_attempts(set(files))
        return [item for _, item in sorted(items, key=lambda t: (t[0], t[1].path.name))]

    @staticmethod
    def _sidecar_of(name: str, files: dict[str, Path]) -> Path | None:
        stem = Path(name).stem
        for suffix in SIDECAR_SUFFIXES:
            for cand in (stem + suffix, name + suffix):
                if cand in files and cand != name:
                    return files[cand]
        return None

    def drain(self) -> int:
        """Take every settled file now; returns how many were handled."""
        items = self.scan()
        self.status.polled()
        handled = 0
        for item in items:
            if self.stop.is_set():
                break
            if self.take(item) is not None:
                handled += 1
        return handled

    def _read_stable(self, path: Path) -> bytes | None:
        """The file's bytes, or None when it changed while being read."""
        before = path.stat()
        data = path.read_bytes()
        after = path.stat()
        if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns) or len(data) != after.st_size:
            return None
        return data

    def _sidecar_info(self, sidecar: Path | None) -> tuple[FaxInfo | None, str | None]:
        if sidecar is None:
            return None, None
        try:
            size = sidecar.stat().st_size
            if size > MAX_SIDECAR_BYTES:
                return None, f"fax sidecar {sidecar.name}: {size} bytes is too large for a metadata file"
            return parse_sidecar(sidecar.name, sidecar.read_bytes(), self.region, self.tz), None
        except ValueError as exc:
            return None, str(exc)
        except OSError as exc:
            return None, f"fax sidecar {sidecar.name}: cannot read: {exc.strerror or exc}"

    def take(self, item: SpoolItem) -> IngestResult | None:
        """Ingest one file, then (after the commit) move it and its sidecar.

        Raises DatabaseUnavailable with the file left in place for later.
        """
        try:
            content = self._read_stable(item.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.error("source=%s cannot read %s: %s", self.cfg.name, item.path.name, exc)
            self.status.error(f"cannot read {item.path.name}: {exc}")
            return None
        if content is None:
            return None  # still changing: next pass
        sha = hashlib.sha256(content).hexdigest()
        attempts = self._attempts(item.path.name, sha)
        if attempts >= self.cfg.max_attempts:
            return self._give_up(item, content, attempts)
        # Recorded (and on disk) before anything that could crash on this file.
        self._set_attempts(item.path.name, sha, attempts + 1)
        try:
            result = self._ingest(item, content)
        except DatabaseUnavailable:
            # Not the file's fault: take the attempt back.
            self._set_attempts(item.path.name, sha, attempts)
            raise
        self._clear_attempts(item.path.name)
        fault_point("spool.after_move")
        self.status.ingested(1)
        self.on_ingested([result])
        return result

    def _ingest(self, item: SpoolItem, content: bytes) -> IngestResult:
        """Check, wrap and ingest one file's content; move it after the commit."""
        problems = [p for p in (check_document(content),) if p]
        info, sidecar_problem = self._sidecar_info(item.sidecar)
        if sidecar_problem:
            problems.append(sidecar_problem)
        mtime = datetime.fromtimestamp(item.path.stat().st_mtime, timezone.utc)
        received = info.received_at if info is not None and info.received_at is not None else mtime
        raw = spool_message(item.path.name, content, source_name=self.cfg.name, info=info,
                            received=received, problems=problems)
        fault_point("spool.ingest", raw)
        # A spool fax is the spool's, whatever gateway wrote the sidecar. Without
        # a sidecar the pipeline reads what it can from the file itself (its name).
        fax = replace(info, gateway="spool") if info is not None else None
        result = self.pipeline.ingest(Inbound(raw, self.source, received_at=mtime, fax=fax,
                                              problems=tuple(problems)))
        fault_point("spool.after_commit")
        if result.outcome == "quarantined":
            problems.append(f"quarantined: {result.reason}")
        if problems:
            reason = "; ".join(problems)
            where = f"case {result.case_number}" if result.case_number else f"outcome {result.outcome}"
            log.error("source=%s %s moved to %s (%s, file kept there and on the %s): %s",
                      self.cfg.name, item.path.name, self.failed, where,
                      "case" if result.case_number else "quarantine", reason)
            if item.sidecar is not None:
                self._move(item.sidecar, self.failed)
            self._move(item.path, self.failed, f"{reason}\n{where}\n")
        else:
            if item.sidecar is not None:
                self._move(item.sidecar, self.done)
            self._move(item.path, self.done)
        return result

    # ------------------------------------------------------------ poison files

    def _attempts_file(self, name: str) -> Path:
        return self.state / (name + ATTEMPTS_SUFFIX)

    def _attempts(self, name: str, sha: str) -> int:
        """Unfinished attempts recorded for this file (0 for other content under the name)."""
        try:
            count, _, recorded = self._attempts_file(name).read_text(encoding="ascii").strip().partition(" ")
            return int(count) if recorded == sha else 0
        except (OSError, ValueError, UnicodeDecodeError):
            return 0

    def _set_attempts(self, name: str, sha: str, count: int) -> None:
        """Write the counter durably (temp file, fsync, rename, fsync the folder)."""
        if count <= 0:
            self._clear_attempts(name)
            return
        self.state.mkdir(parents=True, exist_ok=True)
        target = self._attempts_file(name)
        tmp = target.with_name(target.name + ".tmp")
        with open(tmp, "w", encoding="ascii") as fh:
            fh.write(f"{count} {sha}\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        fsync_dir(self.state)

    def _clear_attempts(self, name: str) -> None:
        try:
            self._attempts_file(name).unlink()
        except FileNotFoundError:
            return
        try:
            self.state.rmdir()  # only when no other counter is left: a tidy spool
        except OSError:
            pass

    def _forget_stale_attempts(self, present: set[str]) -> None:
        """Drop counters whose file is gone (moved by hand, or a crash after the move)."""
        if not self.state.is_dir():
            return
        for entry in os.scandir(self.state):
            if entry.name.endswith(ATTEMPTS_SUFFIX) and entry.name[: -len(ATTEMPTS_SUFFIX)] not in present:
                self._clear_attempts(entry.name[: -len(ATTEMPTS_SUFFIX)])

    def _give_up(self, item: SpoolItem, content: bytes, attempts: int) -> IngestResult:
        """Quarantine a file that crashed the process ``attempts`` times; move it to failed/.

        Nothing that could crash again is done with it: no decoding, no
        sidecar parsing, no pipeline; only the file wrapped as it is.
        """
        reason = f"gave up after {attempts} unfinished attempts (the process died while ingesting it)"
        mtime = datetime.fromtimestamp(item.path.stat().st_mtime, timezone.utc)
        raw = spool_message(item.path.name, content, source_name=self.cfg.name, info=None,
                            received=mtime, problems=[reason])
        result = self.pipeline.quarantine(Inbound(raw, self.source, received_at=mtime, problems=(reason,)), reason)
        log.error("source=%s poison file %s moved to %s (kept on the quarantine): %s",
                  self.cfg.name, item.path.name, self.failed, reason)
        if item.sidecar is not None:
            self._move(item.sidecar, self.failed)
        self._move(item.path, self.failed, f"{reason}\noutcome quarantined\n")
        self._clear_attempts(item.path.name)
        self.status.ingested(1)
        self.on_ingested([result])
        return result

    def _move(self, path: Path, folder: Path, note: str | None = None) -> Path:
        """Rename ``path`` into ``folder`` without overwriting; fsync both folders.

        Gateways reuse names (HylaFAX restarts its counter), so a clash gets
        a numbered suffix instead of replacing an earlier fax.
        """
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / path.name
        n = 1
        while target.exists():
            target = folder / f"{path.stem}.{n}{path.suffix}"
            n += 1
        if note is not None:
            (folder / (target.name + ".error.txt")).write_text(note, encoding="utf-8")
        os.replace(path, target)
        for d in {folder, path.parent}:
            fsync_dir(d)
        return target
