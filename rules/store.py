"""Hot reload: the rule set in force, swapped when the files change.

Admins edit rule files while the daemon runs.  ``current()`` is called for
every message, so it only looks at the folder at most once per
``check_interval`` and only re-reads it when the names, sizes or mtimes of
its *.toml files change.  A broken edit never takes effect and never
breaks the daemon: the errors are logged and the last good set stays.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .errors import RuleError
from .loader import default_folder, list_rule_files, read_folder
from .matcher import RuleSet

__all__ = ["RuleStore"]

log = logging.getLogger("casegate.rules")

_Signature = tuple[tuple[str, int, int], ...]


class RuleStore:
    """Holds the current ``RuleSet`` of ``folder`` and reloads it on change.

    ``defaults`` is the set in force until the folder first loads cleanly
    (None: the shipped default rules); the first load happens in the
    constructor.  ``clock`` is injectable for tests (monotonic seconds).
    """

    def __init__(
        self,
        folder: Path | str | None = None,
        defaults: RuleSet | None = None,
        check_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.folder = Path(folder) if folder is not None else default_folder()
        self.check_interval = check_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._signature: _Signature | None = None
        self._checked_at = clock()
        self.last_errors: list[RuleError] = []
        if defaults is None:
            defaults = self._shipped_defaults()
        self._current: RuleSet = defaults
        self.reload()

    @staticmethod
    def _shipped_defaults() -> RuleSet:
        rules, errors, files, lists = read_folder(default_folder())
        if errors:  # a packaging bug; keep running with no rules
            for err in errors:
                log.error("shipped rule file rejected: %s", err)
            return RuleSet.empty()
        return RuleSet(rules, files=files, folder=str(default_folder()), lists=lists)

    def _stat(self) -> _Signature:
        sig = []
        try:
            for path in list_rule_files(self.folder):
                try:
                    st = path.stat()
                except OSError:
                    continue
                sig.append((path.name, st.st_mtime_ns, st.st_size))
        except OSError:
            return ()
        return tuple(sig)

    def current(self) -> RuleSet:
        """The rule set in force; re-checks the folder at most once per interval.

        Never raises: any failure is logged and the last good set returned.
        """
        now = self._clock()
        if now - self._checked_at < self.check_interval:
            return self._current
        if not self._lock.acquire(blocking=False):
            return self._current  # another thread is checking right now
        try:
            self._checked_at = now
            if self._stat() != self._signature:
                self._reload_locked()
        except Exception:  # never let rule trouble stop mail processing
            log.exception("checking rule folder %s failed", self.folder)
        finally:
            self._lock.release()
        return self._current

    def reload(self) -> list[RuleError]:
        """Load the folder now; returns its errors (empty = swapped in)."""
        with self._lock:
            self._checked_at = self._clock()
            return self._reload_locked()

    def _reload_locked(self) -> list[RuleError]:
        signature = self._stat()
        rules, errors, files, lists = read_folder(self.folder)
        # Remember the signature even on failure, so a broken file is
        # reported once, not every interval; fixing it changes the mtime.
        self._signature = signature
        self.last_errors = errors
        if errors:
            for err in errors:
                log.error("rule file rejected, keeping the previous rules: %s", err)
            return errors
        self._current = RuleSet(rules, files=files, folder=str(self.folder), lists=lists)
        log.info("loaded %d rules from %d files in %s", len(rules), len(files), self.folder)
        return []
