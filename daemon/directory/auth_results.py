"""Authentication-Results (RFC 8601): did a trusted MTA authenticate this staff mailbox?

Pure parsing, no I/O. Anyone can write an Authentication-Results header, so
a header counts only when

- its authserv-id is configured as trusted (``[security]
  trusted_authserv_ids``), and
- it is one of the headers at the top: each hop prepends its own, so we
  walk the Authentication-Results headers from the top and stop at the
  first one that is unreadable or written by an untrusted authserv-id.
  Anything below it may have been written by the sender (RFC 8601 section 5
  makes the trusted MTA responsible for removing foreign headers with its
  own id).

A mailbox is proven only by authenticated submission (section 2.7.4):
``auth=pass smtp.auth=<identity>`` where the identity is the staff member's
address (domain compared case-insensitively, local part exactly; a quoted
local part is unquoted first; a bare user name matches only when
``auth_user_domain`` names its domain).

DKIM, SPF and DMARC prove a *domain*, not a mailbox: anybody who can send
from that domain passes them. They count only when the admin accepts
domain-level proof (``accept_domain_authentication``), and never when a
trusted header shows that someone else authenticated the submission.

Values are parsed from the raw header, never from RFC 2047-decoded text:
decoding would turn an encoded word in a value the sender controls (a MAIL
FROM local part copied into ``smtp.mailfrom``) into ``; auth=pass ...``.

Our own small parser rather than the ``authres`` package (1.2.0, 2019): that
one re-scans the rest of the header for every token (quadratic: seconds for
a few hundred KB) and, by default, silently drops a quoted ``smtp.auth``
value that another property follows.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email import policy as email_policy
from email.parser import BytesHeaderParser

HEADER = "Authentication-Results"

_DIGITS = frozenset(string.digits)
# RFC 5321 Ldh-str (Keyword in RFC 8601); "_" is seen in the wild.
_KEYWORD = frozenset(string.ascii_letters + string.digits + "-_")
# RFC 2045 token: printable ASCII without tspecials.
_TOKEN = frozenset(chr(c) for c in range(33, 127)) - frozenset('()<>@,;:\\"/[]?=')
_ATEXT = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~")
_WSP = " \t\r\n"


class AuthResultsSyntaxError(ValueError):
    """An Authentication-Results value that does not follow RFC 8601."""


@dataclass(frozen=True)
class MethodResult:
    method: str  # dkim, spf, dmarc, auth, ... (lower case)
    result: str  # pass, fail, none, ... (lower case)
    props: dict[str, str] = field(default_factory=dict)  # "header.d" -> "example.com" (first of each)
    version: str | None = None  # "dkim/1" -> "1"
    reason: str | None = None
    # Properties written as [local-part] "@" domain: "smtp.auth" -> (local part, domain),
    # the local part unquoted ("" for "@domain"), the domain as written.
    addresses: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class AuthResults:
    authserv_id: str  # lower case
    results: tuple[MethodResult, ...]
    version: str | None = None


@dataclass(frozen=True)
class Verdict:
    """Whether the trusted headers prove the mailbox; ``how`` says what proved it, or why nothing did."""

    proven: bool
    how: str


# ------------------------------------------------------------------ parsing


def _ptext(ch: str) -> bool:
    """A character of an unquoted property value (token, dot-atom, "@", base64)."""
    return ch not in '()";\\' and (ord(ch) > 127 or 32 < ord(ch) < 127)


def _domain_char(ch: str) -> bool:
    return ch in _KEYWORD or ch == "." or ord(ch) > 127


class _Reader:
    """A cursor over one header value; every step moves forward, so parsing is linear."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.n = len(text)

    def peek(self) -> str:
        return self.s[self.i] if self.i < self.n else ""

    def at_end(self) -> bool:
        return self.i >= self.n

    def run(self, accept: frozenset[str] | Callable[[str], bool]) -> str:
        """The longest run of accepted characters at the cursor."""
        start = self.i
        s, n = self.s, self.n
        if isinstance(accept, frozenset):
            while self.i < n and s[self.i] in accept:
                self.i += 1
        else:
            while self.i < n and accept(s[self.i]):
                self.i += 1
        return s[start:self.i]

    def expect(self, ch: str, what: str) -> None:
        if self.peek() != ch:
            raise AuthResultsSyntaxError(f"expected {what} at {self.i}")
        self.i += 1

    def cfws(self) -> None:
        """Skip folding white space and comments (nested; quoted-pairs inside)."""
        while self.i < self.n:
            ch = self.s[self.i]
            if ch in _WSP:
                self.i += 1
            elif ch == "(":
                self._comment()
            else:
                return

    def _comment(self) -> None:
        start = self.i
        depth = 0
        while self.i < self.n:
            ch = self.s[self.i]
            self.i += 1
            if ch == "\\":
                self.i += 1
            elif ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
                if depth == 0:
                    return
        raise AuthResultsSyntaxError(f"unterminated comment at {start}")

    def quoted(self) -> str:
        """A quoted-string at the cursor, unquoted (quoted-pairs resolved, folding removed)."""
        start = self.i
        self.expect('"', "a quoted string")
        out: list[str] = []
        while self.i < self.n:
            ch = self.s[self.i]
            self.i += 1
            if ch == "\\" and self.i < self.n:
                out.append(self.s[self.i])
                self.i += 1
            elif ch == '"':
                return "".join(out)
            elif ch not in "\r\n":
                out.append(ch)
        raise AuthResultsSyntaxError(f"unterminated quoted string at {start}")

    def value(self) -> str:
        """RFC 2045 value: token / quoted-string."""
        if self.peek() == '"':
            return self.quoted()
        token = self.run(_TOKEN)
        if not token:
            raise AuthResultsSyntaxError(f"expected a value at {self.i}")
        return token

    def pvalue(self) -> tuple[str, tuple[str, str] | None]:
        """pvalue = [CFWS] ( value / [ [ local-part ] "@" ] domain-name ) [CFWS].

        Returns the text (a quoted local part re-quoted only when it needs
        it) and, for the address form, (local part, domain).
        """
        self.cfws()
        if self.peek() == '"':
            content = self.quoted()
            if self.peek() != "@":
                self.cfws()
                return content, None
            self.i += 1
            domain = self.run(_domain_char)
            if not is_domain(domain):
                raise AuthResultsSyntaxError(f"expected a domain after a quoted local part at {self.i}")
            self.cfws()
            return f"{_quote_local(content)}@{domain}", (content, domain)
        text = self.run(_ptext)
        self.cfws()
        return text, _split_unquoted(text)


