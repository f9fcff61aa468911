"""`casegate report [--month YYYY-MM] [--format text|html|json] [--json] [-o FILE]`;
with ``--customer ID [--quarter 2026Q4 | --month YYYY-MM] [--lang zh|en]`` one customer's statistics."""

from __future__ import annotations

import argparse
import sys
from zoneinfo import ZoneInfo

from ..clock import utcnow
from ..timekeeping.customers import compute_customer, previous_quarter, render_customer
from ..timekeeping.report import compute, default_month, render
from .common import EX_NOTFOUND, EX_OK, EX_USAGE, AddCommand, app_of, emit, for_terminal
from ...storage.customers import find_customer_ref


def cmd_report(args: argparse.Namespace) -> int:
    if args.quarter and not args.customer:
        print("casegate: --quarter needs --customer (the monthly report is per month)", file=sys.stderr)
        return EX_USAGE
    app = app_of(args)
    tz = app.config.service.timezone
    now = utcnow()
    fmt = "json" if args.json else args.format
    category = app.desk.settings.complaint_category
    try:
        with app.db.session() as s:
            if not args.customer:
                out = render(compute(s, app.policy, args.month or default_month(now, tz), now, tz=tz,
                                     complaint_category=category), fmt)
            elif (customer := find_customer_ref(s, args.customer)) is None:
                print(f"casegate: no customer {for_terminal(args.customer)}", file=sys.stderr)
                return EX_NOTFOUND
            else:  # one customer's statistics, by default of the previous quarter
                period = args.quarter or args.month or previous_quarter(now.astimezone(ZoneInfo(tz)).date())
                data = compute_customer(s, app.policy, customer, period, now, tz=tz, complaint_category=category)
                out = render_customer(data, fmt, args.lang or app.config.service.default_language)
    except ValueError as exc:
        print(f"casegate: {exc}", file=sys.stderr)
        return EX_USAGE
    finally:
        app.close()
    emit(out, args.output)
    return EX_OK


def register(add: AddCommand) -> None:
    rp = add("report", help="monthly service report: on-time rate, resolution, satisfaction")
    rp.add_argument("--month", help="YYYY-MM (default: the previous month)")
    rp.add_argument("--customer", help="one customer's statistics (its external ID)")
    rp.add_argument("--quarter", help="with --customer: 2026Q4 (default: the previous quarter)")
    rp.add_argument("--lang", choices=("zh", "en"), help="with --customer: the language of text and HTML")
    rp.add_argument("--format", choices=("text", "html", "json"), default="text")
    rp.add_argument("--json", action="store_true", help="same as --format json")
    rp.add_argument("--output", "-o", help="write to this file instead of standard output")
    rp.set_defaults(func=cmd_report)
