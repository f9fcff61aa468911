"""Text from fax attachments: PDF text layer first, OCR with tesseract second.

A fax reaches us as a multi-page (usually G4) TIFF or as a PDF that wraps
the scanned pages. Rules and case text need words, so this module returns
the document's text. It calls the ``tesseract`` binary (and ``pdftoppm``
when present) with ``subprocess`` rather than through a binding: a crash or
hang in OCR then stays in a child process that a timeout can kill, and the
daemon needs no extra Python dependency.

:func:`ocr_document` never raises for bad input; problems come back as
``OcrResult(ok=False, error=...)`` so the caller can still open the case with
the fax attached and a note that its text could not be read.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tempfile
import time
import unicodedata
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

__all__ = [
    "OcrResult",
    "collapse_cjk_spaces",
    "count_pages",
    "ocr_document",
    "pdftoppm_available",
    "tesseract_available",
    "MIN_TEXT_CHARS_PER_PAGE",
]

DEFAULT_LANGUAGES = ("chi_sim", "chi_tra", "eng")

#: A PDF page whose text layer has fewer non-blank characters than this is
#: treated as scanned and OCRed (fax PDFs often carry only a header line such
#: as "Page 1/3" as text, on top of the page image).
MIN_TEXT_CHARS_PER_PAGE = 20

#: Refuse pages above this many pixels (a 400 dpi A4 page is ~15 M): larger
#: images are decompression bombs or mistakes, and would blow the time budget.
MAX_PAGE_PIXELS = 40_000_000

Method = Literal["text-layer", "ocr", "none"]


@dataclass(frozen=True, slots=True)
class OcrResult:
    """Outcome of reading one document.

    ``text`` joins pages with a form feed (``\\f``), the page separator used
    by pdftotext and tesseract. ``pages`` is the number of pages read;
    ``total_pages`` how many the document has (when known) and ``truncated``
    says pages were skipped because of ``max_pages``, which is policy rather
    than an error, so ``ok`` stays True. When the time limit cuts OCR short,
    ``ok`` is False but ``text`` still holds the pages that were finished.
    ``method`` is "ocr" when any page went through tesseract.
    """

    text: str
    pages: int
    method: Method
    ok: bool
    error: str | None
    seconds: float
    total_pages: int | None = None
    truncated: bool = False


# --------------------------------------------------------------------------
# Text clean-up

# CJK ideographs, kana, bopomofo, CJK punctuation and full-width forms.
# U+3000 (ideographic space) is deliberately outside: it is whitespace.
_CJK = (
    "\u2e80-\u2fdf\u3001-\u303f\u3040-\u30ff\u3100-\u312f\u31a0-\u31bf"
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff01-\uff60"
    "\U00020000-\U0003134f"
)
_CJK_GAP = re.compile(rf"(?<=[{_CJK}])[ \t\u3000]+(?=[{_CJK}])")
# Tesseract also writes "报告 : 系统" and "宕机 , 请": ASCII punctuation set
# off by spaces inside Chinese text.
_CJK_BEFORE_PUNCT = re.compile(rf"(?<=[{_CJK}])[ \t]+(?=[:;,.!?)])")
_CJK_AFTER_PUNCT = re.compile(rf"(?<=[{_CJK}][:;,.!?(])[ \t]+(?=[{_CJK}])")
_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")


def collapse_cjk_spaces(text: str) -> str:
    """Remove the spaces tesseract puts between CJK characters.

    Tesseract's Chinese models emit "系 统 宕 机"; keyword rules and search
    expect "系统宕机". Only horizontal whitespace *between two* CJK
    characters is removed (also around ASCII punctuation inside Chinese
    text: "报告 : 系统" becomes "报告:系统"), so "ACME 系统" and line breaks
    are kept. Runs of
    blank lines are squeezed and trailing spaces dropped as well.
    """
    text = _CJK_GAP.sub("", text)
    text = _CJK_BEFORE_PUNCT.sub("", text)
    text = _CJK_AFTER_PUNCT.sub("", text)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


# --------------------------------------------------------------------------
# Tools


@lru_cache(maxsize=8)
def _installed_languages(binary: str) -> frozenset[str] | None:
    path = shutil.which(binary)
    if path is None:
        return None
    try:
        proc = subprocess.run(
            [path, "--list-langs"], capture_output=True, timeout=15, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    # Header line "List of available languages in ... (4):" goes to stdout in
    # tesseract 4/5 (stderr in 3.x); language names are bare words.
    out = (proc.stdout + proc.stderr).decode("utf-8", "replace")
    return frozenset(
        line.strip() for line in out.splitlines() if re.fullmatch(r"[A-Za-z0-9_\-]+", line.strip())
    )


def tesseract_available(
    languages: Sequence[str] = DEFAULT_LANGUAGES, tesseract_cmd: str = "tesseract"
) -> bool:
    """True when the tesseract binary runs and has all ``languages`` installed.

    Cached per binary; call ``tesseract_available.cache_clear()`` after
    installing language packs in a running process.
    """
    langs = _installed_languages(tesseract_cmd)
    return langs is not None and all(lang in langs for lang in languages)


tesseract_available.cache_clear = _installed_languages.cache_clear  # type: ignore[attr-defined]


def pdftoppm_available() -> bool:
    """True when poppler's pdftoppm is on PATH (used to rasterise PDF pages)."""
    return shutil.which("pdftoppm") is not None


