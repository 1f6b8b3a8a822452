"""Zero false failures on healthy paths, against the mock and against Deepgram's own captured frames
replayed by a different server (tests/replay.py), idle and with every core busy.

A diagnostics tool that fails a healthy connection sends an engineer after a problem that does not
exist. Healthy here means: the server behaves exactly as Deepgram does (the replay sends the strings
captured in the wild, verbatim) or as the mock does by default. Every check runs, the idle family and
host.loop-lag included; the verdict must be HEALTHY (Deepgram's own idle close is an INFO note).
``bench/false_alarms.py`` repeats this many times and reports the counts (README).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.replay import replay_server

ROOT = Path(__file__).resolve().parent.parent
KEY = "replay-test-key-6d1f"
HOG = "import time, sys\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end:\n    pass\n"


@contextmanager
def cpu_hog(seconds: float, per_core: int = 2) -> Iterator[int]:
    """Every core busy: ``per_core`` spinning processes per CPU, each ending by itself after
    ``seconds`` (and killed on exit anyway). Yields how many were started."""
    n = per_core * (os.cpu_count() or 1)
    procs = [subprocess.Popen([sys.executable, "-c", HOG, str(seconds)]) for _ in range(n)]
    try:
        time.sleep(0.3)  # let them reach full speed
        yield n
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait(10)


def run(args: list[str], tmp_path: Path, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any], str]:
    out = tmp_path / "r.json"
    proc = subprocess.run(
        [sys.executable, "-m", "wsdoctor", "run", *args, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    return proc.returncode, json.loads(out.read_text()), proc.stdout + proc.stderr


def alarms(report: dict[str, Any]) -> dict[str, str]:
    """Every check that did not pass or skip for a stated, benign reason, with its summary."""
    return {
        r["check_id"]: f"{r['status']}: {r['summary']}"
        for r in report["results"]
        if r["status"] in ("warn", "fail", "error")
    }


def assert_healthy(code: int, report: dict[str, Any], text: str) -> None:
    assert alarms(report) == {}, text
    assert report["summary"]["verdict"] == "healthy", report["summary"]
    assert code == 0, text
    # Deepgram's documented idle close was seen, and recognised by its real reason
    silent = next(r for r in report["results"] if r["check_id"] == "idle.silent")
    (note,) = silent["findings"]
    assert (note["code"], note["severity"]) == ("idle.server-timeout", "info")


def test_replayed_deepgram_frames_are_healthy(tmp_path: Path) -> None:
    with replay_server(KEY, idle_s=5.0) as srv:
        code, report, text = run([srv.url, "--idle-max", "9"], tmp_path, {"DEEPGRAM_API_KEY": KEY})
        assert srv.sessions >= 5  # auth, stream, close x2, idle x3 connections all reached the replay
    assert_healthy(code, report, text)
    silent = next(r for r in report["results"] if r["check_id"] == "idle.silent")
    assert "dpgr.am/net0001" in silent["findings"][0]["evidence"]["reason"]  # the captured string itself
    stream = next(r for r in report["results"] if r["check_id"] == "stream.transcribe")
    assert "Testing. 123." in stream["summary"]  # Deepgram's own Results, replayed


def test_replayed_deepgram_frames_are_healthy_on_a_busy_machine(tmp_path: Path) -> None:
    with replay_server(KEY, idle_s=5.0) as srv, cpu_hog(40.0) as hogs:
        code, report, text = run([srv.url, "--idle-max", "9"], tmp_path, {"DEEPGRAM_API_KEY": KEY})
    print(f"{hogs} CPU hogs on {os.cpu_count()} cores")
    assert_healthy(code, report, text)
    sched = next(r for r in report["results"] if r["check_id"] == "host.loop-lag")["evidence"]["scheduling"]
    assert sched["sampler"] == "process"


def test_the_mock_is_healthy_on_a_busy_machine(tmp_path: Path) -> None:
    with cpu_hog(40.0):
        code, report, text = run(["--target", "mock"], tmp_path)
    assert_healthy(code, report, text)


def test_the_replay_shares_nothing_with_wsdoctor() -> None:
    """A different implementation: no import of wsdoctor's mock, protocol module or aiohttp."""
    source = (ROOT / "tests" / "replay.py").read_text()
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert not [line for line in imports if "wsdoctor" in line or "aiohttp" in line], imports


@pytest.mark.parametrize("item", ["net0001-python-sdk-issue-319", "http401-natively-issue-369-invalid-auth"])
def test_the_replay_speaks_the_captured_strings(item: str) -> None:
    from tests.replay import Captured

    captured = Captured()
    data = json.loads((ROOT / "fixtures" / "deepgram-wire" / f"{item}.json").read_text())
    assert data["text"].count(captured.idle_reason) or data.get("http", {}).get("body") == captured.unauthorized_body
