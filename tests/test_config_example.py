"""config.example.toml: loads, changes nothing, documents every key, and its examples validate.

The file's convention (stated in its header): every active line is a
default; a line ``# key = value`` or ``# [table]`` (exactly one space after
``#``) is an optional key or an example entry that works when uncommented.
Prose comments never start with ``key =`` or ``[``, and examples meant only
for reading are indented (``#   url = ...``), so :func:`uncomment_examples`
can turn every example on at once.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from casegate.daemon.directory import vendors as vendors_mod
from casegate.daemon.runtime.app import App
from casegate.daemon.config import (
    KNOWN_EXTRA_SECTIONS,
    ClassificationConfig,
    Config,
    ConfigError,
    DatabaseConfig,
    ImapSourceConfig,
    LoggingConfig,
    OutgoingConfig,
    ServiceConfig,
    SmtpSourceConfig,
    SpoolSourceConfig,
    build_config,
    load_config,
    read_secret,
)
from casegate.daemon.fax.config import FaxConfig, load_fax_config
from casegate.daemon.runtime.health import MetricsConfig
from casegate.daemon.timekeeping.report_mail import ReportConfig
from casegate.daemon.timekeeping.policy import ComplaintPolicy, Policy, PolicyError, PriorityPolicy
from casegate.daemon.timekeeping.settings import SchedulerConfig
from casegate.daemon.directory.security import SecurityConfig
from casegate.daemon.directory.staff import StaffDirectory, StaffMember
from casegate.daemon.directory.vendors import Vendor, VendorDirectory
from casegate.parsers.fax import FaxPattern

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"

# "# key = value" or "# [table]" / "# [[table]]": an example line to switch on.
_EXAMPLE_LINE = re.compile(r"^# (?=\[|[A-Za-z_][\w-]*\s*=)", re.MULTILINE)
# A table header, active or commented: "[policy.P1]", "# [[sources]]".
_HEADER = re.compile(r"^\s*#?\s*\[\[?\s*([A-Za-z0-9_.\-]+)\s*\]\]?", re.MULTILINE)


def example_text() -> str:
    return EXAMPLE.read_text(encoding="utf-8")


def uncomment_examples(text: str) -> str:
    return _EXAMPLE_LINE.sub("", text)


def load_from(tmp_path: Path, text: str) -> Config:
    """Load ``text`` as <tmp_path>/casegate.toml, so data_dir "." is tmp_path."""
    path = tmp_path / "casegate.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(str(path))


def build_app(config: Config) -> App:
    app = App(config)
    assert app.config.data_dir == config.path.parent.resolve()  # type: ignore[union-attr]
    return app


def policy_summary(policy: Policy) -> dict[str, Any]:
    """The parts of a policy that matter, as plain comparable data."""
    cal = policy.calendar
    return {
        "calendar": (cal.timezone, cal.country, dict(cal.hours), cal.extra_holidays, cal.extra_workdays),
        "priorities": {
            name: (p.working_time, p.first_response, p.status_update_every, dict(p.resolution),
                   p.escalation, p.followups)
            for name, p in policy.priorities.items()
        },
        "complaint": policy.complaint,
        "close_after_silence": policy.close_after_silence,
        "reopen_window": policy.reopen_window,
        "survey_on_close": policy.survey_on_close,
    }


def assert_default_policy(policy: Policy) -> None:
    assert policy_summary(policy) == policy_summary(Policy.default())
    assert policy == Policy.default()


# ---------------------------------------------------------------- 1. loads, changes nothing


def test_example_loads_and_is_exactly_the_defaults(tmp_path: Path) -> None:
    config = load_from(tmp_path, example_text())
    defaults = build_config({})

    for section in ("service", "database", "classification", "outgoing", "logging", "sources"):
        assert getattr(config, section) == getattr(defaults, section), section
    assert config.sources == ()
    # Only sections whose defaults are spelled out; staff and vendors are examples.
    assert set(config.extra) == {"policy", "scheduler", "security", "fax", "templates", "metrics", "report"}
    assert MetricsConfig.from_config(config) == MetricsConfig()
    assert ReportConfig.from_config(config) == ReportConfig()

    assert_default_policy(Policy.from_dict(config.extra["policy"], str(config.path)))
    assert SchedulerConfig.from_config(config) == SchedulerConfig()
    assert SecurityConfig.from_config(config) == SecurityConfig()
    assert load_fax_config(config) == load_fax_config(defaults) == FaxConfig()
    assert len(StaffDirectory.from_config(config)) == 0
    assert VendorDirectory.from_config(config).vendors == ()

    app = build_app(config)  # every extra-section validator runs here
    try:
        assert_default_policy(app.policy)
        assert app.fax.cfg == FaxConfig()
        assert len(app.staff) == 0
        assert (tmp_path / "casegate.db").exists()
        assert (tmp_path / "secret.key").exists()  # no secret configured: generated in data_dir
    finally:
        app.close()


def test_example_tables_are_what_the_validators_see() -> None:
    """The active [policy] tables really are read (not ignored as, say, a typo'd table)."""
    data = tomllib.loads(example_text())
    assert set(data["policy"]) == {"close_after_silence", "reopen_window", "survey_on_close",
                                   "followup_min_gap", "resolution_role", "calendar", "P1", "complaint"}
    assert set(data["policy"]["calendar"]["hours"]) == {"mon", "tue", "wed", "thu", "fri", "sat", "sun"}
    # One changed figure is noticed: the example is not compared with itself only.
    data["policy"]["P1"]["first_response"] = "31m"
    assert Policy.from_dict(data["policy"], "x") != Policy.default()


# ---------------------------------------------------------------- 2. every key documented


def sections(text: str) -> dict[str, list[str]]:
    """Body text of every table, active or commented, by table name (arrays: one body each)."""
    out: dict[str, list[str]] = {}
    matches = list(_HEADER.finditer(text))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        out.setdefault(m.group(1), []).append(text[m.end():end])
    return out


def documented(text: str, table: str, key: str, *, body: str | None = None) -> bool:
    """``key`` appears as ``key =`` (commented or not) in ``table``, or as a sub-table ``[table.key]``."""
    tables = sections(text)
    bodies = [body] if body is not None else tables.get(table, [])
    pattern = re.compile(rf"^\s*#?\s*{re.escape(key)}\s*=", re.MULTILINE)
    return any(pattern.search(b) for b in bodies) or f"{table}.{key}" in tables


def source_block(text: str, kind: str) -> str:
    blocks = [b for b in sections(text).get("sources", []) if re.search(rf'kind\s*=\s*"{kind}"', b)]
    assert len(blocks) == 1, f"expected one example [[sources]] of kind {kind}"
    return blocks[0]


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def allowed_keys(probe: Any) -> list[str]:
    """The keys a validator accepts, read from its "unknown key" message."""
    with pytest.raises((ConfigError, PolicyError)) as info:
        probe()
    m = re.search(r"expected one of: ([^)]*)\)", str(info.value))
    assert m, str(info.value)
    return [k.strip() for k in m.group(1).split(",")]


# (table in the file, dataclass) for the sections built with build_section or alike.
DATACLASS_TABLES: list[tuple[str, type]] = [
    ("service", ServiceConfig),
    ("database", DatabaseConfig),
    ("classification", ClassificationConfig),
    ("outgoing", OutgoingConfig),
    ("logging", LoggingConfig),
    ("metrics", MetricsConfig),
    ("report", ReportConfig),
    ("scheduler", SchedulerConfig),
    ("security", SecurityConfig),
    ("fax", FaxConfig),
    ("fax.patterns", FaxPattern),
    ("staff", StaffMember),
    ("policy.complaint", ComplaintPolicy),
    *((f"policy.{p}", PriorityPolicy) for p in ("P1", "P2", "P3", "P4")),
]


@pytest.mark.parametrize(("table", "cls"), DATACLASS_TABLES, ids=[t for t, _ in DATACLASS_TABLES])
def test_every_dataclass_field_is_documented(table: str, cls: type) -> None:
    text = example_text()
    missing = [k for k in field_names(cls) if not documented(text, table, k)]
    assert not missing, f"config.example.toml: [{table}] does not document {missing} ({cls.__name__})"


@pytest.mark.parametrize(("kind", "cls"), [("imap", ImapSourceConfig), ("smtp", SmtpSourceConfig),
                                           ("spool", SpoolSourceConfig)])
def test_every_source_field_is_documented(kind: str, cls: type) -> None:
    text = example_text()
    block = source_block(text, kind)
    missing = [k for k in field_names(cls) if not documented(text, "sources", k, body=block)]
    assert not missing, f"config.example.toml: [[sources]] kind={kind} does not document {missing}"


def test_every_vendor_key_is_documented() -> None:
    text = example_text()
    # The Vendor dataclass holds the compiled regex as case_number; the key is case_number_regex.
    renamed = {"case_number": "case_number_regex"}
    keys = {renamed.get(k, k) for k in field_names(Vendor)}
    assert keys <= set(vendors_mod.KEYS), "Vendor field without a config key: update `renamed`"
    missing = [k for k in sorted(keys | set(vendors_mod.KEYS)) if not documented(text, "vendors", k)]
    assert not missing, f"config.example.toml: [[vendors]] does not document {missing}"


def test_every_policy_key_is_documented() -> None:
    text = example_text()
    probes = {
        "policy": lambda: Policy.from_dict({"zz_probe": 1}, "x"),
        "policy.calendar": lambda: Policy.from_dict({"calendar": {"zz_probe": 1}}, "x"),
        "policy.calendar.hours": lambda: Policy.from_dict({"calendar": {"hours": {"zz_probe": []}}}, "x"),
        "policy.complaint": lambda: Policy.from_dict({"complaint": {"zz_probe": 1}}, "x"),
        **{f"policy.{p}": (lambda p=p: Policy.from_dict({p: {"zz_probe": 1}}, "x"))
           for p in ("P1", "P2", "P3", "P4")},
    }
    missing = [f"{table}.{k}" for table, probe in probes.items()
               for k in allowed_keys(probe) if not documented(text, table, k)]
    assert not missing, f"config.example.toml does not document {missing}"
    # And the dataclass side: every Policy field but the P1..P4 mapping is a key or table.
    fields = [f for f in field_names(Policy) if f != "priorities"]
    assert all(documented(text, "policy", f) for f in fields), fields


def test_every_section_is_documented() -> None:
    text = example_text()
    names = allowed_keys(lambda: build_config({"zz_probe": {}}))
    assert set(KNOWN_EXTRA_SECTIONS) <= set(names)
    missing = [n for n in names if n not in sections(text)]
    assert not missing, f"config.example.toml has no [{'], ['.join(missing)}]"


def test_the_key_check_catches_a_missing_key() -> None:
    """The checks above are not vacuous: dropping one line is noticed."""
    text = example_text()
    assert documented(text, "outgoing", "retry_max")
    assert not documented(re.sub(r"(?m)^retry_max = .*\n", "", text), "outgoing", "retry_max")
    assert documented(text, "sources", "settle_time", body=source_block(text, "spool"))
    assert not documented(text, "sources", "settle_time", body=source_block(text, "imap"))


# ---------------------------------------------------------------- 3. the examples validate


@pytest.fixture
def all_examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Config, str]:
    """The example with every "# key = value" line switched on; secrets in env vars and tmp files."""
    text = uncomment_examples(example_text())
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    # Absolute secret paths go to tmp files, each holding a usable secret.
    etc = tmp_path / "etc"
    for prefix in ("/etc/casegate/", "/run/casegate/"):
        text = text.replace(f'"{prefix}', f'"{etc.as_posix()}/')
    for path in set(re.findall(rf'"({re.escape(etc.as_posix())}/[^"]+)"', text)):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text("file-secret-0123456789abcdef\n", encoding="utf-8")
    for name in set(re.findall(r'^\s*\w+_env\s*=\s*"(\w+)"', text, re.MULTILINE)):
        monkeypatch.setenv(name, f"env-secret-{name}-0123456789")
    # A holidays_file the example names, beside the configuration: an official schedule.
    for name in set(re.findall(r'^\s*holidays_file\s*=\s*"([^"]+)"', text, re.MULTILINE)):
        (data_dir / name).write_text('year = 2027\n[[holiday]]\nname = "元旦"\noff = ["2027-01-01"]\n',
                                     encoding="utf-8")
    return load_from(data_dir, text), text


