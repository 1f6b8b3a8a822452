"""Finding codes that the other suites only judge on recorded observations, each produced here from
a real fault on 127.0.0.1: wrong stream parameters, a server that never answers, a flaky or
occasionally slow path, a name without addresses, proxy misconfiguration in the environment, a
garbage-speaking proxy, and a CA that only one local trust store has."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.hostile_servers import serve
from tests.mockproc import mock_process, wsdoctor_process
from tests.relay import delaying_relay
from tests.system.services import dns_server
from wsdoctor.cli import main

KEY = "wsdoctor-real-faults-key-Jk28"


def run(argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, dict[str, Any]]:
    monkeypatch.setenv("WSD_RF_KEY", KEY)
    out = tmp_path / "r.json"
    code = main(["run", *argv, "--api-key-env", "WSD_RF_KEY", "--json", str(out)])
    return code, json.loads(out.read_text())


def codes_of(report: dict[str, Any], check_id: str) -> list[str]:
    return [f["code"] for r in report["results"] if r["check_id"] == check_id for f in r["findings"]]


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def test_missing_sample_rate_is_a_bad_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with mock_process("--api-key", KEY) as url:
        code, report = run([f"{url}?encoding=linear16", "--checks", "ws.auth"], tmp_path, monkeypatch)
    assert code == 1
    assert codes_of(report, "ws.auth") == ["ws.bad-request"]
    assert report["summary"]["primary_cause"] == "audio-format"


def test_wrong_encoding_gives_empty_transcripts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # WAV speech declared as raw Opus: Deepgram (and the mock) answer, with nothing in them
    with mock_process("--api-key", KEY) as url:
        code, report = run(
            [f"{url}?encoding=opus&sample_rate=48000", "--checks", "stream.transcribe"], tmp_path, monkeypatch
        )
    assert code == 0  # a warning
    assert codes_of(report, "stream.transcribe") == ["stream.empty-transcript"]
    assert report["summary"]["primary_cause"] == "audio-format"


def test_a_server_that_never_sends_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with mock_process("--api-key", KEY, "--fault", "slow-results", "--slow-results-delay", "60") as url:
        code, report = run([url, "--checks", "stream.transcribe", "--close-wait", "1"], tmp_path, monkeypatch)
    assert code == 1
    assert codes_of(report, "stream.transcribe") == ["stream.no-results"]


def test_flaky_path_fails_some_repeated_connections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with (
        mock_process("--api-key", KEY, "--results-interval", "0.25") as url,
        delaying_relay(port_of(url), 0.0, drop_every=4, spare_first=6) as relay,
    ):
        code, report = run(
            [f"ws://127.0.0.1:{relay}/v1/listen", "--checks", "phases.repeat", "--repeat", "10"], tmp_path, monkeypatch
        )
    found = codes_of(report, "phases.repeat")
    assert "phases.failures" in found, report["results"]
    result = next(r for r in report["results"] if r["check_id"] == "phases.repeat")
    outcomes = [s["outcome"] for s in result["evidence"]["samples"]]
    assert outcomes.count("upgraded") in (7, 8)  # the relay hangs up on every 4th connection (ws.auth is one)
    assert code == 0  # some failures: a warning


def test_occasionally_slow_path_is_an_erratic_phase(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with (
        mock_process("--api-key", KEY, "--results-interval", "0.25") as url,
        delaying_relay(port_of(url), 0.0, slow_every=10, slow_extra_s=0.4, spare_first=6) as relay,
    ):
        _, report = run(
            [f"ws://127.0.0.1:{relay}/v1/listen", "--checks", "phases.repeat", "--repeat", "20"], tmp_path, monkeypatch
        )
    result = next(r for r in report["results"] if r["check_id"] == "phases.repeat")
    spread = [f for f in result["findings"] if f["code"] == "phases.latency-spread"]
    assert any(f["evidence"]["phase"] == "upgrade" for f in spread), result["findings"]


def test_a_name_without_addresses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with dns_server({"empty.test": {}}) as port:  # NOERROR, but no A and no AAAA record
        code, report = run(
            [
                "ws://empty.test/v1/listen",
                "--dns-server",
                f"127.0.0.1:{port}",
                "--checks",
                "dns.resolve",
                "--connect-timeout",
                "2",
            ],
            tmp_path,
            monkeypatch,
        )
    assert code == 1
    assert codes_of(report, "dns.resolve") == ["dns.no-address"]


def test_proxy_variables_that_disagree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:3129")
    _, report = run(["wss://127.0.0.1:9/v1/listen", "--checks", "env.proxy"], tmp_path, monkeypatch)
    assert "env.proxy-disagreement" in codes_of(report, "env.proxy")


def test_a_socks_proxy_in_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "socks5://127.0.0.1:1080")
    code, report = run(["wss://127.0.0.1:9/v1/listen", "--checks", "env.proxy"], tmp_path, monkeypatch)
    assert code == 1
    assert codes_of(report, "env.proxy") == ["proxy.misconfigured"]


def test_a_proxy_that_cannot_be_reached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # --skip tcp.connect: the proxy check itself meets the dead proxy (tcp.connect would report it first)
    code, report = run(
        [
            "ws://127.0.0.1:9/v1/listen",
            "--proxy",
            f"http://127.0.0.1:{port}",
            "--checks",
            "proxy.connect",
            "--skip",
            "tcp.connect",
        ],
        tmp_path,
        monkeypatch,
    )
    assert code == 1
    assert codes_of(report, "proxy.connect") == ["proxy.unreachable"]


def test_a_proxy_that_speaks_garbage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with serve("garbage") as port:
        code, report = run(
            [
                "ws://127.0.0.1:9/v1/listen",
                "--proxy",
                f"http://127.0.0.1:{port}",
                "--checks",
                "proxy.connect",
                "--connect-timeout",
                "2",
            ],
            tmp_path,
            monkeypatch,
        )
    assert code == 1
    assert codes_of(report, "proxy.connect") == ["proxy.bad-answer"]


def test_a_ca_only_the_system_store_has_is_a_stale_certifi(tmp_path: Path) -> None:
    """A corporate CA installed in the OS store (here: SSL_CERT_FILE) but not in certifi: apps on
    certifi fail while others work -- tls.local-ca-stale."""
    with wsdoctor_process(["mock", "--host", "127.0.0.1", "--port", "0", "--api-key", KEY, "--tls"]) as (url, proc):
        assert proc.stdout is not None
        ca_line = proc.stdout.readline()
        ca_file = ca_line.split("CA certificate:", 1)[1].split()[0]
        out = tmp_path / "r.json"
        result = subprocess.run(
            [sys.executable, "-m", "wsdoctor", "run", url, "--checks", "tls.handshake", "--json", str(out)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "SSL_CERT_FILE": ca_file, "WSD_RF_KEY": KEY},
        )
    report = json.loads(out.read_text())
    assert result.returncode == 0, result.stdout  # a warning
    assert codes_of(report, "tls.handshake") == ["tls.local-ca-stale"]
    assert report["summary"]["primary_cause"] == "local-host"
