"""parse_message against the shared real-world corpus (../shared/corpus).

Skipped when the corpus is absent (a fresh clone has no shared/). Other
libraries' expectations are reference points: where casegate decodes better
the assertion says so.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest

from casegate.parsers import ParsedMessage, ParseError, parse_message

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
pytestmark = [
    pytest.mark.corpus,
    pytest.mark.skipif(not CORPUS.is_dir(), reason=f"shared mail corpus not found at {CORPUS}"),
]

TALON = CORPUS / "talon" / "tests" / "fixtures" / "standard_replies"
# Talon keeps the signature in its expected text; casegate cuts signatures too
# (rules must not see "Sent from my iPhone" or a sig block), so for these the
# expected new text is talon's with the signature removed.
TALON_SIGNATURE_CUT = {
    "iphone": "Hello",  # talon: "Hello\n\nSent from my iPhone"
    "sparrow": "Hello",  # talon: "Hello \n\n-- \nxxx\nSent with Sparrow (...)"
}
TALON_UNSUPPORTED: dict[str, str] = {}  # name -> reason; all 12 clients currently supported

# bounce_email/EXPECTED.tsv rows we deliberately disagree with.
BOUNCE_EXCEPTIONS = {
    "ronbeltran-extras/tests/bounces/bounce-auto-respond.txt": (
        "an ARF abuse feedback report (report-type=feedback-report), not a delivery failure; "
        "the upstream Python port calls it a bounce, casegate does not"
    ),
}


def _all_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.rglob("*") if p.is_file())


def _parse(rel: str) -> ParsedMessage:
    return parse_message((CORPUS / rel).read_bytes())


def test_every_file_parses_or_raises_parse_error() -> None:
    timings: list[tuple[float, str]] = []
    parsed = failed = 0
    for path in _all_files():
        raw = path.read_bytes()
        start = time.perf_counter()
        try:
            msg = parse_message(raw)
        except ParseError as exc:
            assert exc.reason
            failed += 1
        else:
            parsed += 1
            assert isinstance(msg.subject, str) and isinstance(msg.text, str)
            assert all(a.filename and a.filename not in (".", "..") and "/" not in a.filename for a in msg.attachments)
        timings.append((time.perf_counter() - start, str(path.relative_to(CORPUS))))
    timings.sort(reverse=True)
    print(f"\n{parsed} parsed, {failed} ParseError (non-mail files such as .json/.xml are expected here)")
    for seconds, rel in timings[:5]:
        print(f"  slowest: {seconds * 1000:8.1f} ms  {rel}")


@pytest.mark.parametrize(
    "rel, subject",
    [
        ("mail-parser/tests/mails/mail_test_9", "我把镜头拉近些，你们看看这个是什么屄，这种场合自然少不了内射"),
        ("mail-parser/tests/mails/mail_test_12", "代开各地增值税发票"),
        ("webklex-php-imap/tests/messages/gbk_charset.eml", "Nuu"),
    ],
)
def test_mislabelled_chinese_subjects(rel: str, subject: str) -> None:
    assert _parse(rel).subject == subject


def test_mail_parser_bodies_decode() -> None:
    # GB2312-labelled GBK body; GB2312-labelled body that is really UTF-8.
    assert "我把镜头拉近些" in _parse("mail-parser/tests/mails/mail_test_9").text
    assert "你好！我公司可代开各类增值税发票" in _parse("mail-parser/tests/mails/mail_test_12").text


def test_mail_parser_addresses_and_attachments() -> None:
    m18 = _parse("mail-parser/tests/mails/mail_test_18")
    assert (m18.from_.name, m18.from_.email) == ("LastßlName, FirstName", "comma.name@example.com")
    assert [(a.name, a.email) for a in m18.cc] == [("", "simple@example.net"), ('John "Johnny" Doe', "john.doe@example.com")]
    m17 = _parse("mail-parser/tests/mails/mail_test_17")
    assert (m17.from_.name, m17.from_.email) == ("", "notificaccion-clientes@bbva.mx")
    m19 = _parse("mail-parser/tests/mails/mail_test_19")
    assert (m19.from_.name, m19.from_.email) == ("alice@example.com", "bob@example.com")
    m2 = _parse("mail-parser/tests/mails/mail_test_2")
    assert m2.message_id == "4516257BC5774408ADC1263EEBBBB73F@ad.regione.vda.it"
    assert m2.subject == "Bollettino Meteorologico del 29/11/2015"
    assert len(m2.attachments) == 3
    m15 = _parse("mail-parser/tests/mails/mail_test_15")
    assert [a.filename for a in m15.attachments] == ["REQUEST FOR QUOTE.zip"]
    assert "CloseBoundaryNotFoundDefect" in _parse("mail-parser/tests/mails/mail_test_1").defects


def _bounce_rows() -> list[tuple[str, bool, str]]:
    tsv = CORPUS / "bounce_email" / "EXPECTED.tsv"
    if not tsv.is_file():
        return []
    rows = []
    with tsv.open(encoding="utf-8") as fh:
        for row in csv.reader(fh, delimiter="\t"):
            if not row or row[0].startswith("#") or row[0] == "file":
                continue
            rows.append((row[0], row[1].startswith("yes"), row[1]))
    return rows


@pytest.mark.parametrize("rel, bounce, note", _bounce_rows())
def test_bounce_email_expectations(rel: str, bounce: bool, note: str) -> None:
    msg = parse_message((CORPUS / "bounce_email" / rel).read_bytes())
    if rel in BOUNCE_EXCEPTIONS:
        assert msg.is_bounce is False, BOUNCE_EXCEPTIONS[rel]
        return
    assert msg.is_bounce is bounce, note


def test_non_bounce_auto_replies() -> None:
    mdn = _parse("flanker/tests/fixtures/messages/disposition-notification.eml")
    assert mdn.is_auto_reply and not mdn.is_bounce  # read receipt: automatic, not a bounce


def _talon_names() -> list[str]:
    return sorted(p.stem for p in TALON.glob("*.eml")) if TALON.is_dir() else []


@pytest.mark.parametrize("name", _talon_names())
def test_talon_standard_replies(name: str) -> None:
    if name in TALON_UNSUPPORTED:
        pytest.skip(TALON_UNSUPPORTED[name])
    msg = parse_message((TALON / f"{name}.eml").read_bytes())
    expected_file = TALON / f"{name}_reply_text"
    expected = expected_file.read_text("utf-8").strip() if expected_file.is_file() else "Hello"
    expected = TALON_SIGNATURE_CUT.get(name, expected)
    assert msg.new_text.strip() == expected


@pytest.mark.parametrize(
    "rel",
    [
        "flanker/tests/fixtures/messages/enclosed-endless.eml",
        "flanker/tests/fixtures/messages/long-header.eml",
        "flanker/tests/fixtures/messages/torture.eml",
    ],
)
def test_pathological_inputs_are_bounded(rel: str) -> None:
    start = time.perf_counter()
    msg = _parse(rel)
    elapsed = time.perf_counter() - start
    print(f"\n{rel}: {elapsed * 1000:.1f} ms, defects={msg.defects[:3]}")
    if rel.endswith("enclosed-endless.eml"):
        assert any(d.startswith("PartLimitExceeded") for d in msg.defects) or len(msg.attachments) <= 500
