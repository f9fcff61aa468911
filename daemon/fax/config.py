"""The ``[fax]`` configuration section, validated into a typed object.

config.py passes ``[fax]`` through raw (``config.extra["fax"]``) so the fax
code owns its schema; this module checks it with the same builder as every
other section, so a bad key is reported with the file and the dotted key
before the daemon starts. Gateway patterns from the file are appended to the
built-in ones (``parsers.fax.DEFAULT_FAX_PATTERNS``), never replace them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from ..config import PRIORITIES, Config, ConfigError, build_section
from ...parsers.fax import DEFAULT_FAX_PATTERNS, FaxPattern, FaxPatternError

#: The header pattern for the messages our own spool source synthesizes. It
#: comes first so such a fax is attributed to the spool, not to Asterisk
#: (whose pattern also knows some X-Fax-* headers).
SPOOL_PATTERN = FaxPattern.build(
    "casegate-spool",
    headers={
        "X-Casegate-Fax-File": r"\S",
        "X-Fax-Sender": r"(?P<number>\S.*)",
        "X-Fax-Caller-ID": r"(?P<caller_id>\S.*)",
        "X-Fax-Pages": r"(?P<pages>\d+)",
        "X-Fax-Received": r"(?P<received>\S.*)",
    },
    gateway="spool",
)

REPLY_FORMATS = ("pdf", "text")


@dataclass(frozen=True)
class FaxConfig:
    """Typed ``[fax]`` section; see config.example.toml for every key."""

    default_region: str = "CN"
    timezone: str = ""  # empty: service.timezone
    detect_in_mail: bool = True
    # Who may send gateway notices into ordinary mailboxes: addresses, or
    # "@domain" for a whole domain. Empty: nobody (only fax sources carry faxes).
    gateway_senders: tuple[str, ...] = ()
    ocr: bool = True
    ocr_languages: tuple[str, ...] = ("chi_sim", "chi_tra", "eng")
    ocr_max_pages: int = 10
    ocr_timeout: timedelta = timedelta(seconds=120)
    ocr_dpi: int = 200
    ocr_workers: int = 2
    default_priority: str = "P2"
    reply_gateway: str = ""
    reply_format: str = "pdf"
    reply_font: str = ""
    # Not a TOML scalar: the [[fax.patterns]] tables, compiled.
    patterns: tuple[FaxPattern, ...] = field(default=())

    @property
    def all_patterns(self) -> tuple[FaxPattern, ...]:
        return (SPOOL_PATTERN, *DEFAULT_FAX_PATTERNS, *self.patterns)

    def is_gateway_sender(self, address: str | None) -> bool:
        """May ``address`` send fax notices into an ordinary mailbox?"""
        if not address:
            return False
        addr = address.strip().lower()
        domain = "@" + addr.rpartition("@")[2]
        return any(s.strip().lower() in (addr, domain) for s in self.gateway_senders)

    def tzinfo(self, config: Config) -> ZoneInfo:
        return ZoneInfo(self.timezone or config.service.timezone)

    def gateway_address(self, e164: str) -> str | None:
        """The e-mail-to-fax address for ``e164``; None when no gateway is set.

        The template knows ``{number}`` (E.164 without '+', what most
        gateways want in the local part), ``{e164}`` (with '+') and
        ``{national}`` (national digits, e.g. 02087681011).
        """
        if not self.reply_gateway:
            return None
        digits = e164.lstrip("+")
        try:
            national = "0" + str(phonenumbers.parse(e164).national_number)
        except phonenumbers.NumberParseException:
            national = digits
        return self.reply_gateway.format(number=digits, e164=e164, national=national)


def load_fax_config(config: Config) -> FaxConfig:
    """Validate ``config.extra["fax"]``; ConfigError names file and key."""
    file = str(config.path) if config.path else "<defaults>"
    where = f"{file}: fax"
    data: dict[str, Any] = dict(config.extra.get("fax", {}) or {})
    raw_patterns = data.pop("patterns", [])
    cfg: FaxConfig = build_section(FaxConfig, data, where)
    if not isinstance(raw_patterns, list):
        raise ConfigError(f"{where}.patterns: expected an array of tables ([[fax.patterns]])")
    patterns = []
    for i, item in enumerate(raw_patterns):
        try:
            patterns.append(FaxPattern.from_dict(item))
        except FaxPatternError as exc:
            raise ConfigError(f"{where}.patterns[{i}]: {exc}") from None
    cfg = replace(cfg, patterns=tuple(patterns))

    if cfg.default_priority not in PRIORITIES:
        raise ConfigError(f"{where}.default_priority: expected one of {', '.join(PRIORITIES)}, "
                          f"got {cfg.default_priority!r}")
    if cfg.reply_format not in REPLY_FORMATS:
        raise ConfigError(f"{where}.reply_format: expected one of {', '.join(REPLY_FORMATS)}, "
                          f"got {cfg.reply_format!r}")
    if cfg.default_region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(f"{where}.default_region: unknown region {cfg.default_region!r} (e.g. \"CN\")")
    cfg = replace(cfg, default_region=cfg.default_region.upper())
    for key in ("ocr_max_pages", "ocr_dpi", "ocr_workers"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{where}.{key}: must be at least 1")
    if not cfg.ocr_languages or not all(re.fullmatch(r"[A-Za-z0-9_]+", lang) for lang in cfg.ocr_languages):
        raise ConfigError(f"{where}.ocr_languages: expected tesseract language names such as \"chi_sim\"")
    try:
        cfg.tzinfo(config)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where}.timezone: unknown time zone {cfg.timezone!r}") from None
    if cfg.reply_gateway:
        try:
            address = cfg.gateway_address("+862087681011") or ""
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"{where}.reply_gateway: cannot format ({exc}); "
                              "use {number}, {e164} or {national}") from None
        if address.count("@") != 1:
            raise ConfigError(f"{where}.reply_gateway: expected an address template such as "
                              f"\"{{number}}@fax.gateway.example\", got {cfg.reply_gateway!r}")
    return cfg
