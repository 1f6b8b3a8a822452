"""Speed and scale: --repeat percentiles (direct and behind a delaying relay), and load mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.mockproc import mock_process
from tests.relay import delaying_relay
from wsdoctor.cli import main

KEY = "wsdoctor-scale-key-Rt61"


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def repeat(port: int, tmp_path: Path, name: str) -> dict[str, Any]:
    out = tmp_path / f"{name}.json"
    code = main(
        [
            "run",
            f"ws://127.0.0.1:{port}/v1/listen",
            "--api-key-env",
            "WSD_SCALE_KEY",
            "--checks",
            "phases.repeat",
            "--repeat",
            "20",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())
    return next(r for r in report["results"] if r["check_id"] == "phases.repeat")


def test_repeat_puts_added_latency_in_the_right_phase(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSD_SCALE_KEY", KEY)
    with mock_process("--api-key", KEY, "--results-interval", "0.25") as url:
        direct = repeat(port_of(url), tmp_path, "direct")
        with delaying_relay(port_of(url), 0.1) as relay_port:
            delayed = repeat(relay_port, tmp_path, "delayed")
    d, s = direct["evidence"]["phases"], delayed["evidence"]["phases"]
    assert d["upgrade"]["n"] == s["upgrade"]["n"] == 20
    # 100 ms each way: the Upgrade's request and answer cross the relay once each.
    assert s["upgrade"]["p50"] - d["upgrade"]["p50"] == pytest.approx(0.2, abs=0.06)
    # The TCP connect is answered by the relay itself: no added latency there.
    assert s["connect"]["p50"] - d["connect"]["p50"] < 0.02
    for phase in ("min", "p50", "p95", "p99", "max"):
        assert d["upgrade"][phase] is not None
    assert direct["metrics"]["upgrade_p99_s"] is not None


def run_load(url: str, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``wsdoctor load URL ARGS --json OUT`` as a real process (its own CPU, like a user's)."""
    return subprocess.run(
        [sys.executable, "-m", "wsdoctor", "load", url, *args, "--api-key-env", "WSD_SCALE_KEY", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "WSD_SCALE_KEY": KEY},
        check=False,
    )


def test_load_200_streams_all_accounted(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    with mock_process("--api-key", KEY, "--workers", "2") as url:
        proc = run_load(url, out, "--streams", "200", "--duration", "10")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads(out.read_text())["results"][0]["evidence"]["summary"]
    accounted = (
        summary["completed_clean"]
        + summary["dropped"]
        + summary["ended_unclean"]
        + summary["rejected"]
        + summary["failed_to_connect"]
        + summary["unfinished"]
    )
    assert summary["streams"] == accounted == 200
    assert summary["completed_clean"] == 200
    # The capacity target (p95 < 1.5 s at 500 streams) is bench/mock_capacity.py's to measure on a quiet
    # machine; under a parallel test run this only guards against collapse.
    assert summary["first_result_s"]["p95"] < 3.0


def test_load_reports_a_concurrency_limit(tmp_path: Path) -> None:
    out = tmp_path / "limit.json"
    with mock_process("--api-key", KEY, "--max-streams", "50") as url:
        proc = run_load(url, out, "--streams", "80", "--duration", "3", "--ramp", "100")
    assert proc.returncode == 1
    report = json.loads(out.read_text())
    assert report["summary"]["primary_cause"] == "account-limits"
    summary = report["results"][0]["evidence"]["summary"]
    assert summary["limit_reached_at"] == pytest.approx(50, abs=2)
    assert summary["rejected_by_status"] == {"429": 30}


def checks_say(url: str, tmp_path: Path, checks: str) -> set[tuple[str, str]]:
    """(code, cause) of the findings ``wsdoctor run --checks CHECKS`` makes of ``url``'s checks."""
    out = tmp_path / "run.json"
    main(["run", url, "--api-key-env", "WSD_SCALE_KEY", "--checks", checks, "--json", str(out)])
    report = json.loads(out.read_text())
    wanted = checks.split(",")
    return {(f["code"], f["cause"]) for r in report["results"] if r["check_id"] in wanted for f in r["findings"]}


@pytest.mark.parametrize(
    ("mock_args", "query", "checks", "expected"),
    [
        (("--fault", "reject-402"), "", "ws.auth", ("ws.payment-required", "account-limits")),
        # Deepgram's 400 blames the audio parameters: encoding without sample_rate
        ((), "?encoding=linear16", "ws.auth", ("ws.bad-request", "audio-format")),
        (("--fault", "reject-429"), "", "ws.auth", ("ws.rate-limited", "account-limits")),
        (
            ("--fault", "drop-no-close"),
            "",
            "stream.transcribe,close.handshake",
            ("close.no-close-frame", "network-instability"),
        ),
    ],
    ids=["402", "400", "429", "drop-no-close"],
)
def test_load_judges_every_stream_as_the_checks_do(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mock_args: tuple[str, ...],
    query: str,
    checks: str,
    expected: tuple[str, str],
) -> None:
    """load classifies each stream with the checks' own judgement: a 402 is not a credentials
    problem, a 400 carries the cause its body blames, a drop is the article's missing close frame."""
    monkeypatch.setenv("WSD_SCALE_KEY", KEY)
    out = tmp_path / "load.json"
    with mock_process("--api-key", KEY, *mock_args) as url:
        proc = run_load(url + query, out, "--streams", "3", "--duration", "2", "--close-wait", "2")
        said = checks_say(url + query, tmp_path, checks)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert said == {expected}
    result = json.loads(out.read_text())["results"][0]
    records = result["evidence"]["load"]["records"]
    assert len(records) == 3
    per_stream = [(r["finding"]["code"], r["finding"]["cause"]) for r in records]
    assert per_stream == [expected] * 3
    assert [(f["code"], f["cause"]) for f in result["findings"]] == [expected]
    assert result["findings"][0]["evidence"]["streams"] == 3
    assert result["evidence"]["summary"]["by_finding"] == {expected[0]: 3}


def test_load_refuses_non_loopback_and_bad_bounds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["load", "wss://api.deepgram.com/v1/listen"]) == 2
    assert "not a loopback address" in capsys.readouterr().err
    assert main(["load", "ws://127.0.0.1:9/", "--streams", "1001"]) == 2
    assert main(["load", "ws://127.0.0.1:9/", "--duration", "601"]) == 2
    assert main(["run", "--target", "mock", "--repeat", "0"]) == 2


def test_load_interrupted_writes_a_partial_report(tmp_path: Path) -> None:
    import signal
    import time

    out = tmp_path / "partial.json"
    with mock_process("--api-key", KEY) as url:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wsdoctor",
                "load",
                url,
                "--streams",
                "20",
                "--duration",
                "30",
                "--api-key-env",
                "WSD_SCALE_KEY",
                "--json",
                str(out),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "WSD_SCALE_KEY": KEY},
        )
        time.sleep(2.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    report = json.loads(out.read_text())
    assert report["interrupted"] is True
    summary = report["results"][0]["evidence"]["summary"]
    assert summary["streams"] == 20
    assert summary["unfinished"] == 20  # every stream was still running, and each is accounted for
    assert "Traceback" not in err
