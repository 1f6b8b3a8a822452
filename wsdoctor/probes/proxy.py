"""Proxy settings as the user's app reads them, and an HTTP CONNECT tunnel that records its answer.

Theory of operation. Two halves, as everywhere in wsdoctor: facts first, judgement in ``checks/``.

*Which route would the app take?* :func:`decide_route` is pure: it takes the environment (a
mapping), the command-line choice (``--proxy URL`` / ``--no-proxy``) and the target, and returns a
:class:`RouteDecision` -- ``direct`` or ``proxy`` -- with the reason in words. It reads the
environment the way the clients we diagnose do (``urllib.request.getproxies_environment``, which
Python's websockets, aiohttp with ``trust_env`` and httpx all build on): any ``*_proxy`` variable
in any case, the lower-case spelling winning when both are set (urllib's two passes), an empty
lower-case value unsetting the upper-case one. A ``wss://`` target uses ``wss_proxy``, then
``https_proxy``, then ``all_proxy``; a ``ws://`` target ``ws_proxy``, ``http_proxy``, ``all_proxy``.
``NO_PROXY`` follows curl's rules (https://curl.se/docs/manpage.html#--noproxy) as urllib and httpx
apply them: ``*`` bypasses everything; each comma-separated entry matches the host itself or any
sub-domain (a leading dot is ignored), ``host:port`` only that port, and an IP network in CIDR form
an address inside it. When ``HTTPS_PROXY`` and ``https_proxy`` disagree, both are reported: one app
may read the other one. Passwords are redacted *when the decision is built* -- nothing downstream
(reporters, logs, fixtures) ever holds one; only :class:`ProxyURL` keeps it, inside a
:class:`~wsdoctor.check.Secret`, to build the ``Proxy-Authorization`` header. A proxy URL is split
by structure, not by ``urlsplit`` (:func:`split_proxy_url`): the userinfo is everything before the
*last* ``@``, so a password holding ``/ @ : # ? %``, spaces or any Unicode, raw or percent-encoded,
parses whole -- and is masked whole in displays, variables as set and error messages, which never
quote it (:func:`redact_proxy_text`).

*Does the tunnel open?* :func:`open_tunnel` connects to the proxy (bounded by the connect timeout),
sends ``CONNECT host:port`` with ``Proxy-Authorization: Basic`` from the proxy URL's userinfo, and
reads the answer with h11 under a header-size bound and one deadline. A 2xx leaves the transport
open for TLS / the Upgrade (Stage.TUNNELING); anything else is kept -- status, reason, headers
(``Proxy-Authenticate``, ``Server``, ``Via``, ``X-Squid-Error``) and the start of the body -- because
*which* refusal it was (403 policy vs 407 credentials) is the diagnosis. WebSocket clients tunnel
``ws://`` through CONNECT as well (python websockets, Node's https-proxy-agent), so we do too.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import re
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from wsdoctor.check import Context, Secret
from wsdoctor.model import Outcome, Target, is_ip_address
from wsdoctor.probes.transport import classify_oserror, error_text
from wsdoctor.record import Record

__all__ = [
    "PROXY_VARIABLES",
    "ProxyDisagreement",
    "ProxyURL",
    "Route",
    "RouteDecision",
    "TunnelObservation",
    "decide_route",
    "no_proxy_match",
    "open_tunnel",
    "proxy_env",
    "proxy_secrets",
    "redact_proxy_text",
    "route_for",
    "split_proxy_url",
]

MAX_BODY_EXCERPT = 2048
#: The variables that matter to a WebSocket client, lower-case; others ending in _proxy
#: (``TRAVIS_APT_PROXY`` ...) are not read by the libraries we mirror, so they are ignored (as httpx does).
PROXY_VARIABLES = ("ws_proxy", "wss_proxy", "http_proxy", "https_proxy", "all_proxy", "no_proxy")


_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_PROXY_SCHEMES = ("http", "https", "socks5", "socks5h", "socks4", "socks4a", "socks")
#: What a host name may not hold (it comes after the last '@', so this is never the password).
_BAD_HOST = re.compile(r"[\s\x00-\x1f\x7f/?#@\[\]\\]")


def split_proxy_url(text: str) -> tuple[str, str | None, str]:
    """``(scheme, userinfo, rest)`` of a proxy URL, by structure only (never raises).

    A bare ``host:port`` means http. The userinfo is everything between ``://`` and the *last*
    ``@`` -- so a password may hold any character, ``@ / : # ? %`` and spaces included, raw or
    percent-encoded -- and ``None`` without an ``@``; ``rest`` is what follows (host, port, path).
    """
    raw = text.strip()
    m = _SCHEME.match(raw)
    scheme, rest = (m.group(1).lower(), raw[m.end() :]) if m else ("http", raw)
    at = rest.rfind("@")
    if at < 0:
        return scheme, None, rest
    return scheme, rest[:at], rest[at + 1 :]


@dataclass(frozen=True, slots=True)
class ProxyURL:
    """A parsed proxy URL; the password lives in a :class:`Secret` and never prints."""

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: Secret | None = None

    @classmethod
    def parse(cls, text: str) -> ProxyURL:
        """``http://user:pass@host:3128`` (a bare ``host:port`` means http). ValueError if unusable.

        Parsed by structure (:func:`split_proxy_url`), not by ``urlsplit``: the userinfo is
        everything before the last ``@``, split at its first ``:``, both halves percent-decoded, so a
        password with ``/``, ``@``, ``:``, ``#``, ``?``, ``%``, spaces or any Unicode -- raw or
        encoded -- parses. An error message never quotes the userinfo.
        """
        scheme, userinfo, rest = split_proxy_url(text)
        if scheme not in _PROXY_SCHEMES:
            raise ValueError(f"unsupported proxy scheme {scheme[:20]!r}")
        hostport = re.split(r"[/?#]", rest, maxsplit=1)[0]
        port_text: str | None
        if hostport.startswith("["):
            inner, bracket, after = hostport[1:].partition("]")
            if not bracket:
                raise ValueError("the proxy's IPv6 address has no closing ']'")
            try:
                ipaddress.ip_address(inner.split("%", 1)[0])
            except ValueError:
                raise ValueError("the proxy's address in brackets is not an IPv6 address") from None
            if after and not after.startswith(":"):
                raise ValueError("unexpected text after the proxy's IPv6 address")
            host, port_text = inner, after[1:] if after else None
        else:
            if hostport.count(":") > 1:
                raise ValueError("an IPv6 proxy address must be written in brackets: http://[::1]:3128")
            host, colon, port_text_ = hostport.partition(":")
            port_text = port_text_ if colon else None
            if _BAD_HOST.search(host):
                raise ValueError("the proxy host is not a valid host name or address")
        if not host:
            raise ValueError("no proxy host")
        if port_text:
            if not re.fullmatch(r"[0-9]{1,5}", port_text):
                raise ValueError("the proxy port is not a number")
            port = int(port_text)
            if not 0 < port < 65536:
                raise ValueError("the proxy port is out of range (1-65535)")
        else:
            port = {"https": 443}.get(scheme, 1080 if scheme.startswith("socks") else 80)
        username: str | None = None
        password: Secret | None = None
        if userinfo is not None:
            user, colon, pw = userinfo.partition(":")
            if user or colon:
                username = urllib.parse.unquote(user)
            if colon:
                password = Secret(urllib.parse.unquote(pw))
        return cls(scheme=scheme, host=host.lower(), port=port, username=username, password=password)

    @property
    def display(self) -> str:
        """The URL with the password masked: safe for any output."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = ""
        if self.username is not None:
            user = urllib.parse.quote(self.username, safe="") + (":***" if self.password else "") + "@"
        return f"{self.scheme}://{user}{host}:{self.port}"

    def authorization(self) -> str | None:
        """``Basic base64(user:pass)`` from the userinfo, as curl and urllib send it."""
        if self.username is None:
            return None
        pw = self.password.reveal() if self.password else ""
        return "Basic " + base64.b64encode(f"{self.username}:{pw}".encode()).decode("ascii")


