"""What ``wsdoctor watch`` records of one relayed connection: frozen records and their recorder.

Theory of operation. The relay (:mod:`wsdoctor.probes.relay`) owns the sockets; for each accepted
connection it drives a :class:`ConnectionRecorder` -- the handshake it forwarded, the upstream's
answer, the frames each :class:`~wsdoctor.probes.wireframes.FrameReader` reports, how and when each
side's TCP ended -- and, when the connection is over, asks it for a :class:`WatchedConnection`.
Nothing here does I/O or judges: ``checks/client.py`` judges the record.

Memory per connection is bounded whatever the app or the upstream does: runs of audio frames are
one event (count, bytes, first and last time), at most :data:`MAX_EVENTS` events are kept (the first
half and the last half; the rest counted in ``events_dropped``), text is kept up to
:data:`TEXT_EXCERPT` characters, at most :data:`MAX_VIOLATIONS` protocol violations per side, and the
aggregate counters are numbers. What the judge needs (the longest silence of the app, audio bytes
and their pace, the first audio bytes, CloseStream's time) is aggregated as frames pass, so dropped
events never change a verdict.
"""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass, field
from typing import Literal

from wsdoctor.deepgram import SPEAK_FLUSH_LIMIT, SPEAK_FLUSH_WINDOW_S
from wsdoctor.probes.wireframes import Opcode, WireFrame
from wsdoctor.record import Record

__all__ = [
    "AUDIO_RUN_BREAK_S",
    "MAX_EVENTS",
    "ConnectionRecorder",
    "FrameEvent",
    "Handshake",
    "SideEnd",
    "SideStats",
    "UpstreamAnswer",
    "WatchedConnection",
]

Side = Literal["client", "upstream"]
TcpEnd = Literal["fin", "rst", "open", "relay-closed"]
Presented = Literal["token", "bearer", "basic", "other", "subprotocol", "query", "none"]

MAX_EVENTS = 1000
TEXT_EXCERPT = 300  # characters of a text message kept in its event (a control message in full)
HEAD_HEX_BYTES = 16  # bytes of the first audio frame kept (as hex): enough for every container magic
MAX_VIOLATIONS = 20
MAX_MESSAGE_TYPES = 32
#: A run of audio frames is one event until the app pauses this long or sends something else.
AUDIO_RUN_BREAK_S = 1.0
MAX_MESSAGE_BYTES = 64 * 1024  # a fragmented text message is assembled up to this, then only counted


@dataclass(frozen=True, slots=True)
class FrameEvent(Record):
    """One frame (or one run of audio frames) on the timeline."""

    t: float  # seconds since the app connected
    side: Side  # who sent it
    kind: Literal["text", "binary", "audio", "ping", "pong", "close", "continuation", "other"]
    size: int  # payload bytes (a run: their sum)
    count: int = 1  # frames in an audio run
    t_end: float | None = None  # an audio run's last frame
    type: str | None = None  # the JSON "type" of a text message (or of JSON sent as binary)
    text: str | None = None  # a text message's excerpt (a Results' transcript), a close's reason
    code: int | None = None  # a close frame's code
    head: str | None = None  # a short binary frame's first bytes, hex

    _SPARSE = frozenset({"count", "t_end", "type", "text", "code", "head"})


