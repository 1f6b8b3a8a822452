"""``wsdoctor serve`` under abuse: slow clients cannot exhaust its connections or starve /metrics
and /probe (request-head timeout, connection cap that displaces idle connections first), and a
probe given up on is cancelled -- yet counted against ``max_concurrent_probes`` and in /metrics
until it has really ended.

The slowloris test runs the real ``wsdoctor serve`` process in front of a real mock; the others run
the exporter in a thread of this process (so a test can plug in checks that misbehave on purpose)
and talk to it over real sockets on 127.0.0.1. Every wait is bounded; every server is stopped."""

from __future__ import annotations

import asyncio
import queue
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import psutil
import pytest

from tests.mockproc import mock_process
from tests.test_exporter import FAST_PROFILE, exporter_process, get, parsed, probe_url
from wsdoctor.check import Check, Context
from wsdoctor.exporter import REQUEST_READ_TIMEOUT_S, Exporter, parse_config, start_listening
from wsdoctor.model import CheckResult

# -- checks that misbehave on purpose -------------------------------------------------------------


class Stubborn(Check):
    """Swallows every cancellation until the test releases it: a probe that keeps working after it
    was given up on."""

    id = "test.stubborn"
    title = "ignores cancellation"
    timeout = 120.0
    released: ClassVar[threading.Event] = threading.Event()
    cancels: ClassVar[list[float]] = []  # when each cancellation arrived (monotonic)

    async def run(self, ctx: Context) -> CheckResult:
        while not Stubborn.released.is_set():
            try:
                await asyncio.sleep(0.02)
            except asyncio.CancelledError:
                Stubborn.cancels.append(time.monotonic())
        return self.result(summary="released")


class Sleeper(Check):
    """Sleeps a minute unless cancelled; records when it was."""

    id = "test.sleeper"
    title = "sleeps"
    timeout = 120.0
    cancelled_at: ClassVar[list[float]] = []

    async def run(self, ctx: Context) -> CheckResult:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            Sleeper.cancelled_at.append(time.monotonic())
            raise
        return self.result(summary="slept")


def make_exporter(max_concurrent_probes: int) -> Exporter:
    config = parse_config(
        {
            "max_concurrent_probes": max_concurrent_probes,
            "profiles": {
                "stubborn": {"checks": ["test.stubborn"], "timeout": 30},
                "sleeper": {"checks": ["test.sleeper"], "timeout": 30},
            },
            "targets": {"t": {"url": "ws://127.0.0.1:9/v1/listen"}},
        },
        "test",
    )
    return Exporter(config, {Stubborn.id: Stubborn, Sleeper.id: Sleeper})


@pytest.fixture(autouse=True)
def reset_checks() -> Iterator[None]:
    Stubborn.released.clear()
    Stubborn.cancels.clear()
    Sleeper.cancelled_at.clear()
    yield
    Stubborn.released.set()  # whatever happened, let the exporter's shutdown finish


@contextmanager
def exporter_thread(exporter: Exporter, **limits: Any) -> Iterator[str]:
    """Serve ``exporter`` from a thread with its own event loop; yield its base URL; stop it."""
    loop = asyncio.new_event_loop()
    started: queue.Queue[int | BaseException] = queue.Queue()
    stop = asyncio.Event()

    async def main() -> None:
        try:
            listening = await start_listening(exporter, "127.0.0.1", 0, **limits)
        except BaseException as exc:
            started.put(exc)
            raise
        started.put(listening.address[1])
        try:
            await stop.wait()
        finally:
            await listening.stop()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    got = started.get(timeout=10)
    if isinstance(got, BaseException):
        raise got
    try:
        yield f"http://127.0.0.1:{got}"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(20)
        assert not thread.is_alive(), "the exporter did not stop within 20 s"
        loop.close()


def metric(base: str, name: str, **labels: str) -> float:
    for lab, value in parsed(get(f"{base}/metrics", timeout=5)[2]).get(name, []):
        if all(lab.get(k) == v for k, v in labels.items()):
            return value
    raise AssertionError(f"no sample {name}{labels}")


def wait_for(condition: Any, timeout: float, what: str) -> float:
    """Poll ``condition()`` until true; return how long it took; fail after ``timeout``."""
    t0 = time.monotonic()
    while not condition():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - t0


# -- abandoned probes ---------------------------------------------------------------------------


