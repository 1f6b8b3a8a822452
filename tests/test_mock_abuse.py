"""The mock survives abusive clients: garbage, half-open connections and 10,000 connection attempts,
without crashing or growing without bound -- and still serves a real diagnosis afterwards. Raw
WebSocket clients that break the protocol get the RFC's close code (1009, 1007, 1002) and a clean
end of TCP; deeply nested JSON is a SchemaError and the session goes on."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.mockproc import mock_process, wsdoctor_process

KEY = "wsdoctor-abuse-key-Hh55"


def mock_pid(port: int) -> int:
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return int(conn.pid)
    raise AssertionError(f"no process listens on {port}")


async def hammer(port: int, attempts: int, concurrency: int) -> int:
    """``attempts`` connect/close cycles, some sending garbage or a half request; bounded in time."""
    sem = asyncio.Semaphore(concurrency)
    done = 0

    async def one(i: int) -> None:
        nonlocal done
        async with sem:
            try:
                _reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
            except (OSError, TimeoutError):
                return
            try:
                if i % 10 == 1:
                    writer.write(os.urandom(512))  # garbage
                elif i % 10 == 2:
                    writer.write(b"GET /v1/listen HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")  # half a request
                elif i % 10 == 3:
                    writer.write(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a TLS ClientHello on plain ws
                await asyncio.wait_for(writer.drain(), 2)
                done += 1
            except (OSError, TimeoutError):
                pass
            finally:
                writer.close()

    await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(attempts))), 120)
    return done


def test_mock_survives_abuse(tmp_path: Path) -> None:
    with mock_process("--api-key", KEY) as url:
        port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
        proc = psutil.Process(mock_pid(port))
        rss_before = proc.memory_info().rss
        # half-open: connections that send nothing and stay open while the rest happens
        idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(200)]
        t0 = time.monotonic()
        done = asyncio.run(hammer(port, 10_000, 200))
        elapsed = time.monotonic() - t0
        for s in idle:
            s.close()
        time.sleep(0.5)
        assert proc.is_running()
        assert done > 9_000, done
        rss_after = proc.memory_info().rss
        # still a working Deepgram endpoint
        out = tmp_path / "after.json"
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "wsdoctor",
                "run",
                url,
                "--api-key-env",
                "WSD_ABUSE_KEY",
                "--quick",
                "--checks",
                "stream.transcribe",
                "--json",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "WSD_ABUSE_KEY": KEY},
            check=False,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert json.loads(out.read_text())["summary"]["verdict"] == "healthy"
    growth_mb = (rss_after - rss_before) / 2**20
    assert growth_mb < 40, f"mock RSS grew {growth_mb:.1f} MB over 10k abusive connections ({elapsed:.1f} s)"


# -- malformed WebSocket traffic from a raw client ------------------------------------------------
#
# A hand-built client (asyncio streams, frames packed here) can send what no WebSocket library
# will: frames that break RFC 6455, oversized or deeply nested messages. The mock must answer each
# with a close frame carrying the right code -- or, for text it cannot use, a SchemaError Error
# message -- and then end the connection cleanly (the close frame, then FIN: never an RST that
# can wipe the close frame, never a silent drop). Every read has a timeout.

WS_QUERY = "encoding=linear16&sample_rate=16000"


def ws_frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, length: int | None = None) -> bytes:
    """One masked client frame; ``length`` overrides the announced payload length."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    mask = os.urandom(4)
    reps = len(payload) // 4 + 1
    masked = (
        (int.from_bytes(payload, "big") ^ int.from_bytes((mask * reps)[: len(payload)], "big")).to_bytes(
            len(payload), "big"
        )
        if payload
        else b""
    )
    return head + mask + masked


