"""Shared pieces of the fax tests: the OCR requirement, a fake OCR, configs.

Real OCR tests (marked ``ocr``) skip locally without tesseract or a CJK font
and fail on CI (CI=true), like tests/test_ocr.py. The fake OCR lets the
routing, customer and failure logic be tested without tesseract.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from casegate.daemon.runtime.app import App
from casegate.parsers.ocr import DEFAULT_LANGUAGES, OcrResult, tesseract_available
from faxgen import find_cjk_font
from helpers import make_app

GATEWAY = "{number}@fax.gateway.example"
FAX_SECTION: dict[str, Any] = {"reply_gateway": GATEWAY, "default_priority": "P2"}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require(ok: bool, what: str) -> None:
    if ok:
        return
    if in_ci():
        pytest.fail(f"CI=true but {what}", pytrace=False)
    pytest.skip(what)


def require_ocr() -> None:
    require(
        tesseract_available(DEFAULT_LANGUAGES),
        "tesseract or its language data missing "
        "(Debian: tesseract-ocr tesseract-ocr-chi-sim tesseract-ocr-chi-tra tesseract-ocr-eng)",
    )
    require_font()


def require_font() -> None:
    require(find_cjk_font() is not None, "no CJK font (Debian: fonts-wqy-zenhei)")


class FakeOcr:
    """Stands in for ocr_document: returns fixed text, or fails with a reason."""

    def __init__(self, text: str = "", error: str | None = None) -> None:
        self.text = text
        self.error = error
        self.calls: list[tuple[str, int]] = []

    def __call__(self, content: bytes, content_type: str, languages, max_pages, timeout_s, dpi, **kw) -> OcrResult:  # type: ignore[no-untyped-def]
        self.calls.append((content_type, len(content)))
        if self.error:
            return OcrResult("", 0, "none", False, self.error, 0.0)
        return OcrResult(self.text, 1, "ocr", True, None, 0.0, 1)


def fax_app(tmp_path: Path, ocr: FakeOcr | None = None, fax: dict[str, Any] | None = None, **sections: Any) -> App:
    """An App with a [fax] section (gateway replies on); a fake OCR when given."""
    app = make_app(tmp_path, fax={**FAX_SECTION, **(fax or {})}, **sections)
    if ocr is not None:
        app.fax.ocr = ocr
    return app
