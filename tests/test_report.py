"""`casegate report`: the figures of the Friday-evening P1 history, in text, JSON and HTML."""

from __future__ import annotations

import pytest
from sla_support import Clock, ingest, mail, make_app, sh
from test_sla_lifecycle import test_p1_friday_evening_lifecycle as run_lifecycle

from casegate.daemon.timekeeping.report import month_bounds, render_html


def test_monthly_report_of_that_history(tmp_path, smtp_sink, capsys) -> None:
    """The lifecycle above, then `casegate report --month 2026-10` in all three formats."""
    import json

    from casegate.daemon.cli import main

    run_lifecycle(tmp_path, smtp_sink)
    # A second case that month: a complaint, never answered.
    app = make_app(tmp_path, smtp_sink, Clock(sh(2026, 10, 20, 10, 0)))
    ingest(app, mail(sender="lisi@customer.cn", subject="投诉：服务太差", body="我要投诉，你们的服务很差，非常不满意。"))
    app.close()
    (tmp_path / "casegate.toml").write_text(
        f'[service]\naddress = "service@desk.example.cn"\ndata_dir = "{tmp_path}"\n'
        f'[database]\nurl = "sqlite:///casegate.db"\n', encoding="utf-8")
    cfg = str(tmp_path / "casegate.toml")

    assert main(["--config", cfg, "report", "--month", "2026-10", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    p1 = data["by_priority"]["P1"]
    assert p1["cases"] == 1 and p1["response_on_time_rate"] == 1.0 and p1["resolution_rate"] == 1.0
    assert p1["mean_satisfaction"] == 5.0
    assert data["complaints"] == 1
    assert data["escalations"] == 3
    assert data["total"]["cases"] == 2
    assert data["longest_cases"][0]["finished"] is False  # the unanswered complaint is still open
    first = next(r for r in data["longest_cases"] if r["priority"] == "P1")
    assert first["hours"] == 75.2 and first["escalations"] == 3  # Fri 20:00 -> Mon 23:10

    assert main(["--config", cfg, "report", "--month", "2026-10", "--format", "html"]) == 0
    page = capsys.readouterr().out
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 4 and "<script" not in page
    assert "SR-2026-000001" in page

    assert main(["--config", cfg, "report", "--month", "2026-10"]) == 0
    text = capsys.readouterr().out
    assert "P1" in text and "100%" in text and "complaints: 1" in text
    assert main(["--config", cfg, "report", "--month", "2026-11", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"]["cases"] == 0



def test_month_bounds() -> None:
    start, end = month_bounds("2026-12", "Asia/Shanghai")
    assert (start.isoformat(), end.isoformat()) == ("2026-12-01T00:00:00+08:00", "2027-01-01T00:00:00+08:00")
    with pytest.raises(ValueError, match="2026-11"):
        month_bounds("November", "Asia/Shanghai")


def test_html_escapes_subjects() -> None:
    group = {"cases": 1, "response_on_time_rate": None, "resolution_rate": 0.0, "mean_satisfaction": None,
             "survey_answers": 0}
    data = {"month": "2026-10", "generated_at": "x", "total": group, "by_priority": {"P1": group},
            "by_category": {"general": group}, "complaints": 0, "escalations": 0,
            "longest_cases": [{"number": "SR-1", "priority": "P1", "status": "open", "hours": 1.0,
                               "escalations": 0, "subject": "<script>alert(1)</script>"}]}
    page = render_html(data)
    assert "<script>" not in page and "&lt;script&gt;" in page
