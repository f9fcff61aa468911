"""Mailboxes and header text we write: one mailbox each, no control characters.

Everything a customer wrote (subject, name, address) can reach our headers,
so every header value passes through ``clean_header`` and every address
through ``make_address``, which refuses anything that is not one mailbox.
Header injection is closed here, at the one place all outgoing mail, and
every configured address, is checked.
"""

from __future__ import annotations

import re
from email.headerregistry import Address as HeaderAddress

CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


def clean_header(value: str, limit: int = 200) -> str:
    """One line of header text: controls folded to spaces, length capped."""
    text = CONTROL.sub(" ", value).strip()
    return text[:limit]


def make_address(email: str, name: str = "") -> HeaderAddress:
    """A single mailbox; raises ValueError for anything else."""
    email = email.strip()
    if CONTROL.search(email) or email.count("@") != 1 or any(c in email for c in " <>,;\"()"):
        raise ValueError(f"not a single e-mail address: {email!r}")
    local, _, domain = email.partition("@")
    return HeaderAddress(display_name=clean_header(name, 100), username=local, domain=domain)
