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

Besides the notice's subject, body, headers and file names, a pattern may
read two things gateways use to say "this is a fax": the sender address
(Internet fax, RFC 3192: ``FAX=+12027653000/T33S=1387@gateway``; PBX
gateways: ``"#FAX#*49000783135#"@gateway``, ``fax-02087681011@...``) and
the content types of the message's parts (RFC 3801/3250:
``multipart/fax-message`` and ``image/tiff; application=faxbw``).
:func:`recognise_fax` says what matched where, for ``casegate fax test``.

Pure functions, no I/O.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from typing import Any

import phonenumbers

from .message import FaxInfo

__all__ = [
    "DEFAULT_FAX_PATTERNS",
    "FIELD_GROUPS",
    "FaxHit",
    "FaxPattern",
    "FaxPatternError",
    "FaxRecognition",
    "MimePart",
    "extract_fax_info",
    "fax_sub_address",
    "is_internet_fax_type",
    "leaf_parts",
    "recognise_fax",
    "sender_address",
    "normalize_number",
    "parse_pages",
    "parse_received",
]

#: Named groups a pattern may capture. ``caller_id`` is the network caller ID
#: (HylaFAX CallID1, Asterisk CALLERID(num)); it is used when the TSI
#: (``number``) is missing or is no usable number. ``sub_address`` is the
#: T.33 sub-address of an Internet fax address (``/T33S=1387``).
FIELD_GROUPS = ("number", "caller_id", "pages", "received", "sub_address")

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
_STAR_PREFIX = re.compile(r"(?<![\d*])\*(?=\d)")
_EXTENSION = re.compile(r"(?:ext\.?|x|#|转|分机)\s*\d{1,6}\s*$", re.IGNORECASE)


def is_placeholder(raw: str) -> bool:
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
    if is_placeholder(text):
        return None
    # Collapsed first: the regexes then never walk a long run of spaces twice.
    text = _EXTENSION.sub("", _SPACES.sub(" ", text)).strip()
    # PBXs write the international prefix as '*' ("*49 201 ..."); when that
    # reading gives no number, the '*' was something else and is ignored.
    texts = [_STAR_PREFIX.sub("+", text), text] if _STAR_PREFIX.search(text) else [text]
    for variant in texts:
        candidates = [m.group(0) for m in _NUMBER_RUN.finditer(variant)]
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
        if phonenumbers.is_valid_number(num):
            return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
        if explicit and phonenumbers.is_possible_number(num):
            # Not in phonenumbers' metadata: keep the digits as written after
            # the country code (its formatter would drop a leading 0 as a
            # trunk prefix, which is only right for numbers it knows).
            digits = re.sub(r"\D", "", compact[1:] if compact.startswith("+") else compact)
            digits = digits[2:] if compact.startswith("00") else digits
            while digits.startswith("00"):  # "+0086 ...": a doubled prefix
                digits = digits[2:]
            if digits.startswith(str(num.country_code)):
                return "+" + digits
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
    "%d.%m.%Y %H:%M:%S",  # German gateways
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y, %H:%M",
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


@dataclass(frozen=True, slots=True)
class FaxHit:
    """One regex of a pattern that matched: where, what, and what it captured."""

    pattern: str
    where: str  # "subject", "header Content-Type", "sender address", "body", "filename", "part type"
    text: str  # the matched text, cut to 200 characters
    values: tuple[tuple[str, str], ...] = ()  # (group, value) of the named groups

    def value(self, group: str) -> str | None:
        return next((v for g, v in self.values if g == group), None)


def _hit(pattern: str, where: str, m: re.Match[str]) -> FaxHit:
    values = tuple((g, v.strip()) for g, v in m.groupdict().items() if v is not None and v.strip())
    return FaxHit(pattern, where, m.group(0).strip()[:200], values)


