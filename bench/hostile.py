"""Parse time against input size for hostile and broken mail (issue 12).

    python bench/hostile.py [--scale F] [--only NAME ...] [--repeat N] [--ingest]
    python bench/hostile.py --smtp-rss [--sessions 24] [--mb 18]

Each shape is built at 1x, 4x and 16x of its base size and parsed with
``parse_message`` on the raw bytes (fax shapes also run
``extract_fax_info``, as the fax intake does). Linear code shows a growth
factor near 1.0 from one size to the next (time ratio divided by size
ratio); a quadratic regex shows about 4. ``--scale`` multiplies the base
sizes (use 0.25 to measure old code without waiting minutes). ``--ingest``
also times ``casegate ingest FILE`` on a temporary SQLite database for the
largest size of each shape (process start included, so it has an offset).
Nothing is asserted: the numbers are printed.

``--smtp-rss`` starts ``casegate run`` with an SMTP listener on loopback in a
temporary folder (defaults of every limit), pushes ``--sessions`` messages of
``--mb`` MB at once from as many threads with smtplib (a 4xx answer is
retried after a pause, as an MTA would), and prints the daemon's peak RSS
(VmHWM from /proc), its parse workers' peak, the RSS left afterwards and how
many 4xx answers the senders got.
"""

from __future__ import annotations

import argparse
import os
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from casegate.parsers import ParseError, parse_message
from casegate.parsers.fax import extract_fax_info

HEAD = b"Message-ID: <hostile@bench>\r\nDate: Fri, 20 Nov 2026 10:00:00 +0800\r\nTo: service@desk.example.cn\r\n"
FROM = b"From: Bench <bench@example.cn>\r\n"


def _mail(headers: bytes, body: bytes, ctype: bytes = b"text/plain; charset=utf-8") -> bytes:
    return HEAD + headers + b"MIME-Version: 1.0\r\nContent-Type: " + ctype + b"\r\n\r\n" + body


