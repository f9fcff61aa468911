"""Vendor hand-off hook: where `#vendor NAME [CASE-NO]` goes after it is recorded.

The workflow records the command as a ``vendor`` event on the case and then
calls every registered handler inside the same transaction, so a handler's
writes (a vendor-case row, a mail to the vendor, the vendor case number for
the customer) commit or roll back with the command. The vendor escalation
(issue 6) plugs in with ``registry.add(handler)`` and may restrict accepted
names with ``registry.known_vendor``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session

from ...storage.models import Case


@dataclass(frozen=True)
class VendorRequest:
    vendor: str  # as the engineer wrote it
    vendor_case_number: str | None  # the vendor's own case number, when already known
    actor: str  # engineer e-mail
    at: datetime


class VendorHandler(Protocol):
    def __call__(self, session: Session, case: Case, request: VendorRequest) -> None: ...


class VendorHandoffRegistry:
    def __init__(self) -> None:
        self.handlers: list[VendorHandler] = []
        # None: any vendor name is accepted; otherwise a predicate on the name.
        self.known_vendor: Callable[[str], bool] | None = None

    def add(self, handler: VendorHandler) -> None:
        self.handlers.append(handler)

    def hand_off(self, session: Session, case: Case, request: VendorRequest) -> None:
        for handler in self.handlers:
            handler(session, case, request)
