"""Done-when: a P1 case opened by e-mail on a Friday evening, through to survey and follow-ups.

Issue 13 changed this on purpose: follow-ups keep policy.followup_min_gap (1 day) from
each other and from the survey, so follow-up 1 no longer lands on the survey's day.

Every notice the default policy promises, to the right people at the right
instants (P1 runs on the wall clock; follow-ups move to working time, where
Saturday 2026-10-10 is an adjusted working day after National Day), and
nothing else. The clock is explicit; the mail goes through the real SMTP sink.
"""

from __future__ import annotations

from sla_support import (
    CUSTOMER, ENGINEER, MANAGER, SUPERVISOR, Clock, body_of, case_of, deliver, events, ingest, mail, make_app,
    sh, staff_reply, summary, sweep_and_send,
)
from sqlalchemy import select

from casegate.daemon.inbound import Inbound
from casegate.storage.models import SurveyResponse


def kinds(msgs) -> list[tuple[str, str]]:
    """(recipient, notice) with the notice named from the subject."""
    names = {"升级通知": "escalation", "Escalation": "escalation", "处理进展通报": "status-update",
             "请确认": "confirm", "评分": "survey", "服务回访": "followup", "新案例": "notify",
             "我们已收到": "ack"}
    out = []
    for to, subject in summary(msgs):
        out.append((to, next((v for k, v in names.items() if k in subject), subject)))
    return sorted(out)


def test_p1_friday_evening_lifecycle(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 10, 9, 20, 0))  # Friday evening, the day before an adjusted working Saturday
    app = make_app(tmp_path, smtp_sink, clock)
    number = ingest(app, mail(when=clock.now))
    assert case_of(app, number).priority == "P1"
    assert kinds(deliver(app, smtp_sink)) == sorted([(CUSTOMER, "ack"), (ENGINEER, "notify")])

    # The engineer answers within the 30 minutes: first response on time.
    clock.set(sh(2026, 10, 9, 20, 20))
    staff_reply(app, number, "您好，我们已远程登录检查，正在定位故障。")
    assert [to for to, _ in summary(deliver(app, smtp_sink))] == [CUSTOMER]
    assert case_of(app, number).first_response_at == clock.now

    def at(h: int, mi: int, day: int = 9, month: int = 10):
        return kinds(sweep_and_send(app, smtp_sink, clock, sh(2026, month, day, h, mi)))

    assert at(20, 29) == []
    assert at(20, 30) == [(ENGINEER, "escalation")]          # 30 min: service engineer
    assert at(20, 59) == []
    # 1 h: supervisor. The hourly status update is not due: staff wrote at 20:20.
    assert at(21, 0) == [(SUPERVISOR, "escalation")]
    assert at(21, 19) == []
    assert at(21, 20) == [(CUSTOMER, "status-update")]       # a cadence after the engineer's reply
    assert at(22, 0) == [(MANAGER, "escalation")]            # 2 h: general manager
    assert at(22, 20) == [(CUSTOMER, "status-update")]
    assert at(22, 21) == []

    # Resolution at 23:10 by the engineer's command; the customer is asked to confirm.
    clock.set(sh(2026, 10, 9, 23, 10))
    staff_reply(app, number, "#status resolved\n已更换故障电源模块，系统恢复运行。")
    assert [to for to, _ in summary(deliver(app, smtp_sink))] == [CUSTOMER]  # the engineer's text
    confirm = sweep_and_send(app, smtp_sink, clock, clock.now)
    assert kinds(confirm) == [(CUSTOMER, "confirm")]
    assert "已更换故障电源模块" in body_of(confirm[0]) and "2026-10-12 23:10" in body_of(confirm[0])
    assert at(23, 20) == []                                    # no status updates once resolved
    assert at(9, 0, day=10) == []                              # escalations all done; nothing on Saturday

    # Silence for 3 days closes the case and sends the survey. Follow-up 1 (a day after
    # resolution: Saturday 23:10 -> Monday 09:00) would come 14 h before the survey, so it
    # is moved a day after the survey (policy.followup_min_gap), into working time.
    assert at(9, 0, day=12) == []
    assert at(23, 9, day=12) == []
    assert at(23, 10, day=12) == [(CUSTOMER, "survey")]
    assert case_of(app, number).status == "closed"

    # The customer scores; the case stays closed.
    clock.set(sh(2026, 10, 13, 8, 0))
    res = app.pipeline.ingest(Inbound(mail(subject=f"Re: [{number}] 案例已关闭，请为我们的服务评分", body="５分，非常满意！"), __import__("sla_support").SOURCE))
    assert res.outcome == "reply"
    deliver(app, smtp_sink)
    assert case_of(app, number).status == "closed"
    with app.db.session() as s:
        scores = [(r.kind, r.score, r.recurred) for r in s.execute(select(SurveyResponse)).scalars()]
    assert scores == [("survey", 5, False)]

    assert at(9, 0, day=13) == []                              # no longer the day of the survey
    assert at(9, 0, day=14) == [(CUSTOMER, "followup")]       # a day after the survey, next working start
    assert at(9, 0, day=15) == [(CUSTOMER, "followup")]       # 3 days: Tuesday 09:00, a gap after follow-up 1
    assert at(9, 0, day=16) == []
    assert at(9, 0, day=19) == [(CUSTOMER, "followup")]       # 7 days after: Friday 23:10 -> Monday 09:00
    assert at(9, 0, day=30) == []

    actions = [a for a, _ in events(app, number)]
    assert actions.count("escalated") == 3
    assert actions.count("status-update-sent") == 2
    assert actions.count("confirmation-requested") == 1
    assert actions.count("followup-sent") == 3
    assert actions.count("survey-sent") == 1
    assert actions.count("survey-answered") == 1
    assert "sla-breached" not in actions

