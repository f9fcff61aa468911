"""Render realistic test faxes: G4 TIFF, image-only PDF, text PDF, gateway mail.

Tests must not depend on binary fixtures nobody can regenerate, so faxes are
drawn here from text lines with a CJK font. Pages are 1728 px wide (the
standard fax scan line) and 1-bit like real faxes; TIFFs use Group 4
compression, which is what HylaFAX stores.
"""

from __future__ import annotations

import io
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from functools import lru_cache
from pathlib import Path
from typing import Literal

FAX_WIDTH = 1728
A4_HEIGHT_IN = 11.69

_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
)


@lru_cache(maxsize=1)
def find_cjk_font() -> str | None:
    """Path of a font that can draw Chinese, or None (tests then skip)."""
    for cand in _FONT_CANDIDATES:
        if Path(cand).exists():
            return cand
    for root in (Path("/usr/share/fonts"), Path("/usr/local/share/fonts")):
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            name = path.name.lower()
            if path.suffix.lower() in (".ttc", ".ttf", ".otf") and any(
                key in name for key in ("cjk", "wqy", "zenhei", "uming", "ukai", "droidsansfallback")
            ):
                return str(path)
    return None


def _font(size: int):  # type: ignore[no-untyped-def]
    from PIL import ImageFont

    path = find_cjk_font()
    if path is None:
        raise RuntimeError("no CJK font installed (Debian: fonts-wqy-zenhei)")
    return ImageFont.truetype(path, size, index=0)


def render_page(lines: list[str], *, dpi: int = 200, font_size: int = 48):  # type: ignore[no-untyped-def]
    """One A4 page at ``dpi`` (square pixels), 1-bit, text top-left."""
    from PIL import Image, ImageDraw

    width = int(round(FAX_WIDTH * dpi / 200))
    height = int(round(A4_HEIGHT_IN * dpi * (FAX_WIDTH / 200) / 8.27))  # keep A4 aspect
    size = max(8, int(round(font_size * dpi / 200)))
    page = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(page)
    font = _font(size)
    margin = int(round(100 * dpi / 200))
    y = margin
    for line in lines:
        draw.text((margin, y), line, font=font, fill=0)
        y += int(size * 1.6)
    # Threshold (no dithering): fax machines send clean black/white.
    return page.point(lambda v: 255 if v > 160 else 0).convert("1", dither=Image.Dither.NONE)


def _pages(pages: list[list[str]], dpi: tuple[int, int], font_size: int) -> list:  # type: ignore[type-arg]
    from PIL import Image

    xdpi, ydpi = dpi
    out = []
    for lines in pages:
        img = render_page(lines, dpi=xdpi, font_size=font_size)
        if ydpi != xdpi:
            # Standard-resolution fax (204x98): fewer, taller scan lines.
            img = img.convert("L").resize(
                (img.width, max(1, int(round(img.height * ydpi / xdpi)))), Image.Resampling.BOX
            ).point(lambda v: 255 if v > 127 else 0).convert("1", dither=Image.Dither.NONE)
        out.append(img)
    return out


def render_fax_tiff(
    pages: list[list[str]], *, dpi: tuple[int, int] | int = 200, font_size: int = 48
) -> bytes:
    """Multi-page Group 4 TIFF; ``dpi=(204, 98)`` gives a standard-resolution fax."""
    dpi_t = (dpi, dpi) if isinstance(dpi, int) else dpi
    images = _pages(pages, dpi_t, font_size)
    buf = io.BytesIO()
    images[0].save(
        buf, format="TIFF", compression="group4", save_all=True,
        append_images=images[1:], dpi=dpi_t,
    )
    return buf.getvalue()


def render_fax_pdf(
    pages: list[list[str]], *, dpi: tuple[int, int] | int = 200, font_size: int = 48
) -> bytes:
    """Image-only PDF (no text layer), as fax-to-mail services deliver."""
    dpi_t = (dpi, dpi) if isinstance(dpi, int) else dpi
    images = _pages(pages, dpi_t, font_size)
    buf = io.BytesIO()
    # Pillow takes one resolution; for non-square pixels the page geometry
    # comes from x dpi, so the page height is scaled down accordingly: fine
    # for tests that only use square-pixel PDFs.
    images[0].save(buf, format="PDF", save_all=True, append_images=images[1:], resolution=float(dpi_t[0]))
    return buf.getvalue()


