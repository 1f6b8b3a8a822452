"""proxy.connect: does the proxy the app would use open a tunnel to the target?

Theory of operation: the route comes from :func:`wsdoctor.probes.proxy.route_for` (``--proxy``,
``--no-proxy``, else the proxy variables read like urllib). With no proxy on the route the check is
skipped as not applicable (a skip that blocks nothing). Otherwise one ``CONNECT host:port`` through
the proxy, and -- when the target's address is known -- one direct TCP connect beside it, so the
report can say whether the proxy is *needed* (direct blocked) or merely *in the way* (direct works).

``analyze`` classifies the proxy's answer: 2xx = tunnel open; 407 = the proxy wants credentials
(the ``Proxy-Authenticate`` schemes say which: Basic can be given in the proxy URL, Negotiate/NTLM
need a client that speaks it); 403 or any other refusal = policy denies the CONNECT (squid says
which rule in ``X-Squid-Error``); no TCP to the proxy = proxy.unreachable. Each finding names what
to ask the network team to allow: CONNECT to the host on port 443, the WebSocket Upgrade, and
long-lived connections.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar

from wsdoctor.check import Context, ObservingCheck, RunOptions, finding
from wsdoctor.model import CheckResult, Finding, JSONValue, Outcome, Status
from wsdoctor.record import Record

__all__ = ["CHECKS", "ProxiedConnect", "ProxyConnect", "analyze", "connect_finding", "proxy_by"]

if TYPE_CHECKING:  # the probes (h11, wsproto) load when a check runs, not when checks are listed
    from wsdoctor.probes.netpath import ProxyConnectObservation
    from wsdoctor.probes.proxy import RouteDecision

ALLOW = (
    "ask the network team to allow CONNECT from this machine to {target} (TCP port {port}), "
    "the WebSocket Upgrade through it, and long-lived connections (streams last minutes to hours)"
)


#: An HTTP answer's headers, in order, as (name, value) pairs.
Headers = Sequence[tuple[str, str]]


def _header(headers: Headers, name: str) -> str | None:
    return next((str(v) for k, v in headers if str(k).lower() == name), None)


def _headers_all(headers: Headers, name: str) -> list[str]:
    return [str(v) for k, v in headers if str(k).lower() == name]


def proxy_by(headers: Headers) -> str:
    """The proxy's self-description from its headers (Server, Via, X-Squid-Error)."""
    parts = [
        f"{n}: {_header(headers, n)}" for n in ("server", "via", "x-squid-error", "proxy-agent") if _header(headers, n)
    ]
    return "; ".join(parts) or "no Server/Via header"


def connect_finding(
    status: int | None,
    headers: Headers,
    *,
    proxy: str,
    target: str,
    sent_credentials: bool,
    body_excerpt: str = "",
) -> Finding:
    """The finding for a CONNECT the proxy refused with an HTTP answer (shared with http.upgrade)."""
    host, _, port = target.rpartition(":")
    allow = ALLOW.format(target=host or target, port=port or "443")
    ev: dict[str, JSONValue] = {
        "proxy": proxy,
        "target": target,
        "status": status,
        "answered_by": proxy_by(headers),
        "headers": [[str(k), str(v)] for k, v in headers],
        "sent_credentials": sent_credentials,
    }
    if body_excerpt:
        ev["body_excerpt"] = body_excerpt[:300]
    if status == 407:
        schemes = [v.split(None, 1)[0] for v in _headers_all(headers, "proxy-authenticate") if v.strip()]
        ev["proxy_authenticate"] = schemes
        scheme_text = ", ".join(schemes) or "no Proxy-Authenticate header"
        if sent_credentials:
            what = "rejected the credentials in the proxy URL"
        else:
            what = "requires credentials and none were given"
        basic = any(s.lower() == "basic" for s in schemes) or not schemes
        hint = (
            "check the user name and password in the proxy URL"
            if basic and sent_credentials
            else "put them in the proxy URL (http://user:password@proxy:port)"
            if basic
            else f"use a client that speaks {scheme_text}, or ask for a Basic-auth or unauthenticated exemption"
        )
        return finding(
            "proxy.auth-required",
            Status.FAIL,
            f"the proxy {proxy} {what} (407, scheme {scheme_text}): {hint}; or {allow}",
            ev,
        )
    if status == 403:
        return finding(
            "proxy.connect-denied",
            Status.FAIL,
            f"the proxy {proxy} denied CONNECT to {target} (403, {proxy_by(headers)}): {allow}",
            ev,
        )
    return finding(
        "proxy.bad-answer",
        Status.FAIL,
        f"the proxy {proxy} answered CONNECT to {target} with HTTP {status} ({proxy_by(headers)}): {allow}",
        ev,
    )


