"""Configuration: TOML loaded into typed, frozen objects and validated at start.

Every section is a dataclass; one generic builder checks keys and types
against the dataclass fields, so an unknown key or a wrong type is reported
with the file, the dotted key and what was expected, before anything runs.
``config.example.toml`` documents every key and its default.

Lookup order: ``--config PATH``, else ``$CASEGATE_CONFIG``, else
``./casegate.toml`` when present, else the embedded defaults.
"""

from __future__ import annotations

import os
import tomllib
import types
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from .durations import DurationError, parse_duration

ENV_CONFIG = "CASEGATE_CONFIG"
DEFAULT_CONFIG_NAME = "casegate.toml"
PRIORITIES = ("P1", "P2", "P3", "P4")


class ConfigError(Exception):
    """The configuration is invalid; the message names file and key."""


# ---------------------------------------------------------------- sections


@dataclass(frozen=True)
class ServiceConfig:
    address: str = "service@localhost"
    display_name: str = "Service Desk / 客户服务中心"
    case_number_format: str = "SR-{year}-{seq:06d}"
    default_language: str = "zh"
    data_dir: str = "."
    timezone: str = "Asia/Shanghai"
    # Loop protection: automatic mails to one address per rolling hour.
    max_auto_mails_per_hour: int = 10
    # Notices to one staff address per rolling hour (their own, larger limit).
    max_staff_mails_per_hour: int = 200
    # New-case notices per customer per hour before they become one digest.
    max_new_case_notices_per_sender: int = 5
    # Worker processes that parse fetched batches while the previous batch
    # is stored (0: parse in the daemon process).
    parse_workers: int = 1
    # Time budget for parsing one message in a worker: a message over it is
    # stored raw in quarantine and the worker is replaced (needs parse_workers >= 1).
    parse_timeout: timedelta = timedelta(seconds=10)

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2] or "localhost"


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = "sqlite:///casegate.db"
    password_env: str | None = None
    password_file: str | None = None


@dataclass(frozen=True)
class ClassificationConfig:
    default_priority: str = "P3"
    default_category: str = "general"
    default_queue: str = "support"
    rules_dir: str = ""  # empty: the rule files shipped in rules/default


@dataclass(frozen=True)
class OutgoingConfig:
    transport: str = "maildir"  # maildir | smtp
    maildir: str = "outbox"
    host: str = "localhost"
    port: int = 25
    tls: str = "none"  # none | starttls | tls
    user: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    timeout: timedelta = timedelta(seconds=30)
    batch_size: int = 200
    poll_interval: timedelta = timedelta(seconds=1)
    retry_initial: timedelta = timedelta(minutes=1)
    retry_max: timedelta = timedelta(hours=1)
    give_up_after: timedelta = timedelta(days=2)


@dataclass(frozen=True)
class ImapSourceConfig:
    name: str
    kind: str
    host: str = "localhost"
    port: int = 993
    tls: str = "tls"  # tls | starttls | none
    user: str = ""
    auth: str = "login"  # login | xoauth2
    password_env: str | None = None
    password_file: str | None = None
    oauth_token_file: str | None = None
    oauth_token_command: str | None = None
    folder: str = "INBOX"
    processed_folder: str = "Processed"
    failed_folder: str = "Failed"
    idle: bool = True
    idle_timeout: timedelta = timedelta(minutes=9)
    poll_interval: timedelta = timedelta(seconds=60)
    batch_size: int = 200
    max_attempts: int = 3
    fax: bool = False
    timeout: timedelta = timedelta(seconds=60)


@dataclass(frozen=True)
class SmtpSourceConfig:
    name: str
    kind: str  # smtp | lmtp
    host: str = "127.0.0.1"
    port: int = 2525
    accept_domains: tuple[str, ...] = ()
    accept_addresses: tuple[str, ...] = ()
    max_message_size: int = 25 * 1024 * 1024
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    require_tls: bool = False
    auth_users_file: str | None = None  # "user:$scrypt$..." lines (`casegate users add`); enables AUTH
    require_auth: bool = False
    # Implicit TLS from the first byte (SMTPS, usually port 465); needs tls_cert_file.
    implicit_tls: bool = False
    # Bounds, so the daemon's memory stays bounded whatever senders do; above
    # them the sender gets a 4xx and retries.
    max_sessions: int = 50
    max_bytes_in_flight: int = 128 * 1024 * 1024
    ingest_workers: int = 2


@dataclass(frozen=True)
class SpoolSourceConfig:
    name: str
    kind: str
    path: str = "spool"
    done_folder: str = "done"
    failed_folder: str = "failed"
    poll_interval: timedelta = timedelta(seconds=5)
    settle_time: timedelta = timedelta(seconds=2)
    max_attempts: int = 3


