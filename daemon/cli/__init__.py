"""The ``casegate`` command line.

Exit codes follow sysexits(3) where an MTA or a script acts on them:
75 (EX_TEMPFAIL) when the database is unreachable, so a piping MTA retries
and nothing is lost; 78 (EX_CONFIG) for a bad configuration; 65 (EX_DATAERR)
for bad rule files; 1 for "not found".
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..config import Config, ConfigError, load_config

EX_OK = 0
EX_NOTFOUND = 1
EX_USAGE = 64
EX_DATAERR = 65
EX_TEMPFAIL = 75
EX_CONFIG = 78

INGEST_BATCH = 200


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def _app(args: argparse.Namespace):
    from ..runtime.app import App

    return App(_config(args))


# ------------------------------------------------------------------ ingest


def _iter_inputs(paths: Sequence[str]) -> Iterator[tuple[str, bytes]]:
    for p in paths:
        if p == "-":
            yield "-", sys.stdin.buffer.read()
            continue
        path = Path(p)
        if path.is_dir():
            for f in sorted(x for x in path.rglob("*") if x.is_file()):
                yield str(f), f.read_bytes()
        else:
            yield p, path.read_bytes()


def cmd_ingest(args: argparse.Namespace) -> int:
    from ..inbound import Inbound, Source
    from ...storage.db import DatabaseUnavailable

    try:
        app = _app(args)
    except DatabaseUnavailable as exc:
        print(f"casegate: database unavailable, nothing was stored: {exc}", file=sys.stderr)
        return EX_TEMPFAIL
    source_name = args.source or "cli"
    batch: list[tuple[str, bytes]] = []
    counts: dict[str, int] = {}

    def flush() -> None:
        items = []
        for name, raw in batch:
            kind = "stdin" if name == "-" else "file"
            items.append(Inbound(raw, Source(source_name, kind)))
        for (name, _raw), res in zip(batch, app.pipeline.ingest_batch(items)):
            counts[res.outcome] = counts.get(res.outcome, 0) + 1
            extra = f"\t{res.reason}" if res.reason else ""
            print(f"{name}\t{res.case_number or '-'}\t{res.outcome}{extra}", flush=True)
        batch.clear()

    try:
        for name, raw in _iter_inputs(args.files):
            batch.append((name, raw))
            if len(batch) >= INGEST_BATCH:
                flush()
        if batch:
            flush()
    except DatabaseUnavailable as exc:
        print(f"casegate: database unavailable, nothing from this batch was stored: {exc}", file=sys.stderr)
        return EX_TEMPFAIL
    except OSError as exc:
        print(f"casegate: {exc}", file=sys.stderr)
        return EX_NOTFOUND
    if args.send:
        print(f"outbox: {app.outbox.send_due()}", file=sys.stderr)
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    print(f"# {summary or 'nothing ingested'}", file=sys.stderr)
    return EX_OK


# ------------------------------------------------------------------ cases


def _case_dict(case, full: bool) -> dict:
    cust = case.customer
    out = {
        "number": case.number,
        "subject": case.subject,
        "status": case.status,
        "priority": case.priority,
        "category": case.category,
        "queue": case.queue,
        "route": case.route,
        "language": case.language,
        "assignee": case.assignee,
        "opened_at": case.opened_at.isoformat(),
        "customer": {
            "name": cust.name if cust else None,
            "email": cust.contact("email") if cust else None,
            "company": cust.company if cust else None,
        },
    }
    if full:
        out["messages"] = [
            {
                "direction": m.direction,
                "message_id": m.message_id,
                "from": m.from_addr,
                "from_name": m.from_name,
                "subject": m.subject,
                "date": m.date.isoformat() if m.date else None,
                "text": m.text,
                "attachments": [
                    {"filename": a.filename, "content_type": a.content_type, "size": a.size}
                    for a in m.attachments
                ],
            }
            for m in case.messages
        ]
        out["events"] = [
            {"at": e.at.isoformat(), "actor": e.actor, "action": e.action, "old": e.old, "new": e.new,
             "detail": json.loads(e.detail) if e.detail else None}
            for e in case.events
        ]
    return out


def cmd_cases_list(args: argparse.Namespace) -> int:
    from ...storage import repository as repo

    app = _app(args)
    with app.db.session() as s:
        cases = repo.list_cases(s, status=args.status, limit=args.limit)
        rows = [_case_dict(c, full=False) for c in cases]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return EX_OK
    if not rows:
        print("no cases")
        return EX_OK
    print(f"{'NUMBER':<18} {'STATUS':<9} {'PRI':<4} {'QUEUE':<12} {'CUSTOMER':<28} SUBJECT")
    for r in rows:
        who = r["customer"]["email"] or "-"
        print(f"{r['number']:<18} {r['status']:<9} {r['priority']:<4} {r['queue']:<12} {who[:28]:<28} {r['subject'][:60]}")
    return EX_OK


def cmd_cases_show(args: argparse.Namespace) -> int:
    from ...storage import repository as repo

    app = _app(args)
    with app.db.session() as s:
        case = repo.load_case(s, args.number)
        if case is None:
            print(f"casegate: no case {args.number}", file=sys.stderr)
            return EX_NOTFOUND
        data = _case_dict(case, full=True)
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return EX_OK
    c = data["customer"]
    print(f"{data['number']}  {data['subject']}")
    print(f"  status {data['status']}, priority {data['priority']}, category {data['category']}, "
          f"queue {data['queue']}, route {data['route']}, language {data['language']}")
    print(f"  customer {c['name']} <{c['email']}>  assignee {data['assignee'] or '-'}")
    for m in data["messages"]:
        print(f"\n--- {m['direction']} {m['date'] or ''} from {m['from']}  <{m['message_id']}>")
        print(f"    {m['subject']}")
        for line in (m["text"] or "").strip().splitlines()[:40]:
            print(f"    | {line}")
        for a in m["attachments"]:
            print(f"    [attachment] {a['filename']} ({a['content_type']}, {a['size']} bytes)")
    print("\nevents:")
    for e in data["events"]:
        change = f"{e['old'] or ''} -> {e['new'] or ''}" if e["old"] else (e["new"] or "")
        print(f"  {e['at']}  {e['actor']:<24} {e['action']:<16} {change}")
    return EX_OK


# ------------------------------------------------------------------ outbox / quarantine


def cmd_outbox_send(args: argparse.Namespace) -> int:
    from ...storage.db import DatabaseUnavailable

    app = _app(args)
    try:
        report = app.outbox.send_due()
    except DatabaseUnavailable as exc:
        print(f"casegate: database unavailable: {exc}", file=sys.stderr)
        return EX_TEMPFAIL
    print(report)
    return EX_OK


def cmd_outbox_list(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from ...storage.models import OutboxMessage

    app = _app(args)
    with app.db.session() as s:
        stmt = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(args.limit)
        if args.state:
            stmt = stmt.where(OutboxMessage.state == args.state)
        rows = list(s.execute(stmt).scalars())
        if not rows:
            print("outbox is empty" if not args.state else f"no {args.state} messages")
        for r in rows:
            print(f"{r.id:>6} {r.state:<8} {r.kind:<10} attempts={r.attempts} to={r.rcpt_to} "
                  f"next={r.next_attempt_at.isoformat(timespec='seconds')}"
                  + (f" error={r.last_error}" if r.last_error else ""))
    return EX_OK


def cmd_quarantine_list(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from ...storage.models import Quarantine

    app = _app(args)
    with app.db.session() as s:
        rows = list(s.execute(select(Quarantine).order_by(Quarantine.id)).scalars())
        if not rows:
            print("quarantine is empty")
        for q in rows:
            print(f"{q.id:>6} {q.created_at.isoformat(timespec='seconds')} {q.source:<12} {len(q.raw):>8} bytes  {q.error}")
    return EX_OK


def cmd_quarantine_retry(args: argparse.Namespace) -> int:
    """Feed quarantined messages through the pipeline again (after a fix).

    A message that now goes through leaves quarantine (its raw bytes live on
    in the stored message); one that fails again stays, with its new reason.
    """
    from sqlalchemy import select

    from ..inbound import Inbound, Source
    from ...storage.models import Quarantine

    app = _app(args)
    with app.db.session() as s:
        stmt = select(Quarantine).order_by(Quarantine.id)
        if not args.all:
            stmt = stmt.where(Quarantine.id.in_(args.ids))
        rows = [(q.id, q.source, q.raw) for q in s.execute(stmt).scalars()]
    if not rows:
        print("nothing to retry")
        return EX_NOTFOUND if args.ids else EX_OK
    # Ingest first, remove from quarantine after: a crash in between leaves
    # the message in both places (harmless), never in neither.
    still_failing = 0
    for qid, source, raw in rows:
        res = app.pipeline.ingest(Inbound(raw, Source(source, "retry")))
        with app.db.transaction() as s:
            row = s.get(Quarantine, qid)
            if res.outcome != "quarantined":
                s.delete(row)
            else:
                row.error = res.reason  # today's reason
                still_failing += 1
        print(f"{qid}\t{res.case_number or '-'}\t{res.outcome}" + (f"\t{res.reason}" if res.reason else ""))
    return EX_DATAERR if still_failing else EX_OK


def cmd_quarantine_export(args: argparse.Namespace) -> int:
    from ...storage.models import Quarantine

    app = _app(args)
    with app.db.session() as s:
        q = s.get(Quarantine, args.id)
        if q is None:
            print(f"casegate: no quarantined message {args.id}", file=sys.stderr)
            return EX_NOTFOUND
        sys.stdout.buffer.write(q.raw)
    return EX_OK


# ------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="casegate", description="Support cases from e-mail and fax.")
    p.add_argument("--config", "-c", help="configuration file (default: $CASEGATE_CONFIG, ./casegate.toml, embedded defaults)")
    p.add_argument("--log-level", default=None, help="override logging.level")
    sub = p.add_subparsers(dest="command", required=True)

    ing = sub.add_parser("ingest", help="ingest message files (or - for stdin)")
    ing.add_argument("--source", help="source name recorded on each message (default: cli)")
    ing.add_argument("--send", action="store_true", help="send due outbox mail afterwards")
    ing.add_argument("files", nargs="+", help="message files or folders; - reads one message from stdin")
    ing.set_defaults(func=cmd_ingest)

    cases = sub.add_parser("cases", help="list and show cases").add_subparsers(dest="cases_cmd", required=True)
    cl = cases.add_parser("list", help="list cases, newest first")
    cl.add_argument("--json", action="store_true")
    cl.add_argument("--status")
    cl.add_argument("--limit", type=int, default=200)
    cl.set_defaults(func=cmd_cases_list)
    cs = cases.add_parser("show", help="show one case with its messages and events")
    cs.add_argument("number")
    cs.add_argument("--json", action="store_true")
    cs.set_defaults(func=cmd_cases_show)

    ob = sub.add_parser("outbox", help="outgoing mail").add_subparsers(dest="outbox_cmd", required=True)
    obs = ob.add_parser("send", help="send what is due now")
    obs.set_defaults(func=cmd_outbox_send)
    obl = ob.add_parser("list", help="list outgoing mail and its state")
    obl.add_argument("--state", choices=["queued", "sending", "sent", "failed"])
    obl.add_argument("--limit", type=int, default=50)
    obl.set_defaults(func=cmd_outbox_list)

    qu = sub.add_parser("quarantine", help="messages that could not be ingested").add_subparsers(dest="q_cmd", required=True)
    qul = qu.add_parser("list")
    qul.set_defaults(func=cmd_quarantine_list)
    qur = qu.add_parser("retry", help="ingest quarantined messages again (after a fix)")
    qur.add_argument("ids", nargs="*", type=int)
    qur.add_argument("--all", action="store_true", help="every quarantined message")
    qur.set_defaults(func=cmd_quarantine_retry)
    que = qu.add_parser("export", help="write the raw bytes of one quarantined message to stdout")
    que.add_argument("id", type=int)
    que.set_defaults(func=cmd_quarantine_export)

    for register in _extensions():
        register(sub)
    return p


def _extensions():
    """Subcommands defined next to the code they drive (run, status, rules)."""
    from . import daemon, report, rules, staff

    return [daemon.register, rules.register, staff.register, report.register]


def main(argv: Sequence[str] | None = None) -> int:
    from ...storage.db import DatabaseUnavailable

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "run":  # the daemon configures logging from its config
        logging.basicConfig(level=(args.log_level or "WARNING").upper(),
                            format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"casegate: configuration error: {exc}", file=sys.stderr)
        return EX_CONFIG
    except DatabaseUnavailable as exc:  # any command, e.g. at App() start-up (migrate)
        print(f"casegate: database unavailable: {exc}", file=sys.stderr)
        return EX_TEMPFAIL
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EX_OK


if __name__ == "__main__":
    sys.exit(main())
