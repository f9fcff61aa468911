"""What customers read: greetings with and without a name, unambiguous times,
an HTML part beside the text, admin overrides applied without a restart, and
`casegate templates check`."""

from __future__ import annotations

import email
import time
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest

from casegate.daemon.inbound import Inbound, Source
from casegate.daemon.notify.template_check import check_templates
from casegate.storage.models import OutboxMessage
from helpers import make_app, mail

SRC = Source("test", "imap")


def acks(app) -> list[EmailMessage]:
    with app.db.session() as s:
        raws = [r for r in s.query(OutboxMessage.raw).filter(OutboxMessage.kind == "ack").order_by(OutboxMessage.id)]
    return [email.message_from_bytes(r[0], policy=default_policy) for r in raws]


def parts(msg: EmailMessage) -> tuple[str, str]:
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    return text, html


@pytest.mark.parametrize("sender, subject, greeting, zone", [
    ("zhangsan@customer.cn", "系统宕机", "尊敬的客户，您好：", "北京时间"),
    ("张三 <zhangsan@customer.cn>", "系统宕机", "张三，您好：", "北京时间"),
    ("ops@customer.com", "Mail server down", "Dear customer,", "Beijing time, UTC+08:00"),
    ("Anna Bauer <anna@customer.com>", "Mail server down", "Dear Anna Bauer,", "Beijing time, UTC+08:00"),
])
def test_acknowledgement_greets_and_labels_time(tmp_path: Path, sender, subject, greeting, zone) -> None:
    app = make_app(tmp_path)
    try:
        body = "核心系统宕机，业务全部中断。" if "宕机" in subject else "Our mail server is down for all users."
        assert app.pipeline.ingest(Inbound(mail(subject=subject, body=body, sender=sender), SRC)).outcome == "new"
        (ack,) = acks(app)
        text, html = parts(ack)
        assert text.splitlines()[0] == greeting
        assert "您好，您好" not in text
        assert zone in text and "CST" not in text
        assert "<table" in html and "SR-" in html and "<script" not in html and "src=" not in html
        assert greeting.split("，")[0].split(",")[0] in html  # the same words in both parts
    finally:
        app.close()


def test_an_override_changes_the_next_acknowledgement_without_a_restart(tmp_path: Path) -> None:
    override = tmp_path / "my-templates"
    (override / "zh").mkdir(parents=True)
    app = make_app(tmp_path, templates={"dir": str(override), "hotline": "400-800-1234"})
    try:
        app.pipeline.ingest(Inbound(mail(subject="问题一", body="打印机卡纸"), SRC))
        assert "400-800-1234" in parts(acks(app)[0])[0]  # the hotline from config
        time.sleep(0.01)
        (override / "zh" / "ack.txt.j2").write_text("我们已收到 {{ case.number }}。——阿克米服务台\n", encoding="utf-8")
        app.pipeline.ingest(Inbound(mail(subject="问题二", body="打印机卡纸"), SRC))
        text = parts(acks(app)[1])[0]
        assert text.startswith("我们已收到 SR-") and "阿克米服务台" in text
    finally:
        app.close()


def test_templates_check_passes_on_the_shipped_set_and_names_file_and_line(tmp_path: Path) -> None:
    assert check_templates() == []
    (tmp_path / "zh").mkdir()
    (tmp_path / "zh" / "ack.txt.j2").write_text("{% include \"zh/_greeting.j2\" %}\n\n{{ no_such_name }}\n",
                                                encoding="utf-8")
    (tmp_path / "zh" / "survey.subject.j2").write_text("{% if %}\n", encoding="utf-8")
    found = [str(p) for p in check_templates(tmp_path)]
    assert any(p.startswith(f"{tmp_path / 'zh' / 'ack.txt.j2'}:3: undefined name") for p in found), found
    assert any(p.startswith(f"{tmp_path / 'zh' / 'survey.subject.j2'}:1: syntax error") for p in found), found


def test_templates_check_on_the_command_line(tmp_path: Path) -> None:
    from test_cli import run_cli, write_config

    cfg = write_config(tmp_path)
    good = run_cli(cfg, "templates", "check")
    assert good.returncode == 0, good.stderr
    (tmp_path / "bad" / "en").mkdir(parents=True)
    (tmp_path / "bad" / "en" / "ack.txt.j2").write_text("Dear {{ nobody }}\n", encoding="utf-8")
    bad = run_cli(cfg, "templates", "check", str(tmp_path / "bad"))
    assert bad.returncode == 65
    assert f"{tmp_path / 'bad' / 'en' / 'ack.txt.j2'}:1: undefined name" in bad.stdout.decode()
    preview = run_cli(cfg, "templates", "preview", "ack", "--lang", "en")
    assert preview.returncode == 0 and "Subject: [SR-2026-000042]" in preview.stdout.decode()