def _is_dot_atom(text: str) -> bool:
    return bool(text) and all(part and all(c in _ATEXT or ord(c) > 127 for c in part) for part in text.split("."))


def is_domain(text: str) -> bool:
    labels = text.rstrip(".").split(".") if text else []
    return bool(labels) and all(label and all(_domain_char(c) and c != "." for c in label) for label in labels)


def _quote_local(local: str) -> str:
    if _is_dot_atom(local):
        return local
    return '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _split_unquoted(text: str) -> tuple[str, str] | None:
    """``local@domain`` or ``@domain`` (unquoted local part) -> (local, domain); anything else None."""
    local, at, domain = text.rpartition("@")
    if not at or "@" in local or not is_domain(domain):
        return None
    if local and not _is_dot_atom(local):
        return None
    return local, domain


def _parse(header: str) -> AuthResults:
    r = _Reader(header)
    r.cfws()
    authserv_id = r.value()
    r.cfws()
    version = None
    if r.peek() in _DIGITS:
        version = r.run(_DIGITS)
        r.cfws()
    results: list[MethodResult] = []
    while True:
        r.cfws()
        if r.at_end():
            break
        r.expect(";", '";"')
        r.cfws()
        if r.at_end() or r.peek() == ";":  # a trailing or doubled ";", common in the wild
            continue
        results_item = _resinfo(r)
        if results_item is not None:
            results.append(results_item)
    return AuthResults(authserv_id.lower(), tuple(results), version)


