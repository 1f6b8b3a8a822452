"""Probes of the network path below the WebSocket: name resolution, TCP, TLS.

Theory of operation. ``resolve()`` answers two questions separately: what the *system* resolver
gives the user's app (``getaddrinfo``, hosts file included), and what DNS itself says per record
type (dnspython, A and AAAA, with the resolver named and NXDOMAIN / SERVFAIL / timeout kept apart).
With ``--dns-server ADDR[:PORT]`` only that server is asked -- getaddrinfo is not called for a
DNS name, so a test (or a user) can name the resolver and be sure nothing else is queried -- and
its answers become the addresses; :func:`resolve_host` gives every probe the same order
(``--resolve``, IP literal, ``--dns-server``, system resolver). An IP literal or a ``--resolve``
override needs no lookup and says so.

``connect_all()`` opens TCP to every address concurrently, each bounded by the connect timeout
(a blackhole costs exactly that, never the OS's minutes of SYN retries), and records refused /
timeout / unreachable per address, IPv4 and IPv6 apart.

``tls_handshake()`` does the app's handshake (system store + certifi, or exactly ``--ca-file``) on
its own connection to time it, and records protocol, cipher, ALPN and the peer certificate, or the
verification error as OpenSSL words it. Side by side it reads the chain *without* verifying (so a
failed handshake still shows who issued the certificate -- the proof of interception) and does one
verified handshake per trust store (certifi, system, ``--ca-file``): a chain one store accepts and
another rejects is a stale local bundle. The chain comes from CPython's private
``get_unverified_chain()`` (public in 3.13) and falls back to the leaf decoded by ssl's own
``_test_decode_cert``: no X.509 dependency. When the app's route is a proxy, every connection here
is a CONNECT tunnel through it (:func:`open_path`). Nothing here judges.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from wsdoctor.check import Context
from wsdoctor.model import JSONValue, Outcome
from wsdoctor.probes.proxy import TunnelObservation
from wsdoctor.probes.record import from_json
from wsdoctor.probes.wsclient import classify_oserror, describe_oserror, tls_context

__all__ = [
    "CertInfo",
    "DnsObservation",
    "DnsOutcome",
    "DnsRecord",
    "DnsSource",
    "ProxyConnectObservation",
    "ProxyRefused",
    "StoreResult",
    "TcpAttempt",
    "TcpObservation",
    "TlsObservation",
    "TrustStore",
    "connect_all",
    "open_path",
    "proxy_address",
    "resolve",
    "resolve_host",
    "store_context",
    "tls_handshake",
]

_LOCAL_NAMES = ("localhost",)


class DnsOutcome(enum.StrEnum):
    """How one DNS query (one record type) ended, as dnspython reported it."""

    OK = "ok"
    NXDOMAIN = "nxdomain"  # the name does not exist
    NOANSWER = "noanswer"  # the name exists, without records of this type
    SERVFAIL = "servfail"  # a resolver answered that it failed
    BLOCKED = "blocked"  # EPERM: a local firewall refused to send the query
    UNREACHABLE = "unreachable"  # no route to the resolver
    TIMEOUT = "timeout"
    ERROR = "error"  # any other DNSException
    NO_RESOLVER_CONFIGURED = "no-resolver-configured"  # no resolv.conf nameserver: nothing was asked


@dataclass(frozen=True, slots=True)
class DnsRecord:
    """One record type's query (``A`` or ``AAAA``). ``to_dict`` writes only the keys that apply
    (answers for ``ok``, error for failures, no time when nothing was asked): the report's form."""

    outcome: DnsOutcome
    answers: tuple[str, ...] | None = None
    time_s: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, JSONValue]:
        d: dict[str, JSONValue] = {"outcome": self.outcome.value}
        if self.answers is not None:
            d["answers"] = list(self.answers)
        if self.error is not None:
            d["error"] = self.error
        if self.time_s is not None:
            d["time_s"] = self.time_s
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DnsRecord:
        return from_json(cls, d)


#: Where a DnsObservation's addresses came from.
DnsSource = Literal["ip-literal", "resolve-override", "dns", "local-name"]