def proxy_secrets(value: str) -> list[str]:
    """Every form in which the password of the proxy URL ``value`` could be written: as in the URL,
    percent-decoded, and inside the ``Basic`` credential sent to the proxy (whether or not the URL
    parses otherwise). Empty without a password."""
    _scheme, userinfo, _rest = split_proxy_url(value)
    if userinfo is None or ":" not in userinfo:
        return []
    user, _, pw = userinfo.partition(":")
    if not pw:
        return []
    decoded = urllib.parse.unquote(pw)
    basic = base64.b64encode(f"{urllib.parse.unquote(user)}:{decoded}".encode()).decode("ascii")
    return list(dict.fromkeys((pw, decoded, basic)))


def redact_proxy_text(value: str) -> str:
    """A proxy variable's value with any password masked (also when it does not parse).

    Without an ``@`` there is no userinfo and the value is shown as set (structural redaction
    aside); with one, the parsed display URL, or -- when it does not parse -- the value with
    everything between ``://`` and the last ``@`` but the user name masked.
    """
    from wsdoctor.redact import Redactor, redact_url

    _scheme, userinfo, _rest = split_proxy_url(value)
    if userinfo is None:
        return Redactor().text(value)
    try:
        return ProxyURL.parse(value).display
    except ValueError:
        return redact_url(value)