def _resinfo(r: _Reader) -> MethodResult | None:
    """methodspec [ reasonspec ] *propspec, after the ";"; None for "none"."""
    method = r.run(_KEYWORD)
    if not method:
        raise AuthResultsSyntaxError(f"expected a method at {r.i}")
    r.cfws()
    if method.lower() == "none" and r.peek() in (";", ""):
        return None
    version = None
    if r.peek() == "/":
        r.i += 1
        r.cfws()
        version = r.run(_DIGITS)
        if not version:
            raise AuthResultsSyntaxError(f"expected a method version at {r.i}")
        r.cfws()
    r.expect("=", '"=" after the method')
    r.cfws()
    result = r.run(_KEYWORD)
    if not result:
        raise AuthResultsSyntaxError(f"expected a result at {r.i}")
    r.cfws()
    reason: str | None = None
    props: dict[str, str] = {}
    addresses: dict[str, tuple[str, str]] = {}
    while not r.at_end() and r.peek() != ";":
        key = r.run(_KEYWORD)
        if not key:
            raise AuthResultsSyntaxError(f"expected a property at {r.i}")
        r.cfws()
        if r.peek() == "=":
            # "reason=..." (reasonspec), or a bare key=value some MTAs add
            # (Microsoft's "action=none"): not a property, read and dropped.
            r.i += 1
            r.cfws()
            text, _ = r.pvalue()
            if key.lower() == "reason" and reason is None:
                reason = text
            continue
        r.expect(".", '"." in ptype.property')
        r.cfws()
        prop = r.run(_KEYWORD)
        if not prop:
            raise AuthResultsSyntaxError(f"expected a property name at {r.i}")
        r.cfws()
        r.expect("=", '"=" after the property')
        text, address = r.pvalue()
        name = f"{key.lower()}.{prop.lower()}"
        if name not in props:  # the first of each counts
            props[name] = text
            if address is not None:
                addresses[name] = address
    return MethodResult(method.lower(), result.lower(), props, version, reason, addresses)


def parse(header: str) -> AuthResults | None:
    """One Authentication-Results header value (RFC 8601 section 2.2); None when malformed."""
    try:
        return _parse(header)
    except AuthResultsSyntaxError:
        return None


def header_values(raw: bytes, name: str = HEADER) -> list[str]:
    """The raw values of header ``name``, top first, exactly as written (no RFC 2047 decoding)."""
    msg = BytesHeaderParser(policy=email_policy.compat32).parsebytes(raw, headersonly=True)
    lname = name.lower()
    out: list[str] = []
    for key, value in msg.raw_items():
        if key.lower() == lname:
            out.append(str(value).encode("ascii", "surrogateescape").decode("utf-8", "replace"))
    return out


# ------------------------------------------------------------------ proof


def _norm_domain(domain: str) -> str:
    return domain.strip().rstrip(".").lower()


def split_mailbox(text: str) -> tuple[str, str] | None:
    """``local@domain`` or ``"quoted local"@domain`` -> (local part, lower-case domain); else None."""
    text = text.strip().removeprefix("<").removesuffix(">")
    if text.startswith('"'):
        r = _Reader(text)
        try:
            local = r.quoted()
        except AuthResultsSyntaxError:
            return None
        domain = text[r.i + 1:] if r.peek() == "@" else ""
        return (local, _norm_domain(domain)) if is_domain(domain) else None
    found = _split_unquoted(text)
    if found is None or not found[0]:
        return None
    return found[0], _norm_domain(found[1])


def trusted_top(headers: Iterable[str], trusted_ids: Iterable[str]) -> tuple[list[AuthResults], str]:
    """The headers at the top written by a trusted authserv-id, and what ended the walk."""
    trusted = {t.strip().lower() for t in trusted_ids if t.strip()}
    out: list[AuthResults] = []
    for header in headers:
        try:
            ar = _parse(header)
        except AuthResultsSyntaxError as exc:
            return out, f"an unreadable Authentication-Results header ({exc})"
        if ar.authserv_id not in trusted:
            return out, f"an Authentication-Results header from the untrusted authserv-id {ar.authserv_id[:100]!r}"
        out.append(ar)
    return out, "the last Authentication-Results header" if out else "no Authentication-Results header"


