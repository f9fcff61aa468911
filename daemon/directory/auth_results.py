"""Authentication-Results (RFC 8601): did a trusted MTA authenticate the sender?

Pure parsing, no I/O. Only headers whose authserv-id is configured as
trusted count: anyone can write an Authentication-Results header, and RFC
8601 section 5 makes the border MTA responsible for removing foreign ones
that carry its own id. A header proves the sender when

- ``dmarc=pass`` with ``header.from`` equal to the sender's domain, or
- ``dkim=pass`` with ``header.d`` or the domain of ``header.i`` equal to
  the sender's domain, or
- ``spf=pass`` with ``smtp.mailfrom`` (address or domain) in the sender's domain.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class MethodResult:
    method: str  # dkim, spf, dmarc, ...
    result: str  # pass, fail, none, ...
    props: dict[str, str] = field(default_factory=dict)  # "header.d" -> "example.com"


@dataclass(frozen=True)
class AuthResults:
    authserv_id: str
    results: tuple[MethodResult, ...]


def _strip_comments(text: str) -> str:
    """Remove RFC 5322 comments (nested parentheses), keep quoted strings."""
    out: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    for ch in text:
        if escaped:
            if depth == 0:
                out.append(ch)
            escaped = False
            continue
        if ch == "\\":
            escaped = True
            if depth == 0:
                out.append(ch)
            continue
        if quoted:
            out.append(ch)
            if ch == '"':
                quoted = False
            continue
        if ch == "(":
            depth += 1
            out.append(" ")
            continue
        if ch == ")" and depth:
            depth -= 1
            continue
        if depth == 0:
            if ch == '"':
                quoted = True
            out.append(ch)
    return "".join(out)


def _split_semicolons(text: str) -> list[str]:
    parts, current, quoted = [], [], False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == ";" and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts]


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def parse(header: str) -> AuthResults | None:
    """One Authentication-Results header value; None when malformed."""
    text = " ".join(_strip_comments(header).split())
    parts = _split_semicolons(text)
    head = parts[0].split()
    if not head:
        return None
    authserv_id = _unquote(head[0]).lower()
    results: list[MethodResult] = []
    for part in parts[1:]:
        tokens = part.split()
        if not tokens or "=" not in tokens[0]:
            continue  # "none", or garbage
        method, _, result = tokens[0].partition("=")
        method = method.partition("/")[0].lower()  # "dkim/1" -> "dkim"
        props: dict[str, str] = {}
        for tok in tokens[1:]:
            key, eq, value = tok.partition("=")
            if not eq:
                continue
            key = key.lower()
            if key == "reason":
                continue
            props.setdefault(key, _unquote(value))
        results.append(MethodResult(method, _unquote(result).lower(), props))
    return AuthResults(authserv_id, tuple(results))


def _domain_of(value: str) -> str:
    value = value.strip().strip("<>").lower()
    return value.rpartition("@")[2].rstrip(".")


def _aligned(sender_domain: str, auth_domain: str) -> bool:
    """Strict alignment: the authenticated domain is the sender's own domain.

    Relaxed (parent-domain) alignment would need a public-suffix list to
    stay safe ("co.uk"); staff mail comes from a few known domains, so an
    admin whose MTA signs with a parent domain can rely on dmarc=pass.
    """
    return bool(auth_domain) and sender_domain == auth_domain


def authenticated_by(headers: Iterable[str], sender: str | None, trusted_ids: Iterable[str]) -> str | None:
    """Which trusted result proves ``sender`` (e.g. "dkim=pass header.d=example.com by mx"), or None."""
    if not sender or "@" not in sender:
        return None
    trusted = {t.strip().lower() for t in trusted_ids if t.strip()}
    if not trusted:
        return None
    domain = _domain_of(sender)
    for header in headers:
        ar = parse(header)
        if ar is None or ar.authserv_id not in trusted:
            continue
        for res in ar.results:
            if res.result != "pass":
                continue
            if res.method == "dmarc":
                d = _domain_of(res.props.get("header.from", ""))
                if d and d == domain:
                    return f"dmarc=pass header.from={d} by {ar.authserv_id}"
            elif res.method == "dkim":
                for key in ("header.d", "header.i"):
                    d = _domain_of(res.props.get(key, ""))
                    if _aligned(domain, d):
                        return f"dkim=pass {key}={d} by {ar.authserv_id}"
            elif res.method == "spf":
                mailfrom = res.props.get("smtp.mailfrom", "")
                d = _domain_of(mailfrom)
                if _aligned(domain, d):
                    return f"spf=pass smtp.mailfrom={d} by {ar.authserv_id}"
    return None
