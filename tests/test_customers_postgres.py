"""Customer master data on PostgreSQL: migration 0004 up and down, the import and its
idempotence, and a case of a known customer through the pipeline."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from casegate.storage.db import MIGRATIONS_DIR, Database
from casegate.storage.models import Base
from sla_support import Clock, ingest, mail, sh
from test_customers import CSV, ZHANG, cli, facts, setup

pytestmark = pytest.mark.postgres


def test_import_and_a_known_customers_case_on_postgresql(tmp_path: Path, smtp_sink, postgres) -> None:
    url = postgres.create_database("t_" + uuid.uuid4().hex)
    clock = Clock(sh(2026, 10, 12, 10, 0))
    app, config = setup(tmp_path, smtp_sink, clock, url=url)
    assert app.db.dialect == "postgresql"
    data = tmp_path / "customers.csv"
    assert cli("--config", str(config), "customers", "import", str(data))[1] == "2 customers: no change\n"
    number = ingest(app, mail(ZHANG, "佛山分行路由器故障", "SN-OLD-02 路由器无法转发数据。"))
    f = facts(app, number)
    assert (f["customer"], f["person"], f["product"], f["category"]) == ("C001", "张三", "SN-OLD-02", "out-of-warranty")
    # A removed product leaves the case's history, without the link (ON DELETE SET NULL / explicit unlink).
    shorter = tmp_path / "shorter.csv"
    shorter.write_text("\n".join(line for line in CSV.splitlines() if "SN-OLD-02" not in line) + "\n", encoding="utf-8")
    assert cli("--config", str(config), "customers", "import", str(shorter))[0] == 0
    assert facts(app, number)["product"] is None
    app.close()


def test_migration_0004_goes_down_and_up_on_postgresql(postgres) -> None:
    db = Database(postgres.create_database("t_" + uuid.uuid4().hex))
    db.migrate()
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    fks = {tuple(fk["constrained_columns"]) for fk in inspect(db.engine).get_foreign_keys("cases")}
    assert {("person_id",), ("product_id",), ("contract_id",)} <= fks
    with db.engine.connect() as conn:  # the migrated schema is the models' (constraints and their names too)
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0003")
    tables = set(inspect(db.engine).get_table_names())
    assert not tables & {"contact_person", "customer_domain", "contract", "product"}
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    assert {"contact_person", "customer_domain", "contract", "product"} <= set(inspect(db.engine).get_table_names())
    db.dispose()