@dataclass(frozen=True, slots=True)
class DnsObservation:
    host: str
    source: DnsSource
    addresses: tuple[str, ...] = ()  # what the connection will use, system order
    system_error: str | None = None  # getaddrinfo failure, as a fact
    resolver: str | None = None  # nameserver(s) dnspython asked
    records: dict[str, DnsRecord] = field(default_factory=dict)  # by record type: "A", "AAAA"
    time_s: float | None = None

    def to_dict(self) -> dict[str, JSONValue]:
        return {
            "host": self.host,
            "source": self.source,
            "addresses": list(self.addresses),
            "system_error": self.system_error,
            "resolver": self.resolver,
            "records": {rd: r.to_dict() for rd, r in self.records.items()},
            "time_s": self.time_s,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DnsObservation:
        return from_json(cls, d)


def _resolver(server: tuple[str, int] | None, timeout: float) -> Any:
    """A dnspython resolver: exactly ``--dns-server`` when given, else the system's configuration."""
    import dns.asyncresolver

    if server is not None:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [server[0]]
        resolver.port = server[1]
    else:
        resolver = dns.asyncresolver.Resolver()  # NoResolverConfiguration if none
    resolver.lifetime = timeout
    resolver.timeout = timeout
    return resolver


def _server_name(server: tuple[str, int] | None, resolver: Any) -> str:
    if server is not None:
        addr = f"[{server[0]}]" if ":" in server[0] else server[0]
        return f"{addr}:{server[1]} (--dns-server)"
    return ", ".join(str(ns) for ns in resolver.nameservers) + " (system configuration)"


async def _dns_records(
    host: str, timeout: float, server: tuple[str, int] | None = None
) -> tuple[str | None, dict[str, DnsRecord]]:
    import dns.exception
    import dns.resolver

    try:
        resolver = _resolver(server, timeout)
    except dns.resolver.NoResolverConfiguration:
        none = DnsRecord(DnsOutcome.NO_RESOLVER_CONFIGURED)
        return None, {"A": none, "AAAA": none}
    nameservers = _server_name(server, resolver)

    async def one(rdtype: str) -> DnsRecord:
        t0 = time.monotonic()
        answers: tuple[str, ...] | None = None
        error: str | None = None
        try:
            answer = await resolver.resolve(host, rdtype, search=False)
            outcome, answers = DnsOutcome.OK, tuple(r.to_text() for r in answer)[:20]
        except dns.resolver.NXDOMAIN:
            outcome = DnsOutcome.NXDOMAIN
        except dns.resolver.NoAnswer:
            outcome = DnsOutcome.NOANSWER
        except dns.resolver.NoNameservers as exc:
            # dnspython says "no nameserver answered" both for a SERVFAIL and for a resolver it could
            # not even reach; the socket error in its message tells them apart.
            text = str(exc)
            unreachable = any(s in text for s in ("Network is unreachable", "No route to host", "Connection refused"))
            # EPERM: a firewall on this host (netfilter OUTPUT, a container's egress policy) refused
            # to send the query at all -- nothing reached a resolver, so it is not a SERVFAIL either.
            blocked = "Operation not permitted" in text
            outcome = (
                DnsOutcome.BLOCKED if blocked else (DnsOutcome.UNREACHABLE if unreachable else DnsOutcome.SERVFAIL)
            )
            error = text[:300]
        except dns.exception.Timeout:
            outcome = DnsOutcome.TIMEOUT
        except dns.exception.DNSException as exc:
            outcome, error = DnsOutcome.ERROR, f"{type(exc).__name__}: {exc}"[:300]
        return DnsRecord(outcome, answers=answers, time_s=round(time.monotonic() - t0, 6), error=error)

    a, aaaa = await asyncio.gather(one("A"), one("AAAA"))
    return nameservers, {"A": a, "AAAA": aaaa}


def _is_local_name(host: str) -> bool:
    host = host.lower().rstrip(".")
    return host in _LOCAL_NAMES or host.endswith(".localhost")


def _answers(records: Mapping[str, DnsRecord]) -> list[str]:
    return [a for rd in ("A", "AAAA") if rd in records for a in records[rd].answers or ()]


async def system_getaddrinfo(host: str, port: int, timeout: float) -> list[str]:
    """The system resolver's addresses for ``host:port``, in its order, bounded by ``timeout``.

    getaddrinfo blocks, and asyncio's own ``loop.getaddrinfo`` runs it in the default executor,
    whose threads the interpreter joins at exit: a resolver that never answers would then hold the
    process (and its report) long past ``--timeout``. So it runs in a daemon thread of its own, and
    a late answer is dropped."""
    import threading

    loop = asyncio.get_running_loop()
    answer: asyncio.Future[list[Any]] = loop.create_future()

    def settle(result: list[Any] | None, error: BaseException | None) -> None:
        if answer.done():
            return
        if error is not None:
            answer.set_exception(error)
        else:
            answer.set_result(result or [])

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            outcome: tuple[list[Any] | None, BaseException | None] = (infos, None)
        except OSError as exc:
            outcome = (None, exc)
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=lookup, name=f"getaddrinfo {host}"[:40], daemon=True).start()
    infos = await asyncio.wait_for(answer, timeout)
    return list(dict.fromkeys(str(i[4][0]) for i in infos))


