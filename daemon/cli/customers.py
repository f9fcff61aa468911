"""`casegate customers import|list|show|export|set`: the customer master data.

``import FILE`` reads a CSV, TOML or JSON file (format in
daemon/directory/customers.py and the README), checks all of it, and writes
the difference to the stored data in one transaction: every problem is
printed as ``file:line: message`` and then nothing is imported (exit 65).
Importing the same file again changes nothing ("no change").
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from ..clock import utcnow
from ..config import Config
from ..directory.customers import CustomerFileError, read_file, to_csv, to_tree
from ..directory.vendors import VendorDirectory
from ..fax.config import load_fax_config
from .common import (EX_DATAERR, EX_NOTFOUND, EX_OK, EX_USAGE, AddCommand, config_of, emit, for_terminal as safe,
                     no_traceback)
from ...storage import customers as store
from ...storage.db import Database


def _database(config: Config) -> Database:
    """The database alone (an import needs no templates, rules or mail)."""
    db = Database(config.database_url)
    db.migrate()
    return db


@contextmanager
def _session(args: argparse.Namespace) -> Iterator[Session]:
    """A read-only session on the configured database, closed with it."""
    db = _database(config_of(args))
    try:
        with db.session() as s:
            yield s
    finally:
        db.dispose()


class DryRun(Exception):
    """Rolls the import's transaction back after counting what it would change."""

    def __init__(self, result: store.ImportResult) -> None:
        super().__init__("dry run")
        self.result = result


def cmd_import(args: argparse.Namespace) -> int:
    config = config_of(args)
    vendors = VendorDirectory.from_config(config)
    region = load_fax_config(config).default_region
    path = Path(args.file)
    try:
        records = read_file(path, region=region, known_vendor=vendors.known if vendors.vendors else None)
    except CustomerFileError as exc:
        for line, message in exc.problems:
            print(f"{safe(path)}:{line}: {safe(message)}", file=sys.stderr)
        print(f"casegate: {len(exc.problems)} problem(s); nothing imported", file=sys.stderr)
        return EX_DATAERR
    db = _database(config)
    try:
        with db.transaction() as s:
            result = store.import_customers(s, records, utcnow())
            if args.dry_run:
                raise DryRun(result)
    except DryRun as dry:
        result = dry.result
    except store.ImportConflict as exc:
        for line, message in exc.problems:
            print(f"{safe(path)}:{line}: {safe(message)}", file=sys.stderr)
        print(f"casegate: {len(exc.problems)} conflict(s) with stored customers; nothing imported", file=sys.stderr)
        return EX_DATAERR
    finally:
        db.dispose()
    if args.json:
        print(json.dumps({"customers": len(records), "added": result.added, "changed": result.changed,
                          "removed": result.removed, "dry_run": bool(args.dry_run)}, ensure_ascii=False))
    elif result.unchanged:
        print(f"{len(records)} customers: no change")
    else:
        def say(bucket: dict[str, int]) -> str:
            return ", ".join(f"{n} {k}" for k, n in sorted(bucket.items())) or "nothing"
        print(f"{len(records)} customers{' (dry run, not saved)' if args.dry_run else ''}: added {say(result.added)}; "
              f"changed {say(result.changed)}; removed {say(result.removed)}")
    return EX_OK


def customer_dict(view: store.CustomerView) -> dict[str, Any]:
    c = view.customer
    today = date.today()
    return {
        "id": c.external_id or str(c.id), "name": c.company or c.name, "address": c.address,
        "domains": view.domains,
        "contacts": [{"id": p.external_id, "name": p.name, "language": p.language, "reports": p.reports,
                      **{k: [a.value for a in p.addresses if a.kind == k] for k in ("email", "phone", "fax")}}
                     for p in view.people],
        "contracts": [{"id": k.external_id, "level": k.level, "start": k.starts.isoformat() if k.starts else None,
                       "end": k.ends.isoformat() if k.ends else None, "valid": k.valid_on(today)}
                      for k in view.contracts],
        "products": [{"serial": p.serial, "model": p.model, "version": p.version, "site": p.site,
                      "warranty_end": p.warranty_end.isoformat() if p.warranty_end else None,
                      "in_warranty": p.warranty_end >= today if p.warranty_end else None, "vendor": p.vendor,
                      "contract": p.contract.external_id if p.contract else None} for p in view.products],
    }


def cmd_list(args: argparse.Namespace) -> int:
    with _session(args) as s:
        data = [customer_dict(v) for v in store.views(s, store.list_customers(s, args.limit))]
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return EX_OK
    for d in data:
        levels = ",".join(sorted({k["level"] for k in d["contracts"] if k["valid"] and k["level"]})) or "-"
        print(f"{safe(d['id']):<14} {safe(d['name'])[:40]:<40} contacts {len(d['contacts']):>2}  "
              f"products {len(d['products']):>3}  contract {levels}")
    return EX_OK


