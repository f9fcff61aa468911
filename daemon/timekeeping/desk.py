"""What the timekeeping side of the service desk works with, as one typed value.

Timer handlers, aftercare and the vendor escalation all need the same few
things: the SLA policy, the notifier, who the staff and the vendors are, the
attachment store and the scheduler settings. They get them as a ``Desk``
(built once by the application), not by reaching into an application object.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import ServiceConfig
from ..directory.staff import StaffDirectory
from ..directory.vendors import VendorDirectory
from ..notify.notifier import Notifier
from .policy import Policy
from .settings import SchedulerConfig
from ...storage.blobs import BlobStore


@dataclass(frozen=True)
class Desk:
    service: ServiceConfig
    policy: Policy
    notifier: Notifier
    staff: StaffDirectory
    vendors: VendorDirectory
    blobs: BlobStore
    settings: SchedulerConfig
    # [report] customer_reports: the sweep mails each customer's quarterly statistics.
    customer_reports: bool = False
