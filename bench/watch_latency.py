"""Benchmark: what ``wsdoctor watch`` adds to many concurrent real-time streams (latency, CPU, memory).

Target: with 200 concurrent real-time streams through ONE watch process, the median added one-way
latency per frame stays under 1 ms.

How. Three kinds of process, all on 127.0.0.1 and started by this script (it re-invokes itself in
hidden modes): an upstream WebSocket server (aiohttp) that answers every binary frame at once with a
short text frame carrying the frame's first 8 bytes (hex), and a text ``{"type":"CloseStream"}`` by
closing with 1000; client load generators (asyncio + websockets, ``--client-procs`` processes, the
streams split between them) whose streams each send one ``--chunk-ms`` chunk of 16 kHz linear16
(3200 bytes at 100 ms) every ``--chunk-ms``, real-time pace, with a sequence number in the frame's
first 8 bytes; and ``wsdoctor watch --listen 127.0.0.1:0 --upstream ws://127.0.0.1:UP --quiet``.

The same streams run twice: DIRECT to the upstream, then VIA the watch. A frame's round trip is
``time.perf_counter_ns()`` at its send to ``time.perf_counter_ns()`` at the receipt of its echo; the
streams' send times are spread evenly over one chunk interval, and frames due in the first
``--warmup`` seconds are not counted. The added latency is ``via - direct`` at the same
percentile; an echo crosses the relay twice (frame in, echo out), so half of it is the one-way
cost per frame. The watch's CPU is psutil's user+system time over the measured window (from the
end of the warm-up to the last send), its memory the peak of RSS sampled every 0.25 s while
streaming and its VmHWM as last read before it exited. At the end the watch gets SIGINT; it must
exit by itself and write its JSON report, whose connections and counted frames are printed. PASS
also needs every frame echoed and every connection in the report.

Noise is shown, not hidden: per mode, the client's own send lag (how late a frame went out against
its schedule: a p99 of more than a few ms means the load generator, not the relay, is the
bottleneck), each process's CPU, and the machine's busy time, the part of it no process of this
benchmark used, and the hypervisor's steal. Every wait is bounded, and every process is stopped in a
``finally`` (Ctrl-C included: the children run in their own session; the upstream also exits when
its stdin -- the pipe from this script -- closes, a client before it is told to start).

Usage: python bench/watch_latency.py [--streams 200] [--seconds 20] [--chunk-ms 100] [--warmup 2]
[--client-procs 2] [--short]. The figure the README quotes is printed last.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import json
import math
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"  # every socket this benchmark opens is on loopback
SAMPLE_RATE = 16000
BYTES_PER_SAMPLE = 2  # linear16
PATH = "/v1/listen?encoding=linear16&sample_rate=16000&channels=1"
TARGET_ONE_WAY_MS = 1.0
STARTUP_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 60.0  # SIGINT to exit: the watch judges every connection and writes its report
CLOSE_STREAM = json.dumps({"type": "CloseStream"})


# --- helpers shared by all modes ---------------------------------------------------------------------


def _stdin_eof(loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[str]) -> None:
    """Feed stdin's lines to ``lines`` from a daemon thread; '' at EOF (the parent is gone)."""

    def read() -> None:
        while True:
            line = sys.stdin.readline()
            loop.call_soon_threadsafe(lines.put_nowait, line)
            if not line:
                return

    threading.Thread(target=read, daemon=True).start()


