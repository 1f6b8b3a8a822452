"""stream.transcribe: does real speech streamed at real time come back as transcripts?

Theory of operation: one authenticated connection streams the bundled speech WAV (2.8 s, header
first, 100 ms frames at real-time pace), then sends CloseStream and waits (bounded) for the end.
``analyze`` judges the streaming part only -- time to first Results, how many arrived, whether any
transcript is non-empty, and whether the connection died *mid-stream* (the close family judges the
close handshake itself). Deepgram's first Results arrive about 1 s after audio starts.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

from checks.close import judge_ending, terminal_event
from checks.ws import AuthenticatedCheck
from wsdoctor import deepgram
from wsdoctor.check import Context, RunOptions, finding
from wsdoctor.model import CheckResult, Finding, JSONValue, Outcome, Status
from wsdoctor.probes.audio import CHUNK_S

__all__ = ["CHECKS", "StreamSoak", "StreamTranscribe", "analyze", "analyze_soak", "soak_metrics", "stream_metrics"]

if TYPE_CHECKING:  # the probes (h11, wsproto) load when a check runs, not when checks are listed
    from wsdoctor.probes.session import SessionObservation
    from wsdoctor.probes.soak import SoakObservation
    from wsdoctor.probes.wsclient import WireEvent


def _results(obs: SessionObservation) -> list[WireEvent]:
    return [e for e in obs.events if e.direction == "in" and e.msg_type == deepgram.ServerMessage.RESULTS]


def _number(detail: Mapping[str, JSONValue], key: str) -> float | None:
    value = detail.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (no interpolation: with a handful of Results, report what was seen)."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))], 3)


def stream_metrics(obs: SessionObservation) -> dict[str, float | int | None]:
    """Streaming health from the recorded wire: first result, cadence, jitter, latency, pace.

    Audio is sent at real time in ``CHUNK_S`` frames from ``audio_first_t``: the frame holding audio
    up to second ``t`` leaves at ``audio_first_t + t - CHUNK_S``. A Results covering
    ``[start, start + duration]`` arriving at ``T`` has a latency of ``T - (audio_first_t + start +
    duration - CHUNK_S)`` -- how far a live caption lags behind the speech it transcribes.
    """
    results = _results(obs)
    start = obs.audio_first_t
    last = obs.audio_last_t
    first = round(results[0].t_s - start, 3) if results and start is not None else None
    gaps = [b.t_s - a.t_s for a, b in itertools.pairwise(results)]
    latencies = []
    if start is not None:
        for r in results:
            begin, duration = _number(r.detail, "start"), _number(r.detail, "duration")
            if begin is not None and duration is not None:
                latencies.append(r.t_s - (start + begin + duration - CHUNK_S))
    transcript = " ".join(str(r.detail.get("transcript") or "") for r in results).strip()
    audio_s = obs.audio_s
    sending_s = (last - start + CHUNK_S) if start is not None and last is not None else None  # + the last frame
    return {
        "first_result_s": first,
        "results": len(results),
        "audio_s": audio_s,
        "max_result_gap_s": round(max(gaps), 3) if gaps else None,
        "result_jitter_s": round(statistics.pstdev(gaps), 3) if len(gaps) >= 2 else None,
        "result_latency_p50_s": _percentile(latencies, 0.5),
        "result_latency_max_s": round(max(latencies), 3) if latencies else None,
        "send_pace": round(audio_s / sending_s, 3) if audio_s and sending_s else None,
        "transcript_chars": len(transcript),
    }


def analyze(obs: SessionObservation, slow_first_result_s: float = 3.0) -> list[Finding]:
    if obs.upgrade.outcome is not Outcome.UPGRADED:
        return []
    findings: list[Finding] = []
    term = terminal_event(obs.events)
    cs_t = obs.closestream_t
    if term is not None and (cs_t is None or term.t_s < cs_t):
        into = term.t_s - (obs.open_t or 0.0)
        f = judge_ending(term.end_kind, term, f"{into:.1f} s into the stream")
        if f:
            findings.append(f)
    m = stream_metrics(obs)
    upgrade_s = None
    marks = dict(obs.upgrade.marks)
    if "upgrading" in marks and "open" in marks:
        upgrade_s = marks["open"] - marks["upgrading"]
    if m["results"] == 0 and not findings:
        findings.append(
            finding(
                "stream.no-results",
                Status.FAIL,
                f"no Results arrived for {m['audio_s']} s of speech",
                {"metrics": m},
            )
        )
    first = m["first_result_s"]
    if isinstance(first, (int, float)) and first > slow_first_result_s:
        severity = Status.FAIL if first > 2 * slow_first_result_s else Status.WARN
        # A slow path shows in the handshake too; a fast handshake with slow results is the service.
        cause = "network-instability" if upgrade_s is not None and upgrade_s > 1.0 else "service"
        findings.append(
            Finding(
                "stream.slow-first-result",
                cause,
                severity,
                f"the first Results came {first:.1f} s after the audio started (Deepgram: ~1 s)",
                {"first_result_s": first, "upgrade_s": upgrade_s},
            )
        )
    malformed = [e for e in obs.events if e.direction == "in" and e.detail.get("problems")]
    if malformed:
        bad = malformed[0].detail
        problems = bad.get("problems")
        listed = [str(p) for p in problems] if isinstance(problems, list) else []
        said = "; ".join(listed)
        findings.append(
            finding(
                "stream.malformed-message",
                Status.WARN,
                f"{len(malformed)} message(s) from the server do not match Deepgram's schema; the first "
                f"({malformed[0].msg_type or 'no type'}): {said}",
                {
                    "malformed": len(malformed),
                    "first_type": malformed[0].msg_type,
                    "problems": listed,
                    "excerpt": bad.get("excerpt"),
                },
            )
        )
    if m["results"] and m["transcript_chars"] == 0:
        findings.append(
            finding(
                "stream.empty-transcript",
                Status.WARN,
                f"{m['results']} Results arrived but every transcript was empty for real speech: "
                "the audio format does not match the stream's parameters",
                {"metrics": m},
            )
        )
    return findings


class StreamTranscribe(AuthenticatedCheck["SessionObservation"]):
    apis: ClassVar[frozenset[str] | None] = frozenset({"listen"})  # /v1/listen's protocol
    id = "stream.transcribe"
    title = "Real speech streamed at real time comes back as transcripts"
    timeout: ClassVar[float] = 30.0
    evidence_key = "session"

    def deadline_s(self, options: RunOptions) -> float:
        return 2 * options.close_wait_s + 2 * options.connect_timeout_s + 15.0

    async def observe(self, ctx: Context) -> SessionObservation | CheckResult:
        from wsdoctor.probes.session import run_session

        return await run_session(ctx, audio_seconds=None, ending="closestream", close_wait_s=ctx.options.close_wait_s)

    def judge(self, obs: SessionObservation, ctx: Context) -> list[Finding]:
        return analyze(obs, ctx.options.slow_first_result_s)

    def summarize(self, obs: SessionObservation, ctx: Context) -> str:
        m = stream_metrics(obs)
        transcript = " ".join(
            str(e.detail.get("transcript") or "") for e in obs.events if e.msg_type == deepgram.ServerMessage.RESULTS
        ).strip()
        return (
            f"{m['results']} Results for {m['audio_s']} s of audio, first after "
            f"{m['first_result_s']} s: {transcript[:80]!r}"
        )

    def measure(self, obs: SessionObservation) -> dict[str, float | int | None]:
        return stream_metrics(obs)


def analyze_soak(obs: SoakObservation) -> list[Finding]:
    """Every early end of a soak connection is a drop; the first one says how, the count how often."""
    conns = obs.connections
    drops = [c for c in conns if c.dropped]
    refused = [c for c in conns if not c.opened]
    findings: list[Finding] = []
    if drops:
        first = drops[0]
        into = first.open_for_s or 0.0
        f = judge_ending(first.ended_by, first.terminal, f"{into:.1f} s into a soak connection")
        reconnects = [c.reconnect_after_drop_s for c in conns if c.reconnect_after_drop_s is not None]
        summary = f"{len(drops)} drop(s) in {obs.soak_s} s of streaming" + (
            f"; reconnecting took {max(reconnects):.2f} s at most" if reconnects else ""
        )
        if f is not None:
            findings.append(
                Finding(
                    f.code, f.cause, Status.FAIL, f"{summary}; first: {f.message}", {**f.evidence, "drops": len(drops)}
                )
            )
    if refused:
        findings.append(
            finding(
                "http.no-response",
                Status.FAIL,
                f"{len(refused)} reconnect attempt(s) during the soak failed: "
                f"{refused[0].outcome} (HTTP {refused[0].status})",
                {"failed_reconnects": len(refused)},
            )
        )
    return findings


def soak_metrics(obs: SoakObservation) -> dict[str, float | int | None]:
    return {
        "soak_audio_s": obs.audio_s,
        "drops": sum(1 for c in obs.connections if c.dropped),
        "connections": len(obs.connections),
        "soak_results": sum(c.results or 0 for c in obs.connections),
    }


class StreamSoak(AuthenticatedCheck["SoakObservation"]):
    apis: ClassVar[frozenset[str] | None] = frozenset({"listen"})  # /v1/listen's protocol
    id = "stream.soak"
    title = "A long stream (--soak S) holds, and reconnects cleanly when dropped"
    slow = True
    timeout: ClassVar[float] = 60.0
    evidence_key = "soak"
    opt_in = "--soak SECONDS"

    def deadline_s(self, options: RunOptions) -> float:
        return (options.soak_s or 0.0) + 2 * options.close_wait_s + 4 * options.connect_timeout_s + 10.0

    @classmethod
    def requested(cls, options: RunOptions) -> bool:
        return bool(options.soak_s)

    async def observe(self, ctx: Context) -> SoakObservation | CheckResult:
        from wsdoctor.probes.soak import run_soak

        # ``or 0.0`` for mypy only: preflight() skipped a run without --soak
        return await run_soak(ctx, ctx.options.soak_s or 0.0)

    def judge(self, obs: SoakObservation, ctx: Context) -> list[Finding]:
        return analyze_soak(obs)

    def summarize(self, obs: SoakObservation, ctx: Context) -> str:
        m = soak_metrics(obs)
        return (
            f"{obs.audio_s} s of audio over {m['connections']} connection(s), {m['drops']} drop(s), "
            f"{m['soak_results']} Results"
        )

    def measure(self, obs: SoakObservation) -> dict[str, float | int | None]:
        return soak_metrics(obs)


CHECKS = (StreamTranscribe, StreamSoak)
