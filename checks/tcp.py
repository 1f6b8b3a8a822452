"""tcp.connect: does every resolved address accept a TCP connection on the target port?

Theory of operation: one connection per address (IPv4 and IPv6 separately, concurrently), each
bounded by ``--connect-timeout``. A refusal (RST) means the host answered and the port is closed; a
timeout means SYNs were dropped -- a blackhole, typical of a firewall; unreachable means no route.
If some addresses work and others don't, clients that try the broken family first stall.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from wsdoctor.causes import cause_for
from wsdoctor.check import Check, Context, RunOptions
from wsdoctor.model import CheckResult, Finding, JSONValue, Status

__all__ = ["CHECKS", "TcpConnect", "analyze"]

_CODE = {"refused": "tcp.refused", "timeout": "tcp.timeout", "unreachable": "tcp.unreachable"}


def analyze(attempts: Sequence[dict[str, JSONValue]], port: int) -> list[Finding]:
    failed = [a for a in attempts if a.get("outcome") != "connected"]
    if not failed:
        return []
    ok = len(failed) < len(attempts)
    findings = []
    for a in failed:
        code = _CODE.get(str(a.get("outcome")), "tcp.unreachable")
        what = {
            "tcp.refused": "refused the connection (the port is closed or rejected by a firewall)",
            "tcp.timeout": f"did not answer within {a.get('time_s')} s (SYNs dropped: blackholed, "
            "typical of a firewall)",
            "tcp.unreachable": f"is unreachable ({a.get('outcome')})",
        }[code]
        severity = Status.WARN if ok else Status.FAIL
        findings.append(
            Finding(
                code,
                cause_for(code),
                severity,
                f"{a.get('address')} port {port} {what}",
                {"attempt": dict(a), "other_addresses_work": ok},
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
        from wsdoctor.probes.netpath import connect_all

        dns_ev = ctx.evidence_of("dns.resolve", "dns")
        addresses = tuple(dns_ev.get("addresses") or ()) if isinstance(dns_ev, dict) else ()
        if not addresses:
            return self.skip("no address to connect to", blocked_by="dns.resolve")
        attempts = await connect_all(ctx, tuple(str(a) for a in addresses))
        dicts = [a.to_dict() for a in attempts]
        findings = analyze(dicts, ctx.target.port)
        times = [a.time_s for a in attempts if a.outcome == "connected"]
        summary = ", ".join(f"{a.address} {a.outcome} in {a.time_s * 1000:.0f} ms" for a in attempts)
        return self.result(
            findings,
            summary=summary,
            metrics={"connect_s": min(times) if times else None},
            evidence={"attempts": dicts},
        )


CHECKS = (TcpConnect,)
