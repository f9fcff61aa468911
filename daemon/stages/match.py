"""What threading found: the case a message belongs to, and the evidence."""

from __future__ import annotations

from dataclasses import dataclass

from ...storage.models import Case


@dataclass(frozen=True)
class ThreadMatch:
    case: Case
    how: str  # "reply-address" | "subject" | "fax-text" | "references"
    signed_by: str | None = None  # recipient the signed address was issued to
