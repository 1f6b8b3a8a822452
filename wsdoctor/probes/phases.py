"""``--repeat N``: the connection phases of N sequential connections, timed by the lifecycle marks.

Each attempt: a fresh :class:`WsProbe` (resolve, TCP, proxy, TLS, Upgrade, each stamped), then
real-time speech until the first Results or ``first_result_wait_s``, then our close frame (bounded
wait) and the transport is dropped. One sample per attempt; nothing judged here.
"""

from __future__ import annotations

import asyncio

from wsdoctor import deepgram
from wsdoctor.check import Context
from wsdoctor.model import JSONValue
from wsdoctor.probes.audio import CHUNK_S, load_wav
from wsdoctor.probes.lifecycle import phase_durations
from wsdoctor.probes.session import pump_until_end, stop_pump, wait_end
from wsdoctor.probes.wsclient import WsProbe

__all__ = ["repeat_phases"]


async def _one(ctx: Context, frames: list[bytes], first_result_wait_s: float) -> dict[str, JSONValue]:
    loop = asyncio.get_running_loop()
    async with WsProbe(ctx, credentials=True) as probe:
        upgrade = await probe.connect()
        sample: dict[str, JSONValue] = {"outcome": upgrade.outcome, **phase_durations(upgrade.marks)}
        sample["first_result_s"] = None
        if upgrade.outcome != "upgraded":
            return sample
        pump = asyncio.create_task(pump_until_end(probe))
        try:
            deadline = loop.time() + first_result_wait_s
            next_send = loop.time()
            i = 0
            while loop.time() < deadline and probe.is_open:
                if any(e.msg_type == deepgram.ServerMessage.RESULTS for e in probe.events):
                    break
                if i < len(frames) and loop.time() >= next_send:
                    await probe.send_audio(frames[i])
                    i += 1
                    next_send += CHUNK_S
                await asyncio.sleep(min(0.01, max(0.0, deadline - loop.time())))
            first = next((e for e in probe.events if e.msg_type == deepgram.ServerMessage.RESULTS), None)
            if first is not None and probe.audio_first_t is not None:
                sample["first_result_s"] = round(first.t_s - probe.audio_first_t, 6)
            await probe.send_close(1000)
            await wait_end(pump, 1.0)
        finally:
            await stop_pump(pump)
        return sample


async def repeat_phases(ctx: Context, n: int, first_result_wait_s: float) -> list[dict[str, JSONValue]]:
    frames = load_wav(ctx.options.audio_path).chunks()
    return [await _one(ctx, frames, first_result_wait_s) for _ in range(n)]
