"""A Deepgram-compatible streaming server with switchable faults (``wsdoctor mock``).

Theory of operation
-------------------
One aiohttp application serves ``/v1/listen`` on 127.0.0.1 (port 0 by default), plain or TLS.

*HTTP layer.* A middleware answers everything with a captive-portal page when the ``html-200``
fault is on (no ``dg-request-id``: that absence is how a client spots an intermediary), and turns
aiohttp's own 404/405/413 into Deepgram-style JSON errors. An ``on_response_prepare`` signal puts a
``dg-request-id`` (uuid4) on every other response -- 101, 4xx, 5xx, REST -- so none is forgotten;
handlers that need the id in a body set the header themselves first (only bytes that are not HTTP
at all get aiohttp's bare 400, which no handler sees). Each request is checked in this order:
credentials (``Authorization: Token <key>`` / ``Bearer <jwt>``, any case, or the
``Sec-WebSocket-Protocol: token, <key>`` pair, then answered with subprotocol ``token``) => 401
with ``dg-error``; a ``reject-*`` fault => that status; a GET without an Upgrade => 426; bad
``encoding`` / ``sample_rate`` / ``channels`` => 400; else the 101. ``POST /v1/listen`` is the
pre-recorded API: the body is the audio, the answer a REST transcript, undecodable audio a 400.

*One streaming session* is two tasks. A pump task reads frames (``ws.receive()``), answers pings
itself (autoping is off so that pings count as wire activity for the middlebox fault) and posts
each frame to a queue; it ends after a close frame, an error or EOF. The handler task owns all
state and all writes: it waits on that queue with a deadline that is the earliest of its timers
(NET-0001 idle window, idle-cutoff window, mid-stream fault trigger, the next queued outgoing
message), so there are no races between timers and frames and every wait is bounded. The whole
session is further bounded by ``max_session_s`` (then the TCP connection is aborted).

*Audio time.* Binary frames are audio. Without ``encoding`` the first bytes must sniff as a known
container (WAV, Ogg, FLAC, MP3, WebM) or the server closes 1008 (DATA-0000); with ``encoding``
they are raw samples. :class:`~wsdoctor.mock.audio.SpanCutter` cuts the audio into spans of
``results_interval_s`` seconds of *audio* (not wall time): each span crossed sends one final
Results whose words come from a canned sentence when the span's PCM level says speech, and an
empty transcript for silence or for compressed audio the mock does not decode.

*Control messages* (text frames; binary and text both reset the idle timer, pings do not):
``KeepAlive`` resets it (except under ``ignore-keepalive``); ``Finalize`` flushes the partial span
as a Results with ``from_finalize: true``; ``CloseStream`` -- and the deprecated empty binary
frame, treated identically -- sends the final Results (if any audio arrived), then Metadata, then
close 1000 with an empty reason. Any other text (bad JSON, JSON nested too deeply to parse,
unknown type) is answered with a streaming ``Error`` message (variant ``SchemaError``, as the
official SDK models it) and the session goes on.

*Endings.* No audio or text for ``idle_timeout_s`` after the upgrade or the last message: the
server sends Metadata, then closes 1011 with Deepgram's NET-0001 reason exactly as the wire carries
it (``wsdoctor.deepgram.NET_0001.wire``: a sentence and a link, no token; Metadata first, as live
captures show).
A client close frame is answered at once with the same code (1000 when it carried none; 1002 for
a code of 5000 or more, which aiohttp lets through). A server close waits up to
``CLOSE_REPLY_WAIT_S`` for the client's reply, then drops TCP. ``stop()`` stops listening, closes
every session with 1001, and aborts whatever has not finished after a short grace.

*Bad clients* get a close code, not a dropped connection. A frame that breaks the protocol is
answered with aiohttp's close frame for it -- 1009 (larger than ``max_frame_bytes``), 1007 (text
or a close reason that is not UTF-8), 1002 (anything else: a reserved opcode or RSV bit, a
fragmented or oversized control frame, a continuation out of place, an invalid close code) -- and
then a *lingering* close: FIN (on plain TCP), and what the client still sends is read and
discarded until it closes too, has been quiet for ``LINGER_QUIET_S``, or ``LINGER_S`` have passed
(then abort). Closing the socket at once would leave the rest of, say, an oversized frame unread,
and the kernel would answer it with an RST that can destroy the close frame before the client
reads it; so :class:`_LingeringWebSocket` never closes the transport itself: the session does.
(aiohttp accepts unmasked client frames; so does the mock.)

*Faults* (``wsdoctor.mock.faults``): ``reject-*`` and ``html-200`` act at the HTTP layer;
``drop-no-close`` (FIN, no close frame), ``rst`` (SO_LINGER 0 then close: RST), and the close
faults ``close-1011-net0000`` / ``close-1012`` / ``close-1008`` fire once ``fault_after_s`` of audio
has arrived, or ``fault_after_s`` wall seconds after the upgrade, whichever comes first (messages
already due go out first); ``idle-cutoff`` cuts TCP (FIN) after ``idle_cutoff_s`` without any
client frame, pings included. A FIN is a half-close: the server keeps reading and discarding until
the client closes too (at most ``DRAIN_S``), because closing the socket outright would answer the
client's in-flight audio with an RST and turn a clean EOF into a reset. ``slow-results``
holds the first Results back by ``slow_results_delay_s`` and keeps everything after it in order;
``never-close-reply`` wedges the session on CloseStream or a close frame: nothing more is sent, no
close is ever answered, no timer fires, and the TCP connection stays up until the client leaves
or ``max_session_s``; ``ignore-keepalive`` makes KeepAlive not count for the NET-0001 timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import signal
import socket
import ssl
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from aiohttp import WSMsgType, web

from wsdoctor import deepgram
from wsdoctor.deepgram import ClientMessage, ServerMessage
from wsdoctor.errors import UsageError
from wsdoctor.mock import audio, messages
from wsdoctor.mock.agent import agent_get
from wsdoctor.mock.config import MockConfig, MockStats
from wsdoctor.mock.endpoint import reset_transport
from wsdoctor.mock.faults import MIDSTREAM_FAULTS, REJECT_FAULTS
from wsdoctor.mock.flux import flux_get
from wsdoctor.mock.speak import speak_get

__all__ = [
    "CLOSE_REPLY_WAIT_S",
    "LISTEN_PATH",
    "REASON_DATA0000",
    "REASON_NET0000",
    "REASON_NET0001",
    "MockServer",
    "serve",
    "start_mock",
]

log = logging.getLogger("wsdoctor.mock")

LISTEN_PATH = deepgram.LISTEN_PATH
FLUX_PATH = deepgram.PATH_OF[deepgram.Api.FLUX]
SPEAK_PATH = deepgram.PATH_OF[deepgram.Api.SPEAK]
AGENT_PATH = deepgram.PATH_OF[deepgram.Api.AGENT]
CLOSE_REPLY_WAIT_S = 5.0  # a server-initiated close waits this long for the client's close frame
STOP_GRACE_S = 0.3  # stop(): time sessions get to close with 1001 before their TCP is aborted
SHUTDOWN_TIMEOUT_S = 0.2  # aiohttp's per-connection shutdown wait during stop()
POLL_S = 0.05  # a wedged or half-closed session checks this often whether the client has gone
DRAIN_S = 5.0  # after a FIN without close frame, keep reading (and discarding) this long at most
LINGER_S = 5.0  # after a close for a protocol error, keep reading (and discarding) this long at most
LINGER_QUIET_S = 1.0  # ... and stop sooner once the client has sent nothing for this long
REST_MAX_BYTES = 100 * 1024 * 1024

# Close reasons exactly as Deepgram sends them (wsdoctor.deepgram). 1012 and our own shutdown are
# not Deepgram's (it documents no 1012 for /v1/listen): a restarting load balancer sends such a close.
REASON_NET0001 = deepgram.NET_0001.wire
REASON_NET0000 = deepgram.NET_0000.wire
REASON_DATA0000 = deepgram.DATA_0000.wire
REASON_1012 = "Service restart: the server is restarting, please reconnect."
REASON_STOP = "wsdoctor mock is shutting down"

_REJECTIONS: dict[str, deepgram.Rejection] = {
    "reject-401": deepgram.INVALID_AUTH,
    "reject-402": deepgram.ASR_PAYMENT_REQUIRED,
    "reject-403": deepgram.INSUFFICIENT_PERMISSIONS,
    "reject-429": deepgram.TOO_MANY_REQUESTS,
    "reject-503": deepgram.SERVICE_UNAVAILABLE,
}
_MIDSTREAM_CLOSES: dict[str, tuple[int, str]] = {
    "close-1011-net0000": (deepgram.NET_0000.code, REASON_NET0000),
    "close-1012": (1012, REASON_1012),
    "close-1008": (deepgram.DATA_0000.code, REASON_DATA0000),
}
# The mock's own answers where Deepgram's are not documented (a GET without an Upgrade, a broken
# upgrade request, a JSON body asking for a remote URL): Deepgram's body shape, our words.
_UPGRADE_REQUIRED = deepgram.Rejection(
    "UPGRADE_REQUIRED",
    426,
    "UPGRADE_REQUIRED",
    "Upgrade Required: /v1/listen streams over a WebSocket (or POST audio for pre-recorded).",
    "a GET without an Upgrade",
    (),
)
_MALFORMED_UPGRADE = deepgram.Rejection(
    "MALFORMED_UPGRADE",
    400,
    "Bad Request",
    "Bad Request: malformed WebSocket upgrade request.",
    "a broken upgrade request",
    (),
)
_NO_REMOTE_URLS = deepgram.Rejection(
    "NO_REMOTE_URLS",
    400,
    "Bad Request",
    "Bad Request: the wsdoctor mock does not fetch remote URLs; POST the audio bytes instead.",
    "a JSON body naming a URL",
    (),
)
_CAPTIVE_PORTAL_HTML = """<!DOCTYPE html>
<html><head><title>Network Login</title></head>
<body><h1>Welcome to Guest Wi-Fi</h1>
<p>Please accept the terms of use to access the Internet.</p>
<form method="post" action="/login"><input type="checkbox" name="accept"> I accept
<button type="submit">Connect</button></form></body></html>
"""


# --- HTTP layer --------------------------------------------------------------------------------


def _offered_subprotocols(request: web.BaseRequest) -> list[str]:
    return [
        p.strip()
        for header in request.headers.getall("Sec-WebSocket-Protocol", [])
        for p in header.split(",")
        if p.strip()
    ]


def _auth_subprotocol(request: web.BaseRequest) -> str | None:
    """The scheme of a ``token, <key>`` (or ``bearer, <jwt>``) subprotocol pair, exactly as offered:
    the server selects it in the 101, whichever way the credential was checked."""
    offered = _offered_subprotocols(request)
    if len(offered) >= 2 and offered[0].lower() in ("token", "bearer"):
        return offered[0]
    return None


def _credential(request: web.BaseRequest) -> str | None:
    """The API key or token from ``Authorization`` (Token/Bearer, any case) or the subprotocol pair."""
    scheme, _, value = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() in ("token", "bearer") and value.strip():
        return value.strip()
    if _auth_subprotocol(request) is not None:
        return _offered_subprotocols(request)[1]
    return None


def _authorized(credential: str | None, config: MockConfig) -> bool:
    if not credential:
        return False
    if config.api_key is None:
        return True
    return hmac.compare_digest(credential.encode(), config.api_key.encode())


def _error_response(rejection: deepgram.Rejection, request_id: str) -> web.Response:
    """Deepgram's rejection: the JSON body, ``dg-error`` equal to its ``err_msg``, ``dg-request-id``."""
    return web.json_response(
        messages.error_body(rejection.err_code, rejection.err_msg, request_id),
        status=rejection.status,
        headers={deepgram.HEADER_ERROR: rejection.err_msg, deepgram.HEADER_REQUEST_ID: request_id},
    )


