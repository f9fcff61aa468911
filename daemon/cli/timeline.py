"""`casegate cases timeline NUMBER` and `casegate policy plan`: a case's clock, past and pending,
and the admin's dry run of the policy for a case that would be opened at a given time."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from .common import EX_NOTFOUND, EX_OK, AddCommand, app_of, case_or_say, config_of
from .policy_calendar import register_calendar
from ..runtime.app import load_policy
from ..timekeeping import lifecycle
from ..timekeeping.policy import PRIORITIES

EX_USAGE = 64


def _print(rows: list[dict[str, Any]], tz: str, as_json: bool) -> None:
    if as_json:
        print(lifecycle.dump([{k: r[k] for k in ("kind", "due", "state", "to", "reason")} for r in rows], tz))
        return
    for r in rows:
        due = r["due"].astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %z")
        print(f"{due}  {r['kind']:<15} {r['state']:<9} {r['to'][:30]:<30} {r['reason']}")


def cmd_timeline(args: argparse.Namespace) -> int:
    app = app_of(args)
    with app.db.session() as s:
        case = case_or_say(s, args.number)
        if case is None:
            return EX_NOTFOUND
        rows = lifecycle.timeline(s, case)
    _print(rows, app.config.service.timezone, args.json)
    return EX_OK


def cmd_policy_plan(args: argparse.Namespace) -> int:
    config = config_of(args)  # the policy only: no database is opened
    policy = load_policy(config)
    tz = config.service.timezone
    try:
        opened = datetime.fromisoformat(args.opened)
    except ValueError:
        print(f"casegate: --opened: expected ISO 8601 such as 2026-10-09T20:00+08:00, got {args.opened!r}",
              file=sys.stderr)
        return EX_USAGE
    if opened.tzinfo is None:
        opened = opened.replace(tzinfo=ZoneInfo(tz))
    if args.kind and args.kind not in policy.kinds:
        print(f"casegate: --kind: unknown kind {args.kind!r} (known: {', '.join(policy.kinds)})", file=sys.stderr)
        return EX_USAGE
    if args.contract is not None:
        if args.contract.lower() not in policy.contract_levels:
            known = ", ".join(policy.contract_levels) or "none configured: [policy.contract_levels.<level>]"
            print(f"casegate: --contract: no contract level {args.contract!r} (known: {known})", file=sys.stderr)
            return EX_USAGE
        policy = policy.for_contract(args.contract.lower())
    rows = lifecycle.planned_as_dicts(lifecycle.dry_run(policy, args.priority, opened, args.kind))
    _print(rows, tz, args.json)
    return EX_OK


def register_timeline(cases: Any) -> None:
    """Adds ``timeline`` to the ``casegate cases`` subcommands."""
    ct = cases.add_parser("timeline", help="every timer of a case, past and pending")
    ct.add_argument("number")
    ct.add_argument("--json", action="store_true")
    ct.set_defaults(func=cmd_timeline)


def register(add: AddCommand) -> None:
    policy = add("policy", help="the SLA policy").add_subparsers(dest="policy_cmd", required=True)
    pp = policy.add_parser("plan", help="the timers a case opened then would get (a dry run, no database)")
    pp.add_argument("--priority", required=True, choices=PRIORITIES)
    pp.add_argument("--opened", required=True, help="ISO 8601, e.g. 2026-10-09T20:00+08:00")
    pp.add_argument("--kind", default=None, help="fault (default), complaint, feature, ...")
    pp.add_argument("--contract", default=None, help="a contract level of [policy.contract_levels], e.g. gold")
    pp.add_argument("--json", action="store_true")
    pp.set_defaults(func=cmd_policy_plan)
    register_calendar(policy)
