"""Streaming health, soak, REST fallback and close timings against real ``wsdoctor mock`` processes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.mockproc import mock_process
from wsdoctor.causes import REST_FALLBACK
from wsdoctor.cli import main

KEY = "wsdoctor-health-key-Qa77"


def run(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, dict[str, Any], str]:
    monkeypatch.setenv("WSD_HEALTH_KEY", KEY)
    out = tmp_path / "r.json"
    code = main(["run", url, "--api-key-env", "WSD_HEALTH_KEY", "--json", str(out), *extra])
    return code, json.loads(out.read_text()), capsys.readouterr().out


def result(report: dict[str, Any], check_id: str) -> dict[str, Any]:
    return next(r for r in report["results"] if r["check_id"] == check_id)


def test_stream_health_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with mock_process("--api-key", KEY) as url:
        code, report, _ = run(url, tmp_path, monkeypatch, capsys, "--checks", "stream.transcribe")
    assert code == 0
    m = result(report, "stream.transcribe")["metrics"]
    assert m["send_pace"] == pytest.approx(1.0, abs=0.05)  # real time, not faster
    assert m["results"] >= 3
    assert m["result_jitter_s"] is not None and m["result_jitter_s"] < 0.5
    assert m["result_latency_p50_s"] is not None and -0.05 < m["result_latency_p50_s"] < 0.5
    assert m["max_result_gap_s"] < 1.5


def test_soak_without_drops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with mock_process("--api-key", KEY) as url:
        code, report, _ = run(url, tmp_path, monkeypatch, capsys, "--checks", "stream.soak", "--soak", "3")
    assert code == 0
    soak = result(report, "stream.soak")
    assert soak["status"] == "pass"
    assert soak["metrics"]["drops"] == 0
    assert soak["metrics"]["connections"] == 1
    assert soak["metrics"]["soak_audio_s"] == pytest.approx(3.0, abs=0.3)
    assert soak["metrics"]["soak_results"] >= 2


def test_soak_counts_drops_and_reconnects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with mock_process("--api-key", KEY, "--fault", "drop-no-close") as url:
        code, report, _ = run(url, tmp_path, monkeypatch, capsys, "--checks", "stream.soak", "--soak", "4")
    assert code == 1
    soak = result(report, "stream.soak")
    assert soak["metrics"]["drops"] >= 2
    assert soak["metrics"]["connections"] >= soak["metrics"]["drops"]
    (finding,) = soak["findings"]
    assert finding["code"] == "close.no-close-frame"
    conns = soak["evidence"]["soak"]["connections"]
    reconnects = [c["reconnect_after_drop_s"] for c in conns if "reconnect_after_drop_s" in c]
    # jittered backoff from 0.5 s (x0.8-1.2), capped at 5 s; shortened only by the end of the soak
    assert reconnects
    assert all(r < 6.0 for r in reconnects)
    assert reconnects[0] >= 0.35


def test_rest_fallback_is_recommended_when_streaming_breaks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with mock_process("--api-key", KEY, "--fault", "drop-no-close") as url:
        code, report, text = run(url, tmp_path, monkeypatch, capsys, "--quick", "--close-wait", "1.5")
    assert code == 1
    rest = result(report, "rest.transcribe")
    assert rest["status"] == "pass"
    assert rest["evidence"]["rest"]["transcript"]
    assert result(report, "stream.transcribe")["status"] == "fail"
    assert REST_FALLBACK.split(":")[0] in " ".join(text.split())


def test_rest_failure_is_classified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with mock_process("--api-key", KEY, "--fault", "reject-429") as url:
        _, report, _ = run(url, tmp_path, monkeypatch, capsys, "--checks", "rest.transcribe")
    (finding,) = result(report, "rest.transcribe")["findings"]
    assert finding["code"] == "rest.failed"
    assert finding["cause"] == "account-limits"


def test_unanswered_close_is_caught_within_the_bounded_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with mock_process("--api-key", KEY, "--fault", "never-close-reply") as url:
        _, report, _ = run(url, tmp_path, monkeypatch, capsys, "--checks", "close.handshake", "--close-wait", "1")
    close = result(report, "close.handshake")
    codes = [f["code"] for f in close["findings"]]
    assert codes == ["close.no-close-reply"]
    ours = close["evidence"]["client_close"]
    assert ours["close_sent_t"] is not None
    assert ours["end_t"] - ours["close_sent_t"] <= 1.0 + 1.0  # the wait, plus at most a second
