"""The mock's Voice Agent endpoint (/v1/agent/converse) against the official SDK's agent.v1 client and
types; ``wsdoctor run --api agent`` and ``wsdoctor watch`` judging an agent app by the agent's rules."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pydantic
import pytest
import websockets
from deepgram.agent.v1.types import (
    AgentV1ConversationText,
    AgentV1Error,
    AgentV1Settings,
    AgentV1SettingsApplied,
    AgentV1Welcome,
)

from tests import watch_apps as apps
from tests.mockproc import mock_process
from tests.sdk_schema import validate_strictly
from tests.test_faults import KEY, codes, run_against
from tests.test_watch import run_app
from wsdoctor import deepgram
from wsdoctor.mock import MockConfig
from wsdoctor.mock.agent import error
from wsdoctor.probes.agent import SETTINGS

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.timeout(90)]

MODELS: dict[str, type[pydantic.BaseModel]] = {
    "Welcome": AgentV1Welcome,
    "SettingsApplied": AgentV1SettingsApplied,
    "ConversationText": AgentV1ConversationText,
    "Error": AgentV1Error,
}


def _strict(message: dict[str, Any]) -> Any:
    return validate_strictly(MODELS, message)


@pytest.mark.parametrize(
    "message",
    [
        {"type": "Welcome", "request_id": "ba5e6d59-c4f2-4701-8360-dd25a2bc47e9"},
        {"type": "SettingsApplied"},
        {"type": "ConversationText", "role": "user", "content": "hello from the wsdoctor mock"},
        error(deepgram.AGENT_CLIENT_MESSAGE_TIMEOUT),
        error(deepgram.AGENT_UNPARSABLE),
    ],
    ids=lambda m: str(m.get("code") or m["type"]),
)
def test_every_agent_message_validates_strictly_against_the_sdk_types(message: dict[str, Any]) -> None:
    _strict(message)


def test_our_settings_are_valid_settings() -> None:
    AgentV1Settings.model_validate(SETTINGS)


async def sdk_agent(base: str) -> None:
    """The official SDK's agent.v1 client: Settings, SettingsApplied, real-time speech, KeepAlive, close."""
    client = apps.sdk_client(base)
    audio, rate, _ch = apps.pcm()
    received: list[Any] = []
    async with asyncio.timeout(30), client.agent.v1.connect() as conn:

        async def read() -> None:
            async for message in conn:
                received.append(message)

        reader = asyncio.ensure_future(read())
        await conn.send_settings(AgentV1Settings.model_validate(SETTINGS))
        for i in range(0, len(audio), rate * 2 // 10):
            await conn.send_media(audio[i : i + rate * 2 // 10])
            await asyncio.sleep(0.1)
        await conn.send_keep_alive()
        await asyncio.sleep(0.3)
        await conn._websocket.close()
        await asyncio.wait_for(reader, 5)
    kinds = [getattr(m, "type", None) for m in received]
    assert kinds[:2] == ["Welcome", "SettingsApplied"] and "ConversationText" in kinds, kinds


async def test_the_official_sdk_talks_to_the_agent_through_the_watch_with_no_finding() -> None:
    ((conn, findings),) = await run_app(sdk_agent)
    assert conn.handshake is not None and conn.handshake.path == "/v1/agent/converse"
    assert findings == [], [f.message for f in findings]
    assert conn.first_client_message == "Settings" and conn.upstream_end.close_code == 1000


async def audio_before_settings(base: str) -> None:
    audio, rate, _ch = apps.pcm()
    async with websockets.connect(
        f"{base}/v1/agent/converse", additional_headers={"Authorization": f"Token {apps.KEY}"}
    ) as ws:
        await ws.send(audio[: rate * 2 // 10])
        await ws.send(json.dumps(SETTINGS))
        await asyncio.sleep(0.3)


async def silent_after_settings(base: str) -> None:
    async with websockets.connect(
        f"{base}/v1/agent/converse", additional_headers={"Authorization": f"Token {apps.KEY}"}
    ) as ws:
        await ws.send(json.dumps(SETTINGS))
        await apps._drain(ws, 10)


async def test_audio_before_settings_is_the_apps_finding() -> None:
    ((_conn, findings),) = await run_app(audio_before_settings)
    assert [(f.code, f.severity.value) for f in findings] == [("client.agent-settings-first", "fail")]


async def test_a_silent_agent_app_times_out_and_is_told_to_keep_alive() -> None:
    ((conn, findings),) = await run_app(silent_after_settings, MockConfig(idle_timeout_s=1.0))  # agent window 1 s
    assert [f.code for f in findings] == ["client.idle-gap"] and "CLIENT_MESSAGE_TIMEOUT" in findings[0].message
    assert conn.upstream_end.close_t is not None and conn.upstream_end.close_code is None  # code-less close: 1005


@pytest.mark.parametrize(
    ("fault", "code", "exit_code"),
    [
        (None, None, 0),
        ("close-1011-net0000", "agent.error", 1),
        ("slow-results", "agent.settings-not-applied", 1),
        ("never-close-reply", "close.no-close-reply", 1),
        ("rst", "stream.reset", 1),
    ],
)
def test_run_diagnoses_the_agent(
    fault: str | None,
    code: str | None,
    exit_code: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["--api-key", KEY] + (["--fault", fault] if fault else [])
    with mock_process(*args) as url:
        target = url.removesuffix("/v1/listen") + "/v1/agent/converse"
        got, report, text = run_against(target, tmp_path, monkeypatch, capsys, "--close-wait", "2")
    assert got == exit_code, text
    if code is None:
        assert next(r for r in report["results"] if r["check_id"] == "agent.session")["status"] == "pass"
    else:
        assert code in codes(report), sorted(codes(report))
