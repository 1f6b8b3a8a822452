"""A machine without any network: run wsdoctor inside a namespace the test creates, with no working
interface (not even lo), so even the loopback resolver it is given is unreachable. Nothing can
leave the namespace."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.system.services import netns, require


def test_unreachable_resolver_is_named_as_such(tmp_path: Path) -> None:
    ip = require("ip")
    out = tmp_path / "r.json"
    with netns(loopback_up=False) as name:
        t0 = time.monotonic()
        proc = subprocess.run(
            [
                ip,
                "netns",
                "exec",
                name,
                sys.executable,
                "-m",
                "wsdoctor",
                "run",
                "ws://service.test/v1/listen",
                "--dns-server",
                "127.0.0.53",
                "--checks",
                "dns.resolve",
                "--connect-timeout",
                "2",
                "--json",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        wall = time.monotonic() - t0
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert report["summary"]["primary_finding"] == "dns.resolver-unreachable"
    assert report["summary"]["primary_cause"] == "network-instability"
    assert wall < 2 + 3  # unreachable fails at once: no waiting out the timeout


def test_no_route_to_the_target_is_tcp_unreachable(tmp_path: Path) -> None:
    ip = require("ip")
    out = tmp_path / "r.json"
    with netns(loopback_up=False) as name:
        proc = subprocess.run(
            [
                ip,
                "netns",
                "exec",
                name,
                sys.executable,
                "-m",
                "wsdoctor",
                "run",
                "ws://127.0.0.1:9/v1/listen",
                "--checks",
                "tcp.connect",
                "--connect-timeout",
                "2",
                "--json",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert report["summary"]["primary_finding"] == "tcp.unreachable"