# --------------------------------------------------------------------------
# Document kinds

Kind = Literal["pdf", "tiff", "image", "unknown"]


def _kind(content: bytes, content_type: str) -> Kind:
    """Decide the format by magic bytes, then by content type.

    Gateways often label attachments application/octet-stream, and some
    mislabel TIFF as PDF, so the bytes are trusted first.
    """
    head = content[:8]
    if head.startswith(b"%PDF") or b"%PDF-" in content[:1024]:
        return "pdf"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM")):
        return "image"
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype in ("image/tiff", "image/tif", "image/x-tiff", "application/tif", "application/tiff"):
        return "tiff"
    if ctype in ("application/pdf", "application/x-pdf"):
        return "pdf"
    if ctype.startswith("image/"):
        return "image"
    return "unknown"


def count_pages(content: bytes, content_type: str = "") -> int | None:
    """Pages of a TIFF, PDF or other image without reading them; None when
    the document cannot be opened. Never raises."""
    kind = _kind(content, content_type)
    try:
        if kind == "pdf":
            from pypdf import PdfReader

            reader = PdfReader(io.BytesIO(content), strict=False)
            if reader.is_encrypted:
                reader.decrypt("")
            return len(reader.pages)
        if kind in ("tiff", "image"):
            from PIL import Image

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with Image.open(io.BytesIO(content)) as im:
                    return int(getattr(im, "n_frames", 1))
    except Exception:  # corrupt documents: the count is unknown
        return None
    return None


class _Budget:
    """Wall-clock deadline shared by every step of one document."""

    def __init__(self, timeout_s: float) -> None:
        self.start = time.monotonic()
        self.deadline = self.start + max(0.0, timeout_s)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start


class _TimeLimit(Exception):
    pass


# --------------------------------------------------------------------------
# Page images


