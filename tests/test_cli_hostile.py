"""The command line against hostile and broken input (issue 12): exit codes
(65 bad input, 75 only for a database that is down, never a traceback),
control characters from mail escaped on the terminal but exact in JSON,
`cases show --json` with new_text and role, `rules check FILE`."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import mail
from test_cli import DEFAULT_RULES, err, ok, out, run_cli, write_config

# A window title, a cleared screen with the cursor moved home, and a write to
# the clipboard (OSC 52), as a hostile sender would put them in a subject.
HOSTILE = "\x1b]0;pwned\x07\x1b[2J\x1b[H\x1b]52;c;Y3VybCBldmlsfHNo\x07"
ENCODED = "=?utf-8?q?" + "".join(f"={b:02X}" for b in ("宕机" + HOSTILE).encode()) + "?="


def hostile_mail(**kw) -> bytes:
    raw = mail(subject="placeholder", body="服务器全部宕机。\x1b]0;body-title\x07\n", **kw)
    return raw.replace(b"Subject: placeholder", b"Subject: " + ENCODED.encode())


def assert_no_escape(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text, text
    assert "\\x1b]0;pwned" in text or "\\x1b" in text


def test_ingest_of_a_folder_with_a_bad_file_stores_the_rest_and_exits_65(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    good = tmp_path / "good.eml"
    good.write_bytes(mail(message_id="<good-1@customer.cn>"))
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.eml").write_bytes(mail(message_id="<good-2@customer.cn>"))
    # a file name no terminal should receive raw, and bytes that are not UTF-8
    (folder / b"b\xff\x1b]0;title\x07.eml".decode("utf-8", "surrogateescape")).write_bytes(
        mail(message_id="<good-3@customer.cn>"))
    proc = run_cli(config, "ingest", str(good), str(tmp_path / "missing.eml"), str(folder))
    assert proc.returncode == 65, err(proc)
    assert "Traceback" not in err(proc)
    lines = out(proc).splitlines()
    assert sorted(line.split("\t")[2] for line in lines) == ["new", "new", "new", "unreadable"], lines
    assert "\x1b" not in out(proc) and "\\xff\\x1b]0;title\\x07" in out(proc)
    listed = json.loads(ok(run_cli(config, "cases", "list", "--json")))
    assert len(listed) == 3  # nothing lost around the bad input


def test_database_down_is_75_and_nothing_else_is(tmp_path: Path) -> None:
    config = write_config(tmp_path, database={"url": "postgresql+psycopg://nobody@127.0.0.1:1/none"})
    good = tmp_path / "good.eml"
    good.write_bytes(mail())
    proc = run_cli(config, "ingest", str(good))
    assert proc.returncode == 75 and "Traceback" not in err(proc)
    local = write_config(tmp_path)
    proc = run_cli(local, "ingest", str(tmp_path / "missing.eml"))
    assert proc.returncode == 65 and "Traceback" not in err(proc)


def test_control_characters_from_mail_never_reach_the_terminal(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    path = tmp_path / "hostile.eml"
    path.write_bytes(hostile_mail(sender="Evil\x1b[31m <evil@customer.cn>", message_id="<hostile-1@customer.cn>"))
    ooo = tmp_path / "ooo.eml"
    ooo.write_bytes(hostile_mail(sender="ooo@customer.cn", headers={"Auto-Submitted": "auto-replied"},
                                 message_id="<hostile-2@customer.cn>"))
    ok(run_cli(config, "ingest", str(path), str(ooo)))
    listed = ok(run_cli(config, "cases", "list"))
    assert_no_escape(listed)
    (case,) = json.loads(ok(run_cli(config, "cases", "list", "--json")))
    assert case["subject"] == "宕机" + HOSTILE  # JSON stays exact
    shown = ok(run_cli(config, "cases", "show", case["number"]))
    assert_no_escape(shown)
    assert "\\x1b]0;body-title\\x07" in shown
    data = json.loads(ok(run_cli(config, "cases", "show", case["number"], "--json")))
    assert data["messages"][0]["subject"] == "宕机" + HOSTILE
    assert "\x1b]0;body-title\x07" in data["messages"][0]["text"]
    ignored = ok(run_cli(config, "ignored", "list"))
    assert_no_escape(ignored)
    ignored_id = ignored.split()[0]
    assert_no_escape(ok(run_cli(config, "ignored", "show", ignored_id)))
    assert ok(run_cli(config, "outbox", "list"))  # the acknowledgement: its line is plain text too
    assert "\x1b" not in ok(run_cli(config, "quarantine", "list"))


def test_cases_show_json_gives_new_text_and_role(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    first = tmp_path / "first.eml"
    first.write_bytes(mail(message_id="<first@customer.cn>", body="核心交换机宕机，业务全部中断。"))
    ok(run_cli(config, "ingest", str(first)))
    (case,) = json.loads(ok(run_cli(config, "cases", "list", "--json")))
    reply = tmp_path / "reply.eml"
    reply.write_bytes(mail(subject=f"Re: [{case['number']}] 核心交换机宕机", message_id="<second@customer.cn>",
                           in_reply_to="<first@customer.cn>",
                           body="重启之后恢复了。\n\n> 核心交换机宕机，业务全部中断。\n> 谢谢\n"))
    ok(run_cli(config, "ingest", str(reply)))
    data = json.loads(ok(run_cli(config, "cases", "show", case["number"], "--json")))
    incoming = [m for m in data["messages"] if m["direction"] == "in"]
    assert [m["role"] for m in incoming] == ["customer", "customer"]
    assert "> 核心交换机宕机" in incoming[1]["text"]
    assert incoming[1]["new_text"].strip() == "重启之后恢复了。"


def test_rules_check_accepts_a_single_file(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    # a file of the shipped set: its word lists (@failure ...) come from the folder around it
    assert "OK" in ok(run_cli(config, "rules", "check", str(DEFAULT_RULES / "10-severity.toml")))
    good = tmp_path / "60-mine.toml"
    good.write_text('[[rule]]\nname = "printer-all"\nany = ["打印机"]\nnear = ["@scope_all"]\npriority = "P2"\n',
                    encoding="utf-8")
    assert "OK" in ok(run_cli(config, "rules", "check", str(good)))
    bad = tmp_path / "61-bad.toml"
    bad.write_text('# comment\n[[rule]]\nname = "bad-priority"\nany = ["x"]\npriority = "P9"\n', encoding="utf-8")
    proc = run_cli(config, "rules", "check", str(bad))
    assert proc.returncode == 65
    assert out(proc).startswith(f"{bad}:5: ") and "P9" in out(proc)
    assert "Traceback" not in err(proc)