def test_uncommented_examples_validate(all_examples: tuple[Config, str]) -> None:
    config, text = all_examples
    assert "\n# [[" not in text and "\n# name = " not in text  # the transform did switch them on

    kinds = [(s.name, s.kind, type(s)) for s in config.sources]
    assert kinds == [("service-mailbox", "imap", ImapSourceConfig), ("mta", "smtp", SmtpSourceConfig),
                     ("fax-spool", "spool", SpoolSourceConfig)]
    for src in config.sources:
        for key in ("password_env", "password_file", "oauth_token_file", "tls_cert_file", "auth_users_file"):
            value = getattr(src, key, None)
            if value and key != "password_env":
                assert Path(value).is_file(), (src.name, key, value)
        if isinstance(src, ImapSourceConfig):
            assert read_secret(src.password_env, src.password_file, src.name).startswith("env-secret-")
            assert read_secret(None, src.password_file, src.name).startswith("file-secret-")
    assert read_secret(config.database.password_env, config.database.password_file, "db")
    assert read_secret(config.outgoing.password_env, config.outgoing.password_file, "outgoing")

    staff = StaffDirectory.from_config(config)
    assert [(m.name, m.role) for m in staff] == [
        ("Wang Wei", "service-engineer"), ("Li Na", "support-supervisor"), ("Zhang Wei", "general-manager")]
    assert staff.by_name("王伟").email == "wang.wei@example.cn"  # type: ignore[union-attr]
    assert [m.name for m in staff.engineers_for("network")] == ["Wang Wei"]

    directory = VendorDirectory.from_config(config)
    huawei, schneider = directory.vendors
    assert directory.by_name("华为") is huawei and directory.by_name("施耐德") is schneider
    assert huawei.find_case_number("Re: your case # 12345678 was opened") == "12345678"
    assert schneider.find_case_number("工单号：2024081501 已创建") == "2024081501"
    assert huawei.reminder_every is not None and str(schneider.reminder_every) == "2wd"

    assert SchedulerConfig.from_config(config) == SchedulerConfig()
    security = SecurityConfig.from_config(config)
    assert security.secret_env == "CASEGATE_SECRET" and security.secret_file

    fax = load_fax_config(config)
    assert fax.timezone == "Asia/Shanghai"
    assert fax.gateway_address("+862087681011") == "862087681011@fax.gateway.example"
    (pattern,) = fax.patterns
    assert pattern.name == "office-pbx" and pattern.body_min_matches == 2

    # P2..P4 switched on: their documented values are exactly the defaults (a holidays_file adds a year).
    policy = dict(config.extra["policy"])
    calendar = dict(policy["calendar"])
    assert calendar.pop("holidays_file") == "holidays-2027.toml"
    assert Policy.from_dict(config.extra["policy"], str(config.path)).calendar.coverage(2027) == "file"
    assert_default_policy(Policy.from_dict({**policy, "calendar": calendar}, str(config.path)))
    assert set(config.extra["policy"]) >= {"P1", "P2", "P3", "P4"}

    app = build_app(config)
    try:
        assert len(app.staff) == 3
        assert app.fax.cfg.patterns == fax.patterns
    finally:
        app.close()


def test_fax_pattern_example_recognises_its_gateway(all_examples: tuple[Config, str]) -> None:
    from casegate.parsers.fax import extract_fax_info

    fax = load_fax_config(all_examples[0])
    info = extract_fax_info("[PBX] incoming fax from +86 20 8768 1011", "Pages: 2\nCaller ID: 02087681011\n",
                            [], [], fax.all_patterns, fax.default_region)
    assert info is not None and info.gateway == "office-pbx"
    assert info.sender_number == "+862087681011" and info.pages == 2
    by_name = extract_fax_info("scan", "", [], ["pbxfax_862087681011_1.pdf"], fax.all_patterns, "CN")
    assert by_name is not None and by_name.gateway == "office-pbx"
