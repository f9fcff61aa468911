"""Small shared helpers: free ports, waiting for a port, log tails."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path


class ServerStartError(RuntimeError):
    """A test server did not come up; the message carries its log tail."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free right now on ``host``.

    The kernel picks the port; we close the socket again because the servers
    we start want to bind it themselves.  The tiny race with other processes
    is accepted -- callers retry on bind failures where it matters.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    """True when a TCP connect to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass.

    Used only where the server gives us nothing to block on (a port that
    starts listening, a process that exits), hence the short interval.
    """
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def log_tail(path: Path, lines: int = 40) -> str:
    """Last ``lines`` lines of a log file, or a note that it does not exist."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<no log at {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])