def _pct(ordered: Sequence[int], p: float) -> float:
    """Nearest-rank percentile of an ascending sequence (ns), as ms."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1] / 1e6


# --- hidden mode 1: the upstream ---------------------------------------------------------------------


async def _serve_upstream() -> None:
    from aiohttp import WSMsgType, web

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await ws.send_str(msg.data[:8].hex())
            elif msg.type == WSMsgType.TEXT:
                with contextlib.suppress(ValueError):
                    if json.loads(msg.data).get("type") == "CloseStream":
                        await ws.close(code=1000)
                        break
        return ws

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0, backlog=2048)
    await site.start()
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str] = asyncio.Queue()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lines.put_nowait, "")
    _stdin_eof(loop, lines)
    port = runner.addresses[0][1]
    print(f"upstream listening {port}", flush=True)
    try:
        while await lines.get():
            pass
    finally:
        await runner.cleanup()


# --- hidden mode 2: a client load generator ----------------------------------------------------------


@dataclass
class _StreamPlan:
    url: str
    index: int  # global stream number: its phase in the chunk interval
    streams: int  # all streams, over every client process
    chunk_s: float
    frame_bytes: int
    frames: int
    warmup_s: float


@dataclass
class _ClientTally:
    rtts: array.array[int] = field(default_factory=lambda: array.array("q"))
    lags: array.array[int] = field(default_factory=lambda: array.array("q"))
    sent: int = 0
    measured_sent: int = 0
    lost: int = 0
    clean_closes: int = 0
    errors: list[str] = field(default_factory=list)


async def _stream(plan: _StreamPlan, ws: ClientConnection, t_start: float, tally: _ClientTally) -> None:
    phase = plan.index / plan.streams * plan.chunk_s
    first_measured = max(0, math.ceil((plan.warmup_s - phase) / plan.chunk_s - 1e-9))
    sent_at: dict[int, int] = {}
    payload = bytearray(os.urandom(plan.frame_bytes))
    all_sent, all_echoed = asyncio.Event(), asyncio.Event()

    async def receive() -> None:
        async for msg in ws:
            now = time.perf_counter_ns()
            seq = int(msg, 16)
            t = sent_at.pop(seq, None)
            if t is not None and seq >= first_measured:
                tally.rtts.append(now - t)
            if all_sent.is_set() and not sent_at:
                all_echoed.set()

    receiver = asyncio.create_task(receive())
    try:
        for k in range(plan.frames):
            due = t_start + phase + k * plan.chunk_s
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if k >= first_measured:
                tally.lags.append(int((time.monotonic() - due) * 1e9))
                tally.measured_sent += 1
            payload[:8] = k.to_bytes(8, "big")
            sent_at[k] = time.perf_counter_ns()
            await ws.send(bytes(payload))
            tally.sent += 1
        all_sent.set()
        if sent_at:  # the last echoes, or the receiver's end (the connection closed), bounded
            echoed = asyncio.create_task(all_echoed.wait())
            await asyncio.wait({echoed, receiver}, timeout=DRAIN_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
            echoed.cancel()
        tally.lost += sum(1 for seq in sent_at if seq >= first_measured)
        await ws.send(CLOSE_STREAM)
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            await receiver
        if ws.close_code == 1000:
            tally.clean_closes += 1
    except Exception as exc:
        tally.errors.append(f"stream {plan.index}: {type(exc).__name__}: {exc}"[:200])
    finally:
        receiver.cancel()
        with contextlib.suppress(BaseException):
            await receiver
        with contextlib.suppress(Exception):
            async with asyncio.timeout(DRAIN_TIMEOUT_S):
                await ws.close()


def _serve_client(args: argparse.Namespace) -> None:
    """The load generator's process: its samples go to ``--out`` files, its tally to stdout."""
    tally, summary = asyncio.run(_client_streams(args))
    Path(args.out).write_bytes(tally.rtts.tobytes())
    Path(args.out + ".lag").write_bytes(tally.lags.tobytes())
    print("done " + json.dumps(summary), flush=True)


