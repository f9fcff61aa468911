"""IMAP source against a real Dovecot: XOAUTH2 logins and UIDVALIDITY changes.

XOAUTH2: Dovecot's ``oauth2`` passdb validates each access token by POSTing
it to an RFC 7662 introspection endpoint.  A tiny HTTP server on loopback
plays the identity provider (Entra ID / Google); IMAP is still real Dovecot.

UIDVALIDITY: deleting and recreating the watched folder gives it a new
UIDVALIDITY and restarts its UIDs at 1, exactly what a server migration or a
mailbox rebuild does to a production source.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from imapclient.exceptions import LoginError
from sqlalchemy import func, select

from casegate.daemon.runtime.app import App
from casegate.daemon.runtime.runner import source_loop
from casegate.daemon.sources.status import SourceStatus
from casegate.daemon.sources.imap import ImapSource
from casegate.storage.models import Case, SourceState
from helpers import make_app, mail
from servers.dovecot import DovecotServer, DovecotUser, find_dovecot
from daemon_proc import wait_until

pytestmark = pytest.mark.dovecot


# ------------------------------------------------------- identity provider


class Introspection:
    """RFC 7662 token introspection on 127.0.0.1: ``tokens`` maps token -> user."""

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                token = form.get("token", [""])[0]
                outer.requests.append(token)
                user = outer.tokens.get(token)
                reply = {"active": True, "username": user, "scope": "IMAP.AccessAsUser.All"} if user else {"active": False}
                body = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/oauth2/introspect"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="introspection", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def idp() -> Iterator[Introspection]:
    server = Introspection()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def oauth_dovecot(idp: Introspection) -> Iterator[DovecotServer]:
    """A Dovecot that takes XOAUTH2/OAUTHBEARER tokens (and LOGIN passwords)."""
    if find_dovecot() is None:
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
            pytest.fail("CI=true but dovecot not installed (apt-get install dovecot-imapd)", pytrace=False)
        pytest.skip("dovecot not installed (apt-get install dovecot-imapd)")
    server = DovecotServer(oauth2_introspection_url=idp.url)
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def oauth_user(oauth_dovecot: DovecotServer, idp: Introspection, request) -> tuple[DovecotUser, str]:
    """A fresh account and an access token the identity provider vouches for."""
    if not oauth_dovecot.running:
        oauth_dovecot.start()
    user = oauth_dovecot.add_user()
    token = f"ya29.{user.name}-{request.node.name}".replace("[", "-").replace("]", "")
    idp.tokens[token] = user.name
    return user, token


def imap_source(tmp_path: Path, user: DovecotUser, **cfg) -> tuple[App, ImapSource, list]:
    section = {
        "name": "imap-main", "kind": "imap", "host": user.host, "port": user.port, "tls": "none",
        "user": user.name, "idle": False, "timeout": "10s", **cfg,
    }
    app = make_app(tmp_path, sources=[section])
    results: list = []
    src = ImapSource(app.config.sources[0], app.pipeline, SourceStatus(app.db, "imap-main", "imap", app.clock),
                     on_ingested=results.extend)
    return app, src, results


def case_count(app: App) -> int:
    with app.db.session() as s:
        return s.execute(select(func.count()).select_from(Case)).scalar_one()


def ingest_one_via(src: ImapSource, app: App, user: DovecotUser) -> None:
    user.append("INBOX", mail(subject="邮箱令牌登录", sender="oauth@customer.cn"))
    src.client = src.connect()
    try:
        assert src.drain() == 1
    finally:
        src.release()
    assert user.count("INBOX") == 0 and user.count("Processed") == 1
    assert case_count(app) == 1


# ------------------------------------------------------------------ XOAUTH2


def test_xoauth2_token_from_file_logs_in_and_ingests(tmp_path, oauth_user, idp) -> None:
    user, token = oauth_user
    (tmp_path / "token").write_text(token + "\n")  # token helpers end files with a newline
    app, src, results = imap_source(tmp_path, user, auth="xoauth2", oauth_token_file=str(tmp_path / "token"))
    try:
        ingest_one_via(src, app, user)
    finally:
        app.close()
    assert [r.outcome for r in results] == ["new"]
    assert token in idp.requests  # Dovecot really asked the identity provider
    assert f"user=<{user.name}>, method=XOAUTH2" in user.server.log_path.read_text()


def test_xoauth2_token_printed_by_a_command(tmp_path, oauth_user, idp) -> None:
    user, token = oauth_user
    # The config value is one string, split with shlex like a shell would.
    command = shlex.join([sys.executable, "-c", f"print({token!r})"])
    app, src, results = imap_source(tmp_path, user, auth="xoauth2", oauth_token_command=command)
    try:
        ingest_one_via(src, app, user)
    finally:
        app.close()
    assert [r.outcome for r in results] == ["new"]
    assert token in idp.requests


def test_xoauth2_token_command_via_sh(tmp_path, oauth_user) -> None:
    user, token = oauth_user
    app, src, _ = imap_source(tmp_path, user, auth="xoauth2", oauth_token_command=f"sh -c 'echo {token}'")
    try:
        ingest_one_via(src, app, user)
    finally:
        app.close()


def test_password_login_still_works_next_to_xoauth2(oauth_user) -> None:
    user, _ = oauth_user
    with user.client() as client:  # LOGIN with the passwd-file password
        client.noop()


def test_rejected_token_is_a_login_error(tmp_path, oauth_user, idp) -> None:
    user, _ = oauth_user
    (tmp_path / "token").write_text("expired-token")
    app, src, _ = imap_source(tmp_path, user, auth="xoauth2", oauth_token_file=str(tmp_path / "token"))
    try:
        with pytest.raises(LoginError):
            src.connect()
    finally:
        app.close()
    assert "expired-token" in idp.requests


def test_token_of_another_user_is_rejected(tmp_path, oauth_user, oauth_dovecot, idp) -> None:
    user, token = oauth_user
    other = oauth_dovecot.add_user()
    (tmp_path / "token").write_text(token)  # valid, but issued to ``user``
    app, src, _ = imap_source(tmp_path, other, auth="xoauth2", oauth_token_file=str(tmp_path / "token"))
    try:
        with pytest.raises(LoginError):
            src.connect()
    finally:
        app.close()


def test_rejected_token_is_logged_retried_and_recovers(tmp_path, oauth_user, idp, caplog) -> None:
    """run(): "login failed" once at ERROR, status shows it, a refreshed token recovers."""
    user, token = oauth_user
    token_file = tmp_path / "token"
    token_file.write_text("expired-token")
    user.append("INBOX", mail(subject="令牌过期后恢复", sender="renew@customer.cn"))
    app, src, results = imap_source(tmp_path, user, auth="xoauth2", oauth_token_file=str(token_file),
                                    poll_interval="1s")
    caplog.set_level(logging.INFO, logger="casegate.source.imap")
    loop = source_loop(src)
    worker = loop.start()
    try:
        wait_until(lambda: any("login failed" in r.getMessage() for r in caplog.records), timeout=15,
                   what="login failed logged")
        failed = [r for r in caplog.records if "login failed" in r.getMessage()]
        assert failed[0].levelno == logging.ERROR
        assert f"login failed for {user.name}" in failed[0].getMessage()
        assert "retrying with backoff" in failed[0].getMessage()
        with app.db.session() as s:
            state = s.get(SourceState, "imap-main")
            assert state is not None and "login failed" in (state.last_error or "")
        assert user.count("INBOX") == 1  # nothing happened to the mail
        # The token helper refreshes the file; the next retry picks it up.
        token_file.write_text(token)
        wait_until(lambda: user.count("Processed") == 1, timeout=20, what="ingested after token refresh")
        wait_until(lambda: any("recovered" in r.getMessage() for r in caplog.records), timeout=5,
                   what="recovered logged")
    finally:
        loop.stop()
        worker.join(timeout=15)
        app.close()
    assert not worker.is_alive()
    assert [r.outcome for r in results] == ["new"]


# -------------------------------------------------------------- UIDVALIDITY


def recreate_folder(user: DovecotUser, folder: str) -> None:
    with user.client() as client:
        client.delete_folder(folder)
        client.create_folder(folder)


def uidvalidity(user: DovecotUser, folder: str) -> int:
    with user.client() as client:
        return int(client.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"])


def test_uidvalidity_change_between_sessions(tmp_path, dovecot_user, caplog) -> None:
    user = dovecot_user
    (tmp_path / "imap.pw").write_text(user.password)
    first = mail(subject="第一封：服务器宕机", sender="a@customer.cn", message_id="<first@customer.cn>")
    second = mail(subject="第二封：打印机", sender="b@customer.cn", message_id="<second@customer.cn>")
    third = mail(subject="第三封：网络中断", sender="c@customer.cn", message_id="<third@customer.cn>")
    assert user.append("Support", first) == 1  # creates the folder
    assert user.append("Support", second) == 2
    app, src, results = imap_source(tmp_path, user, password_file=str(tmp_path / "imap.pw"), folder="Support")
    caplog.set_level(logging.INFO, logger="casegate.source.imap")
    try:
        # Session 1: both messages become cases and leave the folder.
        src.client = src.connect()
        old_validity = src._uidvalidity
        assert src.drain() == 2
        src.release()
        assert [r.outcome for r in results] == ["new", "new"]
        assert user.count("Support") == 0 and user.count("Processed") == 2

        # Between sessions the folder is rebuilt: new UIDVALIDITY, UIDs from 1
        # again.  The first message re-appears (e.g. restored from a backup)
        # next to a genuinely new one, with the same UIDs as before.
        recreate_folder(user, "Support")
        assert uidvalidity(user, "Support") != old_validity
        assert user.append("Support", third) == 1
        assert user.append("Support", first) == 2

        # Session 2: the change is noticed and logged, the new message is
        # ingested once, the old one is recognised as a duplicate.
        src.client = src.connect()
        assert src._uidvalidity != old_validity
        assert src.drain() == 2
        assert src.drain() == 0
        src.release()
    finally:
        src.release()
    try:
        warnings = [r for r in caplog.records if "UIDVALIDITY changed" in r.getMessage()]
        assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
        assert f"{old_validity} -> " in warnings[0].getMessage()
        assert [(r.outcome, r.message_id) for r in results[2:]] == [
            ("new", "third@customer.cn"), ("duplicate", "first@customer.cn")]
        assert results[0].case_number == results[3].case_number  # same case, not a second one
        assert case_count(app) == 3
        assert user.count("Support") == 0 and user.count("Processed") == 4 and user.count("Failed") == 0
        with app.db.session() as s:
            assert s.get(SourceState, "imap-main").uidvalidity == src._uidvalidity
    finally:
        app.close()


def test_uidvalidity_change_seen_by_the_running_loop(tmp_path, dovecot_user, caplog) -> None:
    """The same through run(): the watched folder is deleted under a live session.

    Dovecot drops the session (BYE) once it notices; the loop reports the
    error, retries while the folder is missing, and after it is recreated
    comes back with the new UIDVALIDITY.  (The folder is recreated only after
    the session noticed: a delete+create between two commands of one session
    leaves that Dovecot 2.3 session on a stale index -- "duplicate transaction
    log sequence" -- which is a server-side state no client can see through.)
    """
    user = dovecot_user
    (tmp_path / "imap.pw").write_text(user.password)
    first = mail(subject="循环：第一封", sender="a@customer.cn", message_id="<loop-first@customer.cn>")
    user.append("Support", first)
    app, src, results = imap_source(tmp_path, user, password_file=str(tmp_path / "imap.pw"), folder="Support",
                                    poll_interval="1s")
    caplog.set_level(logging.INFO, logger="casegate.source.imap")
    loop = source_loop(src)
    worker = loop.start()
    try:
        wait_until(lambda: user.count("Processed") == 1, timeout=15, what="first ingested")
        old_validity = src._uidvalidity
        with user.client() as client:
            client.delete_folder("Support")
        wait_until(lambda: any(r.levelno == logging.ERROR for r in caplog.records), timeout=15,
                   what="the live session noticed the deleted folder")
        with user.client() as client:
            client.create_folder("Support")
        user.append("Support", mail(subject="循环：第二封", sender="b@customer.cn",
                                    message_id="<loop-second@customer.cn>"))
        user.append("Support", first)
        wait_until(lambda: user.count("Processed") == 3, timeout=30, what="ingested after the folder was rebuilt")
        wait_until(lambda: any("UIDVALIDITY changed" in r.getMessage() for r in caplog.records), timeout=5,
                   what="UIDVALIDITY warning")
    finally:
        loop.stop()
        worker.join(timeout=15)
    try:
        assert not worker.is_alive()
        assert src._uidvalidity != old_validity
        assert any("recovered" in r.getMessage() for r in caplog.records)
        assert user.count("Support") == 0
        assert sorted(r.outcome for r in results) == ["duplicate", "new", "new"]
        assert case_count(app) == 2
    finally:
        app.close()
