"""A deadline yields a diagnosis: ``wsdoctor run --timeout S`` against a blackholed port and against
a resolver that never answers ends within S + 1 s, exit 1, naming the phase that was waiting.

Real faults in network namespaces these tests create: iptables DROP on the target port (SYNs vanish),
a namespace whose /etc/resolv.conf points at a resolver whose queries are dropped (getaddrinfo and
dnspython both wait), and an OUTPUT rule that refuses to send DNS at all (EPERM). The whole process
is timed from exec to exit, interpreter start and report writing included.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.system.services import netns, require, require_root

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 5.0
SILENT_RESOLVER = "nameserver 127.0.0.1\noptions timeout:5 attempts:2\n"  # glibc waits 10 s, at least


def _iptables(ns: str, *rule: str) -> None:
    ip, iptables = require("ip"), require("iptables")
    done = subprocess.run([ip, "netns", "exec", ns, iptables, *rule], capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        pytest.fail(f"iptables inside a namespace failed: {done.stderr.strip()}")


def _run_in(ns: str, tmp_path: Path, url: str, *extra: str) -> tuple[int, dict[str, Any], float, str]:
    out = tmp_path / "r.json"
    t0 = time.monotonic()
    proc = subprocess.run(
        [
            require("ip"),
            "netns",
            "exec",
            ns,
            sys.executable,
            "-m",
            "wsdoctor",
            "run",
            url,
            "--timeout",
            str(TIMEOUT_S),
            "--json",
            str(out),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    wall = time.monotonic() - t0
    report: dict[str, Any] = json.loads(out.read_text())
    return proc.returncode, report, wall, proc.stdout + proc.stderr


def _result(report: dict[str, Any], check_id: str) -> dict[str, Any]:
    return next(r for r in report["results"] if r["check_id"] == check_id)


def test_blackholed_port_under_a_deadline_is_tcp_timeout_in_time(tmp_path: Path) -> None:
    require_root()
    with netns() as ns:
        _iptables(ns, "-A", "INPUT", "-p", "tcp", "--dport", "4433", "-j", "DROP")
        code, report, wall, text = _run_in(ns, tmp_path, "ws://127.0.0.1:4433/v1/listen")
    print(f"--timeout {TIMEOUT_S:g} against a blackhole: {wall:.2f} s wall, exit {code}")
    assert code == 1, text
    assert wall <= TIMEOUT_S + 1.0, wall
    summary = report["summary"]
    assert (summary["verdict"], summary["primary_finding"], summary["primary_cause"]) == (
        "failing",
        "tcp.timeout",
        "proxy-firewall",
    )
    tcp = _result(report, "tcp.connect")
    attempt = tcp["evidence"]["attempts"][0]
    assert attempt["outcome"] == "timeout" and 3.5 <= attempt["time_s"] <= TIMEOUT_S
    assert "got no SYN-ACK within" in tcp["findings"][0]["message"]
    assert "error" not in {r["status"] for r in report["results"]}


def test_silent_system_resolver_under_a_deadline_is_dns_timeout_in_time(tmp_path: Path) -> None:
    require_root()
    with netns(resolv_conf=SILENT_RESOLVER) as ns:
        for proto in ("udp", "tcp"):  # queries reach 127.0.0.1:53 and vanish: no answer, no ICMP
            _iptables(ns, "-A", "INPUT", "-p", proto, "--dport", "53", "-j", "DROP")
        code, report, wall, text = _run_in(ns, tmp_path, "ws://api.silent.test/v1/listen")
    print(f"--timeout {TIMEOUT_S:g} against a silent resolver: {wall:.2f} s wall, exit {code}")
    assert code == 1, text
    assert wall <= TIMEOUT_S + 1.0, wall  # getaddrinfo's own 10 s do not hold the process
    summary = report["summary"]
    assert (summary["verdict"], summary["primary_finding"], summary["primary_cause"]) == (
        "failing",
        "dns.timeout",
        "network-instability",
    )
    dns = _result(report, "dns.resolve")
    assert dns["status"] == "fail" and "got no DNS answer within" in dns["findings"][0]["message"]
    assert "error" not in {r["status"] for r in report["results"]}


def test_dns_refused_by_a_local_firewall_is_dns_blocked(tmp_path: Path) -> None:
    require_root()
    with netns(resolv_conf=SILENT_RESOLVER) as ns:
        for proto in ("udp", "tcp"):  # OUTPUT DROP: the kernel refuses to send (EPERM)
            _iptables(ns, "-A", "OUTPUT", "-p", proto, "--dport", "53", "-j", "DROP")
        code, report, wall, text = _run_in(ns, tmp_path, "ws://api.blocked.test/v1/listen")
    assert code == 1, text
    assert report["summary"]["primary_finding"] == "dns.blocked"
    assert report["summary"]["primary_cause"] == "proxy-firewall"
    assert wall < TIMEOUT_S  # refused at once: nothing to wait for