async def _client_streams(args: argparse.Namespace) -> tuple[_ClientTally, dict[str, object]]:
    from websockets.asyncio.client import ClientConnection, connect

    chunk_s = args.chunk_ms / 1000
    plans = [
        _StreamPlan(
            url=args.serve_client,
            index=i,
            streams=args.streams,
            chunk_s=chunk_s,
            frame_bytes=int(SAMPLE_RATE * BYTES_PER_SAMPLE * chunk_s),
            frames=round(args.seconds / chunk_s),
            warmup_s=args.warmup,
        )
        for i in range(args.first, args.streams, args.step)
    ]
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str] = asyncio.Queue()
    _stdin_eof(loop, lines)
    tally = _ClientTally()

    async def open_one(plan: _StreamPlan) -> ClientConnection:
        return await connect(
            plan.url,
            compression=None,  # the relay strips extensions anyway; both modes frame alike
            ping_interval=None,
            open_timeout=CONNECT_TIMEOUT_S,
            close_timeout=DRAIN_TIMEOUT_S,
            max_queue=None,
            additional_headers={"Authorization": "Token wsdoctor-bench-key"},
        )

    async with asyncio.timeout(CONNECT_TIMEOUT_S + 5):
        conns = await asyncio.gather(*(open_one(p) for p in plans), return_exceptions=True)
    failed = [c for c in conns if isinstance(c, BaseException)]
    ready = [(p, c) for p, c in zip(plans, conns, strict=True) if isinstance(c, ClientConnection)]
    print(f"ready {len(ready)} {len(failed)}", flush=True)
    try:
        async with asyncio.timeout(STARTUP_TIMEOUT_S + CONNECT_TIMEOUT_S):
            go = await lines.get()
        if not go.startswith("go "):
            raise SystemExit(f"no go from the benchmark: {go!r}")
        t_start = float(go.split()[1])
        cpu0 = time.process_time()
        async with asyncio.timeout(args.seconds + 4 * DRAIN_TIMEOUT_S + 10):
            await asyncio.gather(*(_stream(p, c, t_start, tally) for p, c in ready))
        cpu_s = time.process_time() - cpu0
    finally:
        for _, c in ready:
            with contextlib.suppress(Exception):
                c.transport.abort()
    summary: dict[str, object] = {
        "streams": len(ready),
        "connect_failed": len(failed) + (len(plans) - len(ready) - len(failed)),
        "sent": tally.sent,
        "measured_sent": tally.measured_sent,
        "lost": tally.lost,
        "clean_closes": tally.clean_closes,
        "errors": tally.errors[:5],
        "error_count": len(tally.errors),
        "cpu_s": cpu_s,
    }
    return tally, summary


# --- the orchestrator --------------------------------------------------------------------------------


class _Child:
    """A subprocess in its own session; its stdout read line by line, stderr kept (tail) for errors."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.name = name
        self.proc = proc
        self.stderr: list[str] = []
        self._drain = asyncio.create_task(self._keep_stderr())

    @classmethod
    async def start(cls, name: str, argv: Sequence[str], *, stdout_devnull: bool = False) -> _Child:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL if stdout_devnull else asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,  # a terminal's Ctrl-C reaches this script only; it stops the children
        )
        return cls(name, proc)

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def _keep_stderr(self) -> None:
        assert self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.stderr.append(line.decode("utf-8", "replace").rstrip())
            del self.stderr[:-200]

    async def stderr_line(self, needle: str, timeout: float) -> str:
        async with asyncio.timeout(timeout):
            while True:
                for line in self.stderr:
                    if needle in line:
                        return line
                if self.proc.returncode is not None:
                    raise RuntimeError(f"{self.name} exited {self.proc.returncode}: {self.tail()}")
                await asyncio.sleep(0.02)

    async def line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            raw = await self.proc.stdout.readline()
        if not raw:
            await self.wait(5)
            raise RuntimeError(f"{self.name} exited {self.proc.returncode}: {self.tail()}")
        return raw.decode().rstrip("\n")

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")

    async def wait(self, timeout: float) -> int | None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.proc.wait()
        return self.proc.returncode

    def tail(self) -> str:
        return " | ".join(self.stderr[-5:]) or "(no stderr)"

    async def stop(self, sig: int = signal.SIGTERM) -> None:
        """Signal, wait 10 s, then SIGKILL; always reaps."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
            if await self.wait(10) is None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.wait(10)
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self._drain.cancel()
        with contextlib.suppress(BaseException):
            await self._drain


def _cpu_s(pid: int, *, kernel_only: bool = False) -> float:
    """The process's user+system CPU seconds (``kernel_only``: system only)."""
    with contextlib.suppress(psutil.Error):
        t = psutil.Process(pid).cpu_times()
        return t.system if kernel_only else t.user + t.system
    return math.nan


def _rss(pid: int) -> int:
    with contextlib.suppress(psutil.Error):
        return psutil.Process(pid).memory_info().rss
    return 0


def _busy(t: object) -> float:
    """CPU seconds all cores spent running anything, from ``psutil.cpu_times()``."""
    return sum(float(getattr(t, f, 0.0)) for f in ("user", "nice", "system", "irq", "softirq"))


