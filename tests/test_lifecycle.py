"""Issue 13: the case lifecycle as one state machine; every change re-plans the clock.

Each test is one finding of the issue, driven through the real pipeline and
sweeps with a controlled clock (tests/sla_support.py).
"""

from __future__ import annotations

from sla_support import (
    CUSTOMER, ENGINEER, MANAGER, SOURCE, STAFF, SUPERVISOR, Clock, body_of, case_of, deliver, events, ingest, mail,
    make_app, sh, staff_reply, summary, sweep_and_send, timers_of,
)

from casegate.daemon.inbound import Inbound
from casegate.storage.models import SurveyResponse

P1_TEXT = "您好，我们的核心服务器宕机了，业务全部中断。"
P3_TEXT = "打印服务偶尔报错，其他功能正常。"
P2_TEXT = "系统性能严重下降，部分功能故障。"
SECOND_ENGINEER = "li.na@desk.example.cn"


def subjects(msgs) -> list[tuple[str, str]]:
    return sorted(summary(msgs))


def escalated_to(msgs) -> list[str]:
    return sorted(to for to, subject in summary(msgs) if "升级通知" in subject or "Escalation" in subject)


def pending(app, number: str) -> list[tuple[str, int]]:
    return sorted((t.kind, t.step) for t in timers_of(app, number) if t.done_at is None)


# -- finding 1: a priority change re-plans ------------------------------------------------------


def test_priority_downgrade_cancels_p1_escalations_and_updates(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 11, 4, 10, 0))  # Wednesday
    app = make_app(tmp_path, smtp_sink, clock)
    number = ingest(app, mail(body=P1_TEXT))
    assert case_of(app, number).priority == "P1"
    deliver(app, smtp_sink)
    sweep_and_send(app, smtp_sink, clock, sh(2026, 11, 4, 10, 1))
    clock.set(sh(2026, 11, 4, 10, 10))
    staff_reply(app, number, "#priority P4\n#note only a question, not an outage")
    deliver(app, smtp_sink)
    # Nothing of P1's matrix or hourly updates is left; P4 has neither.
    later = sweep_and_send(app, smtp_sink, clock, sh(2026, 11, 4, 13, 0))
    assert escalated_to(later) == []
    assert not any("处理进展通报" in s for _, s in summary(later))
    assert not [k for k, _ in pending(app, number) if k in ("escalation", "status_update")]
    replans = events(app, number, "replanned")
    assert replans and replans[-1][1] == "priority:P1->P4"


def test_priority_raise_folds_overdue_steps_into_one_notice_now(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 11, 4, 9, 0))
    app = make_app(tmp_path, smtp_sink, clock)
    number = ingest(app, mail(subject="打印服务偶尔报错", body=P3_TEXT))
    assert case_of(app, number).priority == "P3"
    deliver(app, smtp_sink)
    assert escalated_to(sweep_and_send(app, smtp_sink, clock, sh(2026, 11, 4, 11, 0))) == [ENGINEER]  # P3: 2 h
    clock.set(sh(2026, 11, 4, 12, 0))
    staff_reply(app, number, "#priority P1\n#note all branches affected")
    deliver(app, smtp_sink)
    # P1's 30 min (engineer) was told already; 1 h and 2 h are overdue: one notice, to the manager, now.
    assert escalated_to(sweep_and_send(app, smtp_sink, clock, sh(2026, 11, 4, 12, 0))) == [MANAGER]
    # P1's hourly status update is planned from the change.
    msgs = sweep_and_send(app, smtp_sink, clock, sh(2026, 11, 4, 13, 0))
    assert any("处理进展通报" in s for _, s in summary(msgs))


# -- finding 2: courtesy replies never reopen ---------------------------------------------------