SourceConfig = ImapSourceConfig | SmtpSourceConfig | SpoolSourceConfig
SOURCE_KINDS: dict[str, type] = {
    "imap": ImapSourceConfig,
    "smtp": SmtpSourceConfig,
    "lmtp": SmtpSourceConfig,
    "spool": SpoolSourceConfig,
}


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "INFO"
    # text: one line per event, journald-friendly (no timestamp under systemd,
    # the journal adds its own); json: one JSON object per line with stable
    # keys (time, level, logger, message, source, case, message_id, outcome, duration_ms).
    format: str = "text"


@dataclass(frozen=True)
class Config:
    path: Path | None = None
    base_dir: Path = field(default_factory=Path.cwd)
    service: ServiceConfig = field(default_factory=ServiceConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    classification: ClassificationConfig = field(default_factory=ClassificationConfig)
    outgoing: OutgoingConfig = field(default_factory=OutgoingConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    sources: tuple[SourceConfig, ...] = ()
    # Sections owned by other modules, validated by them (policy, calendar,
    # staff, vendors, fax); kept as plain data here.
    extra: dict[str, Any] = field(default_factory=dict)

    # -- derived paths: relative paths are relative to data_dir, which is
    # relative to the config file's folder (or the working directory).
    @property
    def data_dir(self) -> Path:
        return (self.base_dir / self.service.data_dir).resolve()

    def resolve(self, path: str) -> Path:
        return (self.data_dir / path).resolve()

    @property
    def database_url(self) -> str:
        url = self.database.url
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            rel = url[len("sqlite:///"):]
            if rel and rel != ":memory:":
                return "sqlite:///" + str(self.resolve(rel))
        secret = read_secret(self.database.password_env, self.database.password_file, "database")
        if secret is not None:
            return make_url(url).set(password=secret).render_as_string(hide_password=False)
        return url

    @property
    def attachments_dir(self) -> Path:
        return self.data_dir / "attachments"

    def source(self, name: str) -> SourceConfig:
        for src in self.sources:
            if src.name == name:
                return src
        raise KeyError(name)


KNOWN_EXTRA_SECTIONS = ("policy", "staff", "vendors", "fax", "security", "scheduler", "templates", "metrics",
                        "report")


# ---------------------------------------------------------------- building


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is timedelta:
        return 'a duration string such as "30m" or "2h"'
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_describe(a) for a in typing.get_args(tp) if a is not type(None))
    if origin in (tuple, list):
        return f"a list of {_describe(typing.get_args(tp)[0])}"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _convert(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(value, args[0], where)
    if tp is timedelta:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return timedelta(seconds=value)
        if isinstance(value, str):
            try:
                return parse_duration(value)
            except DurationError as exc:
                raise ConfigError(f"{where}: {exc}") from None
    elif origin in (tuple, list):
        (item_tp, *_rest) = typing.get_args(tp)
        if isinstance(value, list):
            return tuple(_convert(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value))
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is bool or tp is str:
        if isinstance(value, tp):
            return value
    raise ConfigError(f"{where}: expected {_describe(tp)}, got {value!r}")


def build_section(cls: type, data: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a TOML table, naming every bad key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        if "password" in unknown:
            raise ConfigError(
                f"{where}.password: inline passwords are not accepted; "
                "use password_env (variable name) or password_file (path)"
            )
        raise ConfigError(
            f"{where}.{unknown[0]}: unknown key (expected one of: {', '.join(sorted(names))})"
        )
    kwargs = {}
    for f in fields(cls):
        if f.name in data:
            kwargs[f.name] = _convert(data[f.name], hints[f.name], f"{where}.{f.name}")
        elif f.default is MISSING and f.default_factory is MISSING:  # type: ignore[misc]
            raise ConfigError(f"{where}.{f.name}: required key is missing")
    return cls(**kwargs)


def _check_choice(value: str, choices: tuple[str, ...], where: str) -> None:
    if value not in choices:
        raise ConfigError(f"{where}: expected one of {', '.join(choices)}, got {value!r}")


def _validate(cfg: Config, file: str) -> None:
    _check_choice(cfg.classification.default_priority, PRIORITIES, f"{file}: classification.default_priority")
    _check_choice(cfg.outgoing.transport, ("maildir", "smtp"), f"{file}: outgoing.transport")
    _check_choice(cfg.outgoing.tls, ("none", "starttls", "tls"), f"{file}: outgoing.tls")
    _check_choice(cfg.service.default_language, ("zh", "en"), f"{file}: service.default_language")
    _check_choice(cfg.logging.level.upper(), ("DEBUG", "INFO", "WARNING", "ERROR"), f"{file}: logging.level")
    _check_choice(cfg.logging.format, ("text", "json"), f"{file}: logging.format")
    try:
        cfg.service.case_number_format.format(year=2026, month=1, seq=1)
    except (KeyError, ValueError, IndexError) as exc:
        raise ConfigError(
            f"{file}: service.case_number_format: cannot format ({exc}); "
            "use the fields {year}, {month} and {seq}"
        ) from None
    if "{seq" not in cfg.service.case_number_format:
        raise ConfigError(f"{file}: service.case_number_format: must contain {{seq}}")
    seen: set[str] = set()
    for i, src in enumerate(cfg.sources):
        where = f"{file}: sources[{i}] ({src.name})"
        if src.name in seen:
            raise ConfigError(f"{where}.name: duplicate source name {src.name!r}")
        seen.add(src.name)
        if isinstance(src, ImapSourceConfig):
            _check_choice(src.tls, ("none", "starttls", "tls"), f"{where}.tls")
            _check_choice(src.auth, ("login", "xoauth2"), f"{where}.auth")
            if src.auth == "login" and not (src.password_env or src.password_file):
                raise ConfigError(f"{where}: needs password_env or password_file")
            if src.auth == "xoauth2" and not (src.oauth_token_file or src.oauth_token_command):
                raise ConfigError(f"{where}: xoauth2 needs oauth_token_file or oauth_token_command")
            if src.max_attempts < 1 or src.batch_size < 1:
                raise ConfigError(f"{where}: max_attempts and batch_size must be at least 1")
        if isinstance(src, SpoolSourceConfig) and src.max_attempts < 1:
            raise ConfigError(f"{where}.max_attempts: must be at least 1")
        if isinstance(src, SmtpSourceConfig):
            if bool(src.tls_cert_file) != bool(src.tls_key_file):
                raise ConfigError(f"{where}: tls_cert_file and tls_key_file go together")
            if src.implicit_tls and not src.tls_cert_file:
                raise ConfigError(f"{where}.implicit_tls: needs tls_cert_file and tls_key_file")
            if src.max_sessions < 1 or src.ingest_workers < 1:
                raise ConfigError(f"{where}: max_sessions and ingest_workers must be at least 1")
            if src.max_bytes_in_flight < src.max_message_size:
                raise ConfigError(f"{where}.max_bytes_in_flight: must be at least max_message_size "
                                  f"({src.max_message_size})")


def build_config(data: dict[str, Any], path: Path | None = None, base_dir: Path | None = None) -> Config:
    file = str(path) if path else "<defaults>"
    kwargs: dict[str, Any] = {}
    sections = {
        "service": ServiceConfig,
        "database": DatabaseConfig,
        "classification": ClassificationConfig,
        "outgoing": OutgoingConfig,
        "logging": LoggingConfig,
    }
    extra: dict[str, Any] = {}
    for key, value in data.items():
        if key in sections:
            kwargs[key] = build_section(sections[key], value, f"{file}: {key}")
        elif key == "sources":
            if not isinstance(value, list):
                raise ConfigError(f"{file}: sources: expected an array of tables ([[sources]])")
            srcs = []
            for i, item in enumerate(value):
                where = f"{file}: sources[{i}]"
                if not isinstance(item, dict) or "kind" not in item or "name" not in item:
                    raise ConfigError(f"{where}: every source needs a name and a kind")
                kind = item["kind"]
                if kind not in SOURCE_KINDS:
                    raise ConfigError(
                        f"{where} ({item['name']}).kind: unknown kind {kind!r} "
                        f"(expected one of: {', '.join(SOURCE_KINDS)})"
                    )
                srcs.append(build_section(SOURCE_KINDS[kind], item, where))
            kwargs["sources"] = tuple(srcs)
        elif key in KNOWN_EXTRA_SECTIONS:
            extra[key] = value
        else:
            raise ConfigError(
                f"{file}: {key}: unknown section (expected one of: "
                f"{', '.join(sorted([*sections, 'sources', *KNOWN_EXTRA_SECTIONS]))})"
            )
    base = base_dir or (path.parent if path else Path.cwd())
    cfg = Config(path=path, base_dir=base.resolve(), extra=extra, **kwargs)
    _validate(cfg, file)
    return cfg


def find_config_path(explicit: str | None) -> Path | None:
    if explicit:
        return Path(explicit)
    env = os.environ.get(ENV_CONFIG)
    if env:
        return Path(env)
    local = Path.cwd() / DEFAULT_CONFIG_NAME
    return local if local.exists() else None


def load_config(explicit: str | None = None) -> Config:
    path = find_config_path(explicit)
    if path is None:
        return build_config({})
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return build_config(data, path)


def read_secret(env: str | None, file: str | None, what: str) -> str | None:
    """A secret from an environment variable or a file, never from the repo."""
    if env:
        value = os.environ.get(env)
        if value is None:
            raise ConfigError(f"{what}: environment variable {env} is not set")
        return value
    if file:
        try:
            return Path(file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{what}: cannot read password_file {file}: {exc.strerror}") from None
    return None