def _parse_stream_params(query: Mapping[str, str]) -> audio.AudioFormat | deepgram.Rejection | None:
    """Raw format from ``encoding``/``sample_rate``/``channels``; None for containerized audio;
    a :class:`~wsdoctor.deepgram.Rejection` for parameters Deepgram would refuse (400)."""
    if query.get("model", "").strip().lower().startswith(deepgram.FLUX_MODEL_PREFIX):
        return deepgram.V2_MODEL_ON_V1  # Flux is /v2/listen
    encoding = query.get("encoding")
    if encoding is None:
        return None
    encoding = encoding.strip().lower()
    if encoding not in audio.RAW_ENCODINGS:
        return deepgram.invalid_query_parameter(f"unknown variant `{encoding[:40]}` for `encoding`")
    rate_s = query.get("sample_rate")
    if rate_s is None:
        return deepgram.invalid_query_parameter("`sample_rate` is required when `encoding` is set")
    try:
        rate = int(rate_s)
        channels = int(query.get("channels", "1"))
    except ValueError:
        return deepgram.invalid_query_parameter("`sample_rate` and `channels` must be integers")
    if not (1 <= rate <= 384_000) or not (1 <= channels <= 64):
        return deepgram.invalid_query_parameter("`sample_rate` or `channels` out of range")
    return audio.raw_format(encoding, rate, channels)


