"""The vendors we escalate to: who they are and how their mail looks.

Config (``[[vendors]]``, all figures per vendor)::

    [[vendors]]
    name = "Huawei"
    address = "support@huawei.example"       # where cases are opened
    customer_number = "CN-88-1234"           # our contract/customer number with the vendor
    case_number_regex = "(?:Case|SR)[ #:]*(\\d{8,})"   # group 1 (or the match) is their number
    reminder_every = "1d"                    # "wd" = working days; "none" = never remind
    language = "en"                          # language of our mail to them
    aliases = ["华为"]                        # other names accepted by #vendor
    domains = ["huawei.example"]             # other sender domains that are this vendor

A directory, like the staff directory: whoever needs to know whether an
address is a vendor's asks here (the sender's role, loop protection, the
vendor escalation itself).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..addresses import make_address
from ..config import Config, ConfigError
from ..durations import Duration

KEYS = ("name", "address", "customer_number", "case_number_regex", "reminder_every", "language", "aliases",
         "domains")


class UnknownVendor(ValueError):
    """``#vendor NAME`` named no configured vendor."""


@dataclass(frozen=True)
class Vendor:
    name: str
    address: str
    customer_number: str
    case_number: re.Pattern[str] | None
    reminder_every: Duration | None
    language: str
    aliases: tuple[str, ...]
    domains: tuple[str, ...]

    def names(self) -> set[str]:
        return {n.casefold() for n in (self.name, *self.aliases)}

    def sends_from(self, address: str) -> bool:
        addr = address.strip().lower()
        return addr == self.address or addr.rpartition("@")[2] in self.domains

    def find_case_number(self, text: str) -> str | None:
        if self.case_number is None or not text:
            return None
        m = self.case_number.search(text)
        if m is None:
            return None
        return (m.group(1) if m.groups() and m.group(1) else m.group(0)).strip()[:100] or None


class VendorDirectory:
    """The configured vendors, looked up by name/alias or by sender address."""

    def __init__(self, vendors: tuple[Vendor, ...] = ()) -> None:
        self.vendors = vendors

    @classmethod
    def from_config(cls, config: Config) -> VendorDirectory:
        file = str(config.path) if config.path else "<defaults>"
        data = config.extra.get("vendors", [])
        if not isinstance(data, list):
            raise ConfigError(f"{file}: vendors: expected an array of tables ([[vendors]])")
        out: list[Vendor] = []
        for i, item in enumerate(data):
            out.append(parse_vendor(item, f"{file}: vendors[{i}]"))
        names: dict[str, int] = {}
        for i, v in enumerate(out):
            for n in v.names():
                if n in names:
                    raise ConfigError(f"{file}: vendors[{i}]: name or alias {n!r} is also vendors[{names[n]}]")
                names[n] = i
        return cls(tuple(out))

    def by_name(self, name: str) -> Vendor | None:
        key = name.strip().casefold()
        return next((v for v in self.vendors if key in v.names()), None)

    def by_address(self, address: str | None) -> Vendor | None:
        if not address:
            return None
        return next((v for v in self.vendors if v.sends_from(address)), None)

    def known(self, name: str) -> bool:
        return self.by_name(name) is not None


def parse_vendor(item: Any, where: str) -> Vendor:
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: expected a table")
    unknown = sorted(set(item) - set(KEYS))
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key (expected one of: {', '.join(KEYS)})")
    for key in ("name", "address"):
        if not isinstance(item.get(key), str) or not item[key].strip():
            raise ConfigError(f"{where}.{key}: required string is missing")
    address = item["address"].strip().lower()
    try:
        make_address(address)
    except ValueError:
        raise ConfigError(f"{where}.address: not a single e-mail address: {item['address']!r}") from None
    regex = None
    if item.get("case_number_regex"):
        try:
            regex = re.compile(str(item["case_number_regex"]), re.IGNORECASE)
        except re.error as exc:
            raise ConfigError(f"{where}.case_number_regex: invalid regular expression: {exc}") from None
    every_text = item.get("reminder_every", "1d")
    every: Duration | None = None
    if every_text != "none":
        try:
            every = Duration.parse(every_text)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}.reminder_every: {exc}") from None
        if not every:
            raise ConfigError(f"{where}.reminder_every: must be more than zero (or \"none\")")
    language = item.get("language", "en")
    if language not in ("zh", "en"):
        raise ConfigError(f"{where}.language: expected zh or en, got {language!r}")
    lists = {}
    for key in ("aliases", "domains"):
        value = item.get(key, [])
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            raise ConfigError(f"{where}.{key}: expected a list of strings")
        lists[key] = tuple(x.strip() for x in value if x.strip())
    return Vendor(
        name=item["name"].strip(), address=address, customer_number=str(item.get("customer_number", "")),
        case_number=regex, reminder_every=every, language=language, aliases=lists["aliases"],
        domains=tuple(d.lower() for d in lists["domains"]),
    )