def proxy_env(environ: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """urllib's reading of the environment: ``{"https": value, "no": value, ...}`` (lower case
    wins), plus every relevant variable as set, redacted, by its exact name."""
    effective: dict[str, str] = {}
    seen: dict[str, str] = {}
    # Pass 1: any case; pass 2: lower case only, so it wins and an empty one unsets (urllib).
    for name, value in environ.items():
        lname = name.lower()
        if lname in PROXY_VARIABLES:
            seen[name] = redact_proxy_text(value)
            if value:
                effective[lname[:-6]] = value
    for name, value in environ.items():
        if name in PROXY_VARIABLES:
            if value:
                effective[name[:-6]] = value
            else:
                effective.pop(name[:-6], None)
    return effective, dict(sorted(seen.items()))


def no_proxy_match(no_proxy: str, host: str, port: int) -> str | None:
    """The ``NO_PROXY`` entry that exempts ``host:port``, or None (curl's rules, see module doc)."""
    host = host.lower().strip("[]").rstrip(".")
    try:
        addr: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        addr = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return entry
        name, entry_port = entry, None
        if entry.startswith("["):  # [v6]:port
            inner, _, rest = entry[1:].partition("]")
            name = inner
            if rest.startswith(":") and rest[1:].isdigit():
                entry_port = int(rest[1:])
        elif entry.count(":") == 1:
            head, _, tail = entry.partition(":")
            if tail.isdigit():
                name, entry_port = head, int(tail)
        if entry_port is not None and entry_port != port:
            continue
        if addr is not None and ("/" in name or is_ip_address(name)):
            with contextlib.suppress(ValueError):
                if addr in ipaddress.ip_network(name, strict=False):
                    return raw.strip()
            continue
        name = name.lstrip(".").rstrip(".")
        if name and (host == name or host.endswith("." + name)):
            return raw.strip()
    return None


#: Which way the app goes: straight to the target, through an HTTP proxy, or nowhere -- a proxy
#: setting it cannot use (a SOCKS proxy, a value that does not parse).
Route = Literal["direct", "proxy", "unsupported"]


@dataclass(frozen=True, slots=True)
class ProxyDisagreement(Record):
    """The upper- and lower-case spellings of one proxy variable are both set, to different values
    (both redacted); urllib reads the lower-case one, other tools may not."""

    upper: str  # "HTTPS_PROXY"
    upper_value: str
    lower: str  # "https_proxy"
    lower_value: str
    used_by_urllib: str


@dataclass(frozen=True, slots=True)
class RouteDecision(Record):
    """Which way the app would go, and why. Holds no password (``proxy`` is the redacted URL)."""

    route: Route
    reason: str
    source: str | None = None  # "--proxy" | "HTTPS_PROXY" | "https_proxy" | ... | None
    proxy: str | None = None  # redacted display URL
    no_proxy_entry: str | None = None
    variables: dict[str, str] = field(default_factory=dict)  # as set, redacted
    disagreements: tuple[ProxyDisagreement, ...] = ()
    error: str | None = None  # the chosen value does not parse


def _disagreements(environ: Mapping[str, str]) -> tuple[ProxyDisagreement, ...]:
    return tuple(
        ProxyDisagreement(
            upper=lname.upper(),
            upper_value=redact_proxy_text(environ[lname.upper()]),
            lower=lname,
            lower_value=redact_proxy_text(environ[lname]),
            used_by_urllib=lname,
        )
        for lname in PROXY_VARIABLES
        if lname.upper() in environ and lname in environ and environ[lname.upper()] != environ[lname]
    )


def decide_route(
    environ: Mapping[str, str], target: Target, *, proxy: str | None = None, no_proxy: bool = False
) -> tuple[RouteDecision, ProxyURL | None]:
    """Pure: the route for ``target`` given the environment and ``--proxy`` / ``--no-proxy``."""
    effective, seen = proxy_env(environ)
    disagreements = _disagreements(environ)
    common: dict[str, Any] = {"variables": seen, "disagreements": disagreements}
    if no_proxy:
        return RouteDecision("direct", "--no-proxy: proxy variables ignored", **common), None
    if proxy is not None:
        source, value = "--proxy", proxy
    else:
        order = ("wss", "https", "all") if target.tls else ("ws", "http", "all")
        key = next((k for k in order if effective.get(k)), None)
        if key is None:
            return RouteDecision("direct", f"no proxy variable applies to a {target.scheme}:// URL", **common), None
        value = effective[key]
        name = f"{key}_proxy"
        source = name if environ.get(name) else name.upper()
        bypass = effective.get("no")
        entry = no_proxy_match(bypass, target.host, target.port) if bypass else None
        if entry is not None:
            return (
                RouteDecision(
                    "direct",
                    f"{source} is set but NO_PROXY entry {entry!r} exempts {target.host}",
                    source=source,
                    proxy=redact_proxy_text(value),
                    no_proxy_entry=entry,
                    **common,
                ),
                None,
            )
    try:
        parsed = ProxyURL.parse(value)
    except ValueError as exc:
        return (
            RouteDecision(
                "unsupported",
                f"{source} does not parse as a proxy URL: {exc}",
                source=source,
                proxy=redact_proxy_text(value),
                error=str(exc),
                **common,
            ),
            None,
        )
    if parsed.scheme != "http":
        return (
            RouteDecision(
                "unsupported",
                f"{source} names a {parsed.scheme}:// proxy; wsdoctor tunnels through HTTP proxies only",
                source=source,
                proxy=parsed.display,
                **common,
            ),
            None,
        )
    reason = (
        "--proxy given"
        if source == "--proxy"
        else f"{source} applies to {target.scheme}:// and NO_PROXY does not exempt {target.host}"
    )
    return RouteDecision("proxy", reason, source=source, proxy=parsed.display, **common), parsed


def route_for(ctx: Context) -> tuple[RouteDecision, ProxyURL | None]:
    """The route for this run: ``--proxy`` / ``--no-proxy``, else the process environment."""
    import os

    opts = ctx.options
    return decide_route(os.environ, ctx.target, proxy=opts.proxy, no_proxy=opts.no_proxy)


@dataclass(frozen=True, slots=True)
class TunnelObservation(Record):
    """Facts of one CONNECT through a proxy."""

    proxy: str  # redacted display URL
    target: str  # "host:port" asked for
    outcome: Outcome  # ESTABLISHED, HTTP_RESPONSE, or how it failed: REFUSED, TIMEOUT, EOF, PROTOCOL_ERROR ...
    proxy_address: str | None = None
    connect_s: float | None = None  # TCP to the proxy
    tunnel_s: float | None = None  # CONNECT sent -> answer
    status: int | None = None
    reason: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    body_excerpt: str = ""
    sent_credentials: bool = False
    error: str | None = None

    def header(self, name: str) -> str | None:
        lname = name.lower()
        return next((v for k, v in self.headers if k.lower() == lname), None)


_UNRECORDED_HEADERS = {"proxy-authorization"}


async def open_tunnel(
    proxy: ProxyURL,
    host: str,
    port: int,
    timeout: float,
    *,
    address: str | None = None,
    on_connected: Callable[[], None] | None = None,
) -> tuple[TunnelObservation, asyncio.StreamReader | None, asyncio.StreamWriter | None]:
    """CONNECT ``host:port`` through ``proxy``. On a 2xx returns the open streams (the caller owns
    them); otherwise closes them and returns ``None``s. ``address`` overrides the proxy host's
    address (``--resolve`` for the proxy). ``on_connected()`` is called once TCP is up (the
    caller advances its lifecycle). Never raises for network faults."""
    import h11

    from wsdoctor import __version__
    from wsdoctor.probes.http1 import PeerClosed, client, next_event

    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    auth = proxy.authorization()
    connect_to = address or proxy.host
    t0 = time.monotonic()

    def observed(outcome: Outcome, **facts: Any) -> TunnelObservation:
        return TunnelObservation(
            proxy=proxy.display,
            target=authority,
            outcome=outcome,
            proxy_address=f"[{connect_to}]:{proxy.port}" if ":" in connect_to else f"{connect_to}:{proxy.port}",
            sent_credentials=auth is not None,
            **facts,
        )

    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(connect_to, proxy.port), timeout)
    except (OSError, TimeoutError) as exc:
        outcome = classify_oserror(exc)
        error = f"connecting to the proxy: {error_text(exc, outcome)}"[:300]
        return observed(outcome, connect_s=round(time.monotonic() - t0, 6), error=error), None, None
    connect_s = round(time.monotonic() - t0, 6)
    if on_connected is not None:
        on_connected()
    t1 = time.monotonic()
    headers = [("Host", authority), ("User-Agent", f"wsdoctor/{__version__}"), ("Proxy-Connection", "keep-alive")]
    if auth:
        headers.append(("Proxy-Authorization", auth))
    conn = client()
    keep_open = False

    def answered(outcome: Outcome, **facts: Any) -> TunnelObservation:
        return observed(outcome, connect_s=connect_s, tunnel_s=round(time.monotonic() - t1, 6), **facts)

    try:
        writer.write(conn.send(h11.Request(method="CONNECT", target=authority, headers=headers)))
        writer.write(conn.send(h11.EndOfMessage()) or b"")
        await asyncio.wait_for(writer.drain(), timeout)
        response: h11.Response | None = None
        body = b""
        while True:
            event = await next_event(conn, reader, t1 + timeout, what="answer to CONNECT")
            if isinstance(event, h11.Response):
                response = event
                if 200 <= event.status_code < 300:
                    keep_open = True
                    break
                continue
            if isinstance(event, h11.Data):
                if len(body) < MAX_BODY_EXCERPT:
                    body += bytes(event.data)[: MAX_BODY_EXCERPT - len(body)]
                continue
            break  # the end of the answer (EndOfMessage, ConnectionClosed, PAUSED)
        if response is None:
            return answered(Outcome.EOF, error="the proxy closed without answering CONNECT"), None, None
        obs = answered(
            Outcome.ESTABLISHED if keep_open else Outcome.HTTP_RESPONSE,
            status=response.status_code,
            reason=response.reason.decode("latin-1"),
            headers=tuple(
                (k.decode("latin-1"), v.decode("latin-1"))
                for k, v in response.headers
                if k.decode("latin-1").lower() not in _UNRECORDED_HEADERS
            ),
            body_excerpt=body.decode("utf-8", "replace"),
        )
        if keep_open:
            return obs, reader, writer
        return obs, None, None
    except PeerClosed:
        return answered(Outcome.EOF, error="the proxy closed without answering CONNECT"), None, None
    except h11.RemoteProtocolError as exc:
        error = f"the proxy's answer to CONNECT is not valid HTTP: {exc}"[:300]
        return answered(Outcome.PROTOCOL_ERROR, error=error), None, None
    except (OSError, TimeoutError) as exc:
        outcome = classify_oserror(exc)
        return answered(outcome, error=error_text(exc, outcome)[:300]), None, None
    finally:
        if not keep_open:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
