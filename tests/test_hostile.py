"""wsdoctor against hostile servers: a clear finding or a one-line error, within the deadline,
with bounded memory, and never a traceback or a raw escape sequence.

Each run is a real ``wsdoctor run`` subprocess (so its peak RSS is its own) against a server from
:mod:`tests.hostile_servers` on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.hostile_servers import serve

KEY = "wsdoctor-hostile-key-Tz90"
CONNECT_TIMEOUT = 2.0
CLOSE_WAIT = 1.0
RSS_LIMIT_KB = 100 * 1024
REPORT_LIMIT_BYTES = 5 * 1024 * 1024

# A wrapper that runs the CLI and reports its own peak RSS on the last stderr line. VmHWM, not
# getrusage's ru_maxrss: Linux carries ru_maxrss across exec, so a child of a big pytest worker
# would report the worker's peak instead of its own.
RUNNER = (
    "import sys\nfrom wsdoctor.cli import main\ncode = main(sys.argv[1:])\n"
    "hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:')).split()[1]\n"
    "print('MAXRSS_KB', hwm, file=sys.stderr)\nsys.exit(code)"
)


def run_wsdoctor(url: str, tmp_path: Path, *extra: str) -> tuple[int, dict[str, Any], str, float, int]:
    out = tmp_path / "r.json"
    args = [
        sys.executable,
        "-c",
        RUNNER,
        "run",
        url,
        "--api-key-env",
        "WSD_HOSTILE_KEY",
        "--quick",
        "--connect-timeout",
        str(CONNECT_TIMEOUT),
        "--close-wait",
        str(CLOSE_WAIT),
        "--json",
        str(out),
        *extra,
    ]
    t0 = time.monotonic()
    proc = subprocess.run(
        args, capture_output=True, text=True, timeout=90, check=False, env={**os.environ, "WSD_HOSTILE_KEY": KEY}
    )
    wall = time.monotonic() - t0
    assert out.exists() and "MAXRSS_KB" in proc.stderr, (
        f"exit {proc.returncode}: {proc.stdout[-2000:]}{proc.stderr[-3000:]}"
    )
    rss = int(proc.stderr.strip().rsplit("MAXRSS_KB", 1)[1].split()[0])
    return proc.returncode, json.loads(out.read_text()), proc.stdout + proc.stderr, wall, rss


def findings(report: dict[str, Any]) -> dict[str, list[str]]:
    return {r["check_id"]: [f["code"] for f in r["findings"]] for r in report["results"] if r["findings"]}


# scenario -> (scheme, check that must catch it, finding code it must produce)
CASES = {
    "garbage": ("ws", "http.upgrade", "http.intermediary-response"),
    "no-upgrade-101": ("ws", "http.upgrade", "http.upgrade-stripped"),
    "endless-headers": ("ws", "http.upgrade", "http.intermediary-response"),
    "slowloris": ("ws", "http.upgrade", "http.no-response"),
    "huge-frame": ("ws", "stream.transcribe", "stream.protocol-error"),
    # permessage-deflate selected though never offered: refused at the handshake, as real clients do
    "deflate-bomb": ("ws", "http.upgrade", "http.invalid-handshake"),
    "unoffered-subprotocol": ("ws", "http.upgrade", "http.invalid-handshake"),
    "redirect-307": ("ws", "http.upgrade", "http.redirect"),
    "empty-continuations": ("ws", "stream.transcribe", "stream.flood"),
    "slow-continuations": ("ws", "stream.transcribe", "stream.protocol-error"),
    "message-flood": ("ws", "stream.transcribe", "stream.flood"),
    "bad-utf8": ("ws", "stream.transcribe", "stream.protocol-error"),
    "bad-close": ("ws", "stream.transcribe", "stream.protocol-error"),
    "tls-stall": ("wss", "tls.handshake", "tls.handshake-failed"),
    # the hostile server is the proxy here: it grants CONNECT, then hangs up
    "proxy-connect-then-close": ("proxy", "http.upgrade", "http.no-response"),
}


@pytest.mark.parametrize("scenario", sorted(CASES))
def test_hostile_server(scenario: str, tmp_path: Path) -> None:
    scheme, check_id, code = CASES[scenario]
    with serve(scenario) as port:
        if scheme == "proxy":
            exit_code, report, output, wall, rss = run_wsdoctor(
                "ws://127.0.0.1:9/v1/listen", tmp_path, "--proxy", f"http://127.0.0.1:{port}"
            )
        else:
            exit_code, report, output, wall, rss = run_wsdoctor(f"{scheme}://127.0.0.1:{port}/v1/listen", tmp_path)
    assert exit_code == 1, output
    assert code in findings(report).get(check_id, []), (findings(report), output[-3000:])
    assert "Traceback" not in output
    assert "\x1b[2J" not in output and "\x1b]" not in output  # no raw escape sequence from the server
    assert not any(r["status"] == "error" for r in report["results"]), report["results"]
    if scheme == "proxy":
        assert report["summary"]["primary_cause"] == "proxy-firewall"
    # The slowest check's own bound (REST: connect timeout + 10 s for a dripping answer) + 1 s, plus
    # the interpreter's start-up and the report.
    bound = CONNECT_TIMEOUT + 10.0 + 1.0 + 1.5
    assert wall < bound, f"{scenario} took {wall:.1f} s (bound {bound:.1f} s)"
    assert rss < RSS_LIMIT_KB, f"{scenario}: peak RSS {rss / 1024:.0f} MB"
    assert (tmp_path / "r.json").stat().st_size < REPORT_LIMIT_BYTES


def test_hostile_strings_never_reach_the_terminal_raw(tmp_path: Path) -> None:
    with serve("bad-close") as port:
        _, report, output, _, _ = run_wsdoctor(f"ws://127.0.0.1:{port}/v1/listen", tmp_path)
    text = json.dumps(report)
    assert "<script>" in text or "\\u003cscript" in text or "script" in text  # kept as data in JSON...
    assert "\x1b" not in output  # ...but the terminal never gets an ESC (stdout is not a TTY: no colour)


def test_a_ping_crossing_our_close_frame_is_no_error(tmp_path: Path) -> None:
    """A load balancer's ping in flight when we send our close: the pong may no longer be sent, the
    ping is a fact, the close handshake completes, and nothing is an internal error (exit 3)."""
    with serve("ping-crosses-close") as port:
        exit_code, report, output, _, _ = run_wsdoctor(f"ws://127.0.0.1:{port}/v1/listen", tmp_path)
    assert exit_code in (0, 1), output
    assert "Traceback" not in output
    assert not [r["check_id"] for r in report["results"] if r["status"] == "error"], output[-2000:]
    close = next(r for r in report["results"] if r["check_id"] == "close.handshake")
    events = close["evidence"]["client_close"]["events"]
    kinds = [(e["direction"], e["kind"]) for e in events]
    assert ("out", "close") in kinds and ("in", "ping") in kinds and ("in", "close") in kinds
    assert kinds.index(("out", "close")) < kinds.index(("in", "ping"))  # the ping came after our close
    assert close["metrics"]["close_reply_s"] is not None  # and the handshake still completed


def test_frames_of_every_type_in_every_state_are_facts(tmp_path: Path) -> None:
    with serve("pings-everywhere") as port:
        exit_code, report, output, _, _ = run_wsdoctor(f"ws://127.0.0.1:{port}/v1/listen", tmp_path)
    assert exit_code in (0, 1), output
    assert "Traceback" not in output
    assert not [r["check_id"] for r in report["results"] if r["status"] == "error"], output[-2000:]


def test_messages_of_the_wrong_shape_are_a_finding_not_a_crash(tmp_path: Path) -> None:
    with serve("wrong-shapes") as port:
        exit_code, report, output, _, _ = run_wsdoctor(f"ws://127.0.0.1:{port}/v1/listen", tmp_path)
    assert "Traceback" not in output
    assert not [r["check_id"] for r in report["results"] if r["status"] == "error"], output[-2000:]
    stream = next(r for r in report["results"] if r["check_id"] == "stream.transcribe")
    (malformed,) = [f for f in stream["findings"] if f["code"] == "stream.malformed-message"]
    assert malformed["evidence"]["malformed"] == 5  # 4 wrong shapes and one nested past the parser
    transcripts = [(e.get("detail") or {}).get("transcript") for e in stream["evidence"]["session"]["events"]]
    assert "hello there" in transcripts  # the one good Results was still read
    assert exit_code in (0, 1)


def test_a_redirect_says_where_to_without_its_secrets(tmp_path: Path) -> None:
    with serve("redirect-307") as port:
        _, report, output, _, _ = run_wsdoctor(f"ws://127.0.0.1:{port}/v1/listen", tmp_path)
    (f,) = next(r for r in report["results"] if r["check_id"] == "http.upgrade")["findings"]
    assert f["code"] == "http.redirect" and f["cause"] == "proxy-firewall"
    assert "http://login.portal.test/auth" in f["message"]
    assert "s3cr3t-v4lu3" not in output and "s3cr3t-v4lu3" not in json.dumps(report)


def test_bounds_hold_in_a_flood_of_every_check(tmp_path: Path) -> None:
    """The full suite (idle family included) against a flooding server: every connection cut as a
    flood, the JSON report small, memory bounded, and the run within its deadline."""
    with serve("message-flood") as port:
        exit_code, report, output, wall, rss = run_wsdoctor(
            f"ws://127.0.0.1:{port}/v1/listen", tmp_path, "--checks", "stream,close,idle", "--idle-max", "3"
        )
    assert exit_code == 1, output
    size = len((tmp_path / "r.json").read_bytes())
    assert size < 5 * 1024 * 1024, size
    assert rss < RSS_LIMIT_KB, rss
    assert not [r["check_id"] for r in report["results"] if r["status"] == "error"]
    flooded = {r["check_id"] for r in report["results"] for f in r["findings"] if f["code"] == "stream.flood"}
    assert {"stream.transcribe", "close.handshake"} <= flooded
    print(f"flood: report {size / 1024:.0f} KiB, peak RSS {rss / 1024:.0f} MB, {wall:.1f} s")


def test_a_deadline_holds_against_a_flood(tmp_path: Path) -> None:
    """A flood must not keep the event loop from noticing --timeout: the run ends within S + 1 s."""
    with serve("empty-continuations") as port:
        t0 = time.monotonic()
        exit_code, _, output, _, _ = run_wsdoctor(f"ws://127.0.0.1:{port}/v1/listen", tmp_path, "--timeout", "3")
        elapsed = time.monotonic() - t0
    assert elapsed < 3 + 1 + 1.5, elapsed  # + interpreter start and the RSS wrapper
    assert exit_code == 1 and (tmp_path / "r.json").exists(), output


def test_a_rest_body_of_the_wrong_shape_is_a_finding(tmp_path: Path) -> None:
    with serve("rest-wrong-shape") as port:
        exit_code, report, output, _, _ = run_wsdoctor(f"ws://127.0.0.1:{port}/v1/listen", tmp_path)
    assert exit_code == 1 and "Traceback" not in output, output
    rest = next(r for r in report["results"] if r["check_id"] == "rest.transcribe")
    assert rest["status"] == "fail" and [f["code"] for f in rest["findings"]] == ["rest.malformed-response"]
    assert "alternatives[0].transcript" in rest["findings"][0]["message"]


@pytest.mark.parametrize(
    "scenario",
    ["slowloris", "huge-frame", "message-flood", "empty-continuations", "slow-continuations", "endless-headers"],
)
def test_the_deadline_holds_against_every_slow_or_flooding_peer(scenario: str, tmp_path: Path) -> None:
    """Invariant: with --timeout S the process ends within S + 1 s (+ interpreter start), reports
    written, exit 0, 1 or 2 -- whatever the peer does."""
    with serve(scenario) as port:
        exit_code, report, output, wall, rss = run_wsdoctor(
            f"ws://127.0.0.1:{port}/v1/listen", tmp_path, "--timeout", "4"
        )
    assert exit_code in (0, 1, 2), output
    assert wall < 4 + 1 + 1.5, f"{scenario}: {wall:.1f} s"
    assert "Traceback" not in output and rss < RSS_LIMIT_KB
    assert not [r["check_id"] for r in report["results"] if r["status"] == "error"]


def test_sigterm_in_a_busy_stream_still_writes_the_report(tmp_path: Path) -> None:
    """~800 messages a second, just under the flood bound: the client is busy reading when the
    signal comes, and must still see it, stop, and write its report."""
    import signal

    out = tmp_path / "r.json"
    with serve("busy-stream") as port:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wsdoctor",
                "run",
                f"ws://127.0.0.1:{port}/v1/listen",
                "--api-key-env",
                "WSD_HOSTILE_KEY",
                "--json",
                str(out),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "WSD_HOSTILE_KEY": KEY},
        )
        time.sleep(2.5)  # inside the stream, under the message stream
        proc.send_signal(signal.SIGTERM)
        try:
            _out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 143, err
    report = json.loads(out.read_text())
    assert report["interrupted"] is True and "Traceback" not in err
