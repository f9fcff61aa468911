"""Reading a customer master-data file (``casegate customers import``): CSV, TOML or JSON.

Pure: text in, typed records (storage/customers.py) or ``file:line``
problems out. Every problem of the file is collected, not only the first,
so an admin fixes a file in one go; one problem means nothing is imported.

CSV: one row per thing, its kind in the ``record`` column; the header names
the columns (any order; columns a kind does not use stay empty)::

    record,customer,id,name,address,domains,email,phone,fax,language,reports,level,start,end,serial,model,version,site,warranty_end,vendor,contract
    customer,C001,,广州某银行,广州市天河路1号,bank.example.cn,,,,,,,,,,,,,,,
    contact,C001,C001-1,张三,,,zhangsan@bank.example.cn,020-87681000,020-87681011,zh,yes,,,,,,,,,,
    contract,C001,HT-2026-001,,,,,,,,,gold,2026-01-01,2027-12-31,,,,,,,
    product,C001,,,,,,,,,,,,,SN-0001,S5735,V200R022,广州机房,2027-06-30,Huawei,HT-2026-001

* customer: ``customer`` (its external ID), ``name`` (the company), ``address``,
  ``domains`` (mail domains, ';'-separated: colleagues there are this customer);
* contact: ``customer``, ``id`` (the person's external ID), ``name``, ``email``,
  ``phone``, ``fax`` (each ';'-separated; numbers normalised to E.164 like the
  fax intake does), ``language`` (zh|en, empty: guessed from the mail),
  ``reports`` (yes|no: receives the quarterly statistics);
* contract: ``customer``, ``id`` (the contract ID), ``level`` (e.g. gold: see
  ``[policy.contract_levels]``), ``start``, ``end`` (YYYY-MM-DD);
* product: ``customer``, ``serial``, ``model``, ``version``, ``site``,
  ``warranty_end`` (YYYY-MM-DD), ``vendor`` (a ``[[vendors]]`` name),
  ``contract`` (a contract ID of the same customer).

TOML and JSON hold the same as nested tables: ``[[customer]]`` with ``id``,
``name``, ``address``, ``domains``, and arrays ``contact`` (``id``, ``name``,
``email``, ``phone``, ``fax`` as strings or lists, ``language``, ``reports``),
``contract`` (``id``, ``level``, ``start``, ``end``), ``product`` (``serial``,
``model``, ``version``, ``site``, ``warranty_end``, ``vendor``, ``contract``).
Their problems name the line of the customer's ``id`` (TOML) or the entry's
path (JSON: ``customer[3].contact[0].email``).
"""

from __future__ import annotations

import csv
import io
import json
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from ..addresses import make_address
from ...parsers.fax import normalize_number
from ...storage.customers import ContractRecord, CustomerRecord, PersonRecord, ProductRecord

COLUMNS = ("record", "customer", "id", "name", "address", "domains", "email", "phone", "fax", "language", "reports",
           "level", "start", "end", "serial", "model", "version", "site", "warranty_end", "vendor", "contract")
RECORDS = ("customer", "contact", "contract", "product")
LANGUAGES = ("zh", "en")
_YES = {"yes": True, "y": True, "true": True, "1": True, "是": True,
        "no": False, "n": False, "false": False, "0": False, "否": False, "": False}
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_ID = re.compile(r"^[^\s,;]{1,100}$")


@dataclass
class Problems:
    """``(line, message)`` pairs, in file order."""

    items: list[tuple[int, str]] = field(default_factory=list)

    def add(self, line: int, message: str) -> None:
        self.items.append((line, message))

    def __bool__(self) -> bool:
        return bool(self.items)


class CustomerFileError(ValueError):
    """The file cannot be imported; ``problems`` are (line, message)."""

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s)")


