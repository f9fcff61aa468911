"""The monthly report mailed through the outbox on the first working day of the month."""

from __future__ import annotations

import email
from datetime import datetime, timezone
from email import policy as email_policy
from pathlib import Path

from casegate.daemon.config import load_config
from casegate.daemon.runtime.app import App
from casegate.daemon.timekeeping.report_mail import ReportConfig, first_working_day, send_due_report
from daemon_proc import to_toml


def make(tmp_path: Path) -> tuple[App, ReportConfig]:
    path = tmp_path / "casegate.toml"
    path.write_text(to_toml({
        "service": {"address": "service@desk.example.cn"},
        "report": {"recipients": ["boss@desk.example.cn", "ops@desk.example.cn"], "language": "en"},
    }), encoding="utf-8")
    config = load_config(str(path))
    return App(config), ReportConfig.from_config(config)


def step(app: App, cfg: ReportConfig, now: datetime) -> str | None:
    with app.db.transaction() as s:
        return send_due_report(s, app.notifier, app.policy, cfg, now, tz=app.config.service.timezone,
                               complaint_category="complaint")


def test_first_working_day_follows_the_calendar(tmp_path) -> None:
    app, _ = make(tmp_path)
    try:
        cal = app.policy.calendar
        assert first_working_day(cal, 2026, 11).isoformat() == "2026-11-02"  # 1 Nov is a Sunday
        assert first_working_day(cal, 2026, 10).isoformat() == "2026-10-08"  # after the National Day holidays
    finally:
        app.close()


def test_report_is_mailed_once_on_the_first_working_day(tmp_path) -> None:
    app, cfg = make(tmp_path)
    try:
        sunday = datetime(2026, 11, 1, 2, 0, tzinfo=timezone.utc)
        monday = datetime(2026, 11, 2, 1, 0, tzinfo=timezone.utc)  # 09:00 in Shanghai
        assert step(app, cfg, sunday) is None
        assert step(app, cfg, monday) == "2026-10"
        assert step(app, cfg, monday) is None  # queued once, however often the loop looks
        report = app.outbox.send_due()
        assert report.sent == 2
        files = sorted((tmp_path / "outbox" / "new").iterdir())
        assert len(files) == 2
        msg = email.message_from_bytes(files[0].read_bytes(), policy=email_policy.default)
        assert str(msg["Subject"]) == "Monthly service report 2026-10"
        assert msg["Auto-Submitted"] == "auto-generated"
        body = msg.get_body(("plain",)).get_content()
        assert "casegate monthly report 2026-10" in body
        assert msg.get_content_type() == "multipart/alternative"  # text and the report page, no attachment
        assert msg.get_body(("plain",)).get_content().strip()
        html = msg.get_body(("html",)).get_content()
        assert html.startswith("<!DOCTYPE html>") and html.count("<svg") == 4
        to = sorted(email.message_from_bytes(f.read_bytes())["To"] for f in files)
        assert to == ["boss@desk.example.cn", "ops@desk.example.cn"]
    finally:
        app.close()