def _prepare_image(im, default_dpi: int):  # type: ignore[no-untyped-def]
    """Return (image ready for tesseract, dpi to announce).

    Standard-resolution faxes are 204x98 dpi: pixels twice as tall as wide.
    Tesseract assumes square pixels, so such pages are stretched vertically
    first; otherwise letters are squashed and recognition collapses. Pages
    under 150 dpi are upscaled 2x.
    """
    from PIL import Image

    if im.width * im.height > MAX_PAGE_PIXELS:
        raise ValueError(f"page of {im.width}x{im.height} pixels is too large")
    xdpi, ydpi = default_dpi, default_dpi
    dpi = im.info.get("dpi")
    if isinstance(dpi, tuple) and len(dpi) == 2:
        try:
            fx, fy = float(dpi[0]), float(dpi[1])
        except (TypeError, ValueError):
            fx = fy = 0.0
        if fx > 1 and fy > 1:
            xdpi, ydpi = int(round(fx)), int(round(fy))
    if im.mode not in ("1", "L"):
        im = im.convert("L")
    if ydpi and xdpi and abs(xdpi - ydpi) / max(xdpi, ydpi) > 0.1:
        new_h = max(1, int(round(im.height * xdpi / ydpi)))
        im = im.convert("L").resize((im.width, new_h), Image.Resampling.LANCZOS)
        ydpi = xdpi
    if xdpi < 150:
        # Low-resolution scans: tesseract reads CJK glyphs of 16 px far
        # better after a 2x upscale (measured with bench/fax_ocr.py).
        im = im.convert("L").resize((im.width * 2, im.height * 2), Image.Resampling.LANCZOS)
        xdpi *= 2
    return im, xdpi


def _tiff_pages(
    content: bytes, max_pages: int, dpi: int, tmp: Path
) -> tuple[list[tuple[Path, int]], int, str | None]:
    """Split a TIFF into PNG files: ([(png, dpi)], total pages, error).

    A fax cut off mid-transmission decodes up to the damaged page; those
    pages are kept and the damage reported. ValueError when no page decodes.
    """
    from PIL import Image, ImageSequence, UnidentifiedImageError

    out: list[tuple[Path, int]] = []
    error: str | None = None
    total = 0
    with warnings.catch_warnings():
        # Pillow warns about damaged tags; the outcome is reported instead.
        warnings.simplefilter("ignore")
        try:
            tif = Image.open(io.BytesIO(content))
        except UnidentifiedImageError as exc:
            raise ValueError("cannot read TIFF: not a TIFF image Pillow can decode") from exc
        except Exception as exc:  # Pillow raises many types for corrupt files
            raise ValueError(f"cannot read TIFF: {type(exc).__name__}: {exc}") from exc
        try:
            total = getattr(tif, "n_frames", 1)
            for index, frame in enumerate(ImageSequence.Iterator(tif)):
                if index >= max_pages:
                    break
                try:
                    frame.load()
                    page, page_dpi = _prepare_image(frame.copy(), dpi)
                except Exception as exc:
                    error = f"cannot read TIFF page {index + 1}: {type(exc).__name__}: {exc}"
                    break
                path = tmp / f"page{index + 1:04d}.png"
                page.save(path, format="PNG")
                out.append((path, page_dpi))
        except Exception as exc:
            error = error or f"cannot read TIFF: {type(exc).__name__}: {exc}"
        finally:
            tif.close()
    if not out:
        raise ValueError(error or "cannot read TIFF: no pages")
    return out, total, error


def _image_page(content: bytes, dpi: int, tmp: Path) -> list[tuple[Path, int]]:
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = Image.open(io.BytesIO(content))
            im.load()
            page, page_dpi = _prepare_image(im.copy(), dpi)
    except UnidentifiedImageError as exc:
        raise ValueError("cannot read image: format not recognised") from exc
    except Exception as exc:
        raise ValueError(f"cannot read image: {type(exc).__name__}: {exc}") from exc
    path = tmp / "page0001.png"
    page.save(path, format="PNG")
    return [(path, page_dpi)]