_MOCK_KEY: web.AppKey[MockServer] = web.AppKey("wsdoctor_mock")


class _LingeringWebSocket(web.WebSocketResponse):
    """aiohttp closes the TCP connection as soon as a close handshake ends -- or fails, as right
    after it sent 1009/1007/1002 for a bad frame while the rest of the client's bytes are still
    arriving; closing a socket with unread data sends an RST, which can wipe our close frame from
    the client's receive buffer. Here closing the transport is left to the session: it lingers
    after a protocol error, and aiohttp closes the transport once the handler returns."""

    def _close_transport(self) -> None:
        return


def _make_app(mock: MockServer) -> web.Application:
    app = web.Application(middlewares=[_middleware], client_max_size=REST_MAX_BYTES)
    app[_MOCK_KEY] = mock
    app.on_response_prepare.append(_on_response_prepare)
    app.router.add_route("GET", LISTEN_PATH, _listen_get)
    app.router.add_route("POST", LISTEN_PATH, _listen_post)
    app.router.add_route("GET", FLUX_PATH, flux_get)
    app.router.add_route("GET", SPEAK_PATH, speak_get)
    app.router.add_route("GET", AGENT_PATH, agent_get)
    return app


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
    mock = request.app[_MOCK_KEY]
    if mock.config.fault == "html-200":
        # An intermediary answering instead of Deepgram: no dg-request-id, no upgrade.
        with contextlib.suppress(Exception):
            await request.read()
        return web.Response(
            text=_CAPTIVE_PORTAL_HTML, content_type="text/html", headers={"Server": "CaptivePortal/1.0"}
        )
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        reason = exc.reason or "Error"
        return _error_response(
            deepgram.Rejection("HTTP", exc.status, reason, reason, "an HTTP error of the server itself", ()),
            messages.new_request_id(),
        )


async def _on_response_prepare(request: web.Request, response: web.StreamResponse) -> None:
    if request.app[_MOCK_KEY].config.fault == "html-200":
        return
    if deepgram.HEADER_REQUEST_ID not in response.headers:
        response.headers[deepgram.HEADER_REQUEST_ID] = messages.new_request_id()


def _gatekeep(mock: MockServer, request: web.Request, request_id: str) -> web.Response | None:
    """Credentials, then the reject-* faults: the checks every /v1/listen request passes."""
    rejection: deepgram.Rejection | None = None
    if not _authorized(_credential(request), mock.config):
        rejection = deepgram.INVALID_AUTH
    elif mock.config.fault in REJECT_FAULTS:
        rejection = _REJECTIONS[mock.config.fault]
    elif (
        mock.config.max_streams is not None
        and request.method == "GET"
        and mock.active_sessions + mock.pending_upgrades >= mock.config.max_streams
    ):
        rejection = deepgram.TOO_MANY_REQUESTS  # what a project over its concurrency limit gets
    if rejection is None:
        return None
    mock.stats.rejected += 1
    return _error_response(rejection, request_id)