def test_a_probe_abandoned_at_the_scrape_timeout_counts_until_it_ends() -> None:
    """Scrape timeout 1 s: the answer comes within it (interrupted), the probe is cancelled -- and
    cancelled again while it refuses to stop -- and it holds its slot of max_concurrent_probes=1:
    every probe meanwhile gets 503, /metrics shows it in flight and abandoned. Once it ends, the
    next probe runs."""
    with exporter_thread(make_exporter(max_concurrent_probes=1)) as base:
        header = {"X-Prometheus-Scrape-Timeout-Seconds": "1"}
        t0 = time.monotonic()
        status, _, body = get(probe_url(base, target="t", profile="stubborn"), header, timeout=5)
        answered = time.monotonic() - t0
        assert status == 200 and answered < 1.0, (status, answered, body)
        assert parsed(body)["wsdoctor_probe_interrupted"][0][1] == 1
        assert metric(base, "wsdoctor_exporter_probes_abandoned") == 1
        assert metric(base, "wsdoctor_exporter_probes_in_flight") == 1

        busy_until = time.monotonic() + 2.5
        statuses = []
        while time.monotonic() < busy_until:  # the abandoned probe still runs: no room for another
            statuses.append(get(probe_url(base, target="t", profile="sleeper"), timeout=5)[0])
            time.sleep(0.2)
        assert set(statuses) == {503} and len(statuses) >= 5, statuses
        assert metric(base, "wsdoctor_exporter_probes_abandoned") == 1
        assert metric(base, "wsdoctor_exporter_probes_total", result="busy") == len(statuses)
        # cancelled when abandoned, then again about every ABANDON_RECANCEL_S (1 s)
        assert len(Stubborn.cancels) >= 3, Stubborn.cancels

        Stubborn.released.set()
        gone = wait_for(lambda: metric(base, "wsdoctor_exporter_probes_abandoned") == 0, 3.0, "abandoned probe ends")
        assert gone < 2.0, gone
        assert metric(base, "wsdoctor_exporter_probes_in_flight") == 0
        status, _, body = get(probe_url(base, target="t", profile="stubborn"), timeout=10)
        assert status == 200, body  # the slot is free again


def test_a_probe_whose_client_leaves_is_cancelled_and_counted_until_it_ends() -> None:
    """No scrape-timeout header (profile timeout 30 s); the client hangs up after 0.5 s: the probe is
    cancelled within a second instead of running on for 30 s, and is counted as abandoned."""
    with exporter_thread(make_exporter(max_concurrent_probes=2)) as base:
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(b"GET /probe?target=t&profile=sleeper HTTP/1.1\r\nHost: x\r\n\r\n")
            wait_for(lambda: metric(base, "wsdoctor_exporter_probes_in_flight") == 1, 3.0, "probe starts")
            time.sleep(0.5)
            left = time.monotonic()
        wait_for(lambda: bool(Sleeper.cancelled_at), 2.0, "the probe of a client that left is cancelled")
        assert Sleeper.cancelled_at[0] - left < 1.0
        wait_for(lambda: metric(base, "wsdoctor_exporter_probes_in_flight") == 0, 2.0, "slot freed")
        assert metric(base, "wsdoctor_exporter_probes_total", result="abandoned") == 1

        # a client that leaves while its probe ignores cancellation: counted until it ends
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(b"GET /probe?target=t&profile=stubborn HTTP/1.1\r\nHost: x\r\n\r\n")
            wait_for(lambda: metric(base, "wsdoctor_exporter_probes_in_flight") == 1, 3.0, "probe starts")
        wait_for(lambda: metric(base, "wsdoctor_exporter_probes_abandoned") == 1, 2.0, "counted as abandoned")
        short = {"X-Prometheus-Scrape-Timeout-Seconds": "1"}
        assert get(probe_url(base, target="t", profile="sleeper"), short, timeout=5)[0] == 200  # 1 of 2 slots used
        time.sleep(1.5)
        assert metric(base, "wsdoctor_exporter_probes_abandoned") == 1 and Stubborn.cancels
        Stubborn.released.set()
        wait_for(lambda: metric(base, "wsdoctor_exporter_probes_abandoned") == 0, 3.0, "abandoned probe ends")


# -- connections ----------------------------------------------------------------------------------


def closed_by_server(sock: socket.socket, timeout: float) -> float | None:
    """Seconds until the server closed ``sock`` (EOF or RST), or None if it stayed open."""
    sock.settimeout(0.05)
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if sock.recv(4096) == b"":
                return time.monotonic() - t0
        except TimeoutError:
            continue
        except ConnectionError:
            return time.monotonic() - t0
    return None


