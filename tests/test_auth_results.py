"""The Authentication-Results parser (RFC 8601 section 2.2) and the mailbox proof, on strings alone."""

from __future__ import annotations

import time

import pytest

from casegate.daemon.directory.auth_results import (
    header_values,
    parse,
    split_mailbox,
    trusted_top,
    verify_sender,
)
from helpers import mail

MX = "mx.desk.example.cn"
ME = "wang.wei@desk.example.cn"


# ----------------------------------------------------------------- grammar


def test_rfc_8601_appendix_b_examples() -> None:
    ar = parse("example.com; none")
    assert ar is not None and ar.authserv_id == "example.com" and ar.results == ()
    ar = parse("example.com; spf=pass smtp.mailfrom=example.net")
    assert ar is not None and [(r.method, r.result, r.props) for r in ar.results] == [
        ("spf", "pass", {"smtp.mailfrom": "example.net"})]
    ar = parse("example.com; auth=pass (cram-md5) smtp.auth=sender@example.net; spf=pass smtp.mailfrom=example.net")
    assert ar is not None and ar.results[0].method == "auth"
    assert ar.results[0].addresses == {"smtp.auth": ("sender", "example.net")}
    ar = parse('example.com; dkim=pass reason="good signature" header.i=@mail-router.example.net; '
               'dkim=fail reason="bad signature" header.i=@newyork.example.com')
    assert ar is not None and [(r.result, r.reason) for r in ar.results] == [
        ("pass", "good signature"), ("fail", "bad signature")]
    assert ar.results[0].addresses["header.i"] == ("", "mail-router.example.net")


def test_versions_comments_and_folding() -> None:
    ar = parse('Mx.Example.CN 1 (the border);\r\n\tDKIM / 1 = Pass (2048-bit key; "unprotected") header . d = x.example\r\n'
               ' header.b=AbC/+d= (nested (comment) \\) here); none')
    assert ar is not None and ar.authserv_id == "mx.example.cn" and ar.version == "1"
    (res,) = ar.results
    assert (res.method, res.version, res.result) == ("dkim", "1", "pass")
    assert res.props == {"header.d": "x.example", "header.b": "AbC/+d="}


def test_quoted_strings() -> None:
    ar = parse(r'"mx.example"; auth=pass smtp.auth="a \"b\" c"@desk.example smtp.mailfrom="x y"; '
               r'dkim=pass header.i="wang.wei"@desk.example header.s="sel ector"')
    assert ar is not None and ar.authserv_id == "mx.example"
    auth, dkim = ar.results
    assert auth.addresses["smtp.auth"] == ('a "b" c', "desk.example")
    assert auth.props["smtp.auth"] == r'"a \"b\" c"@desk.example'
    assert auth.props["smtp.mailfrom"] == "x y" and "smtp.mailfrom" not in auth.addresses
    assert dkim.props == {"header.i": "wang.wei@desk.example", "header.s": "sel ector"}


def test_a_quoted_value_keeps_its_spaces_and_semicolons() -> None:
    ar = parse('mx; dkim=pass header.i="x header.d=desk.example; auth=pass smtp.auth=a@desk.example"@evil.example')
    assert ar is not None and len(ar.results) == 1
    assert ar.results[0].addresses["header.i"][1] == "evil.example"
    assert "header.d" not in ar.results[0].props


def test_lenient_where_it_is_harmless() -> None:
    # A trailing ";", "none" after results, and a bare key=value (Microsoft's "action=none").
    ar = parse("mx; spf=fail smtp.mailfrom=a@b.cn; none; dmarc=pass action=none header.from=b.cn;")
    assert ar is not None and [(r.method, r.result) for r in ar.results] == [("spf", "fail"), ("dmarc", "pass")]
    assert ar.results[1].props == {"header.from": "b.cn"}
    # The first of a repeated property counts.
    ar = parse("mx; auth=pass smtp.auth=a@x.example smtp.auth=b@x.example")
    assert ar is not None and ar.results[0].addresses["smtp.auth"] == ("a", "x.example")


@pytest.mark.parametrize("value", [
    "",
    "; spf=pass",  # no authserv-id
    "spf=pass (sender IP is 192.0.2.1) smtp.mailfrom=x.example",  # no authserv-id (Exchange Online)
    "mx; auth=pass (unterminated",
    'mx; auth=pass smtp.auth="unterminated',
    "mx; =pass",
    "mx; auth=",
    "mx; auth=pass smtp.auth",
    "mx; dkim/=pass",
    "mx; auth=pass smtp.auth=\"a\"@",
    "mx spf=pass",
])
def test_malformed(value: str) -> None:
    assert parse(value) is None


def test_linear_time_on_hostile_input() -> None:
    big = "mx; " + "; ".join(f"spf=pass smtp.mailfrom=x{i}@y.example (c (d) e)" for i in range(20000))
    started = time.perf_counter()
    ar = parse(big)
    assert ar is not None and len(ar.results) == 20000
    assert parse("mx; auth=pass " + "(" * 100000) is None
    assert parse('mx; auth=pass smtp.auth="' + "\\" * 100001) is None
    assert time.perf_counter() - started < 5  # quadratic parsers take minutes here


# -------------------------------------------------------- raw header values


def test_header_values_are_raw_and_in_order() -> None:
    raw = (b"Authentication-Results: first.example;\n\tauth=pass smtp.auth=a@x.example\n"
           b"Received: from somewhere\n"
           b"authentication-results: second.example; spf=pass smtp.mailfrom==?utf-8?q?a=3Bb?=@x.example\n"
           + mail(headers={"Authentication-Results": "third.example; none"}))
    values = header_values(raw)
    assert [v.split(";")[0] for v in values] == ["first.example", "second.example", "third.example"]
    assert "=?utf-8?q?a=3Bb?=" in values[1]  # never RFC 2047-decoded
    assert parse(values[0]) is not None and parse(values[0]).results[0].method == "auth"


