"""`casegate ingest FILE|FOLDER|-...`: messages from files or a piping MTA."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..inbound import Inbound, Source
from .common import EX_DATAERR, EX_OK, EX_TEMPFAIL, AddCommand, app_of, for_terminal, no_traceback
from ...storage.db import DatabaseUnavailable

INGEST_BATCH = 200


def iter_inputs(paths: Sequence[str]) -> Iterator[tuple[str, bytes | OSError]]:
    """(name, raw bytes) of each file named, each file below a folder named, or
    stdin for ``-``; a file that cannot be read gives its error instead."""
    for p in paths:
        if p == "-":
            yield "-", sys.stdin.buffer.read()
            continue
        path = Path(p)
        files = sorted(x for x in path.rglob("*") if x.is_file()) if path.is_dir() else [path]
        for f in files:
            try:
                yield str(f), f.read_bytes()
            except OSError as exc:
                yield str(f), exc


@no_traceback
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
            extra = f"\t{for_terminal(res.reason)}" if res.reason else ""
            print(f"{for_terminal(name)}\t{res.case_number or '-'}\t{res.outcome}{extra}", flush=True)
        batch.clear()

    unreadable = 0
    try:
        for name, raw in iter_inputs(args.files):
            if isinstance(raw, OSError):  # bad input: said, counted, and the rest goes on
                unreadable += 1
                print(f"{for_terminal(name)}\t-\tunreadable\t{for_terminal(raw.strerror or raw)}", flush=True)
                continue
            batch.append((name, raw))
            if len(batch) >= INGEST_BATCH:
                flush()
        if batch:
            flush()
    except DatabaseUnavailable as exc:
        print(f"casegate: database unavailable, nothing from this batch was stored: {exc}", file=sys.stderr)
        return EX_TEMPFAIL
    if unreadable:
        counts["unreadable"] = unreadable
    if args.send:
        print(f"outbox: {app.outbox.send_due()}", file=sys.stderr)
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    print(f"# {summary or 'nothing ingested'}", file=sys.stderr)
    return EX_DATAERR if unreadable else EX_OK


def register(add: AddCommand) -> None:
    ing = add("ingest", help="ingest message files (or - for stdin)")
    ing.add_argument("--source", help="source name recorded on each message (default: cli)")
    ing.add_argument("--send", action="store_true", help="send due outbox mail afterwards")
    ing.add_argument("files", nargs="+", help="message files or folders; - reads one message from stdin")
    ing.set_defaults(func=cmd_ingest)