def _resolve_and_close(app, sink, clock, number: str) -> None:
    clock.set(sh(2026, 11, 4, 10, 20))
    staff_reply(app, number, "#status resolved\n已更换故障电源模块，系统恢复运行。")
    deliver(app, sink)
    sweep_and_send(app, sink, clock, clock.now)
    clock.set(sh(2026, 11, 4, 11, 0))
    ingest(app, mail(subject=f"Re: [{number}] 请确认问题是否已解决", body="确认已解决，可以关闭。"))
    deliver(app, sink)
    assert case_of(app, number).status == "closed"


def test_thanks_after_closure_does_not_reopen(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 11, 4, 10, 0))
    app = make_app(tmp_path, smtp_sink, clock)
    number = ingest(app, mail(body=P1_TEXT))
    deliver(app, smtp_sink)
    _resolve_and_close(app, smtp_sink, clock, number)
    clock.set(sh(2026, 11, 4, 12, 0))
    res = app.pipeline.ingest(Inbound(mail(subject=f"Re: [{number}] 案例已关闭", body="好的，谢谢！"), SOURCE))
    assert res.outcome == "reply" and res.case_number == number
    assert case_of(app, number).status == "closed"
    later = sweep_and_send(app, smtp_sink, clock, sh(2026, 11, 4, 15, 0))
    assert not any("处理进展通报" in s for _, s in summary(later))
    assert events(app, number, "reopened") == []


# -- finding 3: recurrence both ways --------------------------------------------------------------


def test_recurrence_on_resolved_case_reopens_and_restarts_the_clock(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 11, 4, 10, 0))
    app = make_app(tmp_path, smtp_sink, clock)
    number = ingest(app, mail(body=P1_TEXT))
    deliver(app, smtp_sink)
    clock.set(sh(2026, 11, 4, 10, 10))
    staff_reply(app, number, "#status resolved\n重启后已恢复。")
    deliver(app, smtp_sink)
    sweep_and_send(app, smtp_sink, clock, clock.now)
    clock.set(sh(2026, 11, 4, 14, 0))
    ingest(app, mail(subject=f"Re: [{number}] 请确认问题是否已解决", body="又断网了，还是不能上网！"))
    deliver(app, smtp_sink)
    case = case_of(app, number)
    assert case.status == "open" and case.resolved_at is None
    assert [a for a, _ in events(app, number, "reopened")] == ["reopened"]
    # A new round: first response due 14:30, escalation from 14:00 level by level.
    assert sweep_and_send(app, smtp_sink, clock, sh(2026, 11, 4, 14, 29)) == []
    assert escalated_to(sweep_and_send(app, smtp_sink, clock, sh(2026, 11, 4, 14, 30))) == [ENGINEER]
    assert ("sla-breached", "first_response") in events(app, number, "sla-breached")
    assert escalated_to(sweep_and_send(app, smtp_sink, clock, sh(2026, 11, 4, 15, 0))) == [SUPERVISOR]
    # Never asked to rate a service that did not hold.
    assert not any("评分" in s for _, s in summary(sweep_and_send(app, smtp_sink, clock, sh(2026, 11, 8, 10, 0))))


def test_courtesy_reply_on_resolved_case_is_no_recurrence(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 11, 4, 10, 0))
    app = make_app(tmp_path, smtp_sink, clock)
    number = ingest(app, mail(body=P1_TEXT))
    deliver(app, smtp_sink)
    clock.set(sh(2026, 11, 4, 10, 10))
    staff_reply(app, number, "#status resolved\n重启后已恢复。")
    clock.set(sh(2026, 11, 4, 11, 0))
    ingest(app, mail(subject=f"Re: [{number}] 请确认问题是否已解决", body="好的，谢谢！"))
    assert case_of(app, number).status == "resolved"


# -- finding 4: P1 and P2 on the 7x24 clock; promises say which kind of time ---------------------------


def test_p2_friday_evening_escalates_the_same_evening(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 10, 9, 18, 0))  # Friday 18:00
    app = make_app(tmp_path, smtp_sink, clock)
    number = ingest(app, mail(subject="系统性能严重下降", body=P2_TEXT))
    assert case_of(app, number).priority == "P2"
    ack = [m for m in deliver(app, smtp_sink) if CUSTOMER in str(m["To"])]
    body = body_of(ack[0])
    assert "2 小时内" in body and "工作小时" not in body and "2026-10-09 20:00" in body
    assert escalated_to(sweep_and_send(app, smtp_sink, clock, sh(2026, 10, 9, 19, 0))) == [ENGINEER]


