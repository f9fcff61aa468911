"""Staff authentication per mailbox (issue 11, finding 7), through the real pipeline.

An engineer's commands count only when the engineer proves the mail is
theirs: a signed reply address, or an Authentication-Results header from a
trusted authserv-id, at the top of the header, that shows authenticated
submission (``auth=pass smtp.auth=<the engineer>``). DKIM/SPF/DMARC prove a
domain; they count only with ``[security] accept_domain_authentication``.

Each finding is a test here: a domain pass no longer lets an intern act as
any engineer of the domain; headers below an untrusted one (which the
sender may have written) no longer count; quoted local parts are read
whole. Positive controls: the real engineer's authenticated submission,
the signed reply address, and domain proof where the admin accepts it.
"""

from __future__ import annotations

import json

import pytest

from casegate.daemon.config import ConfigError, build_config
from casegate.daemon.directory.security import SecurityConfig
from casegate.daemon.inbound import Inbound, Source
from workflow_support import ENGINEER, SERVICE, case_events, load, make_app, open_case, signed_reply_to, staff_mail

TRUSTED = "mx.desk.example.cn"
INTERN = "intern.li@desk.example.cn"  # a mailbox of the staff's own domain, not staff
CLI = Source("cli", "file")  # what `casegate ingest FILE` hands the pipeline
TARGET = "P4"  # the priority the engineer's command asks for


def build(tmp_path, smtp_sink, **security):
    return make_app(tmp_path, smtp_sink, security={"trusted_authserv_ids": [TRUSTED], **security})


@pytest.fixture
def app(tmp_path, smtp_sink):
    app = build(tmp_path, smtp_sink)
    yield app
    app.close()


@pytest.fixture
def domain_app(tmp_path, smtp_sink):
    """An admin who accepts domain-level proof (and its risk)."""
    app = build(tmp_path, smtp_sink, accept_domain_authentication=True)
    yield app
    app.close()


@pytest.fixture
def case(request, smtp_sink):
    """A new case in whichever app the test uses; its priority is not TARGET yet."""
    app = request.getfixturevalue("domain_app" if "domain_app" in request.fixturenames else "app")
    number, note = open_case(app, smtp_sink)
    assert load(app, number).priority != TARGET
    return number, note


def command_mail(number: str, *top: str, own: str | None = None, sender: str = ENGINEER, to: str = SERVICE) -> bytes:
    """The engineer's "#priority" mail.

    ``top``: Authentication-Results values prepended as the receiving hops
    do, topmost first. ``own``: one written inside the sender's own header
    block (below every hop's header).
    """
    raw = staff_mail(sender, f"#priority {TARGET}\n#note checked", to=to, subject=f"Re: [{number}] 交换机故障",
                     headers={"Authentication-Results": own} if own else None)
    return "".join(f"Authentication-Results: {value}\n" for value in top).encode() + raw


def applied(app, number: str, raw: bytes) -> bool:
    res = app.pipeline.ingest(Inbound(raw, CLI))
    assert res.outcome == "reply" and res.case_number == number, res
    return load(app, number).priority == TARGET


def refusal(app, number: str) -> str:
    (event,) = [e for e in case_events(app, number) if e[0] == "command-refused"]
    return json.loads(event[4])["reason"]


def proof(app, number: str) -> str:
    (event,) = [e for e in case_events(app, number) if e[0] == "note"]
    return event[4]


# ----------------------------------------------------------- positive controls


@pytest.mark.parametrize("identity", [
    "wang.wei@desk.example.cn",
    "wang.wei@DESK.Example.CN.",  # the domain's case and a root dot do not matter
    '"wang.wei"@desk.example.cn',  # a quoted local part is its content
])
def test_authenticated_submission_proves_the_engineer(app, case, identity) -> None:
    number, _ = case
    raw = command_mail(number, f"{TRUSTED}; auth=pass (cram-md5) smtp.auth={identity}")
    assert applied(app, number, raw)
    assert "auth=pass smtp.auth=" in proof(app, number) and f"by {TRUSTED}" in proof(app, number)


def test_signed_reply_address_still_proves_the_engineer(app, case) -> None:
    number, note = case
    assert applied(app, number, command_mail(number, to=signed_reply_to(note)))
    assert "reply address" in proof(app, number)


def test_domain_pass_counts_where_the_admin_accepts_it(domain_app, case) -> None:
    number, _ = case
    raw = command_mail(number, f"{TRUSTED}; dkim=pass header.d=desk.example.cn header.s=sel")
    assert applied(domain_app, number, raw)
    assert "domain-level" in proof(domain_app, number)


def test_trusted_headers_at_the_top_count_down_to_the_first_untrusted_one(app, case) -> None:
    # Two trusted hops (submission, then the border), then a hop we do not trust.
    number, _ = case
    raw = command_mail(number, f"{TRUSTED}; spf=none smtp.mailfrom=desk.example.cn",
                       f"{TRUSTED}; auth=pass smtp.auth=wang.wei@desk.example.cn",
                       "relay.partner.example; none")
    assert applied(app, number, raw)


# ------------------------------------------- a domain pass is not a mailbox


@pytest.mark.parametrize("result", [
    f"spf=pass smtp.mailfrom={INTERN}",  # the finding: the intern's own SPF pass
    "dkim=pass header.d=desk.example.cn header.s=sel",
    "dkim=pass header.i=@desk.example.cn",
    "dmarc=pass header.from=desk.example.cn",
])
def test_domain_pass_does_not_prove_a_mailbox(app, case, result) -> None:
    number, _ = case
    assert not applied(app, number, command_mail(number, f"{TRUSTED}; {result}"))
    assert "domain-level" in refusal(app, number)


