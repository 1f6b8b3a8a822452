"""The recording relay behind ``wsdoctor watch``: the app's connections, forwarded byte for byte.

Theory of operation. The app points its Deepgram base URL at ``ws://127.0.0.1:PORT``. For each
connection the relay

1. reads the app's HTTP/1.1 request head with h11 (bounded: 64 KiB, ``handshake_timeout_s``);
2. opens the upstream with :func:`wsdoctor.probes.connect.open_connection` -- the same route, proxy,
   ``--resolve``, ``--dns-server``, CA and deadlines as ``wsdoctor run`` -- and forwards the request
   with its path, query and headers as the app wrote them (names' case and order kept), ``Host`` set
   to the upstream's, and ``Sec-WebSocket-Extensions`` removed: a compressed stream could not be
   read, and Deepgram negotiates no extension anyway (the removal is recorded). A plain HTTP request
   (a REST call) is forwarded the same way with ``Connection: close``;
3. forwards the upstream's answer bytes untouched (the 101 and its ``Sec-WebSocket-Accept`` for the
   app's own key, or a rejection and its body);
4. after a 101, pumps bytes both ways untouched, each direction through a passive
   :class:`~wsdoctor.probes.wireframes.FrameReader` *after* the bytes are written (parsing never
   delays a frame); a FIN is passed on as a FIN (half-close) where the transport can, a reset as a
   reset (SO_LINGER 0); a side that stays open :data:`HALF_CLOSE_LINGER_S` after the other ended is
   closed by the relay (``relay-closed``).

Everything it sees goes to a :class:`~wsdoctor.probes.watch.ConnectionRecorder`; the finished
:class:`~wsdoctor.probes.watch.WatchedConnection` records are ``relay.connections``. Credentials
the app sends (its ``Authorization`` value, a token subprotocol, credential query parameters) are
forwarded and kept only in ``relay.secrets`` -- in memory, for the report's redaction -- never in a
record. Nothing the app or the upstream sends can raise out of a connection's task: a failure ends
that connection only, and is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import h11

from wsdoctor.probes.connect import ConnectFailed, close_quietly, open_connection
from wsdoctor.probes.http1 import MAX_HEAD_BYTES, READ_SIZE, PeerClosed, next_event
from wsdoctor.probes.watch import ConnectionRecorder, Handshake, Side, UpstreamAnswer, WatchedConnection
from wsdoctor.probes.wireframes import FrameReader

if TYPE_CHECKING:
    from wsdoctor.check import Context
    from wsdoctor.probes.connect import Route

__all__ = ["HALF_CLOSE_LINGER_S", "Relay", "RelayConfig"]

HALF_CLOSE_LINGER_S = 10.0
WRITE_BUFFER_HIGH = 1024 * 1024  # wait for the peer to drain beyond this: memory stays bounded
BODY_EXCERPT = 2048
MAX_CONNECTIONS = 1024  # open at once; more are answered 503 and counted
KEEP_EVENTS_FOR = 300  # connections whose frame events are kept; older ones keep their counters
MAX_RECORDS = 5000  # connection records kept in all (a watch left running for days); the oldest go first
MAX_SECRETS = 256


@dataclass(frozen=True, slots=True)
class RelayConfig:
    listen_host: str
    listen_port: int
    ctx: Context  # the upstream (ctx.target: scheme, host, port) and the run's options
    handshake_timeout_s: float = 10.0


def _authority(scheme: str, host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port == {"ws": 80, "wss": 443}.get(scheme) else f"{shown}:{port}"


def _masked_query(target: str) -> tuple[str, dict[str, str], tuple[str, ...], list[str]]:
    """(path, query with credential values masked, credential names, credential values)."""
    from wsdoctor.redact import MASK, is_secret_name

    path, _, qs = target.partition("?")
    query: dict[str, str] = {}
    names: list[str] = []
    values: list[str] = []
    for name, value in urllib.parse.parse_qsl(qs, keep_blank_values=True)[:100]:
        if is_secret_name(name, in_url=True):
            names.append(name[:60])
            if value:
                values.append(value)
            query[name[:60]] = MASK
        else:
            query[name[:60]] = value[:200]
    return path[:500] or "/", query, tuple(names), values


def _auth_scheme(value: str) -> tuple[str, str]:
    scheme, _, credential = value.strip().partition(" ")
    known = {"token": "token", "bearer": "bearer", "basic": "basic"}.get(scheme.lower(), "other")
    return known, credential.strip() or scheme


def _abort(writer: asyncio.StreamWriter, *, reset: bool) -> None:
    """Close now; ``reset``: with a TCP RST (SO_LINGER 0), as the other side did."""
    sock = writer.get_extra_info("socket")
    if reset and sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class Relay:
    """Listens, forwards and records (module doc). ``on_connection`` is told of each finished record."""

    def __init__(
        self,
        config: RelayConfig,
        *,
        on_connection: Callable[[WatchedConnection], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.on_connection = on_connection
        self.clock = clock
        self.t0 = clock()
        self.connections: list[WatchedConnection] = []
        self.secrets: set[str] = set()
        self.refused = 0  # connections over MAX_CONNECTIONS
        self.records_dropped = 0  # records over MAX_RECORDS (the oldest)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._count = 0
        #: plain HTTP requests in flight: their answer's head as read so far, and when it was sent
        self._passive: dict[int, tuple[bytearray, float]] = {}
        target = config.ctx.target
        self.upstream_url = f"{target.scheme}://{_authority(target.scheme, target.host, target.port)}"

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def start(self) -> tuple[str, int]:
        self.t0 = self.clock()
        self._server = await asyncio.start_server(
            self._accept, self.config.listen_host, self.config.listen_port, limit=READ_SIZE, backlog=1024
        )
        return self.address

    async def stop(self, grace_s: float = 0.0) -> None:
        """Stop listening; give open connections ``grace_s`` to end, then cut them (they are recorded
        as they stood)."""
        if self._server is not None:
            self._server.close()
        if self._tasks and grace_s > 0:
            await asyncio.wait(set(self._tasks), timeout=grace_s)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=2.0)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    @property
    def open_connections(self) -> int:
        return len(self._tasks)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._tasks) >= MAX_CONNECTIONS:
            self.refused += 1
            writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            writer.close()
            return
        self._count += 1
        task = asyncio.ensure_future(self._serve(self._count, reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _finish(self, rec: ConnectionRecorder) -> None:
        obs = rec.observation(self.clock())
        self.connections.append(obs)
        if len(self.connections) > MAX_RECORDS:
            del self.connections[0]
            self.records_dropped += 1
        if len(self.connections) > KEEP_EVENTS_FOR:
            old = self.connections[-KEEP_EVENTS_FOR - 1]
            if old.events:
                self.connections[-KEEP_EVENTS_FOR - 1] = replace(
                    old, events=(), events_dropped=old.events_dropped + len(old.events)
                )
        if self.on_connection is not None:
            with contextlib.suppress(Exception):
                self.on_connection(obs)

    def _secret(self, value: str) -> None:
        if value and len(self.secrets) < MAX_SECRETS:
            self.secrets.add(value)

    async def _serve(self, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        client = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "?"
        t0 = self.clock()
        rec = ConnectionRecorder(index, t0, t0 - self.t0, client, self.upstream_url)
        upstream: asyncio.StreamWriter | None = None
        try:
            upstream = await self._relay(rec, reader, writer)
        except asyncio.CancelledError:
            pass
        except Exception as exc:
            # A bug of ours met on this connection: it ends this connection only (recorded, and
            # reported as an error result), never the relay or the other connections.
            rec.relay_error = f"{type(exc).__name__}: {str(exc)[:200]}"
        finally:
            for w in (writer, upstream):
                if w is not None and not w.transport.is_closing():
                    w.transport.abort()
            self._finish(rec)

    # --- the handshake ----------------------------------------------------------------------------

    async def _read_request(
        self, rec: ConnectionRecorder, reader: asyncio.StreamReader
    ) -> tuple[h11.Request, list[tuple[bytes, bytes]], bytes] | None:
        h = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        deadline = asyncio.get_running_loop().time() + self.config.handshake_timeout_s
        try:
            event = await next_event(h, reader, deadline, what="request")
        except TimeoutError:
            rec.request_error = f"no complete request within {self.config.handshake_timeout_s:g} s"
            return None
        except h11.RemoteProtocolError as exc:
            rec.request_error = f"not an HTTP/1.1 request: {str(exc)[:200]}"
            return None
        except OSError as exc:
            rec.request_error = f"the app's connection failed before its request: {exc.strerror or exc}"
            return None
        if not isinstance(event, h11.Request):
            closed = isinstance(event, h11.ConnectionClosed)
            rec.request_error = (
                "the app closed the connection before a complete request" if closed else "not an HTTP/1.1 request"
            )
            return None
        raw = list(event.headers.raw_items())
        # Bytes the app sent after the head (a body's start, or frames sent before the 101).
        return event, raw, _buffered(h)

    def _handshake(self, request: h11.Request, raw: list[tuple[bytes, bytes]]) -> Handshake:
        target = request.target.decode("latin-1")
        path, query, secret_names, secret_values = _masked_query(target)
        for v in secret_values:
            self._secret(v)
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in raw}
        auth = "query" if secret_names else "none"
        if "authorization" in headers:
            auth, credential = _auth_scheme(headers["authorization"])
            self._secret(credential)
        subprotocols = tuple(p.strip() for p in headers.get("sec-websocket-protocol", "").split(",") if p.strip())
        shown: list[str] = []
        for i, proto in enumerate(subprotocols[:10]):
            if i > 0 and subprotocols[i - 1].lower() in ("token", "bearer"):
                self._secret(proto)
                shown.append("***")
                if auth == "none":
                    auth = "subprotocol"
            else:
                shown.append(proto[:40])
        return Handshake(
            method=request.method.decode("latin-1"),
            path=path,
            query=query,
            user_agent=headers["user-agent"][:200] if "user-agent" in headers else None,
            presented_with=auth,  # type: ignore[arg-type]
            exposed_params=secret_names,
            websocket=headers.get("upgrade", "").lower() == "websocket",
            extensions_removed=headers.get("sec-websocket-extensions", "")[:200] or None,
            subprotocols=tuple(shown),
        )

    def _forwarded_head(
        self, request: h11.Request, raw: list[tuple[bytes, bytes]], websocket: bool, route: Route
    ) -> bytes:
        target = self.config.ctx.target
        authority = _authority(target.scheme, target.host, target.port).encode()
        request_target = request.target
        lines = []
        absolute = route.absolute_form
        if absolute:  # plain ws:// through an HTTP proxy: the request goes to the proxy in absolute form
            request_target = b"http://" + authority + request.target
        lines.append(request.method + b" " + request_target + b" HTTP/1.1")
        for name, value in raw:
            lower = name.lower()
            if lower == b"host":
                value = authority
            elif lower == b"sec-websocket-extensions" or (not websocket and lower == b"connection"):
                continue
            elif lower == b"proxy-authorization":
                continue  # meant for us, if anyone; the upstream route adds its own
            lines.append(name + b": " + value)
        if not websocket:
            lines.append(b"Connection: close")
        if absolute and route.proxy_authorization:
            lines.append(b"Proxy-Authorization: " + route.proxy_authorization.encode("latin-1"))
        return b"\r\n".join(lines) + b"\r\n\r\n"

    async def _answer(
        self, rec: ConnectionRecorder, up_reader: asyncio.StreamReader, request: h11.Request, *, websocket: bool
    ) -> tuple[int, bytes, bytes] | None:
        """The upstream's answer: (status, every byte read so far, the bytes after the head)."""
        # h11 reads the answer; it is told of a request of the same kind (method, target, upgrade or
        # not), not of the app's own headers, which it might refuse to send.
        h = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
        target = self.config.ctx.target
        sent = [(b"host", _authority(target.scheme, target.host, target.port).encode())]
        if websocket:
            sent += [(b"connection", b"Upgrade"), (b"upgrade", b"websocket")]
        else:
            sent.append((b"content-length", b"0"))
        h.send(h11.Request(method=request.method, target=request.target, headers=sent))
        h.send(h11.EndOfMessage())
        buf = bytearray()
        deadline = asyncio.get_running_loop().time() + self.config.ctx.timeout(self.config.handshake_timeout_s)
        try:
            event = await next_event(h, up_reader, deadline, what="answer to the upgrade", raw=buf)
        except TimeoutError:
            rec.answer = replace(rec.answer, error="no answer to the upgrade in time", outcome="timeout")
            return None
        except PeerClosed:
            rec.answer = replace(
                rec.answer, error="the upstream closed the connection without an answer", outcome="eof"
            )
            return None
        except h11.RemoteProtocolError as exc:
            error = f"the upstream's answer is not HTTP/1.1: {str(exc)[:200]}"
            rec.answer = replace(rec.answer, error=error, outcome="protocol-error")
            return None
        except OSError as exc:
            from wsdoctor.probes.transport import classify_oserror, error_text

            outcome = classify_oserror(exc)
            rec.answer = replace(rec.answer, error=error_text(exc, outcome), outcome=outcome.value)
            return None
        if not isinstance(event, h11.InformationalResponse | h11.Response):
            rec.answer = replace(rec.answer, error="the upstream's answer is not HTTP/1.1", outcome="protocol-error")
            return None
        headers = {n.decode("latin-1").lower(): v.decode("latin-1") for n, v in event.headers}
        rec.answer = replace(
            rec.answer,
            status=event.status_code,
            reason=event.reason.decode("latin-1")[:100],
            request_id=headers.get("dg-request-id", "")[:100] or None,
            dg_error=headers.get("dg-error", "")[:300] or None,
        )
        return event.status_code, bytes(buf), _buffered(h)

    async def _relay(
        self, rec: ConnectionRecorder, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> asyncio.StreamWriter | None:
        got = await self._read_request(rec, reader)
        if got is None:
            with contextlib.suppress(OSError):
                writer.write(_plain(400, "Bad Request", f"wsdoctor watch: {rec.request_error}"))
            return None
        request, raw, trailing = got
        rec.handshake = handshake = self._handshake(request, raw)
        started = self.clock()
        try:
            conn = await open_connection(self.config.ctx)
        except ConnectFailed as failed:
            rec.answer = UpstreamAnswer(error=failed.error[:300], outcome=failed.outcome.value)
            with contextlib.suppress(OSError):
                writer.write(
                    _plain(502, "Bad Gateway", f"wsdoctor watch: could not reach {self.upstream_url}: {failed.error}")
                )
                await asyncio.wait_for(writer.drain(), 2.0)
            return None
        rec.answer = UpstreamAnswer(connect_s=round(self.clock() - started, 4))
        up_reader, up_writer = conn.reader, conn.writer
        sent = self.clock()
        up_writer.write(self._forwarded_head(request, raw, handshake.websocket, conn.route) + trailing)
        if not handshake.websocket:
            # A plain HTTP request (a REST call): its body may be large and the upstream answers only
            # once it has it, so bytes flow both ways at once; the answer's head is read as it passes.
            self._passive[rec.index] = (bytearray(), sent)
            try:
                await self._pump_both(rec, (reader, writer), (up_reader, up_writer), {"client": None, "upstream": None})
            finally:
                self._passive.pop(rec.index, None)
            return up_writer
        answer = await self._answer(rec, up_reader, request, websocket=handshake.websocket)
        if answer is None:
            with contextlib.suppress(OSError):
                writer.write(_plain(502, "Bad Gateway", f"wsdoctor watch: {rec.answer.error}"))
                await asyncio.wait_for(writer.drain(), 2.0)
            await close_quietly(up_writer)
            return up_writer
        status, head_and_more, after = answer
        rec.answer = replace(rec.answer, upgrade_s=round(self.clock() - sent, 4))
        writer.write(head_and_more)
        if status == 101 and handshake.websocket:
            rec.upgraded(self.clock())
            readers: dict[Side, FrameReader | None] = {
                "client": FrameReader(expect_masked=True),
                "upstream": FrameReader(expect_masked=False),
            }
            if after:
                self._record(rec, "upstream", readers["upstream"], after)
            if trailing:  # frames the app sent before the 101 (a pipelining client)
                self._record(rec, "client", readers["client"], trailing)
        else:
            readers = {"client": None, "upstream": None}
            if after:
                rec.answer = replace(rec.answer, body=after[:BODY_EXCERPT].decode("utf-8", "replace"))
        await self._pump_both(rec, (reader, writer), (up_reader, up_writer), readers)
        return up_writer

    def _passive_answer(self, rec: ConnectionRecorder, head: bytearray, sent: float) -> None:
        """Record a plain HTTP answer's head once it is whole (the bytes are already forwarded)."""
        end = head.find(b"\r\n\r\n")
        if end < 0:
            if len(head) > MAX_HEAD_BYTES:
                rec.answer = replace(
                    rec.answer, error="the upstream's answer head is too long", outcome="protocol-error"
                )
            return
        parsed = _parse_head(bytes(head[:end]))
        if parsed is None:
            rec.answer = replace(rec.answer, error="the upstream's answer is not HTTP/1.1", outcome="protocol-error")
            return
        status, reason, headers = parsed
        rec.answer = replace(
            rec.answer,
            status=status,
            reason=reason,
            request_id=headers.get("dg-request-id", "")[:100] or None,
            dg_error=headers.get("dg-error", "")[:300] or None,
            upgrade_s=round(self.clock() - sent, 4),
            body=bytes(head[end + 4 : end + 4 + BODY_EXCERPT]).decode("utf-8", "replace") or None,
        )

    # --- the frames -------------------------------------------------------------------------------

    def _record(self, rec: ConnectionRecorder, side: Side, frames: FrameReader | None, data: bytes) -> None:
        if frames is None:
            passive = self._passive.get(rec.index)
            if side == "upstream" and passive is not None and rec.answer.status is None and rec.answer.error is None:
                head, sent = passive
                head += data[: MAX_HEAD_BYTES + 4 - len(head)]
                self._passive_answer(rec, head, sent)
                return
            if side == "upstream" and rec.answer.status not in (None, 101):
                body = (rec.answer.body or "").encode()
                if len(body) < BODY_EXCERPT:
                    rec.answer = replace(
                        rec.answer, body=(body + data[: BODY_EXCERPT - len(body)]).decode("utf-8", "replace")
                    )
            return
        parsed = frames.feed(data)
        rec.frames(side, parsed, self.clock(), len(data))
        if frames.broken and rec.sides[side].broken is None:
            rec.broken(side, frames.broken)

    async def _pump_both(
        self,
        rec: ConnectionRecorder,
        app: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        up: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        readers: dict[Side, FrameReader | None],
    ) -> None:
        pumps: dict[asyncio.Future[None], Side] = {
            asyncio.ensure_future(self._pump(rec, "client", app[0], up[1], readers["client"])): "client",
            asyncio.ensure_future(self._pump(rec, "upstream", up[0], app[1], readers["upstream"])): "upstream",
        }
        try:
            _done, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            if pending:
                # One side has ended; the other gets a bounded while to finish its close handshake.
                _done, pending = await asyncio.wait(pending, timeout=HALF_CLOSE_LINGER_S)
                for task in pending:
                    rec.tcp_end(pumps[task], "relay-closed", self.clock())
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)

    async def _pump(
        self,
        rec: ConnectionRecorder,
        side: Side,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        frames: FrameReader | None,
    ) -> None:
        try:
            while True:
                data = await src.read(READ_SIZE)
                if not data:
                    rec.tcp_end(side, "fin", self.clock())
                    if dst.can_write_eof() and not dst.transport.is_closing():
                        with contextlib.suppress(OSError, RuntimeError):
                            dst.write_eof()
                    else:
                        await close_quietly(dst)
                    return
                if not dst.transport.is_closing():
                    dst.write(data)
                self._record(rec, side, frames, data)
                if dst.transport.get_write_buffer_size() > WRITE_BUFFER_HIGH:
                    await dst.drain()
        except (ConnectionResetError, BrokenPipeError) as exc:
            if isinstance(exc, ConnectionResetError):
                rec.tcp_end(side, "rst", self.clock())
                _abort(dst, reset=True)
            else:  # our write to the other side failed: that side is gone
                other: Side = "upstream" if side == "client" else "client"
                rec.tcp_end(other, "rst", self.clock())
        except OSError:
            rec.tcp_end(side, "rst", self.clock())
            _abort(dst, reset=True)


def _parse_head(head: bytes) -> tuple[int, str, dict[str, str]] | None:
    """Status, reason and headers (lower-case names) of an HTTP/1.x answer head, or None."""
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or not (code.isdigit() and len(code) == 3):
        return None
    headers: dict[str, str] = {}
    for line in lines[1:100]:
        name, sep, value = line.partition(":")
        if sep:
            headers.setdefault(name.strip().lower(), value.strip())
    return int(code), reason[:100], headers


def _buffered(h: h11.Connection) -> bytes:
    """Bytes h11 holds past the current event (a body's start)."""
    data, _closed = h.trailing_data
    return bytes(data)


def _plain(status: int, reason: str, text: str) -> bytes:
    body = "".join(ch if ch.isprintable() else "?" for ch in text)[:500].encode("utf-8", "replace") + b"\n"
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body
