"""The built-in mock, tested as a client sees it: real servers on 127.0.0.1 port 0, real clients
(aiohttp, and a raw wsproto client over asyncio streams where the wire matters -- e.g. to prove
that a connection ended with *no* close frame). Windows are shrunk to fractions of a second and
every wait is bounded by ``asyncio.timeout``."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import math
import os
import random
import signal
import ssl
import struct
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

import wsdoctor
from wsdoctor import deepgram
from wsdoctor.errors import UsageError
from wsdoctor.mock import FAULTS, MockConfig, MockServer, start_mock
from wsdoctor.mock import audio as mock_audio
from wsdoctor.mock.server import REASON_DATA0000, REASON_NET0000, REASON_NET0001

SPEECH_WAV = Path(wsdoctor.__file__).parent / "data" / "speech.wav"
AUTH = {"Authorization": "Token test-key"}
EOF = "EOF"  # RawWS.next_event() result when the server ended TCP (FIN) without a close frame


def speech_bytes() -> bytes:
    return SPEECH_WAV.read_bytes()


def chunks(data: bytes, size: int = 3200) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def upgrade_headers(**extra: str) -> dict[str, str]:
    return {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
        **extra,
    }


def http_url(srv: MockServer, path: str = "/v1/listen") -> str:
    return f"http://127.0.0.1:{srv.port}{path}"


# --- a raw WebSocket client that shows exactly what came over the wire ----------------------------


_OPEN_CLIENTS: list[RawWS] = []


@pytest.fixture(autouse=True)
async def close_raw_clients() -> AsyncIterator[None]:
    yield
    while _OPEN_CLIENTS:
        raw = _OPEN_CLIENTS.pop()
        raw.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(1):
                await raw.writer.wait_closed()


class RawWS:
    """wsproto over asyncio streams. ``next_event`` returns wsproto events, :data:`EOF` when TCP
    ended without a close frame, and lets ``ConnectionResetError`` through (an RST)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: WSConnection) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = conn
        self.pending: list[Event] = []
        self.response: AcceptConnection | RejectConnection | None = None
        self.saw_close = False

    @classmethod
    async def connect(
        cls, url: str, headers: dict[str, str] | None = None, subprotocols: list[str] | None = None
    ) -> RawWS:
        u = urlsplit(url)
        assert u.hostname == "127.0.0.1"
        async with asyncio.timeout(3):
            reader, writer = await asyncio.open_connection(u.hostname, u.port)
        conn = WSConnection(ConnectionType.CLIENT)
        target = u.path + (f"?{u.query}" if u.query else "")
        hdrs = [(k.encode(), v.encode()) for k, v in (headers if headers is not None else AUTH).items()]
        writer.write(
            conn.send(
                Request(host=f"127.0.0.1:{u.port}", target=target, extra_headers=hdrs, subprotocols=subprotocols or [])
            )
        )
        raw = cls(reader, writer, conn)
        _OPEN_CLIENTS.append(raw)
        while raw.response is None:
            ev = await raw.next_event()
            assert ev != EOF, "server closed during the handshake"
            if isinstance(ev, AcceptConnection | RejectConnection):
                raw.response = ev
        return raw

    @property
    def accepted(self) -> AcceptConnection:
        assert isinstance(self.response, AcceptConnection), self.response
        return self.response

    async def next_event(self, timeout: float = 3.0) -> Event | str:
        async with asyncio.timeout(timeout):
            while not self.pending:
                data = await self.reader.read(65536)
                if not data:
                    return EOF
                self.conn.receive_data(data)
                self.pending.extend(self.conn.events())
        ev = self.pending.pop(0)
        if isinstance(ev, CloseConnection):
            self.saw_close = True
            if self.conn.state is ConnectionState.REMOTE_CLOSING:  # answer the server's close, as clients should
                self.writer.write(self.conn.send(ev.response()))
        if isinstance(ev, Ping):
            self.writer.write(self.conn.send(ev.response()))
        return ev

    async def send(self, event: Event) -> None:
        self.writer.write(self.conn.send(event))
        await self.writer.drain()

    async def send_bytes(self, data: bytes) -> None:
        await self.send(BytesMessage(data=data))

    async def send_json(self, obj: dict[str, Any]) -> None:
        await self.send(TextMessage(data=json.dumps(obj)))

    async def messages_until_end(self, timeout: float = 3.0) -> tuple[list[dict[str, Any]], Event | str]:
        """JSON text messages, then what ended them: a CloseConnection or EOF (no close frame)."""
        out: list[dict[str, Any]] = []
        async with asyncio.timeout(timeout):
            while True:
                ev = await self.next_event(timeout)
                if isinstance(ev, TextMessage):
                    out.append(json.loads(ev.data))
                elif ev == EOF or isinstance(ev, CloseConnection):
                    return out, ev

    def close(self) -> None:
        self.writer.close()


# --- fixtures ------------------------------------------------------------------------------


MockFactory = Callable[..., Awaitable[MockServer]]