async def resolve_host(ctx: Context, host: str, port: int) -> list[str]:
    """The addresses a connection to ``host:port`` uses, in order: ``--resolve``, an IP literal,
    ``--dns-server`` (dnspython, that server only), else the system resolver (getaddrinfo), as
    the user's app would. Raises OSError/TimeoutError like getaddrinfo when nothing is found."""
    options = ctx.options
    override = options.resolve_for(host, port)
    if override:
        return [override]
    if _is_ip(host):
        return [host]
    if options.dns_server is not None and not _is_local_name(host):
        _ns, records = await _dns_records(host, ctx.timeout(options.connect_timeout_s), options.dns_server)
        found = _answers(records)
        if not found:
            outcomes = "/".join(r.outcome.value for r in records.values())
            raise socket.gaierror(socket.EAI_NONAME, f"{host}: no address from the DNS server ({outcomes})")
        return found
    return await system_getaddrinfo(host, port, ctx.timeout(options.connect_timeout_s))


def _is_ip(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


async def resolve(ctx: Context) -> DnsObservation:
    target, options = ctx.target, ctx.options
    override = options.resolve_for(target.host, target.port)
    if override:
        return DnsObservation(host=target.host, source="resolve-override", addresses=(override,))
    if target.is_ip_literal:
        return DnsObservation(host=target.host, source="ip-literal", addresses=(target.host,))
    t0 = ctx.clock()
    timeout = ctx.timeout(options.connect_timeout_s)
    if options.dns_server is not None and not _is_local_name(target.host):
        # Only the named server is asked: never the system resolver, never the hosts file.
        resolver, records = await _dns_records(target.host, timeout, options.dns_server)
        return DnsObservation(
            host=target.host,
            source="dns",
            addresses=tuple(_answers(records)),
            resolver=resolver,
            records=records,
            time_s=round(ctx.clock() - t0, 6),
        )

    async def system() -> tuple[list[str], str | None, float]:
        try:
            found = await system_getaddrinfo(target.host, target.port, timeout)
            return found, None, round(ctx.clock() - t0, 6)
        except (OSError, TimeoutError) as exc:
            outcome = classify_oserror(exc)
            return [], f"{outcome}: {_error_text(exc, outcome)}"[:300], round(ctx.clock() - t0, 6)

    if _is_local_name(target.host):
        # RFC 6761: never sent to DNS; the hosts file answers.
        addresses, system_error, elapsed = await system()
        return DnsObservation(
            host=target.host, source="local-name", addresses=tuple(addresses), system_error=system_error, time_s=elapsed
        )
    # What the app's resolver gives and what DNS says are two questions asked side by side, each
    # bounded by the same timeout: a silent resolver costs the timeout once, not twice.
    (addresses, system_error, elapsed), (resolver, records) = await asyncio.gather(
        system(), _dns_records(target.host, timeout)
    )
    return DnsObservation(
        host=target.host,
        source="dns",
        addresses=tuple(addresses),
        system_error=system_error,
        resolver=resolver,
        records=records,
        time_s=elapsed,
    )


@dataclass(frozen=True, slots=True)
class TcpAttempt:
    address: str
    family: Literal["ipv4", "ipv6"]
    outcome: Outcome  # CONNECTED, or how the connect failed (REFUSED, TIMEOUT, UNREACHABLE, OSERROR ...)
    time_s: float
    error: str | None = None

    def to_dict(self) -> dict[str, JSONValue]:
        return {
            "address": self.address,
            "family": self.family,
            "outcome": self.outcome.value,
            "time_s": self.time_s,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TcpAttempt:
        return from_json(cls, d)


@dataclass(frozen=True, slots=True)
class TcpObservation:
    """tcp.connect's facts: one attempt per address, all to ``port`` -- the target's, or, when the
    app's route is a proxy, the proxy's (``via_proxy``, its redacted URL: the app's first hop)."""

    attempts: tuple[TcpAttempt, ...]
    port: int
    via_proxy: str | None = None
    #: the proxy's host name did not resolve, so nothing was tried (the resolver's words)
    proxy_dns_error: str | None = None

    def to_dict(self) -> dict[str, JSONValue]:
        d: dict[str, JSONValue] = {
            "attempts": [a.to_dict() for a in self.attempts],
            "port": self.port,
            "via_proxy": self.via_proxy,
        }
        if self.proxy_dns_error is not None:  # only then: a report of a resolved proxy keeps its form
            d["proxy_dns_error"] = self.proxy_dns_error
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TcpObservation:
        return from_json(cls, d)


@dataclass(frozen=True, slots=True)
class ProxyConnectObservation:
    """proxy.connect's facts: one CONNECT through the app's proxy and, when the target's address is
    known, one direct TCP attempt beside it (does the app *need* the proxy, or is it in the way?)."""

    tunnel: TunnelObservation
    direct_tcp: TcpAttempt | None = None

    def to_dict(self) -> dict[str, JSONValue]:
        return {
            "tunnel": self.tunnel.to_dict(),
            "direct_tcp": self.direct_tcp.to_dict() if self.direct_tcp is not None else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ProxyConnectObservation:
        return from_json(cls, d)


def _error_text(exc: BaseException, outcome: Outcome, limit: int = 300) -> str:
    """An observation's ``error``: the exception's words; for an OSERROR outcome, which has no
    name of its own, with the errno's name in front (:func:`describe_oserror`)."""
    text = describe_oserror(exc) if outcome is Outcome.OSERROR else (str(exc) or type(exc).__name__)
    return text[:limit]


async def connect_all(ctx: Context, addresses: tuple[str, ...], *, port: int | None = None) -> tuple[TcpAttempt, ...]:
    """One bounded TCP connect per address (default port: the target's), side by side."""
    port = ctx.target.port if port is None else port
    timeout = ctx.timeout(ctx.options.connect_timeout_s)

    async def one(addr: str) -> TcpAttempt:
        family: Literal["ipv4", "ipv6"] = "ipv6" if ":" in addr else "ipv4"
        t0 = ctx.clock()
        try:
            _r, writer = await asyncio.wait_for(asyncio.open_connection(addr, port), timeout)
        except (OSError, TimeoutError) as exc:
            outcome = classify_oserror(exc)
            return TcpAttempt(addr, family, outcome, round(ctx.clock() - t0, 6), _error_text(exc, outcome, 200))
        elapsed = round(ctx.clock() - t0, 6)
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 1.0)
        return TcpAttempt(addr, family, Outcome.CONNECTED, elapsed)

    return tuple(await asyncio.gather(*(one(a) for a in addresses[:16])))


@dataclass(frozen=True, slots=True)
class CertInfo:
    """One certificate as ssl decodes it: the peer's, or one of the chain's."""

    subject: str
    issuer: str
    not_before: str
    not_after: str
    san: tuple[str, ...] = ()  # "DNS:api.deepgram.com", "IP Address:127.0.0.1"

    def to_dict(self) -> dict[str, JSONValue]:
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "not_before": self.not_before,
            "not_after": self.not_after,
            "san": list(self.san),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CertInfo:
        return from_json(cls, d)


#: The trust stores tls.handshake verifies against, one handshake each.
TrustStore = Literal["certifi", "system", "ca_file"]


@dataclass(frozen=True, slots=True)
class StoreResult:
    """One verified handshake against one trust store. ``to_dict`` writes only the keys that apply
    (time for ``ok``, OpenSSL's code and words for a failed verification, else the error)."""

    outcome: Outcome  # OK, TLS_VERIFY_FAILED, or how the connection failed
    time_s: float | None = None
    verify_code: int | None = None
    verify_message: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, JSONValue]:
        d: dict[str, JSONValue] = {"outcome": self.outcome.value}
        for key in ("time_s", "verify_code", "verify_message", "error"):
            value = getattr(self, key)
            if value is not None:
                d[key] = value
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StoreResult:
        return from_json(cls, d)


@dataclass(frozen=True, slots=True)
class TlsObservation:
    address: str
    server_name: str
    outcome: Outcome  # OK, TLS_VERIFY_FAILED, TLS_ERROR, RESET, EOF, TIMEOUT, PROXY_ERROR ...
    time_s: float | None = None
    protocol: str | None = None
    cipher: str | None = None
    alpn: str | None = None
    verify_code: int | None = None
    verify_message: str | None = None
    error: str | None = None
    peer: CertInfo | None = None  # written as {} when there is none
    #: the chain as the server sent it (leaf first), read without verifying
    chain: tuple[CertInfo, ...] = ()
    #: one verified handshake per trust store: "certifi", "system", and "ca_file" with --ca-file
    stores: dict[str, StoreResult] = field(default_factory=dict)
    via_proxy: str | None = None  # the (redacted) proxy the handshake was tunnelled through

    def to_dict(self) -> dict[str, JSONValue]:
        return {
            "address": self.address,
            "server_name": self.server_name,
            "outcome": self.outcome.value,
            "time_s": self.time_s,
            "protocol": self.protocol,
            "cipher": self.cipher,
            "alpn": self.alpn,
            "verify_code": self.verify_code,
            "verify_message": self.verify_message,
            "error": self.error,
            "peer": self.peer.to_dict() if self.peer is not None else {},
            "chain": [c.to_dict() for c in self.chain],
            "stores": {k: v.to_dict() for k, v in self.stores.items()},
            "via_proxy": self.via_proxy,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TlsObservation:
        if isinstance(d, Mapping) and d.get("peer") == {}:
            d = {**d, "peer": None}  # no peer certificate is written as {} (the report's form)
        return from_json(cls, d)


def _name(rdns: Any) -> str:
    try:
        return ", ".join(f"{k}={v}" for rdn in rdns for (k, v) in rdn)
    except (TypeError, ValueError):
        return str(rdns)


def _cert_info(cert: Mapping[str, Any]) -> CertInfo:
    return CertInfo(
        subject=_name(cert.get("subject", ())),
        issuer=_name(cert.get("issuer", ())),
        not_before=str(cert.get("notBefore")),
        not_after=str(cert.get("notAfter")),
        san=tuple(f"{k}:{v}" for k, v in cert.get("subjectAltName", ()))[:50],
    )


def _chain_of(sslobj: Any) -> list[CertInfo]:
    """The chain the server sent, leaf first. CPython 3.10-3.12 have it as the private
    ``_sslobj.get_unverified_chain()`` (public from 3.13); without it, the leaf alone, decoded from
    its DER by ssl's own test decoder -- no third-party X.509 parser needed."""
    inner = getattr(sslobj, "_sslobj", sslobj)
    getter = getattr(inner, "get_unverified_chain", None)
    if getter is not None:
        with contextlib.suppress(Exception):
            return [_cert_info(c.get_info()) for c in (getter() or [])][:10]
    der = sslobj.getpeercert(binary_form=True)
    if not der:
        return []
    import os
    import tempfile

    fd, path = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(ssl.DER_cert_to_PEM_cert(der))
        return [_cert_info(ssl._ssl._test_decode_cert(path))]  # type: ignore[attr-defined]
    except (OSError, ValueError, ssl.SSLError):
        return []
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def store_context(store: TrustStore, ca_file: str | None) -> ssl.SSLContext:
    """A verifying context that trusts one store only: ``certifi``, ``system`` or ``ca_file``."""
    ctx = ssl.create_default_context(cafile=None)
    if store == "system":
        return ctx
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, checks the hostname, no CA loaded yet
    if store == "certifi":
        import certifi

        ctx.load_verify_locations(certifi.where())
    else:
        ctx.load_verify_locations(ca_file)
    return ctx


async def open_path(
    ctx: Context, address: str, timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str | None]:
    """TCP to the target the way the app goes: directly to ``address``, or through the proxy
    (CONNECT) when one applies. Raises OSError/TimeoutError; a refused CONNECT is a ProxyRefused."""
    from wsdoctor.probes.proxy import open_tunnel, route_for

    decision, proxy = route_for(ctx)
    if proxy is None:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(address, ctx.target.port), timeout)
        return reader, writer, None
    obs, reader_, writer_ = await open_tunnel(
        proxy, ctx.target.host, ctx.target.port, timeout, address=await proxy_address(ctx, proxy.host, proxy.port)
    )
    if reader_ is None or writer_ is None:
        detail = f"{obs.outcome} {obs.status or ''} {obs.error or ''}"
        raise ProxyRefused(obs.status, f"CONNECT through {obs.proxy}: {detail}")
    return reader_, writer_, decision.proxy


async def proxy_address(ctx: Context, host: str, port: int) -> str | None:
    """The proxy host's address by :func:`resolve_host` (so ``--resolve`` and ``--dns-server``
    apply to it too); None if it does not resolve (the connect then fails and says so)."""
    try:
        return (await resolve_host(ctx, host, port))[0]
    except (OSError, TimeoutError):
        return None


class ProxyRefused(OSError):
    """The proxy did not open the tunnel (its answer is proxy.connect's to judge)."""

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message.strip())
        self.status = status


