"""Apps for ``wsdoctor watch`` tests: real clients that behave well or misbehave in one way each.

Each app is a coroutine ``app(base, **kw)`` that connects to ``base`` (``ws://127.0.0.1:PORT``, the
watch) the way a real program would: the ``websockets`` library (what the Python SDK uses), the
official deepgram-sdk, or a raw socket where a library would refuse to misbehave. Every wait is
bounded; the apps never raise on the server's behaviour (a misbehaving app is still a program that
finishes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import struct
import wave
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import websockets

import wsdoctor

SPEECH_WAV = Path(wsdoctor.__file__).parent / "data" / "speech.wav"
KEY = "watch-app-key-0123456789abcdef"


def pcm() -> tuple[bytes, int, int]:
    """The bundled speech as raw linear16 PCM: (bytes, sample rate, channels)."""
    with wave.open(str(SPEECH_WAV)) as w:
        return w.readframes(w.getnframes()), w.getframerate(), w.getnchannels()


def listen_url(base: str, **params: Any) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{base}/v1/listen" + (f"?{query}" if query else "")


def raw_params() -> dict[str, Any]:
    _audio, rate, channels = pcm()
    return {"model": "nova-3", "encoding": "linear16", "sample_rate": rate, "channels": channels}


async def _drain(ws: Any, timeout: float = 10.0) -> None:
    """Read until the server closes (bounded)."""
    with contextlib.suppress(websockets.ConnectionClosed, TimeoutError):
        async with asyncio.timeout(timeout):
            async for _message in ws:
                pass


async def _stream(ws: Any, audio: bytes, chunk: int, every_s: float, limit: int | None = None) -> None:
    for sent, i in enumerate(range(0, len(audio), chunk), start=1):
        await ws.send(audio[i : i + chunk])
        if limit is not None and sent >= limit:
            return
        await asyncio.sleep(every_s)


def _connect(url: str, **kw: Any) -> Any:
    headers = kw.pop("headers", {"Authorization": f"Token {KEY}"})
    return websockets.connect(url, additional_headers=headers, open_timeout=10, close_timeout=5, **kw)


# --- well-behaved ----------------------------------------------------------------------------------


async def healthy(base: str) -> None:
    """Real-time linear16 in 100 ms chunks, CloseStream, read until Deepgram's close frame."""
    audio, rate, channels = pcm()
    async with _connect(listen_url(base, **raw_params())) as ws:
        reader = asyncio.ensure_future(_drain(ws))
        await _stream(ws, audio, rate * 2 * channels // 10, 0.1)
        await ws.send(json.dumps({"type": "CloseStream"}))
        await reader


async def healthy_with_keepalive(base: str) -> None:
    """Audio, a pause longer than the server's idle window bridged by KeepAlive text frames, more audio."""
    audio, rate, channels = pcm()
    chunk = rate * 2 * channels // 10
    async with _connect(listen_url(base, **raw_params())) as ws:
        reader = asyncio.ensure_future(_drain(ws, 20))
        await _stream(ws, audio, chunk, 0.1, limit=10)
        for _ in range(6):
            await asyncio.sleep(0.5)
            await ws.send(json.dumps({"type": "KeepAlive"}))
        await _stream(ws, audio, chunk, 0.1, limit=10)
        await ws.send(json.dumps({"type": "CloseStream"}))
        await reader


def sdk_client(base: str, **kw: Any) -> Any:
    """The official SDK's async client with every base URL at ``base`` (the watch)."""
    from deepgram import AsyncDeepgramClient
    from deepgram.environment import DeepgramClientEnvironment

    host = base.removeprefix("ws://")
    env = DeepgramClientEnvironment(
        base=f"http://{host}", production=f"ws://{host}", agent=f"ws://{host}", agent_rest=f"http://{host}"
    )
    return AsyncDeepgramClient(api_key=KEY, environment=env, **kw)


async def vad_gated(base: str) -> None:
    """Streams only while someone speaks: three 1.5 s bursts at real-time pace, KeepAlive in between."""
    audio, rate, channels = pcm()
    chunk = rate * 2 * channels // 10
    async with _connect(listen_url(base, **raw_params())) as ws:
        reader = asyncio.ensure_future(_drain(ws, 30))
        for burst in range(3):
            await _stream(ws, audio[burst * 15 * chunk // 2 :], chunk, 0.1, limit=15)
            if burst < 2:
                for _ in range(3):
                    await asyncio.sleep(1.0)
                    await ws.send(json.dumps({"type": "KeepAlive"}))
        await ws.send(json.dumps({"type": "CloseStream"}))
        await reader


async def gives_up_waiting(base: str) -> None:
    """CloseStream, then 1.5 s of patience for Deepgram's close, then the socket is closed."""
    audio, rate, channels = pcm()
    ws = await _connect(listen_url(base, **raw_params()))
    await _stream(ws, audio, rate * 2 * channels // 10, 0.1, limit=10)
    await ws.send(json.dumps({"type": "CloseStream"}))
    await _drain(ws, 1.5)
    ws.transport.abort()


async def sdk_healthy(base: str) -> None:
    """The official deepgram-sdk, used as its README shows: real-time audio, CloseStream, read to the end."""
    client = sdk_client(base)
    audio, rate, channels = pcm()
    async with asyncio.timeout(30):
        async with client.listen.v1.connect(
            model="nova-3", encoding="linear16", sample_rate=str(rate), channels=str(channels)
        ) as conn:

            async def read() -> None:
                async for _message in conn:
                    pass

            reader = asyncio.ensure_future(read())
            chunk = rate * 2 * channels // 10
            for i in range(0, len(audio), chunk):
                await conn.send_media(audio[i : i + chunk])
                await asyncio.sleep(0.1)
            await conn.send_close_stream()
            await reader


async def sdk_wav_file(base: str) -> None:
    """The SDK streaming a WAV file (container, no encoding declared) at real-time pace."""
    client = sdk_client(base)
    data = SPEECH_WAV.read_bytes()
    async with asyncio.timeout(30):
        async with client.listen.v1.connect(model="nova-3") as conn:

            async def read() -> None:
                async for _message in conn:
                    pass

            reader = asyncio.ensure_future(read())
            for i in range(0, len(data), 3200):
                await conn.send_media(data[i : i + 3200])
                await asyncio.sleep(0.1)
            await conn.send_close_stream()
            await reader


async def sdk_prerecorded(base: str) -> None:
    """The SDK's REST call through the same watch: a 90 kB WAV POSTed to /v1/listen."""
    import httpx

    async with httpx.AsyncClient(timeout=20) as http:
        client = sdk_client(base, httpx_client=http)
        async with asyncio.timeout(30):
            response = await client.listen.v1.media.transcribe_file(request=SPEECH_WAV.read_bytes(), model="nova-3")
    assert response.results is not None


# --- each misbehaviour ---------------------------------------------------------------------------


async def goes_silent(base: str) -> None:
    """A second of audio, then nothing -- no KeepAlive -- until the server gives up."""
    audio, rate, channels = pcm()
    async with _connect(listen_url(base, **raw_params())) as ws:
        await _stream(ws, audio, rate * 2 * channels // 10, 0.1, limit=10)
        await _drain(ws, 20)


async def keepalive_as_binary(base: str) -> None:
    audio, rate, channels = pcm()
    async with _connect(listen_url(base, **raw_params())) as ws:
        reader = asyncio.ensure_future(_drain(ws))
        await _stream(ws, audio, rate * 2 * channels // 10, 0.1, limit=5)
        await ws.send(json.dumps({"type": "KeepAlive"}).encode())  # bytes: a binary frame
        await _stream(ws, audio, rate * 2 * channels // 10, 0.1, limit=5)
        await ws.send(json.dumps({"type": "CloseStream"}))
        await reader


async def empty_binary(base: str) -> None:
    """A microphone loop that forwards an empty buffer at the end of its input."""
    audio, rate, channels = pcm()
    async with _connect(listen_url(base, **raw_params())) as ws:
        reader = asyncio.ensure_future(_drain(ws))
        await _stream(ws, audio, rate * 2 * channels // 10, 0.1, limit=8)
        await ws.send(b"")
        await reader


async def no_closestream(base: str) -> None:
    """Audio, then close(1000) right away: the last results are never asked for."""
    audio, rate, channels = pcm()
    async with _connect(listen_url(base, **raw_params())) as ws:
        await _stream(ws, audio, rate * 2 * channels // 10, 0.1, limit=10)
    # the context manager sends close 1000 and waits for the reply: the handshake itself is fine


async def exits_before_close(base: str) -> None:
    """CloseStream, then the process ends at once: the socket is gone before Deepgram's close frame."""
    audio, rate, channels = pcm()
    ws = await _connect(listen_url(base, **raw_params()))
    await _stream(ws, audio, rate * 2 * channels // 10, 0.1, limit=10)
    await ws.send(json.dumps({"type": "CloseStream"}))
    ws.transport.abort()  # what exiting the process does to the socket


async def wav_as_linear16(base: str) -> None:
    """A WAV file (header and all) sent with encoding=linear16 and a wrong sample_rate."""
    data = SPEECH_WAV.read_bytes()
    async with _connect(listen_url(base, model="nova-3", encoding="linear16", sample_rate=48000)) as ws:
        reader = asyncio.ensure_future(_drain(ws))
        await _stream(ws, data, 3200, 0.1, limit=10)
        await ws.send(json.dumps({"type": "CloseStream"}))
        await reader


async def raw_without_encoding(base: str) -> None:
    """Raw PCM with no encoding parameter: Deepgram has no header to read."""
    audio, rate, channels = pcm()
    async with _connect(listen_url(base, model="nova-3")) as ws:
        reader = asyncio.ensure_future(_drain(ws))
        await _stream(ws, audio[rate:], rate * 2 * channels // 10, 0.1, limit=10)
        await ws.send(json.dumps({"type": "CloseStream"}))
        await reader


async def too_fast(base: str) -> None:
    """A file replayed over the WebSocket as fast as the socket takes it."""
    audio, rate, channels = pcm()
    data = audio * 3  # ~8 s of audio
    async with _connect(listen_url(base, **raw_params())) as ws:
        reader = asyncio.ensure_future(_drain(ws))
        await _stream(ws, data, rate * 2 * channels // 10, 0.0)
        await ws.send(json.dumps({"type": "CloseStream"}))
        await reader


async def reconnect_storm(base: str, attempts: int = 5) -> None:
    """Each connection dies (the app's own abort stands in for a failure) and is retried at once."""
    for _ in range(attempts):
        with contextlib.suppress(OSError, websockets.WebSocketException, TimeoutError):
            ws = await _connect(listen_url(base, **raw_params()))
            await ws.send(b"\x00" * 3200)
            ws.transport.abort()
        await asyncio.sleep(0.05)


async def key_in_url(base: str) -> None:
    audio, rate, channels = pcm()
    url = listen_url(base, **raw_params(), token=KEY)
    async with _connect(url, headers={}) as ws:
        reader = asyncio.ensure_future(_drain(ws))
        await _stream(ws, audio, rate * 2 * channels // 10, 0.1, limit=5)
        await ws.send(json.dumps({"type": "CloseStream"}))
        await reader


async def old_sdk_agent(base: str) -> None:
    """A healthy stream from an app whose User-Agent names deepgram-sdk 3.1.0 (Python)."""
    audio, rate, channels = pcm()
    async with _connect(
        listen_url(base, **raw_params()),
        headers={"Authorization": f"Token {KEY}"},
        user_agent_header="@deepgram/sdk/3.1.0 python/11.4",
    ) as ws:
        reader = asyncio.ensure_future(_drain(ws))
        await _stream(ws, audio, rate * 2 * channels // 10, 0.1, limit=5)
        await ws.send(json.dumps({"type": "CloseStream"}))
        await reader


# --- raw sockets: what no library would send --------------------------------------------------------


def _frame(opcode: int, payload: bytes, *, mask: bool = True, fin: bool = True, rsv: int = 0) -> bytes:
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


async def raw_upgrade(
    base: str, path: str = "/v1/listen?model=nova-3", extra: bytes = b"", *, expect_101: bool = True
) -> tuple[Any, Any]:
    host, port = base.removeprefix("ws://").rsplit(":", 1)
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 5)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"Authorization: Token {KEY}\r\n".encode()
        + extra
        + b"\r\n"
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    if expect_101:
        assert head.startswith(b"HTTP/1.1 101"), head[:100]
    return reader, writer


async def unmasked_frames(base: str) -> None:
    reader, writer = await raw_upgrade(base)
    writer.write(_frame(0x2, b"\x00" * 640, mask=False))
    writer.write(_frame(0x3, b"xx"))  # a reserved opcode
    writer.write(_frame(0x1, json.dumps({"type": "CloseStream"}).encode()))
    await writer.drain()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(reader.read(65536), 2)
    writer.close()


async def huge_frame(base: str, declared: int = 1 << 30, sent: int = 4 << 20) -> None:
    """A frame that declares 1 GiB and sends 4 MiB of it, then hangs up."""
    _reader, writer = await raw_upgrade(base)
    writer.write(bytes([0x82, 0x80 | 127]) + struct.pack("!Q", declared) + b"\x01\x02\x03\x04")
    chunk = b"\x00" * 65536
    for _ in range(sent // len(chunk)):
        writer.write(chunk)
        await writer.drain()
    writer.transport.abort()


async def garbage_handshake(base: str) -> None:
    host, port = base.removeprefix("ws://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(600))  # a TLS hello, to a ws:// port
    await writer.drain()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(reader.read(4096), 3)
    writer.close()


async def half_open(base: str, hold_s: float = 1.0) -> None:
    """Upgrades, sends a frame, then shuts down its write side and lingers without reading."""
    _reader, writer = await raw_upgrade(base)
    writer.write(_frame(0x2, b"\x00" * 3200))
    await writer.drain()
    sock = writer.get_extra_info("socket")
    sock.shutdown(socket.SHUT_WR)
    await asyncio.sleep(hold_s)
    writer.transport.abort()


async def hostile_headers(base: str) -> None:
    """Script tags and control characters in the User-Agent and the query."""
    reader, writer = await raw_upgrade(
        base,
        path="/v1/listen?model=%3Cscript%3Ealert(1)%3C/script%3E&x=%1b%5b31m",
        extra=b"User-Agent: <script>alert('ua')</script>\x07bell\r\n",
        expect_101=False,  # a strict upstream may refuse the control character: its answer is recorded
    )
    writer.write(_frame(0x1, json.dumps({"type": "CloseStream"}).encode()))
    await writer.drain()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(reader.read(65536), 2)
    writer.close()


App = Callable[[str], Awaitable[None]]
