"""End to end: each mock fault, served by a real ``wsdoctor mock`` process on 127.0.0.1, is
diagnosed by ``wsdoctor run`` with the right exit code, primary cause and finding code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from reports.json import load_schema
from tests.mockproc import mock_process
from wsdoctor.cli import main

KEY = "wsdoctor-test-key-Zq81xP"
KEY_ENV = "WSD_TEST_KEY"


def run_against(
    url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *extra: str,
    key: str | None = KEY,
) -> tuple[int, dict[str, Any], str]:
    if key is not None:
        monkeypatch.setenv("WSD_TEST_KEY", key)
    out = tmp_path / "report.json"
    # --quick: the idle family has its own tests (tests/test_idle.py); here it would only add its window.
    # host.loop-lag runs too: a parallel test run loads this machine, and that must not be a finding.
    code = main(["run", url, "--api-key-env", "WSD_TEST_KEY", "--json", str(out), "--quick", *extra])
    captured = capsys.readouterr()
    report = json.loads(out.read_text())
    jsonschema.Draft202012Validator(load_schema()).validate(report)
    return code, report, captured.out + captured.err + out.read_text()


def codes(report: dict[str, Any]) -> set[str]:
    return {f["code"] for r in report["results"] for f in r["findings"]}


def status(report: dict[str, Any], check_id: str) -> str:
    return next(r["status"] for r in report["results"] if r["check_id"] == check_id)


def test_healthy_mock_passes_every_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with mock_process("--api-key", KEY) as url:
        code, report, text = run_against(url, tmp_path, monkeypatch, capsys)
    assert code == 0, text
    assert report["summary"]["verdict"] == "healthy"
    assert report["summary"]["primary_cause"] is None
    # Every check passes, except those that do not apply here -- TLS on ws://, a proxy when none
    # is configured, --soak/--repeat when not asked for -- which skip with a reason and block nothing.
    skipped = [r for r in report["results"] if r["status"] == "skip"]
    assert {r["check_id"] for r in skipped} <= {
        "tls.handshake",
        "proxy.connect",
        "stream.soak",
        "phases.repeat",
        "sdk.app-pins",
    }, skipped
    assert all(r["blocked_by"] is None and r["summary"] for r in skipped)
    assert {r["status"] for r in report["results"]} <= {"pass", "skip"}, report["results"]
    stream = next(r for r in report["results"] if r["check_id"] == "stream.transcribe")
    assert stream["metrics"]["transcript_chars"] > 0
    assert 0.5 < stream["metrics"]["first_result_s"] < 2.0
    assert KEY not in text


@pytest.mark.parametrize(
    ("fault", "cause", "code"),
    [
        ("reject-401", "credentials", "ws.auth-rejected"),
        ("reject-403", "credentials", "ws.auth-rejected"),
        ("reject-402", "account-limits", "ws.payment-required"),
        ("reject-429", "account-limits", "ws.rate-limited"),
        ("reject-503", "service", "ws.server-error"),
        ("html-200", "proxy-firewall", "http.intermediary-response"),
        ("drop-no-close", "network-instability", "close.no-close-frame"),
        ("rst", "network-instability", "stream.reset"),
        ("never-close-reply", "network-instability", "close.no-close-reply"),
        ("close-1008", "audio-format", "close.unexpected-code"),
        ("close-1011-net0000", "service", "close.unexpected-code"),
        ("close-1012", "service", "close.unexpected-code"),
    ],
)
def test_fault_is_diagnosed(
    fault: str,
    cause: str,
    code: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with mock_process("--api-key", KEY, "--fault", fault) as url:
        exit_code, report, text = run_against(url, tmp_path, monkeypatch, capsys, "--close-wait", "1.5")
    assert exit_code == 1, text
    assert report["summary"]["primary_cause"] == cause, report["summary"]
    assert report["summary"]["primary_finding"] == code, report["summary"]
    assert KEY not in text


def test_slow_results_fault(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with mock_process("--api-key", KEY, "--fault", "slow-results") as url:
        exit_code, report, text = run_against(url, tmp_path, monkeypatch, capsys, "--checks", "stream.transcribe")
    assert exit_code == 1, text
    assert report["summary"]["primary_finding"] == "stream.slow-first-result"
    assert report["summary"]["primary_cause"] == "service"  # fast handshake, slow results: not the path
    stream = next(r for r in report["results"] if r["check_id"] == "stream.transcribe")
    assert stream["metrics"]["first_result_s"] > 6.0


def test_never_close_reply_is_caught_within_the_bounded_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with mock_process("--api-key", KEY, "--fault", "never-close-reply") as url:
        _, report, _ = run_against(
            url, tmp_path, monkeypatch, capsys, "--checks", "close.handshake", "--close-wait", "1"
        )
    close = next(r for r in report["results"] if r["check_id"] == "close.handshake")
    assert close["status"] == "fail"
    # 1 s of audio, then two bounded waits of 1 s each; never the OS default.
    assert close["duration_s"] < 1.0 + 2 * 1.0 + 1.0


def test_no_key_skips_what_needs_one_and_still_diagnoses_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with mock_process("--api-key", KEY) as url:
        code, report, _ = run_against(url, tmp_path, monkeypatch, capsys, key=None)
    assert code == 0  # a warning: exit 1 only with --fail-on warn
    assert status(report, "http.upgrade") == "pass"
    auth = next(r for r in report["results"] if r["check_id"] == "ws.auth")
    assert auth["status"] == "warn"  # no key is a finding, not a silent skip
    (finding,) = auth["findings"]
    assert finding["code"] == "ws.no-key" and finding["cause"] == "credentials"
    assert f"${KEY_ENV} is not set" in finding["message"]  # names the variable it read
    assert "path works up to authentication" in finding["message"]
    assert f"export {KEY_ENV}=" in finding["message"]  # and how to set it
    untested = set(finding["evidence"]["untested"])
    assert {"stream.transcribe", "close.handshake", "rest.transcribe"} <= untested  # --quick: no idle family
    assert not untested & {"stream.soak", "phases.repeat"}  # opt-in checks nobody asked for
    assert report["summary"]["verdict"] == "warnings" and report["summary"]["primary_cause"] == "credentials"
    for cid in ("stream.transcribe", "close.handshake"):
        r = next(r for r in report["results"] if r["check_id"] == cid)
        assert r["status"] == "skip"
        assert r["blocked_by"] == "ws.auth"
        assert "needs an API key" in r["summary"]
    assert status(report, "tcp.connect") == "pass"


def test_refused_port_is_tcp_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as s:  # a port that was free a moment ago and has no listener
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, report, _ = run_against(f"ws://127.0.0.1:{port}/v1/listen", tmp_path, monkeypatch, capsys)
    assert code == 1
    assert report["summary"]["primary_finding"] == "tcp.refused"
    assert status(report, "http.upgrade") == "skip"