class RawWS:
    """A raw WebSocket client over asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int, tls: ssl.SSLContext | None = None) -> RawWS:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=tls, server_hostname="127.0.0.1" if tls else None), 5
        )
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /v1/listen?{WS_QUERY} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Token {KEY}\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101 "), head[:200]
        return cls(reader, writer)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def recv(self, timeout: float = 5.0) -> tuple[int, bytes]:
        """The next frame (opcode, payload); raises IncompleteReadError on EOF."""
        async with asyncio.timeout(timeout):
            b0, b1 = await self.reader.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", await self.reader.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", await self.reader.readexactly(8))[0]
            assert not b1 & 0x80, "a server frame must not be masked"
            return b0 & 0x0F, await self.reader.readexactly(n)

    async def recv_json(self, timeout: float = 5.0) -> dict[str, Any]:
        opcode, payload = await self.recv(timeout)
        assert opcode == 1, (opcode, payload[:200])
        return dict(json.loads(payload))

    async def until_close(self, timeout: float = 5.0) -> tuple[list[tuple[int, bytes]], int | None]:
        """Frames up to the server's close frame, and its code (None: empty close payload)."""
        seen: list[tuple[int, bytes]] = []
        while True:
            opcode, payload = await self.recv(timeout)
            if opcode == 8:
                return seen, (struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None)
            seen.append((opcode, payload))

    async def ending(self, timeout: float) -> str:
        """How the server ends TCP from here: "eof" (FIN), "reset", or "open" (still up after timeout)."""
        try:
            async with asyncio.timeout(timeout):
                while await self.reader.read(65536):
                    pass
            return "eof"
        except ConnectionResetError:
            return "reset"
        except TimeoutError:
            return "open"

    def close(self) -> None:
        self.writer.close()


@pytest.fixture(scope="module")
def mock_port() -> Iterator[int]:
    with mock_process("--api-key", KEY, "--idle-timeout", "30") as url:
        yield int(url.rsplit(":", 1)[1].split("/", 1)[0])


MAX_FRAME = 1 << 20  # MockConfig.max_frame_bytes


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        pytest.param([ws_frame(2, b"\0" * (MAX_FRAME + 1))], 1009, id="binary-1MiB+1"),
        pytest.param([ws_frame(1, b"a" * (3 * MAX_FRAME))], 1009, id="text-3MiB"),
        pytest.param([ws_frame(2, b"", length=1 << 40)], 1009, id="announced-1TiB"),
        pytest.param(
            [ws_frame(2, b"\0" * 700_000, fin=False), ws_frame(0, b"\0" * 700_000)], 1009, id="fragments-over-1MiB"
        ),
        pytest.param([ws_frame(1, b"\xff\xfe\xfd")], 1007, id="text-not-utf8"),
        pytest.param(
            [ws_frame(1, b'{"type": "Keep\xc3', fin=False), ws_frame(0, b'\x28Alive"}')],
            1007,
            id="utf8-broken-across-fragments",
        ),
        pytest.param([ws_frame(8, struct.pack("!H", 1000) + b"\xff")], 1007, id="close-reason-not-utf8"),
        pytest.param([ws_frame(1, b'{"type":"KeepAlive"}', rsv=4)], 1002, id="rsv1-without-extension"),
        pytest.param([ws_frame(3, b"x")], 1002, id="reserved-data-opcode"),
        pytest.param([ws_frame(0xB, b"")], 1002, id="reserved-control-opcode"),
        pytest.param([ws_frame(0, b"x")], 1002, id="continuation-without-start"),
        pytest.param([ws_frame(1, b"ab", fin=False), ws_frame(2, b"c")], 1002, id="new-message-inside-fragmented"),
        pytest.param([ws_frame(9, b"x", fin=False)], 1002, id="fragmented-ping"),
        pytest.param([ws_frame(9, b"x" * 126)], 1002, id="ping-over-125-bytes"),
        pytest.param([ws_frame(8, b"\x03")], 1002, id="close-1-byte-payload"),
        pytest.param([ws_frame(8, struct.pack("!H", 1005))], 1002, id="close-code-1005"),
        pytest.param([ws_frame(8, struct.pack("!H", 999))], 1002, id="close-code-999"),
        pytest.param([ws_frame(8, struct.pack("!H", 5000))], 1002, id="close-code-5000"),
    ],
)
def test_a_bad_frame_gets_its_close_code_then_a_clean_end(mock_port: int, frames: list[bytes], code: int) -> None:
    """The close frame arrives (within 2 s) with the RFC's code; after the client's reply the server
    sends FIN (within 2 s): no RST that could destroy the close frame, no silent drop."""

    async def main() -> None:
        ws = await RawWS.connect(mock_port)
        try:
            ws.send(ws_frame(1, b'{"type": "KeepAlive"}'))  # a good frame first: the session is live
            for frame in frames:
                ws.send(frame)
            t0 = time.monotonic()
            seen, got = await ws.until_close(timeout=2.0)
            assert got == code, (got, seen)
            assert time.monotonic() - t0 < 2.0
            if frames[-1][0] & 0x0F != 8:  # unless its bad frame was a close, a polite client answers
                ws.send(ws_frame(8, struct.pack("!H", code)))
            assert await ws.ending(timeout=2.0) == "eof"
        finally:
            ws.close()

    asyncio.run(main())


