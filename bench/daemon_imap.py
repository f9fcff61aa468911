"""Throughput and latency of `casegate run` against a local Dovecot.

    python bench/daemon_imap.py 2000 [--latency 20] [--batch 200]

1. Appends N messages to a fresh Dovecot mailbox, starts the daemon (IMAP
   source with IDLE, SQLite, acknowledgements to an SMTP sink) and prints
   messages/s from the first append to the last commit (all messages moved
   to Processed and all acknowledgements queued), and end to end: from the
   first append to the last acknowledgement received by the SMTP sink.
2. With the daemon idle in IDLE, appends single messages one at a time and
   prints arrival-to-acknowledgement latency (append -> ack received by the
   SMTP sink) p50/p95/max.
3. Prints the daemon's peak RSS, to check that memory stays flat in volume.

Needs Dovecot (scripts/install-test-deps.sh installs it). Numbers are
printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from sqlalchemy import func, select  # noqa: E402

from casegate.daemon.runtime.app import App  # noqa: E402
from casegate.daemon.config import load_config  # noqa: E402
from casegate.storage.models import OutboxMessage  # noqa: E402
from daemon_proc import DaemonProcess, wait_until  # noqa: E402
from helpers import mail  # noqa: E402
from ingest_files import generate  # noqa: E402
from servers.dovecot import DovecotServer  # noqa: E402
from servers.smtp_sink import SmtpSink  # noqa: E402


def status_mib(pid: int, field: str) -> float:
    """A memory line of /proc/PID/status (VmRSS, VmHWM = peak) in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def peak_rss_mib(pid: int) -> float:
    return status_mib(pid, "VmHWM")


def rss_mib(pid: int) -> float:
    return status_mib(pid, "VmRSS")


def rss_parts(pid: int) -> str:
    """RSS and its parts: anonymous (the heap), file (libraries, mapped files), shared memory."""
    parts = ", ".join(f"{name} {status_mib(pid, 'Rss' + name.capitalize()):.0f}" for name in ("anon", "file", "shmem"))
    return f"{rss_mib(pid):.0f} MiB ({parts})"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its finished children (the
    parse workers are alive, so they are counted separately below)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds of a process group (Dovecot's master and its imap/auth
    children), counting children already reaped through the master."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[2] == str(pgid):
            ticks = int(fields[11]) + int(fields[12])
            if entry.name == str(pgid):
                ticks += int(fields[13]) + int(fields[14])
            total += ticks / os.sysconf("SC_CLK_TCK")
    return total


def own_cpu_seconds() -> float:
    """This process: the test client appending, the SMTP sink receiving the acks."""
    t = os.times()
    return t.user + t.system