def test_p2_reported_during_national_day_escalates_that_day(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 10, 3, 10, 0))  # Saturday 3 October, a holiday
    app = make_app(tmp_path, smtp_sink, clock)
    number = ingest(app, mail(subject="系统性能严重下降", body=P2_TEXT))
    assert case_of(app, number).priority == "P2"
    deliver(app, smtp_sink)
    assert escalated_to(sweep_and_send(app, smtp_sink, clock, sh(2026, 10, 3, 10, 59))) == []
    assert escalated_to(sweep_and_send(app, smtp_sink, clock, sh(2026, 10, 3, 11, 0))) == [ENGINEER]
    assert escalated_to(sweep_and_send(app, smtp_sink, clock, sh(2026, 10, 3, 12, 0))) == [SUPERVISOR]
    at_two = sweep_and_send(app, smtp_sink, clock, sh(2026, 10, 3, 14, 0))
    assert escalated_to(at_two) == [MANAGER]
    assert any("处理进展通报" in s for _, s in summary(at_two))  # every 4 h, holiday or not


def test_p4_promise_is_in_working_hours_with_the_real_deadline(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 11, 4, 16, 0))  # Wednesday 16:00
    app = make_app(tmp_path, smtp_sink, clock)
    number = ingest(app, mail(subject="咨询", body="请问如何修改打印机的默认纸张设置？"))
    assert case_of(app, number).priority == "P4"
    ack = [m for m in deliver(app, smtp_sink) if CUSTOMER in str(m["To"])]
    body = body_of(ack[0])
    assert "24 个工作小时内" in body and "1 天内" not in body
    assert "2026-11-09 17:30" in body  # Wed 16:00 + 24 working hours = Monday 17:30


# -- finding 6: feature requests ---------------------------------------------------------------


def test_feature_request_has_its_own_series_and_no_fault_sla(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 11, 4, 10, 0))
    app = make_app(tmp_path, smtp_sink, clock)
    fault = ingest(app, mail(body=P1_TEXT))
    feature = ingest(app, mail(subject="新功能需求", body="希望系统增加报表导出功能，能否在下个版本加入这个新功能？"))
    assert fault.startswith("SR-2026-") and feature == "XQ-2026-000001"
    assert case_of(app, feature).queue == "sales"
    deliver(app, smtp_sink)
    msgs = sweep_and_send(app, smtp_sink, clock, sh(2026, 11, 6, 10, 0))
    assert all(feature not in s for _, s in summary(msgs))
    assert {k for k, _ in pending(app, feature)} <= {"first_response"}


# -- finding 7: escalation to the assignee first; #eta; #plan -----------------------------------


def test_first_escalation_reaches_the_assignee_only(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 11, 4, 10, 0))
    staff = [*STAFF, {"name": "Li Na", "email": SECOND_ENGINEER, "role": "service-engineer"}]
    app = make_app(tmp_path, smtp_sink, clock, staff=staff)
    number = ingest(app, mail(body=P1_TEXT))
    assert case_of(app, number).assignee == ENGINEER
    deliver(app, smtp_sink)
    assert escalated_to(sweep_and_send(app, smtp_sink, clock, sh(2026, 11, 4, 10, 30))) == [ENGINEER]


def test_status_update_states_priority_and_the_engineers_eta(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 11, 4, 10, 0))
    app = make_app(tmp_path, smtp_sink, clock)
    number = ingest(app, mail(body=P1_TEXT))
    deliver(app, smtp_sink)
    clock.set(sh(2026, 11, 4, 10, 5))
    staff_reply(app, number, "#eta 2026-11-04 16:00\n#note parts on the way")
    updates = [m for m in sweep_and_send(app, smtp_sink, clock, sh(2026, 11, 4, 11, 0))
               if "处理进展通报" in str(m["Subject"])]
    body = body_of(updates[0])
    assert "优先级：  P1（" in body and "预计解决时间：2026-11-04 16:00（北京时间）（工程师预计）" in body


