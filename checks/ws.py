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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from checks.http import analyze as analyze_upgrade
from checks.http import answered_by, upgrade_once
from wsdoctor import deepgram
from wsdoctor.causes import cause_for
from wsdoctor.check import Context, ObservingCheck, ObsT, finding
from wsdoctor.model import CheckResult, Finding, JSONValue, Outcome, Status
from wsdoctor.probes.key import KeyObservation
from wsdoctor.record import FixtureError, Record
from wsdoctor.sanitize import printable

__all__ = ["CHECKS", "AuthAttempt", "AuthenticatedCheck", "WsAuth", "analyze", "analyze_key", "bad_request_cause"]

if TYPE_CHECKING:  # the probes (h11, wsproto) load when a check runs, not when checks are listed
    from wsdoctor.probes.wsclient import UpgradeObservation


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


#: What a 400's dg-error/body blames, as the cause it points to (wsdoctor.deepgram.request_problem).
_BAD_REQUEST_CAUSE = {
    deepgram.RequestProblem.AUDIO: "audio-format",
    deepgram.RequestProblem.CREDENTIALS: "credentials",
    deepgram.RequestProblem.PERMISSIONS: "credentials",
    deepgram.RequestProblem.PARAMETERS: "request-parameters",
    deepgram.RequestProblem.UNKNOWN: "request-parameters",
}


def bad_request_cause(dg_error: str | None, body_text: str | None) -> str:
    """The cause a 400 points to, by what its dg-error and body blame (``wsdoctor.deepgram``)."""
    return _BAD_REQUEST_CAUSE[deepgram.request_problem(dg_error, deepgram.parse_error_body(body_text))]


