"""The examples of issue 14, classified by the shipped rules as an engineer
would, each with the explanation `casegate rules test` prints."""

from __future__ import annotations

import pytest

from casegate.parsers.message import Address, ParsedMessage
from casegate.rules import Classification, ClassifyInput, RuleSet, load_rules


def make_message(subject: str, body: str) -> ParsedMessage:
    return ParsedMessage(
        message_id=None, in_reply_to=(), references=(), from_=Address("", "customer@example.cn"),
        reply_to=(), to=(Address("", "service@desk.example.cn"),), cc=(), subject=subject, date=None,
        text=body, new_text=body, html=None, attachments=(), is_auto_reply=False, is_bounce=False,
        is_list=False,
    )


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return load_rules()


def classify(rules: RuleSet, subject: str, body: str, **kw: object) -> Classification:
    return rules.classify(ClassifyInput(message=make_message(subject, body), **kw))  # type: ignore[arg-type]


def test_a_question_that_mentions_an_outage_word_is_a_question(rules: RuleSet) -> None:
    result = classify(rules, "", "发电机切换时会不会造成机房断电？一般要多久？")
    assert result.priority == "P4"
    assert "outage" not in result.tags
    lowered = [m for m in result.matches if m.rule_priority == "P1"]
    assert lowered and all(m.discounted == "question" and m.priority == "P4" for m in lowered)
    assert lowered[0].clause == "发电机切换时会不会造成机房断电"
    assert "(P1 lowered: in a question ('会不会'))" in "\n".join(result.explain())


def test_an_explicit_negation_does_not_count(rules: RuleSet) -> None:
    result = classify(rules, "", "邮件服务器并没有宕机，只是收信偶尔延迟几分钟")
    assert result.priority == "P3"
    assert not any(m.priority in ("P1", "P2") for m in result.matches)
    negated = next(m for m in result.discounted if m.rule == "p1-outage")
    assert (negated.discounted, negated.because, negated.clause) == ("negated", "并没有", "邮件服务器并没有宕机")
    assert "not counted: rule p1-outage (10-severity.toml): body contains '宕机': negated ('并没有')" in result.explain()


def test_one_machine_occasionally_is_partial(rules: RuleSet) -> None:
    result = classify(rules, "", "前台一台电脑偶尔死机，其他都正常")
    assert result.priority == "P3"
    outage = next(m for m in result.matches if m.rule == "p1-outage")
    assert outage.priority == "P3" and outage.discounted in ("single", "occasional")


def test_an_idiom_is_not_an_outage(rules: RuleSet) -> None:
    result = classify(rules, "", "our monthly usage went down last quarter")
    assert result.priority == "P3"  # nothing but the configured default: no fault, no question
    assert not any(m.priority == "P1" for m in result.matches)
    assert any(m.keyword == "down" for m in result.discounted)


def test_an_outage_told_by_its_business_effect(rules: RuleSet) -> None:
    result = classify(rules, "", "三个营业厅的排队叫号机全部停了，客户都在大厅等着")
    assert result.priority == "P1"
    assert "outage" in result.tags
    p1 = next(m for m in result.matches if m.priority == "P1")
    assert p1.clause is not None and ("停了" in p1.clause or "大厅" in p1.clause)


def test_urgent_production_line_controller_offline(rules: RuleSet) -> None:
    result = classify(rules, "Urgent: production line controller offline", "")
    assert result.priority == "P1"
    assert any(m.rule == "p1-critical-fails" and m.keyword == "offline" for m in result.matches)


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        ("广告投放系统宕机", "我们的广告投放系统从早上开始宕机，所有广告都投不出去，客户在催，请马上处理。"),
        ("Ad server down", "Our ad delivery platform is down, no campaigns are serving since 8am. Please help."),
    ],
)
def test_an_ad_system_outage_is_not_dropped_as_spam(rules: RuleSet, subject: str, body: str) -> None:
    result = classify(rules, subject, body)
    assert (result.priority, result.route) == ("P1", "support")
    if "广告" in subject:
        aside = next(m for m in result.discounted if m.rule == "spam-zh")
        assert aside.discounted == "severity"


def test_spam_that_names_an_outage_is_still_spam(rules: RuleSet) -> None:
    for subject, body in (
        ("", "【XX云】告别宕机！云服务器新用户首年99元，立即抢购>> 退订回T"),
        ("担心机房断电？", "XX牌UPS电源，工厂直销，价格优惠，全国包邮，欢迎咨询。"),
        ("Webinar: zero downtime", "Learn how to avoid network outages. Register now. To unsubscribe, click here."),
    ):
        assert classify(rules, subject, body).route == "ignore", (subject, body)


def test_the_on_call_engineer_is_not_woken_for_a_question(rules: RuleSet) -> None:
    night = classify(rules, "", "请问服务器宕机后数据能恢复吗？", outside_working_hours=True)
    assert "on-call" not in night.tags
    real = classify(rules, "", "服务器宕机了，请马上处理", outside_working_hours=True)
    assert "on-call" in real.tags and real.priority == "P1"


