"""OCR of fax attachments with tesseract, on faxes rendered by tests/faxgen.py.

Tests needing tesseract, its chi_sim/chi_tra/eng data and a CJK font are
marked ``ocr``. Where those are missing they skip locally but fail when
CI=true: a silently skipped OCR suite would look green while testing nothing.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from casegate.parsers.ocr import (
    DEFAULT_LANGUAGES,
    OcrResult,
    collapse_cjk_spaces,
    ocr_document,
    tesseract_available,
)
from faxgen import find_cjk_font, make_text_pdf, render_fax_pdf, render_fax_tiff

PAGE1 = ["系统宕机，请速派工程师"]
PAGE2 = ["Customer: ACME 20-8768-1011"]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _require(ok: bool, what: str) -> None:
    if ok:
        return
    if _in_ci():
        pytest.fail(f"CI=true but {what}", pytrace=False)
    pytest.skip(what)


@pytest.fixture
def ocr_env() -> None:
    """tesseract with all languages, and a CJK font to draw the test faxes."""
    _require(
        tesseract_available(DEFAULT_LANGUAGES),
        "tesseract or its language data missing "
        "(Debian: tesseract-ocr tesseract-ocr-chi-sim tesseract-ocr-chi-tra tesseract-ocr-eng)",
    )
    _require(find_cjk_font() is not None, "no CJK font (Debian: fonts-wqy-zenhei)")


@pytest.fixture
def font_only() -> None:
    _require(find_cjk_font() is not None, "no CJK font (Debian: fonts-wqy-zenhei)")


def _assert_two_pages(result: OcrResult) -> None:
    assert result.ok, result.error
    assert result.method == "ocr"
    assert result.pages == 2
    assert "系统宕机" in result.text
    assert "ACME" in result.text
    # Page order is kept; pages are separated by a form feed.
    page1, page2 = result.text.split("\f")
    assert "系统宕机" in page1 and "ACME" in page2


# ---------------------------------------------------------------- real OCR


@pytest.mark.ocr
def test_g4_tiff_two_pages(ocr_env: None) -> None:
    tiff = render_fax_tiff([PAGE1, PAGE2])
    _assert_two_pages(ocr_document(tiff, "image/tiff"))


@pytest.mark.ocr
def test_tiff_sniffed_from_octet_stream(ocr_env: None) -> None:
    tiff = render_fax_tiff([PAGE1, PAGE2])
    _assert_two_pages(ocr_document(tiff, "application/octet-stream", workers=1))


@pytest.mark.ocr
def test_image_only_pdf(ocr_env: None) -> None:
    pdf = render_fax_pdf([PAGE1, PAGE2])
    _assert_two_pages(ocr_document(pdf, "application/pdf"))


@pytest.mark.ocr
def test_low_resolution_tiff(ocr_env: None) -> None:
    """100 dpi scans are upscaled before OCR.

    At 100 dpi single ideographs get misread (宕 -> 大), so only part of the
    Chinese line is asserted.
    """
    tiff = render_fax_tiff([PAGE1, PAGE2], dpi=100)
    result = ocr_document(tiff, "image/tiff")
    assert result.ok, result.error
    assert result.pages == 2
    assert "系统" in result.text and "工程" in result.text
    assert "ACME" in result.text


@pytest.mark.ocr
def test_standard_resolution_fax_latin(ocr_env: None) -> None:
    """204x98 dpi pages (non-square pixels) are stretched before OCR.

    Chinese at standard resolution is too coarse to read reliably, so only
    the Latin line is asserted.
    """
    tiff = render_fax_tiff([PAGE2], dpi=(204, 98))
    result = ocr_document(tiff, "image/tiff")
    assert result.ok, result.error
    assert "ACME" in result.text


@pytest.mark.ocr
def test_page_limit(ocr_env: None) -> None:
    tiff = render_fax_tiff([PAGE1, PAGE2, ["第三页 page three"]])
    result = ocr_document(tiff, "image/tiff", max_pages=1)
    assert result.ok, result.error
    assert result.pages == 1
    assert result.total_pages == 3
    assert result.truncated
    assert "系统宕机" in result.text
    assert "ACME" not in result.text


@pytest.mark.ocr
def test_pdf_page_limit(ocr_env: None) -> None:
    pdf = render_fax_pdf([PAGE1, PAGE2, PAGE2])
    result = ocr_document(pdf, "application/pdf", max_pages=2)
    assert result.pages == 2 and result.total_pages == 3 and result.truncated


# ---------------------------------------------------------------- no tesseract needed


def test_text_layer_pdf_skips_ocr() -> None:
    pdf = make_text_pdf(["故障报告：系统宕机，请速派工程师\nCustomer: ACME", "第二页 second page text"])
    result = ocr_document(pdf, "application/pdf", tesseract_cmd="/nonexistent/tesseract")
    assert result.ok, result.error
    assert result.method == "text-layer"
    assert result.pages == 2
    assert "系统宕机" in result.text and "ACME" in result.text


@pytest.mark.parametrize(
    ("content", "ctype", "error"),
    [
        (b"II*\x00" + b"\x00" * 64, "image/tiff", "cannot read TIFF"),
        (b"this is not an image", "image/tiff", "cannot read TIFF"),
        (b"%PDF-1.4\nnot really", "application/pdf", "cannot read PDF"),
        (b"", "image/tiff", "empty"),
        (b"PK\x03\x04zip", "application/zip", "unsupported content type"),
        (b"\x89PNG\r\n\x1a\nbroken", "image/png", "cannot read image"),
    ],
)
def test_bad_input_never_raises(content: bytes, ctype: str, error: str) -> None:
    result = ocr_document(content, ctype)
    assert not result.ok
    assert result.method == "none"
    assert result.text == ""
    assert result.error is not None and error in result.error


def test_truncated_tiff(font_only: None) -> None:
    tiff = render_fax_tiff([PAGE1, PAGE2])
    result = ocr_document(tiff[: len(tiff) // 3], "image/tiff")
    assert not result.ok
    assert result.error is not None and "cannot read TIFF" in result.error


def test_missing_tesseract_reported(font_only: None) -> None:
    tiff = render_fax_tiff([PAGE1])
    result = ocr_document(tiff, "image/tiff", tesseract_cmd="/nonexistent/tesseract")
    assert not result.ok
    assert result.error is not None and "tesseract not available" in result.error


def test_missing_language_reported(font_only: None, tmp_path: Path) -> None:
    fake = _fake_tesseract(tmp_path, "echo hello")
    result = ocr_document(render_fax_tiff([PAGE1]), "image/tiff", languages=("chi_sim", "klingon"),
                          tesseract_cmd=str(fake))
    assert not result.ok
    assert result.error is not None and "klingon" in result.error


def _fake_tesseract(tmp_path: Path, action: str) -> Path:
    """A stand-in tesseract: lists languages, runs ``action`` for OCR."""
    script = tmp_path / "tesseract"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "--list-langs" ]; then\n'
        '  echo "List of available languages (3):"; echo chi_sim; echo chi_tra; echo eng; exit 0\n'
        "fi\n"
        f"{action}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_time_limit_kills_slow_tesseract(font_only: None, tmp_path: Path) -> None:
    fake = _fake_tesseract(tmp_path, "exec sleep 30")
    tiff = render_fax_tiff([PAGE1, PAGE2, PAGE2])
    result = ocr_document(tiff, "image/tiff", timeout_s=1.0, tesseract_cmd=str(fake))
    assert not result.ok
    assert result.error is not None and "time limit" in result.error
    assert result.seconds < 5


def test_tesseract_failure_reported(font_only: None, tmp_path: Path) -> None:
    fake = _fake_tesseract(tmp_path, "echo 'Error: boom' >&2; exit 1")
    result = ocr_document(render_fax_tiff([PAGE1]), "image/tiff", tesseract_cmd=str(fake))
    assert not result.ok
    assert result.error is not None and "tesseract failed: Error: boom" in result.error


def test_fake_tesseract_output_is_cleaned(font_only: None, tmp_path: Path) -> None:
    fake = _fake_tesseract(tmp_path, "printf '系 统 宕 机 , 请 速 派\\n\\n\\n\\nACME 20-8768-1011\\f'")
    result = ocr_document(render_fax_tiff([PAGE1, PAGE2]), "image/tiff", tesseract_cmd=str(fake))
    assert result.ok, result.error
    assert result.text.split("\f") == ["系统宕机,请速派\n\nACME 20-8768-1011"] * 2


def test_tesseract_available_false_for_missing_binary() -> None:
    assert not tesseract_available(("eng",), tesseract_cmd="/nonexistent/tesseract")


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("系 统 宕 机", "系统宕机"),
        ("系统 宕机，请 速派", "系统宕机，请速派"),
        ("故障报告 : 系统 宕机 , 请速派", "故障报告:系统宕机,请速派"),
        ("ACME 系统 宕机 UPS 3000", "ACME 系统宕机 UPS 3000"),
        ("系统\n宕机", "系统\n宕机"),
        ("系统\u3000宕机", "系统宕机"),
        ("客户 ： 广州", "客户：广州"),
        ("a\n\n\n\nb  ", "a\n\nb"),
        ("Hello  world", "Hello  world"),
    ],
)
def test_collapse_cjk_spaces(raw: str, clean: str) -> None:
    assert collapse_cjk_spaces(raw) == clean


@pytest.mark.ocr
@pytest.mark.parametrize("style", ["hylafax", "asterisk", "efax"])
def test_gateway_mail_end_to_end(ocr_env: None, style: str) -> None:
    """Gateway mail -> fax metadata from the notice + text from the attachment."""
    import email
    import email.policy

    from casegate.parsers.fax import extract_fax_info
    from faxgen import gateway_mail

    document = render_fax_pdf([PAGE1, PAGE2]) if style == "efax" else render_fax_tiff([PAGE1, PAGE2])
    raw = gateway_mail("+86 20 8768 1011", document, style=style)  # type: ignore[arg-type]
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    body = msg.get_body(("plain",))
    attachments = list(msg.iter_attachments())
    info = extract_fax_info(
        str(msg["Subject"]), body.get_content() if body else "", list(msg.items()),
        [a.get_filename() or "" for a in attachments],
    )
    assert info is not None and info.sender_number == "+862087681011" and info.pages == 2
    (attachment,) = attachments
    _assert_two_pages(ocr_document(attachment.get_content(), attachment.get_content_type()))
