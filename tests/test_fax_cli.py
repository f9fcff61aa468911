"""`casegate fax test FILE.eml`: what a gateway's mail is read as (issue 18)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from casegate.daemon.cli import fax as fax_cli
from fax_support import require_ocr
from faxgen import SAMPLES_DIR
from helpers import mail

CISCO = SAMPLES_DIR / "cisco-t37.eml"
PBX = SAMPLES_DIR / "pbx-de.eml"
CISCO_E164 = "+13412900100"
PBX_E164 = "+49000783135"


def run_fax_test(tmp_path: Path, capsys: pytest.CaptureFixture[str], *argv: str,
                 config: str = "") -> tuple[int, str]:
    path = tmp_path / "casegate.toml"
    path.write_text('[service]\naddress = "service@desk.example.cn"\ndata_dir = "."\n' + config, encoding="utf-8")
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    fax_cli.register(parser.add_subparsers(dest="command").add_parser)
    args = parser.parse_args(["--config", str(path), *argv])
    code = args.func(args)
    return code, capsys.readouterr().out


def test_fax_test_explains_the_cisco_fax(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_fax_test(tmp_path, capsys, "fax", "test", str(CISCO),
                             config='[fax]\ndefault_region = "US"\n')
    assert code == 0
    assert "gateway:           internet-fax" in out
    assert "number:            +13412900100 (written '3412900100', from the sender address" in out
    assert "pages:             1 (counted in the documents)" in out
    assert "fax image:         part 1 " in out and "application=faxbw" in out
    assert "in a fax source:   fax" in out
    assert "in a mailbox:      e-mail (its sender fax=3412900100@cisco-gw.example.com is not in [fax] gateway_senders)" in out


def test_fax_test_explains_the_pbx_fax(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_fax_test(tmp_path, capsys, "fax", "test", str(PBX),
                             config='[fax]\ngateway_senders = ["@gateway.example.de"]\n')
    assert code == 0
    assert "gateway:           pbx-fax (patterns: pbx-fax, generic)" in out
    assert "number:            +49000783135 (written '*49000783135'" in out
    assert "pages:             1 (as the gateway states)" in out
    assert "fax image:         part 2 'Fax_49000783135_20261120_1015.pdf' application/pdf" in out
    assert "in a mailbox:      fax (its sender" in out


def test_fax_test_json_and_region(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_fax_test(tmp_path, capsys, "fax", "test", "--json", "--region", "us", str(CISCO), str(PBX))
    assert code == 0
    cisco, pbx = json.loads(out)
    assert (cisco["gateway"], cisco["number"], cisco["pages"], cisco["default_region"]) == (
        "internet-fax", CISCO_E164, 1, "US")
    assert cisco["fax_documents"][0]["part"] == 1 and cisco["in_fax_source"]["fax"] is True
    assert cisco["in_mailbox"]["fax"] is False
    assert (pbx["gateway"], pbx["number"], pbx["raw_number"]) == ("pbx-fax", PBX_E164, "*49000783135")
    assert pbx["number_from"]["where"] == "sender address"


def test_fax_test_on_ordinary_mail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    eml = tmp_path / "mail.eml"
    eml.write_bytes(mail(subject="打印机卡纸"))
    code, out = run_fax_test(tmp_path, capsys, "fax", "test", str(eml), str(tmp_path / "missing.eml"))
    assert code == 65  # bad input (the missing file); the mail before it is still explained
    assert "recognised:        no" in out and "fax image:         none" in out
    assert "in a mailbox:      e-mail (its sender zhangsan@customer.cn is not in [fax] gateway_senders)" in out


@pytest.mark.ocr
def test_fax_test_ocr_reads_the_pages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_ocr()
    code, out = run_fax_test(tmp_path, capsys, "fax", "test", "--ocr", str(PBX))
    assert code == 0 and "OCR:               1 page(s) read" in out and "mail server" in out


def test_registered_as_casegate_fax_test(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from casegate.daemon.cli import main

    monkeypatch.chdir(tmp_path)  # embedded defaults: no casegate.toml here
    monkeypatch.delenv("CASEGATE_CONFIG", raising=False)
    assert main(["fax", "test", "--region", "US", str(CISCO)]) == 0
    assert f"number:            {CISCO_E164}" in capsys.readouterr().out


def test_mail_text_cannot_drive_the_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    eml = tmp_path / "evil.eml"
    eml.write_bytes(mail(subject="Fax from \x1b]52;c;ZXZpbA==\x07 +86 20 8768 1011", sender="fax@gw.example"))
    code, out = run_fax_test(tmp_path, capsys, "fax", "test", str(eml))
    assert code == 0 and "\x1b" not in out and "\x07" not in out
