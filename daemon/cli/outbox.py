"""`casegate outbox send|list`: outgoing mail and its state."""

from __future__ import annotations

import argparse
import sys

from .common import EX_OK, EX_TEMPFAIL, AddCommand, app_of, for_terminal, no_traceback
from ...storage.db import DatabaseUnavailable
from ...storage.outbox import latest_outbox


@no_traceback
def cmd_outbox_send(args: argparse.Namespace) -> int:
    app = app_of(args)
    try:
        report = app.outbox.send_due()
    except DatabaseUnavailable as exc:
        print(f"casegate: database unavailable: {exc}", file=sys.stderr)
        return EX_TEMPFAIL
    print(report)
    return EX_OK


@no_traceback
def cmd_outbox_list(args: argparse.Namespace) -> int:
    app = app_of(args)
    with app.db.session() as s:
        rows = latest_outbox(s, args.state, args.limit)
        if not rows:
            print("outbox is empty" if not args.state else f"no {args.state} messages")
        for r in rows:
            print(f"{r.id:>6} {r.state:<8} {r.kind:<10} attempts={r.attempts} to={for_terminal(r.rcpt_to)} "
                  f"next={r.next_attempt_at.isoformat(timespec='seconds')}"
                  + (f" error={for_terminal(r.last_error)}" if r.last_error else ""))
    return EX_OK


def register(add: AddCommand) -> None:
    ob = add("outbox", help="outgoing mail").add_subparsers(dest="outbox_cmd", required=True)
    obs = ob.add_parser("send", help="send what is due now")
    obs.set_defaults(func=cmd_outbox_send)
    obl = ob.add_parser("list", help="list outgoing mail and its state")
    obl.add_argument("--state", choices=["queued", "sending", "sent", "failed"])
    obl.add_argument("--limit", type=int, default=50)
    obl.set_defaults(func=cmd_outbox_list)
