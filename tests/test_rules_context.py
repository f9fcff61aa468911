"""The rule language reads clauses: word lists, not_after, near, if_<list>,
severity over ignore routes, and the explanation of each match."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from casegate.parsers.message import Address, Attachment, ParsedMessage
from casegate.rules import (
    Classification,
    ClassifyInput,
    RuleSet,
    check_folder,
    fold_text,
    format_result,
    load_rules,
)


def make_message(subject: str = "", body: str = "", attachments: tuple[str, ...] = ()) -> ParsedMessage:
    return ParsedMessage(
        message_id=None, in_reply_to=(), references=(), from_=Address("", "li@customer.cn"),
        reply_to=(), to=(Address("", "service@desk.example.cn"),), cc=(), subject=subject, date=None,
        text=body, new_text=body, html=None,
        attachments=tuple(Attachment(n, "text/plain", b"") for n in attachments),
        is_auto_reply=False, is_bounce=False, is_list=False,
    )


def ruleset(tmp_path: Path, text: str, name: str = "10-t.toml") -> RuleSet:
    (tmp_path / name).write_text(text, encoding="utf-8")
    return load_rules(tmp_path)


def run(rs: RuleSet, body: str, subject: str = "", **kw: object) -> Classification:
    return rs.classify(ClassifyInput(message=make_message(subject, body, **kw)))  # type: ignore[arg-type]


def prio(rs: RuleSet, body: str, subject: str = "") -> str:
    return run(rs, body, subject).priority


LISTS = """
[lists.negation]
zh = ["没有", "并没有", "不是", "无"]
en = ["not", "no", "never"]
except = ["但是", "but"]
not_in = ["无法", "无线"]

[lists.question]
zh = ["请问", "会不会", "吗", "怎么"]
en = ["how", "can i"]
except = ["怎么办", "为什么", "why"]

[lists.past]
reach = "sentence"
zh = ["上个月", "上次"]
en = ["last week"]
except = ["又", "但是", "again", "but"]

[lists.single]
reach = "sentence"
zh = ["一台", "不是所有"]
en = ["one user"]
except = ["所有", "导致"]

[lists.scope]
reach = "sentence"
zh = ["全部", "所有"]
en = ["all", "entire"]
except = ["每次", "every time"]

