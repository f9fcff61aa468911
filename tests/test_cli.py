"""The `casegate` command line, run for real as a subprocess.

Every test drives ``python -m casegate.daemon.cli --config FILE ...`` in a
temporary folder (SQLite and the maildir outbox live there) and checks what
an admin or a piping MTA sees: stdout lines, JSON, exit codes, files.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from daemon_proc import to_toml
from helpers import mail
from servers.ports import free_port

DATA = Path(__file__).parent / "data" / "mail"
EXPECTED = json.loads((DATA / "EXPECTED.json").read_text(encoding="utf-8"))
DEFAULT_RULES = Path(__file__).resolve().parents[1] / "rules" / "default"
OUTCOMES = {"new", "reply", "duplicate", "ignored", "quarantined"}
CASE_RE = re.compile(r"^SR-\d{4}-\d{6}$")


def write_config(folder: Path, **sections) -> Path:
    data = {"service": {"address": "service@desk.example.cn"}, **sections}
    path = folder / "casegate.toml"
    path.write_text(to_toml(data), encoding="utf-8")
    return path


def run_cli(config: Path | None, *args: str, stdin: bytes | None = None, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the real CLI; stdout/stderr are bytes (``quarantine export`` is binary)."""
    base_env = {k: v for k, v in os.environ.items() if k != "CASEGATE_CONFIG"}
    cmd = [sys.executable, "-m", "casegate.daemon.cli"]
    if config is not None:
        cmd += ["--config", str(config)]
    return subprocess.run(
        [*cmd, *args], input=stdin if stdin is not None else b"", capture_output=True,
        cwd=cwd or (config.parent if config is not None else None), env={**base_env, **(env or {})}, timeout=120,
    )


