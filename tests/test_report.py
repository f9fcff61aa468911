"""`casegate report`: the figures of the Friday-evening P1 history, in text, JSON and HTML."""

from __future__ import annotations

import pytest
from sla_support import Clock, cli_config, ingest, mail, make_app, sh
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
    cfg = str(cli_config(tmp_path))

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


def test_report_counts_resolution_on_time_reopens_and_activities(tmp_path, smtp_sink, capsys) -> None:
    """Issue 13: resolution targets measured (resolution-on-time rate), reopens counted, and the
    engineers' recorded activities (#call, #onsite, #equipment) with the time they took."""
    import json

    from sla_support import staff_reply

    from casegate.daemon.cli import main

    clock = Clock(sh(2026, 11, 4, 10, 0))
    app = make_app(tmp_path, smtp_sink, clock)
    fast = ingest(app, mail(body="您好，我们的核心服务器宕机了，业务全部中断。"))
    slow = ingest(app, mail(sender="lisi@customer.cn", subject="机房网络全部中断", body="机房网络全部中断，所有业务停止。"))
    again = ingest(app, mail(sender="wangwu@customer.cn", subject="打印服务偶尔报错", body="打印服务偶尔报错，其他功能正常。"))
    never = ingest(app, mail(sender="zhaoliu@customer.cn", subject="扫描仪偶尔卡纸", body="扫描仪偶尔卡纸，其他都正常。"))
    clock.set(sh(2026, 11, 4, 11, 0))
    staff_reply(app, fast, "#status resolved\n#onsite 1h30m 更换电源模块\n已更换电源模块，系统恢复。")
    staff_reply(app, again, "#status resolved\n已重启打印服务。")
    clock.set(sh(2026, 11, 4, 14, 0))
    ingest(app, mail(sender="wangwu@customer.cn", subject=f"Re: [{again}] 打印服务偶尔报错", body="又报错了，还是不能打印！"))
    clock.set(sh(2026, 11, 4, 15, 0))
    staff_reply(app, again, "#status resolved\n#equipment 15m 打印服务器内存检测正常\n已更换驱动。")
    clock.set(sh(2026, 11, 5, 12, 0))  # 26 h after opening: past P1's 24 h fix target
    staff_reply(app, slow, "#status resolved\n#call 20m 与客户确认恢复\n核心交换机已更换。")
    app.close()
    cfg = str(cli_config(tmp_path))

    assert main(["--config", cfg, "report", "--month", "2026-11", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["by_priority"]["P1"]["cases"] == 2 and data["by_priority"]["P3"]["cases"] == 2
    # P1: one fixed within 24 h, one after; P3: guidance within 2 working days for the reopened
    # one, the one never answered is past its target (Friday 10:00).
    assert data["by_priority"]["P1"]["resolution_on_time_rate"] == 0.5
    assert data["by_priority"]["P3"]["resolution_on_time_rate"] == 0.5
    assert data["total"]["resolution_on_time_rate"] == 0.5
    assert data["reopened"] == 1
    assert data["activities"] == {"call": {"count": 1, "minutes": 20}, "equipment": {"count": 1, "minutes": 15},
                                  "onsite": {"count": 1, "minutes": 90}}
    assert never in [r["number"] for r in data["longest_cases"] if not r["finished"]]

    assert main(["--config", cfg, "report", "--month", "2026-11"]) == 0
    text = capsys.readouterr().out
    assert "reopened: 1" in text and "resolved on time: 50%" in text
    assert "activities onsite: 1 (90 min)" in text and "activities call: 1 (20 min)" in text
    assert main(["--config", cfg, "report", "--month", "2026-11", "--format", "html"]) == 0
    page = capsys.readouterr().out
    assert "按时解决: <b>50%</b>" in page and "重开: <b>1</b>" in page
    assert "<tr><td>onsite</td><td>1</td><td>90</td></tr>" in page

    # The case history shows the activities, in Beijing time (finding 9: not UTC).
    assert main(["--config", cfg, "cases", "show", fast]) == 0
    shown = capsys.readouterr().out
    assert "opened 2026-11-04 10:00 +0800" in shown
    assert "2026-11-04 11:00 +0800  wang.wei@desk.example.cn activity         onsite 1h30m: 更换电源模块" in shown
    assert "activities: onsite 1; time spent 1h30m" in shown
    assert "T02:00" not in shown and "02:00:00+00:00" not in shown
    assert main(["--config", cfg, "cases", "show", fast, "--json"]) == 0
    (activity,) = json.loads(capsys.readouterr().out)["activities"]
    assert (activity["kind"], activity["minutes"], activity["text"]) == ("onsite", 90, "更换电源模块")
