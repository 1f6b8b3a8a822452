"""http.upgrade: does a WebSocket Upgrade survive the path, and who answers it?

Theory of operation: one Upgrade request *without* credentials, exactly as a client would send it
(Host, Upgrade, Connection, Sec-WebSocket-Key/Version), and the whole answer kept. Deepgram stamps
every answer with ``dg-request-id`` -- so an answer without it was written by something in between
(captive portal, proxy, WAF). A 401 *with* it proves the path works end to end even with no key.
A 426/200 from Deepgram, or a 101 whose ``Sec-WebSocket-Accept`` does not match our key, means the
Upgrade was stripped or mangled on the way. The status itself (401, 429, 5xx) is judged by ws.auth.
Through a proxy the Upgrade runs inside the CONNECT tunnel (WsProbe tunnels like the app would);
the evidence names the proxy, and the hop that answered (Server, Via, X-Squid-Error headers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from wsdoctor import deepgram
from wsdoctor.causes import cause_for
from wsdoctor.check import Context, ObservingCheck, finding
from wsdoctor.model import CheckResult, Finding, Outcome, Status
from wsdoctor.probes.lifecycle import Stage
from wsdoctor.record import Record

__all__ = [
    "CHECKS",
    "HttpUpgrade",
    "UpgradeAttempts",
    "analyze",
    "answered_by",
    "keyed_findings",
    "summarize",
    "upgrade_once",
]

if TYPE_CHECKING:  # the probes (h11, wsproto) load when a check runs, not when checks are listed
    from wsdoctor.probes.wsclient import HttpAnswer, UpgradeObservation

_PATH_FAILURES = {
    Outcome.EOF: "the connection was closed before any HTTP answer to the Upgrade",
    Outcome.RESET: "the connection was reset before any HTTP answer to the Upgrade",
    Outcome.TIMEOUT: "no HTTP answer to the Upgrade in time",
}
_CONNECT_FAILURES = {Outcome.REFUSED: "tcp.refused", Outcome.UNREACHABLE: "tcp.unreachable"}


def answered_by(answer: HttpAnswer | None) -> str:
    """Which hop wrote the answer, in words, from the headers it carries."""
    if answer is None:
        return "nobody"
    parts = []
    rid = answer.header(deepgram.HEADER_REQUEST_ID)
    parts.append(f"Deepgram (dg-request-id {rid})" if rid else "not Deepgram (no dg-request-id)")
    for name in ("server", "via", "x-cache", "x-squid-error", "proxy-agent"):
        value = answer.header(name)
        if value:
            parts.append(f"{name}: {value}")
    return "; ".join(parts)


def analyze(obs: UpgradeObservation) -> list[Finding]:
    outcome = obs.outcome
    answer = obs.answer
    status = answer.status if answer else None
    ev: dict[str, Any] = {
        "outcome": outcome.value,
        "status": status,
        "answered_by": answered_by(answer),
        "error": obs.error,
    }
    if answer:
        ev["headers"] = [[k, v] for k, v in answer.headers]
        ev["body_excerpt"] = answer.body_excerpt[:500]
    from_deepgram = answer is not None and answer.header(deepgram.HEADER_REQUEST_ID) is not None
    if outcome is Outcome.UPGRADED:
        return []
    if outcome is Outcome.BAD_101:
        violations = list(obs.violations)
        if not violations:  # recorded before violations were listed one by one
            violations = [
                "Sec-WebSocket-Accept does not match our key"
                if not obs.accept_ok
                else "the Upgrade header is not 'websocket'"
            ]
        ev["violations"] = violations
        # A wrong accept key or a lost Upgrade header is a hop rewriting the handshake; the rest is a
        # server (or hop) that negotiates what was never offered.
        if not obs.accept_ok or any("Upgrade header" in v for v in violations):
            why = "; ".join(violations)
            return [
                finding(
                    "http.upgrade-stripped",
                    Status.FAIL,
                    f"a 101 came back but {why}: something on the path rewrites the WebSocket handshake",
                    ev,
                )
            ]
        return [
            finding(
                "http.invalid-handshake",
                Status.FAIL,
                f"the 101 breaks RFC 6455: {'; '.join(violations)} -- python websockets, browsers and Node ws "
                f"refuse such a handshake ({answered_by(answer)})",
                ev,
            )
        ]
    if outcome is Outcome.HTTP_RESPONSE and answer is not None:
        if 300 <= answer.status < 400:
            return [_redirect_finding(obs, answer, ev)]
        if not from_deepgram:
            return [
                finding(
                    "http.intermediary-response",
                    Status.FAIL,
                    f"HTTP {status} to the WebSocket Upgrade came from something other than Deepgram "
                    f"({answered_by(answer)}): a proxy, captive portal or WAF answered",
                    ev,
                )
            ]
        if status in (426, 200) or (status == 400 and "upgrade" in answer.body_excerpt.lower()):
            return [
                finding(
                    "http.upgrade-stripped",
                    Status.FAIL,
                    f"Deepgram answered HTTP {status}: it received the request without a WebSocket "
                    "Upgrade, so a hop on the path removed the Upgrade/Connection headers",
                    ev,
                )
            ]
        return []  # Deepgram answered: the path works; ws.auth judges the status
    if outcome is Outcome.PROTOCOL_ERROR:
        ev["raw_excerpt"] = (obs.raw_excerpt or "")[:300]
        return [
            finding(
                "http.intermediary-response",
                Status.FAIL,
                "the answer to the WebSocket Upgrade is not valid HTTP: something on the path "
                "speaks another protocol on this port",
                ev,
            )
        ]
    if outcome is Outcome.PROXY_ERROR:
        from checks.proxy import connect_finding

        return [
            connect_finding(
                status,
                list(answer.headers) if answer else [],
                proxy=obs.proxy or "the proxy",
                target=obs.target or "?",
                sent_credentials=obs.proxy_credentials,
            )
        ]
    if outcome in _PATH_FAILURES:
        if any(stage == Stage.TUNNELING.value for stage, _t in obs.marks):
            # The tunnel was granted, then died before the server could answer: the proxy (or a
            # filter behind it) dropped the WebSocket, not the open internet.
            ev["via_proxy"] = True
            return [
                Finding(
                    "http.no-response",
                    "proxy-firewall",
                    Status.FAIL,
                    f"{_PATH_FAILURES[outcome]}, inside a CONNECT tunnel the proxy had granted: "
                    "the proxy or a filter behind it drops WebSocket traffic",
                    ev,
                )
            ]
        return [
            finding(
                "http.no-response",
                Status.FAIL,
                f"{_PATH_FAILURES[outcome]} (last stage reached: {obs.furthest or 'connect'})",
                ev,
            )
        ]
    if outcome in (Outcome.TLS_VERIFY_FAILED, Outcome.TLS_ERROR):
        return [
            finding(
                "tls.handshake-failed",
                Status.FAIL,
                f"TLS failed while opening the WebSocket: {obs.error}",
                ev,
            )
        ]
    code = _CONNECT_FAILURES.get(outcome, "http.no-response")
    return [finding(code, Status.FAIL, f"could not open the connection: {outcome} ({obs.error})", ev)]


def _where(location: str, obs: UpgradeObservation) -> tuple[str, bool]:
    """A redirect target as we may show it (scheme, host, port, path: no userinfo, no query) and
    whether it is the same host as the one asked (then the URL itself is what to fix)."""
    import urllib.parse

    try:
        parts = urllib.parse.urlsplit(location.strip())
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "an unparseable location", False
    if not host:  # a relative redirect: same host
        return parts.path[:200] or "/", True
    asked = urllib.parse.urlsplit(obs.url).hostname or ""
    shown = f"{parts.scheme}://{host}{port}{parts.path[:200]}"
    return shown, host.lower() == asked.lower()


def _redirect_finding(obs: UpgradeObservation, answer: HttpAnswer, ev: dict[str, Any]) -> Finding:
    """WebSocket clients do not follow redirects (RFC 6455 4.1: a non-101 fails the handshake); a
    redirect is either the URL's fault (same host: http->https, a moved path) or a captive portal's."""
    location = answer.header("location")
    where, same_host = _where(location, obs) if location else ("nowhere (no Location header)", False)
    ev["location"] = where
    if same_host:
        advice = "the server moved this endpoint: use the URL it points to (wss:// for TLS) in the client"
        cause = "request-parameters"
    else:
        advice = "another host answered for this one: a captive portal or a filtering proxy"
        cause = cause_for("http.redirect")
    return Finding(
        "http.redirect",
        cause,
        Status.FAIL,
        f"the WebSocket Upgrade was redirected (HTTP {answer.status}) to {where}: WebSocket clients do not follow "
        f"redirects; {advice}",
        ev,
    )


def keyed_findings(keyed: UpgradeObservation) -> list[Finding]:
    """What the authenticated Upgrade (made after a 401 without a key) adds: only a stripped
    Upgrade -- its status is ws.auth's to judge."""
    return [f for f in analyze(keyed) if f.code == "http.upgrade-stripped"]