def _rasterise_pdf_page(
    content_path: Path, page_no: int, dpi: int, tmp: Path, budget: _Budget
) -> Path:
    """One PDF page to a grayscale image with pdftoppm (1-based page_no)."""
    remaining = budget.remaining()
    if remaining <= 0:
        raise _TimeLimit()
    prefix = tmp / f"raster{page_no:04d}"
    try:
        proc = subprocess.run(
            ["pdftoppm", "-r", str(dpi), "-gray", "-f", str(page_no), "-l", str(page_no),
             "-singlefile", "-png", str(content_path), str(prefix)],
            capture_output=True,
            timeout=remaining,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise _TimeLimit() from exc
    out = prefix.with_suffix(".png")
    if proc.returncode != 0 or not out.exists():
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ValueError(f"pdftoppm failed on page {page_no}: {err[-1] if err else proc.returncode}")
    return out


def _pdf_page_image(page, page_no: int, dpi: int, tmp: Path) -> tuple[Path, int]:  # type: ignore[no-untyped-def]
    """Fallback without pdftoppm: the largest image embedded in the page.

    Fax PDFs are one scanned image per page, so this is exact for them (and
    lossless, at the fax's own resolution); vector-drawn pages cannot be
    read this way.
    """
    best = None
    best_px = 0
    try:
        images = list(page.images)
    except Exception as exc:
        raise ValueError(f"cannot extract images from PDF page {page_no}: {exc}") from exc
    for img in images:
        try:
            pil = img.image
        except Exception:
            continue
        if pil is not None and pil.width * pil.height > best_px:
            best, best_px = pil, pil.width * pil.height
    if best is None:
        raise ValueError(
            f"PDF page {page_no} has no text and no embedded image; "
            "install poppler-utils (pdftoppm) to rasterise it"
        )
    # The page geometry (points) tells the real resolution of the scan, in
    # both directions: standard-resolution fax PDFs stretch a 1728x1100
    # image over an A4 page.
    try:
        width_in = float(page.mediabox.width) / 72.0
        height_in = float(page.mediabox.height) / 72.0
        xdpi = int(round(best.width / width_in))
        ydpi = int(round(best.height / height_in))
        if xdpi < 20 or ydpi < 20:
            raise ValueError
    except Exception:
        xdpi = ydpi = dpi
    best.info["dpi"] = (xdpi, ydpi)
    est_dpi = xdpi
    image, page_dpi = _prepare_image(best, est_dpi)
    path = tmp / f"embedded{page_no:04d}.png"
    image.save(path, format="PNG")
    return path, page_dpi


# --------------------------------------------------------------------------
# Tesseract


def _run_tesseract(
    image: Path, dpi: int, languages: Sequence[str], budget: _Budget, tesseract_cmd: str
) -> str:
    remaining = budget.remaining()
    if remaining <= 0:
        raise _TimeLimit()
    env = dict(os.environ)
    # Pages already run in parallel; tesseract's own OpenMP threads would
    # oversubscribe the cores and make everything slower.
    env["OMP_THREAD_LIMIT"] = "1"
    cmd = [tesseract_cmd, str(image), "stdout", "-l", "+".join(languages), "--psm", "3",
           "--dpi", str(max(dpi, 70))]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=remaining, env=env, check=False)
    except subprocess.TimeoutExpired as exc:
        raise _TimeLimit() from exc
    except OSError as exc:
        raise ValueError(f"cannot run tesseract: {exc}") from exc
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ValueError(f"tesseract failed: {err[-1] if err else 'exit ' + str(proc.returncode)}")
    return proc.stdout.decode("utf-8", "replace")


def _ocr_pages(
    images: Sequence[tuple[Path, int] | None],
    languages: Sequence[str],
    budget: _Budget,
    workers: int,
    tesseract_cmd: str,
) -> tuple[list[str | None], str | None]:
    """OCR the given page images (None entries are skipped).

    Returns per-page texts (None for pages not finished) and the first
    error. Pages run in a small pool: tesseract is single-threaded with
    OMP_THREAD_LIMIT=1, so two pages in parallel on two cores halve the time.
    """
    texts: list[str | None] = [None] * len(images)
    errors: list[str] = []

    def work(index: int) -> None:
        item = images[index]
        if item is None:
            return
        try:
            texts[index] = _run_tesseract(item[0], item[1], languages, budget, tesseract_cmd)
        except _TimeLimit:
            errors.append(f"time limit reached before page {index + 1} was read")
        except ValueError as exc:
            errors.append(f"page {index + 1}: {exc}")

    indices = [i for i, item in enumerate(images) if item is not None]
    if workers <= 1 or len(indices) <= 1:
        for i in indices:
            work(i)
    else:
        with ThreadPoolExecutor(max_workers=min(workers, len(indices))) as pool:
            list(pool.map(work, indices))
    errors.sort()
    return texts, (errors[0] if errors else None)


