"""`casegate ignored list|show|retry`: mail that opened no case, kept whole.

Bounces, out-of-office replies, list mail from strangers, staff mail that
named no case and mail the rules route to "ignore" never become cases, but
nothing is thrown away: each is stored with its raw bytes and the reason.
After changing a rule, ``retry`` feeds them through the pipeline again.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..inbound import Inbound, Source
from .common import EX_NOTFOUND, EX_OK, AddCommand, app_of, for_terminal as safe, no_traceback
from ...storage.ignored import forget_ignored, ignored_messages, set_aside_for_retry


@no_traceback
def cmd_ignored_list(args: argparse.Namespace) -> int:
    app = app_of(args)
    with app.db.session() as s:
        rows = [{"id": m.id, "received": m.created_at.isoformat(timespec="seconds"), "from": m.from_addr,
                 "subject": m.subject, "reason": m.kind or "-", "source": m.source}
                for m in ignored_messages(s, limit=args.limit)]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return EX_OK
    if not rows:
        print("no ignored mail")
    for r in rows:
        subject = safe(" ".join(r["subject"].split()))[:60]
        print(f"{r['id']:>6} {r['received']} {safe(r['from'])[:40]:<40} {safe(r['reason'])[:30]:<30} {subject}")
    return EX_OK


@no_traceback
def cmd_ignored_show(args: argparse.Namespace) -> int:
    app = app_of(args)
    with app.db.session() as s:
        found = ignored_messages(s, [args.id], limit=1)
        if not found:
            print(f"casegate: no ignored message {args.id}", file=sys.stderr)
            return EX_NOTFOUND
        m = found[0]
        if args.raw:
            sys.stdout.buffer.write(m.raw or b"")
            return EX_OK
        text = "\n".join(safe(line, keep_tabs=True) for line in (m.new_text or m.text or "").strip()[:2000].splitlines())
        print(f"id:       {m.id}\nreceived: {m.created_at.isoformat(timespec='seconds')}\nsource:   {safe(m.source)}\n"
              f"from:     {safe(m.from_addr)}\nsubject:  {safe(' '.join(m.subject.split()))}\n"
              f"reason:   {safe(m.kind or '-')}\nrole:     {m.role or '-'}\n\n{text}")
    return EX_OK


@no_traceback
def cmd_ignored_retry(args: argparse.Namespace) -> int:
    """Ingest ignored mail again (after a rule or configuration change).

    The old row gives up its dedupe key first and is removed only after the
    new ingest stored the bytes again: a crash in between leaves the message
    twice (harmless), never not at all.
    """
    app = app_of(args)
    with app.db.session() as s:
        rows = [(m.id, m.source, m.raw) for m in ignored_messages(s, None if args.all else args.ids, limit=100_000)
                if m.raw is not None]
    if not rows:
        print("nothing to retry")
        return EX_NOTFOUND if args.ids else EX_OK
    for mid, source, raw in rows:
        with app.db.transaction() as s:
            set_aside_for_retry(s, mid)
        res = app.pipeline.ingest(Inbound(raw, Source(source, "retry")))
        with app.db.transaction() as s:
            forget_ignored(s, mid)
        print(f"{mid}\t{res.case_number or '-'}\t{res.outcome}" + (f"\t{safe(res.reason)}" if res.reason else ""))
    return EX_OK


def register(add: AddCommand) -> None:
    ig = add("ignored", help="mail that opened no case (kept whole)").add_subparsers(dest="i_cmd", required=True)
    igl = ig.add_parser("list")
    igl.add_argument("--json", action="store_true")
    igl.add_argument("--limit", type=int, default=200)
    igl.set_defaults(func=cmd_ignored_list)
    igs = ig.add_parser("show", help="one ignored message (--raw: its exact bytes)")
    igs.add_argument("id", type=int)
    igs.add_argument("--raw", action="store_true")
    igs.set_defaults(func=cmd_ignored_show)
    igr = ig.add_parser("retry", help="ingest ignored mail again (after a rule change)")
    igr.add_argument("ids", nargs="*", type=int)
    igr.add_argument("--all", action="store_true", help="every ignored message")
    igr.set_defaults(func=cmd_ignored_retry)
