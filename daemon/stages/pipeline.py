"""The ingestion pipeline: raw bytes -> parse -> dedupe -> thread -> classify
-> store -> outbox, in that order and in one transaction.

Sources (CLI, IMAP, SMTP, spool) only hand raw bytes to ``ingest_batch``;
all case logic lives here. A batch is one database transaction with a
savepoint per message: one bad message is quarantined or rolled back on its
own, the others commit together, and nothing is reported as done before
the commit. Dedupe makes re-ingesting the same bytes (after a crash between
commit and the source's acknowledgement) a harmless "duplicate".
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from ..notify.compose import Renderer, build_message, local_time, make_address
from ..config import Config
from ..fax.customer import fax_customer
from ..inbound import Inbound, Source
from ..notify.fax_route import choose_recipient
from ..runtime.outbox import enqueue
from ..durations import Duration
from ..timekeeping.policy import Policy
from .thread import Threader
from ..runtime.parse_pool import ParseOutcome, ParsePool, parse_outcome
from ...parsers.message import Attachment as ParsedAttachment
from ...parsers.message import ParsedMessage
from ...rules import Classification, ClassifyInput, RuleStore
from ...storage import repository as repo
from ...storage.blobs import BlobStore
from ...storage.db import Database, DatabaseUnavailable
from ...storage.models import Attachment, Case, Customer, Message, Quarantine
from ...storage.numbering import allocate_case_number, release_unused_case_numbers, reserve_case_numbers

log = logging.getLogger("casegate.pipeline")

PRIORITY_LABELS = {
    "zh": {"P1": "紧急：系统停机或核心业务中断", "P2": "严重：性能严重下降或重要功能故障",
           "P3": "一般：部分功能受影响", "P4": "咨询：配置、使用或安装问题"},
    "en": {"P1": "critical: system down or core business stopped", "P2": "major: serious degradation",
           "P3": "minor: partial impairment", "P4": "question: configuration, usage or installation"},
}
NO_REPLY_LOCALPARTS = ("mailer-daemon", "postmaster", "noreply", "no-reply", "donotreply", "do-not-reply", "bounce")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class _IsolateAndRetry(Exception):
    """A message failed on the batch fast path; redo the batch isolated."""


@dataclass(frozen=True)
class IngestResult:
    outcome: str  # new | reply | duplicate | ignored | quarantined
    case_number: str | None = None
    message_id: str | None = None
    reason: str = ""


@dataclass
class _Prepared:
    """A message parsed outside the transaction (pure CPU work)."""

    inbound: Inbound
    sha256: str
    parsed: ParsedMessage | None = None
    error: str | None = None
    dedupe_key: str | None = None
    blobs: list[tuple[ParsedAttachment, str]] = field(default_factory=list)
    text_override: str | None = None


def dedupe_key(parsed: ParsedMessage, sha256: str) -> str:
    if parsed.message_id:
        mid = parsed.message_id.strip()
        if len(mid) <= 400:
            return "mid:" + mid
        return "midsha:" + hashlib.sha256(mid.encode("utf-8", "surrogateescape")).hexdigest()
    return "sha256:" + sha256


class Pipeline:
    def __init__(
        self,
        config: Config,
        db: Database,
        rules: RuleStore,
        policy: Policy,
        renderer: Renderer,
        blobs: BlobStore,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.config = config
        self.db = db
        self.rules = rules
        self.policy = policy
        self.renderer = renderer
        self.blobs = blobs
        self.clock = clock
        # Sources that fetch in batches parse them here, beside the store
        # (App sizes it from service.parse_workers; 0 = parse inline).
        self.parse_pool = ParsePool(0)
        self.threader = Threader(config.service.case_number_format)
        self.own_addresses = {config.service.address.lower()}
        # Called after each stored message with (session, case, message row,
        # parsed, outcome); later stages (commands, notifications) plug in here.
        self.after_store: list[Callable[..., None]] = []
        # Is this sender one of our staff? Staff mail never creates a
        # customer, an acknowledgement, a new case or a "closed case" reopen:
        # the workflow (daemon/workflow/conversation.py) decides what it means.
        self.is_staff: Callable[[str | None], bool] = lambda address: False
        # Called with (session, message row, parsed) when staff mail threads
        # to no case, so the sender can be told instead of a case being opened.
        self.unthreaded_staff: list[Callable[..., None]] = []
        # Fax handling (daemon/fax/intake.py) plugs in here. Prepare hooks
        # run outside the transaction (OCR is slow) and may replace
        # prep.parsed or set prep.text_override; classify hooks may adjust a
        # classification; reply_route picks where an acknowledgement goes
        # (None from it, or no route at all: to the sender).
        self.prepare_hooks: list[Callable[[_Prepared], None]] = []
        self.classify_hooks: list[Callable[[ParsedMessage, Classification], Classification]] = []
        self.reply_route: Callable[[Customer | None, ParsedMessage], Any] | None = None
        # Each returns a reason when an address is not a customer (e.g. a
        # vendor's support centre): no customer record, no automatic mail.
        self.not_customer: list[Callable[[str], str | None]] = []
        # Each may claim a reply to a closed case for the closed case itself
        # (a survey answer), so it is stored there without reopening it.
        self.keep_closed: list[Callable[..., bool]] = []

    # ------------------------------------------------------------ public API

    def ingest(self, inbound: Inbound) -> IngestResult:
        return self.ingest_batch([inbound])[0]

    def ingest_batch(
        self, items: Sequence[Inbound], parsed: Sequence[ParseOutcome] | None = None
    ) -> list[IngestResult]:
        """Ingest several messages in one transaction; results in input order.

        ``parsed`` holds the items already parsed (daemon.parse_pool), one
        outcome per item; without it they are parsed here.
        Raises DatabaseUnavailable when nothing could be committed: the
        caller must keep the messages and retry.
        """
        if parsed is None:
            parsed = [parse_outcome(item.raw) for item in items]
        prepared = [self._prepare(item, outcome) for item, outcome in zip(items, parsed)]
        try:
            try:
                results = self._commit(prepared, isolated=len(prepared) == 1)
            except _IsolateAndRetry:
                # One message failed inside the fast path: redo the batch with
                # a savepoint per message so only that one is set aside.
                results = self._commit(prepared, isolated=True)
        except OperationalError as exc:
            raise DatabaseUnavailable(str(exc.orig)) from exc
        for prep, res in zip(prepared, results):
            log.info(
                "ingested source=%s outcome=%s case=%s message_id=%s%s",
                prep.inbound.source.name, res.outcome, res.case_number or "-", res.message_id or "-",
                f" reason={res.reason!r}" if res.reason else "",
            )
        return results

    def quarantine(self, inbound: Inbound, reason: str) -> IngestResult:
        """Keep a message whole without ingesting it (e.g. a poison message)."""
        prep = _Prepared(inbound=inbound, sha256=hashlib.sha256(inbound.raw).hexdigest())
        with self.db.transaction() as session:
            return self._quarantine(session, prep, reason)

    # ------------------------------------------------------------ stages

    def _prepare(self, inbound: Inbound, outcome: ParseOutcome) -> _Prepared:
        source = inbound.source
        prep = _Prepared(inbound=inbound, sha256=hashlib.sha256(inbound.raw).hexdigest())
        if isinstance(outcome, str):
            prep.error = outcome
            if outcome.startswith("parser error"):
                log.error("parser crashed on a message from %s: %s", source.name, outcome)
            return prep
        prep.parsed = outcome
        prep.dedupe_key = dedupe_key(prep.parsed, prep.sha256)
        try:
            prep.blobs = [(att, self.blobs.put(att.content)) for att in prep.parsed.attachments]
        except OSError as exc:
            prep.error = f"cannot store attachments: {exc}"
        for hook in self.prepare_hooks:
            try:
                hook(prep)
            except Exception:  # a hook bug must not lose the message: it goes on as plain mail
                log.exception("prepare hook %s failed on a message from %s", hook, source.name)
        return prep

    def _commit(self, prepared: list[_Prepared], isolated: bool) -> list[IngestResult]:
        """Store a batch in one transaction.

        Fast path (``isolated=False``): no savepoint per message, and the
        batch's dedupe keys and senders are looked up with one query each.
        Any error aborts the whole transaction and the caller retries the
        batch isolated, where each message gets its own savepoint and a
        failure quarantines just that message.
        """
        results: list[IngestResult] = []
        with self.db.transaction() as session:
            if not isolated:
                self._prefetch(session, prepared)
            for prep in prepared:
                if isolated:
                    results.append(self._store_isolated(session, prep))
                    continue
                if prep.error is not None:
                    results.append(self._quarantine(session, prep, prep.error))
                    continue
                try:
                    results.append(self._store(session, prep))
                except (OperationalError, DatabaseUnavailable):
                    raise
                except Exception as exc:
                    raise _IsolateAndRetry() from exc
            if not isolated:
                release_unused_case_numbers(session)
        return results

    def _prefetch(self, session: Session, prepared: list[_Prepared]) -> None:
        """One query each for the batch's known messages and senders.

        The results live in ``session.info`` for this transaction only and
        are kept current as the batch adds messages and customers.
        """
        keys = [p.dedupe_key for p in prepared if p.dedupe_key]
        known = session.info["dedupe"] = repo.messages_by_dedupe_keys(session, keys)
        parsed = [p.parsed for p in prepared if p.parsed is not None]
        emails = {m.sender_email for m in parsed if m.sender_email}
        session.info["customers"] = repo.customers_by_emails(session, emails)
        repo.prefetch_recent_mails(session, {e.lower() for e in emails}, self.clock() - timedelta(hours=1))
        repo.prefetch_cases(session, [n for m in parsed for n in self.threader.numbers_in(m.subject)])
        # Case numbers are taken in one block per batch; the unused rest is
        # given back before commit (see storage/numbering.py).
        reserve_case_numbers(session, min(500, sum(1 for k in keys if k not in known)))

    def _known_message(self, session: Session, key: str) -> Message | None:
        cache = session.info.get("dedupe")
        if cache is None:
            return repo.message_by_dedupe_key(session, key)
        return cache.get(key)

    def _store_isolated(self, session: Session, prep: _Prepared) -> IngestResult:
        if prep.error is not None:
            return self._quarantine(session, prep, prep.error)
        try:
            with session.begin_nested():
                return self._store(session, prep)
        except IntegrityError:
            # Another writer stored the same message between our check and insert.
            existing = repo.message_by_dedupe_key(session, prep.dedupe_key or "")
            if existing is not None:
                return self._duplicate(existing, prep)
            raise
        except OperationalError:
            raise
        except Exception as exc:
            log.exception("ingest failed for a message from %s", prep.inbound.source.name)
            return self._quarantine(session, prep, f"ingest error: {type(exc).__name__}: {exc}")

    def _duplicate(self, existing: Message, prep: _Prepared) -> IngestResult:
        number = existing.case.number if existing.case is not None else None
        return IngestResult("duplicate", number, existing.message_id)

    def _quarantine(self, session: Session, prep: _Prepared, reason: str) -> IngestResult:
        with session.begin_nested():
            if repo.quarantine_by_sha(session, prep.sha256) is None:
                session.add(
                    Quarantine(
                        sha256=prep.sha256, source=prep.inbound.source.name, error=reason,
                        raw=prep.inbound.raw, created_at=self.clock(),
                    )
                )
        log.warning("quarantined a message from %s: %s", prep.inbound.source.name, reason)
        return IngestResult("quarantined", None, None, reason)

    def _store(self, session: Session, prep: _Prepared) -> IngestResult:
        parsed = prep.parsed
        assert parsed is not None and prep.dedupe_key is not None
        now = self.clock()
        existing = self._known_message(session, prep.dedupe_key)
        if existing is not None:
            return self._duplicate(existing, prep)

        automatic = parsed.is_auto_reply or parsed.is_bounce or parsed.is_list
        match = self.threader.find(session, parsed, prep.text_override if parsed.fax is not None else None)
        staff = not automatic and self.is_staff(parsed.sender_email)
        customer = self._customer(session, parsed, now) if not (automatic or staff) else None
        if (match is not None and match.how == "fax-text" and customer is not None
                and match.case.customer_id != customer.id):
            # A case number read by OCR from another customer's fax is more
            # likely a misread than a reply: it must not join that case.
            log.warning("case number %s read on a fax from another customer; not threading it there",
                        match.case.number)
            match = None

        if match is not None:
            case = match.case
            if case.status == "closed" and not (automatic or staff) and not self._reopen(session, case, parsed, now):
                return self._open_case(session, prep, customer, now, linked=case)
            message = self._add_message(session, case, prep, now)
            if automatic:
                repo.add_event(session, case, now, parsed.sender_email or "unknown", "automatic-mail",
                               new=_kind_of_automatic(parsed))
                self._after(session, case, message, parsed, "ignored")
                return IngestResult("ignored", case.number, parsed.message_id, _kind_of_automatic(parsed))
            case.updated_at = now
            repo.add_event(session, case, now, parsed.sender_email or "unknown", "message", new=match.how)
            self._after(session, case, message, parsed, "reply")
            return IngestResult("reply", case.number, parsed.message_id)

        if automatic:
            self._add_message(session, None, prep, now)
            return IngestResult("ignored", None, parsed.message_id, _kind_of_automatic(parsed))
        if staff:
            message = self._add_message(session, None, prep, now)
            for hook in self.unthreaded_staff:
                hook(session, message, parsed)
            return IngestResult("ignored", None, parsed.message_id, "staff mail that names no case")
        return self._open_case(session, prep, customer, now)

    def _reopen(self, session: Session, case: Case, parsed: ParsedMessage, now: datetime) -> bool:
        """Reopen a closed case when the reply is inside the reopen window."""
        if any(keep(session, case, parsed, now) for keep in self.keep_closed):
            return True
        if case.closed_at is None or not self.policy.reply_reopens(case.closed_at, now):
            return False
        repo.add_event(session, case, now, parsed.sender_email or "unknown", "status", old="closed", new="open",
                       detail={"reason": "customer replied within the reopen window"})
        case.status, case.closed_at, case.updated_at = "open", None, now
        return True

    def _open_case(
        self, session: Session, prep: _Prepared, customer: Customer | None, now: datetime, linked: Case | None = None
    ) -> IngestResult:
        parsed = prep.parsed
        assert parsed is not None
        result = self.classify(parsed, prep.inbound.source, customer, now, prep.text_override)
        if result.route == "ignore":
            self._add_message(session, None, prep, now)
            return IngestResult("ignored", None, parsed.message_id, "rules: route ignore ("
                                + ", ".join(sorted({m.rule for m in result.matches})) + ")")
        language = result.language or parsed.language or self.config.service.default_language
        number = allocate_case_number(session, self.config.service.case_number_format, now)
        case = Case(
            number=number,
            subject=parsed.subject[:1000],
            status="new",
            priority=result.priority,
            category=result.category,
            queue=result.queue,
            route=result.route,
            language=language if language in ("zh", "en") else self.config.service.default_language,
            source_kind=prep.inbound.source.kind,
            customer=customer,
            opened_at=now,
            updated_at=now,
            linked_case_id=linked.id if linked is not None else None,
        )
        session.add(case)
        repo.remember_case(session, case)
        actor = parsed.sender_email or "unknown"
        repo.add_event(session, case, now, actor, "created", new=number,
                       detail={"source": prep.inbound.source.name, "linked_to": linked.number if linked else None})
        repo.add_event(session, case, now, "rules", "classified", new=result.priority,
                       detail=result.to_dict())
        message = self._add_message(session, case, prep, now)
        try:
            # No savepoint (it would cost a flush per message): everything
            # that can fail in composing comes before the first row is added.
            self._acknowledge(session, case, parsed, now)
        except (OperationalError, DatabaseUnavailable):
            raise
        except Exception as exc:
            # The case matters more than its acknowledgement: keep the case,
            # record why no acknowledgement went out.
            log.exception("case=%s acknowledgement not queued", case.number)
            repo.add_event(session, case, now, "system", "ack-failed", detail={"reason": f"{type(exc).__name__}: {exc}"})
        self._after(session, case, message, parsed, "new")
        return IngestResult("new", number, parsed.message_id)

    def classify(
        self,
        parsed: ParsedMessage,
        source: Source,
        customer: Customer | None,
        now: datetime,
        text_override: str | None = None,
    ) -> Classification:
        """Run the admins' rules on one message (also used by `casegate rules test`)."""
        warranty = None
        if customer is not None and customer.warranty_end is not None:
            warranty = customer.warranty_end < now.date()
        cls = self.config.classification
        result = self.rules.current().classify(
            ClassifyInput(
                message=parsed,
                source_name=source.name,
                source_kind="fax" if parsed.fax is not None else source.kind,
                customer_name=customer.name if customer else None,
                customer_company=customer.company if customer else None,
                contract_id=customer.contract_id if customer else None,
                warranty_expired=warranty,
                outside_working_hours=not self.policy.calendar.is_working_time(now),
                text_override=text_override,
            ),
            default_priority=cls.default_priority,
            default_queue=cls.default_queue,
            default_category=cls.default_category,
        )
        for hook in self.classify_hooks:
            result = hook(parsed, result)
        return result

    def _customer(self, session: Session, parsed: ParsedMessage, now: datetime) -> Customer | None:
        if parsed.fax is not None:  # the sender is a fax number, never the gateway's From
            return fax_customer(session, parsed.fax, now)
        email = parsed.sender_email
        if not email or any(check(email.lower()) for check in self.not_customer):
            return None
        cache = session.info.get("customers")
        customer = cache.get(email) if cache is not None else repo.find_customer(session, "email", email)
        if customer is None:
            name = parsed.from_.name if parsed.from_ and parsed.from_.name else email.partition("@")[0]
            customer = repo.create_customer(session, now, name=name[:200], contacts=[("email", email)])
            if cache is not None:
                cache[email] = customer
        return customer

    def _add_message(self, session: Session, case: Case | None, prep: _Prepared, now: datetime) -> Message:
        parsed = prep.parsed
        assert parsed is not None
        message = Message(
            case=case,
            direction="in",
            dedupe_key=prep.dedupe_key,
            message_id=(parsed.message_id or "")[:500] or None,
            in_reply_to=" ".join(parsed.in_reply_to),
            references=" ".join(parsed.references),
            from_addr=(parsed.sender_email or "")[:320],
            from_name=(parsed.from_.name if parsed.from_ else "")[:300],
            to_addrs=", ".join(a.email for a in parsed.to),
            cc_addrs=", ".join(a.email for a in parsed.cc),
            subject=parsed.subject,
            date=parsed.date if parsed.date is not None and parsed.date.tzinfo is not None else None,
            text=prep.text_override if prep.text_override is not None else parsed.text,
            new_text=parsed.new_text,
            raw=prep.inbound.raw,
            source=prep.inbound.source.name,
            is_auto_reply=parsed.is_auto_reply,
            is_bounce=parsed.is_bounce,
            created_at=now,
        )
        message.attachments = [
            Attachment(filename=att.filename, content_type=att.content_type[:255], size=att.size,
                       sha256=digest, inline=att.inline)
            for att, digest in prep.blobs
        ]
        session.add(message)
        cache = session.info.get("dedupe")
        if cache is not None and prep.dedupe_key:
            cache[prep.dedupe_key] = message
        return message

    # ------------------------------------------------------------ answers

    def may_auto_answer(self, session: Session, address: str | None, now: datetime) -> str | None:
        """Why we must not send automatic mail to ``address`` (None: we may)."""
        if not address:
            return "no sender address"
        addr = address.lower()
        local, _, domain = addr.partition("@")
        base_local = local.split("+", 1)[0]
        if addr in self.own_addresses or f"{base_local}@{domain}" in self.own_addresses:
            return "sender is our own address"
        if any(base_local == p or base_local.startswith(p + "-") for p in NO_REPLY_LOCALPARTS):
            return "sender is a no-reply or system address"
        for check in self.not_customer:
            reason = check(addr)
            if reason:
                return reason
        limit = self.config.service.max_auto_mails_per_hour
        if repo.auto_mails_since(session, addr, now - timedelta(hours=1)) >= limit:
            return f"rate limit: {limit} automatic mails per hour to this address"
        return None

    def _acknowledge(self, session: Session, case: Case, parsed: ParsedMessage, now: datetime) -> None:
        route = self.reply_route(case.customer, parsed) if self.reply_route is not None else None
        who = choose_recipient(route, parsed.sender_email, parsed.from_.name if parsed.from_ else "",
                               lambda address: self.may_auto_answer(session, address, now))
        if who.address is None:
            repo.add_event(session, case, now, "system", "ack-suppressed", detail={"reason": who.refusal})
            return
        to, name = who.address, who.name
        svc = self.config.service
        pri = self.policy.priority(case.priority)
        due = self.policy.first_response_due(case.priority, case.opened_at)
        lang = case.language
        subject, body = self.renderer.render(
            route.template if route is not None else "ack", lang,
            case=case,
            subject=parsed.subject or ("(无主题)" if lang == "zh" else "(no subject)"),
            customer_name=name,
            priority_label=PRIORITY_LABELS.get(lang, PRIORITY_LABELS["en"]).get(case.priority, case.priority),
            first_response=_human(pri.first_response, lang),
            first_response_due=local_time(due, svc.timezone),
            service_name=svc.display_name,
        )
        try:
            recipient = make_address(to, name)
        except ValueError as exc:
            repo.add_event(session, case, now, "system", "ack-suppressed", detail={"reason": str(exc)})
            return
        msg = build_message(
            from_addr=make_address(svc.address, svc.display_name),
            to=[recipient],
            subject=subject,
            body=body,
            domain=svc.domain,
            now=now,
            in_reply_to=parsed.message_id,
            references=parsed.references,
            attachments=who.attachments(subject, body),
        )
        enqueue(session, msg, kind="ack", case=case, mail_from=svc.address, rcpt_to=[to.lower()],
                now=now, text=body)
        repo.add_event(session, case, now, "system", "ack-queued", new=to.lower())

    def _after(self, session: Session, case: Case, message: Message, parsed: ParsedMessage, outcome: str) -> None:
        for hook in self.after_store:
            hook(session, case, message, parsed, outcome)


def _kind_of_automatic(parsed: ParsedMessage) -> str:
    if parsed.is_bounce:
        return "bounce"
    if parsed.is_auto_reply:
        return "auto-reply"
    return "mailing list"


def _human(duration: Duration, lang: str) -> str:
    """A policy duration as a customer reads it: "30 分钟" / "30 minutes"."""
    zh = lang == "zh"
    if duration.working_days:
        n = duration.working_days
        return f"{n} 个工作日" if zh else f"{n} working day{'s' if n > 1 else ''}"
    secs = int(duration.delta.total_seconds())
    for size, zh_unit, en_unit in ((86400, "天", "day"), (3600, "小时", "hour"), (60, "分钟", "minute")):
        if secs >= size and secs % size == 0:
            n = secs // size
            return f"{n} {zh_unit}" if zh else f"{n} {en_unit}{'s' if n > 1 else ''}"
    return str(duration)
