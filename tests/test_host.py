"""host.* checks: analyze() on recorded observations, and the real thing on 127.0.0.1.

Real faults, no mocks: sockets left in CLOSE_WAIT against a local server (the server closes, the
client never does), the same held by a child process inspected with ``--pid``, a child process with
a 64-descriptor limit, a sampler process stopped with SIGSTOP (and, as no fault of the host's,
wsdoctor's own blocked loop), and an HTTP server whose Date header is 95 s behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from checks import host
from checks.dns import DnsResolve
from wsdoctor.check import Check, Context, RunOptions
from wsdoctor.cli import main
from wsdoctor.model import CheckResult, Finding, Status, Target
from wsdoctor.probes.host import (
    ClockObservation,
    EphemeralObservation,
    FdObservation,
    SchedulingObservation,
    SocketObservation,
)
from wsdoctor.registry import load_checks
from wsdoctor.runner import run_checks, select_checks

OBS = Path(__file__).resolve().parent.parent / "fixtures" / "observations" / "host"

#: A fixture's name says which probe recorded it: its stem's first word -> the observation's type.
KINDS: dict[str, type[Any]] = {
    "sockets": SocketObservation,
    "fds": FdObservation,
    "ephemeral": EphemeralObservation,
    "loop": SchedulingObservation,
    "clock": ClockObservation,
}


def load_json(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((OBS / name).read_text())
    return data


def load_obs(name: str) -> Any:
    """A recorded fixture as the typed observation its probe returns (strictly: see probes.record)."""
    return KINDS[name.split("-", 1)[0]].from_dict(load_json(name))


def codes(findings: list[Finding]) -> list[tuple[str, str]]:
    return [(f.code, f.severity.value) for f in findings]


# -- analyze() on recorded observations ------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "analyze", "expected"),
    [
        ("sockets-close-wait.json", host.analyze_sockets, [("host.close-wait-leak", "fail")]),
        ("sockets-healthy.json", host.analyze_sockets, []),
        ("sockets-time-wait.json", host.analyze_sockets, [("host.time-wait-pileup", "warn")]),
        ("fds-ok.json", host.analyze_fds, []),
        ("fds-pressure.json", host.analyze_fds, [("host.fd-pressure", "fail")]),
        ("fds-unlimited.json", host.analyze_fds, []),
        ("ephemeral-ok.json", host.analyze_ephemeral, []),
        ("ephemeral-exhausted.json", host.analyze_ephemeral, [("host.ephemeral-ports", "fail")]),
        ("ephemeral-total-pressure.json", host.analyze_ephemeral, [("host.ephemeral-ports", "warn")]),
        ("loop-ok.json", host.analyze_loop_lag, []),
        ("loop-lag.json", host.analyze_loop_lag, [("host.loop-lag", "warn")]),
        ("loop-single-hiccup.json", host.analyze_loop_lag, []),
        ("loop-stall.json", host.analyze_loop_lag, [("host.loop-lag", "fail")]),
        # wsdoctor's own loop late, or a thread sampler held by our GIL: not the host's doing
        ("loop-own-busy.json", host.analyze_loop_lag, []),
        ("loop-thread-gil.json", host.analyze_loop_lag, []),
        ("clock-ok.json", host.analyze_clock, []),
        ("clock-skew.json", host.analyze_clock, [("host.clock-skew", "fail")]),
    ],
)
def test_analyze_recorded(fixture: str, analyze: Any, expected: list[tuple[str, str]]) -> None:
    assert codes(analyze(load_obs(fixture))) == expected


def test_finding_causes() -> None:
    (leak,) = host.analyze_sockets(load_obs("sockets-close-wait.json"))
    assert leak.cause == "connection-handling"
    assert leak.evidence["close_wait"] == 12
    assert leak.evidence["sockets"] == load_json("sockets-close-wait.json")["close_wait_persisting"]
    (fds,) = host.analyze_fds(load_obs("fds-pressure.json"))
    assert fds.cause == "local-host"
    assert "RLIMIT_NOFILE" in fds.message


def test_a_thread_sampler_counts_when_the_kernel_saw_it_waiting() -> None:
    """The GIL fixture with a run-delay that covers the lateness: the host did keep it waiting."""
    obs = load_obs("loop-thread-gil.json")
    late = obs.wakeups.mean_lag_s * obs.wakeups.samples
    assert host.analyze_loop_lag(obs) == []
    (finding,) = host.analyze_loop_lag(replace(obs, run_delay_s=late))
    assert (finding.code, finding.severity) == ("host.loop-lag", Status.WARN)
    assert finding.evidence["sampler"] == "thread"


@pytest.mark.parametrize(
    ("leaked", "expected"),
    [
        (0, []),
        (1, [("host.close-wait-leak", "warn")]),
        (9, [("host.close-wait-leak", "warn")]),
        (10, [("host.close-wait-leak", "fail")]),
    ],
)
def test_close_wait_thresholds(leaked: int, expected: list[tuple[str, str]]) -> None:
    obs = replace(load_obs("sockets-healthy.json"), close_wait_persisting_count=leaked)
    assert codes(host.analyze_sockets(obs)) == expected


@pytest.mark.parametrize(
    ("skew", "expected"),
    [
        (0.9, []),
        (-4.9, []),
        (5.0, [("host.clock-skew", "warn")]),
        (-29.0, [("host.clock-skew", "warn")]),
        (30.0, [("host.clock-skew", "fail")]),
        (-600.0, [("host.clock-skew", "fail")]),
    ],
)
def test_clock_thresholds(skew: float, expected: list[tuple[str, str]]) -> None:
    obs = replace(load_obs("clock-ok.json"), skew_s=skew)
    assert codes(host.analyze_clock(obs)) == expected


def test_proc_limits_parser() -> None:
    from wsdoctor.probes.host import parse_proc_limits

    text = (
        "Limit                     Soft Limit           Hard Limit           Units     \n"
        "Max open files            1024                 524288               files     \n"
    )
    assert parse_proc_limits(text) == (1024, 524288)
    assert parse_proc_limits("Max open files            unlimited            unlimited            files") == (
        None,
        None,
    )


def test_clock_from_headers() -> None:
    from wsdoctor.probes.host import clock_from_headers

    now = 1_800_000_000.0
    obs = clock_from_headers([["Date", email.utils.formatdate(now - 95, usegmt=True)]], now=now)
    assert obs is not None
    assert obs.skew_s == pytest.approx(95.0, abs=0.01)
    assert clock_from_headers([["date", "not a date"]], now=now) is None
    assert clock_from_headers([["server", "x"]], now=now) is None


def test_ipv4_mapped_addresses_match() -> None:
    from wsdoctor.probes.host import normalize_ip

    assert normalize_ip("::ffff:127.0.0.1") == "127.0.0.1"
    assert normalize_ip("2001:DB8::1") == "2001:db8::1"


# -- real sockets on 127.0.0.1 ---------------------------------------------------------------


@contextlib.contextmanager
def listening() -> Iterator[socket.socket]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(128)
    srv.settimeout(5)
    try:
        yield srv
    finally:
        srv.close()


def close_server_side(srv: socket.socket, n: int) -> None:
    """Accept ``n`` queued connections and close them at once: the clients get a FIN."""
    for _ in range(n):
        conn, _addr = srv.accept()
        conn.close()


def wait_for_eof(clients: list[socket.socket], timeout: float = 5.0) -> None:
    """Bounded wait until every client has received the server's FIN (so it sits in CLOSE_WAIT)."""
    deadline = time.monotonic() + timeout
    for c in clients:
        c.setblocking(False)
        while True:
            try:
                if c.recv(1, socket.MSG_PEEK) == b"":
                    break
            except BlockingIOError:
                pass
            assert time.monotonic() < deadline, "the server's FIN never arrived"
            time.sleep(0.01)


