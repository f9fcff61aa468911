"""Fax gateways as they really write (issue 18), through the pipeline: the
issue's two messages (tests/data/fax/) become fax cases with the sender's
number in E.164 and their pages read by OCR; which part is the fax image;
the security rule for ordinary mailboxes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from casegate.daemon.fax.intake import find_fax_documents
from casegate.daemon.inbound import Inbound, Source
from casegate.daemon.runtime.app import App
from casegate.parsers import parse_message
from casegate.parsers.fax import leaf_parts
from casegate.storage import repository as repo
from casegate.storage.models import Case
from fax_support import FakeOcr, fax_app, require_ocr
from faxgen import (
    CHINESE_PAGES,
    CISCO_PAGES,
    PBX_PAGES,
    SAMPLES_DIR,
    chinese_fax_server_mail,
    cisco_t37_mail,
    pbx_fax_mail,
)

CISCO = SAMPLES_DIR / "cisco-t37.eml"
PBX = SAMPLES_DIR / "pbx-de.eml"
ZH = SAMPLES_DIR / "fax-server-zh.eml"
FAXBOX = Source("faxbox", "fax")
MAILBOX = Source("mail", "imap")
TIFF = b"II*\x00" + b"\x00" * 64  # recognised by its bytes; the fake OCR reads it
PDF = b"%PDF-1.4\n%fake\n"
CISCO_E164 = "+13412900100"  # FAX=3412900100, a US gateway: default_region = "US"
PBX_E164 = "+49000783135"  # *49000783135: '*' is the PBX's '+'


def load(app: App, number: str) -> Case:
    with app.db.session() as s:
        case = repo.load_case(s, number)
        assert case is not None
        case.customer and case.customer.contacts  # load while the session is open
        case.messages and case.events
        return case


def events(case: Case, action: str) -> list[dict[str, Any]]:
    return [json.loads(e.detail) if e.detail else {} for e in case.events if e.action == action]


# ---------------------------------------------------------------- which part is the fax image


def test_the_marked_part_is_the_fax_image() -> None:
    """A part marked application=faxbw is the fax; another TIFF or a PDF beside it is not."""
    raw = (
        b"From: FAX=+862087681011@gw.example\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/fax-message; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=terms.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n"
        b"--b\r\nContent-Type: image/tiff; application=faxbw; version=rev-a\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nSUkqAAAAAAAAAAAA\r\n--b--\r\n"
    )
    parsed = parse_message(raw)
    assert len(parsed.attachments) == 2
    (doc,) = find_fax_documents(parsed.attachments, leaf_parts(raw))
    assert doc.part == 2 and doc.attachment.content.startswith(b"II*") and "application=faxbw" in doc.why
    # Without the marking, every TIFF or PDF is (the old rule).
    assert len(find_fax_documents(parsed.attachments)) == 2


def test_a_single_part_fax_is_its_own_document() -> None:
    raw = (b"From: FAX=+862087681011@gw.example\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: image/tiff; application=faxbw\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           b"SUkqAAAAAAAAAAAA\r\n")
    parsed = parse_message(raw)
    (doc,) = find_fax_documents(parsed.attachments, leaf_parts(raw))
    assert doc.attachment.content.startswith(b"II*\x00") and doc.part == 1


def test_the_same_document_twice_is_read_once() -> None:
    raw = pbx_fax_mail(PDF, pages=1)
    parsed = parse_message(raw)
    twice = (*parsed.attachments, *parsed.attachments)
    assert len(find_fax_documents(twice, leaf_parts(raw))) == 1


# ---------------------------------------------------------------- through the pipeline (fake OCR)


def cisco_raw(**kw: Any) -> bytes:
    return cisco_t37_mail(TIFF, **kw)


def test_cisco_fax_in_a_fax_source_is_a_fax_case_not_an_auto_reply(tmp_path: Path) -> None:
    ocr = FakeOcr("All printers in our branch office are down.")
    app = fax_app(tmp_path, ocr, fax={"default_region": "US"})
    res = app.pipeline.ingest(Inbound(cisco_raw(), FAXBOX))
    assert res.outcome == "new", res
    case = load(app, res.case_number)
    assert case.customer is not None and case.customer.contact("fax") == CISCO_E164
    assert case.customer.name == CISCO_E164  # the number names a new fax customer, not "FAX=..."
    (received,) = events(case, "fax-received")
    assert received["gateway"] == "internet-fax" and received["pages"] == 1  # counted by the reader
    assert "printers" in case.messages[0].text
    assert ocr.calls == [("image/tiff", len(TIFF))]
    with app.db.session() as s:
        assert repo.find_customer(s, "email", "fax=3412900100@cisco-gw.example.com") is None


def test_cisco_fax_in_a_mailbox_from_a_configured_gateway_is_a_fax(tmp_path: Path) -> None:
    app = fax_app(tmp_path, FakeOcr("printers down"),
                  fax={"default_region": "US", "gateway_senders": ["@cisco-gw.example.com"]})
    res = app.pipeline.ingest(Inbound(cisco_raw(), MAILBOX))
    assert res.outcome == "new"
    case = load(app, res.case_number)
    assert case.customer.contact("fax") == CISCO_E164
    assert events(case, "fax-received")[0]["gateway"] == "internet-fax"


def test_cisco_fax_from_an_unconfigured_sender_stays_mail(tmp_path: Path) -> None:
    """The security rule: in an ordinary mailbox only configured gateways send faxes,
    however fax-like the message; this one is then automatic mail (X-Autogenerated)."""
    ocr = FakeOcr("printers down")
    app = fax_app(tmp_path, ocr, fax={"default_region": "US"})
    res = app.pipeline.ingest(Inbound(cisco_raw(), MAILBOX))
    assert res.outcome == "ignored" and ocr.calls == []


def test_forged_fax_address_in_a_mailbox_is_no_fax(tmp_path: Path) -> None:
    ocr = FakeOcr("please call back")
    app = fax_app(tmp_path, ocr, fax={"gateway_senders": ["@cisco-gw.example.com"]})
    raw = cisco_t37_mail(TIFF, "FAX=+19005550100", host="evil.example", group_alias=False)
    res = app.pipeline.ingest(Inbound(raw, MAILBOX))
    case = load(app, res.case_number)
    assert ocr.calls == [] and not events(case, "fax-received")
    with app.db.session() as s:
        assert repo.find_customer(s, "fax", "+19005550100") is None


def test_sub_address_is_recorded(tmp_path: Path) -> None:
    app = fax_app(tmp_path, FakeOcr("printers down"))
    res = app.pipeline.ingest(Inbound(cisco_t37_mail(TIFF, "FAX=+12027653000/T33S=1387"), FAXBOX))
    case = load(app, res.case_number)
    assert case.customer.contact("fax") == "+12027653000"
    assert events(case, "fax-received")[0]["sub_address"] == "1387"


def test_pbx_fax_in_a_fax_source(tmp_path: Path) -> None:
    ocr = FakeOcr("The mail server has been down since 09:00.")
    app = fax_app(tmp_path, ocr)
    res = app.pipeline.ingest(Inbound(pbx_fax_mail(PDF, pages=2), FAXBOX))
    assert res.outcome == "new"
    case = load(app, res.case_number)
    assert case.customer.contact("fax") == PBX_E164 and case.customer.name == PBX_E164
    assert not any(c.kind == "email" for c in case.customer.contacts)
    (received,) = events(case, "fax-received")
    assert (received["gateway"], received["raw_sender"], received["pages"]) == ("pbx-fax", "*49000783135", 2)
    assert ocr.calls == [("application/pdf", len(PDF))]
    assert "mail server" in case.messages[0].text


def test_pbx_fax_in_a_mailbox_from_a_configured_gateway(tmp_path: Path) -> None:
    app = fax_app(tmp_path, FakeOcr("server down"), fax={"gateway_senders": ["@gateway.example.de"]})
    res = app.pipeline.ingest(Inbound(pbx_fax_mail(PDF, pages=1), MAILBOX))
    case = load(app, res.case_number)
    assert case.customer.contact("fax") == PBX_E164
    with app.db.session() as s:
        assert repo.find_customer(s, "email", '"#fax#*49000783135#"@gateway.example.de') is None


def test_known_number_finds_its_customer_whatever_the_gateway_wrote(tmp_path: Path) -> None:
    app = fax_app(tmp_path, FakeOcr("server down"))
    with app.db.transaction() as s:
        cust = repo.create_customer(s, app.clock(), name="ACME GmbH", contacts=[("fax", "+493023125100")])
        s.flush()
        cust_id = cust.id
    for raw in (pbx_fax_mail(PDF, "*493023125100", pages=1),
                chinese_fax_server_mail(PDF + b"2", "+49 30 23125100", pages=1)):
        res = app.pipeline.ingest(Inbound(raw, FAXBOX))
        assert load(app, res.case_number).customer_id == cust_id


# ---------------------------------------------------------------- real OCR: the "done when"


@pytest.mark.ocr
def test_cisco_t37_becomes_a_fax_case_read_by_ocr(tmp_path: Path) -> None:
    require_ocr()
    app = fax_app(tmp_path, fax={"default_region": "US"})
    res = app.pipeline.ingest(Inbound(CISCO.read_bytes(), FAXBOX))
    assert res.outcome == "new"
    case = load(app, res.case_number)
    assert case.customer.contact("fax") == CISCO_E164
    text = case.messages[0].text
    assert "printers" in text and "ACME" in text, text
    assert not events(case, "fax-not-read")
    assert events(case, "fax-received")[0]["pages"] == len(CISCO_PAGES)


@pytest.mark.ocr
def test_german_pbx_fax_becomes_a_fax_case_read_by_ocr(tmp_path: Path) -> None:
    require_ocr()
    app = fax_app(tmp_path, fax={"gateway_senders": ["@gateway.example.de"], "timezone": "Europe/Berlin"})
    res = app.pipeline.ingest(Inbound(PBX.read_bytes(), MAILBOX))
    assert res.outcome == "new"
    case = load(app, res.case_number)
    assert case.customer.contact("fax") == PBX_E164
    text = case.messages[0].text
    assert "mail server" in text and "Hamburg" in text, text
    assert not events(case, "fax-not-read")
    received = events(case, "fax-received")[0]
    assert received["pages"] == len(PBX_PAGES) and received["received_at"].startswith("2026-11-20T10:15:00+01:00")


@pytest.mark.ocr
def test_chinese_fax_server_fax_is_a_p1_case(tmp_path: Path) -> None:
    require_ocr()
    app = fax_app(tmp_path)
    res = app.pipeline.ingest(Inbound(ZH.read_bytes(), FAXBOX))
    case = load(app, res.case_number)
    assert case.customer.contact("fax") == "+862087681011"
    assert "全部中断" in case.messages[0].text and case.priority == "P1", case.messages[0].text
    assert len(CHINESE_PAGES) == events(case, "fax-received")[0]["pages"]
