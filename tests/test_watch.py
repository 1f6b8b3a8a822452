"""``wsdoctor watch``: real apps through the real relay into the real mock, judged by checks/client.py.

Every finding code of the client.* and upstream.* families comes from an app that really behaves
that way (tests/watch_apps.py) or an upstream that really does (a mock fault, a closed port); the
healthy apps -- the official deepgram-sdk among them -- must produce no finding at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest

from checks.client import analyze, analyze_session, result_for, sdk_products, sniff_container
from tests import watch_apps as apps
from wsdoctor.check import Context, RunOptions
from wsdoctor.mock import MockConfig, start_mock
from wsdoctor.model import Finding, Status, Target
from wsdoctor.probes.relay import Relay, RelayConfig
from wsdoctor.probes.watch import WatchedConnection

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.timeout(90)]

Judged = list[tuple[WatchedConnection, list[Finding]]]


@contextlib.asynccontextmanager
async def watching(config: MockConfig | None = None, upstream: str | None = None) -> AsyncIterator[tuple[Relay, str]]:
    """A mock (unless ``upstream`` is given) behind a relay on 127.0.0.1; both stopped after."""
    server = await start_mock(config or MockConfig()) if upstream is None else None
    url = server.url if server is not None else upstream
    assert url is not None
    ctx = Context(target=Target.parse(url, is_mock=server is not None), options=RunOptions(connect_timeout_s=3))
    relay = Relay(RelayConfig("127.0.0.1", 0, ctx, handshake_timeout_s=3))
    host, port = await relay.start()
    try:
        yield relay, f"ws://{host}:{port}"
    finally:
        await relay.stop()
        if server is not None:
            await server.stop()


async def run_app(
    app: Callable[[str], Awaitable[None]], config: MockConfig | None = None, *, upstream: str | None = None
) -> Judged:
    import websockets

    async with watching(config, upstream) as (relay, base):
        # An app is a program that ends whatever the server did (the judge reads the record).
        with contextlib.suppress(websockets.WebSocketException, OSError):
            await asyncio.wait_for(app(base), 60)
        await relay.stop(grace_s=5)  # let the relay see both ends
        conns = list(relay.connections)
    session = analyze_session(conns)
    return [(c, analyze(c) + session.get(c.index, [])) for c in conns]


def codes(judged: Judged) -> set[str]:
    return {f.code for _c, fs in judged for f in fs}


# --- healthy apps: no finding at all ----------------------------------------------------------------


@pytest.mark.parametrize(
    "app",
    [apps.healthy, apps.sdk_healthy, apps.sdk_wav_file, apps.healthy_with_keepalive, apps.vad_gated],
    ids=lambda a: a.__name__,
)
async def test_healthy_apps_have_no_finding(app: Callable[[str], Awaitable[None]]) -> None:
    judged = await run_app(app, MockConfig(idle_timeout_s=2.0))
    assert len(judged) == 1
    conn, findings = judged[0]
    assert findings == [], [f"{f.code}: {f.message}" for f in findings]
    assert conn.upstream_end.close_code == 1000 and conn.client_end.close_code == 1000
    assert conn.closestream_t is not None and conn.client_stats.audio_bytes > 0
    assert result_for(conn, findings).status is Status.PASS


async def test_sdk_connection_is_recorded_in_full() -> None:
    ((conn, _f),) = await run_app(apps.sdk_healthy)
    hs = conn.handshake
    assert hs is not None and hs.path == "/v1/listen" and hs.query["encoding"] == "linear16"
    assert hs.user_agent and "deepgram-sdk/" in hs.user_agent  # the SDK's own User-Agent
    assert hs.presented_with == "token"
    assert conn.answer.status == 101 and conn.answer.request_id
    assert conn.upstream_stats.messages.get("Results", 0) >= 1 and conn.upstream_stats.messages["Metadata"] == 1
    kinds = [e.kind for e in conn.events]
    assert kinds[0] == "audio" and kinds[-2:] == ["close", "close"]
    assert apps.KEY not in repr(conn.to_dict())  # the app's key is never recorded


# --- each client.* code from an app that really misbehaves ------------------------------------------


CASES = [
    (apps.goes_silent, MockConfig(idle_timeout_s=1.5), "client.idle-gap", Status.FAIL),
    (apps.keepalive_as_binary, None, "client.keepalive-binary", Status.FAIL),
    (apps.empty_binary, None, "client.empty-binary-frame", Status.FAIL),
    (apps.no_closestream, None, "client.no-closestream", Status.WARN),
    (apps.exits_before_close, MockConfig(results_interval_s=0.3), "client.close-not-awaited", Status.FAIL),
    (apps.wav_as_linear16, None, "client.encoding-mismatch", Status.WARN),
    (apps.raw_without_encoding, None, "client.encoding-mismatch", Status.WARN),
    (apps.too_fast, None, "client.pace", Status.WARN),
    (apps.key_in_url, None, "client.key-in-url", Status.WARN),
    (apps.old_sdk_agent, None, "client.sdk-known-issue", Status.WARN),
    (apps.unmasked_frames, None, "client.protocol-violation", Status.FAIL),
    (apps.reconnect_storm, None, "client.reconnect-storm", Status.WARN),
]


@pytest.mark.parametrize(("app", "config", "code", "severity"), CASES, ids=[c[2] + ":" + c[0].__name__ for c in CASES])
async def test_misbehaving_app_gets_its_finding(
    app: Callable[[str], Awaitable[None]], config: MockConfig | None, code: str, severity: Status
) -> None:
    judged = await run_app(app, config)
    found = [f for _c, fs in judged for f in fs if f.code == code]
    assert found, f"{code} not found; got {sorted(codes(judged))}"
    assert found[0].severity is severity
    # one misbehaviour, one diagnosis: no unrelated client finding rides along
    unrelated = {c for c in codes(judged) if c.startswith("client.") and c != code}
    allowed = {
        apps.exits_before_close: set(),
        apps.reconnect_storm: {"client.no-closestream", "client.close-not-awaited"},  # each attempt is aborted
        apps.unmasked_frames: {"client.encoding-mismatch"},  # zeros, no encoding declared: true as well
        apps.too_fast: set(),
    }.get(app, set())
    assert unrelated <= allowed, unrelated


async def test_idle_gap_names_net0001_and_the_silence() -> None:
    ((conn, findings),) = await run_app(apps.goes_silent, MockConfig(idle_timeout_s=1.5))
    gap = next(f for f in findings if f.code == "client.idle-gap")
    assert "NET-0001" in gap.message and gap.cause == "connection-handling"
    assert 1.3 <= conn.client_stats.max_gap_s <= 4.0
    assert not any(f.code.startswith("upstream.") for f in findings)  # NET-0001 is the app's silence


async def test_key_in_url_never_recorded() -> None:
    ((conn, findings),) = await run_app(apps.key_in_url)
    assert apps.KEY not in repr(conn.to_dict()) and apps.KEY not in repr(findings)
    assert conn.handshake is not None and conn.handshake.exposed_params == ("token",)


async def test_encoding_mismatch_reads_the_wav_header() -> None:
    ((_conn, findings),) = await run_app(apps.wav_as_linear16)
    f = next(f for f in findings if f.code == "client.encoding-mismatch")
    assert f.evidence["container_seen"] == "wav" and f.evidence["declared_encoding"] == "linear16"


# --- upstream.* from an upstream that really does it -------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "code", "cause"),
    [
        ("reject-401", "upstream.rejected", "credentials"),
        ("reject-402", "upstream.rejected", "account-limits"),
        ("reject-429", "upstream.rejected", "account-limits"),
        ("reject-503", "upstream.rejected", "service"),
        ("close-1008", "upstream.closed-error", "audio-format"),
        ("close-1011-net0000", "upstream.closed-error", "service"),
        ("drop-no-close", "upstream.dropped", "network-instability"),
        ("rst", "upstream.dropped", "network-instability"),
    ],
)
async def test_upstream_behaviour_is_attributed_to_the_upstream(fault: str, code: str, cause: str) -> None:
    async def app(base: str) -> None:
        with contextlib.suppress(Exception):
            await apps.healthy(base)

    judged = await run_app(app, MockConfig(fault=fault, fault_after_s=0.5))
    found = [f for _c, fs in judged for f in fs if f.code == code]
    assert found and found[0].cause == cause, [(f.code, f.cause) for _c, fs in judged for f in fs]
    # the app did nothing wrong: no client.* finding
    assert not {c for c in codes(judged) if c.startswith("client.")}


async def test_a_rest_upload_flows_through_the_watch() -> None:
    """A REST POST's body streams to the upstream while its answer is awaited (it used to wait for the
    answer first: a 90 kB upload hung until the watch ended)."""
    async with watching() as (relay, base):
        await asyncio.wait_for(apps.sdk_prerecorded(base), 30)
        await relay.stop(grace_s=3)
    (conn,) = relay.connections
    assert conn.handshake is not None and not conn.handshake.websocket and conn.handshake.method == "POST"
    assert conn.answer.status == 200 and conn.answer.request_id and conn.answer.body
    assert conn.client_stats.wire_bytes == 0 or conn.upgraded_t is None
    assert analyze(conn) == []


async def test_an_upstream_that_never_closes_is_not_the_apps_fault() -> None:
    ((_conn, findings),) = await run_app(apps.gives_up_waiting, MockConfig(fault="never-close-reply"))
    assert [(f.code, f.severity) for f in findings] == [("upstream.no-close-reply", Status.WARN)]
    # the same app against a healthy upstream: Deepgram's close comes well inside its 1.5 s
    ((_conn, findings),) = await run_app(apps.gives_up_waiting)
    assert findings == []


async def test_rejection_is_forwarded_to_the_app_untouched() -> None:
    async with watching(MockConfig(fault="reject-401")) as (_relay, base):
        reader, writer = await asyncio.open_connection(*base.removeprefix("ws://").rsplit(":", 1))
        writer.write(
            b"GET /v1/listen HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        answer = await asyncio.wait_for(reader.read(65536), 5)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 401") and b"dg-request-id" in answer.lower() and b"INVALID_AUTH" in answer


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_upstream() -> None:
    async def app(base: str) -> None:
        with contextlib.suppress(Exception):
            await apps.healthy(base)

    judged = await run_app(app, upstream=f"ws://127.0.0.1:{_closed_port()}")
    ((conn, findings),) = judged
    assert [f.code for f in findings] == ["upstream.unreachable"]
    assert conn.answer.outcome == "refused"


# --- hostile apps: the relay and the other connections survive ---------------------------------------


@pytest.mark.parametrize(
    "hostile",
    [apps.huge_frame, apps.garbage_handshake, apps.half_open, apps.hostile_headers, apps.unmasked_frames],
    ids=lambda a: a.__name__,
)
async def test_hostile_app_does_not_hurt_a_healthy_one(hostile: Callable[[str], Awaitable[None]]) -> None:
    async def both(base: str) -> None:
        async def quiet() -> None:
            with contextlib.suppress(Exception):
                await hostile(base)

        await asyncio.gather(quiet(), apps.healthy(base))

    judged = await run_app(both)
    healthy = [(c, fs) for c, fs in judged if c.handshake and c.handshake.query.get("encoding") == "linear16"]
    assert len(healthy) == 1 and healthy[0][1] == [], healthy
    assert all(c.relay_error is None for c, _fs in judged)
    for conn, findings in judged:
        result_for(conn, findings).to_dict()  # every record makes a result


async def test_huge_frame_is_counted_not_buffered() -> None:
    ((conn, _f),) = await run_app(apps.huge_frame)
    assert conn.client_stats.frames == 0  # the frame never ended
    assert conn.client_stats.wire_bytes >= 1 << 20  # counted as it passed (the app aborts mid-frame)
    assert len(repr(conn.to_dict())) < 20_000


# --- pure helpers -------------------------------------------------------------------------------


def test_sniff_container() -> None:
    wav = apps.SPEECH_WAV.read_bytes()[:16]
    full = apps.SPEECH_WAV.read_bytes()[:64]
    assert sniff_container(wav) is not None and sniff_container(wav).name == "wav"  # type: ignore[union-attr]
    c = sniff_container(full)
    assert c is not None and c.sample_rate == 16000 and c.channels == 1
    assert sniff_container(b"OggS\x00\x02") and sniff_container(b"\x1a\x45\xdf\xa3")
    assert sniff_container(b"ID3\x04") and sniff_container(b"fLaC")
    assert sniff_container(b"\x00\x00\x01\x00" * 4) is None  # PCM near silence
    assert sniff_container(b"\xff\xff\xfe\xff" * 4, strict_mp3=True) is None  # PCM -1, -2: not an MP3


def test_sdk_products_from_real_user_agents() -> None:
    assert sdk_products("@deepgram/sdk/3.4.0 python/11.4") == [("pypi", "deepgram-sdk", "3.4.0")]
    assert sdk_products("@deepgram/sdk/3.2.1 node/v20.11.0") == [("npm", "@deepgram/sdk", "3.2.1")]
    assert sdk_products("deepgram-sdk/7.17.0") == [("pypi", "deepgram-sdk", "7.17.0")]
    assert sdk_products("Python/3.11 websockets/12.0") == [("pypi", "websockets", "12.0")]
    assert sdk_products("Mozilla/5.0 (X11; Linux x86_64)") == []


def test_events_are_bounded_per_connection() -> None:
    from wsdoctor.probes.watch import MAX_EVENTS, ConnectionRecorder
    from wsdoctor.probes.wireframes import WireFrame

    rec = ConnectionRecorder(1, 0.0, 0.0, "127.0.0.1:1", "ws://x:1")
    rec.upgraded(0.0)
    ping = WireFrame(opcode=0x9, fin=True, rsv=0, masked=True, length=0, kept=b"")
    for i in range(20_000):
        rec.frames("client", [ping], i * 0.001, 6)
    obs = rec.observation(30.0)
    assert len(obs.events) == MAX_EVENTS and obs.events_dropped == 20_000 - MAX_EVENTS
    assert obs.client_stats.pings == 20_000


def test_record_round_trip() -> None:
    from wsdoctor.probes.watch import Handshake, SideEnd, SideStats, UpstreamAnswer

    conn = WatchedConnection(
        index=1,
        started_at_s=0.0,
        duration_s=1.0,
        client="127.0.0.1:1",
        upstream="ws://x:1",
        handshake=Handshake(method="GET", path="/v1/listen", query={"model": "nova-3"}),
        answer=UpstreamAnswer(status=101),
        client_stats=SideStats(),
        upstream_stats=SideStats(),
        client_end=SideEnd(),
        upstream_end=SideEnd(close_code=1000, close_t=1.0),
    )
    assert WatchedConnection.from_dict(conn.to_dict()) == conn
    assert replace(conn, index=2).index == 2


# --- hostile upstreams: the app gets what the upstream sent, the relay records and survives ----------


@contextlib.asynccontextmanager
async def raw_upstream(
    behaviour: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[str]:
    """A TCP server on 127.0.0.1 that reads the request head, then runs ``behaviour``."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                await behaviour(reader, writer)
        finally:
            writer.transport.abort()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)