def test_header_values_without_any() -> None:
    assert header_values(mail()) == []
    assert header_values(b"") == []


# -------------------------------------------------------------- the proof


def test_trusted_top_stops_at_the_first_untrusted_or_unreadable_header() -> None:
    headers = [f"{MX}; none", f"{MX.upper()}; spf=none", "relay.example; none", f"{MX}; auth=pass smtp.auth={ME}"]
    top, stop = trusted_top(headers, [MX])
    assert [a.authserv_id for a in top] == [MX, MX] and "'relay.example'" in stop
    top, stop = trusted_top([f"{MX}; auth=pass (", f"{MX}; none"], [MX])
    assert top == [] and "unreadable" in stop


@pytest.mark.parametrize("header,ok", [
    (f"{MX}; auth=pass smtp.auth={ME}", True),
    (f"{MX}; auth=pass smtp.auth=wang.wei@Desk.Example.CN", True),
    (f'{MX}; auth=pass smtp.auth="wang.wei"@desk.example.cn', True),
    (f'{MX}; auth=pass smtp.auth="wang.wei@desk.example.cn"', True),  # the identity, quoted whole
    (f"{MX}; auth=pass smtp.auth=Wang.Wei@desk.example.cn", False),  # local parts compare exactly
    (f"{MX}; auth=fail smtp.auth={ME}", False),
    (f"{MX}; auth=pass smtp.mailfrom={ME}", False),  # no smtp.auth
    (f"{MX}; auth=pass smtp.auth=wang.wei", False),  # a bare user name, no auth_user_domain
    (f"{MX}; auth=pass smtp.auth=@desk.example.cn", False),
    (f"{MX}; auth=pass smtp.auth=wang.wei@desk.example.cn.evil.example", False),
    (f'{MX}; auth=pass smtp.auth="wang.wei x"@desk.example.cn', False),
    (f"{MX}; spf=pass smtp.mailfrom={ME}", False),  # domain-level
    (f"{MX}; auth=pass (smtp.auth={ME})", False),  # in a comment
    (f"evil.example; auth=pass smtp.auth={ME}", False),  # untrusted
])
def test_mailbox_proof(header: str, ok: bool) -> None:
    verdict = verify_sender([header], ME, [MX])
    assert verdict.proven is ok, verdict.how


def test_auth_user_domain_completes_a_bare_user_name() -> None:
    header = f"{MX}; auth=pass smtp.auth=wang.wei"
    assert "auth_user_domain" in verify_sender([header], ME, [MX]).how
    assert verify_sender([header], ME, [MX], user_domain="desk.example.cn").proven
    assert not verify_sender([header], ME, [MX], user_domain="other.example").proven
    # A full identity is never completed or rewritten.
    assert not verify_sender([f"{MX}; auth=pass smtp.auth=wang.wei@other.example"], ME, [MX],
                             user_domain="desk.example.cn").proven


@pytest.mark.parametrize("result", [
    "dkim=pass header.d=desk.example.cn",
    "dkim=pass header.i=@desk.example.cn",
    "dkim=pass header.i=intern.li@desk.example.cn",
    "spf=pass smtp.mailfrom=intern.li@desk.example.cn",
    "spf=pass smtp.mailfrom=desk.example.cn",
    "dmarc=pass header.from=desk.example.cn",
])
def test_domain_proof_only_when_accepted(result: str) -> None:
    header = f"{MX}; {result}"
    refused = verify_sender([header], ME, [MX])
    assert not refused.proven and "domain-level" in refused.how
    accepted = verify_sender([header], ME, [MX], accept_domain=True)
    assert accepted.proven and "domain-level" in accepted.how


@pytest.mark.parametrize("result", [
    "dkim=pass header.d=example.cn",  # a parent domain: strict alignment only
    "dkim=pass header.d=desk.example.cn.evil.example",
    'dkim=pass header.i="x header.d=desk.example.cn "@evil.example',
    "spf=pass smtp.mailfrom=a@b@desk.example.cn",  # not an address
    "dkim=fail header.d=desk.example.cn",
])
def test_domain_proof_needs_the_staff_domain(result: str) -> None:
    assert not verify_sender([f"{MX}; {result}"], ME, [MX], accept_domain=True).proven


def test_someone_elses_submission_beats_a_domain_pass() -> None:
    headers = [f"{MX}; auth=pass smtp.auth=intern.li@desk.example.cn", f"{MX}; dkim=pass header.d=desk.example.cn"]
    verdict = verify_sender(headers, ME, [MX], accept_domain=True)
    assert not verdict.proven and "intern.li@desk.example.cn" in verdict.how


def test_nothing_is_trusted_without_trusted_ids() -> None:
    verdict = verify_sender([f"{MX}; auth=pass smtp.auth={ME}"], ME, [])
    assert not verdict.proven and "trusted_authserv_ids" in verdict.how
    assert not verify_sender([f"{MX}; auth=pass smtp.auth={ME}"], ME, ["  "]).proven


def test_split_mailbox() -> None:
    assert split_mailbox("Wang.Wei@Desk.Example.CN.") == ("Wang.Wei", "desk.example.cn")
    assert split_mailbox('"a b"@x.example') == ("a b", "x.example")
    assert split_mailbox("<a@x.example>") == ("a", "x.example")
    for bad in ("", "a", "@x.example", "a@", "a@b@c.example", '"a"b@x.example', "a..b@x.example", "a@x..example"):
        assert split_mailbox(bad) is None, bad
