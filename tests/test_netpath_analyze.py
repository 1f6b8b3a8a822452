"""The network-path analyzers (dns, tcp, tls, proxy, env) judged on recorded observations in
fixtures/observations/{dns,tcp,tls,proxy,env}/ -- no network. Most were recorded from real runs
against the system tier's services (a DNS server on 127.0.0.1, closed ports, trustme TLS servers,
squid); the few cut by hand say so in their ``_note``. Every fixture is read back into its typed
observation strictly (``from_dict``): a renamed or mistyped field fails here, not in a report."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest

from checks import dns, env, proxy, tcp, tls
from wsdoctor.causes import CAUSES, FINDING_CODES
from wsdoctor.model import Finding, Outcome, Status
from wsdoctor.probes.netpath import (
    CertInfo,
    ProxyConnectObservation,
    StoreResult,
    TcpAttempt,
    TcpObservation,
    TlsObservation,
)
from wsdoctor.probes.proxy import RouteDecision
from wsdoctor.probes.resolver import DnsObservation, DnsOutcome, DnsRecord

OBS = Path(__file__).resolve().parent.parent / "fixtures" / "observations"

T = TypeVar("T")


def raw(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((OBS / name).read_text())
    return data


def load(name: str, cls: type[T]) -> T:
    obs: T = cls.from_dict(raw(name))  # type: ignore[attr-defined]
    return obs


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
    findings = dns.analyze(load(fixture, DnsObservation))
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
    findings = tcp.analyze(load(fixture, TcpObservation))
    assert codes(findings) == expected
    known(findings)
    if findings:
        assert findings[0].severity is severity


def test_tcp_timeout_says_what_to_ask_for() -> None:
    finding = tcp.analyze(load("tcp/timeout.json", TcpObservation))[0]
    assert finding.cause == "proxy-firewall"
    assert "blackholed" in finding.message
    assert "allow outbound TCP port 4433" in finding.message


def test_tcp_to_the_proxy_names_the_proxy() -> None:
    obs = load("tcp/proxy-refused.json", TcpObservation)
    finding = tcp.analyze(obs)[0]
    assert finding.code == "tcp.refused"
    assert finding.message.startswith("proxy ")
    assert finding.evidence["via_proxy"] == obs.via_proxy == "http://127.0.0.1:37343"
    assert "not reachable" in finding.message


def test_tcp_a_proxy_host_that_does_not_resolve_is_proxy_unreachable() -> None:
    # Nothing was tried: the proxy's name did not resolve (judged in analyze, not in run()).
    obs = TcpObservation((), 3128, via_proxy="http://proxy.corp:3128", proxy_dns_error="[Errno -2] Name unknown")
    (finding,) = tcp.analyze(obs)
    assert (finding.code, finding.severity) == ("proxy.unreachable", Status.FAIL)
    assert finding.message == "the proxy host of http://proxy.corp:3128 does not resolve: [Errno -2] Name unknown"
    assert finding.evidence == {"proxy": "http://proxy.corp:3128"}
    assert TcpObservation.from_dict(obs.to_dict()) == obs


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
    findings = tls.analyze(load(fixture, TlsObservation))
    assert codes(findings) == expected
    known(findings)
    if findings:
        assert findings[0].cause == cause


def test_tls_interception_names_the_issuer_and_the_fix() -> None:
    finding = tls.analyze(load("tls/interception.json", TlsObservation))[0]
    assert finding.severity is Status.FAIL
    assert "Corp Inspecting Proxy CA" in finding.message
    assert "exempt api.deepgram.com from TLS inspection" in finding.message
    assert finding.evidence["chain"]  # the whole chain, read without verifying


def test_tls_interception_trusted_locally_is_a_warning() -> None:
    # The corporate CA is in the app's trust: it works here, but TLS is still inspected.
    finding = tls.analyze(load("tls/interception-trusted.json", TlsObservation))[0]
    assert finding.severity is Status.WARN


def test_tls_stale_store_says_which_store() -> None:
    finding = tls.analyze(load("tls/stale-system-store.json", TlsObservation))[0]
    assert "trusted by the certifi store but not by the system store" in finding.message
    assert finding.severity is Status.WARN


def test_tls_private_ca_with_ca_file_is_not_a_stale_store() -> None:
    obs = load("tls/valid-ca-file.json", TlsObservation)
    assert obs.stores["ca_file"].outcome is Outcome.OK
    assert obs.stores["certifi"].outcome is obs.stores["system"].outcome is Outcome.TLS_VERIFY_FAILED
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
    findings = proxy.analyze(load(fixture, ProxyConnectObservation))
    assert codes(findings) == expected
    known(findings)
    for f in findings:
        assert f.cause == "proxy-firewall"


def test_proxy_denied_says_who_and_what_to_allow() -> None:
    obs = load("proxy/denied-403.json", ProxyConnectObservation)
    finding = proxy.analyze(replace(obs, direct_tcp=None))[0]
    assert "direct_tcp" not in finding.evidence  # nothing tried directly, nothing claimed
    assert "squid" in str(finding.evidence["answered_by"])
    assert "ERR_ACCESS_DENIED" in str(finding.evidence["answered_by"])
    assert "ask the network team to allow CONNECT" in finding.message
    assert "WebSocket Upgrade" in finding.message
    assert "long-lived connections" in finding.message


def test_proxy_auth_reports_the_scheme_and_whether_we_sent_credentials() -> None:
    none = proxy.analyze(load("proxy/auth-407.json", ProxyConnectObservation))[0]
    wrong = proxy.analyze(load("proxy/auth-407-wrong.json", ProxyConnectObservation))[0]
    assert none.evidence["proxy_authenticate"] == ["Basic"]
    assert "requires credentials and none were given" in none.message
    assert "rejected the credentials" in wrong.message
    assert "wrong-pass" not in json.dumps(raw("proxy/auth-407-wrong.json"))


def test_proxy_compare_direct_and_proxied() -> None:
    obs = load("proxy/denied-403.json", ProxyConnectObservation)
    assert "exempting the host (NO_PROXY) would work" in proxy.compare(obs)
    ok = load("proxy/established.json", ProxyConnectObservation)
    assert "both work" in proxy.compare(ok)
    assert "not tried" in proxy.compare(load("proxy/unreachable.json", ProxyConnectObservation))


def test_proxy_407_with_negotiate_needs_another_client() -> None:
    finding = proxy.connect_finding(
        407,
        [("Proxy-Authenticate", "Negotiate"), ("Proxy-Authenticate", "NTLM")],
        proxy="http://proxy.corp:3128",
        target="api.deepgram.com:443",
        sent_credentials=False,
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
    findings = env.analyze(load(fixture, RouteDecision))
    assert codes(findings) == expected
    known(findings)


def test_env_fixtures_hold_no_password() -> None:
    text = (OBS / "env" / "disagreement.json").read_text()
    assert "hunter2" not in text
    assert "bob:***@lower.corp" in text


def test_dns_outcomes() -> None:
    ok = DnsObservation("api.deepgram.com", "dns", addresses=("192.0.2.1",))
    assert dns.analyze(ok) == []

    def both(outcome: DnsOutcome) -> dict[str, DnsRecord]:
        return {"A": DnsRecord(outcome), "AAAA": DnsRecord(outcome)}

    nx = DnsObservation("nope.invalid", "dns", resolver="127.0.0.53", records=both(DnsOutcome.NXDOMAIN))
    assert codes(dns.analyze(nx)) == ["dns.nxdomain"]
    sf = replace(nx, records=both(DnsOutcome.SERVFAIL))
    assert codes(dns.analyze(sf)) == ["dns.servfail"]
    to = replace(nx, records=both(DnsOutcome.TIMEOUT))
    assert codes(dns.analyze(to)) == ["dns.timeout"]


def test_dns_through_a_proxy_only_warns() -> None:
    # The app hands the name to its proxy, which resolves it: a local NXDOMAIN does not block it.
    route = load("env/proxy.json", RouteDecision)
    (finding,) = dns.analyze(load("dns/nxdomain.json", DnsObservation), route)
    assert (finding.code, finding.severity) == ("dns.nxdomain", Status.WARN)
    assert finding.message.endswith(
        "the app connects through the proxy http://proxy.corp:3128, which resolves the name itself, so this "
        "does not block it"
    )
    direct = load("env/direct.json", RouteDecision)
    assert dns.analyze(load("dns/nxdomain.json", DnsObservation), direct)[0].severity is Status.FAIL


def test_tcp_outcomes() -> None:
    ok = TcpAttempt("192.0.2.1", "ipv4", Outcome.CONNECTED, 0.01)
    refused = TcpAttempt("192.0.2.1", "ipv4", Outcome.REFUSED, 0.001)
    blackhole = TcpAttempt("2001:db8::1", "ipv6", Outcome.TIMEOUT, 5.0)
    assert tcp.analyze(TcpObservation((ok,), 443)) == []
    assert codes(tcp.analyze(TcpObservation((refused,), 443))) == ["tcp.refused"]
    (f,) = tcp.analyze(TcpObservation((ok, blackhole), 443))
    assert f.code == "tcp.timeout"
    assert f.severity is Status.WARN  # IPv4 works; IPv6-first clients stall


def test_tcp_an_unnamed_socket_error_says_its_errno() -> None:
    aborted = TcpAttempt("192.0.2.1", "ipv4", Outcome.OSERROR, 0.2, "ECONNABORTED: [Errno 103] Software caused")
    (f,) = tcp.analyze(TcpObservation((aborted,), 443))
    assert f.code == "tcp.unreachable"
    assert "is unreachable (ECONNABORTED: [Errno 103] Software caused)" in f.message


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
    obs = TlsObservation("192.0.2.1", host, Outcome.TLS_VERIFY_FAILED, verify_message=message)
    assert codes(tls.analyze(obs)) == [expected]


def test_tls_reset_during_handshake_is_sni_filtering() -> None:
    obs = TlsObservation("192.0.2.1", "api.deepgram.com", Outcome.RESET)
    assert codes(tls.analyze(obs)) == ["tls.sni-reset"]


def test_tls_mismatch_names_the_certificate_s_names() -> None:
    peer = CertInfo("CN=other", "CN=Some CA", "Jan  1 00:00:00 2000 GMT", "Jan  1 00:00:00 3000 GMT", ("DNS:other",))
    obs = TlsObservation(
        "192.0.2.1", "x.example", Outcome.TLS_VERIFY_FAILED, verify_message="Hostname mismatch", peer=peer
    )
    (finding,) = tls.analyze(obs)
    assert "(it names ['DNS:other']; issuer CN=Some CA)" in finding.message
    assert finding.evidence["peer"] == peer.to_dict()


def test_tls_stale_certifi_is_the_other_way_round() -> None:
    stores = {
        "certifi": StoreResult(Outcome.TLS_VERIFY_FAILED, verify_code=20, verify_message="unable to get"),
        "system": StoreResult(Outcome.OK, time_s=0.01),
    }
    (finding,) = tls.analyze(TlsObservation("192.0.2.1", "x.example", Outcome.OK, stores=stores))
    assert "trusted by the system store but not by the certifi store (unable to get)" in finding.message
    assert "pip install -U certifi" in finding.message