def _pdf_string_hex(text: str) -> str:
    return "<" + text.encode("utf-16-be").hex().upper() + ">"


def make_text_pdf(text: str | list[str]) -> bytes:
    """A PDF with a real text layer (one page per list item, lines by '\\n').

    Uses the non-embedded Adobe-GB1 font STSong-Light with the UniGB-UCS2-H
    CMap (every viewer renders it) plus a ToUnicode map so extractors such
    as pypdf get the characters back. Only BMP characters are supported.
    """
    pages = [text] if isinstance(text, str) else list(text)
    objects: list[bytes] = []

    def add(body: str | bytes) -> int:
        objects.append(body.encode("latin-1") if isinstance(body, str) else body)
        return len(objects)

    catalog = add("")  # placeholder, filled below
    pages_id = add("")
    tounicode_stream = (
        "/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n"
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        "/CMapName /Adobe-Identity-UCS def /CMapType 2 def\n"
        "1 begincodespacerange <0000> <FFFF> endcodespacerange\n"
        "1 beginbfrange <0000> <FFFF> <0000> endbfrange\n"
        "endcmap CMapName currentdict /CMap defineresource pop end end\n"
    )
    tounicode = add(f"<< /Length {len(tounicode_stream)} >>\nstream\n{tounicode_stream}endstream")
    descendant = add(
        "<< /Type /Font /Subtype /CIDFontType0 /BaseFont /STSong-Light "
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (GB1) /Supplement 2 >> "
        "/FontDescriptor << /Type /FontDescriptor /FontName /STSong-Light /Flags 6 "
        "/FontBBox [-25 -254 1000 880] /ItalicAngle 0 /Ascent 880 /Descent -120 "
        "/CapHeight 880 /StemV 93 >> /DW 1000 >>"
    )
    font = add(
        f"<< /Type /Font /Subtype /Type0 /BaseFont /STSong-Light-UniGB-UCS2-H "
        f"/Encoding /UniGB-UCS2-H /DescendantFonts [{descendant} 0 R] /ToUnicode {tounicode} 0 R >>"
    )
    kids = []
    for page_text in pages:
        ops = ["BT", "/F1 14 Tf", "18 TL", "56 780 Td"]
        for line in page_text.split("\n"):
            ops.append(f"{_pdf_string_hex(line)} Tj T*")
        ops.append("ET")
        stream = "\n".join(ops)
        content = add(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
        kids.append(
            add(
                f"<< /Type /Page /Parent {pages_id} 0 R /MediaBox [0 0 595 842] "
                f"/Resources << /Font << /F1 {font} 0 R >> >> /Contents {content} 0 R >>"
            )
        )
    objects[catalog - 1] = f"<< /Type /Catalog /Pages {pages_id} 0 R >>".encode()
    objects[pages_id - 1] = (
        f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {len(kids)} >>".encode()
    )
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for off in offsets:
        out.write(f"{off:010d} 00000 n \n".encode())
    out.write(
        f"trailer\n<< /Size {len(objects) + 1} /Root {catalog} 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return out.getvalue()


def count_pages(document: bytes) -> int:
    """Pages of a TIFF or PDF (for gateway notices that state the count)."""
    if document.startswith(b"%PDF"):
        from pypdf import PdfReader

        return len(PdfReader(io.BytesIO(document)).pages)
    from PIL import Image

    with Image.open(io.BytesIO(document)) as im:
        return getattr(im, "n_frames", 1)


Style = Literal["hylafax", "asterisk", "efax", "faxplus", "generic"]


def gateway_mail(
    number: str,
    tiff_or_pdf: bytes,
    style: Style = "hylafax",
    filename: str | None = None,
    *,
    received: datetime = datetime(2026, 11, 20, 10, 15, 3),
    pages: int | None = None,
    caller_id: str | None = None,
    to: str = "support@example.com",
) -> bytes:
    """A fax-gateway notification mail with the fax attached, as bytes.

    ``number`` is written the way the gateway would (TSI as typed on the
    remote machine); ``caller_id`` defaults to the digits of it.
    """
    is_pdf = tiff_or_pdf.startswith(b"%PDF")
    ext = "pdf" if is_pdf else "tif"
    ctype = ("application", "pdf") if is_pdf else ("image", "tiff")
    npages = pages if pages is not None else count_pages(tiff_or_pdf)
    cid = caller_id if caller_id is not None else "".join(ch for ch in number if ch.isdigit())
    msg = EmailMessage()
    msg["To"] = to
    msg["Date"] = format_datetime(received.astimezone() if received.tzinfo else received.replace(tzinfo=None).astimezone())
    msg["Message-ID"] = make_msgid(domain="fax.example.com")

    if style == "hylafax":
        name = filename or f"fax000000123.{ext}"
        msg["From"] = "HylaFAX Agent <fax@fax.example.com>"
        msg["Subject"] = f'Fax received from "{number}"'
        body = (
            f"recvq/{name} (ftp://fax.example.com:4559/recvq/{name}):\n"
            f"          Sender: {number}\n"
            f"           Pages: {npages}\n"
            "         Quality: Fine\n"
            "            Size: ISO A4\n"
            f"        Received: {received:%Y:%m:%d %H:%M:%S}\n"
            " Time To Receive: 0:42\n"
            "     Signal Rate: 14400 bit/s\n"
            "     Data Format: 2-D MMR\n"
            "   Error Correct: Yes\n"
            f"         CallID1: {cid}\n"
            "         CallID2: \n"
            "     Received On: ttyIAX0\n"
            "          CommID: 000000123 (ftp://fax.example.com:4559/log/c000000123)\n"
        )
    elif style == "asterisk":
        name = filename or f"fax-{received:%Y%m%d-%H%M%S}.{ext}"
        msg["From"] = "Asterisk PBX <asterisk@pbx.example.com>"
        msg["Subject"] = f"New fax from {cid}"
        msg["X-Fax-Caller-ID"] = cid
        msg["X-Fax-Pages"] = str(npages)
        body = (
            "You have received a new fax.\n\n"
            f"Remote station ID: {number}\n"
            f"Caller ID: {cid}\n"
            f"Pages: {npages}\n"
            f"Received: {received:%Y-%m-%d %H:%M:%S}\n"
            "Status: SUCCESS\n"
        )
    elif style == "efax":
        name = filename or f"{received:%Y%m%d%H%M%S}.{ext}"
        msg["From"] = "eFax <message@inbound.efax.com>"
        msg["Subject"] = f'eFax message from "{number}" - {npages} page(s)'
        body = (
            f"You have received a {npages} page fax at {received:%Y-%m-%d %H:%M:%S}.\n\n"
            f"* Caller-ID: {cid}\n"
            f"Date received: {received:%Y-%m-%d %H:%M:%S}\n\n"
            "The attached fax document is in PDF format.\n"
        )
    elif style == "faxplus":
        name = filename or f"fax_{received:%Y%m%d_%H%M%S}.{ext}"
        msg["From"] = "Fax.Plus <no-reply@fax.plus>"
        msg["Subject"] = f"New fax received from {number}"
        body = f"Pages: {npages}\nReceived at: {received:%Y-%m-%d %H:%M:%S}\n"
    elif style == "generic":
        name = filename or f"fax.{ext}"
        msg["From"] = "Fax Gateway <fax@example.com>"
        msg["Subject"] = f"Fax from {number} ({npages} pages)"
        body = "See attachment.\n"
    else:
        raise ValueError(f"unknown gateway style {style!r}")
    msg.set_content(body)
    msg.add_attachment(tiff_or_pdf, maintype=ctype[0], subtype=ctype[1], filename=name)
    return msg.as_bytes()
