"""Issue 13: `casegate policy plan` (dry run of the policy) and `casegate cases timeline`."""

from __future__ import annotations

import json

from sla_support import Clock, ingest, mail, make_app, sh, sweep_and_send

from casegate.daemon.cli import main
from casegate.daemon.timekeeping import lifecycle
from casegate.storage import repository as repo


def test_policy_plan_dry_run_json(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["policy", "plan", "--priority", "P2", "--opened", "2026-10-09T20:00+08:00", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {tuple(sorted(r)) for r in rows} == {("due", "kind", "reason", "state", "to")}
    esc = [(r["due"], r["to"]) for r in rows if r["kind"] == "escalation"]
    assert esc == [("2026-10-09T21:00+08:00", "service-engineer"), ("2026-10-09T22:00+08:00", "support-supervisor"),
                   ("2026-10-10T00:00+08:00", "general-manager")]
    assert not (tmp_path / "casegate.db").exists()  # no database touched


def test_cases_timeline_lists_past_and_pending(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 11, 4, 10, 0))
    app = make_app(tmp_path, smtp_sink, clock)
    number = ingest(app, mail())
    sweep_and_send(app, smtp_sink, clock, sh(2026, 11, 4, 10, 30))
    with app.db.session() as s:
        rows = lifecycle.timeline(s, repo.load_case(s, number))
    states = {(r["kind"], r["state"]) for r in rows}
    assert ("escalation", "done") in states and ("escalation", "pending") in states
    out = json.loads(lifecycle.dump([{k: r[k] for k in ("kind", "due", "state", "to", "reason")} for r in rows],
                                    "Asia/Shanghai"))
    assert all(r["due"].endswith("+08:00") for r in out)
