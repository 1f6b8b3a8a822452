"""The mock's Flux endpoint (/v2/listen) against the official SDK's listen.v2 client and types, and
``wsdoctor watch`` judging Flux by Flux's rules (pings keep it open; the v1 JSON KeepAlive ends it)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pydantic
import pytest
import websockets
from deepgram.listen.v2.types import ListenV2Connected, ListenV2FatalError, ListenV2TurnInfo

from tests import watch_apps as apps
from tests.sdk_schema import validate_strictly
from tests.test_watch import run_app
from wsdoctor.mock import MockConfig, start_mock
from wsdoctor.mock.flux import flux_messages

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.timeout(90)]

MODELS: dict[str, type[pydantic.BaseModel]] = {
    "Connected": ListenV2Connected,
    "TurnInfo": ListenV2TurnInfo,
    "Error": ListenV2FatalError,
}


def _strict(message: dict[str, Any]) -> Any:
    return validate_strictly(MODELS, message)


def test_every_flux_message_validates_strictly_against_the_sdk_types() -> None:
    sent = flux_messages(2.0)
    events = [m.get("event") for m in sent if m["type"] == "TurnInfo"]
    assert sent[0]["type"] == "Connected" and events[0] == "StartOfTurn" and events[-1] == "EndOfTurn"
    assert [m["sequence_id"] for m in sent] == list(range(len(sent)))
    for message in sent:
        _strict(json.loads(json.dumps(message)))


def flux_url(base: str, **params: Any) -> str:
    return f"{base}/v2/listen?" + "&".join(f"{k}={v}" for k, v in {"model": "flux-general-en", **params}.items())


async def sdk_flux(base: str) -> None:
    """The official SDK's listen.v2 client: real-time linear16, CloseStream, read to the close."""
    client = apps.sdk_client(base)
    audio, rate, _channels = apps.pcm()
    received: list[Any] = []
    async with asyncio.timeout(30):
        async with client.listen.v2.connect(
            model="flux-general-en", encoding="linear16", sample_rate=str(rate)
        ) as conn:

            async def read() -> None:
                async for message in conn:
                    received.append(message)

            reader = asyncio.ensure_future(read())
            chunk = rate * 2 // 10
            for i in range(0, len(audio), chunk):
                await conn.send_media(audio[i : i + chunk])
                await asyncio.sleep(0.1)
            await conn.send_close_stream()
            await reader
    kinds = [getattr(m, "type", None) for m in received]
    assert kinds[0] == "Connected" and "TurnInfo" in kinds, kinds
    assert received[-1].event == "EndOfTurn"


async def flux_pings_through_silence(base: str) -> None:
    """Audio, 3 s of silence bridged by WebSocket pings (Flux's keep-alive), more audio, CloseStream."""
    audio, rate, _channels = apps.pcm()
    chunk = rate * 2 // 10
    async with websockets.connect(
        flux_url(base, encoding="linear16", sample_rate=rate),
        additional_headers={"Authorization": f"Token {apps.KEY}"},
        ping_interval=0.5,
    ) as ws:
        reader = asyncio.ensure_future(apps._drain(ws, 20))
        await apps._stream(ws, audio, chunk, 0.1, limit=8)
        await asyncio.sleep(3.0)
        await apps._stream(ws, audio, chunk, 0.1, limit=8)
        await ws.send(json.dumps({"type": "CloseStream"}))
        await reader


async def flux_with_v1_keepalive(base: str) -> None:
    """A v1 habit on Flux: a JSON KeepAlive during a pause."""
    audio, rate, _channels = apps.pcm()
    async with websockets.connect(
        flux_url(base, encoding="linear16", sample_rate=rate),
        additional_headers={"Authorization": f"Token {apps.KEY}"},
    ) as ws:
        await apps._stream(ws, audio, rate * 2 // 10, 0.1, limit=5)
        await ws.send(json.dumps({"type": "KeepAlive"}))
        with contextlib.suppress(websockets.ConnectionClosed):
            async with asyncio.timeout(5):
                async for _message in ws:
                    pass
        assert ws.close_code == 1005  # the close frame carried no code, as Deepgram's does


async def test_the_official_sdk_streams_flux_through_the_watch_with_no_finding() -> None:
    ((conn, findings),) = await run_app(sdk_flux)
    assert conn.handshake is not None and conn.handshake.path == "/v2/listen"
    assert findings == [], [f.message for f in findings]
    assert conn.upstream_end.close_code == 1000


async def test_pings_keep_flux_open_and_are_no_finding() -> None:
    ((conn, findings),) = await run_app(flux_pings_through_silence, MockConfig(idle_timeout_s=1.0))  # Flux: 6 s
    assert findings == [], [f.message for f in findings]
    assert conn.client_stats.pings >= 3 and conn.upstream_end.close_code == 1000


async def test_a_v1_keepalive_on_flux_is_the_apps_finding() -> None:
    ((conn, findings),) = await run_app(flux_with_v1_keepalive)
    assert [(f.code, f.severity.value) for f in findings] == [("client.flux-keepalive", "fail")]
    assert conn.upstream_end.close_t is not None and conn.upstream_end.close_code is None  # a code-less close


async def test_flux_reports_an_idle_client_as_an_error_message() -> None:
    server = await start_mock(MockConfig(idle_timeout_s=0.5))  # Flux window: 3 s
    try:
        url = server.url.replace("/v1/listen", "/v2/listen?model=flux-general-en")
        async with websockets.connect(
            url, additional_headers={"Authorization": f"Token {apps.KEY}"}, ping_interval=None
        ) as ws:
            got = []
            with contextlib.suppress(websockets.ConnectionClosed):
                async with asyncio.timeout(10):
                    async for message in ws:
                        got.append(json.loads(message))
        assert [m["type"] for m in got] == ["Connected", "Error"]
        assert _strict(got[1]).code == "INACTIVE_CLIENT"
        assert ws.close_code == 1011
    finally:
        await server.stop()


async def flux_silent_without_pings(base: str) -> None:
    """A v1 habit the other way round: audio, then silence with neither audio nor pings."""
    audio, rate, _channels = apps.pcm()
    async with websockets.connect(
        flux_url(base, encoding="linear16", sample_rate=rate),
        additional_headers={"Authorization": f"Token {apps.KEY}"},
        ping_interval=None,
    ) as ws:
        await apps._stream(ws, audio, rate * 2 // 10, 0.1, limit=5)
        await apps._drain(ws, 10)


async def test_a_silent_flux_app_is_told_to_ping_and_the_close_is_not_blamed_on_deepgram() -> None:
    ((conn, findings),) = await run_app(flux_silent_without_pings, MockConfig(idle_timeout_s=0.3))  # Flux: 1.8 s
    assert [(f.code, f.severity.value) for f in findings] == [("client.idle-gap", "fail")]
    assert "INACTIVE_CLIENT" in findings[0].message and "ping" in findings[0].message
    assert conn.upstream_end.close_code == 1011  # without the Error it would be upstream.closed-error
