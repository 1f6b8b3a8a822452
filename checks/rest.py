"""rest.transcribe: the article's Alternative -- does the REST API work where streaming may not?

Theory of operation: the same speech, POSTed to /v1/listen on the same host (see
:mod:`wsdoctor.probes.rest`). It depends only on TCP (and TLS), not on the WebSocket upgrade, so it
still runs when a proxy strips the Upgrade -- exactly when it matters. A 200 with a transcript
passes; the reporters then recommend REST for pre-recorded audio wherever streaming failed.
A failure is classified like the WebSocket answer: credentials, limits, service, or not Deepgram.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from checks.ws import bad_request_cause
from wsdoctor.check import Context, ObservingCheck, RunOptions, finding
from wsdoctor.model import CheckResult, Finding, Outcome, Status

__all__ = ["CHECKS", "RestTranscribe", "analyze"]

if TYPE_CHECKING:
    from wsdoctor.probes.rest import RestObservation


def analyze(obs: RestObservation) -> list[Finding]:
    ev = obs.to_dict()
    if obs.outcome is not Outcome.ANSWERED:
        return [
            finding(
                "rest.failed",
                Status.FAIL,
                f"the REST request to {obs.url} failed: {obs.outcome} ({obs.error})",
                ev,
            )
        ]
    status = obs.status or 0
    if not obs.request_id:  # Deepgram stamps every answer; a portal's 200 carries no transcript
        cause = "proxy-firewall"
        what = f"HTTP {status} from something other than Deepgram (no dg-request-id; server {obs.server})"
    elif status == 200:
        if obs.body_problem:
            return [
                finding(
                    "rest.malformed-response",
                    Status.FAIL,
                    f"REST /v1/listen answered 200 with a body that is not Deepgram's transcript: {obs.body_problem}",
                    ev,
                )
            ]
        if not obs.transcript:
            return [
                finding(
                    "stream.empty-transcript",
                    Status.WARN,
                    "the REST answer had an empty transcript for real speech",
                    ev,
                )
            ]
        return []
    elif status in (401, 403):
        cause, what = "credentials", f"Deepgram rejected the credentials with HTTP {status}"
    elif status in (402, 429):
        cause, what = "account-limits", f"Deepgram refused with HTTP {status}"
    elif status == 400:
        cause = bad_request_cause(obs.dg_error, obs.body_excerpt)
        what = "Deepgram rejected the request (HTTP 400)"
    else:
        cause, what = "service", f"Deepgram answered HTTP {status}"
    detail = f": {obs.dg_error}" if obs.dg_error else ""
    return [Finding("rest.failed", cause, Status.FAIL, f"REST /v1/listen: {what}{detail}", ev)]


class RestTranscribe(ObservingCheck["RestObservation"]):
    apis: ClassVar[frozenset[str] | None] = frozenset({"listen"})  # /v1/listen's protocol
    id = "rest.transcribe"
    title = "The REST API (POST /v1/listen) transcribes the same speech"
    requires = ("tcp.connect", "tls.handshake")
    needs_key = True
    timeout: ClassVar[float] = 45.0
    evidence_key = "rest"

    def deadline_s(self, options: RunOptions) -> float:
        return options.connect_timeout_s + 15.0

    async def observe(self, ctx: Context) -> RestObservation | CheckResult:
        if ctx.api_key is None:
            return self.skip(f"no API key (set ${ctx.options.api_key_env}): REST needs one")
        from wsdoctor.probes.rest import post_audio

        return await post_audio(ctx)

    def judge(self, obs: RestObservation, ctx: Context) -> list[Finding]:
        return analyze(obs)

    def summarize(self, obs: RestObservation, ctx: Context) -> str:
        if obs.status == 200:
            return f"HTTP 200 in {obs.time_s:.2f} s: {(obs.transcript or '')[:80]!r}"
        if obs.status is not None:
            return f"HTTP {obs.status}"
        return f"{obs.outcome}: {obs.error}"

    def measure(self, obs: RestObservation) -> dict[str, float | None]:
        return {"rest_s": obs.time_s}


CHECKS = (RestTranscribe,)
