"""Transports that deliver rendered outbox messages: a maildir or an SMTP relay.

A transport delivers a batch over one connection and reports per message,
so one refused recipient does not fail its neighbours. Errors are sorted
into temporary (retry later) and permanent (give up now) the way SMTP reply
codes define them.
"""

from __future__ import annotations

import hashlib
import os
import smtplib
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..config import OutgoingConfig, read_secret
from ...storage.outbox import Outgoing


MAILDIR_DIR_MODE = 0o700
MAILDIR_FILE_MODE = 0o600


@dataclass(frozen=True)
class DeliveryResult:
    ok: bool
    error: str | None = None
    permanent: bool = False


class Transport(Protocol):
    name: str

    def deliver(self, batch: list[Outgoing]) -> dict[int, DeliveryResult]: ...

    def already_delivered(self, item: Outgoing) -> bool:
        """Whether a message claimed before a crash did reach the transport."""
        ...


class MaildirTransport:
    """Writes each message into a maildir (the embedded default).

    The file name is derived from the outbox row, so delivering the same row
    twice (after a crash between write and commit) finds the file already in
    ``new/`` or ``cur/`` and does not write a second copy.
    """

    name = "maildir"

    def __init__(self, root: Path) -> None:
        self.root = root
        # Mail to customers is private: folders 0700, files 0600, whatever the umask.
        for folder in (root, root / "tmp", root / "new", root / "cur"):
            if not folder.is_dir():
                folder.mkdir(mode=MAILDIR_DIR_MODE, parents=True, exist_ok=True)
                os.chmod(folder, MAILDIR_DIR_MODE)

    def _name(self, item: Outgoing) -> str:
        digest = hashlib.sha1(item.message_id.encode()).hexdigest()[:16]
        return f"casegate-{item.id:010d}-{digest}.eml"

    def already_delivered(self, item: Outgoing) -> bool:
        name = self._name(item)
        return (self.root / "new" / name).exists() or any((self.root / "cur").glob(name + "*"))

    def deliver(self, batch: list[Outgoing]) -> dict[int, DeliveryResult]:
        results: dict[int, DeliveryResult] = {}
        for item in batch:
            if self.already_delivered(item):
                results[item.id] = DeliveryResult(ok=True)
                continue
            name = self._name(item)
            tmp = self.root / "tmp" / f"{name}.{os.getpid()}"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, MAILDIR_FILE_MODE)
                with os.fdopen(fd, "wb") as fh:
                    os.fchmod(fh.fileno(), MAILDIR_FILE_MODE)
                    fh.write(item.raw.replace(b"\r\n", b"\n"))  # maildir files use LF
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self.root / "new" / name)
                results[item.id] = DeliveryResult(ok=True)
            except OSError as exc:
                results[item.id] = DeliveryResult(ok=False, error=f"maildir write failed: {exc}")
        return results


class SmtpTransport:
    """Sends through a relay: one connection per batch, TLS/STARTTLS/AUTH from config."""

    name = "smtp"

    def __init__(self, cfg: OutgoingConfig) -> None:
        self.cfg = cfg
        self._tls_context: ssl.SSLContext | None = None

    def _context(self) -> ssl.SSLContext:
        """One TLS context for the transport's life: loading the system's CA
        certificates took a fifth of the sending thread's time when it was
        done for every connection (and for plain connections too)."""
        if self._tls_context is None:
            self._tls_context = ssl.create_default_context()
        return self._tls_context

    def already_delivered(self, item: Outgoing) -> bool:
        # SMTP offers no way to ask whether a message was accepted: a crash
        # between the relay's 250 and our commit leaves a possible duplicate.
        return False

    def _connect(self) -> smtplib.SMTP:
        cfg = self.cfg
        timeout = cfg.timeout.total_seconds()
        conn: smtplib.SMTP
        if cfg.tls == "tls":
            conn = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=timeout, context=self._context())
        else:
            conn = smtplib.SMTP(cfg.host, cfg.port, timeout=timeout)
            conn.ehlo()
            if cfg.tls == "starttls":
                conn.starttls(context=self._context())
                conn.ehlo()
        if cfg.user:
            password = read_secret(cfg.password_env, cfg.password_file, "outgoing") or ""
            conn.login(cfg.user, password)
        return conn

    def deliver(self, batch: list[Outgoing]) -> dict[int, DeliveryResult]:
        results: dict[int, DeliveryResult] = {}
        try:
            conn = self._connect()
        except (OSError, smtplib.SMTPException) as exc:
            # A relay outage or a rejected login is the operator's to fix, not
            # the message's fault: keep the batch queued and retry with backoff.
            err = DeliveryResult(ok=False, error=f"relay {self.cfg.host}:{self.cfg.port}: {exc}")
            return {item.id: err for item in batch}
        try:
            for item in batch:
                result = self._send_one(conn, item)
                results[item.id] = result
                if result.error and result.error.startswith("connection lost"):
                    break
        finally:
            try:
                conn.quit()
            except (OSError, smtplib.SMTPException):
                conn.close()
        for item in batch:
            results.setdefault(item.id, DeliveryResult(ok=False, error="not attempted: connection lost"))
        return results

    @staticmethod
    def _send_one(conn: smtplib.SMTP, item: Outgoing) -> DeliveryResult:
        # Internationalized addresses (RFC 6531) need the relay's SMTPUTF8.
        eai = not (item.mail_from.isascii() and all(r.isascii() for r in item.rcpt_to) and item.raw.isascii())
        options = ["SMTPUTF8"] if eai and conn.has_extn("smtputf8") else []
        if eai and not options and not all(r.isascii() for r in item.rcpt_to):
            return DeliveryResult(ok=False, error="relay does not offer SMTPUTF8, needed for "
                                  f"{', '.join(item.rcpt_to)}", permanent=True)
        try:
            refused = conn.sendmail(item.mail_from, list(item.rcpt_to), item.raw, mail_options=options)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _msg in exc.recipients.values()]
            return DeliveryResult(ok=False, error=f"all recipients refused: {exc.recipients}", permanent=all(c >= 500 for c in codes))
        except smtplib.SMTPResponseException as exc:
            return DeliveryResult(ok=False, error=f"{exc.smtp_code} {exc.smtp_error!r}", permanent=exc.smtp_code >= 500)
        except (smtplib.SMTPServerDisconnected, socket.timeout, OSError) as exc:
            return DeliveryResult(ok=False, error=f"connection lost: {exc}")
        if refused:
            # Some recipients took it; retrying would duplicate for them.
            return DeliveryResult(ok=True, error=f"some recipients refused: {refused}")
        return DeliveryResult(ok=True)


def make_transport(cfg: OutgoingConfig, maildir: Path) -> Transport:
    if cfg.transport == "smtp":
        return SmtpTransport(cfg)
    return MaildirTransport(maildir)

