"""The shipped rules against the labelled tuning set (tests/data/classification).

Priority is measured, not assumed: a false P1 wakes the general manager at
night, a missed P1 breaks the 30-minute promise.  The held-out set is not
asserted here: it is only measured (python bench/classify.py), so that it
stays out of the tuning loop.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from casegate.rules import load_rules
from casegate.rules.measure import KINDS, Measurement, format_measurement, load_labelled, measure

DATA = Path(__file__).resolve().parent / "data" / "classification"


@pytest.fixture(scope="module")
def tuning() -> Measurement:
    return measure(load_rules(), load_labelled(DATA / "tuning.toml"), "tuning")


def test_the_labelled_sets_are_well_formed() -> None:
    tuning, held_out = load_labelled(DATA / "tuning.toml"), load_labelled(DATA / "held-out.toml")
    later = [load_labelled(DATA / f"held-out-{n}.toml") for n in range(2, 7)]
    first = tuning + held_out
    assert len(first) >= 300
    assert len(held_out) * 3 >= len(first) - 3  # a third is kept aside
    everything = first + [m for mails in later for m in mails]
    assert len({m.id for m in everything}) == len(everything)  # no mail in two sets
    for mails in (tuning, held_out, *later):
        kinds = {m.kind for m in mails}
        assert {"fault", "question", "complaint", "feature-request", "spam"} <= kinds
        assert {m.priority for m in mails} >= {"P1", "P2", "P3", "P4"}
        assert {m.lang for m in mails} >= {"zh-Hans", "zh-Hant", "en"}
    assert set(KINDS) >= {m.kind for m in everything}


def test_tuning_set_floor(tuning: Measurement) -> None:
    report = format_measurement(tuning, show_wrong=True)
    assert tuning.accuracy >= 0.95, report
    assert tuning.severe_misses == [], report
    assert tuning.false_alarms == [], report


def test_every_p1_of_the_tuning_set_is_found(tuning: Measurement) -> None:
    hit, total = tuning.recall("P1")
    assert total >= 50 and hit == total, format_measurement(tuning, show_wrong=True)


def test_routes_of_the_tuning_set(tuning: Measurement) -> None:
    wrong = [o.mail.id for o in tuning.outcomes if o.result.route != o.mail.route]
    assert wrong == []