def html_comments(size: int) -> bytes:
    return _mail(FROM + b"Subject: comments\r\n", b"<!--" * (size // 4), b"text/html; charset=utf-8")


def html_open_tags(size: int) -> bytes:
    return _mail(FROM + b"Subject: open tags\r\n", b"<a" * (size // 2), b"text/html; charset=utf-8")


def html_unclosed_script(size: int) -> bytes:
    return _mail(FROM + b"Subject: script\r\n", b"<script x>" * (size // 10), b"text/html; charset=utf-8")


def html_deep_nesting(size: int) -> bytes:
    body = b"<div>" * (size // 11) + b"deep" + b"</div>" * (size // 11)
    return _mail(FROM + b"Subject: nesting\r\n", body, b"text/html; charset=utf-8")


def from_at_list(size: int) -> bytes:
    half = size // 2
    value = b"@" * half + b",<x@y>" * (half // 6)
    return _mail(b"From: " + value + b"\r\nSubject: at list\r\n", b"hello\r\n")


def from_no_at(size: int) -> bytes:
    return _mail(b"From: " + b"x" * size + b"\r\nSubject: no at\r\n", b"hello\r\n")


def references_many(size: int) -> bytes:
    ids = b" ".join(b"<%07d@r>" % i for i in range(size // 12))
    return _mail(FROM + b"Subject: refs\r\nReferences: " + ids + b"\r\n", b"hello\r\n")


def quote_blank_line(size: int) -> bytes:
    return _mail(FROM + b"Subject: spaces\r\n", b"hello\r\n" + b" " * size + b"x\r\n")


def attribution_spaces(size: int) -> bytes:
    line = "在 2026 写道".encode() + b" " * size + b"x"
    return _mail(FROM + b"Subject: attribution\r\n", b"hello\r\n\r\n" + line + b"\r\n")


def content_type_params(size: int) -> bytes:
    ctype = b'text/plain; name="' + b";" * size + b'"'
    return _mail(FROM + b"Subject: params\r\n", b"hello\r\n", ctype)


def mime_deep_nesting(size: int) -> bytes:
    depth = max(1, size // 60)
    parts = b"".join(b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i, i + 1) for i in range(depth))
    parts += b"--b%d\r\nContent-Type: text/plain\r\n\r\ndeep\r\n--b%d--\r\n" % (depth, depth)
    return _mail(FROM + b"Subject: deep\r\n", parts, b"multipart/mixed; boundary=b0")


def mime_many_parts(size: int) -> bytes:
    count = max(1, size // 50)
    parts = b"".join(b"--B\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i for i in range(count))
    return _mail(FROM + b"Subject: parts\r\n", parts + b"--B--\r\n", b"multipart/mixed; boundary=B")


def fax_sender_spaces(size: int) -> bytes:
    body = b"Sender: 020 8768 1011" + b" " * size + b"x\r\nPages: 1\r\nReceived: 2026:11:20 10:00:00\r\n"
    return _mail(FROM + b"Subject: fax\r\n", body)


def to_many_addresses(size: int) -> bytes:
    return _mail(FROM + b"Subject: many\r\nTo: " + b"a@b.cn, " * (size // 8) + b"\r\n", b"hello\r\n")


def subject_encoded_words(size: int) -> bytes:
    return _mail(FROM + b"Subject: " + b"=?utf-8?B?5L2g5aW9?= " * (size // 21) + b"\r\n", b"hello\r\n")


def raw_8bit_subject(size: int) -> bytes:
    subject = "サーバー障害".encode("cp932") * (size // 12)
    body = "本文です。".encode("iso-2022-jp")
    return _mail(FROM + b"Subject: " + subject + b"\r\n", body, b"text/plain; charset=iso-2022-jp")


def unindented_lines(size: int) -> bytes:
    stray = b"".join(b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo%08d\r\n" % i for i in range(size // 46))
    return HEAD + b"X-Tracking: " + stray + FROM + b"Subject: after\r\n\r\nhello\r\n"


def nul_bytes_body(size: int) -> bytes:
    return _mail(FROM + b"Subject: nul\r\n", b"a\x00" * (size // 2))


@dataclass(frozen=True)
class Shape:
    name: str
    base: int  # bytes at 1x
    build: Callable[[int], bytes]
    fax: bool = False


SHAPES = (
    Shape("html-comments", 25_000, html_comments),
    Shape("html-open-tags", 25_000, html_open_tags),
    Shape("html-unclosed-script", 25_000, html_unclosed_script),
    Shape("html-deep-nesting", 25_000, html_deep_nesting),
    Shape("from-at-list", 4_000, from_at_list),
    Shape("from-no-at", 4_000, from_no_at),
    Shape("references-many", 16_000, references_many),
    Shape("quote-blank-line", 25_000, quote_blank_line),
    Shape("attribution-spaces", 25_000, attribution_spaces),
    Shape("content-type-params", 4_000, content_type_params),
    Shape("mime-deep-nesting", 6_000, mime_deep_nesting),
    Shape("mime-many-parts", 50_000, mime_many_parts),
    Shape("fax-sender-spaces", 25_000, fax_sender_spaces, fax=True),
    Shape("to-many-addresses", 16_000, to_many_addresses),
    Shape("subject-encoded-words", 16_000, subject_encoded_words),
    Shape("raw-8bit-subject", 4_000, raw_8bit_subject),
    Shape("unindented-lines", 16_000, unindented_lines),
    Shape("nul-bytes-body", 25_000, nul_bytes_body),
)


def _parse_once(raw: bytes, fax: bool) -> str:
    try:
        msg = parse_message(raw)
    except ParseError as exc:
        return f"ParseError: {exc.reason}"
    if fax:
        extract_fax_info(msg.subject, msg.text, msg.headers, [a.filename for a in msg.attachments])
    return "ok"


def _time(raw: bytes, fax: bool, repeat: int) -> tuple[float, str]:
    best = float("inf")
    outcome = ""
    for _ in range(repeat):
        start = time.perf_counter()
        outcome = _parse_once(raw, fax)
        best = min(best, time.perf_counter() - start)
    return best, outcome


def _ingest_seconds(raw: bytes) -> str:
    """Wall time of `casegate ingest FILE` on a fresh SQLite database."""
    exe = Path(sys.executable).with_name("casegate")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        config = base / "casegate.toml"
        config.write_text(
            '[service]\naddress = "service@desk.example.cn"\n'
            f'[database]\nurl = "sqlite:///{base / "bench.db"}"\n',
            "utf-8",
        )
        mail = base / "hostile.eml"
        mail.write_bytes(raw)
        start = time.perf_counter()
        proc = subprocess.run(
            [str(exe), "--config", str(config), "ingest", str(mail)],
            cwd=base, capture_output=True, env=dict(os.environ), timeout=3600,
        )
        elapsed = time.perf_counter() - start
    return f"{elapsed:.2f} s (exit {proc.returncode})"


def run_shape(shape: Shape, scale: float, repeat: int, ingest: bool) -> None:
    previous: tuple[int, float] | None = None
    for factor in (1, 4, 16):
        raw = shape.build(max(1, int(shape.base * scale * factor)))
        seconds, outcome = _time(raw, shape.fax, repeat)
        growth = ""
        if previous is not None and previous[1] > 0:
            growth = f"{(seconds / previous[1]) / (len(raw) / previous[0]):6.2f}"
        print(f"  {shape.name:22} {factor:3}x {len(raw) / 1024:9.1f} KB {seconds * 1e3:11.1f} ms"
              f"  growth {growth or '     -'}  {outcome}", flush=True)
        previous = (len(raw), seconds)
    if ingest:
        print(f"  {shape.name:22} casegate ingest of the 16x file: {_ingest_seconds(raw)}", flush=True)


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    """Child processes of ``pid``, started by any of its threads."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _big_mail(mb: float) -> bytes:
    msg = EmailMessage()
    msg["From"] = "张三 <zhangsan@customer.cn>"
    msg["To"] = "service@desk.example.cn"
    msg["Subject"] = "系统宕机，日志见附件"
    msg["Message-ID"] = "<big-0000@bench>"
    msg.set_content("核心系统宕机，日志见附件。")
    msg.add_attachment(os.urandom(int(mb * 1024 * 1024 * 3 / 4)), maintype="application", subtype="octet-stream",
                       filename="core.dump")
    return msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _push(port: int, raw: bytes, refusals: list[int], done: list[float]) -> None:
    started = time.monotonic()
    while True:
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=600) as s:
                s.sendmail("zhangsan@customer.cn", ["service@desk.example.cn"], raw)
            done.append(time.monotonic() - started)
            return
        except (smtplib.SMTPConnectError, smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as exc:
            if not 400 <= exc.smtp_code < 500:
                raise
            refusals.append(exc.smtp_code)
            time.sleep(0.5)


def smtp_rss(sessions: int, mb: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        config = base / "casegate.toml"
        config.write_text(
            '[service]\naddress = "service@desk.example.cn"\n'
            f'[[sources]]\nname = "push"\nkind = "smtp"\nhost = "127.0.0.1"\nport = {port}\n'
            'accept_domains = ["desk.example.cn"]\n', "utf-8")
        log = open(base / "daemon.log", "wb")
        daemon = subprocess.Popen([sys.executable, "-m", "casegate.daemon.cli", "--config", str(config), "run"],
                                  cwd=base, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while b"casegate running" not in (base / "daemon.log").read_bytes():
                if time.monotonic() > deadline or daemon.poll() is not None:
                    raise SystemExit((base / "daemon.log").read_text(errors="replace")[-3000:])
                time.sleep(0.1)
            template = _big_mail(mb)
            idle_kb = _status_kb(daemon.pid, "VmRSS")
            print(f"  daemon RSS at rest: {idle_kb / 1024:.0f} MB; {sessions} sessions of "
                  f"{len(template) / 1e6:.1f} MB each", flush=True)
            refusals: list[int] = []
            done: list[float] = []
            workers_peak: dict[int, int] = {}
            threads = [threading.Thread(target=_push, args=(port, template.replace(b"big-0000", f"big-{i:04d}".encode()),
                                                            refusals, done)) for i in range(sessions)]
            started = time.monotonic()
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                for child in _children(daemon.pid):
                    workers_peak[child] = max(workers_peak.get(child, 0), _status_kb(child, "VmHWM"))
                time.sleep(0.2)
            elapsed = time.monotonic() - started
            peak = _status_kb(daemon.pid, "VmHWM")
            after = _status_kb(daemon.pid, "VmRSS")
            stored = (base / "daemon.log").read_text(errors="replace").count("outcome=new")
            print(f"  {len(done)} of {sessions} delivered ({stored} cases) in {elapsed:.1f} s; "
                  f"4xx answers (retried): {len(refusals)} "
                  f"({', '.join(f'{c}: {refusals.count(c)}' for c in sorted(set(refusals))) or '-'})")
            print(f"  daemon peak RSS (VmHWM): {peak / 1024:.0f} MB; afterwards {after / 1024:.0f} MB")
            print(f"  parse workers' peak RSS: "
                  f"{', '.join(f'{kb / 1024:.0f} MB' for kb in workers_peak.values()) or '-'}; "
                  f"daemon + workers at most {(peak + sum(workers_peak.values())) / 1024:.0f} MB", flush=True)
        finally:
            daemon.terminate()
            daemon.wait(60)
            log.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every base size")
    ap.add_argument("--only", nargs="*", help="shape names to run (default: all)")
    ap.add_argument("--repeat", type=int, default=1, help="best of N runs per size")
    ap.add_argument("--ingest", action="store_true", help="also time `casegate ingest` of the 16x file")
    ap.add_argument("--smtp-rss", action="store_true", help="the daemon's peak RSS under concurrent SMTP sessions")
    ap.add_argument("--sessions", type=int, default=24, help="concurrent SMTP sessions (with --smtp-rss)")
    ap.add_argument("--mb", type=float, default=18.0, help="size of each message in MB (with --smtp-rss)")
    args = ap.parse_args()
    if args.smtp_rss:
        smtp_rss(args.sessions, args.mb)
        return 0
    shapes = [s for s in SHAPES if not args.only or s.name in args.only]
    print("shape                   size        input         time   growth (1.0 = linear, 4.0 = quadratic)")
    for shape in shapes:
        run_shape(shape, args.scale, args.repeat, args.ingest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
