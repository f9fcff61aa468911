"""`casegate doctor`: what is misconfigured, before the first mail is lost.

One line per check, ``ok``, ``warn`` or ``FAIL``, then a summary; exit 1
when any check failed. It reads and connects, and changes nothing, except
with ``--fix``, which creates an IMAP source's missing processed and failed
folders. It never migrates the database (`casegate run` does, at start).

Checks: the configuration, the database (reachable, migration level), each
IMAP source (login, the folders exist, IDLE offered), the SMTP relay (EHLO,
STARTTLS, AUTH), the rules, the working calendar's coverage of this year and
the next, the permissions of the secret and password files, and tesseract's
languages when a source receives faxes.
"""

from __future__ import annotations

import argparse
import smtplib
import ssl
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import imapclient

from ..clock import utcnow
from ..config import Config, ConfigError, ImapSourceConfig, SpoolSourceConfig, load_config, read_secret
from ..directory.security import SECRET_FILE_NAME, SecurityConfig
from ..fax.config import load_fax_config
from ..runtime.app import load_policy, rules_folder
from ..timekeeping.worktime import FALLBACK
from .common import EX_OK, AddCommand
from ...parsers.ocr import tesseract_available
from ...rules import check_folder
from ...storage import ops
from ...storage.db import Database

EX_FAILED = 1


@dataclass(frozen=True)
class Check:
    status: str  # ok | warn | FAIL
    name: str
    detail: str

    def line(self) -> str:
        return f"{self.status:<4} {self.name}: {self.detail}"


def ok(name: str, detail: str) -> Check:
    return Check("ok", name, detail)


def warn(name: str, detail: str) -> Check:
    return Check("warn", name, detail)


def fail(name: str, detail: str) -> Check:
    return Check("FAIL", name, detail)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


# ---------------------------------------------------------------- the checks


def check_database(config: Config) -> Iterator[Check]:
    db = Database(config.database_url)
    try:
        try:
            with db.session() as s:
                ops.ping(s)
        except Exception as exc:
            yield fail("database", f"{db.safe_url} does not answer: {_first_line(exc)}")
            return
        yield ok("database", f"{db.safe_url} answers")
        current, head, known = ops.schema_revision(db)
        if current == head:
            yield ok("database schema", f"at the newest revision ({head})")
        elif current is None:
            yield ok("database schema", f"empty; `casegate run` creates it at start (revision {head})")
        elif known:
            yield ok("database schema", f"at {current}; `casegate run` migrates it to {head} at start")
        else:
            yield fail("database schema", f"at {current}, which this casegate does not know "
                                          f"(newest here: {head}); a newer casegate migrated it")
    finally:
        db.dispose()


def _imap_secret(src: ImapSourceConfig) -> str:
    if src.auth == "xoauth2":
        if src.oauth_token_file:
            return Path(src.oauth_token_file).read_text(encoding="utf-8").strip()
        raise ConfigError("xoauth2 with oauth_token_command: run the command by hand to check it")
    return read_secret(src.password_env, src.password_file, f"source {src.name}") or ""


def check_imap(src: ImapSourceConfig, fix: bool) -> Iterator[Check]:
    name = f"imap {src.name}"
    where = f"{src.user}@{src.host}:{src.port}"
    try:
        secret = _imap_secret(src)
    except (ConfigError, OSError) as exc:
        yield fail(name, f"no password: {exc}")
        return
    context = ssl.create_default_context()
    try:
        client = imapclient.IMAPClient(src.host, port=src.port, ssl=src.tls == "tls",
                                       ssl_context=context if src.tls == "tls" else None,
                                       timeout=min(src.timeout.total_seconds(), 15.0))
    except Exception as exc:
        yield fail(name, f"cannot connect to {src.host}:{src.port}: {_first_line(exc)}")
        return
    try:
        try:
            if src.tls == "starttls":
                client.starttls(context)
            if src.auth == "xoauth2":
                client.oauth2_login(src.user, secret)
            else:
                client.login(src.user, secret)
        except Exception as exc:
            yield fail(name, f"login as {src.user} refused: {_first_line(exc)}")
            return
        yield ok(name, f"logged in as {where}")
        for role, folder in (("watched", src.folder), ("processed", src.processed_folder),
                             ("failed", src.failed_folder)):
            if client.folder_exists(folder):
                yield ok(name, f"{role} folder {folder!r} exists")
            elif fix and role != "watched":
                client.create_folder(folder)
                yield ok(name, f"{role} folder {folder!r} created (--fix)")
            else:
                hint = "" if role == "watched" else " (`casegate doctor --fix` creates it)"
                yield fail(name, f"{role} folder {folder!r} does not exist{hint}")
        if not src.idle:
            yield ok(name, f"IDLE not used (idle = false); polling every {src.poll_interval}")
        elif b"IDLE" in client.capabilities():
            yield ok(name, "IDLE offered")
        else:
            yield warn(name, f"the server does not offer IDLE; polling every {src.poll_interval}")
    finally:
        try:
            client.logout()
        except Exception:
            pass


