"""A replay server: Deepgram's own captured frames, sent verbatim by a server that is not the mock.

Theory of operation. The judges were once calibrated on wsdoctor's mock and failed on what Deepgram
really sends. This server shares nothing with the mock or with ``wsdoctor.deepgram``: it is written
on bare asyncio streams with h11 (HTTP) and wsproto (WebSocket, server side) instead of aiohttp, and
every Deepgram string it sends is read from ``fixtures/deepgram-wire/`` -- the corpus of strings
captured in the wild -- and sent as captured:

- a request without the right ``Authorization: Token KEY`` gets the captured 401 body, with
  ``dg-error`` and ``dg-request-id`` as Deepgram sets them;
- the 101 carries ``dg-request-id`` and ``dg-project-id``, as captured;
- every ``results_every_bytes`` of audio, the next captured Results frame (the text as captured);
- ``{"type": "CloseStream"}``: one more Results, the captured Metadata, then close 1000 with an
  empty reason;
- no audio and no text for ``idle_s``: the captured Metadata, then close 1011 with the captured
  NET-0001 reason ("... See https://dpgr.am/net0001", no "NET-0001" token);
- pings are answered; a client close frame is echoed;
- ``POST /v1/listen``: the captured pre-recorded response body.

It serves on 127.0.0.1 (port 0) and is bounded everywhere: header size, frame size, session length.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h11
from wsproto import ConnectionType
from wsproto.connection import Connection, ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage

CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "deepgram-wire"
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_SESSION_S = 120.0


def _item(item_id: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CORPUS / f"{item_id}.json").read_text(encoding="utf-8"))
    return data


def _verbatim(item_id: str) -> str:
    """An item's text, which must be the JSON it captured, byte for byte as the page shows it."""
    item = _item(item_id)
    assert json.loads(item["text"]) == item["message"], item_id
    return str(item["text"])


@dataclass(frozen=True)
class Captured:
    """Everything the replay sends, read from the corpus."""

    results: tuple[str, ...] = field(
        default_factory=lambda: tuple(
            _verbatim(i)
            for i in (
                "msg-results-python-sdk-fixture-testing123",
                "msg-results-python-sdk-fixture-nova2",
                "msg-results-python-sdk-fixture-base-general",
            )
        )
    )
    metadata: str = field(default_factory=lambda: _verbatim("msg-metadata-js-sdk-issue-336"))
    idle_reason: str = field(default_factory=lambda: str(_item("net0001-python-sdk-issue-319")["close"]["reason"]))
    unauthorized_body: str = field(
        default_factory=lambda: str(_item("http401-natively-issue-369-invalid-auth")["http"]["body"])
    )
    rest_body: str = field(default_factory=lambda: _verbatim("rest-response-python-sdk-fixture-nova3"))

    @property
    def unauthorized_message(self) -> str:
        return str(json.loads(self.unauthorized_body)["err_msg"])


