"""`casegate run` and `casegate status`."""

from __future__ import annotations

import argparse
import json
import logging
from datetime import datetime

from ..clock import utcnow
from ..runtime import logsetup
from ..runtime.runner import effective_sources, run_daemon
from .common import EX_OK, EX_TEMPFAIL, AddCommand, app_of, config_of
from ...storage.db import DatabaseUnavailable
from ...storage.outbox import outbox_counts
from ...storage.quarantine import count_quarantined
from ...storage.source_state import source_states


def cmd_run(args: argparse.Namespace) -> int:
    config = config_of(args)
    logsetup.configure(config.logging, args.log_level)
    try:
        return run_daemon(config, args.config)
    except DatabaseUnavailable as exc:
        logging.getLogger("casegate.daemon").error("database unavailable at start: %s", exc)
        return EX_TEMPFAIL


def ago(dt: datetime | None) -> str:
    if dt is None:
        return "never"
    secs = int((utcnow() - dt).total_seconds())
    if secs < 120:
        return f"{secs}s ago"
    if secs < 7200:
        return f"{secs // 60}m ago"
    return f"{secs // 3600}h ago"


def cmd_status(args: argparse.Namespace) -> int:
    app = app_of(args)
    with app.db.session() as s:
        states = source_states(s)
        outbox = outbox_counts(s)
        quarantined = count_quarantined(s)
    sources = [(src, states.get(src.name)) for src in effective_sources(app.config)]
    calendar = app.policy.calendar
    today = app.clock().astimezone(calendar.tz).date()
    cal = {"years": {str(y): calendar.coverage(y) for y in (today.year, today.year + 1)},
           "files": list(calendar.official.sources), "warnings": calendar.warnings(today)}
    if args.json:
        rows = [{
            "name": src.name, "kind": src.kind,
            "last_poll": st.last_poll_at.isoformat() if st and st.last_poll_at else None,
            "ingested": st.ingested if st else 0,
            "last_error": st.last_error if st else None,
            "last_error_at": st.last_error_at.isoformat() if st and st.last_error_at else None,
        } for src, st in sources]
        print(json.dumps({"sources": rows, "outbox": outbox, "quarantined": quarantined, "calendar": cal},
                         ensure_ascii=False, indent=2))
        return EX_OK
    print(f"{'SOURCE':<16} {'KIND':<6} {'LAST POLL':<12} {'INGESTED':>9}  LAST ERROR")
    for src, st in sources:
        err = f"{st.last_error} ({ago(st.last_error_at)})" if st and st.last_error else "-"
        print(f"{src.name:<16} {src.kind:<6} {ago(st.last_poll_at if st else None):<12} {st.ingested if st else 0:>9}  {err}")
    depth = outbox.get("queued", 0) + outbox.get("sending", 0)
    print(f"\noutbox: {depth} waiting, {outbox.get('sent', 0)} sent, {outbox.get('failed', 0)} failed"
          f"{'  (see: casegate outbox list --state failed)' if outbox.get('failed') else ''}")
    print(f"quarantine: {quarantined} message(s){'  (see: casegate quarantine list)' if quarantined else ''}")
    print("calendar: " + ", ".join(f"{y} {src}" for y, src in cal["years"].items())
          + "  (see: casegate policy calendar --year YYYY)")
    for warning in cal["warnings"]:
        print(f"WARNING {warning}")
    return EX_OK


def register(add: AddCommand) -> None:
    run = add("run", help="run the daemon (sources, outbox, scheduler)")
    run.set_defaults(func=cmd_run)
    st = add("status", help="per source: last poll, last error, ingested; outbox depth")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)
