"""Probes of the local host: sockets to the target, file descriptors, ephemeral ports, loop lag, clock.

Theory of operation. Nothing here opens a connection; it reads the kernel's tables through psutil
(``/proc`` on Linux) and records counts, never judgements:

- :func:`sample_sockets` takes two snapshots of the TCP table :data:`SOCKET_SAMPLE_GAP_S` apart and
  keeps, per state, the sockets whose remote end is the target (any of its addresses, its port).
  A CLOSE_WAIT socket present in *both* snapshots is "persisting": the peer closed it and the owning
  process has not called ``close()`` for at least that long, which is a leak rather than a socket
  caught mid-close. Without a pid the scan is host-wide (every process; TIME_WAIT sockets belong to
  the kernel and never have a pid anyway) except wsdoctor's own probe connections; with ``--pid``
  CLOSE_WAIT/ESTABLISHED are counted for that process only, TIME_WAIT stays host-wide.
- :func:`read_fds` reads open descriptors and ``RLIMIT_NOFILE`` of our process or of ``--pid``
  (psutil, falling back to ``/proc/PID/limits``).
- :func:`read_ephemeral` reads ``/proc/sys/net/ipv4/ip_local_port_range`` and counts TCP sockets
  using a local port in that range, in total and towards the target.
- :func:`sample_scheduling` runs :mod:`wsdoctor.probes.schedsampler` -- a separate process that
  only sleeps -- for a bounded window and records how late the host wakes it, with the kernel's
  run-delay, hypervisor steal, cgroup CPU throttling and load beside it, and wsdoctor's own loop lag
  (:func:`sample_loop_lag`) as context: only the first says whether the *host* starves processes.
- :func:`clock_from_headers` compares an HTTP ``Date`` header (already received by http.upgrade)
  with the local wall clock.

psutil is imported inside the functions: it is a dependency, but only ``wsdoctor run`` needs it.
Every psutil call runs in a worker thread under a deadline, so a slow ``/proc`` never blocks the
event loop other checks are using.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from wsdoctor.record import Record

__all__ = [
    "SOCKET_SAMPLE_GAP_S",
    "ClockObservation",
    "EphemeralObservation",
    "FdObservation",
    "LoopLagObservation",
    "ProbeUnavailableError",
    "SchedulingObservation",
    "SocketEntry",
    "SocketObservation",
    "TcpState",
    "clock_from_headers",
    "normalize_ip",
    "parse_proc_limits",
    "read_ephemeral",
    "read_fds",
    "sample_loop_lag",
    "sample_scheduling",
    "sample_sockets",
]

#: Gap between the two socket snapshots: long enough that a socket merely caught between the peer's
#: FIN and the app's close() is gone, short enough not to slow the run.
SOCKET_SAMPLE_GAP_S = 0.5
#: Deadline of one psutil call (a host with 100k sockets takes a while to list).
PSUTIL_DEADLINE_S = 5.0
PORT_RANGE_PATH = "/proc/sys/net/ipv4/ip_local_port_range"
#: How many individual sockets an observation keeps (counts are always exact).
MAX_LISTED = 20


class ProbeUnavailableError(Exception):
    """The probe cannot run here (no such process, permission denied, not Linux): a skip reason."""


def normalize_ip(addr: str) -> str:
    """``::ffff:127.0.0.1`` -> ``127.0.0.1``; IPv6 compressed; anything unparsable unchanged."""
    try:
        ip = ipaddress.ip_address(addr.split("%", 1)[0])
    except ValueError:
        return addr
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


#: A TCP socket's state as psutil names it (its ``CONN_*`` constants: Linux, macOS, BSD, Windows'
#: ``DELETE_TCB``, Solaris' ``IDLE``/``BOUND``). ``NONE`` is psutil's own "no state".
TcpState = Literal[
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
    "NONE",
    "DELETE_TCB",
    "IDLE",
    "BOUND",
]
_TCP_STATES: dict[str, TcpState] = {state: state for state in get_args(TcpState)}


def _tcp_state(status: object) -> TcpState:
    """psutil's state string as a :data:`TcpState`; anything it might add later reads as ``NONE``."""
    return _TCP_STATES.get(str(status), "NONE")


@dataclass(frozen=True, slots=True)
class SocketEntry(Record):
    local: str
    remote: str
    status: TcpState
    pid: int | None


