"""The idle family against real ``wsdoctor mock`` processes on 127.0.0.1, with short windows.

Timings are asserted within tolerance: a cutoff is measured within +-1 s (in practice far closer),
and the family's wall time is the longest window plus the KeepAlive margin, not the sum.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.mockproc import mock_process
from wsdoctor.cli import main

KEY = "wsdoctor-idle-key-Pw31"


def run_idle(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *extra: str) -> tuple[int, dict[str, Any]]:
    monkeypatch.setenv("WSD_IDLE_KEY", KEY)
    out = tmp_path / "idle.json"
    code = main(["run", url, "--api-key-env", "WSD_IDLE_KEY", "--checks", "idle", "--json", str(out), *extra])
    return code, json.loads(out.read_text())


def result(report: dict[str, Any], check_id: str) -> dict[str, Any]:
    return next(r for r in report["results"] if r["check_id"] == check_id)


def test_server_timeout_is_measured_and_keepalive_outlives_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with mock_process("--api-key", KEY, "--idle-timeout", "2") as url:
        code, report = run_idle(url, tmp_path, monkeypatch, "--keepalive-every", "0.5")
    assert code == 0, report["summary"]
    silent = result(report, "idle.silent")
    assert silent["status"] == "pass"
    (finding,) = silent["findings"]
    assert finding["code"] == "idle.server-timeout"
    assert finding["severity"] == "info"
    assert finding["cause"] == "connection-handling"
    assert finding["evidence"]["metadata_first"] is True
    assert silent["metrics"]["server_idle_timeout_s"] == pytest.approx(2.0, abs=0.5)
    keepalive = result(report, "idle.keepalive")
    assert keepalive["status"] == "pass"
    assert keepalive["metrics"]["keepalive_held_s"] > silent["metrics"]["server_idle_timeout_s"]
    ping = result(report, "idle.ping")
    assert ping["metrics"]["pongs"] >= 2
    # Side by side: the window plus the KeepAlive margin, not the sum of three watches.
    assert silent["metrics"]["family_wall_s"] <= 2.0 + 2.0
    assert report["summary"]["verdict"] == "healthy"
    assert report["summary"]["causes"][0]["severity"] == "info"


def test_middlebox_cutoff_is_measured_within_a_second(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with mock_process("--api-key", KEY, "--fault", "idle-cutoff", "--idle-cutoff", "2.5") as url:
        code, report = run_idle(url, tmp_path, monkeypatch, "--idle-max", "8")
    assert code == 1
    assert report["summary"]["primary_finding"] == "idle.middlebox-cutoff"
    assert report["summary"]["primary_cause"] == "proxy-firewall"
    silent = result(report, "idle.silent")
    assert silent["metrics"]["idle_cutoff_s"] == pytest.approx(2.5, abs=1.0)
    assert silent["metrics"]["server_idle_timeout_s"] is None
    # pings every 2 s are client frames the mock's cutoff counts: that connection survives.
    assert result(report, "idle.ping")["status"] == "pass"


def test_keepalive_ignored_is_ineffective(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with mock_process("--api-key", KEY, "--fault", "ignore-keepalive", "--idle-timeout", "2") as url:
        code, report = run_idle(url, tmp_path, monkeypatch, "--keepalive-every", "0.5")
    assert code == 1
    keepalive = result(report, "idle.keepalive")
    assert [f["code"] for f in keepalive["findings"]] == ["idle.keepalive-ineffective"]
    assert keepalive["findings"][0]["cause"] == "connection-handling"
    assert report["summary"]["primary_cause"] == "connection-handling"


def test_unanswered_pings_are_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with mock_process("--api-key", KEY, "--fault", "ignore-pings", "--idle-timeout", "3") as url:
        code, report = run_idle(url, tmp_path, monkeypatch, "--keepalive-every", "1")
    ping = result(report, "idle.ping")
    assert [f["code"] for f in ping["findings"]] == ["idle.no-pong"]
    assert ping["status"] == "warn"
    assert code == 0  # a warning: exit 0 unless --fail-on warn


def test_idle_max_bounds_the_family(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with mock_process("--api-key", KEY, "--idle-timeout", "60") as url:
        code, report = run_idle(url, tmp_path, monkeypatch, "--idle-max", "2")
    assert code == 0
    silent = result(report, "idle.silent")
    assert "still open after 2 s" in silent["summary"]
    assert silent["duration_s"] < 2.0 + 3.5  # the watch, plus the polite CloseStream of each connection
    assert result(report, "idle.keepalive")["status"] == "pass"


def test_quick_skips_the_idle_family(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with mock_process("--api-key", KEY) as url:
        monkeypatch.setenv("WSD_IDLE_KEY", KEY)
        out = tmp_path / "q.json"
        assert main(["run", url, "--api-key-env", "WSD_IDLE_KEY", "--quick", "--json", str(out)]) == 0
    ids = {r["check_id"] for r in json.loads(out.read_text())["results"]}
    assert not any(i.startswith("idle.") for i in ids)
