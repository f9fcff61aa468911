"""Messages per second through the ingestion pipeline into SQLite.

    python bench/ingest_files.py 5000 [--batch 200] [--replies 0.3] [--db PATH]

Generates N realistic messages (Chinese and English, some with
attachments, a share of them replies to earlier cases), writes them to a
temporary folder, then times `casegate ingest`'s code path (parse, dedupe,
thread, classify, store, queue the acknowledgement) in batches, and prints
messages/s and peak memory. Nothing is asserted: the numbers are printed.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from email.message import EmailMessage
from email.utils import format_datetime
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from casegate.daemon.inbound import Inbound
from casegate.daemon.runtime.app import App  # noqa: E402
from casegate.daemon.config import build_config  # noqa: E402
from casegate.daemon.inbound import Source  # noqa: E402

SUBJECTS = [
    "系统宕机，业务全部中断", "服务器性能严重下降", "打印机偶尔报错", "如何配置VPN客户端",
    "UPS 告警：电池故障", "Core switch not responding", "How to install the new firmware",
    "交换机端口间歇性中断", "投诉：工程师迟迟未到现场", "希望增加报表导出新功能",
]
BODIES = [
    "您好：\n今天上午九点开始，我们的核心系统无法访问，所有业务都停了，请尽快派工程师处理。\n联系人：张工 13800138000\n",
    "Hello,\nsince this morning the database server is very slow and users cannot work properly.\nRegards,\nJohn\n",
    "你好，打印机偶尔会报错 E-102，重启后恢复，请问是什么原因？\n\n-----原始邮件-----\n发件人: service@desk.example.cn\n主题: 之前的问题\n",
]


def generate(n: int, reply_share: float, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        msg = EmailMessage()
        msg["From"] = f"客户{i % 997} <user{i % 997}@customer{i % 53}.cn>"
        msg["To"] = "service@desk.example.cn"
        subject = rng.choice(SUBJECTS)
        if i > 10 and rng.random() < reply_share:
            subject = f"回复: [SR-{datetime.now().year}-{rng.randint(1, max(1, i // 2)):06d}] {subject}"
        msg["Subject"] = subject
        msg["Date"] = format_datetime(datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc))
        msg["Message-ID"] = f"<bench-{i}-{seed}@customer.cn>"
        msg.set_content(rng.choice(BODIES) * rng.randint(1, 3))
        if i % 10 == 0:
            msg.add_attachment(rng.randbytes(20_000), maintype="application", subtype="octet-stream",
                               filename=f"日志-{i}.log")
        out.append(msg.as_bytes())
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--replies", type=float, default=0.3)
    ap.add_argument("--db", help="SQLite file (default: a temporary one)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        db = args.db or str(base / "bench.db")
        app = App(build_config({"service": {"address": "service@desk.example.cn"},
                                "database": {"url": f"sqlite:///{db}"}}, base_dir=base))
        folder = base / "mail"
        folder.mkdir()
        t0 = time.perf_counter()
        for i, raw in enumerate(generate(args.n, args.replies)):
            (folder / f"{i:07d}.eml").write_bytes(raw)
        gen = time.perf_counter() - t0

        files = sorted(folder.iterdir())
        src = Source("bench", "file")
        outcomes: dict[str, int] = {}
        rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        for start in range(0, len(files), args.batch):
            chunk = [Inbound(f.read_bytes(), src) for f in files[start:start + args.batch]]
            for res in app.pipeline.ingest_batch(chunk):
                outcomes[res.outcome] = outcomes.get(res.outcome, 0) + 1
        elapsed = time.perf_counter() - t0
        rss_end = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

        t1 = time.perf_counter()
        dup = app.pipeline.ingest_batch([Inbound(f.read_bytes(), src) for f in files[: min(1000, len(files))]])
        dup_elapsed = time.perf_counter() - t1

        print(f"messages:            {args.n} (generated in {gen:.2f} s, batch {args.batch})")
        print(f"outcomes:            {', '.join(f'{v} {k}' for k, v in sorted(outcomes.items()))}")
        print(f"ingest time:         {elapsed:.2f} s")
        print(f"throughput:          {args.n / elapsed:.0f} messages/s (parse, dedupe, thread, classify, store, queue ack)")
        print(f"re-ingest (dupes):   {len(dup) / dup_elapsed:.0f} messages/s")
        print(f"peak RSS:            {rss_start / 1024:.0f} MiB before, {rss_end / 1024:.0f} MiB after")
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
