"""A scripted streaming session: upgrade, real-time audio, then an ending, all recorded.

Theory of operation. ``run_session`` opens one authenticated :class:`WsProbe`, starts a receive
pump (which answers pings and close frames like a good client and records every event), streams
the chosen seconds of real speech at real-time pace, and then ends the session one of three ways:

- ``"closestream"``: send ``{"type": "CloseStream"}`` and wait up to ``close_wait_s`` for
  Deepgram's final Results, Metadata and close frame; if none comes, send our own close frame and
  wait up to ``close_wait_s`` again for the reply. Every wait is bounded.
- ``"close"``: send our close frame (1000) right away and wait for the reply.
- ``"none"``: stop the audio and just listen until ``close_wait_s`` passes or the peer ends it.

The observation keeps the timestamps (seconds since the connection attempt) of the upgrade, first
and last audio, CloseStream and our close frame, plus every incoming event -- so ``analyze`` can
tell *when* a connection died: mid-stream, right after our close, or while idle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from wsdoctor import deepgram
from wsdoctor.check import Context
from wsdoctor.model import EndKind
from wsdoctor.probes.audio import load_wav, stream_realtime
from wsdoctor.probes.wsclient import UpgradeObservation, WireEvent, WsProbe
from wsdoctor.record import Record

__all__ = [
    "Ending",
    "SessionObservation",
    "first_incoming",
    "pump_until_end",
    "run_session",
    "stop_pump",
    "wait_end",
    "wait_for_message",
]


#: How a session ends on purpose: CloseStream (then wait), our close frame at once, or just listening.
Ending = Literal["closestream", "close", "none"]


@dataclass(frozen=True, slots=True)
class SessionObservation(Record):
    upgrade: UpgradeObservation
    ending: Ending
    close_wait_s: float
    audio_s: float = 0.0  # seconds of audio actually sent
    open_t: float | None = None
    audio_first_t: float | None = None
    audio_last_t: float | None = None
    closestream_t: float | None = None
    close_sent_t: float | None = None
    end_t: float | None = None  # when we stopped (terminal event or gave up waiting)
    terminal: EndKind | None = None  # how it ended; None = still open when we gave up
    events: tuple[WireEvent, ...] = ()


async def pump_until_end(probe: WsProbe) -> None:
    while probe.terminal() is None:
        await probe.receive(0.5)


async def stop_pump(pump: asyncio.Task[None]) -> None:
    """Cancel a receive pump and wait for it to stop -- without swallowing a cancellation of our
    own: ``suppress(CancelledError)`` around ``await pump`` would also eat the one a deadline or a
    signal sends the check, which then runs on as if nothing happened."""
    pump.cancel()
    try:
        await pump
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # we were cancelled too, not only the pump


async def wait_end(pump: asyncio.Task[None], seconds: float) -> bool:
    if not pump.done():
        await asyncio.wait({pump}, timeout=max(seconds, 0.0))
    return pump.done()


def first_incoming(events: Iterable[WireEvent], msg_type: str) -> float | None:
    """When the first incoming message of ``msg_type`` arrived (``None``: none did)."""
    return next((e.t_s for e in events if e.direction == "in" and e.msg_type == msg_type), None)


async def wait_for_message(probe: WsProbe, msg_type: str, seconds: float) -> float | None:
    """Wait (bounded) until a message of ``msg_type`` has arrived, while a receive pump runs; its
    time, or ``None`` when the wait ran out or the connection ended without one."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (found := first_incoming(probe.events, msg_type)) is None:
        if probe.terminal() is not None or loop.time() >= deadline:
            return None
        await asyncio.sleep(0.02)
    return found


async def run_session(
    ctx: Context, *, audio_seconds: float | None, ending: Ending, close_wait_s: float
) -> SessionObservation:
    audio = load_wav(ctx.options.audio_path)
    chunks = audio.chunks(audio_seconds)
    closestream_t = None
    async with WsProbe(ctx, credentials=True) as probe:
        upgrade = await probe.connect()
        if upgrade.outcome != "upgraded":
            return SessionObservation(upgrade=upgrade, ending=ending, close_wait_s=close_wait_s)
        open_t = probe.now()
        pump = asyncio.create_task(pump_until_end(probe))
        try:
            sent = 0
            if ending != "close":
                sent = await stream_realtime(chunks, probe.send_audio)
            if ending == "closestream" and probe.is_open:
                await probe.send_json(deepgram.client_message(deepgram.ClientMessage.CLOSE_STREAM))
                closestream_t = probe.now()
                if not await wait_end(pump, close_wait_s) and probe.is_open:
                    await probe.send_close(1000)
            elif ending == "close":
                await probe.send_close(1000)
            await wait_end(pump, close_wait_s)
        finally:
            await stop_pump(pump)
        end = probe.terminal()
        audio_s = round(max(0, sum(len(c) for c in chunks[:sent]) - len(audio.header)) / audio.bytes_per_s, 3)
        return SessionObservation(
            upgrade=upgrade,
            ending=ending,
            close_wait_s=close_wait_s,
            audio_s=audio_s,
            open_t=open_t,
            audio_first_t=probe.audio_first_t,
            audio_last_t=probe.audio_last_t,
            closestream_t=closestream_t,
            close_sent_t=probe.close_sent_t,
            end_t=end.t_s if end else probe.now(),
            terminal=end.end_kind if end else None,
            events=tuple(probe.events),
        )
