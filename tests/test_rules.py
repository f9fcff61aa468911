"""The shipped rules classify what customers really write.

Messages are built directly (the parser is developed separately); the
body given here is ``new_text``: quoted history already cut off.
"""

from __future__ import annotations

import json

import pytest

from casegate.parsers.message import Address, Attachment, ParsedMessage
from casegate.rules import (
    Classification,
    ClassifyInput,
    RuleSet,
    format_result,
    load_rules,
)


def make_message(
    subject: str = "",
    new_text: str = "",
    text: str | None = None,
    sender: str = "zhang.wei@example.com.cn",
    attachments: tuple[str, ...] = (),
    language: str | None = None,
) -> ParsedMessage:
    return ParsedMessage(
        message_id="m1@example.com.cn",
        in_reply_to=(),
        references=(),
        from_=Address("张伟", sender),
        reply_to=(),
        to=(Address("", "support@casegate.example"),),
        cc=(),
        subject=subject,
        date=None,
        text=new_text if text is None else text,
        new_text=new_text,
        html=None,
        attachments=tuple(Attachment(n, "application/octet-stream", b"x") for n in attachments),
        is_auto_reply=False,
        is_bounce=False,
        is_list=False,
        language=language,
    )


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return load_rules()


def classify(rules: RuleSet, subject: str = "", body: str = "", **kw: object) -> Classification:
    msg_kw = {k: kw.pop(k) for k in ("text", "sender", "attachments", "language") if k in kw}
    return rules.classify(ClassifyInput(message=make_message(subject, body, **msg_kw), **kw))


# (subject, body, priority, category or None, route or None)
CASES = [
    # --- P1, simplified Chinese
    ("系统宕机", "", "P1", "general", "support"),
    ("紧急：服务器宕机", "今天上午10点开始所有业务无法进行", "P1", None, None),
    ("核心交换机停机", "", "P1", None, None),
    ("", "我们的ERP系统从早上开始瘫痪，请马上派人", "P1", None, None),
    ("UPS故障", "机房UPS断电，设备全部停止运行", "P1", None, None),
    ("", "业务中断已经两个小时了！", "P1", None, None),
    ("呼叫中心全部中断", "", "P1", None, None),
    ("", "邮件系统服务中断", "P1", None, None),
    ("急", "系统不能用了，怎么办？", "P1", None, None),
    ("数据库无法运行", "", "P1", None, None),
    ("服务器挂了", "", "P1", None, None),
    ("", "应用程序崩溃，所有用户都受影响", "P1", None, None),
    ("OCR fax", "系 统 宕 机", "P1", None, None),
    ("", "收银系统  宕 机，门店无法营业", "P1", None, None),
    # --- P1, traditional Chinese (Taiwan / Hong Kong)
    ("系統當機", "", "P1", None, None),
    ("伺服器宕機", "請儘快處理", "P1", None, None),
    ("", "我們的業務中斷了，請立即處理", "P1", None, None),
    ("網路中斷", "全公司無法上網", "P1", None, None),
    ("系統癱瘓", "", "P1", None, None),
    ("交換機無法運行", "", "P1", None, None),
    # --- P1, English, mixed, full-width
    ("System down", "", "P1", None, None),
    ("URGENT: production SYSTEM  DOWN!", "", "P1", None, None),
    ("", "Our mail server is down since 9am.", "P1", None, None),
    ("Outage at Shanghai site", "", "P1", None, None),
    ("", "The PBX is not responding to any calls.", "P1", None, None),
    ("Application crashed", "after the update it crashed again", "P1", None, None),
    ("ＳＹＳＴＥＭ　ＤＯＷＮ", "", "P1", None, None),
    ("ERP系统down了", "请尽快处理", "P1", None, None),
    ("服务器crash", "", "P1", None, None),
    ("", "The core switch went down at 03:00", "P1", None, None),
    # --- P2
    ("系统性能严重下降", "", "P2", None, None),
    ("", "打开报表非常慢，要等好几分钟", "P2", None, None),
    ("部分功能故障", "打印模块不能用，其他正常", "P2", None, None),
    ("", "这个问题很严重，影响了财务结账", "P2", None, None),
    ("系統效能嚴重下降", "", "P2", None, None),
    ("Severe degradation of VPN", "", "P2", None, None),
    ("", "The portal is very slow since yesterday.", "P2", None, None),
    ("Ｖｅｒｙ ｓｌｏｗ response", "", "P2", None, None),
    ("Urgent", "users report packet loss on the WAN link", "P2", None, None),
    ("网络经常掉线", "", "P2", None, None),
    # --- P3
    ("间歇性断开", "", "P3", None, None),
    ("", "偶尔会出现登录失败", "P3", None, None),
    ("系统报错", "保存时提示错误代码 0x80004005", "P3", None, None),
    ("", "UPS面板出现告警", "P3", None, None),
    ("系統偶爾出現錯誤", "", "P3", None, None),
    ("Intermittent connection drops", "", "P3", None, None),
    ("", "We get an error when exporting to PDF.", "P3", None, None),
    ("Warning on the dashboard", "", "P3", None, None),
    ("数据库优化建议", "", "P3", None, None),
    ("hello", "see attached", "P3", "general", "support"),  # nothing matches: default
    # --- P4
    ("咨询", "请问如何修改管理员密码？", "P4", None, None),
    ("", "怎么配置VLAN？", "P4", None, None),
    ("软件安装", "", "P4", None, None),
    ("諮詢", "請問如何設定備份？", "P4", None, None),
    ("How to reset the password", "", "P4", None, None),
    ("Question about configuration", "", "P4", None, None),
    ("Installation of the new license", "", "P4", None, None),
    ("", "How do I download the manual?", "P4", None, None),
    ("ｈｏｗ ｔｏ export", "", "P4", None, None),
    # --- mixed severities: the most severe wins
    ("系统宕机了怎么办", "", "P1", None, None),
    ("Error: system down", "how to recover?", "P1", None, None),
    ("报错", "性能严重下降", "P2", None, None),
    # --- complaints
    ("投诉", "工程师三天都没有回复", "P3", "complaint", "support"),
    ("", "对你们的服务非常不满意", "P3", "complaint", "support"),
    ("Complaint about response time", "", "P3", "complaint", "support"),
    ("投訴：系統當機無人處理", "", "P1", "complaint", "support"),
    # --- new features -> sales
    ("新需求", "希望报表可以导出Excel", "P3", "feature-request", "sales"),
    ("", "能否增加一个批量导入功能？", "P3", "feature-request", "sales"),
    ("Feature request: SSO login", "", "P3", "feature-request", "sales"),
    ("建議新增報表功能", "", "P3", "feature-request", "sales"),
    ("投诉", "说好的新功能到现在还没有", "P3", "complaint", "support"),
    # --- spam / marketing -> ignore
    ("发票代开", "代开各类增值税发票，低价", None, "spam", "ignore"),
    ("新品推广", "欢迎选购", None, "spam", "ignore"),
    ("Spring special offer", "50% discount this week. Click here to unsubscribe.", None, "spam", "ignore"),
    ("促销活动", "回复TD退订", None, "spam", "ignore"),
    # --- words that must not trigger
    ("Download link", "Please send the download link for the firmware.", "P3", "general", "support"),
    ("", "How do I shut down the server safely?", "P4", None, None),
    ("计划停机通知", "本周六停机维护两小时", "P3", None, None),
]


