"""What the customer master data says about one message: its product and contract.

A customer with installed products (``casegate customers import``) usually
names the one that fails by its serial number; a customer with a single
product needs not. The contract that covers the case is the product's
own, when it is valid, else the customer's contract valid today. The rules
see the product's warranty and the contract's level (daemon/stages/classify.py),
the policy gives the level its own clock (``[policy.contract_levels]``), and
the vendor notice lists the product.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session

from ...storage import customers as store
from ...storage.models import Contract, Customer, Product


def product_in_text(products: list[Product], text: str) -> Product | None:
    """The product whose serial number the text names (the longest, when several do)."""
    folded = text.casefold()
    named = [p for p in products if p.serial and p.serial.casefold() in folded]
    return max(named, key=lambda p: len(p.serial), default=None)


def product_and_contract(session: Session, customer: Customer | None, text: str,
                         day: date) -> tuple[Product | None, Contract | None]:
    """The product a new case is about and the contract covering it (None when unknown)."""
    if customer is None or customer.external_id is None:
        return None, None  # only imported customers have master data
    products = store.products_of(session, customer)
    product = product_in_text(products, text) or (products[0] if len(products) == 1 else None)
    return product, contract_for(session, customer, product, day)


def contract_for(session: Session, customer: Customer, product: Product | None, day: date) -> Contract | None:
    if product is not None and product.contract is not None and product.contract.valid_on(day):
        return product.contract
    return store.current_contract(session, customer, day)


def warranty_expired(product: Product | None, customer: Customer | None, day: date) -> bool | None:
    """Known out of warranty (True), known in warranty (False), or unknown (None)."""
    end = product.warranty_end if product is not None else None
    if end is None and customer is not None:
        end = customer.warranty_end
    return None if end is None else end < day
