"""The fax spool folder: settled files become cases, move to done/ or failed/
only after the commit, and a crash between commit and move is harmless."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from casegate.daemon.runtime.app import App
from casegate.daemon.runtime.runner import source_loop
from casegate.daemon.stages.context import IngestResult
from casegate.daemon.sources.status import SourceStatus
from casegate.daemon.sources import spool as spool_mod
from casegate.daemon.sources.spool import ORPHAN_SIDECAR_AGE, SpoolSource, check_document
from casegate.storage import repository as repo
from casegate.storage.models import Case
from fax_support import FakeOcr, fax_app, require_ocr
from faxgen import render_fax_pdf, render_fax_tiff
from helpers import sink_outgoing

OUTAGE = "系统宕机，请速派工程师"
FAX_NAME = "fax000123_+862087681011_20261120T101503.tif"
HYLAFAX_INFO = """recvq/fax000000042.tif:
          Sender: +86 20 8768 1011
           Pages: 1
        Received: 2026:11:20 10:15:03
         CallID1: 02087681011
"""
FAKE_TIFF = b"II*\x00" + b"\x00" * 64  # recognised as TIFF, but damaged


def spool_app(tmp_path: Path, ocr: FakeOcr | None = None, **sections) -> App:
    src = {"name": "faxspool", "kind": "spool", "path": "spool", "settle_time": "2s", "poll_interval": "1s"}
    return fax_app(tmp_path, ocr, sources=[src], **sections)


def source(app: App, now_offset: float = 60.0) -> SpoolSource:
    """The spool source with a clock ``now_offset`` seconds ahead: files look settled."""
    cfg = app.config.source("faxspool")
    status = SourceStatus(app.db, cfg.name, cfg.kind, app.clock)
    return SpoolSource(cfg, app.config, app.pipeline, status, now=lambda: time.time() + now_offset)


def spool_dir(app: App) -> Path:
    return app.config.resolve("spool")


def drop(app: App, name: str, content: bytes) -> Path:
    folder = spool_dir(app)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content)
    return path


def cases(app: App) -> list[Case]:
    with app.db.session() as s:
        out = list(s.execute(select(Case).order_by(Case.id)).scalars())
        for c in out:
            c.customer and c.customer.contacts
        return out


def names(folder: Path) -> list[str]:
    """The files in ``folder``, without the spool's own attempt counters."""
    return sorted(p.name for p in folder.iterdir() if p.name != spool_mod.STATE_FOLDER) if folder.is_dir() else []


def event_details(app: App, number: str, action: str) -> list[dict]:
    with app.db.session() as s:
        case = repo.load_case(s, number)
        return [json.loads(e.detail or "{}") for e in case.events if e.action == action]


# ---------------------------------------------------------------- the scenario


@pytest.mark.ocr
def test_spool_fax_becomes_p1_case_for_the_number_owner_and_is_answered_via_the_gateway(
    tmp_path: Path, smtp_sink
) -> None:
    """Done-when: a scanned "系统宕机，请速派工程师" fax in the spool folder is a P1
    case for the customer who owns the number, acknowledged by e-mail-to-fax."""
    require_ocr()
    app = spool_app(tmp_path, outgoing=sink_outgoing(smtp_sink))
    with app.db.transaction() as s:
        owner = repo.create_customer(s, app.clock(), name="王工", company="ACME 广州",
                                     contacts=[("fax", "+862087681011")])
        s.flush()
        owner_id = owner.id
    drop(app, "fax000000042.tif", render_fax_tiff([[OUTAGE], ["Customer: ACME 20-8768-1011"]]))
    drop(app, "fax000000042.info", HYLAFAX_INFO.encode())

    assert source(app).drain() == 1

    (case,) = cases(app)
    assert (case.priority, case.customer_id, case.source_kind) == ("P1", owner_id, "spool")
    assert names(spool_dir(app)) == ["done"]
    assert names(spool_dir(app) / "done") == ["fax000000042.info", "fax000000042.tif"]
    with app.db.session() as s:
        loaded = repo.load_case(s, case.number)
        assert "宕机" in loaded.messages[0].text
        assert loaded.messages[0].attachments[0].filename == "fax000000042.tif"
    assert app.outbox.send_due().sent == 1
    (ack,) = smtp_sink.wait_for(1)
    assert smtp_sink.received[0].rcpt_tos == ("862087681011@fax.gateway.example",)
    assert case.number in str(ack["Subject"])
    assert [p.get_content_type() for p in ack.iter_attachments()] == ["application/pdf"]


