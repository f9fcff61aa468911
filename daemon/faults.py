"""Fault injection for crash tests: kill the process at a named point.

``CASEGATE_FAULT=imap.after_commit:2`` makes the 2nd pass through the point
``imap.after_commit`` SIGKILL the process, so tests can prove the
exactly-once guarantee against a real server at the moments that matter
(after fetch, after commit, after move). Unset, a fault point costs one
dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "CASEGATE_FAULT"
_hits: dict[str, int] = {}


def _target() -> tuple[str, int] | None:
    spec = os.environ.get(ENV)
    if not spec:
        return None
    name, _, count = spec.partition(":")
    return name, int(count or "1")


def fault_point(name: str) -> None:
    target = _target()
    if target is None or target[0] != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= target[1]:
        os.kill(os.getpid(), signal.SIGKILL)
