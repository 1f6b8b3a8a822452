"""The cause catalogue: data, not logic.

Every finding points to one cause. A cause says, in plain words, what is wrong, which section of
Deepgram's article "Resolving 'No Close Frame Received' in Deepgram STT API" it comes from (or
``None`` for causes beyond the article), and what to do -- the article's advice made concrete.

``FINDING_CODES`` is the public vocabulary of finding codes with the cause each one usually maps
to. Codes and cause ids are stable: add new ones, never rename one.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CAUSES", "FINDING_CODES", "REST_FALLBACK", "Cause", "FindingCode", "cause_for"]

ARTICLE_TITLE = "Resolving 'No Close Frame Received' in Deepgram STT API"


@dataclass(frozen=True, slots=True)
class Cause:
    id: str
    title: str
    article_section: str | None  # e.g. "§1 Improper Connection Handling"; None = beyond the article
    explanation: str  # what it means, in plain words
    fixes: tuple[str, ...]


CAUSES: dict[str, Cause] = {
    c.id: c
    for c in (
        Cause(
            id="connection-handling",
            title="Improper connection handling in the client",
            article_section="§1 Improper Connection Handling",
            explanation=(
                "The client does not keep the WebSocket alive or does not close it properly, so "
                "Deepgram or the transport ends it without a clean close handshake."
            ),
            fixes=(
                'While no audio is flowing, send a text frame {"type": "KeepAlive"} every 3-5 s '
                "(Deepgram closes an idle stream with 1011 NET-0001 after about 10 s).",
                'When the audio ends, send {"type": "CloseStream"} as a text frame, read the final '
                "Results and Metadata, then wait for Deepgram's close frame (1000) before exiting.",
                "Never send an empty binary frame: it is a deprecated close signal and ends the stream.",
                "Always call close() on the WebSocket (in a finally block / context manager) so "
                "sockets do not pile up in CLOSE_WAIT.",
            ),
        ),
        Cause(
            id="network-instability",
            title="Unstable network between the client and Deepgram",
            article_section="§2 Network Instability",
            explanation=(
                "The connection was interrupted by the network: resets, drops without a close "
                "frame, name-resolution failures or a path too slow for real-time audio."
            ),
            fixes=(
                "Reconnect on 1006/1011/1012/1013 with jittered exponential backoff (not on "
                "1000, 1008 or auth errors), and buffer audio while reconnecting.",
                "Log the dg-request-id of every connection so Deepgram support can trace drops.",
                "Test from a wired or more stable network; check packet loss with mtr to "
                "api.deepgram.com on TCP port 443.",
            ),
        ),
        Cause(
            id="proxy-firewall",
            title="A proxy, firewall or other middlebox interferes with the WebSocket",
            article_section="§3 Proxy or Firewall Restrictions",
            explanation=(
                "Something between the client and Deepgram blocks, rewrites, inspects or "
                "time-limits the WebSocket connection."
            ),
            fixes=(
                "Ask the network team to allow outbound TCP 443 to api.deepgram.com (and the "
                "regional host you use), including the proxy's CONNECT to api.deepgram.com:443, the "
                "HTTP Upgrade to WebSocket, and long-lived connections (a stream lasts minutes to hours).",
                "Exempt api.deepgram.com from TLS inspection, or make the application trust the inspecting proxy's CA.",
                "Raise the proxy/load-balancer idle timeout above your longest silence (60 s or "
                "more), or send KeepAlive more often than the cutoff.",
                "If a proxy is required, configure it in the client (HTTPS_PROXY) with working "
                "credentials; if not, make sure NO_PROXY covers api.deepgram.com.",
            ),
        ),
        Cause(
            id="sdk-libraries",
            title="Outdated or misconfigured SDK / WebSocket library",
            article_section="§4 SDK and Libraries",
            explanation=(
                "An older SDK or WebSocket library mishandles keepalive, close or proxy "
                "settings and produces abrupt closures."
            ),
            fixes=(
                "Upgrade the Deepgram SDK and its WebSocket library to the latest release.",
                "Check the library's ping/keepalive timeout settings: a ping timeout shorter than "
                "the path's latency ends healthy connections.",
            ),
        ),
        Cause(
            id="credentials",
            title="The API key or token is rejected",
            article_section=None,
            explanation=("Deepgram answered and refused the credentials: the network path works, the key does not."),
            fixes=(
                "Send the key as 'Authorization: Token <key>' (or 'Bearer <jwt>' for temporary "
                "tokens) and check it has not been revoked or expired.",
                "Temporary tokens live about 30 s: request a fresh one right before connecting.",
                "Check that the key's project has access to the model and features requested.",
            ),
        ),
        Cause(
            id="account-limits",
            title="Account limits: concurrency, rate or credits",
            article_section=None,
            explanation="Deepgram refused the connection because of a rate, concurrency or balance limit.",
            fixes=(
                "Lower the number of concurrent streams or queue them; retry 429 with backoff.",
                "Check the project's balance and concurrency limits in the Deepgram console (402 = no credits).",
            ),
        ),
        Cause(
            id="service",
            title="Deepgram-side or endpoint trouble",
            article_section=None,
            explanation=("The endpoint answered with a server error, or did not produce results in time."),
            fixes=(
                "Retry with jittered backoff; 1011 NET-0000, 1012 and 1013 are transient.",
                "Check status.deepgram.com and quote the dg-request-id values to Deepgram support.",
                "Try another regional endpoint if one region misbehaves.",
            ),
        ),
        Cause(
            id="audio-format",
            title="Audio Deepgram cannot decode",
            article_section=None,
            explanation=(
                "The audio sent does not match what the stream was opened with (container, "
                "encoding, sample rate, channels), so Deepgram closes with 1008 DATA-0000 or "
                "returns empty transcripts."
            ),
            fixes=(
                "For raw audio, pass encoding, sample_rate and channels in the URL that match "
                "the bytes you send (e.g. encoding=linear16&sample_rate=16000).",
                "For containers (WAV, Ogg, WebM), send the header first and do not pass encoding.",
            ),
        ),
        Cause(
            id="local-host",
            title="A problem on the local machine",
            article_section=None,
            explanation=(
                "The client machine itself is short of a resource or misconfigured: stale CA "
                "bundle, file descriptors, ephemeral ports, clock skew, a blocked event loop."
            ),
            fixes=(
                "Update the CA bundle (pip install -U certifi; on macOS run 'Install "
                "Certificates.command' for python.org builds).",
                "Raise the open-file limit (ulimit -n) and close sockets you no longer use.",
                "Keep the clock in sync (NTP); avoid blocking the event loop that owns the socket.",
            ),
        ),
    )
}

#: The article's Alternative, attached where streaming fails but REST works.
REST_FALLBACK = (
    "For pre-recorded audio, POST it to Deepgram's REST endpoint /v1/listen instead of streaming: "
    "no WebSocket to keep alive or close. You give up live, incremental results."
)


@dataclass(frozen=True, slots=True)
class FindingCode:
    code: str
    cause: str  # the cause this code maps to unless its analyze() has better evidence
    meaning: str


FINDING_CODES: dict[str, FindingCode] = {
    f.code: f
    for f in (
        FindingCode("dns.nxdomain", "network-instability", "The host name does not exist (NXDOMAIN)."),
        FindingCode("dns.servfail", "network-instability", "The resolver failed (SERVFAIL)."),
        FindingCode("dns.timeout", "network-instability", "No DNS answer in time."),
        FindingCode("dns.resolver-unreachable", "network-instability", "The DNS resolver cannot be reached at all."),
        FindingCode("dns.no-address", "network-instability", "The name resolved to no A/AAAA address."),
        FindingCode("tcp.refused", "proxy-firewall", "The port actively refused the connection (RST)."),
        FindingCode("tcp.timeout", "proxy-firewall", "SYNs went unanswered: blackholed, typical of a firewall."),
        FindingCode("tcp.unreachable", "network-instability", "No route to the host or network."),
        FindingCode("tls.untrusted", "local-host", "The certificate chain is not trusted by the CA store used."),
        FindingCode("tls.hostname-mismatch", "proxy-firewall", "The certificate does not name the host."),
        FindingCode("tls.expired", "proxy-firewall", "A certificate in the chain has expired."),
        FindingCode("tls.interception", "proxy-firewall", "An unexpected issuer: TLS is intercepted."),
        FindingCode("tls.sni-reset", "proxy-firewall", "Reset right after ClientHello: SNI filtering."),
        FindingCode("tls.handshake-failed", "network-instability", "The TLS handshake failed."),
        FindingCode("proxy.connect-denied", "proxy-firewall", "The proxy refused CONNECT (403)."),
        FindingCode("proxy.auth-required", "proxy-firewall", "The proxy wants credentials (407)."),
        FindingCode("proxy.unreachable", "proxy-firewall", "The configured proxy does not accept TCP."),
        FindingCode("proxy.bad-answer", "proxy-firewall", "The proxy answered CONNECT with an error or garbage."),
        FindingCode("proxy.misconfigured", "proxy-firewall", "A proxy setting that cannot work."),
        FindingCode("env.proxy-disagreement", "proxy-firewall", "HTTPS_PROXY and https_proxy (or similar) differ."),
        FindingCode("tls.local-ca-stale", "local-host", "One local trust store accepts the chain, another does not."),
        FindingCode("http.intermediary-response", "proxy-firewall", "The answer did not come from Deepgram."),
        FindingCode("http.upgrade-stripped", "proxy-firewall", "The WebSocket upgrade did not survive the path."),
        FindingCode("http.no-response", "network-instability", "The connection ended before any HTTP answer."),
        FindingCode("ws.auth-rejected", "credentials", "Deepgram rejected the key (401/403)."),
        FindingCode("ws.payment-required", "account-limits", "Deepgram refused for lack of credits (402)."),
        FindingCode("ws.rate-limited", "account-limits", "Deepgram rate- or concurrency-limited the request (429)."),
        FindingCode("ws.server-error", "service", "Deepgram answered with a 5xx."),
        FindingCode("ws.bad-request", "audio-format", "Deepgram rejected the request parameters (400)."),
        FindingCode("stream.no-results", "service", "No Results arrived for the audio streamed."),
        FindingCode("stream.empty-transcript", "audio-format", "Results arrived but every transcript was empty."),
        FindingCode("stream.reset", "network-instability", "The connection was reset (RST) mid-stream."),
        FindingCode(
            "stream.protocol-error", "service", "The server broke the WebSocket protocol (bad frame, oversize)."
        ),
        FindingCode("stream.slow-first-result", "service", "The first Results came late."),
        FindingCode("idle.server-timeout", "connection-handling", "Deepgram closed an idle stream (1011 NET-0001)."),
        FindingCode("idle.middlebox-cutoff", "proxy-firewall", "An idle connection was cut without a close frame."),
        FindingCode("idle.keepalive-ineffective", "connection-handling", "The stream died despite KeepAlive."),
        FindingCode("idle.no-pong", "proxy-firewall", "WebSocket pings got no pong across the path."),
        FindingCode("close.no-close-frame", "network-instability", "The peer ended TCP without a close frame (1006)."),
        FindingCode("close.no-close-reply", "network-instability", "Our close frame got no reply in time."),
        FindingCode("close.unexpected-code", "service", "The stream was closed with an unexpected code."),
        FindingCode("rest.failed", "service", "The REST API (POST /v1/listen) did not transcribe the audio."),
        FindingCode("phases.failures", "network-instability", "Some of N repeated connection attempts failed."),
        FindingCode("phases.latency-spread", "network-instability", "A connection phase is erratic: p99 >> p50."),
        FindingCode("host.close-wait-leak", "connection-handling", "Sockets left in CLOSE_WAIT."),
        FindingCode("host.fd-pressure", "local-host", "Open file descriptors near the limit."),
        FindingCode(
            "host.time-wait-pileup", "connection-handling", "Many sockets to the target in TIME_WAIT: connection churn."
        ),
        FindingCode("host.ephemeral-ports", "local-host", "The ephemeral port range is nearly used up."),
        FindingCode("host.loop-lag", "local-host", "The event loop was blocked: late timers, late keepalives."),
        FindingCode("host.clock-skew", "local-host", "The local clock differs from the server's Date header."),
        FindingCode("sdk.outdated", "sdk-libraries", "An SDK or library version with known problems."),
    )
}


def cause_for(code: str) -> str:
    """The default cause of a finding code (KeyError for an unknown code: a bug in a check)."""
    return FINDING_CODES[code].cause
