"""``[scheduler]``: how often the sweeps look for due work, and who hears of complaints.

Config (all optional)::

    [scheduler]
    enabled = true
    interval = "60s"         # how often due work is looked for
    misfire_grace = "10m"    # a run this late still happens (once)
    batch_size = 100         # timers handled per transaction
    complaint_role = "support-supervisor"    # who hears of a missed complaint deadline
    complaint_category = "complaint"         # cases of this category get complaint deadlines
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ..config import Config, ConfigError
from ..durations import DurationError, parse_duration


@dataclass(frozen=True)
class SchedulerConfig:
    enabled: bool = True
    interval: timedelta = timedelta(seconds=60)
    misfire_grace: timedelta = timedelta(minutes=10)
    batch_size: int = 100
    complaint_role: str = "support-supervisor"
    complaint_category: str = "complaint"

    @classmethod
    def from_config(cls, config: Config) -> SchedulerConfig:
        file = str(config.path) if config.path else "<defaults>"
        data = config.extra.get("scheduler", {})
        if not isinstance(data, dict):
            raise ConfigError(f"{file}: scheduler: expected a table")
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            where = f"{file}: scheduler.{key}"
            if key in ("interval", "misfire_grace"):
                try:
                    kwargs[key] = parse_duration(value) if isinstance(value, str) else timedelta(seconds=value)
                except (DurationError, TypeError) as exc:
                    raise ConfigError(f"{where}: {exc}") from None
            elif key == "enabled" and isinstance(value, bool):
                kwargs[key] = value
            elif key == "batch_size" and isinstance(value, int) and not isinstance(value, bool) and value > 0:
                kwargs[key] = value
            elif key in ("complaint_role", "complaint_category") and isinstance(value, str) and value:
                kwargs[key] = value
            else:
                raise ConfigError(f"{where}: unknown key or wrong type ({value!r})")
        return cls(**kwargs)
