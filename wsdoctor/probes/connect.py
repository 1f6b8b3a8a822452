"""The probes' one way to open a connection: the app's route, every step bounded and traced.

Theory of operation. A WebSocket, a TLS handshake per trust store, a REST request: each probe
needs a connection that goes where the user's app would go, so they all get it here, from
:func:`open_connection`, never from ``asyncio.open_connection`` directly:

1. *route* -- directly to the target, or through the proxy ``--proxy`` or the proxy variables
   name (:func:`wsdoctor.probes.proxy.route_for`, curl's ``NO_PROXY`` rules);
2. *resolve* -- the hop's address: ``--resolve`` first, an IP literal as is, else
   :func:`wsdoctor.probes.resolver.resolve_host` (``--dns-server`` or the system resolver, in a
   thread that cannot hold a deadline);
3. *connect_tcp* -- to that address;
4. *proxy_connect* -- through a proxy, ``CONNECT host:port`` (:func:`~wsdoctor.probes.proxy.open_tunnel`);
   a plain-http request may instead go to the proxy itself in absolute form (``tunnel=False``);
5. *start_tls* -- for wss/https (or the context a probe brings: one trust store, or none to read
   the chain), with ALPN ``http/1.1`` and SNI = the target's host.

Every step is bounded by ``--connect-timeout`` (cut to the run's deadline by ``ctx.timeout``).
Like httpcore's ``trace`` extension, a caller may pass ``trace(name, info)``: it is called with
``"<step>.started"``, ``"<step>.complete"`` and ``"<step>.failed"``, so the WebSocket probe marks
its lifecycle stages and a timing probe times the phases without a second copy of this code.
A failure raises :class:`ConnectFailed` carrying the facts (an :class:`~wsdoctor.model.Outcome`,
the hop's address, the route, the proxy's answer): probes turn it into their observation.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wsdoctor.check import Context
from wsdoctor.errors import WsdoctorError
from wsdoctor.model import Outcome, is_ip_address
from wsdoctor.probes.transport import classify_oserror, error_text, tls_context

if TYPE_CHECKING:
    from wsdoctor.probes.proxy import TunnelObservation

__all__ = ["ConnectFailed", "Connection", "Route", "Trace", "close_quietly", "open_connection"]

#: ``trace(name, info)``: ``name`` is ``"<step>.started" | "<step>.complete" | "<step>.failed"``
#: for the steps resolve, connect_tcp, proxy_connect and start_tls.
Trace = Callable[[str, Mapping[str, object]], None]

READ_LIMIT = 65536  # StreamReader buffer: a read never waits for more than this


@dataclass(frozen=True, slots=True)
class Route:
    """Which way a connection went. Holds no password: ``proxy`` is the redacted display URL."""

    target: str  # "host:port" asked for
    proxy: str | None = None
    proxy_credentials: bool = False  # the proxy URL carried credentials (sent as Proxy-Authorization)
    proxy_authorization: str | None = None  # the header value itself, for an absolute-form request
    absolute_form: bool = False  # plain http through the proxy: requests go to it in absolute form


@dataclass(slots=True)
class Connection:
    """An open connection (the caller owns it; :meth:`aclose` it)."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    address: str  # "ip:port" of the hop connected to (the proxy's, through one)
    route: Route
    tunnel: TunnelObservation | None = None  # the CONNECT, through a proxy

    async def aclose(self) -> None:
        await close_quietly(self.writer)


