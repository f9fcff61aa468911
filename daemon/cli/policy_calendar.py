"""`casegate policy calendar [--year 2027] [--json]`: the working calendar in force for a year.

The holidays and adjusted working days (调休) the SLA clocks count, with
their names and where they come from (an admin's holidays_file, the
chinesecalendar package, or the fallback that knows no adjusted working
days), so an admin sees before 1 January whether next year is right.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from .common import EX_OK, config_of
from ..clock import utcnow
from ..runtime.app import load_policy

SOURCES = {
    "file": "the official schedule loaded from holidays_file",
    "chinesecalendar": "the official schedule (chinesecalendar)",
    "fallback": "computed public holidays only, NO adjusted working days (调休)",
    "holidays": "computed public holidays (holidays package)",
}
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def cmd_policy_calendar(args: argparse.Namespace) -> int:
    config = config_of(args)  # the policy only: no database is opened
    calendar = load_policy(config).calendar
    today = utcnow().astimezone(calendar.tz).date()
    year = args.year or today.year
    source = calendar.coverage(year)
    warning = calendar.warning_for(year)
    warnings = [warning] if warning else []
    days = calendar.special_days(year)
    if args.json:
        data: dict[str, Any] = {
            "year": year, "source": source, "country": calendar.country, "timezone": calendar.timezone,
            "files": list(calendar.official.sources), "warnings": warnings,
            "days": [{"date": d.day.isoformat(), "weekday": _WEEKDAYS[d.day.weekday()],
                      "working": d.working, "name": d.name, "source": d.source} for d in days],
        }
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return EX_OK
    print(f"calendar {year} ({calendar.country}, {calendar.timezone}): {SOURCES.get(source, source)}")
    for f in calendar.official.sources:
        print(f"  file: {f}")
    for w in warnings:
        print(f"  WARNING: {w}")
    for d in days:
        state = "working day" if d.working else "day off"
        print(f"  {d.day.isoformat()} {_WEEKDAYS[d.day.weekday()]}  {state:<12} {d.name:<28} {d.source}")
    return EX_OK


def register_calendar(policy: Any) -> None:
    """Adds ``calendar`` to the ``casegate policy`` subcommands."""
    pc = policy.add_parser("calendar", help="holidays and adjusted working days in force for a year (no database)")
    pc.add_argument("--year", type=int, default=None, help="default: this year")
    pc.add_argument("--json", action="store_true")
    pc.set_defaults(func=cmd_policy_calendar)
