"""`casegate cases list|show`: the cases, as operators and scripts read them."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from .common import EX_NOTFOUND, EX_OK, AddCommand, app_of, case_or_say, for_terminal as safe, no_traceback
from .timeline import register_timeline
from ...storage import repository as repo
from ...storage.models import Case


def case_dict(case: Case, full: bool) -> dict[str, Any]:
    """The case as JSON data (``--json``); ``full`` adds its messages and events."""
    cust = case.customer
    out: dict[str, Any] = {
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
    if full:  # the customer master data the case names (issue 15)
        out["customer"]["id"] = (cust.external_id or str(cust.id)) if cust else None
        out["person"] = case.person.name if case.person else None
        p, k = case.product, case.contract
        out["product"] = {"serial": p.serial, "model": p.model, "version": p.version, "site": p.site,
                          "warranty_end": p.warranty_end.isoformat() if p.warranty_end else None,
                          "vendor": p.vendor} if p else None
        out["contract"] = {"id": k.external_id, "level": k.level} if k else None
        out["messages"] = [
            {
                "direction": m.direction,
                "message_id": m.message_id,
                "from": m.from_addr,
                "from_name": m.from_name,
                "subject": m.subject,
                "date": m.date.isoformat() if m.date else None,
                "text": m.text,
                "new_text": m.new_text,
                "role": m.role,
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
        # The support activities (#call, #onsite, #equipment) with the time each took.
        out["activities"] = [
            {"at": e["at"], "by": e["actor"], "kind": e["detail"].get("activity"),
             "minutes": int(e["detail"].get("minutes", 0)), "text": e["new"] or ""}
            for e in out["events"] if e["action"] == "activity" and e["detail"]
        ]
    return out


@no_traceback
def cmd_cases_list(args: argparse.Namespace) -> int:
    app = app_of(args)
    with app.db.session() as s:
        cases = repo.list_cases(s, status=args.status, limit=args.limit)
        rows = [case_dict(c, full=False) for c in cases]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return EX_OK
    if not rows:
        print("no cases")
        return EX_OK
    print(f"{'NUMBER':<18} {'STATUS':<9} {'PRI':<4} {'QUEUE':<12} {'CUSTOMER':<28} SUBJECT")
    for r in rows:
        who = safe(r["customer"]["email"] or "-")
        print(f"{r['number']:<18} {r['status']:<9} {r['priority']:<4} {safe(r['queue']):<12} {who[:28]:<28} "
              f"{safe(r['subject'])[:60]}")
    return EX_OK


@no_traceback
def cmd_cases_show(args: argparse.Namespace) -> int:
    app = app_of(args)
    with app.db.session() as s:
        case = case_or_say(s, args.number)
        if case is None:
            return EX_NOTFOUND
        data = case_dict(case, full=True)
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return EX_OK
    c = data["customer"]
    print(f"{data['number']}  {safe(data['subject'])}")
    print(f"  status {data['status']}, priority {data['priority']}, category {safe(data['category'])}, "
          f"queue {safe(data['queue'])}, route {safe(data['route'])}, language {data['language']}")
    print(f"  customer {safe(c['name'])} <{safe(c['email'])}>  assignee {safe(data['assignee'] or '-')}")
    if data["product"] or data["contract"]:
        p, k = data["product"] or {}, data["contract"] or {}
        print(f"  customer {safe(c['id'])}, person {safe(data['person'] or '-')}, product {safe(p.get('serial', '-'))} "
              f"{safe(p.get('model', ''))} {safe(p.get('version', ''))}, warranty until {p.get('warranty_end') or '-'}, "
              f"contract {safe(k.get('id', '-'))} {safe(k.get('level') or '')}")
    tz = app.config.service.timezone  # people read times in the service's zone, not UTC
    print(f"  opened {local(data['opened_at'], tz)}")
    for m in data["messages"]:
        role = f" ({m['role']})" if m["role"] else ""
        print(f"\n--- {m['direction']} {local(m['date'], tz)} from {safe(m['from'])}{role}  <{safe(m['message_id'])}>")
        print(f"    {safe(m['subject'])}")
        for line in (m["text"] or "").strip().splitlines()[:40]:
            print(f"    | {safe(line, keep_tabs=True)}")
        for a in m["attachments"]:
            print(f"    [attachment] {safe(a['filename'])} ({safe(a['content_type'])}, {a['size']} bytes)")
    print("\nevents:")
    for e in data["events"]:
        change = f"{e['old'] or ''} -> {e['new'] or ''}" if e["old"] else (e["new"] or "")
        if e["action"] == "activity":  # a support activity: what kind, how long, what was done
            change = f"{e['detail']['activity']} {say_minutes(e['detail']['minutes'])}: {e['new'] or ''}"
        print(f"  {local(e['at'], tz)}  {safe(e['actor']):<24} {e['action']:<16} {safe(change)}")
    if data["activities"]:
        total = sum(a["minutes"] for a in data["activities"])
        kinds = sorted({a["kind"] for a in data["activities"]})
        per = ", ".join(f"{k} {sum(1 for a in data['activities'] if a['kind'] == k)}" for k in kinds)
        print(f"\nactivities: {per}; time spent {say_minutes(total)}")
    return EX_OK


def local(iso: str | None, tz: str) -> str:
    """An ISO 8601 instant as the service's local time with its offset ("2026-10-09 20:00 +0800")."""
    if not iso:
        return ""
    return datetime.fromisoformat(iso).astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %z")


def say_minutes(minutes: int) -> str:
    """90 -> "1h30m", 20 -> "20m"."""
    h, m = divmod(int(minutes), 60)
    return f"{h}h{m:02d}m" if h else f"{m}m"


def register(add: AddCommand) -> None:
    cases = add("cases", help="list and show cases").add_subparsers(dest="cases_cmd", required=True)
    cl = cases.add_parser("list", help="list cases, newest first")
    cl.add_argument("--json", action="store_true")
    cl.add_argument("--status")
    cl.add_argument("--limit", type=int, default=200)
    cl.set_defaults(func=cmd_cases_list)
    cs = cases.add_parser("show", help="show one case with its messages and events")
    cs.add_argument("number")
    cs.add_argument("--json", action="store_true")
    cs.set_defaults(func=cmd_cases_show)
    register_timeline(cases)