def test_enough_cases() -> None:
    assert len(CASES) >= 60


@pytest.mark.parametrize(("subject", "body", "priority", "category", "route"), CASES)
def test_shipped_rules(
    rules: RuleSet, subject: str, body: str, priority: str | None, category: str | None, route: str | None
) -> None:
    result = classify(rules, subject, body)
    explain = "\n".join(result.explain())
    if priority is not None:
        assert result.priority == priority, explain
    if category is not None:
        assert result.category == category, explain
    if route is not None:
        assert result.route == route, explain


def test_quoted_history_does_not_count(rules: RuleSet) -> None:
    full = "谢谢，问题已解决。\n\n> 原邮件：系统宕机，无法运行"
    result = classify(rules, "Re: 问题", "谢谢，问题已解决。", text=full)
    assert result.priority == "P3"
    assert not any(m.priority == "P1" for m in result.matches)


def test_text_override_is_the_body(rules: RuleSet) -> None:
    result = classify(rules, "Fax from 021-5555", "", text_override="系統當機 請盡快處理", source_kind="fax")
    assert result.priority == "P1"
    assert "fax" in result.tags


def test_attachment_names_only_when_asked(rules: RuleSet) -> None:
    result = classify(rules, "日志", "见附件", attachments=("系统宕机日志.log", "error.txt"))
    assert result.priority == "P3"  # the names contain 宕机 / error, but no severity rule asks
    assert "has-logs" in result.tags  # 50-flags.toml asks for attachment_names
    has_logs = next(m for m in result.matches if m.rule == "has-logs")
    assert has_logs.field == "attachment_names" and has_logs.kind == "regex"


def test_download_is_not_down(rules: RuleSet) -> None:
    result = classify(rules, "download", "downloading the update, downloaded twice, DOWNTIME report")
    assert all(m.rule not in ("p1-down", "p1-outage") for m in result.matches)


def test_flags(rules: RuleSet) -> None:
    night = classify(rules, "系统宕机", "", outside_working_hours=True)
    assert {"after-hours", "on-call"} <= set(night.tags)
    day = classify(rules, "系统宕机", "", outside_working_hours=False)
    assert "after-hours" not in day.tags
    assert "out-of-warranty" in classify(rules, "hi", "", warranty_expired=True).tags
    assert "out-of-warranty" not in classify(rules, "hi", "", warranty_expired=None).tags
    assert "out-of-warranty" not in classify(rules, "hi", "", warranty_expired=False).tags


def test_defaults_and_language(rules: RuleSet) -> None:
    result = rules.classify(
        ClassifyInput(message=make_message("hello", "", language="en")),
        default_priority="P4",
        default_queue="helpdesk",
        default_category="misc",
    )
    assert (result.priority, result.queue, result.category, result.language) == ("P4", "helpdesk", "misc", "en")
    assert result.matches == ()
    assert result.explain()[0] == "no rule matched"


def test_explain_and_dict(rules: RuleSet) -> None:
    result = classify(rules, "系统宕机", "")
    lines = result.explain()
    assert lines[0] == "rule p1-outage (10-severity.toml): subject contains '系统宕机' -> priority P1, tags outage"
    assert lines[-1].startswith("=> priority P1")
    data = json.loads(format_result(result, as_json=True))
    assert data["priority"] == "P1"
    assert data["matches"][0]["rule"] == "p1-outage"
    assert data["matches"][0]["file"] == "10-severity.toml"
    assert format_result(result, as_json=False) == "\n".join(lines)
    first = result.matches[0]
    assert (first.rule, first.priority, first.field, first.keyword, first.file) == (
        "p1-outage", "P1", "subject", "系统宕机", "10-severity.toml"
    )


def test_complaint_not_dropped_as_spam(rules: RuleSet) -> None:
    result = classify(rules, "投诉你们的广告邮件", "")
    assert result.category == "complaint" and result.route == "support"