@pytest.fixture(autouse=True)
def no_server_errors_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Client misbehaviour (garbage, drops, resets) must never surface as a server-side error."""
    caplog.set_level(logging.WARNING)
    yield
    watched = ("aiohttp", "wsdoctor", "asyncio")
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith(watched)]
    assert not noisy, [f"{r.name}: {r.getMessage()}" for r in noisy]


@pytest.fixture
async def mock() -> AsyncIterator[MockFactory]:
    started: list[MockServer] = []

    async def factory(**cfg: Any) -> MockServer:
        ssl_context = cfg.pop("ssl_context", None)
        srv = await start_mock(MockConfig(**cfg), ssl_context=ssl_context)
        started.append(srv)
        return srv

    yield factory
    for srv in started:
        async with asyncio.timeout(3):
            await srv.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def collect(
    ws: aiohttp.ClientWebSocketResponse, timeout: float = 3.0
) -> tuple[list[dict[str, Any]], aiohttp.WSMessage]:
    """Text messages as JSON until the connection ends; returns them and the final message."""
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT:
                out.append(json.loads(msg.data))
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                return out, msg


async def settled(srv: MockServer, timeout: float = 2.0) -> None:
    """Wait until the mock has finished every session (its counters are then final)."""
    async with asyncio.timeout(timeout):
        await srv.wait_idle()


def transcripts(msgs: list[dict[str, Any]]) -> list[str]:
    return [m["channel"]["alternatives"][0]["transcript"] for m in msgs if m["type"] == "Results"]


# --- configuration -----------------------------------------------------------------------------


def test_fault_table_and_config_validation() -> None:
    assert set(FAULTS) >= {
        "reject-401",
        "reject-402",
        "reject-403",
        "reject-429",
        "reject-503",
        "html-200",
        "drop-no-close",
        "rst",
        "never-close-reply",
        "slow-results",
        "idle-cutoff",
        "ignore-keepalive",
        "close-1011-net0000",
        "close-1012",
        "close-1008",
    }
    assert all(f.name == k and f.description for k, f in FAULTS.items())
    with pytest.raises(UsageError, match="unknown mock fault"):
        MockConfig(fault="nope")
    with pytest.raises(UsageError):
        MockConfig(idle_timeout_s=0)
    for reason in (REASON_NET0001, REASON_NET0000, REASON_DATA0000):
        assert len(reason.encode()) <= 123  # RFC 6455: a close reason fits a control frame
    # the mock sends Deepgram's own wire strings, not look-alikes
    assert deepgram.NET_0001.wire == REASON_NET0001 and "dpgr.am/net0001" in REASON_NET0001
    assert deepgram.NET_0000.wire == REASON_NET0000 and "dpgr.am/net0000" in REASON_NET0000


def test_importing_the_fault_table_does_not_load_aiohttp() -> None:
    import subprocess

    code = "import sys, wsdoctor.mock as m; m.FAULTS; m.MockConfig(); print('aiohttp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20, check=True)
    assert out.stdout.strip() == "False"


# --- audio helpers -----------------------------------------------------------------------------


def test_sniff_containers() -> None:
    fmt = mock_audio.sniff(speech_bytes()).format
    assert fmt is not None
    assert (fmt.container, fmt.sample_rate, fmt.channels, fmt.bits_per_sample) == ("wav", 16000, 1, 16)
    assert fmt.header_len == 44 and fmt.byte_rate == 32000
    assert mock_audio.sniff(speech_bytes()[:20]).need_more
    for head, name in [
        (b"OggS\x00\x02", "ogg"),
        (b"fLaC\x00\x00", "flac"),
        (b"ID3\x04\x00", "mp3"),
        (b"\xff\xfb\x90\x00", "mp3"),
        (b"\x1a\x45\xdf\xa3\x01", "webm"),
    ]:
        found = mock_audio.sniff(head).format
        assert found is not None and found.container == name, head
    assert mock_audio.sniff(b"Og").need_more
    unknown = mock_audio.sniff(b'{"type": "KeepAlive"}')
    assert unknown.format is None and not unknown.need_more
    assert mock_audio.sniff(b"RIFF\x00\x00\x00\x00AVI LIST").format is None


def test_levels_tell_speech_from_silence_and_noise() -> None:
    data = speech_bytes()[44:]
    assert mock_audio.is_speech(mock_audio.levels(data[:32000]))
    assert not mock_audio.is_speech(mock_audio.levels(bytes(32000)))
    rnd = random.Random(7)
    noise = bytes(rnd.getrandbits(8) for _ in range(32000))
    assert not mock_audio.is_speech(mock_audio.levels(noise))
    assert mock_audio.pcm16_rms(struct.pack("<4h", 1000, -1000, 1000, -1000)) == pytest.approx(1000)
    tone = struct.pack("<1600h", *(int(8000 * math.sin(2 * math.pi * 200 * i / 16000)) for i in range(1600)))
    assert mock_audio.is_speech(mock_audio.levels(tone))


def test_span_cutter_counts_audio_time() -> None:
    fmt = mock_audio.raw_format("linear16", 16000)
    cutter = mock_audio.SpanCutter(fmt, 1.0)
    spans = [s for c in chunks(speech_bytes()[44:], 3001) for s in cutter.feed(c)]  # odd sizes on purpose
    assert [s.start_s for s in spans] == [0.0, 1.0]
    assert all(s.speech for s in spans)
    assert cutter.audio_s == pytest.approx(2.796, abs=0.01)
    last = cutter.flush()
    assert last.start_s == 2.0 and last.duration_s == pytest.approx(0.796, abs=0.01)
    assert cutter.flush().duration_s == 0.0


# --- HTTP layer: auth, request ids, rejections ---------------------------------------------------


async def test_upgrade_with_token_has_request_id(mock: MockFactory) -> None:
    srv = await mock(api_key="test-key")
    ws = await RawWS.connect(srv.url, headers={"Authorization": "token test-key"})  # scheme is case-insensitive
    headers = dict(ws.accepted.extra_headers)
    assert len(headers[b"dg-request-id"]) == 36
    ws.close()
    assert srv.stats.upgrades == 1


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Token wrong"}, 401),
        ({"Authorization": "Basic dGVzdC1rZXk="}, 401),
        ({"Authorization": "Token"}, 401),
        ({"Authorization": "Bearer test-key"}, 101),
        ({"Authorization": "BEARER test-key"}, 101),
        ({"Authorization": "Token test-key"}, 101),
    ],
)
async def test_auth(mock: MockFactory, headers: dict[str, str], status: int) -> None:
    srv = await mock(api_key="test-key")
    ws = await RawWS.connect(srv.url, headers=headers)
    assert ws.response is not None
    if status == 101:
        assert isinstance(ws.response, AcceptConnection)
    else:
        assert isinstance(ws.response, RejectConnection)
        assert ws.response.status_code == status
        h = {k.decode().lower(): v.decode() for k, v in ws.response.headers}
        assert h["dg-error"] == "Invalid credentials."
        assert h["content-type"].startswith("application/json")
        body = b""
        while True:
            ev = await ws.next_event()
            if isinstance(ev, RejectData):
                body += ev.data
                if ev.body_finished:
                    break
            else:
                break
        assert json.loads(body) == {
            "err_code": "INVALID_AUTH",
            "err_msg": "Invalid credentials.",
            "request_id": h["dg-request-id"],
        }
    ws.close()


async def test_any_credential_accepted_without_api_key(mock: MockFactory, session: aiohttp.ClientSession) -> None:
    srv = await mock()
    async with session.ws_connect(srv.url, headers={"Authorization": "Token anything"}) as ws:
        assert not ws.closed
    async with session.get(http_url(srv), headers=upgrade_headers()) as resp:
        assert resp.status == 401


async def test_subprotocol_auth(mock: MockFactory, session: aiohttp.ClientSession) -> None:
    srv = await mock(api_key="test-key")
    async with session.ws_connect(srv.url, protocols=("token", "test-key")) as ws:
        assert ws.protocol == "token"
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await session.ws_connect(srv.url, protocols=("token", "bad-key"))
    assert info.value.status == 401
    # A browser-style pair next to a header credential: the subprotocol is still selected.
    async with session.ws_connect(srv.url, protocols=("token", "test-key"), headers=AUTH) as ws:
        assert ws.protocol == "token"


async def test_request_id_on_every_response(mock: MockFactory, session: aiohttp.ClientSession) -> None:
    srv = await mock()
    async with session.get(http_url(srv), headers=AUTH) as resp:  # no Upgrade
        assert resp.status == 426
        body = await resp.json()
        assert body["err_code"] == "UPGRADE_REQUIRED"
        assert resp.headers["dg-error"] and resp.headers["dg-request-id"] == body["request_id"]
    async with session.get(http_url(srv), headers=upgrade_headers()) as resp:  # no credentials
        assert resp.status == 401 and resp.headers["dg-request-id"]
    async with session.get(http_url(srv, "/v1/nothing-here"), headers=AUTH) as resp:
        assert resp.status == 404 and resp.headers["dg-request-id"] and resp.headers["dg-error"]
    async with session.put(http_url(srv), headers=AUTH) as resp:
        assert resp.status == 405 and resp.headers["dg-request-id"]
    async with session.get(
        http_url(srv) + "?encoding=linear16", headers=upgrade_headers(**AUTH)
    ) as resp:  # raw audio needs a sample_rate
        assert resp.status == 400
        assert "sample_rate" in resp.headers["dg-error"]
        body = await resp.json()  # Deepgram's captured shape for a bad query parameter
        assert body["err_code"] == "INVALID_QUERY_PARAMETER" and body["err_msg"] == resp.headers["dg-error"]
    async with session.post(http_url(srv), data=speech_bytes(), headers=AUTH) as resp:
        assert resp.status == 200 and resp.headers["dg-request-id"]
    ws = await RawWS.connect(srv.url)
    assert dict(ws.accepted.extra_headers)[b"dg-request-id"]
    ws.close()


@pytest.mark.parametrize(
    ("fault", "status", "err_code"),
    [
        ("reject-401", 401, "INVALID_AUTH"),
        ("reject-402", 402, "ASR_PAYMENT_REQUIRED"),
        ("reject-403", 403, "INSUFFICIENT_PERMISSIONS"),
        ("reject-429", 429, "TOO_MANY_REQUESTS"),
        ("reject-503", 503, deepgram.SERVICE_UNAVAILABLE.err_code),
    ],
)
async def test_reject_faults(
    mock: MockFactory, session: aiohttp.ClientSession, fault: str, status: int, err_code: str
) -> None:
    srv = await mock(fault=fault)
    async with session.get(http_url(srv), headers=upgrade_headers(**AUTH)) as resp:
        assert resp.status == status
        assert resp.content_type == "application/json"
        body = await resp.json()
        assert body["err_code"] == err_code
        assert body["err_msg"] and resp.headers["dg-error"] == body["err_msg"]
        assert resp.headers["dg-request-id"] == body["request_id"]
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await session.ws_connect(srv.url, headers=AUTH)
    assert info.value.status == status
    assert srv.stats.upgrades == 0 and srv.stats.rejected == 2


async def test_html_200_captive_portal(mock: MockFactory, session: aiohttp.ClientSession) -> None:
    srv = await mock(fault="html-200")
    for method in ("GET", "POST"):
        async with session.request(method, http_url(srv), headers=upgrade_headers(**AUTH)) as resp:
            assert resp.status == 200
            assert resp.content_type == "text/html"
            assert resp.headers["Server"] == "CaptivePortal/1.0"
            assert "dg-request-id" not in resp.headers and "dg-error" not in resp.headers
            assert "<html" in (await resp.text()).lower()
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await session.ws_connect(srv.url, headers=AUTH)
    assert info.value.status == 200


# --- REST (pre-recorded) -------------------------------------------------------------------------


async def test_rest_transcript(mock: MockFactory, session: aiohttp.ClientSession) -> None:
    srv = await mock(api_key="test-key")
    data = speech_bytes()
    async with session.post(http_url(srv), data=data, headers={**AUTH, "Content-Type": "audio/wav"}) as resp:
        assert resp.status == 200
        body = await resp.json()
    meta = body["metadata"]
    assert meta["request_id"] == resp.headers["dg-request-id"]
    assert meta["sha256"] == hashlib.sha256(data).hexdigest()
    assert meta["duration"] == pytest.approx(2.796, abs=0.01) and meta["channels"] == 1
    assert meta["created"].endswith("Z") and meta["models"] and meta["model_info"]
    alt = body["results"]["channels"][0]["alternatives"][0]
    assert alt["transcript"].startswith("hello from the wsdoctor")
    assert {"word", "start", "end", "confidence", "punctuated_word"} <= set(alt["words"][0])
    async with session.post(http_url(srv), data=b"definitely not audio", headers=AUTH) as resp:
        assert resp.status == 400
        assert (await resp.json())["err_code"] == "Bad Request" and resp.headers["dg-error"]
    async with session.post(http_url(srv), data=data) as resp:
        assert resp.status == 401


async def test_rest_truncated_upload_is_handled_quietly(mock: MockFactory) -> None:
    srv = await mock()
    _, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(
        b"POST /v1/listen HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token k\r\n"
        b"Content-Length: 100000\r\n\r\n" + speech_bytes()[:1000]
    )
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    await asyncio.sleep(0.1)  # let the server notice; the log fixture checks it stayed quiet


# --- streaming: the healthy protocol ------------------------------------------------------------


async def test_stream_closestream_results_metadata_1000(mock: MockFactory, session: aiohttp.ClientSession) -> None:
    srv = await mock()
    data = speech_bytes()
    async with session.ws_connect(srv.url, headers=AUTH) as ws:
        for c in chunks(data):
            await ws.send_bytes(c)
        await ws.send_str(json.dumps({"type": "CloseStream"}))
        msgs, end = await collect(ws)
    assert end.type is aiohttp.WSMsgType.CLOSE and end.data == 1000 and end.extra == ""
    assert [m["type"] for m in msgs] == ["Results", "Results", "Results", "Metadata"]
    assert all(t for t in transcripts(msgs)), transcripts(msgs)
    assert " ".join(transcripts(msgs)).startswith("hello from the wsdoctor mock")
    first = msgs[0]
    assert first["channel_index"] == [0, 1] and first["is_final"] is True and first["from_finalize"] is False
    assert (first["start"], first["duration"]) == (0.0, 1.0)
    assert set(first["metadata"]) == {"request_id", "model_uuid", "model_info"}
    assert set(first["metadata"]["model_info"]) == {"name", "version", "arch"}
    meta = msgs[-1]
    assert meta["transaction_key"] == "deprecated"
    assert meta["sha256"] == hashlib.sha256(data).hexdigest()
    assert meta["duration"] == pytest.approx(2.796, abs=0.01) and meta["channels"] == 1
    assert meta["request_id"] == first["metadata"]["request_id"]
    await settled(srv)
    assert srv.stats.results_sent == 3 and srv.stats.closestream_received == 1
    assert srv.stats.close_frames_received == 1  # aiohttp's reply to our close


async def test_results_follow_audio_time(mock: MockFactory) -> None:
    srv = await mock(results_interval_s=0.5)
    ws = await RawWS.connect(srv.url)
    pcm = speech_bytes()
    await ws.send_bytes(pcm[: 44 + 8000])  # header + 0.25 s: no Results yet
    with pytest.raises(TimeoutError):
        await ws.next_event(timeout=0.2)
    await ws.send_bytes(pcm[44 + 8000 : 44 + 16000])  # 0.5 s crossed: one Results
    ev = await ws.next_event()
    assert isinstance(ev, TextMessage)
    res = json.loads(ev.data)
    assert (res["type"], res["start"], res["duration"]) == ("Results", 0.0, 0.5)
    ws.close()


async def test_raw_linear16_stream(mock: MockFactory) -> None:
    srv = await mock()
    ws = await RawWS.connect(srv.url + "?encoding=linear16&sample_rate=16000&channels=1")
    for c in chunks(speech_bytes()[44:]):
        await ws.send_bytes(c)
    await ws.send_bytes(bytes(32000))  # one second of digital silence
    await ws.send_json({"type": "CloseStream"})
    msgs, end = await ws.messages_until_end()
    assert isinstance(end, CloseConnection) and end.code == 1000
    texts = transcripts(msgs)
    assert len(texts) == 4 and all(texts[:2]) and texts[3] == ""  # [0,1) [1,2) [2,3) speech; [3,3.8) silence
    assert msgs[-1]["type"] == "Metadata" and msgs[-1]["duration"] == pytest.approx(3.796, abs=0.01)


async def test_empty_binary_frame_acts_like_closestream(mock: MockFactory) -> None:
    srv = await mock()
    ws = await RawWS.connect(srv.url)
    await ws.send_bytes(speech_bytes()[:16044])
    await ws.send_bytes(b"")
    msgs, end = await ws.messages_until_end()
    assert [m["type"] for m in msgs] == ["Results", "Metadata"]
    assert isinstance(end, CloseConnection) and end.code == 1000
    assert srv.stats.closestream_received == 1


async def test_closestream_without_audio_sends_metadata_and_1000(mock: MockFactory) -> None:
    srv = await mock()
    ws = await RawWS.connect(srv.url)
    await ws.send_json({"type": "CloseStream"})
    msgs, end = await ws.messages_until_end()
    assert [m["type"] for m in msgs] == ["Metadata"] and msgs[0]["duration"] == 0
    assert isinstance(end, CloseConnection) and end.code == 1000


async def test_finalize(mock: MockFactory) -> None:
    srv = await mock()
    ws = await RawWS.connect(srv.url)
    await ws.send_bytes(speech_bytes()[: 44 + 16000])  # half a second: no Results yet
    await ws.send_json({"type": "Finalize"})
    ev = await ws.next_event()
    assert isinstance(ev, TextMessage)
    res = json.loads(ev.data)
    assert res["type"] == "Results" and res["from_finalize"] is True and res["is_final"] is True
    assert res["duration"] == 0.5 and res["channel"]["alternatives"][0]["transcript"]
    await ws.send_bytes(speech_bytes()[44 + 16000 : 44 + 48000])  # next span starts at the finalize point
    res2 = json.loads((await ws.next_event()).data)  # type: ignore[union-attr]
    assert (res2["start"], res2["duration"], res2["from_finalize"]) == (0.5, 1.0, False)
    ws.close()


async def test_invalid_text_gets_error_message_and_session_goes_on(mock: MockFactory) -> None:
    srv = await mock()
    ws = await RawWS.connect(srv.url)
    await ws.send(TextMessage(data="not json"))
    await ws.send_json({"type": "Nonsense"})
    for _ in range(2):
        ev = await ws.next_event()
        assert isinstance(ev, TextMessage)
        err = json.loads(ev.data)
        assert err["type"] == "Error" and err["variant"] == "SchemaError" and err["description"]
    await ws.send_json({"type": "CloseStream"})
    _, end = await ws.messages_until_end()
    assert isinstance(end, CloseConnection) and end.code == 1000


async def test_garbage_audio_closes_1008_data0000(mock: MockFactory) -> None:
    srv = await mock()
    ws = await RawWS.connect(srv.url)
    await ws.send_bytes(b'{"type": "KeepAlive"}')  # KeepAlive as a *binary* frame is just bytes
    msgs, end = await ws.messages_until_end()
    assert msgs == []
    assert isinstance(end, CloseConnection) and end.code == 1008 and end.reason == deepgram.DATA_0000.wire


async def test_client_close_is_echoed(mock: MockFactory) -> None:
    srv = await mock()
    ws = await RawWS.connect(srv.url)
    await ws.send(CloseConnection(code=4000, reason="bye"))
    ev = await ws.next_event()
    assert isinstance(ev, CloseConnection) and ev.code == 4000
    assert await ws.next_event() == EOF
    assert srv.stats.close_frames_received == 1


async def test_oversized_frame_closes_1009(mock: MockFactory) -> None:
    srv = await mock(max_frame_bytes=1024)
    ws = await RawWS.connect(srv.url)
    await ws.send_bytes(speech_bytes()[:4000])
    _, end = await ws.messages_until_end()
    assert isinstance(end, CloseConnection) and end.code == 1009


# --- idle ---------------------------------------------------------------------------------------


async def test_idle_net0001(mock: MockFactory, session: aiohttp.ClientSession) -> None:
    srv = await mock(idle_timeout_s=0.5)
    async with session.ws_connect(srv.url, headers=AUTH) as ws:
        t0 = time.monotonic()
        msgs, end = await collect(ws)
        elapsed = time.monotonic() - t0
    assert 0.4 <= elapsed <= 0.8, elapsed
    assert end.type is aiohttp.WSMsgType.CLOSE and end.data == 1011 and end.extra == deepgram.NET_0001.wire
    assert [m["type"] for m in msgs] == ["Metadata"]


async def test_idle_counts_from_last_audio(mock: MockFactory) -> None:
    srv = await mock(idle_timeout_s=0.5)
    ws = await RawWS.connect(srv.url)
    await ws.send_bytes(speech_bytes()[:1044])
    await asyncio.sleep(0.3)
    await ws.send_bytes(speech_bytes()[1044:2044])
    t0 = time.monotonic()
    _, end = await ws.messages_until_end()
    assert isinstance(end, CloseConnection) and end.code == 1011
    assert 0.4 <= time.monotonic() - t0 <= 0.8


async def test_keepalive_keeps_the_session_alive(mock: MockFactory) -> None:
    srv = await mock(idle_timeout_s=0.5)
    ws = await RawWS.connect(srv.url)
    for _ in range(6):  # 1.2 s, more than twice the window
        await ws.send_json({"type": "KeepAlive"})
        with pytest.raises(TimeoutError):
            await ws.next_event(timeout=0.2)
    assert srv.stats.keepalives_received == 6
    t0 = time.monotonic()
    _, end = await ws.messages_until_end()  # then silence: NET-0001 one window after the last KeepAlive
    assert isinstance(end, CloseConnection) and end.code == 1011 and end.reason == deepgram.NET_0001.wire
    assert time.monotonic() - t0 <= 0.8


async def test_pings_do_not_count_as_activity(mock: MockFactory) -> None:
    srv = await mock(idle_timeout_s=0.5)
    ws = await RawWS.connect(srv.url)
    t0 = time.monotonic()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(1.2):
            while True:
                if ws.conn.state is ConnectionState.OPEN:
                    await ws.send(Ping(payload=b"x"))
                ev = await ws.next_event()
                if isinstance(ev, CloseConnection):
                    break
    assert ws.saw_close and 0.4 <= time.monotonic() - t0 <= 0.8


async def test_fault_ignore_keepalive(mock: MockFactory) -> None:
    srv = await mock(fault="ignore-keepalive", idle_timeout_s=0.5)
    ws = await RawWS.connect(srv.url)
    t0 = time.monotonic()
    end: Event | str | None = None
    async with asyncio.timeout(2):
        while end is None:
            if ws.conn.state is ConnectionState.OPEN:
                await ws.send_json({"type": "KeepAlive"})
            with contextlib.suppress(TimeoutError):
                ev = await ws.next_event(timeout=0.15)
                if isinstance(ev, CloseConnection) or ev == EOF:
                    end = ev
    assert isinstance(end, CloseConnection) and end.code == 1011 and end.reason == deepgram.NET_0001.wire
    assert 0.4 <= time.monotonic() - t0 <= 0.8


async def test_fault_idle_cutoff(mock: MockFactory) -> None:
    srv = await mock(fault="idle-cutoff", idle_cutoff_s=0.4, idle_timeout_s=5)
    ws = await RawWS.connect(srv.url)
    for _ in range(4):  # KeepAlive every 0.2 s: a middlebox sees traffic and keeps the flow
        await ws.send_json({"type": "KeepAlive"})
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            await ws.next_event(timeout=0.2)
    msgs, end = await ws.messages_until_end()
    assert end == EOF and not ws.saw_close and msgs == []
    assert 0.3 <= time.monotonic() - t0 <= 0.7


# --- mid-stream faults ----------------------------------------------------------------------------


async def test_fault_drop_no_close(mock: MockFactory, session: aiohttp.ClientSession) -> None:
    srv = await mock(fault="drop-no-close", fault_after_s=1.0)
    ws = await RawWS.connect(srv.url)
    for c in chunks(speech_bytes()):
        await ws.send_bytes(c)
    msgs, end = await ws.messages_until_end()
    assert end == EOF and not ws.saw_close  # FIN, no close frame
    assert [m["type"] for m in msgs] == ["Results"]  # the span before the fault
    # The same fault as aiohttp's client sees it: CLOSED without a CLOSE, code 1006.
    async with session.ws_connect(srv.url, headers=AUTH) as cws:
        for c in chunks(speech_bytes())[:20]:
            await cws.send_bytes(c)
        _, last = await collect(cws)
        assert last.type is aiohttp.WSMsgType.CLOSED
        assert cws.close_code == 1006


async def test_fault_drop_no_close_is_a_clean_fin_while_the_client_keeps_streaming(mock: MockFactory) -> None:
    """The server half-closes and keeps draining, so audio still in flight does not draw an RST."""
    srv = await mock(fault="drop-no-close", fault_after_s=0.3)
    ws = await RawWS.connect(srv.url)
    data = chunks(speech_bytes(), 1600)  # 50 ms chunks

    async def stream() -> None:
        for c in data:
            await ws.send_bytes(c)
            await asyncio.sleep(0.02)

    sender = asyncio.create_task(stream())
    try:
        await asyncio.sleep(0.6)  # read late: the FIN came at 0.3 s and more audio went out since
        _, end = await ws.messages_until_end()
        assert end == EOF and not ws.saw_close
        async with asyncio.timeout(3):
            await sender  # writes after the server's FIN still succeed: no reset
    finally:
        sender.cancel()
    ws.close()
    await settled(srv)


async def test_fault_drop_no_close_without_audio_uses_wall_time(mock: MockFactory) -> None:
    srv = await mock(fault="drop-no-close", fault_after_s=0.3)
    ws = await RawWS.connect(srv.url)
    t0 = time.monotonic()
    _, end = await ws.messages_until_end()
    assert end == EOF and not ws.saw_close
    assert 0.2 <= time.monotonic() - t0 <= 0.6


async def test_fault_rst(mock: MockFactory) -> None:
    srv = await mock(fault="rst", fault_after_s=0.5)
    ws = await RawWS.connect(srv.url)
    for c in chunks(speech_bytes()[:20044]):
        await ws.send_bytes(c)
    with pytest.raises(ConnectionResetError):
        await ws.messages_until_end()
    assert not ws.saw_close


@pytest.mark.parametrize(
    ("fault", "code", "needle"),
    [
        ("close-1011-net0000", 1011, deepgram.NET_0000.wire),
        ("close-1012", 1012, ""),
        ("close-1008", 1008, deepgram.DATA_0000.wire),
    ],
)
async def test_midstream_close_faults(mock: MockFactory, fault: str, code: int, needle: str) -> None:
    srv = await mock(fault=fault, fault_after_s=1.0)
    ws = await RawWS.connect(srv.url)
    for c in chunks(speech_bytes()):
        await ws.send_bytes(c)
    msgs, end = await ws.messages_until_end()
    assert isinstance(end, CloseConnection) and end.code == code and needle in (end.reason or "")
    assert [m["type"] for m in msgs] == ["Results"]


async def test_fault_never_close_reply(mock: MockFactory) -> None:
    srv = await mock(fault="never-close-reply", idle_timeout_s=0.3)
    ws = await RawWS.connect(srv.url)
    for c in chunks(speech_bytes()):
        await ws.send_bytes(c)
    for _ in range(2):  # the two Results of the audio so far
        assert isinstance(await ws.next_event(), TextMessage)
    await ws.send_json({"type": "CloseStream"})
    with pytest.raises(TimeoutError):  # no final Results, no Metadata, no close -- and no NET-0001
        await ws.next_event(timeout=0.6)
    await ws.send(CloseConnection(code=1000))
    with pytest.raises(TimeoutError):  # our close frame is never answered, TCP stays up
        await ws.next_event(timeout=0.4)
    assert srv.stats.close_frames_received == 1 and srv.stats.closestream_received == 1
    assert srv.active_sessions == 1
    ws.close()  # the client gives up: the server notices and ends the session
    await settled(srv)


async def test_fault_slow_results(mock: MockFactory) -> None:
    srv = await mock(fault="slow-results", slow_results_delay_s=0.6)
    ws = await RawWS.connect(srv.url)
    t0 = time.monotonic()
    for c in chunks(speech_bytes()):
        await ws.send_bytes(c)
    await ws.send_json({"type": "CloseStream"})
    ev = await ws.next_event()
    first_at = time.monotonic() - t0
    assert isinstance(ev, TextMessage) and 0.55 <= first_at <= 1.0, first_at
    msgs, end = await ws.messages_until_end()
    msgs.insert(0, json.loads(ev.data))
    assert [m["type"] for m in msgs] == ["Results", "Results", "Results", "Metadata"]
    assert [m["start"] for m in msgs[:3]] == [0.0, 1.0, 2.0]
    assert isinstance(end, CloseConnection) and end.code == 1000
    assert time.monotonic() - t0 <= first_at + 0.3  # the rest follows at once


async def test_max_session_bound(mock: MockFactory) -> None:
    srv = await mock(max_session_s=0.4, idle_timeout_s=5)
    ws = await RawWS.connect(srv.url)
    t0 = time.monotonic()
    _, end = await ws.messages_until_end()
    assert end == EOF and 0.3 <= time.monotonic() - t0 <= 0.8


# --- lifecycle ------------------------------------------------------------------------------------


async def test_stop_closes_open_connections_quickly(session: aiohttp.ClientSession) -> None:
    srv = await start_mock(MockConfig(idle_timeout_s=30))
    ws1 = await RawWS.connect(srv.url)
    ws2 = await RawWS.connect(srv.url)
    await ws2.send_bytes(speech_bytes()[:8000])
    async with session.ws_connect(srv.url, headers=AUTH) as ws3:
        t0 = time.monotonic()
        async with asyncio.timeout(3):
            await srv.stop()
        assert time.monotonic() - t0 < 1.0
        _, end = await collect(ws3)
        assert end.type is aiohttp.WSMsgType.CLOSE and end.data == 1001
    for raw in (ws1, ws2):
        _, last = await raw.messages_until_end()
        assert (isinstance(last, CloseConnection) and last.code == 1001) or last == EOF
    await srv.stop()  # idempotent
    with pytest.raises(ConnectionRefusedError):
        async with asyncio.timeout(2):
            await asyncio.open_connection("127.0.0.1", srv.port)


async def test_stop_aborts_wedged_sessions(mock: MockFactory) -> None:
    srv = await start_mock(MockConfig(fault="never-close-reply"))
    ws = await RawWS.connect(srv.url)
    await ws.send(CloseConnection(code=1000))
    await asyncio.sleep(0.1)
    t0 = time.monotonic()
    await srv.stop()
    assert time.monotonic() - t0 < 1.0
    assert await ws.next_event() == EOF


async def test_async_context_manager_and_tls(tmp_path: Path) -> None:
    from wsdoctor.mock.tls import make_server_tls

    server_ctx, ca_path = make_server_tls()
    try:
        client_ctx = ssl.create_default_context(cafile=ca_path)
        async with MockServer(MockConfig(), ssl_context=server_ctx) as srv:
            assert srv.url.startswith("wss://127.0.0.1:") and srv.url.endswith("/v1/listen")
            async with aiohttp.ClientSession() as s, s.ws_connect(srv.url, headers=AUTH, ssl=client_ctx) as ws:
                for c in chunks(speech_bytes()):
                    await ws.send_bytes(c)
                await ws.send_str(json.dumps({"type": "CloseStream"}))
                msgs, end = await collect(ws)
            assert end.data == 1000 and all(transcripts(msgs))
    finally:
        os.unlink(ca_path)


async def test_tls_drop_no_close_is_a_fin_without_close_notify() -> None:
    from wsdoctor.mock.tls import make_server_tls

    server_ctx, ca_path = make_server_tls()
    try:
        client_ctx = ssl.create_default_context(cafile=ca_path)
        async with MockServer(MockConfig(fault="drop-no-close", fault_after_s=0.2), ssl_context=server_ctx) as srv:
            async with aiohttp.ClientSession() as s, s.ws_connect(srv.url, headers=AUTH, ssl=client_ctx) as ws:
                msgs, end = await collect(ws)
                assert msgs == [] and end.type is aiohttp.WSMsgType.CLOSED and ws.close_code == 1006
            async with asyncio.timeout(2):
                await srv.wait_idle()
    finally:
        os.unlink(ca_path)


async def test_serve_prints_url_and_stops_on_sigint() -> None:
    code = "from wsdoctor.mock import serve, MockConfig; import sys; sys.exit(serve(MockConfig()))"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(10):
            line = (await proc.stdout.readline()).decode()  # type: ignore[union-attr]
        assert line.startswith("wsdoctor mock listening on ws://127.0.0.1:"), line
        assert line.rstrip().endswith("/v1/listen (fault: none)")
        url = line.split()[4]
        ws = await RawWS.connect(url)
        assert ws.accepted
        proc.send_signal(signal.SIGINT)
        _, end = await ws.messages_until_end()
        assert isinstance(end, CloseConnection) and end.code == 1001
        async with asyncio.timeout(5):
            rc = await proc.wait()
        assert rc == 0, (await proc.stderr.read()).decode()  # type: ignore[union-attr]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_serve_tls_prints_ca_and_stops_on_sigterm() -> None:
    code = (
        "from wsdoctor.mock import serve, MockConfig; import sys; "
        "sys.exit(serve(MockConfig(fault='slow-results'), tls=True))"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    ca_path = ""
    try:
        async with asyncio.timeout(10):
            first = (await proc.stdout.readline()).decode()  # type: ignore[union-attr]
            second = (await proc.stdout.readline()).decode()  # type: ignore[union-attr]
        assert first.startswith("wsdoctor mock listening on wss://127.0.0.1:"), first
        assert first.rstrip().endswith("(fault: slow-results)")
        assert second.startswith("CA certificate: ") and "(pass --ca-file to wsdoctor run)" in second
        ca_path = second.split()[2]
        client_ctx = ssl.create_default_context(cafile=ca_path)
        async with aiohttp.ClientSession() as s, s.ws_connect(first.split()[4], headers=AUTH, ssl=client_ctx) as ws:
            assert not ws.closed
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(5):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if ca_path:
            os.unlink(ca_path)


async def test_protocol_garbage_after_upgrade_is_handled_quietly(mock: MockFactory) -> None:
    srv = await mock()
    ws = await RawWS.connect(srv.url)
    ws.writer.write(b"\x8f\x05hello" * 4)  # unmasked frames with a reserved opcode
    with contextlib.suppress(ConnectionResetError):
        _, end = await ws.messages_until_end()
        assert (isinstance(end, CloseConnection) and end.code == 1002) or end == EOF
    await settled(srv)


async def test_client_vanishing_mid_stream_is_handled_quietly(mock: MockFactory) -> None:
    srv = await mock()
    for _ in range(3):
        ws = await RawWS.connect(srv.url)
        await ws.send_bytes(speech_bytes()[:20000])
        ws.writer.transport.abort()
    await settled(srv)
    assert srv.stats.upgrades == 3
