"""`casegate report [--month YYYY-MM] [--format text|html|json] [--json] [-o FILE]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..clock import utcnow
from ..timekeeping.report import compute, default_month, render
from .common import EX_OK, EX_USAGE, AddCommand, app_of


def cmd_report(args: argparse.Namespace) -> int:
    app = app_of(args)
    tz = app.config.service.timezone
    now = utcnow()
    month = args.month or default_month(now, tz)
    fmt = "json" if args.json else args.format
    try:
        with app.db.session() as s:
            data = compute(s, app.policy, month, now, tz=tz,
                           complaint_category=app.desk.settings.complaint_category)
    except ValueError as exc:
        print(f"casegate: {exc}", file=sys.stderr)
        return EX_USAGE
    finally:
        app.close()
    out = render(data, fmt)
    if args.output:
        Path(args.output).write_text(out, encoding="utf-8")
    else:
        sys.stdout.write(out)
    return EX_OK


def register(add: AddCommand) -> None:
    rp = add("report", help="monthly service report: on-time rate, resolution, satisfaction")
    rp.add_argument("--month", help="YYYY-MM (default: the previous month)")
    rp.add_argument("--format", choices=("text", "html", "json"), default="text")
    rp.add_argument("--json", action="store_true", help="same as --format json")
    rp.add_argument("--output", "-o", help="write to this file instead of standard output")
    rp.set_defaults(func=cmd_report)