@pytest.mark.ocr
def test_spool_pdf_without_sidecar_takes_the_number_from_the_file_name(tmp_path: Path) -> None:
    require_ocr()
    app = spool_app(tmp_path)
    drop(app, FAX_NAME.replace(".tif", ".pdf"), render_fax_pdf([[OUTAGE]]))
    assert source(app).drain() == 1
    (case,) = cases(app)
    assert case.priority == "P1"
    assert case.customer.contact("fax") == "+862087681011"
    assert names(spool_dir(app) / "done") == [FAX_NAME.replace(".tif", ".pdf")]


# ---------------------------------------------------------------- edge behaviour (fake OCR)


def test_json_sidecar_and_unsettled_files(tmp_path: Path) -> None:
    app = spool_app(tmp_path, FakeOcr(OUTAGE))
    path = drop(app, "incoming.tif", FAKE_TIFF.replace(b"\x00" * 64, b"\x01" * 64))
    drop(app, "incoming.json", json.dumps({"sender": "ACME +86 20 8768 1011", "pages": 1}).encode())
    fresh = source(app, now_offset=0.5)  # written half a second ago: the gateway may still write
    assert fresh.drain() == 0 and cases(app) == []
    assert source(app).drain() == 1
    (case,) = cases(app)
    assert case.customer.name == "ACME +86 20 8768 1011"
    assert not path.exists()


def test_corrupt_tiff_moves_to_failed_with_the_reason_and_is_kept_on_a_case(tmp_path: Path, caplog) -> None:
    app = spool_app(tmp_path, FakeOcr(error="cannot decode TIFF page 1"))
    drop(app, FAX_NAME, FAKE_TIFF)
    with caplog.at_level(logging.ERROR, logger="casegate.source.spool"):
        assert source(app).drain() == 1
    failed = spool_dir(app) / "failed"
    assert names(failed) == [FAX_NAME, FAX_NAME + ".error.txt"]
    note = (failed / (FAX_NAME + ".error.txt")).read_text()
    assert "damaged TIFF" in note
    assert any("damaged TIFF" in r.getMessage() and "failed" in r.getMessage() for r in caplog.records)
    (case,) = cases(app)
    assert case.number in note
    assert case.priority == "P2"  # flagged not read: [fax] default_priority
    assert event_details(app, case.number, "fax-not-read")
    with app.db.session() as s:
        att = repo.load_case(s, case.number).messages[0].attachments[0]
        assert app.blobs.get(att.sha256) == FAKE_TIFF


def test_file_that_is_no_image_still_becomes_a_case(tmp_path: Path) -> None:
    app = spool_app(tmp_path, FakeOcr(error="unsupported content type"))
    drop(app, "scan.tif", b"this is not a fax at all")
    source(app).drain()
    assert "not a TIFF, PDF or image" in (spool_dir(app) / "failed" / "scan.tif.error.txt").read_text()
    assert len(cases(app)) == 1


def test_bad_sidecar_goes_to_failed_but_the_fax_is_a_case(tmp_path: Path) -> None:
    app = spool_app(tmp_path, FakeOcr("打印机卡纸"))
    drop(app, "fax7.tif", render_tiff_or_fake())
    drop(app, "fax7.json", b'{"pages": "many"}')
    source(app).drain()
    assert names(spool_dir(app) / "failed") == ["fax7.json", "fax7.tif", "fax7.tif.error.txt"]
    assert "fax sidecar fax7.json" in (spool_dir(app) / "failed" / "fax7.tif.error.txt").read_text()
    assert len(cases(app)) == 1


