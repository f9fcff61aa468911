"""`casegate ingest FILE|FOLDER|-...`: messages from files or a piping MTA."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..inbound import Inbound, Source
from .common import EX_NOTFOUND, EX_OK, EX_TEMPFAIL, AddCommand, app_of
from ...storage.db import DatabaseUnavailable

INGEST_BATCH = 200


def iter_inputs(paths: Sequence[str]) -> Iterator[tuple[str, bytes]]:
    """(name, raw bytes) of each file named, each file below a folder named, or stdin for ``-``."""
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
    try:
        app = app_of(args)
    except DatabaseUnavailable as exc:
        print(f"casegate: database unavailable, nothing was stored: {exc}", file=sys.stderr)
        return EX_TEMPFAIL
    source_name = args.source or "cli"
    batch: list[tuple[str, bytes]] = []
    counts: dict[str, int] = {}

    def flush() -> None:
        items = [Inbound(raw, Source(source_name, "stdin" if name == "-" else "file")) for name, raw in batch]
        for (name, _raw), res in zip(batch, app.pipeline.ingest_batch(items)):
            counts[res.outcome] = counts.get(res.outcome, 0) + 1
            extra = f"\t{res.reason}" if res.reason else ""
            print(f"{name}\t{res.case_number or '-'}\t{res.outcome}{extra}", flush=True)
        batch.clear()

    try:
        for name, raw in iter_inputs(args.files):
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


def register(add: AddCommand) -> None:
    ing = add("ingest", help="ingest message files (or - for stdin)")
    ing.add_argument("--source", help="source name recorded on each message (default: cli)")
    ing.add_argument("--send", action="store_true", help="send due outbox mail afterwards")
    ing.add_argument("files", nargs="+", help="message files or folders; - reads one message from stdin")
    ing.set_defaults(func=cmd_ingest)
