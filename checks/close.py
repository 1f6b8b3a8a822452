"""close.handshake: does the stream end with a clean close handshake?

Theory of operation: two authenticated connections run side by side.

- *closestream*: 1 s of real speech, then ``{"type": "CloseStream"}``. Deepgram must answer with
  the final Results, then Metadata, then a close frame 1000 -- all within ``--close-wait``. If
  nothing closes, we send our own close frame and wait again, so a server that never answers is
  caught within two bounded waits.
- *client-close*: our close frame (1000) first; the server must echo a close frame.

``judge_ending`` is shared with the stream check: it turns the way a connection ended into a
finding that says *when* it happened. An EOF without a close frame is the article's "no close frame
received or sent" (close.no-close-frame) wherever it happens; a reset is stream.reset; a close
frame with a Deepgram reason is classified by the reason's stable identifiers
(:func:`wsdoctor.deepgram.identify_close`: 1011 NET-0001 idle timeout, 1008 DATA-0000 undecodable
audio, 1011 NET-0000) and otherwise by its code (1011 / 1012 / 1013 transient service trouble).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from checks.ws import AuthenticatedCheck
from wsdoctor import deepgram
from wsdoctor.check import Context, RunOptions, finding
from wsdoctor.model import CheckResult, EndKind, Finding, Outcome, Status
from wsdoctor.record import Record
from wsdoctor.sanitize import printable

__all__ = [
    "CHECKS",
    "CloseHandshake",
    "CloseSessions",
    "analyze",
    "close_metrics",
    "is_idle_timeout",
    "judge_after_end_signal",
    "judge_close_code",
    "judge_ending",
    "terminal_event",
]

if TYPE_CHECKING:  # the probes (h11, wsproto) load when a check runs, not when checks are listed
    from wsdoctor.probes.session import SessionObservation
    from wsdoctor.probes.wsclient import WireEvent


def judge_close_code(code: int | None, reason: str | None, when: str) -> Finding | None:
    """A close frame from the server: fine if 1000, otherwise say what Deepgram meant by it.

    The reason is recognised by :func:`wsdoctor.deepgram.identify_close` (token, slug or sentence,
    never one literal): Deepgram's real NET-0001 reason carries no "NET-0001" token at all."""
    if code == deepgram.CLOSE_NORMAL:
        return None
    known = deepgram.identify_close(code, reason)
    ev: dict[str, Any] = {"code": code, "reason": reason, "when": when, "deepgram_reason": known.id if known else None}
    if known is deepgram.NET_0001:
        return finding(
            "idle.server-timeout",
            Status.FAIL,
            f"Deepgram closed the stream {when} with {code} NET-0001: {known.meaning}",
            ev,
        )
    if known is deepgram.DATA_0000:
        return Finding(
            "close.unexpected-code",
            "audio-format",
            Status.FAIL,
            f"Deepgram closed the stream {when} with {code} DATA-0000: {known.meaning} (do not retry the same "
            "audio; fix encoding/sample_rate)",
            ev,
        )
    if known is deepgram.NET_0000:
        return Finding(
            "close.unexpected-code",
            "service",
            Status.FAIL,
            f"Deepgram closed the stream {when} with {code} NET-0000: {known.meaning}",
            ev,
        )
    if code in (1011, 1012, 1013, 1001):
        return Finding(
            "close.unexpected-code",
            "service",
            Status.FAIL,
            f"the server closed the stream {when} with {code} {printable(reason or '', 120)}: transient "
            "service-side trouble (reconnect with jittered backoff)",
            ev,
        )
    return finding(
        "close.unexpected-code",
        Status.FAIL,
        f"the server closed the stream {when} with code {code} {printable(reason or '', 120)}",
        ev,
    )


def is_idle_timeout(close: WireEvent | None) -> bool:
    """A recorded close event that is Deepgram's NET-0001 idle close."""
    return close is not None and deepgram.identify_close(close.code, close.reason) is deepgram.NET_0001


