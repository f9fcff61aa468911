"""Rendering a classification for the CLI (``casegate rules test``)."""

from __future__ import annotations

import json

from .model import Classification

__all__ = ["format_result"]


def format_result(result: Classification, as_json: bool = False) -> str:
    """Human explanation lines, or pretty JSON (CJK kept readable)."""
    if as_json:
        return json.dumps(result.to_dict(), ensure_ascii=False, indent=2)
    return "\n".join(result.explain())