@dataclass(frozen=True, slots=True)
class SocketObservation(Record):
    scope: Literal["host", "pid"]  # every process, or the ``--pid`` one
    pid: int | None
    process_name: str | None
    addresses: tuple[str, ...]
    port: int
    # TCP state -> sockets to the target (second snapshot); str keys: JSON object keys are strings
    counts: Mapping[str, int]
    close_wait_first: int  # CLOSE_WAIT sockets to the target in the first snapshot
    close_wait_persisting: tuple[SocketEntry, ...]  # in both snapshots (listed up to MAX_LISTED)
    close_wait_persisting_count: int
    time_wait: int
    gap_s: float


@dataclass(frozen=True, slots=True)
class FdObservation(Record):
    pid: int
    scope: Literal["self", "pid"]  # wsdoctor's own process, or the ``--pid`` one
    process_name: str | None
    open_fds: int
    soft_limit: int | None  # None = unlimited
    hard_limit: int | None
    limits_source: str  # "resource" | "psutil" | "/proc/PID/limits" (with the pid: not a closed set)


@dataclass(frozen=True, slots=True)
class EphemeralObservation(Record):
    _DERIVED = ("size",)  # written for readers, recomputed

    low: int
    high: int
    in_use_total: int  # TCP sockets (not LISTEN) whose local port is in the range
    in_use_to_target: int  # ... of which go to the target address and port
    addresses: tuple[str, ...]
    port: int

    @property
    def size(self) -> int:
        return self.high - self.low + 1


@dataclass(frozen=True, slots=True)
class LoopLagObservation(Record):
    interval_s: float
    window_s: float
    samples: int
    max_lag_s: float
    mean_lag_s: float
    late_samples: int  # wake-ups later than 50 ms
    stalls: int = 0  # wake-ups later than ``stall_s`` (the check's warn threshold)
    stall_s: float = 0.2
    lags_s: tuple[float, ...] = field(default=())  # the largest few, for the report


@dataclass(frozen=True, slots=True)
class ClockObservation(Record):
    server_date: str
    server_epoch_s: float
    local_epoch_s: float
    skew_s: float  # local minus server: positive = our clock is ahead
    source: str  # the check whose answer carried the Date header


async def _in_thread(fn: Callable[[], Any]) -> Any:
    try:
        return await asyncio.wait_for(asyncio.to_thread(fn), PSUTIL_DEADLINE_S)
    except TimeoutError:
        raise ProbeUnavailableError(f"reading the kernel's tables took longer than {PSUTIL_DEADLINE_S:g} s") from None


def _process(pid: int) -> Any:
    import psutil

    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        raise ProbeUnavailableError(f"process {pid} does not exist (it may have exited)") from None


def _psutil_errors() -> tuple[type[BaseException], ...]:
    import psutil

    return (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess)


def _explain_psutil_error(exc: BaseException, pid: int | None) -> ProbeUnavailableError:
    import psutil

    if isinstance(exc, psutil.AccessDenied):
        who = f"process {pid}" if pid else "the host's sockets"
        return ProbeUnavailableError(f"permission denied reading {who}: run as root or as the app's user")
    return ProbeUnavailableError(f"process {pid} went away while being inspected")


def _tcp_table(pid: int | None) -> list[Any]:
    import psutil

    if pid is None:
        return list(psutil.net_connections(kind="tcp"))
    proc = _process(pid)
    getter = getattr(proc, "net_connections", None) or proc.connections  # psutil < 6
    return list(getter(kind="tcp"))


def _to_target(conns: Iterable[Any], addresses: set[str], port: int, owner: int | None = None) -> list[SocketEntry]:
    """The sockets whose remote end is the target. ``Process.net_connections()`` rows carry no pid:
    ``owner`` fills it in."""
    out = []
    for c in conns:
        raddr = c.raddr
        if not raddr or raddr.port != port or normalize_ip(raddr.ip) not in addresses:
            continue
        local = f"{normalize_ip(c.laddr.ip)}:{c.laddr.port}" if c.laddr else "?"
        out.append(
            SocketEntry(local, f"{normalize_ip(raddr.ip)}:{raddr.port}", _tcp_state(c.status), getattr(c, "pid", owner))
        )
    return out