[lists.failure]
zh = ["打不出", "停了", "无法"]
en = ["cannot", "down"]
"""

OUTAGE = LISTS + """
[[rule]]
name = "outage"
any = ["宕机", "down", "outage"]
not_after = ["@negation"]
if_question = "P4"
if_past = "skip"
if_single = "P3"
priority = "P1"
tags = ["outage"]
"""


# -- word lists in rule files ------------------------------------------------

def test_lists_are_merged_over_files_and_named_with_at(tmp_path: Path) -> None:
    (tmp_path / "00-words.toml").write_text('[lists.alarm]\nzh = ["告警"]\n', encoding="utf-8")
    (tmp_path / "60-local.toml").write_text('[lists.alarm]\nen = ["alarm"]\nzh = ["报警"]\n', encoding="utf-8")
    rs = ruleset(tmp_path, '[[rule]]\nname = "a"\nany = ["@alarm"]\npriority = "P3"\n')
    assert [w.raw for w in rs.lists["alarm"].words] == ["告警", "alarm", "报警"]
    assert prio(rs, "UPS ALARM") == "P3" and prio(rs, "面板報警") == "P3"  # folded like keywords
    assert run(rs, "UPS 告警").matches[0].keyword == "告警"  # the word of the list, not "@alarm"


def test_list_errors_have_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "10-t.toml").write_text(
        '[lists.good]\nzh = ["好"]\n\n'            # 1-2
        '[lists.Bad]\nzh = ["x"]\n\n'              # 4
        '[lists.odd]\nzh = "x"\nreach = "page"\n'  # 7-9
        'colour = ["x"]\n\n'                       # 10
        '[lists.loop]\nwords = ["@loop"]\n\n'      # 12
        '[[rule]]\nname = "r"\nany = ["@nope"]\nnot_after = ["@missing"]\n'    # 15-18
        'if_weather = "P4"\nif_good = "P9"\npriority = "P1"\n\n'               # 19-21
        '[[rule]]\nname = "s"\nany = ["x"]\nif_good = "P4"\ntags = ["t"]\n\n'  # 23-27
        '[[rule]]\nname = "u"\nsender.any = ["x"]\nif_good = "skip"\ntags = ["t"]\n',  # 29-33
        encoding="utf-8",
    )
    errors = [(Path(e.path).name, e.line, e.reason) for e in check_folder(tmp_path)]
    reasons = "\n".join(f"{line}: {reason}" for _, line, reason in errors)
    assert all(name == "10-t.toml" for name, _, _ in errors)
    assert "4: word list name 'Bad'" in reasons
    assert "7: word list 'odd': 'zh' must be a list of strings" in reasons
    assert "7: word list 'odd': 'reach' must be" in reasons
    assert "7: word list 'odd': unknown key 'colour'" in reasons
    assert "word list 'loop' refers to itself" in reasons
    assert "17: rule 'r': unknown word list '@nope' in 'any'" in reasons
    assert "18: rule 'r': unknown word list '@missing' in 'not_after'" in reasons
    assert "19: unknown key 'if_weather' in rule 'r': no word list 'weather'" in reasons
    assert "20: rule 'r': 'if_good' must be a priority (P1..P4) or \"skip\"" in reasons
    assert "26: rule 's': 'if_good' lowers the priority, but the rule sets none" in reasons
    assert "32: rule 'u': 'if_good' reads the clause around a hit of 'any'" in reasons


def test_old_rule_files_load_unchanged(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, '[[rule]]\nname = "a"\nany = ["宕机"]\npriority = "P1"\n')
    assert rs.rules[0].context is None
    assert prio(rs, "并没有宕机？") == "P1"  # no context asked for: the keyword alone decides


# -- not_after: negation ------------------------------------------------------

@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("邮件服务器并没有宕机", "P3"),
        ("服务器没有出现过任何宕机", "P3"),            # 5 words between: within reach
        ("没有备份，服务器宕机了", "P1"),               # another clause
        ("没有人通知我们就突然发现系统又出现了宕机", "P1"),  # further than the window
        ("没有预警，但是机房宕机", "P1"),               # a comma ends the clause
        ("没有预警但是机房宕机", "P1"),                 # 但是 ends the negation's reach
        ("无线网络宕机", "P1"),                          # 无 in 无线 is no negation
        ("用户无法登录导致服务宕机", "P1"),              # 无 in 无法 is no negation
        ("The server is not down.", "P3"),
        ("The server is down, not slow.", "P1"),
        ("Never had an outage before, but today the mail server is down", "P1"),
    ],
)
def test_negation(tmp_path: Path, body: str, expected: str) -> None:
    assert prio(ruleset(tmp_path, OUTAGE), body) == expected


def test_negated_match_is_listed_with_clause_and_reason(tmp_path: Path) -> None:
    result = run(ruleset(tmp_path, OUTAGE), "您好，邮件服务器并没有宕机，只是收信偶尔延迟几分钟")
    assert result.priority == "P3" and result.matches == () and result.tags == ()
    (d,) = result.discounted
    assert (d.rule, d.keyword, d.discounted, d.because, d.priority, d.rule_priority) == (
        "outage", "宕机", "negated", "并没有", None, "P1"
    )
    assert d.clause == "邮件服务器并没有宕机"
    lines = result.explain()
    assert lines[0] == "no rule matched"
    assert lines[1] == "not counted: rule outage (10-t.toml): body contains '宕机': negated ('并没有')"
    assert lines[2] == "    in: 邮件服务器并没有宕机"
    data = json.loads(format_result(result, as_json=True))
    assert data["matches"] == []
    assert data["discounted"][0]["clause"] == "邮件服务器并没有宕机"
    assert data["discounted"][0]["discounted"] == "negated"


# -- if_<list>: question, past, single ----------------------------------------

@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("发电机切换时会不会造成机房宕机？一般要多久？", "P4"),
        ("系统宕机了？", "P4"),                               # a clause ending in '?'
        ("系统宕机了，能派人来吗？", "P1"),                   # the question is another clause
        ("系统宕机了怎么办", "P1"),                           # 怎么办 pleads, it does not ask
        ("为什么系统又宕机了？", "P1"),                       # why: the outage is real
        ("How long will the UPS last if the power goes down?", "P4"),
        ("Why is the mail server down again?", "P1"),
    ],
)
def test_question(tmp_path: Path, body: str, expected: str) -> None:
    assert prio(ruleset(tmp_path, OUTAGE), body) == expected


def test_lowered_match_sets_only_its_priority(tmp_path: Path) -> None:
    result = run(ruleset(tmp_path, OUTAGE), "请问服务器宕机后数据会丢吗")
    assert result.priority == "P4" and result.tags == ()  # the tag "outage" is not applied
    (m,) = result.matches
    assert (m.priority, m.rule_priority, m.discounted, m.because) == ("P4", "P1", "question", "请问")
    assert m.applied == ("priority",)
    assert m.explain() == (
        "rule outage (10-t.toml): body contains '宕机' -> priority P4 (P1 lowered: in a question ('请问')),"
        " tags outage (not applied)"
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("上个月我们的服务器宕机过两次，请提供报告", "P3"),
        ("上个月台风期间停电，UPS没撑住，机房宕机", "P3"),   # the time reaches the whole sentence
        ("上次修好的服务器今天又宕机了", "P1"),                 # 又: it is back
        ("上次的宕机问题已经解决了，但是今天机房又宕机", "P1"),
        ("Last week's outage: please send the root cause analysis.", "P3"),
        ("The outage last week was fixed but the server is down again.", "P1"),
    ],
)
def test_past(tmp_path: Path, body: str, expected: str) -> None:
    assert prio(ruleset(tmp_path, OUTAGE), body) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("前台一台电脑偶尔宕机，其他都正常", "P3"),
        ("一台服务器宕机导致全公司停工", "P1"),            # except: it hits more than one
        ("不是所有人都受影响，只有财务的电脑宕机", "P3"),  # 所有 inside 不是所有 does not cancel it
        ("One user reports the CRM is down.", "P3"),
    ],
)
def test_single(tmp_path: Path, body: str, expected: str) -> None:
    assert prio(ruleset(tmp_path, OUTAGE), body) == expected


def test_least_severe_discount_wins_and_never_raises(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, OUTAGE)
    assert prio(rs, "请问一台电脑宕机怎么处理") == "P4"  # question P4 and single P3: P4
    rs2 = ruleset(tmp_path, LISTS + '[[rule]]\nname = "slow"\nany = ["很慢"]\nif_single = "P1"\npriority = "P3"\n')
    assert prio(rs2, "一台电脑很慢") == "P3"  # if_<list> lowers, it never raises


def test_skip_and_tags_only_rules(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, LISTS + """
[[rule]]
name = "on-call"
any = ["宕机"]
if_question = "skip"
tags = ["on-call"]
""")
    assert run(rs, "服务器宕机了").tags == ("on-call",)
    result = run(rs, "服务器会不会宕机？")
    assert result.tags == () and result.discounted[0].discounted == "question"


def test_best_hit_is_the_evidence(tmp_path: Path) -> None:
    result = run(ruleset(tmp_path, OUTAGE), "请问会不会宕机？另外，我们的机房现在宕机了")
    (m,) = result.matches
    assert (m.priority, m.discounted, m.clause) == ("P1", None, "我们的机房现在宕机了")


# -- near: combinations -------------------------------------------------------

SCOPE = LISTS + """
[[rule]]
name = "everything-fails"
any = ["@failure"]
near = ["@scope"]
not_after = ["@negation"]
if_question = "P4"
if_single = "P3"
priority = "P1"
"""


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("三个营业厅的排队叫号机全部停了，客户都在大厅等着", "P1"),
        ("所有分机，都打不出去", "P1"),                       # scope reaches the sentence
        ("所有分机正常。三楼的传真打不出", "P3"),             # not the same sentence
        ("打印机打不出", "P3"),                               # a failure alone: no scope
        ("并没有全部停了", "P3"),                             # the failure is negated
        ("不是全部分机都打不出", "P3"),                       # the scope word is negated
        ("每次所有页面都打不出来", "P3"),                     # 每次 cancels the scope
        ("The entire office cannot print.", "P1"),
        ("Every time I print, the job is down", "P3"),
    ],
)
def test_near_scope(tmp_path: Path, body: str, expected: str) -> None:
    assert prio(ruleset(tmp_path, SCOPE), body) == expected


def test_near_literal_words(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, '[[rule]]\nname = "r"\nany = ["offline"]\nnear = ["controller", "plc"]\npriority = "P1"\n')
    assert prio(rs, "Urgent: production line controller offline") == "P1"
    assert prio(rs, "The printer is offline") == "P3"


# -- severity beats an ignore route ---------------------------------------------

SPAM = OUTAGE + """
[[rule]]
name = "question"
any = ["请问"]
priority = "P4"

