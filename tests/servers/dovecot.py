"""A real Dovecot 2.3 IMAP server for integration tests.

Why a real server rather than a fake: the IMAP source has to cope with IDLE,
MOVE/UIDPLUS, UIDVALIDITY and dropped connections exactly as a production
server behaves, and a hand-written fake would only confirm our own
assumptions.  Dovecot starts in well under a second, so one per test session
is cheap.

Everything lives in a throw-away directory (config, ``base_dir``,
``state_dir``, log, passwd-file, maildirs), the server listens on a free
loopback port, and the packaged system service is never touched.

See ``/work/shared/notes/dovecot-in-tests.md`` for the settings that running
as root needs (CI runs as root).
"""

from __future__ import annotations

import atexit
import grp
import itertools
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from imapclient import IMAPClient

from .ports import ServerStartError, free_port, log_tail, port_accepts, wait_until

__all__ = ["DovecotServer", "DovecotUser", "ServerStartError"]

#: Users every server knows; names mirror the mailboxes casegate polls.
DEFAULT_USERS: dict[str, str] = {
    "service": "service-secret",
    "fax": "fax-secret",
    "engineer": "engineer-secret",
}

#: Folders that exist (auto-created and subscribed) for every user, besides INBOX.
DEFAULT_FOLDERS: tuple[str, ...] = ("Processed", "Failed", "Fax")

_USER_NAME = re.compile(r"^[A-Za-z0-9._@+-]+$")
_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]", re.IGNORECASE)


def find_dovecot() -> str | None:
    """Path of the ``dovecot`` master binary, or None when it is not installed.

    ``/usr/sbin`` is not on a non-root user's PATH on Debian, so look there too.
    """
    found = shutil.which("dovecot")
    if found:
        return found
    for candidate in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _live_group_members(pgid: int) -> list[int]:
    """Pids in process group ``pgid`` that are not zombies (Linux /proc scan)."""
    members: list[int] = []
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: fall back to "is anyone left at all"
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat_line = (entry / "stat").read_text()
        except OSError:
            continue
        # Format: pid (comm) state ppid pgrp ... ; comm may contain spaces.
        fields = stat_line[stat_line.rindex(")") + 2 :].split()
        if len(fields) >= 3 and fields[2] == str(pgid) and fields[0] != "Z":
            members.append(int(entry.name))
    return members


@dataclass(frozen=True)
class DovecotUser:
    """One IMAP account on a :class:`DovecotServer`.

    Handed to tests by the ``dovecot_user`` fixture; carries everything a
    daemon configuration needs (host, port, name, password) plus shortcuts
    that act on this user's mailbox.
    """

    server: "DovecotServer"
    name: str
    password: str

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    def client(self, timeout: float = 10.0) -> IMAPClient:
        return self.server.client(self.name, timeout=timeout)

    def append(
        self,
        folder: str,
        raw: bytes,
        flags: Sequence[bytes | str] = (),
    ) -> int | None:
        return self.server.append(self.name, folder, raw, flags=flags)

    def count(self, folder: str = "INBOX") -> int:
        return self.server.count(self.name, folder)

    def fetch_all(self, folder: str = "INBOX") -> list[bytes]:
        return self.server.fetch_all(self.name, folder)

    def clear(self) -> None:
        self.server.clear(self.name)


