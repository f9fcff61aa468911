"""Wiring: one place that builds the parts from a Config.

No module-level singletons: the CLI, the daemon and the tests each build an
``App`` from an explicit Config, so a test can run two daemons on one
database in one process. Reading top to bottom is the data flow: who is who
(staff, vendors), how we write (notifier), what the clock owes (desk), then
the pipeline's intake and stages, then the outbox that sends.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from ..clock import utcnow
from ..config import Config, ConfigError
from ..directory.reply_address import ReplyAddressSigner
from ..directory.security import SecurityConfig, load_secret
from ..directory.staff import StaffDirectory
from ..directory.vendors import VendorDirectory
from ..fax.config import load_fax_config
from ..fax.intake import build_fax_intake
from ..metrics import Metrics
from ..notify.compose import Renderer
from ..notify.notifier import Notifier
from ..notify.settings import TemplatesConfig
from ..notify.recipients import CustomerFinder
from ..stages.classify import Classifier
from ..stages.intake import Intake, parse_and_keep_attachments
from ..stages.pipeline import Pipeline, build_stages
from ..stages.thread import Threader
from ..timekeeping.aftercare import Aftercare
from ..timekeeping.desk import Desk
from ..timekeeping.policy import Policy, PolicyError
from ..timekeeping.report_mail import ReportConfig
from ..timekeeping.scheduler import SweepReport, replan_if_policy_changed, replan_open_cases, run_sweeps
from ..timekeeping.settings import SchedulerConfig
from ..workflow.conversation import Workflow
from .mailer import make_transport
from .outbox import OutboxWorker
from ..sources.parse_pool import ParsePool
from ...rules import RuleStore, default_folder
from ...storage.blobs import BlobStore
from ...storage.db import Database


def load_policy(config: Config) -> Policy:
    where = str(config.path) if config.path else "<defaults>"
    data = dict(config.extra.get("policy", {}))
    # One time zone unless the admin sets another for the working calendar.
    calendar = dict(data.get("calendar", {}))
    calendar.setdefault("timezone", config.service.timezone)
    data["calendar"] = calendar
    try:
        return Policy.from_dict(data, where)
    except PolicyError as exc:
        raise ConfigError(str(exc)) from None


def rules_folder(config: Config) -> Path:
    if config.classification.rules_dir:
        return config.resolve(config.classification.rules_dir)
    return default_folder()


class App:
    def __init__(
        self,
        config: Config,
        *,
        clock: Callable[[], datetime] = utcnow,
        migrate: bool = True,
    ) -> None:
        self.config = config
        self.clock = clock
        # Counters of this app alone (a registry of its own: two apps in one process count apart).
        self.metrics = Metrics()
        config.data_dir.mkdir(parents=True, exist_ok=True)
        # Every owned section is validated here, at start.
        self.policy = load_policy(config)
        fax_cfg = load_fax_config(config)
        security = SecurityConfig.from_config(config)
        self.staff = StaffDirectory.from_config(config)
        vendors = VendorDirectory.from_config(config)
        settings = SchedulerConfig.from_config(config)
        self.db = Database(config.database_url)
        if migrate:
            self.db.migrate()
        self.rules = RuleStore(rules_folder(config))
        self.blobs = BlobStore(config.attachments_dir)
        signer = ReplyAddressSigner(load_secret(config, security), config.service.address, security.token_length)
        looks = TemplatesConfig.from_config(config)
        renderer = Renderer(
            default_language=config.service.default_language,
            override=config.resolve(looks.dir) if looks.dir else None,
            service={"name": config.service.display_name, "hotline": looks.hotline,
                     "address": looks.postal_address, "signature": looks.signature},
        )
        self.notifier = Notifier(config.service, renderer, CustomerFinder(self.staff, vendors, fax_cfg), vendors,
                                 signer)
        self.desk = Desk(config.service, self.policy, self.notifier, self.staff, vendors, self.blobs, settings,
                         customer_reports=ReportConfig.from_config(config).customer_reports)
        # Engineers' commands and the customer conversation (daemon/workflow/).
        self.workflow = Workflow(self.desk, signer, security, clock)
        aftercare = Aftercare(self.desk)
        self.fax = build_fax_intake(config, fax_cfg)
        series = [config.service.case_number_format,
                  *(k.number_format for k in self.policy.kinds.values() if k.number_format)]
        threader = Threader(series, signer.verified)
        classifier = Classifier(self.rules, config.classification, self.policy, self.fax)
        stages = build_stages(config.service, self.desk, self.workflow, aftercare, self.fax, threader, classifier)
        self.pipeline = Pipeline(self.db, Intake(self.blobs, self.fax), stages, threader, classifier, clock,
                                 metrics=self.metrics, before_batch=(self.desk.notifier.renderer.refresh,))
        # Workers parse and also write the attachments (intake.parse_and_keep_attachments).
        self.parse_pool = ParsePool(config.service.parse_workers, config.service.parse_timeout.total_seconds(),
                                    parse=functools.partial(parse_and_keep_attachments, str(self.blobs.root)))
        self.transport = make_transport(config.outgoing, config.resolve(config.outgoing.maildir))
        self.outbox = OutboxWorker(self.db, self.transport, config.outgoing, clock)

    def replan_open_cases(self, now: datetime) -> int:
        """Re-plan open cases against the policy in force (at start: it may have changed)."""
        return replan_open_cases(self.desk, self.db, now)

    def replan_if_policy_changed(self, now: datetime) -> int | None:
        """At start: re-plan the open cases if the policy changed since they were planned (None: it did not)."""
        return replan_if_policy_changed(self.desk, self.db, now)

    def sweep(self, now: datetime, *, batch: int | None = None) -> SweepReport:
        """One run of the SLA sweeps at ``now`` (the scheduler's job)."""
        return run_sweeps(self.desk, self.db, now, batch=batch)

    def close(self) -> None:
        self.parse_pool.close()
        self.db.dispose()