[[rule]]
name = "spam"
any = ["广告", "退订"]
category = "spam"
route = "ignore"
tags = ["spam"]
"""


def test_severity_beats_ignore(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, SPAM)
    outage = run(rs, "我们的广告投放系统从早上开始宕机")
    assert (outage.priority, outage.route, outage.category, outage.tags) == ("P1", "support", "general", ("outage",))
    (aside,) = outage.discounted
    assert (aside.rule, aside.discounted, aside.because) == ("spam", "severity", "outage")
    assert "set aside: a fault was found ('outage')" in "\n".join(outage.explain())
    assert run(rs, "促销活动，回复TD退订").route == "ignore"
    assert run(rs, "告别宕机？新品广告，回复TD退订").route == "ignore"  # a question is no fault
    assert run(rs, "请问广告怎么投放，退订").route == "ignore"  # P4 (a question) does not block


# -- clauses and line breaks ----------------------------------------------------

def test_fold_text_keeps_line_breaks_that_end_something() -> None:
    assert fold_text("故障现象：全校断网\n要求到场时间：尽快") == "故障现象:全校断网\n要求到场时间:尽快"
    long = "This is a long English line that the mail client wrapped at about seventy"
    assert fold_text(long + "\ncolumns.") == long.casefold() + " columns."  # a hard wrap is joined
    assert fold_text("系统宕机\n\n此致") == "系统宕机\n此致"
    assert fold_text("ＳＹＳＴＥＭ　ＤＯＷＮ isn’t") == "system down isn't"


def test_line_break_ends_a_clause(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, OUTAGE)
    assert prio(rs, "没有\n宕机了") == "P1"
    assert prio(rs, "请问\n系统宕机") == "P1"


def test_clause_marks_and_word_boundaries_next_to_cjk(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, OUTAGE)
    result = run(rs, "版本1,000的系统：服务器down了。下载download不算")
    (m,) = result.matches
    assert m.keyword == "down" and m.clause == "服务器down了"
    assert prio(rs, "café down") == "P1" and prio(rs, "cafédown") == "P3"
    assert prio(rs, "v2.3.1 系统宕机") == "P1"


def test_regex_rule_reports_its_clause(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, '[[rule]]\nname = "ticket"\nregex = \'inc\\d{4}\'\ntags = ["t"]\n')
    (m,) = run(rs, "您好，请看一下，工单INC1234已经三天了").matches
    assert m.kind == "regex" and m.clause == "工单inc1234已经三天了"


def test_regex_with_context(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, LISTS + """
[[rule]]
name = "waiting"
regex = '都在[^,.;!?。，；！？]{0,4}等'
not_after = ["@negation"]
if_question = "P4"
priority = "P1"
""")
    assert prio(rs, "客户都在大厅等着") == "P1"
    assert prio(rs, "客户会不会都在大厅等着？") == "P4"
    (m,) = run(rs, "前台系统打不开，客户都在等").matches
    assert m.kind == "regex" and m.clause == "客户都在等"


def test_only_severity_rules_set_ignore_aside(tmp_path: Path) -> None:
    (tmp_path / "05-sales.toml").write_text(
        '[[rule]]\nname = "feature"\nany = ["新功能"]\npriority = "P3"\n'
        'category = "feature-request"\nroute = "sales"\n', encoding="utf-8")
    rs = ruleset(tmp_path, SPAM)
    # a P3 match of a rule that routes mail itself is no fault: the spam rule still counts
    result = run(rs, "新功能上线，限时优惠，回复TD退订")
    assert result.discounted == ()
    assert [m.rule for m in result.matches] == ["feature", "spam"]
    assert (result.route, result.category) == ("sales", "feature-request")  # the first route wins, as before


def test_a_match_on_a_mark_shows_the_clause_it_ends(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, '[[rule]]\nname = "asks"\nregex = \'\\?(?![a-z0-9_=&%/])\'\npriority = "P4"\n')
    (m,) = run(rs, "您好，请问机房的温度多少合适？谢谢").matches
    assert m.clause == "请问机房的温度多少合适"
    assert run(rs, "see http://x.cn/a?id=3 thanks").matches == ()


# -- vocabulary classes, 'with' words, reach "message", subject and body -----

CLASSES = """
[lists.failure]
zh = ["{登|连|付}{不了|不上}"]
en = ["{cannot|can't} {connect|log in}"]

