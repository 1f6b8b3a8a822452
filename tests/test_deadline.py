"""A deadline yields a diagnosis, without root: ``--timeout S`` against a port that drops SYNs and
against a DNS server that never answers ends within S + 1 s with exit 1 and the phase named; the
exporter does the same under a Prometheus scrape timeout.

The blackhole is real and needs no firewall: a listening socket whose accept queue is full (listen
backlog 0, one connection never accepted) makes Linux drop every further SYN, so a connect waits as
it would behind a firewall. The silent resolver is a DNS server on 127.0.0.1 that drops queries.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.mockproc import wsdoctor_process
from tests.system.services import dns_server
from wsdoctor.check import MIN_PHASE_S, Context, RunOptions
from wsdoctor.model import Target

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 3.0


@contextmanager
def blackhole() -> Iterator[int]:
    """A 127.0.0.1 port whose SYNs are dropped: its accept queue is full and nobody accepts."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = int(server.getsockname()[1])
    filler = socket.create_connection(("127.0.0.1", port), timeout=2)  # fills the queue
    probe = socket.socket()
    probe.settimeout(0.3)
    try:
        with pytest.raises(TimeoutError):  # proof that it blackholes, on this kernel
            probe.connect(("127.0.0.1", port))
        yield port
    finally:
        for s in (probe, filler, server):
            s.close()


def run(tmp_path: Path, *args: str) -> tuple[int, dict[str, Any], float, str]:
    out = tmp_path / "r.json"
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "wsdoctor", "run", *args, "--timeout", str(TIMEOUT_S), "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    wall = time.monotonic() - t0
    return proc.returncode, json.loads(out.read_text()), wall, proc.stdout + proc.stderr


def test_options_and_phases_are_cut_to_the_budget() -> None:
    options = RunOptions(connect_timeout_s=5.0, close_wait_s=5.0, idle_max_s=30.0, soak_s=60.0)
    cut = options.within(2.5)
    assert (cut.connect_timeout_s, cut.close_wait_s, cut.idle_max_s, cut.soak_s) == (2.5, 2.5, 2.5, 2.5)
    assert options.within(100.0) == options
    assert options.within(-1.0).connect_timeout_s == MIN_PHASE_S
    now = [10.0]
    ctx = Context(target=Target.parse("ws://127.0.0.1:9/v1/listen"), clock=lambda: now[0], deadline_at=12.0)
    assert ctx.timeout(5.0) == 2.0
    now[0] = 11.9
    assert ctx.timeout(5.0) == MIN_PHASE_S
    assert Context(target=ctx.target).timeout(5.0) == 5.0


def test_blackholed_port_under_a_deadline(tmp_path: Path) -> None:
    with blackhole() as port:
        code, report, wall, text = run(tmp_path, f"ws://127.0.0.1:{port}/v1/listen")
    print(f"--timeout {TIMEOUT_S:g} against a blackhole: {wall:.2f} s wall")
    assert code == 1, text
    assert wall <= TIMEOUT_S + 1.0
    assert report["summary"]["primary_finding"] == "tcp.timeout"
    tcp = next(r for r in report["results"] if r["check_id"] == "tcp.connect")
    assert tcp["status"] == "fail" and tcp["evidence"]["attempts"][0]["time_s"] >= TIMEOUT_S - 1.0
    assert "error" not in {r["status"] for r in report["results"]}


def test_silent_dns_server_under_a_deadline(tmp_path: Path) -> None:
    with dns_server({}, drop=("api.silent.test",)) as dport:
        code, report, wall, text = run(tmp_path, "ws://api.silent.test/v1/listen", "--dns-server", f"127.0.0.1:{dport}")
    print(f"--timeout {TIMEOUT_S:g} against a silent DNS server: {wall:.2f} s wall")
    assert code == 1, text
    assert wall <= TIMEOUT_S + 1.0
    summary = report["summary"]
    assert (summary["verdict"], summary["primary_finding"]) == ("failing", "dns.timeout")
    dns = next(r for r in report["results"] if r["check_id"] == "dns.resolve")
    assert "got no DNS answer within" in dns["findings"][0]["message"]


def test_exporter_names_the_blackhole_within_the_scrape_timeout(tmp_path: Path) -> None:
    import urllib.parse
    import urllib.request

    with blackhole() as port:
        config = tmp_path / "wsdoctor.toml"
        config.write_text(f'[profiles.quick]\nquick = true\n[targets.bh]\nurl = "ws://127.0.0.1:{port}/v1/listen"\n')
        with wsdoctor_process(["serve", "--config", str(config), "--listen", "127.0.0.1:0"]) as (base, _proc):
            query = urllib.parse.urlencode({"target": "bh", "profile": "quick"})
            scrape = {"X-Prometheus-Scrape-Timeout-Seconds": "3"}
            request = urllib.request.Request(f"{base}/probe?{query}", headers=scrape)
            t0 = time.monotonic()
            with urllib.request.urlopen(request, timeout=10) as resp:
                body = resp.read().decode()
            elapsed = time.monotonic() - t0
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    assert elapsed < 3.0, elapsed  # answered inside the scrape timeout ...
    samples = [s for family in text_string_to_metric_families(body) for s in family.samples]
    primary = [s.labels for s in samples if s.name == "wsdoctor_primary_cause"]
    assert primary == [{"target": "bh", "cause": "proxy-firewall", "code": "tcp.timeout"}]  # ... with the diagnosis
