"""SLA timers on the working calendar, for resolved cases, and with two daemons.

Calendar facts used (PRC 2026): Sunday 20 September a working day; Fri 25 - Sun 27 September off (Mid-Autumn),
1-7 October off (National Day), Saturday 10 October an adjusted working day.
Office hours are the defaults, 09:00-12:00 and 13:00-17:30.
"""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta

import pytest
from sla_support import (
    CUSTOMER, ENGINEER, MANAGER, SUPERVISOR, Clock, case_of, deliver, events, ingest, mail, make_app, sh,
    staff_reply, sweep_and_send, timers_of,
)
from sqlalchemy import delete, func, select


from casegate.storage.models import CaseTimer, OutboxMessage

P2_TEXT = "系统性能严重下降，部分功能故障。"


def escalations(msgs) -> list[str]:
    return sorted(",".join(a.addr_spec for a in m["To"].addresses) for m in msgs
                  if "升级通知" in str(m["Subject"]) or "Escalation" in str(m["Subject"]))


def check_steps(app, sink, clock, steps: list[tuple[datetime, str]]) -> None:
    """Each step fires exactly at its instant (not a minute before), once."""
    for due, who in steps:
        assert escalations(sweep_and_send(app, sink, clock, due - timedelta(minutes=1))) == []
        assert escalations(sweep_and_send(app, sink, clock, due)) == [who]
        assert escalations(sweep_and_send(app, sink, clock, due)) == []


@pytest.mark.parametrize(
    ("opened", "steps"),
    [
        # Friday 17:00 before an ordinary weekend: 30 min on Friday, the rest on Monday.
        (sh(2026, 9, 11, 17, 0), [sh(2026, 9, 14, 9, 30), sh(2026, 9, 14, 10, 30), sh(2026, 9, 14, 13, 30)]),
        # Friday 18 September: Sunday 20 September is an adjusted working day.
        (sh(2026, 9, 18, 17, 0), [sh(2026, 9, 20, 9, 30), sh(2026, 9, 20, 10, 30), sh(2026, 9, 20, 13, 30)]),
        # Thursday 17:00 before the Mid-Autumn holiday (Fri-Sun off): resumes Monday 28 September.
        (sh(2026, 9, 24, 17, 0), [sh(2026, 9, 28, 9, 30), sh(2026, 9, 28, 10, 30), sh(2026, 9, 28, 13, 30)]),
        # Wednesday 30 September 16:30, then National Day: the last two steps land on Thursday 8 October.
        (sh(2026, 9, 30, 16, 30), [sh(2026, 9, 30, 17, 30), sh(2026, 10, 8, 10, 0), sh(2026, 10, 8, 12, 0)]),
        # Friday 9 October 16:00: Saturday 10 October is an adjusted working day.
        (sh(2026, 10, 9, 16, 0), [sh(2026, 10, 9, 17, 0), sh(2026, 10, 10, 9, 30), sh(2026, 10, 10, 11, 30)]),
    ],
)
def test_p2_steps_on_working_time(tmp_path, smtp_sink, opened, steps) -> None:
    clock = Clock(opened)
    # P2 on working time as configured (the default is 7x24 since issue 13).
    app = make_app(tmp_path, smtp_sink, clock, policy={"P2": {"working_time": True}})
    number = ingest(app, mail(subject="系统性能严重下降", body=P2_TEXT))
    assert case_of(app, number).priority == "P2"
    deliver(app, smtp_sink)
    check_steps(app, smtp_sink, clock, list(zip(steps, [ENGINEER, SUPERVISOR, MANAGER])))
    assert [n for a, n in events(app, number, "escalated")] == ["service-engineer", "support-supervisor",
                                                                 "general-manager"]


def test_p3_first_response_breach_across_holiday(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 9, 30, 15, 0))  # P3: 4 working hours
    app = make_app(tmp_path, smtp_sink, clock)
    number = ingest(app, mail(subject="打印服务偶尔报错", body="打印服务偶尔报错，其他功能正常。"))
    assert case_of(app, number).priority == "P3"
    # 2.5 h on 30 September, the remaining 1.5 h on 8 October.
    sweep_and_send(app, smtp_sink, clock, sh(2026, 10, 8, 10, 29))
    assert events(app, number, "sla-breached") == []
    sweep_and_send(app, smtp_sink, clock, sh(2026, 10, 8, 10, 30))
    assert events(app, number, "sla-breached") == [("sla-breached", "first_response")]