def _is_upgrade_request(request: web.Request) -> bool:
    upgrade = request.headers.get("Upgrade", "").lower()
    connection = request.headers.get("Connection", "").lower()
    return "websocket" in upgrade and "upgrade" in connection


async def _listen_get(request: web.Request) -> web.StreamResponse:
    mock = request.app[_MOCK_KEY]
    request_id = messages.new_request_id()
    if (rejected := _gatekeep(mock, request, request_id)) is not None:
        return rejected
    subprotocol = _auth_subprotocol(request)
    protocols = (subprotocol,) if subprotocol else ()
    ws = _LingeringWebSocket(
        timeout=CLOSE_REPLY_WAIT_S,
        autoclose=False,
        autoping=False,  # the pump answers pings itself, so they count as client activity
        heartbeat=None,
        max_msg_size=mock.config.max_frame_bytes,
        protocols=protocols,
        compress=False,
    )
    if not ws.can_prepare(request).ok:
        mock.stats.rejected += 1
        if _is_upgrade_request(request):
            return _error_response(_MALFORMED_UPGRADE, request_id)
        return _error_response(_UPGRADE_REQUIRED, request_id)
    fmt = _parse_stream_params(request.query)
    if isinstance(fmt, deepgram.Rejection):
        mock.stats.rejected += 1
        return _error_response(fmt, request_id)
    ws.headers[deepgram.HEADER_REQUEST_ID] = request_id
    mock.pending_upgrades += 1  # counted against max_streams from here: prepare() yields
    try:
        await ws.prepare(request)
    except (ConnectionError, aiohttp.ClientConnectionError):
        log.debug("client left during the upgrade")
        mock.pending_upgrades -= 1
        return ws
    mock.stats.upgrades += 1
    session = _Session(mock, request, ws, request_id, fmt)
    mock.pending_upgrades -= 1  # run() registers the session before its first await
    await session.run()
    return ws


async def _listen_post(request: web.Request) -> web.StreamResponse:
    """The pre-recorded API: the body is the audio, the answer one transcript."""
    mock = request.app[_MOCK_KEY]
    request_id = messages.new_request_id()
    if (rejected := _gatekeep(mock, request, request_id)) is not None:
        return rejected

    def bad(rejection: deepgram.Rejection) -> web.Response:
        mock.stats.rejected += 1
        return _error_response(rejection, request_id)

    if request.content_type == "application/json":
        return bad(_NO_REMOTE_URLS)
    fmt = _parse_stream_params(request.query)
    if isinstance(fmt, deepgram.Rejection):
        return bad(fmt)
    try:
        body = await request.read()
    except (ConnectionError, aiohttp.ClientError, web.RequestPayloadError):
        log.debug("client left while posting audio")
        return bad(deepgram.BAD_REQUEST_AUDIO)
    if fmt is None:
        fmt = audio.sniff(body).format
    if not body or fmt is None:
        return bad(deepgram.BAD_REQUEST_AUDIO)
    cutter = audio.SpanCutter(fmt, mock.config.results_interval_s)
    spans = cutter.feed(body[fmt.header_len :])
    if cutter.pending_s > 0:
        spans.append(cutter.flush())
    source = messages.WordSource()
    words = [w for s in spans if s.speech for w in source.take(s.start_s, s.duration_s)]
    return web.json_response(
        messages.rest_response(
            request_id=request_id,
            sha256=hashlib.sha256(body).hexdigest(),
            created=messages.created_now(),
            duration=cutter.audio_s,
            channels=fmt.channels,
            words=words,
        ),
        headers={deepgram.HEADER_REQUEST_ID: request_id},
    )


# --- one streaming session ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Frame:
    """What the pump saw: audio, text, a ping/pong, the client's close frame, a frame that broke the
    protocol (aiohttp has sent the close frame for it), or the end."""

    kind: Literal["binary", "text", "ping", "close", "error", "end", "stop"]
    data: bytes = b""
    text: str = ""
    code: int = 0


_STOP = _Frame("stop")


@dataclass(frozen=True, slots=True)
class _Out:
    due: float  # loop time at which it may be written
    payload: messages.JSONDict | None  # None: a close frame
    code: int = 1000
    reason: str = ""


