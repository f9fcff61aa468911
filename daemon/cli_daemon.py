"""`casegate run` and `casegate status` (filled in by the daemon runtime)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    return None
