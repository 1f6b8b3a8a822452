"""tcp.connect: does every resolved address accept a TCP connection on the target port?

Theory of operation: one connection per address (IPv4 and IPv6 separately, concurrently), each
bounded by ``--connect-timeout``. A refusal (RST) means the host answered and the port is closed; a
timeout means SYNs were dropped -- a blackhole, typical of a firewall; unreachable means no route.
If some addresses work and others don't, clients that try the broken family first stall.
When the app's route goes through a proxy, the first hop is the proxy: its addresses are tried
instead (proxy.connect then tries the target through it, and directly for comparison).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from wsdoctor.causes import cause_for
from wsdoctor.check import Check, Context, RunOptions
from wsdoctor.model import CheckResult, Finding, JSONValue, Status

__all__ = ["CHECKS", "TcpConnect", "analyze"]

_CODE = {"refused": "tcp.refused", "timeout": "tcp.timeout", "unreachable": "tcp.unreachable"}


def _seconds(value: JSONValue) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def analyze(attempts: Sequence[dict[str, JSONValue]], port: int, *, proxy: str | None = None) -> list[Finding]:
    """Judge recorded :class:`~wsdoctor.probes.netpath.TcpAttempt` dicts. With ``proxy`` (the
    redacted proxy URL) the attempts went to the proxy, the app's first hop."""
    failed = [a for a in attempts if a.get("outcome") != "connected"]
    if not failed:
        return []
    ok = len(failed) < len(attempts)
    findings = []
    for a in failed:
        code = _CODE.get(str(a.get("outcome")), "tcp.unreachable")
        what = {
            "tcp.refused": "refused the connection (the port is closed or rejected by a firewall)",
            "tcp.timeout": f"got no SYN-ACK within {_seconds(a.get('time_s')):.1f} s (SYNs dropped: blackholed, "
            "typical of a firewall)",
            "tcp.unreachable": f"is unreachable ({a.get('outcome')})",
        }[code]
        if proxy is not None:
            advice = f"the app's proxy {proxy} is not reachable: check the proxy address and that it runs"
        elif code == "tcp.refused":
            advice = "check the URL's port; if it is right, ask the network team to allow outbound TCP to it"
        elif code == "tcp.timeout":
            advice = (
                f"ask the network team to allow outbound TCP port {port} to this host (and the WebSocket "
                "Upgrade and long-lived connections through any proxy), or configure the proxy they require"
            )
        else:
            advice = "check the route (VPN, default gateway, IPv6 connectivity)"
        severity = Status.WARN if ok else Status.FAIL
        hop = "proxy " if proxy is not None else ""
        findings.append(
            Finding(
                code,
                cause_for(code),
                severity,
                f"{hop}{a.get('address')} port {port} {what}: {advice}",
                {"attempt": dict(a), "other_addresses_work": ok, "via_proxy": proxy},
            )
        )
    return findings


class TcpConnect(Check):
    id = "tcp.connect"
    title = "Every resolved address accepts TCP on the target port"
    requires = ("dns.resolve",)
    timeout: ClassVar[float] = 10.0

    def deadline_s(self, options: RunOptions) -> float:
        return options.connect_timeout_s + 5.0

    async def run(self, ctx: Context) -> CheckResult:
        from wsdoctor.probes.netpath import connect_all, resolve_host
        from wsdoctor.probes.proxy import route_for

        decision, proxy = route_for(ctx)
        port = ctx.target.port
        if proxy is not None:
            # The app's first hop is the proxy: its addresses, its port.
            port = proxy.port
            try:
                addresses: tuple[str, ...] = tuple(await resolve_host(ctx, proxy.host, proxy.port))
            except (OSError, TimeoutError) as exc:
                return self.result(
                    [
                        Finding(
                            "proxy.unreachable",
                            cause_for("proxy.unreachable"),
                            Status.FAIL,
                            f"the proxy host of {decision.proxy} does not resolve: {exc}",
                            {"proxy": decision.proxy},
                        )
                    ],
                    summary="",
                )
        else:
            dns_ev = ctx.evidence_of("dns.resolve", "dns")
            addresses = tuple(str(a) for a in dns_ev.get("addresses") or ()) if isinstance(dns_ev, dict) else ()
            if not addresses:
                return self.skip("no address to connect to", blocked_by="dns.resolve")
        attempts = await connect_all(ctx, addresses, port=port)
        dicts = [a.to_dict() for a in attempts]
        findings = analyze(dicts, port, proxy=decision.proxy if proxy is not None else None)
        times = [a.time_s for a in attempts if a.outcome == "connected"]
        summary = ", ".join(f"{a.address} {a.outcome} in {a.time_s * 1000:.0f} ms" for a in attempts)
        if proxy is not None:
            summary = f"to the proxy {decision.proxy}: {summary}"
        return self.result(
            findings,
            summary=summary,
            metrics={"connect_s": min(times) if times else None},
            evidence={"attempts": dicts, "port": port, "via_proxy": decision.proxy if proxy is not None else None},
        )


CHECKS = (TcpConnect,)