@dataclass(frozen=True)
class FaxPattern:
    """How one gateway style's notice looks.

    A pattern *identifies* a message as a fax when any of its ``subject``,
    ``filename``, ``headers``, ``sender`` or ``content_type`` regexes match,
    or when at least ``body_min_matches`` of its ``body`` regexes match (a
    lone "Pages: 3" in an ordinary mail must not turn it into a fax). Once
    identified, the named groups (see :data:`FIELD_GROUPS`) of all its
    matching regexes fill the fields; the first non-empty value wins, in the
    order subject, headers, sender, body, filename, part.

    ``headers`` maps a header name (case-insensitive) to a regex applied to
    that header's value. ``sender`` regexes see the From address with its
    local part unquoted (``#FAX#*49000783135#@gateway.example``);
    ``content_type`` regexes see each part's whole Content-Type value
    (``image/tiff; application=faxbw``). Regexes are compiled with
    IGNORECASE and MULTILINE unless given precompiled.
    """

    name: str
    subject: tuple[re.Pattern[str], ...] = ()
    body: tuple[re.Pattern[str], ...] = ()
    filename: tuple[re.Pattern[str], ...] = ()
    headers: tuple[tuple[str, re.Pattern[str]], ...] = ()
    gateway: str | None = None
    body_min_matches: int = 2
    sender: tuple[re.Pattern[str], ...] = ()
    content_type: tuple[re.Pattern[str], ...] = ()

    @classmethod
    def build(
        cls,
        name: str,
        *,
        subject: Iterable[str | re.Pattern[str]] = (),
        body: Iterable[str | re.Pattern[str]] = (),
        filename: Iterable[str | re.Pattern[str]] = (),
        headers: Mapping[str, str | re.Pattern[str]] | None = None,
        sender: Iterable[str | re.Pattern[str]] = (),
        content_type: Iterable[str | re.Pattern[str]] = (),
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
        snd = tuple(_compile(name, "sender", r) for r in sender)
        typ = tuple(_compile(name, "content_type", r) for r in content_type)
        if not (subj or bod or fil or hdr or snd or typ):
            raise FaxPatternError(f"fax pattern {name!r} has no regexes")
        return cls(
            name, subject=subj, body=bod, filename=fil, headers=hdr, gateway=gateway or name,
            body_min_matches=body_min_matches, sender=snd, content_type=typ,
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FaxPattern:
        """Build a pattern from configuration (a TOML/JSON table).

        Keys: ``name`` (required), ``gateway``, ``subject``, ``body``,
        ``filename``, ``sender``, ``content_type`` (a regex or a list of
        regexes), ``headers`` (table of header name to regex),
        ``body_min_matches``. Unknown keys are errors, so a typo ("subjct")
        does not silently disable a pattern.
        """
        if not isinstance(d, Mapping):
            raise FaxPatternError(f"fax pattern must be a table, got {type(d).__name__}")
        name = d.get("name")
        if not isinstance(name, str) or not name.strip():
            raise FaxPatternError(f"fax pattern without a 'name': {dict(d)!r}")
        allowed = {"name", "gateway", "subject", "body", "filename", "headers", "sender", "content_type",
                   "body_min_matches"}
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
            sender=as_list("sender"),
            content_type=as_list("content_type"),
            gateway=gateway,
            body_min_matches=d.get("body_min_matches", 2),
        )

    def hits(
        self,
        subject: str,
        body: str,
        headers: Sequence[tuple[str, str]],
        filenames: Sequence[str],
        sender: str = "",
        content_types: Sequence[str] = (),
    ) -> list[FaxHit] | None:
        """Every regex that matched, in field-priority order, when this
        pattern identifies the message; None when it does not.

        Identification is decided on all of them first, so body fields count
        even when only the file name identified the fax.
        """
        found: list[FaxHit] = []
        identified = False
        for rx in self.subject:
            m = rx.search(subject)
            if m:
                identified = True
                found.append(_hit(self.name, "subject", m))
        for hname, rx in self.headers:
            for key, value in headers:
                if key.lower() == hname:
                    m = rx.search(value)
                    if m:
                        identified = True
                        found.append(_hit(self.name, f"header {key}", m))
        if sender:
            for rx in self.sender:
                m = rx.search(sender)
                if m:
                    identified = True
                    found.append(_hit(self.name, "sender address", m))
        body_hits = [_hit(self.name, "body", m) for m in (rx.search(body) for rx in self.body) if m]
        if len(body_hits) >= self.body_min_matches:
            identified = True
        found += body_hits
        for rx in self.filename:
            for fn in filenames:
                m = rx.search(fn)
                if m:
                    identified = True
                    found.append(_hit(self.name, "filename", m))
        for rx in self.content_type:
            for ctype in content_types:
                m = rx.search(ctype)
                if m:
                    identified = True
                    found.append(_hit(self.name, "part type", m))
        return found if identified else None

    def match(
        self,
        subject: str,
        body: str,
        headers: Sequence[tuple[str, str]],
        filenames: Sequence[str],
        sender: str = "",
        content_types: Sequence[str] = (),
    ) -> dict[str, list[str]] | None:
        """Captured values per field when this pattern identifies the message.

        Every candidate is kept, in priority order: the first TSI may be a
        placeholder ("<UNSPECIFIED>") while a later one is usable.
        """
        hits = self.hits(subject, body, headers, filenames, sender, content_types)
        if hits is None:
            return None
        found: dict[str, list[str]] = {g: [] for g in FIELD_GROUPS}
        for hit in hits:
            for g, v in hit.values:
                found[g].append(v)
        return found


# Default regexes capture a value to the end of its line possessively
# ('*+') and let FaxPattern.match strip the blanks around it: a lazy capture
# followed by '[ \t]*$' backtracked quadratically over a line of spaces.
_TIME = r"\d{4}[:\-/]\d{1,2}[:\-/]\d{1,2}[ T]\d{1,2}:\d{2}(?::\d{2})?"
_TIME_DE = r"\d{1,2}\.\d{1,2}\.\d{4},?[ T]\d{1,2}:\d{2}(?::\d{2})?"
# A subject's number: everything up to a "(3 pages)" / "（共3页）" or the end.
_SUBJECT_NUMBER = r"[\"'“]?(?P<number>[^\"'“”()（）\r\n]*+)[\"'”]?"
_SUBJECT_PAGES = r"(?:\s*[(（]\s*(?:共\s*)?(?P<pages>\d+)\s*(?:pages?|seiten?|页|頁|張|张)\s*[)）])?"
# A number in an address's local part: digits with separators, maybe a '+'
# or a PBX's '*' for the international prefix.
_LOCAL_NUMBER = r"(?P<number>[*+]?\d[\d\-.]*+)"
#: RFC 3192's minimal fax address, FAX=+number[/T33S=sub-address][/...]@host;
#: gateways write the number without '+' as well.
_FAX_ADDRESS = r"^FAX=(?P<number>\+?[\d\-.]+)(?:/T33S=(?P<sub_address>[\d\-.]*))?(?:/[^@/]*)*@"
#: The parts RFC 3250/3302 mark as fax images (``application=faxbw``, or
#: ``faxcolor``), and TIFF-FX (RFC 3949) itself.
_FAX_IMAGE_TYPE = (
    r"^\s*(?:image/tiff\s*;(?:[^;]*;)*\s*application\s*=\s*\"?fax(?:bw|color)\b|image/tiff-fx\b)"
)

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
    # Internet fax (T.37 on-ramp gateways such as Cisco IOS, RFC 3801/3965):
    # the message is multipart/fax-message or carries an image/tiff part with
    # application=faxbw (or is that part itself); the sender is the minimal
    # fax address of RFC 3192, FAX=+number[/T33S=sub-address]@gateway, which
    # gateways also write without the '+' (FAX=3412900100@...).
    FaxPattern.build(
        "internet-fax",
        headers={"Content-Type": rf"^\s*multipart/fax-message\b|{_FAX_IMAGE_TYPE}"},
        content_type=[_FAX_IMAGE_TYPE],
        sender=[_FAX_ADDRESS],
    ),
    # PBX fax modules that send from the caller's number between '#FAX#'
    # markers: "#FAX#*49000783135#"@gateway ('*' is the PBX's '+').
    FaxPattern.build("pbx-fax", sender=[rf"^#?FAX#{_LOCAL_NUMBER}#?@"]),
    # Generic fax-to-mail notices, by their subject, in English, German and
    # Chinese: "Fax from +86 20 8768 1011 (3 pages)", "Erhalten von
    # *49000783135", "Fax empfangen von 0201 234567 (2 Seiten)", "传真来自
    # 020-87681011", "收到传真 020-87681011（共3页）", "收到来自 X 的传真".
    FaxPattern.build(
        "generic",
        subject=[
            r"^\s*(?:\[fax\]\s*)?(?:incoming\s+|new\s+)?(?:fax|facsimile)(?:\s+message)?\s+from[:\s]+"
            + _SUBJECT_NUMBER + _SUBJECT_PAGES,
            r"^\s*(?:neues\s+)?(?:tele)?fax\s+(?:(?:erhalten|empfangen)\s+)?von[:\s]+"
            + _SUBJECT_NUMBER + _SUBJECT_PAGES,
            r"^\s*(?:erhalten|empfangen)\s+von[:\s]+" + _SUBJECT_NUMBER + _SUBJECT_PAGES,
            r"^\s*(?:传真|傳真)(?:来自|來自|自)[:：\s]*(?P<number>[^()（）\r\n]*+)" + _SUBJECT_PAGES,
            r"^\s*(?:您)?收到(?:新|一份|一份新)?(?:传真|傳真)(?=$|[:：\s(（+*\d０-９]|来自|來自)"
            r"(?:[:：\s]*(?:(?:来自|來自)[:：\s]*)?(?P<number>[+*\d０-９][^()（）\r\n]*+))?" + _SUBJECT_PAGES,
            r"^\s*(?:您)?收到(?:来自|來自)\s*(?P<number>[^\s的]++)\s*的(?:新)?(?:传真|傳真)" + _SUBJECT_PAGES,
        ],
        body=[
            r"^[ \t]*(?:Pages|Seiten|Seitenanzahl|Anzahl Seiten|页数|頁數)[:：][ \t]*(?P<pages>\d+)",
            r"^[ \t]*+(?:Absender|发送方|發送方|发送号码|發送號碼)[:：][ \t]*+(?P<number>[^\r\n]*+)$",
            rf"^[ \t]*(?:Received|Empfangen|Datum|接收时间|接收時間)[:：][ \t]*(?P<received>{_TIME}|{_TIME_DE})",
        ],
        body_min_matches=99,
        gateway="fax-to-mail",
    ),
    # Gateways that send from the caller's number: fax-02087681011@...,
    # fax_*4930...@..., +862087681011@..., *4930...@... Bare digits are not
    # enough (12345678@qq.com is a person); a [[fax.patterns]] sender regex
    # adds them for a gateway that writes so. Tried last: the notice's own
    # fields come first.
    FaxPattern.build(
        "fax-address",
        sender=[rf"^(?:tele)?fax[-_.]?{_LOCAL_NUMBER}@", r"^(?P<number>[*+]\d[\d\-.]{5,})@"],
        gateway="fax-to-mail",
    ),
)


