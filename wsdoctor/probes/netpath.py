"""Probes of the network path below the WebSocket: TCP per address, the proxy's tunnel, TLS.

Theory of operation. Every connection here comes from the probes' one factory,
:func:`wsdoctor.probes.connect.open_connection`, so each honours ``--resolve``, the proxy route,
``--ca-file`` and the deadline the same way the WebSocket probe does (name resolution lives in
:mod:`wsdoctor.probes.resolver`).

``connect_all()`` opens TCP to every address concurrently, each bounded by the connect timeout
(a blackhole costs exactly that, never the OS's minutes of SYN retries), and records refused /
timeout / unreachable per address, IPv4 and IPv6 apart. ``tunnel_probe()`` is one ``CONNECT``
through the app's proxy.

``tls_handshake()`` does the app's handshake (system store + certifi, or exactly ``--ca-file``) on
its own connection to time it (the factory's trace times the TLS step alone), and records
protocol, cipher, ALPN and the peer certificate, or the verification error as OpenSSL words it.
Side by side it reads the chain *without* verifying (so a failed handshake still shows who issued
the certificate -- the proof of interception) and does one verified handshake per trust store
(certifi, system, ``--ca-file``): a chain one store accepts and another rejects is a stale local
bundle. The chain comes from CPython's private ``get_unverified_chain()`` (public in 3.13) and
falls back to the leaf decoded by ssl's own ``_test_decode_cert``: no X.509 dependency. When the
app's route is a proxy, every TLS connection here is a CONNECT tunnel through it. Nothing here
judges.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from wsdoctor.check import Context
from wsdoctor.errors import InternalError
from wsdoctor.model import JSONValue, Outcome
from wsdoctor.probes.connect import ConnectFailed, open_connection
from wsdoctor.probes.proxy import TunnelObservation
from wsdoctor.probes.transport import classify_oserror, error_text
from wsdoctor.record import Record, from_json, to_json

__all__ = [
    "CertInfo",
    "ProxyConnectObservation",
    "StoreResult",
    "TcpAttempt",
    "TcpObservation",
    "TlsObservation",
    "TrustStore",
    "connect_all",
    "store_context",
    "tls_handshake",
    "tunnel_probe",
]


@dataclass(frozen=True, slots=True)
class TcpAttempt(Record):
    address: str
    family: Literal["ipv4", "ipv6"]
    outcome: Outcome  # CONNECTED, or how the connect failed (REFUSED, TIMEOUT, UNREACHABLE, OSERROR ...)
    time_s: float
    error: str | None = None


@dataclass(frozen=True, slots=True)
class TcpObservation(Record):
    """tcp.connect's facts: one attempt per address, all to ``port`` -- the target's, or, when the
    app's route is a proxy, the proxy's (``via_proxy``, its redacted URL: the app's first hop)."""

    _SPARSE = frozenset({"proxy_dns_error"})  # written only when set

    attempts: tuple[TcpAttempt, ...]
    port: int
    via_proxy: str | None = None
    #: the proxy's host name did not resolve, so nothing was tried (the resolver's words)
    proxy_dns_error: str | None = None


@dataclass(frozen=True, slots=True)
class ProxyConnectObservation(Record):
    """proxy.connect's facts: one CONNECT through the app's proxy and, when the target's address is
    known, one direct TCP attempt beside it (does the app *need* the proxy, or is it in the way?)."""

    tunnel: TunnelObservation
    direct_tcp: TcpAttempt | None = None


async def connect_all(ctx: Context, addresses: tuple[str, ...], *, port: int | None = None) -> tuple[TcpAttempt, ...]:
    """One bounded TCP connect per address (default port: the target's), side by side, direct:
    this measures the addresses themselves, whatever route the app would take."""

    async def one(addr: str) -> TcpAttempt:
        family: Literal["ipv4", "ipv6"] = "ipv6" if ":" in addr else "ipv4"
        t0 = ctx.clock()
        try:
            conn = await open_connection(ctx, address=addr, port=port, tls=False, via_proxy=False)
        except ConnectFailed as exc:
            return TcpAttempt(addr, family, exc.outcome, round(ctx.clock() - t0, 6), exc.error[:200])
        elapsed = round(ctx.clock() - t0, 6)
        await conn.aclose()
        return TcpAttempt(addr, family, Outcome.CONNECTED, elapsed)

    return tuple(await asyncio.gather(*(one(a) for a in addresses[:16])))


async def tunnel_probe(ctx: Context) -> TunnelObservation:
    """proxy.connect's probe: one ``CONNECT`` through the app's proxy, as the connection factory
    opens it (the proxy's address by ``--resolve``/``--dns-server``/the system, bounded)."""
    from wsdoctor.probes.proxy import TunnelObservation

    try:
        conn = await open_connection(ctx, tls=False)
    except ConnectFailed as exc:
        if exc.tunnel is not None:
            return exc.tunnel
        route = exc.route  # the proxy's own name did not resolve: no tunnel was attempted
        return TunnelObservation(
            proxy=route.proxy or "?",
            target=route.target,
            outcome=exc.outcome,
            sent_credentials=route.proxy_credentials,
            error=f"resolving the proxy: {exc.error}"[:300],
        )
    await conn.aclose()
    if conn.tunnel is None:
        raise InternalError("tunnel_probe needs a proxy on the route (proxy.connect checks route_for first)")
    return conn.tunnel


@dataclass(frozen=True, slots=True)
class CertInfo(Record):
    """One certificate as ssl decodes it: the peer's, or one of the chain's."""

    subject: str
    issuer: str
    not_before: str
    not_after: str
    san: tuple[str, ...] = ()  # "DNS:api.deepgram.com", "IP Address:127.0.0.1"


#: The trust stores tls.handshake verifies against, one handshake each.
TrustStore = Literal["certifi", "system", "ca_file"]


@dataclass(frozen=True, slots=True)
class StoreResult(Record):
    """One verified handshake against one trust store. ``to_dict`` writes only the keys that apply
    (time for ``ok``, OpenSSL's code and words for a failed verification, else the error)."""

    _SPARSE = frozenset({"time_s", "verify_code", "verify_message", "error"})  # written only when set

    outcome: Outcome  # OK, TLS_VERIFY_FAILED, or how the connection failed
    time_s: float | None = None
    verify_code: int | None = None
    verify_message: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class TlsObservation(Record):
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
        d = to_json(self)
        if self.peer is None:
            d["peer"] = {}  # the report's form for "no peer certificate"
        return d

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


class _TlsTimer:
    """The TLS step's duration, from the connection factory's trace (a TCP connect or a CONNECT
    through a proxy is not part of it)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.started: float | None = None
        self.elapsed: float | None = None

    def __call__(self, name: str, _info: Mapping[str, object]) -> None:
        if name == "start_tls.started":
            self.started = self.clock()
        elif name == "start_tls.complete" and self.started is not None:
            self.elapsed = round(self.clock() - self.started, 6)


async def _verify_with(ctx: Context, address: str, store: TrustStore) -> StoreResult:
    timer = _TlsTimer(time.monotonic)
    try:
        conn = await open_connection(ctx, address=address, tls=store_context(store, ctx.options.ca_file), trace=timer)
    except ConnectFailed as exc:
        if isinstance(exc.cause, ssl.SSLCertVerificationError):
            return StoreResult(
                Outcome.TLS_VERIFY_FAILED, verify_code=exc.cause.verify_code, verify_message=exc.cause.verify_message
            )
        return StoreResult(exc.outcome, error=exc.error[:200])
    except (OSError, ssl.SSLError) as exc:  # the store itself cannot be loaded (a broken --ca-file)
        return StoreResult(classify_oserror(exc), error=error_text(exc, classify_oserror(exc), 200))
    await conn.aclose()
    return StoreResult(Outcome.OK, time_s=timer.elapsed)


async def _unverified_chain(ctx: Context, address: str) -> list[CertInfo]:
    sslctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    sslctx.check_hostname = False
    sslctx.verify_mode = ssl.CERT_NONE
    try:
        conn = await open_connection(ctx, address=address, tls=sslctx)
    except ConnectFailed:
        return []
    try:
        sslobj = conn.writer.get_extra_info("ssl_object")
        return _chain_of(sslobj) if sslobj is not None else []
    finally:
        await conn.aclose()


async def tls_handshake(ctx: Context, address: str) -> TlsObservation:
    """The app's handshake (system store + certifi, or exactly ``--ca-file``), timed on its own
    connection; then, side by side, the chain read without verification and one verified
    handshake per trust store, so a chain trusted by one store and not another shows up."""
    target = ctx.target
    stores: list[TrustStore] = ["certifi", "system", "ca_file"] if ctx.options.ca_file else ["certifi", "system"]
    chain_and_stores = asyncio.gather(_unverified_chain(ctx, address), _verify_all(ctx, address, stores))
    timer = _TlsTimer(ctx.clock)
    t0 = ctx.clock()
    outcome = Outcome.OK
    base: dict[str, Any] = {}
    via: str | None = None
    try:
        conn = await open_connection(ctx, address=address, tls=True, trace=timer)
    except ConnectFailed as exc:
        via = exc.route.proxy
        outcome = exc.outcome
        base = {"time_s": round(ctx.clock() - t0, 6), "error": exc.error}
        if isinstance(exc.cause, ssl.SSLCertVerificationError):
            base |= {
                "verify_code": exc.cause.verify_code,
                "verify_message": exc.cause.verify_message,
                "error": str(exc.cause)[:300],
            }
        elif exc.outcome is Outcome.PROXY_ERROR:
            base["error"] = f"CONNECT through {via}: {exc.error}"[:300]
    else:
        via = conn.route.proxy
        try:
            sslobj = conn.writer.get_extra_info("ssl_object")
            cert = sslobj.getpeercert() if sslobj else None
            cipher = sslobj.cipher() if sslobj else None
            base = {
                "time_s": timer.elapsed,
                "protocol": sslobj.version() if sslobj else None,
                "cipher": cipher[0] if cipher else None,
                "alpn": sslobj.selected_alpn_protocol() if sslobj else None,
                "peer": _cert_info(cert) if cert else None,
            }
        finally:
            await conn.aclose()
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
