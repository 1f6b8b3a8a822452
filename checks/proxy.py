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

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar

from wsdoctor.causes import cause_for
from wsdoctor.check import Check, Context, RunOptions
from wsdoctor.model import CheckResult, Finding, JSONValue, Status

__all__ = ["CHECKS", "ProxyConnect", "analyze", "connect_finding", "proxy_by"]

ALLOW = (
    "ask the network team to allow CONNECT from this machine to {target} (TCP port {port}), "
    "the WebSocket Upgrade through it, and long-lived connections (streams last minutes to hours)"
)


def _header(headers: Sequence[Any], name: str) -> str | None:
    return next((str(v) for k, v in headers if str(k).lower() == name), None)


def _headers_all(headers: Sequence[Any], name: str) -> list[str]:
    return [str(v) for k, v in headers if str(k).lower() == name]


def proxy_by(headers: Sequence[Any]) -> str:
    """The proxy's self-description from its headers (Server, Via, X-Squid-Error)."""
    parts = [
        f"{n}: {_header(headers, n)}" for n in ("server", "via", "x-squid-error", "proxy-agent") if _header(headers, n)
    ]
    return "; ".join(parts) or "no Server/Via header"


def connect_finding(
    status: int | None,
    headers: Sequence[Any],
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
        return Finding(
            "proxy.auth-required",
            cause_for("proxy.auth-required"),
            Status.FAIL,
            f"the proxy {proxy} {what} (407, scheme {scheme_text}): {hint}; or {allow}",
            ev,
        )
    if status == 403:
        return Finding(
            "proxy.connect-denied",
            cause_for("proxy.connect-denied"),
            Status.FAIL,
            f"the proxy {proxy} denied CONNECT to {target} (403, {proxy_by(headers)}): {allow}",
            ev,
        )
    return Finding(
        "proxy.bad-answer",
        cause_for("proxy.bad-answer"),
        Status.FAIL,
        f"the proxy {proxy} answered CONNECT to {target} with HTTP {status} ({proxy_by(headers)}): {allow}",
        ev,
    )


def analyze(obs: Mapping[str, Any], direct: Mapping[str, Any] | None = None) -> list[Finding]:
    """Judge a recorded :class:`~wsdoctor.probes.proxy.TunnelObservation` (as a dict); ``direct``
    is the direct TCP attempt beside it (a :class:`~wsdoctor.probes.netpath.TcpAttempt` dict)."""
    outcome = obs.get("outcome")
    proxy, target = str(obs.get("proxy")), str(obs.get("target"))
    if outcome == "established":
        return []
    headers = obs.get("headers") or []
    if outcome == "http-response":
        finding = connect_finding(
            obs.get("status"),
            headers,
            proxy=proxy,
            target=target,
            sent_credentials=bool(obs.get("sent_credentials")),
            body_excerpt=str(obs.get("body_excerpt") or ""),
        )
        if direct is not None:  # Findings are frozen: a new one with the direct attempt added
            finding = replace(finding, evidence={**finding.evidence, "direct_tcp": dict(direct)})
        return [finding]
    ev: dict[str, JSONValue] = {
        "proxy": proxy,
        "proxy_address": obs.get("proxy_address"),
        "outcome": outcome,
        "error": obs.get("error"),
    }
    if direct is not None:
        ev["direct_tcp"] = dict(direct)
    if outcome in ("refused", "timeout", "unreachable") or str(obs.get("error") or "").startswith("connecting"):
        return [
            Finding(
                "proxy.unreachable",
                cause_for("proxy.unreachable"),
                Status.FAIL,
                f"the proxy {proxy} ({obs.get('proxy_address')}) does not accept TCP: {outcome}; check the "
                "proxy address in HTTPS_PROXY/--proxy and that the proxy is running",
                ev,
            )
        ]
    return [
        Finding(
            "proxy.bad-answer",
            cause_for("proxy.bad-answer"),
            Status.FAIL,
            f"the proxy {proxy} did not answer CONNECT to {target} properly: {outcome} ({obs.get('error')})",
            ev,
        )
    ]


def compare(obs: Mapping[str, Any], direct: Mapping[str, Any] | None) -> str:
    """Direct vs proxied, in words."""
    proxied = (
        "open" if obs.get("outcome") == "established" else f"{obs.get('outcome')} {obs.get('status') or ''}".strip()
    )
    if direct is None:
        return f"proxied: {proxied}; direct: not tried (no address known)"
    d = str(direct.get("outcome"))
    if d == "connected" and proxied == "open":
        note = "both work; the app uses the proxy"
    elif d == "connected":
        note = "the direct path works where the proxy fails: exempting the host (NO_PROXY) would work"
    elif proxied == "open":
        note = "the direct path is blocked: the proxy is needed"
    else:
        note = "neither path works"
    return f"proxied: {proxied}; direct TCP: {d}: {note}"


class ProxyConnect(Check):
    id = "proxy.connect"
    title = "The proxy on the app's route opens a CONNECT tunnel to the target"
    requires = ("tcp.connect",)
    timeout: ClassVar[float] = 12.0

    def deadline_s(self, options: RunOptions) -> float:
        return 2 * options.connect_timeout_s + 3.0

    async def run(self, ctx: Context) -> CheckResult:
        import asyncio
        import contextlib

        from wsdoctor.probes.netpath import connect_all, proxy_address
        from wsdoctor.probes.proxy import open_tunnel, route_for

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
        dns_ev = ctx.evidence_of("dns.resolve", "dns")
        if direct_addr is None and isinstance(dns_ev, dict) and dns_ev.get("addresses"):
            direct_addr = str(dns_ev["addresses"][0])

        async def direct() -> dict[str, JSONValue] | None:
            if direct_addr is None:
                return None
            return (await connect_all(ctx, (direct_addr,)))[0].to_dict()

        (tunnel, _reader, writer), direct_d = await asyncio.gather(
            open_tunnel(
                proxy,
                target.host,
                target.port,
                opts.connect_timeout_s,
                address=await proxy_address(ctx, proxy.host, proxy.port),
            ),
            direct(),
        )
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
        d = tunnel.to_dict()
        findings = analyze(d, direct_d)
        comparison = compare(d, direct_d)
        if tunnel.outcome == "established":
            summary = f"CONNECT {tunnel.target} via {tunnel.proxy}: {tunnel.status} ({decision.reason}); {comparison}"
        else:
            summary = comparison
        return self.result(
            findings,
            summary=summary,
            metrics={"proxy_connect_s": tunnel.connect_s, "proxy_s": tunnel.tunnel_s},
            evidence={"tunnel": d, "route": decision.to_dict(), "direct_tcp": direct_d, "comparison": comparison},
        )


CHECKS = (ProxyConnect,)
