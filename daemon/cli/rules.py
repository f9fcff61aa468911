"""`casegate rules check|test`: admins validate and try rule files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import EX_DATAERR, EX_NOTFOUND, EX_OK, _app, _config


def cmd_rules_check(args: argparse.Namespace) -> int:
    from ..runtime.app import rules_folder
    from ...rules import check_folder

    folder = Path(args.path) if args.path else rules_folder(_config(args))
    if not folder.exists():
        print(f"casegate: {folder}: no such rule folder or file", file=sys.stderr)
        return EX_NOTFOUND
    errors = check_folder(folder)
    for err in errors:
        print(err)
    if errors:
        print(f"# {len(errors)} error(s) in {folder}", file=sys.stderr)
        return EX_DATAERR
    print(f"{folder}: OK")
    return EX_OK


def cmd_rules_test(args: argparse.Namespace) -> int:
    from ..inbound import Source
    from ..clock import utcnow
    from ...parsers import ParseError, parse_message
    from ...rules import RuleLoadError, format_result, load_rules
    from ...storage import repository as repo

    app = _app(args)
    if args.rules:
        try:
            app.rules._current = load_rules(args.rules)  # noqa: SLF001 - try a folder without installing it
            app.rules.check_interval = float("inf")
        except RuleLoadError as exc:
            for err in exc.errors:
                print(err, file=sys.stderr)
            return EX_DATAERR
    outputs = []
    status = EX_OK
    with app.db.session() as session:
        for item in args.items:
            path = Path(item)
            if path.exists():
                raw, label, source = path.read_bytes(), item, Source("cli", "file")
            else:
                case = repo.load_case(session, item)
                first = next((m for m in case.messages if m.direction == "in" and m.raw), None) if case else None
                if first is None:
                    print(f"casegate: {item}: neither a file nor a case with a stored message", file=sys.stderr)
                    status = EX_NOTFOUND
                    continue
                raw, label, source = first.raw, item, Source(first.source, case.source_kind or "file")
            try:
                parsed = parse_message(raw)
            except ParseError as exc:
                print(f"{label}: cannot parse: {exc.reason}", file=sys.stderr)
                status = EX_DATAERR
                continue
            customer = repo.find_customer(session, "email", parsed.sender_email) if parsed.sender_email else None
            result = app.pipeline.classify(parsed, source, customer, utcnow())
            if args.json:
                outputs.append({"input": label, "subject": parsed.subject, **result.to_dict()})
            else:
                print(f"{label}: {parsed.subject}")
                for line in format_result(result).splitlines():
                    print(f"  {line}")
    if args.json:
        print(json.dumps(outputs, ensure_ascii=False, indent=2))
    return status


def register(sub: argparse._SubParsersAction) -> None:
    rules = sub.add_parser("rules", help="check and try the classification rules").add_subparsers(
        dest="rules_cmd", required=True
    )
    rc = rules.add_parser("check", help="validate rule files (file:line errors, non-zero exit)")
    rc.add_argument("path", nargs="?", help="rule folder or file (default: the configured folder)")
    rc.set_defaults(func=cmd_rules_check)
    rt = rules.add_parser("test", help="classify message files or stored cases and explain why")
    rt.add_argument("items", nargs="+", help="message files (.eml) or case numbers")
    rt.add_argument("--rules", help="try this rule folder instead of the configured one")
    rt.add_argument("--json", action="store_true")
    rt.set_defaults(func=cmd_rules_test)
