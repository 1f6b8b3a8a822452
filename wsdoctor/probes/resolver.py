"""Name resolution, the way the user's app does it -- and what DNS itself says.

Theory of operation. :func:`resolve_host` is every probe's resolver (the connection factory,
:mod:`wsdoctor.probes.connect`, calls it): ``--resolve`` first, an IP literal as is, then
``--dns-server`` (dnspython, that server only: getaddrinfo is not called for a DNS name, so a test
or a user can name the resolver and be sure nothing else is asked), else the system resolver.
getaddrinfo runs in a daemon thread of its own (:func:`system_getaddrinfo`): a resolver that never
answers cannot hold the process past ``--timeout``.

:func:`resolve` is dns.resolve's probe. It answers two questions separately: what the *system*
resolver gives the app (getaddrinfo, hosts file included), and what DNS says per record type
(dnspython, A and AAAA, the resolver named, NXDOMAIN / SERVFAIL / timeout / a blocked query kept
apart). An IP literal or a ``--resolve`` override needs no lookup and says so; ``localhost`` names
are never sent to DNS (RFC 6761). Nothing here judges.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from wsdoctor.check import Context
from wsdoctor.model import is_ip_address
from wsdoctor.probes.transport import classify_oserror, error_text
from wsdoctor.record import Record

__all__ = [
    "DnsObservation",
    "DnsOutcome",
    "DnsRecord",
    "DnsSource",
    "resolve",
    "resolve_host",
    "system_getaddrinfo",
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
class DnsRecord(Record):
    """One record type's query (``A`` or ``AAAA``). ``to_dict`` writes only the keys that apply
    (answers for ``ok``, error for failures, no time when nothing was asked): the report's form."""

    _SPARSE = frozenset({"answers", "error", "time_s"})  # written only when set

    outcome: DnsOutcome
    answers: tuple[str, ...] | None = None
    time_s: float | None = None
    error: str | None = None


#: Where a DnsObservation's addresses came from.
DnsSource = Literal["ip-literal", "resolve-override", "dns", "local-name"]


@dataclass(frozen=True, slots=True)
class DnsObservation(Record):
    host: str
    source: DnsSource
    addresses: tuple[str, ...] = ()  # what the connection will use, system order
    system_error: str | None = None  # getaddrinfo failure, as a fact
    resolver: str | None = None  # nameserver(s) dnspython asked
    records: dict[str, DnsRecord] = field(default_factory=dict)  # by record type: "A", "AAAA"
    time_s: float | None = None


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
    if is_ip_address(host):
        return [host]
    if options.dns_server is not None and not _is_local_name(host):
        _ns, records = await _dns_records(host, ctx.timeout(options.connect_timeout_s), options.dns_server)
        found = _answers(records)
        if not found:
            outcomes = "/".join(r.outcome.value for r in records.values())
            raise socket.gaierror(socket.EAI_NONAME, f"{host}: no address from the DNS server ({outcomes})")
        return found
    return await system_getaddrinfo(host, port, ctx.timeout(options.connect_timeout_s))


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
            return [], f"{outcome}: {error_text(exc, outcome)}"[:300], round(ctx.clock() - t0, 6)

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