def test_no_escalation_for_resolved_case(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 10, 9, 20, 0))
    app = make_app(tmp_path, smtp_sink, clock)
    number = ingest(app, mail())
    deliver(app, smtp_sink)
    assert escalations(sweep_and_send(app, smtp_sink, clock, sh(2026, 10, 9, 20, 5))) == []
    clock.set(sh(2026, 10, 9, 20, 10))
    staff_reply(app, number, "#status resolved\n重启后已恢复。")
    deliver(app, smtp_sink)
    later = sweep_and_send(app, smtp_sink, clock, sh(2026, 10, 9, 23, 0))
    assert escalations(later) == []
    assert [m["To"].addresses[0].addr_spec for m in later] == [CUSTOMER]  # only the confirmation request
    assert events(app, number, "escalated") == []
    # Issue 13: resolving cancels the open round's timers at once (the lifecycle re-plans).
    assert {t.outcome for t in timers_of(app, number) if t.kind == "escalation"} == {"cancelled:resolve"}


def test_reopened_on_recurrence_gets_status_updates_again(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 10, 9, 20, 0))
    app = make_app(tmp_path, smtp_sink, clock)
    number = ingest(app, mail())
    clock.set(sh(2026, 10, 9, 20, 10))
    staff_reply(app, number, "#status resolved\n重启后已恢复。")
    sweep_and_send(app, smtp_sink, clock, clock.now)
    clock.set(sh(2026, 10, 9, 21, 0))
    ingest(app, mail(subject=f"Re: [{number}] 请确认问题是否已解决", body="问题又出现了，服务器又宕机"))
    assert case_of(app, number).status == "open"
    deliver(app, smtp_sink)
    msgs = sweep_and_send(app, smtp_sink, clock, sh(2026, 10, 9, 22, 0))
    assert any("处理进展通报" in str(m["Subject"]) for m in msgs)
    # The old resolution's auto-close and follow-ups never fire.
    later = sweep_and_send(app, smtp_sink, clock, sh(2026, 10, 13, 0, 0))
    # Issue 13: the recurrence restarts escalation too (general manager, 2 h after the reopen).
    assert [str(m["Subject"]).strip().split("] ")[1][:6] for m in later
            if not any(w in str(m["Subject"]) for w in ("Escalation", "升级通知", "Resolution target", "解决目标"))
            ] == ["处理进展通报"]
    assert case_of(app, number).status == "open"


def test_customer_confirmation_closes_and_surveys(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 10, 12, 10, 0))
    app = make_app(tmp_path, smtp_sink, clock)
    number = ingest(app, mail())
    staff_reply(app, number, "#status resolved\n已修复。")
    sweep_and_send(app, smtp_sink, clock, clock.now)
    clock.set(sh(2026, 10, 12, 11, 0))
    ingest(app, mail(subject=f"Re: [{number}] 请确认问题是否已解决", body="确认，已解决，谢谢！"))
    msgs = deliver(app, smtp_sink)
    assert case_of(app, number).status == "closed"
    assert [str(m["Subject"]).strip() for m in msgs if m["To"].addresses[0].addr_spec == CUSTOMER] == [
        f"[{number}] 案例已关闭，请为我们的服务评分"]
    # Auto-close later finds the case closed: no second survey; the follow-ups still go out.
    later = sweep_and_send(app, smtp_sink, clock, sh(2026, 10, 16, 0, 0))
    assert sorted(str(m["Subject"]).strip()[:30] for m in later) == [f"[{number}] 服务回访（第 1/3 次）", f"[{number}] 服务回访（第 2/3 次）"]


def test_status_updates_never_go_to_bounce_senders(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 10, 12, 10, 0))
    app = make_app(tmp_path, smtp_sink, clock)
    number = ingest(app, mail(sender="no-reply@monitor.customer.cn", subject="告警：服务器宕机"))
    msgs = sweep_and_send(app, smtp_sink, clock, sh(2026, 10, 12, 12, 0))
    assert not [m for m in msgs if "处理进展通报" in str(m["Subject"])]
    assert events(app, number, "status-update-sent-suppressed")