@dataclass(frozen=True, slots=True)
class SideStats(Record):
    """Counters of what one side sent after the upgrade."""

    frames: int = 0
    bytes: int = 0  # payload bytes
    wire_bytes: int = 0  # bytes on the wire, framing included
    text: int = 0  # text messages
    audio_frames: int = 0  # non-empty binary frames that are not JSON
    audio_bytes: int = 0
    first_audio_t: float | None = None
    last_audio_t: float | None = None
    #: the time audio was flowing: the sum of its runs (first to last frame of frames less than
    #: AUDIO_RUN_BREAK_S apart), so an app that streams only while someone speaks is measured on
    #: its speech, not on its pauses
    audio_active_s: float = 0.0
    audio_runs: int = 0
    empty_binary: int = 0  # zero-length binary frames (the deprecated close-stream signal)
    first_empty_binary_t: float | None = None
    binary_json: tuple[str, ...] = ()  # the "type" of each JSON message sent in a binary frame (first 20)
    binary_json_count: int = 0
    pings: int = 0
    pongs: int = 0
    fragments: int = 0  # continuation frames
    messages: dict[str, int] = field(default_factory=dict)  # text messages by "type"
    violations: tuple[str, ...] = ()  # RFC 6455 violations seen (first MAX_VIOLATIONS)
    broken: str | None = None  # framing lost: nothing after it was parsed
    last_data_t: float | None = None  # the last text or binary frame
    #: the longest time without a text or binary frame from this side while the stream was open
    #: (from the upgrade, until CloseStream / the side's close / the connection's end)
    max_gap_s: float = 0.0
    max_gap_from_t: float | None = None


@dataclass(frozen=True, slots=True)
class SideEnd(Record):
    """How one side ended: its close frame and its TCP."""

    close_code: int | None = None  # None: sent no close frame
    close_reason: str | None = None
    close_t: float | None = None
    tcp: TcpEnd = "open"  # fin: it closed its socket; rst: reset; open: still open when the relay ended
    tcp_t: float | None = None


@dataclass(frozen=True, slots=True)
class Handshake(Record):
    """The app's Upgrade request, as forwarded (no credential values)."""

    method: str
    path: str
    query: dict[str, str]  # parameters; a credential-named one's value masked
    user_agent: str | None = None
    #: how the app presented its credential: the Authorization scheme, a subprotocol, the query string
    #: (never the value). Not named "auth...": a report masks the values of credential-named keys.
    presented_with: Presented = "none"
    exposed_params: tuple[str, ...] = ()  # query parameters that carry a credential (names only)
    websocket: bool = True  # it asked for a WebSocket upgrade
    extensions_removed: str | None = None  # Sec-WebSocket-Extensions the relay did not forward
    subprotocols: tuple[str, ...] = ()  # offered (a token among them is masked)


@dataclass(frozen=True, slots=True)
class UpstreamAnswer(Record):
    """The upstream's answer to the Upgrade (or why there was none)."""

    status: int | None = None
    reason: str | None = None
    request_id: str | None = None  # dg-request-id
    dg_error: str | None = None
    body: str | None = None  # a rejection's body, excerpt
    error: str | None = None  # could not reach the upstream: why
    outcome: str | None = None  # the connect outcome (refused, timeout, tls-error ...)
    connect_s: float | None = None  # route + TCP + TLS to the upstream
    upgrade_s: float | None = None  # request forwarded -> answer head


@dataclass(frozen=True, slots=True)
class WatchedConnection(Record):
    """Everything recorded of one connection through ``watch``."""

    index: int  # 1, 2, ... in accept order
    started_at_s: float  # since watch started
    duration_s: float
    client: str  # the app's address
    upstream: str  # scheme://host:port forwarded to
    handshake: Handshake | None  # None: the app sent no valid HTTP request
    answer: UpstreamAnswer
    client_stats: SideStats
    upstream_stats: SideStats
    client_end: SideEnd
    upstream_end: SideEnd
    events: tuple[FrameEvent, ...] = ()
    events_dropped: int = 0
    first_audio_head: str | None = None  # the first audio frame's first bytes, hex
    closestream_t: float | None = None  # the app's first CloseStream
    finalize_count: int = 0
    keepalive_count: int = 0  # KeepAlive sent as text
    #: the most Flush messages (streaming TTS) the app sent within any 60 s
    max_flushes_per_60s: int = 0
    #: the app's first message: its JSON "type", "(binary)" or "(not JSON)" (the Voice Agent wants Settings)
    first_client_message: str | None = None
    upgraded_t: float | None = None  # the 101 went back to the app
    #: the side whose close frame or TCP end the relay saw first (timestamps can tie at 0.1 ms; the
    #: relay's order cannot: it records one side's end before passing it on to the other)
    first_to_end: Side | None = None
    request_error: str | None = None  # the app's request was not HTTP/1.1 we could forward
    relay_error: str | None = None  # wsdoctor itself failed on this connection (a bug: an error result)

    _SPARSE = frozenset(
        {"events_dropped", "first_audio_head", "closestream_t", "request_error", "relay_error", "first_client_message"}
    )


