"""Hot reload of the admins' rule files under a running `casegate run`:
a new rule takes effect without a restart, a broken file is logged with
file:line and the last good rule set stays in force."""

from __future__ import annotations

import json
import os
import shutil
import smtplib
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from casegate.daemon.runtime.app import App
from casegate.daemon.config import load_config
from casegate.storage import repository as repo
from casegate.storage.models import Event
from daemon_proc import DaemonProcess
from helpers import mail
from servers.ports import free_port

DEFAULT_RULES = Path(__file__).resolve().parents[1] / "rules" / "default"
KEYWORD = "蓝灯常亮"  # in no shipped rule: a message with only this is "no rule matched"
LOADED = "casegate.rules loaded"

NEW_RULE = f'''# added by the admin while the daemon runs
[[rule]]
name = "lamp-alarm"
description = "the cabinet lamp means the controller is gone"
any = ["{KEYWORD}"]
priority = "P1"
tags = ["lamp"]
'''

BROKEN_RULE = '''[[rule]]
name = "half-written"
any = ["whatever"]
priority = "P9"
'''


def write_atomically(path: Path, text: str) -> None:
    """As an editor saves: the daemon never sees a half-written file."""
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def cli(config: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "CASEGATE_CONFIG"}
    proc = subprocess.run([sys.executable, "-m", "casegate.daemon.cli", "--config", str(config), *args],
                          capture_output=True, text=True, cwd=config.parent, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture
def daemon(tmp_path: Path):
    rules = tmp_path / "rules"
    rules.mkdir()
    for f in DEFAULT_RULES.glob("*.toml"):
        shutil.copy(f, rules / f.name)
    port = free_port("127.0.0.1")
    d = DaemonProcess(tmp_path, {
        "service": {"address": "service@desk.example.cn"},
        "logging": {"level": "INFO"},
        "classification": {"rules_dir": "rules"},
        "sources": [{"name": "push", "kind": "smtp", "host": "127.0.0.1", "port": port,
                     "accept_domains": ["desk.example.cn"]}],
    })
    d.port = port
    d.rules = rules
    d.start()
    try:
        yield d
    finally:
        d.kill()


def send(d: DaemonProcess, subject: str) -> str:
    """Push one mail; 250 means committed. Returns its case number."""
    with smtplib.SMTP("127.0.0.1", d.port) as s:
        refused = s.sendmail("lamp@customer.cn", ["service@desk.example.cn"],
                             mail(subject=subject, body=f"机房里的设备{KEYWORD}，请看一下。",
                                  sender="李工 <lamp@customer.cn>"))
        assert refused == {}
    cases = json.loads(cli(d.config_path, "cases", "list", "--json"))
    return next(c["number"] for c in cases if c["subject"] == subject)


def show(d: DaemonProcess, number: str) -> dict:
    return json.loads(cli(d.config_path, "cases", "show", number, "--json"))


def classified_detail(d: DaemonProcess, number: str) -> dict:
    app = App(load_config(str(d.config_path)))
    try:
        with app.db.session() as s:
            case = repo.case_by_number(s, number)
            ev = s.execute(select(Event).where(Event.case_id == case.id, Event.action == "classified")).scalars().one()
            detail = ev.detail
        return json.loads(detail) if isinstance(detail, str) else detail
    finally:
        app.close()


def test_rule_edits_apply_without_restart_and_broken_files_keep_the_last_good_set(daemon: DaemonProcess) -> None:
    d = daemon
    assert d.log().count(LOADED) == 1  # the folder was loaded at start
    pid = d.proc.pid

    # 1. an unknown keyword: the configured default priority
    first = send(d, "设备状态 1")
    data = show(d, first)
    assert data["priority"] == "P3"
    assert [e["new"] for e in data["events"] if e["action"] == "classified"] == ["P3"]
    assert classified_detail(d, first)["matches"] == []

    # 2. the admin adds a rule file: reloaded while the daemon runs
    write_atomically(d.rules / "15-lamp.toml", NEW_RULE)
    d.wait_for_log(LOADED, timeout=15, occurrences=2)
    second = send(d, "设备状态 2")
    data = show(d, second)
    assert data["priority"] == "P1"
    classified = [e for e in data["events"] if e["action"] == "classified"]
    assert [(e["actor"], e["new"]) for e in classified] == [("rules", "P1")]
    detail = classified_detail(d, second)
    assert detail["priority"] == "P1" and "lamp" in detail["tags"]
    lamp = [m for m in detail["matches"] if m["rule"] == "lamp-alarm"]
    assert lamp and lamp[0]["keyword"] == KEYWORD and lamp[0]["file"] == "15-lamp.toml"
    assert show(d, first)["priority"] == "P3"  # earlier cases are not reclassified

    # 3. a broken file: logged with file:line, the daemon keeps the last good set
    broken = d.rules / "99-broken.toml"
    write_atomically(broken, BROKEN_RULE)
    d.wait_for_log(f"{broken}:4:", timeout=15)
    log_text = d.log()
    line = next(line for line in log_text.splitlines() if f"{broken}:4:" in line)
    assert "ERROR casegate.rules" in line and "P9" in line
    assert log_text.count(LOADED) == 2  # nothing was swapped in
    third = send(d, "设备状态 3")
    assert show(d, third)["priority"] == "P1"
    assert any(m["rule"] == "lamp-alarm" for m in classified_detail(d, third)["matches"])
    assert d.proc.poll() is None and d.proc.pid == pid  # never restarted

    # 4. fixing the file loads the folder again
    write_atomically(broken, BROKEN_RULE.replace("P9", "P4"))
    d.wait_for_log(LOADED, timeout=15, occurrences=3)
    assert d.terminate() == 0
