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

from typing import TYPE_CHECKING, ClassVar

from wsdoctor import deepgram
from wsdoctor.check import Context, ObservingCheck, RunOptions, finding
from wsdoctor.model import CheckResult, Finding, JSONValue, Outcome, Status

__all__ = ["CHECKS", "TlsHandshake", "analyze"]

if TYPE_CHECKING:  # the probes (h11, wsproto) load when a check runs, not when checks are listed
    from wsdoctor.probes.netpath import TlsObservation


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


def _issuers(obs: TlsObservation) -> list[str]:
    out = [c.issuer for c in obs.chain]
    if not out and obs.peer is not None and obs.peer.issuer:
        out = [obs.peer.issuer]
    return out


def _public_issuer(issuers: list[str]) -> bool | None:
    """True if the chain's top issuer is a known public CA, False if not, None if unknown."""
    if not issuers:
        return None
    top = issuers[-1].lower()
    return any(org in top for org in PUBLIC_CA_ORGS)


def _store_findings(obs: TlsObservation, host: str) -> list[Finding]:
    stores = obs.stores
    certifi, system = stores.get("certifi"), stores.get("system")
    certifi_ok = certifi is not None and certifi.outcome is Outcome.OK
    system_ok = system is not None and system.outcome is Outcome.OK
    failed = [k for k in ("certifi", "system") if k in stores and stores[k].outcome is Outcome.TLS_VERIFY_FAILED]
    if certifi_ok == system_ok or not failed:
        return []
    good, bad = ("certifi", "system") if certifi_ok else ("system", "certifi")
    bad_msg = stores[bad].verify_message
    fix = (
        "update the OS CA store (ca-certificates; on macOS python.org builds run 'Install Certificates.command')"
        if bad == "system"
        else "update certifi (pip install -U certifi) or the CA bundle your SDK ships"
    )
    return [
        finding(
            "tls.local-ca-stale",
            Status.WARN,
            f"the chain of {host} is trusted by the {good} store but not by the {bad} store ({bad_msg}): "
            f"apps that use the {bad} store fail with 'certificate verify failed'; {fix}",
            {"stores": obs.to_dict()["stores"]},
        )
    ]


def analyze(obs: TlsObservation) -> list[Finding]:
    """Judge a :class:`~wsdoctor.probes.netpath.TlsObservation`."""
    outcome = obs.outcome
    host = obs.server_name
    recorded = obs.to_dict()  # the evidence, as the report holds it
    evidence: dict[str, JSONValue] = {
        k: recorded[k] for k in ("verify_code", "verify_message", "error", "address", "peer", "chain", "stores")
    }
    issuers = _issuers(obs)
    public = _public_issuer(issuers)
    issuer_text = issuers[-1] if issuers else "unknown issuer"
    if outcome is Outcome.OK:
        findings = _store_findings(obs, host)
        if deepgram.is_deepgram_host(host) and public is False:
            findings.append(
                finding(
                    "tls.interception",
                    Status.WARN,
                    f"the certificate for {host} is issued by {issuer_text}, not by a public CA Deepgram "
                    f"uses: TLS is intercepted (corporate proxy or antivirus) and this machine trusts the "
                    f"interceptor; apps with their own CA bundle will fail: {_FIX_INTERCEPTION}",
                    evidence,
                )
            )
        return findings
    if outcome is Outcome.TLS_VERIFY_FAILED:
        message = (obs.verify_message or "").lower()
        if "expired" in message:
            code, text = "tls.expired", f"the certificate for {host} has expired (issuer {issuer_text})"
        elif "hostname mismatch" in message or "ip address mismatch" in message:
            names = list(obs.peer.san) if obs.peer is not None else None
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
        return [finding(code, Status.FAIL, text, evidence), *_store_findings(obs, host)]
    if outcome is Outcome.PROXY_ERROR:
        return []  # the proxy refused the tunnel: proxy.connect reports it
    if outcome in (Outcome.RESET, Outcome.EOF):
        return [
            finding(
                "tls.sni-reset",
                Status.FAIL,
                f"the connection was {'reset' if outcome is Outcome.RESET else 'closed'} during the TLS handshake "
                f"for {host}: typical of SNI filtering by a firewall; ask the network team to allow TLS to "
                f"{host} on port 443",
                evidence,
            )
        ]
    return [
        finding(
            "tls.handshake-failed",
            Status.FAIL,
            f"the TLS handshake with {host} failed: {obs.error}",
            evidence,
        )
    ]


class TlsHandshake(ObservingCheck["TlsObservation"]):
    id = "tls.handshake"
    title = "A verified TLS handshake (wss:// only)"
    requires = ("tcp.connect", "proxy.connect")
    timeout: ClassVar[float] = 12.0
    evidence_key = "tls"

    def deadline_s(self, options: RunOptions) -> float:
        return 2 * options.connect_timeout_s + 4.0

    async def observe(self, ctx: Context) -> TlsObservation | CheckResult:
        if not ctx.target.tls:
            return self.skip("not applicable: ws:// has no TLS")
        from checks.tcp import observed as tcp_observed
        from wsdoctor.probes.netpath import tls_handshake

        tcp = tcp_observed(ctx)
        connected = [a for a in tcp.attempts if a.outcome is Outcome.CONNECTED] if tcp is not None else []
        if not connected:
            return self.skip("no address accepted TCP", blocked_by="tcp.connect")
        obs = await tls_handshake(ctx, connected[0].address)
        if obs.outcome is Outcome.PROXY_ERROR:  # no TLS to judge: the proxy refused the tunnel
            return self.skip(f"the proxy did not open a tunnel ({obs.error})", blocked_by="proxy.connect")
        return obs

    def judge(self, obs: TlsObservation, ctx: Context) -> list[Finding]:
        return analyze(obs)

    def summarize(self, obs: TlsObservation, ctx: Context) -> str:
        via = f" via {obs.via_proxy}" if obs.via_proxy else ""
        if obs.outcome is not Outcome.OK:
            return f"{obs.outcome}{via}: {obs.error}"
        stores = ", ".join(f"{k} {v.outcome}" for k, v in obs.stores.items())
        issuer = obs.peer.issuer if obs.peer is not None else "?"
        return f"{obs.protocol}, {obs.cipher}, ALPN {obs.alpn or 'none'}, issuer {issuer}{via} (stores: {stores})"

    def measure(self, obs: TlsObservation) -> dict[str, float | None]:
        return {"tls_s": obs.time_s}


CHECKS = (TlsHandshake,)