class ConnectFailed(WsdoctorError):
    """The connection could not be opened; the facts, for the probe's observation."""

    def __init__(
        self,
        outcome: Outcome,
        error: str,
        *,
        step: str,
        address: str | None,
        route: Route,
        tunnel: TunnelObservation | None = None,
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(error)
        self.outcome = outcome
        self.error = error
        self.step = step  # resolve | connect_tcp | proxy_connect | start_tls
        self.address = address
        self.route = route
        self.tunnel = tunnel
        self.cause = cause


async def close_quietly(writer: asyncio.StreamWriter) -> None:
    """Close and wait (bounded) for the transport to go; a peer that is already gone is fine."""
    writer.close()
    with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
        await asyncio.wait_for(writer.wait_closed(), 1.0)


def _hostport(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


class _Steps:
    """Runs the steps, tracing each and turning its failure into :class:`ConnectFailed`."""

    def __init__(self, trace: Trace | None, route: Route) -> None:
        self.trace = trace or (lambda _name, _info: None)
        self.route = route
        self.address: str | None = None

    def started(self, step: str, **info: object) -> None:
        self.trace(f"{step}.started", info)

    def complete(self, step: str, **info: object) -> None:
        self.trace(f"{step}.complete", info)

    def failed(self, step: str, exc: BaseException, tunnel: TunnelObservation | None = None) -> ConnectFailed:
        outcome = classify_oserror(exc)
        self.trace(f"{step}.failed", {"outcome": outcome.value})
        return ConnectFailed(
            outcome,
            error_text(exc, outcome),
            step=step,
            address=self.address,
            route=self.route,
            tunnel=tunnel,
            cause=exc,
        )


async def _hop_address(ctx: Context, steps: _Steps, host: str, port: int, given: str | None) -> str:
    addr = given or ctx.options.resolve_for(host, port)
    if addr is None and not is_ip_address(host):
        from wsdoctor.probes.resolver import resolve_host

        steps.started("resolve", host=host)
        try:
            found = await asyncio.wait_for(resolve_host(ctx, host, port), ctx.timeout(ctx.options.connect_timeout_s))
        except (OSError, TimeoutError) as exc:
            raise steps.failed("resolve", exc) from None
        addr = found[0]
        steps.complete("resolve", addresses=found)
    return (addr or host).strip("[]")


async def open_connection(
    ctx: Context,
    *,
    address: str | None = None,
    port: int | None = None,
    tls: bool | ssl.SSLContext | None = None,
    via_proxy: bool = True,
    tunnel: bool = True,
    trace: Trace | None = None,
) -> Connection:
    """A connection to the target (``ctx.target``) the way the app opens it (module docstring).

    ``address``: the target's address to use on a direct route (probing one address); ignored
    through a proxy. ``port``: another port of the target. ``tls``: ``None`` = as the target's
    scheme says, with the client's trust (:func:`~wsdoctor.probes.transport.tls_context`);
    ``False`` = none; a context = that one. ``via_proxy=False`` goes direct whatever the proxy
    variables say (the tcp.connect probe measures the target's own addresses). ``tunnel=False``:
    a plain-http target through a proxy gets the proxy itself (absolute-form requests).
    Raises :class:`ConnectFailed`; never an OSError."""
    from wsdoctor.probes.proxy import open_tunnel, route_for

    target, options = ctx.target, ctx.options
    port = target.port if port is None else port
    timeout = ctx.timeout(options.connect_timeout_s)
    if tls is None:
        tls = target.tls
    use_tls = tls is not False
    decision, proxy = route_for(ctx) if via_proxy else (None, None)
    authority = _hostport(target.host, port)
    route = Route(target=authority)
    if proxy is not None and decision is not None:
        absolute = not tunnel and not use_tls
        route = Route(
            target=authority,
            proxy=decision.proxy,
            proxy_credentials=proxy.username is not None,
            proxy_authorization=proxy.authorization() if absolute else None,
            absolute_form=absolute,
        )
    steps = _Steps(trace, route)
    hop_host, hop_port = (proxy.host, proxy.port) if proxy is not None else (target.host, port)
    addr = await _hop_address(ctx, steps, hop_host, hop_port, address if proxy is None else None)
    steps.address = _hostport(addr, hop_port)
    tunnel_obs: TunnelObservation | None = None
    steps.started("connect_tcp", address=steps.address)
    if proxy is not None and not route.absolute_form:

        def tcp_up() -> None:
            steps.complete("connect_tcp", address=steps.address)
            steps.started("proxy_connect", target=authority)

        tunnel_obs, reader_, writer_ = await open_tunnel(
            proxy, target.host, port, timeout, address=addr, on_connected=tcp_up
        )
        if reader_ is None or writer_ is None:
            outcome = Outcome.PROXY_ERROR if tunnel_obs.outcome is Outcome.HTTP_RESPONSE else tunnel_obs.outcome
            step = (
                "proxy_connect"
                if tunnel_obs.connect_s is not None and tunnel_obs.tunnel_s is not None
                else "connect_tcp"
            )
            steps.trace(f"{step}.failed", {"outcome": outcome.value})
            error = tunnel_obs.error or f"the proxy {tunnel_obs.proxy} answered CONNECT with {tunnel_obs.status}"
            raise ConnectFailed(outcome, error[:300], step=step, address=steps.address, route=route, tunnel=tunnel_obs)
        reader, writer = reader_, writer_
        steps.complete("proxy_connect", status=tunnel_obs.status)
    else:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(addr, hop_port, limit=READ_LIMIT), timeout)
        except (OSError, TimeoutError) as exc:
            raise steps.failed("connect_tcp", exc) from None
        steps.complete("connect_tcp", address=steps.address)
    if use_tls:
        steps.started("start_tls", server_name=target.host)
        try:
            # the client's trust is built here, inside the step: a --ca-file that does not load is
            # this connection's TLS failure (tls-error), not a crash
            sslctx = tls if isinstance(tls, ssl.SSLContext) else tls_context(options.ca_file)
            await asyncio.wait_for(
                writer.start_tls(sslctx, server_hostname=target.host), ctx.timeout(options.connect_timeout_s)
            )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            await close_quietly(writer)
            raise steps.failed("start_tls", exc, tunnel=tunnel_obs) from None
        steps.complete("start_tls")
    return Connection(reader, writer, steps.address, route, tunnel_obs)
