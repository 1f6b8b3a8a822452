"""The idle family: three authenticated connections left idle side by side.

Theory of operation. All three are upgraded together, so the family's wall time is the longest
window, not the sum; ``--idle-max`` bounds it.

- ``silent`` sends nothing at all after the 101. Deepgram closes such a stream with 1011 NET-0001
  after about 10-12 s (its Metadata first); a TCP end *without* a close frame earlier than that was
  cut by something on the path (proxy, firewall, load balancer idle timeout).
- ``keepalive`` sends 0.2 s of audio (KeepAlive before any audio may not count, per Deepgram), then
  a text ``{"type": "KeepAlive"}`` every ``keepalive_every_s``. It must outlive the silent one.
- ``ping`` does the same and also sends a WebSocket ping every ``ping_every_s``: it tells whether
  the path passes control frames, how long pongs take, and whether server->client traffic (a pong)
  keeps a path open that KeepAlive alone (client->server only) does not -- nginx's
  ``proxy_read_timeout`` counts only what the upstream sends.

The KeepAlive and ping connections stop ``margin_s`` after the silent one ended (or at
``idle_max_s``), then close cleanly with CloseStream. Every wait is bounded; nothing here judges.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

from wsdoctor import deepgram
from wsdoctor.check import Context
from wsdoctor.model import EndKind
from wsdoctor.probes.audio import load_wav
from wsdoctor.probes.session import pump_until_end, stop_pump, wait_end
from wsdoctor.probes.wsclient import UpgradeObservation, WireEvent, WsProbe
from wsdoctor.record import Record

__all__ = ["IdleConnection", "IdleFamily", "IdleName", "run_idle_family"]

MARGIN_S = 1.5  # how long the KeepAlive connections must outlive the silent one
LEAD_AUDIO_S = 0.2


#: The idle family's three connections: silent after the lead audio, KeepAlive messages, pings.
IdleName = Literal["silent", "keepalive", "ping"]


@dataclass(frozen=True, slots=True)
class IdleConnection(Record):
    name: IdleName
    upgrade: UpgradeObservation
    open_t: float | None = None  # seconds since this connection's start
    idle_from_t: float | None = None  # when the idle period began (after the lead audio)
    keepalive_every_s: float | None = None
    ping_every_s: float | None = None
    keepalives_sent: int = 0
    pings_sent: int = 0
    ended_by: EndKind | None = None  # how it ended; None = still open when we ended it
    closed_by_us: bool = False  # we ended it on purpose at the end of the watch
    end_t: float | None = None
    events: tuple[WireEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class IdleFamily(Record):
    idle_max_s: float
    margin_s: float
    wall_s: float
    connections: tuple[IdleConnection, ...]

    def get(self, name: str) -> IdleConnection | None:
        return next((c for c in self.connections if c.name == name), None)


async def _watch(
    ctx: Context,
    name: IdleName,
    *,
    silent_done: asyncio.Event,
    silent_end: list[float],
    keepalive_every_s: float | None,
    ping_every_s: float | None,
    margin_s: float,
) -> IdleConnection:
    loop = asyncio.get_running_loop()
    hard_stop = loop.time() + ctx.options.idle_max_s
    async with WsProbe(ctx, credentials=True) as probe:
        upgrade = await probe.connect()
        if upgrade.outcome != "upgraded":
            if name == "silent":
                silent_end.append(loop.time())
                silent_done.set()
            return IdleConnection(name=name, upgrade=upgrade)
        open_t = probe.now()
        pump = asyncio.create_task(pump_until_end(probe))
        keepalives = pings = 0
        closed_by_us = False
        idle_from_t: float | None = None
        try:
            if name != "silent":
                audio = load_wav(ctx.options.audio_path)
                await probe.send_audio(audio.chunks(LEAD_AUDIO_S)[0])
            idle_from_t = probe.now()
            next_ka = loop.time() + (keepalive_every_s or 0)
            next_ping = loop.time() + (ping_every_s or 0)
            while not pump.done():
                now = loop.time()
                stop_at = (
                    hard_stop
                    if name == "silent" or not silent_done.is_set()
                    else min(hard_stop, silent_end[0] + margin_s)
                )
                if now >= stop_at:
                    break
                if keepalive_every_s and now >= next_ka:
                    keepalives += await probe.send_json(deepgram.client_message(deepgram.ClientMessage.KEEPALIVE))
                    next_ka += keepalive_every_s
                if ping_every_s and now >= next_ping:
                    pings += await probe.send_ping(f"wsdoctor-{pings}".encode())
                    next_ping += ping_every_s
                wake = min(stop_at, next_ka if keepalive_every_s else stop_at, next_ping if ping_every_s else stop_at)
                waits: set[asyncio.Future[Any]] = {pump}
                if name != "silent" and not silent_done.is_set():
                    waits.add(asyncio.ensure_future(silent_done.wait()))
                _done, pending = await asyncio.wait(
                    waits, timeout=max(0.0, wake - loop.time()), return_when=asyncio.FIRST_COMPLETED
                )
                for extra in pending - {pump}:
                    extra.cancel()
            if probe.terminal() is None:
                # Still open: end it the polite way, bounded.
                closed_by_us = True
                await probe.send_json(deepgram.client_message(deepgram.ClientMessage.CLOSE_STREAM))
                if not await wait_end(pump, 2.0):
                    await probe.send_close(1000)
                    await wait_end(pump, 1.0)
        finally:
            if name == "silent":
                silent_end.append(loop.time())
                silent_done.set()
            await stop_pump(pump)
        end = probe.terminal()
        return IdleConnection(
            name=name,
            upgrade=upgrade,
            open_t=open_t,
            idle_from_t=idle_from_t,
            keepalive_every_s=keepalive_every_s,
            ping_every_s=ping_every_s,
            keepalives_sent=keepalives,
            pings_sent=pings,
            ended_by=end.end_kind if end else None,
            closed_by_us=closed_by_us,
            end_t=end.t_s if end else probe.now(),
            events=tuple(probe.events),
        )


async def run_idle_family(ctx: Context, margin_s: float = MARGIN_S) -> IdleFamily:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    silent_done = asyncio.Event()
    silent_end: list[float] = []
    ka, ping = ctx.options.keepalive_every_s, ctx.options.ping_every_s
    common: dict[str, Any] = {"silent_done": silent_done, "silent_end": silent_end, "margin_s": margin_s}
    connections = await asyncio.gather(
        _watch(ctx, "silent", keepalive_every_s=None, ping_every_s=None, **common),
        _watch(ctx, "keepalive", keepalive_every_s=ka, ping_every_s=None, **common),
        _watch(ctx, "ping", keepalive_every_s=ka, ping_every_s=ping, **common),
    )
    return IdleFamily(
        idle_max_s=ctx.options.idle_max_s,
        margin_s=margin_s,
        wall_s=round(loop.time() - t0, 3),
        connections=tuple(connections),
    )