async def sample_sockets(
    addresses: Sequence[str], port: int, *, pid: int | None = None, gap_s: float = SOCKET_SAMPLE_GAP_S
) -> SocketObservation:
    """Two snapshots of the sockets to ``addresses``:``port``, ``gap_s`` apart."""
    import psutil

    wanted = {normalize_ip(a) for a in addresses}
    me = os.getpid()

    def snapshot() -> tuple[list[SocketEntry], list[SocketEntry]]:
        try:
            own = _to_target(_tcp_table(pid), wanted, port, owner=pid)
            host = own if pid is None else _to_target(_tcp_table(None), wanted, port)
        except _psutil_errors() as exc:
            raise _explain_psutil_error(exc, pid) from None
        if pid is None:  # host-wide: wsdoctor's own probe connections are not the app's
            own = [s for s in own if s.pid != me]
        return own, host

    first, _ = await _in_thread(snapshot)
    await asyncio.sleep(gap_s)
    second, host_second = await _in_thread(snapshot)
    name = None
    if pid is not None:
        try:
            name = _process(pid).name()
        except (ProbeUnavailableError, psutil.Error):
            name = None
    cw_first = {s.local for s in first if s.status == psutil.CONN_CLOSE_WAIT}
    persisting = [s for s in second if s.status == psutil.CONN_CLOSE_WAIT and s.local in cw_first]
    counts: dict[str, int] = {}
    for s in second:
        counts[s.status] = counts.get(s.status, 0) + 1
    return SocketObservation(
        scope="host" if pid is None else "pid",
        pid=pid,
        process_name=name,
        addresses=tuple(sorted(wanted)),
        port=port,
        counts=counts,
        close_wait_first=len(cw_first),
        close_wait_persisting=tuple(sorted(persisting, key=lambda s: s.local)[:MAX_LISTED]),
        close_wait_persisting_count=len(persisting),
        time_wait=sum(1 for s in host_second if s.status == psutil.CONN_TIME_WAIT),
        gap_s=gap_s,
    )


def parse_proc_limits(text: str) -> tuple[int | None, int | None]:
    """The (soft, hard) "Max open files" of a ``/proc/PID/limits`` text; None means unlimited."""
    for line in text.splitlines():
        if line.startswith("Max open files"):
            parts = line[len("Max open files") :].split()
            if len(parts) >= 2:
                return _limit(parts[0]), _limit(parts[1])
    raise ValueError("no 'Max open files' line")


def _limit(text: str) -> int | None:
    return None if text == "unlimited" else int(text)


async def read_fds(pid: int | None = None) -> FdObservation:
    """Open file descriptors and RLIMIT_NOFILE of ``pid`` (default: this process)."""
    import psutil

    def read() -> FdObservation:
        target = os.getpid() if pid is None else pid
        proc = _process(target)
        try:
            open_fds = int(proc.num_fds()) if hasattr(proc, "num_fds") else len(proc.open_files())
            name = proc.name()
        except _psutil_errors() as exc:
            raise _explain_psutil_error(exc, target) from None
        soft: int | None
        hard: int | None
        if pid is None:
            import resource

            raw_soft, raw_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            soft = None if raw_soft == resource.RLIM_INFINITY else raw_soft
            hard = None if raw_hard == resource.RLIM_INFINITY else raw_hard
            source = "resource"
        else:
            try:
                with open(f"/proc/{target}/limits", encoding="ascii") as fh:
                    soft, hard = parse_proc_limits(fh.read())
                source = f"/proc/{target}/limits"
            except (OSError, ValueError):
                failures: tuple[type[BaseException], ...] = (AttributeError, *_psutil_errors())
                try:
                    raw_soft, raw_hard = proc.rlimit(psutil.RLIMIT_NOFILE)
                except failures as exc:
                    raise ProbeUnavailableError(f"cannot read the open-file limit of process {target}: {exc}") from None
                infinity = getattr(psutil, "RLIM_INFINITY", -1)
                soft = None if raw_soft in (infinity, -1) else int(raw_soft)
                hard = None if raw_hard in (infinity, -1) else int(raw_hard)
                source = "psutil"
        return FdObservation(
            pid=target,
            scope="self" if pid is None else "pid",
            process_name=name,
            open_fds=open_fds,
            soft_limit=soft,
            hard_limit=hard,
            limits_source=source,
        )

    result: FdObservation = await _in_thread(read)
    return result