def test_an_oversized_frame_still_streaming_gets_1009_not_a_reset(mock_port: int) -> None:
    """A client writing an 8 MiB frame in 64 KiB pieces gets 1009 while it is still writing. The
    mock keeps reading (and discarding) the rest -- every write succeeds, so no RST can wipe out
    the close frame -- and sends FIN. A client that then neither replies nor closes is cut off
    after LINGER_S (5 s), not kept forever."""

    async def main() -> None:
        ws = await RawWS.connect(mock_port)
        try:
            frame = ws_frame(2, b"\x01" * (8 * MAX_FRAME))
            closing = asyncio.ensure_future(ws.until_close(timeout=10.0))
            for i in range(0, len(frame), 65536):
                ws.send(frame[i : i + 65536])
                await asyncio.wait_for(ws.writer.drain(), 10)  # raises if the mock reset us
            seen, got = await closing
            t_close = time.monotonic()
            assert got == 1009, (got, seen)
            assert await ws.ending(timeout=2.0) == "eof"
            cut_after = None
            while time.monotonic() - t_close < 10:  # keep writing into the half-closed connection
                try:
                    ws.send(ws_frame(2, b"\0" * 1024))
                    await asyncio.wait_for(ws.writer.drain(), 2)
                except (ConnectionError, TimeoutError):
                    cut_after = time.monotonic() - t_close
                    break
                await asyncio.sleep(0.1)
            assert cut_after is not None and 3.0 < cut_after < 7.0, cut_after
        finally:
            ws.close()

    asyncio.run(main())


DEEP = [
    pytest.param(b"[" * 100_000, id="100k-["),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, id="100k-balanced"),
    pytest.param(b'{"a":' * 100_000, id="100k-objects"),
    pytest.param(b'{"type": ' + b"[" * 200_000, id="deep-type"),
    pytest.param(b"[{" * 50_000 + b"}]" * 50_000, id="mixed"),
    pytest.param(b"[" * 990 + b"]" * 990, id="near-the-recursion-limit"),
    pytest.param(b'{"type": ' + b"[" * 600 + b"]" * 600 + b"}", id="type-600-deep"),
]


@pytest.mark.parametrize("text", DEEP)
def test_deeply_nested_json_is_a_schema_error_and_the_session_goes_on(mock_port: int, text: bytes) -> None:
    async def main() -> None:
        ws = await RawWS.connect(mock_port)
        try:
            for _ in range(3):  # again and again: nothing accumulates, nothing breaks
                ws.send(ws_frame(1, text))
                err = await ws.recv_json()
                assert (err["type"], err["variant"]) == ("Error", "SchemaError"), err
                assert len(err["description"]) < 200, err["description"]
            ws.send(ws_frame(2, b"\0\0" * 16000))  # one second of silence at 16 kHz
            results = await ws.recv_json()
            assert results["type"] == "Results", results
            ws.send(ws_frame(1, b'{"type": "CloseStream"}'))
            seen, code = await ws.until_close()
            assert code == 1000 and json.loads(seen[-1][1])["type"] == "Metadata", seen
            ws.send(ws_frame(8, struct.pack("!H", 1000)))
            assert await ws.ending(timeout=2.0) == "eof"
        finally:
            ws.close()

    asyncio.run(main())


