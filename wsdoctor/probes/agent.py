"""One Voice Agent session (/v1/agent/converse), recorded: Welcome, Settings, audio, KeepAlive, close.

Theory of operation. On one authenticated :class:`~wsdoctor.probes.wsclient.WsProbe`: wait (bounded)
for ``Welcome``; send ``Settings`` first (the minimal valid settings of Deepgram's docs: linear16
16 kHz in, Deepgram listen and speak, an OpenAI think model) and wait for ``SettingsApplied``; stream
the bundled speech at real time; send a ``KeepAlive``; then our close frame and wait (bounded) for
the reply. Nothing here judges (checks/agent.py does).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from wsdoctor import deepgram
from wsdoctor.check import Context
from wsdoctor.model import EndKind, Outcome
from wsdoctor.probes.audio import load_wav, stream_realtime
from wsdoctor.probes.session import pump_until_end, stop_pump, wait_end, wait_for_message
from wsdoctor.probes.wsclient import UpgradeObservation, WireEvent, WsProbe
from wsdoctor.record import JSONValue, Record

__all__ = ["SETTINGS", "AgentObservation", "run_agent"]

#: Settings as Deepgram's Voice Agent docs show them, smallest form (validated against the SDK's
#: AgentV1Settings in tests).
SETTINGS: dict[str, JSONValue] = {
    "type": deepgram.AGENT_SETTINGS,
    "audio": {"input": {"encoding": "linear16", "sample_rate": 16000}},
    "agent": {
        "listen": {"provider": {"type": "deepgram", "model": "nova-3"}},
        "think": {"provider": {"type": "open_ai", "model": "gpt-4o-mini"}},
        "speak": {"provider": {"type": "deepgram", "model": "aura-2-thalia-en"}},
    },
}


@dataclass(frozen=True, slots=True)
class AgentObservation(Record):
    upgrade: UpgradeObservation
    close_wait_s: float
    open_t: float | None = None
    welcome_t: float | None = None
    settings_t: float | None = None  # our Settings went out
    applied_t: float | None = None  # SettingsApplied arrived
    audio_s: float = 0.0
    close_sent_t: float | None = None
    end_t: float | None = None
    terminal: EndKind | None = None
    events: tuple[WireEvent, ...] = ()


async def run_agent(ctx: Context, *, close_wait_s: float) -> AgentObservation:
    async with WsProbe(ctx, credentials=True) as probe:
        upgrade = await probe.connect()
        if upgrade.outcome is not Outcome.UPGRADED:
            return AgentObservation(upgrade=upgrade, close_wait_s=close_wait_s)
        open_t = probe.now()
        pump = asyncio.create_task(pump_until_end(probe))
        welcome_t = applied_t = settings_t = None
        audio_s = 0.0
        try:
            welcome_t = await wait_for_message(probe, deepgram.AGENT_WELCOME, ctx.timeout(close_wait_s))
            if probe.is_open:
                await probe.send_json(SETTINGS)
                settings_t = probe.now()
                applied_t = await wait_for_message(probe, deepgram.AGENT_SETTINGS_APPLIED, ctx.timeout(close_wait_s))
            if applied_t is not None and probe.is_open:
                audio = load_wav(ctx.options.audio_path)
                chunks = audio.chunks(None)
                sent = await stream_realtime(chunks, probe.send_audio)
                audio_s = round(max(0, sum(len(c) for c in chunks[:sent]) - len(audio.header)) / audio.bytes_per_s, 3)
                await probe.send_json({"type": "KeepAlive"})
            if probe.is_open:
                await probe.send_close(1000)
            await wait_end(pump, ctx.timeout(close_wait_s))
        finally:
            await stop_pump(pump)
        end = probe.terminal()
        return AgentObservation(
            upgrade=upgrade,
            close_wait_s=close_wait_s,
            open_t=open_t,
            welcome_t=welcome_t,
            settings_t=settings_t,
            applied_t=applied_t,
            audio_s=audio_s,
            close_sent_t=probe.close_sent_t,
            end_t=end.t_s if end else probe.now(),
            terminal=end.end_kind if end else None,
            events=tuple(probe.events),
        )
