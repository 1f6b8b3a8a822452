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
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wsdoctor.check import Context
from wsdoctor.model import JSONValue
from wsdoctor.probes.record import from_json
from wsdoctor.probes.wsclient import classify_oserror, tls_context

__all__ = [
    "DnsObservation",
    "ProxyRefused",
    "TcpAttempt",
    "TlsObservation",
    "connect_all",
    "open_path",
    "proxy_address",
    "resolve",
    "resolve_host",
    "store_context",
    "tls_handshake",
]

_LOCAL_NAMES = ("localhost",)


@dataclass(frozen=True, slots=True)
class DnsObservation:
    host: str
    source: str  # "ip-literal" | "resolve-override" | "dns" | "local-name"
    addresses: tuple[str, ...] = ()  # what the connection will use, system order
    system_error: str | None = None  # getaddrinfo failure, as a fact
    resolver: str | None = None  # nameserver(s) dnspython asked
    records: dict[str, JSONValue] = field(default_factory=dict)  # {"A": {"outcome","answers","time_s"}}
    time_s: float | None = None

    def to_dict(self) -> dict[str, JSONValue]:
        return {
            "host": self.host,
            "source": self.source,
            "addresses": list(self.addresses),
            "system_error": self.system_error,
            "resolver": self.resolver,
            "records": dict(self.records),
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
) -> tuple[str | None, dict[str, JSONValue]]:
    import dns.exception
    import dns.resolver

    try:
        resolver = _resolver(server, timeout)
    except dns.resolver.NoResolverConfiguration:
        return None, {"A": {"outcome": "no-resolver-configured"}, "AAAA": {"outcome": "no-resolver-configured"}}
    nameservers = _server_name(server, resolver)

    async def one(rdtype: str) -> dict[str, JSONValue]:
        t0 = time.monotonic()
        try:
            answer = await resolver.resolve(host, rdtype, search=False)
            result: dict[str, JSONValue] = {"outcome": "ok", "answers": [r.to_text() for r in answer][:20]}
        except dns.resolver.NXDOMAIN:
            result = {"outcome": "nxdomain"}
        except dns.resolver.NoAnswer:
            result = {"outcome": "noanswer"}
        except dns.resolver.NoNameservers as exc:
            # dnspython says "no nameserver answered" both for a SERVFAIL and for a resolver it could
            # not even reach; the socket error in its message tells them apart.
            text = str(exc)
            unreachable = any(s in text for s in ("Network is unreachable", "No route to host", "Connection refused"))
            # EPERM: a firewall on this host (netfilter OUTPUT, a container's egress policy) refused
            # to send the query at all -- nothing reached a resolver, so it is not a SERVFAIL either.
            blocked = "Operation not permitted" in text
            outcome = "blocked" if blocked else ("unreachable" if unreachable else "servfail")
            result = {"outcome": outcome, "error": text[:300]}
        except dns.exception.Timeout:
            result = {"outcome": "timeout"}
        except dns.exception.DNSException as exc:
            result = {"outcome": "error", "error": f"{type(exc).__name__}: {exc}"[:300]}
        result["time_s"] = round(time.monotonic() - t0, 6)
        return result

    a, aaaa = await asyncio.gather(one("A"), one("AAAA"))
    return nameservers, {"A": a, "AAAA": aaaa}


def _is_local_name(host: str) -> bool:
    host = host.lower().rstrip(".")
    return host in _LOCAL_NAMES or host.endswith(".localhost")


def _answers(records: dict[str, JSONValue]) -> list[str]:
    out: list[str] = []
    for rd in ("A", "AAAA"):
        rec = records.get(rd)
        if isinstance(rec, dict) and isinstance(rec.get("answers"), list):
            out += [str(a) for a in rec["answers"] if isinstance(a, str)]
    return out


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
            outcomes = "/".join(str((r or {}).get("outcome")) for r in records.values() if isinstance(r, dict))
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
            return [], f"{classify_oserror(exc)}: {exc}"[:300], round(ctx.clock() - t0, 6)

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
    family: str  # "ipv4" | "ipv6"
    outcome: str  # "connected" | "refused" | "timeout" | "unreachable" | errno name
    time_s: float
    error: str | None = None

    def to_dict(self) -> dict[str, JSONValue]:
        return {
            "address": self.address,
            "family": self.family,
            "outcome": self.outcome,
            "time_s": self.time_s,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TcpAttempt:
        return from_json(cls, d)


async def connect_all(ctx: Context, addresses: tuple[str, ...], *, port: int | None = None) -> tuple[TcpAttempt, ...]:
    """One bounded TCP connect per address (default port: the target's), side by side."""
    port = ctx.target.port if port is None else port
    timeout = ctx.timeout(ctx.options.connect_timeout_s)

    async def one(addr: str) -> TcpAttempt:
        family = "ipv6" if ":" in addr else "ipv4"
        t0 = ctx.clock()
        try:
            _r, writer = await asyncio.wait_for(asyncio.open_connection(addr, port), timeout)
        except (OSError, TimeoutError) as exc:
            return TcpAttempt(
                addr, family, classify_oserror(exc), round(ctx.clock() - t0, 6), (str(exc) or type(exc).__name__)[:200]
            )
        elapsed = round(ctx.clock() - t0, 6)
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 1.0)
        return TcpAttempt(addr, family, "connected", elapsed)

    return tuple(await asyncio.gather(*(one(a) for a in addresses[:16])))