def _port_range() -> tuple[int, int]:
    try:
        with open(PORT_RANGE_PATH, encoding="ascii") as fh:
            low_s, high_s = fh.read().split()[:2]
        return int(low_s), int(high_s)
    except (OSError, ValueError) as exc:
        raise ProbeUnavailableError(f"cannot read {PORT_RANGE_PATH}: {exc}") from None


async def read_ephemeral(addresses: Sequence[str], port: int) -> EphemeralObservation:
    """The ephemeral port range and how much of it is in use (Linux)."""
    import psutil

    if not sys.platform.startswith("linux"):
        raise ProbeUnavailableError("the ephemeral port range is read from /proc (Linux only)")
    low, high = _port_range()
    wanted = {normalize_ip(a) for a in addresses}

    def count() -> tuple[int, int]:
        try:
            conns = psutil.net_connections(kind="tcp")
        except psutil.AccessDenied as exc:
            raise _explain_psutil_error(exc, None) from None
        total = to_target = 0
        for c in conns:
            if c.status == psutil.CONN_LISTEN or not c.laddr or not low <= c.laddr.port <= high:
                continue
            total += 1
            if c.raddr and c.raddr.port == port and normalize_ip(c.raddr.ip) in wanted:
                to_target += 1
        return total, to_target

    total, to_target = await _in_thread(count)
    return EphemeralObservation(
        low=low, high=high, in_use_total=total, in_use_to_target=to_target, addresses=tuple(sorted(wanted)), port=port
    )


def _lag_summary(lags: Sequence[float], *, interval_s: float, window_s: float, stall_s: float) -> LoopLagObservation:
    lags = list(lags) or [0.0]
    return LoopLagObservation(
        interval_s=interval_s,
        window_s=window_s,
        samples=len(lags),
        max_lag_s=round(max(lags), 4),
        mean_lag_s=round(sum(lags) / len(lags), 4),
        late_samples=sum(1 for lag in lags if lag > 0.05),
        stalls=sum(1 for lag in lags if lag >= stall_s),
        stall_s=stall_s,
        lags_s=tuple(round(x, 4) for x in sorted(lags, reverse=True)[:5]),
    )


async def sample_loop_lag(
    *,
    window_s: float = 2.0,
    interval_s: float = 0.05,
    stall_s: float = 0.2,
    clock: Callable[[], float] = time.monotonic,
) -> LoopLagObservation:
    """Sleep ``interval_s`` repeatedly for ``window_s`` on the running event loop and record how late
    each wake-up is. This measures wsdoctor's own loop (busy when wsdoctor is), so it is context for
    :func:`sample_scheduling`, never the judgement."""
    lags: list[float] = []
    end = clock() + window_s
    while clock() < end:
        t0 = clock()
        await asyncio.sleep(interval_s)
        lags.append(max(0.0, clock() - t0 - interval_s))
    return _lag_summary(lags, interval_s=interval_s, window_s=window_s, stall_s=stall_s)


@dataclass(frozen=True, slots=True)
class SchedulingObservation(Record):
    """How late the host wakes a process that only sleeps, with the host's own counters beside it."""

    sampler: Literal["process", "thread"]  # a separate sleeping process | the fallback (shares our GIL)
    wakeups: LoopLagObservation  # the sampler's wake-ups
    #: kernel schedstat: seconds the sampler was runnable but not given a CPU (None: not Linux)
    run_delay_s: float | None = None
    steal_pct: float | None = None  # hypervisor steal over the window (psutil cpu_times)
    load1: float | None = None
    cpus: int | None = None
    throttled_s: float | None = None  # cgroup CPU-quota throttling over the window
    throttled_periods: int | None = None
    own_loop: LoopLagObservation | None = None  # wsdoctor's own event loop: context only
    error: str | None = None  # why the process sampler could not run (then ``sampler`` is "thread")


SAMPLER_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schedsampler.py")