async def _verify_with(ctx: Context, address: str, store: TrustStore) -> StoreResult:
    timeout = ctx.timeout(ctx.options.connect_timeout_s)
    writer = None
    t0 = time.monotonic()
    try:
        sslctx = store_context(store, ctx.options.ca_file)
        _r, writer, _via = await open_path(ctx, address, timeout)
        await asyncio.wait_for(writer.start_tls(sslctx, server_hostname=ctx.target.host), ctx.timeout(timeout))
        return StoreResult(Outcome.OK, time_s=round(time.monotonic() - t0, 6))
    except ssl.SSLCertVerificationError as exc:
        return StoreResult(Outcome.TLS_VERIFY_FAILED, verify_code=exc.verify_code, verify_message=exc.verify_message)
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        outcome = classify_oserror(exc)
        return StoreResult(outcome, error=_error_text(exc, outcome, 200))
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)


async def _unverified_chain(ctx: Context, address: str) -> list[CertInfo]:
    timeout = ctx.timeout(ctx.options.connect_timeout_s)
    writer = None
    try:
        sslctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        sslctx.check_hostname = False
        sslctx.verify_mode = ssl.CERT_NONE
        _r, writer, _via = await open_path(ctx, address, timeout)
        await asyncio.wait_for(writer.start_tls(sslctx, server_hostname=ctx.target.host), ctx.timeout(timeout))
        sslobj = writer.get_extra_info("ssl_object")
        return _chain_of(sslobj) if sslobj is not None else []
    except (OSError, TimeoutError, ssl.SSLError):
        return []
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)


