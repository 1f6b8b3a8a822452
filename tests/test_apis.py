"""Every Deepgram WebSocket API through ``wsdoctor run``: the API comes from the URL's path (or
``--api``), the network-path checks are shared, and each API's stream is judged by its own rules --
against a real ``wsdoctor mock`` process serving /v1/listen, /v2/listen (Flux) and /v1/speak at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.mockproc import mock_process
from tests.test_faults import KEY, codes, run_against, status
from wsdoctor.check import Context, RunOptions
from wsdoctor.deepgram import Api, api_for
from wsdoctor.model import Target

FLUX = "/v2/listen?model=flux-general-en&encoding=linear16&sample_rate=16000"
SPEAK = "/v1/speak?model=aura-2-thalia-en&encoding=linear16&sample_rate=24000"


@pytest.mark.parametrize(
    ("path", "api"),
    [
        ("/v1/listen", Api.LISTEN),
        ("/v2/listen?model=flux-general-en", Api.FLUX),
        ("/v1/speak", Api.SPEAK),
        ("/v1/agent/converse", Api.AGENT),
        ("/deepgram/v2/listen/", Api.FLUX),  # a self-hosted prefix
        ("/", None),
    ],
)
def test_the_api_comes_from_the_path(path: str, api: Api | None) -> None:
    assert api_for(path) == api
    ctx = Context(target=Target.parse(f"wss://api.deepgram.com{path}"))
    assert ctx.api == (api or Api.LISTEN).value
    assert Context(target=ctx.target, options=RunOptions(api="speak")).api == "speak"  # --api wins


def test_a_url_without_a_path_gets_its_apis() -> None:
    from wsdoctor.commands.run import _with_api_path

    assert _with_api_path("wss://agent.deepgram.com", None) == "wss://agent.deepgram.com/v1/agent/converse"
    assert _with_api_path("wss://api.deepgram.com/", "flux") == "wss://api.deepgram.com/v2/listen"
    assert _with_api_path("wss://api.deepgram.com?x=1", "speak") == "wss://api.deepgram.com/v1/speak?x=1"
    assert _with_api_path("wss://api.deepgram.com/v1/listen", "flux") == "wss://api.deepgram.com/v1/listen"
    assert _with_api_path("wss://onprem:8080", None) == "wss://onprem:8080"
    assert Context(target=Target.parse("wss://agent.deepgram.com/")).api == "agent"


def _flux_url(base: str) -> str:
    return base.removesuffix("/v1/listen") + FLUX


def _speak_url(base: str) -> str:
    return base.removesuffix("/v1/listen") + SPEAK


@pytest.mark.parametrize(("make_url", "stream_check"), [(_flux_url, "flux.stream"), (_speak_url, "speak.stream")])
def test_each_api_is_diagnosed_by_its_own_stream_check(
    make_url: object,
    stream_check: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with mock_process("--api-key", KEY) as url:
        code, report, text = run_against(make_url(url), tmp_path, monkeypatch, capsys)  # type: ignore[operator]
    assert code == 0, text
    ids = {r["check_id"] for r in report["results"]}
    assert status(report, stream_check) == "pass"
    assert status(report, "ws.auth") == "pass" and status(report, "tcp.connect") == "pass"
    # listen's protocol checks are not part of another API's run
    assert not ids & {"stream.transcribe", "close.handshake", "rest.transcribe"}
    assert not ids & ({"flux.stream", "speak.stream"} - {stream_check})


@pytest.mark.parametrize(
    ("api", "fault", "code"),
    [
        ("flux", "drop-no-close", "close.no-close-frame"),
        ("flux", "rst", "stream.reset"),
        ("flux", "never-close-reply", "close.no-close-reply"),
        ("flux", "reject-402", "ws.payment-required"),
        ("speak", "drop-no-close", "close.no-close-frame"),
        ("speak", "rst", "stream.reset"),
        ("speak", "never-close-reply", "close.no-close-reply"),
        ("speak", "reject-429", "ws.rate-limited"),
        ("speak", "tts-mute", "speak.no-audio"),
        ("speak", "slow-results", "speak.slow-first-audio"),
        ("flux", "close-1011-net0000", "flux.error"),
    ],
)
def test_each_api_fault_is_named(
    api: str, fault: str, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # slow-results holds the TTS audio back 6 s: the wait for it must be longer to see it come late
    wait = "8" if fault == "slow-results" else "2"
    with mock_process("--api-key", KEY, "--fault", fault) as url:
        target = _flux_url(url) if api == "flux" else _speak_url(url)
        exit_code, report, text = run_against(target, tmp_path, monkeypatch, capsys, "--close-wait", wait)
    assert exit_code == (0 if fault == "slow-results" else 1), text  # a slow start is a warning
    assert code in codes(report), sorted(codes(report))


def test_flux_idle_error_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Flux stream with audio every 0.1 s never idles; the Error path is judged on a recording:
    INACTIVE_CLIENT is flux.error (the mock's idle window is covered in tests/test_mock_flux.py)."""
    from checks.flux import analyze
    from wsdoctor.model import FrameKind, Outcome
    from wsdoctor.probes.session import SessionObservation
    from wsdoctor.probes.wsclient import UpgradeObservation, WireEvent

    obs = SessionObservation(
        upgrade=UpgradeObservation(
            url="ws://x/v2/listen", authenticated=True, address="127.0.0.1:1", marks=(), outcome=Outcome.UPGRADED
        ),
        ending="closestream",
        close_wait_s=5.0,
        audio_s=1.0,
        open_t=0.1,
        audio_first_t=0.2,
        events=(
            WireEvent(t_s=0.15, direction="in", kind=FrameKind.TEXT, msg_type="Connected"),
            WireEvent(
                t_s=60.2,
                direction="in",
                kind=FrameKind.TEXT,
                msg_type="Error",
                detail={"code": "INACTIVE_CLIENT", "description": "No audio or ping within the timeout window."},
            ),
        ),
    )
    found = analyze(obs)
    assert [f.code for f in found] == ["flux.error"] and "INACTIVE_CLIENT" in found[0].message


def test_a_flux_model_on_v1_listen_is_refused_as_deepgram_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with mock_process("--api-key", KEY) as url:
        exit_code, report, text = run_against(url + "?model=flux-general-en", tmp_path, monkeypatch, capsys)
    assert exit_code == 1, text
    bad = next(f for r in report["results"] for f in r["findings"] if f["code"] == "ws.bad-request")
    assert bad["cause"] == "request-parameters" and "V2_MODEL_ON_V1_LISTEN_ENDPOINT" in text
