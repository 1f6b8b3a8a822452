"""The cause catalogue: data, not logic.

Every finding points to one cause. A cause says, in plain words, what is wrong, which section of
Deepgram's article "Resolving 'No Close Frame Received' in Deepgram STT API" it comes from (or
``None`` for causes beyond the article), and what to do -- the article's advice made concrete.

``FINDING_CODES`` is the public vocabulary of finding codes with the cause each one usually maps
to. Codes and cause ids are stable: add new ones, never rename one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["CAUSES", "FINDING_CODES", "REST_FALLBACK", "Cause", "FindingCode", "cause_for", "fixes_for"]

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
            id="request-parameters",
            title="Deepgram rejects the request's parameters",
            article_section=None,
            explanation=(
                "Deepgram answered and refused what the URL asks for: an unknown or misspelled query "
                "parameter, a value it does not accept, or a combination a model does not support "
                "(keywords with nova-3, a v2 model on /v1/listen, a language the default model lacks)."
            ),
            fixes=(
                "Read the dg-error header (or the body's err_msg) of the 400: it names what Deepgram refused.",
                "Check each query parameter against the model's documentation (nova-3 takes keyterm, not "
                "keywords; pick a model that supports the language), and spell every name as documented.",
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
    #: What to do about *this* finding, most specific first: shown before the cause's general fixes
    #: (a machine with no network is told to connect it, not to "reconnect with backoff").
    fixes: tuple[str, ...]


def _code(code: str, cause: str, meaning: str, *fixes: str) -> FindingCode:
    return FindingCode(code, cause, meaning, fixes)


FINDING_CODES: dict[str, FindingCode] = {
    f.code: f
    for f in (
        _code(
            "dns.nxdomain",
            "network-instability",
            "The host name does not exist (NXDOMAIN).",
            "Check the host in the URL for a typo (Deepgram's are api.deepgram.com and the regional "
            "api.eu.deepgram.com ...); if it is right, this resolver filters or does not know it (split-horizon "
            "DNS, a DNS filter): compare with `wsdoctor run --dns-server 1.1.1.1` and ask the network team.",
        ),
        _code(
            "dns.servfail",
            "network-instability",
            "The resolver failed (SERVFAIL).",
            "The resolver itself failed: retry, then compare another resolver (`wsdoctor run --dns-server "
            "1.1.1.1`); a resolver that keeps failing (DNSSEC, a broken forwarder) is for the network team.",
        ),
        _code(
            "dns.timeout",
            "network-instability",
            "No DNS answer in time.",
            "No DNS answer came back: check that the resolver in /etc/resolv.conf (or the OS network settings) "
            "is reachable (`dig api.deepgram.com @RESOLVER`) and that port 53 to it is not blocked; compare "
            "`wsdoctor run --dns-server 1.1.1.1`.",
        ),
        _code(
            "dns.resolver-unreachable",
            "network-instability",
            "The DNS resolver cannot be reached at all.",
            "This machine has no working network path at all: connect it to a network (check the interface, "
            "Wi-Fi or cable, VPN and default route with `ip route`), then run wsdoctor again.",
        ),
        _code(
            "dns.blocked",
            "proxy-firewall",
            "A firewall on this machine refuses to send DNS queries (EPERM).",
            "A local firewall rule or a container's egress policy blocks DNS: allow UDP and TCP port 53 to "
            "the configured resolver (`iptables -S OUTPUT`, the pod's NetworkPolicy), or use the resolver "
            "the policy allows.",
        ),
        _code(
            "dns.no-address",
            "network-instability",
            "The name resolved to no A/AAAA address.",
            "The name exists but gave no usable address: look for a DNS filter answering with empty records, "
            "or an IPv6-only answer on an IPv4-only network.",
        ),
        _code(
            "tcp.refused",
            "proxy-firewall",
            "The port actively refused the connection (RST).",
            "Something refused TCP to this port: check the URL's port (443 for wss://api.deepgram.com) and any "
            "local firewall or security software that sends resets.",
        ),
        _code(
            "tcp.timeout",
            "proxy-firewall",
            "SYNs went unanswered: blackholed, typical of a firewall.",
            "A firewall drops the connection silently: ask the network team to allow outbound TCP 443 to "
            "api.deepgram.com, or use the proxy this network requires (HTTPS_PROXY or --proxy).",
        ),
        _code(
            "tcp.unreachable",
            "network-instability",
            "No route to the host or network.",
            "There is no route to this address: check the default gateway and VPN (`ip route get ADDRESS`); if "
            "only IPv6 fails, the network lacks IPv6 and clients should fall back to IPv4.",
        ),
        _code(
            "tls.untrusted",
            "local-host",
            "The certificate chain is not trusted by the CA store used.",
            "Update the CA store the app uses (`pip install -U certifi`; macOS python.org builds: run 'Install "
            "Certificates.command'); behind a TLS-inspecting proxy give the app its CA (SSL_CERT_FILE, "
            "NODE_EXTRA_CA_CERTS, --ca-file).",
        ),
        _code(
            "tls.hostname-mismatch",
            "proxy-firewall",
            "The certificate does not name the host.",
            "The certificate belongs to another name: check the URL's host; a proxy or captive portal answering "
            "for Deepgram's host shows this, so sign in to it or bypass it.",
        ),
        _code(
            "tls.expired",
            "proxy-firewall",
            "A certificate in the chain has expired.",
            "Check the local clock first (`date`); if it is right, the expired certificate is served by a "
            "middlebox on the path, whose owner must renew it.",
        ),
        _code(
            "tls.interception",
            "proxy-firewall",
            "An unexpected issuer: TLS is intercepted.",
            "A middlebox re-signs TLS for Deepgram: ask the network team to exempt api.deepgram.com from TLS "
            "inspection, or make the app trust the inspecting CA (SSL_CERT_FILE, NODE_EXTRA_CA_CERTS, --ca-file).",
        ),
        _code(
            "tls.sni-reset",
            "proxy-firewall",
            "Reset right after ClientHello: SNI filtering.",
            "A filter resets connections that name Deepgram's host in the TLS ClientHello: ask the network team "
            "to allow api.deepgram.com.",
        ),
        _code(
            "tls.handshake-failed",
            "network-instability",
            "The TLS handshake failed.",
            "Check that the port speaks TLS (WRONG_VERSION_NUMBER means a plain-HTTP port or proxy) and that "
            "TLS 1.2 or newer is allowed on the path.",
        ),
        _code(
            "proxy.connect-denied",
            "proxy-firewall",
            "The proxy refused CONNECT (403).",
            "The proxy forbids the tunnel: ask its admins to allow CONNECT to api.deepgram.com:443 (squid: an "
            "http_access allow rule for that host and port).",
        ),
        _code(
            "proxy.auth-required",
            "proxy-firewall",
            "The proxy wants credentials (407).",
            "Give the app the proxy's credentials in the proxy URL (HTTPS_PROXY=http://user:pass@proxy:port, "
            "special characters percent-encoded), with the scheme its Proxy-Authenticate header names.",
        ),
        _code(
            "proxy.unreachable",
            "proxy-firewall",
            "The configured proxy does not accept TCP.",
            "Check the proxy's host and port in HTTPS_PROXY / --proxy and that it is running; compare "
            "`--no-proxy` to see whether this network needs a proxy at all.",
        ),
        _code(
            "proxy.bad-answer",
            "proxy-firewall",
            "The proxy answered CONNECT with an error or garbage.",
            "The proxy did not answer CONNECT like an HTTP proxy: check the URL's scheme and port (a SOCKS or "
            "TLS port configured as http://?).",
        ),
        _code(
            "proxy.misconfigured",
            "proxy-firewall",
            "A proxy setting that cannot work.",
            "Fix the proxy variable so it can work: an http:// URL with a host and a port (SOCKS needs a client "
            "that supports it).",
        ),
        _code(
            "env.proxy-disagreement",
            "proxy-firewall",
            "HTTPS_PROXY and https_proxy (or similar) differ.",
            "Give HTTPS_PROXY and https_proxy the same value (or unset one): libraries disagree on which case "
            "wins, so two tools on this machine take two routes.",
        ),
        _code(
            "tls.local-ca-stale",
            "local-host",
            "One local trust store accepts the chain, another does not.",
            "Point the app at the trust store that accepts the chain (the evidence says which: for Python "
            "`SSL_CERT_FILE=$(python -m certifi)`), then update the stale one (`update-ca-certificates`).",
        ),
        _code(
            "http.intermediary-response",
            "proxy-firewall",
            "The answer did not come from Deepgram.",
            "Something other than Deepgram answered (no dg-request-id): sign in to the captive portal, or ask "
            "the network team which proxy or WAF intercepts Deepgram and have it pass WebSocket upgrades.",
        ),
        _code(
            "http.upgrade-stripped",
            "proxy-firewall",
            "The WebSocket upgrade did not survive the path.",
            "A hop drops the Upgrade headers: configure it to pass WebSockets (nginx: proxy_http_version 1.1; "
            'proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade"), or tunnel with '
            "CONNECT.",
        ),
        _code(
            "http.invalid-handshake",
            "proxy-firewall",
            "The 101 breaks RFC 6455 (an extension or subprotocol never offered, no Connection: Upgrade).",
            "The endpoint (or a hop rewriting its answers) negotiates what the client never asked for: point "
            "the client at Deepgram's host directly (compare `--no-proxy`) or fix the server's WebSocket "
            "configuration; real clients refuse this handshake.",
        ),
        _code(
            "http.redirect",
            "proxy-firewall",
            "The Upgrade was answered with a redirect (3xx), which WebSocket clients do not follow.",
            "Open the Location the redirect names in a browser: a login page is a captive portal to sign in "
            "to; the same host over https means the URL needs wss://; otherwise use the URL it points to.",
        ),
        _code(
            "http.no-response",
            "network-instability",
            "The connection ended before any HTTP answer.",
            "Something closed the connection before Deepgram could answer: compare `--no-proxy` and another "
            "network to find the hop, and retry with backoff meanwhile.",
        ),
        _code(
            "ws.auth-rejected",
            "credentials",
            "Deepgram rejected the key (401/403).",
            "Check the key the app really runs with (a revoked, mistyped or other project's key is the usual "
            "cause); create one in the Deepgram console if needed and send it as 'Authorization: Token KEY' "
            "('Bearer' only for temporary tokens).",
        ),
        _code(
            "ws.payment-required",
            "account-limits",
            "Deepgram refused for lack of credits (402).",
            "Add credits or an overage agreement to the key's project in the Deepgram console (Billing), or use "
            "a key of a funded project.",
        ),
        _code(
            "ws.rate-limited",
            "account-limits",
            "Deepgram rate- or concurrency-limited the request (429).",
            "Count the streams the project holds open at once -- finished ones that were never closed keep "
            "counting until they time out -- and keep them below its limit (50 streaming on pay-as-you-go).",
        ),
        _code(
            "ws.server-error",
            "service",
            "Deepgram answered with a 5xx.",
            "A 5xx carrying dg-request-id is Deepgram's own: quote that id (in the evidence) to Deepgram "
            "support; one without it came from a proxy or load balancer in between.",
        ),
        _code(
            "ws.bad-request",
            "request-parameters",
            "Deepgram rejected the request (400).",
            "Fix the parameter this 400's dg-error names (model, language, keywords/keyterm, encoding without "
            "sample_rate), then run `wsdoctor run URL` with the app's exact query string to confirm.",
        ),
        _code(
            "ws.no-key",
            "credentials",
            "No API key in the environment: what needs one was not tested.",
            "Set the key in the environment the app and wsdoctor run with: `export DEEPGRAM_API_KEY=...` "
            "(or --api-key-env NAME for another variable), then run wsdoctor again to test streaming, idle and "
            "close behaviour.",
        ),
        _code(
            "ws.key-format",
            "credentials",
            "The key variable holds more than the key (whitespace, quotes, a scheme).",
            "Store the bare key in the variable: no quotes, no surrounding spaces or trailing newline, no "
            "'Token ' prefix (the SDK adds the scheme): `export DEEPGRAM_API_KEY=$(printf %s \"$KEY\")`.",
        ),
        _code(
            "ws.temporary-token",
            "credentials",
            "The key is a temporary token (JWT) that expires quickly.",
            "Temporary tokens live about 30 s: request a new one (POST /v1/auth/grant) right before each "
            "connection and send it as 'Authorization: Bearer TOKEN'; long-running services use an API key.",
        ),
        _code(
            "stream.no-results",
            "service",
            "No Results arrived for the audio streamed.",
            "Make sure the audio reaches Deepgram as binary frames in the format the URL declares, and quote "
            "the dg-request-id to Deepgram support if the same audio works over REST.",
        ),
        _code(
            "stream.empty-transcript",
            "audio-format",
            "Results arrived but every transcript was empty.",
            "Compare the real format of the bytes you send (`ffprobe` a dump of them) with the URL's "
            "encoding/sample_rate/channels: empty transcripts for speech are what a mismatch looks like.",
        ),
        _code(
            "stream.reset",
            "network-instability",
            "The connection was reset (RST) mid-stream.",
            "Reconnect on a reset with jittered backoff and buffer audio meanwhile; a reset at the same point "
            "every time is a middlebox: compare `--no-proxy` or another network.",
        ),
        _code(
            "stream.protocol-error",
            "service",
            "The server broke the WebSocket protocol (bad frame, oversize).",
            "Something on the path corrupts the WebSocket: bypass TLS-inspecting proxies for Deepgram, compare "
            "`--no-proxy`, and send this report's evidence to Deepgram support.",
        ),
        _code(
            "stream.flood",
            "service",
            "The server sent frames or bytes far faster than Deepgram ever does (a flood).",
            "A server (or hop) that floods a client is broken or hostile: check the URL is really Deepgram's "
            "(dg-request-id in the answers), compare `--no-proxy`, and send the evidence to its operator.",
        ),
        _code(
            "stream.malformed-message",
            "service",
            "A server message does not match Deepgram's schema (wrong shape, missing fields, not JSON).",
            "SDKs that parse Deepgram's messages strictly will fail on these: check the URL is Deepgram's own "
            "API (a proxy or a look-alike server rewrites messages) and quote the excerpt to its operator.",
        ),
        _code(
            "stream.slow-first-result",
            "service",
            "The first Results came late.",
            "Send audio at real time in 20-250 ms chunks (not buffered in large blocks), and compare the "
            "upgrade time in this report with another network to tell a slow path from a slow service.",
        ),
        _code(
            "idle.server-timeout",
            "connection-handling",
            "Deepgram closed an idle stream (1011 NET-0001).",
            "Send audio or KeepAlive from the moment the stream opens and through every pause (mute, hold, "
            "waiting for the caller, a slow pipeline start): the SDKs' send_keep_alive() / keepAlive() on a "
            "timer; for pauses of minutes, CloseStream and reconnect instead.",
        ),
        _code(
            "idle.middlebox-cutoff",
            "proxy-firewall",
            "An idle connection was cut without a close frame.",
            "Find the hop whose idle timeout equals this cut (idle_cutoff_s in the evidence: nginx "
            "proxy_read_timeout and cloud load balancers default to 60 s) and raise it; where only "
            "server-to-client traffic counts, WebSocket pings keep it open and KeepAlive does not.",
        ),
        _code(
            "idle.keepalive-ineffective",
            "connection-handling",
            "The stream died despite KeepAlive.",
            'Send KeepAlive exactly as {"type": "KeepAlive"} in a *text* frame (not binary, not empty), every '
            "3-5 s, and send some audio within the first 10 s of a stream.",
        ),
        _code(
            "idle.no-pong",
            "proxy-firewall",
            "WebSocket pings got no pong across the path.",
            "Pings are dropped on this path: lengthen or disable the client's ping timeout (python websockets: "
            "ping_timeout=None or 60) and rely on KeepAlive; check the proxy passes control frames.",
        ),
        _code(
            "close.no-close-frame",
            "network-instability",
            "The peer ended TCP without a close frame (1006).",
            "Read when it happened (the finding's 'when'): after silence it is an idle cutoff on the path; "
            "mid-stream, the network (compare another network, mtr to the host); right after your own "
            "close, your shutdown path (await Deepgram's close frame before exiting).",
        ),
        _code(
            "close.no-close-reply",
            "network-instability",
            "Our close frame got no reply in time.",
            "After CloseStream wait a bounded time (5 s) for Deepgram's close, then close the socket yourself; "
            "if the close never arrives, a hop holds the connection: compare `--no-proxy`.",
        ),
        _code(
            "close.unexpected-code",
            "service",
            "The stream was closed with an unexpected code.",
            "Act on the close code: 1008 (DATA-0000) fix the audio format and do not retry the same audio; "
            "1011/1012/1013 reconnect with jittered backoff; quote the dg-request-id to Deepgram support.",
        ),
        _code(
            "flux.error",
            "service",
            "Flux (/v2/listen) sent an Error message (INACTIVE_CLIENT: no audio or ping for 60 s).",
            "INACTIVE_CLIENT: keep a silent Flux stream open with WebSocket pings (not the v1 KeepAlive); other "
            "codes: quote the request id to Deepgram support and reconnect with backoff.",
        ),
        _code(
            "speak.no-audio",
            "service",
            "Streaming TTS (/v1/speak) sent no audio for the text and its Flush.",
            "Check the model and encoding in the URL (an unknown voice is refused at the upgrade); quote the "
            "request id to Deepgram support; for non-streaming use, TTS over REST (POST /v1/speak) returns "
            "the audio in one response.",
        ),
        _code(
            "speak.slow-first-audio",
            "service",
            "Streaming TTS took seconds to start the audio after a Flush.",
            "Compare from another network (wsdoctor run's phases); send text in sentence-sized Speak messages "
            "and Flush at the end of each response.",
        ),
        _code(
            "agent.error",
            "connection-handling",
            "The Voice Agent sent an Error and closed (1005): CLIENT_MESSAGE_TIMEOUT, UNPARSABLE_CLIENT_MESSAGE ...",
            "CLIENT_MESSAGE_TIMEOUT: keep sending audio, or a KeepAlive text message every ~8 s while the user is "
            "silent or the agent is speaking; UNPARSABLE_CLIENT_MESSAGE: send only the documented JSON messages "
            "(Settings first) and audio as binary frames.",
        ),
        _code(
            "agent.settings-not-applied",
            "service",
            "The Voice Agent did not welcome the session or did not apply its Settings.",
            "Send Settings as the first message after Welcome and wait for SettingsApplied before streaming audio; "
            "if Settings is valid and still not applied, quote the request id to Deepgram support.",
        ),
        _code(
            "rest.failed",
            "service",
            "The REST API (POST /v1/listen) did not transcribe the audio.",
            "REST fails too, so the trouble is not WebSocket-specific: look at the earlier layers of this "
            "report (key, network, proxy) first.",
        ),
        _code(
            "rest.malformed-response",
            "service",
            "The REST API answered 200 with a body that is not Deepgram's transcript.",
            "Something other than Deepgram's API wrote this 200 (a proxy page, a look-alike server): check "
            "the URL and the dg-request-id, and compare `--no-proxy`.",
        ),
        _code(
            "phases.failures",
            "network-instability",
            "Some of N repeated connection attempts failed.",
            "The path fails now and then: retry connects with jittered backoff, and compare another network "
            "to find the flaky hop (the failing phase is in the evidence).",
        ),
        _code(
            "phases.latency-spread",
            "network-instability",
            "A connection phase is erratic: p99 >> p50.",
            "One phase is erratic: look at that hop (the DNS resolver, the proxy, TLS inspection) and set "
            "connect timeouts above its p99.",
        ),
        _code(
            "host.close-wait-leak",
            "connection-handling",
            "Sockets left in CLOSE_WAIT.",
            "Find the code path that drops a WebSocket the server has closed without closing it (error "
            "handlers, reconnect loops): `ss -tanp state close-wait` names the process holding them.",
        ),
        _code(
            "host.fd-pressure",
            "local-host",
            "Open file descriptors near the limit.",
            "Raise the open-file limit (`ulimit -n 65536`, systemd LimitNOFILE=) and find what holds descriptors "
            "(`ls /proc/PID/fd | wc -l`).",
        ),
        _code(
            "host.time-wait-pileup",
            "connection-handling",
            "Many sockets to the target in TIME_WAIT: connection churn.",
            "The app opens a connection per utterance or reconnects in a tight loop: keep one stream open with "
            "KeepAlive and back off between reconnects.",
        ),
        _code(
            "host.ephemeral-ports",
            "local-host",
            "The ephemeral port range is nearly used up.",
            "Local ports are running out: reuse connections, back off between reconnects, or widen "
            "net.ipv4.ip_local_port_range.",
        ),
        _code(
            "host.loop-lag",
            "local-host",
            "The host starves processes of CPU: timers fire late.",
            "This machine delays runnable processes: lower its load, raise the container's CPU limit (cgroup "
            "throttling) or move to a less busy host; keep blocking work off the event loop that owns the socket.",
        ),
        _code(
            "host.clock-skew",
            "local-host",
            "The local clock differs from the server's Date header.",
            "Synchronise the clock (`timedatectl set-ntp true`, chrony): temporary tokens and certificate "
            "validity are judged against it.",
        ),
        _code(
            "sdk.outdated",
            "sdk-libraries",
            "An SDK or library version with known problems.",
            "Upgrade to the fixed release this finding names (its evidence holds the exact command).",
        ),
        # --- wsdoctor watch: the app's own connection, judged frame by frame ---------------------
        _code(
            "client.idle-gap",
            "connection-handling",
            "The app sent no audio and no text frame for longer than Deepgram waits (about 10 s).",
            "Send a KeepAlive text frame every 3-5 s whenever no audio flows: Python SDK v5+ "
            "`await connection.send_keep_alive()` (v3/v4: `connection.keep_alive()`), JS SDK "
            "`connection.keepAlive()`, or raw: `ws.send('{\"type\": \"KeepAlive\"}')` (a text frame).",
            "Or stop the stream with CloseStream when the audio source pauses for long, and reconnect when it resumes.",
        ),
        _code(
            "client.keepalive-binary",
            "connection-handling",
            "The app sent a control message (KeepAlive, CloseStream, Finalize) in a binary frame: Deepgram reads "
            "binary frames as audio, so the message does nothing and corrupts the audio.",
            "Send control messages as *text* frames: in JavaScript `ws.send(JSON.stringify(msg))` (a string, "
            "not a Buffer/Blob), in Python `await ws.send(json.dumps(msg))` (a str, not bytes).",
        ),
        _code(
            "client.empty-binary-frame",
            "connection-handling",
            "The app sent an empty binary frame: Deepgram takes it as the deprecated end-of-audio signal.",
            "Never send a zero-length audio chunk: skip empty buffers before `send()` (a microphone callback "
            "or a file reader at EOF often yields b''/empty Buffer); end the stream with "
            "`{\"type\": \"CloseStream\"}` instead.",
        ),
        _code(
            "client.no-closestream",
            "connection-handling",
            "The app ended the stream without sending CloseStream: the final results of the last audio are lost.",
            "When the audio ends, send `{\"type\": \"CloseStream\"}` (Python SDK v5+: "
            "`await connection.send_close_stream()`, v3/v4: `finish()`; JS SDK: `requestClose()`), then keep "
            "reading until Deepgram's Metadata and close frame arrive.",
        ),
        _code(
            "client.close-not-awaited",
            "connection-handling",
            "The app dropped the TCP connection before Deepgram's close frame arrived: the article's "
            "\"no close frame received or sent\", caused on the client's side.",
            "After CloseStream (or your own close frame), keep the socket open and read until the close frame "
            "arrives: `async for msg in ws: ...` then `await ws.wait_closed()` in Python websockets, the "
            "`Close` event in the SDKs; do not exit the process or cancel the reader task first.",
        ),
        _code(
            "client.encoding-mismatch",
            "audio-format",
            "The audio bytes do not match the format the URL declares (encoding, sample_rate, channels).",
            "For raw PCM send `encoding=linear16`, `sample_rate=RATE` and `channels=N` and strip any WAV header; "
            "for containers (WAV, Ogg, WebM, MP3, FLAC files) send *no* encoding/sample_rate and let Deepgram "
            "read the header.",
        ),
        _code(
            "client.pace",
            "connection-handling",
            "The app streams audio much faster or much slower than real time for the format it declares.",
            "Send audio as it is captured: chunks of 20-250 ms at real-time pace (Deepgram accepts up to "
            "1.25x). For files, use the pre-recorded REST API instead of replaying them over the WebSocket.",
        ),
        _code(
            "client.reconnect-storm",
            "connection-handling",
            "The app reconnected again and again right after failures, without backing off.",
            "Reconnect with jittered exponential backoff (e.g. 1 s, 2 s, 4 s ... capped at 30 s) and only on "
            "retryable closes (1006/1011/1012/1013); fix the cause the first connection's findings name "
            "before retrying.",
        ),
        _code(
            "client.key-in-url",
            "credentials",
            "The app put a credential in the URL's query string, where proxies, servers and logs record it.",
            "Send the key in the `Authorization: Token YOUR_KEY` header, or from a browser as the "
            "`Sec-WebSocket-Protocol` pair [\"token\", YOUR_KEY] (better: a short-lived token from /v1/auth/grant); "
            "rotate the key that was exposed.",
        ),
        _code(
            "client.sdk-known-issue",
            "sdk-libraries",
            "The app's User-Agent names an SDK or WebSocket library version with a known connection bug.",
            "Upgrade to the fixed release this finding names (its evidence holds the exact command).",
        ),
        _code(
            "client.flux-keepalive",
            "connection-handling",
            "The app sent the v1 JSON KeepAlive to Flux (/v2/listen), which ends the connection (1005).",
            "On Flux keep a silent stream open with WebSocket pings (the SDKs from v6 do it for you; Python "
            "websockets: `ping_interval=20`), never `{\"type\": \"KeepAlive\"}`; Flux closes after 60 s "
            "without audio or pings.",
        ),
        _code(
            "client.agent-settings-first",
            "connection-handling",
            "The app's first message to the Voice Agent was not Settings.",
            "Send Settings as the first message after Welcome (Python SDK: `send_settings(...)`), wait for "
            "SettingsApplied, then stream audio.",
        ),
        _code(
            "client.flush-rate",
            "connection-handling",
            "The app sent more Flush messages to streaming TTS (/v1/speak) than Deepgram processes (20 per 60 s).",
            "Send Flush once per complete response (when the LLM has finished a turn), not per sentence or token; "
            "send text with Speak and let Deepgram buffer it.",
        ),
        _code(
            "client.protocol-violation",
            "connection-handling",
            "The app's frames break RFC 6455 (unmasked frames, reserved opcodes or bits, oversized control frames).",
            "Use a maintained WebSocket library instead of hand-written framing; the evidence names each violation.",
        ),
        _code(
            "upstream.unreachable",
            "network-instability",
            "wsdoctor watch could not reach the upstream (Deepgram) for the app's connection.",
            "Run `wsdoctor run` against the same URL to find the layer that breaks (DNS, TCP, TLS, proxy).",
        ),
        _code(
            "upstream.rejected",
            "credentials",
            "The upstream refused the app's WebSocket upgrade with an HTTP error.",
            "Read the status and body in the evidence: 401 is the key, 402 the balance, 429 concurrency, 400 "
            "the query parameters or audio format.",
        ),
        _code(
            "upstream.closed-error",
            "service",
            "The upstream (Deepgram) closed the app's stream with an error code.",
            "The close reason in the evidence names why; 1011 NET-0001 is the app's silence, 1008 DATA-0000 its "
            "audio; reconnect with backoff on 1011/1012/1013.",
        ),
        _code(
            "upstream.no-close-reply",
            "network-instability",
            "The app ended the stream and waited, but the upstream never sent its close frame.",
            "Keep waiting up to 5 s after CloseStream, then close the socket yourself; if Deepgram's close never "
            "arrives, a hop holds the connection: run `wsdoctor run` (close.handshake) on this path.",
        ),
        _code(
            "upstream.dropped",
            "network-instability",
            "The upstream's side of the connection ended (reset or FIN) without a close frame.",
            "Reconnect with jittered backoff; if it repeats, run `wsdoctor run` on this network path.",
        ),
    )
}


def cause_for(code: str) -> str:
    """The default cause of a finding code (KeyError for an unknown code: a bug in a check)."""
    return FINDING_CODES[code].cause


def fixes_for(cause: str, codes: Iterable[str]) -> tuple[str, ...]:
    """The fixes to show for a cause: the fixes of its findings first (in the order given, most
    specific first), then the cause's general ones; each once. Codes and causes from plugins that
    wsdoctor does not know contribute nothing."""
    out: list[str] = []
    for code in codes:
        known = FINDING_CODES.get(code)
        if known is not None:
            out += known.fixes
    known_cause = CAUSES.get(cause)
    if known_cause is not None:
        out += known_cause.fixes
    return tuple(dict.fromkeys(out))
