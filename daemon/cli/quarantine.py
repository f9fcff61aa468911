"""`casegate quarantine list|retry|export`: messages that could not be ingested."""

from __future__ import annotations

import argparse
import sys

from ..inbound import Inbound, Source
from .common import EX_DATAERR, EX_NOTFOUND, EX_OK, AddCommand, app_of, for_terminal, no_traceback
from ...storage.quarantine import note_quarantine_reason, quarantined, quarantined_message, release_quarantined


@no_traceback
def cmd_quarantine_list(args: argparse.Namespace) -> int:
    app = app_of(args)
    with app.db.session() as s:
        rows = quarantined(s)
        if not rows:
            print("quarantine is empty")
        for q in rows:
            print(f"{q.id:>6} {q.created_at.isoformat(timespec='seconds')} {for_terminal(q.source):<12} {len(q.raw):>8} bytes  "
                  f"{for_terminal(q.error)}")
    return EX_OK


@no_traceback
def cmd_quarantine_retry(args: argparse.Namespace) -> int:
    """Feed quarantined messages through the pipeline again (after a fix).

    A message that now goes through leaves quarantine (its raw bytes live on
    in the stored message); one that fails again stays, with its new reason.
    """
    app = app_of(args)
    with app.db.session() as s:
        rows = [(q.id, q.source, q.raw) for q in quarantined(s, None if args.all else args.ids)]
    if not rows:
        print("nothing to retry")
        return EX_NOTFOUND if args.ids else EX_OK
    # Ingest first, remove from quarantine after: a crash in between leaves
    # the message in both places (harmless), never in neither.
    still_failing = 0
    for qid, source, raw in rows:
        res = app.pipeline.ingest(Inbound(raw, Source(source, "retry")))
        with app.db.transaction() as s:
            if res.outcome != "quarantined":
                release_quarantined(s, qid)
            else:
                note_quarantine_reason(s, qid, res.reason)  # today's reason
                still_failing += 1
        print(f"{qid}\t{res.case_number or '-'}\t{res.outcome}" + (f"\t{for_terminal(res.reason)}" if res.reason else ""))
    return EX_DATAERR if still_failing else EX_OK


@no_traceback
def cmd_quarantine_export(args: argparse.Namespace) -> int:
    app = app_of(args)
    with app.db.session() as s:
        q = quarantined_message(s, args.id)
        if q is None:
            print(f"casegate: no quarantined message {args.id}", file=sys.stderr)
            return EX_NOTFOUND
        sys.stdout.buffer.write(q.raw)
    return EX_OK


def register(add: AddCommand) -> None:
    qu = add("quarantine", help="messages that could not be ingested").add_subparsers(dest="q_cmd", required=True)
    qul = qu.add_parser("list")
    qul.set_defaults(func=cmd_quarantine_list)
    qur = qu.add_parser("retry", help="ingest quarantined messages again (after a fix)")
    qur.add_argument("ids", nargs="*", type=int)
    qur.add_argument("--all", action="store_true", help="every quarantined message")
    qur.set_defaults(func=cmd_quarantine_retry)
    que = qu.add_parser("export", help="write the raw bytes of one quarantined message to stdout")
    que.add_argument("id", type=int)
    que.set_defaults(func=cmd_quarantine_export)
