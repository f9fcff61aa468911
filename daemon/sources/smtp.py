"""SMTP/LMTP listener: an MTA or fax gateway pushes mail straight in.

An aiosmtpd handler in the daemon's event loop. It is never a relay: RCPT
for an address it does not serve gets 550. DATA is answered 250 only after
the pipeline committed the message; when the database is unavailable the
answer is 451 so the sending MTA keeps the message and retries. A message
that cannot be parsed is still accepted (250): it is stored whole in
quarantine, which is safer than bouncing mail nobody has read.

For LMTP, DATA gets one reply per accepted recipient (RFC 2033), all
carrying the same outcome because the message is stored once.

Bounded whatever senders do: at most ``max_sessions`` connections (more get
421 at once), at most ``max_bytes_in_flight`` bytes of messages being
received or ingested (a DATA command that would pass it gets 452 before the
354, so no connection is dropped mid-DATA; the reservation is the size the
sender declared with SIZE= (with some slack), which then becomes the limit
of that message, or ``max_message_size``), and ingestion in a pool of ``ingest_workers`` threads
of its own, apart from the event loop's default executor. Parsing runs in
worker processes with a time budget per message (parse_pool.py). AUTH is
offered only after STARTTLS or on implicit TLS.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, Session, syntax
from aiosmtpd.smtp import Envelope as SmtpEnvelope

from ..clock import utcnow
from ..config import ConfigError, ServiceConfig, SmtpSourceConfig
from ..inbound import Envelope, Inbound, Source
from ..stages.context import IngestResult
from ..stages.intake import envelope_sender
from ..stages.pipeline import Pipeline
from .parse_pool import ParsePool
from .smtp_auth import Users, load_users
from .status import SourceStatus
from ...storage.db import DatabaseUnavailable

log = logging.getLogger("casegate.source.smtp")


class RecipientPolicy:
    """Which envelope recipients this listener serves.

    Configured addresses match with or without a ``+tag`` (signed reply
    addresses are plus-addresses of the service mailbox); configured domains
    match any local part. With neither configured, the service address's
    domain is served.
    """

    def __init__(self, cfg: SmtpSourceConfig, service: ServiceConfig) -> None:
        self.addresses = {a.lower() for a in cfg.accept_addresses}
        domains = {d.lower().lstrip("@") for d in cfg.accept_domains}
        if not self.addresses and not domains:
            domains = {service.domain.lower()}
        self.domains = domains

    def accepts(self, address: str) -> bool:
        addr = address.strip().strip("<>").lower()
        local, at, domain = addr.rpartition("@")
        if not at or not local:
            return False
        if domain in self.domains:
            return True
        base = local.split("+", 1)[0]
        return addr in self.addresses or f"{base}@{domain}" in self.addresses


class Limits:
    """Sessions and bytes in flight of one listener; touched only from the event loop."""

    def __init__(self, max_sessions: int, max_bytes: int) -> None:
        self.max_sessions = max_sessions
        self.max_bytes = max_bytes
        self.sessions = 0
        self.bytes = 0

    def reserve(self, size: int) -> bool:
        if self.bytes + size > self.max_bytes:
            return False
        self.bytes += size
        return True

    def release(self, size: int) -> None:
        self.bytes -= size


def declared_size(mail_options: list[str]) -> int | None:
    """The SIZE= a sender declared with MAIL FROM (RFC 1870), if any."""
    for option in mail_options:
        key, _, value = option.partition("=")
        if key.upper() == "SIZE" and value.isdigit():
            return int(value)
    return None


class IngestHandler:
    """aiosmtpd handler: the hook names are aiosmtpd's protocol API."""

    def __init__(
        self,
        cfg: SmtpSourceConfig,
        pipeline: Pipeline,
        recipients: RecipientPolicy,
        status: SourceStatus,
        on_ingested: Callable[[list[IngestResult]], None],
        clock: Callable[[], datetime] = utcnow,
        parse_pool: ParsePool | None = None,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        self.cfg = cfg
        self.pipeline = pipeline
        self.parse_pool = parse_pool if parse_pool is not None else ParsePool(0)
        # Ingestion has threads of its own: a flood of pushed mail never
        # starves the default executor the rest of the daemon uses.
        self.executor = executor if executor is not None else ThreadPoolExecutor(
            cfg.ingest_workers, thread_name_prefix=f"ingest-{cfg.name}")
        self.recipients = recipients
        self.status = status
        self.on_ingested = on_ingested
        self.clock = clock
        self.source = Source(cfg.name, cfg.kind)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: SmtpEnvelope, address: str, rcpt_options: list[str]) -> str:
        if not self.recipients.accepts(address):
            log.warning("source=%s refused recipient %s from %s (not served; no relaying)",
                        self.cfg.name, address, session.peer)
            return "550 5.7.1 Recipient not served here: relaying denied"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: SmtpEnvelope) -> str:
        # Stored exactly as received: the raw bytes are the evidence.
        raw = envelope.original_content or b""
        try:
            inbound = Inbound(raw, self.source, received_at=self.clock(),
                              envelope=Envelope(mail_from=envelope.mail_from or "", rcpt_to=tuple(envelope.rcpt_tos)))
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(self.executor, self._ingest, inbound)
        except DatabaseUnavailable as exc:
            log.error("source=%s database unavailable, answered 451: %s", self.cfg.name, exc)
            self.status.error(f"database unavailable: {exc}")
            return self._reply(server, envelope, "451 4.3.0 Temporary storage failure, try again later")
        except Exception:
            log.exception("source=%s failed to ingest a message", self.cfg.name)
            return self._reply(server, envelope, "451 4.3.0 Internal error, try again later")
        self.status.ingested(1)
        self.on_ingested([result])
        note = f" {result.case_number}" if result.case_number else ""
        return self._reply(server, envelope, f"250 2.0.0 OK {result.outcome}{note}")

    def _ingest(self, inbound: Inbound) -> IngestResult:
        """In an ingest thread: parse in a worker (within its time budget), then store."""
        outcome = self.parse_pool.parse_one(inbound.raw, envelope_sender(inbound))
        return self.pipeline.ingest_batch([inbound], [outcome])[0]

    @staticmethod
    def _reply(server: SMTP, envelope: SmtpEnvelope, line: str) -> str:
        if isinstance(server, LMTP):
            return "\r\n".join([line] * max(1, len(envelope.rcpt_tos)))
        return line


