"""A recording WebSocket client: every byte it sees becomes a timestamped fact.

Theory of operation. One :class:`WsProbe` is one connection. ``connect()`` walks the stages of
:mod:`wsdoctor.probes.lifecycle`: resolve the host (``--resolve`` first, then the system resolver,
as the user's app would), open TCP with a bounded connect timeout, start TLS (wss) with ALPN
``http/1.1``, send the HTTP Upgrade and read the answer with h11 under a header-size bound. Any
answer is kept -- status, headers, the first bytes of the body, and whether
``Sec-WebSocket-Accept`` matched our nonce -- because *who* answered is half the diagnosis
(Deepgram always sets ``dg-request-id``; a captive portal does not).

After a 101 the frames are handled by wsproto's sans-I/O ``Connection``; this module only moves
bytes and stamps events. The session tells apart what aiohttp or websockets would lump together as
1006: a close frame received (code, reason), a TCP EOF without one, a reset (RST), and a protocol
violation by the peer (wsproto's ``ParseFailed`` leaves the state unchanged, a real close does not).
We answer pings and close frames like a well-behaved client, so the server is judged, not us.

Nothing here judges: the checks do, on the observations. Every read is bounded in size and time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import ssl
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import h11
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage

from wsdoctor import __version__, deepgram
from wsdoctor.check import Context
from wsdoctor.model import EndKind, FrameKind, JSONValue, Outcome
from wsdoctor.probes.http1 import READ_SIZE, PeerClosed, client, next_event
from wsdoctor.probes.lifecycle import Lifecycle, Stage
from wsdoctor.probes.transport import classify_oserror, describe_oserror, error_text
from wsdoctor.record import Record

if TYPE_CHECKING:
    from wsdoctor.probes.connect import Route

__all__ = [
    "Direction",
    "HttpAnswer",
    "UpgradeObservation",
    "WireEvent",
    "WsProbe",
    "handshake_violations",
]

MAX_BODY_EXCERPT = 2048
MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # a Deepgram message is a few KiB; anything near this is hostile
#: Fragments of one message: Deepgram sends each message whole, so thousands of (possibly empty)
#: continuation frames are a peer looping, not a long message -- bytes alone would never stop it.
MAX_FRAGMENTS = 1024
#: Incoming frames (data fragments and control frames alike) and bytes per second, over a sliding
#: second: Deepgram sends a few messages a second (interim Results ~10/s at most), so this is a flood
#: at 100x that; it ends the connection as a finding ("flood") instead of eating the CPU and the run.
FLOOD_FRAMES_PER_S = 1000
FLOOD_BYTES_PER_S = 16 * 1024 * 1024
#: Wire events kept per connection (the report's evidence); beyond it they are counted, not kept.
#: The terminal event and our own close are always kept: the analyzers judge by them.
MAX_EVENTS_KEPT = 1000
#: Give the event loop a turn after this many frames: buffered data never suspends a read, and a
#: peer that keeps the buffer full must not starve deadlines, signals and the other checks.
YIELD_EVERY_FRAMES = 64
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


#: Which way a wire event went: ``in`` from the peer, ``out`` from us.
Direction = Literal["in", "out"]


@dataclass(frozen=True, slots=True)
class HttpAnswer(Record):
    """What answered our Upgrade request."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body_excerpt: str = ""

    def header(self, name: str) -> str | None:
        lname = name.lower()
        return next((v for k, v in self.headers if k.lower() == lname), None)


