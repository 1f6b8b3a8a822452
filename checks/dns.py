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
from typing import TYPE_CHECKING, ClassVar

from wsdoctor.check import Context, ObservingCheck, finding
from wsdoctor.model import CheckResult, Finding, Status

__all__ = ["CHECKS", "DnsResolve", "analyze", "observed"]

if TYPE_CHECKING:  # the probes (dnspython, h11) load when a check runs, not when checks are listed
    from wsdoctor.probes.proxy import RouteDecision
    from wsdoctor.probes.resolver import DnsObservation, DnsOutcome, DnsRecord

_CODES = {
    "nxdomain": "dns.nxdomain",
    "servfail": "dns.servfail",
    "timeout": "dns.timeout",
    "unreachable": "dns.resolver-unreachable",
    "blocked": "dns.blocked",
}
#: The record outcomes that explain an empty answer, the most telling first.
_FAILURES = ("nxdomain", "unreachable", "blocked", "servfail", "timeout")


def _waited_s(records: Mapping[str, DnsRecord]) -> float | None:
    waited = [r.time_s for r in records.values() if r.time_s is not None]
    return max(waited) if waited else None


def _failed(outcomes: set[DnsOutcome]) -> str | None:
    return next((o for o in _FAILURES if o in outcomes), None)


def analyze(obs: DnsObservation, route: RouteDecision | None = None) -> list[Finding]:
    """Judge a :class:`~wsdoctor.probes.resolver.DnsObservation`. ``route`` is the app's route
    (env.proxy's fact): through a proxy, the proxy resolves the name, so a failure here only warns."""
    findings = _findings(obs)
    if route is not None and route.route == "proxy":
        # The app hands the name to the proxy, which resolves it: a local failure is a note.
        findings = [
            replace(
                f,
                severity=Status.WARN,
                message=f"{f.message}; the app connects through the proxy {route.proxy}, which resolves "
                "the name itself, so this does not block it",
            )
            for f in findings
        ]
    return findings


def _findings(obs: DnsObservation) -> list[Finding]:
    if obs.addresses:
        return []
    host = obs.host
    records = obs.to_dict()["records"]  # the evidence, as the report holds it
    waited = _waited_s(obs.records)
    outcome = _failed({r.outcome for r in obs.records.values()})
    if outcome is not None:
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
            finding(
                code,
                Status.FAIL,
                f"{host} {words} (resolver {obs.resolver})",
                {"records": records, "system_error": obs.system_error, "waited_s": waited},
            )
        ]
    system_error = obs.system_error or ""
    if "timeout" in system_error:
        return [
            finding(
                "dns.timeout",
                Status.FAIL,
                f"{host}: the system resolver did not answer within {obs.time_s or 0:.1f} s",
                {"system_error": system_error, "waited_s": obs.time_s},
            )
        ]
    return [
        finding(
            "dns.no-address",
            Status.FAIL,
            f"{host} resolved to no address ({system_error or 'no A/AAAA records'})",
            {"records": records, "system_error": system_error},
        )
    ]


def observed(ctx: Context) -> DnsObservation | None:
    """dns.resolve's observation, typed again from its evidence; None if it has none (skipped,
    failed before resolving, or evidence that is not a DnsObservation)."""
    from wsdoctor.probes.resolver import DnsObservation
    from wsdoctor.record import FixtureError

    evidence = ctx.evidence_of("dns.resolve", "dns")
    if evidence is None:
        return None
    try:
        return DnsObservation.from_dict(evidence)
    except FixtureError:
        return None


class DnsResolve(ObservingCheck["DnsObservation"]):
    id = "dns.resolve"
    title = "The target's host name resolves to addresses"
    timeout: ClassVar[float] = 12.0
    evidence_key = "dns"

    async def observe(self, ctx: Context) -> DnsObservation | CheckResult:
        from wsdoctor.probes.resolver import resolve

        return await resolve(ctx)

    def judge(self, obs: DnsObservation, ctx: Context) -> list[Finding]:
        from wsdoctor.probes.proxy import route_for

        return analyze(obs, route_for(ctx)[0])

    def summarize(self, obs: DnsObservation, ctx: Context) -> str:
        how = {
            "ip-literal": "IP literal, no lookup needed",
            "resolve-override": "from --resolve",
            "local-name": "local name (hosts file)",
            "dns": f"via {obs.resolver or 'system resolver'}",
        }
        return f"{obs.host} -> {', '.join(obs.addresses)} ({how.get(obs.source, obs.source)})"

    def measure(self, obs: DnsObservation) -> dict[str, float | None]:
        return {"resolve_s": obs.time_s}


CHECKS = (DnsResolve,)
