"""Issue 13, done-when: one walk per kind of case (fault, complaint, feature request),
from the first mail to the last follow-up, through the 2026 National Day holiday
(1-7 October off, Saturday 10 October an adjusted working day), with a priority
change and a recurrence on the way.

Each walk drives the real pipeline (customer and engineer mail) and the sweeps
with a controlled clock, and compares two whole tables written here:

* the case's timeline (``casegate cases timeline --json`` data): every timer,
  past and pending, with its due time in Beijing time, its state and where it
  went (the addresses a sent notice reached, else the role or record it is for);
* every mail the case caused, as it reached the SMTP sink: when, to whom, what.

Default policy (DOMAIN.md): P1/P2 on the 7x24 clock, P3/P4 on working time
(09:00-12:00, 13:00-17:30, PRC holidays and adjusted working days).
"""

from __future__ import annotations

import json
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from sla_support import (
    CUSTOMER, ENGINEER, MANAGER, SH, SUPERVISOR, Clock, case_of, cli_config, ingest, mail, make_app, sh, staff_reply,
    timers_of,
)

from casegate.daemon.cli import main

# What a mail is, read from its subject (zh templates; the manager reads English).
NOTICES = {
    "我们已收到": "ack", "新案例": "notify", "客户回复": "notify-reply", "升级通知": "escalation",
    "Escalation": "escalation", "处理进展通报": "status-update", "请确认": "confirm", "评分": "survey",
    "服务回访": "followup", "解决目标": "resolution-target", "Resolution target": "resolution-target",
    "投诉处理": "complaint-deadline", "Complaint": "complaint-deadline",
}


