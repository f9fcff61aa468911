"""Durations in configuration: "90s", "30m", "2h", "1d12h", and "2wd" (working days).

One syntax for the whole file. A leaf module: the SLA policy and the
configuration both import it, it imports neither. Working days only get a
length from a working calendar, so ``Duration`` stays symbolic and takes the
calendar as an argument (any object with the small protocol below).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Adds an amount of time to an instant: wall-clock or working time."""

    def add(self, start: datetime, delta: timedelta) -> datetime: ...


class WorkingCalendar(Clock, Protocol):
    """A clock that also knows how long one working day is."""

    @property
    def working_day(self) -> timedelta: ...


class DurationError(ValueError):
    pass


_DURATION_RE = re.compile(
    r"^(?:(?P<wd>\d+)wd|(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?)$"
)
DURATION_HINT = 'expected e.g. "90s", "30m", "2h", "1d12h" or "2wd" (working days)'


@dataclass(frozen=True)
class Duration:
    """A configured duration: either an amount of time or a number of working days.

    Kept symbolic (not a bare ``timedelta``) because "1wd" only gets a length
    from the calendar, and because ``str()`` gives back what the admin wrote
    (in canonical form) for messages and the config dump.
    """

    delta: timedelta = timedelta(0)
    working_days: int = 0

    def __post_init__(self) -> None:
        if self.working_days and self.delta:
            raise ValueError("a Duration is either working days or an amount of time, not both")
        if self.working_days < 0 or self.delta < timedelta(0):
            raise ValueError("a Duration cannot be negative")

    @classmethod
    def parse(cls, text: str) -> Duration:
        """Parse the TOML duration syntax described in the module docstring."""
        if not isinstance(text, str):
            raise TypeError(f"duration must be a string, got {type(text).__name__}")
        m = _DURATION_RE.match(text)
        if not m or not any(m.groupdict().values()):
            raise ValueError(f"invalid duration {text!r}: {DURATION_HINT}")
        parts = {k: int(v) for k, v in m.groupdict().items() if v is not None}
        try:
            if "wd" in parts:
                return cls(working_days=parts["wd"])
            return cls(
                delta=timedelta(
                    days=parts.get("d", 0),
                    hours=parts.get("h", 0),
                    minutes=parts.get("m", 0),
                    seconds=parts.get("s", 0),
                )
            )
        except OverflowError:
            raise ValueError(f"invalid duration {text!r}: too large") from None

    def __str__(self) -> str:
        if self.working_days:
            return f"{self.working_days}wd"
        total = int(self.delta.total_seconds())
        if total == 0:
            return "0s"
        out = []
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
            n, total = divmod(total, size)
            if n:
                out.append(f"{n}{unit}")
        return "".join(out)

    def __bool__(self) -> bool:
        return bool(self.working_days or self.delta)

    def nominal(self, calendar: WorkingCalendar) -> timedelta:
        """Length used to compare durations (a working day counts its working hours)."""
        if self.working_days:
            return self.working_days * calendar.working_day
        return self.delta

    def after(self, start: datetime, basis: Clock, calendar: WorkingCalendar) -> datetime:
        """The instant this duration after ``start``: on ``basis``, or on ``calendar`` for "wd"."""
        if self.working_days:
            return calendar.add(start, self.working_days * calendar.working_day)
        return basis.add(start, self.delta)


def parse_duration(text: str) -> timedelta:
    """Parse a plain amount of time; the error names the bad value.

    Working days ("2wd") are refused: they only mean something where a
    working calendar applies (the SLA policy parses those with Duration).
    """
    try:
        duration = Duration.parse(text)
    except (TypeError, ValueError) as exc:
        raise DurationError(str(exc)) from None
    if duration.working_days:
        raise DurationError(f"invalid duration {text!r}: working days (wd) are not allowed for this key")
    return duration.delta