def analyze(obs: UpgradeObservation, key: KeyObservation | None = None, *, own: bool = True) -> list[Finding]:
    """Judge the answer to an authenticated Upgrade.

    ``key`` (what the key variable held) adds what the key's form explains: a 401 for a temporary
    token that had already expired says so. ``own``: ``obs`` is this check's own connection. Then a
    failure before any HTTP answer is a finding here too (http.upgrade got through, so the path is
    flaky); on http.upgrade's recorded connection (no key) it is http.upgrade's to report."""
    answer = obs.answer
    if obs.outcome is not Outcome.HTTP_RESPONSE or answer is None:
        if own and obs.outcome not in (Outcome.UPGRADED, Outcome.HTTP_RESPONSE):
            return [
                finding(
                    "http.no-response",
                    Status.FAIL,
                    f"the authenticated connection failed: {obs.outcome} ({obs.error})",
                    {"outcome": obs.outcome.value},
                )
            ]
        return []
    status = answer.status
    body = deepgram.parse_error_body(answer.body_excerpt)
    ev: dict[str, Any] = {
        "status": status,
        "dg_error": answer.header(deepgram.HEADER_ERROR),
        "dg_request_id": answer.header(deepgram.HEADER_REQUEST_ID),
        "answered_by": answered_by(answer),
        "err_code": body.code if body else None,
        "err_msg": body.message if body else None,
        "body_excerpt": answer.body_excerpt[:500],
    }
    if ev["dg_request_id"] is None:
        return [
            finding(
                "http.intermediary-response",
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
    said = ev["dg_error"] or ev["err_msg"]
    reason = f": {printable(said, 200)}" if said else ""
    cause = cause_for(code)
    if code == "ws.bad-request":
        cause = bad_request_cause(ev["dg_error"], ev["body_excerpt"])
    expired = _expired_token_s(key)
    token = ""
    if key is not None and expired is not None:
        token = f" (the temporary token in ${key.variable} expired {expired:.0f} s before the run)"
    words = {
        "ws.auth-rejected": f"Deepgram rejected the credentials with HTTP {status}{reason}{token}",
        "ws.payment-required": f"Deepgram refused with HTTP 402 (no credits){reason}",
        "ws.rate-limited": f"Deepgram rate-limited the connection with HTTP 429{reason}",
        "ws.bad-request": f"Deepgram rejected the request with HTTP 400{reason}",
        "ws.server-error": f"Deepgram answered HTTP {status}{reason}",
    }[code]
    return [Finding(code, cause, Status.FAIL, f"{words} (dg-request-id {ev['dg_request_id']})", ev)]


def _expired_token_s(key: KeyObservation | None) -> float | None:
    """Seconds since a temporary token's ``exp`` when it had expired at the run, else ``None``."""
    shape = key.shape if key else None
    if key is None or shape is None or not shape.jwt or shape.jwt_expires_at is None:
        return None
    late = key.read_at - shape.jwt_expires_at
    return late if late > 0 else None


#: Temporary tokens expiring sooner than this after the run started are worth a warning.
TOKEN_EXPIRY_WARN_S = 60.0


def analyze_key(
    key: KeyObservation, upgrade_without_key: UpgradeObservation | None, key_checks: tuple[str, ...] = ()
) -> list[Finding]:
    """Judge the key variable itself: missing, holding more than a key, a temporary token.

    ``upgrade_without_key`` is http.upgrade's recorded answer: when the server upgrades without
    credentials (a self-hosted server without auth) a missing key is no finding at all."""
    findings: list[Finding] = []
    var = f"${key.variable}"
    if key.state in ("unset", "empty"):
        answer = upgrade_without_key.answer if upgrade_without_key is not None else None
        if upgrade_without_key is not None and upgrade_without_key.outcome is Outcome.UPGRADED:
            return []
        status = answer.status if answer is not None else None
        rid = answer.header(deepgram.HEADER_REQUEST_ID) if answer is not None else None
        said = "is not set" if key.state == "unset" else "is set but empty"
        path = (
            f"Deepgram answered HTTP {status} without a key (dg-request-id {rid}), so the path works up to "
            "authentication"
            if status in (401, 403) and rid
            else "the path was diagnosed without one"
        )
        untested = ", ".join(key_checks) or "streaming, idle and close behaviour"
        findings.append(
            finding(
                "ws.no-key",
                Status.WARN,
                f"no API key: {var} {said}; {path}. Not tested without a key: {untested}. "
                f"Set it with `export {key.variable}=...` (or name another variable with --api-key-env)",
                {"variable": key.variable, "state": key.state, "untested": list(key_checks), "status": status},
            )
        )
        return findings
    shape = key.shape
    if shape is None:
        return findings
    if shape.problems:
        words = {
            "newline": "a line break (read from a file or pasted with its newline)",
            "whitespace": "spaces or tabs around the key",
            "quotes": "quotes around the key (a .env value copied with them)",
            "scheme-prefix": f"the scheme {shape.scheme_prefix!r} before the key (SDKs add their own: "
            f"'{shape.scheme_prefix} {shape.scheme_prefix} ...')",
            "inner-whitespace": "whitespace inside the key itself",
        }
        found = "; ".join(words[p] for p in shape.problems)
        findings.append(
            finding(
                "ws.key-format",
                Status.WARN,
                f"{var} holds more than the key: {found}. An app that sends the value as-is gets 401 or an "
                "invalid-header error; wsdoctor tested the key without them",
                {"variable": key.variable, "problems": list(shape.problems), "key_length": shape.length},
            )
        )
    if shape.jwt:
        findings.append(_token_finding(key, shape))
    return findings


def _token_finding(key: KeyObservation, shape: deepgram.KeyShape) -> Finding:
    var = f"${key.variable}"
    ev: dict[str, Any] = {
        "variable": key.variable,
        "jwt_expires_at": shape.jwt_expires_at,
        "jwt_issued_at": shape.jwt_issued_at,
    }
    if shape.jwt_expires_at is None:
        return finding(
            "ws.temporary-token",
            Status.INFO,
            f"{var} holds a temporary token (a JWT, sent as 'Bearer'), not an API key: it expires about "
            f"{deepgram.TEMPORARY_TOKEN_TTL_S} s after it is issued",
            ev,
        )
    left = shape.jwt_expires_at - key.read_at
    ev["expires_in_s"] = round(left, 1)
    if left <= 0:
        return finding(
            "ws.temporary-token",
            Status.WARN,
            f"{var} holds a temporary token (JWT) that expired {-left:.0f} s before the run: Deepgram answers "
            "401 to it; request a fresh one right before connecting",
            ev,
        )
    severity = Status.WARN if left < TOKEN_EXPIRY_WARN_S else Status.INFO
    return finding(
        "ws.temporary-token",
        severity,
        f"{var} holds a temporary token (JWT) that expires {left:.0f} s after the run started: it only needs to "
        "be valid when a connection opens, so an app must fetch a new one for every reconnect",
        ev,
    )


def analyze_without_key(
    upgrade: UpgradeObservation, key: KeyObservation | None, key_checks: tuple[str, ...] = ()
) -> list[Finding]:
    """No key to authenticate with: judge http.upgrade's answer (recorded without one). A 401/403
    is the expected answer then, not a finding of its own; 429 and 5xx mean the same either way."""
    findings = analyze_key(key, upgrade, key_checks) if key is not None else []
    status = upgrade.answer.status if upgrade.answer is not None else None
    return findings + ([] if status in (401, 403) else analyze(upgrade, own=False))


def recorded_upgrade(evidence: object) -> UpgradeObservation | None:
    """http.upgrade's recorded connection, typed again (``None`` if it did not run or record one)."""
    from wsdoctor.probes.wsclient import UpgradeObservation

    if not isinstance(evidence, Mapping):
        return None
    try:
        return UpgradeObservation.from_dict(evidence)
    except FixtureError:
        return None


def auth_summary(obs: UpgradeObservation) -> str:
    if obs.outcome is Outcome.UPGRADED:
        rid = obs.answer.header(deepgram.HEADER_REQUEST_ID) if obs.answer else None
        return f"101 Switching Protocols with the key (dg-request-id {rid or 'none'})"
    if obs.answer is not None:
        return f"HTTP {obs.answer.status} {obs.answer.reason}"
    return f"{obs.outcome}: {obs.error}"


@dataclass(frozen=True, slots=True)
class AuthAttempt(Record):
    """What ws.auth observes: its own Upgrade with the key (``with_key``) -- or, with no key to
    send, http.upgrade's recorded Upgrade without one -- and what the key variable held."""

    upgrade: UpgradeObservation
    with_key: bool
    key: KeyObservation | None = None


class WsAuth(ObservingCheck[AuthAttempt]):
    id = "ws.auth"
    title = "Deepgram accepts an authenticated WebSocket"
    requires = ("http.upgrade",)
    timeout: ClassVar[float] = 15.0

    async def observe(self, ctx: Context) -> AuthAttempt | CheckResult:
        if ctx.api_key is not None:
            return AuthAttempt(await upgrade_once(ctx, credentials=True), with_key=True, key=ctx.key)
        upgrade = recorded_upgrade(ctx.evidence_of("http.upgrade", "upgrade"))
        if upgrade is None:
            return self.skip(f"no API key (set ${ctx.options.api_key_env})", evidence=_key_evidence(ctx.key))
        return AuthAttempt(upgrade, with_key=False, key=ctx.key)

    def judge(self, obs: AuthAttempt, ctx: Context) -> list[Finding]:
        if not obs.with_key:
            return analyze_without_key(obs.upgrade, obs.key, ctx.key_checks)
        key_findings = analyze_key(obs.key, None, ctx.key_checks) if obs.key is not None else []
        return key_findings + analyze(obs.upgrade, obs.key)

    def summarize(self, obs: AuthAttempt, ctx: Context) -> str:
        if obs.with_key:
            return auth_summary(obs.upgrade)
        if obs.upgrade.outcome is Outcome.UPGRADED:
            return "the server accepts WebSockets without credentials"
        status = obs.upgrade.answer.status if obs.upgrade.answer is not None else None
        return f"no API key (set ${ctx.options.api_key_env}); Deepgram answered HTTP {status} without one"

    def evidence(self, obs: AuthAttempt) -> dict[str, JSONValue]:
        key_ev = _key_evidence(obs.key)
        if obs.with_key:
            return {"upgrade": obs.upgrade.to_dict(), **key_ev}
        if obs.upgrade.outcome is Outcome.UPGRADED:
            return key_ev
        return {"upgrade_without_key": obs.upgrade.to_dict(), **key_ev}


def _key_evidence(key: KeyObservation | None) -> dict[str, JSONValue]:
    return {"key": key.to_dict()} if key is not None else {}


class AuthenticatedCheck(ObservingCheck[ObsT]):
    """Base of the checks that stream on an authenticated connection (stream, close, idle, ...):
    they skip, before probing, when ws.auth says there is no connection to authenticate."""

    requires: ClassVar[tuple[str, ...]] = ("ws.auth",)
    needs_key: ClassVar[bool] = True

    def preflight(self, ctx: Context) -> CheckResult | None:
        skipped = super().preflight(ctx)
        return skipped if skipped is not None else self.auth_skip(ctx)

    def auth_skip(self, ctx: Context) -> CheckResult | None:
        """A skip when there is no key and the server wants one, else ``None``.

        A *failed* ws.auth never gets here: the runner skips dependants of failures itself."""
        auth = ctx.result_of("ws.auth")
        if auth is not None and auth.status is Status.SKIP:
            return self.skip(f"needs an authenticated connection: {auth.summary}", blocked_by="ws.auth")
        if auth is not None and any(f.code == "ws.no-key" for f in auth.findings):
            return self.skip(
                f"needs an API key: ${ctx.options.api_key_env} is not set (see ws.auth)", blocked_by="ws.auth"
            )
        return None


CHECKS = (WsAuth,)