_ACCEPT = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
)


async def _huge_frame_up(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    w.write(_ACCEPT + bytes([0x82, 127]) + (1 << 30).to_bytes(8, "big"))
    for _ in range(64):
        w.write(b"\x00" * 65536)
        await w.drain()


async def _garbage_after_101(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    w.write(_ACCEPT + bytes(range(256)) * 64)
    await w.drain()
    await asyncio.sleep(0.5)


async def _not_http(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    w.write(b"SSH-2.0-OpenSSH_9.6\r\n" + b"\xff" * 100 + b"\r\n\r\n")
    await w.drain()
    await asyncio.sleep(0.5)


async def _silent(_r: asyncio.StreamReader, _w: asyncio.StreamWriter) -> None:
    await asyncio.sleep(10)


async def _script_close(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    reason = b"<script>alert(1)</script>\x1b[31m\x07"
    w.write(_ACCEPT + bytes([0x88, 2 + len(reason)]) + (1011).to_bytes(2, "big") + reason)
    await w.drain()
    await asyncio.sleep(0.5)


@pytest.mark.parametrize(
    ("behaviour", "expect"),
    [
        (_huge_frame_up, "upgraded"),
        (_garbage_after_101, "upgraded"),
        (_not_http, "upstream.unreachable"),
        (_silent, "upstream.unreachable"),
        (_script_close, "upstream.closed-error"),
    ],
    ids=lambda v: getattr(v, "__name__", v),
)
async def test_hostile_upstream(
    behaviour: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]], expect: str
) -> None:
    async def app(base: str) -> None:
        with contextlib.suppress(Exception):
            reader, writer = await apps.raw_upgrade(base, expect_101=False)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(3):
                    while await reader.read(65536):
                        pass
            writer.close()

    async with raw_upstream(behaviour) as url:
        ctx = Context(target=Target.parse(url), options=RunOptions(connect_timeout_s=2))
        relay = Relay(RelayConfig("127.0.0.1", 0, ctx, handshake_timeout_s=1.5))
        host, port = await relay.start()
        try:
            await asyncio.wait_for(app(f"ws://{host}:{port}"), 20)
            await relay.stop(grace_s=3)
        finally:
            await relay.stop()
    (conn,) = relay.connections
    assert conn.relay_error is None
    findings = analyze(conn)
    result_for(conn, findings).to_dict()
    if expect == "upgraded":
        assert conn.upgraded_t is not None and conn.upstream_stats.wire_bytes > 0
        assert len(repr(conn.to_dict())) < 50_000
    else:
        assert expect in {f.code for f in findings}, [f.code for f in findings]


async def test_a_bug_of_ours_ends_one_connection_as_an_error_not_the_relay(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure inside the relay's own code (here: the handshake recorder made to raise on the
    second connection) is that connection's error result; the relay and the next connection go on."""
    calls = {"n": 0}
    original = Relay._handshake

    def flaky(self: Relay, request: Any, raw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("injected bug")
        return original(self, request, raw)

    monkeypatch.setattr(Relay, "_handshake", flaky)

    async def three(base: str) -> None:
        for _ in range(3):
            with contextlib.suppress(Exception):
                await apps.healthy(base)

    judged = await run_app(three)
    assert [c.relay_error is not None for c, _f in judged] == [False, True, False]
    bad = next(c for c, _f in judged if c.relay_error)
    assert result_for(bad, analyze(bad)).status is Status.ERROR and "injected bug" in (bad.relay_error or "")
    assert all(fs == [] for c, fs in judged if not c.relay_error)