class _Discard(asyncio.Protocol):
    """Takes over a connection's reading after a protocol error: bytes are dropped; quiet for
    LINGER_QUIET_S posts the session's "end". aiohttp's protocol still hears of the connection's
    loss and of write flow control, so its own bookkeeping ends as usual."""

    def __init__(self, inner: asyncio.BaseProtocol, frames: asyncio.Queue[_Frame]) -> None:
        self.inner = inner
        self.frames = frames
        self.loop = asyncio.get_running_loop()
        self.last = self.loop.time()
        self.timer: asyncio.TimerHandle | None = self.loop.call_later(LINGER_QUIET_S, self._check)

    def _check(self) -> None:
        quiet = self.loop.time() - self.last
        if quiet >= LINGER_QUIET_S:
            self.timer = None
            self.frames.put_nowait(_Frame("end"))
        else:
            self.timer = self.loop.call_later(LINGER_QUIET_S - quiet, self._check)

    def data_received(self, data: bytes) -> None:
        self.last = self.loop.time()

    def eof_received(self) -> bool | None:
        return None  # the client closed its side: the transport closes, the session sees it gone

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class _Session:
    def __init__(
        self,
        mock: MockServer,
        request: web.Request,
        ws: web.WebSocketResponse,
        request_id: str,
        raw_format: audio.AudioFormat | None,
    ) -> None:
        self.mock = mock
        self.cfg = mock.config
        self.fault = mock.config.fault
        self.request = request
        self.ws = ws
        self.request_id = request_id
        self.loop = asyncio.get_running_loop()
        self.created = messages.created_now()
        self.frames: asyncio.Queue[_Frame] = asyncio.Queue()
        self.out: deque[_Out] = deque()
        self.cutter = audio.SpanCutter(raw_format, self.cfg.results_interval_s) if raw_format else None
        self.head = bytearray()  # container bytes until sniff() decides
        self.sha = hashlib.sha256()
        self.words = messages.WordSource()
        now = self.loop.time()
        self.t_upgrade = now
        self.last_activity = now  # audio or text: the NET-0001 timer
        self.last_frame = now  # any client frame, pings included: the idle-cutoff timer
        self.closing = False  # a close frame is queued: no timers, no new output
        self.wedged = False  # never-close-reply after the client asked to close
        self.drain_until: float | None = None  # set once we sent a FIN without a close frame
        self.done = False
        self.fault_fired = False
        self.slow_pending = self.fault == "slow-results"
        self.finished = asyncio.Event()
        self.pump: asyncio.Task[None] | None = None

    # lifecycle

    async def run(self) -> None:
        self.mock._sessions.add(self)
        self.pump = asyncio.create_task(self._pump())
        try:
            async with asyncio.timeout(self.cfg.max_session_s):
                await self._main()
        except TimeoutError:
            log.debug("session %s hit max_session_s; aborting", self.request_id)
            self.abort()
        except (ConnectionError, aiohttp.ClientConnectionError) as exc:
            log.debug("session %s: client went away: %r", self.request_id, exc)
            self.abort()
        finally:
            await self._stop_pump()
            self.mock._sessions.discard(self)
            self.finished.set()

    def request_stop(self) -> None:
        self.frames.put_nowait(_STOP)

    def abort(self) -> None:
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    def _cut(self, *, reset: bool) -> None:
        """End TCP without a close frame: FIN, or RST when ``reset`` (SO_LINGER on, 0 s).

        The FIN is a half-close (shutdown SHUT_WR): we keep reading and discarding what the
        client still sends until it closes too (or DRAIN_S). Closing the socket outright would
        make the kernel answer the client's in-flight audio with an RST, and a client that reads
        late would then see a reset instead of the clean EOF this fault is about.
        """
        transport = self.request.transport
        if transport is None:
            self.done = True
            return
        if reset:
            reset_transport(transport)
            self.done = True
        elif transport.can_write_eof():
            transport.write_eof()
            self.out.clear()
            self.drain_until = self.loop.time() + DRAIN_S
        elif transport.get_write_buffer_size() == 0 and (sock := transport.get_extra_info("socket")) is not None:
            # TLS: a FIN under the TLS layer, without close_notify -- what a middlebox cut looks like
            # ("EOF occurred in violation of protocol" on the client).
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
            self.out.clear()
            self.drain_until = self.loop.time() + DRAIN_S
        else:
            transport.close()
            self.done = True

    def _linger(self) -> None:
        """After the close frame for a protocol error: FIN (plain TCP; under TLS the close frame
        says enough), then read and discard what the client still sends. The session ends when
        the client closes, or has sent nothing for LINGER_QUIET_S (nothing unread then, so no
        RST), or at LINGER_S at most (then abort: a client still streaming earned its RST)."""
        transport = self.request.transport
        if transport is None or transport.is_closing():
            self.done = True
            return
        if transport.can_write_eof():
            with contextlib.suppress(OSError, RuntimeError):
                transport.write_eof()
        self.out.clear()
        self.closing = True
        self.drain_until = self.loop.time() + LINGER_S
        transport.set_protocol(_Discard(transport.get_protocol(), self.frames))
        with contextlib.suppress(RuntimeError):
            transport.resume_reading()  # aiohttp may have paused it (a full frame queue): drain anyway

    def _client_gone(self) -> bool:
        transport = self.request.transport
        return transport is None or transport.is_closing()

    async def _pump(self) -> None:
        put = self.frames.put_nowait
        try:
            while True:
                msg = await self.ws.receive()
                if msg.type is WSMsgType.BINARY:
                    put(_Frame("binary", data=msg.data))
                elif msg.type is WSMsgType.TEXT:
                    put(_Frame("text", text=msg.data))
                elif msg.type is WSMsgType.PING:
                    if self.fault != "ignore-pings":
                        await self.ws.pong(msg.data)
                    put(_Frame("ping"))
                elif msg.type is WSMsgType.PONG:
                    put(_Frame("ping"))
                elif msg.type is WSMsgType.CLOSE:
                    put(_Frame("close", code=int(msg.data or 0), text=str(msg.extra or "")))
                    return
                elif msg.type is WSMsgType.ERROR:
                    # a bad frame: aiohttp has sent its close frame (1009/1007/1002) and stopped reading frames
                    code = int(getattr(msg.data, "code", 0) or 0)
                    log.debug("session %s: protocol error, close %s sent: %s", self.request_id, code, msg.data)
                    put(_Frame("error", code=code))
                    return
                else:  # CLOSING (we are closing) or CLOSED (EOF)
                    put(_Frame("end"))
                    return
        except (ConnectionError, aiohttp.ClientConnectionError):
            put(_Frame("end"))

    async def _main(self) -> None:
        while not self.done:
            await self._flush()
            if self.done:
                return
            try:
                async with asyncio.timeout_at(self._next_deadline()):
                    frame = await self.frames.get()
            except TimeoutError:
                await self._on_timer()
                continue
            await self._on_frame(frame)

    def _next_deadline(self) -> float | None:
        if self.drain_until is not None:
            return min(self.drain_until, self.loop.time() + POLL_S)
        if self.wedged:
            return self.loop.time() + POLL_S
        times: list[float] = []
        if not self.closing:
            times.append(self.last_activity + self.cfg.idle_timeout_s)
            if self.fault == "idle-cutoff":
                times.append(self.last_frame + self.cfg.idle_cutoff_s)
            if self.fault in MIDSTREAM_FAULTS and not self.fault_fired:
                times.append(self.t_upgrade + self.cfg.fault_after_s)
        if self.out:
            times.append(self.out[0].due)
        return min(times) if times else None

    # events

    async def _on_timer(self) -> None:
        now = self.loop.time()
        if self.drain_until is not None:
            if self._client_gone() or now >= self.drain_until:
                self.abort()
                self.done = True
            return
        if self.wedged:
            if self._client_gone():
                self.done = True
            return
        if self.closing:
            return  # only the output queue is waiting; _flush() handles it
        if self.fault == "idle-cutoff" and now >= self.last_frame + self.cfg.idle_cutoff_s:
            log.debug("session %s: idle-cutoff fault, cutting TCP", self.request_id)
            self._cut(reset=False)
        elif self.fault in MIDSTREAM_FAULTS and not self.fault_fired and now >= self.t_upgrade + self.cfg.fault_after_s:
            await self._fire_fault()
        elif now >= self.last_activity + self.cfg.idle_timeout_s:
            self._send(self._metadata())
            self._close(1011, REASON_NET0001)

    async def _on_frame(self, frame: _Frame) -> None:
        now = self.loop.time()
        stats = self.mock.stats
        if frame.kind == "stop":
            await self._stop()
            return
        if frame.kind == "end":
            self.done = True
            return
        if frame.kind == "error":
            self._linger()
            return
        if self.drain_until is not None:  # half-closed: whatever the client still sends is dropped
            return
        if frame.kind == "close":
            stats.close_frames_received += 1
            if self.fault == "never-close-reply":
                self.wedged = True
                return
            code = frame.code if frame.code in range(1000, 5000) and frame.code not in (1005, 1006, 1015) else 1000
            if frame.code >= 5000:  # aiohttp lets these through; RFC 6455 7.4 has no such codes
                code = 1002
            await self.ws.close(code=code)
            self.done = True
            return
        self.last_frame = now
        if frame.kind == "ping":
            return
        if frame.kind == "text":
            await self._on_text(frame.text, now)
        elif frame.kind == "binary":
            self.sha.update(frame.data)
            if frame.data == b"":
                stats.closestream_received += 1  # the deprecated close signal: same as CloseStream
                if not (self.closing or self.wedged):
                    self.last_activity = now
                    self._close_stream()
            elif not (self.closing or self.wedged):
                self.last_activity = now
                await self._on_audio(frame.data)

    async def _on_text(self, text: str, now: float) -> None:
        stats = self.mock.stats
        too_deep = False
        try:
            obj = json.loads(text)
        except ValueError:
            obj = None
        except RecursionError:  # e.g. 100,000 '[': text we cannot use, like any other bad JSON
            obj, too_deep = None, True
        kind = obj.get("type") if isinstance(obj, dict) else None
        if kind == ClientMessage.KEEPALIVE:
            stats.keepalives_received += 1
        elif kind == ClientMessage.CLOSE_STREAM:
            stats.closestream_received += 1
        if self.closing or self.wedged:
            return
        if kind != ClientMessage.KEEPALIVE or self.fault != "ignore-keepalive":
            self.last_activity = now
        if kind == ClientMessage.KEEPALIVE:
            return
        if kind == ClientMessage.CLOSE_STREAM:
            self._close_stream()
        elif kind == ClientMessage.FINALIZE:
            span = self.cutter.flush() if self.cutter else audio.Span(0.0, 0.0, None)
            self._results(span, from_finalize=True)
        else:
            if too_deep:
                what = "JSON nested too deeply"
            elif obj is None:
                what = "invalid JSON"
            elif kind is None or isinstance(kind, str):  # never the repr of a client's nested value
                what = f"unknown message type {kind if kind is None else kind[:64]!r}"
            else:
                what = f"message type is a JSON {type(kind).__name__}, not a string"
            self._send(messages.error_message(f"Could not process text message: {what}.", text[:1024]))

    async def _on_audio(self, data: bytes) -> None:
        if self.cutter is None:
            self.head += data
            found = audio.sniff(bytes(self.head))
            if found.need_more:
                return
            if found.format is None:
                self._close(1008, REASON_DATA0000)
                return
            self.cutter = audio.SpanCutter(found.format, self.cfg.results_interval_s)
            data = bytes(self.head[found.format.header_len :])
            self.head = bytearray()
        for span in self.cutter.feed(data):
            self._results(span)
        if self.fault in MIDSTREAM_FAULTS and not self.fault_fired and self.cutter.audio_s >= self.cfg.fault_after_s:
            await self._fire_fault()

    async def _fire_fault(self) -> None:
        self.fault_fired = True
        log.debug("session %s: firing fault %s", self.request_id, self.fault)
        await self._flush()  # what was due before the fault still goes out
        if self.done or self.closing:
            return
        if self.fault == "drop-no-close":
            self._cut(reset=False)
        elif self.fault == "rst":
            self._cut(reset=True)
        elif self.fault in _MIDSTREAM_CLOSES:
            self._close(*_MIDSTREAM_CLOSES[self.fault])

    def _close_stream(self) -> None:
        if self.fault == "never-close-reply":
            self.wedged = True
            return
        if self.cutter is not None and self.cutter.audio_bytes > 0:
            self._results(self.cutter.flush(), final_flush=True)
        self._send(self._metadata())
        self._close(1000, "")

    async def _stop(self) -> None:
        if self.wedged or self.drain_until is not None:
            self.abort()
            self.done = True
            return
        self.out.clear()
        await self._close_now(1001, REASON_STOP)

    async def _stop_pump(self) -> None:
        if self.pump is not None:
            self.pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.pump

    async def _close_now(self, code: int, reason: str) -> None:
        """Send our close frame and wait (bounded by CLOSE_REPLY_WAIT_S) for the client's."""
        # The pump must not sit in ws.receive(): aiohttp would then treat our own close as
        # "closing", drop TCP at once without waiting for the client's close frame, and the
        # client's late reply would draw an RST that can wipe our close frame from its buffer.
        await self._stop_pump()
        await self.ws.close(code=code, message=reason.encode())
        self.done = True
        if self.ws.exception() is None and self.ws.close_code not in (None, 1006):
            self.mock.stats.close_frames_received += 1  # the client's reply (or its own close)

    # output

    def _results(self, span: audio.Span, *, from_finalize: bool = False, final_flush: bool = False) -> None:
        words = self.words.take(span.start_s, span.duration_s) if span.speech and span.duration_s > 0 else []
        self._send(
            messages.results_message(
                request_id=self.request_id,
                start=span.start_s,
                duration=span.duration_s,
                words=words,
                is_final=True,
                speech_final=bool(words) and (from_finalize or final_flush),
                from_finalize=from_finalize,
            ),
            delay=self.cfg.slow_results_delay_s if self.slow_pending else 0.0,
        )
        self.slow_pending = False

    def _metadata(self) -> messages.JSONDict:
        return messages.metadata_message(
            request_id=self.request_id,
            sha256=self.sha.hexdigest(),
            created=self.created,
            duration=self.cutter.audio_s if self.cutter else 0.0,
            channels=self.cutter.format.channels if self.cutter else 1,
            decoded=self.cutter is not None and self.cutter.audio_bytes > 0,
        )

    def _enqueue(self, item: _Out) -> None:
        if self.out and self.out[-1].due > item.due:  # keep order behind a held-back message
            item = _Out(self.out[-1].due, item.payload, item.code, item.reason)
        self.out.append(item)

    def _send(self, payload: messages.JSONDict, delay: float = 0.0) -> None:
        self._enqueue(_Out(self.loop.time() + delay, payload))

    def _close(self, code: int, reason: str) -> None:
        self.closing = True
        self._enqueue(_Out(self.loop.time(), None, code, reason))

    async def _flush(self) -> None:
        while self.out and self.out[0].due <= self.loop.time():
            item = self.out.popleft()
            if item.payload is None:
                await self._close_now(item.code, item.reason)
                return
            await self.ws.send_str(json.dumps(item.payload))
            if item.payload.get("type") == ServerMessage.RESULTS:
                self.mock.stats.results_sent += 1


