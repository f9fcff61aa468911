"""The one wall clock of casegate.

Everything that needs "now" takes a ``clock`` callable defaulting to this,
so tests drive time explicitly and nothing reads the wall clock twice.
"""

from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