def test_request_head_deadline_does_not_reset_on_trickled_bytes() -> None:
    with exporter_thread(make_exporter(2), read_timeout_s=1.0) as base:
        port = int(base.rsplit(":", 1)[1])
        silent = socket.create_connection(("127.0.0.1", port), timeout=5)
        trickle = socket.create_connection(("127.0.0.1", port), timeout=5)
        keepalive = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            keepalive.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            t0 = time.monotonic()
            trickle.sendall(b"GET /metrics HTTP/1.1\r\n")
            while time.monotonic() - t0 < 3.0:  # a header byte every 0.2 s
                try:
                    trickle.sendall(b"X")
                except ConnectionError:
                    break
                time.sleep(0.2)
            trickled_for = time.monotonic() - t0
            assert trickled_for < 2.0, trickled_for  # cut at ~1 s, whatever it kept sending
            assert closed_by_server(silent, 1.0) is not None
            # the keep-alive connection got its answer, then the same deadline for its next request
            keepalive.settimeout(2)
            assert keepalive.recv(65536).startswith(b"HTTP/1.1 200")
            assert closed_by_server(keepalive, 2.0) is not None
        finally:
            for s in (silent, trickle, keepalive):
                s.close()
        assert metric(base, "wsdoctor_exporter_connections_closed_total", reason="read_timeout") >= 3


def test_at_the_cap_idle_connections_make_room_and_busy_ones_do_not() -> None:
    """Cap 4: a fifth connection displaces the oldest idle one (never one running a probe, nor a
    younger idle one); with all four running probes, a fifth is closed at once (over_capacity).
    (When all four are busy /metrics cannot get in either, so the counts are read directly.)"""
    exporter = make_exporter(max_concurrent_probes=4)
    stats = exporter.stats
    with exporter_thread(exporter, max_connections=4, read_timeout_s=30.0) as base:
        port = int(base.rsplit(":", 1)[1])
        socks: list[socket.socket] = []
        try:
            busy = socket.create_connection(("127.0.0.1", port), timeout=5)
            socks.append(busy)
            busy.sendall(b"GET /probe?target=t&profile=stubborn HTTP/1.1\r\nHost: x\r\n\r\n")
            wait_for(lambda: stats.in_flight == 1, 3.0, "probe starts")
            idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
            socks += idle
            wait_for(lambda: stats.connections == 4, 2.0, "1 busy + 3 idle connections: the cap")
            # /metrics needs a connection too: it displaces the oldest idle one, and only that
            assert metric(base, "wsdoctor_exporter_connections") == 4
            assert closed_by_server(idle[0], 2.0) is not None
            assert stats.connections_closed["displaced"] == 1
            assert closed_by_server(busy, 0.3) is None
            assert closed_by_server(idle[1], 0.3) is None

            for running in (2, 3, 4):  # each displaces the oldest idle connection left, then runs a probe
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                socks.append(s)
                s.sendall(b"GET /probe?target=t&profile=stubborn HTTP/1.1\r\nHost: x\r\n\r\n")
                wait_for(lambda n=running: stats.in_flight == n, 3.0, "the probe starts")
            assert stats.connections == 4 and stats.in_flight == 4
            extra = socket.create_connection(("127.0.0.1", port), timeout=5)
            socks.append(extra)
            t = closed_by_server(extra, 2.0)
            assert t is not None and t < 0.5, t
            assert stats.connections_closed["over_capacity"] == 1
            assert stats.connections == 4 and stats.in_flight == 4  # nothing running was touched
            Stubborn.released.set()
            wait_for(lambda: stats.in_flight + stats.abandoned == 0, 5.0, "probes end")
            assert metric(base, "wsdoctor_exporter_connections_closed_total", reason="over_capacity") == 1
        finally:
            for s in socks:
                s.close()


@dataclass
class Attack:
    connects: int = 0
    lifetimes: list[float] = field(default_factory=list)  # of connections the server closed
    still_open: int = 0


