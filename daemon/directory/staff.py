"""The staff directory: who works cases, from the ``[[staff]]`` config entries.

Engineers never log in; they are known only by their e-mail address. The
directory answers the questions the workflow and the SLA escalation ask:
"is this sender staff?", "who is NAME in `#assign NAME`?", "who takes new
cases in this queue?", "who holds role R?".

Roles are free strings. The conventional ones, used by the default SLA
escalation policy, are:

- ``service-engineer``   -- works cases, first escalation level;
- ``support-supervisor`` -- second level, takes over stuck cases;
- ``general-manager``    -- last level.

``queues`` lists the queues a member takes *new cases* from (``"*"`` for
all); a supervisor who should not receive assignments simply lists none.

Example::

    [[staff]]
    name = "Wang Wei"
    email = "wang.wei@example.com"
    role = "service-engineer"
    queues = ["support", "network"]
    on_duty = true
    aliases = ["王伟", "wangwei"]
    language = "zh"          # language of the mail casegate sends them
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..config import Config, ConfigError, build_section

CONVENTIONAL_ROLES = ("service-engineer", "support-supervisor", "general-manager")


@dataclass(frozen=True)
class StaffMember:
    name: str
    email: str
    role: str = "service-engineer"
    queues: tuple[str, ...] = ()
    on_duty: bool = True
    aliases: tuple[str, ...] = ()
    language: str = ""  # empty: the service's default language

    def takes(self, queue: str) -> bool:
        return "*" in self.queues or queue in self.queues

    def names(self) -> set[str]:
        """Every name ``#assign`` accepts for this member, folded."""
        return {_fold(self.name), _fold(self.email), _fold(self.email.partition("@")[0]),
                *(_fold(a) for a in self.aliases)}


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


class StaffDirectory:
    """Immutable lookup tables over the configured staff, in config order."""

    def __init__(self, members: Iterable[StaffMember] = ()) -> None:
        self.members: tuple[StaffMember, ...] = tuple(members)
        self._by_email = {m.email: m for m in self.members}

    @classmethod
    def from_config(cls, config: Config) -> "StaffDirectory":
        file = str(config.path) if config.path else "<defaults>"
        return cls.from_data(config.extra.get("staff", []), file)

    @classmethod
    def from_data(cls, data: Any, file: str = "<defaults>") -> "StaffDirectory":
        if not isinstance(data, list):
            raise ConfigError(f"{file}: staff: expected an array of tables ([[staff]])")
        members: list[StaffMember] = []
        seen_emails: dict[str, int] = {}
        seen_names: dict[str, tuple[int, str]] = {}
        for i, item in enumerate(data):
            where = f"{file}: staff[{i}]"
            member = build_section(StaffMember, item, where)
            email = member.email.strip().lower()
            local, at, domain = email.partition("@")
            if not at or not local or not domain or any(c in email for c in " <>,;\"()"):
                raise ConfigError(f"{where}.email: not a single e-mail address: {member.email!r}")
            if not member.name.strip():
                raise ConfigError(f"{where}.name: must not be empty")
            if not member.role.strip():
                raise ConfigError(f"{where}.role: must not be empty")
            if member.language not in ("", "zh", "en"):
                raise ConfigError(f"{where}.language: expected one of zh, en, got {member.language!r}")
            if email in seen_emails:
                raise ConfigError(f"{where}.email: {email} is already staff[{seen_emails[email]}]")
            seen_emails[email] = i
            member = StaffMember(
                name=member.name.strip(), email=email, role=member.role.strip(),
                queues=tuple(q.strip() for q in member.queues if q.strip()),
                on_duty=member.on_duty, aliases=tuple(a.strip() for a in member.aliases if a.strip()),
                language=member.language,
            )
            for name in member.names():
                other = seen_names.get(name)
                if other is not None and other[1] != email:
                    raise ConfigError(
                        f"{where}: name or alias {name!r} is ambiguous (also staff[{other[0]}], {other[1]})"
                    )
                seen_names[name] = (i, email)
            members.append(member)
        return cls(members)

    def __iter__(self) -> Iterator[StaffMember]:
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)

    def by_email(self, address: str | None) -> StaffMember | None:
        if not address:
            return None
        return self._by_email.get(address.strip().lower())

    def by_name(self, name: str) -> StaffMember | None:
        """A member by name, alias, full address or address local part."""
        key = _fold(name)
        if not key:
            return None
        for member in self.members:
            if key in member.names():
                return member
        return None

    def engineers_for(self, queue: str, *, on_duty_only: bool = True) -> list[StaffMember]:
        """Members who take new cases of ``queue``, in config order."""
        return [m for m in self.members if m.takes(queue) and (m.on_duty or not on_duty_only)]

    def with_role(self, role: str, *, on_duty_only: bool = False) -> list[StaffMember]:
        """Members holding ``role`` (e.g. "support-supervisor"), in config order."""
        return [m for m in self.members if m.role == role and (m.on_duty or not on_duty_only)]
