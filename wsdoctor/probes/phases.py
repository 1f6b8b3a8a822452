"""``--repeat N``: the connection phases of N sequential connections, timed by the lifecycle marks.

Each attempt: a fresh :class:`WsProbe` (resolve, TCP, proxy, TLS, Upgrade, each stamped), then
real-time speech until the first Results or ``first_result_wait_s``, then our close frame (bounded
wait) and the transport is dropped. One :class:`PhaseSample` per attempt; nothing judged here.

The observation types are importable without the probe machinery (checks/phases.py judges them
on every run, and loading the WebSocket client is the probe's cost, paid only with ``--repeat``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wsdoctor.model import PHASES, Outcome, Phase
from wsdoctor.record import Record

if TYPE_CHECKING:
    from wsdoctor.check import Context

__all__ = ["REPEAT_PHASES", "PhaseSample", "RepeatObservation", "repeat_phases"]


@dataclass(frozen=True, slots=True)
class PhaseSample(Record):
    """One connection attempt: how it ended and how long each phase took (``None``: not reached).

    The duration fields are named by :data:`wsdoctor.model.PHASES`' metrics, so a phase's duration
    is read by its :class:`~wsdoctor.model.Phase`, never by a spelled-out key."""

    outcome: Outcome
    resolve_s: float | None
    connect_s: float | None
    proxy_s: float | None
    tls_s: float | None
    upgrade_s: float | None
    first_result_s: float | None  # from the first audio sent to the first Results

    def durations(self) -> dict[str, float | None]:
        """Phase metric -> seconds, for the phases of :data:`REPEAT_PHASES`."""
        return {
            "resolve_s": self.resolve_s,
            "connect_s": self.connect_s,
            "proxy_s": self.proxy_s,
            "tls_s": self.tls_s,
            "upgrade_s": self.upgrade_s,
            "first_result_s": self.first_result_s,
        }

    def duration(self, phase: Phase) -> float | None:
        return self.durations().get(phase.metric)


#: The phases one sample times, in connection order: every phase of the shared vocabulary but the
#: close handshake (an attempt drops its transport after a bounded wait for the close).
REPEAT_PHASES: tuple[Phase, ...] = tuple(
    p for p in PHASES if p.metric in {f.name for f in dataclasses.fields(PhaseSample)}
)


@dataclass(frozen=True, slots=True)
class RepeatObservation(Record):
    """The samples of ``--repeat N`` connections, in the order they were made."""

    samples: tuple[PhaseSample, ...]


async def _one(ctx: Context, frames: list[bytes], first_result_wait_s: float) -> PhaseSample:
    from wsdoctor import deepgram
    from wsdoctor.probes.audio import CHUNK_S
    from wsdoctor.probes.lifecycle import phase_durations
    from wsdoctor.probes.session import pump_until_end, stop_pump, wait_end
    from wsdoctor.probes.wsclient import WsProbe

    loop = asyncio.get_running_loop()
    async with WsProbe(ctx, credentials=True) as probe:
        upgrade = await probe.connect()
        took = phase_durations(upgrade.marks)
        sample = PhaseSample(
            outcome=Outcome.of(upgrade.outcome),
            resolve_s=took["resolve_s"],
            connect_s=took["connect_s"],
            proxy_s=took["proxy_s"],
            tls_s=took["tls_s"],
            upgrade_s=took["upgrade_s"],
            first_result_s=None,
        )
        if sample.outcome is not Outcome.UPGRADED:
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
                sample = dataclasses.replace(sample, first_result_s=round(first.t_s - probe.audio_first_t, 6))
            await probe.send_close(1000)
            await wait_end(pump, 1.0)
        finally:
            await stop_pump(pump)
        return sample


async def repeat_phases(ctx: Context, n: int, first_result_wait_s: float) -> RepeatObservation:
    from wsdoctor.probes.audio import load_wav

    frames = load_wav(ctx.options.audio_path).chunks()
    return RepeatObservation(samples=tuple([await _one(ctx, frames, first_result_wait_s) for _ in range(n)]))
