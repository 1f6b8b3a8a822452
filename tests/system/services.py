"""Real system services for the system tier: started from a config in a temp dir, on a free
127.0.0.1 port, stopped by pid. Every wait is bounded; a service that does not come up fails the
test with its own log, it never hangs."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest


def require(binary: str) -> str:
    """The path of ``binary``; in CI a missing one is an error (.ci/run installs it), elsewhere a skip."""
    path = shutil.which(binary) or next(
        (p for p in (f"/usr/sbin/{binary}", f"/sbin/{binary}") if os.access(p, os.X_OK)), None
    )
    if path is None:
        message = f"{binary} is not installed (the system tier needs it; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def require_root() -> None:
    if os.geteuid() != 0:
        message = "the system tier needs root (network namespaces, iptables, services)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"service exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(
        f"service did not listen on {port} within {timeout} s: {log.read_text(errors='replace')[-2000:]}"
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


NGINX_WS_PROXY = """
user root;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
{upgrade_headers}
            proxy_read_timeout {read_timeout};
            proxy_send_timeout 60s;
        }}
    }}
}}
"""

UPGRADE_HEADERS = """            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";"""


@contextmanager
def nginx_proxy(
    upstream_port: int, tmp: Path, *, read_timeout: str = "60s", pass_upgrade: bool = True
) -> Iterator[int]:
    """nginx as a WebSocket reverse proxy in front of ``upstream_port``; yields its port.

    ``pass_upgrade=False`` is the classic misconfiguration: the Upgrade/Connection headers are not
    forwarded, so the upstream sees a plain GET. ``read_timeout`` is nginx's ``proxy_read_timeout``,
    which cuts a connection whose *upstream* has been silent that long."""
    binary = require("nginx")
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(
        NGINX_WS_PROXY.format(
            tmp=tmp,
            port=port,
            upstream=upstream_port,
            read_timeout=read_timeout,
            upgrade_headers=UPGRADE_HEADERS if pass_upgrade else "",
        )
    )
    log = tmp / "error.log"
    log.touch()
    proc = subprocess.Popen(
        [binary, "-c", str(conf), "-p", str(tmp), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc, log)
        yield port
    finally:
        stop(proc)


# -- squid: a real forward proxy -----------------------------------------------------------------

SQUID_CONF = """
http_port 127.0.0.1:{port}
pid_filename {tmp}/squid.pid
cache_log {tmp}/cache.log
access_log {tmp}/access.log
cache_store_log none
coredump_dir {tmp}
cache deny all
cache_mem 8 MB
shutdown_lifetime 1 seconds
visible_hostname wsdoctor-test-squid
{auth}
acl loopback_dst dst 127.0.0.0/8 ::1
acl CONNECT method CONNECT
{access}
http_access deny all
"""

SQUID_AUTH = """auth_param basic program {helper} {tmp}/htpasswd
auth_param basic realm wsdoctor-test
auth_param basic children 2 startup=1 idle=1
acl authed proxy_auth REQUIRED"""

#: The three policies the system tier needs. Squid's default Safe_ports/SSL_ports ACLs are left out
#: on purpose: they would deny CONNECT to the random loopback ports the tests use.
SQUID_POLICIES = {
    "allow": "http_access allow loopback_dst",
    "deny": "http_access deny CONNECT loopback_dst",
    "auth": "http_access allow authed loopback_dst",
}


def htpasswd_line(user: str, password: str) -> str:
    """``user:$6$...`` (SHA-512 crypt, which basic_ncsa_auth checks through crypt(3)). Python's
    ``crypt`` (deprecated, gone in 3.13) makes it; without it, ``openssl passwd -6``."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt
    except ImportError:
        hashed = subprocess.run(
            ["openssl", "passwd", "-6", "-stdin"],
            input=password,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        return f"{user}:{hashed}"
    return f"{user}:{crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))}"


@contextmanager
def squid_proxy(policy: str, *, users: dict[str, str] | None = None) -> Iterator[int]:
    """A real squid forward proxy on 127.0.0.1 with one policy of :data:`SQUID_POLICIES`; yields
    its port. Squid drops root to the ``proxy`` user, so its temp dir is made readable by it."""
    import tempfile

    binary = require("squid")
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="wsdoctor-squid-"))
    auth = ""
    if policy == "auth":
        helper = "/usr/lib/squid/basic_ncsa_auth"
        if not os.access(helper, os.X_OK):
            require("basic_ncsa_auth")
        (tmp / "htpasswd").write_text("".join(htpasswd_line(u, p) + "\n" for u, p in (users or {}).items()))
        auth = SQUID_AUTH.format(helper=helper, tmp=tmp)
    conf = tmp / "squid.conf"
    conf.write_text(SQUID_CONF.format(port=port, tmp=tmp, auth=auth, access=SQUID_POLICIES[policy]))
    log = tmp / "cache.log"
    log.touch()
    for path in (tmp, *tmp.iterdir()):
        os.chmod(path, 0o777 if path.is_dir() else 0o666)
    proc = subprocess.Popen(
        [binary, "-N", "-f", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "stderr.log", "wb"),  # noqa: SIM115
    )
    try:
        wait_for_port(port, proc, log, timeout=20.0)
        yield port
    finally:
        stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


# -- a DNS server on 127.0.0.1 (dnspython builds the answers) -----------------------------------


@contextmanager
def dns_server(
    zone: dict[str, dict[str, list[str]]], *, servfail: tuple[str, ...] = (), drop: tuple[str, ...] = ()
) -> Iterator[int]:
    """A UDP DNS server on 127.0.0.1 in a thread; yields its port. ``zone`` maps a name to its
    records ({"A": ["127.0.0.1"], "AAAA": [...]}); a name in neither ``zone``, ``servfail`` nor
    ``drop`` is NXDOMAIN; ``servfail`` names get SERVFAIL; ``drop`` names get no answer at all
    (a timeout). Never forwards anything anywhere."""
    import threading

    import dns.message
    import dns.rcode
    import dns.rdatatype
    import dns.rrset

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    port = int(sock.getsockname()[1])
    stopping = threading.Event()
    names = {k.lower().rstrip("."): v for k, v in zone.items()}

    def answer(data: bytes) -> bytes | None:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text().lower().rstrip(".")
        if name in drop:
            return None
        if name in servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif name not in names:
            response.set_rcode(dns.rcode.NXDOMAIN)
        else:
            rdtype = dns.rdatatype.to_text(question.rdtype)
            values = names[name].get(rdtype, [])
            if values:
                response.answer.append(dns.rrset.from_text(question.name, 30, "IN", rdtype, *values))
        return bytes(response.to_wire())

    def serve() -> None:
        while not stopping.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                reply = answer(data)
            except Exception:  # a malformed query: no answer, as a real server might
                reply = None
            if reply is not None:
                sock.sendto(reply, peer)

    thread = threading.Thread(target=serve, name="test-dns", daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stopping.set()
        thread.join(timeout=2)
        sock.close()


# -- TLS in front of a plain server: trustme certificates ----------------------------------------


@contextmanager
def tls_relay(upstream_port: int | None, cert_pem: bytes, key_pem: bytes) -> Iterator[int]:
    """A TLS server on 127.0.0.1 (asyncio, own thread) with the given certificate chain; each
    connection's plaintext is relayed to ``upstream_port`` (or closed if None). Yields its port."""
    import asyncio
    import ssl
    import tempfile
    import threading

    tmp = Path(tempfile.mkdtemp(prefix="wsdoctor-tls-"))
    (tmp / "cert.pem").write_bytes(cert_pem)
    (tmp / "key.pem").write_bytes(key_pem)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if upstream_port is None:
            writer.close()
            return
        try:
            up_r, up_w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", upstream_port), 5)
        except (OSError, TimeoutError):
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx, ssl_handshake_timeout=5)
        state["port"] = server.sockets[0].getsockname()[1]
        stop_ev = asyncio.Event()
        state["stop"] = (asyncio.get_running_loop(), stop_ev)
        ready.set()
        async with server:
            await stop_ev.wait()

    thread = threading.Thread(target=lambda: asyncio.run(main()), name="test-tls", daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("TLS relay did not start")
    try:
        yield int(state["port"])
    finally:
        loop, stop_ev = state["stop"]
        loop.call_soon_threadsafe(stop_ev.set)
        thread.join(timeout=5)
        shutil.rmtree(tmp, ignore_errors=True)


# -- network namespaces --------------------------------------------------------------------------


@contextmanager
def netns(*, loopback_up: bool = True, resolv_conf: str | None = None) -> Iterator[str]:
    """A fresh network namespace ``wsdtest-<random>`` with ``lo`` up (or, with ``loopback_up=False``,
    no working interface at all: a machine without network); always deleted afterwards.
    ``resolv_conf``: the namespace's own /etc/resolv.conf (``ip netns exec`` bind-mounts
    /etc/netns/NAME/resolv.conf over it), so a process inside has a private system resolver.
    Skips (fails in CI) when namespaces cannot be created here."""
    import secrets

    require_root()
    ip = require("ip")
    name = f"wsdtest-{secrets.token_hex(4)}"
    made = subprocess.run([ip, "netns", "add", name], capture_output=True, text=True, timeout=10)
    if made.returncode != 0:
        message = f"cannot create a network namespace: {made.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    etc = Path("/etc/netns") / name
    try:
        if loopback_up:
            subprocess.run([ip, "-n", name, "link", "set", "lo", "up"], check=True, timeout=10)
        if resolv_conf is not None:
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "resolv.conf").write_text(resolv_conf)
        yield name
    finally:
        subprocess.run([ip, "netns", "delete", name], capture_output=True, timeout=10)
        shutil.rmtree(etc, ignore_errors=True)