class _SideState:
    """Mutable counters of one side (frozen into :class:`SideStats` at the end)."""

    def __init__(self) -> None:
        self.frames = self.bytes = self.wire_bytes = self.text = 0
        self.audio_frames = self.audio_bytes = self.empty_binary = self.binary_json_count = 0
        self.pings = self.pongs = self.fragments = 0
        self.first_audio_t: float | None = None
        self.last_audio_t: float | None = None
        self.audio_active_s = 0.0
        self.audio_runs = 0
        self.run_start: float | None = None
        self.first_empty_binary_t: float | None = None
        self.binary_json: list[str] = []
        self.messages: dict[str, int] = {}
        self.violations: list[str] = []
        self.broken: str | None = None
        self.last_data_t: float | None = None
        self.gap_open_t: float | None = None  # the silence being measured started here (None: not measuring)
        self.max_gap_s = 0.0
        self.max_gap_from_t: float | None = None
        self.message_opcode: int | None = None  # a fragmented message in progress
        self.message = bytearray()
        self.message_size = 0

    def gap_until(self, t: float) -> None:
        if self.gap_open_t is not None and t - self.gap_open_t > self.max_gap_s:
            self.max_gap_s = t - self.gap_open_t
            self.max_gap_from_t = self.gap_open_t

    def audio_frame(self, t: float) -> None:
        if self.run_start is None or self.last_audio_t is None or t - self.last_audio_t > AUDIO_RUN_BREAK_S:
            self.audio_active_s = self.audio_active()
            self.run_start = t
            self.audio_runs += 1
        self.last_audio_t = t

    def audio_active(self) -> float:
        """Audio time so far: the closed runs plus the one in progress."""
        if self.run_start is None or self.last_audio_t is None:
            return self.audio_active_s
        return self.audio_active_s + (self.last_audio_t - self.run_start)

    def stats(self) -> SideStats:
        return SideStats(
            frames=self.frames,
            bytes=self.bytes,
            wire_bytes=self.wire_bytes,
            text=self.text,
            audio_frames=self.audio_frames,
            audio_bytes=self.audio_bytes,
            first_audio_t=self.first_audio_t,
            last_audio_t=self.last_audio_t,
            audio_active_s=round(self.audio_active(), 4),
            audio_runs=self.audio_runs,
            empty_binary=self.empty_binary,
            first_empty_binary_t=self.first_empty_binary_t,
            binary_json=tuple(self.binary_json),
            binary_json_count=self.binary_json_count,
            pings=self.pings,
            pongs=self.pongs,
            fragments=self.fragments,
            messages=dict(self.messages),
            violations=tuple(self.violations),
            broken=self.broken,
            last_data_t=self.last_data_t,
            max_gap_s=round(self.max_gap_s, 3),
            max_gap_from_t=self.max_gap_from_t,
        )


def _excerpt(text: str, limit: int = TEXT_EXCERPT) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _json_type(payload: bytes) -> tuple[str | None, object]:
    """The message's ``type`` (if it is a JSON object with a string one) and the parsed object."""
    if payload.lstrip()[:1] != b"{":
        return None, None  # not an object: no need to parse it (a cheap test on every text frame)
    try:
        obj = json.loads(payload)
    except (ValueError, RecursionError):
        return None, None
    kind = obj.get("type") if isinstance(obj, dict) else None
    return (kind[:40] if isinstance(kind, str) else None), obj


