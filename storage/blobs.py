"""Attachment contents on disk, addressed by their sha256.

Content addressing makes writing idempotent: a retried or duplicated ingest
writes the same file again (or finds it there), and identical attachments
are stored once. Files are written to a temporary name, fsynced and renamed,
so a crash never leaves a truncated blob under a valid hash.

The temporary name is unique per call (mkstemp), not per process: the
daemon stores attachments from several threads, and two threads putting the
same attachment once shared one temporary file, so one renamed it away
under the other. Attachments are customers' documents: files are 0600 and
folders 0700, whatever the umask.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, content: bytes) -> str:
        digest = hashlib.sha256(content).hexdigest()
        path = self.path_for(digest)
        if path.exists():
            return digest
        self._make_dirs(path.parent)
        self._write_new(path, content)
        return digest

    def get(self, sha256: str) -> bytes:
        return self.path_for(sha256).read_bytes()

    @staticmethod
    def _make_dirs(folder: Path) -> None:
        """Create ``folder`` and the missing folders above it, each 0700."""
        missing: list[Path] = []
        current = folder
        while not current.is_dir() and current.parent != current:
            missing.append(current)
            current = current.parent
        for directory in reversed(missing):
            try:
                directory.mkdir(mode=DIR_MODE)
            except FileExistsError:
                continue  # another thread or process made it first
            os.chmod(directory, DIR_MODE)  # mkdir's mode is filtered by the umask

    @staticmethod
    def _write_new(path: Path, content: bytes) -> None:
        """Write to a temporary file of our own beside ``path``, then rename.

        Renaming is atomic, and every writer of one digest writes the same
        bytes, so concurrent puts all succeed and the last rename wins.
        """
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                os.fchmod(fh.fileno(), FILE_MODE)  # mkstemp makes 0600; say so
                fh.write(content)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (the directory entry), where possible."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
