"""Issue 13, finding 10: a year's official holiday schedule from a file.

chinesecalendar's newest release stops at 2026, and its fallback knows the
public holidays but no adjusted working days (调休). Admins load the State
Council's schedule from a file ([policy.calendar] holidays_file); casegate
says loudly when a year has none (start-up log, `casegate status`,
`casegate doctor`) and shows what is in force (`casegate policy calendar`).
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from daemon_proc import DaemonProcess
from servers.ports import free_port
from sla_support import ENGINEER, Clock, case_of, deliver, ingest, mail, make_app, sh, sweep_and_send

from casegate.daemon.cli import main
from casegate.daemon.clock import utcnow
from casegate.daemon.config import ConfigError, load_config
from casegate.daemon.runtime.app import load_policy
from casegate.daemon.timekeeping.worktime import WorkCalendar

# A 2027 schedule written the way an admin copies the notice (the dates are this test's own).
HOLIDAYS_2027 = """\
# 国务院办公厅关于2027年部分节假日安排的通知（测试用）
year = 2027

[[holiday]]
name = "元旦 New Year's Day"
off = ["2027-01-01..2027-01-03"]

[[holiday]]
name = "国庆节 National Day"
off = ["2027-10-01..2027-10-07"]
workdays = [2027-09-26, "2027-10-09"]
"""


def escalations(msgs) -> list[str]:
    return [",".join(a.addr_spec for a in m["To"].addresses) for m in msgs if "升级通知" in str(m["Subject"])]


@pytest.mark.parametrize(("with_file", "first_step"), [
    # The file's adjusted working Sunday 26 September counts: 0.5 h on Friday, 1.5 h on Sunday.
    (True, sh(2027, 9, 26, 10, 30)),
    # Without it 2027 has no 调休: plain weekend, Monday.
    (False, sh(2027, 9, 27, 10, 30)),
])
def test_an_adjusted_working_day_from_the_file_counts(tmp_path, smtp_sink, with_file, first_step) -> None:
    (tmp_path / "holidays-2027.toml").write_text(HOLIDAYS_2027, encoding="utf-8")
    policy = {"calendar": {"holidays_file": str(tmp_path / "holidays-2027.toml")}} if with_file else {}
    clock = Clock(sh(2027, 9, 24, 17, 0))  # Friday 17:00
    app = make_app(tmp_path, smtp_sink, clock, policy=policy)
    number = ingest(app, mail(subject="打印服务偶尔报错", body="打印服务偶尔报错，其他功能正常。"))
    assert case_of(app, number).priority == "P3"  # P3: escalation after 2 working hours
    deliver(app, smtp_sink)
    assert escalations(sweep_and_send(app, smtp_sink, clock, sh(2027, 9, 26, 10, 29))) == []
    assert escalations(sweep_and_send(app, smtp_sink, clock, first_step.replace(minute=29))) == []
    assert escalations(sweep_and_send(app, smtp_sink, clock, first_step)) == [ENGINEER]


def _config(tmp_path: Path, holidays: str | None) -> Path:
    cfg = tmp_path / "casegate.toml"
    text = '[service]\naddress = "service@desk.example.cn"\n'
    if holidays is not None:  # relative: read from the configuration file's folder
        text += f'[policy.calendar]\nholidays_file = "{holidays}"\n'
    cfg.write_text(text, encoding="utf-8")
    return cfg


def test_policy_calendar_shows_what_is_in_force(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "holidays-2027.toml").write_text(HOLIDAYS_2027, encoding="utf-8")
    assert main(["--config", str(_config(tmp_path, None)), "policy", "calendar", "--year", "2027", "--json"]) == 0
    bare = json.loads(capsys.readouterr().out)
    assert bare["source"] == "fallback"
    assert "no official holiday schedule for 2027" in bare["warnings"][0]
    assert not any(d["working"] for d in bare["days"])  # the fallback knows no adjusted working day

    assert main(["--config", str(_config(tmp_path, "holidays-2027.toml")), "policy", "calendar", "--year", "2027",
                 "--json"]) == 0
    loaded = json.loads(capsys.readouterr().out)
    assert (loaded["source"], loaded["warnings"]) == ("file", [])
    assert loaded["files"] == [str(tmp_path / "holidays-2027.toml")]
    days = [(d["date"], d["working"], d["name"]) for d in loaded["days"]]
    assert days == [
        *[(f"2027-01-0{i}", False, "元旦 New Year's Day") for i in (1, 2, 3)],
        ("2027-09-26", True, "国庆节 National Day"),
        *[(f"2027-10-0{i}", False, "国庆节 National Day") for i in range(1, 8)],
        ("2027-10-09", True, "国庆节 National Day"),
    ]
    assert not (tmp_path / "casegate.db").exists()  # no database touched

    # 2026 still comes from the package, with its adjusted working Saturday 10 October.
    assert main(["--config", str(_config(tmp_path, "holidays-2027.toml")), "policy", "calendar", "--year", "2026"]) == 0
    text = capsys.readouterr().out
    assert "(chinesecalendar)" in text and "2026-10-10 Sat  working day" in text


@pytest.mark.parametrize(("content", "fragment"), [
    (HOLIDAYS_2027.replace('"2027-10-09"', '"2026-10-09"'),
     "holiday[1].workdays[1]: 2026-10-09 is not in 2027, the file's year"),
    (HOLIDAYS_2027.replace('"2027-10-09"', '"2027-10-03"'), "listed both off and as a working day: 2027-10-03"),
    (HOLIDAYS_2027.replace("year = 2027", "year = \"next\""), "year: expected the year the file covers"),
    (HOLIDAYS_2027.replace('off = ["2027-01-01..2027-01-03"]', 'of = ["2027-01-01"]'), "holiday[0].of: unknown key"),
    (HOLIDAYS_2027.replace('"2027-01-01..2027-01-03"', '"2027-01-03..2027-01-01"'), "ends before it starts"),
])
def test_a_mistake_in_the_file_stops_start_with_file_and_key(tmp_path, content, fragment) -> None:
    (tmp_path / "holidays-2027.toml").write_text(content, encoding="utf-8")
    cfg = _config(tmp_path, "holidays-2027.toml")
    with pytest.raises(ConfigError) as err:
        load_policy(load_config(str(cfg)))
    message = str(err.value)
    assert "policy.calendar.holidays_file" in message and str(tmp_path / "holidays-2027.toml") in message
    assert fragment in message


def _uncovered_years() -> list[int]:
    """This year and the next, those chinesecalendar has no official schedule for."""
    today = utcnow().date()
    return [y for y in (today.year, today.year + 1) if WorkCalendar().coverage(y) == "fallback"]


def test_status_and_doctor_say_so_and_a_file_silences_them(tmp_path, monkeypatch, capsys) -> None:
    missing = _uncovered_years()
    if not missing:
        pytest.skip("chinesecalendar knows this year and the next")
    monkeypatch.chdir(tmp_path)
    cfg = _config(tmp_path, None)
    assert main(["--config", str(cfg), "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)["calendar"]
    assert {y: status["years"][str(y)] for y in missing} == {y: "fallback" for y in missing}
    assert [f"no official holiday schedule for {y}" in w for w, y in zip(status["warnings"], missing)] == \
        [True] * len(missing)
    main(["--config", str(cfg), "doctor"])
    assert f"calendar: calendar: no official holiday schedule for {missing[0]}" in capsys.readouterr().out

    files = []
    for y in missing:
        (tmp_path / f"holidays-{y}.toml").write_text(HOLIDAYS_2027.replace("2027", str(y)), encoding="utf-8")
        files.append(f"holidays-{y}.toml")
    cfg.write_text(cfg.read_text() + "[policy.calendar]\nholidays_file = ["
                   + ", ".join(f'"{f}"' for f in files) + "]\n", encoding="utf-8")
    assert main(["--config", str(cfg), "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)["calendar"]
    assert status["warnings"] == [] and {status["years"][str(y)] for y in missing} == {"file"}


def test_the_daemon_warns_at_start(tmp_path) -> None:
    missing = _uncovered_years()
    if not missing:
        pytest.skip("chinesecalendar knows this year and the next")
    d = DaemonProcess(tmp_path, {"logging": {"level": "INFO"},
                                 "sources": [{"name": "push", "kind": "smtp", "host": "127.0.0.1",
                                              "port": free_port()}]}).start()
    try:
        d.wait_for_log(f"no official holiday schedule for {missing[-1]}")
        line = next(ln for ln in d.log().splitlines() if "no official holiday schedule" in ln)
        assert "WARNING" in line and "holidays_file" in line
    finally:
        assert d.terminate() == 0
