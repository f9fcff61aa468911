"""`casegate rules check|test`: admins validate and try rule files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..clock import utcnow
from ..directory.master_data import product_and_contract
from ..inbound import Source
from ..runtime.app import rules_folder
from .common import EX_DATAERR, EX_NOTFOUND, EX_OK, AddCommand, app_of, config_of, no_traceback
from ...parsers import ParseError, parse_message
from ...rules import RuleLoadError, check_file, check_folder, format_result, load_rules
from ...storage import repository as repo


@no_traceback
def cmd_rules_check(args: argparse.Namespace) -> int:
    folder = rules_folder(config_of(args))
    target = Path(args.path) if args.path else folder
    if not target.exists():
        print(f"casegate: {target}: no such rule folder or file", file=sys.stderr)
        return EX_NOTFOUND
    # A single file is read with the configured folder's word lists around it.
    errors = check_folder(target) if target.is_dir() else check_file(target, folder)
    for err in errors:
        print(err)
    if errors:
        print(f"# {len(errors)} error(s) in {target}", file=sys.stderr)
        return EX_DATAERR
    print(f"{target}: OK")
    return EX_OK


def cmd_rules_test(args: argparse.Namespace) -> int:
    app = app_of(args)
    if args.rules:
        try:
            load_rules(args.rules)  # the errors, file:line, before anything is swapped
        except RuleLoadError as exc:
            for err in exc.errors:
                print(err, file=sys.stderr)
            return EX_DATAERR
        # Try the folder without installing it: this process's store reads it, once.
        app.rules.folder = Path(args.rules)
        app.rules.reload()
        app.rules.check_interval = float("inf")
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
                if case is None or first is None or first.raw is None:
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
            now = utcnow()  # the master data's product (warranty) and contract (level), as the pipeline finds them
            product, contract = product_and_contract(session, customer, f"{parsed.subject}\n{parsed.text}", now.date())
            result = app.pipeline.classify(parsed, source, customer, now, product=product, contract=contract)
            if args.json:
                outputs.append({"input": label, "subject": parsed.subject, **result.to_dict()})
            else:
                print(f"{label}: {parsed.subject}")
                for line in format_result(result).splitlines():
                    print(f"  {line}")
    if args.json:
        print(json.dumps(outputs, ensure_ascii=False, indent=2))
    return status


def register(add: AddCommand) -> None:
    rules = add("rules", help="check and try the classification rules").add_subparsers(
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
