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

from collections.abc import Mapping
from typing import Any, ClassVar

from wsdoctor.causes import cause_for
from wsdoctor.check import Check, Context
from wsdoctor.model import CheckResult, Finding, Status

__all__ = ["CHECKS", "EnvProxy", "analyze"]


def analyze(decision: Mapping[str, Any]) -> list[Finding]:
    """Judge a recorded :class:`~wsdoctor.probes.proxy.RouteDecision` (as a dict)."""
    findings: list[Finding] = []
    for d in decision.get("disagreements") or []:
        if not isinstance(d, Mapping):
            continue
        findings.append(
            Finding(
                "env.proxy-disagreement",
                cause_for("env.proxy-disagreement"),
                Status.WARN,
                f"{d.get('upper')}={d.get('upper_value')!s} and {d.get('lower')}={d.get('lower_value')!s} "
                f"differ: Python (urllib, websockets, aiohttp, httpx) uses {d.get('used_by_urllib')}, other "
                "tools may use the other one; set both to the same value",
                dict(d),
            )
        )
    if decision.get("route") == "unsupported":
        findings.append(
            Finding(
                "proxy.misconfigured",
                cause_for("proxy.misconfigured"),
                Status.FAIL,
                f"{decision.get('reason')}: set {decision.get('source')} to http://[user:password@]host:port "
                "of the proxy, or unset it if no proxy is needed",
                {"source": decision.get("source"), "proxy": decision.get("proxy"), "error": decision.get("error")},
            )
        )
    return findings


class EnvProxy(Check):
    id = "env.proxy"
    title = "Which route the app would take: direct or through a proxy (and why)"
    timeout: ClassVar[float] = 5.0

    async def run(self, ctx: Context) -> CheckResult:
        from wsdoctor.probes.proxy import route_for

        decision, _proxy = route_for(ctx)
        d = decision.to_dict()
        where = f"through {decision.proxy}" if decision.route == "proxy" else decision.route
        summary = f"{where}: {decision.reason}"
        return self.result(analyze(d), summary=summary, evidence={"route": d})


CHECKS = (EnvProxy,)
