"""host.*: is the local machine (or the app given by ``--pid``) healthy enough to hold a stream?

Theory of operation. These checks open no connection; they read the kernel's tables through
:mod:`wsdoctor.probes.host` and judge the numbers with pure ``analyze_*`` functions:

- ``host.sockets``: sockets whose remote end is the target. CLOSE_WAIT means the peer (Deepgram, or
  a proxy) closed the connection and the app never called ``close()``: a leak that ends in "Too many
  open files". Counted in two snapshots :data:`~wsdoctor.probes.host.SOCKET_SAMPLE_GAP_S` apart; only
  sockets present in both count, so one caught mid-close is not a leak. TIME_WAIT sockets are what a
  closed connection leaves for 60 s on Linux: hundreds to one target mean the app opens a connection
  per utterance or loops on reconnects. Host-wide by default, that process only with ``--pid``.
- ``host.fds``: open file descriptors against ``RLIMIT_NOFILE`` (ours, or ``--pid``'s).
- ``host.ephemeral-ports``: local ports in ``ip_local_port_range`` used towards the target and in
  total; when they run out, new connections fail with "Cannot assign requested address".
- ``host.loop-lag``: a separate process that only sleeps (every 50 ms for 2 s) while the other checks
  probe: a host that wakes it late -- CPU quota throttling, hypervisor steal, a stopped process --
  delays an app's keepalives and close handshakes too. wsdoctor's own event loop is sampled beside
  it as context only: it is late whenever wsdoctor itself is busy, which says nothing of the host.
- ``host.clock``: the ``Date`` header of the answer http.upgrade received against the local clock.
  Temporary tokens live ~30 s and certificates are checked against the clock, so skew breaks auth
  and TLS in ways that look like other faults.

Thresholds (documented in the README): CLOSE_WAIT warn >= 1, fail >= 10; TIME_WAIT warn >= 100 (a
sustained churn of more than 1.6 connections per second to one target); fds warn >= 80 %, fail >=
95 % of the soft limit; ephemeral ports warn >= 50 %, fail >= 80 % of the range towards the target
(warn >= 80 % in total); loop lag warn on two or more wake-ups >= 200 ms late, fail on one >= 1 s;
clock skew warn >= 5 s, fail >= 30 s. wsdoctor's own probe connections never count as the app's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import ClassVar, TypeVar

from wsdoctor.check import Check, Context, ObservingCheck, finding
from wsdoctor.model import CheckResult, Finding, JSONValue, Status
from wsdoctor.probes.host import (
    ClockObservation,
    EphemeralObservation,
    FdObservation,
    ProbeUnavailableError,
    SchedulingObservation,
    SocketObservation,
)
from wsdoctor.record import FixtureError

__all__ = [
    "CHECKS",
    "CLOCK_SKEW_FAIL_S",
    "CLOCK_SKEW_WARN_S",
    "CLOSE_WAIT_FAIL",
    "CLOSE_WAIT_WARN",
    "EPHEMERAL_FAIL",
    "EPHEMERAL_WARN",
    "FD_FAIL",
    "FD_WARN",
    "LOOP_LAG_FAIL_S",
    "LOOP_LAG_MIN_STALLS",
    "LOOP_LAG_WARN_S",
    "TIME_WAIT_WARN",
    "HostClock",
    "HostEphemeralPorts",
    "HostFds",
    "HostLoopLag",
    "HostSockets",
    "analyze_clock",
    "analyze_ephemeral",
    "analyze_fds",
    "analyze_loop_lag",
    "analyze_sockets",
    "target_addresses",
]

CLOSE_WAIT_WARN = 1
CLOSE_WAIT_FAIL = 10
TIME_WAIT_WARN = 100
FD_WARN = 0.80
FD_FAIL = 0.95
EPHEMERAL_WARN = 0.50
EPHEMERAL_FAIL = 0.80
LOOP_LAG_WARN_S = 0.2
LOOP_LAG_FAIL_S = 1.0
LOOP_LAG_MIN_STALLS = 2
LOOP_LAG_WINDOW_S = 2.0
#: A thread sampler's lateness counts only when the kernel saw it runnable for at least this share.
RUN_DELAY_CONFIRMS = 0.5
#: Hypervisor steal worth naming in the message.
STEAL_NOTE_PCT = 5.0
CLOCK_SKEW_WARN_S = 5.0
CLOCK_SKEW_FAIL_S = 30.0

T = TypeVar("T")


def _who(obs: SocketObservation | FdObservation) -> str:
    if obs.scope in ("pid", "self") and obs.pid is not None:
        name = obs.process_name
        return f"process {obs.pid}" + (f" ({name})" if name else "")
    return "this host"


def analyze_sockets(obs: SocketObservation) -> list[Finding]:
    """Judge a :class:`~wsdoctor.probes.host.SocketObservation`."""
    findings = []
    target = f"{'/'.join(obs.addresses or ['?'])} port {obs.port}"
    leaked = obs.close_wait_persisting_count
    if leaked >= CLOSE_WAIT_WARN:
        severity = Status.FAIL if leaked >= CLOSE_WAIT_FAIL else Status.WARN
        findings.append(
            finding(
                "host.close-wait-leak",
                severity,
                f"{leaked} socket(s) of {_who(obs)} to {target} stayed in CLOSE_WAIT for {obs.gap_s} s: the "
                "server side closed them and the app never called close() (each one holds a file descriptor "
                "until the process exits)",
                {
                    "close_wait": leaked,
                    "close_wait_first_sample": obs.close_wait_first,
                    "sockets": [s.to_dict() for s in obs.close_wait_persisting],
                    "scope": obs.scope,
                    "pid": obs.pid,
                    "thresholds": {"warn": CLOSE_WAIT_WARN, "fail": CLOSE_WAIT_FAIL},
                },
            )
        )
    time_wait = obs.time_wait
    if time_wait >= TIME_WAIT_WARN:
        findings.append(
            finding(
                "host.time-wait-pileup",
                Status.WARN,
                f"{time_wait} sockets to {target} are in TIME_WAIT on this host: connections are opened and closed "
                f"at more than {time_wait / 60:.1f} per second (one per utterance, or a reconnect loop); reuse "
                "long-lived streams and back off reconnects",
                {"time_wait": time_wait, "thresholds": {"warn": TIME_WAIT_WARN}},
            )
        )
    return findings


def analyze_fds(obs: FdObservation) -> list[Finding]:
    """Judge a :class:`~wsdoctor.probes.host.FdObservation`."""
    soft = obs.soft_limit
    open_fds = obs.open_fds
    if not soft:  # unlimited (None), or a limit of 0 that no process could run under
        return []
    ratio = open_fds / soft
    if ratio < FD_WARN:
        return []
    severity = Status.FAIL if ratio >= FD_FAIL else Status.WARN
    return [
        finding(
            "host.fd-pressure",
            severity,
            f"{_who(obs)} has {open_fds} of {soft} file descriptors open ({ratio:.0%} of RLIMIT_NOFILE): new "
            "connections will fail with 'Too many open files'; close finished streams and raise the limit "
            "(ulimit -n, systemd LimitNOFILE=)",
            {
                "open_fds": open_fds,
                "soft_limit": soft,
                "hard_limit": obs.hard_limit,
                "ratio": round(ratio, 3),
                "pid": obs.pid,
                "thresholds": {"warn": FD_WARN, "fail": FD_FAIL},
            },
        )
    ]


def analyze_ephemeral(obs: EphemeralObservation) -> list[Finding]:
    """Judge an :class:`~wsdoctor.probes.host.EphemeralObservation`."""
    low, high = obs.low, obs.high
    size = max(1, obs.size)  # a reversed range in /proc is no reason to divide by zero
    to_target = obs.in_use_to_target
    total = obs.in_use_total
    ev: dict[str, JSONValue] = {
        "range": f"{low}-{high}",
        "size": size,
        "in_use_to_target": to_target,
        "in_use_total": total,
        "thresholds": {"warn": EPHEMERAL_WARN, "fail": EPHEMERAL_FAIL, "total_warn": EPHEMERAL_FAIL},
    }
    target_ratio, total_ratio = to_target / size, total / size
    if target_ratio >= EPHEMERAL_WARN:
        severity = Status.FAIL if target_ratio >= EPHEMERAL_FAIL else Status.WARN
        return [
            finding(
                "host.ephemeral-ports",
                severity,
                f"{to_target} of the {size} ephemeral ports ({low}-{high}) are in use towards the target "
                f"({target_ratio:.0%}): new connections will fail with 'Cannot assign requested address'",
                ev,
            )
        ]
    if total_ratio >= EPHEMERAL_FAIL:
        return [
            finding(
                "host.ephemeral-ports",
                Status.WARN,
                f"{total} of the {size} ephemeral ports ({low}-{high}) are in use on this host ({total_ratio:.0%})",
                ev,
            )
        ]
    return []


def analyze_loop_lag(obs: SchedulingObservation) -> list[Finding]:
    """Judge a :class:`~wsdoctor.probes.host.SchedulingObservation`.

    Only the *sampler* -- a separate process that only sleeps -- is judged: wsdoctor's own event
    loop is late whenever wsdoctor is busy, and a fairly scheduled busy host still wakes a sleeping
    process within milliseconds, so neither is evidence that the host starves an app. One late
    wake-up is a hiccup; a host that stops processes (CPU quota throttling, steal, SIGSTOP) stalls
    again and again: a warning needs :data:`LOOP_LAG_MIN_STALLS` wake-ups late by at least
    :data:`LOOP_LAG_WARN_S`, a single stall of :data:`LOOP_LAG_FAIL_S` fails on its own. A *thread*
    sampler (the fallback) shares wsdoctor's GIL, so there the kernel's run-delay must confirm that
    the lateness was time spent waiting for a CPU.
    """
    wake = obs.wakeups
    worst = wake.max_lag_s
    stalls = wake.stalls
    if worst < LOOP_LAG_FAIL_S and (worst < LOOP_LAG_WARN_S or stalls < LOOP_LAG_MIN_STALLS):
        return []
    run_delay = obs.run_delay_s
    late_total = wake.mean_lag_s * wake.samples
    if obs.sampler == "thread" and not (run_delay is not None and run_delay >= RUN_DELAY_CONFIRMS * late_total):
        return []  # late, but not runnable-and-waiting: our own GIL, not the host
    severity = Status.FAIL if worst >= LOOP_LAG_FAIL_S else Status.WARN
    host = []
    if obs.throttled_s is not None and obs.throttled_s > 0:
        host.append(f"the cgroup's CPU quota throttled it for {obs.throttled_s:.2f} s")
    if obs.steal_pct is not None and obs.steal_pct >= STEAL_NOTE_PCT:
        host.append(f"the hypervisor stole {obs.steal_pct:.0f} % of the CPU")
    if obs.load1 is not None and obs.cpus:
        host.append(f"load {obs.load1:g} on {obs.cpus} CPUs")
    return [
        finding(
            "host.loop-lag",
            severity,
            f"the host woke a process that only sleeps up to {worst * 1000:.0f} ms late ({stalls} of "
            f"{wake.samples} wake-ups >= {LOOP_LAG_WARN_S * 1000:.0f} ms late in {wake.window_s} s"
            + (f"; {', '.join(host)}" if host else "")
            + "): an app's keepalives, pongs and close replies are delayed as much, and websockets/aiohttp "
            "ping timeouts trip",
            {
                "max_lag_s": worst,
                "stalls": stalls,
                "samples": wake.samples,
                "sampler": obs.sampler,
                "run_delay_s": run_delay,
                "throttled_s": obs.throttled_s,
                "steal_pct": obs.steal_pct,
                "load1": obs.load1,
                "thresholds_s": {"warn": LOOP_LAG_WARN_S, "fail": LOOP_LAG_FAIL_S},
                "min_stalls": LOOP_LAG_MIN_STALLS,
            },
        )
    ]


def analyze_clock(obs: ClockObservation) -> list[Finding]:
    """Judge a :class:`~wsdoctor.probes.host.ClockObservation`."""
    skew = obs.skew_s
    if abs(skew) < CLOCK_SKEW_WARN_S:
        return []
    severity = Status.FAIL if abs(skew) >= CLOCK_SKEW_FAIL_S else Status.WARN
    direction = "ahead of" if skew > 0 else "behind"
    return [
        finding(
            "host.clock-skew",
            severity,
            f"the local clock is {abs(skew):.0f} s {direction} the server's (Date: {obs.server_date}): "
            "temporary tokens (~30 s lifetime) and certificate validity are judged against this clock; "
            "enable NTP (timedatectl set-ntp true)",
            {
                "skew_s": skew,
                "server_date": obs.server_date,
                "thresholds_s": {"warn": CLOCK_SKEW_WARN_S, "fail": CLOCK_SKEW_FAIL_S},
            },
        )
    ]


def target_addresses(ctx: Context) -> tuple[str, ...]:
    """The addresses the target resolves to: dns.resolve's answer, else an IP literal / --resolve."""
    from wsdoctor.probes.resolver import DnsObservation

    dns_ev = ctx.evidence_of("dns.resolve", "dns")
    if isinstance(dns_ev, Mapping):
        try:
            dns = DnsObservation.from_dict(dns_ev)
        except FixtureError:
            dns = None  # not dns.resolve's own evidence (a third-party check's): fall back as if absent
        if dns is not None and dns.addresses:
            return dns.addresses
    override = ctx.options.resolve_for(ctx.target.host, ctx.target.port)
    if override:
        return (override,)
    return (ctx.target.host,) if ctx.target.is_ip_literal else ()


