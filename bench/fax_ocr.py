"""OCR seconds per fax page, by resolution and worker count.

Usage: python3 bench/fax_ocr.py [--pages N] [--dpi 200 100] [--workers 1 2]

Renders N realistic fax pages (a Chinese fault report with English lines,
32 px text at 200 dpi, i.e. ~12 pt) with tests/faxgen.py as a Group 4 TIFF
and as an image-only PDF, OCRs them with ``ocr_document`` and prints wall
seconds per page plus character accuracy (difflib ratio after NFKC,
simplified-script folding and space removal, as the rules engine compares),
so a speed-up that ruins recognition shows. Needs tesseract with chi_sim,
chi_tra and eng, and a CJK font.
"""

from __future__ import annotations

import argparse
import os
import sys
import unicodedata
from difflib import SequenceMatcher
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from faxgen import find_cjk_font, render_fax_pdf, render_fax_tiff  # noqa: E402

from casegate.parsers.ocr import (  # noqa: E402
    DEFAULT_LANGUAGES,
    collapse_cjk_spaces,
    ocr_document,
    pdftoppm_available,
    tesseract_available,
)

_LINES = [
    "故障报告单（传真）",
    "客户：广州市天河区某某科技有限公司",
    "联系人：王先生  电话：020-8768-1011",
    "设备型号：UPS-3000 序列号 SN12345678",
    "故障现象：系统宕机，请速派工程师到现场",
    "Customer: ACME Ltd. Contract 2026-0042",
    "Please call back before 18:00, thank you.",
    "发生时间：2026年11月20日 上午10点",
]


def _page(i: int) -> list[str]:
    return [f"第{i + 1}页 Page {i + 1}", *_LINES]


def _norm(text: str) -> str:
    """Compare like the rules engine does: NFKC, simplified script, no spaces."""
    text = unicodedata.normalize("NFKC", text)
    try:
        import zhconv

        text = zhconv.convert(text, "zh-hans")
    except ImportError:
        pass
    return "".join(text.split())


def _accuracy(text: str, pages: list[list[str]]) -> float:
    """Mean per-page character similarity (difflib ratio) to the rendered lines."""
    got = text.split("\f")
    ratios = []
    for i, lines in enumerate(pages[: len(got)]):
        ratios.append(SequenceMatcher(None, _norm("".join(lines)), _norm(got[i])).ratio())
    return sum(ratios) / len(ratios) if ratios else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=6)
    ap.add_argument("--dpi", type=int, nargs="+", default=[200, 100])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--languages", nargs="+", default=["+".join(DEFAULT_LANGUAGES), "chi_sim+eng"],
                    help="tesseract language sets to compare")
    ap.add_argument("--font-size", type=int, default=32, help="px at 200 dpi (32 = ~12 pt)")
    args = ap.parse_args()

    langsets = [tuple(ls.split("+")) for ls in args.languages]
    if not all(tesseract_available(ls) for ls in langsets) or find_cjk_font() is None:
        print("needs tesseract (+chi_sim, chi_tra, eng) and a CJK font", file=sys.stderr)
        return 2
    print(f"cores: {os.cpu_count()}  pages: {args.pages}"
          f"  pdftoppm: {'yes' if pdftoppm_available() else 'no (embedded-image fallback)'}")
    print(f"{'languages':<20} {'format':<6} {'dpi':>4} {'workers':>7} {'s/page':>7} {'total s':>8} {'chars ok':>8}")
    pages = [_page(i) for i in range(args.pages)]
    for dpi in args.dpi:
        docs = {
            "tiff": (render_fax_tiff(pages, dpi=dpi, font_size=args.font_size), "image/tiff"),
            "pdf": (render_fax_pdf(pages, dpi=dpi, font_size=args.font_size), "application/pdf"),
        }
        for langs in langsets:
            for fmt, (content, ctype) in docs.items():
                for workers in args.workers:
                    r = ocr_document(content, ctype, languages=langs, max_pages=args.pages,
                                     timeout_s=600, dpi=dpi, workers=workers)
                    head = f"{'+'.join(langs):<20} {fmt:<6} {dpi:>4} {workers:>7}"
                    if not r.ok:
                        print(f"{head}  FAILED: {r.error}")
                        continue
                    print(f"{head} {r.seconds / r.pages:>7.2f} {r.seconds:>8.2f} "
                          f"{_accuracy(r.text, pages):>8.1%}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