class DovecotServer:
    """Run a throw-away Dovecot master process on a free loopback port.

    The master runs in the foreground (``dovecot -F``) as our child in its own
    session, so we always know its pid, can stop it gracefully (SIGTERM) or
    simulate a crash by killing the whole process group (:meth:`kill`), and a
    :meth:`restart` reuses the same port and mail directory -- which is what
    reconnect tests need.

    Users live in one passwd-file each (``passwd.d/<user>``), so
    :meth:`add_user` works while the server is running.
    """

    def __init__(
        self,
        users: Mapping[str, str] | None = None,
        folders: Iterable[str] = DEFAULT_FOLDERS,
        *,
        separator: str = "/",
        host: str = "127.0.0.1",
        port: int | None = None,
        binary: str | None = None,
        start_timeout: float = 5.0,
        keep_dir: bool = False,
        oauth2_introspection_url: str | None = None,
        oauth2_settings: Mapping[str, str] | None = None,
    ) -> None:
        """Prepare (but do not start) a server.

        ``port=None`` picks a free port on first start; :meth:`restart` keeps it.
        ``keep_dir=True`` leaves the temp dir behind after :meth:`close` for
        post-mortem reading of ``dovecot.log``.

        ``oauth2_introspection_url`` additionally enables the XOAUTH2 and
        OAUTHBEARER mechanisms through Dovecot's ``oauth2`` passdb, which
        POSTs ``token=<access token>`` to that URL (RFC 7662 style) and
        expects ``{"active": true, "username": "<user>"}`` back.  The
        passwd-file users keep logging in with LOGIN/PLAIN as before.
        ``oauth2_settings`` overrides or adds lines of the generated
        ``dovecot-oauth2.conf.ext`` (e.g. ``{"username_attribute": "email"}``).
        """
        self.binary = binary or find_dovecot()
        if self.binary is None:
            raise FileNotFoundError("dovecot binary not found (apt-get install dovecot-imapd)")
        self.host = host
        self._fixed_port = port is not None
        self.port = port if port is not None else free_port(host)
        self.folders = tuple(folders)
        self.separator = separator
        self.start_timeout = start_timeout
        self.keep_dir = keep_dir
        self.oauth2_introspection_url = oauth2_introspection_url
        self.oauth2_settings = dict(oauth2_settings or {})
        self._users: dict[str, str] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._user_counter = itertools.count(1)
        #: Seconds from spawning the master to the first successful LOGIN.
        self.startup_seconds: float | None = None

        self.dir = Path(tempfile.mkdtemp(prefix="casegate-dovecot-"))
        # mkdtemp makes 0700; the unprivileged dovecot/dovenull processes
        # must traverse it when we run as root.
        self.dir.chmod(0o755)
        self.run_dir = self.dir / "run"
        self.state_dir = self.dir / "state"
        self.mail_dir = self.dir / "mail"
        self.config_path = self.dir / "dovecot.conf"
        self.passwd_dir = self.dir / "passwd.d"
        self.log_path = self.dir / "dovecot.log"
        self.stdout_path = self.dir / "master.out"
        self.oauth2_config_path = self.dir / "dovecot-oauth2.conf.ext"

        (
            self._mail_uid,
            self._mail_gid,
            self._login_user,
            self._internal_user,
            self._internal_group,
        ) = self._identities()
        if os.geteuid() == 0:
            self._check_traversable(self.dir)
        for directory in (self.run_dir, self.state_dir, self.mail_dir, self.passwd_dir):
            directory.mkdir(mode=0o755, exist_ok=True)
            directory.chmod(0o755)
        # Homes are created by Dovecot below mail/ as the mail user.
        os.chown(self.mail_dir, self._mail_uid, self._mail_gid)

        for name, password in (DEFAULT_USERS if users is None else users).items():
            self.add_user(name, password)
        self._write_config()
        atexit.register(self._atexit)

    # ------------------------------------------------------------------ setup

    @staticmethod
    def _identities() -> tuple[int, int, str, str, str]:
        """(mail uid, mail gid, login user, internal user, internal group).

        Dovecot refuses to run login processes as root, so as root we use the
        Debian package's ``dovenull``/``dovecot`` users; otherwise everything
        runs as ourselves.
        """
        if os.geteuid() == 0:
            try:
                dovecot = pwd.getpwnam("dovecot")
                pwd.getpwnam("dovenull")
            except KeyError as exc:
                raise ServerStartError(
                    "running as root needs the users 'dovecot' and 'dovenull' "
                    "(created by the dovecot-core package)"
                ) from exc
            return dovecot.pw_uid, dovecot.pw_gid, "dovenull", "dovecot", "dovecot"
        # Non-root cannot chown sockets to the packaged "dovecot" group either.
        me = pwd.getpwuid(os.getuid()).pw_name
        my_group = grp.getgrgid(os.getgid()).gr_name
        return os.getuid(), os.getgid(), me, me, my_group

    @staticmethod
    def _check_traversable(path: Path) -> None:
        """Fail early and clearly if an unprivileged user cannot reach ``path``.

        Otherwise Dovecot only logs an obscure EACCES on the first LOGIN.
        """
        for parent in [path, *path.parents]:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                raise ServerStartError(
                    f"{parent} is not world-traversable (mode {stat.filemode(mode)}); "
                    "the dovecot user cannot reach the mail folder. Set TMPDIR to a "
                    "directory like /tmp."
                )

    def _write_user(self, name: str, password: str) -> None:
        """Write the one-line passwd-file of ``name`` atomically.

        One file per user (``passwd.d/%u``) rather than one shared file:
        Dovecot notices changes to a passwd-file by its mtime in whole
        seconds and stats it at most once per second, so a user added in the
        same second as the previous lookup would be "unknown".  A new user's
        file is a path Dovecot has never seen, so it is read on first use.
        """
        tmp = self.passwd_dir / f".{name}.tmp"
        tmp.write_text(f"{name}:{{PLAIN}}{password}::::::\n")
        tmp.chmod(0o644)
        os.replace(tmp, self.passwd_dir / name)

    def _write_config(self) -> None:
        mailboxes = "\n".join(
            f'  mailbox "{folder}" {{\n    auto = subscribe\n  }}' for folder in self.folders
        )
        # A non-root master cannot chroot; Dovecot does not skip it by itself
        # (anvil then dies in a restart loop and every LOGIN stalls 2..8 s).
        chroot = "" if os.geteuid() == 0 else "  chroot =\n"
        unchrooted = (
            ""
            if os.geteuid() == 0
            else "".join(
                f"service {name} {{\n  chroot =\n}}\n"
                for name in ("ipc", "old-stats", "aggregator", "imap-urlauth-login")
            )
        )
        group = grp.getgrgid(self._mail_gid).gr_name
        mechanisms = "plain login"
        oauth2_passdb = ""
        passwd_mechanisms = ""
        if self.oauth2_introspection_url:
            mechanisms += " xoauth2 oauthbearer"
            self._write_oauth2_config()
            # Tokens go only to the oauth2 passdb, passwords only to the
            # passwd-file (the passdb "mechanisms" filter of Dovecot 2.3).
            passwd_mechanisms = "  mechanisms = plain login\n"
            oauth2_passdb = f"""
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {self.oauth2_config_path}
}}
"""
        config = f"""\
# Generated by tests/servers/dovecot.py -- throw-away test server.
protocols = imap
listen = {self.host}
base_dir = {self.run_dir}
state_dir = {self.state_dir}
log_path = {self.log_path}
info_log_path = {self.log_path}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
auth_verbose = yes
# Tests of wrong passwords must not stall the session: no failure delay, and
# no anvil auth penalty (without this, every LOGIN from 127.0.0.1 -- also the
# successful ones of later tests -- waits 2..15 s after a few failures).
# Dropping the anvil-auth-penalty socket (mode 0) disables the penalty.
auth_failure_delay = 0 secs
default_login_user = {self._login_user}
default_internal_user = {self._internal_user}
default_internal_group = {self._internal_group}
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:~/Maildir
# IDLE notifications come from inotify; the poll interval is only a fallback
# for filesystems without it, kept short so IDLE tests stay fast anyway.
mailbox_idle_check_interval = 1 secs

passdb {{
  driver = passwd-file
{passwd_mechanisms}  args = scheme=PLAIN username_format=%u {self.passwd_dir}/%u
}}{oauth2_passdb}
userdb {{
  driver = static
  args = uid={self._mail_uid} gid={group} home={self.mail_dir}/%u
}}

namespace inbox {{
  inbox = yes
  separator = {self.separator}
{mailboxes}
}}

{unchrooted}
service anvil {{
{chroot}  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}

service imap-login {{
{chroot}  inet_listener imap {{
    address = {self.host}
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""
        self.config_path.write_text(config)

    def _write_oauth2_config(self) -> None:
        """The oauth2 passdb's settings: RFC 7662 introspection by POST."""
        settings = {
            "introspection_mode": "post",
            "introspection_url": str(self.oauth2_introspection_url),
            "username_attribute": "username",
            "username_format": "%u",
            "active_attribute": "active",
            "active_value": "true",
            "timeout_msecs": "5000",
            **self.oauth2_settings,
        }
        self.oauth2_config_path.write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
        self.oauth2_config_path.chmod(0o644)

    # -------------------------------------------------------------- lifecycle

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """Pid of the Dovecot master (the same as ``run/master.pid``)."""
        return self._proc.pid if self.running and self._proc else None

    def start(self) -> "DovecotServer":
        """Start the master and return once a LOGIN succeeds.

        Retries with another free port if ours was taken in the meantime,
        unless the port was fixed by the caller or by a previous start.
        """
        if self.running:
            return self
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            try:
                self._start_once()
                break
            except ServerStartError:
                if attempt + 1 >= attempts or "Address already in use" not in log_tail(
                    self.log_path, 200
                ) + log_tail(self.stdout_path, 200):
                    raise
                self.port = free_port(self.host)
                self._write_config()
        # From now on the port is ours: restart() must come back on it.
        self._fixed_port = True
        return self

    def _start_once(self) -> None:
        started = time.monotonic()
        with open(self.stdout_path, "ab") as out:
            self._proc = subprocess.Popen(
                [self.binary, "-F", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Own session => own process group, so kill() can take the
                # master and all its children down at once.
                start_new_session=True,
                cwd=self.dir,
            )
        deadline = started + self.start_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc = None
                raise ServerStartError(self._failure("dovecot master exited during start"))
            if port_accepts(self.host, self.port):
                try:
                    self._probe_login()
                    self.startup_seconds = time.monotonic() - started
                    return
                except Exception as exc:  # auth or mail process may still be starting
                    last_error = exc
            time.sleep(0.02)
        self.kill()
        raise ServerStartError(
            self._failure(f"dovecot did not accept LOGIN within {self.start_timeout}s "
                          f"(last error: {last_error!r})")
        )

    def _probe_login(self) -> None:
        if not self._users:
            return
        name = next(iter(self._users))
        with self.client(name, timeout=2.0) as client:
            client.noop()

    def _failure(self, what: str) -> str:
        return (
            f"{what}; config {self.config_path}\n"
            f"--- {self.log_path.name} (tail) ---\n{log_tail(self.log_path)}\n"
            f"--- {self.stdout_path.name} (tail) ---\n{log_tail(self.stdout_path)}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful shutdown (SIGTERM to the master); mail stays on disk."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        # Children (imap-login holds the listening socket) must be gone before
        # a restart can bind the same port again.
        self._kill_group(proc.pid)
        proc.wait()
        self._proc = None

    def kill(self) -> None:
        """Hard stop, as in a crash: SIGKILL to master and all its children.

        Clients see their connections drop without a BYE.  ``start()`` works
        afterwards (Dovecot ignores the stale ``master.pid``).
        """
        proc = self._proc
        if proc is None:
            return
        self._kill_group(proc.pid)
        proc.wait()
        self._proc = None

    @staticmethod
    def _kill_group(pgid: int) -> None:
        """SIGKILL the process group and wait until no live member is left.

        Waiting matters: ``imap-login`` children inherit the listening socket,
        so a restart could not bind the port while one of them lingers.
        Zombies are ignored -- they hold no sockets, and how fast PID 1 reaps
        orphans is outside our control (it took ~1.6 s in the CI container).
        """
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return
        wait_until(lambda: not _live_group_members(pgid), timeout=5.0)

    def restart(self, graceful: bool = True) -> None:
        """Stop and start again on the same port with the same mail.

        ``graceful=False`` kills instead of SIGTERM: a crash-and-recover, and
        about a second faster (the master waits ~1 s for children on SIGTERM).
        """
        if graceful:
            self.stop()
        else:
            self.kill()
        self.start()

    def close(self) -> None:
        """Stop the server and remove its directory (unless ``keep_dir``).

        Without ``keep_dir`` the mail is deleted anyway, so the server is
        killed rather than shut down gracefully, saving ~1 s per server.
        """
        if self.keep_dir:
            self.stop()
        else:
            self.kill()
            shutil.rmtree(self.dir, ignore_errors=True)
        atexit.unregister(self._atexit)

    def _atexit(self) -> None:
        # Never leave a master behind if a caller forgot close().
        try:
            self.kill()
        except Exception:
            pass

    def __enter__(self) -> "DovecotServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ users

    @property
    def users(self) -> dict[str, str]:
        """Copy of the known users and their passwords."""
        return dict(self._users)

    def password(self, user: str) -> str:
        return self._users[user]

    def add_user(self, name: str | None = None, password: str | None = None) -> DovecotUser:
        """Create an account (works while running) and return it.

        Without ``name`` a fresh ``userN`` is generated -- a brand-new empty
        maildir, which is how the ``dovecot_user`` fixture isolates tests.
        """
        if name is None:
            name = f"user{next(self._user_counter)}"
            while name in self._users:
                name = f"user{next(self._user_counter)}"
        if not _USER_NAME.match(name) or name.startswith("."):
            raise ValueError(f"unsupported user name for the passwd-file: {name!r}")
        password = password or f"{name}-secret"
        self._users[name] = password
        self._write_user(name, password)
        return DovecotUser(self, name, password)

    def user(self, name: str) -> DovecotUser:
        """Handle for an existing user."""
        return DovecotUser(self, name, self._users[name])

    # -------------------------------------------------------- IMAP shortcuts

    def client(self, user: str = "service", *, timeout: float = 10.0) -> IMAPClient:
        """A new, logged-in IMAPClient for ``user`` (use it as a context manager)."""
        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=timeout)
        try:
            client.login(user, self._users[user])
        except Exception:
            client.shutdown()
            raise
        return client

    def append(
        self,
        user: str,
        folder: str,
        raw: bytes,
        flags: Sequence[bytes | str] = (),
    ) -> int | None:
        """APPEND ``raw`` to ``folder`` (created if missing); returns the new UID."""
        with self.client(user) as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            response = client.append(folder, raw, flags=tuple(flags))
        match = _APPENDUID.search(response if isinstance(response, bytes) else b"")
        return int(match.group(2)) if match else None

    def count(self, user: str, folder: str = "INBOX") -> int:
        """Number of messages in ``folder`` (STATUS MESSAGES, nothing is marked seen)."""
        with self.client(user) as client:
            return int(client.folder_status(folder, [b"MESSAGES"])[b"MESSAGES"])

    def fetch_all(self, user: str, folder: str = "INBOX") -> list[bytes]:
        """Raw bytes of every message in ``folder``, in UID order, without setting \\Seen."""
        with self.client(user) as client:
            client.select_folder(folder, readonly=True)
            uids = sorted(client.search("ALL"))
            if not uids:
                return []
            data = client.fetch(uids, [b"BODY.PEEK[]"])
            return [data[uid][b"BODY[]"] for uid in uids]

    def clear(self, user: str) -> None:
        """Expunge every message in every folder of ``user`` (folders stay).

        For tests that must use a fixed account (``service``, ``fax``...);
        tests that can use any account should prefer a fresh user instead.
        """
        with self.client(user) as client:
            for flags, _delim, name in client.list_folders():
                if b"\\Noselect" in flags or b"\\NonExistent" in flags:
                    continue
                client.select_folder(name)
                uids = client.search("ALL")
                if uids:
                    client.delete_messages(uids)
                    client.expunge()
                client.unselect_folder()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<DovecotServer {self.host}:{self.port} {state} dir={self.dir}>"
