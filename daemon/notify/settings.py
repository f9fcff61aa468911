"""``[templates]``: the admin's own wording, and the service facts every mail may quote.

Config (all optional)::

    [templates]
    dir = ""              # a folder whose zh/ and en/ files override the shipped ones, file by file
    hotline = ""          # the service hotline, e.g. "400-800-1234"
    postal_address = ""   # the service desk's address
    signature = ""        # the closing lines every customer mail ends with (default: the service name)
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Config, build_section


@dataclass(frozen=True)
class TemplatesConfig:
    dir: str = ""
    hotline: str = ""
    postal_address: str = ""
    signature: str = ""

    @classmethod
    def from_config(cls, config: Config) -> TemplatesConfig:
        file = str(config.path) if config.path else "<defaults>"
        return build_section(cls, config.extra.get("templates", {}), f"{file}: templates")
