"""The mock is only useful if real clients accept it: Deepgram's official Python SDK
(``deepgram-sdk``) streams the speech fixture to ``wsdoctor mock`` and parses every message with its
own pydantic models, then posts the same audio to the pre-recorded API."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

import wsdoctor
from wsdoctor.mock import MockConfig, MockServer

deepgram = pytest.importorskip("deepgram", reason="the official Deepgram SDK (deepgram-sdk) is not installed")

from deepgram import AsyncDeepgramClient  # noqa: E402
from deepgram.environment import DeepgramClientEnvironment  # noqa: E402
from deepgram.listen.v1.types import ListenV1Metadata, ListenV1Results  # noqa: E402

# The SDK (7.x) streams through websockets' legacy client, which warns on import.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SPEECH_WAV = Path(wsdoctor.__file__).parent / "data" / "speech.wav"
KEY = "sdk-test-key"


def environment(srv: MockServer) -> DeepgramClientEnvironment:
    """Point every SDK base URL at the mock."""
    base = f"127.0.0.1:{srv.port}"
    return DeepgramClientEnvironment(
        base=f"http://{base}", production=f"ws://{base}", agent=f"ws://{base}", agent_rest=f"http://{base}"
    )


async def test_sdk_streams_to_mock_and_parses_every_message() -> None:
    audio = SPEECH_WAV.read_bytes()
    async with MockServer(MockConfig(api_key=KEY)) as srv:
        client = AsyncDeepgramClient(api_key=KEY, environment=environment(srv))
        received: list[Any] = []
        async with asyncio.timeout(15):
            async with client.listen.v1.connect(model="nova-3") as conn:
                for i in range(0, len(audio), 3200):
                    await conn.send_media(audio[i : i + 3200])
                await conn.send_close_stream()
                async for message in conn:  # ends when the server closes with 1000
                    received.append(message)
                assert conn._websocket.close_code == 1000  # a clean close handshake, seen by websockets
        await asyncio.sleep(0)
        assert srv.stats.closestream_received == 1

    results = [m for m in received if isinstance(m, ListenV1Results)]
    metadata = [m for m in received if isinstance(m, ListenV1Metadata)]
    assert len(received) == len(results) + len(metadata), [type(m) for m in received]
    assert len(results) == 3 and len(metadata) == 1
    assert isinstance(received[-1], ListenV1Metadata)
    transcripts = [r.channel.alternatives[0].transcript for r in results]
    assert all(transcripts), transcripts
    first = results[0]
    assert first.is_final is True and first.from_finalize is False and first.channel_index == [0, 1]
    assert first.channel.alternatives[0].words[0].word == "hello"
    assert first.metadata.model_info.name
    meta = metadata[0]
    assert meta.transaction_key == "deprecated" and meta.channels == 1
    assert meta.request_id == first.metadata.request_id
    assert abs(meta.duration - 2.796) < 0.01


async def test_sdk_rejected_key_raises_api_error_401() -> None:
    from deepgram.core.api_error import ApiError

    async with MockServer(MockConfig(api_key=KEY)) as srv:
        client = AsyncDeepgramClient(api_key="wrong-key", environment=environment(srv))
        with pytest.raises(ApiError) as info:
            async with asyncio.timeout(10), client.listen.v1.connect(model="nova-3"):
                pass
    assert info.value.status_code == 401


async def test_sdk_prerecorded_transcribe_file() -> None:
    async with MockServer(MockConfig(api_key=KEY)) as srv, httpx.AsyncClient() as http:
        client = AsyncDeepgramClient(api_key=KEY, environment=environment(srv), httpx_client=http)
        async with asyncio.timeout(15):
            response = await client.listen.v1.media.transcribe_file(request=SPEECH_WAV.read_bytes(), model="nova-3")
    assert response.results.channels[0].alternatives[0].transcript.startswith("hello from the wsdoctor")
    assert response.metadata.channels == 1 and response.metadata.request_id


# --- the SDK's own types as the schema, strictly ----------------------------------------------------
# The SDK parses frames with construct_type(), which never validates: a Results missing a required
# field still comes out as a ListenV1Results. So "the SDK accepted it" proves little; validating
# with a discriminated TypeAdapter over the SDK's pydantic models does.

import json  # noqa: E402
import typing  # noqa: E402

import pydantic  # noqa: E402
from deepgram.listen.v1.types import ListenV1SpeechStarted, ListenV1UtteranceEnd  # noqa: E402

from wsdoctor import deepgram as dg  # noqa: E402
from wsdoctor.mock import messages  # noqa: E402

try:  # ListenV1Error arrived in the 7.x line; older SDKs parse only the four types below
    from deepgram.listen.v1.types import ListenV1Error
except ImportError:  # pragma: no cover - depends on the installed SDK
    ListenV1Error = None

_SERVER_TYPES: tuple[Any, ...] = tuple(
    t for t in (ListenV1Results, ListenV1Metadata, ListenV1UtteranceEnd, ListenV1SpeechStarted, ListenV1Error) if t
)
STRICT = pydantic.TypeAdapter(typing.Annotated[typing.Union[_SERVER_TYPES], pydantic.Field(discriminator="type")])
CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "deepgram-wire"


def _mock_messages() -> list[dict[str, Any]]:
    """One of every message the mock builds, with the mock's own builders."""
    words = messages.WordSource().take(0.0, 1.0)
    rid, created, sha = messages.new_request_id(), messages.created_now(), "0" * 64
    return [
        messages.results_message(request_id=rid, start=0.0, duration=1.0, words=words),
        messages.results_message(request_id=rid, start=1.0, duration=0.5, words=(), from_finalize=True),
        messages.metadata_message(request_id=rid, sha256=sha, created=created, duration=2.8, channels=1),
        messages.metadata_message(request_id=rid, sha256=sha, created=created, duration=0.0, channels=1, decoded=False),
        *([messages.error_message("Could not process text message: invalid JSON.", "{")] if ListenV1Error else []),
    ]


