"""tls.handshake: a verified TLS handshake with the target, and what broke if not.

Theory of operation: one handshake on its own connection (so its time is the TLS time alone),
verified against the system store plus certifi, or exactly ``--ca-file`` (what the app trusts);
beside it the chain is read without verifying (so a failure still shows *who* issued it) and one
verified handshake per store (certifi, system, --ca-file) says which store trusts it. A chain one
local store accepts and another rejects is a stale local bundle (tls.local-ca-stale, local-host).
Through a proxy the handshakes run inside a CONNECT tunnel. Protocol, cipher, ALPN, the peer
certificate and the chain (subject, issuer, validity) go into the evidence.
OpenSSL's verification message is mapped to a finding: an expired certificate, a name mismatch,
or an untrusted chain -- which, for a
``deepgram.com`` host, means something re-signs the traffic (TLS interception by a corporate proxy
or antivirus). A reset during the handshake, after TCP worked, is SNI filtering.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from wsdoctor import deepgram
from wsdoctor.causes import cause_for
from wsdoctor.check import Check, Context, RunOptions
from wsdoctor.model import CheckResult, Finding, JSONValue, Status

__all__ = ["CHECKS", "TlsHandshake", "analyze"]


#: Organisations of the public CAs whose chains a deepgram.com host can plausibly present (the CAs
#: of the big clouds/CDNs and the public web PKI). Anything else in the chain of a Deepgram host was
#: put there by something on the path that re-signs TLS.
PUBLIC_CA_ORGS = (
    "let's encrypt",
    "internet security research group",
    "google trust services",
    "digicert",
    "amazon",
    "sectigo",
    "comodo",
    "globalsign",
    "cloudflare",
    "baltimore",
    "entrust",
    "godaddy",
    "starfield",
    "microsoft",
    "usertrust",
    "zerossl",
)

_FIX_INTERCEPTION = (
    "make the application trust the inspecting proxy's CA (e.g. --ca-file / SSL_CERT_FILE / "
    "REQUESTS_CA_BUNDLE / NODE_EXTRA_CA_CERTS), or ask the network team to exempt api.deepgram.com "
    "from TLS inspection (inspection often breaks long-lived WebSockets)"
)


def _issuers(obs: Mapping[str, JSONValue]) -> list[str]:
    chain = obs.get("chain") or []
    out = [str(c.get("issuer", "")) for c in chain if isinstance(c, dict)] if isinstance(chain, list) else []
    peer = obs.get("peer")
    if not out and isinstance(peer, dict) and peer.get("issuer"):
        out = [str(peer["issuer"])]
    return out


def _public_issuer(issuers: list[str]) -> bool | None:
    """True if the chain's top issuer is a known public CA, False if not, None if unknown."""
    if not issuers:
        return None
    top = issuers[-1].lower()
    return any(org in top for org in PUBLIC_CA_ORGS)


def _store_findings(obs: Mapping[str, JSONValue], host: str) -> list[Finding]:
    stores = obs.get("stores")
    if not isinstance(stores, dict):
        return []
    outcome = {k: (v or {}).get("outcome") if isinstance(v, dict) else None for k, v in stores.items()}
    certifi_ok, system_ok = outcome.get("certifi") == "ok", outcome.get("system") == "ok"
    failed = [k for k in ("certifi", "system") if outcome.get(k) == "tls-verify-failed"]
    if certifi_ok == system_ok or not failed:
        return []
    good, bad = ("certifi", "system") if certifi_ok else ("system", "certifi")
    bad_msg = stores[bad].get("verify_message") if isinstance(stores[bad], dict) else None
    fix = (
        "update the OS CA store (ca-certificates; on macOS python.org builds run 'Install Certificates.command')"
        if bad == "system"
        else "update certifi (pip install -U certifi) or the CA bundle your SDK ships"
    )
    return [
        Finding(
            "tls.local-ca-stale",
            cause_for("tls.local-ca-stale"),
            Status.WARN,
            f"the chain of {host} is trusted by the {good} store but not by the {bad} store ({bad_msg}): "
            f"apps that use the {bad} store fail with 'certificate verify failed'; {fix}",
            {"stores": dict(stores)},
        )
    ]