@dataclass(frozen=True, slots=True)
class UpgradeObservation(Record):
    """Facts of one connection attempt up to (and including) the answer to the Upgrade."""

    _SPARSE = frozenset({"proxy", "target", "proxy_credentials"})  # written only when set
    _DERIVED = ("furthest",)  # written for readers, recomputed

    url: str
    authenticated: bool  # did we send credentials
    address: str | None  # "ip:port" actually connected to
    marks: tuple[tuple[str, float], ...]  # (stage, seconds since start)
    outcome: Outcome
    error: str | None = None  # one-line detail of a failure
    answer: HttpAnswer | None = None
    accept_ok: bool | None = None  # Sec-WebSocket-Accept matched our key (101 only)
    raw_excerpt: str | None = None  # first bytes, when the answer was not parseable HTTP
    violations: tuple[str, ...] = ()  # what made a 101 invalid (outcome "bad-101")
    #: The route, when it went through a proxy: the proxy (redacted display URL), the CONNECT
    #: target ("host:port") and whether the proxy URL carried credentials.
    proxy: str | None = None
    target: str | None = None
    proxy_credentials: bool = False

    @property
    def furthest(self) -> str | None:
        stages = [s for s, _ in self.marks if s != Stage.ABORTED.value]
        return stages[-1] if stages else None


@dataclass(frozen=True, slots=True)
class WireEvent(Record):
    """One thing that crossed the wire after the upgrade (or ended it)."""

    _SPARSE = frozenset({"size", "code", "reason", "msg_type", "detail"})  # written only when set

    t_s: float  # seconds since the connection attempt started
    direction: Direction
    kind: FrameKind | EndKind  # a frame that kept the connection open, or the way it ended
    size: int = 0
    code: int | None = None
    reason: str | None = None
    msg_type: str | None = None  # the "type" of a JSON text message (Results, Metadata, ...)
    detail: dict[str, JSONValue] = field(default_factory=dict)  # a few message fields, bounded

    @property
    def end_kind(self) -> EndKind | None:
        """How the connection ended, if this event ended it (or is a close frame)."""
        return self.kind if isinstance(self.kind, EndKind) else None


def _text(value: Any, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _message_detail(obj: Any) -> tuple[str | None, dict[str, JSONValue]]:
    """The fields of a Deepgram message worth keeping as evidence (bounded), and what is wrong with
    its shape (``problems``, from :func:`wsdoctor.deepgram.message_problems`). Any JSON value is
    accepted here -- a list, a string, a Results whose alternatives are lists -- and read defensively:
    the peer decides what it sends, and a wrong shape is a fact for the analyzers, never a crash."""
    if not isinstance(obj, dict):
        return None, {"problems": [f"not a JSON object but {type(obj).__name__}"]}
    raw_type = obj.get("type")
    msg_type = str(raw_type)[:60] if raw_type is not None else None
    detail: dict[str, JSONValue] = {}
    if msg_type == deepgram.ServerMessage.RESULTS:
        channel = obj.get("channel")
        alternatives = channel.get("alternatives") if isinstance(channel, dict) else None
        first = alternatives[0] if isinstance(alternatives, list) and alternatives else None
        detail["transcript"] = _text(first.get("transcript"), 300) if isinstance(first, dict) else None
        for key in ("is_final", "speech_final", "from_finalize", "start", "duration"):
            value = obj.get(key)
            if isinstance(value, bool | int | float):
                detail[key] = value
        meta = obj.get("metadata")
        if isinstance(meta, dict) and isinstance(meta.get("request_id"), str):
            detail["request_id"] = meta["request_id"][:100]
    elif msg_type == deepgram.ServerMessage.METADATA:
        for key in ("request_id", "duration", "channels", "created"):
            value = obj.get(key)
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                detail[key] = value if not isinstance(value, str) else value[:100]
    elif msg_type == deepgram.FLUX_TURN_INFO:
        for key in ("event", "transcript", "turn_index", "sequence_id"):
            value = obj.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool):
                detail[key] = value if not isinstance(value, str) else value[:300]
    elif msg_type is not None:
        for key in ("description", "message", "variant", "err_code", "err_msg", "code"):
            value = obj.get(key)
            if isinstance(value, str):
                detail[key] = value[:300]
    known = {m.value for m in deepgram.ServerMessage}
    flux_error = msg_type == deepgram.ServerMessage.ERROR and "code" in obj  # Flux's Error: code, description
    if msg_type in known and not flux_error:  # unknown types may be new Deepgram messages: not judged here
        problems = deepgram.message_problems(obj)
        if problems:
            detail["problems"] = [p[:200] for p in problems[:5]]
    return msg_type, detail