class _Authenticator:
    def __init__(self, users: Users) -> None:
        self.users = users

    def __call__(self, server: SMTP, session: Session, envelope: SmtpEnvelope, mechanism: str, auth_data: object) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            user = auth_data.login.decode("utf-8", "replace")
            if self.users.check(user, auth_data.password.decode("utf-8", "replace")):
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


class _Bounded:
    """The limits of one listener, mixed into aiosmtpd's SMTP and LMTP servers."""

    limits: Limits
    data_size_limit: int | None
    envelope: SmtpEnvelope | None

    def connection_lost(self, error: Exception | None) -> None:
        self.limits.sessions -= 1
        super().connection_lost(error)  # type: ignore[misc]

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        envelope = self.envelope
        if envelope is None or not envelope.rcpt_tos or arg:
            await super().smtp_DATA(arg)  # type: ignore[misc]  # its own error replies
            return
        limit = self.data_size_limit or 0
        declared = declared_size(envelope.mail_options)
        # SIZE= may be an estimate (RFC 1870): a quarter and 4 KiB of slack.
        size = min(declared + declared // 4 + 4096, limit) if declared is not None and limit else limit
        if not self.limits.reserve(size):
            log.warning("refused DATA of %d bytes with 452: %d of %d bytes in flight",
                        size, self.limits.bytes, self.limits.max_bytes)
            await self.push("452 4.3.1 Too much mail in progress, try again later")  # type: ignore[attr-defined]
            return
        # A sender that declared its size is held to it: what was reserved is what may come.
        self.data_size_limit = size or None
        try:
            await super().smtp_DATA(arg)  # type: ignore[misc]
        finally:
            self.data_size_limit = limit or None
            self.limits.release(size)


class _BoundedSMTP(_Bounded, SMTP):
    def __init__(self, handler: IngestHandler, limits: Limits, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.limits = limits


class _BoundedLMTP(_Bounded, LMTP):
    def __init__(self, handler: IngestHandler, limits: Limits, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.limits = limits


class _TooManySessions(asyncio.Protocol):
    """What a connection above max_sessions gets: 421 and the close (RFC 5321 3.8)."""

    def __init__(self, hostname: str) -> None:
        self.hostname = hostname

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(f"421 4.7.0 {self.hostname} Too many connections, try again later\r\n".encode())
        transport.close()


def tls_context_of(cfg: SmtpSourceConfig) -> ssl.SSLContext | None:
    if not (cfg.tls_cert_file and cfg.tls_key_file):
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cfg.tls_cert_file, cfg.tls_key_file)
    return context


def make_server_factory(
    cfg: SmtpSourceConfig,
    service: ServiceConfig,
    pipeline: Pipeline,
    status: SourceStatus,
    on_ingested: Callable[[list[IngestResult]], None],
    clock: Callable[[], datetime] = utcnow,
    parse_pool: ParsePool | None = None,
) -> Callable[[], asyncio.Protocol]:
    handler = IngestHandler(cfg, pipeline, RecipientPolicy(cfg, service), status, on_ingested, clock, parse_pool)
    tls_context = tls_context_of(cfg)
    users = load_users(cfg.auth_users_file)
    if users and tls_context is None:
        raise ConfigError(f"source {cfg.name}: auth_users_file needs tls_cert_file and tls_key_file "
                          "(AUTH is offered only over TLS)")
    limits = Limits(cfg.max_sessions, cfg.max_bytes_in_flight)
    cls = _BoundedLMTP if cfg.kind == "lmtp" else _BoundedSMTP

    def factory() -> asyncio.Protocol:
        if limits.sessions >= limits.max_sessions:
            log.warning("source=%s refused a connection with 421: %d sessions open", cfg.name, limits.sessions)
            return _TooManySessions(service.domain)
        kwargs: dict[str, Any] = dict(
            data_size_limit=cfg.max_message_size,
            enable_SMTPUTF8=True,
            hostname=service.domain,
            ident="casegate",
            # Implicit TLS wraps the socket itself; STARTTLS is aiosmtpd's.
            tls_context=None if cfg.implicit_tls else tls_context,
            require_starttls=cfg.require_tls and tls_context is not None and not cfg.implicit_tls,
        )
        if users:
            # aiosmtpd's own check covers STARTTLS; on implicit TLS every byte is encrypted.
            kwargs.update(authenticator=_Authenticator(users), auth_required=cfg.require_auth,
                          auth_require_tls=not cfg.implicit_tls)
        server = cls(handler, limits, **kwargs)
        limits.sessions += 1
        return server

    return factory


async def start_listener(
    cfg: SmtpSourceConfig,
    service: ServiceConfig,
    pipeline: Pipeline,
    status: SourceStatus,
    on_ingested: Callable[[list[IngestResult]], None],
    clock: Callable[[], datetime] = utcnow,
) -> asyncio.AbstractServer:
    loop = asyncio.get_running_loop()
    # The listener's own parse workers: each message parsed within parse_timeout.
    parse_pool = ParsePool(service.parse_workers, service.parse_timeout.total_seconds())
    factory = make_server_factory(cfg, service, pipeline, status, on_ingested, clock, parse_pool)
    server = await loop.create_server(factory, host=cfg.host, port=cfg.port, reuse_address=True,
                                      ssl=tls_context_of(cfg) if cfg.implicit_tls else None)
    log.info("source=%s listening (%s%s) on %s:%s; at most %d sessions, %d bytes in flight",
             cfg.name, cfg.kind, ", implicit TLS" if cfg.implicit_tls else "", cfg.host, cfg.port,
             cfg.max_sessions, cfg.max_bytes_in_flight)
    status.connected()
    return server
