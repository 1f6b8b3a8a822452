"""dns.resolve: can the target's name be resolved, and how?

Theory of operation: the probe asks the system resolver (what the user's app gets) and, for real
DNS names, dnspython for A and AAAA separately. An IP literal or ``--resolve`` needs no lookup.
With ``--dns-server ADDR[:PORT]`` only that server is asked (never getaddrinfo, never the hosts
file, except for RFC 6761 local names), and its A/AAAA answers are the addresses later checks use.
When the app's route goes through a proxy, the proxy resolves the name, so a local failure only warns.
``analyze`` keeps NXDOMAIN (the name does not exist: typo, split-horizon DNS, a filtering resolver)
apart from SERVFAIL (the resolver is broken) and timeout (the resolver or the path to it is down).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar

from wsdoctor.causes import cause_for
from wsdoctor.check import Check, Context
from wsdoctor.model import CheckResult, Finding, Status

__all__ = ["CHECKS", "DnsResolve", "analyze"]

_CODES = {
    "nxdomain": "dns.nxdomain",
    "servfail": "dns.servfail",
    "timeout": "dns.timeout",
    "unreachable": "dns.resolver-unreachable",
    "blocked": "dns.blocked",
}


def _waited_s(records: Mapping[str, Any]) -> float | None:
    times = [r.get("time_s") for r in records.values() if isinstance(r, Mapping)]
    waited = [float(t) for t in times if isinstance(t, int | float)]
    return max(waited) if waited else None


def analyze(obs: Mapping[str, Any]) -> list[Finding]:
    """Judge a recorded :class:`~wsdoctor.probes.netpath.DnsObservation` (as a dict)."""
    addresses = list(obs.get("addresses") or [])
    records = obs.get("records") or {}
    assert isinstance(records, dict)
    outcomes = {rd: (r or {}).get("outcome") for rd, r in records.items()}
    host = obs.get("host")
    if addresses:
        return []
    waited = _waited_s(records)
    for outcome in ("nxdomain", "unreachable", "blocked", "servfail", "timeout"):
        if outcome in outcomes.values():
            code = _CODES[outcome]
            words = {
                "nxdomain": "does not exist (NXDOMAIN)",
                "servfail": "could not be resolved: SERVFAIL",
                "unreachable": "could not be looked up: the DNS resolver cannot be reached from this machine "
                "(network unreachable / no route): there is no working network path at all",
                "blocked": "could not be looked up: a firewall on this machine refuses to send DNS queries "
                "(EPERM: an OUTPUT rule or a container's egress policy), so no resolver was ever asked",
                "timeout": f"got no DNS answer within {waited:.1f} s" if waited else "got no DNS answer in time",
            }[outcome]
            return [
                Finding(
                    code,
                    cause_for(code),
                    Status.FAIL,
                    f"{host} {words} (resolver {obs.get('resolver')})",
                    {"records": records, "system_error": obs.get("system_error"), "waited_s": waited},
                )
            ]
    system_error = str(obs.get("system_error") or "")
    if "timeout" in system_error:
        return [
            Finding(
                "dns.timeout",
                cause_for("dns.timeout"),
                Status.FAIL,
                f"{host}: the system resolver did not answer within {obs.get('time_s') or 0:.1f} s",
                {"system_error": system_error, "waited_s": obs.get("time_s")},
            )
        ]
    return [
        Finding(
            "dns.no-address",
            cause_for("dns.no-address"),
            Status.FAIL,
            f"{host} resolved to no address ({system_error or 'no A/AAAA records'})",
            {"records": records, "system_error": system_error},
        )
    ]


class DnsResolve(Check):
    id = "dns.resolve"
    title = "The target's host name resolves to addresses"
    timeout: ClassVar[float] = 12.0

    async def run(self, ctx: Context) -> CheckResult:
        from wsdoctor.probes.netpath import resolve
        from wsdoctor.probes.proxy import route_for

        obs = await resolve(ctx)
        findings = analyze(obs.to_dict())
        decision, proxy = route_for(ctx)
        if proxy is not None:
            # The app hands the name to the proxy, which resolves it: a local failure is a note.
            findings = [
                replace(
                    f,
                    severity=Status.WARN,
                    message=f"{f.message}; the app connects through the proxy {decision.proxy}, which resolves "
                    "the name itself, so this does not block it",
                )
                for f in findings
            ]
        how = {
            "ip-literal": "IP literal, no lookup needed",
            "resolve-override": "from --resolve",
            "local-name": "local name (hosts file)",
            "dns": f"via {obs.resolver or 'system resolver'}",
        }
        summary = f"{obs.host} -> {', '.join(obs.addresses)} ({how.get(obs.source, obs.source)})"
        return self.result(
            findings, summary=summary, metrics={"resolve_s": obs.time_s}, evidence={"dns": obs.to_dict()}
        )


CHECKS = (DnsResolve,)