def _upgrade_headers(ctx: Context) -> tuple[tuple[str, str], ...]:
    """The headers of the answer http.upgrade received (none if it got no HTTP answer)."""
    from wsdoctor.probes.wsclient import HttpAnswer

    upgrade = ctx.evidence_of("http.upgrade", "upgrade")
    # http.upgrade's evidence is an UpgradeObservation plus keys of its own (proxy, target): only
    # the answer inside it is read, and rebuilt strictly.
    answer = upgrade.get("answer") if isinstance(upgrade, Mapping) else None
    if not isinstance(answer, Mapping):
        return ()
    try:
        return HttpAnswer.from_dict(answer).headers
    except FixtureError:
        return ()


async def _unless_unavailable(check: Check, probe: Awaitable[T]) -> T | CheckResult:
    """The probe's observation, or a skip when it cannot run here (no such process, not Linux)."""
    try:
        return await probe
    except ProbeUnavailableError as exc:
        return check.skip(f"not applicable here: {exc}")


class HostSockets(ObservingCheck[SocketObservation]):
    id = "host.sockets"
    title = "No leaked (CLOSE_WAIT) or churned (TIME_WAIT) sockets to the target"
    requires = ("dns.resolve",)
    timeout: ClassVar[float] = 15.0
    evidence_key = "sockets"

    async def observe(self, ctx: Context) -> SocketObservation | CheckResult:
        from wsdoctor.probes.host import sample_sockets

        addresses = target_addresses(ctx)
        if not addresses:
            return self.skip("no address for the target", blocked_by="dns.resolve")
        return await _unless_unavailable(self, sample_sockets(addresses, ctx.target.port, pid=ctx.options.pid))

    def judge(self, obs: SocketObservation, ctx: Context) -> list[Finding]:
        return analyze_sockets(obs)

    def summarize(self, obs: SocketObservation, ctx: Context) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(obs.counts.items())) or "none"
        scope = f"process {obs.pid}" if obs.pid is not None else "host-wide"
        return (
            f"sockets to {ctx.target.host}:{ctx.target.port} ({scope}): {counts}; TIME_WAIT host-wide {obs.time_wait}"
        )

    def measure(self, obs: SocketObservation) -> dict[str, int]:
        return {"close_wait": obs.close_wait_persisting_count, "time_wait": obs.time_wait}