# --------------------------------------------------------------------------
# What a message shows besides its text: the sender address, its part types

# Gateway notices are short. Configured patterns are admins' regexes that
# may backtrack, so what they see is bounded: the subject, header values,
# sender and part types to MAX_FIELD characters, the body to its first
# MAX_BODY characters with each line cut to MAX_FIELD.
MAX_FIELD = 1000
MAX_BODY = 64_000
#: Leaf parts looked at by :func:`leaf_parts`; a fax mail has a handful.
MAX_PARTS = 100


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


def sender_address(headers: Mapping[str, Any] | Iterable[tuple[str, Any]] | None) -> str:
    """The first From address with its local part unquoted, as sender
    patterns see it: ``<"#FAX#*49000783135#"@gw>`` gives
    ``#FAX#*49000783135#@gw``. Case is kept; "" when there is none."""
    for key, value in _header_pairs(headers):
        if key.lower() == "from":
            _name, addr = email.utils.parseaddr(value[:MAX_FIELD])
            local, at, domain = addr.rpartition("@")
            if at and len(local) >= 2 and local[0] == local[-1] == '"':
                local = re.sub(r"\\(.)", r"\1", local[1:-1])
            return f"{local}@{domain}" if at else addr
    return ""


def fax_sub_address(sender: str | None) -> str | None:
    """The T.33 sub-address of an RFC 3192 fax address
    (``FAX=+12027653000/T33S=1387@gw`` gives ``1387``), else None."""
    m = _FAX_ADDRESS_RX.search((sender or "")[:MAX_FIELD])
    return m.group("sub_address") or None if m else None