def test_authenticated_submission_as_someone_else_is_refused(domain_app, case) -> None:
    # Even where domain proof is accepted: the trusted MTA says the intern
    # submitted this mail with the engineer's From.
    number, _ = case
    raw = command_mail(number, f"{TRUSTED}; auth=pass smtp.auth={INTERN}; dkim=pass header.d=desk.example.cn")
    assert not applied(domain_app, number, raw)
    assert INTERN in refusal(domain_app, number)


def test_local_part_is_compared_exactly(app, case) -> None:
    number, _ = case
    raw = command_mail(number, f"{TRUSTED}; auth=pass smtp.auth=Wang.Wei@desk.example.cn")
    assert not applied(app, number, raw)
    assert "Wang.Wei@desk.example.cn" in refusal(app, number)


def test_bare_user_name_needs_auth_user_domain(tmp_path, smtp_sink) -> None:
    for user_domain, ok in ((None, False), ("desk.example.cn", True), ("other.example.cn", False)):
        extra = {"auth_user_domain": user_domain} if user_domain else {}
        app = build(tmp_path / (user_domain or "none"), smtp_sink, **extra)
        try:
            number, _ = open_case(app, smtp_sink)
            assert applied(app, number, command_mail(number, f"{TRUSTED}; auth=pass smtp.auth=wang.wei")) is ok
            if user_domain is None:
                assert "security.auth_user_domain" in refusal(app, number)
        finally:
            app.close()


# ----------------------------------------- only the topmost trusted headers


@pytest.mark.parametrize("forged", [
    f"{TRUSTED}; auth=pass smtp.auth={ENGINEER}",
    f"{TRUSTED}; dkim=pass header.d=desk.example.cn",
])
@pytest.mark.parametrize("where", ["top", "own"])
def test_trusted_header_below_an_untrusted_one_does_not_count(domain_app, case, forged, where) -> None:
    # The topmost header is from a hop we do not trust; the trusted-looking one
    # under it may have been written by the sender.
    number, _ = case
    if where == "top":
        raw = command_mail(number, "relay.partner.example; none", forged)
    else:
        raw = command_mail(number, "relay.partner.example; spf=pass smtp.mailfrom=partner.example", own=forged)
    assert not applied(domain_app, number, raw)
    assert "'relay.partner.example'" in refusal(domain_app, number)


def test_unreadable_header_at_the_top_ends_the_walk(app, case) -> None:
    number, _ = case
    raw = command_mail(number, f"{TRUSTED}; auth=pass (unterminated", f"{TRUSTED}; auth=pass smtp.auth={ENGINEER}")
    assert not applied(app, number, raw)
    assert "unreadable" in refusal(app, number)


# --------------------------------------------------------------- quoting


def test_quoted_local_part_is_read_whole(domain_app, case) -> None:
    # DKIM i= of the attacker's own domain, with a local part that a parser
    # splitting on spaces reads as a second property "header.d=desk.example.cn".
    number, _ = case
    raw = command_mail(number, f'{TRUSTED}; dkim=pass header.i="x header.d=desk.example.cn "@attacker.example')
    assert not applied(domain_app, number, raw)
    assert "domain-level" not in refusal(domain_app, number)  # no pass for desk.example.cn was seen at all


def test_quoted_smtp_auth_naming_the_engineer_inside_is_refused(app, case) -> None:
    number, _ = case
    raw = command_mail(number, f'{TRUSTED}; auth=pass smtp.auth="intern.li smtp.auth={ENGINEER}"@desk.example.cn')
    assert not applied(app, number, raw)
    assert "authenticated submission as" in refusal(app, number)


def test_encoded_words_are_not_decoded_into_results(app, case) -> None:
    # A MAIL FROM local part is atext, so "=?utf-8?q?...?=" is a valid one, and
    # the trusted MTA copies it into smtp.mailfrom. Decoded, the header would
    # read "smtp.mailfrom=x; auth=pass smtp.auth=<engineer> smtp.x=@evil.example".
    number, _ = case
    word = "=?utf-8?q?x=3B_auth=3Dpass_smtp.auth=3Dwang.wei=40desk.example.cn_smtp.x=3D?="
    raw = command_mail(number, f"{TRUSTED}; spf=pass smtp.mailfrom={word}@evil.example")
    assert not applied(app, number, raw)


# ---------------------------------------------------------------- config


def security_of(tmp_path, **section) -> SecurityConfig:
    return SecurityConfig.from_config(build_config({"security": section}, base_dir=tmp_path))


def test_security_config_keys(tmp_path) -> None:
    sec = security_of(tmp_path)
    assert sec.accept_domain_authentication is False and sec.auth_user_domain is None
    sec = security_of(tmp_path, accept_domain_authentication=True, auth_user_domain="desk.example.cn")
    assert sec.accept_domain_authentication is True and sec.auth_user_domain == "desk.example.cn"
    with pytest.raises(ConfigError, match="accept_domain_authentication"):
        security_of(tmp_path, accept_domain_authentication="yes")
    with pytest.raises(ConfigError, match="auth_user_domain"):
        security_of(tmp_path, auth_user_domain="@desk.example.cn")
