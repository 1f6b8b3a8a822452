"""The connection factory (wsdoctor.probes.connect) against real servers on 127.0.0.1: a TLS
server with a trustme certificate, a closed port, and a small real forward proxy (CONNECT tunnels
and absolute-form requests). Every step is traced in order; every failure is a ConnectFailed that
names its step and outcome -- never an OSError, never a crash (a --ca-file that does not load)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme

from wsdoctor.check import Context, ResolveOverride, RunOptions
from wsdoctor.model import Outcome, Target
from wsdoctor.probes.connect import ConnectFailed, open_connection

HOST = "dg.test"


@dataclass
class Servers:
    tls_port: int
    ca_file: str
    proxy_port: int
    proxy_requests: list[str] = field(default_factory=list)
    proxy_auth: list[str | None] = field(default_factory=list)
    refuse_connect: bool = False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def servers(tmp_path: Path) -> AsyncIterator[Servers]:
    ca = trustme.CA()
    cert = ca.issue_cert(HOST)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)

    async def tls_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ssl.SSLError):
            await reader.read(100)
        writer.close()

    tls_server = await asyncio.start_server(tls_handler, "127.0.0.1", 0, ssl=server_ctx)
    tls_port = tls_server.sockets[0].getsockname()[1]
    state = Servers(tls_port=tls_port, ca_file=str(ca_file), proxy_port=0)

    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        dst.close()

    async def proxy_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line, *lines = head.split("\r\n")
        state.proxy_requests.append(request_line)
        auth = next(
            (v.strip() for k, _, v in (ln.partition(":") for ln in lines) if k.lower() == "proxy-authorization"), None
        )
        state.proxy_auth.append(auth)
        method, authority, _ = request_line.split(" ", 2)
        if method != "CONNECT":  # absolute form: answer it ourselves
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
            writer.close()
            return
        if state.refuse_connect:
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\nConnection: close\r\n\r\ndenied")
            await writer.drain()
            writer.close()
            return
        port = int(authority.rsplit(":", 1)[1])
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    proxy_server = await asyncio.start_server(proxy_handler, "127.0.0.1", 0)
    state.proxy_port = proxy_server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        for srv in (tls_server, proxy_server):
            srv.close()
            await srv.wait_closed()


def ctx_for(url: str, **options: object) -> Context:
    return Context(target=Target.parse(url), options=RunOptions(connect_timeout_s=3.0, **options))  # type: ignore[arg-type]


class Trace:
    def __init__(self) -> None:
        self.names: list[str] = []

    def __call__(self, name: str, info: Mapping[str, object]) -> None:
        self.names.append(name)


async def test_direct_tls_is_traced_step_by_step(tmp_path: Path) -> None:
    async with servers(tmp_path) as s:
        override = (ResolveOverride(HOST, s.tls_port, "127.0.0.1"),)
        trace = Trace()
        conn = await open_connection(
            ctx_for(f"wss://{HOST}:{s.tls_port}/v1/listen", resolve=override, ca_file=s.ca_file), trace=trace
        )
        await conn.aclose()
    assert trace.names == ["connect_tcp.started", "connect_tcp.complete", "start_tls.started", "start_tls.complete"]
    assert conn.address == f"127.0.0.1:{s.tls_port}"
    assert conn.route.proxy is None and conn.tunnel is None


async def test_a_name_is_resolved_first() -> None:
    port = _free_port()
    trace = Trace()
    with pytest.raises(ConnectFailed) as failed:
        await open_connection(ctx_for(f"ws://localhost:{port}/"), trace=trace)
    assert trace.names[:2] == ["resolve.started", "resolve.complete"]
    assert failed.value.outcome is Outcome.REFUSED and failed.value.step == "connect_tcp"
    assert trace.names[-1] == "connect_tcp.failed"


async def test_an_untrusted_certificate_fails_the_tls_step(tmp_path: Path) -> None:
    async with servers(tmp_path) as s:
        override = (ResolveOverride(HOST, s.tls_port, "127.0.0.1"),)
        with pytest.raises(ConnectFailed) as failed:
            await open_connection(ctx_for(f"wss://{HOST}:{s.tls_port}/", resolve=override))
    assert (failed.value.step, failed.value.outcome) == ("start_tls", Outcome.TLS_VERIFY_FAILED)
    assert isinstance(failed.value.cause, ssl.SSLCertVerificationError)


async def test_a_ca_file_that_does_not_load_is_a_tls_failure_not_a_crash(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    async with servers(tmp_path) as s:
        override = (ResolveOverride(HOST, s.tls_port, "127.0.0.1"),)
        with pytest.raises(ConnectFailed) as failed:
            await open_connection(ctx_for(f"wss://{HOST}:{s.tls_port}/", resolve=override, ca_file=str(bad)))
    assert failed.value.step == "start_tls"
    assert failed.value.outcome is Outcome.TLS_ERROR


async def test_through_a_proxy_the_tunnel_is_a_step_and_the_password_stays_out(tmp_path: Path) -> None:
    async with servers(tmp_path) as s:
        trace = Trace()
        proxy = f"http://alice:s3cr3t-pw@127.0.0.1:{s.proxy_port}"
        conn = await open_connection(
            ctx_for(f"wss://{HOST}:{s.tls_port}/", proxy=proxy, ca_file=s.ca_file), trace=trace
        )
        await conn.aclose()
    assert trace.names == [
        "connect_tcp.started",
        "connect_tcp.complete",
        "proxy_connect.started",
        "proxy_connect.complete",
        "start_tls.started",
        "start_tls.complete",
    ]
    assert s.proxy_requests == [f"CONNECT {HOST}:{s.tls_port} HTTP/1.1"]
    assert s.proxy_auth == ["Basic " + base64.b64encode(b"alice:s3cr3t-pw").decode()]
    assert conn.route.proxy is not None and "s3cr3t" not in conn.route.proxy
    assert conn.route.proxy_credentials and conn.route.proxy_authorization is None  # a tunnel: sent on CONNECT
    assert conn.tunnel is not None and conn.tunnel.outcome is Outcome.ESTABLISHED
    assert conn.address == f"127.0.0.1:{s.proxy_port}"


async def test_a_refused_tunnel_is_a_proxy_error_with_its_answer(tmp_path: Path) -> None:
    async with servers(tmp_path) as s:
        s.refuse_connect = True
        with pytest.raises(ConnectFailed) as failed:
            await open_connection(ctx_for(f"wss://{HOST}:{s.tls_port}/", proxy=f"http://127.0.0.1:{s.proxy_port}"))
    exc = failed.value
    assert (exc.step, exc.outcome) == ("proxy_connect", Outcome.PROXY_ERROR)
    assert exc.tunnel is not None and exc.tunnel.status == 403 and exc.tunnel.body_excerpt == "denied"


async def test_plain_http_may_go_to_the_proxy_in_absolute_form(tmp_path: Path) -> None:
    async with servers(tmp_path) as s:
        proxy = f"http://bob:pw@127.0.0.1:{s.proxy_port}"
        conn = await open_connection(ctx_for(f"ws://{HOST}:8080/v1/listen", proxy=proxy), tunnel=False)
        assert conn.route.absolute_form and conn.tunnel is None
        assert conn.route.proxy_authorization == "Basic " + base64.b64encode(b"bob:pw").decode()
        conn.writer.write(b"GET http://dg.test:8080/v1/listen HTTP/1.1\r\nHost: dg.test:8080\r\n\r\n")
        answer = await asyncio.wait_for(conn.reader.read(), 3.0)
        await conn.aclose()
    assert answer.startswith(b"HTTP/1.1 200")
    assert s.proxy_requests == ["GET http://dg.test:8080/v1/listen HTTP/1.1"]


async def test_via_proxy_false_goes_direct_whatever_the_route() -> None:
    port = _free_port()
    with pytest.raises(ConnectFailed) as failed:
        await open_connection(
            ctx_for(f"ws://{HOST}:{port}/", proxy="http://127.0.0.1:9"), address="127.0.0.1", via_proxy=False
        )
    assert failed.value.address == f"127.0.0.1:{port}" and failed.value.route.proxy is None