def check_relay(config: Config) -> Iterator[Check]:
    out = config.outgoing
    if out.transport != "smtp":
        yield ok("relay", f"none: outgoing mail is written to the maildir {config.resolve(out.maildir)}")
        return
    name = f"relay {out.host}:{out.port}"
    timeout = min(out.timeout.total_seconds(), 15.0)
    try:
        smtp = (smtplib.SMTP_SSL(out.host, out.port, timeout=timeout, context=ssl.create_default_context())
                if out.tls == "tls" else smtplib.SMTP(out.host, out.port, timeout=timeout))
    except Exception as exc:
        yield fail(name, f"unreachable: {_first_line(exc)}")
        return
    try:
        code, _ = smtp.ehlo()
        if code != 250:
            yield fail(name, f"EHLO answered {code}")
            return
        yield ok(name, "EHLO accepted")
        if out.tls == "starttls":
            if not smtp.has_extn("starttls"):
                yield fail(name, "STARTTLS is not offered (outgoing.tls = \"starttls\")")
                return
            try:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            except Exception as exc:
                yield fail(name, f"STARTTLS failed: {_first_line(exc)}")
                return
            yield ok(name, "STARTTLS works")
        if out.user:
            if not smtp.has_extn("auth"):
                yield fail(name, f"AUTH is not offered (outgoing.user = {out.user!r})")
                return
            try:
                smtp.login(out.user, read_secret(out.password_env, out.password_file, "outgoing") or "")
            except (smtplib.SMTPException, ConfigError) as exc:
                yield fail(name, f"AUTH as {out.user} refused: {_first_line(exc)}")
                return
            yield ok(name, f"AUTH as {out.user} accepted")
    finally:
        try:
            smtp.quit()
        except Exception:
            pass


def check_rules(config: Config) -> Iterator[Check]:
    folder = rules_folder(config)
    if not folder.exists():
        yield fail("rules", f"{folder}: no such rule folder")
        return
    errors = check_folder(folder)
    if errors:
        yield fail("rules", f"{len(errors)} error(s) in {folder}; the first: {errors[0]}")
    else:
        yield ok("rules", f"{folder} loads without errors")


def check_calendar(config: Config) -> Iterator[Check]:
    calendar = load_policy(config).calendar
    today = utcnow().astimezone(calendar.tz).date()
    year = today.year
    sources = {y: calendar.coverage(y) for y in (year, year + 1)}
    if sources[year] == FALLBACK:
        yield fail("calendar", calendar.warning_for(year, "this year") or "")
    elif sources[year + 1] == FALLBACK:
        yield warn("calendar", calendar.warning_for(year + 1, f"from 1 January {year + 1}") or "")
    else:
        yield ok("calendar", f"holidays and adjusted working days known for {year} ({sources[year]}) "
                             f"and {year + 1} ({sources[year + 1]})")


def _mode_problem(path: Path) -> str | None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & stat.S_IROTH:
        return f"{path} is readable by everyone (mode {mode:04o}); chmod 600 (or 640 for the service's group)"
    if mode & stat.S_IWOTH:
        return f"{path} is writable by everyone (mode {mode:04o}); chmod 600"
    return None