def make_ctx_factory(url: str, options: RunOptions | None = None) -> Any:
    target = Target.parse(url)

    def make(results: dict[str, CheckResult]) -> Context:
        return Context(target=target, options=options or RunOptions(), results=dict(results))

    return make


async def run_host_checks(url: str, checks: list[type[Check]], options: RunOptions | None = None) -> dict[str, Any]:
    outcome = await run_checks([DnsResolve, *checks], make_ctx_factory(url, options))
    return {r.check_id: r for r in outcome.results}


CHILD_HOLDS_SOCKETS = textwrap.dedent(
    """
    import socket, sys, time
    port, n = int(sys.argv[1]), int(sys.argv[2])
    held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(n)]
    print("ready", " ".join(str(s.getsockname()[1]) for s in held), flush=True)
    for line in sys.stdin:  # "close": the app finally closes its sockets
        for s in held:
            s.close()
        print("closed", flush=True)
    time.sleep(60)  # bounded: the test kills us long before
    """
)


@contextlib.contextmanager
def child(code: str, *args: str) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().split()
        assert first[:1] == ["ready"], first
        yield proc, first[1:]
    finally:
        proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdin, proc.stdout):
            if stream:
                stream.close()


def tell(proc: subprocess.Popen[str], line: str, expect: str) -> None:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == expect


