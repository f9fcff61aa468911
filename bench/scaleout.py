"""Several `casegate run` daemons on one PostgreSQL database and one IMAP mailbox.

    python bench/scaleout.py 2000 [--daemons 1,2,4] [--batch 200] [--kill]

For each daemon count: a fresh database and a fresh Dovecot mailbox, the
daemons started together (on the empty database: they migrate under the
lock), then N generated messages appended (MULTIAPPEND, as in
bench/daemon_imap.py) and timed from the first append until every message
is in Processed (all committed, acknowledgements queued), and until every
acknowledgement reached the SMTP sink. Prints messages/s for each count.

One daemon at a time fetches from a mailbox (the source's lease, see
README "Several daemons"), so more daemons do not fetch faster; this shows
what they cost and what they share (the outbox is sent by all of them).

``--kill``: kill -9 the fetching daemon when a third is processed, and
print how long the mailbox stood still before a peer took over.

Needs Dovecot and PostgreSQL (scripts/install-test-deps.sh). Numbers are
printed, never asserted.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from sqlalchemy import create_engine, func, select  # noqa: E402

from casegate.storage.models import Message, OutboxMessage  # noqa: E402
from daemon_imap import tree_cpu_seconds  # noqa: E402
from daemon_proc import DaemonProcess, lease_holder_pid, wait_until  # noqa: E402
from ingest_files import generate  # noqa: E402
from servers.dovecot import DovecotServer  # noqa: E402
from servers.postgres import PostgresServer  # noqa: E402
from servers.smtp_sink import SmtpSink  # noqa: E402


def counts(url: str) -> tuple[int, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(Message).where(Message.direction == "in"))
            acks = conn.execute(select(func.count()).select_from(OutboxMessage))
            return stored.scalar_one(), acks.scalar_one()
    finally:
        engine.dispose()


def run(k: int, messages: list[bytes], args: argparse.Namespace, pg: PostgresServer, dovecot: DovecotServer,
        sink: SmtpSink, work: Path) -> None:
    url = pg.create_database(f"scaleout_{k}_{int(time.time())}")
    user = dovecot.add_user()
    sink.clear()
    config = {
        "service": {"address": "service@desk.example.cn"},
        "database": {"url": url},
        "outgoing": {"transport": "smtp", "host": sink.host, "port": sink.port, "poll_interval": "1s"},
        "logging": {"level": "INFO"},
        "sources": [{
            "name": "imap-bench", "kind": "imap", "host": user.host, "port": user.port, "tls": "none",
            "user": user.name, "password_env": "BENCH_IMAP_PW", "batch_size": args.batch, "poll_interval": "60s",
        }],
    }
    daemons = []
    for i in range(k):
        d = work / f"{k}-{i}"
        d.mkdir()
        daemons.append(DaemonProcess(d, config, env={"BENCH_IMAP_PW": user.password}))
    t0 = time.perf_counter()
    for d in daemons:
        d.start(wait_ready=False)
    try:
        for d in daemons:
            d.wait_for_log("casegate running", timeout=120)
        ready_s = time.perf_counter() - t0
        n = len(messages)
        cpu_before = {d.proc.pid: sum(tree_cpu_seconds(d.proc.pid)) for d in daemons if d.proc is not None}
        t_first = time.perf_counter()
        with user.client() as c:
            for start in range(0, n, 250):
                c.multiappend("INBOX", messages[start:start + 250])
        # One watching session: a login per poll costs Dovecot (and so the
        # machine the daemons share) more than the daemons' own session.
        watcher = user.client()
        count = lambda folder: watcher.folder_status(folder, [b"MESSAGES"])[b"MESSAGES"]  # noqa: E731
        stall = None
        if args.kill and k > 1:
            wait_until(lambda: count("Processed") >= n // 3, timeout=600, interval=0.05, what="a third")
            pid = lease_holder_pid(url)
            victim = next(d for d in daemons if d.proc is not None and d.proc.pid == pid)
            at = count("Processed")
            victim.proc.send_signal(signal.SIGKILL)
            t_kill = time.perf_counter()
            victim.wait_exit()
            daemons.remove(victim)
            wait_until(lambda: count("Processed") > at, timeout=120, interval=0.02, what="a peer moving on")
            stall = time.perf_counter() - t_kill
        wait_until(lambda: count("INBOX") == 0 and count("Processed") == n,
                   timeout=900, interval=0.1, what="all messages processed")
        watcher.logout()
        done_s = time.perf_counter() - t_first
        fetcher = lease_holder_pid(url)
        cpu = {pid: sum(tree_cpu_seconds(pid)) - before for pid, before in cpu_before.items()
               if any(d.proc is not None and d.proc.pid == pid for d in daemons)}
        stored, acks = counts(url)
        sink.wait_for(acks, timeout=600)
        acked_s = time.perf_counter() - t_first
        line = (f"{k} daemon(s): ready {ready_s:5.1f} s; {n} messages ({stored} stored, {acks} acks) "
                f"drained {done_s:6.2f} s => {n / done_s:5.0f} msg/s; all acks at the sink {acked_s:6.2f} s "
                f"=> {n / acked_s:5.0f} msg/s")
        if stall is not None:
            line += f"; kill -9 of the fetcher: mailbox still for {stall:.1f} s"
        elif k > 1:  # what standing by costs (with --kill the first fetcher's CPU is gone with it)
            others = sum(v for pid, v in cpu.items() if pid != fetcher)
            line += (f"; CPU per message: fetcher {cpu.get(fetcher, 0.0) * 1000 / n:.2f} ms, "
                     f"the {k - 1} others {others * 1000 / n:.2f} ms")
        else:
            line += f"; CPU per message {sum(cpu.values()) * 1000 / n:.2f} ms"
        print(line, flush=True)
    finally:
        for d in daemons:
            if d.proc is not None and d.proc.poll() is None:
                d.terminate()
            d.kill()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int)
    ap.add_argument("--daemons", default="1,2,4", help="daemon counts to run, comma-separated")
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--kill", action="store_true", help="kill -9 the fetching daemon a third of the way")
    args = ap.parse_args()
    messages = generate(args.n, reply_share=0.3)
    with tempfile.TemporaryDirectory() as tmp, PostgresServer() as pg, DovecotServer() as dovecot, \
            SmtpSink() as sink:
        for k in (int(x) for x in args.daemons.split(",")):
            run(k, messages, args, pg, dovecot, sink, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