# --- lifecycle ---------------------------------------------------------------------------------


def _format_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class MockServer:
    """The running mock. ``async with MockServer(...) as srv:`` starts and stops it; so does
    :func:`start_mock` followed by :meth:`stop`."""

    def __init__(
        self,
        config: MockConfig = MockConfig(),  # noqa: B008 -- frozen, so one shared default is safe
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        reuse_port: bool = False,
    ) -> None:
        self.config = config
        self.reuse_port = reuse_port  # SO_REUSEPORT: several worker processes share one port
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        scheme = "wss" if ssl_context is not None else "ws"
        self.url = f"{scheme}://{_format_host(host)}:{port}{LISTEN_PATH}"
        self.stats = MockStats()
        self._sessions: set[_Session] = set()
        self.pending_upgrades = 0  # upgrades accepted but not yet running as sessions
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self._stop_task: asyncio.Task[None] | None = None

    @property
    def http_url(self) -> str:
        """The same endpoint for the pre-recorded (REST) API: http(s)://host:port/v1/listen."""
        return "http" + self.url[2:]

    @property
    def active_sessions(self) -> int:
        """Streaming sessions currently open."""
        return len(self._sessions)

    async def wait_idle(self) -> None:
        """Wait until every open streaming session has ended (bound it with asyncio.timeout)."""
        while self._sessions:
            await asyncio.gather(*(s.finished.wait() for s in list(self._sessions)))

    async def start(self) -> MockServer:
        if self._runner is not None:
            return self
        runner = web.AppRunner(_make_app(self), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        self._runner = runner
        factory = runner.server
        assert factory is not None

        def protocol_factory() -> asyncio.Protocol:
            self.stats.connections += 1
            return factory()

        try:
            server = await asyncio.get_running_loop().create_server(
                protocol_factory,
                self.host,
                self.port,
                ssl=self.ssl_context,
                reuse_port=self.reuse_port or None,
                backlog=1024,
            )
        except BaseException:
            await runner.cleanup()
            self._runner = None
            raise
        self._server = server
        self.port = int(server.sockets[0].getsockname()[1])
        scheme = "wss" if self.ssl_context is not None else "ws"
        self.url = f"{scheme}://{_format_host(self.host)}:{self.port}{LISTEN_PATH}"
        return self

    async def stop(self) -> None:
        """Stop listening, close every session (1001, then abort), release everything. Idempotent."""
        if self._stop_task is None:
            self._stop_task = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stop_task)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        sessions = list(self._sessions)
        for s in sessions:
            s.request_stop()
        if sessions:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STOP_GRACE_S):
                    await asyncio.gather(*(s.finished.wait() for s in sessions))
        for s in list(self._sessions):
            s.abort()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SHUTDOWN_TIMEOUT_S):
                    await self._server.wait_closed()

    async def __aenter__(self) -> MockServer:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