async def test_close_wait_sockets_are_found_host_wide() -> None:
    with listening() as srv:
        port = srv.getsockname()[1]
        with child(CHILD_HOLDS_SOCKETS, str(port), "12") as (proc, local_ports):
            close_server_side(srv, 12)
            await asyncio.sleep(0.2)  # the FINs cross loopback
            results = await run_host_checks(f"ws://127.0.0.1:{port}/v1/listen", [host.HostSockets])
            r = results["host.sockets"]
            assert r.status is Status.FAIL, r.summary
            (finding,) = r.findings
            assert finding.code == "host.close-wait-leak"
            assert finding.cause == "connection-handling"
            assert finding.evidence["close_wait"] == 12
            assert finding.evidence["scope"] == "host"
            assert r.metrics["close_wait"] == 12
            listed = {s["local"].rsplit(":", 1)[1] for s in finding.evidence["sockets"]}
            assert listed == set(local_ports)
            assert {s["pid"] for s in finding.evidence["sockets"]} == {proc.pid}
            tell(proc, "close", "closed")  # the app closes its sockets: nothing leaks any more
            results = await run_host_checks(f"ws://127.0.0.1:{port}/v1/listen", [host.HostSockets])
            assert results["host.sockets"].status is Status.PASS, results["host.sockets"].summary


async def test_wsdoctor_s_own_sockets_are_not_the_app_s() -> None:
    """CLOSE_WAIT sockets held by this very process (the one running the checks) are ignored."""
    with listening() as srv:
        port = srv.getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
        try:
            close_server_side(srv, len(clients))
            wait_for_eof(clients)
            results = await run_host_checks(f"ws://127.0.0.1:{port}/v1/listen", [host.HostSockets])
            assert results["host.sockets"].status is Status.PASS, results["host.sockets"].summary
        finally:
            for c in clients:
                c.close()


async def test_a_socket_caught_mid_close_is_not_a_leak() -> None:
    with listening() as srv:
        port = srv.getsockname()[1]
        with child(CHILD_HOLDS_SOCKETS, str(port), "1") as (proc, _ports):
            close_server_side(srv, 1)
            await asyncio.sleep(0.2)

            async def close_soon() -> None:  # the app closes it within the sampling gap
                await asyncio.sleep(0.1)
                await asyncio.to_thread(tell, proc, "close", "closed")

            closer = asyncio.create_task(close_soon())
            results = await run_host_checks(f"ws://127.0.0.1:{port}/v1/listen", [host.HostSockets])
            await closer
        r = results["host.sockets"]
        assert r.status is Status.PASS, r.summary
        assert r.evidence["sockets"]["close_wait_first"] == 1
        assert r.evidence["sockets"]["close_wait_persisting_count"] == 0