def analyze(obs: Mapping[str, JSONValue]) -> list[Finding]:
    outcome = obs.get("outcome")
    host = str(obs.get("server_name"))
    evidence = {k: obs.get(k) for k in ("verify_code", "verify_message", "error", "address", "peer", "chain", "stores")}
    issuers = _issuers(obs)
    public = _public_issuer(issuers)
    issuer_text = issuers[-1] if issuers else "unknown issuer"
    if outcome == "ok":
        findings = _store_findings(obs, host)
        if deepgram.is_deepgram_host(host) and public is False:
            findings.append(
                Finding(
                    "tls.interception",
                    cause_for("tls.interception"),
                    Status.WARN,
                    f"the certificate for {host} is issued by {issuer_text}, not by a public CA Deepgram "
                    f"uses: TLS is intercepted (corporate proxy or antivirus) and this machine trusts the "
                    f"interceptor; apps with their own CA bundle will fail: {_FIX_INTERCEPTION}",
                    evidence,
                )
            )
        return findings
    if outcome == "tls-verify-failed":
        message = str(obs.get("verify_message") or "").lower()
        if "expired" in message:
            code, text = "tls.expired", f"the certificate for {host} has expired (issuer {issuer_text})"
        elif "hostname mismatch" in message or "ip address mismatch" in message:
            peer = obs.get("peer")
            names = peer.get("san") if isinstance(peer, Mapping) else None
            code, text = (
                "tls.hostname-mismatch",
                f"the certificate presented does not name {host} (it names {names or 'other hosts'}; issuer "
                f"{issuer_text}): a proxy or load balancer answers for another host, or the URL is wrong",
            )
        elif deepgram.is_deepgram_host(host) and public is not True:
            code, text = (
                "tls.interception",
                f"the certificate for {host} is issued by {issuer_text}, not by a public CA Deepgram uses: "
                f"something intercepts TLS (corporate proxy or antivirus); {_FIX_INTERCEPTION}",
            )
        else:
            code, text = (
                "tls.untrusted",
                f"the certificate chain of {host} (issuer {issuer_text}) is not trusted ({message}); pass its "
                "CA with --ca-file if it is a private CA, or update the local CA bundle",
            )
        return [Finding(code, cause_for(code), Status.FAIL, text, evidence), *_store_findings(obs, host)]
    if outcome == "proxy-error":
        return []  # the proxy refused the tunnel: proxy.connect reports it
    if outcome in ("reset", "eof"):
        return [
            Finding(
                "tls.sni-reset",
                cause_for("tls.sni-reset"),
                Status.FAIL,
                f"the connection was {'reset' if outcome == 'reset' else 'closed'} during the TLS handshake "
                f"for {host}: typical of SNI filtering by a firewall; ask the network team to allow TLS to "
                f"{host} on port 443",
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
    requires = ("tcp.connect", "proxy.connect")
    timeout: ClassVar[float] = 12.0

    def deadline_s(self, options: RunOptions) -> float:
        return 2 * options.connect_timeout_s + 4.0

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
        stores = ", ".join(f"{k} {(v or {}).get('outcome')}" for k, v in obs.stores.items() if isinstance(v, dict))
        via = f" via {obs.via_proxy}" if obs.via_proxy else ""
        summary = (
            f"{obs.protocol}, {obs.cipher}, ALPN {obs.alpn or 'none'}, issuer {obs.peer.get('issuer', '?')}"
            f"{via} (stores: {stores})"
            if obs.outcome == "ok"
            else f"{obs.outcome}{via}: {obs.error}"
        )
        if obs.outcome == "proxy-error":
            return self.skip(f"the proxy did not open a tunnel ({obs.error})", blocked_by="proxy.connect")
        return self.result(analyze(d), summary=summary, metrics={"tls_s": obs.time_s}, evidence={"tls": d})


CHECKS = (TlsHandshake,)