# ---------------------------------------------------------------- two daemons, one PostgreSQL


def test_two_daemons_send_each_notice_once(tmp_path, smtp_sink, postgres) -> None:
    url = postgres.create_database("sla_" + uuid.uuid4().hex[:10])
    clock = Clock(sh(2026, 10, 9, 20, 0))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    secret = {"secret_file": str(tmp_path / "secret")}
    (tmp_path / "secret").write_text("x" * 40)
    app_a = make_app(tmp_path / "a", smtp_sink, clock, url=url, security=secret)
    app_b = make_app(tmp_path / "b", smtp_sink, clock, url=url, security=secret)
    numbers = [ingest(app_a if i % 2 else app_b, mail(sender=f"user{i}@customer.cn", body=f"第{i}台服务器宕机"))
               for i in range(8)]
    deliver(app_a, smtp_sink)

    def count(kind: str) -> int:
        with app_a.db.session() as s:
            return s.execute(select(func.count(OutboxMessage.id)).where(OutboxMessage.kind == kind)).scalar_one()

    errors: list[BaseException] = []
    for when in [sh(2026, 10, 9, 20, 30), sh(2026, 10, 9, 21, 0), sh(2026, 10, 9, 22, 0), sh(2026, 10, 9, 22, 30)]:
        barrier = threading.Barrier(4)

        def sweep(app) -> None:
            try:
                barrier.wait()
                for _ in range(3):
                    app.sweep(when, batch=3)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=sweep, args=(app,)) for app in (app_a, app_b, app_a, app_b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    assert count("escalation") == 3 * len(numbers)
    assert count("status-update") == 2 * len(numbers)  # 21:00 and 22:00
    clock.set(sh(2026, 10, 9, 22, 30))
    before = len(smtp_sink.received)
    deliver(app_a, smtp_sink)
    deliver(app_b, smtp_sink)
    got = smtp_sink.received[before:]
    assert len(got) == 5 * len(numbers)
    assert len({m.message["Message-ID"] for m in got}) == len(got)
    for number in numbers:
        assert [n for _, n in events(app_a, number, "escalated")] == ["service-engineer", "support-supervisor",
                                                                      "general-manager"]
    app_a.close()
    app_b.close()


def test_a_new_case_is_planned_in_its_own_commit(tmp_path, smtp_sink) -> None:
    """The clock starts with the case: its timers are there before any sweep, and the sweep adds none."""
    clock = Clock(sh(2026, 10, 9, 10, 0))
    app = make_app(tmp_path, smtp_sink, clock)
    number = ingest(app, mail(body="核心服务器宕机，业务全部中断"))
    planned = {(t.kind, t.step): t.due_at for t in timers_of(app, number)}
    assert planned[("first_response", 0)] == sh(2026, 10, 9, 10, 30)  # P1: 30 minutes, 7x24
    assert ("escalation", 1) in planned
    assert app.sweep(clock.now).planned == 0
    assert {(t.kind, t.step): t.due_at for t in timers_of(app, number)} == planned
    app.close()


def test_one_sweep_plans_a_backlog_larger_than_its_batch(tmp_path, smtp_sink) -> None:
    """Cases without a plan (older than planning at opening) are planned by one sweep, batch by batch."""
    clock = Clock(sh(2026, 10, 9, 10, 0))
    app = make_app(tmp_path, smtp_sink, clock)
    numbers = [ingest(app, mail(sender=f"user{i}@customer.cn", body=f"第{i}号机房的核心服务器宕机，业务中断"))
               for i in range(7)]
    with app.db.transaction() as s:  # as a database from before planning at opening holds them
        s.execute(delete(CaseTimer))
    report = app.sweep(clock.now, batch=3)  # three rounds: 3 + 3 + 1 cases
    for number in numbers:
        assert {t.kind for t in timers_of(app, number)} >= {"first_response", "escalation"}
    assert report.planned == sum(len(timers_of(app, n)) for n in numbers)
    app.close()
