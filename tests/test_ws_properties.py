"""Property test: wsdoctor's WebSocket client against generated peers.

A scripted server on 127.0.0.1 answers the upgrade and then plays a generated sequence of frames and
events -- text (Deepgram messages, wrong shapes, not JSON, bad UTF-8), binary, pings and unsolicited
pongs, fragmented messages with control frames between the fragments, continuations that start
nothing, close frames with any code and reason (including invalid ones), a close in the middle of a
fragmented message, waits for the client's close, EOF and RST -- while the client plays its own
generated sequence (audio, KeepAlive, CloseStream, pings, its close frame), all interleaved.

Invariants, whatever the peer does and whenever it does it:
- nothing raises out of the client, and every example ends within a bound;
- the client never violates the protocol itself: after its close frame it sends nothing else, and
  the only frames it sends unasked are its own (pong only to a ping, close reply only to a close);
- the observation is JSON, bounded, and ends in a known way; the analyzers judge it without raising,
  with finding codes from the public vocabulary.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checks.close import analyze_client_close, judge_ending, terminal_event
from checks.stream import analyze as analyze_stream
from tests.hostile_servers import frame, read_client_frame, read_request, switching
from wsdoctor import deepgram
from wsdoctor.causes import FINDING_CODES
from wsdoctor.check import Context, RunOptions, Secret
from wsdoctor.model import Target
from wsdoctor.probes.session import SessionObservation
from wsdoctor.probes.wsclient import MAX_EVENTS_KEPT, WsProbe

RESULTS = (
    b'{"type":"Results","channel_index":[0,1],"duration":1.0,"start":0.0,"is_final":true,"speech_final":true,'
    b'"from_finalize":false,"channel":{"alternatives":[{"transcript":"hi","confidence":0.9,"words":[]}]},'
    b'"metadata":{"request_id":"r","model_uuid":"m","model_info":{"name":"n","version":"v","arch":"a"}}}'
)
TEXTS = [
    RESULTS,
    b'{"type":"Metadata","transaction_key":"deprecated","request_id":"r","sha256":"x","created":"c",'
    b'"duration":0,"channels":1}',
    b'{"type":"Results","channel":{"alternatives":[["x"]]}}',
    b'{"type":"Results","channel":{"alternatives":"x"}}',
    b"[1,2,3]",
    b"not json at all",
    b"[" * 5000 + b"]" * 5000,
    b'{"type":"Error","variant":"SchemaError","description":"d","message":"m"}',
    b'{"type":"<script>alert(1)</script>\x1b[2J"}',
]
#: valid codes, and ones no server may send (999, 1005, 1006, 5000): wsproto calls those a protocol error
CLOSE_CODES = [1000, 1001, 1008, 1011, 1012, 4000, 999, 1005, 1006, 5000]
REASONS = [b"", deepgram.NET_0001.wire.encode(), b"<script>\x1b]0;x\x07", b"\xff\xfe not utf-8"]


server_action = st.one_of(
    st.tuples(st.just("text"), st.sampled_from(TEXTS)),
    st.tuples(st.just("binary"), st.binary(max_size=64)),
    st.tuples(st.just("ping"), st.binary(max_size=16)),
    st.tuples(st.just("pong"), st.binary(max_size=16)),
    st.tuples(st.just("close"), st.tuples(st.sampled_from(CLOSE_CODES), st.sampled_from(REASONS))),
    st.tuples(st.just("fragmented"), st.tuples(st.integers(2, 6), st.booleans())),  # pieces, a ping in between
    st.tuples(st.just("continuation"), st.binary(max_size=8)),  # a continuation that continues nothing
    st.tuples(st.just("unfinished"), st.just(b'{"type":"Res')),  # a fragment never finished
    st.tuples(st.just("wait-close"), st.floats(0.0, 0.3)),
    st.tuples(st.just("sleep"), st.floats(0.0, 0.05)),
    st.tuples(st.just("eof"), st.none()),
    st.tuples(st.just("rst"), st.none()),
)
client_action = st.one_of(
    st.tuples(st.just("audio"), st.integers(1, 3200)),
    st.tuples(st.just("keepalive"), st.none()),
    st.tuples(st.just("closestream"), st.none()),
    st.tuples(st.just("ping"), st.none()),
    st.tuples(st.just("close"), st.sampled_from([1000, 1001, 4000])),
    st.tuples(st.just("receive"), st.floats(0.0, 0.05)),
)


class Scripted:
    """One scripted connection: plays ``actions`` after the 101 and records the client's frames."""

    def __init__(self, actions: list[tuple[str, Any]]) -> None:
        self.actions = actions
        self.client_frames: list[int] = []  # opcodes, in order
        self.client_closed = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5):
                request = await read_request(reader)
                writer.write(switching(request))
                await writer.drain()
                reading = asyncio.create_task(self._read(reader))
                try:
                    await self._play(writer)
                finally:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await asyncio.wait_for(reading, 0.5)
                    reading.cancel()
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, TimeoutError):
            while True:
                opcode, _ = await read_client_frame(reader)
                self.client_frames.append(opcode)
                if opcode == 0x8:
                    self.client_closed.set()

    async def _play(self, writer: asyncio.StreamWriter) -> None:
        for kind, arg in self.actions:
            if kind == "text":
                writer.write(frame(0x1, arg))
            elif kind == "binary":
                writer.write(frame(0x2, arg))
            elif kind == "ping":
                writer.write(frame(0x9, arg))
            elif kind == "pong":
                writer.write(frame(0xA, arg))
            elif kind == "close":
                code, reason = arg
                writer.write(frame(0x8, struct.pack("!H", code) + reason[:100]))
            elif kind == "fragmented":
                pieces, ping_between = arg
                chunks = [RESULTS[i::pieces] for i in range(pieces)]  # wrong order: content need not parse
                for i, chunk in enumerate(chunks):
                    writer.write(frame(0x1 if i == 0 else 0x0, chunk, fin=i == pieces - 1))
                    if ping_between and i == 0:
                        writer.write(frame(0x9, b"between"))
            elif kind == "continuation":
                writer.write(frame(0x0, arg))
            elif kind == "unfinished":
                writer.write(frame(0x1, arg, fin=False))
            elif kind == "wait-close":
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.client_closed.wait(), arg)
            elif kind == "sleep":
                await asyncio.sleep(arg)
            elif kind == "eof":
                await writer.drain()
                writer.write_eof()
                return
            elif kind == "rst":
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return
            await writer.drain()
        await asyncio.sleep(0.05)