class WsProbe:
    """One recorded WebSocket connection. Use ``async with WsProbe(ctx) as probe``."""

    def __init__(self, ctx: Context, *, credentials: bool = True) -> None:
        self.ctx = ctx
        self.credentials = credentials and ctx.api_key is not None
        self.lifecycle = Lifecycle(ctx.clock)
        self.events: list[WireEvent] = []
        self.audio_bytes_sent = 0
        self.audio_first_t: float | None = None
        self.audio_last_t: float | None = None
        self.close_sent_t: float | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._conn: Connection | None = None
        self._inbox: deque[WireEvent] = deque()
        self._partial: list[str | bytes] = []
        self._partial_size = 0
        self._fragments = 0
        self.events_dropped = 0  # events not kept beyond MAX_EVENTS_KEPT (counted)
        self._frames_window: deque[tuple[float, int]] = deque()  # (time, bytes) of the last second
        self._window_bytes = 0
        self._since_yield = 0
        self._terminal: WireEvent | None = None
        self._primed = False  # frames that arrived together with the 101 have been processed
        self._route: dict[str, Any] = {}  # the proxy route, once known (UpgradeObservation's proxy fields)

    async def __aenter__(self) -> WsProbe:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.abort()

    # -- connecting --------------------------------------------------------------------------
    async def connect(self) -> UpgradeObservation:
        """Open TCP (+TLS), send the Upgrade, read the answer. Never raises for network faults.

        The connection is the probes' one (:func:`wsdoctor.probes.connect.open_connection`): the
        app's route, directly or through a proxy's ``CONNECT`` tunnel, each step bounded; its trace
        marks this connection's lifecycle stages (resolving, connecting, tunneling, tls). A proxy
        that refuses the tunnel ends the attempt with outcome ``proxy-error`` and its answer kept
        in ``answer``."""
        from wsdoctor.probes.connect import ConnectFailed, open_connection

        lc = self.lifecycle
        try:
            conn = await open_connection(self.ctx, trace=self._trace)
        except ConnectFailed as exc:
            lc.abort()
            self._set_route(exc.route)
            tunnel = exc.tunnel
            answer = None
            if tunnel is not None and tunnel.status is not None and exc.outcome is Outcome.PROXY_ERROR:
                answer = HttpAnswer(tunnel.status, tunnel.reason or "", tunnel.headers, tunnel.body_excerpt)
            error = exc.error
            if isinstance(exc.cause, ssl.SSLCertVerificationError):
                error = exc.cause.verify_message or error  # OpenSSL's words, without the prefix
            return self._observation(exc.address, exc.outcome, error=error[:300], answer=answer)
        self._set_route(conn.route)
        self._reader, self._writer = conn.reader, conn.writer
        lc.advance(Stage.UPGRADING)
        return await self._upgrade(conn.address)

    #: The factory's steps as this connection's lifecycle stages.
    _STAGE_OF_STEP: ClassVar[dict[str, Stage]] = {
        "resolve.started": Stage.RESOLVING,
        "connect_tcp.started": Stage.CONNECTING,
        "proxy_connect.started": Stage.TUNNELING,
        "start_tls.started": Stage.TLS,
    }

    def _trace(self, name: str, _info: Mapping[str, object]) -> None:
        stage = self._STAGE_OF_STEP.get(name)
        if stage is not None:
            self.lifecycle.advance(stage)

    def _set_route(self, route: Route) -> None:
        if route.proxy is not None:
            self._route = {"proxy": route.proxy, "target": route.target, "proxy_credentials": route.proxy_credentials}

    def _observation(self, address: str | None, outcome: Outcome, **kw: Any) -> UpgradeObservation:
        return UpgradeObservation(
            url=self.ctx.target.url,
            authenticated=self.credentials,
            address=address,
            marks=tuple((s.value, t) for s, t in self.lifecycle.marks),
            outcome=outcome,
            **self._route,
            **kw,
        )

    def _request_headers(self, nonce: str) -> list[tuple[str, str]]:
        target = self.ctx.target
        headers = [
            ("Host", target.host_header),
            ("User-Agent", f"wsdoctor/{__version__}"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", nonce),
            ("Sec-WebSocket-Version", "13"),
        ]
        if self.credentials and self.ctx.api_key is not None:
            key = self.ctx.api_key.reveal()
            # a JWT is a temporary token, sent as Bearer; API keys as Token
            scheme = deepgram.AUTH_SCHEME_TOKEN if deepgram.key_shape(key).jwt else deepgram.AUTH_SCHEME_KEY
            headers.append(("Authorization", f"{scheme} {key}"))
        return headers

    async def _upgrade(self, address: str) -> UpgradeObservation:
        assert self._reader is not None and self._writer is not None
        reader, writer = self._reader, self._writer
        lc, timeout = self.lifecycle, self.ctx.timeout(self.ctx.options.connect_timeout_s)
        nonce = base64.b64encode(os.urandom(16)).decode()
        h = client()
        request = h11.Request(method="GET", target=self.ctx.target.resource, headers=self._request_headers(nonce))
        writer.write(h.send(request))
        await writer.drain()
        seen = bytearray()
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            while True:
                event = await next_event(h, reader, deadline, what="HTTP answer to the Upgrade", seen=seen)
                if isinstance(event, h11.InformationalResponse) and event.status_code == 101:
                    answer = HttpAnswer(101, event.reason.decode("latin-1"), _headers(event.headers))
                    expected = base64.b64encode(hashlib.sha1(nonce.encode() + _WS_GUID).digest()).decode()  # noqa: S324 - RFC 6455
                    accept_ok = answer.header("sec-websocket-accept") == expected
                    violations = handshake_violations(answer, accept_ok=accept_ok, offered_protocols=())
                    if violations:
                        lc.advance(Stage.CLOSED)
                        await self.abort()
                        return self._observation(
                            address, Outcome.BAD_101, answer=answer, accept_ok=accept_ok, violations=tuple(violations)
                        )
                    self._conn = Connection(ConnectionType.CLIENT, trailing_data=h.trailing_data[0])
                    lc.advance(Stage.OPEN)
                    return self._observation(address, Outcome.UPGRADED, answer=answer, accept_ok=True)
                if isinstance(event, h11.Response):
                    body = await self._read_body(h, deadline)
                    answer = HttpAnswer(
                        event.status_code, event.reason.decode("latin-1"), _headers(event.headers), body
                    )
                    lc.advance(Stage.CLOSED)
                    await self.abort()
                    return self._observation(address, Outcome.HTTP_RESPONSE, answer=answer)
                if isinstance(event, h11.ConnectionClosed):
                    lc.abort()
                    return self._observation(
                        address, Outcome.EOF, error="connection closed before a complete HTTP answer"
                    )
                # an InformationalResponse other than 101 (e.g. 100): keep reading
        except PeerClosed:
            lc.abort()
            return self._observation(address, Outcome.EOF, error="connection closed before any HTTP answer")
        except h11.RemoteProtocolError as exc:
            lc.abort()
            await self.abort()
            return self._observation(
                address,
                Outcome.PROTOCOL_ERROR,
                error=f"not a valid HTTP answer: {exc}"[:300],
                raw_excerpt=seen.decode("latin-1"),
            )
        except (OSError, TimeoutError) as exc:
            lc.abort()
            await self.abort()
            return self._observation(
                address,
                classify_oserror(exc),
                error=error_text(exc, classify_oserror(exc)),
                raw_excerpt=seen.decode("latin-1") or None,
            )

    async def _read_body(self, h: h11.Connection, deadline: float) -> str:
        """Up to MAX_BODY_EXCERPT bytes of a rejection body, within 2 s and never past the deadline."""
        assert self._reader is not None
        body_deadline = min(deadline, asyncio.get_running_loop().time() + 2.0)
        body = b""
        while len(body) < MAX_BODY_EXCERPT:
            try:
                event = await next_event(h, self._reader, body_deadline, what="body")
            except (OSError, TimeoutError, h11.RemoteProtocolError):
                break  # the status and headers are the evidence; a body cut short is still kept
            if not isinstance(event, h11.Data):
                break
            body += bytes(event.data)
        return body[:MAX_BODY_EXCERPT].decode("utf-8", "replace")

    # -- the open connection -----------------------------------------------------------------
    def now(self) -> float:
        return round(self.lifecycle.elapsed(), 6)

    @property
    def is_open(self) -> bool:
        """True while we may still send data frames (the close handshake has not begun)."""
        return (
            self._terminal is None
            and self._conn is not None
            and self._conn.state is ConnectionState.OPEN
            and self._writer is not None
        )

    def _record(self, event: WireEvent) -> WireEvent:
        if len(self.events) < MAX_EVENTS_KEPT or isinstance(event.kind, EndKind):
            self.events.append(event)
        else:
            self.events_dropped += 1
        return event

    def _flooding(self, t: float, size: int) -> str | None:
        """Count one incoming frame; the reason if the last second holds a flood, else ``None``."""
        window = self._frames_window
        window.append((t, size))
        self._window_bytes += size
        while window and window[0][0] < t - 1.0:
            self._window_bytes -= window.popleft()[1]
        if len(window) > FLOOD_FRAMES_PER_S:
            return f"{len(window)} frames within one second (bound {FLOOD_FRAMES_PER_S}/s)"
        if self._window_bytes > FLOOD_BYTES_PER_S:
            return f"{self._window_bytes} bytes within one second (bound {FLOOD_BYTES_PER_S} bytes/s)"
        return None

    async def _write(self, data: bytes) -> bool:
        if self._writer is None or self._writer.is_closing():
            return False
        try:
            self._writer.write(data)
            await asyncio.wait_for(self._writer.drain(), self.ctx.timeout(self.ctx.options.connect_timeout_s))
        except (OSError, TimeoutError) as exc:
            self._end(
                WireEvent(
                    self.now(),
                    "in",
                    EndKind.RESET if isinstance(exc, ConnectionResetError) else EndKind.ERROR,
                    reason=f"write failed: {describe_oserror(exc)}",
                )
            )
            return False
        return True

    async def send_text(self, text: str, *, msg_type: str | None = None) -> bool:
        if not self.is_open:
            return False
        assert self._conn is not None
        self._record(WireEvent(self.now(), "out", FrameKind.TEXT, size=len(text), msg_type=msg_type))
        return await self._write(self._conn.send(TextMessage(data=text)))

    async def send_json(self, obj: Mapping[str, JSONValue]) -> bool:
        return await self.send_text(json.dumps(obj), msg_type=str(obj.get("type")))

    async def send_audio(self, chunk: bytes) -> bool:
        """Binary audio; counted, not logged one event per chunk (a soak would flood the log)."""
        if not self.is_open:
            return False
        assert self._conn is not None
        t = self.now()
        self.audio_first_t = t if self.audio_first_t is None else self.audio_first_t
        self.audio_last_t = t
        self.audio_bytes_sent += len(chunk)
        return await self._write(self._conn.send(BytesMessage(data=chunk)))

    async def send_close(self, code: int = 1000, reason: str = "") -> bool:
        if not self.is_open:
            return False
        assert self._conn is not None
        if self._conn.state is not ConnectionState.OPEN:
            return False
        self.close_sent_t = self.now()
        self._record(WireEvent(self.close_sent_t, "out", EndKind.CLOSE, code=code, reason=reason or None))
        self.lifecycle.advance(Stage.CLOSING_LOCAL)
        return await self._write(self._conn.send(CloseConnection(code=code, reason=reason)))

    def _end(self, event: WireEvent) -> None:
        if self._terminal is None:
            self._terminal = self._record(event)
            if event.kind is not EndKind.CLOSE:
                self.lifecycle.abort()
            self._inbox.append(event)

    async def receive(self, timeout: float) -> WireEvent | None:
        """The next incoming event, or ``None`` if nothing arrived within ``timeout`` seconds.

        After the connection ended, returns the terminal event again (eof, reset, close, ...)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        if not self._primed and self._conn is not None:
            # Bytes that came in the same read as the 101 are h11's trailing data, already inside
            # wsproto: judge them now rather than when (if ever) more bytes arrive.
            self._primed = True
            await self._drain_events()
        while not self._inbox:
            if self._terminal is not None:
                return self._terminal
            if self._reader is None or self._conn is None:
                return None
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                data = await asyncio.wait_for(self._reader.read(READ_SIZE), remaining)
            except TimeoutError:
                return None
            except ConnectionResetError:
                self._end(WireEvent(self.now(), "in", EndKind.RESET))
                break
            except OSError as exc:
                self._end(WireEvent(self.now(), "in", EndKind.ERROR, reason=describe_oserror(exc)))
                break
            if not data:
                self._end(WireEvent(self.now(), "in", EndKind.EOF))
                break
            self._conn.receive_data(data)
            await self._drain_events()
        return self._inbox.popleft() if self._inbox else self._terminal

    async def _drain_events(self) -> None:
        """Turn what wsproto parsed into recorded events, in any connection state.

        Whatever the peer sends and whenever it sends it -- data or pings after our close frame,
        pongs nobody asked for, a close in the middle of a fragmented message, endless empty
        continuation frames, a flood -- becomes a fact; the only things we send back are the pong
        to a ping while the connection is OPEN and the reply to the peer's close (RFC 6455 5.5.2,
        5.5.1), so no peer can make us violate the protocol ourselves."""
        assert self._conn is not None
        conn = self._conn
        for ev in conn.events():
            if self._terminal is not None:
                return  # nothing that follows the end of a connection is a fact about it
            t = self.now()
            size = len(ev.data) if isinstance(ev, TextMessage | BytesMessage) else 0
            if isinstance(ev, Ping | Pong):
                size = len(ev.payload)
            flood = self._flooding(t, size)
            if flood is not None:
                self._end(WireEvent(t, "in", EndKind.FLOOD, size=self._window_bytes, reason=flood))
                await self.abort()
                return
            self._since_yield += 1
            if self._since_yield >= YIELD_EVERY_FRAMES:
                self._since_yield = 0
                await asyncio.sleep(0)  # let deadlines, signals and the other checks run
            if isinstance(ev, TextMessage | BytesMessage):
                self._partial.append(ev.data if isinstance(ev.data, str) else bytes(ev.data))
                self._partial_size += len(ev.data)
                self._fragments += 1
                if self._partial_size > MAX_MESSAGE_BYTES or self._fragments > MAX_FRAGMENTS:
                    what = (
                        f"message larger than {MAX_MESSAGE_BYTES} bytes"
                        if self._partial_size > MAX_MESSAGE_BYTES
                        else f"message in more than {MAX_FRAGMENTS} fragments"
                    )
                    self._end(WireEvent(t, "in", EndKind.OVERSIZE, size=self._partial_size, reason=what))
                    await self.abort()
                    return
                if not ev.message_finished:
                    continue
                parts, size = self._partial, self._partial_size
                self._partial, self._partial_size, self._fragments = [], 0, 0
                if isinstance(ev, TextMessage):
                    text = "".join(str(p) for p in parts)
                    try:
                        msg_type, detail = _message_detail(json.loads(text))
                    except (ValueError, RecursionError) as exc:  # not JSON, or nested past the parser
                        why = "nested too deep to parse" if isinstance(exc, RecursionError) else "not valid JSON"
                        msg_type, detail = None, {"excerpt": text[:200], "problems": [why]}
                    self._inbox.append(
                        self._record(WireEvent(t, "in", FrameKind.TEXT, size=size, msg_type=msg_type, detail=detail))
                    )
                else:
                    self._inbox.append(self._record(WireEvent(t, "in", FrameKind.BINARY, size=size)))
            elif isinstance(ev, CloseConnection):
                if conn.state not in (ConnectionState.REMOTE_CLOSING, ConnectionState.CLOSED):
                    # wsproto reports the *peer's* protocol violation as a CloseConnection without
                    # a state change: it is not a close frame the server sent.
                    self._end(WireEvent(t, "in", EndKind.PROTOCOL_ERROR, code=ev.code, reason=(ev.reason or "")[:300]))
                    await self.abort()
                    return
                close = WireEvent(t, "in", EndKind.CLOSE, code=ev.code, reason=(ev.reason or "")[:300] or None)
                reply = b""
                if conn.state is ConnectionState.REMOTE_CLOSING:
                    self.lifecycle.advance(Stage.CLOSING_REMOTE)
                    # Reply like a good client; the handshake is then complete from our side.
                    reply = conn.send(ev.response())
                self.lifecycle.advance(Stage.CLOSED)
                # The close is the terminal fact *before* we write (and yield): nothing may send
                # after it, and a failing reply must not overwrite what the server did.
                self._end(close)
                if reply:
                    self._record(WireEvent(t, "out", EndKind.CLOSE, code=ev.code))
                    await self._write(reply)
                return
            elif isinstance(ev, Ping):
                self._inbox.append(self._record(WireEvent(t, "in", FrameKind.PING, size=len(ev.payload))))
                if conn.state is ConnectionState.OPEN:  # after our close frame a pong may not be sent
                    await self._write(conn.send(ev.response()))
            elif isinstance(ev, Pong):
                self._inbox.append(self._record(WireEvent(t, "in", FrameKind.PONG, size=len(ev.payload))))

    async def send_ping(self, payload: bytes = b"wsdoctor") -> bool:
        if not self.is_open:
            return False
        assert self._conn is not None
        self._record(WireEvent(self.now(), "out", FrameKind.PING, size=len(payload)))
        return await self._write(self._conn.send(Ping(payload=payload)))

    async def abort(self) -> None:
        """Drop the transport without ceremony; bounded, idempotent."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        with contextlib.suppress(Exception):
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), 1.0)

    def terminal(self) -> WireEvent | None:
        return self._terminal


