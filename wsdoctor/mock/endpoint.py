"""What the mock's Flux, TTS and Voice Agent endpoints share: opening the WebSocket the way every
Deepgram endpoint does (the credential check and reject-* faults of /v1/listen, the token
subprotocol echoed, ``dg-request-id`` on the 101), and ending TCP or the stream the ways Deepgram
and the network do (a cut without close frame, a close frame without a status code).

/v1/listen's session (``mock/server.py``) has its own, finer machinery for its many faults.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import WSMsgType, web

from wsdoctor import deepgram
from wsdoctor.mock import messages

if TYPE_CHECKING:
    from wsdoctor.mock.server import MockServer

__all__ = [
    "Opened",
    "client_message",
    "cut",
    "open_socket",
    "reset_transport",
    "scaled_window",
    "send_empty_close",
    "serving",
]


@dataclass(slots=True)
class Opened:
    """An upgraded connection: the mock it belongs to, its request id, the socket."""

    mock: MockServer
    request_id: str
    ws: web.WebSocketResponse


async def open_socket(request: web.Request, *, autoclose: bool = True) -> Opened | web.StreamResponse:
    """Upgrade ``request`` (an :class:`Opened`), or the response that refused it (a rejection, or a
    socket the client left during the upgrade)."""
    from wsdoctor.mock.server import _MOCK_KEY, _auth_subprotocol, _gatekeep

    mock: MockServer = request.app[_MOCK_KEY]
    request_id = messages.new_request_id()
    if (rejected := _gatekeep(mock, request, request_id)) is not None:
        return rejected
    subprotocol = _auth_subprotocol(request)
    ws = web.WebSocketResponse(
        autoping=True,
        autoclose=autoclose,
        heartbeat=None,
        protocols=(subprotocol,) if subprotocol else (),
        compress=False,
    )
    ws.headers[deepgram.HEADER_REQUEST_ID] = request_id
    try:
        await ws.prepare(request)
    except (ConnectionError, aiohttp.ClientConnectionError):
        return ws
    mock.stats.upgrades += 1
    return Opened(mock, request_id, ws)


def reset_transport(transport: asyncio.Transport) -> None:
    """End TCP with an RST: SO_LINGER on with a 0 s timeout, then abort (the rst fault)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def cut(request: web.Request, *, reset: bool) -> None:
    """End TCP without a close frame (the drop-no-close and rst faults): a FIN (write_eof), or an RST
    (SO_LINGER 0)."""
    transport = request.transport
    if transport is None:
        return
    if reset:
        reset_transport(transport)
    elif transport.can_write_eof():
        transport.write_eof()
    else:
        transport.close()


async def send_empty_close(ws: web.WebSocketResponse) -> None:
    """A close frame with no status code (clients report 1005), as Flux and the Voice Agent send.
    aiohttp's close() always sends a code, so the frame goes through its writer; then the
    connection ends."""
    writer = ws._writer
    if writer is not None:
        with contextlib.suppress(Exception):
            await writer.send_frame(b"", WSMsgType.CLOSE)
    with contextlib.suppress(Exception):
        await ws.close()


def scaled_window(mock: MockServer, real_s: float) -> float:
    """An API's idle window on this mock: ``--idle-timeout`` scales every API's as it does listen's
    (10 s real, so the mock's default keeps each API's real window)."""
    return real_s * mock.config.idle_timeout_s / deepgram.IDLE_TIMEOUT_S


def client_message(text: str) -> tuple[str | None, Any]:
    """A text frame's ``type`` (when it is a JSON object with a string one) and the parsed value
    (``None`` for text that is not JSON); read from its first 64 KiB."""
    try:
        obj = json.loads(text[:65536])
    except ValueError:
        return None, None
    kind = obj.get("type") if isinstance(obj, dict) else None
    return (kind if isinstance(kind, str) else None), obj


@contextlib.asynccontextmanager
async def serving(ws: web.WebSocketResponse) -> AsyncIterator[None]:
    """The body of an endpoint's session: a client that vanishes ends it quietly, and the socket is
    closed whatever happened."""
    try:
        yield
    except (ConnectionError, aiohttp.ClientConnectionError):
        pass
    finally:
        if not ws.closed:
            with contextlib.suppress(Exception):
                await ws.close()
