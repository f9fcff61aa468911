"""Unit tests for the pure reply readers in casegate.daemon.timekeeping.survey."""

from __future__ import annotations

import pytest

from casegate.daemon.timekeeping.survey import (
    asks_for_new, is_confirmation, is_recurrence, parse_score, read_reply, reopens,
)


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("5", 5),
        ("5.", 5),
        ("  3\n\n谢谢", 3),
        ("５分", 5),
        ("５", 5),
        ("4分", 4),
        ("打5分吧", 5),
        ("五分", 5),
        ("给四星", 4),
        ("评分：3", 3),
        ("满意度 2", 2),
        ("4/5", 4),
        ("4 out of 5", 4),
        ("Score: 5", 5),
        ("rating 2", 2),
        ("5 stars, great job", 5),
        ("非常满意", 5),
        ("很满意，谢谢你们的工程师", 5),
        ("满意", 4),
        ("比较满意", 4),
        ("一般", 3),
        ("还行吧", 3),
        ("不满意", 2),
        ("不太满意，响应太慢", 2),
        ("非常不满意", 1),
        ("very satisfied", 5),
        ("Very Satisfied!", 5),
        ("satisfied", 4),
        ("dissatisfied", 2),
        ("not satisfied", 2),
        ("very dissatisfied", 1),
        ("Neutral", 3),
        ("一般，打3分", 3),
        ("非常满意 5分", 5),
    ],
)
def test_scores(text: str, score: int) -> None:
    assert parse_score(text) == score


@pytest.mark.parametrize(
    "text",
    [
        "",
        "谢谢",
        "thanks",
        "case SR-2026-000005 is fine",  # digits inside a number are not a score
        "we need 2 more licences next month",
        "6",
        "10分",
    ],
)
def test_no_score(text: str) -> None:
    assert parse_score(text) is None


@pytest.mark.parametrize(
    "text",
    ["确认", "已解决，谢谢", "问题解决了", "好了，可以关闭", "同意结案", "系统恢复正常了", "confirm", "Confirmed, thanks",
     "Yes", "yes, it works now", "Resolved.", "fixed, please close the case", "ok to close", "确认已解决"],
)
def test_confirmations(text: str) -> None:
    assert is_confirmation(text)


@pytest.mark.parametrize(
    "text",
    ["", "还没解决", "未解决", "问题依旧", "not resolved", "no, not yet", "not fixed", "still broken",
     "请问什么时候能来现场？", "what is the root cause?", "又出现了，请确认"],
)
def test_not_confirmations(text: str) -> None:
    assert not is_confirmation(text)


@pytest.mark.parametrize(
    "text",
    ["问题又出现了", "今天早上又出现宕机", "问题依旧", "故障依旧存在", "还是不行", "服务器又坏了", "复发了",
     "It happened again this morning", "still broken", "The fault is back", "The problem came back",
     "still not working", "same problem as before", "not resolved", "５分，但是问题又出现了"],
)
def test_recurrences(text: str) -> None:
    assert is_recurrence(text)


@pytest.mark.parametrize(
    "text",
    ["问题没有再出现", "没再出现，谢谢", "未再发生", "一切正常", "5分", "非常满意",
     "It has not happened again", "hasn't come back", "no more problems", "works fine now"],
)
def test_not_recurrences(text: str) -> None:
    assert not is_recurrence(text)


def test_read_reply_combines() -> None:
    r = read_reply("5分，问题没有再出现，谢谢！")
    assert (r.score, r.confirmed, r.recurred) == (5, False, False)
    r = read_reply("3分。问题又出现了")
    assert (r.score, r.confirmed, r.recurred) == (3, False, True)
    r = read_reply("确认已解决")
    assert (r.score, r.confirmed, r.recurred) == (None, True, False)


@pytest.mark.parametrize("text", ["4分，希望增加报表导出功能。", "能否增加一个按部门统计的报表？", "建议支持扫码登录",
                                  "Please add an export to Excel.", "It would be great if the report could be mailed."])
def test_new_needs(text: str) -> None:
    assert asks_for_new(text)
    assert not reopens(text)  # a new need opens a linked request, it does not reopen the fault


@pytest.mark.parametrize("text", ["没有新的需求。", "暂无其他需求，谢谢", "No new needs, thanks.", "没有再出现，也没有其他需求。"])
def test_no_new_need_neither_asks_nor_reopens(text: str) -> None:
    assert not asks_for_new(text)
    assert not reopens(text)


@pytest.mark.parametrize("text", ["又断网了，还是不能上网！", "请问这个报错是什么原因？", "The printer is down again."])
def test_recurrences_and_questions_reopen(text: str) -> None:
    assert reopens(text)
