"""A corpus of hostile servers on 127.0.0.1, each an asyncio handler, served from a background thread.

Every handler answers the client's request in one broken way; all loops are bounded in bytes and
time, so a server can never outlive its test. ``serve(name)`` yields the port.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import ssl
import struct
import threading
import zlib
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
LIFETIME_S = 20.0  # no hostile connection lives longer than this


async def read_request(reader: asyncio.StreamReader) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = await asyncio.wait_for(reader.read(4096), 5)
        if not chunk:
            break
        data += chunk
    return data


def accept_for(request: bytes) -> bytes:
    key = b""
    for line in request.split(b"\r\n"):
        if line.lower().startswith(b"sec-websocket-key:"):
            key = line.split(b":", 1)[1].strip()
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def switching(request: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"dg-request-id: hostile-0000\r\nSec-WebSocket-Accept: " + accept_for(request) + b"\r\n" + extra + b"\r\n"
    )


def frame(opcode: int, payload: bytes, *, rsv1: bool = False, announce: int | None = None, fin: bool = True) -> bytes:
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    length = len(payload) if announce is None else announce
    if length < 126:
        head = bytes([first, length])
    elif length < 65536:
        head = bytes([first, 126]) + struct.pack("!H", length)
    else:
        head = bytes([first, 127]) + struct.pack("!Q", length)
    return head + payload


async def _linger(reader: asyncio.StreamReader, seconds: float = LIFETIME_S) -> None:
    """Keep the connection open, discarding what the client sends, for at most ``seconds``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        try:
            if not await asyncio.wait_for(reader.read(65536), max(0.01, end - loop.time())):
                return
        except (TimeoutError, OSError):
            return


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.write(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n\x00\x01\x02\xff\xfe garbage \x1b[31m\r\n\r\n")
    await writer.drain()
    await _linger(reader, 3)


async def no_upgrade_101(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    request = await read_request(reader)
    writer.write(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "
        + accept_for(request)
        + b"\r\n\r\n"
    )
    await writer.drain()
    await _linger(reader, 3)


async def endless_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.write(b"HTTP/1.1 101 Switching Protocols\r\n")
    for i in range(20000):  # 20000 x ~1 KiB = 20 MiB at most, then give up
        try:
            writer.write(b"X-Junk-%d: " % i + b"a" * 1000 + b"\r\n")
            await asyncio.wait_for(writer.drain(), 2)
        except (OSError, TimeoutError):
            return


async def slowloris(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    request = await read_request(reader)
    for byte in switching(request)[:40]:  # one byte per second, never a whole response
        try:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(1.0)
        except OSError:
            return


async def huge_frame(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    request = await read_request(reader)
    writer.write(switching(request) + frame(0x2, b"", announce=1 << 30))  # a 1 GiB binary frame...
    chunk = b"\x00" * 65536
    try:
        for _ in range(256):  # ...of which 16 MiB actually arrive, fast
            writer.write(chunk)
            await asyncio.wait_for(writer.drain(), 2)
    except (OSError, TimeoutError):
        return
    await _linger(reader, 5)


@functools.cache
def _bomb() -> bytes:
    """64 MiB of zeros, raw-deflated to ~64 KiB; built once, not per connection."""
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = b"\x00" * (1 << 20)
    return b"".join(bomb.compress(zeros) for _ in range(64)) + bomb.flush(zlib.Z_SYNC_FLUSH)


async def deflate_bomb(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    request = await read_request(reader)
    # permessage-deflate was never offered by the client; a compressed (RSV1) 64 MiB-of-zeros message anyway
    writer.write(
        switching(request, b"Sec-WebSocket-Extensions: permessage-deflate\r\n") + frame(0x1, _bomb()[:-4], rsv1=True)
    )
    await writer.drain()
    await _linger(reader, 5)


async def bad_utf8(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    request = await read_request(reader)
    writer.write(switching(request) + frame(0x1, b'{"type":"Results","x":"\xff\xfe\xc3\x28"}'))
    await writer.drain()
    await _linger(reader, 5)


async def bad_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    request = await read_request(reader)
    reason = ("<script>alert(1)</script>\x1b[2J" * 8).encode()[:200]
    writer.write(switching(request) + frame(0x8, struct.pack("!H", 999) + reason))
    await writer.drain()
    await _linger(reader, 5)


async def tls_stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.wait_for(reader.read(4096), 5)  # the ClientHello, then silence
    await _linger(reader, 15)


async def connect_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A proxy that grants CONNECT and hangs up at once."""
    await read_request(reader)
    writer.write(b"HTTP/1.1 200 Connection established\r\nProxy-Agent: hostile/1.0\r\n\r\n")
    await writer.drain()


async def read_client_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One (masked) frame from the client: (opcode, payload). Bounded: 1 MiB payloads at most."""
    head = await asyncio.wait_for(reader.readexactly(2), 10)
    opcode, length = head[0] & 0x0F, head[1] & 0x7F
    if length == 126:
        length = struct.unpack("!H", await reader.readexactly(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", await reader.readexactly(8))[0]
    if length > 1 << 20:
        raise OSError("client frame too large for a test server")
    mask = await reader.readexactly(4) if head[1] & 0x80 else b"\x00\x00\x00\x00"
    data = await reader.readexactly(length)
    return opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


async def _until_client_closes(reader: asyncio.StreamReader) -> bytes:
    """Read (and drop) client frames until its close frame; return the close payload."""
    for _ in range(100_000):
        opcode, payload = await read_client_frame(reader)
        if opcode == 0x8:
            return payload
    return b""


async def ping_crosses_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A server (or load balancer) whose ping crosses the client's close frame: once the client has
    sent its close, a ping arrives before the close reply, as happens when both are in flight."""
    request = await read_request(reader)
    writer.write(switching(request))
    await writer.drain()
    payload = await _until_client_closes(reader)
    writer.write(frame(0x9, b"lb-keepalive") + frame(0x1, b'{"type":"Metadata","late":true}') + frame(0x8, payload))
    await writer.drain()
    await _linger(reader, 3)


async def pings_everywhere(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Pings and unsolicited pongs between the fragments of a message, then a close in the middle of
    a fragmented one: every frame type in every state a client can be in."""
    request = await read_request(reader)
    writer.write(
        switching(request)
        + frame(0xA, b"unsolicited")
        + bytes([0x01, 5])  # text, not final
        + b'{"typ'
        + frame(0x9, b"in-between")
        + bytes([0x80, 12])  # continuation, final
        + b'e":"Hello"}\x20'
        + bytes([0x01, 3])  # a new fragmented text...
        + b'{"a'
        + frame(0x8, struct.pack("!H", 1000))  # ...cut by a close frame
    )
    await writer.drain()
    await _linger(reader, 3)


async def empty_continuations(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A text message that never ends: one opening fragment, then endless empty continuation frames
    (2 bytes each), which no byte bound ever stops."""
    request = await read_request(reader)
    writer.write(switching(request) + bytes([0x01, 1]) + b"{")
    empty = bytes([0x00, 0]) * 32768  # 64 KiB of empty continuations per write
    try:
        for _ in range(2000):  # 64k frames per write x 2000: far more than any bound, ended by the client
            writer.write(empty)
            await asyncio.wait_for(writer.drain(), 2)
    except (OSError, TimeoutError):
        return


async def slow_continuations(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The same never-ending message, dripped below any flood rate (about 500 empty frames a
    second): only a bound on fragments per message stops it."""
    request = await read_request(reader)
    writer.write(switching(request) + bytes([0x01, 1]) + b"{")
    try:
        for _ in range(400):  # 20 s at most
            writer.write(bytes([0x00, 0]) * 25)
            await asyncio.wait_for(writer.drain(), 2)
            await asyncio.sleep(0.05)
    except (OSError, TimeoutError):
        return


async def message_flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A flood of small, valid messages, as fast as the socket takes them."""
    request = await read_request(reader)
    writer.write(switching(request))
    message = frame(0x1, b'{"type":"SpeechStarted","channel":[0,1],"timestamp":0.0}') * 1000
    try:
        for _ in range(5000):
            writer.write(message)
            await asyncio.wait_for(writer.drain(), 2)
    except (OSError, TimeoutError):
        return


async def busy_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Valid messages just under the flood bound (~800 a second), for 20 s: the connection stays
    open and the client busy, which is when a signal or a deadline must still be seen."""
    request = await read_request(reader)
    writer.write(switching(request))
    batch = frame(0x1, b'{"type":"SpeechStarted","channel":[0,1],"timestamp":0.0}') * 40
    try:
        for _ in range(400):  # 40 messages every 50 ms: 800/s, for 20 s at most
            writer.write(batch)
            await asyncio.wait_for(writer.drain(), 2)
            await asyncio.sleep(0.05)
    except (OSError, TimeoutError):
        return


async def wrong_shapes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Valid JSON of the wrong shape: alternatives a list of lists, a string, a list at the top,
    JSON nested 100k deep; then a real Results so the stream otherwise works."""
    request = await read_request(reader)
    bad = [
        b'{"type":"Results","channel_index":[0,1],"duration":1,"start":0,"is_final":true,"speech_final":false,'
        b'"from_finalize":false,"channel":{"alternatives":[["hello"]]},"metadata":{}}',
        b'{"type":"Results","channel":{"alternatives":"hello"}}',
        b"[1,2,3]",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"type":"Metadata","request_id":7}',
    ]
    good = (
        b'{"type":"Results","channel_index":[0,1],"duration":1.0,"start":0.0,"is_final":true,"speech_final":true,'
        b'"from_finalize":false,"channel":{"alternatives":[{"transcript":"hello there","confidence":0.9,'
        b'"words":[]}]},"metadata":{"request_id":"r","model_uuid":"m","model_info":{"name":"n","version":"v",'
        b'"arch":"a"}}}'
    )
    writer.write(switching(request) + b"".join(frame(0x1, b) for b in bad) + frame(0x1, good))
    await writer.drain()
    payload = await _until_client_closes(reader)
    writer.write(frame(0x8, payload))
    await writer.drain()


async def unoffered_subprotocol(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    request = await read_request(reader)
    writer.write(switching(request, b"Sec-WebSocket-Protocol: chat\r\n"))
    await writer.drain()
    await _linger(reader, 3)


async def redirect_307(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.write(
        b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://login.portal.test/auth?session=s3cr3t-v4lu3&next=x\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    await writer.drain()


async def rest_wrong_shape(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A "Deepgram" (it stamps dg-request-id) whose pre-recorded answer is valid JSON of the wrong
    shape; WebSocket upgrades get a 401 like Deepgram's."""
    request = await read_request(reader)
    if request.startswith(b"POST"):
        body = b'{"results":{"channels":[{"alternatives":[["not","an","object"]]}]},"metadata":[]}'
        status = b"200 OK"
    else:
        body = b'{"err_code":"INVALID_AUTH","err_msg":"Invalid credentials.","request_id":"r"}'
        status = b"401 Unauthorized"
    writer.write(
        b"HTTP/1.1 " + status + b"\r\ndg-request-id: hostile-rest\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
    )
    await writer.drain()


SCENARIOS: dict[str, Handler] = {
    "rest-wrong-shape": rest_wrong_shape,
    "ping-crosses-close": ping_crosses_close,
    "pings-everywhere": pings_everywhere,
    "empty-continuations": empty_continuations,
    "slow-continuations": slow_continuations,
    "message-flood": message_flood,
    "busy-stream": busy_stream,
    "wrong-shapes": wrong_shapes,
    "unoffered-subprotocol": unoffered_subprotocol,
    "redirect-307": redirect_307,
    "proxy-connect-then-close": connect_then_close,
    "garbage": garbage,
    "no-upgrade-101": no_upgrade_101,
    "endless-headers": endless_headers,
    "slowloris": slowloris,
    "huge-frame": huge_frame,
    "deflate-bomb": deflate_bomb,
    "bad-utf8": bad_utf8,
    "bad-close": bad_close,
    "tls-stall": tls_stall,
}


@contextmanager
def serve(name: str, ssl_context: ssl.SSLContext | None = None) -> Iterator[int]:
    handler = SCENARIOS[name]
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port: list[int] = []
    tasks: set[asyncio.Task[None]] = set()

    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await asyncio.wait_for(handler(reader, writer), LIFETIME_S)
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            tasks.discard(task)

    async def start() -> asyncio.Server:
        server = await asyncio.start_server(guarded, "127.0.0.1", 0, ssl=ssl_context)
        port.append(server.sockets[0].getsockname()[1])
        return server

    def run() -> None:
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(start())
        ready.set()
        loop.run_forever()
        server.close()
        for task in list(tasks):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0.05))
        loop.close()

    thread = threading.Thread(target=run, name=f"hostile-{name}", daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("hostile server did not start")
    try:
        yield port[0]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
