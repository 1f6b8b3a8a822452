"""agent.session: does the Voice Agent (/v1/agent/converse) welcome us, apply Settings and end cleanly?

Theory of operation. On one authenticated connection (:mod:`wsdoctor.probes.agent`): ``Welcome``
first, our ``Settings`` answered with ``SettingsApplied``, real-time speech, a ``KeepAlive``, then our
close frame, answered with 1000 (the AGENT_* facts in :mod:`wsdoctor.deepgram`). The agent reports
trouble as an ``Error`` message (CLIENT_MESSAGE_TIMEOUT, UNPARSABLE_CLIENT_MESSAGE ...) followed by a
close frame without a status code (1005 in clients): :func:`analyze` names the Error, not the 1005.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from checks.close import judge_after_end_signal, judge_ending, terminal_event
from checks.ws import AuthenticatedCheck
from wsdoctor import deepgram
from wsdoctor.check import Context, RunOptions, finding
from wsdoctor.model import CheckResult, Finding, Outcome, Status

if TYPE_CHECKING:
    from wsdoctor.probes.agent import AgentObservation

__all__ = ["CHECKS", "AgentSession", "agent_metrics", "analyze"]

#: Errors that are the client's doing (the fix is in the app's messages), by code.
CLIENT_ERRORS = frozenset({deepgram.AGENT_CLIENT_MESSAGE_TIMEOUT[0], deepgram.AGENT_UNPARSABLE[0]})


def agent_metrics(obs: AgentObservation) -> dict[str, float | int | None]:
    def since(a: float | None, b: float | None) -> float | None:
        return round(b - a, 3) if a is not None and b is not None else None

    return {
        "welcome_s": since(obs.open_t, obs.welcome_t),
        "settings_applied_s": since(obs.settings_t, obs.applied_t),
        "audio_s": obs.audio_s,
        "conversation_texts": sum(1 for e in obs.events if e.direction == "in" and e.msg_type == "ConversationText"),
    }


def analyze(obs: AgentObservation) -> list[Finding]:
    """The Voice Agent's rules on one recorded session. Pure."""
    if obs.upgrade.outcome is not Outcome.UPGRADED:
        return []  # ws.auth judges the upgrade
    errors = [e for e in obs.events if e.direction == "in" and e.msg_type == "Error"]
    if errors:
        code = str(errors[0].detail.get("code") or "")
        return [
            finding(
                "agent.error",
                Status.FAIL,
                f"the agent sent an Error ({code or 'no code'}): {errors[0].detail.get('description') or ''}".rstrip(
                    ": "
                )
                + (" -- then closed without a status code (1005 in clients)" if obs.terminal is not None else ""),
                {
                    "code": code,
                    "description": errors[0].detail.get("description"),
                    "client_side": code in CLIENT_ERRORS,
                },
            )
        ]
    findings: list[Finding] = []
    term = terminal_event(obs.events)
    closed_at = obs.close_sent_t
    if term is not None and (closed_at is None or term.t_s < closed_at):
        f = judge_ending(term.end_kind, term, f"{term.t_s - (obs.open_t or 0.0):.1f} s into the agent session")
        if f is not None:
            return [f]
    if obs.welcome_t is None or obs.applied_t is None:
        missing = "Welcome" if obs.welcome_t is None else "SettingsApplied"
        findings.append(
            finding(
                "agent.settings-not-applied",
                Status.FAIL,
                f"no {missing} within {obs.close_wait_s:g} s"
                + (" of the upgrade" if obs.welcome_t is None else " of our Settings"),
                {"metrics": agent_metrics(obs)},
            )
        )
    if closed_at is not None and not findings:
        signal = "our close frame"
        f = judge_after_end_signal(
            term, closed_at, signal=signal, peer="the agent", close_wait_s=obs.close_wait_s, we_closed_t=None
        )
        if f is not None:
            findings.append(f)
    return findings


class AgentSession(AuthenticatedCheck["AgentObservation"]):
    id = "agent.session"
    title = "Voice Agent (/v1/agent/converse): Welcome, Settings applied, speech streamed, clean close"
    apis: ClassVar[frozenset[str] | None] = frozenset({"agent"})
    timeout: ClassVar[float] = 30.0
    evidence_key = "session"

    def deadline_s(self, options: RunOptions) -> float:
        return 3 * options.close_wait_s + 2 * options.connect_timeout_s + 10.0

    async def observe(self, ctx: Context) -> AgentObservation | CheckResult:
        from wsdoctor.probes.agent import run_agent

        return await run_agent(ctx, close_wait_s=ctx.options.close_wait_s)

    def judge(self, obs: AgentObservation, ctx: Context) -> list[Finding]:
        return analyze(obs)

    def summarize(self, obs: AgentObservation, ctx: Context) -> str:
        m = agent_metrics(obs)
        return (
            f"Welcome after {m['welcome_s']} s, SettingsApplied {m['settings_applied_s']} s after Settings, "
            f"{m['audio_s']} s of speech, {m['conversation_texts']} ConversationText"
        )

    def measure(self, obs: AgentObservation) -> dict[str, float | int | None]:
        return agent_metrics(obs)


CHECKS = (AgentSession,)