class Walk:
    """One case's life: the clock, the mail in, the sweeps, and everything that went out."""

    def __init__(self, tmp_path, sink, start: datetime) -> None:
        self.clock = Clock(start)
        self.sink = sink
        self.app = make_app(tmp_path, sink, self.clock)
        self.config = cli_config(tmp_path)  # the same database for ``casegate cases timeline``
        self.sent: list[tuple[str, str, str]] = []
        self.number = ""

    def _deliver(self) -> None:
        before = len(self.sink.received)
        report = self.app.outbox.send_due()
        assert report.failed == 0 and report.retried == 0, report
        for m in self.sink.received[before:]:
            self.sent.append((self.clock.now.astimezone(SH).strftime("%m-%d %H:%M"), _to(m.message), _notice(m.message)))

    def customer(self, when: datetime, body: str, subject: str | None = None) -> str:
        self.until(when)
        number = ingest(self.app, mail(subject=subject or f"Re: [{self.number}] 服务案例", body=body, when=when))
        self.number = self.number or number
        self._deliver()
        return number

    def engineer(self, when: datetime, text: str) -> None:
        self.until(when)
        staff_reply(self.app, self.number, text)
        self._deliver()

    def _sweep(self, when: datetime) -> None:
        self.clock.set(when)
        self.app.sweep(when)
        self._deliver()

    def until(self, when: datetime) -> None:
        """Let time pass to ``when`` as the daemon would: a sweep at every instant a timer falls due."""
        if not self.number:
            self.clock.set(when)
            return
        for _ in range(500):
            due = [t.due_at for t in timers_of(self.app, self.number) if t.done_at is None and t.due_at <= when]
            if not due:
                break
            self._sweep(max(min(due), self.clock.now))
        else:
            raise AssertionError("timers keep falling due")
        self._sweep(when)

    def timeline(self, capsys) -> list[tuple[str, str, str, str]]:
        """``casegate cases timeline --json``, as (due, kind, state, to) rows in Beijing time."""
        capsys.readouterr()
        assert main(["--config", str(self.config), "cases", "timeline", self.number, "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        out = []
        for r in rows:
            due = datetime.fromisoformat(r["due"])
            assert due.utcoffset() == SH.utcoffset(due)  # printed with the service zone's offset
            out.append((due.strftime("%m-%d %H:%M"), r["kind"], r["state"], r["to"]))
        return out



def _to(msg: EmailMessage) -> str:
    return ",".join(sorted(a.addr_spec.lower() for a in msg["To"].addresses))


def _notice(msg: EmailMessage) -> str:
    subject = str(msg["Subject"])
    return next((v for k, v in NOTICES.items() if k in subject), subject)


# Who is who (tests/sla_support.py): the assignee Wang Wei is the service engineer.
ENG, SUP, GM, CUS = ENGINEER, SUPERVISOR, MANAGER, CUSTOMER


def test_fault_walk(tmp_path, smtp_sink, capsys) -> None:
    """A P3 fault reported the afternoon before National Day, raised to P2 on 2 October
    (P2 runs on the 7x24 clock), fixed, back the same evening, fixed again, confirmed,
    surveyed, followed up on the first working day after the holiday."""
    w = Walk(tmp_path, smtp_sink, sh(2026, 9, 30, 16, 0))
    number = w.customer(sh(2026, 9, 30, 16, 0), "打印服务偶尔报错，其他功能正常。", subject="打印服务偶尔报错")
    assert case_of(w.app, number).priority == "P3"
    w.engineer(sh(2026, 9, 30, 16, 20), "您好，我们已收到，正在排查打印服务日志。")
    # P3 counts working time: nothing falls due in the holiday.
    w.engineer(sh(2026, 10, 2, 10, 0), "#priority P2\n#note 客户来电：全部打印机都无法使用")
    w.engineer(sh(2026, 10, 2, 13, 0), "#status resolved\n已更换打印服务器网卡，打印恢复正常。")
    w.customer(sh(2026, 10, 2, 20, 0), "又不能打印了，还是报错！")  # a recurrence: a new round from 20:00
    w.engineer(sh(2026, 10, 2, 21, 30), "您好，我们已安排工程师今晚上门。")
    w.engineer(sh(2026, 10, 2, 23, 0), "#status resolved\n#onsite 1h 更换打印服务器硬盘\n已更换硬盘，打印恢复正常。")
    w.customer(sh(2026, 10, 3, 10, 0), "确认已解决，谢谢。")
    w.customer(sh(2026, 10, 8, 10, 0), "5分，没有再出现。")
    w.until(sh(2026, 10, 31, 0, 0))

    assert w.timeline(capsys) == [
        # P3's update chain (1 working day from opening) became P2's "every 4 h": 20:00 on
        # 30 September, overdue when P2 was set, so sent at once.
        ("09-30 20:00", "status_update", "done", CUS),
        # P2's matrix from 30 Sep 16:00 (1 h, 2 h, 4 h) was all overdue on 2 October:
        # one notice, now, to the highest level; the levels below are passed.
        ("10-02 10:00", "escalation", "done", GM),
        ("10-02 13:00", "confirm", "done", CUS),
        ("10-02 14:00", "status_update", "cancelled", "customer"),  # 4 h after 10:00; resolved at 13:00
        # The recurrence at 20:00 starts round 2 on the 7x24 clock: 1 h engineer (the
        # assignee), 2 h supervisor, first response 2 h (answered 21:30), 4 h manager.
        ("10-02 21:00", "escalation", "done", ENG),
        ("10-02 22:00", "escalation", "done", SUP),
        ("10-02 22:00", "first_response", "skipped", "record"),
        ("10-02 23:00", "confirm", "done", CUS),
        ("10-03 00:00", "escalation", "cancelled", "general-manager"),
        ("10-03 00:00", "status_update", "cancelled", "customer"),
        ("10-03 10:00", "survey", "done", CUS),  # the customer confirmed: closed, surveyed
        ("10-05 13:00", "auto_close", "cancelled", "record"),  # 3 days after the first fix: reopened
        ("10-05 23:00", "auto_close", "cancelled", "record"),  # 3 days after the second: confirmed
        # P2's follow-up: 3 days after 2 Oct 23:00 is 5 Oct, a holiday: the next working start.
        ("10-08 09:00", "followup", "done", CUS),
        # P3's plan on working time (1.5 h on 30 Sep, the rest from 8 Oct 09:00), cancelled by P2.
        ("10-08 09:30", "escalation", "cancelled", "service-engineer"),
        ("10-08 11:30", "escalation", "cancelled", "support-supervisor"),
        ("10-08 11:30", "first_response", "cancelled", "record"),  # P3 4 working hours; answered 16:20
        ("10-08 16:00", "resolution", "cancelled", "support-supervisor"),  # P2 root cause 1wd from 30 Sep 16:00
        ("10-08 16:30", "escalation", "cancelled", "general-manager"),
        ("10-08 17:30", "resolution", "cancelled", "support-supervisor"),  # round 2 root cause 1wd from 2 Oct 20:00
        ("10-09 16:00", "resolution", "cancelled", "support-supervisor"),  # P3 guidance 2wd
        # P2 fix 3wd: the third working day is Saturday 10 October, an adjusted working day.
        ("10-10 16:00", "resolution", "cancelled", "support-supervisor"),
        ("10-10 17:30", "resolution", "cancelled", "support-supervisor"),
    ]
    reply = f"Re: [{number}] 打印服务偶尔报错"
    assert w.sent == [
        ("09-30 16:00", CUS, "ack"),
        ("09-30 16:00", ENG, "notify"),
        ("09-30 16:20", CUS, reply),
        ("10-02 10:00", CUS, "status-update"),
        ("10-02 10:00", GM, "escalation"),
        ("10-02 13:00", CUS, reply),
        ("10-02 13:00", CUS, "confirm"),
        ("10-02 20:00", ENG, "notify-reply"),
        ("10-02 21:00", ENG, "escalation"),
        ("10-02 21:30", CUS, reply),
        ("10-02 22:00", SUP, "escalation"),
        ("10-02 23:00", CUS, reply),
        ("10-02 23:00", CUS, "confirm"),
        ("10-03 10:00", ENG, "notify-reply"),
        ("10-03 10:00", CUS, "survey"),
        ("10-08 09:00", CUS, "followup"),
        ("10-08 10:00", ENG, "notify-reply"),
    ]
    case = case_of(w.app, number)
    assert (case.status, case.priority) == ("closed", "P2")


def test_complaint_walk(tmp_path, smtp_sink, capsys) -> None:
    """A complaint the morning before National Day: P3 (working time) plus the complaint
    deadlines (2 h / 24 h / 48 h, wall clock); raised to P2, a plan given (#plan), resolved;
    "问题依旧" on 2 October reopens it in the holiday with every deadline restarted."""
    w = Walk(tmp_path, smtp_sink, sh(2026, 9, 30, 10, 0))
    number = w.customer(sh(2026, 9, 30, 10, 0), "我要投诉你们的工程师，服务态度太差，多次催促没人理。", subject="投诉")
    c = case_of(w.app, number)
    assert (c.category, c.priority) == ("complaint", "P3")
    w.engineer(sh(2026, 9, 30, 11, 0), "非常抱歉给您带来不便，我们正在核实情况。")
    w.engineer(sh(2026, 9, 30, 13, 30), "#priority P2\n#note 重点客户，主管跟进")
    w.engineer(sh(2026, 9, 30, 16, 0), "#plan 主管明天上门致歉，并更换负责工程师\n主管将于明天上门致歉。")
    w.engineer(sh(2026, 9, 30, 17, 0), "#status resolved\n#onsite 1h 主管致电致歉\n已更换负责工程师，今后由李工负责贵司。")
    w.customer(sh(2026, 10, 2, 9, 0), "还是没有人联系我们，问题依旧！")
    w.engineer(sh(2026, 10, 2, 10, 30), "非常抱歉，李工今天下午与您联系。")
    w.engineer(sh(2026, 10, 2, 15, 0), "#status resolved\n#call 30m 李工电话沟通\n李工已与您电话沟通。")
    w.customer(sh(2026, 10, 2, 16, 0), "确认，已解决。")
    w.customer(sh(2026, 10, 8, 9, 30), "4分，没有再出现，没有新的需求。")
    w.until(sh(2026, 10, 31, 0, 0))

    assert w.timeline(capsys) == [
        # Round 1 from 30 Sep 10:00. Complaint "respond within 2 h" met at 11:00.
        ("09-30 12:00", "complaint", "cancelled", "complaint-role"),
        ("09-30 12:00", "escalation", "done", ENG),  # P3: 2 working hours, to the assignee
        # P2 at 13:30 (7x24 from 10:00): the engineer's 1 h was told, 2 h (12:00) is overdue
        # and goes now, 4 h (14:00) on time.
        ("09-30 13:30", "escalation", "done", SUP),
        ("09-30 14:00", "escalation", "done", GM),
        ("09-30 15:00", "escalation", "cancelled", "support-supervisor"),  # P3's 4 working hours
        ("09-30 15:00", "first_response", "cancelled", "record"),  # P3's 4 working hours; answered 11:00
        ("09-30 15:00", "status_update", "done", CUS),  # P2 every 4 h since 11:00
        ("09-30 17:00", "confirm", "done", CUS),
        ("09-30 19:00", "status_update", "cancelled", "customer"),
        ("10-01 10:00", "complaint", "cancelled", "complaint-role"),  # plan within 24 h: #plan at 16:00
        ("10-02 10:00", "complaint", "cancelled", "complaint-role"),  # close within 48 h: resolved
        # Round 2 from the recurrence, 2 Oct 09:00 (a holiday; P2 runs on the wall clock).
        ("10-02 10:00", "escalation", "done", ENG),
        ("10-02 11:00", "complaint", "skipped", "complaint-role"),  # respond: answered 10:30
        ("10-02 11:00", "escalation", "done", SUP),
        ("10-02 11:00", "first_response", "skipped", "record"),
        ("10-02 13:00", "escalation", "done", GM),
        # Due 13:00; the engineer wrote at 10:30, so owed 4 h after that.
        ("10-02 14:30", "status_update", "done", CUS),
        ("10-02 15:00", "confirm", "done", CUS),
        ("10-02 16:00", "survey", "done", CUS),  # confirmed: closed and surveyed
        ("10-02 18:30", "status_update", "cancelled", "customer"),
        ("10-03 09:00", "complaint", "cancelled", "complaint-role"),  # round 2's plan deadline
        ("10-03 17:00", "auto_close", "cancelled", "record"),
        ("10-04 09:00", "complaint", "cancelled", "complaint-role"),  # round 2's close deadline
        ("10-05 15:00", "auto_close", "cancelled", "record"),
        ("10-08 09:00", "followup", "done", CUS),  # P2: 3 days after 2 Oct 15:00, next working start
        ("10-08 10:00", "resolution", "cancelled", "support-supervisor"),  # P2 root cause 1wd from 30 Sep 10:00
        ("10-08 10:30", "escalation", "cancelled", "general-manager"),  # P3's 8 working hours
        ("10-08 17:30", "resolution", "cancelled", "support-supervisor"),  # round 2 root cause 1wd
        ("10-09 10:00", "resolution", "cancelled", "support-supervisor"),  # P3 guidance 2wd
        ("10-10 10:00", "resolution", "cancelled", "support-supervisor"),  # P2 fix 3wd: adjusted Saturday
        ("10-10 17:30", "resolution", "cancelled", "support-supervisor"),  # round 2 fix 3wd: the same
    ]
    reply = f"Re: [{number}] 投诉"
    assert w.sent == [
        ("09-30 10:00", CUS, "ack"),
        ("09-30 10:00", ENG, "notify"),
        ("09-30 11:00", CUS, reply),
        ("09-30 12:00", ENG, "escalation"),
        ("09-30 13:30", SUP, "escalation"),
        ("09-30 14:00", GM, "escalation"),
        ("09-30 15:00", CUS, "status-update"),
        ("09-30 16:00", CUS, reply),
        ("09-30 17:00", CUS, reply),
        ("09-30 17:00", CUS, "confirm"),
        ("10-02 09:00", ENG, "notify-reply"),
        ("10-02 10:00", ENG, "escalation"),
        ("10-02 10:30", CUS, reply),
        ("10-02 11:00", SUP, "escalation"),
        ("10-02 13:00", GM, "escalation"),
        ("10-02 14:30", CUS, "status-update"),
        ("10-02 15:00", CUS, reply),
        ("10-02 15:00", CUS, "confirm"),
        ("10-02 16:00", ENG, "notify-reply"),
        ("10-02 16:00", CUS, "survey"),
        ("10-08 09:00", CUS, "followup"),
        ("10-08 09:30", ENG, "notify-reply"),
    ]
    assert case_of(w.app, number).status == "closed"


def test_feature_walk(tmp_path, smtp_sink, capsys) -> None:
    """A feature request the afternoon before National Day: its own number series, the
    sales queue, one clock (an answer within 2 working days) whatever its priority, no
    escalation, no status updates, no follow-ups; a new question after closing reopens
    it, and the new round's answer is due on the adjusted working Saturday."""
    w = Walk(tmp_path, smtp_sink, sh(2026, 9, 30, 16, 0))
    number = w.customer(sh(2026, 9, 30, 16, 0), "希望系统增加报表导出功能，能否在下个版本加入这个新功能？", subject="新功能需求")
    c = case_of(w.app, number)
    assert (number, c.category, c.queue, c.priority) == ("XQ-2026-000001", "feature-request", "sales", "P3")
    w.engineer(sh(2026, 10, 2, 10, 0), "#priority P2\n#note 大客户，优先评估")  # changes no clock of a request
    w.engineer(sh(2026, 10, 8, 10, 0), "#status resolved\n#call 15m 与客户确认需求细节\n您好，导出功能已列入 11 月版本计划。")
    w.customer(sh(2026, 10, 8, 11, 0), "确认，谢谢。")
    w.customer(sh(2026, 10, 8, 14, 0), "请问导出功能具体什么时候能上线？")  # a new question: reopened
    w.engineer(sh(2026, 10, 10, 10, 0), "#status resolved\n预计 11 月 20 日上线。")
    w.until(sh(2026, 10, 31, 0, 0))

    assert w.timeline(capsys) == [
        ("10-08 10:00", "confirm", "done", CUS),
        ("10-08 11:00", "survey", "done", CUS),
        # 2 working days from 30 Sep 16:00: 1.5 h, then 8 Oct, then 6 h of 9 Oct. Answered 8 Oct.
        ("10-09 16:00", "first_response", "cancelled", "record"),
        ("10-10 10:00", "confirm", "done", CUS),
        # From the reopen (8 Oct 14:00): 3.5 h, 9 Oct, 4 h of Saturday 10 Oct (a working day).
        ("10-10 14:00", "first_response", "cancelled", "record"),
        ("10-11 10:00", "auto_close", "cancelled", "record"),
        ("10-13 10:00", "auto_close", "done", "record"),  # silence after the second answer closes it
        ("10-13 10:00", "survey", "done", CUS),
    ]
    reply = f"Re: [{number}] 新功能需求"
    assert w.sent == [
        ("09-30 16:00", CUS, "ack"),
        ("09-30 16:00", ENG, "notify"),
        ("10-08 10:00", CUS, reply),
        ("10-08 10:00", CUS, "confirm"),
        ("10-08 11:00", ENG, "notify-reply"),
        ("10-08 11:00", CUS, "survey"),
        ("10-08 14:00", ENG, "notify-reply"),
        ("10-10 10:00", CUS, reply),
        ("10-10 10:00", CUS, "confirm"),
        ("10-13 10:00", CUS, "survey"),
    ]
    case = case_of(w.app, number)
    assert (case.status, case.priority) == ("closed", "P2")