def _vm_hwm_kb(pid: int) -> int | None:
    with contextlib.suppress(OSError, ValueError, StopIteration), open(f"/proc/{pid}/status") as status:
        return int(next(line for line in status if line.startswith("VmHWM:")).split()[1])
    return None


@dataclass
class _ModeResult:
    name: str
    rtts: list[int]
    lags: list[int]
    sent: int  # every frame, the warm-up's included
    measured_sent: int
    lost: int
    clean_closes: int
    connect_failed: int
    errors: list[str]
    error_count: int
    window_s: float
    cpu_s: dict[str, float]  # process role -> CPU seconds over the window
    machine_busy_s: float  # all cores, every process, over the window
    machine_steal_s: float  # taken by the hypervisor
    watch_system_s: float = 0.0  # the watch's kernel CPU over the window (loopback TCP is charged to senders)
    watch_peak_rss: int = 0


async def _run_mode(
    name: str, url: str, args: argparse.Namespace, tmp: Path, watched: dict[str, int], children: list[_Child]
) -> _ModeResult:
    """One mode: ``--client-procs`` load generators against ``url``; ``watched``: role -> pid to meter."""
    clients: list[_Child] = []
    for i in range(args.client_procs):
        argv = [
            sys.executable,
            __file__,
            "--serve-client",
            url,
            "--first",
            str(i),
            "--step",
            str(args.client_procs),
            "--streams",
            str(args.streams),
            "--seconds",
            str(args.seconds),
            "--chunk-ms",
            str(args.chunk_ms),
            "--warmup",
            str(args.warmup),
            "--out",
            str(tmp / f"{name}-{i}.rtt"),
        ]
        child = await _Child.start(f"{name} client {i}", argv)
        children.append(child)
        clients.append(child)
    try:
        for c in clients:
            line = await c.line(CONNECT_TIMEOUT_S + STARTUP_TIMEOUT_S)
            if not line.startswith("ready "):
                raise RuntimeError(f"{c.name}: {line!r} {c.tail()}")
        t_start = time.monotonic() + 0.5
        for c in clients:
            c.send(f"go {t_start!r}")
        metered = {**watched, **{f"client{i}": c.pid for i, c in enumerate(clients)}}
        await asyncio.sleep(max(0.0, t_start + args.warmup - time.monotonic()))
        w0 = time.monotonic()
        cpu0 = {role: _cpu_s(pid) for role, pid in metered.items()}
        watch_sys0 = _cpu_s(watched["watch"], kernel_only=True) if "watch" in watched else 0.0
        sys0 = psutil.cpu_times()
        peak = 0
        end = t_start + args.seconds
        while (left := end - time.monotonic()) > 0:
            if "watch" in watched:
                peak = max(peak, _rss(watched["watch"]))
            await asyncio.sleep(min(0.25, left))
        cpu1 = {role: _cpu_s(pid) for role, pid in metered.items()}
        watch_sys1 = _cpu_s(watched["watch"], kernel_only=True) if "watch" in watched else 0.0
        sys1 = psutil.cpu_times()
        window = time.monotonic() - w0
        summaries = []
        for c in clients:
            line = await c.line(4 * DRAIN_TIMEOUT_S + 30)
            if not line.startswith("done "):
                raise RuntimeError(f"{c.name}: {line!r} {c.tail()}")
            summaries.append(json.loads(line[5:]))
            await c.wait(10)
    finally:
        for c in clients:
            await c.stop()
    rtts: list[int] = []
    lags: list[int] = []
    for i in range(args.client_procs):
        for dest, suffix in ((rtts, ""), (lags, ".lag")):
            arr = array.array("q")
            arr.frombytes((tmp / f"{name}-{i}.rtt{suffix}").read_bytes())
            dest.extend(arr)
    rtts.sort()
    lags.sort()
    return _ModeResult(
        name=name,
        rtts=rtts,
        lags=lags,
        sent=sum(s["sent"] for s in summaries),
        measured_sent=sum(s["measured_sent"] for s in summaries),
        lost=sum(s["lost"] for s in summaries),
        clean_closes=sum(s["clean_closes"] for s in summaries),
        connect_failed=sum(s["connect_failed"] for s in summaries),
        errors=[e for s in summaries for e in s["errors"]][:5],
        error_count=sum(s["error_count"] for s in summaries),
        window_s=window,
        cpu_s={role: cpu1[role] - cpu0[role] for role in metered},
        machine_busy_s=_busy(sys1) - _busy(sys0),
        machine_steal_s=getattr(sys1, "steal", 0.0) - getattr(sys0, "steal", 0.0),
        watch_system_s=watch_sys1 - watch_sys0,
        watch_peak_rss=peak,
    )


