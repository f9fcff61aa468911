"""The SMTP listener's users file: hashed passwords, checked in constant time.

One user a line, ``name:$scrypt$n=16384,r=8,p=1$<salt>$<hash>`` (salt and
hash in unpadded base64); ``#`` starts a comment. ``casegate users add NAME``
writes such a line. The file must not be readable or writable by others
(mode 0600 or 0640): casegate refuses to start otherwise, and refuses a line
with a plain-text password.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from ..config import ConfigError

SCHEME = "scrypt"
# The cost scrypt's authors give for interactive logins (~16 MiB, tens of ms).
N, R, P = 2**14, 8, 1
SALT_BYTES = 16
HASH_BYTES = 32
FILE_MODE = 0o600
# Bits that must be clear on the users file: others may not read or write it,
# the group may not write it.
FORBIDDEN_BITS = stat.S_IRWXO | stat.S_IWGRP


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024,
                          dklen=length)


def hash_password(password: str) -> str:
    """``$scrypt$n=..,r=..,p=..$salt$hash`` for ``password``."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, N, R, P, HASH_BYTES)
    return f"${SCHEME}$n={N},r={R},p={P}${_b64(salt)}${_b64(digest)}"


class PasswordHash:
    """One parsed ``$scrypt$...`` value."""

    def __init__(self, text: str) -> None:
        parts = text.split("$")
        if len(parts) != 5 or parts[0] or parts[1] != SCHEME:
            raise ValueError(f"not a ${SCHEME}$ password hash")
        try:
            params = dict(kv.split("=", 1) for kv in parts[2].split(","))
            self.n, self.r, self.p = int(params["n"]), int(params["r"]), int(params["p"])
            self.salt, self.digest = _unb64(parts[3]), _unb64(parts[4])
        except (KeyError, ValueError) as exc:
            raise ValueError(f"malformed ${SCHEME}$ password hash ({exc})") from None
        if self.n < 2 or self.n & (self.n - 1) or not self.digest:
            raise ValueError(f"malformed ${SCHEME}$ password hash (bad parameters)")

    def matches(self, password: str) -> bool:
        attempt = _scrypt(password, self.salt, self.n, self.r, self.p, len(self.digest))
        return hmac.compare_digest(attempt, self.digest)


@functools.cache
def _dummy() -> PasswordHash:
    """Checked for an unknown user, so a wrong name costs as long as a wrong password."""
    return PasswordHash(hash_password(secrets.token_hex(8)))


class Users:
    """The users file, loaded and checked at start."""

    def __init__(self, hashes: dict[str, PasswordHash]) -> None:
        self.hashes = hashes
        self._key = secrets.token_bytes(32)
        self._verified: set[bytes] = set()  # logins already checked (gateways log in on every connection)

    def __bool__(self) -> bool:
        return bool(self.hashes)

    def check(self, user: str, password: str) -> bool:
        token = hmac.new(self._key, f"{user}\x00{password}".encode("utf-8", "surrogatepass"), "sha256").digest()
        if token in self._verified:
            return True
        known = self.hashes.get(user)
        ok = (known or _dummy()).matches(password) and known is not None
        if ok:
            self._verified.add(token)
        return ok


def check_mode(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & FORBIDDEN_BITS:
        raise ConfigError(
            f"{path}: the SMTP users file is mode {stat.S_IMODE(mode):04o}; others may read or change it "
            f"(chmod 600 {path})"
        )


def parse_users(text: str, where: str) -> dict[str, PasswordHash]:
    users: dict[str, PasswordHash] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, colon, value = line.partition(":")
        if not colon or not user:
            raise ConfigError(f"{where}:{number}: expected NAME:$scrypt$...")
        try:
            users[user] = PasswordHash(value)
        except ValueError as exc:
            hint = " (a plain-text password? write it with `casegate users add NAME`)" if "$" not in value else ""
            raise ConfigError(f"{where}:{number}: user {user!r}: {exc}{hint}") from None
    return users


def load_users(path: str | None) -> Users:
    """The users of ``path`` (none: AUTH is not offered); ConfigError when unsafe or malformed."""
    if not path:
        return Users({})
    file = Path(path)
    try:
        check_mode(file)
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the SMTP users file: {exc.strerror}") from None
    return Users(parse_users(text, path))


def add_user(path: Path, user: str, password: str) -> bool:
    """Write ``user`` with a hash of ``password`` into ``path`` (created 0600);
    True when an existing user was replaced."""
    if not user or ":" in user or any(c.isspace() for c in user):
        raise ValueError("a user name without ':' or spaces")
    lines: list[str] = []
    replaced = False
    if path.exists():
        check_mode(path)
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip().partition(":")[0] == user and not line.lstrip().startswith("#"):
                replaced = True
                continue
            lines.append(line)
    lines.append(f"{user}:{hash_password(password)}")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), FILE_MODE)
            fh.write("\n".join(lines) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return replaced
