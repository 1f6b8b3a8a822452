"""tls.handshake: a verified TLS handshake with the target, and what broke if not.

Theory of operation: one handshake on its own connection (so its time is the TLS time alone),
verified against the system store plus certifi, or exactly ``--ca-file``. Protocol, cipher, ALPN
and the peer certificate go into the evidence. OpenSSL's verification message is mapped to a
finding: an expired certificate, a name mismatch, or an untrusted chain -- which, for a
``deepgram.com`` host, means something re-signs the traffic (TLS interception by a corporate proxy
or antivirus). A reset during the handshake, after TCP worked, is SNI filtering.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from wsdoctor.causes import cause_for
from wsdoctor.check import Check, Context
from wsdoctor.model import CheckResult, Finding, JSONValue, Status

__all__ = ["CHECKS", "TlsHandshake", "analyze"]


def _is_deepgram(host: str) -> bool:
    host = host.lower().rstrip(".")
    return host == "deepgram.com" or host.endswith(".deepgram.com")


def analyze(obs: Mapping[str, JSONValue]) -> list[Finding]:
    outcome = obs.get("outcome")
    host = str(obs.get("server_name"))
    evidence = {k: obs.get(k) for k in ("verify_code", "verify_message", "error", "address", "peer")}
    if outcome == "ok":
        return []
    if outcome == "tls-verify-failed":
        message = str(obs.get("verify_message") or "").lower()
        if "expired" in message:
            code, text = "tls.expired", f"the certificate for {host} has expired"
        elif "hostname mismatch" in message or "ip address mismatch" in message:
            code, text = "tls.hostname-mismatch", f"the certificate presented does not name {host}"
        elif _is_deepgram(host):
            code, text = (
                "tls.interception",
                (
                    f"the certificate for {host} is not issued by a public CA "
                    "Deepgram uses: something intercepts TLS (corporate proxy or antivirus)"
                ),
            )
        else:
            code, text = "tls.untrusted", f"the certificate chain of {host} is not trusted ({message})"
        return [Finding(code, cause_for(code), Status.FAIL, text, evidence)]
    if outcome in ("reset", "eof"):
        return [
            Finding(
                "tls.sni-reset",
                cause_for("tls.sni-reset"),
                Status.FAIL,
                f"the connection was {'reset' if outcome == 'reset' else 'closed'} during the TLS handshake "
                f"for {host}: typical of SNI filtering by a firewall",
                evidence,
            )
        ]
    return [
        Finding(
            "tls.handshake-failed",
            cause_for("tls.handshake-failed"),
            Status.FAIL,
            f"the TLS handshake with {host} failed: {obs.get('error')}",
            evidence,
        )
    ]


class TlsHandshake(Check):
    id = "tls.handshake"
    title = "A verified TLS handshake (wss:// only)"
    requires = ("tcp.connect",)
    timeout: ClassVar[float] = 12.0

    async def run(self, ctx: Context) -> CheckResult:
        if not ctx.target.tls:
            return self.skip("not applicable: ws:// has no TLS")
        from wsdoctor.probes.netpath import tls_handshake

        attempts = ctx.evidence_of("tcp.connect", "attempts")
        connected = [a for a in attempts or [] if isinstance(a, Mapping) and a.get("outcome") == "connected"]
        if not connected:
            return self.skip("no address accepted TCP", blocked_by="tcp.connect")
        obs = await tls_handshake(ctx, str(connected[0]["address"]))
        d = obs.to_dict()
        summary = (
            f"{obs.protocol}, {obs.cipher}, ALPN {obs.alpn or 'none'}, issuer {obs.peer.get('issuer', '?')}"
            if obs.outcome == "ok"
            else str(obs.outcome)
        )
        return self.result(analyze(d), summary=summary, metrics={"tls_s": obs.time_s}, evidence={"tls": d})


CHECKS = (TlsHandshake,)