def judge_after_end_signal(
    term: WireEvent | None, signal_t: float, *, signal: str, peer: str, close_wait_s: float, we_closed_t: float | None
) -> Finding | None:
    """How a scripted session ended after we asked it to (CloseStream, Close, our close frame).

    ``signal_t``: when we sent ``signal``; ``term``: the session's terminal event; ``we_closed_t``:
    when we had to send our own close frame because ``peer`` did not end the stream (None: we did
    not). No ending, or only the one our own close frame forced, is ``close.no-close-reply``; any
    other ending is :func:`judge_ending`'s (None for a clean 1000)."""
    after = term if term is not None and term.t_s >= signal_t else None
    if after is None or (we_closed_t is not None and we_closed_t > signal_t):
        return finding(
            "close.no-close-reply",
            Status.FAIL,
            f"{peer} did not close the stream within {close_wait_s:g} s of {signal}",
            {"close_wait_s": close_wait_s, "signal": signal},
        )
    return judge_ending(after.end_kind, after, f"after {signal}")


def judge_ending(kind: EndKind | None, event: WireEvent | None, when: str) -> Finding | None:
    """How a connection ended, as a finding (``None`` for a clean close or still open)."""
    ev: dict[str, Any] = {
        "ended_by": kind.value if kind else None,
        "when": when,
        "event": event.to_dict() if event else None,
    }
    reason = event.reason if event else None
    if kind is EndKind.EOF:
        return finding(
            "close.no-close-frame",
            Status.FAIL,
            f"the connection ended {when} without a close frame (TCP closed: the article's "
            "'no close frame received or sent', code 1006)",
            ev,
        )
    if kind in (EndKind.RESET, EndKind.ERROR):
        detail = f" ({reason})" if reason else ""
        return finding(
            "stream.reset",
            Status.FAIL,
            f"the connection was reset {when}{detail} (code 1006 in most clients)",
            ev,
        )
    if kind is EndKind.FLOOD:
        return finding(
            "stream.flood",
            Status.FAIL,
            f"the server flooded the connection {when}: {reason or 'too many frames'}; "
            "wsdoctor cut it (Deepgram sends a few messages a second)",
            ev,
        )
    if kind in (EndKind.PROTOCOL_ERROR, EndKind.OVERSIZE):
        return finding(
            "stream.protocol-error",
            Status.FAIL,
            f"the server broke the WebSocket protocol {when}: {reason or kind}",
            ev,
        )
    if kind is EndKind.CLOSE and event is not None:
        return judge_close_code(event.code, event.reason, when)
    return None


def terminal_event(events: Sequence[WireEvent]) -> WireEvent | None:
    """The incoming event that ended the connection (a close frame, EOF, reset, ...), if any."""
    return next((e for e in reversed(events) if e.direction == "in" and e.end_kind is not None), None)


def _after(obs: SessionObservation, t: float | None, msg_type: str) -> float | None:
    if t is None:
        return None
    hit = next((e.t_s for e in obs.events if e.direction == "in" and e.msg_type == msg_type and e.t_s >= t), None)
    return round(hit - t, 3) if hit is not None else None


def _not_opened(obs: SessionObservation) -> Finding:
    """The stream this check needs could not be opened although ws.auth got through: a flaky path."""
    up = obs.upgrade
    return finding(
        "http.no-response",
        Status.FAIL,
        f"the stream could not be opened: {up.outcome}" + (f" ({up.error})" if up.error else ""),
        {"outcome": up.outcome.value, "error": up.error},
    )


def analyze_closestream(obs: SessionObservation) -> list[Finding]:
    if obs.upgrade.outcome is not Outcome.UPGRADED:
        return []
    term = terminal_event(obs.events)
    cs_t = obs.closestream_t
    if cs_t is None or (term is not None and term.t_s < cs_t):
        f = judge_ending(obs.terminal, term, f"{_since_open(obs, term)} into the stream, before CloseStream")
        return [f] if f else []
    if obs.close_sent_t is not None:
        # CloseStream went unanswered for the whole wait, so we sent our own close frame.
        if term is None:
            return [
                _no_reply(
                    obs,
                    Status.FAIL,
                    f"no close after CloseStream within {obs.close_wait_s} s, and our "
                    f"close frame got no reply within {obs.close_wait_s} s either: the server or a hop "
                    "holds the connection open",
                )
            ]
        if term.kind is EndKind.CLOSE:
            return [
                _no_reply(
                    obs,
                    Status.WARN,
                    f"CloseStream got no close within {obs.close_wait_s} s; only our own close frame ended the stream",
                )
            ]
    if term is None:
        return []
    when = "right after our CloseStream" if obs.close_sent_t is None else "right after our close frame"
    f = judge_ending(term.end_kind, term, when)
    return [f] if f else []