@pytest.mark.parametrize(
    ("subject", "body", "priority"),
    [
        ("crash course", "Is the system crash course for new admins still scheduled for May?", "P4"),  # an idiom
        ("话务台", "话务台的转接功能不能用了，来电只能在话务台接。", "P2"),  # 功能不能: no question 能不能
        ("", "The UPS in rack 4 beeps every few minutes. The display says battery test failed.", "P3"),
        ("", "One of the two power supplies in the core switch failed (amber LED).", "P2"),
        ("Printer offline", "The printer on the 2nd floor shows offline on my laptop.", "P3"),  # one device
        ("", "收银台的打印机都打不出小票，顾客排长队，请马上处理", "P1"),  # the business effect is not one device
    ],
)
def test_words_that_look_alike(rules: RuleSet, subject: str, body: str, priority: str) -> None:
    result = classify(rules, subject, body)
    assert result.priority == priority, "\n".join(result.explain())


@pytest.mark.parametrize(
    ("subject", "body", "priority", "category"),
    [
        ("", "Hi, none of our 40 users can reach the mail server this morning. Please help!", "P1", "general"),
        ("", "All calls to our hotline fail with a fast busy signal since 10:05.", "P1", "general"),
        ("", "我们医院的挂号系统进不去了，门诊大厅已经排满了人", "P1", "general"),
        ("", "Our website traffic went down after the redesign. Anything in the logs?", "P4", "general"),
        ("", "这个系统的新界面真让人崩溃，找个菜单要点半天。", "P3", "general"),
        ("", "总经理办公室的话机屏幕显示乱码，通话功能正常。", "P3", "general"),  # 的话 in 的话机: no condition
        ("", "酒店的电话全部打不出去，客人投诉不断", "P1", "general"),  # guests complain: no complaint about us
        ("Scheduled downtime", "The ERP will be unavailable on Saturday for the scheduled patch installation.",
         "P3", "general"),  # an announced installation is a notice
        ("", "麻烦帮忙把李明的分机号从8012改成8020。", "P4", "general"),
    ],
)
def test_vocabulary_found_by_the_second_held_out_set(
    rules: RuleSet, subject: str, body: str, priority: str, category: str
) -> None:
    result = classify(rules, subject, body)
    assert (result.priority, result.category) == (priority, category), "\n".join(result.explain())


@pytest.mark.parametrize(
    ("subject", "body", "priority", "reason"),
    [
        # one group of users, the rest working: P2, not P1
        ("二楼电话", "二楼整层的分机都打不出去了，其他楼层正常，二楼是销售部，客户电话接不到。", "P2", None),
        ("Accounts floor", "The whole 3rd floor (accounts) has had no network since lunch. Other floors are fine.",
         "P2", None),
        # redundancy lost while the service runs
        ("存储告警", "存储阵列有一块盘坏了，RAID5处于降级状态，业务暂时正常，但是很担心再坏一块。", "P2", None),
        # recurring, a restart cures it for a while
        ("", "OA系统每天都要死机两三次，重启服务后能用一阵，然后又不行，上班时间大家都很受影响。", "P2", None),
        # slow, not down
        ("", "服务器并没有宕机，但是ERP的查询非常慢，一张单据要等一分钟，全公司都在等。", "P2", None),
        # a retracted report, a report of an outage that is over
        ("", "昨天发邮件说系统宕机是个误会，其实是我自己电脑的网线松了，现在一切正常，这个单可以关掉。", "P3",
         "retracted"),
        ("", "前天下午电话系统中断了半小时，后来自己好了。能不能派人来做一次全面巡检，看看有没有隐患？", "P3",
         "past"),
        # 怎么也 pleads, it does not ask
        ("发电机", "昨晚试机时发现柴油发电机怎么也启动不了，现在市电正常，但万一停电就没有后备了。", "P2", None),
        # the vocabulary classes: 付不了, 不可用
        ("", "支付网关从早上开始一直返回 Connection refused，APP 上的用户全部付不了款，订单量直接掉到零。", "P1", None),
        ("紧急！！", "整个集群都不可用，线上服务全部502", "P1", None),
    ],
)
def test_p2_is_told_from_p1_and_reports_from_outages(
    rules: RuleSet, subject: str, body: str, priority: str, reason: str | None
) -> None:
    result = classify(rules, subject, body)
    explain = "\n".join(result.explain())
    assert result.priority == priority, explain
    if reason is not None:
        assert any(m.discounted == reason for m in (*result.matches, *result.discounted)), explain


def test_the_explanation_names_the_new_discounts(rules: RuleSet) -> None:
    result = classify(rules, "二楼电话", "二楼整层的分机都打不出去了，其他楼层正常")
    explain = "\n".join(result.explain())
    assert "(P1 lowered: one group of users ('二楼'))" in explain, explain
    assert "    in: 二楼整层的分机都打不出去了" in explain
    log = classify(rules, "", "2026-03-09 22:41:07 [ERROR] InnoDB: unable to lock ./ibdata1\n")
    assert "in a pasted log line ('[error]')" in "\n".join(log.explain())
