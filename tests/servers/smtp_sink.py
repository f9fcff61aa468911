"""An SMTP server that accepts everything and keeps it, for asserting outgoing mail.

Why aiosmtpd rather than mocking ``smtplib``: casegate's notifications go out
over a real SMTP session, and only a real server catches envelope mistakes
(wrong RCPT list, 8-bit/UTF-8 headers, dot-stuffing) the way a relay would.
"""

from __future__ import annotations

import email
import email.policy
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session, SMTP

from .ports import free_port

__all__ = ["ReceivedMail", "SmtpSink"]


@dataclass(frozen=True)
class ReceivedMail:
    """One accepted SMTP transaction, exactly as it arrived."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    received_at: float = field(default_factory=time.time)

    @property
    def message(self) -> EmailMessage:
        """The message parsed with the modern policy (``EmailMessage`` API)."""
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class _Handler:
    """aiosmtpd handler that hands every DATA to the sink."""

    def __init__(self, sink: "SmtpSink") -> None:
        self._sink = sink

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):  # only with decode_data=True, which we do not use
            raw = raw.encode("utf-8", "surrogateescape")
        self._sink._record(
            ReceivedMail(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                raw=bytes(raw),
            )
        )
        return "250 Message accepted for delivery"


class SmtpSink:
    """aiosmtpd ``Controller`` on a free loopback port that stores all mail.

    Thread-safe: the SMTP server runs in the controller's thread, tests read
    from theirs, and :meth:`wait_for` blocks on a condition that every
    delivery notifies, so it returns the moment the expected mail is in.
    """

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self._requested_port = port
        self.port: int = port or 0
        self._received: list[ReceivedMail] = []
        self._cond = threading.Condition()
        self._controller: Controller | None = None

    # -------------------------------------------------------------- lifecycle

    def start(self) -> "SmtpSink":
        if self._controller is not None:
            return self
        attempts = 1 if self._requested_port else 3
        for attempt in range(attempts):
            port = self._requested_port or free_port(self.host)
            controller = Controller(
                _Handler(self),
                hostname=self.host,
                port=port,
                server_hostname="smtp-sink.test",
                # UTF-8 addresses/headers occur in Chinese support mail.
                enable_SMTPUTF8=True,
                ready_timeout=5.0,
            )
            try:
                controller.start()
            except Exception:
                # Port grabbed by someone else between free_port() and bind().
                if attempt + 1 >= attempts:
                    raise
                continue
            self._controller = controller
            self.port = port
            return self
        raise AssertionError("unreachable")

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> "SmtpSink":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --------------------------------------------------------------- contents

    def _record(self, mail: ReceivedMail) -> None:
        with self._cond:
            self._received.append(mail)
            self._cond.notify_all()

    @property
    def received(self) -> list[ReceivedMail]:
        """Snapshot of all envelopes (mail_from, rcpt_tos, raw) so far."""
        with self._cond:
            return list(self._received)

    @property
    def messages(self) -> list[EmailMessage]:
        """Snapshot of all messages so far, parsed."""
        return [mail.message for mail in self.received]

    def wait_for(self, count: int = 1, timeout: float = 5.0) -> list[EmailMessage]:
        """Block until at least ``count`` messages arrived; return all parsed messages.

        Raises ``TimeoutError`` (with what did arrive) if they do not within
        ``timeout`` seconds -- a short list would only fail later and less clearly.
        """
        with self._cond:
            arrived = self._cond.wait_for(lambda: len(self._received) >= count, timeout)
            snapshot = list(self._received)
        if not arrived:
            subjects = [str(mail.message.get("Subject")) for mail in snapshot]
            raise TimeoutError(
                f"expected {count} message(s) at {self.host}:{self.port} within "
                f"{timeout}s, got {len(snapshot)}: subjects {subjects}"
            )
        return [mail.message for mail in snapshot]

    def clear(self) -> None:
        """Forget everything received so far."""
        with self._cond:
            self._received.clear()

    def __len__(self) -> int:
        with self._cond:
            return len(self._received)

    def __repr__(self) -> str:
        state = "running" if self._controller else "stopped"
        return f"<SmtpSink {self.host}:{self.port} {state} received={len(self)}>"
