"""The network path on real faults, loopback only: a real squid (CONNECT allowed / denied / 407),
nginx stripping the Upgrade, TLS servers with trustme certificates (valid with --ca-file,
untrusted, wrong name via --resolve, expired, an intercepting CA for api.deepgram.com), a closed
port, a port blackholed by iptables inside a network namespace this test creates, and a DNS server
on 127.0.0.1 answering NXDOMAIN / SERVFAIL / nothing. Each fault must yield its finding code and
cause; the healthy path through the allowing proxy must yield no failure.

Every target is 127.0.0.1 (or a name that --resolve / the test's DNS server maps to it); no test
asks the machine's own resolver anything.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.mockproc import mock_process
from tests.system.services import (
    dns_server,
    free_port,
    netns,
    nginx_proxy,
    require,
    require_root,
    reset_after_client_hello,
    squid_proxy,
    tls_relay,
)
from wsdoctor.cli import main

KEY = "wsdoctor-net-key-Hq27"
PROXY_PASSWORD = "pr0xy-S3cret-pw"


def run(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, dict[str, Any], str]:
    monkeypatch.setenv("WSD_NET_KEY", KEY)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "WS_PROXY", "WSS_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    out = tmp_path / "report.json"
    code = main(["run", url, "--api-key-env", "WSD_NET_KEY", "--json", str(out), *extra])
    captured = capsys.readouterr()
    report: dict[str, Any] = json.loads(out.read_text())
    return code, report, captured.out + captured.err + out.read_text()


def result(report: dict[str, Any], check_id: str) -> dict[str, Any]:
    return next(r for r in report["results"] if r["check_id"] == check_id)


def codes(report: dict[str, Any]) -> set[str]:
    return {f["code"] for r in report["results"] for f in r["findings"]}


def failing(report: dict[str, Any]) -> dict[str, str]:
    return {r["check_id"]: r["summary"] for r in report["results"] if r["status"] in ("fail", "error")}


@pytest.fixture(scope="module")
def mock_url() -> Iterator[str]:
    with mock_process("--api-key", KEY) as url:
        yield url


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


# -- squid ----------------------------------------------------------------------------------------

NET = "env,dns,tcp,proxy,tls,http,ws"


def test_healthy_path_through_an_allowing_squid(
    mock_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    require_root()
    with squid_proxy("allow") as sq:
        code, report, text = run(
            mock_url, tmp_path, monkeypatch, capsys, "--quick", "--proxy", f"http://127.0.0.1:{sq}"
        )
    assert failing(report) == {}, failing(report)
    assert code == 0, text
    assert result(report, "env.proxy")["evidence"]["route"]["route"] == "proxy"
    tunnel = result(report, "proxy.connect")
    assert tunnel["status"] == "pass"
    assert tunnel["evidence"]["tunnel"]["status"] == 200
    assert "direct TCP: connected" in tunnel["summary"]  # both paths work here: compared side by side
    upgrade = result(report, "http.upgrade")["evidence"]["upgrade"]
    assert [s for s, _ in upgrade["marks"]][:3] == ["connecting", "tunneling", "upgrading"]
    assert result(report, "stream.transcribe")["status"] == "pass"


def test_the_proxy_variables_are_the_apps_route(
    mock_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    require_root()
    with squid_proxy("deny") as sq:

        def run_with_env(env: dict[str, str], *extra: str) -> dict[str, Any]:
            monkeypatch.setenv("WSD_NET_KEY", KEY)
            for k in list(os.environ):
                if k.lower().endswith("_proxy"):
                    monkeypatch.delenv(k)
            for k, v in env.items():
                monkeypatch.setenv(k, v)
            out = tmp_path / "env.json"
            main(["run", mock_url, "--api-key-env", "WSD_NET_KEY", "--json", str(out), "--checks", NET, *extra])
            capsys.readouterr()
            data: dict[str, Any] = json.loads(out.read_text())
            return data

        proxied = run_with_env({"http_proxy": f"http://127.0.0.1:{sq}"})
        assert "proxy.connect-denied" in codes(proxied)
        exempt = run_with_env({"http_proxy": f"http://127.0.0.1:{sq}", "NO_PROXY": "localhost,127.0.0.0/8"})
        assert failing(exempt) == {}
        assert "NO_PROXY entry '127.0.0.0/8'" in result(exempt, "env.proxy")["summary"]
        assert result(exempt, "proxy.connect")["status"] == "skip"
        bypass = run_with_env({"http_proxy": f"http://127.0.0.1:{sq}"}, "--no-proxy")
        assert failing(bypass) == {}


def test_squid_denying_connect_is_proxy_connect_denied(
    mock_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    require_root()
    with squid_proxy("deny") as sq:
        code, report, text = run(
            mock_url, tmp_path, monkeypatch, capsys, "--checks", NET, "--proxy", f"http://127.0.0.1:{sq}"
        )
    assert code == 1, text
    assert report["summary"]["primary_finding"] == "proxy.connect-denied", report["summary"]
    assert report["summary"]["primary_cause"] == "proxy-firewall"
    finding = result(report, "proxy.connect")["findings"][0]
    assert "squid" in finding["evidence"]["answered_by"].lower()
    assert "ask the network team to allow CONNECT" in finding["message"]
    assert result(report, "http.upgrade")["blocked_by"] == "proxy.connect"


def test_squid_asking_for_credentials_is_proxy_auth_required(
    mock_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    require_root()
    with squid_proxy("auth", users={"alice": PROXY_PASSWORD}) as sq:
        code, report, text = run(
            mock_url, tmp_path, monkeypatch, capsys, "--checks", NET, "--proxy", f"http://127.0.0.1:{sq}"
        )
        assert code == 1, text
        assert report["summary"]["primary_finding"] == "proxy.auth-required"
        assert report["summary"]["primary_cause"] == "proxy-firewall"
        finding = result(report, "proxy.connect")["findings"][0]
        assert finding["evidence"]["proxy_authenticate"] == ["Basic"]
        assert finding["evidence"]["sent_credentials"] is False

        wrong = f"http://alice:wrong-{PROXY_PASSWORD}@127.0.0.1:{sq}"
        code, report, text = run(mock_url, tmp_path, monkeypatch, capsys, "--checks", NET, "--proxy", wrong)
        assert report["summary"]["primary_finding"] == "proxy.auth-required"
        assert result(report, "proxy.connect")["findings"][0]["evidence"]["sent_credentials"] is True
        assert PROXY_PASSWORD not in text

        good = f"http://alice:{PROXY_PASSWORD}@127.0.0.1:{sq}"
        code, report, text = run(mock_url, tmp_path, monkeypatch, capsys, "--quick", "--proxy", good)
    assert failing(report) == {}, failing(report)
    assert code == 0
    assert PROXY_PASSWORD not in text
    assert "alice:***" in result(report, "env.proxy")["summary"]


# -- nginx stripping the Upgrade ------------------------------------------------------------------


def test_nginx_stripping_upgrade_is_upgrade_stripped(
    mock_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    require_root()
    with nginx_proxy(port_of(mock_url), tmp_path, pass_upgrade=False) as port:
        code, report, text = run(f"ws://127.0.0.1:{port}/v1/listen", tmp_path, monkeypatch, capsys, "--checks", NET)
    assert code == 1, text
    assert report["summary"]["primary_finding"] == "http.upgrade-stripped", report["summary"]
    assert report["summary"]["primary_cause"] == "proxy-firewall"
    upgrade = result(report, "http.upgrade")
    assert "nginx" in upgrade["findings"][0]["evidence"]["answered_by"]


# -- TLS with trustme certificates ----------------------------------------------------------------


def _tls(
    mock_url: str, names: tuple[str, ...], *, expired: bool = False, org: str = "wsdoctor test CA"
) -> tuple[Any, Any]:
    ca = trustme.CA(organization_name=org)
    kw: dict[str, Any] = {}
    if expired:
        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        kw = {"not_before": now - datetime.timedelta(days=30), "not_after": now - datetime.timedelta(days=1)}
    leaf = ca.issue_cert(*names, **kw)
    chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
    return ca, tls_relay(port_of(mock_url), chain, leaf.private_key_pem.bytes())


TLS_CHECKS = "dns,tcp,proxy,tls,http,ws"


def test_tls_valid_with_ca_file(
    mock_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ca, relay = _tls(mock_url, ("127.0.0.1",))
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with relay as port:
        code, report, text = run(
            f"wss://127.0.0.1:{port}/v1/listen",
            tmp_path,
            monkeypatch,
            capsys,
            "--checks",
            TLS_CHECKS,
            "--ca-file",
            str(ca_file),
        )
    assert failing(report) == {}, failing(report)
    assert code == 0, text
    tls = result(report, "tls.handshake")
    ev = tls["evidence"]["tls"]
    assert ev["protocol"].startswith("TLS")
    assert ev["chain"][0]["issuer"].startswith("organizationName=wsdoctor test CA")
    assert ev["stores"]["ca_file"]["outcome"] == "ok"
    assert ev["stores"]["certifi"]["outcome"] == "tls-verify-failed"  # a private CA: only --ca-file knows it
    assert tls["findings"] == []


@pytest.mark.parametrize(
    ("case", "code", "cause"),
    [
        ("untrusted", "tls.untrusted", "local-host"),
        ("expired", "tls.expired", "proxy-firewall"),
        ("hostname", "tls.hostname-mismatch", "proxy-firewall"),
        ("interception", "tls.interception", "proxy-firewall"),
    ],
)
def test_tls_faults(
    case: str,
    code: str,
    cause: str,
    mock_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    names = {"hostname": ("other.example",), "interception": ("api.deepgram.com",)}.get(case, ("127.0.0.1",))
    org = "Corp Inspecting Proxy CA" if case == "interception" else "wsdoctor test CA"
    ca, relay = _tls(mock_url, names, expired=case == "expired", org=org)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with relay as port:
        extra: list[str] = ["--checks", TLS_CHECKS]
        url = f"wss://127.0.0.1:{port}/v1/listen"
        if case in ("expired", "hostname"):
            extra += ["--ca-file", str(ca_file)]
        if case == "hostname":
            url = f"wss://wrong-name.test:{port}/v1/listen"
            extra += ["--resolve", f"wrong-name.test:{port}:127.0.0.1"]
        if case == "interception":  # never the real host: --resolve pins it to the local relay
            url = f"wss://api.deepgram.com:{port}/v1/listen"
            extra += ["--resolve", f"api.deepgram.com:{port}:127.0.0.1"]
        exit_code, report, text = run(url, tmp_path, monkeypatch, capsys, *extra)
    assert exit_code == 1, text
    assert report["summary"]["primary_finding"] == code, report["summary"]
    assert report["summary"]["primary_cause"] == cause
    finding = result(report, "tls.handshake")["findings"][0]
    chain = finding["evidence"]["chain"]
    assert chain and chain[0]["issuer"]  # the chain is in the evidence even when verification failed
    if case == "interception":
        assert "Corp Inspecting Proxy CA" in finding["message"]
        assert "exempt api.deepgram.com" in finding["message"]


def test_reset_right_after_client_hello_is_sni_reset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with reset_after_client_hello() as port:
        code, report, text = run(
            f"wss://blocked.test:{port}/v1/listen",
            tmp_path,
            monkeypatch,
            capsys,
            "--checks",
            TLS_CHECKS,
            "--resolve",
            f"blocked.test:{port}:127.0.0.1",
        )
    assert code == 1, text
    assert report["summary"]["primary_finding"] == "tls.sni-reset", report["summary"]
    assert report["summary"]["primary_cause"] == "proxy-firewall"
    assert result(report, "tcp.connect")["status"] == "pass"  # TCP worked; the ClientHello was refused


def test_tls_through_an_allowing_squid(
    mock_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    require_root()
    ca, relay = _tls(mock_url, ("127.0.0.1",))
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with relay as port, squid_proxy("allow") as sq:
        code, report, text = run(
            f"wss://127.0.0.1:{port}/v1/listen",
            tmp_path,
            monkeypatch,
            capsys,
            "--quick",
            "--ca-file",
            str(ca_file),
            "--proxy",
            f"http://127.0.0.1:{sq}",
        )
    assert failing(report) == {}, failing(report)
    assert code == 0, text
    tls = result(report, "tls.handshake")
    assert tls["evidence"]["tls"]["via_proxy"] == f"http://127.0.0.1:{sq}"
    marks = [s for s, _ in result(report, "http.upgrade")["evidence"]["upgrade"]["marks"]]
    assert marks[:4] == ["connecting", "tunneling", "tls", "upgrading"]
    assert result(report, "rest.transcribe")["status"] == "pass"  # aiohttp's CONNECT through squid too


# -- TCP: refused, blackholed ---------------------------------------------------------------------


def test_closed_port_is_tcp_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    code, report, text = run(f"ws://127.0.0.1:{port}/v1/listen", tmp_path, monkeypatch, capsys, "--checks", "tcp")
    assert code == 1, text
    assert report["summary"]["primary_finding"] == "tcp.refused"
    assert result(report, "tcp.connect")["duration_s"] < 1.0


def _blackhole_run(tmp_path: Path, *extra: str) -> tuple[dict[str, Any], float]:
    iptables = require("iptables")
    ip = require("ip")
    port = 4433
    with netns() as ns:
        rule = [ip, "netns", "exec", ns, iptables, "-A", "INPUT", "-p", "tcp", "--dport", str(port), "-j", "DROP"]
        added = subprocess.run(rule, capture_output=True, text=True, timeout=10)
        if added.returncode != 0:
            message = f"iptables inside a namespace failed: {added.stderr.strip()}"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        out = tmp_path / "blackhole.json"
        t0 = time.monotonic()
        proc = subprocess.run(
            [
                ip,
                "netns",
                "exec",
                ns,
                sys.executable,
                "-m",
                "wsdoctor",
                "run",
                f"ws://127.0.0.1:{port}/v1/listen",
                "--checks",
                "tcp",
                "--json",
                str(out),
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=Path(__file__).resolve().parents[2],
        )
        elapsed = time.monotonic() - t0
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report: dict[str, Any] = json.loads(out.read_text())
    return report, elapsed


@pytest.mark.parametrize("connect_timeout", [2.0, None])
def test_blackholed_port_is_tcp_timeout_within_the_connect_timeout(
    tmp_path: Path, connect_timeout: float | None
) -> None:
    require_root()
    extra = ("--connect-timeout", str(connect_timeout)) if connect_timeout else ()
    report, elapsed = _blackhole_run(tmp_path, *extra)
    bound = connect_timeout or 5.0  # the default connect timeout, not the OS's ~2 min of SYN retries
    assert report["summary"]["primary_finding"] == "tcp.timeout", report["summary"]
    assert report["summary"]["primary_cause"] == "proxy-firewall"
    tcp = result(report, "tcp.connect")
    attempt = tcp["evidence"]["attempts"][0]
    assert attempt["outcome"] == "timeout"
    assert bound - 0.1 <= attempt["time_s"] <= bound + 0.5
    assert tcp["duration_s"] <= bound + 1.0
    assert "ask the network team to allow outbound TCP port 4433" in tcp["findings"][0]["message"]
    print(f"blackhole: attempt {attempt['time_s']} s, check {tcp['duration_s']} s, process {elapsed:.2f} s")


# -- DNS through a server the test runs on 127.0.0.1 ----------------------------------------------


@pytest.mark.parametrize(
    ("name", "code"),
    [("nothing-here.invalid", "dns.nxdomain"), ("broken.test", "dns.servfail"), ("silent.test", "dns.timeout")],
)
def test_dns_faults_from_a_local_dns_server(
    name: str, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with dns_server({"mock.test": {"A": ["127.0.0.1"]}}, servfail=("broken.test",), drop=("silent.test",)) as dport:
        t0 = time.monotonic()
        exit_code, report, text = run(
            f"ws://{name}:8080/v1/listen",
            tmp_path,
            monkeypatch,
            capsys,
            "--checks",
            "dns",
            "--dns-server",
            f"127.0.0.1:{dport}",
            "--connect-timeout",
            "1",
        )
        elapsed = time.monotonic() - t0
    assert exit_code == 1, text
    assert report["summary"]["primary_finding"] == code, report["summary"]
    assert report["summary"]["primary_cause"] == "network-instability"
    dns = result(report, "dns.resolve")["evidence"]["dns"]
    assert dns["resolver"] == f"127.0.0.1:{dport} (--dns-server)"
    assert dns["system_error"] is None  # the system resolver was never asked
    assert elapsed < 4.0


def test_a_name_from_the_local_dns_server_reaches_the_mock(
    mock_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = port_of(mock_url)
    with dns_server({"mock.test": {"A": ["127.0.0.1"]}}) as dport:
        code, report, text = run(
            f"ws://mock.test:{port}/v1/listen",
            tmp_path,
            monkeypatch,
            capsys,
            "--quick",
            "--dns-server",
            f"127.0.0.1:{dport}",
        )
    assert failing(report) == {}, failing(report)
    assert code == 0, text
    dns = result(report, "dns.resolve")["evidence"]["dns"]
    assert dns["addresses"] == ["127.0.0.1"]
    assert dns["records"]["AAAA"]["outcome"] == "noanswer"