def _recorded(doc: dict[str, object]) -> tuple[int, int]:
    """(the app's audio frames, the upstream's text frames) the watch's JSON report counted."""
    audio = texts = 0
    results = doc.get("results")
    for result in results if isinstance(results, list) else []:
        conn = result.get("evidence", {}).get("connection", {}) if isinstance(result, dict) else {}
        if isinstance(conn, dict):
            audio += int(conn.get("client_stats", {}).get("audio_frames", 0))
            texts += int(conn.get("upstream_stats", {}).get("text", 0))
    return audio, texts


def _mode_line(r: _ModeResult, streams: int) -> str:
    cpu = ", ".join(f"{role} {100 * s / r.window_s:.0f}%" for role, s in r.cpu_s.items())
    extra = f"; {r.connect_failed} connects failed" if r.connect_failed else ""
    extra += f"; {r.error_count} stream errors, e.g. {r.errors[0]}" if r.error_count else ""
    others = max(0.0, r.machine_busy_s - sum(r.cpu_s.values()))
    steal = 100 * r.machine_steal_s / r.window_s
    machine = (
        f"machine busy {100 * r.machine_busy_s / r.window_s:.0f}% of {100 * (os.cpu_count() or 1)}%, "
        f"{100 * others / r.window_s:.0f}% of it not this benchmark's, steal {steal:.0f}%"
    )
    return (
        f"{r.name:9} {len(r.rtts)} frames measured ({r.lost} lost, {r.clean_closes}/{streams} closed 1000){extra}; "
        f"RTT p50 {_pct(r.rtts, 50):.3f} ms, p99 {_pct(r.rtts, 99):.3f} ms, max {_pct(r.rtts, 100):.3f} ms; "
        f"client send lag p99 {_pct(r.lags, 99):.3f} ms; CPU of one core: {cpu}; {machine}"
    )


