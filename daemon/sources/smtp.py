"""SMTP/LMTP listener: an MTA or fax gateway pushes mail straight in.

An aiosmtpd handler in the daemon's event loop. It is never a relay: RCPT
for an address it does not serve gets 550. DATA is answered 250 only after
the pipeline committed the message; when the database is unavailable the
answer is 451 so the sending MTA keeps the message and retries. A message
that cannot be parsed is still accepted (250): it is stored whole in
quarantine, which is safer than bouncing mail nobody has read.

For LMTP, DATA gets one reply per accepted recipient (RFC 2033), all
carrying the same outcome because the message is stored once.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, Session
from aiosmtpd.smtp import Envelope as SmtpEnvelope

from ..clock import utcnow
from ..config import ServiceConfig, SmtpSourceConfig
from ..inbound import Envelope, Inbound, Source
from ..stages.context import IngestResult
from ..stages.pipeline import Pipeline
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


def _load_users(path: str | None) -> dict[str, str]:
    users: dict[str, str] = {}
    if not path:
        return users
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and ":" in line:
            user, _, password = line.partition(":")
            users[user] = password
    return users


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
    ) -> None:
        self.cfg = cfg
        self.pipeline = pipeline
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
            result = await asyncio.to_thread(self.pipeline.ingest, inbound)
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

    @staticmethod
    def _reply(server: SMTP, envelope: SmtpEnvelope, line: str) -> str:
        if isinstance(server, LMTP):
            return "\r\n".join([line] * max(1, len(envelope.rcpt_tos)))
        return line


class _Authenticator:
    def __init__(self, users: dict[str, str]) -> None:
        self.users = users

    def __call__(self, server: SMTP, session: Session, envelope: SmtpEnvelope, mechanism: str, auth_data: object) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            user = auth_data.login.decode("utf-8", "replace")
            if self.users.get(user) == auth_data.password.decode("utf-8", "replace"):
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


def make_server_factory(
    cfg: SmtpSourceConfig,
    service: ServiceConfig,
    pipeline: Pipeline,
    status: SourceStatus,
    on_ingested: Callable[[list[IngestResult]], None],
    clock: Callable[[], datetime] = utcnow,
) -> Callable[[], SMTP]:
    handler = IngestHandler(cfg, pipeline, RecipientPolicy(cfg, service), status, on_ingested, clock)
    tls_context = None
    if cfg.tls_cert_file and cfg.tls_key_file:
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(cfg.tls_cert_file, cfg.tls_key_file)
    users = _load_users(cfg.auth_users_file)
    cls = LMTP if cfg.kind == "lmtp" else SMTP

    def factory() -> SMTP:
        kwargs: dict[str, Any] = dict(
            data_size_limit=cfg.max_message_size,
            enable_SMTPUTF8=True,
            hostname=service.domain,
            ident="casegate",
            tls_context=tls_context,
            require_starttls=cfg.require_tls and tls_context is not None,
        )
        if users:
            kwargs.update(authenticator=_Authenticator(users), auth_required=cfg.require_auth,
                          auth_require_tls=tls_context is not None)
        return cls(handler, **kwargs)

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
    factory = make_server_factory(cfg, service, pipeline, status, on_ingested, clock)
    server = await loop.create_server(factory, host=cfg.host, port=cfg.port, reuse_address=True)
    log.info("source=%s listening (%s) on %s:%s", cfg.name, cfg.kind, cfg.host, cfg.port)
    status.connected()
    return server
