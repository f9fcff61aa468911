"""Errors found in rule files, phrased for the admin who edits them."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RuleError", "RuleLoadError"]


@dataclass(frozen=True, slots=True)
class RuleError:
    """One problem in one rule file.

    ``line`` is 1-based; 0 means "the file (or folder) as a whole", e.g. a
    missing folder or an unreadable file.  ``str()`` gives the compiler-like
    "path:line: reason" that editors and CI logs make clickable.
    """

    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        if self.line > 0:
            return f"{self.path}:{self.line}: {self.reason}"
        return f"{self.path}: {self.reason}"


class RuleLoadError(Exception):
    """A rule folder could not be loaded; ``errors`` lists every problem.

    All errors are collected (not just the first) so one ``rules check``
    run shows the admin everything to fix.
    """

    def __init__(self, errors: list[RuleError]) -> None:
        self.errors = list(errors)
        lines = "\n".join(str(e) for e in self.errors)
        super().__init__(f"{len(self.errors)} error(s) in rule files:\n{lines}")