def _no_reply(obs: SessionObservation, severity: Status, message: str) -> Finding:
    return finding(
        "close.no-close-reply",
        severity,
        message,
        {"close_wait_s": obs.close_wait_s},
    )


def analyze_client_close(obs: SessionObservation) -> list[Finding]:
    if obs.upgrade.outcome is not Outcome.UPGRADED:
        return []
    term = terminal_event(obs.events)
    if term is None:
        return [_no_reply(obs, Status.FAIL, f"our close frame got no reply within {obs.close_wait_s} s")]
    if term.kind is EndKind.CLOSE:
        return []  # any echoed code completes the handshake
    f = judge_ending(term.end_kind, term, "right after our close frame")
    return [f] if f else []


def _since_open(obs: SessionObservation, term: WireEvent | None) -> str:
    if term is None or obs.open_t is None:
        return "?"
    return f"{term.t_s - obs.open_t:.1f} s"


def analyze(closestream: SessionObservation, client_close: SessionObservation) -> list[Finding]:
    """Both connections' endings; a stream that could not be opened at all is a finding of its own."""
    findings = analyze_closestream(closestream)
    seen = {f.code for f in findings}
    findings += [f for f in analyze_client_close(client_close) if f.code not in seen]
    if not findings and closestream.upgrade.outcome is not Outcome.UPGRADED:
        findings.append(_not_opened(closestream))
    return findings


def close_metrics(
    closestream: SessionObservation, client_close: SessionObservation | None = None
) -> dict[str, float | None]:
    cs = closestream.closestream_t
    term = terminal_event(closestream.events)
    close_t = term.t_s if term and term.kind is EndKind.CLOSE else None
    metrics: dict[str, float | None] = {
        "closestream_to_metadata_s": _after(closestream, cs, deepgram.ServerMessage.METADATA),
        "closestream_to_close_s": round(close_t - cs, 3) if close_t is not None and cs is not None else None,
    }
    if client_close is not None:
        reply = terminal_event(client_close.events)
        sent = client_close.close_sent_t
        metrics["close_reply_s"] = (
            round(reply.t_s - sent, 3) if reply and reply.kind is EndKind.CLOSE and sent is not None else None
        )
    return metrics


@dataclass(frozen=True, slots=True)
class CloseSessions(Record):
    """What close.handshake observes: its two connections (their report form is its evidence)."""

    closestream: SessionObservation
    client_close: SessionObservation


class CloseHandshake(AuthenticatedCheck[CloseSessions]):
    apis: ClassVar[frozenset[str] | None] = frozenset({"listen"})  # /v1/listen's protocol
    id = "close.handshake"
    title = "CloseStream and close frames complete the close handshake"
    timeout: ClassVar[float] = 30.0

    def deadline_s(self, options: RunOptions) -> float:
        return 2 * options.close_wait_s + 2 * options.connect_timeout_s + 5.0

    async def observe(self, ctx: Context) -> CloseSessions | CheckResult:
        from wsdoctor.probes.session import run_session

        wait = ctx.options.close_wait_s
        a, b = await asyncio.gather(
            run_session(ctx, audio_seconds=1.0, ending="closestream", close_wait_s=wait),
            run_session(ctx, audio_seconds=0.0, ending="close", close_wait_s=wait),
        )
        return CloseSessions(a, b)

    def judge(self, obs: CloseSessions, ctx: Context) -> list[Finding]:
        return analyze(obs.closestream, obs.client_close)

    def summarize(self, obs: CloseSessions, ctx: Context) -> str:
        m = self.measure(obs)
        return (
            f"CloseStream -> Metadata {_fmt(m['closestream_to_metadata_s'])}, close 1000 "
            f"{_fmt(m['closestream_to_close_s'])}; our close answered {_fmt(m['close_reply_s'])}"
        )

    def measure(self, obs: CloseSessions) -> dict[str, float | None]:
        return close_metrics(obs.closestream, obs.client_close)


def _fmt(v: float | None) -> str:
    return f"in {v:.2f} s" if v is not None else "never"


CHECKS = (CloseHandshake,)
