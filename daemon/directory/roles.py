"""Sender roles and what each may do to a case: the permission table, in one place.

Anyone on the internet can write to the service address and learn a case
number (they are sequential, and every acknowledgement shows one). So what a
message may do to a case depends on who sent it *relative to that case*,
decided once per message (daemon/stages/roles.py):

============  ==========================================================
role          who
============  ==========================================================
customer      an address on record for the case's customer, a colleague
              at the customer's own (non-public) mail domain, or the
              recipient a signed reply address of the case was issued to;
              the sender of mail that opens a new case
staff         a configured staff address (commands need proof as well:
              a signed reply address or authenticated submission)
vendor        an address or domain of a configured vendor
third-party   anyone else writing to an existing case (e.g. by its number)
automation    bounces, DSNs, read receipts, abuse reports, out-of-office
              replies, list mail and monitoring systems
============  ==========================================================
"""

from __future__ import annotations

CUSTOMER = "customer"
STAFF = "staff"
VENDOR = "vendor"
THIRD_PARTY = "third-party"
AUTOMATION = "automation"
ROLES = (CUSTOMER, STAFF, VENDOR, THIRD_PARTY, AUTOMATION)

# Actions on an existing case.
HISTORY = "history"            # receive the case history ("查询进度")
CONFIRM = "confirm"            # confirm a fix, closing a resolved case
SCORE = "score"                # answer the satisfaction survey
REOPEN = "reopen"              # reopen a closed case by replying within the window
RECURRENCE = "recurrence"      # report that the fault is back
CUSTOMER_TEXT = "customer-text"  # be relayed to the engineer as "the customer replied"
COMMANDS = "commands"          # change the case by #commands (with proof)
VENDOR_NUMBER = "vendor-number"  # give the vendor's case number
STORE = "store"                # be kept on the case for the engineers to read

PERMISSIONS: dict[str, frozenset[str]] = {
    CUSTOMER: frozenset({STORE, HISTORY, CONFIRM, SCORE, REOPEN, RECURRENCE, CUSTOMER_TEXT}),
    STAFF: frozenset({STORE, COMMANDS}),
    VENDOR: frozenset({STORE, VENDOR_NUMBER}),
    THIRD_PARTY: frozenset({STORE}),
    AUTOMATION: frozenset({STORE, VENDOR_NUMBER}),  # a vendor's automatic acknowledgement names its number
}


def may(role: str | None, action: str) -> bool:
    """Whether a sender of ``role`` may do ``action`` to the case."""
    return action in PERMISSIONS.get(role or "", frozenset())
