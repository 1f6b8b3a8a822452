"""tcp.connect: does every resolved address accept a TCP connection on the target port?

Theory of operation: one connection per address (IPv4 and IPv6 separately, concurrently), each
bounded by ``--connect-timeout``. A refusal (RST) means the host answered and the port is closed; a
timeout means SYNs were dropped -- a blackhole, typical of a firewall; unreachable means no route.
If some addresses work and others don't, clients that try the broken family first stall.
When the app's route goes through a proxy, the first hop is the proxy: its addresses are tried
instead (proxy.connect then tries the target through it, and directly for comparison).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from wsdoctor.check import Context, ObservingCheck, RunOptions, finding
from wsdoctor.model import CheckResult, Finding, Outcome, Status

__all__ = ["CHECKS", "TcpConnect", "analyze", "observed"]

if TYPE_CHECKING:  # the probes (h11, wsproto) load when a check runs, not when checks are listed
    from wsdoctor.probes.netpath import TcpAttempt, TcpObservation

_CODE = {Outcome.REFUSED: "tcp.refused", Outcome.TIMEOUT: "tcp.timeout", Outcome.UNREACHABLE: "tcp.unreachable"}


def analyze(obs: TcpObservation) -> list[Finding]:
    """Judge a :class:`~wsdoctor.probes.netpath.TcpObservation`. With ``via_proxy`` (the redacted
    proxy URL) the attempts went to the proxy, the app's first hop."""
    proxy, port = obs.via_proxy, obs.port
    if obs.proxy_dns_error is not None:
        return [
            finding(
                "proxy.unreachable",
                Status.FAIL,
                f"the proxy host of {proxy} does not resolve: {obs.proxy_dns_error}",
                {"proxy": proxy},
            )
        ]
    failed = [a for a in obs.attempts if a.outcome is not Outcome.CONNECTED]
    if not failed:
        return []
    ok = len(failed) < len(obs.attempts)
    findings = []
    for a in failed:
        code = _CODE.get(a.outcome, "tcp.unreachable")
        what = {
            "tcp.refused": "refused the connection (the port is closed or rejected by a firewall)",
            "tcp.timeout": f"got no SYN-ACK within {a.time_s:.1f} s (SYNs dropped: blackholed, typical of a firewall)",
            "tcp.unreachable": f"is unreachable ({_failure(a)})",
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
            finding(
                code,
                severity,
                f"{hop}{a.address} port {port} {what}: {advice}",
                {"attempt": a.to_dict(), "other_addresses_work": ok, "via_proxy": proxy},
            )
        )
    return findings


def _failure(attempt: TcpAttempt) -> str:
    """How an attempt failed, in a word: its outcome, or for OSERROR (no name of its own) its
    error, which starts with the errno's name."""
    if attempt.outcome is Outcome.OSERROR and attempt.error:
        return attempt.error
    return attempt.outcome.value


def observed(ctx: Context) -> TcpObservation | None:
    """tcp.connect's observation, typed again from its evidence; None if it has none (skipped,
    or evidence that is not a TcpObservation)."""
    from wsdoctor.probes.netpath import TcpObservation
    from wsdoctor.record import FixtureError

    result = ctx.result_of("tcp.connect")
    if result is None or not result.evidence:
        return None
    try:
        return TcpObservation.from_dict(result.evidence)
    except FixtureError:
        return None


class TcpConnect(ObservingCheck["TcpObservation"]):
    id = "tcp.connect"
    title = "Every resolved address accepts TCP on the target port"
    requires = ("dns.resolve",)
    timeout: ClassVar[float] = 10.0

    def deadline_s(self, options: RunOptions) -> float:
        return options.connect_timeout_s + 5.0

    async def observe(self, ctx: Context) -> TcpObservation | CheckResult:
        from checks.dns import observed as dns_observed
        from wsdoctor.probes.netpath import TcpObservation, connect_all
        from wsdoctor.probes.proxy import route_for
        from wsdoctor.probes.resolver import resolve_host

        decision, proxy = route_for(ctx)
        if proxy is not None:
            # The app's first hop is the proxy: its addresses, its port.
            try:
                addresses: tuple[str, ...] = tuple(await resolve_host(ctx, proxy.host, proxy.port))
            except (OSError, TimeoutError) as exc:
                return TcpObservation((), proxy.port, via_proxy=decision.proxy, proxy_dns_error=str(exc))
            attempts = await connect_all(ctx, addresses, port=proxy.port)
            return TcpObservation(attempts, proxy.port, via_proxy=decision.proxy)
        dns = dns_observed(ctx)
        if dns is None or not dns.addresses:
            return self.skip("no address to connect to", blocked_by="dns.resolve")
        port = ctx.target.port
        return TcpObservation(await connect_all(ctx, dns.addresses, port=port), port)

    def judge(self, obs: TcpObservation, ctx: Context) -> list[Finding]:
        return analyze(obs)

    def summarize(self, obs: TcpObservation, ctx: Context) -> str:
        summary = ", ".join(f"{a.address} {a.outcome} in {a.time_s * 1000:.0f} ms" for a in obs.attempts)
        return f"to the proxy {obs.via_proxy}: {summary}" if obs.via_proxy is not None else summary

    def measure(self, obs: TcpObservation) -> dict[str, float | None]:
        times = [a.time_s for a in obs.attempts if a.outcome is Outcome.CONNECTED]
        return {"connect_s": min(times) if times else None}


CHECKS = (TcpConnect,)
