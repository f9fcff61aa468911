"""Fault injection for crash tests: kill the process at a named point.

``CASEGATE_FAULT=imap.after_commit:2`` makes the 2nd pass through the point
``imap.after_commit`` SIGKILL the process; ``CASEGATE_FAULT=imap.ingest~NEEDLE``
kills it whenever the data passing that point contains NEEDLE (a "poison
message" that crashes the daemon every time). Tests use this to prove the
exactly-once guarantee against a real server at the moments that matter.
Unset, a fault point costs one environment lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "CASEGATE_FAULT"
_hits: dict[str, int] = {}


def fault_point(name: str, data: bytes | None = None) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    if "~" in spec:
        target, _, needle = spec.partition("~")
        if target == name and data is not None and needle.encode() in data:
            os.kill(os.getpid(), signal.SIGKILL)
        return
    target, _, count = spec.partition(":")
    if target != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= int(count or "1"):
        os.kill(os.getpid(), signal.SIGKILL)