async def start_mock(
    config: MockConfig = MockConfig(),  # noqa: B008 -- frozen, so one shared default is safe
    host: str = "127.0.0.1",
    port: int = 0,
    ssl_context: ssl.SSLContext | None = None,
) -> MockServer:
    """Start a mock on ``host:port`` (port 0: a free one) and return it, listening."""
    return await MockServer(config, host, port, ssl_context).start()


def serve(config: MockConfig, host: str = "127.0.0.1", port: int = 0, tls: bool = False, workers: int = 1) -> int:
    """Blocking entry point of ``wsdoctor mock``: serve until SIGINT/SIGTERM, then stop; return 0.

    ``workers > 1`` forks that many processes, each with its own event loop and listening socket
    on the same port (SO_REUSEPORT: the kernel spreads connections across them)."""
    ssl_context: ssl.SSLContext | None = None
    ca_path: str | None = None
    if tls:
        from wsdoctor.mock.tls import make_server_tls

        ssl_context, ca_path = make_server_tls(tuple(dict.fromkeys((host, "127.0.0.1", "localhost"))))
    if workers > 1:
        return _serve_workers(config, host, port, ssl_context, ca_path, workers)
    return asyncio.run(_serve(config, host, port, ssl_context, ca_path))


def _worker(config: MockConfig, host: str, port: int, ssl_context: ssl.SSLContext | None, ready: Any) -> None:
    """One forked worker: serve on the shared port until SIGTERM/SIGINT."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        srv = await MockServer(config, host, port, ssl_context, reuse_port=True).start()
        ready.put(os.getpid())
        try:
            await stop.wait()
        finally:
            await srv.stop()

    asyncio.run(main())


def _serve_workers(
    config: MockConfig, host: str, port: int, ssl_context: ssl.SSLContext | None, ca_path: str | None, workers: int
) -> int:
    import multiprocessing
    import queue

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    reserve = socket.socket(family, socket.SOCK_STREAM)  # holds the port until the workers listen on it
    reserve.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        reserve.bind((host, port))
    except OSError as exc:
        reserve.close()
        raise UsageError(f"wsdoctor mock cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    port = int(reserve.getsockname()[1])
    ctx = multiprocessing.get_context("fork")  # the SSL context and config are inherited, not pickled
    ready: Any = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(config, host, port, ssl_context, ready), daemon=True) for _ in range(workers)
    ]
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for p in procs:
            p.start()
        for _ in procs:
            try:
                ready.get(timeout=15)
            except queue.Empty:
                raise UsageError("wsdoctor mock: a worker did not start within 15 s") from None
        reserve.close()
        scheme = "wss" if ssl_context is not None else "ws"
        print(
            f"wsdoctor mock listening on {scheme}://{_format_host(host)}:{port}{LISTEN_PATH} "
            f"(fault: {config.fault or 'none'}, {workers} workers)",
            flush=True,
        )
        if ca_path is not None:
            print(f"CA certificate: {ca_path} (pass --ca-file to wsdoctor run)", flush=True)
        while not stop.wait(0.5):
            if not all(p.is_alive() for p in procs):
                break
    finally:
        reserve.close()
        for p in procs:
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signal.SIGTERM)
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join(5)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


async def _serve(
    config: MockConfig, host: str, port: int, ssl_context: ssl.SSLContext | None, ca_path: str | None
) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        try:
            srv = await start_mock(config, host, port, ssl_context)
        except OSError as exc:
            raise UsageError(f"wsdoctor mock cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        try:
            print(f"wsdoctor mock listening on {srv.url} (fault: {config.fault or 'none'})", flush=True)
            if ca_path is not None:
                print(f"CA certificate: {ca_path} (pass --ca-file to wsdoctor run)", flush=True)
            await stop.wait()
        finally:
            await srv.stop()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    return 0