def summarize(obs: UpgradeObservation, findings: list[Finding], keyed: UpgradeObservation | None) -> str:
    answer = obs.answer
    if answer is None:
        summary = f"{obs.outcome}: {obs.error}"
    elif obs.outcome is Outcome.PROXY_ERROR:
        summary = f"the proxy {obs.proxy} answered CONNECT with HTTP {answer.status} {answer.reason}"
    elif obs.outcome is Outcome.UPGRADED:
        summary = f"101 Switching Protocols without credentials, answered by {answered_by(answer)}"
    else:
        summary = f"HTTP {answer.status} {answer.reason} from {answered_by(answer)}"
        if not findings and answer.status in (401, 403):
            summary += ": the network path to Deepgram works"
    if keyed is not None and not findings and keyed.outcome is Outcome.UPGRADED and keyed.answer is not None:
        summary = f"101 Switching Protocols with the key, answered by {answered_by(keyed.answer)}"
    if obs.proxy is not None and obs.outcome is not Outcome.PROXY_ERROR:
        summary += f" (tunnelled through the proxy {obs.proxy})"
    return summary


async def upgrade_once(ctx: Context, *, credentials: bool) -> UpgradeObservation:
    """One Upgrade (with the key or without), closed cleanly if it opened: all a check needs of it."""
    from wsdoctor.probes.wsclient import WsProbe

    async with WsProbe(ctx, credentials=credentials) as probe:
        obs = await probe.connect()
        if obs.outcome is Outcome.UPGRADED:
            await probe.send_close(1000)
            await probe.receive(1.0)
    return obs


