"""analyze() functions judged on recorded observations in fixtures/observations/ -- no network.

Most fixtures were recorded by ``python -m tests.record_observations`` from real runs against the
mock's faults; the few cut by hand say so in a ``_note`` field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from checks import close, http, idle, rest, stream, ws
from wsdoctor.causes import CAUSES, FINDING_CODES
from wsdoctor.model import Finding, Outcome, Status
from wsdoctor.probes.idle import IdleFamily
from wsdoctor.probes.rest import RestObservation
from wsdoctor.probes.session import SessionObservation
from wsdoctor.probes.soak import SoakConnection, SoakObservation
from wsdoctor.probes.wsclient import UpgradeObservation

OBS = Path(__file__).resolve().parent.parent / "fixtures" / "observations"


def load_obs(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((OBS / name).read_text())
    return data


def upgrade(name: str) -> UpgradeObservation:
    return UpgradeObservation.from_dict(load_obs(name))


def session(name: str) -> SessionObservation:
    return SessionObservation.from_dict(load_obs(name))


def family(name: str) -> IdleFamily:
    return IdleFamily.from_dict(load_obs(name))


def close_pair(name: str) -> tuple[SessionObservation, SessionObservation]:
    data = load_obs(name)
    return SessionObservation.from_dict(data["closestream"]), SessionObservation.from_dict(data["client_close"])


def codes(findings: list[Finding]) -> list[str]:
    return [f.code for f in findings]


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("http/healthy.json", []),  # 401 with dg-request-id: the path works
        ("http/reject-401.json", []),
        ("http/reject-429.json", []),  # the status is ws.auth's to judge
        ("http/html-200.json", ["http.intermediary-response"]),
        ("http/upgrade-stripped-426.json", ["http.upgrade-stripped"]),
        ("http/bad-accept-101.json", ["http.upgrade-stripped"]),
        ("http/garbage.json", ["http.intermediary-response"]),
        ("http/eof-before-answer.json", ["http.no-response"]),
    ],
)
def test_http_upgrade(fixture: str, expected: list[str]) -> None:
    assert codes(http.analyze(upgrade(fixture))) == expected


def test_http_says_which_hop_answered() -> None:
    finding = http.analyze(upgrade("http/html-200.json"))[0]
    assert "not Deepgram" in str(finding.evidence["answered_by"])
    assert "CaptivePortal" in str(finding.evidence["answered_by"])
    assert finding.cause == "proxy-firewall"


@pytest.mark.parametrize(
    ("fixture", "expected", "cause"),
    [
        ("ws/healthy.json", [], None),
        ("ws/reject-401.json", ["ws.auth-rejected"], "credentials"),
        ("ws/reject-429.json", ["ws.rate-limited"], "account-limits"),
        ("ws/no-key-429.json", ["ws.rate-limited"], "account-limits"),
        ("ws/reject-503.json", ["ws.server-error"], "service"),
        ("http/html-200.json", ["http.intermediary-response"], "proxy-firewall"),
        ("http/upgrade-stripped-426.json", ["http.upgrade-stripped"], "proxy-firewall"),
    ],
)
def test_ws_auth(fixture: str, expected: list[str], cause: str | None) -> None:
    findings = ws.analyze(upgrade(fixture))
    assert codes(findings) == expected
    if cause:
        assert findings[0].cause == cause
        assert findings[0].evidence.get("dg_request_id") or cause == "proxy-firewall"


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("stream/healthy.json", []),
        ("stream/drop-no-close.json", ["close.no-close-frame"]),
        ("stream/rst.json", ["stream.reset"]),
        ("stream/never-close-reply.json", []),  # streaming itself worked
        ("stream/close-1008.json", ["close.unexpected-code"]),
        ("stream/close-1011-net0000.json", ["close.unexpected-code"]),
        ("stream/close-1012.json", ["close.unexpected-code"]),
        ("stream/slow-results.json", ["stream.slow-first-result"]),
    ],
)
def test_stream(fixture: str, expected: list[str]) -> None:
    assert codes(stream.analyze(session(fixture))) == expected


def test_stream_metrics_from_recording() -> None:
    m = stream.stream_metrics(session("stream/healthy.json"))
    assert m["results"] == 3
    assert isinstance(m["first_result_s"], float)
    assert 0.5 < m["first_result_s"] < 1.5
    assert isinstance(m["transcript_chars"], int)
    assert m["transcript_chars"] > 10


def test_stream_mid_stream_drop_says_when() -> None:
    (finding,) = stream.analyze(session("stream/drop-no-close.json"))
    assert "into the stream" in finding.message
    assert finding.cause == "network-instability"


def test_stream_close_codes_map_to_causes() -> None:
    assert stream.analyze(session("stream/close-1008.json"))[0].cause == "audio-format"
    assert stream.analyze(session("stream/close-1011-net0000.json"))[0].cause == "service"
    assert stream.analyze(session("stream/close-1012.json"))[0].cause == "service"


def test_slow_first_result_thresholds() -> None:
    obs = session("stream/slow-results.json")
    (warn_or_fail,) = stream.analyze(obs, slow_first_result_s=3.0)
    assert warn_or_fail.severity is Status.FAIL  # > 2x the threshold
    (warn,) = stream.analyze(obs, slow_first_result_s=5.0)
    assert warn.severity is Status.WARN
    assert stream.analyze(obs, slow_first_result_s=30.0) == []


def test_empty_transcripts_point_to_audio_format() -> None:
    obs = load_obs("stream/healthy.json")
    for event in obs["events"]:
        if event.get("msg_type") == "Results":
            event["detail"]["transcript"] = ""
    (finding,) = stream.analyze(SessionObservation.from_dict(obs))
    assert finding.code == "stream.empty-transcript"
    assert finding.cause == "audio-format"


def test_no_results_at_all() -> None:
    obs = load_obs("stream/healthy.json")
    obs["events"] = [e for e in obs["events"] if e.get("msg_type") != "Results"]
    assert codes(stream.analyze(SessionObservation.from_dict(obs))) == ["stream.no-results"]


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("close/healthy.json", []),
        ("close/drop-no-close.json", ["close.no-close-frame"]),
        ("close/rst.json", ["stream.reset"]),
        ("close/never-close-reply.json", ["close.no-close-reply"]),
        ("close/close-1008.json", ["close.unexpected-code"]),
        ("close/close-1012.json", ["close.unexpected-code"]),
    ],
)
def test_close(fixture: str, expected: list[str]) -> None:
    assert codes(close.analyze(*close_pair(fixture))) == expected


def test_close_metrics_from_recording() -> None:
    m = close.close_metrics(*close_pair("close/healthy.json"))
    assert m["close_reply_s"] is not None
    assert m["closestream_to_close_s"] is not None
    assert m["closestream_to_metadata_s"] is not None
    assert m["closestream_to_metadata_s"] <= m["closestream_to_close_s"]


def test_eof_right_after_closestream_is_no_close_frame() -> None:
    obs = load_obs("close/healthy.json")["closestream"]
    cs = obs["closestream_t"]
    obs["events"] = [e for e in obs["events"] if e["direction"] == "out" or e["t_s"] < cs]
    obs["events"].append({"t_s": cs + 0.05, "direction": "in", "kind": "eof"})
    (finding,) = close.analyze_closestream(SessionObservation.from_dict(obs))
    assert finding.code == "close.no-close-frame"
    assert "right after our CloseStream" in finding.message


@pytest.mark.parametrize(
    ("code", "reason", "finding", "cause"),
    [
        (1000, "", None, None),
        (1011, "NET-0001: no audio", "idle.server-timeout", "connection-handling"),
        (1011, "NET-0000: no response", "close.unexpected-code", "service"),
        (1008, "DATA-0000: bad audio", "close.unexpected-code", "audio-format"),
        (1012, "Service restart", "close.unexpected-code", "service"),
        (1013, "Try again later", "close.unexpected-code", "service"),
        (4000, "custom", "close.unexpected-code", "service"),
    ],
)
def test_close_codes(code: int, reason: str, finding: str | None, cause: str | None) -> None:
    f = close.judge_close_code(code, reason, "mid-stream")
    assert (f.code if f else None) == finding
    assert (f.cause if f else None) == cause


def test_every_finding_code_maps_to_a_known_cause() -> None:
    for code, meta in FINDING_CODES.items():
        assert meta.cause in CAUSES, code
        assert code.split(".")[0] and "." in code


@pytest.mark.parametrize(
    ("fixture", "silent", "keepalive", "ping"),
    [
        ("idle/healthy.json", ["idle.server-timeout"], [], []),
        ("idle/idle-cutoff.json", ["idle.middlebox-cutoff"], ["idle.middlebox-cutoff"], []),
        ("idle/ignore-keepalive.json", ["idle.server-timeout"], ["idle.keepalive-ineffective"], []),
        ("idle/ignore-pings.json", ["idle.server-timeout"], [], ["idle.no-pong"]),
        # a server whose window (3 s) is shorter than our KeepAlive interval (4 s) closes before the
        # first KeepAlive is due: nothing says KeepAlive is ignored (a false alarm once)
        ("idle/replay-window-shorter-than-keepalive.json", ["idle.server-timeout"], [], []),
    ],
)
def test_idle_family(fixture: str, silent: list[str], keepalive: list[str], ping: list[str]) -> None:
    fam = family(fixture)
    assert codes(idle.analyze_silent(fam)) == silent
    assert codes(idle.analyze_keepalive(fam)) == keepalive
    assert codes(idle.analyze_ping(fam)) == ping


def test_keepalive_is_ineffective_only_when_the_close_ignores_it() -> None:
    """KeepAlives that pushed the close one window past the last of them worked, even if the stream
    was closed in the end; the close must come one window after the idle began to blame them."""
    recorded = load_obs("idle/ignore-keepalive.json")
    (f,) = idle.analyze_keepalive(IdleFamily.from_dict(recorded))
    assert isinstance(f.evidence["keepalives_sent"], int) and f.evidence["keepalives_sent"] >= 1
    assert f.evidence["server_idle_timeout_s"]
    honoured = json.loads(json.dumps(recorded))
    conn = next(c for c in honoured["connections"] if c["name"] == "keepalive")
    close = next(e for e in conn["events"] if e["direction"] == "in" and e["kind"] == "close")
    window = idle.idle_metrics(IdleFamily.from_dict(recorded))["server_idle_timeout_s"]
    assert window is not None
    last_ka = max(e["t_s"] for e in conn["events"] if e.get("msg_type") == "KeepAlive")
    close["t_s"] = conn["end_t"] = last_ka + window  # the timer was reset by the last KeepAlive
    assert close["t_s"] - conn["idle_from_t"] > window + 0.5
    assert idle.analyze_keepalive(IdleFamily.from_dict(honoured)) == []


def test_idle_server_timeout_is_info_not_a_fault() -> None:
    (f,) = idle.analyze_silent(family("idle/healthy.json"))
    assert f.severity is Status.INFO
    assert f.evidence["metadata_first"] is True
    m = idle.idle_metrics(family("idle/healthy.json"))
    assert m["server_idle_timeout_s"] == pytest.approx(2.0, abs=0.3)
    assert m["idle_cutoff_s"] is None
    assert isinstance(m["pongs"], int) and m["pongs"] >= 2
    assert m["pong_rtt_p50_ms"] is not None


def test_idle_cutoff_metric_and_ping_hint() -> None:
    fam = family("idle/idle-cutoff.json")
    assert idle.idle_metrics(fam)["idle_cutoff_s"] == pytest.approx(2.5, abs=0.5)
    (ka,) = idle.analyze_keepalive(fam)
    assert ka.evidence["pings_kept_path_open"] is True
    assert "pings" in ka.message


def test_soak_drops() -> None:
    obs = SoakObservation.from_dict(
        {
            "soak_s": 6.0,
            "wall_s": 6.2,
            "audio_s": 5.0,
            "connections": [
                {
                    "start_s": 0.0,
                    "outcome": "upgraded",
                    "dropped": True,
                    "open_for_s": 1.0,
                    "ended_by": "eof",
                    "terminal": {"t_s": 1.0, "direction": "in", "kind": "eof"},
                },
                {
                    "start_s": 1.6,
                    "outcome": "upgraded",
                    "dropped": False,
                    "reconnect_after_drop_s": 0.6,
                    "ended_by": "close",
                },
            ],
        }
    )
    (f,) = stream.analyze_soak(obs)
    assert f.code == "close.no-close-frame"
    assert f.evidence["drops"] == 1
    assert "1 drop(s) in 6.0 s" in f.message
    held = SoakObservation(3.0, 3.1, 3.0, (SoakConnection(0.0, Outcome.UPGRADED, dropped=False),))
    assert stream.analyze_soak(held) == []
    refused = SoakObservation(3.0, 3.1, 0.0, (SoakConnection(0.0, Outcome.HTTP_RESPONSE, status=503),))
    assert [f.code for f in stream.analyze_soak(refused)] == ["http.no-response"]
    assert stream.soak_metrics(obs) == {"soak_audio_s": 5.0, "drops": 1, "connections": 2, "soak_results": 0}


def rest_obs(**fields: object) -> RestObservation:
    return RestObservation.from_dict({"url": "https://x/v1/listen", **fields})


def test_rest() -> None:
    ok = rest_obs(outcome="answered", status=200, transcript="hello", request_id="x")
    assert rest.analyze(ok) == []
    empty = rest_obs(outcome="answered", status=200, transcript="", request_id="x")
    assert codes(rest.analyze(empty)) == ["stream.empty-transcript"]
    portal = rest_obs(outcome="answered", status=200, transcript=None, request_id=None, server="portal")
    assert [(f.code, f.cause) for f in rest.analyze(portal)] == [("rest.failed", "proxy-firewall")]
    denied = rest_obs(outcome="answered", status=403, request_id=None, server="squid/5.7")
    (f,) = rest.analyze(denied)
    assert (f.code, f.cause) == ("rest.failed", "proxy-firewall")
    assert rest.analyze(rest_obs(outcome="refused"))[0].code == "rest.failed"
