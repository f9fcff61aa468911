"""What one batch transaction knows already, so it need not ask the database twice.

Ingesting a batch of messages in one transaction is fast because the batch's
dedupe keys, senders, recent mail counts and named cases are fetched with one
query each up front, and kept current as the batch adds rows (nothing is
flushed per message). This is that knowledge, as one typed object kept for
the transaction's life in ``Session.info`` under a single key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from .models import Case, Customer, Message, OutboxMessage

_KEY = "casegate.batch"


@dataclass
class BatchCache:
    # Stored messages by dedupe key (this batch's own added as they are stored).
    messages: dict[str, Message] | None = None
    # Customers by lower-case e-mail address.
    customers: dict[str, Customer] | None = None
    # Customers by the e-mail domain they declare (the batch's senders' domains).
    domains: dict[str, Customer] | None = None
    # Cases by number; ``checked`` are numbers known to name no stored case.
    cases: dict[str, Case] = field(default_factory=dict)
    checked_numbers: set[str] = field(default_factory=set)
    # Automatic mail per address: stored in the last hour (prefetched), and
    # queued by this transaction.
    recent_mails: dict[str, int] | None = None
    queued_to: dict[str, list[OutboxMessage]] = field(default_factory=dict)
    # Round robin: an ordering key of each engineer's newest assignment (the
    # stored "assigned" event's id; this batch's own assignments above them).
    assignments: dict[str, int] = field(default_factory=dict)
    # Case numbers reserved in blocks (see numbering.reserve_case_numbers).
    number_block: int = 0
    number_blocks: dict[str, list[int]] = field(default_factory=dict)


def batch_cache(session: Session) -> BatchCache:
    """The cache of this session's transaction (made on first use)."""
    cache = session.info.get(_KEY)
    if cache is None:
        cache = session.info[_KEY] = BatchCache()
    return cache


def forget_batch(session: Session) -> None:
    """Drop the cache (at the end of a transaction, or before a retry)."""
    session.info.pop(_KEY, None)