def out(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout.decode("utf-8")


def err(proc: subprocess.CompletedProcess) -> str:
    return proc.stderr.decode("utf-8", errors="replace")


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{out(proc)}\nstderr:\n{err(proc)}"
    return out(proc)


def parse_ingest(stdout: str) -> dict[str, tuple[str, str, str]]:
    """``file<TAB>case-or-dash<TAB>outcome[<TAB>reason]`` -> {file name: (case, outcome, reason)}."""
    rows = {}
    for line in stdout.splitlines():
        parts = line.split("\t")
        assert len(parts) in (3, 4), f"malformed ingest line {line!r}"
        name, case, outcome = parts[:3]
        reason = parts[3] if len(parts) == 4 else ""
        assert outcome in OUTCOMES, line
        assert case == "-" or CASE_RE.match(case), line
        if outcome in ("ignored", "quarantined"):
            assert reason, f"{outcome} without a reason: {line!r}"
        rows[Path(name).name if name != "-" else "-"] = (case, outcome, reason)
    return rows


def cases_json(config: Path) -> list[dict]:
    return json.loads(ok(run_cli(config, "cases", "list", "--json")))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> tuple[Path, dict[str, tuple[str, str, str]]]:
    """tests/data/mail ingested once, shared read-only by the tests below."""
    folder = tmp_path_factory.mktemp("cli")
    config = write_config(folder)
    rows = parse_ingest(ok(run_cli(config, "ingest", str(DATA))))
    return config, rows


def case_of(workspace, name: str) -> dict:
    config, rows = workspace
    number, outcome, _ = rows[name]
    assert outcome == "new", rows[name]
    return json.loads(ok(run_cli(config, "cases", "show", number, "--json")))


# ------------------------------------------------------------------ ingest


def test_ingest_folder_prints_one_line_per_file(workspace) -> None:
    _config, rows = workspace
    files = sorted(p.name for p in DATA.rglob("*") if p.is_file())
    assert sorted(rows) == files
    assert rows["garbage.eml"][1] == "quarantined"
    assert "cannot parse" in rows["garbage.eml"][2]
    assert rows["gbk.eml"][1] == "new"
    for name in ("auto_reply.eml", "dsn_bounce.eml", "list_mail.eml"):
        assert rows[name][1] == "ignored" and rows[name][0] == "-", rows[name]
    new_numbers = [case for case, outcome, _ in rows.values() if outcome == "new"]
    assert len(new_numbers) == len(set(new_numbers)) > 10


def test_ingesting_twice_is_all_duplicates_and_creates_no_case(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    first = parse_ingest(ok(run_cli(config, "ingest", str(DATA))))
    before = cases_json(config)
    assert len(before) == sum(1 for _, o, _ in first.values() if o == "new")
    again = run_cli(config, "ingest", str(DATA))
    second = parse_ingest(ok(again))
    assert sorted(second) == sorted(first)
    for name, (case, outcome, _) in second.items():
        if first[name][1] == "quarantined":
            assert outcome == "quarantined", name
        else:
            assert outcome == "duplicate", (name, second[name])
            assert case == first[name][0], name  # the duplicate names the case it belongs to
    assert "duplicate" in err(again)  # the summary line on stderr
    assert sorted(c["number"] for c in cases_json(config)) == sorted(c["number"] for c in before)


def test_ingest_dash_reads_one_message_from_stdin(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    raw = mail(subject="标准输入的邮件", sender="钱 <qian@customer.cn>")
    rows = parse_ingest(ok(run_cli(config, "ingest", "-", stdin=raw)))
    assert list(rows) == ["-"]
    number, outcome, _ = rows["-"]
    assert outcome == "new"
    shown = json.loads(ok(run_cli(config, "cases", "show", number, "--json")))
    assert shown["subject"] == "标准输入的邮件"
    assert shown["customer"]["email"] == "qian@customer.cn"
    # the same bytes again on stdin: a duplicate of that case
    assert parse_ingest(ok(run_cli(config, "ingest", "-", stdin=raw)))["-"] == (number, "duplicate", "")


# ------------------------------------------------------------------ exit codes


def unreachable_database(tmp_path: Path) -> Path:
    port = free_port("127.0.0.1")  # nothing listens there
    return write_config(tmp_path, database={"url": f"postgresql+psycopg://nobody@127.0.0.1:{port}/x"})


def test_ingest_exits_75_when_the_database_is_unreachable(tmp_path: Path) -> None:
    config = unreachable_database(tmp_path)
    proc = run_cli(config, "ingest", "-", stdin=mail())
    assert proc.returncode == 75, err(proc)
    assert "database unavailable" in err(proc)
    assert out(proc) == ""  # no line claims the message was handled
    assert "Traceback" not in err(proc)


@pytest.mark.parametrize("args", [("outbox", "send"), ("cases", "list"), ("status",)])
def test_other_commands_also_exit_75_when_the_database_is_unreachable(tmp_path: Path, args) -> None:
    proc = run_cli(unreachable_database(tmp_path), *args)
    assert proc.returncode == 75, err(proc)
    assert "database unavailable" in err(proc)
    assert "Traceback" not in err(proc)


def test_bad_config_exits_78_naming_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text('[outgoing]\ntransprt = "smtp"\n', encoding="utf-8")
    proc = run_cli(config, "cases", "list")
    assert proc.returncode == 78
    assert str(config) in err(proc)
    assert "outgoing.transprt" in err(proc) and "unknown key" in err(proc)
    assert "Traceback" not in err(proc)


# ------------------------------------------------------------------ cases


MESSAGE_KEYS = {"direction", "message_id", "from", "subject", "date", "text", "attachments"}


def test_cases_show_json_has_the_documented_keys(workspace) -> None:
    data = case_of(workspace, "attachment_names.eml")
    assert {"number", "subject", "status", "priority", "category", "queue", "language",
            "customer", "messages", "events"} <= set(data)
    assert {"name", "email"} <= set(data["customer"])
    assert data["customer"]["email"] == "att@example.cn"
    assert data["messages"], data
    for m in data["messages"]:
        assert MESSAGE_KEYS <= set(m), m.keys()
        for a in m["attachments"]:
            assert {"filename", "content_type", "size"} <= set(a)
    inbound = [m for m in data["messages"] if m["direction"] == "in"]
    assert [m["direction"] for m in data["messages"]][:2] == ["in", "out"]  # the ack follows the mail
    assert [a["filename"] for a in inbound[0]["attachments"]] == EXPECTED["attachment_names.eml"]["attachments"]
    pdf = next(a for a in inbound[0]["attachments"] if a["filename"] == "测试报告.pdf")
    assert pdf["size"] > 0 and pdf["content_type"]
    assert data["events"]
    for e in data["events"]:
        assert {"at", "actor", "action", "old", "new"} <= set(e)
    actions = [e["action"] for e in data["events"]]
    assert actions[:2] == ["created", "classified"] and "ack-queued" in actions


@pytest.mark.parametrize("name", ["gbk.eml", "big5_hkscs.eml", "iso2022jp.eml", "rfc2047_names.eml"])
def test_cases_show_decodes_legacy_charsets_exactly(workspace, name: str) -> None:
    exp = EXPECTED[name]
    data = case_of(workspace, name)
    first = data["messages"][0]
    assert first["direction"] == "in"
    assert data["subject"] == exp["subject"]
    assert first["subject"] == exp["subject"]
    sender_name, sender_email = exp["from"]
    assert first["from"] == sender_email
    assert data["customer"] == {**data["customer"], "name": sender_name, "email": sender_email}
    for snippet in exp.get("text_contains", []):
        assert snippet in first["text"]
    for value in (data["subject"], first["subject"], first["text"], data["customer"]["name"], first.get("from_name") or ""):
        assert "\ufffd" not in value
    if "message_id" in exp:
        assert first["message_id"] == exp["message_id"]


def test_cases_show_unknown_number_exits_1(workspace) -> None:
    config, _ = workspace
    proc = run_cli(config, "cases", "show", "NOPE")
    assert proc.returncode == 1
    assert "NOPE" in err(proc)
    assert out(proc) == ""


def test_cases_show_text_form(workspace) -> None:
    config, rows = workspace
    text = ok(run_cli(config, "cases", "show", rows["gbk.eml"][0]))
    assert rows["gbk.eml"][0] in text and "发票抬头需要修改" in text and "zhaoliu@example.cn" in text


# ------------------------------------------------------------------ outbox, quarantine, status


def test_outbox_list_and_send_to_the_maildir(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    rows = parse_ingest(ok(run_cli(config, "ingest", str(DATA / "gbk.eml"), str(DATA / "plain_utf8.eml"))))
    assert [o for _, o, _ in rows.values()] == ["new", "new"]
    listing = ok(run_cli(config, "outbox", "list"))
    assert listing.count(" queued ") == 2
    assert "zhaoliu@example.cn" in listing and "zhangsan@example.cn" in listing
    new_dir = tmp_path / "outbox" / "new"
    assert not new_dir.exists() or not any(new_dir.iterdir())

    report = ok(run_cli(config, "outbox", "send"))
    assert "sent 2" in report
    files = sorted(new_dir.iterdir())
    assert len(files) == 2
    recipients = set()
    for f in files:
        head = f.read_bytes().split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
        assert b"Auto-Submitted: auto-replied" in head
        recipients |= {r for r in (b"zhaoliu@example.cn", b"zhangsan@example.cn") if r in head}
    assert recipients == {b"zhaoliu@example.cn", b"zhangsan@example.cn"}
    assert ok(run_cli(config, "outbox", "list", "--state", "sent")).count(" sent ") == 2
    # nothing is due any more: a second send writes nothing
    assert "sent 0" in ok(run_cli(config, "outbox", "send"))
    assert len(list(new_dir.iterdir())) == 2


def test_quarantine_list_and_export_returns_the_exact_bytes(workspace) -> None:
    config, _ = workspace
    listing = ok(run_cli(config, "quarantine", "list"))
    garbage = (DATA / "garbage.eml").read_bytes()
    ids = {}
    for line in listing.splitlines():
        m = re.match(r"\s*(\d+)\s+\S+\s+(\S+)\s+(\d+) bytes\s+(.*)$", line)
        assert m, line
        ids[int(m.group(3))] = int(m.group(1))
        assert m.group(2) == "cli" and "cannot parse" in m.group(4)
    assert len(garbage) in ids, listing
    exported = run_cli(config, "quarantine", "export", str(ids[len(garbage)]))
    assert exported.returncode == 0
    assert exported.stdout == garbage
    missing = run_cli(config, "quarantine", "export", "999999")
    assert missing.returncode == 1 and missing.stdout == b""


def test_status_shows_the_embedded_listener_and_outbox_depth(workspace) -> None:
    config, rows = workspace
    new = sum(1 for _, o, _ in rows.values() if o == "new")
    text = ok(run_cli(config, "status"))
    assert re.search(r"^smtp-local\s+smtp\s", text, re.M), text
    assert f"outbox: {new} waiting, 0 sent, 0 failed" in text
    assert "quarantine: 2 message(s)" in text  # garbage.eml and EXPECTED.json
    data = json.loads(ok(run_cli(config, "status", "--json")))
    assert [(s["name"], s["kind"]) for s in data["sources"]] == [("smtp-local", "smtp")]
    assert data["outbox"] == {"queued": new}
    assert data["quarantined"] == 2


# ------------------------------------------------------------------ rules


def test_rules_check_reports_file_and_line_and_exits_65(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES, folder)
    bad = folder / "60-bad.toml"
    bad.write_text('# comment\n[[rule]]\nname = "bad-priority"\nany = ["x"]\npriority = "P9"\n', encoding="utf-8")
    proc = run_cli(write_config(tmp_path), "rules", "check", str(folder))
    assert proc.returncode == 65
    lines = out(proc).splitlines()
    assert lines and all(re.match(r"^.+:\d+: .+", line) for line in lines), lines
    assert any(line.startswith(f"{bad}:5: ") and "P9" in line for line in lines), lines


def test_rules_check_on_the_shipped_rules_is_ok(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    proc = run_cli(config, "rules", "check")
    assert "OK" in ok(proc)
    assert "OK" in ok(run_cli(config, "rules", "check", str(DEFAULT_RULES)))


def outage_mail(tmp_path: Path) -> Path:
    path = tmp_path / "outage.eml"
    path.write_bytes(mail(subject="核心系统宕机", body="今天上午核心系统宕机。", message_id="<outage-1@customer.cn>"))
    return path


def test_rules_test_explains_rule_and_keyword(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    eml = outage_mail(tmp_path)
    text = ok(run_cli(config, "rules", "test", str(eml)))
    assert "核心系统宕机" in text
    assert "rule p1-outage (10-severity.toml)" in text
    assert "'系统宕机'" in text
    assert "=> priority P1" in text
    data = json.loads(ok(run_cli(config, "rules", "test", str(eml), "--json")))
    assert len(data) == 1 and data[0]["priority"] == "P1"
    match = next(m for m in data[0]["matches"] if m["rule"] == "p1-outage")
    assert match["keyword"] == "系统宕机" and match["file"] == "10-severity.toml"


def test_rules_test_on_a_case_reruns_its_first_message(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    number, outcome, _ = parse_ingest(ok(run_cli(config, "ingest", str(outage_mail(tmp_path)))))["outage.eml"]
    assert outcome == "new"
    text = ok(run_cli(config, "rules", "test", number))
    assert text.startswith(f"{number}: 核心系统宕机")
    assert "p1-outage" in text and "=> priority P1" in text
    data = json.loads(ok(run_cli(config, "rules", "test", number, "--json")))
    assert data[0]["input"] == number and data[0]["priority"] == "P1"
    missing = run_cli(config, "rules", "test", "SR-1999-000001")
    assert missing.returncode == 1


def test_rules_test_sees_an_admins_edit_at_once(tmp_path: Path) -> None:
    folder = tmp_path / "myrules"
    shutil.copytree(DEFAULT_RULES, folder)
    config = write_config(tmp_path, classification={"rules_dir": "myrules"})
    eml = tmp_path / "lamp.eml"
    eml.write_bytes(mail(subject="设备状态", body="机房里的设备蓝灯常亮。"))

    before = json.loads(ok(run_cli(config, "rules", "test", str(eml), "--json")))[0]
    assert before["priority"] == "P3" and before["matches"] == []

    severity = folder / "10-severity.toml"
    text = severity.read_text(encoding="utf-8")
    assert '"系统宕机", ' in text
    severity.write_text(text.replace('"系统宕机", ', '"系统宕机", "蓝灯常亮", ', 1), encoding="utf-8")
    assert "OK" in ok(run_cli(config, "rules", "check"))

    after = json.loads(ok(run_cli(config, "rules", "test", str(eml), "--json")))[0]
    assert after["priority"] == "P1"
    assert [(m["rule"], m["keyword"]) for m in after["matches"]] == [("p1-outage", "蓝灯常亮")]
    # the shipped files are untouched: the default folder still says P3
    (tmp_path / "other").mkdir()
    other = write_config(tmp_path / "other")
    assert json.loads(ok(run_cli(other, "rules", "test", str(eml), "--json")))[0]["priority"] == "P3"


def test_quarantine_retry_reingests_after_a_fix(tmp_path: Path) -> None:
    """A message quarantined by a (since fixed) failure goes through on retry."""
    from casegate.daemon.runtime.app import App
    from casegate.daemon.config import load_config
    from casegate.daemon.inbound import Inbound, Source


    cfg_path = tmp_path / "casegate.toml"
    cfg_path.write_text('[service]\naddress = "service@desk.example.cn"\n')
    app = App(load_config(str(cfg_path)))
    original = app.pipeline.classifier.classify

    def broken(*a, **kw):
        raise RuntimeError("rules bug")

    app.pipeline.classifier.classify = broken
    raw = mail(subject="重试测试")
    assert app.pipeline.ingest(Inbound(raw, Source("imap-main", "imap"))).outcome == "quarantined"
    app.pipeline.classifier.classify = original
    app.close()

    out = subprocess.run([sys.executable, "-m", "casegate.daemon.cli", "--config", str(cfg_path), "quarantine", "retry", "--all"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "\tnew" in out.stdout
    listing = subprocess.run([sys.executable, "-m", "casegate.daemon.cli", "--config", str(cfg_path), "quarantine", "list"],
                             capture_output=True, text=True)
    assert "quarantine is empty" in listing.stdout
    # garbage stays quarantined, with a non-zero exit
    app = App(load_config(str(cfg_path)))
    app.pipeline.ingest(Inbound(b"\x00\x01 garbage", Source("cli", "file")))
    app.close()
    again = subprocess.run([sys.executable, "-m", "casegate.daemon.cli", "--config", str(cfg_path), "quarantine", "retry", "--all"],
                           capture_output=True, text=True)
    assert again.returncode == 65 and "quarantined" in again.stdout
