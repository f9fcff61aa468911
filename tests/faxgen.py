"""Render realistic test faxes: G4 TIFF, image-only PDF, text PDF, gateway mail.

Tests must not depend on binary fixtures nobody can regenerate, so faxes are
drawn here from text lines with a CJK font. Pages are 1728 px wide (the
standard fax scan line) and 1-bit like real faxes; TIFFs use Group 4
compression, which is what HylaFAX stores.
"""

from __future__ import annotations

import base64
import io
from datetime import datetime, timedelta, timezone
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
    pages: list[list[str]], *, dpi: tuple[int, int] | int = 200, font_size: int = 48,
    compression: Literal["group4", "group3"] = "group4",
) -> bytes:
    """Multi-page TIFF; ``dpi=(204, 98)`` gives a standard-resolution fax.

    Group 4 is what HylaFAX stores; ``compression="group3"`` with
    ``dpi=(204, 196)`` is a TIFF-F page as T.37 gateways mail it (RFC 3949
    profile S: Modified Huffman, fine resolution).
    """
    dpi_t = (dpi, dpi) if isinstance(dpi, int) else dpi
    images = _pages(pages, dpi_t, font_size)
    buf = io.BytesIO()
    images[0].save(
        buf, format="TIFF", compression=compression, save_all=True,
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


# --------------------------------------------------------------------------
# Gateways that say "fax" in the sender address or the MIME structure. These
# are written byte by byte, header order and folding as the gateways write
# them, not through EmailMessage, which would normalise them away.


def _assemble(header: list[str], body: str, document: bytes, boundary: str) -> bytes:
    """Header lines, the body up to the document part's blank line, the
    document in base64 lines of 76, the closing boundary; CRLF throughout."""
    text = "\n".join(header) + "\n\n" + body
    b64 = base64.encodebytes(document).decode("ascii")
    return (text + b64 + f"\n--{boundary}--\n").replace("\r\n", "\n").replace("\n", "\r\n").encode("ascii")


def cisco_t37_mail(
    tiff: bytes,
    sender: str = "FAX=3412900100",
    *,
    host: str = "cisco-gw.example.com",
    to: str = "fax-group@example.com",
    subject: str | None = None,
    group_alias: bool = True,
    received: datetime = datetime(2026, 11, 20, 10, 15, 3, tzinfo=timezone(timedelta(hours=-8))),
) -> bytes:
    """A Cisco IOS T.37 on-ramp fax (store-and-forward Internet fax).

    The gateway mails the received fax as ``multipart/fax-message`` (RFC
    3801) with one ``image/tiff; application=faxbw`` part (TIFF-F), from the
    minimal fax address of RFC 3192 built from the calling number
    (``FAX=3412900100@gateway``, no '+', as IOS writes it). ``group_alias``:
    the mail went to a group alias that forwarded it and added
    ``X-Autogenerated: group`` (as Exchange distribution groups and several
    list servers do), which makes it look like automatic mail.
    """
    stamp = received.strftime("%m%d%Y%H%M%S")
    boundary = f"yradnuoB=_{stamp}.4AB84F84"
    header = [
        f"Received: from {host} ([192.0.2.17]) by mx.example.com with ESMTP id 4F2A1C0A5;"
        f" {format_datetime(received)}",
        f"Message-ID: <{stamp}@{host}>",
        f"Date: {format_datetime(received)}",
        f'From: "{sender}" <{sender}@{host}>',
        f"To: <{to}>",
    ]
    if subject is not None:
        header.append(f"Subject: {subject}")
    header += ["X-Mailer: Technical Support IOS Version 12.4"]
    if group_alias:
        header += [
            "X-Autogenerated: group",
            f"X-Original-To: {to}",
            "Delivered-To: service@example.com",
        ]
    header += [
        "MIME-Version: 1.0",
        f'Content-Type: multipart/fax-message;\n\tboundary="{boundary}"',
        "X-Account-Id: 0",
        f"Disposition-Notification-To: <{sender}@{host}>",
    ]
    body = (
        f"--{boundary}\n"
        f"Content-ID: <{stamp}.1@{host}>\n"
        "Content-Type: image/tiff; application=faxbw; version=rev-a\n"
        "Content-Transfer-Encoding: base64\n"
        "Content-Disposition: inline\n"
        "\n"
    )
    return _assemble(header, body, tiff, boundary)


def pbx_fax_mail(
    pdf: bytes,
    number: str = "*49000783135",
    *,
    host: str = "gateway.example.de",
    to: str = "service@example.com",
    received: datetime = datetime(2026, 11, 20, 10, 15, 3, tzinfo=timezone(timedelta(hours=1))),
    pages: int | None = None,
) -> bytes:
    """A German PBX fax module's mail: from ``"#FAX#<number>#"@gateway``
    (the caller's number, '*' for the international prefix), subject
    ``Erhalten von <number>``, a short German notice, the fax as PDF."""
    npages = pages if pages is not None else count_pages(pdf)
    boundary = f"----=_Part_{received:%Y%m%d%H%M%S}_8812"
    name = f"Fax_{number.lstrip('*+')}_{received:%Y%m%d_%H%M}.pdf"
    header = [
        f"Received: from {host} (localhost [127.0.0.1]) by mx.example.com; {format_datetime(received)}",
        f'From: <"#FAX#{number}#"@{host}>',
        f"To: <{to}>",
        f"Subject: Erhalten von {number}",
        f"Date: {format_datetime(received)}",
        f"Message-ID: <fax.{received:%Y%m%d%H%M%S}.{number.lstrip('*+')}@{host}>",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/mixed; boundary="{boundary}"',
    ]
    text = (
        "Sie haben ein Fax erhalten.\n"
        "\n"
        f"Absender: {number}\n"
        "Empf=E4nger: 4920112345\n"
        f"Seiten: {npages}\n"
        f"Datum: {received:%d.%m.%Y %H:%M}\n"
    )
    body = (
        f"--{boundary}\n"
        "Content-Type: text/plain; charset=ISO-8859-1\n"
        "Content-Transfer-Encoding: quoted-printable\n"
        "\n"
        f"{text}\n"
        f"--{boundary}\n"
        f'Content-Type: application/pdf; name="{name}"\n'
        "Content-Transfer-Encoding: base64\n"
        f'Content-Disposition: attachment; filename="{name}"\n'
        "\n"
    )
    return _assemble(header, body, pdf, boundary)


def chinese_fax_server_mail(
    document: bytes,
    number: str = "020-87681011",
    *,
    sender: str = "传真服务器 <faxserver@example.cn>",
    to: str = "service@example.com",
    received: datetime = datetime(2026, 11, 20, 10, 15, 3),
    pages: int | None = None,
) -> bytes:
    """A Chinese fax server's notice: ``收到传真：<number>（共N页）``."""
    npages = pages if pages is not None else count_pages(document)
    is_pdf = document.startswith(b"%PDF")
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = f"收到传真：{number}（共{npages}页）"
    msg["Date"] = format_datetime(received.replace(tzinfo=timezone(timedelta(hours=8))))
    msg["Message-ID"] = make_msgid(domain="example.cn")
    msg.set_content(f"您收到一份新传真。\n发送方：{number}\n页数：{npages}\n接收时间：{received:%Y-%m-%d %H:%M:%S}\n")
    msg.add_attachment(document, maintype="application" if is_pdf else "image", subtype="pdf" if is_pdf else "tiff",
                       filename=f"传真_{received:%Y%m%d%H%M%S}.{'pdf' if is_pdf else 'tif'}")
    return msg.as_bytes()


# --------------------------------------------------------------------------
# tests/data/fax/: the sample messages, regenerated with `python tests/faxgen.py`

SAMPLES_DIR = Path(__file__).parent / "data" / "fax"
CISCO_PAGES = [["URGENT - service request", "All printers in our branch office are down.",
                "Customer: ACME Trading, contract 2026-117"]]
PBX_PAGES = [["Service request from Hamburg office", "The mail server has been down since 09:00.",
              "Please call back: ACME GmbH"]]
CHINESE_PAGES = [["报修单", "我司核心系统宕机，业务全部中断。", "联系人：王工 020-87681011"]]


def write_samples(folder: Path = SAMPLES_DIR) -> list[Path]:
    """The sample gateway mails the tests and ``casegate fax test`` read."""
    folder.mkdir(parents=True, exist_ok=True)
    samples = {
        "cisco-t37.eml": cisco_t37_mail(render_fax_tiff(CISCO_PAGES, dpi=(204, 196), compression="group3")),
        "pbx-de.eml": pbx_fax_mail(render_fax_pdf(PBX_PAGES)),
        "fax-server-zh.eml": chinese_fax_server_mail(render_fax_tiff(CHINESE_PAGES)),
    }
    paths = []
    for name, raw in samples.items():
        path = folder / name
        path.write_bytes(raw)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_samples():
        print(written)
