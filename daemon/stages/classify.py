"""Classify: the admins' rules decide priority, category, queue and route of a new case.

Only mail that will open a case is classified; replies keep their case's
classification. A fax whose text could not be read gets at least the fax
default priority, since the rules could not see it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from ..config import ClassificationConfig
from ..directory.master_data import warranty_expired
from ..fax.intake import FaxIntake
from ..inbound import Source
from ..timekeeping.policy import Policy
from .context import MessageContext
from ...parsers.message import ParsedMessage
from ...rules import Classification, ClassifyInput, RuleStore
from ...storage.models import Contract, Customer, Product


class Classifier:
    """The rules as one message is judged by them (also ``casegate rules test``)."""

    def __init__(self, rules: RuleStore, settings: ClassificationConfig, policy: Policy, fax: FaxIntake) -> None:
        self.rules = rules
        self.settings = settings
        self.policy = policy
        self.fax = fax

    def classify(self, parsed: ParsedMessage, source: Source, customer: Customer | None, now: datetime,
                 text_override: str | None = None, *, product: Product | None = None,
                 contract: Contract | None = None) -> Classification:
        # The product's warranty (customer master data), else the customer record's.
        warranty = warranty_expired(product, customer, now.date())
        cls = self.settings
        result = self.rules.current().classify(
            ClassifyInput(
                message=parsed,
                source_name=source.name,
                source_kind="fax" if parsed.fax is not None else source.kind,
                customer_name=customer.name if customer else None,
                customer_company=customer.company if customer else None,
                contract_id=contract.external_id if contract else (customer.contract_id if customer else None),
                warranty_expired=warranty,
                contract_level=(contract.level or None) if contract else None,
                outside_working_hours=not self.policy.calendar.is_working_time(now),
                text_override=text_override,
            ),
            default_priority=cls.default_priority,
            default_queue=cls.default_queue,
            default_category=cls.default_category,
        )
        return self.fax.adjust_classification(parsed, result)


class Classify:
    name = "classify"
    after_settled = False

    def __init__(self, classifier: Classifier) -> None:
        self.classifier = classifier

    def run(self, session: Session, ctx: MessageContext) -> None:
        if ctx.match is not None or ctx.automatic is not None or ctx.staff is not None:
            return  # nothing new is opened
        parsed = ctx.parsed
        assert parsed is not None and ctx.now is not None
        ctx.classification = self.classifier.classify(parsed, ctx.inbound.source, ctx.customer, ctx.now,
                                                      ctx.fax_text, product=ctx.product, contract=ctx.contract)