[lists.others_fine]
reach = "message"
zh = ["其他", "别的"]
en = ["other"]
with = ["正常", "没问题", "fine"]
except = ["也不"]

[lists.hypothetical]
zh = ["万一", "如果"]

[[rule]]
name = "everyone-fails"
any = ["@failure", "宕机"]
if_others_fine = "P2"
if_hypothetical = "P4"
priority = "P1"
"""


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("用户全部付不了款", "P1"),  # 付 + 不了, from the braces
        ("ERP连不上了", "P1"),
        ("登不进去", "P3"),  # 不进 is not among the alternatives
        ("We cannot connect to the ERP", "P1"),
        ("can't log in since nine", "P1"),
    ],
)
def test_braces_stand_for_every_combination(tmp_path: Path, body: str, expected: str) -> None:
    assert prio(ruleset(tmp_path, CLASSES), body) == expected


def test_braces_in_rule_keywords_and_explanations_show_the_word_found(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, '[[rule]]\nname = "r"\nany = ["订单量{掉到零|归零}"]\npriority = "P1"\n')
    (m,) = run(rs, "今天订单量归零了").matches
    assert m.keyword == "订单量归零"
    assert rs.keyword_count == 2


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # "其他" counts only with a "with" word in its own clause, anywhere in the mail
        ("二楼的电脑都连不上。\n\n其他楼层正常。", "P2"),
        ("二楼的电脑都连不上，其他楼层也不正常", "P1"),  # except: the others fail too
        ("ERP连不上，其他办法都试过了", "P1"),  # 其他 without a "with" word
        ("The second floor cannot connect. The other floors are fine.", "P2"),
    ],
)
def test_with_words_and_message_reach(tmp_path: Path, body: str, expected: str) -> None:
    assert prio(ruleset(tmp_path, CLASSES), body) == expected


def test_a_keyword_in_subject_and_body_is_read_in_the_body(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, CLASSES)
    result = run(rs, "想问一下，万一服务器宕机了，我们应该先做什么", subject="宕机怎么办")
    assert result.priority == "P4"
    (m,) = result.matches
    assert (m.field, m.discounted, m.because) == ("body", "hypothetical", "万一")
    # a subject keyword the body does not repeat still counts
    assert prio(rs, "请尽快派人", subject="服务器宕机") == "P1"


def test_message_lists_read_subject_and_body_together(tmp_path: Path) -> None:
    # The subject is a title: whether the rest runs is told in the body.
    rs = ruleset(tmp_path, CLASSES)
    result = run(rs, "SD-WAN的电信线路断了，其他线路正常。", subject="ERP连不上")
    assert result.priority == "P2"
    (m,) = result.matches
    assert (m.field, m.discounted, m.because) == ("subject", "others_fine", "其他")
    # ... and an except word in the body's clause still cancels it
    assert prio(rs, "其他的也不正常", subject="ERP连不上") == "P1"
    # lists of a narrower reach stay in the subject
    assert prio(rs, "万一停电怎么办", subject="ERP连不上") == "P1"
    # ... and the other way round: the subject tells of the body's hit
    assert prio(rs, "二楼的电脑都连不上", subject="其他楼层正常") == "P2"


def test_reach_before_reads_the_sentence_up_to_the_hit(tmp_path: Path) -> None:
    # A log mark heads the line it marks; an error code quoted after the
    # customer's own words does not make them a log line.
    rs = ruleset(tmp_path, CLASSES + '[lists.log]\nreach = "before"\nen = ["ora-", "[error]"]\n'
                 + '\n[[rule]]\nname = "crash"\nany = ["crashed"]\nif_log = "P3"\npriority = "P1"\n')
    assert prio(rs, "The ERP database crashed: 'ORA-00600 internal error'.") == "P1"
    assert prio(rs, "2026-03-09 22:41:07 [ERROR] ORA-00600: instance crashed") == "P3"
    assert prio(rs, "[ERROR] something happened. The ERP database crashed.") == "P1"  # another sentence


def test_a_line_starting_with_a_time_stamp_is_a_log_line(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, '[lists.log]\nreach = "before"\nen = ["[error]"]\n'
                 + '\n[[rule]]\nname = "battery"\nany = ["on battery"]\nif_log = "P3"\npriority = "P2"\n')
    result = run(rs, "面板上看到的是：\n05/14 19:42:07 On Battery - Input voltage out of range\n")
    assert result.priority == "P3"
    assert result.matches[0].because == "time stamp"
    assert prio(rs, "2026-03-09T22:41:07 UPS on battery") == "P3"
    # a time to the minute is prose: "10:15 the UPS went on battery"
    assert prio(rs, "10:15 the UPS went on battery and still is") == "P2"


def test_reach_message_and_with_are_checked(tmp_path: Path) -> None:
    errors = check_folder(_folder(tmp_path, '[lists.x]\nzh = ["a"]\nreach = "page"\n'))
    assert any("'reach' must be" in e.reason and "message" in e.reason for e in errors)
    errors = check_folder(_folder(tmp_path, '[lists.x]\nzh = ["a"]\nwith = "b"\n'))
    assert any("'with' must be a list of strings" in e.reason for e in errors)


def _folder(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / f"f{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    (folder / "10-t.toml").write_text(text, encoding="utf-8")
    return folder