@dataclass
class _Fields:
    """One entry's values, read and checked one field at a time."""

    values: dict[str, Any]
    line: int
    where: str  # prefix of messages: "" for CSV, the JSON path otherwise
    problems: Problems
    region: str

    def error(self, key: str, message: str) -> None:
        self.problems.add(self.line, f"{self.where}{key}: {message}")

    def text(self, key: str, limit: int = 300, required: bool = False) -> str:
        value = self.values.get(key, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            self.error(key, f"expected text, got {type(value).__name__}")
            return ""
        value = value.strip()
        if required and not value:
            self.error(key, "required")
        elif len(value) > limit:
            self.error(key, f"longer than {limit} characters")
            value = value[:limit]
        return value

    def ident(self, key: str) -> str:
        value = self.text(key, 100, required=True)
        if value and not _ID.match(value):
            self.error(key, f"not an ID (no spaces, commas or semicolons): {value!r}")
        return value

    def many(self, key: str) -> list[str]:
        value = self.values.get(key, [])
        if isinstance(value, str):
            value = value.split(";")
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.error(key, "expected text or a list of text")
            return []
        return [v.strip() for v in value if v.strip()]

    def day(self, key: str) -> date | None:
        value = self.values.get(key)
        if isinstance(value, date):
            return value
        text = self.text(key, 10)
        if not text:
            return None
        try:
            return date.fromisoformat(text)
        except ValueError:
            self.error(key, f"expected a date YYYY-MM-DD, got {text!r}")
            return None

    def emails(self, key: str) -> tuple[str, ...]:
        out = []
        for value in self.many(key):
            try:
                make_address(value)
            except ValueError:
                self.error(key, f"not an e-mail address: {value!r}")
                continue
            out.append(value.lower())
        return tuple(out)

    def numbers(self, key: str) -> tuple[str, ...]:
        out = []
        for value in self.many(key):
            number = normalize_number(value, self.region)
            if number is None:
                self.error(key, f"not a phone number with area code: {value!r}")
            else:
                out.append(number)
        return tuple(out)

    def language(self, key: str) -> str | None:
        value = self.text(key, 10).lower()
        if value and value not in LANGUAGES:
            self.error(key, f"expected zh or en, got {value!r}")
            return None
        return value or None

    def flag(self, key: str) -> bool:
        value = self.values.get(key, False)
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text not in _YES:
            self.error(key, f"expected yes or no, got {value!r}")
            return False
        return _YES[text]

    def domains(self, key: str) -> tuple[str, ...]:
        out = []
        for value in self.many(key):
            value = value.lower().lstrip("@")
            if not _DOMAIN.match(value):
                self.error(key, f"not a mail domain: {value!r}")
            else:
                out.append(value)
        return tuple(out)


def _person(f: _Fields) -> PersonRecord:
    return PersonRecord(external_id=f.ident("id"), name=f.text("name", 200, required=True), emails=f.emails("email"),
                        phones=f.numbers("phone"), faxes=f.numbers("fax"), language=f.language("language"),
                        reports=f.flag("reports"), line=f.line)


def _contract(f: _Fields) -> ContractRecord:
    record = ContractRecord(external_id=f.ident("id"), level=f.text("level", 40).lower(), starts=f.day("start"),
                            ends=f.day("end"), line=f.line)
    if record.starts and record.ends and record.ends < record.starts:
        f.error("end", "before start")
    return record


def _product(f: _Fields) -> ProductRecord:
    return ProductRecord(serial=f.ident("serial"), model=f.text("model", 200), version=f.text("version", 100),
                         site=f.text("site"), warranty_end=f.day("warranty_end"), vendor=f.text("vendor", 100),
                         contract=f.text("contract", 100), line=f.line)


def _check(records: list[CustomerRecord], problems: Problems, known_vendor: Callable[[str], bool] | None) -> None:
    """What no single entry shows: duplicates across the file, references to contracts and vendors."""
    seen: dict[tuple[str, str], int] = {}

    def once(kind: str, value: str, line: int) -> None:
        key = (kind, value)
        if value and key in seen:
            problems.add(line, f"{kind} {value} is given twice (first on line {seen[key]})")
        seen.setdefault(key, line)

    for r in records:
        once("customer", r.external_id, r.line)
        for d in r.domains:
            once("domain", d, r.line)
        contract_ids = {c.external_id for c in r.contracts}
        for p in r.people:
            once("contact", p.external_id, p.line)
            for kind, values in (("email", p.emails), ("phone", p.phones), ("fax", p.faxes)):
                for v in values:
                    once(kind, v, p.line)
        for c in r.contracts:
            once("contract", c.external_id, c.line)
        for pr in r.products:
            once("serial number", pr.serial, pr.line)
            if pr.contract and pr.contract not in contract_ids:
                problems.add(pr.line, f"contract: {pr.contract} is no contract of customer {r.external_id}")
            if pr.vendor and known_vendor is not None and not known_vendor(pr.vendor):
                problems.add(pr.line, f"vendor: {pr.vendor!r} is no configured vendor ([[vendors]])")


# ---------------------------------------------------------------- CSV


def read_csv(text: str, region: str, problems: Problems) -> list[CustomerRecord]:
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    header_row = next(reader, None)
    if header_row is None:
        problems.add(1, "empty file (expected a header: " + ",".join(COLUMNS) + ")")
        return []
    header = [h.strip().lower() for h in header_row]
    unknown = [h for h in header if h not in COLUMNS]
    if unknown or "record" not in header or "customer" not in header:
        problems.add(1, f"header: unknown column {unknown[0]!r}" if unknown else
                     "header: needs at least the columns record and customer (see README: customer master data)")
        return []
    customers: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    pending: list[tuple[str, str, Any, int]] = []
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(header):
            problems.add(line, f"{len(row)} cells, but the header has {len(header)} columns")
            continue
        f = _Fields(dict(zip(header, row)), line, "", problems, region)
        kind = f.text("record").lower()
        if kind not in RECORDS:
            f.error("record", f"expected one of {', '.join(RECORDS)}, got {kind!r}")
            continue
        owner = f.ident("customer")
        if kind == "customer":
            if owner in customers:
                problems.add(line, f"customer {owner} is given twice (first on line {customers[owner]['line']})")
                continue
            customers[owner] = {"line": line, "name": f.text("name", 200, required=True),
                                "address": f.text("address", 1000), "domains": f.domains("domains"),
                                "contact": [], "contract": [], "product": []}
            order.append(owner)
        else:
            reader_of = {"contact": _person, "contract": _contract, "product": _product}[kind]
            pending.append((kind, owner, reader_of(f), line))
    for kind, owner, record, line in pending:
        if owner not in customers:
            problems.add(line, f"customer: {owner} has no customer row in this file")
            continue
        customers[owner][kind].append(record)
    return [CustomerRecord(external_id=ext, name=c["name"], address=c["address"], domains=c["domains"],
                           people=tuple(c["contact"]), contracts=tuple(c["contract"]),
                           products=tuple(c["product"]), line=c["line"])
            for ext, c in ((ext, customers[ext]) for ext in order)]


# ---------------------------------------------------------------- TOML and JSON


def _id_lines(text: str) -> list[int]:
    """Line numbers of the customers' ``id =`` keys in a TOML file, in order (the
    first ``id`` after each ``[[customer]]`` header)."""
    lines, expecting = [], False
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("[[customer]]"):
            expecting = True
            lines.append(number)
        elif expecting and re.match(r"id\s*=", stripped):
            lines[-1] = number
            expecting = False
        elif stripped.startswith("["):
            expecting = False
    return lines


def read_tree(data: Any, region: str, problems: Problems, lines: list[int]) -> list[CustomerRecord]:
    items = data.get("customer") if isinstance(data, dict) else None
    if not isinstance(items, list):
        problems.add(1, "expected an array of customers (TOML [[customer]], JSON {\"customer\": [...]})")
        return []
    out = []
    for i, item in enumerate(items):
        line = lines[i] if i < len(lines) else 1
        where = f"customer[{i}]."
        if not isinstance(item, dict):
            problems.add(line, f"customer[{i}]: expected a table")
            continue
        f = _Fields(item, line, where, problems, region)
        unknown = sorted(set(item) - {"id", "name", "address", "domains", "contact", "contract", "product"})
        for key in unknown:
            f.error(key, "unknown key")
        sub: dict[str, list[Any]] = {}
        allowed = {"contact": {"id", "name", "email", "phone", "fax", "language", "reports"},
                   "contract": {"id", "level", "start", "end"},
                   "product": {"serial", "model", "version", "site", "warranty_end", "vendor", "contract"}}
        for kind, reader_of in (("contact", _person), ("contract", _contract), ("product", _product)):
            entries = item.get(kind, [])
            if not isinstance(entries, list):
                f.error(kind, "expected an array of tables")
                entries = []
            sub[kind] = []
            for j, entry in enumerate(entries):
                ef = _Fields(entry if isinstance(entry, dict) else {}, line, f"{where}{kind}[{j}].", problems, region)
                if not isinstance(entry, dict):
                    ef.error("", "expected a table")
                    continue
                for key in sorted(set(entry) - allowed[kind]):
                    ef.error(key, "unknown key")
                sub[kind].append(reader_of(ef))
        out.append(CustomerRecord(external_id=f.ident("id"), name=f.text("name", 200, required=True),
                                  address=f.text("address", 1000), domains=f.domains("domains"),
                                  people=tuple(sub["contact"]), contracts=tuple(sub["contract"]),
                                  products=tuple(sub["product"]), line=line))
    return out


def read_file(path: Path, *, region: str = "CN",
              known_vendor: Callable[[str], bool] | None = None) -> list[CustomerRecord]:
    """The customers of ``path`` (by its suffix: .csv, .toml, .json); CustomerFileError lists every problem."""
    problems = Problems()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CustomerFileError([(0, f"cannot read: {exc}")]) from None
    suffix = path.suffix.lower()
    if suffix == ".csv":
        records = read_csv(text, region, problems)
    elif suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            m = re.search(r"line (\d+)", str(exc))
            raise CustomerFileError([(int(m.group(1)) if m else 0, f"TOML: {exc}")]) from None
        records = read_tree(data, region, problems, _id_lines(text))
    elif suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CustomerFileError([(exc.lineno, f"JSON: {exc.msg}")]) from None
        records = read_tree(data, region, problems, [])
    else:
        raise CustomerFileError([(0, f"unknown format {suffix or '(no suffix)'!r}: expected .csv, .toml or .json")])
    _check(records, problems, known_vendor)
    if problems:
        raise CustomerFileError(sorted(problems.items, key=lambda p: p[0]))
    return records


# ---------------------------------------------------------------- writing (export)


def as_rows(view: Any) -> list[dict[str, str]]:
    """One customer (storage.customers.CustomerView) as CSV rows, the import's own format."""
    c = view.customer
    rows = [{"record": "customer", "customer": c.external_id or str(c.id), "name": c.company or c.name,
             "address": c.address or "", "domains": ";".join(view.domains)}]
    for p in view.people:
        by_kind = {k: ";".join(a.value for a in p.addresses if a.kind == k) for k in ("email", "phone", "fax")}
        rows.append({"record": "contact", "customer": rows[0]["customer"], "id": p.external_id or "",
                     "name": p.name, **by_kind, "language": p.language or "", "reports": "yes" if p.reports else "no"})
    for k in view.contracts:
        rows.append({"record": "contract", "customer": rows[0]["customer"], "id": k.external_id, "level": k.level,
                     "start": k.starts.isoformat() if k.starts else "", "end": k.ends.isoformat() if k.ends else ""})
    for pr in view.products:
        rows.append({"record": "product", "customer": rows[0]["customer"], "serial": pr.serial, "model": pr.model,
                     "version": pr.version, "site": pr.site,
                     "warranty_end": pr.warranty_end.isoformat() if pr.warranty_end else "", "vendor": pr.vendor,
                     "contract": pr.contract.external_id if pr.contract else ""})
    return rows


def to_csv(views: list[Any]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for view in views:
        for row in as_rows(view):
            writer.writerow({k: row.get(k, "") for k in COLUMNS})
    return out.getvalue()


def to_tree(views: list[Any]) -> dict[str, Any]:
    """The JSON/TOML form of the same data."""
    customers = []
    for view in views:
        rows = as_rows(view)
        head = rows[0]
        entry: dict[str, Any] = {"id": head["customer"], "name": head["name"], "address": head["address"],
                                 "domains": list(view.domains), "contact": [], "contract": [], "product": []}
        for row in rows[1:]:
            kind = row.pop("record")
            row.pop("customer")
            if kind == "contact":
                for key in ("email", "phone", "fax"):
                    row[key] = [v for v in row[key].split(";") if v]
                row["reports"] = row["reports"] == "yes"
            entry[kind].append({k: v for k, v in row.items() if v != "" or k in ("id", "name")})
        customers.append(entry)
    return {"customer": customers}