@pytest.mark.parametrize("message", _mock_messages(), ids=lambda m: f"{m['type']}")
def test_every_mock_message_validates_strictly_against_the_sdk_types(message: dict[str, Any]) -> None:
    parsed = STRICT.validate_python(json.loads(json.dumps(message)))
    assert parsed.type == message["type"]
    assert dg.message_problems(message) == []


def _corpus_messages() -> list[Any]:
    out = []
    for path in sorted(CORPUS.glob("msg-*.json")):
        item = json.loads(path.read_text(encoding="utf-8"))
        if item.get("api", "listen") == "listen":
            out.append(pytest.param(item["message"], id=item["id"]))
    return out


@pytest.mark.parametrize("message", _corpus_messages())
def test_real_captured_messages_validate_against_the_sdk_types(message: dict[str, Any]) -> None:
    STRICT.validate_python(message)


def test_the_protocol_module_and_the_sdk_reject_the_same_broken_results() -> None:
    """Drop each field the SDK requires from a real Results: both contracts refuse it."""
    real = next(json.loads(p.read_text())["message"] for p in sorted(CORPUS.glob("msg-results-*.json")))
    required = [n for n, f in ListenV1Results.model_fields.items() if f.is_required()]
    assert {"channel_index", "duration", "start", "channel", "metadata"} <= set(required)
    for name in required:
        broken = {k: v for k, v in real.items() if k != name}
        with pytest.raises(pydantic.ValidationError):
            STRICT.validate_python(broken)
        assert any(p.startswith(name) for p in dg.message_problems(broken)), name


def test_the_mock_and_a_real_prerecorded_response_validate_against_the_sdks_rest_type() -> None:
    from deepgram.types import ListenV1Response

    real = json.loads((CORPUS / "rest-response-python-sdk-fixture-nova3.json").read_text())["message"]
    ListenV1Response.model_validate(real)
    words = messages.WordSource().take(0.0, 2.0)
    mock = messages.rest_response(
        request_id=messages.new_request_id(),
        sha256="0" * 64,
        created=messages.created_now(),
        duration=2.0,
        channels=1,
        words=words,
    )
    parsed = ListenV1Response.model_validate(json.loads(json.dumps(mock)))
    assert parsed.results.channels[0].alternatives[0].transcript
    meta_type = ListenV1Response.model_fields["metadata"].annotation
    required = {n for n, f in meta_type.model_fields.items() if f.is_required()}
    assert required <= set(mock["metadata"]) and required <= set(real["metadata"])