_FAX_ADDRESS_RX = re.compile(_FAX_ADDRESS, re.IGNORECASE)


def is_internet_fax_type(content_type: str) -> bool:
    """``image/tiff; application=faxbw`` (or faxcolor, or image/tiff-fx): a
    part that says it is a fax image (RFC 3250, 3302, 3949)."""
    return _FAX_IMAGE_RX.search(content_type[:MAX_FIELD]) is not None


_FAX_IMAGE_RX = re.compile(_FAX_IMAGE_TYPE, re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class MimePart:
    """One leaf part of a message, as its own headers describe it.

    The main parser keeps an attachment's bare type; Internet fax says what a
    part is in the parameters (``application=faxbw``), so they are read here.
    ``sha256`` (of the decoded content) tells which attachment a part is.
    """

    index: int  # 1-based, in message order
    content_type: str  # the whole value, unfolded: "image/tiff; application=faxbw"
    filename: str | None
    size: int
    sha256: str

    @property
    def is_fax_image(self) -> bool:
        return is_internet_fax_type(self.content_type)


def leaf_parts(raw: bytes) -> tuple[MimePart, ...]:
    """The leaf parts of ``raw`` (at most :data:`MAX_PARTS`); () when it
    cannot be read. Never raises."""
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        parts: list[MimePart] = []
        for part in msg.walk():
            if part.is_multipart():
                continue
            if len(parts) >= MAX_PARTS:
                break
            try:
                payload = part.get_payload(decode=True)
            except Exception:  # a broken transfer encoding: the part is still listed
                payload = None
            content = payload if isinstance(payload, bytes) else b""
            ctype = " ".join(str(part.get("Content-Type", "text/plain")).split())[:MAX_FIELD]
            try:
                filename = part.get_filename()
            except Exception:
                filename = None
            parts.append(MimePart(len(parts) + 1, ctype, str(filename) if filename else None,
                                  len(content), hashlib.sha256(content).hexdigest()))
        return tuple(parts)
    except Exception:  # malformed beyond what the stdlib parser tolerates
        return ()


# --------------------------------------------------------------------------
# Recognition


@dataclass(frozen=True, slots=True)
class FaxRecognition:
    """What :func:`recognise_fax` found, and why.

    ``info`` is None when no pattern identified the message. ``hits`` are
    the matches of every identifying pattern, in pattern order;
    ``number_hit`` is the one whose value became the sender number (None
    when no value normalised).
    """

    info: FaxInfo | None
    patterns: tuple[str, ...] = ()
    hits: tuple[FaxHit, ...] = ()
    number_hit: FaxHit | None = None
    sub_address: str | None = None


def recognise_fax(
    subject: str,
    body: str,
    headers: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
    filenames: Sequence[str] = (),
    patterns: Sequence[FaxPattern] = DEFAULT_FAX_PATTERNS,
    default_region: str = "CN",
    tz: tzinfo | None = None,
    *,
    sender: str | None = None,
    content_types: Sequence[str] = (),
) -> FaxRecognition:
    """Recognise a fax-gateway mail and say what matched where.

    All patterns that identify the message contribute; for each field the
    earliest pattern with a usable value wins, and ``gateway`` names the
    first identifying pattern. The TSI (``number``) is preferred over the
    caller ID because that is what customers put on their letterhead and
    tell us, but a TSI that is blank, a placeholder or not a number falls
    back to the caller ID. ``tz`` is attached to zone-less receive times.
    ``sender`` is the From address (default: taken from ``headers``, see
    :func:`sender_address`); ``content_types`` the parts' Content-Type values
    (:func:`leaf_parts`).
    """
    subject = (subject or "")[:MAX_FIELD]
    body = _bounded_body(body or "")
    pairs = [(key, value[:MAX_FIELD]) for key, value in _header_pairs(headers)]
    names = [f for f in filenames if f]
    address = (sender_address(pairs) if sender is None else sender)[:MAX_FIELD]
    types = [t[:MAX_FIELD] for t in content_types if t]

    gateway: str | None = None
    identified: list[str] = []
    hits: list[FaxHit] = []
    for pattern in patterns:
        found = pattern.hits(subject, body, pairs, names, address, types)
        if found is None:
            continue
        gateway = gateway or pattern.gateway
        identified.append(pattern.name)
        hits += found
    if gateway is None:
        return FaxRecognition(None)

    numbers = [(v, h) for h in hits for g, v in h.values if g == "number"]
    callers = [(v, h) for h in hits for g, v in h.values if g == "caller_id"]
    pages = next((p for p in (parse_pages(h.value("pages")) for h in hits if h.value("pages")) if p), None)
    received = next((r for r in (parse_received(h.value("received"), tz) for h in hits if h.value("received"))
                     if r), None)
    sub_address = next((h.value("sub_address") for h in hits if h.value("sub_address")), None)
    sender_number: str | None = None
    raw_sender: str | None = None
    number_hit: FaxHit | None = None
    for raw, hit in numbers + callers:
        e164 = normalize_number(raw, default_region)
        if e164:
            sender_number, raw_sender, number_hit = e164, raw, hit
            break
    if raw_sender is None:
        # Keep what the gateway wrote even when unusable, for the operator.
        raw_sender = next((r for r, _ in numbers + callers if not is_placeholder(r)), None)
    info = FaxInfo(
        sender_number=sender_number,
        raw_sender=raw_sender,
        pages=pages,
        received_at=received,
        gateway=gateway,
    )
    return FaxRecognition(info, tuple(identified), tuple(hits), number_hit, sub_address)


def extract_fax_info(
    subject: str,
    body: str,
    headers: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
    filenames: Sequence[str] = (),
    patterns: Sequence[FaxPattern] = DEFAULT_FAX_PATTERNS,
    default_region: str = "CN",
    tz: tzinfo | None = None,
    *,
    sender: str | None = None,
    content_types: Sequence[str] = (),
) -> FaxInfo | None:
    """FaxInfo for a fax-gateway mail, or None when nothing looks like a fax
    (:func:`recognise_fax` without the explanation)."""
    return recognise_fax(subject, body, headers, filenames, patterns, default_region, tz,
                         sender=sender, content_types=content_types).info
