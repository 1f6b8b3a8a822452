"""The mock's streaming TTS endpoint (/v1/speak) against the official SDK's speak.v1 client and types,
and ``wsdoctor watch`` judging a TTS app by TTS's rules (Flush at most 20 per 60 s; no KeepAlive)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pydantic
import pytest
from deepgram.speak.v1.types import SpeakV1Cleared, SpeakV1Flushed, SpeakV1Metadata, SpeakV1Text, SpeakV1Warning

from tests import watch_apps as apps
from tests.sdk_schema import validate_strictly
from tests.test_watch import run_app
from wsdoctor.mock.speak import Speaker

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.timeout(90)]

# The SDK types Flushed/Cleared's ``type`` as Literal | Any (no discriminated union possible): the
# model is chosen by the message's type, validated, and its type checked against the name.
MODELS: dict[str, type[pydantic.BaseModel]] = {
    "Metadata": SpeakV1Metadata,
    "Flushed": SpeakV1Flushed,
    "Cleared": SpeakV1Cleared,
    "Warning": SpeakV1Warning,
}


def _strict(message: dict[str, Any]) -> Any:
    return validate_strictly(MODELS, message)


def test_every_speak_message_validates_strictly_against_the_sdk_types() -> None:
    speaker = Speaker("00000000-0000-0000-0000-000000000000")
    sent: list[Any] = [speaker.metadata()]
    for i in range(22):  # past the 20-per-60-s limit: a Warning
        speaker.speak("Hello there.")
        sent += speaker.flush(float(i))
    sent.append(speaker.clear())
    json_messages = [m for m in sent if isinstance(m, dict)]
    kinds = [m["type"] for m in json_messages]
    assert kinds.count("Flushed") == 20 and kinds.count("Warning") == 2 and kinds[-1] == "Cleared"
    assert [m["sequence_id"] for m in json_messages if m["type"] == "Flushed"] == list(range(20))
    assert any(isinstance(m, bytes) and m for m in sent)  # audio before each Flushed
    for message in json_messages:
        _strict(json.loads(json.dumps(message)))


async def sdk_speak(base: str, flushes: int = 2) -> None:
    """The official SDK's speak.v1 client: text, Flush, audio and Flushed back, Close, read to the close."""
    client = apps.sdk_client(base)
    received: list[Any] = []
    async with asyncio.timeout(30):
        async with client.speak.v1.connect(model="aura-2-thalia-en", encoding="linear16", sample_rate=24000) as conn:

            async def read() -> None:
                async for message in conn:
                    received.append(message)

            reader = asyncio.ensure_future(read())
            for i in range(flushes):
                await conn.send_text(SpeakV1Text(text=f"Sentence number {i} of the answer."))
                await conn.send_flush()
                await asyncio.sleep(0.05)
            await conn.send_close()
            await reader
    assert isinstance(received[0], SpeakV1Metadata)
    assert any(isinstance(m, bytes) for m in received)
    assert sum(isinstance(m, SpeakV1Flushed) for m in received) == min(flushes, 20)


async def test_the_official_sdk_speaks_through_the_watch_with_no_finding() -> None:
    ((conn, findings),) = await run_app(sdk_speak)
    assert conn.handshake is not None and conn.handshake.path == "/v1/speak"
    assert findings == [], [f.message for f in findings]
    assert conn.upstream_end.close_code == 1000 and conn.upstream_stats.audio_bytes > 0


async def test_a_tts_app_idle_between_utterances_is_no_finding() -> None:
    """Listen's 10 s silence rule is not speak's: pauses between utterances are normal for TTS."""

    async def pauses(base: str) -> None:
        client = apps.sdk_client(base)
        async with asyncio.timeout(30), client.speak.v1.connect(model="aura-2-thalia-en") as conn:
            await conn.send_text(SpeakV1Text(text="First."))
            await conn.send_flush()
            await asyncio.sleep(2.5)
            await conn.send_text(SpeakV1Text(text="Second."))
            await conn.send_flush()
            await conn.send_close()
            async for _message in conn:
                pass

    ((conn, findings),) = await run_app(pauses)
    assert findings == [] and conn.client_stats.max_gap_s >= 2.0


async def test_flushing_too_often_is_the_apps_finding() -> None:
    async def flush_happy(base: str) -> None:
        await sdk_speak(base, flushes=25)

    ((conn, findings),) = await run_app(flush_happy)
    assert [(f.code, f.severity.value) for f in findings] == [("client.flush-rate", "warn")]
    assert conn.max_flushes_per_60s == 25
    assert conn.upstream_stats.messages.get("Warning", 0) >= 5  # the five past the limit (and Close's own flush)