def _auth_identity(res: MethodResult, user_domain: str | None) -> tuple[str, str] | None:
    """The mailbox ``smtp.auth`` names; a bare user name only with ``user_domain``."""
    if "smtp.auth" in res.addresses:
        local, domain = res.addresses["smtp.auth"]
        return (local, _norm_domain(domain)) if local else None
    text = res.props.get("smtp.auth", "")
    if not text:
        return None
    if "@" in text:
        return split_mailbox(text)
    if user_domain:
        return text, _norm_domain(user_domain)
    return None


def _domain_in(res: MethodResult, key: str) -> str | None:
    if key in res.addresses:
        return _norm_domain(res.addresses[key][1])
    text = res.props.get(key, "")
    return _norm_domain(text) if "@" not in text and is_domain(text) else None


def _domain_proof(res: MethodResult, domain: str) -> str | None:
    """A pass that proves ``domain`` (strict alignment: the sender's own domain, not a parent)."""
    keys = {"dmarc": ("header.from",), "dkim": ("header.d", "header.i"), "spf": ("smtp.mailfrom",)}.get(res.method, ())
    for key in keys:
        if _domain_in(res, key) == domain:
            return f"{res.method}=pass {key}={domain}"
    return None


def verify_sender(
    headers: Iterable[str],
    member_email: str | None,
    trusted_ids: Iterable[str],
    *,
    accept_domain: bool = False,
    user_domain: str | None = None,
) -> Verdict:
    """Do the trusted headers at the top prove that ``member_email`` submitted this message?

    ``headers`` are the raw Authentication-Results values, top first
    (:func:`header_values`).
    """
    trusted = [t for t in trusted_ids if t.strip()]
    if not trusted:
        return Verdict(False, "no authserv-id is trusted (security.trusted_authserv_ids)")
    mailbox = split_mailbox(member_email or "")
    if mailbox is None:
        return Verdict(False, f"{member_email!r} is not a mailbox")
    top, stop = trusted_top(headers, trusted)
    if not top:
        return Verdict(False, f"no Authentication-Results from a trusted authserv-id at the top (found {stop})")
    others: list[str] = []
    domain_pass: str | None = None
    for ar in top:
        for res in ar.results:
            if res.result != "pass":
                continue
            if res.method == "auth":
                identity = _auth_identity(res, user_domain)
                shown = res.props.get("smtp.auth", "")
                if identity == mailbox:
                    return Verdict(True, f"auth=pass smtp.auth={shown} by {ar.authserv_id}")
                if shown:
                    bare = "@" not in shown and not user_domain
                    others.append(shown[:100] + (" (a user name without a domain: see security.auth_user_domain)"
                                                 if bare else ""))
            elif domain_pass is None:
                found = _domain_proof(res, mailbox[1])
                if found is not None:
                    domain_pass = f"{found} by {ar.authserv_id}"
    if others:
        return Verdict(False, f"the trusted Authentication-Results show authenticated submission as "
                              f"{', '.join(others)}, not as {member_email}")
    if domain_pass is not None:
        if accept_domain:
            return Verdict(True, f"{domain_pass} (domain-level: security.accept_domain_authentication)")
        return Verdict(False, f"only domain-level proof ({domain_pass}), which does not prove the mailbox "
                              "(security.accept_domain_authentication is off)")
    return Verdict(False, f"no auth=pass smtp.auth={member_email} in the trusted Authentication-Results "
                          f"(read down to {stop})")


def authenticated_by(
    headers: Iterable[str],
    sender: str | None,
    trusted_ids: Iterable[str],
    *,
    accept_domain: bool = False,
    user_domain: str | None = None,
) -> str | None:
    """What proves ``sender`` (e.g. "auth=pass smtp.auth=a@example.com by mx"), or None."""
    verdict = verify_sender(headers, sender, trusted_ids, accept_domain=accept_domain, user_domain=user_domain)
    return verdict.how if verdict.proven else None