def render_tiff_or_fake() -> bytes:
    """A valid (if blank) TIFF without needing a CJK font."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (64, 64), 1).save(buf, format="TIFF", compression="group4")
    return buf.getvalue()


def test_crash_between_commit_and_move_gives_duplicate_then_done_once(tmp_path: Path, monkeypatch) -> None:
    app = spool_app(tmp_path, FakeOcr(OUTAGE))
    drop(app, FAX_NAME, render_tiff_or_fake())

    class Killed(Exception):
        pass

    def die(name: str, data: bytes | None = None) -> None:
        if name == "spool.after_commit":
            raise Killed(name)  # in-process stand-in for SIGKILL (daemon/faults.py)

    monkeypatch.setattr(spool_mod, "fault_point", die)
    with pytest.raises(Killed):
        source(app).drain()
    assert names(spool_dir(app)) == [FAX_NAME]  # committed, but not moved
    assert len(cases(app)) == 1

    monkeypatch.undo()
    seen: list[IngestResult] = []
    restarted = source(app)
    restarted.on_ingested = seen.extend
    assert restarted.drain() == 1
    assert [r.outcome for r in seen] == ["duplicate"]
    assert seen[0].case_number == cases(app)[0].number
    assert names(spool_dir(app)) == ["done"] and names(spool_dir(app) / "done") == [FAX_NAME]
    assert len(cases(app)) == 1
    assert restarted.drain() == 0


def test_crash_with_a_real_kill(tmp_path: Path) -> None:
    """The same with SIGKILL at the fault point, in a child process."""
    import subprocess
    import sys
    import textwrap

    app = spool_app(tmp_path, FakeOcr(OUTAGE))
    drop(app, FAX_NAME, render_tiff_or_fake())
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from fax_support import FakeOcr, fax_app
        from test_spool import source, spool_app
        from pathlib import Path
        app = spool_app(Path({str(tmp_path)!r}), FakeOcr({OUTAGE!r}))
        source(app).drain()
    """)
    env = {**os.environ, "CASEGATE_FAULT": "spool.after_commit"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert names(spool_dir(app)) == [FAX_NAME] and len(cases(app)) == 1
    assert source(app).drain() == 1
    assert names(spool_dir(app) / "done") == [FAX_NAME] and len(cases(app)) == 1


def test_name_clash_in_done_keeps_both_files(tmp_path: Path) -> None:
    app = spool_app(tmp_path, FakeOcr(OUTAGE))
    drop(app, "fax1.tif", render_tiff_or_fake())
    source(app).drain()
    drop(app, "fax1.tif", render_tiff_or_fake() + b"\x00")  # the gateway reused the name
    source(app).drain()
    assert names(spool_dir(app) / "done") == ["fax1.1.tif", "fax1.tif"]
    assert len(cases(app)) == 2


def test_orphan_sidecar_is_moved_aside_after_an_hour(tmp_path: Path) -> None:
    app = spool_app(tmp_path, FakeOcr(OUTAGE))
    drop(app, "lost.json", b'{"sender": "02087681011"}')
    source(app).drain()
    assert names(spool_dir(app)) == ["lost.json"]
    source(app, now_offset=ORPHAN_SIDECAR_AGE + 1).drain()
    assert names(spool_dir(app) / "failed") == ["lost.json", "lost.json.error.txt"]


def test_temp_and_hidden_files_are_left_alone(tmp_path: Path) -> None:
    app = spool_app(tmp_path, FakeOcr(OUTAGE))
    drop(app, ".fax2.tif", render_tiff_or_fake())
    drop(app, "fax3.tif.part", render_tiff_or_fake())
    assert source(app).drain() == 0
    assert cases(app) == []


def test_check_document() -> None:
    assert check_document(render_tiff_or_fake()) is None
    assert check_document(b"") == "empty file"
    assert check_document(FAKE_TIFF).startswith("damaged TIFF")
    assert check_document(b"%PDF-1.4 garbage").startswith("damaged PDF")


def test_run_loop_stops_on_the_event(tmp_path: Path) -> None:
    app = spool_app(tmp_path, FakeOcr(OUTAGE))
    drop(app, "fax9.tif", render_tiff_or_fake())
    src = source(app)
    loop = source_loop(src)
    thread = loop.start()
    deadline = time.monotonic() + 10
    while not (spool_dir(app) / "done" / "fax9.tif").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    loop.stop()
    thread.join(5)
    assert not thread.is_alive()
    assert (spool_dir(app) / "done" / "fax9.tif").exists()
    with app.db.session() as s:
        assert s.execute(select(func.count()).select_from(Case)).scalar_one() == 1


# ---------------------------------------------------------------- poison files


def test_attempt_counter_survives_and_is_taken_back_when_the_database_is_down(tmp_path: Path, monkeypatch) -> None:
    from casegate.storage.db import DatabaseUnavailable

    app = spool_app(tmp_path, FakeOcr(OUTAGE))
    drop(app, FAX_NAME, render_tiff_or_fake())
    src = source(app)

    def down(inbound) -> IngestResult:  # type: ignore[no-untyped-def]
        raise DatabaseUnavailable("connection refused")

    monkeypatch.setattr(app.pipeline, "ingest", down)
    with pytest.raises(DatabaseUnavailable):
        src.drain()
    assert not (spool_dir(app) / spool_mod.STATE_FOLDER).exists()  # not the file's fault: no attempt counted
    monkeypatch.undo()

    # A counter left by processes that died on this very file: given up without being read again.
    sha = __import__("hashlib").sha256(render_tiff_or_fake()).hexdigest()
    src._set_attempts(FAX_NAME, sha, 3)
    assert src._attempts(FAX_NAME, "other content") == 0
    seen: list[IngestResult] = []
    src.on_ingested = seen.extend
    assert src.drain() == 1
    assert [r.outcome for r in seen] == ["quarantined"] and cases(app) == []
    assert names(spool_dir(app)) == ["failed"]
    assert names(spool_dir(app) / "failed") == [FAX_NAME, FAX_NAME + ".error.txt"]
    assert "gave up after 3" in (spool_dir(app) / "failed" / (FAX_NAME + ".error.txt")).read_text()
    assert not (spool_dir(app) / spool_mod.STATE_FOLDER).exists()


def test_poison_file_that_kills_the_daemon_is_set_aside(tmp_path: Path) -> None:
    """A file that SIGKILLs `casegate run` every time ends in failed/ and the
    quarantine after at most max_attempts crashes; the good file is a case."""
    from casegate.daemon.config import load_config
    from casegate.storage.models import Quarantine
    from daemon_proc import DaemonProcess, wait_until

    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "fax-POISON-PILL.tif").write_bytes(render_tiff_or_fake())
    old = time.time() - 60
    os.utime(spool / "fax-POISON-PILL.tif", (old, old))  # the oldest: taken first
    (spool / "fax-good.tif").write_bytes(render_tiff_or_fake() + b"\x00")
    config = {
        "service": {"address": "service@desk.example.cn"},
        "logging": {"level": "INFO"},
        "fax": {"ocr": False},
        "sources": [{"name": "faxspool", "kind": "spool", "path": "spool", "settle_time": "0s",
                     "poll_interval": "1s", "max_attempts": 3}],
    }

    def pending() -> list[str]:
        return [p.name for p in spool.iterdir() if p.is_file()]

    runs = crashes = 0
    while pending() and runs < 8:
        runs += 1
        d = DaemonProcess(tmp_path, config, env={"CASEGATE_FAULT": "spool.ingest~POISON-PILL"})
        d.start(wait_ready=False)
        try:
            wait_until(lambda: d.proc.poll() is not None or not pending(), timeout=30, what="crash or drain")
        finally:
            if d.proc.poll() is None:
                assert d.terminate() == 0
            else:
                crashes += d.wait_exit() == -9
    assert not pending(), f"still not drained after {runs} runs: {pending()}"
    assert (crashes, runs) == (3, 4)  # the poison file (taken first) cost exactly max_attempts crashes
    assert names(spool / "done") == ["fax-good.tif"]
    assert names(spool / "failed") == ["fax-POISON-PILL.tif", "fax-POISON-PILL.tif.error.txt"]
    assert "gave up after 3 unfinished attempts" in (spool / "failed" / "fax-POISON-PILL.tif.error.txt").read_text()
    assert not (spool / spool_mod.STATE_FOLDER).exists()
    app = App(load_config(str(tmp_path / "casegate.toml")))
    with app.db.session() as s:
        (q,) = s.execute(select(Quarantine)).scalars().all()
        assert q.source == "faxspool" and b"fax-POISON-PILL.tif" in q.raw and b"gave up after 3" in q.raw
        (case,) = s.execute(select(Case)).scalars().all()
        assert case.source_kind == "spool"