async def tls_handshake(ctx: Context, address: str) -> TlsObservation:
    """The app's handshake (system store + certifi, or exactly ``--ca-file``), timed on its own
    connection; then, side by side, the chain read without verification and one verified
    handshake per trust store, so a chain trusted by one store and not another shows up."""
    target, timeout = ctx.target, ctx.timeout(ctx.options.connect_timeout_s)
    stores: list[TrustStore] = ["certifi", "system", "ca_file"] if ctx.options.ca_file else ["certifi", "system"]
    chain_and_stores = asyncio.gather(_unverified_chain(ctx, address), _verify_all(ctx, address, stores))
    t0 = ctx.clock()
    writer = None
    via: str | None = None
    outcome = Outcome.OK
    base: dict[str, Any] = {}
    try:
        _r, writer, via = await open_path(ctx, address, timeout)
        t_tls = ctx.clock()
        handshake = writer.start_tls(tls_context(ctx.options.ca_file), server_hostname=target.host)
        await asyncio.wait_for(handshake, ctx.timeout(timeout))
        elapsed = round(ctx.clock() - t_tls, 6)
        sslobj = writer.get_extra_info("ssl_object")
        cert = sslobj.getpeercert() if sslobj else None
        cipher = sslobj.cipher() if sslobj else None
        base = {
            "time_s": elapsed,
            "protocol": sslobj.version() if sslobj else None,
            "cipher": cipher[0] if cipher else None,
            "alpn": sslobj.selected_alpn_protocol() if sslobj else None,
            "peer": _cert_info(cert) if cert else None,
        }
    except ProxyRefused as exc:
        outcome = Outcome.PROXY_ERROR
        base = {"time_s": round(ctx.clock() - t0, 6), "error": str(exc)[:300]}
    except ssl.SSLCertVerificationError as exc:
        outcome = Outcome.TLS_VERIFY_FAILED
        base = {
            "time_s": round(ctx.clock() - t0, 6),
            "verify_code": exc.verify_code,
            "verify_message": exc.verify_message,
            "error": str(exc)[:300],
        }
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        outcome = classify_oserror(exc)
        base = {"time_s": round(ctx.clock() - t0, 6), "error": _error_text(exc, outcome)}
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
    chain, per_store = await chain_and_stores
    if base.get("peer") is None and chain:
        base["peer"] = chain[0]
    return TlsObservation(
        address=address,
        server_name=target.host,
        outcome=outcome,
        chain=tuple(chain),
        stores=dict(zip(stores, per_store, strict=True)),
        via_proxy=via,
        **base,
    )


async def _verify_all(ctx: Context, address: str, stores: list[TrustStore]) -> list[StoreResult]:
    return list(await asyncio.gather(*(_verify_with(ctx, address, s) for s in stores)))
