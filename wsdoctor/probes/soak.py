"""Soak: stream speech for S seconds like a long-running app, reconnecting when dropped.

Theory of operation. The bundled speech loops (header sent once per connection) at real-time
pace. When a connection ends before the soak does -- close frame, EOF, reset -- that is a *drop*:
it is recorded with when and how, and the probe reconnects the way a good client should (jittered
exponential backoff from 0.5 s, capped at 5 s), measuring how long the reconnect took. At the end
of the soak the live connection is closed politely (CloseStream, bounded wait). Per connection only
counters and the terminal event are kept, so an hour-long soak stays small.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, replace

from wsdoctor import deepgram
from wsdoctor.check import Context
from wsdoctor.model import EndKind, JSONValue, Outcome
from wsdoctor.probes.audio import CHUNK_S, load_wav
from wsdoctor.probes.session import pump_until_end, stop_pump, wait_end
from wsdoctor.probes.wsclient import WireEvent, WsProbe
from wsdoctor.record import Record

__all__ = ["SoakConnection", "SoakObservation", "run_soak"]

MAX_CONNECTIONS = 200  # a path that drops every second must not spin forever


@dataclass(frozen=True, slots=True)
class SoakConnection(Record):
    """One connection of the soak: when it started, how the Upgrade went and, if it opened, how
    long it streamed and how it ended."""

    start_s: float  # since the soak started
    outcome: Outcome
    reconnect_after_drop_s: float | None = None  # since the previous connection dropped
    status: int | None = None  # the HTTP status of a refused Upgrade
    audio_s: float | None = None
    results: int | None = None
    first_result_s: float | None = None
    dropped: bool | None = None  # it ended before the soak did (None: never opened)
    ended_by: EndKind | None = None
    end_s: float | None = None
    terminal: WireEvent | None = None
    open_for_s: float | None = None

    @property
    def opened(self) -> bool:
        return self.outcome is Outcome.UPGRADED

    def to_dict(self) -> dict[str, JSONValue]:
        d: dict[str, JSONValue] = {"start_s": self.start_s, "outcome": self.outcome.value}
        if self.reconnect_after_drop_s is not None:
            d["reconnect_after_drop_s"] = self.reconnect_after_drop_s
        if not self.opened:
            d["status"] = self.status
            return d
        d.update(
            {
                "audio_s": self.audio_s,
                "results": self.results,
                "first_result_s": self.first_result_s,
                "dropped": self.dropped,
                "ended_by": self.ended_by.value if self.ended_by else None,
                "end_s": self.end_s,
                "terminal": self.terminal.to_dict() if self.terminal else None,
                "open_for_s": self.open_for_s,
            }
        )
        return d


@dataclass(frozen=True, slots=True)
class SoakObservation(Record):
    soak_s: float
    wall_s: float
    audio_s: float
    connections: tuple[SoakConnection, ...] = ()


async def run_soak(ctx: Context, seconds: float) -> SoakObservation:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    end_at = t0 + seconds
    audio = load_wav(ctx.options.audio_path)
    body = audio.chunks()
    body[0] = body[0][len(audio.header) :]  # loop the PCM; the header goes once per connection
    connections: list[SoakConnection] = []
    total_audio = 0.0
    backoff = 0.5
    dropped_at: float | None = None
    while loop.time() < end_at and len(connections) < MAX_CONNECTIONS:
        async with WsProbe(ctx, credentials=True) as probe:
            started = loop.time()
            upgrade = await probe.connect()
            begun = SoakConnection(
                start_s=round(started - t0, 3),
                outcome=upgrade.outcome,
                reconnect_after_drop_s=round(loop.time() - dropped_at, 3) if dropped_at is not None else None,
            )
            if upgrade.outcome is not Outcome.UPGRADED:
                connections.append(replace(begun, status=upgrade.answer.status if upgrade.answer else None))
                delay = min(backoff, max(0.0, end_at - loop.time()))
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.5
            pump = asyncio.create_task(pump_until_end(probe))
            sent = 0
            try:
                frames = [audio.header + body[0], *body[1:]]
                i = 0
                next_send = loop.time()
                while loop.time() < end_at and not pump.done():
                    if not await probe.send_audio(frames[i] if i < len(frames) else body[i % len(body)]):
                        break
                    sent += 1
                    i += 1
                    next_send += CHUNK_S
                    await asyncio.wait({pump}, timeout=max(0.0, next_send - loop.time()))
                dropped = pump.done() or probe.terminal() is not None
                if not dropped:
                    await probe.send_json(deepgram.client_message(deepgram.ClientMessage.CLOSE_STREAM))
                    if not await wait_end(pump, ctx.options.close_wait_s):
                        await probe.send_close(1000)
                        await wait_end(pump, ctx.options.close_wait_s)
            finally:
                await stop_pump(pump)
            audio_s = round(sent * CHUNK_S, 3)
            total_audio += audio_s
            term = probe.terminal()
            results = [e for e in probe.events if e.msg_type == deepgram.ServerMessage.RESULTS]
            first_result_s = None
            if results and probe.audio_first_t is not None:
                first_result_s = round(results[0].t_s - probe.audio_first_t, 3)
            connections.append(
                replace(
                    begun,
                    audio_s=audio_s,
                    results=len(results),
                    first_result_s=first_result_s,
                    dropped=dropped,
                    ended_by=term.end_kind if term else None,
                    end_s=round(loop.time() - t0, 3),
                    terminal=term,
                    open_for_s=round(loop.time() - started, 3),
                )
            )
            if dropped:
                dropped_at = loop.time()
                await asyncio.sleep(min(backoff, max(0.0, end_at - loop.time())) * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, 5.0)
    return SoakObservation(
        soak_s=seconds, wall_s=round(loop.time() - t0, 3), audio_s=round(total_audio, 3), connections=tuple(connections)
    )