@contextmanager
def reset_after_client_hello() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that reads the first bytes (a TLS ClientHello) and answers with
    an RST (SO_LINGER 0): what an SNI-filtering firewall does. Yields its port."""
    import struct
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    port = int(server.getsockname()[1])
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                with suppress(OSError):
                    conn.recv(4096)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    thread = threading.Thread(target=serve, name="test-sni-reset", daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stopping.set()
        thread.join(timeout=2)
        server.close()


@contextmanager
def prometheus_server(config_yaml: str, tmp: Path) -> Iterator[int]:
    """A real Prometheus (Debian package ``prometheus``) with ``config_yaml``, its TSDB in ``tmp``,
    listening on a free 127.0.0.1 port (never the packaged service's 9090); yields that port."""
    binary = require("prometheus")
    port = free_port()
    conf = tmp / "prometheus.yml"
    conf.write_text(config_yaml)
    log = tmp / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={conf}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, proc, log, timeout=20.0)
        _wait_ready(f"http://127.0.0.1:{port}/-/ready", timeout=20.0)
        yield port
    finally:
        stop(proc)


def _wait_ready(url: str, timeout: float) -> None:
    """Prometheus listens before its TSDB is open and answers 503 until then: wait for /-/ready."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} not ready within {timeout} s")
        time.sleep(0.2)
