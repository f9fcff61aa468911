"""Matching semantics of the engine, on small hand-made rule sets."""

from __future__ import annotations

from pathlib import Path

import pytest

from casegate.parsers.message import Address, Attachment, ParsedMessage
from casegate.rules import ClassifyInput, RuleSet, fold, load_rules


def make_message(subject: str = "", new_text: str = "", sender: str = "wang@bank.com.cn",
                 attachments: tuple[str, ...] = ()) -> ParsedMessage:
    return ParsedMessage(
        message_id=None, in_reply_to=(), references=(), from_=Address("", sender),
        reply_to=(), to=(Address("", "help@vendor.cn"),), cc=(), subject=subject, date=None,
        text=new_text, new_text=new_text, html=None,
        attachments=tuple(Attachment(n, "text/plain", b"") for n in attachments),
        is_auto_reply=False, is_bounce=False, is_list=False,
    )


def ruleset(tmp_path: Path, text: str) -> RuleSet:
    (tmp_path / "10-t.toml").write_text(text, encoding="utf-8")
    return load_rules(tmp_path)


def names(rs: RuleSet, subject: str = "", body: str = "", **kw: object) -> list[str]:
    msg_kw = {k: kw.pop(k) for k in ("sender", "attachments") if k in kw}
    result = rs.classify(ClassifyInput(message=make_message(subject, body, **msg_kw), **kw))
    return [m.rule for m in result.matches]


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("ＡＢＣ１２３", "abc123"),
        ("System  Down!", "system down!"),
        ("系 统　宕 机", "系统宕机"),
        ("系統當機", "系统当机"),
        ("業務中斷", "业务中断"),
        ("  a\n\tb  ", "a b"),
        ("ERP 系统", "erp 系统"),
    ],
)
def test_fold(text: str, folded: str) -> None:
    assert fold(text) == folded


def test_latin_word_boundaries(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, '[[rule]]\nname = "d"\nany = ["down", "system down"]\npriority = "P1"\n')
    assert names(rs, "System  Down!") == ["d"]
    assert names(rs, "", "the server is down.") == ["d"]
    assert names(rs, "服务器down了") == ["d"]  # CJK neighbours are boundaries
    assert names(rs, "download") == []
    assert names(rs, "countdown") == []
    assert names(rs, "down_load") == []
    assert names(rs, "ＤＯＷＮ") == ["d"]


def test_prefix_keyword(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, '[[rule]]\nname = "i"\nany = ["install*"]\npriority = "P4"\n')
    assert names(rs, "installation guide") == ["i"]
    assert names(rs, "install") == ["i"]
    assert names(rs, "reinstall") == []


def test_cjk_substring_and_traditional_keyword(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, '[[rule]]\nname = "c"\nany = ["當機"]\npriority = "P1"\n')
    assert names(rs, "我们系统当机了") == ["c"]
    assert names(rs, "系統當機") == ["c"]
    assert names(rs, "当 机") == ["c"]


def test_all_none_and_fields(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, """
[[rule]]
name = "ups-alarm"
all = ["ups", "告警"]
none = ["已恢复"]
tags = ["ups"]

[[rule]]
name = "bank"
sender_domain.any = ["bank.com.cn"]
any = ["宕机"]
priority = "P1"
assignee_group = "bank-team"

[[rule]]
name = "subject-only"
fields = ["subject"]
any = ["urgent"]
priority = "P2"
""")
    assert names(rs, "UPS 告警") == ["ups-alarm"]
    assert names(rs, "UPS", "出现告警") == ["ups-alarm"]
    assert names(rs, "UPS 告警", "已恢复") == []
    assert names(rs, "告警") == []
    assert names(rs, "宕机", sender="ops@bank.com.cn") == ["bank"]
    assert names(rs, "宕机", sender="ops@mail.bank.com.cn") == ["bank"]
    assert names(rs, "宕机", sender="ops@notbank.com.cn") == []
    assert names(rs, "", "urgent") == []
    assert names(rs, "URGENT") == ["subject-only"]


def test_regex_on_folded_text(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, """
[[rule]]
name = "ticket"
regex = 'INC\\d{4}'
tags = ["ticket"]

[[rule]]
name = "contract"
contract.regex = '^HT-2024-'
tags = ["contract-2024"]
""")
    assert names(rs, "re: inc1234") == ["ticket"]
    assert names(rs, "ＩＮＣ５６７８") == ["ticket"]  # full-width folded before the regex
    assert names(rs, "INC12") == []
    assert names(rs, "x", contract_id="HT-2024-001") == ["contract"]
    assert names(rs, "x", contract_id="HT-2023-001") == []


def test_attachment_names_only_when_named(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, """
[[rule]]
name = "body"
any = ["宕机"]
priority = "P1"

[[rule]]
name = "att"
attachment_names.any = ["宕机"]
tags = ["att"]
""")
    assert names(rs, "日志", attachments=("宕机日志.txt",)) == ["att"]


def test_source_customer_recipient(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, """
[[rule]]
name = "fax"
source_kind.any = ["fax"]
source.any = ["fax-gw-1"]
tags = ["fax"]

[[rule]]
name = "vip"
customer.any = ["中国银行"]
recipient.any = ["help@vendor.cn"]
assignee_group = "vip"
""")
    assert names(rs, "x", source_kind="fax", source_name="fax-gw-1") == ["fax"]
    assert names(rs, "x", source_kind="imap", source_name="fax-gw-1") == []
    assert names(rs, "x", customer_company="中國銀行上海分行") == ["vip"]


def test_resolution_order(tmp_path: Path) -> None:
    (tmp_path / "20-b.toml").write_text(
        '[[rule]]\nname = "b"\nany = ["x"]\npriority = "P1"\nqueue = "second"\ntags = ["t2", "t1"]\n',
        encoding="utf-8",
    )
    rs = ruleset(tmp_path, '[[rule]]\nname = "a"\nany = ["x"]\npriority = "P3"\nqueue = "first"\ntags = ["t1"]\n')
    result = rs.classify(ClassifyInput(message=make_message("x")))
    assert (result.priority, result.queue, result.tags) == ("P1", "first", ("t1", "t2"))
    a, b = result.matches
    assert a.applied == ("queue", "tags") and b.applied == ("priority", "tags")
    assert "queue second (not applied)" in result.explain()[1]


def test_many_rules_only_candidates_evaluated(tmp_path: Path) -> None:
    text = "".join(
        f'[[rule]]\nname = "r{i}"\nany = ["kw{i}x"]\npriority = "P{1 + i % 4}"\n\n' for i in range(500)
    )
    rs = ruleset(tmp_path, text)
    assert rs.keyword_count == 500
    assert len(rs._always) == 0
    assert names(rs, "found kw42x and kw7x") == ["r7", "r42"]
