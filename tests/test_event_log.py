"""The case history written in bulk (storage/event_log.py) behaves as ORM rows did.

Events are kept as plain rows and inserted together; these tests hold it to
what the ORM gave: a query in the same transaction sees every event added
before it, an event added in a savepoint that is rolled back is gone with
it, and a rolled-back transaction leaves none.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from casegate.storage import repository as repo
from casegate.storage.db import Database
from casegate.storage.models import Case, Event

NOW = datetime(2026, 10, 9, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def db(tmp_path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'events.db'}")
    database.migrate()
    yield database
    database.dispose()


def _case(number: str) -> Case:
    return Case(number=number, subject="打印机卡纸", status="new", priority="P3", category="general",
                queue="support", route="support", language="zh", source_kind="imap", opened_at=NOW,
                updated_at=NOW)


def _actions(session, case: Case) -> list[str]:
    return list(session.execute(select(Event.action).where(Event.case_id == case.id).order_by(Event.id)).scalars())


def test_a_query_in_the_same_transaction_sees_the_events_added_before_it(db: Database) -> None:
    with db.transaction() as s:
        case = _case("SR-2026-000001")
        s.add(case)
        repo.add_event(s, case, NOW, "zhang@customer.cn", "created", new=case.number)
        repo.add_event(s, case, NOW, "rules", "classified", new="P3", detail={"rule": "打印机"})
        s.flush()  # the case gets its id; the events wait for a reader or the commit
        assert _actions(s, case) == ["created", "classified"]
        repo.add_event(s, case, NOW, "rules", "assigned", new="li@desk.example.cn")
    with db.transaction() as s:
        case = s.execute(select(Case)).scalar_one()
        assert _actions(s, case) == ["created", "classified", "assigned"]
        detail = s.execute(select(Event.detail).where(Event.action == "classified")).scalar_one()
        assert detail == '{"rule": "打印机"}'


def test_an_event_in_a_rolled_back_savepoint_is_gone_and_the_others_stay(db: Database) -> None:
    with db.transaction() as s:
        kept = _case("SR-2026-000001")
        s.add(kept)
        repo.add_event(s, kept, NOW, "a", "created")
        with pytest.raises(RuntimeError):
            with s.begin_nested():
                lost = _case("SR-2026-000002")
                s.add(lost)
                repo.add_event(s, lost, NOW, "b", "created")
                repo.add_event(s, kept, NOW, "b", "note")
                raise RuntimeError("this message fails")
        with s.begin_nested():
            repo.add_event(s, kept, NOW, "c", "assigned")
    with db.transaction() as s:
        assert [(e.actor, e.action) for e in s.execute(select(Event).order_by(Event.id)).scalars()] == [
            ("a", "created"), ("c", "assigned")]


def test_a_rolled_back_transaction_writes_no_event(db: Database) -> None:
    with pytest.raises(RuntimeError):
        with db.transaction() as s:
            case = _case("SR-2026-000001")
            s.add(case)
            repo.add_event(s, case, NOW, "a", "created")
            raise RuntimeError("the batch fails")
    with db.transaction() as s:
        assert s.execute(select(Event)).first() is None
        repo.add_event(s, None, NOW, "a", "no-case")  # an event of no case is kept too
    with db.transaction() as s:
        assert s.execute(select(Event.action)).scalars().all() == ["no-case"]


def test_the_newest_event_of_a_case_is_found_pending_or_stored(db: Database) -> None:
    with db.transaction() as s:
        case = _case("SR-2026-000001")
        s.add(case)
        repo.add_event(s, case, NOW, "rules", "classified", new="P3", detail={"n": 1})
    with db.transaction() as s:
        case = s.execute(select(Case)).scalar_one()
        assert repo.last_event(s, case, "classified").detail == '{"n": 1}'  # stored
        repo.add_event(s, case, NOW, "rules", "classified", new="P1", detail={"n": 2})
        assert repo.last_event(s, case, "classified").new == "P1"  # pending, newer
        assert repo.last_event(s, case, "assigned") is None
    with db.transaction() as s:
        case = s.execute(select(Case)).scalar_one()
        assert repo.last_event(s, case, "classified").detail == '{"n": 2}'
