"""Customer master-data import: 1,000 customers with contacts, contracts and products.

Usage: python3 bench/customers_import.py [--customers N] [--url DATABASE_URL] [--keep FILE.csv]

Generates a CSV in the documented import format (each customer: two
contacts with an e-mail address, a phone and a fax number, one contract,
three products, one mail domain), then runs ``casegate customers import``
on a fresh database (SQLite in a temporary folder unless ``--url`` names
another; migrated first, as a running daemon leaves it), twice: the first
import writes everything, the second must report "no change". Prints the
wall-clock time of each whole command (process start-up excepted), of
reading the file, and of the database step of a re-import alone (issue 15
asks for under 5 s). The load average comes first: these are wall-clock
times.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import tempfile
import time
from pathlib import Path

from casegate.daemon.cli import main
from casegate.daemon.clock import utcnow
from casegate.daemon.directory.customers import COLUMNS, read_file
from casegate.storage import customers as store
from casegate.storage.db import Database

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平"
CITIES = ("广州", "深圳", "北京", "上海", "成都", "武汉", "杭州", "南京")
MODELS = (("Huawei", "S5735-L48T4S", "V200R022"), ("Huawei", "AR6140", "V300R021"),
          ("Schneider", "Galaxy VS 20kVA", "FW 3.1"), ("Cisco", "C9300-48P", "17.9.4"))


def generate(n: int) -> str:
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for i in range(1, n + 1):
        cust, domain, city = f"C{i:05d}", f"kunde{i}.example.cn", CITIES[i % len(CITIES)]
        w.writerow({"record": "customer", "customer": cust, "name": f"{city}第{i}号工贸有限公司",
                    "address": f"{city}市天河路{i}号", "domains": domain})
        for j in (1, 2):
            name = SURNAMES[(i + j) % len(SURNAMES)] + GIVEN[(i * j) % len(GIVEN)]
            w.writerow({"record": "contact", "customer": cust, "id": f"{cust}-{j}", "name": name,
                        "email": f"user{j}@{domain}", "phone": f"+86 20 8{i:06d}{j}",
                        "fax": f"+86 21 6{i:06d}{j}", "language": "zh" if j == 1 else "en",
                        "reports": "yes" if j == 1 else "no"})
        w.writerow({"record": "contract", "customer": cust, "id": f"HT-{i:05d}", "level": ("gold", "silver", "")[i % 3],
                    "start": "2026-01-01", "end": "2027-12-31"})
        for k in (1, 2, 3):
            vendor, model, version = MODELS[(i + k) % len(MODELS)]
            w.writerow({"record": "product", "customer": cust, "serial": f"SN{i:05d}{k}", "model": model,
                        "version": version, "site": f"{city}机房{k}", "warranty_end": f"202{6 + k % 2}-06-30",
                        "vendor": vendor, "contract": f"HT-{i:05d}"})
    return out.getvalue()


def timed_cli(path: Path, config: Path) -> tuple[float, str]:
    buf = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(buf):
        code = main(["--config", str(config), "customers", "import", str(path)])
    elapsed = time.perf_counter() - started
    assert code == 0, code
    return elapsed, buf.getvalue().strip()


def main_bench() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=1000)
    ap.add_argument("--url", default=None, help="database URL (default: a fresh SQLite file)")
    ap.add_argument("--keep", default=None, help="also write the generated CSV here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        csv_path = folder / "customers.csv"
        csv_path.write_text(generate(args.customers), encoding="utf-8")
        if args.keep:
            Path(args.keep).write_text(csv_path.read_text(encoding="utf-8"), encoding="utf-8")
        url = args.url or f"sqlite:///{folder / 'casegate.db'}"
        config = folder / "casegate.toml"
        config.write_text(f'[database]\nurl = "{url}"\n', encoding="utf-8")
        rows = sum(1 for _ in csv_path.open(encoding="utf-8")) - 1
        print(f"load average {os.getloadavg()[0]:.2f}; {args.customers} customers, {rows} CSV rows, "
              f"{csv_path.stat().st_size // 1024} KB; database {url.partition(':')[0]}")
        # The schema first, as the daemon leaves it: the import runs on a database in use.
        started = time.perf_counter()
        db = Database(url)
        db.migrate()
        db.dispose()
        print(f"schema      {time.perf_counter() - started:6.2f} s  (migrations on an empty database, not counted below)")
        started = time.perf_counter()
        records = read_file(csv_path)
        print(f"reading     {time.perf_counter() - started:6.2f} s  (parsing and checking the file alone)")
        first, said = timed_cli(csv_path, config)
        print(f"import      {first:6.2f} s  (casegate customers import, whole command)  {said}")
        again, said = timed_cli(csv_path, config)
        print(f"re-import   {again:6.2f} s  {said}")
        db = Database(url)
        started = time.perf_counter()
        with db.transaction() as s:
            result = store.import_customers(s, records, utcnow())
        print(f"database step of a re-import alone {time.perf_counter() - started:6.2f} s "
              f"({'no change' if result.unchanged else 'CHANGED'})")
        db.dispose()


if __name__ == "__main__":
    main_bench()
