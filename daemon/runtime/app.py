"""Wiring: one place that builds the parts from a Config.

No module-level singletons: the CLI, the daemon and the tests each build an
``App`` from an explicit Config, so a test can run two daemons on one
database in one process.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from ..notify.compose import Renderer
from ..config import Config, ConfigError
from ..fax.intake import install as install_fax_intake
from .mailer import make_transport
from .outbox import OutboxWorker
from .parse_pool import ParsePool
from ..stages.pipeline import Pipeline, utcnow
from ..timekeeping.policy import Policy, PolicyError
from ..timekeeping.notices import requester
from ..timekeeping.scheduler import install as install_timekeeping
from ..workflow.conversation import build_workflow
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
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.policy = load_policy(config)
        self.db = Database(config.database_url)
        if migrate:
            self.db.migrate()
        self.rules = RuleStore(rules_folder(config))
        self.renderer = Renderer(default_language=config.service.default_language)
        self.blobs = BlobStore(config.attachments_dir)
        self.pipeline = Pipeline(config, self.db, self.rules, self.policy, self.renderer, self.blobs, clock)
        self.pipeline.parse_pool = ParsePool(config.service.parse_workers)
        self.fax = install_fax_intake(self.pipeline, config)  # validates [fax]; OCR and fax replies
        # Staff directory, signed reply addresses and engineers' commands
        # (daemon/workflow/conversation.py); ``self.staff`` is what escalation asks for roles.
        self.workflow = build_workflow(config, self.pipeline)
        self.staff = self.workflow.staff
        # SLA timers, aftercare (confirm, survey, recurrence) and vendor mail (daemon/timekeeping/scheduler.py).
        install_timekeeping(self)
        self.workflow.customer_route = lambda session, case: requester(session, self, case)
        self.transport = make_transport(config.outgoing, config.resolve(config.outgoing.maildir))
        self.outbox = OutboxWorker(self.db, self.transport, config.outgoing, clock)

    def close(self) -> None:
        self.pipeline.parse_pool.close()
        self.db.dispose()