# --------------------------------------------------------------------------
# Entry point


def _finish(
    budget: _Budget,
    texts: Sequence[str | None],
    method: Method,
    error: str | None,
    total: int | None,
    max_pages: int,
) -> OcrResult:
    done = [collapse_cjk_spaces(unicodedata.normalize("NFC", t)) for t in texts if t is not None]
    text = "\f".join(done)
    return OcrResult(
        text=text,
        pages=len(done),
        method=method if done else "none",
        ok=error is None,
        error=error,
        seconds=round(budget.elapsed(), 3),
        total_pages=total,
        truncated=total is not None and total > max_pages,
    )


def ocr_document(
    content: bytes,
    content_type: str,
    languages: Sequence[str] = DEFAULT_LANGUAGES,
    max_pages: int = 10,
    timeout_s: float = 60.0,
    dpi: int = 200,
    *,
    workers: int = 2,
    tesseract_cmd: str = "tesseract",
) -> OcrResult:
    """Return the text of a fax attachment (PDF, TIFF or other image).

    PDFs: each page's text layer is used when it has at least
    :data:`MIN_TEXT_CHARS_PER_PAGE` characters; other pages are rasterised
    at ``dpi`` (pdftoppm, else the embedded scan) and OCRed. TIFFs are split
    with Pillow and every page OCRed at its own resolution (``dpi`` only
    when the file does not say). Only the first ``max_pages`` pages are
    read. ``timeout_s`` bounds the whole call: each tesseract/pdftoppm run
    gets what is left of it and is killed when it runs out.

    Never raises for bad input or missing tools; see :class:`OcrResult`.
    """
    budget = _Budget(timeout_s)
    max_pages = max(1, int(max_pages))
    langs = tuple(languages)
    try:
        kind = _kind(content, content_type)
        if not content:
            return _finish(budget, [], "none", "empty attachment", 0, max_pages)
        if kind == "unknown":
            return _finish(
                budget, [], "none", f"unsupported content type {content_type!r}", None, max_pages
            )
        with tempfile.TemporaryDirectory(prefix="casegate-ocr-") as tmpdir:
            tmp = Path(tmpdir)
            if kind == "pdf":
                return _ocr_pdf(content, tmp, langs, max_pages, dpi, budget, workers, tesseract_cmd)
            decode_error: str | None = None
            try:
                if kind == "tiff":
                    images, total, decode_error = _tiff_pages(content, max_pages, dpi, tmp)
                else:
                    images, total = _image_page(content, dpi, tmp), 1
            except ValueError as exc:
                return _finish(budget, [], "none", str(exc), None, max_pages)
            if not tesseract_available(langs, tesseract_cmd):
                return _finish(budget, [], "none", _missing_tesseract(langs, tesseract_cmd), total, max_pages)
            texts, error = _ocr_pages(list(images), langs, budget, workers, tesseract_cmd)
            return _finish(budget, texts, "ocr", decode_error or error, total, max_pages)
    except Exception as exc:  # last line of defence: the daemon must go on
        return _finish(budget, [], "none", f"unexpected OCR failure: {type(exc).__name__}: {exc}", None, max_pages)


