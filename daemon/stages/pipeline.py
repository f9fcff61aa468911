"""The pipeline: each message through intake, then the declared stages, in one transaction per batch.

    source -> intake (parse, attachments, fax OCR)        outside the transaction
           -> dedupe -> identify sender -> thread -> role -> classify -> apply -> notify
                                                           inside one batch transaction

``STAGES`` below is the order, written in one place; each stage is a small
class with a ``run(session, ctx)`` over one typed ``MessageContext``.

A batch is one database transaction. On the fast path no savepoint is taken
per message and the batch's dedupe keys, senders, recent mail counts and
named cases are fetched with one query each. Any error aborts that attempt
and the batch is redone *isolated*: a savepoint per message, so the one bad
message is quarantined (raw bytes whole) and the others commit together.
Nothing is reported as done before the commit. Dedupe makes re-ingesting the
same bytes (after a crash between commit and the source's acknowledgement)
a harmless "duplicate".
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from ..clock import utcnow
from ..config import ServiceConfig
from ..fax.intake import FaxIntake
from ..inbound import Inbound, Source
from ..metrics import Metrics
from ..timekeeping.aftercare import Aftercare
from ..timekeeping.desk import Desk
from ..workflow.conversation import Workflow
from .apply import ApplyToCase
from .bounces import Bounces
from .classify import Classifier, Classify
from .context import IngestResult, MessageContext, Stage
from .dedupe import Dedupe
from .intake import Intake, ParseOutcome, parse_outcome
from .notify import Notify
from .roles import DecideRole
from .sender import IdentifySender
from .thread import Thread, Threader
from ...parsers.message import ParsedMessage
from ...rules import Classification
from ...storage import customers as master
from ...storage import repository as repo
from ...storage.batch import batch_cache
from ...storage.db import Database, DatabaseUnavailable
from ...storage.models import Contract, Customer, Product
from ...storage.numbering import release_unused_case_numbers, reserve_case_numbers

log = logging.getLogger("casegate.pipeline")

# The order in which a message is handled inside the transaction.
STAGES = ("dedupe", "identify-sender", "thread", "role", "classify", "apply", "notify")


# How often one message is redone after a peer's commit made its insert
# conflict (each retry sees the peer's rows, so one is normally enough).
UNIQUE_RETRIES = 3


class IsolateAndRetry(Exception):
    """A message failed on the batch fast path; redo the batch isolated."""


def build_stages(
    service: ServiceConfig,
    desk: Desk,
    workflow: Workflow,
    aftercare: Aftercare,
    fax: FaxIntake,
    threader: Threader,
    classifier: Classifier,
) -> list[Stage]:
    """The stages, in the order ``STAGES`` names."""
    built: dict[str, Stage] = {}
    for stage in (
        Dedupe(),
        IdentifySender(desk.staff, desk.vendors),
        Thread(threader),
        DecideRole(desk.vendors, desk.policy, aftercare),
        Classify(classifier),
        ApplyToCase(service, desk, workflow, aftercare, fax, Bounces()),
        Notify(service, desk.policy, desk.notifier, fax.cfg, workflow),
    ):
        built[stage.name] = stage
    return [built[name] for name in STAGES]


class Pipeline:
    def __init__(
        self,
        db: Database,
        intake: Intake,
        stages: Sequence[Stage],
        threader: Threader,
        classifier: Classifier,
        clock: Callable[[], datetime] = utcnow,
        metrics: Metrics | None = None,
        before_batch: Sequence[Callable[[], None]] = (),
    ) -> None:
        self.db = db
        # Called as each batch starts, e.g. to pick up edited templates.
        self.before_batch = tuple(before_batch)
        self.metrics = metrics if metrics is not None else Metrics()
        self.intake = intake
        self.stages = list(stages)
        self.threader = threader
        self.classifier = classifier
        self.clock = clock

    # ------------------------------------------------------------ public API

    def ingest(self, inbound: Inbound) -> IngestResult:
        return self.ingest_batch([inbound])[0]

    def ingest_batch(
        self, items: Sequence[Inbound], parsed: Sequence[ParseOutcome] | None = None
    ) -> list[IngestResult]:
        """Ingest several messages in one transaction; results in input order.

        ``parsed`` holds the items already parsed (runtime/parse_pool.py), one
        outcome per item; without it they are parsed here.
        Raises DatabaseUnavailable when nothing could be committed: the
        caller must keep the messages and retry.
        """
        started = time.perf_counter()
        for hook in self.before_batch:
            hook()
        if parsed is None:
            parsed = [parse_outcome(item.raw) for item in items]
        contexts = [self.intake.prepare(item, outcome) for item, outcome in zip(items, parsed)]
        prepared = time.perf_counter()
        try:
            try:
                results = self._commit(contexts, isolated=len(contexts) == 1)
            except (IsolateAndRetry, IntegrityError):
                # One message failed inside the fast path, or a peer daemon
                # committed the same message or the same new contact first
                # (a unique violation at our commit): redo the batch with a
                # savepoint per message, so each is settled on its own.
                for ctx in contexts:
                    ctx.result = None
                results = self._commit(contexts, isolated=True)
        except OperationalError as exc:
            raise DatabaseUnavailable(str(exc.orig)) from exc
        stored = time.perf_counter()
        if items:
            self.metrics.batch(items[0].source.name, len(items), prepared - started, stored - prepared)
        for ctx, res in zip(contexts, results):
            source = ctx.inbound.source.name
            self.metrics.ingested_one(source, res.outcome)
            log.info(
                "ingested source=%s outcome=%s case=%s message_id=%s%s",
                source, res.outcome, res.case_number or "-", res.message_id or "-",
                f" reason={res.reason!r}" if res.reason else "",
                extra={"source": source, "outcome": res.outcome, "case": res.case_number,
                       "message_id": res.message_id,
                       "duration_ms": round((stored - started) * 1000 / len(items), 1)},
            )
        return results

    def quarantine(self, inbound: Inbound, reason: str) -> IngestResult:
        """Keep a message whole without ingesting it (e.g. a poison message)."""
        with self.db.transaction() as session:
            result = self._quarantine(session, inbound, hashlib.sha256(inbound.raw).hexdigest(), reason)
        self.metrics.ingested_one(inbound.source.name, result.outcome)
        return result

    # ------------------------------------------------------------ the transaction

    def _commit(self, contexts: list[MessageContext], isolated: bool) -> list[IngestResult]:
        results: list[IngestResult] = []
        with self.db.transaction() as session:
            if not isolated:
                try:
                    self._prefetch(session, contexts)
                except (OperationalError, DatabaseUnavailable):
                    raise
                except Exception as exc:  # e.g. one message's key the database refuses: handle each alone
                    raise IsolateAndRetry() from exc
            for ctx in contexts:
                if isolated:
                    results.append(self._handle_isolated(session, ctx))
                    continue
                if ctx.error is not None:
                    results.append(self._quarantine(session, ctx.inbound, ctx.sha256, ctx.error))
                    continue
                try:
                    results.append(self._handle(session, ctx))
                except (OperationalError, DatabaseUnavailable):
                    raise
                except Exception as exc:
                    raise IsolateAndRetry() from exc
            if not isolated:
                release_unused_case_numbers(session)
        return results

    def _handle(self, session: Session, ctx: MessageContext) -> IngestResult:
        """Run the stages over one message until it is settled and told."""
        ctx.now = self.clock()
        for stage in self.stages:
            if ctx.settled and not stage.after_settled:
                continue
            stage.run(session, ctx)
        assert ctx.result is not None, "a message left the stages unsettled"
        return ctx.result

    def _prefetch(self, session: Session, contexts: list[MessageContext]) -> None:
        """One query each for the batch's known messages, senders, mail counts and cases."""
        cache = batch_cache(session)
        keys = [c.dedupe_key for c in contexts if c.dedupe_key]
        known = cache.messages = repo.messages_by_dedupe_keys(session, keys)
        parsed = [c.parsed for c in contexts if c.parsed is not None]
        emails = {m.sender_email for m in parsed if m.sender_email}
        cache.customers = repo.customers_by_emails(session, emails)
        cache.domains = master.customers_by_domains(
            session, {e.rpartition("@")[2] for e in emails if e.lower() not in cache.customers})
        repo.prefetch_recent_mails(session, {e.lower() for e in emails}, self.clock() - timedelta(hours=1))
        repo.prefetch_cases(session, [n for m in parsed for n in self.threader.numbers_in(m.subject)])
        # Case numbers are taken in one block per batch; the unused rest is
        # given back before commit (see storage/numbering.py).
        reserve_case_numbers(session, min(500, sum(1 for k in keys if k not in known)))

    def _handle_isolated(self, session: Session, ctx: MessageContext) -> IngestResult:
        if ctx.error is not None:
            return self._quarantine(session, ctx.inbound, ctx.sha256, ctx.error)
        for _ in range(UNIQUE_RETRIES):
            try:
                with session.begin_nested():
                    return self._handle(session, ctx)
            except IntegrityError as exc:
                # Another writer committed the same message, or a row this
                # message adds (the same new contact), between our check and
                # insert; its row is visible now: a duplicate, or a retry
                # that finds and reuses it.
                existing = repo.message_by_dedupe_key(session, ctx.dedupe_key or "")
                if existing is not None:
                    number = existing.case.number if existing.case is not None else None
                    return IngestResult("duplicate", number, existing.message_id)
                conflict: Exception = exc
                ctx.result = None
            except OperationalError:
                raise
            except Exception as exc:
                log.exception("ingest failed for a message from %s", ctx.inbound.source.name)
                return self._quarantine(session, ctx.inbound, ctx.sha256,
                                        f"ingest error: {type(exc).__name__}: {exc}")
        log.error("ingest failed for a message from %s: %s", ctx.inbound.source.name, conflict)
        return self._quarantine(session, ctx.inbound, ctx.sha256, f"ingest error: {type(conflict).__name__}: {conflict}")

    def _quarantine(self, session: Session, inbound: Inbound, sha256: str, reason: str) -> IngestResult:
        reason = reason.replace("\x00", "\\x00")  # PostgreSQL text holds no NUL; the raw bytes stay whole
        with session.begin_nested():
            repo.quarantine(session, sha256=sha256, source=inbound.source.name, error=reason, raw=inbound.raw,
                            now=self.clock())
        log.warning("quarantined a message from %s: %s", inbound.source.name, reason)
        return IngestResult("quarantined", None, None, reason)

    # ------------------------------------------------------------ for `casegate rules test`

    def classify(self, parsed: ParsedMessage, source: Source, customer: Customer | None, now: datetime,
                 text_override: str | None = None, *, product: Product | None = None,
                 contract: Contract | None = None) -> Classification:
        return self.classifier.classify(parsed, source, customer, now, text_override, product=product,
                                        contract=contract)
