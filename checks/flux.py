"""flux.stream: does Flux (/v2/listen) stream real speech into turns and end cleanly?

Theory of operation. Flux is Deepgram's conversational speech-to-text: the same audio in, but
``Connected`` first and ``TurnInfo`` messages (StartOfTurn, Update, EagerEndOfTurn, TurnResumed,
EndOfTurn) instead of Results, and WebSocket pings -- not the v1 JSON KeepAlive -- to keep a silent
stream open (:mod:`wsdoctor.deepgram`, the SDK's listen.v2 types). The check streams the bundled
speech at real time on one authenticated connection (the same session probe as stream.transcribe),
sends CloseStream and waits (bounded) for the close; :func:`analyze` judges it with Flux's rules.
listen's checks (stream.transcribe, close.handshake, idle.*, rest.transcribe) skip on a Flux run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from checks.close import judge_after_end_signal, judge_ending, terminal_event
from checks.stream import StreamTranscribe
from wsdoctor import deepgram
from wsdoctor.check import Context, finding
from wsdoctor.model import Finding, Outcome, Status

if TYPE_CHECKING:
    from wsdoctor.probes.session import SessionObservation

__all__ = ["CHECKS", "FluxStream", "analyze", "flux_metrics"]


def flux_metrics(obs: SessionObservation) -> dict[str, float | int | None]:
    incoming = [e for e in obs.events if e.direction == "in"]
    turns = [e for e in incoming if e.msg_type == deepgram.FLUX_TURN_INFO]
    start = obs.audio_first_t
    first = round(turns[0].t_s - start, 3) if turns and start is not None else None
    return {
        "turn_infos": len(turns),
        "end_of_turns": sum(1 for e in turns if e.detail.get("event") == deepgram.FLUX_END_OF_TURN),
        "first_turn_info_s": first,
        "audio_s": obs.audio_s,
    }


def analyze(obs: SessionObservation) -> list[Finding]:
    """Flux's rules on one recorded session. Pure."""
    if obs.upgrade.outcome is not Outcome.UPGRADED:
        return []  # ws.auth judges the upgrade
    findings: list[Finding] = []
    incoming = [e for e in obs.events if e.direction == "in" and e.kind in ("text",)]
    term = terminal_event(obs.events)
    cs_t = obs.closestream_t
    if term is not None and (cs_t is None or term.t_s < cs_t):  # died mid-stream
        f = judge_ending(term.end_kind, term, f"{term.t_s - (obs.open_t or 0.0):.1f} s into the Flux stream")
        if f:
            findings.append(f)
    m = flux_metrics(obs)
    errors = [e for e in incoming if e.msg_type == "Error"]
    if errors:
        code = errors[0].detail.get("code")
        findings.append(
            finding(
                "flux.error",
                Status.FAIL,
                f"Flux sent an Error ({code or 'no code'}): {errors[0].detail.get('description') or ''}".rstrip(": "),
                {"code": code, "description": errors[0].detail.get("description")},
            )
        )
    if incoming and incoming[0].msg_type != deepgram.FLUX_CONNECTED and not findings:
        findings.append(
            finding(
                "stream.malformed-message",
                Status.WARN,
                f"Flux's first message was {incoming[0].msg_type or 'untyped'!s}, not Connected",
                {"first_type": incoming[0].msg_type},
            )
        )
    if m["turn_infos"] == 0 and not findings:
        findings.append(
            finding(
                "stream.no-results", Status.FAIL, f"no TurnInfo arrived for {m['audio_s']} s of speech", {"metrics": m}
            )
        )
    if cs_t is not None and not findings:
        f = judge_after_end_signal(
            term, cs_t, signal="CloseStream", peer="Flux", close_wait_s=obs.close_wait_s, we_closed_t=obs.close_sent_t
        )
        if f is not None:
            findings.append(f)
    return findings


class FluxStream(StreamTranscribe):
    """stream.transcribe's session -- the bundled speech at real time, CloseStream, the bounded
    wait (its ``observe`` and deadline) -- judged by Flux's rules."""

    id = "flux.stream"
    title = "Flux (/v2/listen): real speech streamed at real time comes back as turns, CloseStream ends it"
    apis: ClassVar[frozenset[str] | None] = frozenset({"flux"})

    def judge(self, obs: SessionObservation, ctx: Context) -> list[Finding]:
        return analyze(obs)

    def summarize(self, obs: SessionObservation, ctx: Context) -> str:
        m = flux_metrics(obs)
        last = next(
            (
                str(e.detail.get("transcript") or "")
                for e in reversed(obs.events)
                if e.msg_type == deepgram.FLUX_TURN_INFO
            ),
            "",
        )
        return (
            f"{m['turn_infos']} TurnInfo ({m['end_of_turns']} EndOfTurn) for {m['audio_s']} s of audio, first after "
            f"{m['first_turn_info_s']} s: {last[:80]!r}"
        )

    def measure(self, obs: SessionObservation) -> dict[str, float | int | None]:
        return flux_metrics(obs)


CHECKS = (FluxStream,)