def tree_cpu_seconds(pid: int) -> tuple[float, float]:
    """(the daemon's CPU seconds, its child processes' CPU seconds): a
    figure that other load on the machine disturbs far less than wall time."""
    children = 0.0
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in task.read_text().split():
            children += cpu_seconds(int(child))
    return cpu_seconds(pid), children


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int)
    ap.add_argument("--latency", type=int, default=20, help="single messages for the latency run")
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--maildir", action="store_true", help="acknowledgements to a maildir instead of the SMTP sink")
    ap.add_argument("--keep-log", metavar="PATH", help="copy the daemon's log here at the end")
    ap.add_argument("--preload", action="store_true",
                    help="append every message before the daemon starts and time from its start "
                         "(start-up included; Dovecot's delivery and the appending client not)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp, DovecotServer() as dovecot, SmtpSink() as sink:
        user = dovecot.add_user("bench")
        work = Path(tmp)
        config = {
            "service": {"address": "service@desk.example.cn"},
            "outgoing": ({"transport": "maildir", "maildir": "outbox"} if args.maildir else
                         {"transport": "smtp", "host": sink.host, "port": sink.port, "poll_interval": "1s"}),
            "logging": {"level": "INFO"},  # as in production: one line per message
            "sources": [{
                "name": "imap-bench", "kind": "imap", "host": user.host, "port": user.port, "tls": "none",
                "user": user.name, "password_env": "BENCH_IMAP_PW", "batch_size": args.batch,
                "poll_interval": "60s",
            }],
        }
        messages = generate(args.n, reply_share=0.3)
        daemon = DaemonProcess(work, config, env={"BENCH_IMAP_PW": user.password})

        def append_all() -> None:
            with user.client() as c:
                # MULTIAPPEND (RFC 3502) in chunks: the test client would otherwise
                # be the bottleneck, not the daemon
                for start in range(0, len(messages), 250):
                    c.multiappend("INBOX", messages[start:start + 250])

        if args.preload:  # the mailbox full before the daemon starts; timed from its start
            t_append = time.perf_counter()
            append_all()
            append_s = time.perf_counter() - t_append
            others_before = group_cpu_seconds(dovecot.pid), own_cpu_seconds()
            t_first_append = time.perf_counter()
            daemon.start(wait_ready=False)
            cpu_before = (0.0, 0.0)
        else:
            daemon.start()  # idle in IDLE on an empty mailbox
        try:
            app = App(load_config(str(work / "casegate.toml")))
            if not args.preload:
                cpu_before = tree_cpu_seconds(daemon.proc.pid)
                others_before = group_cpu_seconds(dovecot.pid), own_cpu_seconds()
                t_first_append = time.perf_counter()
                append_all()
                append_s = time.perf_counter() - t_first_append
            t_start = t_first_append

            def queued() -> int:
                with app.db.session() as s:
                    return s.execute(select(func.count(OutboxMessage.id))).scalar_one()

            # One watching session (a login per poll cost Dovecot more CPU than
            # the daemon's own session); the daemon's RSS is noted on the way.
            rss_at: dict[int, str] = {}
            milestones = [m for m in (1_000, *range(10_000, 100_001, 10_000)) if m <= args.n]
            with user.client() as watcher:
                def drained() -> bool:
                    status = {f: watcher.folder_status(f, [b"MESSAGES"])[b"MESSAGES"] for f in ("INBOX", "Processed")}
                    while milestones and status["Processed"] >= milestones[0]:
                        rss_at[milestones.pop(0)] = rss_parts(daemon.proc.pid)
                    return status["INBOX"] == 0 and status["Processed"] == args.n
                wait_until(drained, timeout=3600, interval=0.1, what="all messages processed")
            t_done = time.perf_counter()
            cpu_after = tree_cpu_seconds(daemon.proc.pid)
            acks = queued()
            total_s = t_done - t_first_append
            print(f"messages:                 {args.n} (batch {args.batch}); {acks} acknowledgements queued")
            print(f"append to Dovecot:        {append_s:.2f} s ({args.n / append_s:.0f}/s, the test client's own speed)")
            origin = "daemon start" if args.preload else "first append"
            print(f"{origin} -> drained:  {total_s:.2f} s  => {args.n / total_s:.0f} messages/s")
            own, workers = (a - b for a, b in zip(cpu_after, cpu_before))
            print(f"daemon CPU per message:   {own * 1000 / args.n:.2f} ms (+ {workers * 1000 / args.n:.2f} ms "
                  f"in parse workers)")

            if not args.maildir:
                # "End to end" ends when the last acknowledgement has reached the SMTP sink.
                wait_until(lambda: len(sink.received) >= acks, timeout=600, interval=0.05, what="acks sent")
                t_sent = time.perf_counter()
                cpu_sent = tree_cpu_seconds(daemon.proc.pid)
                sent_s = t_sent - t_first_append
                print(f"{origin} -> last ack: {sent_s:.2f} s  => {args.n / sent_s:.0f} messages/s end to end "
                      f"({len(sink.received)} acknowledgements at the sink)")
                own, workers = (a - b for a, b in zip(cpu_sent, cpu_before))
                print(f"  daemon CPU per message: {own * 1000 / args.n:.2f} ms (+ {workers * 1000 / args.n:.2f} ms "
                      f"in parse workers), to the last ack")
                dove, client = (a - b for a, b in zip((group_cpu_seconds(dovecot.pid), own_cpu_seconds()),
                                                     others_before))
                # The machine's whole budget: at 1,000 messages/s two cores give 2 ms per message.
                print(f"  the rest of the machine per message: Dovecot {dove * 1000 / args.n:.2f} ms, this "
                      f"process (appending client and SMTP sink) {client * 1000 / args.n:.2f} ms")

            if args.maildir:
                print(f"daemon peak RSS:          {peak_rss_mib(daemon.proc.pid):.0f} MiB")
                daemon.terminate()
                app.close()
                return 0
            # latency with IDLE, one message at a time
            sink.clear()
            lat = []
            for i in range(args.latency):
                raw = mail(subject=f"latency probe {i}", sender=f"probe{i}@customer.cn")
                t0 = time.perf_counter()
                user.append("INBOX", raw)
                sink.wait_for(i + 1, timeout=30)
                lat.append(time.perf_counter() - t0)
                time.sleep(0.2)
            lat.sort()
            p95 = lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))]
            print(f"arrival -> ack (IDLE):    p50 {statistics.median(lat) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
                  f"max {lat[-1] * 1000:.0f} ms over {len(lat)} messages")
            print(f"daemon peak RSS:          {peak_rss_mib(daemon.proc.pid):.0f} MiB")
            for m, rss in rss_at.items():
                print(f"  RSS after {m:>7,}:      {rss}")
            print(f"  RSS at the end:         {rss_parts(daemon.proc.pid)}")
            daemon.terminate()
            app.close()
        finally:
            daemon.kill()  # no-op after a clean stop; never leaves a daemon behind
            if args.keep_log:
                shutil.copyfile(daemon.log_path, args.keep_log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
