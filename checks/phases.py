"""phases.repeat: the connection phases, N times over, as percentiles (``--repeat N``).

Theory of operation: N authenticated connections one after another (not in parallel: this measures
latency, not capacity). Each is timed through the lifecycle stages -- resolve, TCP connect, proxy
CONNECT, TLS, Upgrade -- then streams real speech at real-time pace until the first Results
(bounded), and closes. ``analyze`` reports min/p50/p95/p99/max per phase: a flaky path shows up as
a wide spread (p99 far above p50) in the phase where the trouble is, and failed attempts are counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from checks.ws import AuthenticatedCheck
from wsdoctor.check import Context, RunOptions
from wsdoctor.model import CheckResult, Finding, JSONValue, Outcome, Status
from wsdoctor.probes.phases import REPEAT_PHASES, PhaseSample, RepeatObservation

__all__ = ["CHECKS", "PhaseStats", "PhasesRepeat", "analyze", "phase_stats"]

FIRST_RESULT_WAIT_S = 5.0


@dataclass(frozen=True, slots=True)
class PhaseStats:
    """One phase's durations over the samples that reached it (all ``None`` when none did)."""

    n: int
    min: float | None = None
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None

    def to_dict(self) -> dict[str, JSONValue]:
        return {"n": self.n, "min": self.min, "p50": self.p50, "p95": self.p95, "p99": self.p99, "max": self.max}


def _rank(ordered: Sequence[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))]


def phase_stats(samples: Sequence[PhaseSample]) -> dict[str, PhaseStats]:
    """Phase id -> its statistics, for every phase a sample times (in connection order)."""
    stats: dict[str, PhaseStats] = {}
    for phase in REPEAT_PHASES:
        values = sorted(d for s in samples if (d := s.duration(phase)) is not None)
        if not values:
            stats[phase.id] = PhaseStats(n=0)
            continue
        stats[phase.id] = PhaseStats(
            n=len(values),
            min=round(values[0], 4),
            p50=round(_rank(values, 0.5), 4),
            p95=round(_rank(values, 0.95), 4),
            p99=round(_rank(values, 0.99), 4),
            max=round(values[-1], 4),
        )
    return stats


def analyze(obs: RepeatObservation) -> list[Finding]:
    """Judge the samples of ``--repeat N``: failed attempts, connections without Results, and
    phases whose p99 is far above their p50."""
    samples = obs.samples
    findings: list[Finding] = []
    failed = [s for s in samples if s.outcome is not Outcome.UPGRADED]
    if failed:
        kinds = Counter(s.outcome.value for s in failed)  # plain strings: the message and the JSON
        findings.append(
            Finding(
                "phases.failures",
                "network-instability",
                Status.FAIL if len(failed) == len(samples) else Status.WARN,
                f"{len(failed)} of {len(samples)} connection attempts failed: {dict(kinds)}",
                {"outcomes": dict(kinds)},
            )
        )
    no_result = [s for s in samples if s.outcome is Outcome.UPGRADED and s.first_result_s is None]
    if no_result:
        findings.append(
            Finding(
                "stream.no-results",
                "service",
                Status.WARN,
                f"{len(no_result)} of {len(samples)} connections got no Results within {FIRST_RESULT_WAIT_S:g} s",
                {"without_results": len(no_result)},
            )
        )
    for phase, st in phase_stats(samples).items():
        p50, p99 = st.p50, st.p99
        if p50 is not None and p99 is not None and p99 > 0.25 and p99 > 4 * max(p50, 0.01):
            findings.append(
                Finding(
                    "phases.latency-spread",
                    "network-instability",
                    Status.WARN,
                    f"the {phase} phase is erratic: p50 {p50 * 1000:.0f} ms but p99 {p99 * 1000:.0f} ms over "
                    f"{st.n} connections",
                    {"phase": phase, **st.to_dict()},
                )
            )
    return findings


class PhasesRepeat(AuthenticatedCheck[RepeatObservation]):
    apis: ClassVar[frozenset[str] | None] = frozenset({"listen"})  # /v1/listen's protocol
    id = "phases.repeat"
    title = "Connection phases, repeated: min/p50/p95/p99/max per phase (--repeat N)"
    timeout: ClassVar[float] = 60.0
    opt_in = "--repeat N"

    def deadline_s(self, options: RunOptions) -> float:
        per = 3 * options.connect_timeout_s + FIRST_RESULT_WAIT_S + 2.0
        return (options.repeat or 1) * per + 5.0

    @classmethod
    def requested(cls, options: RunOptions) -> bool:
        return bool(options.repeat)

    async def observe(self, ctx: Context) -> RepeatObservation | CheckResult:
        from wsdoctor.probes.phases import repeat_phases

        # ``or 0`` for mypy only: preflight() skipped a run without --repeat
        return await repeat_phases(ctx, ctx.options.repeat or 0, FIRST_RESULT_WAIT_S)

    def judge(self, obs: RepeatObservation, ctx: Context) -> list[Finding]:
        return analyze(obs)

    def summarize(self, obs: RepeatObservation, ctx: Context) -> str:
        parts = [
            f"{p} p50 {st.p50 * 1000:.1f} ms / p99 {st.p99 * 1000:.1f} ms"
            for p, st in phase_stats(obs.samples).items()
            if st.p50 is not None and st.p99 is not None
        ]
        return f"{len(obs.samples)} connections: " + "; ".join(parts)

    def measure(self, obs: RepeatObservation) -> dict[str, float | None]:
        metrics: dict[str, float | None] = {}
        for phase, st in phase_stats(obs.samples).items():
            metrics[f"{phase}_p50_s"] = st.p50
            metrics[f"{phase}_p95_s"] = st.p95
            metrics[f"{phase}_p99_s"] = st.p99
        return metrics

    def evidence(self, obs: RepeatObservation) -> dict[str, JSONValue]:
        return {"phases": {p: st.to_dict() for p, st in phase_stats(obs.samples).items()}, **obs.to_dict()}


CHECKS = (PhasesRepeat,)