@dataclass(frozen=True, slots=True)
class TlsObservation:
    address: str
    server_name: str
    outcome: str  # "ok" | "tls-verify-failed" | "tls-error" | "reset" | "eof" | "timeout" | "proxy-error" ...
    time_s: float | None = None
    protocol: str | None = None
    cipher: str | None = None
    alpn: str | None = None
    verify_code: int | None = None
    verify_message: str | None = None
    error: str | None = None
    peer: dict[str, JSONValue] = field(default_factory=dict)  # subject, issuer, notBefore, notAfter, san
    #: the chain as the server sent it (leaf first), read without verifying: [{subject, issuer, ...}]
    chain: list[JSONValue] = field(default_factory=list)
    #: one verified handshake per trust store: {"certifi": {...}, "system": {...}, "ca_file": {...}}
    stores: dict[str, JSONValue] = field(default_factory=dict)
    via_proxy: str | None = None  # the (redacted) proxy the handshake was tunnelled through

    def to_dict(self) -> dict[str, JSONValue]:
        return {
            "address": self.address,
            "server_name": self.server_name,
            "outcome": self.outcome,
            "time_s": self.time_s,
            "protocol": self.protocol,
            "cipher": self.cipher,
            "alpn": self.alpn,
            "verify_code": self.verify_code,
            "verify_message": self.verify_message,
            "error": self.error,
            "peer": dict(self.peer),
            "chain": list(self.chain),
            "stores": dict(self.stores),
            "via_proxy": self.via_proxy,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TlsObservation:
        return from_json(cls, d)


def _name(rdns: Any) -> str:
    try:
        return ", ".join(f"{k}={v}" for rdn in rdns for (k, v) in rdn)
    except (TypeError, ValueError):
        return str(rdns)


def _cert_info(cert: Mapping[str, Any]) -> dict[str, JSONValue]:
    return {
        "subject": _name(cert.get("subject", ())),
        "issuer": _name(cert.get("issuer", ())),
        "not_before": str(cert.get("notBefore")),
        "not_after": str(cert.get("notAfter")),
        "san": [f"{k}:{v}" for k, v in cert.get("subjectAltName", ())][:50],
    }


def _chain_of(sslobj: Any) -> list[dict[str, JSONValue]]:
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


def store_context(store: str, ca_file: str | None) -> ssl.SSLContext:
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


async def _verify_with(ctx: Context, address: str, store: str) -> dict[str, JSONValue]:
    timeout = ctx.timeout(ctx.options.connect_timeout_s)
    writer = None
    t0 = time.monotonic()
    try:
        sslctx = store_context(store, ctx.options.ca_file)
        _r, writer, _via = await open_path(ctx, address, timeout)
        await asyncio.wait_for(writer.start_tls(sslctx, server_hostname=ctx.target.host), ctx.timeout(timeout))
        return {"outcome": "ok", "time_s": round(time.monotonic() - t0, 6)}
    except ssl.SSLCertVerificationError as exc:
        return {"outcome": "tls-verify-failed", "verify_code": exc.verify_code, "verify_message": exc.verify_message}
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        return {"outcome": classify_oserror(exc), "error": (str(exc) or type(exc).__name__)[:200]}
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)


async def _unverified_chain(ctx: Context, address: str) -> list[dict[str, JSONValue]]:
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
    stores = ["certifi", "system"] + (["ca_file"] if ctx.options.ca_file else [])
    extra = asyncio.gather(_unverified_chain(ctx, address), *(_verify_with(ctx, address, s) for s in stores))
    t0 = ctx.clock()
    writer = None
    via: str | None = None
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
            "outcome": "ok",
            "time_s": elapsed,
            "protocol": sslobj.version() if sslobj else None,
            "cipher": cipher[0] if cipher else None,
            "alpn": sslobj.selected_alpn_protocol() if sslobj else None,
            "peer": _cert_info(cert) if cert else {},
        }
    except ProxyRefused as exc:
        base = {"outcome": "proxy-error", "time_s": round(ctx.clock() - t0, 6), "error": str(exc)[:300]}
    except ssl.SSLCertVerificationError as exc:
        base = {
            "outcome": "tls-verify-failed",
            "time_s": round(ctx.clock() - t0, 6),
            "verify_code": exc.verify_code,
            "verify_message": exc.verify_message,
            "error": str(exc)[:300],
        }
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        base = {
            "outcome": classify_oserror(exc),
            "time_s": round(ctx.clock() - t0, 6),
            "error": (str(exc) or type(exc).__name__)[:300],
        }
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
    results = await extra
    chain: list[dict[str, JSONValue]] = results[0]  # type: ignore[assignment]
    per_store: list[JSONValue] = list(results[1:])  # type: ignore[arg-type]
    if not base.get("peer") and chain:
        base["peer"] = chain[0]
    return TlsObservation(
        address=address,
        server_name=target.host,
        chain=list(chain),
        stores=dict(zip(stores, per_store, strict=True)),
        via_proxy=via,
        **base,
    )