def _asks_for_key(obs: UpgradeObservation) -> bool:
    """Deepgram itself answered 401/403: the path reaches it, but that says nothing yet of the
    Upgrade surviving it (a server checks the key before the Upgrade). ``analyze`` finds nothing here."""
    answer = obs.answer
    return (
        obs.outcome is Outcome.HTTP_RESPONSE
        and answer is not None
        and answer.status in (401, 403)
        and answer.header(deepgram.HEADER_REQUEST_ID) is not None
    )


@dataclass(frozen=True, slots=True)
class UpgradeAttempts(Record):
    """What http.upgrade observes: the Upgrade without credentials and, when Deepgram asked for a
    key and one is at hand, the same Upgrade with it (its report form is the check's evidence)."""

    _SPARSE = frozenset({"upgrade_with_key"})

    upgrade: UpgradeObservation
    upgrade_with_key: UpgradeObservation | None = None


class HttpUpgrade(ObservingCheck[UpgradeAttempts]):
    id = "http.upgrade"
    title = "The WebSocket Upgrade reaches Deepgram intact"
    requires = ("tcp.connect", "proxy.connect", "tls.handshake")
    timeout: ClassVar[float] = 15.0

    async def observe(self, ctx: Context) -> UpgradeAttempts | CheckResult:
        obs = await upgrade_once(ctx, credentials=False)
        if _asks_for_key(obs) and ctx.api_key is not None:
            return UpgradeAttempts(obs, await upgrade_once(ctx, credentials=True))
        return UpgradeAttempts(obs)

    def judge(self, obs: UpgradeAttempts, ctx: Context) -> list[Finding]:
        keyed = obs.upgrade_with_key
        return keyed_findings(keyed) if keyed is not None else analyze(obs.upgrade)

    def summarize(self, obs: UpgradeAttempts, ctx: Context) -> str:
        return summarize(obs.upgrade, self.judge(obs, ctx), obs.upgrade_with_key)

    def measure(self, obs: UpgradeAttempts) -> dict[str, float | None]:
        from wsdoctor.probes.lifecycle import phase_durations

        return {k: v for k, v in phase_durations(obs.upgrade.marks).items() if k == "upgrade_s"}


CHECKS = (HttpUpgrade,)