def _missing_tesseract(langs: Sequence[str], tesseract_cmd: str) -> str:
    installed = _installed_languages(tesseract_cmd)
    if installed is None:
        return f"tesseract not available ({tesseract_cmd!r} not found or not working)"
    missing = [lang for lang in langs if lang not in installed]
    return f"tesseract language data missing: {', '.join(missing)}"


def _ocr_pdf(
    content: bytes,
    tmp: Path,
    langs: Sequence[str],
    max_pages: int,
    dpi: int,
    budget: _Budget,
    workers: int,
    tesseract_cmd: str,
) -> OcrResult:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(content), strict=False)
        if reader.is_encrypted:
            try:
                reader.decrypt("")
            except Exception as exc:
                return _finish(budget, [], "none", f"PDF is encrypted: {exc}", None, max_pages)
        total = len(reader.pages)
    except Exception as exc:
        return _finish(budget, [], "none", f"cannot read PDF: {exc}", None, max_pages)
    if total == 0:
        return _finish(budget, [], "none", "cannot read PDF: no pages", 0, max_pages)

    count = min(total, max_pages)
    use_poppler = pdftoppm_available()
    layer: list[str | None] = []  # None: page must be OCRed
    short: list[str] = []  # the little text of pages sent to OCR
    for i in range(count):
        page = reader.pages[i]
        try:
            page_text = page.extract_text() or ""
        except Exception:
            page_text = ""  # broken text layer: treat the page as scanned
        chars = sum(1 for ch in page_text if not ch.isspace())
        scanned = chars < MIN_TEXT_CHARS_PER_PAGE and (
            _has_image(page) or (chars == 0 and use_poppler)
        )
        layer.append(None if scanned else page_text)
        short.append(page_text)
        if budget.remaining() <= 0:
            return _finish(budget, layer, "text-layer", "time limit reached while reading the PDF text layer", total, max_pages)

    need = [i for i, t in enumerate(layer) if t is None]
    if not need:
        return _finish(budget, layer, "text-layer", None, total, max_pages)
    if not tesseract_available(langs, tesseract_cmd):
        # Keep the text there is; say why the rest is missing.
        kept = [t if t is not None else short[i] for i, t in enumerate(layer)]
        return _finish(budget, kept, "text-layer", _missing_tesseract(langs, tesseract_cmd), total, max_pages)

    images: list[tuple[Path, int] | None] = [None] * count
    error: str | None = None
    pdf_path = tmp / "input.pdf"
    if use_poppler:
        pdf_path.write_bytes(content)
    for i in need:
        try:
            if use_poppler:
                images[i] = (_rasterise_pdf_page(pdf_path, i + 1, dpi, tmp, budget), dpi)
            else:
                images[i] = _pdf_page_image(reader.pages[i], i + 1, dpi, tmp)
        except _TimeLimit:
            error = error or f"time limit reached before page {i + 1} was read"
            break
        except ValueError as exc:
            error = error or str(exc)
    texts, ocr_error = _ocr_pages(images, langs, budget, workers, tesseract_cmd)
    merged = [
        layer[i] if layer[i] is not None else (texts[i] if texts[i] is not None else short[i] or None)
        for i in range(count)
    ]
    return _finish(budget, merged, "ocr", error or ocr_error, total, max_pages)



def _has_image(page) -> bool:  # type: ignore[no-untyped-def]
    """Whether a PDF page draws an image XObject (directly or in a form)."""

    def walk(resources, depth: int) -> bool:  # type: ignore[no-untyped-def]
        if resources is None or depth > 3:
            return False
        try:
            xobjects = resources.get_object().get("/XObject")
            if xobjects is None:
                return False
            for ref in xobjects.get_object().values():
                obj = ref.get_object()
                subtype = obj.get("/Subtype")
                if subtype == "/Image":
                    return True
                if subtype == "/Form" and walk(obj.get("/Resources"), depth + 1):
                    return True
        except Exception:
            return False
        return False

    try:
        return walk(page.get("/Resources"), 0)
    except Exception:
        return False