def _tokens(value: str | None) -> list[str]:
    return [t.strip().lower() for t in (value or "").split(",") if t.strip()]


def handshake_violations(answer: HttpAnswer, *, accept_ok: bool, offered_protocols: tuple[str, ...]) -> list[str]:
    """What is wrong with a 101, checked as strictly as RFC 6455 clients check it (4.1, 4.2.2): the
    accept key, ``Upgrade: websocket``, ``Connection: Upgrade``, and extensions and subprotocols only
    as offered. Python websockets, browsers and Node ws refuse a 101 with any of these, so wsdoctor
    does too and names each one. Every violation is a short sentence; empty: a valid handshake."""
    out: list[str] = []
    if not accept_ok:
        out.append("Sec-WebSocket-Accept does not match our key")
    if (answer.header("upgrade") or "").strip().lower() != "websocket":
        out.append("the Upgrade header is not 'websocket'")
    if "upgrade" not in _tokens(answer.header("connection")):
        out.append("the Connection header does not carry 'Upgrade'")
    extensions = _tokens(answer.header("sec-websocket-extensions"))
    if extensions:  # we offer none
        out.append(f"the server selected extensions we never offered ({', '.join(extensions)[:100]})")
    protocol = (answer.header("sec-websocket-protocol") or "").strip()
    if protocol and protocol.lower() not in {p.lower() for p in offered_protocols}:
        offered = ", ".join(offered_protocols) or "none"
        out.append(f"the server selected the subprotocol {protocol[:60]!r}, which we never offered ({offered})")
    return out


def _headers(raw: list[tuple[bytes, bytes]] | Any) -> tuple[tuple[str, str], ...]:
    out = []
    for name, value in list(raw)[:200]:
        out.append((bytes(name).decode("latin-1")[:200], bytes(value).decode("latin-1")[:1000]))
    return tuple(out)
