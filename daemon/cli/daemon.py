"""`casegate run` and `casegate status`."""

from __future__ import annotations

import argparse
import logging
from datetime import datetime, timezone

from . import EX_OK, EX_TEMPFAIL, _config

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def cmd_run(args: argparse.Namespace) -> int:
    from ..runtime.runner import run_daemon
    from ...storage.db import DatabaseUnavailable

    config = _config(args)
    logging.basicConfig(level=(args.log_level or config.logging.level).upper(), format=LOG_FORMAT,
                        datefmt="%Y-%m-%dT%H:%M:%S%z")
    # aiosmtpd logs every SMTP command at INFO; keep its warnings only.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # one line per sweep otherwise
    try:
        return run_daemon(config, args.config)
    except DatabaseUnavailable as exc:
        logging.getLogger("casegate.daemon").error("database unavailable at start: %s", exc)
        return EX_TEMPFAIL


def _ago(dt: datetime | None) -> str:
    if dt is None:
        return "never"
    secs = int((datetime.now(timezone.utc) - dt).total_seconds())
    if secs < 120:
        return f"{secs}s ago"
    if secs < 7200:
        return f"{secs // 60}m ago"
    return f"{secs // 3600}h ago"


def cmd_status(args: argparse.Namespace) -> int:
    import json

    from sqlalchemy import func, select

    from ..runtime.app import App
    from ..runtime.runner import effective_sources
    from ...storage.models import OutboxMessage, Quarantine, SourceState

    config = _config(args)
    app = App(config)
    with app.db.session() as s:
        states = {r.name: r for r in s.execute(select(SourceState)).scalars()}
        outbox = dict(s.execute(select(OutboxMessage.state, func.count()).group_by(OutboxMessage.state)).all())
        quarantined = s.execute(select(func.count(Quarantine.id))).scalar_one()
    rows = []
    for src in effective_sources(config):
        st = states.get(src.name)
        rows.append({
            "name": src.name, "kind": src.kind,
            "last_poll": st.last_poll_at.isoformat() if st and st.last_poll_at else None,
            "ingested": st.ingested if st else 0,
            "last_error": st.last_error if st else None,
            "last_error_at": st.last_error_at.isoformat() if st and st.last_error_at else None,
        })
    if args.json:
        print(json.dumps({"sources": rows, "outbox": outbox, "quarantined": quarantined}, ensure_ascii=False, indent=2))
        return EX_OK
    print(f"{'SOURCE':<16} {'KIND':<6} {'LAST POLL':<12} {'INGESTED':>9}  LAST ERROR")
    for r in rows:
        st = states.get(r["name"])
        err = f"{r['last_error']} ({_ago(st.last_error_at)})" if st and st.last_error else "-"
        print(f"{r['name']:<16} {r['kind']:<6} {_ago(st.last_poll_at if st else None):<12} {r['ingested']:>9}  {err}")
    depth = outbox.get("queued", 0) + outbox.get("sending", 0)
    print(f"\noutbox: {depth} waiting, {outbox.get('sent', 0)} sent, {outbox.get('failed', 0)} failed"
          f"{'  (see: casegate outbox list --state failed)' if outbox.get('failed') else ''}")
    print(f"quarantine: {quarantined} message(s){'  (see: casegate quarantine list)' if quarantined else ''}")
    return EX_OK


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run the daemon (sources, outbox, scheduler)")
    run.set_defaults(func=cmd_run)
    st = sub.add_parser("status", help="per source: last poll, last error, ingested; outbox depth")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)