def analyze(obs: ProxyConnectObservation) -> list[Finding]:
    """Judge a :class:`~wsdoctor.probes.netpath.ProxyConnectObservation`: the CONNECT through the
    proxy, and the direct TCP attempt beside it (in the evidence, for comparison)."""
    tunnel, direct = obs.tunnel, obs.direct_tcp
    outcome = tunnel.outcome
    proxy, target = tunnel.proxy, tunnel.target
    if outcome is Outcome.ESTABLISHED:
        return []
    if outcome is Outcome.HTTP_RESPONSE:
        refused = connect_finding(
            tunnel.status,
            tunnel.headers,
            proxy=proxy,
            target=target,
            sent_credentials=tunnel.sent_credentials,
            body_excerpt=tunnel.body_excerpt,
        )
        if direct is not None:  # Findings are frozen: a new one with the direct attempt added
            refused = replace(refused, evidence={**refused.evidence, "direct_tcp": direct.to_dict()})
        return [refused]
    ev: dict[str, JSONValue] = {
        "proxy": proxy,
        "proxy_address": tunnel.proxy_address,
        "outcome": outcome.value,
        "error": tunnel.error,
    }
    if direct is not None:
        ev["direct_tcp"] = direct.to_dict()
    unreachable = (Outcome.REFUSED, Outcome.TIMEOUT, Outcome.UNREACHABLE)
    if outcome in unreachable or (tunnel.error or "").startswith("connecting"):
        return [
            finding(
                "proxy.unreachable",
                Status.FAIL,
                f"the proxy {proxy} ({tunnel.proxy_address}) does not accept TCP: {outcome}; check the "
                "proxy address in HTTPS_PROXY/--proxy and that the proxy is running",
                ev,
            )
        ]
    return [
        finding(
            "proxy.bad-answer",
            Status.FAIL,
            f"the proxy {proxy} did not answer CONNECT to {target} properly: {outcome} ({tunnel.error})",
            ev,
        )
    ]


def compare(obs: ProxyConnectObservation) -> str:
    """Direct vs proxied, in words."""
    tunnel, direct = obs.tunnel, obs.direct_tcp
    opened = tunnel.outcome is Outcome.ESTABLISHED
    proxied = "open" if opened else f"{tunnel.outcome} {tunnel.status or ''}".strip()
    if direct is None:
        return f"proxied: {proxied}; direct: not tried (no address known)"
    connected = direct.outcome is Outcome.CONNECTED
    if connected and opened:
        note = "both work; the app uses the proxy"
    elif connected:
        note = "the direct path works where the proxy fails: exempting the host (NO_PROXY) would work"
    elif opened:
        note = "the direct path is blocked: the proxy is needed"
    else:
        note = "neither path works"
    return f"proxied: {proxied}; direct TCP: {direct.outcome}: {note}"


@dataclass(frozen=True, slots=True)
class ProxiedConnect(Record):
    """What proxy.connect observes: the app's route, and the CONNECT (with the direct attempt) along it."""

    route: RouteDecision
    connect: ProxyConnectObservation


class ProxyConnect(ObservingCheck[ProxiedConnect]):
    id = "proxy.connect"
    title = "The proxy on the app's route opens a CONNECT tunnel to the target"
    requires = ("tcp.connect",)
    timeout: ClassVar[float] = 12.0

    def deadline_s(self, options: RunOptions) -> float:
        return 2 * options.connect_timeout_s + 3.0

    async def observe(self, ctx: Context) -> ProxiedConnect | CheckResult:
        import asyncio

        from checks.dns import observed as dns_observed
        from wsdoctor.probes.netpath import ProxyConnectObservation, TcpAttempt, connect_all, tunnel_probe
        from wsdoctor.probes.proxy import route_for

        decision, proxy = route_for(ctx)
        if proxy is None:
            why = (
                "no proxy configured" if decision.route == "direct" and not decision.no_proxy_entry else decision.reason
            )
            return self.skip(f"not applicable: {why}", evidence={"route": decision.to_dict()})
        opts, target = ctx.options, ctx.target
        direct_addr = opts.resolve_for(target.host, target.port)
        if direct_addr is None and target.is_ip_literal:
            direct_addr = target.host
        dns = dns_observed(ctx)
        if direct_addr is None and dns is not None and dns.addresses:
            direct_addr = dns.addresses[0]

        async def direct() -> TcpAttempt | None:
            if direct_addr is None:
                return None
            return (await connect_all(ctx, (direct_addr,)))[0]

        tunnel, direct_tcp = await asyncio.gather(tunnel_probe(ctx), direct())
        return ProxiedConnect(decision, ProxyConnectObservation(tunnel, direct_tcp))

    def judge(self, obs: ProxiedConnect, ctx: Context) -> list[Finding]:
        return analyze(obs.connect)

    def summarize(self, obs: ProxiedConnect, ctx: Context) -> str:
        tunnel = obs.connect.tunnel
        if tunnel.outcome is not Outcome.ESTABLISHED:
            return compare(obs.connect)
        return (
            f"CONNECT {tunnel.target} via {tunnel.proxy}: {tunnel.status} ({obs.route.reason}); {compare(obs.connect)}"
        )

    def measure(self, obs: ProxiedConnect) -> dict[str, float | None]:
        return {"proxy_connect_s": obs.connect.tunnel.connect_s, "proxy_s": obs.connect.tunnel.tunnel_s}

    def evidence(self, obs: ProxiedConnect) -> dict[str, JSONValue]:
        recorded = obs.connect.to_dict()
        return {
            "tunnel": recorded["tunnel"],
            "route": obs.route.to_dict(),
            "direct_tcp": recorded["direct_tcp"],
            "comparison": compare(obs.connect),
        }


CHECKS = (ProxyConnect,)
