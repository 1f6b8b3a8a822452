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
from contextlib import contextmanager
from pathlib import Path

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
