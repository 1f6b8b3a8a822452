"""The network-path analyzers (dns, tcp, tls, proxy, env) judged on recorded observations in
fixtures/observations/{dns,tcp,tls,proxy,env}/ -- no network. Most were recorded from real runs
against the system tier's services (a DNS server on 127.0.0.1, closed ports, trustme TLS servers,
squid); the few cut by hand say so in their ``_note``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from checks import dns, env, proxy, tcp, tls
from wsdoctor.causes import CAUSES, FINDING_CODES
from wsdoctor.model import Finding, Status

OBS = Path(__file__).resolve().parent.parent / "fixtures" / "observations"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((OBS / name).read_text())
    return data


def codes(findings: list[Finding]) -> list[str]:
    return [f.code for f in findings]


def known(findings: list[Finding]) -> None:
    for f in findings:
        assert f.code in FINDING_CODES, f.code
        assert f.cause in CAUSES, f.cause


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("dns/healthy.json", []),
        ("dns/ip-literal.json", []),
        ("dns/nxdomain.json", ["dns.nxdomain"]),
        ("dns/servfail.json", ["dns.servfail"]),
        ("dns/timeout.json", ["dns.timeout"]),
        ("dns/resolver-unreachable.json", ["dns.resolver-unreachable"]),
    ],
)
def test_dns(fixture: str, expected: list[str]) -> None:
    findings = dns.analyze(load(fixture))
    assert codes(findings) == expected
    known(findings)
    if findings:  # which resolver was asked is named: the --dns-server recordings, or the system's
        assert "(--dns-server)" in findings[0].message or "(system configuration)" in findings[0].message


@pytest.mark.parametrize(
    ("fixture", "expected", "severity"),
    [
        ("tcp/healthy.json", [], None),
        ("tcp/refused.json", ["tcp.refused"], Status.FAIL),
        ("tcp/timeout.json", ["tcp.timeout"], Status.FAIL),
        ("tcp/mixed-families.json", ["tcp.unreachable"], Status.WARN),  # IPv4 works: a warning
    ],
)
def test_tcp(fixture: str, expected: list[str], severity: Status | None) -> None:
    obs = load(fixture)
    findings = tcp.analyze(obs["attempts"], obs["port"])
    assert codes(findings) == expected
    known(findings)
    if findings:
        assert findings[0].severity is severity


def test_tcp_timeout_says_what_to_ask_for() -> None:
    finding = tcp.analyze(load("tcp/timeout.json")["attempts"], 4433)[0]
    assert finding.cause == "proxy-firewall"
    assert "blackholed" in finding.message
    assert "allow outbound TCP port 4433" in finding.message


def test_tcp_to_the_proxy_names_the_proxy() -> None:
    obs = load("tcp/proxy-refused.json")
    finding = tcp.analyze(obs["attempts"], obs["port"], proxy=obs["proxy"])[0]
    assert finding.code == "tcp.refused"
    assert finding.message.startswith("proxy ")
    assert finding.evidence["via_proxy"] == obs["proxy"]
    assert "not reachable" in finding.message


@pytest.mark.parametrize(
    ("fixture", "expected", "cause"),
    [
        ("tls/valid-ca-file.json", [], None),
        ("tls/untrusted.json", ["tls.untrusted"], "local-host"),
        ("tls/expired.json", ["tls.expired"], "proxy-firewall"),
        ("tls/hostname-mismatch.json", ["tls.hostname-mismatch"], "proxy-firewall"),
        ("tls/interception.json", ["tls.interception"], "proxy-firewall"),
        ("tls/interception-trusted.json", ["tls.interception"], "proxy-firewall"),
        ("tls/stale-system-store.json", ["tls.local-ca-stale"], "local-host"),
        ("tls/sni-reset.json", ["tls.sni-reset"], "proxy-firewall"),
    ],
)
def test_tls(fixture: str, expected: list[str], cause: str | None) -> None:
    findings = tls.analyze(load(fixture))
    assert codes(findings) == expected
    known(findings)
    if findings:
        assert findings[0].cause == cause


def test_tls_interception_names_the_issuer_and_the_fix() -> None:
    finding = tls.analyze(load("tls/interception.json"))[0]
    assert finding.severity is Status.FAIL
    assert "Corp Inspecting Proxy CA" in finding.message
    assert "exempt api.deepgram.com from TLS inspection" in finding.message
    assert finding.evidence["chain"]  # the whole chain, read without verifying


def test_tls_interception_trusted_locally_is_a_warning() -> None:
    # The corporate CA is in the app's trust: it works here, but TLS is still inspected.
    finding = tls.analyze(load("tls/interception-trusted.json"))[0]
    assert finding.severity is Status.WARN


def test_tls_stale_store_says_which_store() -> None:
    finding = tls.analyze(load("tls/stale-system-store.json"))[0]
    assert "trusted by the certifi store but not by the system store" in finding.message
    assert finding.severity is Status.WARN


def test_tls_private_ca_with_ca_file_is_not_a_stale_store() -> None:
    obs = load("tls/valid-ca-file.json")
    assert obs["stores"]["ca_file"]["outcome"] == "ok"
    assert obs["stores"]["certifi"]["outcome"] == obs["stores"]["system"]["outcome"] == "tls-verify-failed"
    assert tls.analyze(obs) == []


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("proxy/established.json", []),
        ("proxy/denied-403.json", ["proxy.connect-denied"]),
        ("proxy/auth-407.json", ["proxy.auth-required"]),
        ("proxy/auth-407-wrong.json", ["proxy.auth-required"]),
        ("proxy/unreachable.json", ["proxy.unreachable"]),
    ],
)
def test_proxy(fixture: str, expected: list[str]) -> None:
    obs = load(fixture)
    findings = proxy.analyze(obs["tunnel"], obs["direct_tcp"])
    assert codes(findings) == expected
    known(findings)
    for f in findings:
        assert f.cause == "proxy-firewall"


def test_proxy_denied_says_who_and_what_to_allow() -> None:
    finding = proxy.analyze(load("proxy/denied-403.json")["tunnel"])[0]
    assert "squid" in str(finding.evidence["answered_by"])
    assert "ERR_ACCESS_DENIED" in str(finding.evidence["answered_by"])
    assert "ask the network team to allow CONNECT" in finding.message
    assert "WebSocket Upgrade" in finding.message
    assert "long-lived connections" in finding.message


def test_proxy_auth_reports_the_scheme_and_whether_we_sent_credentials() -> None:
    none = proxy.analyze(load("proxy/auth-407.json")["tunnel"])[0]
    wrong = proxy.analyze(load("proxy/auth-407-wrong.json")["tunnel"])[0]
    assert none.evidence["proxy_authenticate"] == ["Basic"]
    assert "requires credentials and none were given" in none.message
    assert "rejected the credentials" in wrong.message
    assert "wrong-pass" not in json.dumps(load("proxy/auth-407-wrong.json"))


def test_proxy_compare_direct_and_proxied() -> None:
    obs = load("proxy/denied-403.json")
    assert "exempting the host (NO_PROXY) would work" in proxy.compare(obs["tunnel"], obs["direct_tcp"])
    ok = load("proxy/established.json")
    assert "both work" in proxy.compare(ok["tunnel"], ok["direct_tcp"])


def test_proxy_407_with_negotiate_needs_another_client() -> None:
    finding = proxy.connect_finding(
        407, [["Proxy-Authenticate", "Negotiate"], ["Proxy-Authenticate", "NTLM"]],
        proxy="http://proxy.corp:3128", target="api.deepgram.com:443", sent_credentials=False,
    )
    assert finding.evidence["proxy_authenticate"] == ["Negotiate", "NTLM"]
    assert "speaks Negotiate, NTLM" in finding.message


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("env/direct.json", []),
        ("env/proxy.json", []),
        ("env/no-proxy-exempt.json", []),
        ("env/disagreement.json", ["env.proxy-disagreement"]),
        ("env/socks.json", ["proxy.misconfigured"]),
    ],
)
def test_env(fixture: str, expected: list[str]) -> None:
    findings = env.analyze(load(fixture))
    assert codes(findings) == expected
    known(findings)


def test_env_fixtures_hold_no_password() -> None:
    text = (OBS / "env" / "disagreement.json").read_text()
    assert "hunter2" not in text
    assert "bob:***@lower.corp" in text


def test_dns_outcomes() -> None:
    ok = {"host": "api.deepgram.com", "source": "dns", "addresses": ["192.0.2.1"], "records": {}}
    assert dns.analyze(ok) == []
    nx = {
        "host": "nope.invalid",
        "source": "dns",
        "addresses": [],
        "resolver": "127.0.0.53",
        "records": {"A": {"outcome": "nxdomain"}, "AAAA": {"outcome": "nxdomain"}},
    }
    assert codes(dns.analyze(nx)) == ["dns.nxdomain"]
    sf = {**nx, "records": {"A": {"outcome": "servfail"}, "AAAA": {"outcome": "servfail"}}}
    assert codes(dns.analyze(sf)) == ["dns.servfail"]
    to = {**nx, "records": {"A": {"outcome": "timeout"}, "AAAA": {"outcome": "timeout"}}}
    assert codes(dns.analyze(to)) == ["dns.timeout"]


def test_tcp_outcomes() -> None:
    ok = {"address": "192.0.2.1", "family": "ipv4", "outcome": "connected", "time_s": 0.01}
    refused = {"address": "192.0.2.1", "family": "ipv4", "outcome": "refused", "time_s": 0.001}
    blackhole = {"address": "2001:db8::1", "family": "ipv6", "outcome": "timeout", "time_s": 5.0}
    assert tcp.analyze([ok], 443) == []
    assert codes(tcp.analyze([refused], 443)) == ["tcp.refused"]
    (f,) = tcp.analyze([ok, blackhole], 443)
    assert f.code == "tcp.timeout"
    assert f.severity is Status.WARN  # IPv4 works; IPv6-first clients stall


@pytest.mark.parametrize(
    ("host", "message", "expected"),
    [
        ("api.deepgram.com", "certificate has expired", "tls.expired"),
        (
            "api.deepgram.com",
            "Hostname mismatch, certificate is not valid for 'api.deepgram.com'.",
            "tls.hostname-mismatch",
        ),
        ("api.deepgram.com", "unable to get local issuer certificate", "tls.interception"),
        ("onprem.example", "self-signed certificate in certificate chain", "tls.untrusted"),
    ],
)
def test_tls_verification_failures(host: str, message: str, expected: str) -> None:
    obs = {"outcome": "tls-verify-failed", "server_name": host, "verify_message": message}
    assert codes(tls.analyze(obs)) == [expected]


def test_tls_reset_during_handshake_is_sni_filtering() -> None:
    assert codes(tls.analyze({"outcome": "reset", "server_name": "api.deepgram.com"})) == ["tls.sni-reset"]
