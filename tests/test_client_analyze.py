"""checks/client.py on recorded connections (fixtures/observations/watch/): pure, no sockets.

The recordings come from real apps through the real relay into the mock (each file's ``_note``
says which); tests/test_watch.py produces the same codes live. Here the judge is pinned on them,
and edge cases are derived from them with ``dataclasses.replace`` (what a different timing would
have recorded), so every rule's both sides are tested without waiting for Deepgram's 10 s.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from checks.client import analyze, analyze_session, result_for
from wsdoctor.model import Status
from wsdoctor.probes.watch import WatchedConnection

WATCH = Path(__file__).resolve().parent.parent / "fixtures" / "observations" / "watch"


def load(name: str) -> WatchedConnection:
    data = json.loads((WATCH / f"{name}.json").read_text())
    data.pop("_note", None)
    return WatchedConnection.from_dict(data)


EXPECTED = {
    "sdk-healthy": [],
    "keepalive-bridge": [],
    "silent-net0001": [("client.idle-gap", Status.FAIL)],
    "silent-lenient-upstream": [("client.idle-gap", Status.WARN)],
    "keepalive-binary": [("client.keepalive-binary", Status.FAIL)],
    "empty-binary": [("client.empty-binary-frame", Status.FAIL)],
    "no-closestream": [("client.no-closestream", Status.WARN)],
    "exits-before-close": [("client.close-not-awaited", Status.FAIL)],
    "wav-as-linear16": [("client.encoding-mismatch", Status.WARN)],
    "too-fast": [("client.pace", Status.WARN)],
    "upstream-rst": [("upstream.dropped", Status.FAIL)],
    "upstream-reject-402": [("upstream.rejected", Status.FAIL)],
}


def test_every_recording_has_an_expectation() -> None:
    assert {p.stem for p in WATCH.glob("*.json")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_connection_is_judged(name: str) -> None:
    conn = load(name)
    findings = analyze(conn)
    assert [(f.code, f.severity) for f in findings] == EXPECTED[name], [f.message for f in findings]
    result = result_for(conn, findings)
    worst = {s for _c, s in EXPECTED[name]}
    assert result.status is (Status.FAIL if Status.FAIL in worst else Status.WARN if worst else Status.PASS)


def test_idle_gap_threshold_is_deepgrams_window() -> None:
    healthy = load("sdk-healthy")
    for gap, expected in ((9.9, []), (10.0, ["client.idle-gap"]), (14.2, ["client.idle-gap"])):
        conn = replace(healthy, client_stats=replace(healthy.client_stats, max_gap_s=gap, max_gap_from_t=1.0))
        assert [f.code for f in analyze(conn)] == expected, gap


def test_net0001_blames_the_app_not_the_upstream() -> None:
    findings = analyze(load("silent-net0001"))
    assert [f.cause for f in findings] == ["connection-handling"]
    assert "NET-0001" in findings[0].message and "no KeepAlive was sent" in findings[0].message


def test_rejection_cause_follows_the_status() -> None:
    conn = load("upstream-reject-402")
    assert analyze(conn)[0].cause == "account-limits"
    for status, cause in ((401, "credentials"), (429, "account-limits"), (503, "service")):
        other = replace(conn, answer=replace(conn.answer, status=status, body=None, dg_error=None))
        assert analyze(other)[0].cause == cause, status
    bad_param = replace(
        conn,
        answer=replace(
            conn.answer,
            status=400,
            body='{"category":"INVALID_QUERY_PARAMETER","message":"Invalid query parameter: model"}',
        ),
    )
    assert analyze(bad_param)[0].cause == "request-parameters"


def test_pace_slow_and_normal() -> None:
    fast = load("too-fast")
    stats = fast.client_stats
    audio_s = stats.audio_bytes / (2 * 16000)
    for active, runs, expected in (
        (audio_s * 1.0, 1, []),
        (audio_s * 3.0, 1, ["client.pace"]),  # 0.33x: slower than the declared format
        (audio_s / 1.2, 1, []),
        (audio_s * 1.0, 5, []),  # five bursts with pauses between (an app streaming only speech)
    ):
        conn = replace(fast, client_stats=replace(stats, audio_active_s=active, audio_runs=runs))
        assert [f.code for f in analyze(conn)] == expected, (active, runs)


def test_close_patience_decides_who_is_to_blame() -> None:
    early = load("exits-before-close")
    assert early.closestream_t is not None and early.client_end.tcp_t is not None
    for waited, expected in (
        (0.2, [("client.close-not-awaited", Status.FAIL)]),
        (1.5, [("upstream.no-close-reply", Status.WARN)]),
        (12.0, [("upstream.no-close-reply", Status.FAIL)]),
    ):
        end = replace(early.client_end, tcp_t=early.closestream_t + waited)
        got = [(f.code, f.severity) for f in analyze(replace(early, client_end=end))]
        assert got == expected, waited


def test_upstream_closing_first_is_not_the_apps_fault() -> None:
    """The app's FIN right after the upstream's reset is a reaction: no client.* finding."""
    conn = load("upstream-rst")
    assert conn.first_to_end == "upstream"
    assert not [f for f in analyze(conn) if f.code.startswith("client.")]
    flipped = replace(conn, first_to_end="client")
    codes = {f.code for f in analyze(flipped)}
    assert "upstream.dropped" not in codes and "client.close-not-awaited" in codes


def _series(delays: list[float], failed: bool = True) -> list[WatchedConnection]:
    base = load("upstream-rst" if failed else "sdk-healthy")
    out, t = [], 0.0
    for i, delay in enumerate([0.0, *delays], start=1):
        t += delay
        conn = replace(base, index=i, started_at_s=t)
        out.append(conn)
        t += conn.duration_s
    return out


def test_reconnect_storm_needs_quick_reconnects_after_failures() -> None:
    storm = analyze_session(_series([0.05, 0.05, 0.05, 0.05]))
    assert [f.code for f in storm[4]] == ["client.reconnect-storm"]
    assert analyze_session(_series([0.05, 0.05])) == {}  # two reconnects: not yet a storm
    assert analyze_session(_series([0.5, 1.0, 2.0, 4.0])) == {}  # backing off
    assert analyze_session(_series([0.05, 0.05, 0.05, 0.05], failed=False)) == {}  # clean sessions, one after another