class ReplayServer:
    def __init__(self, key: str, *, idle_s: float = 10.0, results_every_bytes: int = 32000) -> None:
        self.key = key
        self.idle_s = idle_s
        self.results_every_bytes = results_every_bytes
        self.captured = Captured()
        self.port = 0
        self.sessions = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/listen"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, limit=1 << 16)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)

    # -- HTTP --------------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(MAX_SESSION_S):
                await self._serve(reader, writer)
        except (ConnectionError, TimeoutError, h11.RemoteProtocolError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        http = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = http.next_event()
            if event is h11.NEED_DATA:
                data = await asyncio.wait_for(reader.read(65536), 10.0)
                if not data:
                    return
                http.receive_data(data)
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > 50 * 1024 * 1024:
                    return
            elif isinstance(event, h11.EndOfMessage) or (request is not None and _is_upgrade(request)):
                break
        assert request is not None
        headers = {k.decode().lower(): v.decode("latin-1") for k, v in request.headers}
        request_id = str(uuid.uuid4())
        common = [("dg-request-id", request_id), ("date", _http_date())]
        if headers.get("authorization", "").partition(" ")[2].strip() != self.key:
            payload = self.captured.unauthorized_body.encode()
            response = h11.Response(
                status_code=401,
                headers=[
                    ("content-type", "application/json"),
                    ("dg-error", self.captured.unauthorized_message),
                    ("vary", "accept-encoding"),
                    ("content-length", str(len(payload))),
                    ("connection", "close"),
                    *common,
                ],
            )
            writer.write(http.send(response) + http.send(h11.Data(data=payload)) + http.send(h11.EndOfMessage()))
            await writer.drain()
            return
        if request.method == b"POST":
            payload = self.captured.rest_body.encode()
            response = h11.Response(
                status_code=200,
                headers=[("content-type", "application/json"), ("content-length", str(len(payload))), *common],
            )
            writer.write(http.send(response) + http.send(h11.Data(data=payload)) + http.send(h11.EndOfMessage()))
            await writer.drain()
            return
        accept = base64.b64encode(hashlib.sha1(headers["sec-websocket-key"].encode() + _GUID).digest()).decode()
        writer.write(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\ndg-request-id: {request_id}\r\n"
                f"dg-project-id: {uuid.uuid4()}\r\nDate: {_http_date()}\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        self.sessions += 1
        await _Session(self, reader, writer, http.trailing_data[0]).run()


class _Session:
    def __init__(self, srv: ReplayServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rest: bytes):
        self.srv, self.reader, self.writer = srv, reader, writer
        self.ws = Connection(ConnectionType.SERVER)
        self.pending = rest
        self.audio = 0
        self.next_result = 0
        self.closing = False

    async def send(self, event: Any) -> None:
        self.writer.write(self.ws.send(event))
        await self.writer.drain()

    async def results(self) -> None:
        results = self.srv.captured.results
        await self.send(TextMessage(data=results[self.next_result % len(results)]))
        self.next_result += 1

    async def close(self, code: int, reason: str) -> None:
        self.closing = True
        await self.send(TextMessage(data=self.srv.captured.metadata))
        await self.send(CloseConnection(code=code, reason=reason))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        last_activity = loop.time()
        while self.ws.state is not ConnectionState.CLOSED:
            data, self.pending = self.pending, b""
            if not data:
                wait = None if self.closing else max(0.0, last_activity + self.srv.idle_s - loop.time())
                try:
                    data = await asyncio.wait_for(self.reader.read(65536), wait if wait is not None else 10.0)
                except TimeoutError:
                    if self.closing:
                        return  # the client never answered our close: drop TCP
                    await self.close(1011, self.srv.captured.idle_reason)
                    continue
                if not data:
                    return
            self.ws.receive_data(data)
            for event in self.ws.events():
                if isinstance(event, BytesMessage):
                    last_activity = loop.time()
                    before = self.audio // self.srv.results_every_bytes
                    self.audio += len(event.data)
                    for _ in range(self.audio // self.srv.results_every_bytes - before):
                        if not self.closing:
                            await self.results()
                elif isinstance(event, TextMessage):
                    last_activity = loop.time()
                    kind = _type_of(event.data)
                    if kind == "CloseStream" and not self.closing:
                        await self.results()
                        await self.close(1000, "")
                    elif kind == "Finalize" and not self.closing:
                        await self.results()
                elif isinstance(event, Ping):
                    await self.send(event.response())
                elif isinstance(event, CloseConnection):
                    if self.ws.state is ConnectionState.REMOTE_CLOSING:
                        await self.send(event.response())
                    return


def _type_of(text: str) -> str | None:
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    return obj.get("type") if isinstance(obj, dict) else None


def _is_upgrade(request: h11.Request) -> bool:
    return any(k.lower() == b"upgrade" and v.lower() == b"websocket" for k, v in request.headers)


def _http_date() -> str:
    import email.utils

    return email.utils.formatdate(usegmt=True)


@contextmanager
def replay_server(key: str, **kw: Any) -> Iterator[ReplayServer]:
    """A :class:`ReplayServer` on its own event loop in a thread, for subprocess clients."""
    srv = ReplayServer(key, **kw)
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(srv.start())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(srv.stop())
        loop.close()

    thread = threading.Thread(target=serve, name="replay-server", daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("replay server did not start within 10 s")
    try:
        yield srv
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