async def _bench(args: argparse.Namespace) -> int:
    children: list[_Child] = []
    with tempfile.TemporaryDirectory(prefix="wsdoctor-watch-latency-") as tmp_s:
        tmp = Path(tmp_s)
        try:
            upstream = await _Child.start("upstream", [sys.executable, __file__, "--serve-upstream"])
            children.append(upstream)
            line = await upstream.line(STARTUP_TIMEOUT_S)
            up_port = int(line.rsplit(None, 1)[1])
            up_url = f"ws://{HOST}:{up_port}"
            direct = await _run_mode("direct", up_url + PATH, args, tmp, {"upstream": upstream.pid}, children)

            report = tmp / "watch.json"
            watch_argv = [sys.executable, "-m", "wsdoctor", "watch", "--listen", f"{HOST}:0", "--upstream", up_url]
            watch_argv += ["--quiet", "--duration", str(args.seconds + 600), "--json", str(report)]
            watch = await _Child.start("watch", watch_argv, stdout_devnull=True)
            children.append(watch)
            ready = await watch.stderr_line("listening on ws://", STARTUP_TIMEOUT_S)
            watch_port = int(ready.split("listening on ws://", 1)[1].split(",", 1)[0].rsplit(":", 1)[1])
            rss_idle = _rss(watch.pid)
            via = await _run_mode(
                "via watch",
                f"ws://{HOST}:{watch_port}{PATH}",
                args,
                tmp,
                {"upstream": upstream.pid, "watch": watch.pid},
                children,
            )
            hwm_kb = _vm_hwm_kb(watch.pid)
            t_sig = time.monotonic()
            watch.proc.send_signal(signal.SIGINT)
            async with asyncio.timeout(STOP_TIMEOUT_S):
                while watch.proc.returncode is None:
                    hwm_kb = _vm_hwm_kb(watch.pid) or hwm_kb
                    await asyncio.sleep(0.05)
            stop_s = time.monotonic() - t_sig
            code = watch.proc.returncode
            connections, recorded = None, (0, 0)
            if report.exists():
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    doc = json.loads(report.read_text())
                    connections = doc["environment"]["watch"]["connections"]
                    recorded = _recorded(doc)
        finally:
            for child in reversed(children):
                await child.stop()

    streams, chunk_ms = args.streams, args.chunk_ms
    frame_bytes = int(SAMPLE_RATE * BYTES_PER_SAMPLE * chunk_ms / 1000)
    print(
        f"{streams} streams x {1000 / chunk_ms:g} frames/s ({frame_bytes}-byte binary frames, {chunk_ms:g} ms of "
        f"16 kHz linear16) for {args.seconds:g} s, first {args.warmup:g} s dropped; {args.client_procs} client "
        f"process(es); {os.cpu_count()} CPUs"
    )
    print(_mode_line(direct, streams))
    print(_mode_line(via, streams))
    added = {p: _pct(via.rtts, p) - _pct(direct.rtts, p) for p in (50, 99)}
    print(
        f"added by the watch (via - direct): RTT p50 {added[50]:+.3f} ms, p99 {added[99]:+.3f} ms; a round trip "
        f"crosses the relay twice, so one way per frame: p50 {added[50] / 2:+.3f} ms, p99 {added[99] / 2:+.3f} ms"
    )
    cpu = via.cpu_s["watch"]
    audio_s = streams * via.window_s
    print(
        f"watch CPU: {cpu:.2f} s user+system ({via.watch_system_s:.2f} s system) over {via.window_s:.1f} s = "
        f"{100 * cpu / via.window_s:.1f}% of one core; {1000 * cpu / audio_s:.3f} ms CPU per stream per second of "
        f"audio ({1e6 * cpu / max(1, 2 * streams * via.window_s * 1000 / chunk_ms):.0f} us per relayed frame)"
    )
    hwm = f"{hwm_kb / 1024:.1f} MB" if hwm_kb is not None else "unknown"
    print(
        f"watch memory: RSS {rss_idle / 2**20:.1f} MB idle, peak {via.watch_peak_rss / 2**20:.1f} MB while streaming "
        f"(sampled every 0.25 s); VmHWM {hwm} (last read before exit, report writing included)"
    )
    print(
        f"watch end: SIGINT -> exit {code} in {stop_s:.1f} s; JSON report "
        + (
            f"holds {connections} connections ({streams} streams), {recorded[0]} audio frames (clients sent "
            f"{via.sent}) and {recorded[1]} upstream text frames (echoes sent: {via.sent})"
            if connections is not None
            else "MISSING or unreadable"
        )
    )
    faithful = not via.lost and not via.error_count and connections == streams and code in (0, 1)
    ok = added[50] / 2 < TARGET_ONE_WAY_MS and faithful
    print(
        f"target: p50 added one-way latency < {TARGET_ONE_WAY_MS:g} ms: {'PASS' if ok else 'FAIL'} "
        f"({added[50] / 2:.3f} ms at {streams} streams"
        + ("" if faithful else "; the watch lost frames or connections, or its report is missing")
        + ")"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--streams", type=int, default=200, help="concurrent streams (default 200)")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds each stream sends (default 20)")
    parser.add_argument("--chunk-ms", type=float, default=100.0, help="ms of audio per frame and between frames")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of samples dropped at the start")
    parser.add_argument("--client-procs", type=int, default=2, help="load-generator processes (default 2)")
    parser.add_argument("--short", action="store_true", help="CI: 40 streams for 6 s")
    # hidden: the script re-invokes itself as the upstream server and as a load generator
    parser.add_argument("--serve-upstream", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-client", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--step", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.short:
        args.streams, args.seconds = 40, 6.0
    if args.serve_upstream:
        asyncio.run(_serve_upstream())
        return 0
    if args.serve_client:
        _serve_client(args)
        return 0
    if args.streams < 1 or args.seconds <= args.warmup or args.chunk_ms <= 0 or args.client_procs < 1:
        parser.error("need --streams >= 1, --seconds > --warmup, --chunk-ms > 0, --client-procs >= 1")
    try:
        return asyncio.run(_bench(args))
    except KeyboardInterrupt:
        print("interrupted; every process this benchmark started was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