def test_many_abusive_sessions_at_once_leave_the_mock_serving(mock_port: int) -> None:
    """50 concurrent clients, each sending deep JSON and then a bad frame: every one gets its
    SchemaError and its close code, within 20 s in all; the mock then serves a normal session."""

    async def one(i: int) -> int | None:
        ws = await RawWS.connect(mock_port)
        try:
            ws.send(ws_frame(1, b"[" * 50_000))
            assert (await ws.recv_json(timeout=10))["variant"] == "SchemaError"
            ws.send(ws_frame(1, b"\xc3\x28") if i % 2 else ws_frame(2, b"\0" * (MAX_FRAME + 1)))
            _, code = await ws.until_close(timeout=10)
            return code
        finally:
            ws.close()

    async def main() -> None:
        codes = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(50))), 20)
        assert codes == [1009 if i % 2 == 0 else 1007 for i in range(50)]
        ws = await RawWS.connect(mock_port)
        try:
            ws.send(ws_frame(1, b'{"type": "CloseStream"}'))
            _, code = await ws.until_close()
            assert code == 1000
        finally:
            ws.close()

    asyncio.run(main())


def server_side_open(pid: int, client_port: int) -> bool:
    """Whether the mock process still holds its end of our connection from ``client_port``."""
    return any(c.raddr and c.raddr.port == client_port for c in psutil.Process(pid).net_connections(kind="tcp"))


def test_a_silent_client_is_let_go_after_the_quiet_period(mock_port: int) -> None:
    """After 1002, a client that neither replies nor closes: the mock ends its side once nothing
    has arrived for LINGER_QUIET_S (1 s) -- not after LINGER_S, not never."""
    pid = mock_pid(mock_port)

    async def main() -> None:
        ws = await RawWS.connect(mock_port)
        try:
            local_port = ws.writer.get_extra_info("sockname")[1]
            ws.send(ws_frame(3, b"x"))
            _, code = await ws.until_close()
            t0 = time.monotonic()
            assert code == 1002
            assert await ws.ending(timeout=2.0) == "eof"  # FIN right after the close frame
            for _ in range(100):  # 5 s at most
                if not server_side_open(pid, local_port):
                    break
                await asyncio.sleep(0.05)
            released = time.monotonic() - t0
            assert 0.8 < released < 2.0, released
        finally:
            ws.close()

    asyncio.run(main())


def test_over_tls_a_bad_frame_gets_its_close_code_too(tmp_path: Path) -> None:
    """wss://: 1009 for an oversized frame still being written, then a clean TLS end."""
    with wsdoctor_process(["mock", "--host", "127.0.0.1", "--port", "0", "--tls", "--api-key", KEY]) as (url, proc):
        assert proc.stdout is not None
        ca_line = proc.stdout.readline()  # "CA certificate: PATH (pass --ca-file ...)"
        ca_file = ca_line.split("CA certificate:", 1)[1].split("(", 1)[0].strip()
        port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
        tls = ssl.create_default_context(cafile=ca_file)

        async def main() -> None:
            ws = await RawWS.connect(port, tls)
            try:
                frame = ws_frame(2, b"\x01" * (4 * MAX_FRAME))
                closing = asyncio.ensure_future(ws.until_close(timeout=10.0))
                for i in range(0, len(frame), 65536):
                    ws.send(frame[i : i + 65536])
                    await asyncio.wait_for(ws.writer.drain(), 10)
                _, code = await closing
                assert code == 1009
                ws.send(ws_frame(8, struct.pack("!H", 1009)))
                assert await ws.ending(timeout=3.0) == "eof"  # within LINGER_QUIET_S, a TLS close
            finally:
                ws.close()

        asyncio.run(main())