def test_pid_inspects_another_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with listening() as srv:
        port = srv.getsockname()[1]
        with child(CHILD_HOLDS_SOCKETS, str(port), "11") as (proc, _ports):
            close_server_side(srv, 11)
            time.sleep(0.2)  # the FINs cross loopback
            out = tmp_path / "report.json"
            code = main(
                [
                    *("run", f"ws://127.0.0.1:{port}/v1/listen", "--checks", "host.sockets,host.fds"),
                    *("--pid", str(proc.pid), "--json", str(out)),
                ]
            )
            capsys.readouterr()
            report = json.loads(out.read_text())
    assert code == 1  # 11 >= 10 leaked sockets: a failure
    results = {r["check_id"]: r for r in report["results"]}
    sockets = results["host.sockets"]
    assert sockets["status"] == "fail"
    (finding,) = sockets["findings"]
    assert finding["code"] == "host.close-wait-leak"
    assert finding["evidence"]["scope"] == "pid"
    assert finding["evidence"]["pid"] == proc.pid
    assert finding["evidence"]["close_wait"] == 11
    assert all(s["pid"] == proc.pid for s in finding["evidence"]["sockets"])
    assert f"process {proc.pid}" in finding["message"]
    fds = results["host.fds"]
    assert fds["evidence"]["fds"]["pid"] == proc.pid
    assert fds["evidence"]["fds"]["open_fds"] >= 11
    assert report["summary"]["primary_cause"] == "connection-handling"


def test_pid_validation(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "ws://127.0.0.1:9/", "--checks", "host.fds", "--pid", "999999999"]) == 2
    assert "--pid 999999999: no such process" in capsys.readouterr().err


CHILD_NEAR_FD_LIMIT = textwrap.dedent(
    """
    import os, resource, time
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    held = [open(os.devnull) for _ in range(58)]
    print("ready", flush=True)
    time.sleep(60)
    """
)


async def test_fd_pressure_of_a_limited_process() -> None:
    with child(CHILD_NEAR_FD_LIMIT) as (proc, _):
        results = await run_host_checks("ws://127.0.0.1:9/v1/listen", [host.HostFds], RunOptions(pid=proc.pid))
    r = results["host.fds"]
    assert r.status is Status.FAIL, r.summary
    (finding,) = r.findings
    assert finding.code == "host.fd-pressure"
    assert finding.evidence["soft_limit"] == 64
    assert finding.evidence["open_fds"] >= 58
    assert r.evidence["fds"]["limits_source"] == f"/proc/{proc.pid}/limits"


PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()


async def test_own_process_fds_and_ephemeral_ports_pass() -> None:
    results = await run_host_checks("ws://127.0.0.1:9/v1/listen", [host.HostFds, host.HostEphemeralPorts])
    assert results["host.fds"].status is Status.PASS, results["host.fds"].summary
    eph = results["host.ephemeral-ports"]
    assert eph.status is Status.PASS, eph.summary
    low, high = (int(x) for x in PORT_RANGE.split())
    assert (eph.evidence["ephemeral"]["low"], eph.evidence["ephemeral"]["high"]) == (low, high)


