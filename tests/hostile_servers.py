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


def frame(opcode: int, payload: bytes, *, rsv1: bool = False, announce: int | None = None) -> bytes:
    first = 0x80 | (0x40 if rsv1 else 0) | opcode
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


SCENARIOS: dict[str, Handler] = {
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
