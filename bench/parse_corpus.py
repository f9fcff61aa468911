"""Throughput of casegate.parsers.parse_message over ../shared/corpus.

Usage: python3 bench/parse_corpus.py [N] [corpus_dir]
Parses every file N times (default 5), prints messages/s over the files
that parse (ParseError files are counted separately) and the slowest files.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from casegate.parsers import ParseError, parse_message

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    root = Path(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_CORPUS
    if not root.is_dir():
        print(f"corpus not found: {root}", file=sys.stderr)
        return 2
    files = [(p, p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()]
    per_file: list[tuple[float, str]] = []
    ok_time = 0.0
    ok = errors = 0
    for path, raw in files:
        start = time.perf_counter()
        failed = False
        for _ in range(n):
            try:
                parse_message(raw)
            except ParseError:
                failed = True
        elapsed = (time.perf_counter() - start) / n
        per_file.append((elapsed, str(path.relative_to(root))))
        if failed:
            errors += 1
        else:
            ok += 1
            ok_time += elapsed
    per_file.sort(reverse=True)
    times = sorted(t for t, _ in per_file)
    median = times[len(times) // 2] if times else 0.0
    print(f"{len(files)} files x {n}: {ok} parsed, {errors} ParseError")
    print(f"parsed messages: {ok / ok_time:,.0f} msg/s (mean {ok_time / max(ok, 1) * 1e3:.3f} ms)")
    print(f"median per file: {median * 1e3:.3f} ms")
    print("slowest:")
    for seconds, rel in per_file[:10]:
        print(f"  {seconds * 1e3:9.2f} ms  {rel}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
