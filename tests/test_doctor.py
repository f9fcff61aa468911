"""`casegate doctor` against a real Dovecot and SMTP server: one line per
check, exit 1 on any failure, and a clean bill on a good setup."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from casegate.daemon.cli import main
from daemon_proc import to_toml
from servers.ports import free_port

pytestmark = pytest.mark.dovecot


def setup(tmp_path: Path, user, sink, *, secret_mode: int = 0o600, **imap) -> Path:
    secret = tmp_path / "reply.secret"
    secret.write_text("a-long-enough-test-secret-0123456789\n")
    secret.chmod(secret_mode)
    password = tmp_path / "imap.password"
    password.write_text(imap.pop("password", user.password) + "\n")
    password.chmod(0o600)
    source = {"name": "imap-main", "kind": "imap", "host": user.host, "port": user.port, "tls": "none",
              "user": user.name, "password_file": str(password)}
    source.update(imap)
    config = {
        "service": {"address": "service@desk.example.cn"},
        "outgoing": {"transport": "smtp", "host": sink.host, "port": sink.port},
        "security": {"secret_file": str(secret)},
        "sources": [source],
    }
    path = tmp_path / "casegate.toml"
    path.write_text(to_toml(config), encoding="utf-8")
    return path


def doctor(capsys, path: Path, *extra: str) -> tuple[int, list[str]]:
    code = main(["--config", str(path), "doctor", *extra])
    return code, capsys.readouterr().out.splitlines()


def failures(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("FAIL")]


def test_doctor_passes_on_a_good_setup(tmp_path, dovecot_user, smtp_sink, capsys) -> None:
    code, lines = doctor(capsys, setup(tmp_path, dovecot_user, smtp_sink))
    assert code == 0, "\n".join(lines)
    assert not failures(lines)
    text = "\n".join(lines)
    for expected in ("ok   configuration", "ok   database:", "ok   imap imap-main: logged in",
                     "processed folder 'Processed' exists", "failed folder 'Failed' exists",
                     "ok   imap imap-main: IDLE offered", f"ok   relay {smtp_sink.host}:{smtp_sink.port}: EHLO accepted",
                     "ok   rules:", "calendar:", "ok   secret: security.secret_file", "ok   fax OCR"):
        assert expected in text, text
    assert lines[-1].startswith("all checks passed")


def test_doctor_fails_on_a_wrong_imap_password(tmp_path, dovecot_user, smtp_sink, capsys) -> None:
    code, lines = doctor(capsys, setup(tmp_path, dovecot_user, smtp_sink, password="wrong"))
    assert code == 1
    assert [line for line in failures(lines) if "imap imap-main: login as" in line], lines


def test_doctor_fails_on_a_missing_folder_and_fix_creates_it(tmp_path, dovecot_user, smtp_sink, capsys) -> None:
    path = setup(tmp_path, dovecot_user, smtp_sink, processed_folder="Done")
    code, lines = doctor(capsys, path)
    assert code == 1
    assert failures(lines) == ["FAIL imap imap-main: processed folder 'Done' does not exist "
                               "(`casegate doctor --fix` creates it)"], lines
    code, lines = doctor(capsys, path, "--fix")
    assert code == 0, lines
    assert "ok   imap imap-main: processed folder 'Done' created (--fix)" in lines
    with dovecot_user.client() as c:
        assert c.folder_exists("Done")
    assert doctor(capsys, path)[0] == 0


def test_doctor_fails_on_an_unreachable_relay(tmp_path, dovecot_user, smtp_sink, capsys) -> None:
    path = setup(tmp_path, dovecot_user, smtp_sink)
    port = free_port()  # nobody listens there
    path.write_text(path.read_text().replace(f"port = {smtp_sink.port}", f"port = {port}"))
    code, lines = doctor(capsys, path)
    assert code == 1
    assert [line for line in failures(lines) if line.startswith(f"FAIL relay 127.0.0.1:{port}: unreachable")], lines


def test_doctor_fails_on_a_world_readable_secret(tmp_path, dovecot_user, smtp_sink, capsys) -> None:
    code, lines = doctor(capsys, setup(tmp_path, dovecot_user, smtp_sink, secret_mode=0o644))
    assert code == 1
    [line] = failures(lines)
    assert line.startswith("FAIL secret: security.secret_file:") and "readable by everyone (mode 0644)" in line


def test_doctor_reports_a_bad_configuration(tmp_path, capsys) -> None:
    path = tmp_path / "casegate.toml"
    path.write_text("[outgoing]\ntransport = \"pigeon\"\n")
    code, lines = doctor(capsys, path)
    assert code == 1
    assert lines[0].startswith("FAIL configuration:") and "outgoing.transport" in lines[0]
