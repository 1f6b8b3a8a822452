"""Probes of the network path below the WebSocket: name resolution, TCP, TLS.

Theory of operation. ``resolve()`` answers two questions separately: what the *system* resolver
gives the user's app (``getaddrinfo``, hosts file included), and what DNS itself says per record
type (dnspython, A and AAAA, with the resolver named and NXDOMAIN / SERVFAIL / timeout kept apart).
An IP literal or a ``--resolve`` override needs no lookup and says so. ``connect_all()`` opens TCP
to every address concurrently, each bounded by the connect timeout, and records refused / timeout /
unreachable per address. ``tls_handshake()`` does one handshake on its own connection to time it
and records protocol, cipher, ALPN and the peer certificate, or the verification error as OpenSSL
words it. Nothing here judges.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

from wsdoctor.check import Context
from wsdoctor.model import JSONValue
from wsdoctor.probes.wsclient import classify_oserror, tls_context

__all__ = ["DnsObservation", "TcpAttempt", "TlsObservation", "connect_all", "resolve", "tls_handshake"]

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
    def from_dict(cls, d: dict[str, Any]) -> DnsObservation:
        return cls(
            host=d["host"],
            source=d["source"],
            addresses=tuple(d.get("addresses", ())),
            system_error=d.get("system_error"),
            resolver=d.get("resolver"),
            records=dict(d.get("records") or {}),
            time_s=d.get("time_s"),
        )


async def _dns_records(host: str, timeout: float) -> tuple[str | None, dict[str, JSONValue]]:
    import dns.asyncresolver
    import dns.exception
    import dns.resolver

    try:
        resolver = dns.asyncresolver.Resolver()
    except dns.resolver.NoResolverConfiguration:
        return None, {"A": {"outcome": "no-resolver-configured"}, "AAAA": {"outcome": "no-resolver-configured"}}
    resolver.lifetime = timeout
    nameservers = ", ".join(str(ns) for ns in resolver.nameservers)

    async def one(rdtype: str) -> dict[str, JSONValue]:
        t0 = time.monotonic()
        try:
            answer = await resolver.resolve(host, rdtype)
            result: dict[str, JSONValue] = {"outcome": "ok", "answers": [r.to_text() for r in answer][:20]}
        except dns.resolver.NXDOMAIN:
            result = {"outcome": "nxdomain"}
        except dns.resolver.NoAnswer:
            result = {"outcome": "noanswer"}
        except dns.resolver.NoNameservers as exc:
            result = {"outcome": "servfail", "error": str(exc)[:300]}
        except dns.exception.Timeout:
            result = {"outcome": "timeout"}
        except dns.exception.DNSException as exc:
            result = {"outcome": "error", "error": f"{type(exc).__name__}: {exc}"[:300]}
        result["time_s"] = round(time.monotonic() - t0, 6)
        return result

    a, aaaa = await asyncio.gather(one("A"), one("AAAA"))
    return nameservers, {"A": a, "AAAA": aaaa}


async def resolve(ctx: Context) -> DnsObservation:
    target, options = ctx.target, ctx.options
    override = options.resolve_for(target.host, target.port)
    if override:
        return DnsObservation(host=target.host, source="resolve-override", addresses=(override,))
    if target.is_ip_literal:
        return DnsObservation(host=target.host, source="ip-literal", addresses=(target.host,))
    t0 = ctx.clock()
    loop = asyncio.get_running_loop()
    addresses: list[str] = []
    system_error = None
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM), options.connect_timeout_s
        )
        for info in infos:
            addr = str(info[4][0])
            if addr not in addresses:
                addresses.append(addr)
    except (OSError, TimeoutError) as exc:
        system_error = f"{classify_oserror(exc)}: {exc}"[:300]
    elapsed = round(ctx.clock() - t0, 6)
    if target.host.lower() in _LOCAL_NAMES or target.host.lower().endswith(".localhost"):
        # RFC 6761: never sent to DNS; the hosts file answers.
        return DnsObservation(
            host=target.host, source="local-name", addresses=tuple(addresses), system_error=system_error, time_s=elapsed
        )
    resolver, records = await _dns_records(target.host, options.connect_timeout_s)
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
    def from_dict(cls, d: dict[str, Any]) -> TcpAttempt:
        return cls(
            address=d["address"],
            family=d["family"],
            outcome=d["outcome"],
            time_s=float(d["time_s"]),
            error=d.get("error"),
        )


async def connect_all(ctx: Context, addresses: tuple[str, ...]) -> tuple[TcpAttempt, ...]:
    port, timeout = ctx.target.port, ctx.options.connect_timeout_s

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
    outcome: str  # "ok" | "tls-verify-failed" | "tls-error" | "reset" | "eof" | "timeout" | ...
    time_s: float | None = None
    protocol: str | None = None
    cipher: str | None = None
    alpn: str | None = None
    verify_code: int | None = None
    verify_message: str | None = None
    error: str | None = None
    peer: dict[str, JSONValue] = field(default_factory=dict)  # subject, issuer, notBefore, notAfter, san

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
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TlsObservation:
        fields = ("time_s", "protocol", "cipher", "alpn", "verify_code", "verify_message", "error")
        optional: dict[str, Any] = {k: d.get(k) for k in fields}
        return cls(address=str(d["address"]), server_name=str(d["server_name"]), outcome=str(d["outcome"]),
                   peer=dict(d.get("peer") or {}), **optional)


def _name(rdns: Any) -> str:
    try:
        return ", ".join(f"{k}={v}" for rdn in rdns for (k, v) in rdn)
    except (TypeError, ValueError):
        return str(rdns)


async def tls_handshake(ctx: Context, address: str) -> TlsObservation:
    target, timeout = ctx.target, ctx.options.connect_timeout_s
    t0 = ctx.clock()
    writer = None
    try:
        _r, writer = await asyncio.wait_for(asyncio.open_connection(address, target.port), timeout)
        t_tls = ctx.clock()
        await asyncio.wait_for(writer.start_tls(tls_context(ctx.options.ca_file), server_hostname=target.host), timeout)
        elapsed = round(ctx.clock() - t_tls, 6)
        sslobj = writer.get_extra_info("ssl_object")
        cert = sslobj.getpeercert() if sslobj else None
        peer: dict[str, JSONValue] = {}
        if cert:
            peer = {
                "subject": _name(cert.get("subject", ())),
                "issuer": _name(cert.get("issuer", ())),
                "not_before": str(cert.get("notBefore")),
                "not_after": str(cert.get("notAfter")),
                "san": [f"{k}:{v}" for k, v in cert.get("subjectAltName", ())][:50],
            }
        cipher = sslobj.cipher() if sslobj else None
        return TlsObservation(
            address=address,
            server_name=target.host,
            outcome="ok",
            time_s=elapsed,
            protocol=sslobj.version() if sslobj else None,
            cipher=cipher[0] if cipher else None,
            alpn=sslobj.selected_alpn_protocol() if sslobj else None,
            peer=peer,
        )
    except ssl.SSLCertVerificationError as exc:
        return TlsObservation(
            address=address,
            server_name=target.host,
            outcome="tls-verify-failed",
            time_s=round(ctx.clock() - t0, 6),
            verify_code=exc.verify_code,
            verify_message=exc.verify_message,
            error=str(exc)[:300],
        )
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        return TlsObservation(
            address=address,
            server_name=target.host,
            outcome=classify_oserror(exc),
            time_s=round(ctx.clock() - t0, 6),
            error=(str(exc) or type(exc).__name__)[:300],
        )
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