def cmd_show(args: argparse.Namespace) -> int:
    with _session(args) as s:
        customer = store.find_customer_ref(s, args.id)
        if customer is None:
            print(f"casegate: no customer {safe(args.id)}", file=sys.stderr)
            return EX_NOTFOUND
        d = customer_dict(store.views(s, [customer])[0])
    if args.json:
        print(json.dumps(d, ensure_ascii=False, indent=2))
        return EX_OK
    print(f"customer {safe(d['id'])}: {safe(d['name'])}")
    if d["address"]:
        print(f"  address: {safe(d['address'])}")
    if d["domains"]:
        print(f"  domains: {', '.join(d['domains'])}")
    for p in d["contacts"]:
        reach = "; ".join(f"{k} {', '.join(p[k])}" for k in ("email", "phone", "fax") if p[k])
        print(f"  contact {safe(p['id'] or '-')}: {safe(p['name'])}  language {p['language'] or 'guessed'}"
              f"{'  receives reports' if p['reports'] else ''}  {safe(reach)}")
    for k in d["contracts"]:
        print(f"  contract {safe(k['id'])}: level {safe(k['level'] or '-')}  {k['start'] or '…'} – {k['end'] or '…'}"
              f"{'' if k['valid'] else '  (not valid today)'}")
    for p in d["products"]:
        warranty = ("in warranty" if p["in_warranty"] else "out of warranty") if p["in_warranty"] is not None \
            else "warranty unknown"
        print(f"  product {safe(p['serial'])}: {safe(p['model'])} {safe(p['version'])} at {safe(p['site'] or '-')}, "
              f"{warranty} (until {p['warranty_end'] or '-'}), vendor {safe(p['vendor'] or '-')}")
    return EX_OK


def cmd_export(args: argparse.Namespace) -> int:
    with _session(args) as s:
        views = store.imported_customers(s)
        emit(to_csv(views) if args.format == "csv" else json.dumps(to_tree(views), ensure_ascii=False, indent=2)
             + "\n", args.output)
    return EX_OK


# What `customers set` may change: kind -> field -> how the value is read.
def _text(value: str) -> str:
    return value.strip()


def _day(value: str) -> date | None:
    return date.fromisoformat(value) if value.strip() else None


def _language(value: str) -> str | None:
    value = value.strip().lower()
    if value not in ("zh", "en", ""):
        raise ValueError("expected zh or en (or empty: guessed from the mail)")
    return value or None


def _flag(value: str) -> bool:
    value = value.strip().lower()
    if value not in ("yes", "no", "true", "false"):
        raise ValueError("expected yes or no")
    return value in ("yes", "true")


SETTABLE: dict[str, dict[str, Any]] = {
    "customer": {"name": _text, "address": _text},
    "contact": {"name": _text, "language": _language, "reports": _flag},
    "contract": {"level": lambda v: v.strip().lower(), "start": _day, "end": _day},
    "product": {"model": _text, "version": _text, "site": _text, "warranty_end": _day, "vendor": _text},
}
_COLUMN = {"start": "starts", "end": "ends"}


def cmd_set(args: argparse.Namespace) -> int:
    fields = SETTABLE[args.kind]
    if args.field not in fields:
        print(f"casegate: {args.kind} has no settable field {safe(args.field)!r} (settable: {', '.join(fields)})",
              file=sys.stderr)
        return EX_USAGE
    try:
        value = fields[args.field](args.value)
    except ValueError as exc:
        print(f"casegate: {args.kind}.{args.field}: {exc}", file=sys.stderr)
        return EX_DATAERR
    finders = {"customer": store.find_customer_ref, "contact": store.person_by_external_id,
               "contract": store.contract_by_external_id, "product": store.product_by_serial}
    db = _database(config_of(args))
    try:
        with db.transaction() as s:
            row = finders[args.kind](s, args.id)
            if row is None:
                print(f"casegate: no {args.kind} {safe(args.id)}", file=sys.stderr)
                return EX_NOTFOUND
            column = _COLUMN.get(args.field, args.field)
            old = getattr(row, column)
            setattr(row, column, value)
            if args.kind == "customer" and args.field == "name":
                row.company = value
    finally:
        db.dispose()
    print(f"{args.kind} {safe(args.id)}: {args.field} {safe(old if old is not None else '-')} -> "
          f"{safe(value if value is not None else '-')}")
    return EX_OK


def register(add: AddCommand) -> None:
    cu = add("customers", help="customer master data: people, contracts, installed products").add_subparsers(
        dest="customers_cmd", required=True)
    ci = cu.add_parser("import", help="import a CSV, TOML or JSON file (idempotent by external ID, all or nothing)")
    ci.add_argument("file")
    ci.add_argument("--dry-run", action="store_true", help="check and count the changes, save nothing")
    ci.add_argument("--json", action="store_true")
    ci.set_defaults(func=no_traceback(cmd_import))
    cl = cu.add_parser("list", help="one line per customer")
    cl.add_argument("--limit", type=int, default=None)
    cl.add_argument("--json", action="store_true")
    cl.set_defaults(func=no_traceback(cmd_list))
    cs = cu.add_parser("show", help="a customer with its contacts, contracts and products")
    cs.add_argument("id", help="the customer's external ID (or its number)")
    cs.add_argument("--json", action="store_true")
    cs.set_defaults(func=no_traceback(cmd_show))
    ce = cu.add_parser("export", help="the imported customers in the import's own format")
    ce.add_argument("--format", choices=("csv", "json"), default="csv")
    ce.add_argument("--output", "-o")
    ce.set_defaults(func=no_traceback(cmd_export))
    cset = cu.add_parser("set", help="change one field: set customer|contact|contract|product ID FIELD VALUE")
    cset.add_argument("kind", choices=tuple(SETTABLE))
    cset.add_argument("id", help="customer ID, contact ID, contract ID or product serial number")
    cset.add_argument("field")
    cset.add_argument("value")
    cset.set_defaults(func=no_traceback(cmd_set))

