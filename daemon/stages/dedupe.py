"""Dedupe: a message stored before is a duplicate, settled at once.

Re-ingesting the same bytes (after a crash between commit and the source's
acknowledgement, or a peer's second copy) must be harmless: it answers
"duplicate" with the case it went to, and nothing else happens.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from .context import IngestResult, MessageContext
from ...storage import repository as repo
from ...storage.batch import batch_cache


class Dedupe:
    name = "dedupe"
    after_settled = False

    def run(self, session: Session, ctx: MessageContext) -> None:
        assert ctx.dedupe_key is not None
        known = batch_cache(session).messages
        existing = known.get(ctx.dedupe_key) if known is not None else repo.message_by_dedupe_key(session, ctx.dedupe_key)
        if existing is not None:
            number = existing.case.number if existing.case is not None else None
            ctx.result = IngestResult("duplicate", number, existing.message_id)