def secret_files(config: Config) -> Iterator[tuple[str, Path]]:
    """Every file that holds a secret, with what it is for."""
    sec = SecurityConfig.from_config(config)
    if sec.secret_file:
        yield "security.secret_file", config.resolve(sec.secret_file)
    elif not sec.secret_env:
        yield "the generated reply-address secret", config.data_dir / SECRET_FILE_NAME
    if config.database.password_file:
        yield "database.password_file", Path(config.database.password_file)
    if config.outgoing.password_file:
        yield "outgoing.password_file", Path(config.outgoing.password_file)
    for src in config.sources:
        for key in ("password_file", "oauth_token_file", "auth_users_file", "tls_key_file"):
            value = getattr(src, key, None)
            if value:
                yield f"sources {src.name}.{key}", Path(value)


def check_secrets(config: Config) -> Iterator[Check]:
    found = False
    for what, path in secret_files(config):
        found = True
        if not path.exists():
            if what.startswith("the generated"):
                yield ok("secret", f"{path} does not exist yet; created with mode 0600 at first start")
            else:
                yield fail("secret", f"{what}: {path} does not exist")
            continue
        problem = _mode_problem(path)
        yield fail("secret", f"{what}: {problem}") if problem else ok("secret", f"{what}: {path} is private")
    if not found:
        yield ok("secret", "secrets come from the environment only")


def check_ocr(config: Config) -> Iterator[Check]:
    fax_sources = [s.name for s in config.sources
                   if isinstance(s, SpoolSourceConfig) or (isinstance(s, ImapSourceConfig) and s.fax)]
    if not fax_sources:
        yield ok("fax OCR", "no fax source configured")
        return
    fax = load_fax_config(config)
    if not fax.ocr:
        yield ok("fax OCR", "off (fax.ocr = false)")
        return
    if not tesseract_available(()):
        yield fail("fax OCR", "tesseract is not installed (apt-get install tesseract-ocr)")
        return
    missing = [lang for lang in fax.ocr_languages if not tesseract_available((lang,))]
    if missing:
        packages = " ".join(f"tesseract-ocr-{lang.replace('_', '-')}" for lang in missing)
        yield fail("fax OCR", f"tesseract lacks {', '.join(missing)} (apt-get install {packages})")
    else:
        yield ok("fax OCR", f"tesseract has {', '.join(fax.ocr_languages)}")


def run_checks(config: Config, fix: bool = False) -> Iterator[Check]:
    steps: list[Callable[[], Iterator[Check]]] = [
        lambda: check_database(config),
        *[(lambda s=s: check_imap(s, fix)) for s in config.sources if isinstance(s, ImapSourceConfig)],
        lambda: check_relay(config),
        lambda: check_rules(config),
        lambda: check_calendar(config),
        lambda: check_secrets(config),
        lambda: check_ocr(config),
    ]
    for step in steps:
        try:
            yield from step()
        except ConfigError as exc:
            yield fail("configuration", str(exc))
        except Exception as exc:  # a check that breaks is a failed check, the others still run
            yield fail("doctor", f"a check failed unexpectedly: {_first_line(exc)}")


def cmd_doctor(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(fail("configuration", str(exc)).line())
        print("1 check failed")
        return EX_FAILED
    print(ok("configuration", f"{config.path or 'embedded defaults'} is valid").line())
    failed = warned = 0
    for check in run_checks(config, fix=args.fix):
        print(check.line(), flush=True)
        failed += check.status == "FAIL"
        warned += check.status == "warn"
    if failed:
        print(f"{failed} check(s) failed, {warned} warning(s)")
        return EX_FAILED
    print(f"all checks passed, {warned} warning(s)")
    return EX_OK


def register(add: AddCommand) -> None:
    p = add("doctor", help="check the configuration, database, mailboxes, relay, rules, calendar and secrets")
    p.add_argument("--fix", action="store_true", help="create missing IMAP processed and failed folders")
    p.set_defaults(func=cmd_doctor)