def _cgroup_cpu_throttling() -> tuple[int, float] | None:
    """(throttled periods, throttled seconds) of this process's cgroup so far, v2 or v1, or None."""
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as f:
            lines = [ln.strip().split(":", 2) for ln in f if ln.count(":") >= 2]
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            mounts = [ln.split() for ln in f]
    except OSError:
        return None
    for hier, controllers, path in lines:
        v2 = hier == "0" and controllers == ""
        if not v2 and "cpu" not in controllers.split(","):
            continue
        for m in mounts:
            sep = m.index("-") if "-" in m else -1
            if sep < 0 or len(m) < sep + 3:
                continue
            fstype, opts = m[sep + 1], m[-1]
            if (v2 and fstype == "cgroup2") or (not v2 and fstype == "cgroup" and "cpu" in opts.split(",")):
                stat = os.path.join(m[4], path.lstrip("/"), "cpu.stat")
                try:
                    with open(stat, encoding="ascii") as f:
                        fields = dict(line.split() for line in f if len(line.split()) == 2)
                except (OSError, ValueError):
                    continue
                if "throttled_usec" in fields:
                    return int(fields.get("nr_throttled", 0)), int(fields["throttled_usec"]) / 1e6
                if "throttled_time" in fields:
                    return int(fields.get("nr_throttled", 0)), int(fields["throttled_time"]) / 1e9
    return None


def _host_counters() -> tuple[Any, tuple[int, float] | None]:
    import psutil

    return psutil.cpu_times(), _cgroup_cpu_throttling()


async def sample_scheduling(
    *, window_s: float = 2.0, interval_s: float = 0.05, stall_s: float = 0.2
) -> SchedulingObservation:
    """Run :mod:`wsdoctor.probes.schedsampler` as its own process for ``window_s`` (a thread if no
    process can be spawned), beside wsdoctor's own loop sampler and the host's counters."""
    import json
    import subprocess

    cpu0, cg0 = await _in_thread(_host_counters)
    own = asyncio.ensure_future(sample_loop_lag(window_s=window_s, interval_s=interval_s, stall_s=stall_s))
    kind: Literal["process", "thread"] = "process"
    error: str | None = None
    raw: Any = None
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-S",
            SAMPLER_PATH,
            str(window_s),
            str(interval_s),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), window_s + 5.0)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        raw = json.loads(out)
    except (OSError, ValueError, TimeoutError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:200]
    if not isinstance(raw, dict) or not isinstance(raw.get("lags_s"), list):
        from wsdoctor.probes.schedsampler import sample

        kind = "thread"
        raw = await asyncio.to_thread(sample, window_s, interval_s)
        error = error or "the sampler process gave no result"
    own_obs = await own
    cpu1, cg1 = await _in_thread(_host_counters)
    steal = None
    total = sum(cpu1) - sum(cpu0)
    if total > 0 and hasattr(cpu1, "steal"):
        steal = round(100.0 * (cpu1.steal - cpu0.steal) / total, 2)
    throttled = (cg1[0] - cg0[0], round(cg1[1] - cg0[1], 4)) if cg0 is not None and cg1 is not None else None
    lags = [float(x) for x in raw["lags_s"] if isinstance(x, int | float)]
    run_delay = raw.get("run_delay_s")
    try:
        load1: float | None = round(os.getloadavg()[0], 2)
    except OSError:
        load1 = None
    return SchedulingObservation(
        sampler=kind,
        wakeups=_lag_summary(lags, interval_s=interval_s, window_s=window_s, stall_s=stall_s),
        run_delay_s=float(run_delay) if isinstance(run_delay, int | float) else None,
        steal_pct=steal,
        load1=load1,
        cpus=os.cpu_count(),
        throttled_s=throttled[1] if throttled else None,
        throttled_periods=throttled[0] if throttled else None,
        own_loop=own_obs,
        error=error,
    )


def clock_from_headers(
    headers: Iterable[Sequence[Any]], *, now: float | None = None, source: str = "http.upgrade"
) -> ClockObservation | None:
    """Compare the ``Date`` header of an HTTP answer with the local clock (None if absent/invalid)."""
    value = next((str(h[1]) for h in headers if len(h) >= 2 and str(h[0]).lower() == "date"), None)
    if value is None:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        return None
    server = parsed.timestamp()
    local = time.time() if now is None else now
    return ClockObservation(
        server_date=value[:100],
        server_epoch_s=server,
        local_epoch_s=round(local, 3),
        skew_s=round(local - server, 3),
        source=source,
    )
