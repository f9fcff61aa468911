"""Keys handed out before a flush (storage/ids.py) never collide with the database's own.

Rows of the hot tables added together get their keys from storage/ids.py so
the ORM can insert them in one statement; a single row still takes the
database's key. Mixed in one transaction and across transactions, on SQLite
and PostgreSQL, every key is new.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from casegate.storage.db import Database
from casegate.storage.models import Customer, CustomerContact

NOW = datetime(2026, 10, 9, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path) -> Database:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ids.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    database = Database(url)
    database.migrate()
    yield database
    database.dispose()


def _customers(n: int, tag: str) -> list[Customer]:
    out = []
    for i in range(n):
        c = Customer(name=f"{tag}{i}", company="", address="", created_at=NOW)
        c.contacts = [CustomerContact(kind="email", value=f"{tag}{i}-{id(c)}@customer.cn")]
        out.append(c)
    return out


def test_keys_of_batches_and_single_rows_are_all_new(db: Database) -> None:
    with db.transaction() as s:
        s.add_all(_customers(1, "solo"))  # the database's own key
        s.flush()
        s.add_all(_customers(5, "batch"))  # keys handed out
        s.flush()
        s.add_all(_customers(1, "again"))
    with db.transaction() as s:
        s.add_all(_customers(3, "next"))
    with db.transaction() as s:
        rows = s.execute(select(Customer.id, Customer.name)).all()
        contacts = s.execute(select(CustomerContact.id, CustomerContact.customer_id)).all()
    ids = [r.id for r in rows]
    assert len(ids) == len(set(ids)) >= 10
    assert len({c.id for c in contacts}) == len(contacts) and {c.customer_id for c in contacts} <= set(ids)
    by_name = {r.name: r.id for r in rows}
    assert by_name["batch0"] < by_name["batch4"] < by_name["again0"] < by_name["next0"]
