"""Recognise fax-gateway e-mail and pull out the sender's fax number.

Fax-only customers reach us through a gateway (HylaFAX, Asterisk, a T.38
box, a fax-to-mail service) that wraps each received fax in an e-mail. The
sender is known only by the number the gateway saw: the TSI/CSID the remote
fax machine announced, or the caller ID from the phone network. That number is
what maps the fax to a customer, so it is normalised to E.164 here.

Every gateway formats its notice differently and admins customise them, so
recognition is data, not code: a list of :class:`FaxPattern` objects, each a
set of regular expressions with named groups. The defaults cover the common
gateways; more can be loaded from configuration with
:meth:`FaxPattern.from_dict`.

Pure functions, no I/O.
"""

from __future__ import annotations

import email.utils
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from typing import Any

import phonenumbers

from .message import FaxInfo

__all__ = [
    "DEFAULT_FAX_PATTERNS",
    "FIELD_GROUPS",
    "FaxPattern",
    "FaxPatternError",
    "extract_fax_info",
    "normalize_number",
    "parse_pages",
    "parse_received",
]

#: Named groups a pattern may capture. ``caller_id`` is the network caller ID
#: (HylaFAX CallID1, Asterisk CALLERID(num)); it is used when the TSI
#: (``number``) is missing or is no usable number.
FIELD_GROUPS = ("number", "caller_id", "pages", "received")

_SOURCES = ("subject", "headers", "body", "filename")

# What gateways write when the remote machine sent no TSI or the network no
# caller ID. Compared after stripping quotes/brackets and lower-casing.
_PLACEHOLDERS = frozenset(
    {
        "",
        "unknown",
        "unspecified",
        "anonymous",
        "private",
        "restricted",
        "unavailable",
        "withheld",
        "none",
        "null",
        "n/a",
        "na",
        "-",
        "--",
        "0",
        "fax",
        "<none>",
    }
)


class FaxPatternError(ValueError):
    """A fax pattern from configuration is invalid; the message names it."""


# --------------------------------------------------------------------------
# Number normalisation


# A run that can hold a phone number: optional '+', digits and the separators
# people and fax machines put between them. Station IDs often carry a company
# name around the number ("ACME GZ +86 20 8768 1011"), so candidates are
# searched rather than the whole string parsed.
_NUMBER_RUN = re.compile(r"\+?\s*+\(?\d(?:[\s\-./()]*+\d)*+\)?")
_SPACES = re.compile(r"\s+")
_EXTENSION = re.compile(r"(?:ext\.?|x|#|转|分机)\s*\d{1,6}\s*$", re.IGNORECASE)


def _is_placeholder(raw: str) -> bool:
    return raw.strip().strip("\"'<>[]()").strip().lower() in _PLACEHOLDERS


def normalize_number(raw: str | None, region: str = "CN") -> str | None:
    """Return ``raw`` as an E.164 number (``+862087681011``) or None.

    TSI strings are typed into fax machines by hand and come back with
    spaces, dashes, dots, parentheses, ``00``/``0086``/``+86`` prefixes, a
    ``(0)`` trunk prefix, full-width digits and company names. ``region`` is
    the country assumed for numbers without a country code (the gateway's
    own country). Numbers that phonenumbers does not consider valid are
    rejected, except when an explicit international prefix was given and
    the length is possible (new number ranges reach phonenumbers' metadata
    late). A local number without area code cannot be mapped and gives None.
    """
    if raw is None:
        return None
    text = unicodedata.normalize("NFKC", str(raw)).strip()
    if _is_placeholder(text):
        return None
    # Collapsed first: the regexes then never walk a long run of spaces twice.
    text = _EXTENSION.sub("", _SPACES.sub(" ", text)).strip()
    candidates = [m.group(0) for m in _NUMBER_RUN.finditer(text)]
    # Most digits first: the phone number, not a stray "2" from "ACME 2".
    candidates.sort(key=lambda c: sum(ch.isdigit() for ch in c), reverse=True)
    for cand in candidates:
        digits = sum(ch.isdigit() for ch in cand)
        if digits < 6 or digits > 17:
            continue
        result = _parse_candidate(cand.strip(), region)
        if result:
            return result
    return None


