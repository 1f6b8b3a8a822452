"""A machine without any network: run wsdoctor inside a namespace the test creates, with no working
interface (not even lo), so even a loopback address is unreachable. Nothing can leave the namespace."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.system.services import netns, require


def run_without_network(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], float]:
    """``wsdoctor run ARGS --connect-timeout 2`` inside a namespace with no interface up."""
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
                *args,
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
    report: dict[str, Any] = json.loads(out.read_text())
    return proc, report, wall


def test_unreachable_resolver_is_named_as_such(tmp_path: Path) -> None:
    _, report, wall = run_without_network(
        tmp_path, "ws://service.test/v1/listen", "--dns-server", "127.0.0.53", "--checks", "dns.resolve"
    )
    assert report["summary"]["primary_finding"] == "dns.resolver-unreachable"
    assert report["summary"]["primary_cause"] == "network-instability"
    assert wall < 2 + 3  # unreachable fails at once: no waiting out the timeout


def test_no_route_to_the_target_is_tcp_unreachable(tmp_path: Path) -> None:
    _, report, _ = run_without_network(tmp_path, "ws://127.0.0.1:9/v1/listen", "--checks", "tcp.connect")
    assert report["summary"]["primary_finding"] == "tcp.unreachable"
