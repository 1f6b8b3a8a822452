"""speak.stream: does streaming text-to-speech (/v1/speak) turn text into audio and end cleanly?

Theory of operation. On one authenticated connection (:mod:`wsdoctor.probes.speak`): a sentence
as ``Speak``, then ``Flush`` -- Deepgram answers with binary audio and ``{"type": "Flushed",
"sequence_id": N}`` -- then ``Close``, which Deepgram answers with close 1000 (DOCS_TTS_FLUSH and the
SDK's speak.v1 types, in :mod:`wsdoctor.deepgram`). :func:`analyze` judges it: audio at all, the
Flushed, how long the first audio took after the Flush, and the ending. KeepAlive and CloseStream
are listen's and are never sent; listen's checks skip on a speak run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from checks.close import judge_after_end_signal, judge_ending, terminal_event
from checks.ws import AuthenticatedCheck
from wsdoctor.check import Context, RunOptions, finding
from wsdoctor.model import CheckResult, Finding, Outcome, Status

if TYPE_CHECKING:
    from wsdoctor.probes.speak import SpeakObservation

__all__ = ["CHECKS", "SLOW_FIRST_AUDIO_S", "SpeakStream", "analyze", "speak_metrics"]

#: Deepgram's TTS starts streaming audio well under a second after a Flush; warn past this.
SLOW_FIRST_AUDIO_S = 3.0


def speak_metrics(obs: SpeakObservation) -> dict[str, float | int | None]:
    def since_flush(t: float | None) -> float | None:
        return round(t - obs.flush_t, 3) if t is not None and obs.flush_t is not None else None

    return {
        "first_audio_s": since_flush(obs.first_audio_t),
        "flushed_s": since_flush(obs.flushed_t),
        "audio_bytes": obs.audio_bytes,
    }


def analyze(obs: SpeakObservation) -> list[Finding]:
    """Streaming TTS's rules on one recorded session. Pure."""
    if obs.upgrade.outcome is not Outcome.UPGRADED:
        return []  # ws.auth judges the upgrade
    findings: list[Finding] = []
    term = terminal_event(obs.events)
    closed_at = obs.close_sent_t
    if term is not None and (closed_at is None or term.t_s < closed_at):
        f = judge_ending(term.end_kind, term, f"{term.t_s - (obs.open_t or 0.0):.1f} s into the TTS stream")
        if f is not None:
            findings.append(f)
    m = speak_metrics(obs)
    if not findings and not obs.audio_bytes:
        findings.append(
            finding("speak.no-audio", Status.FAIL, "no audio came back for the text and its Flush", {"metrics": m})
        )
    first = m["first_audio_s"]
    if isinstance(first, int | float) and first > SLOW_FIRST_AUDIO_S:
        findings.append(
            finding(
                "speak.slow-first-audio",
                Status.WARN,
                f"the first audio came {first:.1f} s after the Flush (Deepgram: well under 1 s)",
                {"metrics": m},
            )
        )
    if closed_at is not None and not findings:
        f = judge_after_end_signal(
            term, closed_at, signal="Close", peer="Deepgram", close_wait_s=obs.close_wait_s, we_closed_t=None
        )
        if f is not None:
            findings.append(f)
    return findings


class SpeakStream(AuthenticatedCheck["SpeakObservation"]):
    id = "speak.stream"
    title = "Streaming TTS (/v1/speak): text and Flush come back as audio and Flushed, Close ends it"
    apis: ClassVar[frozenset[str] | None] = frozenset({"speak"})
    timeout: ClassVar[float] = 30.0
    evidence_key = "session"

    def deadline_s(self, options: RunOptions) -> float:
        return 2 * options.close_wait_s + 2 * options.connect_timeout_s + 5.0

    async def observe(self, ctx: Context) -> SpeakObservation | CheckResult:
        from wsdoctor.probes.speak import run_speak

        return await run_speak(ctx, close_wait_s=ctx.options.close_wait_s)

    def judge(self, obs: SpeakObservation, ctx: Context) -> list[Finding]:
        return analyze(obs)

    def summarize(self, obs: SpeakObservation, ctx: Context) -> str:
        m = speak_metrics(obs)
        return (
            f"{m['audio_bytes']} bytes of audio, first {m['first_audio_s']} s after the Flush, "
            f"Flushed after {m['flushed_s']} s"
        )

    def measure(self, obs: SpeakObservation) -> dict[str, float | int | None]:
        return speak_metrics(obs)


CHECKS = (SpeakStream,)