def test_plan_meets_the_complaint_plan_deadline(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 11, 4, 10, 0))
    app = make_app(tmp_path, smtp_sink, clock)
    number = ingest(app, mail(subject="投诉", body="我要投诉你们的工程师，服务态度太差，多次催促没人理。"))
    assert case_of(app, number).category == "complaint"
    deliver(app, smtp_sink)
    sweep_and_send(app, smtp_sink, clock, sh(2026, 11, 4, 10, 1))
    clock.set(sh(2026, 11, 4, 11, 0))
    staff_reply(app, number, "#plan 明天上午由主管上门道歉并重新安排工程师\n非常抱歉，我们明天上午上门处理。")
    deliver(app, smtp_sink)
    sweep_and_send(app, smtp_sink, clock, sh(2026, 11, 5, 10, 0))
    complaint_notices = [e for e in case_of(app, number).events
                         if e.action == "escalated" and "complaint_deadline" in (e.detail or "")]
    assert complaint_notices == []  # neither respond (answered) nor plan (given) was missed
    plan = [t for t in timers_of(app, number) if t.kind == "complaint" and t.step == 1]
    assert plan and plan[-1].outcome.startswith("cancelled")


# -- finding 9: numbers and times in the service time zone --------------------------------------


def test_new_year_in_beijing_is_numbered_in_the_new_series(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2027, 1, 1, 0, 30))
    app = make_app(tmp_path, smtp_sink, clock)
    assert ingest(app, mail(body=P1_TEXT)).startswith("SR-2027-")


# -- finding 11: activities ------------------------------------------------------------------


def test_activities_are_recorded_with_time_spent(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 11, 4, 10, 0))
    app = make_app(tmp_path, smtp_sink, clock)
    number = ingest(app, mail(body=P1_TEXT))
    clock.set(sh(2026, 11, 4, 12, 0))
    staff_reply(app, number, "#onsite 2h 更换电源模块\n#note on site")
    staff_reply(app, number, "#电话 20分钟 与客户确认恢复")
    case = case_of(app, number)
    acts = [e for e in case.events if e.action == "activity"]
    assert [(e.new, __import__("json").loads(e.detail)["minutes"]) for e in acts] == [
        ("更换电源模块", 120), ("与客户确认恢复", 20)]


# -- finding 8: a new need in a follow-up answer opens a linked feature request ------------------


def test_new_need_in_followup_answer_opens_a_linked_feature_request(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 11, 4, 10, 0))
    app = make_app(tmp_path, smtp_sink, clock)
    number = ingest(app, mail(body=P1_TEXT))
    deliver(app, smtp_sink)
    _resolve_and_close(app, smtp_sink, clock, number)
    followup = [m for m in sweep_and_send(app, smtp_sink, clock, sh(2026, 11, 5, 11, 0)) if "服务回访" in str(m["Subject"])]
    assert len(followup) == 1
    clock.set(sh(2026, 11, 5, 14, 0))
    res = app.pipeline.ingest(Inbound(mail(subject=f"Re: [{number}] 服务回访", body="4分，没有再出现。希望增加报表导出功能。"),
                                      SOURCE))
    assert res.outcome == "reply" and res.case_number == number
    msgs = deliver(app, smtp_sink)
    old = case_of(app, number)
    assert old.status == "closed"  # a new need is not a recurrence
    new_number = dict(events(app, number, "new-need"))["new-need"]
    assert new_number == "XQ-2026-000001"  # the feature requests' own series
    new = case_of(app, new_number)
    assert (new.category, new.queue, new.linked_case_id, new.status) == ("feature-request", "sales", old.id, "new")
    # The customer learns the new number; the engineer taking the sales queue is told of a new case.
    assert sorted(to for to, s in summary(msgs) if new_number in s) == sorted([CUSTOMER, ENGINEER])
    ack = next(m for m in msgs if CUSTOMER in str(m["To"]) and new_number in str(m["Subject"]))
    assert "2 个工作日" in body_of(ack)
    # No fault SLA: a first answer within 2 working days, nothing else, and no escalation ever.
    later = sweep_and_send(app, smtp_sink, clock, sh(2026, 11, 12, 10, 0))
    assert all(new_number not in s for _, s in summary(later) if "升级" in s or "Escalation" in s)
    assert {t.kind for t in timers_of(app, new_number)} == {"first_response"}
    with app.db.session() as s:
        answers = [(r.kind, r.score) for r in s.query(SurveyResponse).all()]
    assert answers == [("followup", 4)]


