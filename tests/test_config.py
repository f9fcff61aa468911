"""Configuration: lookup order, embedded defaults, and errors that name the
file and the dotted key before anything runs."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from casegate.daemon.config import ConfigError, find_config_path, load_config, read_secret

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path: Path) -> None:
    """No inherited $CASEGATE_CONFIG, and a working directory of our own."""
    monkeypatch.delenv("CASEGATE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def marker(address: str) -> str:
    return f'[service]\naddress = "{address}"\n'


# ------------------------------------------------------------------ lookup order


def test_explicit_config_wins_over_environment_and_cwd(tmp_path: Path, monkeypatch) -> None:
    explicit = write(tmp_path / "a" / "explicit.toml", marker("explicit@x.cn"))
    env = write(tmp_path / "b" / "env.toml", marker("env@x.cn"))
    write(tmp_path / "casegate.toml", marker("cwd@x.cn"))
    monkeypatch.setenv("CASEGATE_CONFIG", str(env))
    cfg = load_config(str(explicit))
    assert cfg.service.address == "explicit@x.cn"
    assert cfg.path == explicit
    # relative paths hang off the config file's folder
    assert cfg.data_dir == explicit.parent.resolve()


def test_environment_variable_wins_over_cwd(tmp_path: Path, monkeypatch) -> None:
    env = write(tmp_path / "b" / "env.toml", marker("env@x.cn"))
    write(tmp_path / "casegate.toml", marker("cwd@x.cn"))
    monkeypatch.setenv("CASEGATE_CONFIG", str(env))
    assert find_config_path(None) == env
    assert load_config().service.address == "env@x.cn"


def test_casegate_toml_in_the_working_directory(tmp_path: Path) -> None:
    local = write(tmp_path / "casegate.toml", marker("cwd@x.cn"))
    assert find_config_path(None) == local
    assert load_config().service.address == "cwd@x.cn"


def test_embedded_defaults_without_any_file(tmp_path: Path) -> None:
    assert find_config_path(None) is None
    cfg = load_config()
    assert cfg.path is None
    assert cfg.sources == ()
    assert cfg.database_url == "sqlite:///" + str((tmp_path / "casegate.db").resolve())
    assert cfg.outgoing.transport == "maildir"
    assert cfg.resolve(cfg.outgoing.maildir) == (tmp_path / "outbox").resolve()
    assert cfg.classification.default_priority == "P3"


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape(str(tmp_path / "nope.toml"))):
        load_config(str(tmp_path / "nope.toml"))


def test_environment_variable_pointing_nowhere_is_an_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CASEGATE_CONFIG", str(tmp_path / "gone.toml"))
    write(tmp_path / "casegate.toml", marker("cwd@x.cn"))  # not silently used instead
    with pytest.raises(ConfigError, match="gone.toml"):
        load_config()


# ------------------------------------------------------------------ errors


BAD = {
    "unknown key": ('[outgoing]\ntransprt = "smtp"\n', r"outgoing\.transprt", "unknown key"),
    "unknown key in a source": (
        '[[sources]]\nname = "push"\nkind = "smtp"\nprot = 25\n', r"sources\[0\]\.prot", "unknown key"),
    "wrong type": ('[service]\nmax_auto_mails_per_hour = "ten"\n',
                   r"service\.max_auto_mails_per_hour", "expected an integer"),
    "wrong type bool": ('[outgoing]\nport = true\n', r"outgoing\.port", "expected an integer"),
    "wrong type list": ('[[sources]]\nname = "push"\nkind = "smtp"\naccept_domains = "a.cn"\n',
                        r"sources\[0\]\.accept_domains", "expected a list"),
    "unknown source kind": ('[[sources]]\nname = "in"\nkind = "pop3"\n',
                            r"sources\[0\]( \(in\))?\.kind", "pop3"),
    "duplicate source name": (
        '[[sources]]\nname = "in"\nkind = "smtp"\n[[sources]]\nname = "in"\nkind = "spool"\n',
        r"sources\[1\]( \(in\))?\.name", "duplicate source name"),
    "inline password": ('[outgoing]\ntransport = "smtp"\npassword = "hunter2"\n',
                        r"outgoing\.password", "password_env"),
    "inline password in a source": (
        '[[sources]]\nname = "in"\nkind = "imap"\npassword = "hunter2"\n', r"sources\[0\]\.password", "password_env"),
    "case number without seq": ('[service]\ncase_number_format = "SR-{year}"\n',
                                r"service\.case_number_format", r"\{seq\}"),
    "case number with unknown field": ('[service]\ncase_number_format = "SR-{yr}-{seq}"\n',
                                       r"service\.case_number_format", "yr"),
    "bad duration": ('[outgoing]\ntimeout = "5 parsecs"\n', r"outgoing\.timeout", "duration"),
    "bad duration in a source": ('[[sources]]\nname = "s"\nkind = "spool"\npoll_interval = "soon"\n',
                                 r"sources\[0\]\.poll_interval", "duration"),
    "bad choice": ('[classification]\ndefault_priority = "P7"\n', r"classification\.default_priority", "P1"),
    "unknown section": ('[outgoin]\nport = 25\n', r"outgoin", "unknown section"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_errors_name_the_file_and_the_dotted_key(tmp_path: Path, case: str) -> None:
    text, key, what = BAD[case]
    path = write(tmp_path / "etc" / "casegate.toml", text)
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert re.search(key, message), message
    assert re.search(what, message), message
    assert "hunter2" not in message  # a rejected password is never echoed


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "casegate.toml", "[service\naddress = 1\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: invalid TOML")):
        load_config(str(path))


def test_durations_and_lists_are_converted(tmp_path: Path) -> None:
    path = write(tmp_path / "casegate.toml", (
        '[outgoing]\ntimeout = "90s"\nretry_max = "2h"\n'
        '[[sources]]\nname = "push"\nkind = "lmtp"\naccept_domains = ["a.cn", "b.cn"]\n'
    ))
    cfg = load_config(str(path))
    assert cfg.outgoing.timeout == timedelta(seconds=90)
    assert cfg.outgoing.retry_max == timedelta(hours=2)
    assert cfg.source("push").accept_domains == ("a.cn", "b.cn")


# ------------------------------------------------------------------ secrets


def test_password_env_missing_variable_names_the_variable(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("CG_TEST_DB_PASSWORD", raising=False)
    path = write(tmp_path / "casegate.toml", (
        '[database]\nurl = "postgresql+psycopg://casegate@db.example/casegate"\n'
        'password_env = "CG_TEST_DB_PASSWORD"\n'
    ))
    cfg = load_config(str(path))
    with pytest.raises(ConfigError, match="CG_TEST_DB_PASSWORD"):
        cfg.database_url  # noqa: B018 - read when the database is opened
    monkeypatch.setenv("CG_TEST_DB_PASSWORD", "s3cret/@x")
    url = cfg.database_url
    from sqlalchemy.engine import make_url

    assert make_url(url).password == "s3cret/@x"
    assert make_url(url).username == "casegate"


def test_password_env_missing_variable_for_an_imap_source(monkeypatch) -> None:
    monkeypatch.delenv("CG_TEST_IMAP_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="CG_TEST_IMAP_PASSWORD"):
        read_secret("CG_TEST_IMAP_PASSWORD", None, "sources[0] (mail)")


def test_password_file_is_read_and_stripped(tmp_path: Path) -> None:
    secret = write(tmp_path / "secrets" / "db.pw", "p4ss word\n")
    path = write(tmp_path / "casegate.toml", (
        '[database]\nurl = "postgresql+psycopg://casegate@db.example/casegate"\n'
        f'password_file = "{secret}"\n'
    ))
    from sqlalchemy.engine import make_url

    assert make_url(load_config(str(path)).database_url).password == "p4ss word"


def test_unreadable_password_file_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "casegate.toml", (
        '[database]\nurl = "postgresql+psycopg://casegate@db.example/casegate"\n'
        f'password_file = "{tmp_path / "missing.pw"}"\n'
    ))
    with pytest.raises(ConfigError, match="missing.pw"):
        load_config(str(path)).database_url  # noqa: B018


def test_imap_source_without_any_password_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path / "casegate.toml", '[[sources]]\nname = "mail"\nkind = "imap"\nuser = "svc"\n')
    with pytest.raises(ConfigError, match=r"sources\[0\] \(mail\).*password_env or password_file"):
        load_config(str(path))


# ------------------------------------------------------------------ shipped example


def test_config_example_loads() -> None:
    example = REPO / "config.example.toml"
    cfg = load_config(str(example))
    assert cfg.path == example
    # what is active in the example is the documented defaults
    assert cfg.service.case_number_format == "SR-{year}-{seq:06d}"
    assert cfg.database.url == "sqlite:///casegate.db"
    assert cfg.outgoing.transport == "maildir"