class HostFds(ObservingCheck[FdObservation]):
    id = "host.fds"
    title = "Open file descriptors are well below the limit"
    timeout: ClassVar[float] = 10.0
    evidence_key = "fds"

    async def observe(self, ctx: Context) -> FdObservation | CheckResult:
        from wsdoctor.probes.host import read_fds

        return await _unless_unavailable(self, read_fds(ctx.options.pid))

    def judge(self, obs: FdObservation, ctx: Context) -> list[Finding]:
        return analyze_fds(obs)

    def summarize(self, obs: FdObservation, ctx: Context) -> str:
        limit = obs.soft_limit if obs.soft_limit is not None else "unlimited"
        who = f"process {obs.pid}" if obs.scope == "pid" else f"wsdoctor (pid {obs.pid})"
        return f"{who}: {obs.open_fds} open of {limit} (RLIMIT_NOFILE)"

    def measure(self, obs: FdObservation) -> dict[str, int | None]:
        return {"open_fds": obs.open_fds, "fd_limit": obs.soft_limit}


class HostEphemeralPorts(ObservingCheck[EphemeralObservation]):
    id = "host.ephemeral-ports"
    title = "The ephemeral port range has room for new connections"
    requires = ("dns.resolve",)
    timeout: ClassVar[float] = 10.0
    evidence_key = "ephemeral"

    async def observe(self, ctx: Context) -> EphemeralObservation | CheckResult:
        from wsdoctor.probes.host import read_ephemeral

        return await _unless_unavailable(self, read_ephemeral(target_addresses(ctx), ctx.target.port))

    def judge(self, obs: EphemeralObservation, ctx: Context) -> list[Finding]:
        return analyze_ephemeral(obs)

    def summarize(self, obs: EphemeralObservation, ctx: Context) -> str:
        return (
            f"range {obs.low}-{obs.high} ({obs.size} ports): {obs.in_use_to_target} in use to the target, "
            f"{obs.in_use_total} in total"
        )

    def measure(self, obs: EphemeralObservation) -> dict[str, int]:
        return {"ephemeral_in_use": obs.in_use_total, "ephemeral_range": obs.size}


