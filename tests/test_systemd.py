"""Daemon hygiene: sd_notify readiness/watchdog, SIGTERM, SIGHUP, the unit file."""

from __future__ import annotations

import configparser
import signal
import socket
from pathlib import Path

from daemon_proc import DaemonProcess
from servers.ports import free_port

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "casegate.service"


def _config(port: int) -> dict:
    return {"logging": {"level": "INFO"},
            "sources": [{"name": "push", "kind": "smtp", "host": "127.0.0.1", "port": port}]}


def test_ready_watchdog_and_stopping_are_notified(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(15)
    d = DaemonProcess(tmp_path, _config(free_port()), env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
    d.start()
    got: list[str] = []
    try:
        while not any("WATCHDOG=1" in g for g in got) or not any("READY=1" in g for g in got):
            got.append(sock.recv(4096).decode())
    finally:
        assert d.terminate() == 0
    while True:
        got.append(sock.recv(4096).decode())
        if "STOPPING=1" in got[-1]:
            break
    sock.close()


def test_sighup_reloads_configuration_without_stopping(tmp_path: Path) -> None:
    port = free_port()
    d = DaemonProcess(tmp_path, _config(port)).start()
    try:
        text = d.config_path.read_text().replace('level = "INFO"', 'level = "DEBUG"')
        d.config_path.write_text(text)
        d.proc.send_signal(signal.SIGHUP)
        d.wait_for_log("configuration reloaded")
        d.config_path.write_text(text + "\n[bogus]\nx = 1\n")
        d.proc.send_signal(signal.SIGHUP)
        d.wait_for_log("reload refused")
        assert d.proc.poll() is None
    finally:
        assert d.terminate() == 0


def test_unit_file_declares_notify_watchdog_and_hardening() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # keep key case
    unit.read(UNIT)
    svc = unit["Service"]
    assert svc["Type"] == "notify"
    assert svc["Restart"] == "on-failure"
    assert svc["User"] == "casegate"
    assert svc["NoNewPrivileges"] == "yes"
    assert svc["ProtectSystem"] == "strict"
    assert svc["PrivateTmp"] == "yes"
    assert "/var/lib/casegate" in svc["ReadWritePaths"]
    assert int(svc["WatchdogSec"].rstrip("s")) > 0
    assert svc["ExecReload"].endswith("-HUP $MAINPID")
