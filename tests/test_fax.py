"""Fax-gateway metadata: gateway styles, number normalisation, sidecars, config."""

from __future__ import annotations

import email
import email.policy
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from casegate.parsers.fax import (
    DEFAULT_FAX_PATTERNS,
    FaxPattern,
    FaxPatternError,
    extract_fax_info,
    normalize_number,
    parse_received,
)
from casegate.parsers.message import FaxInfo
from casegate.parsers.spool_meta import parse_sidecar

E164 = "+862087681011"
RECEIVED = datetime(2026, 11, 20, 10, 15, 3)
# A tiny stand-in for the fax image: gateway_mail only needs a page count.
FAKE_TIFF = b"II*\x00fake"


def _extract_from_mail(raw: bytes, **kwargs) -> FaxInfo | None:  # type: ignore[no-untyped-def]
    """Feed a gateway mail to extract_fax_info as the main parser would."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    body = msg.get_body(("plain",))
    text = body.get_content() if body is not None else ""
    names = [part.get_filename() or "" for part in msg.iter_attachments()]
    return extract_fax_info(str(msg["Subject"] or ""), text, list(msg.items()), names, **kwargs)


# ---------------------------------------------------------------- gateway styles


@pytest.mark.parametrize(
    ("style", "tsi", "gateway", "expect_received"),
    [
        ("hylafax", "+86 20 8768 1011", "hylafax", True),
        ("hylafax", "0086-20-87681011", "hylafax", True),
        ("asterisk", "+86 20 8768 1011", "asterisk", True),
        ("efax", "020-87681011", "efax", True),
        ("faxplus", "+862087681011", "faxplus", True),
        ("generic", "+86 20 8768 1011", "fax-to-mail", False),
    ],
)
def test_gateway_styles(style: str, tsi: str, gateway: str, expect_received: bool) -> None:
    from faxgen import gateway_mail

    raw = gateway_mail(tsi, FAKE_TIFF, style=style, pages=3, received=RECEIVED)  # type: ignore[arg-type]
    info = _extract_from_mail(raw)
    assert info is not None
    assert info.sender_number == E164
    assert info.pages == 3
    assert info.gateway == gateway
    assert info.raw_sender
    if expect_received:
        assert info.received_at == RECEIVED


def test_hylafax_real_template(corpus_dir: Path) -> None:
    """The shipped HylaFAX templates, with their variables filled in."""
    templates = sorted((corpus_dir / "hylafax/etc/templates").glob("*/faxrcvd-*.txt"))
    assert templates
    values = {
        "SENDER": "+86 20 8768 1011", "PAGES": "3", "RECEIVED": "2026:11:20 10:15:03",
        "CALLID1": "02087681011", "CALLID2": "", "FILE": "recvq/fax000000123.tif",
        "HOSTNAME": "fax", "PORT": "4559", "QUALITY": "Fine", "PAGE": "ISO A4",
        "TIMETORECV": "0:42", "SIGNALRATE": "14400 bit/s", "DATAFORMAT": "2-D MMR",
        "ERRCORRECT": "Yes", "DEVICE": "ttyS0", "COMMID": "000000123",
        "FROMADDR": "fax@example.com", "SENDTO": "support@example.com",
        "TOADDR": "support@example.com", "SESSION_LOG": "", "MSG": "RSPREC error",
    }
    checked = 0
    for path in templates:
        text = path.read_text(encoding="utf-8", errors="replace")
        for key in sorted(values, key=len, reverse=True):
            text = text.replace(f"${key}", values[key])
        msg = email.message_from_string(text, policy=email.policy.default)
        subject = str(msg["Subject"] or "")
        body = str(msg.get_payload())
        if "text/html" in str(msg["Content-Type"]):
            body = ""  # the HTML sample's body lives in #INCLUDE files not shipped
        info = extract_fax_info(subject, body, list(msg.items()), [])
        assert info is not None, path
        assert info.gateway == "hylafax", path
        if "not received on" in subject:  # failed reception: no sender known
            assert info.sender_number is None, path
            continue
        assert info.sender_number == E164, path
        if "Pages:" in body:
            assert info.pages == 3, path
            assert info.received_at == RECEIVED, path
            checked += 1
    assert checked


def test_hylafax_body_only_custom_subject() -> None:
    """FaxDispatch often changes the subject; the notice block still identifies it."""
    body = (
        "recvq/fax000000123.tif:\n          Sender: <UNSPECIFIED>\n           Pages: 2\n"
        "        Received: 2026:11:20 10:15:03\n         CallID1: 020 8768 1011\n"
        "     Received On: ttyIAX0\n"
    )
    info = extract_fax_info("传真 / incoming", body, {}, [])
    assert info == FaxInfo(E164, "020 8768 1011", 2, RECEIVED, "hylafax")


def test_asterisk_headers_only() -> None:
    info = extract_fax_info(
        "Voicemail-to-fax", "", {"X-Fax-Caller-ID": "02087681011", "X-Fax-Pages": "4"}, []
    )
    assert info is not None and info.sender_number == E164 and info.pages == 4


def test_tsi_falls_back_to_caller_id() -> None:
    """A station ID that is only a company name: the caller ID identifies the sender."""
    body = "Remote station ID: ACME FAX\nCaller ID: 02087681011\nPages: 1\n"
    info = extract_fax_info("New fax from 02087681011", body, {}, [])
    assert info is not None
    assert info.sender_number == E164
    assert info.raw_sender == "02087681011"


def test_unusable_number_keeps_raw_sender() -> None:
    info = extract_fax_info('eFax message from "ACME Ltd" - 2 page(s)', "", {}, [])
    assert info is not None
    assert info.sender_number is None
    assert info.raw_sender == "ACME Ltd"
    assert info.pages == 2


def test_spool_filename() -> None:
    info = extract_fax_info("", "", None, ["fax000123_+862087681011_20261120T101503.tif"])
    assert info == FaxInfo(E164, "+862087681011", None, RECEIVED, "spool")


def test_filename_completes_other_gateway() -> None:
    """Fields missing from the first identifying pattern come from later ones."""
    info = extract_fax_info(
        "Fax from ACME", "", None, ["fax000123_+862087681011_20261120T101503.pdf"]
    )
    assert info is not None
    assert info.gateway == "spool"
    assert info.sender_number == E164 and info.received_at == RECEIVED


@pytest.mark.parametrize(
    ("subject", "body", "filenames"),
    [
        ("Re: 系统宕机", "Pages: 3\n", ["report.pdf"]),
        ("Invoice", "Sender: bob\nPages: 2\n", []),
        ("Meeting notes", "Fax: 020-87681011\nTel: 020-87681012", ["scan.tif"]),
        ("", "", []),
    ],
)
def test_not_a_fax(subject: str, body: str, filenames: list[str]) -> None:
    assert extract_fax_info(subject, body, {}, filenames) is None


def test_timezone_attached() -> None:
    cst = timezone(timedelta(hours=8))
    info = extract_fax_info(
        "", "", None, ["fax000123_+862087681011_20261120T101503.tif"], tz=cst
    )
    assert info is not None and info.received_at == RECEIVED.replace(tzinfo=cst)


def test_headers_as_mapping_and_list() -> None:
    for headers in ({"X-Fax-Caller-ID": "020 8768 1011"}, [("x-fax-caller-id", "020 8768 1011")]):
        info = extract_fax_info("", "", headers, [])
        assert info is not None and info.sender_number == E164


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026:11:20 10:15:03", RECEIVED),
        ("2026-11-20 10:15:03", RECEIVED),
        ("2026/11/20 10:15:03", RECEIVED),
        ("20261120T101503", RECEIVED),
        ("Thu Nov 20 10:15:03 CST 2026", RECEIVED),
        ("2026年11月20日 10:15:03", RECEIVED),
        ("2026-11-20T10:15:03+08:00", RECEIVED.replace(tzinfo=timezone(timedelta(hours=8)))),
        ("Fri, 20 Nov 2026 10:15:03 +0800", RECEIVED.replace(tzinfo=timezone(timedelta(hours=8)))),
        ("yesterday", None),
        ("", None),
    ],
)
def test_parse_received(raw: str, expected: datetime | None) -> None:
    assert parse_received(raw) == expected


# ---------------------------------------------------------------- normalisation

NORMALISATION = [
    ("+86 20 8768 1011", E164),
    ("+86-20-87681011", E164),
    ("+862087681011", E164),
    ("0086 20 8768 1011", E164),
    ("0086-20-87681011", E164),
    ("00862087681011", E164),
    ("+0086 20 87681011", E164),
    ("86 20 8768 1011", E164),
    ("020-87681011", E164),
    ("020 8768 1011", E164),
    ("(020) 8768-1011", E164),
    ("(020)87681011", E164),
    ("020.8768.1011", E164),
    ("+86 (0)20 8768 1011", E164),
    ("  +86  20  8768  1011  ", E164),
    ("０２０－８７６８１０１１", E164),
    ("ACME GZ +86 20 8768 1011", E164),
    ("ACME-FAX 020-87681011", E164),
    ("FAX:020-87681011", E164),
    ("020-87681011 ext 12", E164),
    ("020-87681011转8001", E164),
    ('"+86 20 8768 1011"', E164),
    ("138 0013 8000", "+8613800138000"),
    ("+86 138-0013-8000", "+8613800138000"),
    ("0755-8888 6666", "+8675588886666"),
    ("+1 415 555 2671", "+14155552671"),
    ("+44 20 7946 0958", "+442079460958"),
    ("8768 1011", None),  # local number without area code: cannot map
    ("<UNSPECIFIED>", None),
    ("unknown", None),
    ("Anonymous", None),
    ("", None),
    ("   ", None),
    ("ACME LTD", None),
    ("12345", None),
    ("+86 20", None),
]


@pytest.mark.parametrize(("raw", "expected"), NORMALISATION)
def test_normalize_number(raw: str, expected: str | None) -> None:
    assert normalize_number(raw, "CN") == expected


def test_normalize_number_other_region() -> None:
    assert normalize_number("(415) 555-2671", "US") == "+14155552671"
    assert normalize_number("011 86 20 8768 1011", "US") == E164
    assert normalize_number(None) is None


# ---------------------------------------------------------------- sidecars

FAXINFO_TEXT = b"""recvq/fax000000123.tif:
              Sender: +86 20 8768 1011
               Pages: 3
             Quality: Fine
                Page: ISO A4
            Received: 2026:11:20 10:15:03
     Time To Receive: 0:42
         Signal Rate: 14400 bit/s
         Data Format: 2-D MMR
       Error Correct: Yes
             CallID1: 02087681011
         Received On: ttyIAX0
              CommID: 000000123 (ftp://fax:4559/log/c000000123)
"""


def test_sidecar_faxinfo_text() -> None:
    info = parse_sidecar("fax000000123.info", FAXINFO_TEXT, "CN")
    assert info == FaxInfo(E164, "+86 20 8768 1011", 3, RECEIVED, "hylafax")


def test_sidecar_callid_only() -> None:
    data = b"Sender: <UNSPECIFIED>\nPages: 1\nCallID: 020-87681011\n"
    info = parse_sidecar("x.txt", data, "CN")
    assert info.sender_number == E164 and info.raw_sender == "020-87681011"


def test_sidecar_json() -> None:
    data = json.dumps(
        {"sender": "ACME", "caller_id": "0086 20 8768 1011", "pages": 2,
         "received": "2026-11-20T10:15:03+08:00", "gateway": "t38-box"}
    ).encode()
    info = parse_sidecar("fax1.json", data, "CN")
    assert info.sender_number == E164
    assert info.raw_sender == "0086 20 8768 1011"
    assert info.pages == 2
    assert info.received_at == RECEIVED.replace(tzinfo=timezone(timedelta(hours=8)))
    assert info.gateway == "t38-box"


def test_sidecar_json_unix_time() -> None:
    info = parse_sidecar("a.json", b'{"sender": "+862087681011", "received": 0}', "CN")
    assert info.received_at == datetime(1970, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("a.json", b"{not json", "invalid JSON"),
        ("a.json", b"[1, 2]", "must be an object"),
        ("a.json", b'{"colour": "red"}', "no fax metadata"),
        ("a.json", b'{"sender": "x", "pages": "three"}', "not a page count"),
        ("a.json", b'{"sender": "x", "pages": 2.5}', "must be an integer"),
        ("a.json", b'{"sender": "x", "pages": 0}', "out of range"),
        ("a.json", b'{"sender": "x", "received": "soon"}', "not a date/time"),
        ("a.json", b'{"sender": ["x"]}', "must be a string"),
        ("a.txt", b"just some words\nno colons", "no fax metadata"),
        ("a.txt", b"", "empty"),
        ("a.txt", b"\x00\x01\x02II*", "binary"),
        ("a.txt", b"\xff\xfe\xfd\x80\x81", "not valid"),
        ("a.txt", b"Pages: 1" + b" " * 300_000, "too large"),
    ],
)
def test_sidecar_garbage(name: str, data: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as info:
        parse_sidecar(name, data, "CN")
    assert name in str(info.value)


# ---------------------------------------------------------------- pattern config


def test_pattern_from_dict() -> None:
    pattern = FaxPattern.from_dict(
        {
            "name": "acme-gw",
            "subject": r"^\[FAX\] (?P<number>[\d ]+) / (?P<pages>\d+)p",
            "body": [r"^When: (?P<received>.+)$"],
        }
    )
    info = extract_fax_info(
        "[FAX] 020 8768 1011 / 2p", "When: 2026-11-20 10:15:03\n", {}, [],
        patterns=(pattern, *DEFAULT_FAX_PATTERNS),
    )
    assert info == FaxInfo(E164, "020 8768 1011", 2, RECEIVED, "acme-gw")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"name": "broken", "subject": "(?P<number>[0-9+"}, r"'broken'.*bad subject regex"),
        ({"name": "broken", "body": ["ok", "(unclosed"]}, r"'broken'.*bad body regex"),
        ({"name": "broken", "subject": "(?P<phone>\\d+)"}, r"'broken'.*unknown group.*phone"),
        ({"name": "broken", "subjct": "x"}, r"'broken'.*unknown key.*subjct"),
        ({"name": "broken"}, r"'broken' has no regexes"),
        ({"name": "broken", "subject": 42}, r"'broken'.*regex or a list"),
        ({"name": "broken", "body": [42]}, r"'broken'.*must be a string"),
        ({"name": "broken", "headers": ["X-Fax"]}, r"'broken'.*headers must be a table"),
        ({"name": "broken", "body": "x", "body_min_matches": 0}, r"'broken'.*body_min_matches"),
        ({"subject": "x"}, r"without a 'name'"),
        ("not a table", r"must be a table"),
    ],
)
def test_pattern_config_errors(config: object, message: str) -> None:
    with pytest.raises(FaxPatternError, match=message):
        FaxPattern.from_dict(config)  # type: ignore[arg-type]


def test_pattern_error_is_value_error() -> None:
    assert issubclass(FaxPatternError, ValueError)
