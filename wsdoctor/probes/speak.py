"""One streaming TTS session (/v1/speak), recorded: text in, Flush, audio and Flushed back, Close.

Theory of operation. Like :mod:`wsdoctor.probes.session` for listen, on one authenticated
:class:`~wsdoctor.probes.wsclient.WsProbe`: send a sentence as ``Speak``, then ``Flush``; wait
(bounded by ``close_wait_s``) for the audio and the ``Flushed``; send ``Close`` and wait (bounded)
for the end. Every frame is a recorded event; the times the judge needs are taken from the probe's
clock. Nothing here judges (checks/speak.py does).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from wsdoctor import deepgram
from wsdoctor.check import Context
from wsdoctor.model import EndKind, Outcome
from wsdoctor.probes.session import first_incoming, pump_until_end, stop_pump, wait_end, wait_for_message
from wsdoctor.probes.wsclient import UpgradeObservation, WireEvent, WsProbe
from wsdoctor.record import Record

__all__ = ["SENTENCE", "SpeakObservation", "run_speak"]

SENTENCE = "Hello from wsdoctor. This sentence checks that streaming text to speech works end to end."


@dataclass(frozen=True, slots=True)
class SpeakObservation(Record):
    upgrade: UpgradeObservation
    close_wait_s: float
    open_t: float | None = None
    flush_t: float | None = None  # our Flush went out
    first_audio_t: float | None = None
    flushed_t: float | None = None  # Deepgram's Flushed arrived
    close_sent_t: float | None = None  # our Close message went out
    end_t: float | None = None
    terminal: EndKind | None = None
    audio_bytes: int = 0
    events: tuple[WireEvent, ...] = ()


async def run_speak(ctx: Context, *, close_wait_s: float) -> SpeakObservation:
    async with WsProbe(ctx, credentials=True) as probe:
        upgrade = await probe.connect()
        if upgrade.outcome is not Outcome.UPGRADED:
            return SpeakObservation(upgrade=upgrade, close_wait_s=close_wait_s)
        open_t = probe.now()
        pump = asyncio.create_task(pump_until_end(probe))
        flush_t = close_sent_t = None
        try:
            await probe.send_json({"type": deepgram.SpeakMessage.SPEAK.value, "text": SENTENCE})
            await probe.send_json({"type": deepgram.SpeakMessage.FLUSH.value})
            flush_t = probe.now()
            await wait_for_message(probe, "Flushed", ctx.timeout(close_wait_s))
            if probe.is_open:
                await probe.send_json({"type": deepgram.SpeakMessage.CLOSE.value})
                close_sent_t = probe.now()
            await wait_end(pump, ctx.timeout(close_wait_s))
        finally:
            await stop_pump(pump)
        events = list(probe.events)
        end = probe.terminal()
        incoming = [e for e in events if e.direction == "in"]
        return SpeakObservation(
            upgrade=upgrade,
            close_wait_s=close_wait_s,
            open_t=open_t,
            flush_t=flush_t,
            first_audio_t=next((e.t_s for e in incoming if e.kind == "binary"), None),
            flushed_t=first_incoming(events, "Flushed"),
            close_sent_t=close_sent_t,
            end_t=end.t_s if end else probe.now(),
            terminal=end.end_kind if end else None,
            audio_bytes=sum(e.size for e in incoming if e.kind == "binary"),
            events=tuple(events),
        )
