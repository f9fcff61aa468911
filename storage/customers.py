"""Customer master data: customers, their people, domains, contracts and installed products.

What the service desk works from (seed 002's case tracking system: the
caller's name, company, phone, e-mail, contract, product, warranty). The
import is the admin's bulk tool: records are compared with what is stored
and only the difference is written, with a handful of bulk statements
(executemany), so a re-import of an unchanged file writes nothing and a
thousand customers take well under a second. The caller owns the
transaction: a conflict raises before anything it could leave half-done is
committed (the import is all-or-nothing).

A customer named in an import file is described by it completely: its
people, addresses, domains, contracts and products that the file no longer
lists are removed. Addresses learned from mail (a customer record made for
an unknown sender) are taken over by the imported person that lists them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session, selectinload

from .models import Case, ContactPerson, Contract, Customer, CustomerContact, CustomerDomain, OutboxMessage, Product

CHUNK = 5000  # values per IN list: few round trips, far below SQLite's and PostgreSQL's bind limits
T = TypeVar("T")


# ---------------------------------------------------------------- records (what an import file says)


@dataclass(frozen=True)
class PersonRecord:
    external_id: str
    name: str
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    faxes: tuple[str, ...] = ()
    language: str | None = None
    reports: bool = False
    line: int = 0


@dataclass(frozen=True)
class ContractRecord:
    external_id: str
    level: str = ""
    starts: date | None = None
    ends: date | None = None
    line: int = 0


@dataclass(frozen=True)
class ProductRecord:
    serial: str
    model: str = ""
    version: str = ""
    site: str = ""
    warranty_end: date | None = None
    vendor: str = ""
    contract: str = ""  # a contract's external ID, of the same customer
    line: int = 0


@dataclass(frozen=True)
class CustomerRecord:
    external_id: str
    name: str
    address: str = ""
    domains: tuple[str, ...] = ()
    people: tuple[PersonRecord, ...] = ()
    contracts: tuple[ContractRecord, ...] = ()
    products: tuple[ProductRecord, ...] = ()
    line: int = 0


class ImportConflict(ValueError):
    """The file contradicts the stored data (an address or serial of another customer)."""

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"line {line}: {msg}" for line, msg in problems))


@dataclass
class ImportResult:
    added: dict[str, int] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)

    def count(self, what: str, table: str, n: int) -> None:
        if n:
            bucket = getattr(self, what)
            bucket[table] = bucket.get(table, 0) + n

    @property
    def unchanged(self) -> bool:
        return not (self.added or self.changed or self.removed)


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]


def _rows_in(session: Session, table: Any, column: Any, values: Iterable[Any]) -> list[Any]:
    """Rows of ``table`` whose ``column`` is one of ``values``, in chunks of IN lists."""
    wanted = sorted(set(values), key=str)
    out: list[Any] = []
    for part in _chunks(wanted):
        out.extend(session.execute(select(table).where(column.in_(part))).all())
    return out


def _diff(stored: dict[Any, Any], wanted: dict[Any, dict[str, Any]],
          key_columns: tuple[str, ...]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[int]]:
    """Rows to insert, rows to update (by id) and ids to delete so ``stored`` becomes ``wanted``
    (both keyed by the values of ``key_columns``: one value, or a tuple for several columns)."""
    rows, changes = [], []
    for key, want in wanted.items():
        row = stored.get(key)
        if row is None:
            rows.append({**dict(zip(key_columns, key if len(key_columns) > 1 else (key,))), **want})
        elif any(getattr(row, k) != v for k, v in want.items()):
            changes.append({"id": row.id, **want})
    return rows, changes, [row.id for key, row in stored.items() if key not in wanted]


def _apply(session: Session, model: Any, rows: list[dict[str, Any]], changes: list[dict[str, Any]],
           gone: list[int], result: ImportResult, label: str) -> None:
    """Bulk insert, update (by primary key) and delete one table's difference.

    Core statements run with executemany: the ORM's bulk path would build a
    unit of work per row, which is most of an import's time.
    """
    table = model.__table__
    if rows:
        session.execute(table.insert(), rows)
    if changes:
        keys = [k for k in changes[0] if k != "id"]
        stmt = table.update().where(table.c.id == bindparam("row_id")).values(
            {k: bindparam(f"new_{k}") for k in keys})
        session.execute(stmt, [{"row_id": c["id"], **{f"new_{k}": c[k] for k in keys}} for c in changes])
    for part in _chunks(gone):
        session.execute(table.delete().where(table.c.id.in_(part)))
    result.count("added", label, len(rows))
    result.count("changed", label, len(changes))
    result.count("removed", label, len(gone))


def import_customers(session: Session, records: Sequence[CustomerRecord], now: datetime) -> ImportResult:
    """Bring the stored master data of the customers in ``records`` in line with them.

    Raises ImportConflict (nothing written that the caller would commit)
    when an address, domain, serial or contract ID belongs to a customer the
    file does not describe.
    """
    result = ImportResult()
    by_ext = {r.external_id: r for r in records}
    customers = {row.external_id: row for row in _rows_in(session, Customer.__table__, Customer.external_id, by_ext)}

    # Customers: insert the new ones (ids back in order), update changed names and addresses.
    new = [r for r in records if r.external_id not in customers]
    if new:
        table = Customer.__table__
        ids = session.execute(
            table.insert().returning(table.c.id, sort_by_parameter_order=True),
            [{"external_id": r.external_id, "name": r.name, "company": r.name, "address": r.address,
              "created_at": now} for r in new],
        ).scalars().all()
        result.count("added", "customer", len(new))
    else:
        ids = []
    cid = {ext: row.id for ext, row in customers.items()} | {r.external_id: i for r, i in zip(new, ids)}
    changed = [{"id": row.id, "name": by_ext[ext].name, "company": by_ext[ext].name, "address": by_ext[ext].address}
               for ext, row in customers.items()
               if (row.name, row.company, row.address) != (by_ext[ext].name, by_ext[ext].name, by_ext[ext].address)]
    _apply(session, Customer, [], changed, [], result, "customer")
    ours = set(cid.values())
    problems: list[tuple[int, str]] = []

    def owned(rows: list[Any], label: str, key: str, line_of: dict[Any, int]) -> None:
        for row in rows:
            if row.customer_id not in ours:
                problems.append((line_of[getattr(row, key)],
                                 f"{label} {getattr(row, key)} belongs to another customer (id {row.customer_id})"))

    # People, by external ID.
    people = {p.external_id: (r, p) for r in records for p in r.people}
    stored_people = _rows_in(session, ContactPerson.__table__, ContactPerson.external_id, people)
    owned(stored_people, "contact", "external_id", {k: p.line for k, (_, p) in people.items()})
    # People learned from mail (no external ID) are not the file's to remove.
    stored_people += [row for row in _rows_in(session, ContactPerson.__table__, ContactPerson.customer_id, ours)
                      if row.external_id is not None and row.external_id not in people]
    managed = {row.id for row in stored_people}
    # Contracts, by contract ID.
    contracts = {c.external_id: (r, c) for r in records for c in r.contracts}
    stored_contracts = _rows_in(session, Contract.__table__, Contract.external_id, contracts)
    owned(stored_contracts, "contract", "external_id", {k: c.line for k, (_, c) in contracts.items()})
    stored_contracts += [row for row in _rows_in(session, Contract.__table__, Contract.customer_id, ours)
                         if row.external_id not in contracts]
    # Products, by serial number.
    products = {p.serial: (r, p) for r in records for p in r.products}
    stored_products = _rows_in(session, Product.__table__, Product.serial, products)
    owned(stored_products, "serial number", "serial", {k: p.line for k, (_, p) in products.items()})
    stored_products += [row for row in _rows_in(session, Product.__table__, Product.customer_id, ours)
                        if row.serial not in products]
    # Domains.
    domains = {d: r for r in records for d in r.domains}
    stored_domains = _rows_in(session, CustomerDomain.__table__, CustomerDomain.domain, domains)
    owned(stored_domains, "domain", "domain", {d: r.line for d, r in domains.items()})
    stored_domains += [row for row in _rows_in(session, CustomerDomain.__table__, CustomerDomain.customer_id, ours)
                       if row.domain not in domains]
    # Addresses: an imported customer's, or one learned from mail (taken over).
    addresses = {(kind, value): (r, p) for r in records for p in r.people
                 for kind, values in (("email", p.emails), ("phone", p.phones), ("fax", p.faxes)) for value in values}
    stored_addresses = _rows_in(session, CustomerContact.__table__, CustomerContact.value, {v for _, v in addresses})
    stored_addresses = [row for row in stored_addresses if (row.kind, row.value) in addresses]
    imported_elsewhere = {row.id for row in _rows_in(
        session, Customer.__table__, Customer.id,
        {row.customer_id for row in stored_addresses if row.customer_id not in ours}) if row.external_id}
    for row in stored_addresses:
        if row.customer_id in imported_elsewhere:
            problems.append((addresses[(row.kind, row.value)][1].line,
                             f"{row.kind} {row.value} belongs to another customer (id {row.customer_id})"))
    if problems:
        raise ImportConflict(sorted(problems))
    stored_addresses += [row for row in _rows_in(session, CustomerContact.__table__, CustomerContact.customer_id, ours)
                         if (row.kind, row.value) not in addresses and row.person_id in managed]

    # People.
    stored = {row.external_id: row for row in stored_people}
    rows, changes, gone_people = _diff(stored, {
        ext: {"customer_id": cid[r.external_id], "name": p.name, "language": p.language, "reports": p.reports}
        for ext, (r, p) in people.items()}, ("external_id",))
    _apply(session, ContactPerson, rows, changes, [], result, "contact")  # removed after their addresses move
    pid = {row.external_id: row.id for row in _rows_in(session, ContactPerson.__table__, ContactPerson.external_id,
                                                       people)} if rows else {k: r.id for k, r in stored.items()}

    # Contracts (before products, which name them).
    stored = {row.external_id: row for row in stored_contracts}
    rows, changes, gone = _diff(stored, {
        ext: {"customer_id": cid[r.external_id], "level": c.level, "starts": c.starts, "ends": c.ends}
        for ext, (r, c) in contracts.items()}, ("external_id",))
    _unlink_cases(session, Case.contract_id, gone)
    if gone:
        session.execute(update(Product).where(Product.contract_id.in_(gone)).values(contract_id=None))
    _apply(session, Contract, rows, changes, gone, result, "contract")
    kid = {row.external_id: row.id for row in _rows_in(session, Contract.__table__, Contract.external_id, contracts)} \
        if rows else {k: r.id for k, r in stored.items()}

    # Products.
    rows, changes, gone = _diff({row.serial: row for row in stored_products}, {
        serial: {"customer_id": cid[r.external_id], "model": p.model, "version": p.version, "site": p.site,
                 "warranty_end": p.warranty_end, "vendor": p.vendor,
                 "contract_id": kid.get(p.contract) if p.contract else None}
        for serial, (r, p) in products.items()}, ("serial",))
    _unlink_cases(session, Case.product_id, gone)
    _apply(session, Product, rows, changes, gone, result, "product")

    # Domains.
    rows, changes, gone = _diff({row.domain: row for row in stored_domains},
                                {d: {"customer_id": cid[r.external_id]} for d, r in domains.items()}, ("domain",))
    _apply(session, CustomerDomain, rows, changes, gone, result, "domain")

    # Addresses.
    rows, changes, gone = _diff({(row.kind, row.value): row for row in stored_addresses}, {
        key: {"customer_id": cid[r.external_id], "person_id": pid[p.external_id]}
        for key, (r, p) in addresses.items()}, ("kind", "value"))
    _apply(session, CustomerContact, rows, changes, gone, result, "address")
    _unlink_cases(session, Case.person_id, gone_people)
    _apply(session, ContactPerson, [], [], gone_people, result, "contact")
    session.expire_all()  # the ORM's view of these rows is stale after bulk statements
    return result


def _unlink_cases(session: Session, column: Any, ids: Sequence[int]) -> None:
    """Cases naming a removed person, product or contract keep their history, without the link."""
    for part in _chunks(ids):
        session.execute(update(Case).where(column.in_(part)).values({column.key: None}))


# ---------------------------------------------------------------- lookups the pipeline makes


def person_by_address(session: Session, kind: str, value: str) -> ContactPerson | None:
    """The person owning an e-mail address, phone or fax number (None: no person, or only a customer's)."""
    stmt = (select(ContactPerson).join(CustomerContact, CustomerContact.person_id == ContactPerson.id)
            .where(CustomerContact.kind == kind, CustomerContact.value == value))
    return session.execute(stmt).scalars().first()


def customer_by_domain(session: Session, domain: str) -> Customer | None:
    stmt = select(Customer).join(CustomerDomain, CustomerDomain.customer_id == Customer.id).where(
        CustomerDomain.domain == domain.lower())
    with session.no_autoflush:  # asked for every new sender: the batch fast path flushes once, at commit
        return session.execute(stmt).scalars().first()


def customers_by_domains(session: Session, domains: Iterable[str]) -> dict[str, Customer]:
    """The customers declaring any of ``domains`` (lower case), in one query (a batch's new senders)."""
    wanted = sorted({d.lower() for d in domains if d})
    found: dict[str, Customer] = {}
    for start in range(0, len(wanted), 500):
        stmt = (select(CustomerDomain.domain, Customer).join(Customer, CustomerDomain.customer_id == Customer.id)
                .where(CustomerDomain.domain.in_(wanted[start:start + 500])))
        for domain, customer in session.execute(stmt):
            found[domain] = customer
    return found


def domains_of(session: Session, customer: Customer) -> list[str]:
    stmt = select(CustomerDomain.domain).where(CustomerDomain.customer_id == customer.id).order_by(CustomerDomain.domain)
    return list(session.execute(stmt).scalars())


def add_person(session: Session, customer: Customer, name: str, email: str) -> ContactPerson:
    """A new colleague at a declared domain: a person of that customer, with the address."""
    person = ContactPerson(customer=customer, name=name[:200], reports=False)
    session.add(person)
    session.flush()
    session.add(CustomerContact(customer=customer, kind="email", value=email.lower(), person_id=person.id))
    return person


def customer_by_external_id(session: Session, external_id: str) -> Customer | None:
    return session.execute(select(Customer).where(Customer.external_id == external_id)).scalars().first()


def product_by_serial(session: Session, serial: str) -> Product | None:
    return session.execute(select(Product).where(Product.serial == serial)).scalars().first()


def current_contract(session: Session, customer: Customer, day: date) -> Contract | None:
    """The customer's contract valid on ``day`` (the latest ending, when several are)."""
    stmt = select(Contract).where(Contract.customer_id == customer.id)
    valid = [c for c in session.execute(stmt).scalars() if c.valid_on(day)]
    return max(valid, key=lambda c: (c.ends or date.max, c.id), default=None)


def products_of(session: Session, customer: Customer) -> list[Product]:
    stmt = select(Product).where(Product.customer_id == customer.id).order_by(Product.serial)
    return list(session.execute(stmt).scalars())


def only_product(session: Session, customer: Customer) -> Product | None:
    """The customer's product when it has exactly one (then a case is about it)."""
    stmt = select(Product).where(Product.customer_id == customer.id).limit(2)
    found = list(session.execute(stmt).scalars())
    return found[0] if len(found) == 1 else None


# ---------------------------------------------------------------- listing, export, single fields


@dataclass
class CustomerView:
    """One customer with everything the master data holds about it."""

    customer: Customer
    people: list[ContactPerson]
    domains: list[str]
    contracts: list[Contract]
    products: list[Product]


def list_customers(session: Session, limit: int | None = None) -> list[Customer]:
    stmt = select(Customer).order_by(Customer.id)
    if limit:
        stmt = stmt.limit(limit)
    return list(session.execute(stmt).scalars())


def imported_customers(session: Session) -> list[CustomerView]:
    """Every customer with an external ID, with its people, domains, contracts and products."""
    customers = list(session.execute(select(Customer).where(Customer.external_id.is_not(None))
                                     .order_by(Customer.external_id)).scalars())
    return views(session, customers)


def views(session: Session, customers: Sequence[Customer]) -> list[CustomerView]:
    ids = [c.id for c in customers]
    people: dict[int, list[ContactPerson]] = {i: [] for i in ids}
    domains: dict[int, list[str]] = {i: [] for i in ids}
    contracts: dict[int, list[Contract]] = {i: [] for i in ids}
    products: dict[int, list[Product]] = {i: [] for i in ids}
    for part in _chunks(ids):
        for p in session.execute(select(ContactPerson).where(ContactPerson.customer_id.in_(part))
                                 .options(selectinload(ContactPerson.addresses)).order_by(ContactPerson.id)).scalars():
            people[p.customer_id].append(p)
        for cid_, d in session.execute(select(CustomerDomain.customer_id, CustomerDomain.domain)
                                       .where(CustomerDomain.customer_id.in_(part)).order_by(CustomerDomain.domain)):
            domains[cid_].append(d)
        for k in session.execute(select(Contract).where(Contract.customer_id.in_(part)).order_by(Contract.id)).scalars():
            contracts[k.customer_id].append(k)
        for pr in session.execute(select(Product).where(Product.customer_id.in_(part))
                                  .options(selectinload(Product.contract)).order_by(Product.id)).scalars():
            products[pr.customer_id].append(pr)
    return [CustomerView(c, people[c.id], domains[c.id], contracts[c.id], products[c.id]) for c in customers]


def find_customer_ref(session: Session, ref: str) -> Customer | None:
    """A customer by external ID, else by numeric id."""
    found = customer_by_external_id(session, ref)
    if found is None and ref.isdigit():
        found = session.get(Customer, int(ref))
    return found


def set_person_language(session: Session, person: ContactPerson, language: str) -> None:
    person.language = language


def person_by_external_id(session: Session, external_id: str) -> ContactPerson | None:
    return session.execute(select(ContactPerson).where(ContactPerson.external_id == external_id)).scalars().first()


def contract_by_external_id(session: Session, external_id: str) -> Contract | None:
    return session.execute(select(Contract).where(Contract.external_id == external_id)).scalars().first()


# ---------------------------------------------------------------- per-customer statistics


def customer_cases_between(session: Session, customer: Customer, start: datetime, end: datetime) -> list[Case]:
    stmt = (select(Case).where(Case.customer_id == customer.id, Case.opened_at >= start, Case.opened_at < end)
            .order_by(Case.id))
    return list(session.execute(stmt).scalars())


def report_recipients(session: Session) -> list[tuple[Customer, ContactPerson, str]]:
    """Every (customer, person, e-mail) that receives the customer's statistics."""
    stmt = (select(Customer, ContactPerson, CustomerContact.value)
            .join(ContactPerson, ContactPerson.customer_id == Customer.id)
            .join(CustomerContact, CustomerContact.person_id == ContactPerson.id)
            .where(ContactPerson.reports.is_(True), CustomerContact.kind == "email",
                   CustomerContact.failing_since.is_(None))
            .order_by(Customer.id, ContactPerson.id, CustomerContact.id))
    seen: set[int] = set()
    out = []
    for customer, person, email in session.execute(stmt).all():
        if person.id not in seen:  # a person's first address only
            seen.add(person.id)
            out.append((customer, person, email))
    return out


def queued_kinds(session: Session, prefix: str) -> set[str]:
    """The outbox kinds starting with ``prefix`` ever queued (a period's reports already sent)."""
    stmt = select(OutboxMessage.kind).where(OutboxMessage.kind.startswith(prefix, autoescape=True)).distinct()
    return set(session.execute(stmt).scalars())
