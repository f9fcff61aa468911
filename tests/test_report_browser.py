"""The monthly HTML report in a real headless browser (Chromium from the distribution):
every chart drawn with the report's numbers, no console errors, printed on A4."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from pypdf import PdfReader

from casegate.daemon.timekeeping.report import render_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/install-test-deps.sh)")

A4_POINTS = (595.28, 841.89)
BAR = (0x3B, 0x7D, 0xD8)


def group(cases: int, on_time: float | None, resolved: float | None, score: float | None) -> dict:
    return {"cases": cases, "response_on_time_rate": on_time, "resolution_rate": resolved,
            "resolution_on_time_rate": resolved, "mean_satisfaction": score, "survey_answers": 1 if score else 0}


DATA = {
    "month": "2026-10", "generated_at": "2026-11-02T09:00:00+08:00",
    "by_priority": {"P1": group(2, 1.0, 0.5, 5.0), "P2": group(4, 0.75, 1.0, 4.0), "P3": group(5, 0.6, 0.4, 3.5)},
    "by_category": {"network": group(6, 0.8, 0.5, 4.5), "printer": group(3, 0.66, 1.0, None),
                    "complaint": group(2, 0.5, 0.5, 3.0)},
    "total": group(11, 0.73, 0.64, 4.17), "complaints": 2, "escalations": 3, "reopened": 0,
    "activities": {}, "longest_cases": [
        {"number": "SR-2026-000001", "priority": "P1", "status": "closed", "hours": 75.2, "escalations": 3,
         "subject": "系统宕机", "finished": True}],
}


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)


def console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("report")
    path = tmp / "report.html"
    path.write_text(render_html(DATA), encoding="utf-8")
    return tmp, path


def test_a_console_error_would_be_seen(tmp_path) -> None:
    """The check below is not blind: a page that throws is reported."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><script>throw new Error('boom')</script></body></html>")
    assert console_errors(chromium(tmp_path, "--dump-dom", bad.as_uri()).stderr)


def test_every_chart_is_drawn_with_the_reports_numbers(page) -> None:
    tmp, path = page
    run = chromium(tmp, "--dump-dom", path.as_uri())
    assert not console_errors(run.stderr), run.stderr
    svgs = re.findall(r"<svg.*?</svg>", run.stdout, re.S)
    assert len(svgs) == 4
    expected = {
        "Response on time": [("P1", "100%", 1.0), ("P2", "75%", 0.75), ("P3", "60%", 0.6)],
        "Resolution rate": [("P1", "50%", 0.5), ("P2", "100%", 1.0), ("P3", "40%", 0.4)],
        "Satisfaction": [("P1", "5.00", 5.0 / 5), ("P2", "4.00", 4.0 / 5), ("P3", "3.50", 3.5 / 5)],
        "Cases by category": [("network", "6", 1.0), ("printer", "3", 0.5), ("complaint", "2", 2 / 6)],
    }
    for svg in svgs:
        title = re.search(r'aria-label="([^"]+)"', svg).group(1)
        [(key, bars)] = [(k, v) for k, v in expected.items() if title.startswith(k)]
        texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg)[1:]  # after the title
        widths = [float(w) for w in re.findall(r'<rect[^>]*width="([\d.]+)"', svg)]
        assert texts == [t for label, value, _ in bars for t in (label, value)], (key, texts)
        full = max(widths) / max(share for _, _, share in bars)
        for width, (_, _, share) in zip(widths, bars):
            assert width == pytest.approx(full * share, abs=0.2), (key, widths)
            assert width > 0


def test_the_charts_are_painted(page) -> None:
    tmp, path = page
    shot = tmp / "report.png"
    run = chromium(tmp, "--window-size=1100,1400", "--hide-scrollbars", f"--screenshot={shot}", path.as_uri())
    assert not console_errors(run.stderr), run.stderr
    image = Image.open(shot).convert("RGB")
    raw = image.tobytes()
    bar_pixels = sum(1 for i in range(0, len(raw), 3)
                     if abs(raw[i] - BAR[0]) <= 6 and abs(raw[i + 1] - BAR[1]) <= 6 and abs(raw[i + 2] - BAR[2]) <= 6)
    # 12 bars of 22 px height and 10..280 px width: well over 10 000 pixels of the bar colour
    assert bar_pixels > 10_000


def test_the_report_prints_on_a4(page) -> None:
    tmp, path = page
    pdf = tmp / "report.pdf"
    run = chromium(tmp, "--no-pdf-header-footer", f"--print-to-pdf={pdf}", path.as_uri())
    assert not console_errors(run.stderr), run.stderr
    reader = PdfReader(pdf)
    assert 1 <= len(reader.pages) <= 3
    for p in reader.pages:
        box = p.mediabox
        assert (float(box.width), float(box.height)) == pytest.approx(A4_POINTS, abs=1.0)
    text = "".join(p.extract_text() for p in reader.pages)
    assert "2026-10" in text and "SR-2026-000001" in text
