"""The ``[security]`` section: the reply-address secret and trusted authenticators.

::

    [security]
    secret_env = "CASEGATE_SECRET"      # variable holding the HMAC secret, or
    secret_file = "/etc/casegate/secret" # a file holding it;
    # neither: a random secret is generated once into <data_dir>/secret.key (0600)
    token_length = 12                    # base32 characters in reply addresses (>= 10)
    # authserv-ids whose Authentication-Results headers we believe. Only list
    # your own MTAs, and make sure they strip foreign headers with those ids.
    trusted_authserv_ids = ["mx.example.com"]
    # A bare SMTP AUTH user name ("wang.wei") in smtp.auth means wang.wei@<this>.
    auth_user_domain = "example.com"
    # Accept DKIM/SPF/DMARC passes for the staff member's domain as proof
    # (they prove the domain, not the mailbox: anyone there can act as staff).
    accept_domain_authentication = false

Rotating the secret invalidates every reply address already sent: replies
to old notifications then thread by subject/References only and their
commands need Authentication-Results (daemon/directory/auth_results.py).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from ..config import Config, ConfigError, build_section, read_secret
from .auth_results import is_domain
from .reply_address import MIN_TOKEN_LENGTH

SECRET_FILE_NAME = "secret.key"


@dataclass(frozen=True)
class SecurityConfig:
    secret_env: str | None = None
    secret_file: str | None = None
    token_length: int = 12
    trusted_authserv_ids: tuple[str, ...] = ()
    auth_user_domain: str | None = None
    accept_domain_authentication: bool = False

    @classmethod
    def from_config(cls, config: Config) -> "SecurityConfig":
        file = str(config.path) if config.path else "<defaults>"
        sec = build_section(cls, config.extra.get("security", {}), f"{file}: security")
        if not MIN_TOKEN_LENGTH <= sec.token_length <= 52:
            raise ConfigError(f"{file}: security.token_length: expected {MIN_TOKEN_LENGTH}..52, got {sec.token_length}")
        if sec.auth_user_domain is not None and not is_domain(sec.auth_user_domain):
            raise ConfigError(f"{file}: security.auth_user_domain: expected a mail domain such as "
                              f"\"example.com\", got {sec.auth_user_domain!r}")
        return sec


def load_secret(config: Config, sec: SecurityConfig) -> bytes:
    """The HMAC secret: from the environment, a file, or generated once.

    The generated secret is written to a 0600 temporary file and hard-linked
    into place, so two daemons starting together agree on one complete
    secret and nobody else can read it.
    """
    file = str(config.path) if config.path else "<defaults>"
    given = read_secret(sec.secret_env, str(config.resolve(sec.secret_file)) if sec.secret_file else None,
                        f"{file}: security")
    if given is not None:
        if len(given.encode()) < 16:
            raise ConfigError(f"{file}: security: the secret must be at least 16 bytes long")
        return given.encode()
    path = config.data_dir / SECRET_FILE_NAME
    return _generated_secret(path)


def _generated_secret(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(secrets.token_hex(32) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # atomic and exclusive: the first daemon wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    value = path.read_text(encoding="ascii").strip()
    if len(value) < 16:
        raise ConfigError(f"{path}: secret file is too short (remove it to generate a new one)")
    return value.encode()
