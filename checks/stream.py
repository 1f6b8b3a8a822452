"""stream.transcribe: does real speech streamed at real time come back as transcripts?

Theory of operation: one authenticated connection streams the bundled speech WAV (2.8 s, header
first, 100 ms frames at real-time pace), then sends CloseStream and waits (bounded) for the end.
``analyze`` judges the streaming part only -- time to first Results, how many arrived, whether any
transcript is non-empty, and whether the connection died *mid-stream* (the close family judges the
close handshake itself). Deepgram's first Results arrive about 1 s after audio starts.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any, ClassVar

from checks.close import judge_ending
from wsdoctor.causes import cause_for
from wsdoctor.check import Check, Context, RunOptions
from wsdoctor.model import CheckResult, Finding, Status

__all__ = ["CHECKS", "StreamTranscribe", "analyze", "stream_metrics"]


def _results(obs: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [e for e in obs.get("events", []) if e.get("direction") == "in" and e.get("msg_type") == "Results"]


def stream_metrics(obs: Mapping[str, Any]) -> dict[str, float | int | None]:
    results = _results(obs)
    start = obs.get("audio_first_t")
    first = round(results[0]["t_s"] - start, 3) if results and start is not None else None
    gaps = [b["t_s"] - a["t_s"] for a, b in itertools.pairwise(results)]
    transcript = " ".join(str(r.get("detail", {}).get("transcript") or "") for r in results).strip()
    return {
        "first_result_s": first,
        "results": len(results),
        "audio_s": obs.get("audio_s"),
        "max_result_gap_s": round(max(gaps), 3) if gaps else None,
        "transcript_chars": len(transcript),
    }


def analyze(obs: Mapping[str, Any], slow_first_result_s: float = 3.0) -> list[Finding]:
    if obs["upgrade"]["outcome"] != "upgraded":
        return []
    findings: list[Finding] = []
    term = next(
        (
            e
            for e in reversed(obs.get("events", []))
            if e.get("direction") == "in"
            and e.get("kind") in ("eof", "reset", "error", "close", "protocol-error", "oversize")
        ),
        None,
    )
    cs_t = obs.get("closestream_t")
    if term is not None and (cs_t is None or term["t_s"] < cs_t):
        into = term["t_s"] - (obs.get("open_t") or 0.0)
        f = judge_ending(term.get("kind"), term, f"{into:.1f} s into the stream")
        if f:
            findings.append(f)
    m = stream_metrics(obs)
    upgrade_s = None
    marks = dict(obs["upgrade"].get("marks", []))
    if "upgrading" in marks and "open" in marks:
        upgrade_s = marks["open"] - marks["upgrading"]
    if m["results"] == 0 and not findings:
        findings.append(
            Finding(
                "stream.no-results",
                cause_for("stream.no-results"),
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
    if m["results"] and m["transcript_chars"] == 0:
        findings.append(
            Finding(
                "stream.empty-transcript",
                cause_for("stream.empty-transcript"),
                Status.WARN,
                f"{m['results']} Results arrived but every transcript was empty for real speech: "
                "the audio format does not match the stream's parameters",
                {"metrics": m},
            )
        )
    return findings


class StreamTranscribe(Check):
    id = "stream.transcribe"
    title = "Real speech streamed at real time comes back as transcripts"
    requires = ("ws.auth",)
    timeout: ClassVar[float] = 30.0

    def deadline_s(self, options: RunOptions) -> float:
        return 2 * options.close_wait_s + 2 * options.connect_timeout_s + 15.0

    async def run(self, ctx: Context) -> CheckResult:
        from wsdoctor.probes.session import run_session

        auth = ctx.result_of("ws.auth")
        if auth is not None and auth.status is Status.SKIP:
            return self.skip(f"needs an authenticated connection: {auth.summary}", blocked_by="ws.auth")
        obs = await run_session(ctx, audio_seconds=None, ending="closestream", close_wait_s=ctx.options.close_wait_s)
        d = obs.to_dict()
        m = stream_metrics(d)
        transcript = " ".join(
            str(e.detail.get("transcript") or "") for e in obs.events if e.msg_type == "Results"
        ).strip()
        summary = (
            f"{m['results']} Results for {m['audio_s']} s of audio, first after "
            f"{m['first_result_s']} s: {transcript[:80]!r}"
        )
        return self.result(
            analyze(d, ctx.options.slow_first_result_s), summary=summary, metrics=m, evidence={"session": d}
        )


CHECKS = (StreamTranscribe,)
