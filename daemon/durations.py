"""Plain durations in configuration ("90s", "30m", "2h", "1d12h").

One syntax for the whole file: this is the SLA policy's duration parser
(daemon/timekeeping/policy.py), restricted to amounts of time, because working days
("2wd") only mean something where a working calendar applies.
"""

from __future__ import annotations

from datetime import timedelta

from .timekeeping.policy import Duration


class DurationError(ValueError):
    pass


def parse_duration(text: str) -> timedelta:
    """Parse a plain duration; the error names the bad value."""
    try:
        duration = Duration.parse(text)
    except (TypeError, ValueError) as exc:
        raise DurationError(str(exc)) from None
    if duration.working_days:
        raise DurationError(f"invalid duration {text!r}: working days (wd) are not allowed for this key")
    return duration.delta