def _transcript(obj: object) -> str | None:
    """A Results' first transcript, if the message has that shape (read defensively)."""
    if not isinstance(obj, dict):
        return None
    channel = obj.get("channel")
    alternatives = channel.get("alternatives") if isinstance(channel, dict) else None
    first = alternatives[0] if isinstance(alternatives, list) and alternatives else None
    text = first.get("transcript") if isinstance(first, dict) else None
    return text if isinstance(text, str) else None


class ConnectionRecorder:
    """Builds one :class:`WatchedConnection` from what the relay reports (module doc).

    Times are the relay's clock values; ``t0`` is the accept time."""

    def __init__(self, index: int, t0: float, started_at_s: float, client: str, upstream: str) -> None:
        self.index = index
        self.t0 = t0
        self.started_at_s = started_at_s
        self.client = client
        self.upstream = upstream
        self.handshake: Handshake | None = None
        self.request_error: str | None = None
        self.relay_error: str | None = None
        self.answer = UpstreamAnswer()
        self.upgraded_t: float | None = None
        self.sides: dict[Side, _SideState] = {"client": _SideState(), "upstream": _SideState()}
        self.ends: dict[Side, dict[str, object]] = {"client": {}, "upstream": {}}
        self.head_events: list[FrameEvent] = []
        self.tail_events: collections.deque[FrameEvent] = collections.deque(maxlen=MAX_EVENTS // 2)
        self.events_dropped = 0
        self.run: dict[Side, list[float | int] | None] = {"client": None, "upstream": None}  # t, t_end, n, bytes
        self.first_audio_head: str | None = None
        self.closestream_t: float | None = None
        self.finalize_count = 0
        self.keepalive_count = 0
        self.flush_times: collections.deque[float] = collections.deque()
        self.max_flushes_per_60s = 0
        self.first_client_message: str | None = None
        self.first_to_end: Side | None = None

    def rel(self, clock_value: float) -> float:
        return round(max(0.0, clock_value - self.t0), 4)

    # --- events ---------------------------------------------------------------------------------

    def _event(self, event: FrameEvent) -> None:
        if len(self.head_events) < MAX_EVENTS // 2:
            self.head_events.append(event)
            return
        if len(self.tail_events) == self.tail_events.maxlen:
            self.events_dropped += 1
        self.tail_events.append(event)

    def _flush_run(self, side: Side) -> None:
        run = self.run[side]
        if run is None:
            return
        self.run[side] = None
        t, t_end, n, size = run
        self._event(FrameEvent(t=float(t), side=side, kind="audio", size=int(size), count=int(n), t_end=float(t_end)))

    def _audio(self, side: Side, t: float, size: int) -> None:
        run = self.run[side]
        if run is not None and t - float(run[1]) <= AUDIO_RUN_BREAK_S:
            run[1] = t
            run[2] = int(run[2]) + 1
            run[3] = int(run[3]) + size
            return
        self._flush_run(side)
        self.run[side] = [t, t, 1, size]

    # --- what the relay reports -----------------------------------------------------------------

    def upgraded(self, clock_value: float) -> None:
        self.upgraded_t = self.rel(clock_value)
        for state in self.sides.values():
            state.gap_open_t = self.upgraded_t

    def frames(self, side: Side, frames: list[WireFrame], clock_value: float, wire_bytes: int) -> None:
        """Frames completed by one read of ``side``'s bytes (``wire_bytes`` long)."""
        t = self.rel(clock_value)
        state = self.sides[side]
        state.wire_bytes += wire_bytes
        for frame in frames:
            state.frames += 1
            state.bytes += frame.length
            if frame.violation and len(state.violations) < MAX_VIOLATIONS:
                state.violations.append(frame.violation)
            self._frame(side, state, frame, t)

    def broken(self, side: Side, why: str) -> None:
        self.sides[side].broken = why

    def _data(self, state: _SideState, t: float) -> None:
        state.gap_until(t)
        state.last_data_t = t
        if state.gap_open_t is not None:
            state.gap_open_t = t

    def _frame(self, side: Side, state: _SideState, frame: WireFrame, t: float) -> None:
        op = frame.opcode
        if op == Opcode.CONTINUATION:
            state.fragments += 1
            if state.message_opcode is None:
                self._event(FrameEvent(t=t, side=side, kind="continuation", size=frame.length))
                return
            state.message_size += frame.length
            room = MAX_MESSAGE_BYTES - len(state.message)
            if room > 0:
                state.message += frame.kept[:room]
            if frame.fin:
                opcode, data, size = state.message_opcode, bytes(state.message), state.message_size
                state.message_opcode, state.message, state.message_size = None, bytearray(), 0
                self._message(side, state, opcode, data, size, complete=len(data) == size, t=t)
            return
        if op in (Opcode.TEXT, Opcode.BINARY) and not frame.fin:
            state.fragments += 1
            state.message_opcode = op
            state.message = bytearray(frame.kept)
            state.message_size = frame.length
            return
        if op in (Opcode.TEXT, Opcode.BINARY):
            self._message(side, state, op, frame.kept, frame.length, complete=frame.complete, t=t)
        elif op == Opcode.PING:
            state.pings += 1
            self._event(FrameEvent(t=t, side=side, kind="ping", size=frame.length))
        elif op == Opcode.PONG:
            state.pongs += 1
            self._event(FrameEvent(t=t, side=side, kind="pong", size=frame.length))
        elif op == Opcode.CLOSE:
            self._close(side, frame, t)
        else:
            self._event(FrameEvent(t=t, side=side, kind="other", size=frame.length, code=op))

    def _message(
        self, side: Side, state: _SideState, op: int, data: bytes, size: int, *, complete: bool, t: float
    ) -> None:
        self._data(state, t)
        if side == "client" and self.first_client_message is None:
            kind = _json_type(data)[0] if op == Opcode.TEXT and complete else None
            self.first_client_message = kind or ("(binary)" if op == Opcode.BINARY else "(not JSON)")
        if op == Opcode.TEXT:
            state.text += 1
            self._flush_run(side)
            kind, obj = _json_type(data) if complete else (None, None)
            name = (kind or "(not JSON)") if complete else "(too long to read)"
            if name in state.messages or len(state.messages) < MAX_MESSAGE_TYPES:
                state.messages[name] = state.messages.get(name, 0) + 1
            text = _transcript(obj) if kind == "Results" else None
            if text is None:
                text = data[: TEXT_EXCERPT * 2].decode("utf-8", "replace")
            if side == "client":
                self._client_control(state, kind, t)
            self._event(FrameEvent(t=t, side=side, kind="text", size=size, type=kind, text=_excerpt(text)))
            return
        # binary
        if size == 0:
            state.empty_binary += 1
            if state.first_empty_binary_t is None:
                state.first_empty_binary_t = t
            self._flush_run(side)
            self._event(FrameEvent(t=t, side=side, kind="binary", size=0))
            if side == "client":
                self._end_of_stream(state, t)  # Deepgram reads it as the end of the audio
            return
        if data[:1] == b"{":
            kind, _obj = _json_type(data) if complete else (None, None)
            if kind is not None:
                state.binary_json_count += 1
                if len(state.binary_json) < 20:
                    state.binary_json.append(kind)
                self._flush_run(side)
                self._event(
                    FrameEvent(t=t, side=side, kind="binary", size=size, type=kind, head=data[:HEAD_HEX_BYTES].hex())
                )
                return
        state.audio_frames += 1
        state.audio_bytes += size
        if state.first_audio_t is None:
            state.first_audio_t = t
            if side == "client":
                self.first_audio_head = data[:HEAD_HEX_BYTES].hex()
        state.audio_frame(t)
        self._audio(side, t, size)

    def _client_control(self, state: _SideState, kind: str | None, t: float) -> None:
        if kind == "CloseStream" and self.closestream_t is None:
            self.closestream_t = t
            self._end_of_stream(state, t)
        elif kind == "KeepAlive":
            self.keepalive_count += 1
        elif kind == "Finalize":
            self.finalize_count += 1
        elif kind == "Flush":
            # A sliding 60 s window, bounded: only a count above the limit matters.
            while self.flush_times and t - self.flush_times[0] > SPEAK_FLUSH_WINDOW_S:
                self.flush_times.popleft()
            if len(self.flush_times) <= 4 * SPEAK_FLUSH_LIMIT:
                self.flush_times.append(t)
            self.max_flushes_per_60s = max(self.max_flushes_per_60s, len(self.flush_times))

    def _end_of_stream(self, state: _SideState, t: float) -> None:
        """The app said its audio is over: silence after this is not a gap."""
        state.gap_until(t)
        state.gap_open_t = None

    def _close(self, side: Side, frame: WireFrame, t: float) -> None:
        self._flush_run(side)
        code = int.from_bytes(frame.kept[:2], "big") if frame.length >= 2 else None
        reason = frame.kept[2:].decode("utf-8", "replace") if frame.length > 2 else None
        end = self.ends[side]
        if "close_t" not in end:
            end.update(close_code=code, close_reason=reason, close_t=t)
        self.first_to_end = self.first_to_end or side
        state = self.sides[side]
        self._end_of_stream(state, t)
        if side == "upstream":  # the stream is over for the app too: its silence after this is fine
            self._end_of_stream(self.sides["client"], t)
        self._event(FrameEvent(t=t, side=side, kind="close", size=frame.length, code=code, text=reason))

    def tcp_end(self, side: Side, kind: TcpEnd, clock_value: float) -> None:
        end = self.ends[side]
        if "tcp" not in end:
            end.update(tcp=kind, tcp_t=self.rel(clock_value))
            if kind != "relay-closed":
                self.first_to_end = self.first_to_end or side
            for state in self.sides.values():
                state.gap_until(self.rel(clock_value))
                state.gap_open_t = None

    # --- the record -------------------------------------------------------------------------------

    def observation(self, clock_value: float) -> WatchedConnection:
        self._flush_run("client")
        self._flush_run("upstream")
        end_t = self.rel(clock_value)
        for state in self.sides.values():
            state.gap_until(end_t)

        def by_time(e: FrameEvent) -> float:
            return e.t

        # An audio run is written when it ends, after events that came during it: sort each part.
        events = (*sorted(self.head_events, key=by_time), *sorted(self.tail_events, key=by_time))

        def side_end(side: Side) -> SideEnd:
            return SideEnd.from_dict(self.ends[side])

        return WatchedConnection(
            index=self.index,
            started_at_s=round(self.started_at_s, 4),
            duration_s=end_t,
            client=self.client,
            upstream=self.upstream,
            handshake=self.handshake,
            answer=self.answer,
            client_stats=self.sides["client"].stats(),
            upstream_stats=self.sides["upstream"].stats(),
            client_end=side_end("client"),
            upstream_end=side_end("upstream"),
            events=events,
            events_dropped=self.events_dropped,
            first_audio_head=self.first_audio_head,
            closestream_t=self.closestream_t,
            finalize_count=self.finalize_count,
            keepalive_count=self.keepalive_count,
            max_flushes_per_60s=self.max_flushes_per_60s,
            first_client_message=self.first_client_message,
            upgraded_t=self.upgraded_t,
            first_to_end=self.first_to_end,
            request_error=self.request_error,
            relay_error=self.relay_error,
        )
