"""phases.repeat: the connection phases, N times over, as percentiles (``--repeat N``).

Theory of operation: N authenticated connections one after another (not in parallel: this measures
latency, not capacity). Each is timed through the lifecycle stages -- resolve, TCP connect, proxy
CONNECT, TLS, Upgrade -- then streams real speech at real-time pace until the first Results
(bounded), and closes. ``analyze`` reports min/p50/p95/p99/max per phase: a flaky path shows up as
a wide spread (p99 far above p50) in the phase where the trouble is, and failed attempts are counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from checks.ws import AuthenticatedCheck
from wsdoctor.check import Context, RunOptions
from wsdoctor.model import CheckResult, Finding, JSONValue, Status

__all__ = ["CHECKS", "PHASE_NAMES", "PhasesRepeat", "analyze", "phase_stats"]

PHASE_NAMES = ("resolve", "connect", "proxy", "tls", "upgrade", "first_result")
FIRST_RESULT_WAIT_S = 5.0


def _rank(ordered: Sequence[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))]


def phase_stats(samples: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float | None]]:
    stats: dict[str, dict[str, float | None]] = {}
    for phase in PHASE_NAMES:
        values = sorted(float(s[f"{phase}_s"]) for s in samples if s.get(f"{phase}_s") is not None)
        if not values:
            stats[phase] = {"n": 0, "min": None, "p50": None, "p95": None, "p99": None, "max": None}
            continue
        stats[phase] = {
            "n": len(values),
            "min": round(values[0], 4),
            "p50": round(_rank(values, 0.5), 4),
            "p95": round(_rank(values, 0.95), 4),
            "p99": round(_rank(values, 0.99), 4),
            "max": round(values[-1], 4),
        }
    return stats


def analyze(obs: Mapping[str, Any]) -> list[Finding]:
    samples = list(obs.get("samples", []))
    findings: list[Finding] = []
    failed = [s for s in samples if s.get("outcome") != "upgraded"]
    if failed:
        kinds = Counter(str(s.get("outcome")) for s in failed)
        findings.append(
            Finding(
                "phases.failures",
                "network-instability",
                Status.FAIL if len(failed) == len(samples) else Status.WARN,
                f"{len(failed)} of {len(samples)} connection attempts failed: {dict(kinds)}",
                {"outcomes": dict(kinds)},
            )
        )
    no_result = [s for s in samples if s.get("outcome") == "upgraded" and s.get("first_result_s") is None]
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
        p50, p99 = st["p50"], st["p99"]
        if p50 is not None and p99 is not None and p99 > 0.25 and p99 > 4 * max(p50, 0.01):
            findings.append(
                Finding(
                    "phases.latency-spread",
                    "network-instability",
                    Status.WARN,
                    f"the {phase} phase is erratic: p50 {p50 * 1000:.0f} ms but p99 {p99 * 1000:.0f} ms over "
                    f"{st['n']} connections",
                    {"phase": phase, **{k: v for k, v in st.items()}},
                )
            )
    return findings


class PhasesRepeat(AuthenticatedCheck):
    id = "phases.repeat"
    title = "Connection phases, repeated: min/p50/p95/p99/max per phase (--repeat N)"
    timeout: ClassVar[float] = 60.0

    def deadline_s(self, options: RunOptions) -> float:
        per = 3 * options.connect_timeout_s + FIRST_RESULT_WAIT_S + 2.0
        return (options.repeat or 1) * per + 5.0

    @classmethod
    def requested(cls, options: RunOptions) -> bool:
        return bool(options.repeat)

    async def run(self, ctx: Context) -> CheckResult:
        if not ctx.options.repeat:  # requested() says the same, in a way mypy cannot narrow
            return self.skip("not requested (use --repeat N)")
        if (skipped := self.auth_skip(ctx)) is not None:
            return skipped
        from wsdoctor.probes.phases import repeat_phases

        samples = await repeat_phases(ctx, ctx.options.repeat, FIRST_RESULT_WAIT_S)
        obs: dict[str, JSONValue] = {"samples": samples}
        stats = phase_stats(samples)
        metrics: dict[str, float | int | None] = {}
        for phase, st in stats.items():
            for k in ("p50", "p95", "p99"):
                metrics[f"{phase}_{k}_s"] = st[k]
        parts = [
            f"{p} p50 {st['p50'] * 1000:.1f} ms / p99 {st['p99'] * 1000:.1f} ms"
            for p, st in stats.items()
            if st["p50"] is not None and st["p99"] is not None
        ]
        summary = f"{len(samples)} connections: " + "; ".join(parts)
        return self.result(analyze(obs), summary=summary, metrics=metrics, evidence={"phases": stats, **obs})


CHECKS = (PhasesRepeat,)
