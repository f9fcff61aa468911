"""BlobStore: concurrent puts of one attachment, permissions (issue 12)."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from pathlib import Path

from casegate.storage.blobs import BlobStore

THREADS = 40


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_concurrent_puts_of_the_same_content_all_succeed(tmp_path: Path) -> None:
    # The old store named its temporary file after digest and pid, so threads
    # shared it and all but one rename failed with FileNotFoundError.
    store = BlobStore(tmp_path / "blobs")
    content = os.urandom(256 * 1024)
    barrier = threading.Barrier(THREADS)
    digests: list[str] = []
    errors: list[BaseException] = []

    def put() -> None:
        barrier.wait()
        try:
            digests.append(store.put(content))
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=put) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert digests == [hashlib.sha256(content).hexdigest()] * THREADS
    assert store.get(digests[0]) == content
    leftovers = [p.name for p in (tmp_path / "blobs").rglob("*") if p.is_file() and p.name.endswith(".tmp")]
    assert leftovers == []


def test_files_are_0600_and_folders_0700_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store = BlobStore(tmp_path / "blobs")
        digest = store.put(b"customer contract")
    finally:
        os.umask(old)
    path = store.path_for(digest)
    assert _mode(path) == 0o600
    for folder in (path.parent, path.parent.parent, tmp_path / "blobs"):
        assert _mode(folder) == 0o700, folder


def test_put_is_idempotent(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    assert store.put(b"x") == store.put(b"x")
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [hashlib.sha256(b"x").hexdigest()]
