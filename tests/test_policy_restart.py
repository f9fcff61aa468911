"""A changed SLA policy applies to the cases already open: at start, the daemon
re-plans every open case's timers against the policy in force."""

from __future__ import annotations

from pathlib import Path

from casegate.daemon.inbound import Inbound, Source
from casegate.daemon.timekeeping.scheduler import replan_open_cases
from casegate.storage.models import CaseTimer
from helpers import make_app, mail

SRC = Source("test", "imap")


def first_response_due(app, number):
    with app.db.session() as s:
        from casegate.storage import repository as repo

        case = repo.load_case(s, number)
        return [t.due_at for t in s.query(CaseTimer).filter(CaseTimer.case_id == case.id,
                                                            CaseTimer.kind == "first_response",
                                                            CaseTimer.done_at.is_(None))]


def open_p3_cases(app, count: int, tag: str) -> list[str]:
    """``count`` new P3 cases from different customers; their numbers."""
    return [app.pipeline.ingest(Inbound(mail(subject=f"打印机卡纸 {i}", body="三楼打印机偶尔卡纸。",
                                             sender=f"{tag}{i}@customer.cn"), SRC)).case_number
            for i in range(count)]


def test_a_new_policy_replans_open_cases_at_start(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    number = app.pipeline.ingest(Inbound(mail(subject="打印机卡纸", body="三楼打印机偶尔卡纸。"), SRC)).case_number
    app.sweep(app.clock())  # plans the case's timers under the default policy
    (before,) = first_response_due(app, number)
    app.close()
    app = make_app(tmp_path, policy={"P3": {"first_response": "8h"}, "P4": {"first_response": "8h"}})
    try:
        assert app.replan_open_cases(app.clock()) >= 1
        (after,) = first_response_due(app, number)
        assert after > before
    finally:
        app.close()


def test_a_start_under_the_same_policy_replans_nothing_and_a_change_replans_every_batch(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    numbers = open_p3_cases(app, 5, "u")
    assert app.replan_if_policy_changed(app.clock()) is not None  # the first start records the policy
    app.close()
    app = make_app(tmp_path)  # restarted, same policy: nothing to re-plan
    try:
        assert app.replan_if_policy_changed(app.clock()) is None
    finally:
        app.close()
    app = make_app(tmp_path, policy={"P3": {"first_response": "8h"}, "P4": {"first_response": "8h"}})
    try:
        before = {n: first_response_due(app, n) for n in numbers}
        assert app.replan_if_policy_changed(app.clock()) == 5
        after = {n: first_response_due(app, n) for n in numbers}
        assert all(a[0] > b[0] for a, b in zip(after.values(), before.values()))
        assert app.replan_if_policy_changed(app.clock()) is None  # recorded: the next start is quick
    finally:
        app.close()


def test_replanning_goes_through_every_open_case_in_batches(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    numbers = open_p3_cases(app, 5, "v")
    app.close()
    app = make_app(tmp_path, policy={"P3": {"first_response": "8h"}, "P4": {"first_response": "8h"}})
    try:
        assert replan_open_cases(app.desk, app.db, app.clock(), batch=2) == len(numbers)
    finally:
        app.close()
