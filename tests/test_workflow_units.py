"""Unit tests for the pure parts of the e-mail workflow: commands,
signed reply addresses, Authentication-Results, the staff directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from casegate.daemon.workflow import commands
from casegate.daemon.directory.auth_results import authenticated_by, parse as parse_ar
from casegate.daemon.cli import main as cli_main
from casegate.daemon.config import ConfigError, build_config
from casegate.daemon.directory.reply_address import ReplyAddressSigner
from casegate.daemon.directory.security import SecurityConfig
from casegate.daemon.directory.staff import StaffDirectory
from casegate.daemon.workflow.conversation import is_history_request
from casegate.parsers import parse_message
from helpers import mail

# ------------------------------------------------------------------ commands


def ctx(**kw):
    base = dict(case_number="SR-2026-000001", case_status="open",
                find_staff=lambda n: {"li na": "li@x.cn", "李娜": "li@x.cn"}.get(n.casefold()),
                case_exists=lambda n: n == "SR-2026-000002")
    base.update(kw)
    return commands.CommandContext(**base)


def test_commands_at_the_top_are_split_from_the_public_text() -> None:
    p = commands.parse("\n#status pending\n＃优先级 P1\n\nPlease send the logs.\n#status closed is text here")
    assert [(c.name, c.args) for c in p.commands] == [("status", ("pending",)), ("priority", ("P1",))]
    assert p.public_text == "Please send the logs.\n#status closed is text here"
    assert p.note is None
    valid, errors = commands.validate(p, ctx())
    assert errors == [] and [(v.name, v.value) for v in valid] == [("status", "pending"), ("priority", "P1")]


def test_no_commands_keeps_the_whole_text() -> None:
    p = commands.parse("# not a command (space)\nhello")
    assert not p.any and p.public_text == "# not a command (space)\nhello"


def test_note_takes_the_rest_of_the_message() -> None:
    p = commands.parse("#priority P2\n#note first line\nsecond line\n#status closed")
    assert [c.name for c in p.commands] == ["priority", "note"]
    assert p.note == "first line\nsecond line\n#status closed" and p.public_text == ""


@pytest.mark.parametrize("text,value", [("#状态 已解决", "resolved"), ("#状态已关闭", "closed"),
                                        ("#status: Closed", "closed"), ("＃状态　待定", "pending")])
def test_chinese_and_glued_status(text: str, value: str) -> None:
    valid, errors = commands.validate(commands.parse(text), ctx())
    assert errors == [] and valid[0].value == value


def test_every_error_is_reported_and_nothing_is_valid_to_apply() -> None:
    p = commands.parse("#status maybe\n#priority P9\n#assign Nobody\n#merge SR-2026-000001\n#merge x\n#foo\n#reopen")
    _, errors = commands.validate(p, ctx())
    reasons = " | ".join(e.reason_en for e in errors)
    for part in ("#status needs", "#priority needs", "no staff member called 'Nobody'",
                 "into itself", "given twice", "unknown command #foo", "not closed or resolved"):
        assert part in reasons
    assert all(e.reason_zh for e in errors)


def test_assign_merge_vendor_reopen() -> None:
    p = commands.parse("#指派 李娜\n#合并 sr-2026-000002\n#vendor Huawei 88-99")
    valid, errors = commands.validate(p, ctx())
    assert errors == []
    assert [(v.name, v.value, v.extra) for v in valid] == [
        ("assign", "li@x.cn", None), ("merge", "SR-2026-000002", None), ("vendor", "Huawei", "88-99")]
    _, errors = commands.validate(commands.parse("#vendor Acme"), ctx(known_vendor=lambda n: n == "Huawei"))
    assert "unknown vendor" in errors[0].reason_en
    valid, errors = commands.validate(commands.parse("#重开"), ctx(case_status="closed"))
    assert errors == [] and valid[0].name == "reopen"


@pytest.mark.parametrize("text,yes", [("history", True), ("查询进度。", True), (" 进度 \n", True),
                                      ("history please tell me more", False), ("进度\n谢谢", False)])
def test_history_request(text: str, yes: bool) -> None:
    assert is_history_request(text) is yes


# ------------------------------------------------------------ reply address

SECRET = b"0123456789abcdef0123456789abcdef"


def test_reply_address_round_trip() -> None:
    s = ReplyAddressSigner(SECRET, "service@desk.example.cn")
    addr = s.address("SR-2026-000042", "Wang.Wei@Desk.example.cn")
    local = addr.partition("@")[0]
    assert local.startswith("service+SR-2026-000042.") and len(local.rsplit(".", 1)[1]) == 12
    found = s.parse(addr.upper())  # survives MTAs that change case
    assert found is not None and found.case_number == "SR-2026-000042"
    assert s.verify(found, "wang.wei@desk.example.cn")
    assert not s.verify(found, "li.na@desk.example.cn")
    assert s.parse("other+SR-1.abc@desk.example.cn") is None
    assert s.parse("service+SR-1.abc@elsewhere.cn") is None
    assert s.parse("service@desk.example.cn") is None
    other = ReplyAddressSigner(b"another-secret-of-enough-length!", "service@desk.example.cn")
    assert not other.verify(found, "wang.wei@desk.example.cn")


def test_reply_address_found_in_delivered_to_and_verified_for_the_sender() -> None:
    s = ReplyAddressSigner(SECRET, "service@desk.example.cn")
    addr = s.address("SR-2026-000042", "wang@desk.example.cn")
    raw = mail(sender="wang@desk.example.cn", to="undisclosed-recipients:;", headers={"Delivered-To": addr})
    assert s.verified(parse_message(raw)) == ("SR-2026-000042", "wang@desk.example.cn")
    raw = mail(sender="mallory@evil.cn", to=addr)
    assert s.verified(parse_message(raw)) is None


def test_signer_refuses_weak_settings() -> None:
    with pytest.raises(ValueError):
        ReplyAddressSigner(b"short", "service@x.cn")
    with pytest.raises(ValueError):
        ReplyAddressSigner(SECRET, "service@x.cn", token_length=6)


# --------------------------------------------------------- auth results


def test_parse_authentication_results() -> None:
    ar = parse_ar('mx.example.cn 1; dkim=pass (good signature) header.d=example.cn header.s="s1"; '
                  'spf=fail smtp.mailfrom=a@b.cn; none')
    assert ar is not None and ar.authserv_id == "mx.example.cn"
    assert [(r.method, r.result) for r in ar.results] == [("dkim", "pass"), ("spf", "fail")]
    assert ar.results[0].props == {"header.d": "example.cn", "header.s": "s1"}


@pytest.mark.parametrize("header,ok", [
    ("mx.example.cn; dkim=pass header.d=example.cn", True),
    ("mx.example.cn; dkim=pass header.i=@example.cn", True),
    ("MX.Example.CN; spf=pass smtp.mailfrom=wang@example.cn", True),
    ("mx.example.cn; dmarc=pass header.from=example.cn", True),
    ("mx.example.cn; dkim=pass header.d=notexample.cn", False),
    ("mx.example.cn; dkim=pass header.d=cn", False),
    ("mx.example.cn; dkim=fail header.d=example.cn", False),
    ("other.example.cn; dkim=pass header.d=example.cn", False),
    ("mx.example.cn; dkim=pass (header.d=example.cn in a comment)", False),
])
def test_authenticated_by_domain_when_accepted(header: str, ok: bool) -> None:
    # Domain-level proof (DKIM/SPF/DMARC) counts only with accept_domain;
    # tests/test_auth_results.py and tests/test_staff_auth.py cover the mailbox proof.
    assert (authenticated_by([header], "wang@example.cn", ["mx.example.cn"], accept_domain=True) is not None) is ok
    assert authenticated_by([header], "wang@example.cn", ["mx.example.cn"]) is None


def test_no_trusted_ids_means_nothing_is_trusted() -> None:
    assert authenticated_by(["mx; dkim=pass header.d=example.cn"], "a@example.cn", []) is None


# ------------------------------------------------------------ staff config


def staff_cfg(entries, tmp_path: Path):
    return build_config({"staff": entries}, path=tmp_path / "casegate.toml", base_dir=tmp_path)


def test_staff_directory_lookups(tmp_path: Path) -> None:
    d = StaffDirectory.from_config(staff_cfg([
        {"name": "Wang Wei", "email": "Wang.Wei@X.cn", "queues": ["network"], "aliases": ["王伟"]},
        {"name": "Li Na", "email": "li@x.cn", "queues": ["*"], "on_duty": False},
        {"name": "Zhao", "email": "zhao@x.cn", "role": "support-supervisor"},
    ], tmp_path))
    assert d.by_email("WANG.WEI@x.cn").name == "Wang Wei"
    assert d.by_name("王伟") is d.by_name("wang wei") is d.by_name("wang.wei") is d.by_email("wang.wei@x.cn")
    assert [m.name for m in d.engineers_for("network")] == ["Wang Wei"]
    assert [m.name for m in d.engineers_for("network", on_duty_only=False)] == ["Wang Wei", "Li Na"]
    assert [m.name for m in d.with_role("support-supervisor")] == ["Zhao"]


@pytest.mark.parametrize("entries,where", [
    ([{"email": "a@x.cn"}], "staff[0].name: required key is missing"),
    ([{"name": "A", "email": "not-an-address"}], "staff[0].email"),
    ([{"name": "A", "email": "a@x.cn", "queues": "support"}], "staff[0].queues: expected a list"),
    ([{"name": "A", "email": "a@x.cn", "shift": 1}], "staff[0].shift: unknown key"),
    ([{"name": "A", "email": "a@x.cn"}, {"name": "B", "email": "A@x.cn"}], "staff[1].email"),
    ([{"name": "A", "email": "a@x.cn"}, {"name": "B", "email": "b@x.cn", "aliases": ["a"]}], "ambiguous"),
])
def test_staff_errors_name_file_and_key(entries, where: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        StaffDirectory.from_config(staff_cfg(entries, tmp_path))
    assert str(tmp_path / "casegate.toml") in str(exc.value) and where in str(exc.value)


def test_security_errors_name_file_and_key(tmp_path: Path) -> None:
    cfg = build_config({"security": {"token_length": 4}}, path=tmp_path / "c.toml", base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"c\.toml: security\.token_length"):
        SecurityConfig.from_config(cfg)


def test_cli_staff_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "casegate.toml"
    conf.write_text('[[staff]]\nname = "王伟"\nemail = "wang@x.cn"\nqueues = ["support"]\n'
                    '[[staff]]\nname = "Zhao"\nemail = "zhao@x.cn"\nrole = "support-supervisor"\n', encoding="utf-8")
    assert cli_main(["--config", str(conf), "staff", "list"]) == 0
    out = capsys.readouterr().out
    assert "王伟 <wang@x.cn>  service-engineer  queues: support  on duty" in out
    assert cli_main(["--config", str(conf), "staff", "list", "--role", "support-supervisor", "--json"]) == 0
    assert [m["email"] for m in json.loads(capsys.readouterr().out)] == ["zhao@x.cn"]
