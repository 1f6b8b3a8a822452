"""--dns-server: the named server is the only one asked -- getaddrinfo (the system resolver, which
is not on loopback here) is never called for a DNS name -- and its answers are what every later
probe connects to. Also the TLS chain reader's fallback for Pythons without the private chain API."""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

import pytest
import trustme

from tests.system.services import dns_server
from wsdoctor.check import Context, RunOptions
from wsdoctor.model import Target
from wsdoctor.probes import netpath, resolver


def _no_system_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("the system resolver must not be asked when --dns-server is given")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", refuse)


def test_resolve_asks_only_the_named_server(monkeypatch: pytest.MonkeyPatch) -> None:
    with dns_server({"both.test": {"A": ["127.0.0.1"], "AAAA": ["::1"]}}) as port:
        _no_system_resolver(monkeypatch)
        ctx = Context(
            target=Target.parse("ws://both.test:8080/v1/listen"),
            options=RunOptions(dns_server=("127.0.0.1", port), connect_timeout_s=2.0),
        )
        obs = asyncio.run(resolver.resolve(ctx))
        hosts = asyncio.run(resolver.resolve_host(ctx, "both.test", 8080))
    assert obs.source == "dns"
    assert obs.addresses == ("127.0.0.1", "::1")
    assert obs.resolver == f"127.0.0.1:{port} (--dns-server)"
    assert hosts == ["127.0.0.1", "::1"]


def test_nxdomain_from_the_named_server_is_an_error_for_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    with dns_server({}) as port:
        _no_system_resolver(monkeypatch)
        ctx = Context(
            target=Target.parse("ws://nothing.invalid/"),
            options=RunOptions(dns_server=("127.0.0.1", port), connect_timeout_s=2.0),
        )
        with pytest.raises(socket.gaierror, match="nxdomain"):
            asyncio.run(resolver.resolve_host(ctx, "nothing.invalid", 80))


def test_chain_fallback_decodes_the_leaf_without_a_chain_api() -> None:
    ca = trustme.CA(organization_name="Fallback CA")
    leaf = ca.issue_cert("fallback.test")
    der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())

    class OldSslObject:  # no _sslobj.get_unverified_chain, like a Python without the private API
        def getpeercert(self, binary_form: bool = False) -> bytes:
            return der

    chain = netpath._chain_of(OldSslObject())
    assert len(chain) == 1
    assert "Fallback CA" in chain[0].issuer
    assert chain[0].san == ("DNS:fallback.test",)