async def play_client(probe: WsProbe, actions: list[tuple[str, Any]]) -> None:
    for kind, arg in actions:
        if kind == "audio":
            await probe.send_audio(b"\x00" * arg)
        elif kind == "keepalive":
            await probe.send_json(deepgram.client_message(deepgram.ClientMessage.KEEPALIVE))
        elif kind == "closestream":
            await probe.send_json(deepgram.client_message(deepgram.ClientMessage.CLOSE_STREAM))
        elif kind == "ping":
            await probe.send_ping()
        elif kind == "close":
            await probe.send_close(arg)
        elif kind == "receive":
            await probe.receive(arg)
    for _ in range(50):  # drain what is left, bounded
        if probe.terminal() is not None or await probe.receive(0.02) is None:
            break


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    server=st.lists(server_action, min_size=1, max_size=10),
    client=st.lists(client_action, min_size=0, max_size=8),
)
def test_the_client_survives_any_peer(server: list[tuple[str, Any]], client: list[tuple[str, Any]]) -> None:
    asyncio.run(_one(server, client))


async def _one(server_actions: list[tuple[str, Any]], client_actions: list[tuple[str, Any]]) -> None:
    scripted = Scripted(server_actions)
    srv = await asyncio.start_server(scripted.handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    ctx = Context(
        target=Target.parse(f"ws://127.0.0.1:{port}/v1/listen"),
        options=RunOptions(connect_timeout_s=2.0, close_wait_s=0.3),
        api_key=Secret("property-key"),
    )
    try:
        async with asyncio.timeout(8):  # invariant: bounded, whatever the peer does
            async with WsProbe(ctx) as probe:
                upgrade = await probe.connect()
                assert upgrade.outcome == "upgraded", upgrade
                await play_client(probe, client_actions)
                end = probe.terminal()
                obs = SessionObservation(
                    upgrade=upgrade,
                    ending="none",
                    close_wait_s=0.3,
                    open_t=0.0,
                    close_sent_t=probe.close_sent_t,
                    end_t=end.t_s if end else probe.now(),
                    terminal=end.end_kind if end else None,
                    events=tuple(probe.events),
                )
    finally:
        srv.close()
        await srv.wait_closed()

    # the client never sent anything after its own close frame
    frames = scripted.client_frames
    if 0x8 in frames:
        assert frames.index(0x8) == len(frames) - 1, frames
    # the observation is JSON, bounded, and ends in a known way
    d = json.loads(json.dumps(obs.to_dict()))
    assert len(d["events"]) <= MAX_EVENTS_KEPT + 4
    assert d["terminal"] in (None, "close", "eof", "reset", "error", "protocol-error", "oversize", "flood")
    # the analyzers judge it without raising, in the public vocabulary
    typed = SessionObservation.from_dict(d)  # what the report holds reads back as the same type
    assert typed.to_dict() == obs.to_dict()
    findings = analyze_stream(typed) + analyze_client_close(typed)
    term = terminal_event(typed.events)
    ending = judge_ending(term.end_kind if term else None, term, "in a property test")
    findings += [ending] if ending else []
    assert all(f.code in FINDING_CODES for f in findings), [f.code for f in findings]
