"""env.proxy: which route would the user's app take to the target, and why?

Theory of operation: no network at all. :func:`wsdoctor.probes.proxy.decide_route` reads
``--proxy`` / ``--no-proxy`` and the proxy variables (HTTP(S)_PROXY, WS(S)_PROXY, ALL_PROXY,
NO_PROXY, both cases, lower case winning as in urllib) and returns the route -- direct or through
a proxy -- with its reason, every variable as set (passwords masked) and each pair whose upper- and
lower-case spellings disagree. ``analyze`` warns about a disagreement (apps built on urllib read
the lower-case one, curl reads ``https_proxy`` but ``HTTP_PROXY`` only in upper case, Node and Go
libraries differ again: two apps on one machine may take different routes) and fails a proxy
setting that cannot work (an unparseable URL, a scheme the app cannot tunnel through).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from wsdoctor.check import Context, ObservingCheck, finding
from wsdoctor.model import CheckResult, Finding, Status

__all__ = ["CHECKS", "EnvProxy", "analyze"]

if TYPE_CHECKING:  # the probes load when a check runs, not when checks are listed
    from wsdoctor.probes.proxy import RouteDecision


def analyze(decision: RouteDecision) -> list[Finding]:
    """Judge a :class:`~wsdoctor.probes.proxy.RouteDecision`."""
    findings: list[Finding] = []
    for d in decision.disagreements:
        findings.append(
            finding(
                "env.proxy-disagreement",
                Status.WARN,
                f"{d.upper}={d.upper_value} and {d.lower}={d.lower_value} "
                f"differ: Python (urllib, websockets, aiohttp, httpx) uses {d.used_by_urllib}, other "
                "tools may use the other one; set both to the same value",
                d.to_dict(),
            )
        )
    if decision.route == "unsupported":
        findings.append(
            finding(
                "proxy.misconfigured",
                Status.FAIL,
                f"{decision.reason}: set {decision.source} to http://[user:password@]host:port "
                "of the proxy, or unset it if no proxy is needed",
                {"source": decision.source, "proxy": decision.proxy, "error": decision.error},
            )
        )
    return findings


class EnvProxy(ObservingCheck["RouteDecision"]):
    id = "env.proxy"
    title = "Which route the app would take: direct or through a proxy (and why)"
    timeout: ClassVar[float] = 5.0
    evidence_key = "route"

    async def observe(self, ctx: Context) -> RouteDecision | CheckResult:
        from wsdoctor.probes.proxy import route_for

        return route_for(ctx)[0]

    def judge(self, obs: RouteDecision, ctx: Context) -> list[Finding]:
        return analyze(obs)

    def summarize(self, obs: RouteDecision, ctx: Context) -> str:
        where = f"through {obs.proxy}" if obs.route == "proxy" else obs.route
        return f"{where}: {obs.reason}"


CHECKS = (EnvProxy,)