def test_the_score_is_asked_after_confirmation_and_not_again_once_given(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 11, 4, 10, 0))
    app = make_app(tmp_path, smtp_sink, clock)
    scored = ingest(app, mail(body=P1_TEXT))
    silent = ingest(app, mail(sender="lisi@customer.cn", subject="机房网络全部中断", body="机房网络全部中断，所有业务停止。"))
    deliver(app, smtp_sink)
    clock.set(sh(2026, 11, 4, 10, 20))
    staff_reply(app, silent, "#status resolved\n核心交换机已更换。")
    confirm = [m for m in sweep_and_send(app, smtp_sink, clock, clock.now) if "请确认" in str(m["Subject"])]
    assert confirm and "评分" not in body_of(confirm[0]) and "满意度" not in body_of(confirm[0])  # not before closing
    _resolve_and_close(app, smtp_sink, clock, scored)
    survey = [m for m in smtp_sink.received if scored in str(m.message["Subject"]) and "评分" in str(m.message["Subject"])]
    assert "为本次服务评分（1-5 分）" in body_of(survey[-1].message)
    clock.set(sh(2026, 11, 4, 12, 0))
    ingest(app, mail(subject=f"Re: [{scored}] 案例已关闭，请为我们的服务评分", body="5分"))
    sent = [m for when in (sh(2026, 11, 5, 11, 0), sh(2026, 11, 7, 10, 20), sh(2026, 11, 9, 10, 0))
            for m in sweep_and_send(app, smtp_sink, clock, when)]
    followups = [m for m in sent if "服务回访" in str(m["Subject"])]
    by_case = {n: [body_of(m) for m in followups if n in str(m["Subject"])] for n in (scored, silent)}
    assert by_case[scored] and all("满意度" not in b and "故障是否再次出现" in b for b in by_case[scored])
    # The silent customer's case closed after 3 days of silence: its follow-up asks for the score.
    assert by_case[silent] and all("满意度（1-5 分" in b for b in by_case[silent])


# -- finding 5: resolution targets are timers that escalate on breach ------------------------------


def test_missed_resolution_targets_reach_the_supervisor(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 11, 4, 10, 0))
    app = make_app(tmp_path, smtp_sink, clock)
    number = ingest(app, mail(body=P1_TEXT))
    deliver(app, smtp_sink)
    clock.set(sh(2026, 11, 4, 10, 10))
    staff_reply(app, number, "您好，我们正在处理。")

    def targets(when) -> list[tuple[str, str]]:
        return [(to, s.split("（")[1].split("）")[0]) for to, s in summary(sweep_and_send(app, smtp_sink, clock, when))
                if "解决目标已超时" in s]

    assert targets(sh(2026, 11, 4, 13, 59)) == []
    assert targets(sh(2026, 11, 4, 14, 0)) == [(SUPERVISOR, "root_cause")]  # P1 root cause within 4 h
    assert targets(sh(2026, 11, 4, 18, 0)) == [(SUPERVISOR, "workaround")]  # workaround within 8 h
    clock.set(sh(2026, 11, 4, 19, 0))
    staff_reply(app, number, "#status resolved\n已更换故障硬盘。")
    assert targets(sh(2026, 11, 5, 10, 0)) == []  # the fix (24 h) was met: no notice
    assert [n for _, n in events(app, number, "sla-breached") if n.startswith("resolution")] == [
        "resolution:root_cause", "resolution:workaround"]