def _parse_candidate(cand: str, region: str) -> str | None:
    compact = re.sub(r"[^\d+]", "", cand)
    explicit = compact.startswith("+") or compact.startswith("00")
    attempts = [cand]
    if not explicit:
        # "86 20 8768 1011": a country code without the '+'.
        attempts.append("+" + compact)
    for attempt in attempts:
        try:
            num = phonenumbers.parse(attempt, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(num) or (
            explicit and phonenumbers.is_possible_number(num)
        ):
            return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
    return None


# --------------------------------------------------------------------------
# Field parsing

_RECEIVED_FORMATS = (
    "%Y:%m:%d %H:%M:%S",  # HylaFAX $RECEIVED / TIFF DateTime
    "%Y:%m:%d %H:%M",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y%m%dT%H%M%S",  # spool file names
    "%Y%m%d%H%M%S",
    "%Y%m%d-%H%M%S",
    "%Y%m%d_%H%M%S",
    "%a %b %d %H:%M:%S %Y",  # ctime / Asterisk STRFTIME default
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%Y年%m月%d日 %H:%M:%S",
    "%Y年%m月%d日 %H:%M",
)
# Zone abbreviations are ambiguous (CST is China, US Central and Cuba); only
# the unambiguous UTC ones are honoured, others are dropped and the
# ``tz`` argument applies.
_ZONE_ABBREV = re.compile(r"\s+(?:[A-Z]{2,5})(?=\s+\d{4}$|$)")


def parse_received(raw: str | None, tz: tzinfo | None = None) -> datetime | None:
    """Parse a gateway's receive time; None when it is not a time we know.

    Gateways write local time without a zone; ``tz`` (the gateway's zone) is
    attached to such values. Without ``tz`` they stay naive, and the caller
    decides. Times that carry a zone (ISO 8601, RFC 2822) keep it.
    """
    if raw is None:
        return None
    text = unicodedata.normalize("NFKC", str(raw)).strip().strip("\"'")
    if not text:
        return None
    text = re.sub(r"\s+", " ", text)
    parsed: datetime | None = None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        pass
    if parsed is None and re.search(r"\b\d{1,2} [A-Za-z]{3} \d{4} \d", text):
        try:
            parsed = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            parsed = None
    if parsed is None:
        utc = bool(re.search(r"\s(?:UTC|GMT|Z)(?=\s+\d{4}$|$)", text))
        stripped = _ZONE_ABBREV.sub("", text)
        for fmt in _RECEIVED_FORMATS:
            try:
                parsed = datetime.strptime(stripped, fmt)
            except ValueError:
                continue
            if utc:
                parsed = parsed.replace(tzinfo=timezone.utc)
            break
    if parsed is None:
        return None
    if parsed.tzinfo is None and tz is not None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed


def parse_pages(raw: str | int | None) -> int | None:
    """Page count as an int, None for anything that is not a sane count."""
    if raw is None or isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        value = raw
    else:
        m = re.search(r"\d+", unicodedata.normalize("NFKC", str(raw)))
        if not m:
            return None
        value = int(m.group(0))
    return value if 0 < value <= 10_000 else None


# --------------------------------------------------------------------------
# Patterns


def _compile(pattern_name: str, where: str, regex: Any) -> re.Pattern[str]:
    if isinstance(regex, re.Pattern):
        compiled = regex
    else:
        if not isinstance(regex, str):
            raise FaxPatternError(
                f"fax pattern {pattern_name!r}: {where} regex must be a string, "
                f"got {type(regex).__name__}"
            )
        try:
            compiled = re.compile(regex, re.IGNORECASE | re.MULTILINE)
        except re.error as exc:
            raise FaxPatternError(
                f"fax pattern {pattern_name!r}: bad {where} regex {regex!r}: {exc}"
            ) from exc
    unknown = set(compiled.groupindex) - set(FIELD_GROUPS)
    if unknown:
        raise FaxPatternError(
            f"fax pattern {pattern_name!r}: {where} regex {compiled.pattern!r} has "
            f"unknown group(s) {', '.join(sorted(unknown))}; allowed: "
            f"{', '.join(FIELD_GROUPS)}"
        )
    return compiled


@dataclass(frozen=True)
class FaxPattern:
    """How one gateway style's notice looks.

    A pattern *identifies* a message as a fax when any of its ``subject``,
    ``filename`` or ``headers`` regexes match, or when at least
    ``body_min_matches`` of its ``body`` regexes match (a lone "Pages: 3" in
    an ordinary mail must not turn it into a fax). Once identified, the named
    groups (see :data:`FIELD_GROUPS`) of all its matching regexes fill the
    fields; the first non-empty value wins, in the order subject, headers,
    body, filename.

    ``headers`` maps a header name (case-insensitive) to a regex applied to
    that header's value. Regexes are compiled with IGNORECASE and MULTILINE
    unless given precompiled.
    """

    name: str
    subject: tuple[re.Pattern[str], ...] = ()
    body: tuple[re.Pattern[str], ...] = ()
    filename: tuple[re.Pattern[str], ...] = ()
    headers: tuple[tuple[str, re.Pattern[str]], ...] = ()
    gateway: str | None = None
    body_min_matches: int = 2

    @classmethod
    def build(
        cls,
        name: str,
        *,
        subject: Iterable[str | re.Pattern[str]] = (),
        body: Iterable[str | re.Pattern[str]] = (),
        filename: Iterable[str | re.Pattern[str]] = (),
        headers: Mapping[str, str | re.Pattern[str]] | None = None,
        gateway: str | None = None,
        body_min_matches: int = 2,
    ) -> FaxPattern:
        """Compile regexes and validate; raises FaxPatternError naming the pattern."""
        if not isinstance(name, str) or not name.strip():
            raise FaxPatternError("fax pattern without a name")
        if not isinstance(body_min_matches, int) or body_min_matches < 1:
            raise FaxPatternError(
                f"fax pattern {name!r}: body_min_matches must be a positive integer"
            )
        subj = tuple(_compile(name, "subject", r) for r in subject)
        bod = tuple(_compile(name, "body", r) for r in body)
        fil = tuple(_compile(name, "filename", r) for r in filename)
        hdr = tuple(
            (str(h).lower(), _compile(name, f"header {h!r}", r))
            for h, r in (headers or {}).items()
        )
        if not (subj or bod or fil or hdr):
            raise FaxPatternError(f"fax pattern {name!r} has no regexes")
        return cls(name, subj, bod, fil, hdr, gateway or name, body_min_matches)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FaxPattern:
        """Build a pattern from configuration (a TOML/JSON table).

        Keys: ``name`` (required), ``gateway``, ``subject``, ``body``,
        ``filename`` (a regex or a list of regexes), ``headers`` (table of
        header name to regex), ``body_min_matches``. Unknown keys are
        errors, so a typo ("subjct") does not silently disable a pattern.
        """
        if not isinstance(d, Mapping):
            raise FaxPatternError(f"fax pattern must be a table, got {type(d).__name__}")
        name = d.get("name")
        if not isinstance(name, str) or not name.strip():
            raise FaxPatternError(f"fax pattern without a 'name': {dict(d)!r}")
        allowed = {"name", "gateway", "subject", "body", "filename", "headers", "body_min_matches"}
        unknown = set(d) - allowed
        if unknown:
            raise FaxPatternError(
                f"fax pattern {name!r}: unknown key(s) {', '.join(sorted(map(str, unknown)))}"
            )

        def as_list(key: str) -> list[Any]:
            value = d.get(key, [])
            if isinstance(value, str):
                return [value]
            if not isinstance(value, (list, tuple)):
                raise FaxPatternError(
                    f"fax pattern {name!r}: {key} must be a regex or a list of regexes"
                )
            return list(value)

        headers = d.get("headers", {})
        if not isinstance(headers, Mapping):
            raise FaxPatternError(f"fax pattern {name!r}: headers must be a table")
        gateway = d.get("gateway")
        if gateway is not None and not isinstance(gateway, str):
            raise FaxPatternError(f"fax pattern {name!r}: gateway must be a string")
        return cls.build(
            name,
            subject=as_list("subject"),
            body=as_list("body"),
            filename=as_list("filename"),
            headers=headers,
            gateway=gateway,
            body_min_matches=d.get("body_min_matches", 2),
        )

    def match(
        self,
        subject: str,
        body: str,
        headers: Sequence[tuple[str, str]],
        filenames: Sequence[str],
    ) -> dict[str, list[str]] | None:
        """Captured values per field when this pattern identifies the message.

        Every candidate is kept, in priority order: the first TSI may be a
        placeholder ("<UNSPECIFIED>") while a later one is usable.
        """
        found: dict[str, list[str]] = {g: [] for g in FIELD_GROUPS}
        # Matches in field-priority order; identification is decided first so
        # body fields count even when only the file name identified the fax.
        matches: list[re.Match[str]] = []
        identified = False
        for rx in self.subject:
            m = rx.search(subject)
            if m:
                identified = True
                matches.append(m)
        for hname, rx in self.headers:
            for key, value in headers:
                if key.lower() == hname:
                    m = rx.search(value)
                    if m:
                        identified = True
                        matches.append(m)
        body_matches = [m for m in (rx.search(body) for rx in self.body) if m]
        if len(body_matches) >= self.body_min_matches:
            identified = True
        matches += body_matches
        for rx in self.filename:
            for fn in filenames:
                m = rx.search(fn)
                if m:
                    identified = True
                    matches.append(m)
        if not identified:
            return None
        for m in matches:
            for g, v in m.groupdict().items():
                if v is not None and v.strip():
                    found[g].append(v.strip())
        return found


# Default regexes capture a value to the end of its line possessively
# ('*+') and let FaxPattern.match strip the blanks around it: a lazy capture
# followed by '[ \t]*$' backtracked quadratically over a line of spaces.
_TIME = r"\d{4}[:\-/]\d{1,2}[:\-/]\d{1,2}[ T]\d{1,2}:\d{2}(?::\d{2})?"

DEFAULT_FAX_PATTERNS: tuple[FaxPattern, ...] = (
    # Spool-style attachment names (our own gateway convention and several
    # T.38 boxes): fax000123_+862087681011_20261120T101503.tif
    FaxPattern.build(
        "spool-filename",
        filename=[
            r"^fax\d*[_\-](?P<number>\+?[\d\-]{5,20})[_\-](?P<received>\d{8}[T_\-]?\d{6})"
            r"(?:[_\-][^.]*)?\.(?:tiff?|pdf)$",
        ],
        gateway="spool",
    ),
    # HylaFAX faxrcvd / FaxDispatch notices (etc/templates/*/faxrcvd-*.txt).
    FaxPattern.build(
        "hylafax",
        # en templates: Fax received [with errors] from "$SENDER"; html-sample1:
        # [Partial ]FAX received [on $DEVICE ]from ["]$SENDER["], and
        # "FAX not received on $DEVICE" (a failed reception, no sender).
        subject=[
            r'^\s*(?:partial\s+)?fax received (?:with errors )?(?:on \S+ )?from\s+'
            r'"?(?P<number>[^"\r\n]*?)"?\s*$',
            r"^\s*fax not received\b",
        ],
        body=[
            # "[ \t|]*" also accepts HTML templates rendered to text tables.
            r"^[ \t|]*+Sender:[ \t|]*+(?P<number>[^\r\n|]*+)[ \t|]*+$",
            r"^[ \t|]*Pages:[ \t|]*(?P<pages>\d+)",
            rf"^[ \t|]*Received:[ \t|]*(?P<received>{_TIME})",
            r"^[ \t|]*+(?:CallID1|CIDNumber):[ \t|]*+(?P<caller_id>[^\r\n|]*+)[ \t|]*+$",
            r"^[ \t]*Received On:[ \t]*\S+",
            r"^[ \t]*CommID:[ \t]*\d+",
        ],
        body_min_matches=3,
        # HylaFAX attaches the recvq file itself: fax000000123.tif / .pdf
        filename=[r"^fax\d{5,}\.(?:tiff?|pdf|ps)$"],
    ),
    # Asterisk ReceiveFAX + a mailing script (FAXOPT(remotestationid) etc.).
    FaxPattern.build(
        "asterisk",
        subject=[r"^\s*new fax from[:\s]+(?P<caller_id>[^\s(]+)"],
        headers={
            "X-Fax-Caller-ID": r"(?P<caller_id>\S.*)",
            "X-Fax-Remote-Station-ID": r"(?P<number>\S.*)",
            "X-Fax-Station-ID": r"(?P<number>\S.*)",
            "X-Fax-Pages": r"(?P<pages>\d+)",
            "X-Fax-Received": r"(?P<received>\S.*)",
        },
        body=[
            r"^[ \t]*+(?:Remote )?Station ID:[ \t]*+(?P<number>[^\r\n]*+)$",
            r"^[ \t]*+(?:Caller ?ID|CallerID\(num\)|From):[ \t]*+(?P<caller_id>[^\r\n]*+)$",
            r"^[ \t]*(?:Pages|Number of pages):[ \t]*(?P<pages>\d+)",
            r"^[ \t]*+(?:Received|Date|Time):[ \t]*+(?P<received>[^\r\n]*+)$",
        ],
        body_min_matches=99,  # body alone never identifies: too generic
    ),
    # eFax: eFax message from "020-87681011" - 2 page(s), Caller-ID: ...
    FaxPattern.build(
        "efax",
        subject=[
            r'efax message from\s+"?(?P<number>[^"]*?)"?\s*-\s*(?P<pages>\d+)\s*page\(?s?\)?',
        ],
        body=[
            r"^[ \t]*+Caller[- ]ID:[ \t]*+(?P<caller_id>[^\r\n]*+)$",
            rf"^[ \t]*(?:Date|Received)[^:\r\n]*:[ \t]*(?P<received>{_TIME})",
        ],
        body_min_matches=99,
    ),
    # Fax.Plus and similar services: "New fax received from +862087681011".
    FaxPattern.build(
        "faxplus",
        subject=[r"^\s*new fax received from\s+(?P<number>\+?[\d\s\-().]{5,})"],
        body=[
            r"^[ \t]*(?:Pages|Page count):[ \t]*(?P<pages>\d+)",
            rf"^[ \t]*(?:Received|Date)[^:\r\n]*:[ \t]*(?P<received>{_TIME})",
        ],
        body_min_matches=99,
    ),
    # Generic: "Fax from +86 20 8768 1011 (3 pages)" and variants.
    FaxPattern.build(
        "generic",
        subject=[
            r"^\s*(?:\[fax\]\s*)?fax (?:message )?from\s+\"?(?P<number>[^\"(]+?)\"?"
            r"\s*(?:\((?P<pages>\d+)\s*pages?\))?\s*$",
            r"^\s*传真(?:来自|自)[:：\s]*(?P<number>[^\s(（]+)",
        ],
        body=[r"^[ \t]*(?:Pages|页数)[:：][ \t]*(?P<pages>\d+)"],
        body_min_matches=99,
        gateway="fax-to-mail",
    ),
)


# --------------------------------------------------------------------------
# Extraction

# Gateway notices are short. Configured patterns are admins' regexes that
# may backtrack, so what they see is bounded: the subject and header values
# to MAX_FIELD characters, the body to its first MAX_BODY characters with
# each line cut to MAX_FIELD.
MAX_FIELD = 1000
MAX_BODY = 64_000


def _bounded_body(body: str) -> str:
    lines = body[:MAX_BODY].replace("\r\n", "\n").split("\n")
    return "\n".join(line[:MAX_FIELD] for line in lines)


def _header_pairs(headers: Mapping[str, Any] | Iterable[tuple[str, Any]] | None) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        items: Iterable[tuple[str, Any]] = headers.items()
    elif hasattr(headers, "items") and callable(headers.items):  # email.message.Message
        items = headers.items()
    else:
        items = headers
    pairs: list[tuple[str, str]] = []
    for key, value in items:
        if isinstance(value, (list, tuple)):
            pairs.extend((str(key), str(v)) for v in value)
        else:
            pairs.append((str(key), str(value)))
    return pairs


def extract_fax_info(
    subject: str,
    body: str,
    headers: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
    filenames: Sequence[str] = (),
    patterns: Sequence[FaxPattern] = DEFAULT_FAX_PATTERNS,
    default_region: str = "CN",
    tz: tzinfo | None = None,
) -> FaxInfo | None:
    """FaxInfo for a fax-gateway mail, or None when nothing looks like a fax.

    All patterns that identify the message contribute; for each field the
    earliest pattern with a usable value wins, and ``gateway`` names the
    first identifying pattern. The TSI (``number``) is preferred over the
    caller ID because that is what customers put on their letterhead and
    tell us, but a TSI that is blank, a placeholder or not a number falls
    back to the caller ID. ``tz`` is attached to zone-less receive times.
    """
    subject = (subject or "")[:MAX_FIELD]
    body = _bounded_body(body or "")
    pairs = [(key, value[:MAX_FIELD]) for key, value in _header_pairs(headers)]
    names = [f for f in filenames if f]

    gateway: str | None = None
    numbers: list[str] = []
    callers: list[str] = []
    pages: int | None = None
    received: datetime | None = None
    for pattern in patterns:
        fields = pattern.match(subject, body, pairs, names)
        if fields is None:
            continue
        if gateway is None:
            gateway = pattern.gateway
        numbers += fields["number"]
        callers += fields["caller_id"]
        if pages is None:
            for v in fields["pages"]:
                pages = parse_pages(v)
                if pages is not None:
                    break
        if received is None:
            for v in fields["received"]:
                received = parse_received(v, tz)
                if received is not None:
                    break
    if gateway is None:
        return None

    sender_number: str | None = None
    raw_sender: str | None = None
    for raw in numbers + callers:
        e164 = normalize_number(raw, default_region)
        if e164:
            sender_number, raw_sender = e164, raw
            break
    if raw_sender is None:
        # Keep what the gateway wrote even when unusable, for the operator.
        raw_sender = next((r for r in numbers + callers if not _is_placeholder(r)), None)
    return FaxInfo(
        sender_number=sender_number,
        raw_sender=raw_sender,
        pages=pages,
        received_at=received,
        gateway=gateway,
    )