class HostLoopLag(ObservingCheck[SchedulingObservation]):
    id = "host.loop-lag"
    title = "The host wakes a sleeping process on time (no CPU starvation)"
    timeout: ClassVar[float] = LOOP_LAG_WINDOW_S + 8.0
    evidence_key = "scheduling"

    async def observe(self, ctx: Context) -> SchedulingObservation | CheckResult:
        from wsdoctor.probes.host import sample_scheduling

        return await sample_scheduling(window_s=LOOP_LAG_WINDOW_S, stall_s=LOOP_LAG_WARN_S)

    def judge(self, obs: SchedulingObservation, ctx: Context) -> list[Finding]:
        return analyze_loop_lag(obs)

    def summarize(self, obs: SchedulingObservation, ctx: Context) -> str:
        w = obs.wakeups
        own = f"; wsdoctor's own loop worst {obs.own_loop.max_lag_s * 1000:.0f} ms" if obs.own_loop else ""
        return (
            f"a sleeping {obs.sampler} woke {w.samples} times in {w.window_s:g} s: worst "
            f"{w.max_lag_s * 1000:.0f} ms late, mean {w.mean_lag_s * 1000:.1f} ms{own}"
        )

    def measure(self, obs: SchedulingObservation) -> dict[str, float]:
        return {"loop_lag_max_s": obs.wakeups.max_lag_s}


class HostClock(ObservingCheck[ClockObservation]):
    id = "host.clock"
    title = "The local clock agrees with the server's Date header"
    requires = ("http.upgrade",)
    timeout: ClassVar[float] = 5.0
    evidence_key = "clock"

    async def observe(self, ctx: Context) -> ClockObservation | CheckResult:
        from wsdoctor.probes.host import clock_from_headers

        obs = clock_from_headers(_upgrade_headers(ctx))
        return obs if obs is not None else self.skip("the answer to the Upgrade carried no valid Date header")

    def judge(self, obs: ClockObservation, ctx: Context) -> list[Finding]:
        return analyze_clock(obs)

    def summarize(self, obs: ClockObservation, ctx: Context) -> str:
        return f"local clock {obs.skew_s:+.1f} s against the server's Date ({obs.server_date})"

    def measure(self, obs: ClockObservation) -> dict[str, float]:
        return {"clock_skew_s": obs.skew_s}


CHECKS = (HostSockets, HostFds, HostEphemeralPorts, HostLoopLag, HostClock)