async def slowloris(port: int, sockets: int, duration: float, attack: Attack) -> None:
    """``sockets`` clients, each sending a request head one byte a second and reconnecting
    (after 50 ms) whenever the server closes it, for ``duration`` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + duration

    async def attacker() -> None:
        while loop.time() < end:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
            except (OSError, TimeoutError):
                await asyncio.sleep(0.05)
                continue
            attack.connects += 1
            t0 = loop.time()
            closed = False
            try:
                writer.write(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                while loop.time() < end:
                    try:
                        if await asyncio.wait_for(reader.read(1), 1.0) == b"":
                            closed = True
                            break
                    except TimeoutError:
                        writer.write(b"X")  # the next byte of an endless header line
            except ConnectionError:
                closed = True
            finally:
                writer.close()
            if closed:
                attack.lifetimes.append(loop.time() - t0)
                await asyncio.sleep(0.05)
            else:
                attack.still_open += 1

    await asyncio.wait_for(asyncio.gather(*(attacker() for _ in range(sockets))), duration + 10)


def test_slowloris_cannot_starve_metrics_or_probe(tmp_path: Path) -> None:
    """Against the real exporter process and a healthy mock:

    1. cap + 64 slowloris sockets (a header byte a second, reconnecting 50 ms after being cut) for
       12 s: /metrics answers within 1 s every time and /probe of the mock answers 200 within 10 s;
       the process never holds more than cap (+2) connections; the excess displaces idle sockets.
    2. 32 slowloris sockets (under the cap) for 8 s: each is cut by the request-head timeout,
       REQUEST_READ_TIMEOUT_S (5 s) after it connected, however many bytes it trickled."""
    with mock_process() as url:
        config = tmp_path / "wsdoctor.toml"
        config.write_text(f'max_concurrent_probes = 2\n{FAST_PROFILE}\n[targets.healthy]\nurl = "{url}"\n')
        with exporter_process(config) as (base, proc):
            port = int(base.rsplit(":", 1)[1])
            cap = int(metric(base, "wsdoctor_exporter_max_connections"))
            assert 64 <= cap <= 4096, cap
            flood = Attack()
            flood_s = 12.0
            thread = threading.Thread(
                target=lambda: asyncio.run(slowloris(port, cap + 64, flood_s, flood)), daemon=True
            )
            thread.start()
            try:
                time.sleep(2.0)  # let the flood fill the cap
                metrics_s: list[float] = []
                probes: list[tuple[int, float]] = []
                held: list[int] = []
                me = psutil.Process(proc.pid)
                t_end = time.monotonic() + flood_s - 3.0
                while time.monotonic() < t_end:
                    t0 = time.monotonic()
                    status, _, _ = get(f"{base}/metrics", timeout=5)
                    metrics_s.append(time.monotonic() - t0)
                    assert status == 200
                    if len(metrics_s) % 6 == 1:
                        t0 = time.monotonic()
                        status, _, body = get(probe_url(base, target="healthy", profile="upgrade"), timeout=15)
                        probes.append((status, time.monotonic() - t0))
                        assert status == 200 and parsed(body)["wsdoctor_probe_success"][0][1] == 1, body
                    held.append(
                        sum(1 for c in me.net_connections(kind="tcp") if c.laddr and c.laddr.port == port and c.raddr)
                    )
                    time.sleep(0.25)
            finally:
                thread.join(flood_s + 15)
            assert not thread.is_alive()
            after_flood = {
                lab["reason"]: v
                for lab, v in parsed(get(f"{base}/metrics")[2])["wsdoctor_exporter_connections_closed_total"]
            }

            trickle = Attack()
            asyncio.run(slowloris(port, 32, REQUEST_READ_TIMEOUT_S + 3.0, trickle))
            after_trickle = {
                lab["reason"]: v
                for lab, v in parsed(get(f"{base}/metrics")[2])["wsdoctor_exporter_connections_closed_total"]
            }

    print(  # the numbers, for -s
        f"\nflood: {cap + 64} sockets over cap {cap}: {flood.connects} connects, "
        f"{after_flood['displaced']:.0f} displaced; /metrics max {max(metrics_s):.3f} s over "
        f"{len(metrics_s)} scrapes; probes {probes}; connections held max {max(held)}\n"
        f"trickle: 32 sockets, cut after {min(trickle.lifetimes):.2f}-{max(trickle.lifetimes):.2f} s; "
        f"read_timeout closes {after_trickle['read_timeout'] - after_flood['read_timeout']:.0f}"
    )
    assert len(metrics_s) >= 10 and max(metrics_s) < 1.0, metrics_s
    assert len(probes) >= 2 and all(s == 200 and t < 10 for s, t in probes), probes
    assert max(held) <= cap + 2, (max(held), cap)  # +2: a connection being displaced, and ours
    assert flood.connects > cap + 64 and after_flood["displaced"] > 0, (flood, after_flood)
    assert max(flood.lifetimes) < REQUEST_READ_TIMEOUT_S + 1.0, max(flood.lifetimes)

    assert len(trickle.lifetimes) >= 32, trickle
    assert all(REQUEST_READ_TIMEOUT_S - 0.5 < t < REQUEST_READ_TIMEOUT_S + 1.0 for t in trickle.lifetimes), trickle
    assert after_trickle["read_timeout"] - after_flood["read_timeout"] >= 32
    assert after_trickle["displaced"] == after_flood["displaced"]  # under the cap: nothing displaced