async def _stop_the_sampler(pauses: list[float], gap_s: float = 0.3) -> None:
    """A real fault: find the sampler process this run spawned and stop it (SIGSTOP) for each pause,
    as a hypervisor pause, a cgroup freeze or a swap storm stops an app."""
    import signal

    import psutil

    me = psutil.Process()
    pid = None
    async with asyncio.timeout(5):
        while pid is None:
            pid = next((c.pid for c in me.children() if "schedsampler" in " ".join(c.cmdline())), None)
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)  # the sampler is sampling by now
    for pause in pauses:
        os.kill(pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(pause)
        finally:
            os.kill(pid, signal.SIGCONT)
        await asyncio.sleep(gap_s)


@pytest.mark.parametrize(
    ("pauses", "expected"),
    [([1.2], "fail"), ([0.35, 0.35], "warn"), ([0.35], None)],
    ids=["stopped-1.2s", "stopped-twice", "one-hiccup"],
)
async def test_a_host_that_stops_processes_is_seen(pauses: list[float], expected: str | None) -> None:
    fault = asyncio.create_task(_stop_the_sampler(pauses))
    results = await run_host_checks("ws://127.0.0.1:9/v1/listen", [host.HostLoopLag])
    await fault
    r = results["host.loop-lag"]
    ev = r.evidence["scheduling"]
    assert ev["sampler"] == "process", ev.get("error")
    if expected is None:
        assert r.status is Status.PASS, r.summary
        return
    assert r.status.value == expected, r.summary
    (finding,) = r.findings
    assert finding.code == "host.loop-lag" and finding.cause == "local-host"
    assert finding.evidence["max_lag_s"] >= max(pauses) - 0.06
    if expected == "warn":
        assert finding.evidence["stalls"] == 2
    if ev["run_delay_s"] is not None:  # a stopped process is not runnable: the kernel does not count it
        assert ev["run_delay_s"] < 0.2


async def test_wsdoctors_own_blocked_loop_is_not_a_host_finding() -> None:
    """The false alarm this check used to raise: wsdoctor's own event loop blocked (its own work,
    or a loaded CI runner giving it a fair share) says nothing about whether the host starves an app."""

    async def busy() -> None:
        for _ in range(2):
            await asyncio.sleep(0.3)
            time.sleep(0.45)  # noqa: ASYNC251 - the point: our own loop, blocked

    task = asyncio.create_task(busy())
    results = await run_host_checks("ws://127.0.0.1:9/v1/listen", [host.HostLoopLag])
    await task
    r = results["host.loop-lag"]
    assert r.status is Status.PASS, r.summary
    own = r.evidence["scheduling"]["own_loop"]
    assert own["stalls"] == 2 and own["max_lag_s"] >= 0.4  # it was measured, and it was late
    assert r.evidence["scheduling"]["wakeups"]["max_lag_s"] < host.LOOP_LAG_WARN_S


async def test_the_thread_fallback_does_not_blame_the_host_for_our_gil(monkeypatch: pytest.MonkeyPatch) -> None:
    """No process can be spawned: the sampler runs as a thread beside wsdoctor, where a long C call
    holding the GIL delays it. The kernel's run-delay shows it was never waiting for a CPU."""
    from wsdoctor.probes import host as host_probe

    monkeypatch.setattr(host_probe, "SAMPLER_PATH", "/nonexistent/schedsampler.py")

    async def hold_the_gil() -> None:
        for _ in range(3):
            await asyncio.sleep(0.3)
            await asyncio.to_thread(lambda: sum(range(40_000_000)))  # C loop: holds the GIL throughout

    task = asyncio.create_task(hold_the_gil())
    results = await run_host_checks("ws://127.0.0.1:9/v1/listen", [host.HostLoopLag])
    await task
    r = results["host.loop-lag"]
    ev = r.evidence["scheduling"]
    assert ev["sampler"] == "thread" and ev["error"]
    assert ev["wakeups"]["stalls"] >= 2  # the thread really was late, held by our GIL ...
    if ev["run_delay_s"] is not None:
        assert ev["run_delay_s"] < 0.1  # ... not waiting for a CPU
    assert r.status is Status.PASS, r.summary


async def test_clock_skew_against_the_servers_date_header() -> None:
    """A server whose Date header is 95 s behind: http.upgrade passes (it is 'Deepgram': it carries
    dg-request-id), and host.clock reads that answer's Date."""
    stale = email.utils.formatdate(time.time() - 95, usegmt=True)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            body = b'{"err_code":"INVALID_AUTH","err_msg":"Invalid credentials.","request_id":"r-1"}'
            writer.write(
                b"HTTP/1.1 401 Unauthorized\r\n"
                + f"Date: {stale}\r\n".encode()
                + b"dg-request-id: 7f1c2f2e-0000-4000-8000-000000000001\r\ndg-error: Invalid credentials.\r\n"
                + b"Content-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        available = load_checks().checks
        chosen, _ = select_checks(available, only=["host.clock"])
        outcome = await run_checks(chosen, make_ctx_factory(f"ws://127.0.0.1:{port}/v1/listen"))
    finally:
        server.close()
        await server.wait_closed()
    results = {r.check_id: r for r in outcome.results}
    assert results["http.upgrade"].status is Status.PASS, results["http.upgrade"].summary
    r = results["host.clock"]
    assert r.status is Status.FAIL, r.summary
    (finding,) = r.findings
    assert finding.code == "host.clock-skew"
    assert finding.cause == "local-host"
    skew = finding.evidence["skew_s"]
    assert isinstance(skew, float)
    assert 93 < skew < 98
