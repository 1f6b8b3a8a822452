"""ws.auth: does Deepgram accept an authenticated WebSocket?

Theory of operation: the same Upgrade as http.upgrade, now with ``Authorization: Token <key>``
(``Bearer`` for a JWT temporary token). The status is classified the way Deepgram documents it:
401/403 the key is rejected, 402 no credits, 429 rate or concurrency limit, 400 bad parameters,
5xx Deepgram-side trouble -- always with its ``dg-error`` and ``dg-request-id`` in the evidence.
Without a key the check reads http.upgrade's answer instead: 429 and 5xx mean the same with or
without a key; a 401 is the expected answer and the check is skipped with that reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from checks.http import _header, answered_by
from checks.http import analyze as analyze_upgrade
from wsdoctor.causes import cause_for
from wsdoctor.check import Check, Context
from wsdoctor.model import CheckResult, Finding, Status

__all__ = ["CHECKS", "AuthenticatedCheck", "WsAuth", "analyze"]


def _status_code(status: int) -> str | None:
    if status in (401, 403):
        return "ws.auth-rejected"
    if status == 402:
        return "ws.payment-required"
    if status == 429:
        return "ws.rate-limited"
    if status == 400:
        return "ws.bad-request"
    if status >= 500:
        return "ws.server-error"
    return None


def analyze(obs: Mapping[str, Any]) -> list[Finding]:
    """Judge the answer to an Upgrade. Non-HTTP failures are http.upgrade's to report."""
    answer = obs.get("answer")
    if obs.get("outcome") != "http-response" or not answer:
        return []
    status = int(answer.get("status", 0))
    ev = {
        "status": status,
        "dg_error": _header(answer, "dg-error"),
        "dg_request_id": _header(answer, "dg-request-id"),
        "answered_by": answered_by(answer),
        "body_excerpt": str(answer.get("body_excerpt", ""))[:500],
    }
    if ev["dg_request_id"] is None:
        return [
            Finding(
                "http.intermediary-response",
                cause_for("http.intermediary-response"),
                Status.FAIL,
                f"HTTP {status} to the authenticated Upgrade came from something other than Deepgram "
                f"({ev['answered_by']})",
                ev,
            )
        ]
    if status in (426, 200):  # Deepgram saw no Upgrade: a hop stripped it (http.upgrade's judgement)
        return analyze_upgrade(obs)
    code = _status_code(status)
    if code is None:
        return []
    reason = f": {ev['dg_error']}" if ev["dg_error"] else ""
    words = {
        "ws.auth-rejected": f"Deepgram rejected the credentials with HTTP {status}{reason}",
        "ws.payment-required": f"Deepgram refused with HTTP 402 (no credits){reason}",
        "ws.rate-limited": f"Deepgram rate-limited the connection with HTTP 429{reason}",
        "ws.bad-request": f"Deepgram rejected the request parameters with HTTP 400{reason}",
        "ws.server-error": f"Deepgram answered HTTP {status}{reason}",
    }[code]
    return [Finding(code, cause_for(code), Status.FAIL, f"{words} (dg-request-id {ev['dg_request_id']})", ev)]


class WsAuth(Check):
    id = "ws.auth"
    title = "Deepgram accepts an authenticated WebSocket"
    requires = ("http.upgrade",)
    timeout: ClassVar[float] = 15.0

    async def run(self, ctx: Context) -> CheckResult:
        from wsdoctor.probes.wsclient import WsProbe

        if ctx.api_key is None:
            obs_d = ctx.evidence_of("http.upgrade", "upgrade")
            if not isinstance(obs_d, Mapping):
                return self.skip(f"no API key (set ${ctx.options.api_key_env})")
            status = (obs_d.get("answer") or {}).get("status")
            # Without a key a 401/403 is the expected answer, not a finding.
            findings = [] if status in (401, 403) else analyze(obs_d)
            if findings:
                return self.result(findings, summary="", evidence={"upgrade_without_key": obs_d})
            if obs_d.get("outcome") == "upgraded":
                return self.result(summary="the server accepts WebSockets without credentials")
            return self.skip(
                f"no API key (set ${ctx.options.api_key_env} or pass --api-key-env NAME); "
                f"Deepgram answered HTTP {status} without one, so the network path works"
            )
        async with WsProbe(ctx, credentials=True) as probe:
            obs = await probe.connect()
            if obs.outcome == "upgraded":
                await probe.send_close(1000)
                await probe.receive(1.0)
        d = obs.to_dict()
        findings = analyze(d)
        if obs.outcome == "upgraded":
            rid = obs.answer.header("dg-request-id") if obs.answer else None
            summary = f"101 Switching Protocols with the key (dg-request-id {rid or 'none'})"
        elif obs.answer is not None:
            summary = f"HTTP {obs.answer.status} {obs.answer.reason}"
        else:
            summary = f"{obs.outcome}: {obs.error}"
        if obs.outcome not in ("upgraded", "http-response") and not findings:
            # The path broke on this connection although http.upgrade got through: flaky path.
            findings = [
                Finding(
                    "http.no-response",
                    cause_for("http.no-response"),
                    Status.FAIL,
                    f"the authenticated connection failed: {obs.outcome} ({obs.error})",
                    {"outcome": obs.outcome},
                )
            ]
        return self.result(findings, summary=summary, evidence={"upgrade": d})


class AuthenticatedCheck(Check):
    """Base of the checks that stream on an authenticated connection (stream, close, idle, ...)."""

    requires: ClassVar[tuple[str, ...]] = ("ws.auth",)

    def auth_skip(self, ctx: Context) -> CheckResult | None:
        """A skip when ws.auth was skipped (no key and the server wants one), else ``None``.

        A *failed* ws.auth never gets here: the runner skips dependants of failures itself."""
        auth = ctx.result_of("ws.auth")
        if auth is not None and auth.status is Status.SKIP:
            return self.skip(f"needs an authenticated connection: {auth.summary}", blocked_by="ws.auth")
        return None


CHECKS = (WsAuth,)
