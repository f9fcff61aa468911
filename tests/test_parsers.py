"""parse_message against the project's own mail corpus (tests/data/mail).

Expectations live in tests/data/mail/EXPECTED.json so adding a case is
adding a file and a row; exact strings are asserted (no mojibake allowed).
"""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import datetime
from pathlib import Path

import pytest

from casegate.parsers import Address, ParsedMessage, ParseError, parse_message
from casegate.parsers.charsets import decode_bytes
from casegate.parsers.headers import decode_words, parse_msgids
from casegate.parsers.quotes import strip_quotes

DATA = Path(__file__).parent / "data" / "mail"
EXPECTED: dict[str, dict] = {
    k: v for k, v in json.loads((DATA / "EXPECTED.json").read_text("utf-8")).items() if not k.startswith("_")
}


def _parse(name: str) -> ParsedMessage:
    return parse_message((DATA / name).read_bytes())


def test_every_eml_has_expectations() -> None:
    files = {p.name for p in DATA.glob("*.eml")}
    assert files == set(EXPECTED), "every test mail needs a row in EXPECTED.json"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_expected(name: str) -> None:
    exp = EXPECTED[name]
    if exp.get("parse_error"):
        with pytest.raises(ParseError):
            _parse(name)
        return
    msg = _parse(name)
    if "subject" in exp:
        assert msg.subject == exp["subject"]
    if "from" in exp:
        assert msg.from_ == Address(*exp["from"])
    for field in ("to", "cc", "reply_to"):
        if field in exp:
            assert getattr(msg, field) == tuple(Address(*a) for a in exp[field])
    if "message_id" in exp:
        assert msg.message_id == exp["message_id"]
    for field in ("in_reply_to", "references"):
        if field in exp:
            assert getattr(msg, field) == tuple(exp[field])
    for s in exp.get("text_contains", []):
        assert s in msg.text
    for s in exp.get("text_not_contains", []):
        assert s not in msg.text
    for s in exp.get("new_text_contains", []):
        assert s in msg.new_text
    for s in exp.get("new_text_not_contains", []):
        assert s not in msg.new_text
    if "html" in exp:
        assert (msg.html is not None) == exp["html"]
    for flag, value in exp.get("flags", {}).items():
        assert getattr(msg, flag) is value, flag
    if "attachments" in exp:
        assert [a.filename for a in msg.attachments] == exp["attachments"]
    for fname, needle in exp.get("attachment_contains", {}).items():
        att = next(a for a in msg.attachments if a.filename == fname)
        assert needle.encode() in att.content
    if "inline_content_ids" in exp:
        assert [a.content_id for a in msg.attachments if a.inline] == exp["inline_content_ids"]
    if "language" in exp:
        assert msg.language == exp["language"]
    for d in exp.get("defects_contains", []):
        assert d in msg.defects


def test_result_is_immutable_and_typed() -> None:
    msg = _parse("plain_utf8.eml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        msg.subject = "x"  # type: ignore[misc]
    assert isinstance(msg.date, datetime) and msg.date.tzinfo is not None
    assert msg.header("subject") == "打印机无法连接"
    assert ("Message-ID", "<plain-001@example.cn>") in msg.headers


@pytest.mark.parametrize("raw", [b"", b"   \r\n", b"\x00\x01\x02\xff" * 50, b"just some text without headers\n"])
def test_hopeless_input_raises_parse_error(raw: bytes) -> None:
    with pytest.raises(ParseError) as info:
        parse_message(raw)
    assert info.value.reason


def test_bad_date_is_none_and_missing_zone_is_utc() -> None:
    assert parse_message(b"From: a@b.c\nDate: not a date\n\nx").date is None
    assert parse_message(b"From: a@b.c\nDate: Fri, 20 Nov 2026 10:00:00 -0000\n\nx").date.utcoffset().total_seconds() == 0


def test_encoded_word_split_inside_multibyte_char() -> None:
    data = "张三".encode("utf-8")
    import base64

    words = " ".join(f"=?utf-8?b?{base64.b64encode(chunk).decode()}?=" for chunk in (data[:2], data[2:5], data[5:]))
    assert decode_words(words) == "张三"
    assert decode_words("=?gb2312?B?1tDOxA?=") == "中文"  # missing padding tolerated


def test_charset_fallbacks() -> None:
    assert decode_bytes("中文".encode("utf-8"), "us-ascii") == "中文"
    assert decode_bytes("中文".encode("gbk"), "unknown-charset-x") == "中文"
    assert decode_bytes(b"caf\xe9", "iso-8859-1") == "café"
    assert decode_bytes(b"\xff\xfe\xfa", "nonsense") != ""  # never raises


def test_references_with_garbage() -> None:
    assert parse_msgids(["<a@b>\r\n\tjunk <c@d> <a@b>"]) == ("a@b", "c@d")


@pytest.mark.parametrize(
    "text, new",
    [
        ("好的\n\n-----原始邮件-----\n发件人: x", "好的"),
        ("收到\n\n发件人：客服\n发送时间：2026年11月20日\n收件人：我\n主题：回复", "收到"),
        ("谢谢\n\n在 2026年11月20日 星期五 10:00，张三 写道：\n> 旧", "谢谢"),
        ("好\n\n张三 于 2026年11月20日 写道：", "好"),
        ("OK\n\nOn Fri, Nov 20, 2026 at 10:00 AM Someone <a@b.c>\nwrote:\n> old", "OK"),
        ("OK\n________________________________\nFrom: x\nSent: y", "OK"),
        ("只有引用\n", "只有引用"),
        ("> all quoted\n> nothing new", ""),
    ],
)
def test_strip_quotes(text: str, new: str) -> None:
    assert strip_quotes(text) == new


def test_nothing_left_keeps_full_text() -> None:
    msg = parse_message(b"From: a@b.c\nSubject: q\n\n> only a quote\n")
    assert msg.new_text == "> only a quote"


def test_part_limit_records_defect() -> None:
    parts = "".join(f"--B\nContent-Type: text/plain\n\npart {i}\n" for i in range(700))
    raw = f"From: a@b.c\nContent-Type: multipart/mixed; boundary=B\n\n{parts}--B--\n".encode()
    msg = parse_message(raw)
    assert any(d.startswith("PartLimitExceeded") for d in msg.defects)
    assert msg.text == "part 0"


def test_small_message_is_fast() -> None:
    raw = (DATA / "reply_outlook_zh.eml").read_bytes()
    parse_message(raw)
    n = 300
    start = time.perf_counter()
    for _ in range(n):
        parse_message(raw)
    per = (time.perf_counter() - start) / n
    print(f"\nreply_outlook_zh.eml: {per * 1e6:.0f} us/message")
    assert per < 0.01  # generous bound so slow CI does not flake; target is < 1 ms


def test_walker_bug_falls_back_to_mail_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    import casegate.parsers.parse as parse_mod

    def boom(_msg: object) -> ParsedMessage:
        raise KeyError("simulated walker bug")

    monkeypatch.setattr(parse_mod, "_build", boom)
    msg = _parse("plain_utf8.eml")
    assert msg.subject == "打印机无法连接"
    assert msg.from_ == Address("张三", "zhangsan@example.cn")
    assert msg.defects[0].startswith("FallbackMailParser")