# -- finding 3: a recurrence after closure --------------------------------------------------------


def test_recurrence_after_closure_reopens_within_the_window_and_links_after_it(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 11, 4, 10, 0))
    app = make_app(tmp_path, smtp_sink, clock)
    number = ingest(app, mail(body=P1_TEXT))
    deliver(app, smtp_sink)
    _resolve_and_close(app, smtp_sink, clock, number)  # closed 11:00 on 4 November
    clock.set(sh(2026, 11, 6, 9, 0))
    assert ingest(app, mail(subject=f"Re: [{number}] 服务回访", body="又断网了，还是不能上网！")) == number
    deliver(app, smtp_sink)
    assert case_of(app, number).status == "open" and events(app, number, "reopened")
    # The new round: the assignee at 30 min, the supervisor at 1 h, from the reopen.
    assert escalated_to(sweep_and_send(app, smtp_sink, clock, sh(2026, 11, 6, 9, 30))) == [ENGINEER]
    assert escalated_to(sweep_and_send(app, smtp_sink, clock, sh(2026, 11, 6, 10, 0))) == [SUPERVISOR]
    clock.set(sh(2026, 11, 6, 10, 30))
    staff_reply(app, number, "#status closed\n已更换光模块。")
    # After the 14-day window the same words open a new case, linked to this one.
    clock.set(sh(2026, 11, 21, 10, 0))
    later = ingest(app, mail(subject=f"Re: [{number}] 服务回访", body="又断网了，还是不能上网！"))
    assert later != number and case_of(app, later).linked_case_id == case_of(app, number).id
    assert case_of(app, number).status == "closed"


def test_a_new_assignee_is_the_one_the_engineer_step_reaches(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 11, 4, 10, 0))
    staff = [*STAFF, {"name": "Li Na", "email": SECOND_ENGINEER, "role": "service-engineer"}]
    app = make_app(tmp_path, smtp_sink, clock, staff=staff)
    number = ingest(app, mail(body=P1_TEXT))
    deliver(app, smtp_sink)
    clock.set(sh(2026, 11, 4, 10, 10))
    staff_reply(app, number, "#assign Li Na\n#note Li Na knows this customer")
    assert case_of(app, number).assignee == SECOND_ENGINEER
    assert escalated_to(sweep_and_send(app, smtp_sink, clock, sh(2026, 11, 4, 10, 30))) == [SECOND_ENGINEER]
    assert escalated_to(sweep_and_send(app, smtp_sink, clock, sh(2026, 11, 4, 11, 0))) == [SUPERVISOR]


# -- finding 6/9: a number series per kind, year and month taken in the service's zone --------------


def test_a_kind_with_its_own_monthly_series_numbered_in_beijing_time(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 11, 30, 23, 30))
    app = make_app(tmp_path, smtp_sink, clock,
                   policy={"kinds": {"complaint": {"number_format": "TS-{year}{month:02d}-{seq:04d}"}}})
    complaint = "我要投诉你们的工程师，服务态度太差，多次催促没人理。"
    assert ingest(app, mail(subject="投诉", body=complaint)) == "TS-202611-0001"
    clock.set(sh(2026, 12, 1, 0, 30))  # still 30 November in UTC: December in Beijing
    second = ingest(app, mail(sender="lisi@customer.cn", subject="投诉", body=complaint))
    assert second == "TS-202612-0001"
    assert ingest(app, mail(body=P1_TEXT)).startswith("SR-2026-")  # faults keep the service's series
    # A reply naming the complaint's number threads onto it.
    assert ingest(app, mail(sender="lisi@customer.cn", subject=f"Re: [{second}] 投诉", body="请尽快处理。")) == second
