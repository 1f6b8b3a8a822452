"""``wsdoctor watch`` as a user runs it: a process, its signals, its reports, its errors."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import watch_apps as apps

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.timeout(120)]

READY = re.compile(r"listening on ws://127\.0\.0\.1:(\d+)")


def _start(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "wsdoctor", "watch", "--listen", "127.0.0.1:0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        match = READY.search(line)
        if match:
            return proc, int(match.group(1))
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"watch did not start: {proc.communicate(timeout=5)}")


def _finish(proc: subprocess.Popen[str], sig: int | None = signal.SIGINT) -> tuple[int, str, str]:
    if sig is not None:
        proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, out, err


def test_no_connection_is_a_skip_not_a_crash(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    proc, _port = _start("--target", "mock", "--duration", "1", "--json", str(report))
    code, _out, err = _finish(proc, None)
    assert code == 0, err
    data = json.loads(report.read_text())
    assert [r["status"] for r in data["results"]] == ["skip"]
    assert "no app connected" in data["results"][0]["summary"]
    assert "Traceback" not in err


def test_sigint_mid_stream_writes_the_partial_report(tmp_path: Path) -> None:
    report, html = tmp_path / "r.json", tmp_path / "r.html"
    proc, port = _start("--target", "mock", "--json", str(report), "--html", str(html))

    async def stream_then_signal() -> None:
        task = asyncio.ensure_future(apps.healthy(f"ws://127.0.0.1:{port}"))
        await asyncio.sleep(1.2)  # mid-stream
        proc.send_signal(signal.SIGINT)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)

    asyncio.run(stream_then_signal())
    code, out, err = _finish(proc, None)
    assert code == 0, err  # Ctrl-C is how a watch ends: the exit code is the findings'
    data = json.loads(report.read_text())
    (result,) = data["results"]
    conn = result["evidence"]["connection"]
    assert conn["client_stats"]["audio_frames"] >= 5
    assert result["status"] == "pass", result  # a stream cut by the watch's end is no fault of the app
    assert "still open" in result["summary"]
    assert "Frame timeline" in html.read_text()
    assert apps.KEY not in report.read_text() + html.read_text() + out + err


def test_sigterm_ends_it_too(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    proc, port = _start("--target", "mock", "--json", str(report))
    asyncio.run(apps.healthy(f"ws://127.0.0.1:{port}"))
    code, _out, err = _finish(proc, signal.SIGTERM)
    assert code == 0, err
    (result,) = json.loads(report.read_text())["results"]
    assert result["status"] == "pass" and result["findings"] == []
    assert "#1 GET /v1/listen" in err  # the live line per connection


def test_findings_set_the_exit_code_and_the_live_line(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    proc, port = _start("--target", "mock", "--mock-idle-timeout", "1.5", "--json", str(report))
    asyncio.run(apps.goes_silent(f"ws://127.0.0.1:{port}"))
    time.sleep(0.5)
    code, _out, err = _finish(proc)
    assert code == 1
    assert "fail client.idle-gap" in err
    data = json.loads(report.read_text())
    assert data["summary"]["primary_finding"] == "client.idle-gap"
    assert data["summary"]["primary_cause"] == "connection-handling"
    # a normal wsdoctor report: the schema holds, every reporter renders it
    import jsonschema

    schema = json.loads((Path(__file__).resolve().parent.parent / "reports/schema/report.schema.json").read_text())
    jsonschema.validate(data, schema)
    for name in ("html", "junit", "openmetrics", "markdown", "terminal"):
        out_file = tmp_path / f"r.{name}"
        rendered = subprocess.run(
            [sys.executable, "-m", "wsdoctor", "render", str(report), "--report", f"{name}={out_file}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert rendered.returncode == 0, rendered.stderr
        assert "client.idle-gap" in out_file.read_text(), name


def test_hostile_strings_are_escaped_in_every_output(tmp_path: Path) -> None:
    report, html, md = tmp_path / "r.json", tmp_path / "r.html", tmp_path / "r.md"
    proc, port = _start("--target", "mock", "--json", str(report), "--html", str(html), "--markdown", str(md))
    asyncio.run(apps.hostile_headers(f"ws://127.0.0.1:{port}"))
    time.sleep(0.5)
    code, out, err = _finish(proc)
    assert code in (0, 1), err
    page = html.read_text()
    assert "<script>" not in page and "\x07" not in page and "\x1b" not in out + err + page
    json.loads(report.read_text())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "nonsense"], "--listen"),
        (["--listen", "127.0.0.1:70000"], "--listen"),
        (["--upstream", "ftp://example.invalid"], "scheme"),
        (["--mock-fault", "rst"], "--mock-fault needs --target mock"),
        (["--target", "mock", "--mock-fault", "no-such-fault"], "unknown mock fault"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "wsdoctor", "watch", *args], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_port_in_use_is_exit_2() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "wsdoctor",
                "watch",
                "--listen",
                f"127.0.0.1:{port}",
                "--target",
                "mock",
                "--duration",
                "1",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert proc.returncode == 2, proc.stderr
    assert "--listen" in proc.stderr and "Traceback" not in proc.stderr
