"""Idle-timeout checks: who ends an idle stream, when, and whether KeepAlive and pings help.

Theory of operation: one family probe (:mod:`wsdoctor.probes.idle`) runs three connections side by
side -- silent, KeepAlive every 4 s, KeepAlive plus WebSocket pings every 2 s -- and three checks
judge it, so the wall time is the longest window, not the sum. The probe runs once per run
(``Context.shared``) whichever of the checks starts first.

- ``idle.silent``: Deepgram's documented behaviour is a close frame 1011 "NET-0001" about 10 s
  after the last audio or text. Measured, that is ``idle.server-timeout`` -- informational, because
  it is what every client must plan for (KeepAlive). A TCP end *without* a close frame and without
  that reason is a cut by something on the path: ``idle.middlebox-cutoff`` with ``idle_cutoff_s``.
- ``idle.keepalive``: with KeepAlive every 4 s the stream must outlive the silent one. Closed with
  NET-0001 anyway: ``idle.keepalive-ineffective``. Cut without a close frame: a middlebox that only
  counts server->client traffic or has a shorter timeout.
- ``idle.ping``: do pings come back (``pong_rtt_ms``)? A path or server that drops them makes
  clients with a ping timeout (python websockets: 20 s) fail with "keepalive ping timeout".
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any, ClassVar

from checks.close import is_idle_timeout, judge_close_code, judge_ending
from checks.ws import AuthenticatedCheck
from wsdoctor import deepgram
from wsdoctor.check import Context, RunOptions, finding
from wsdoctor.model import CheckResult, EndKind, Finding, FrameKind, JSONValue, Outcome, Status

__all__ = [
    "CHECKS",
    "IdleKeepalive",
    "IdlePing",
    "IdleSilent",
    "analyze_keepalive",
    "analyze_ping",
    "analyze_silent",
    "idle_metrics",
]

if TYPE_CHECKING:  # the probes (h11, wsproto) load when a check runs, not when checks are listed
    from wsdoctor.probes.idle import IdleConnection, IdleFamily, IdleName
    from wsdoctor.probes.wsclient import WireEvent

_FAMILY_KEY = "idle.family"
#: How much later than the silent stream's window a KeepAlive stream must close for its KeepAlives
#: to count as having extended it (timers on both ends jitter by tens of milliseconds).
KEEPALIVE_TOLERANCE_S = 0.5


_CUT = (EndKind.EOF, EndKind.RESET)  # TCP ended without a close frame: cut, not closed


def _idle_for(conn: IdleConnection | None) -> float | None:
    """Seconds between the start of the idle period and the end of the connection."""
    if conn is None or conn.idle_from_t is None or conn.end_t is None:
        return None
    return round(conn.end_t - conn.idle_from_t, 3)


def _close_event(conn: IdleConnection) -> WireEvent | None:
    return next((e for e in conn.events if e.direction == "in" and e.kind is EndKind.CLOSE), None)


def _metadata_before_close(conn: IdleConnection) -> bool:
    close = _close_event(conn)
    return close is not None and any(
        e.msg_type == deepgram.ServerMessage.METADATA and e.t_s <= close.t_s for e in conn.events
    )


def _opened(conn: IdleConnection | None) -> IdleConnection | None:
    return conn if conn is not None and conn.upgrade.outcome is Outcome.UPGRADED else None


def idle_metrics(family: IdleFamily) -> dict[str, float | int | None]:
    silent = family.get("silent")
    ping = family.get("ping")
    server_timeout = cutoff = None
    if silent is not None and silent.ended_by is EndKind.CLOSE and is_idle_timeout(_close_event(silent)):
        server_timeout = _idle_for(silent)
    if silent is not None and silent.ended_by in _CUT:
        cutoff = _idle_for(silent)
    rtts = pong_rtts_ms(ping) if ping is not None else []
    return {
        "server_idle_timeout_s": server_timeout,
        "idle_cutoff_s": cutoff,
        "pings_sent": ping.pings_sent if ping is not None else 0,
        "pongs": len(rtts),
        "pong_rtt_p50_ms": round(statistics.median(rtts), 2) if rtts else None,
        "pong_rtt_max_ms": round(max(rtts), 2) if rtts else None,
        "family_wall_s": family.wall_s,
    }


def pong_rtts_ms(conn: IdleConnection) -> list[float]:
    """Round trips, pairing each pong with the earliest unanswered ping (pongs come back in order)."""
    pending: list[float] = []
    rtts: list[float] = []
    for e in conn.events:
        if e.kind is FrameKind.PING and e.direction == "out":
            pending.append(e.t_s)
        elif e.kind is FrameKind.PONG and e.direction == "in" and pending:
            rtts.append((e.t_s - pending.pop(0)) * 1000)
    return rtts


def _cut_finding(conn: IdleConnection, what: str) -> Finding:
    idle_s = _idle_for(conn) or 0.0
    return finding(
        "idle.middlebox-cutoff",
        Status.FAIL,
        f"{what} was cut after {idle_s:.1f} s idle without a close frame and without Deepgram's NET-0001 reason: "
        f"a proxy, firewall or load balancer idle timeout of about {idle_s:.0f} s on the path",
        {
            "idle_cutoff_s": _idle_for(conn),
            "ended_by": conn.ended_by.value if conn.ended_by else None,
            "connection": conn.name,
        },
    )


def analyze_silent(family: IdleFamily) -> list[Finding]:
    conn = _opened(family.get("silent"))
    if conn is None:
        return []
    ended = conn.ended_by
    if ended in _CUT:
        return [_cut_finding(conn, "a silent stream")]
    if ended is EndKind.CLOSE:
        close = _close_event(conn)
        idle_s = _idle_for(conn)
        if close is not None and is_idle_timeout(close):
            first = "after its Metadata" if _metadata_before_close(conn) else "without Metadata first"
            return [
                finding(
                    "idle.server-timeout",
                    Status.INFO,
                    f"Deepgram closes a silent stream after {idle_s or 0.0:.1f} s with {close.code} NET-0001 "
                    f"({first}): a client must send a text KeepAlive every 3-5 s while no audio flows",
                    {
                        "server_idle_timeout_s": idle_s,
                        "code": close.code,
                        "reason": close.reason,
                        "metadata_first": _metadata_before_close(conn),
                    },
                )
            ]
        f = judge_close_code(close.code if close else None, close.reason if close else None, f"after {idle_s} s idle")
        return [f] if f else []
    if ended is not None:  # protocol-error, oversize, flood, error
        terminal = next((e for e in reversed(conn.events) if e.kind is ended), None)
        f = judge_ending(ended, terminal, f"after {_idle_for(conn)} s of silence")
        if f is not None and ended is EndKind.ERROR:  # a socket error on an idle stream: the server broke it
            f = finding("stream.protocol-error", f.severity, f.message, f.evidence)
        return [f] if f else []
    return []


def analyze_keepalive(family: IdleFamily) -> list[Finding]:
    conn = _opened(family.get("keepalive"))
    if conn is None or conn.closed_by_us:
        return []  # not opened, or it outlived the watch: KeepAlive works on this path
    ended = conn.ended_by
    every = conn.keepalive_every_s or 0.0
    if ended in _CUT:
        ping = family.get("ping")
        pings_held = ping is not None and ping.closed_by_us
        f = _cut_finding(conn, f"a stream sending KeepAlive every {every:g} s")
        hint = (
            f" WebSocket pings every {ping.ping_every_s or 0:g} s kept the same path open (server->client pongs "
            "count for it): enable pings in your client too."
            if ping is not None and pings_held
            else ""
        )
        msg = (
            f.message + ". KeepAlive travels client->server only; some proxies (nginx proxy_read_timeout) count "
            "only server->client traffic." + hint
        )
        return [Finding(f.code, f.cause, f.severity, msg, {**f.evidence, "pings_kept_path_open": pings_held})]
    if ended is EndKind.CLOSE:
        close = _close_event(conn)
        if close is not None and is_idle_timeout(close):
            return _judge_keepalive_idle_close(family, conn, close)
        other = judge_close_code(
            close.code if close else None, close.reason if close else None, f"after {_idle_for(conn)} s of KeepAlive"
        )
        return [other] if other else []
    return []


def _keepalive_times(conn: IdleConnection) -> list[float]:
    return [e.t_s for e in conn.events if e.direction == "out" and e.msg_type == deepgram.ClientMessage.KEEPALIVE]


def _judge_keepalive_idle_close(family: IdleFamily, conn: IdleConnection, close: WireEvent) -> list[Finding]:
    """NET-0001 on the KeepAlive connection. Ineffective KeepAlive is a claim about the server's
    timer, so it needs evidence that the timer ignored them: a KeepAlive sent before the close, and
    a close that came one idle window after the idle period began (the window the silent connection
    measured), not one window after the last KeepAlive. A close before the first KeepAlive was due,
    or one window after the last KeepAlive, means KeepAlive works and this server's window is
    shorter than our interval: no finding about the client's KeepAlive."""
    sent = _keepalive_times(conn)
    idle_s = _idle_for(conn)
    every = conn.keepalive_every_s or 0.0
    window = idle_metrics(family)["server_idle_timeout_s"]
    ev: dict[str, Any] = {
        "keepalives_sent": len(sent),
        "keepalive_every_s": conn.keepalive_every_s,
        "closed_after_idle_s": idle_s,
        "server_idle_timeout_s": window,
        "reason": close.reason,
    }
    if not sent or idle_s is None:
        return []  # closed before the first KeepAlive was due: no evidence about KeepAlive at all
    close_t, idle_from = close.t_s, conn.idle_from_t or 0.0
    ev["after_last_keepalive_s"] = round(close_t - sent[-1], 3)
    if window is not None:
        tolerance = max(KEEPALIVE_TOLERANCE_S, 0.1 * window)
        if close_t - idle_from > window + tolerance:
            return []  # the KeepAlives did extend the stream: the window is shorter than our interval
    return [
        finding(
            "idle.keepalive-ineffective",
            Status.FAIL,
            f"the stream was closed with NET-0001 after {idle_s} s of idle although {len(sent)} text KeepAlive "
            f"were sent (every {every:g} s), the last {ev['after_last_keepalive_s']} s before the close: the server "
            "did not count them (check KeepAlive is sent as a text frame, and some audio within the first 10 s)",
            ev,
        )
    ]


def analyze_ping(family: IdleFamily) -> list[Finding]:
    conn = _opened(family.get("ping"))
    if conn is None:
        return []
    sent = conn.pings_sent
    rtts = pong_rtts_ms(conn)
    findings: list[Finding] = []
    if sent >= 2 and not rtts:
        findings.append(
            finding(
                "idle.no-pong",
                Status.WARN,
                f"{sent} WebSocket pings got no pong: clients with a ping timeout (python websockets: ping_interval "
                "20 s, ping_timeout 20 s) will close healthy streams with 1011 'keepalive ping timeout'",
                {"pings_sent": sent},
            )
        )
    if conn.ended_by in _CUT and not conn.closed_by_us:
        findings.append(_cut_finding(conn, "a stream sending KeepAlive and WebSocket pings"))
    return findings


def silent_summary(family: IdleFamily, idle_max_s: float) -> str:
    conn = family.get("silent")
    m = idle_metrics(family)
    if conn is None or conn.ended_by is None or conn.closed_by_us:
        return f"still open after {idle_max_s:g} s of silence: no idle timeout seen"
    if m["server_idle_timeout_s"] is not None:
        return f"closed by the server after {m['server_idle_timeout_s']} s of silence (1011 NET-0001)"
    return f"ended by {conn.ended_by} after {_idle_for(conn)} s of silence"


def keepalive_summary(family: IdleFamily) -> str:
    conn = family.get("keepalive")
    held = _idle_for(conn)
    if conn is None:
        return "no KeepAlive connection"
    if conn.closed_by_us:
        return f"open for {held} s of idle with {conn.keepalives_sent} KeepAlive (outlived the silent stream)"
    if conn.ended_by is EndKind.CLOSE and not conn.keepalives_sent:
        return (
            f"closed after {held} s idle, before the first KeepAlive was due (every "
            f"{conn.keepalive_every_s} s): this server's idle window is shorter than the interval"
        )
    return f"ended by {conn.ended_by} after {held} s idle"


class _IdleCheck(AuthenticatedCheck["IdleFamily"]):
    """The three idle checks observe one family probe; each records its own connection, named by
    its ``evidence_key``, and the metrics of :func:`idle_metrics` named in ``metric_keys``."""

    slow = True
    timeout: ClassVar[float] = 45.0
    evidence_key: ClassVar[IdleName]
    metric_keys: ClassVar[tuple[str, ...]] = ()

    def deadline_s(self, options: RunOptions) -> float:
        return options.idle_max_s + 2 * options.connect_timeout_s + 6.0

    async def observe(self, ctx: Context) -> IdleFamily | CheckResult:
        from wsdoctor.probes.idle import run_idle_family

        async def probe() -> IdleFamily:
            return await run_idle_family(ctx)

        return await ctx.shared(_FAMILY_KEY, probe)

    def measure(self, obs: IdleFamily) -> dict[str, float | int | None]:
        m = idle_metrics(obs)
        return {k: m[k] for k in self.metric_keys}

    def evidence(self, obs: IdleFamily) -> dict[str, JSONValue]:
        conn = obs.get(self.evidence_key)
        return {self.evidence_key: conn.to_dict() if conn is not None else {}}


class IdleSilent(_IdleCheck):
    apis: ClassVar[frozenset[str] | None] = frozenset({"listen"})  # /v1/listen's protocol
    id = "idle.silent"
    title = "A silent stream is closed by the server (1011 NET-0001), not cut by the path"
    evidence_key = "silent"
    metric_keys = ("server_idle_timeout_s", "idle_cutoff_s", "family_wall_s")

    def judge(self, obs: IdleFamily, ctx: Context) -> list[Finding]:
        return analyze_silent(obs)

    def summarize(self, obs: IdleFamily, ctx: Context) -> str:
        return silent_summary(obs, ctx.options.idle_max_s)


class IdleKeepalive(_IdleCheck):
    id = "idle.keepalive"
    title = "KeepAlive every 4 s keeps a stream open past the idle window"
    evidence_key = "keepalive"

    def judge(self, obs: IdleFamily, ctx: Context) -> list[Finding]:
        return analyze_keepalive(obs)

    def summarize(self, obs: IdleFamily, ctx: Context) -> str:
        return keepalive_summary(obs)

    def measure(self, obs: IdleFamily) -> dict[str, float | None]:
        return {"keepalive_held_s": _idle_for(obs.get("keepalive"))}


class IdlePing(_IdleCheck):
    id = "idle.ping"
    title = "WebSocket pings are answered across the path"
    evidence_key = "ping"
    metric_keys = ("pings_sent", "pongs", "pong_rtt_p50_ms", "pong_rtt_max_ms")

    def judge(self, obs: IdleFamily, ctx: Context) -> list[Finding]:
        return analyze_ping(obs)

    def summarize(self, obs: IdleFamily, ctx: Context) -> str:
        m = idle_metrics(obs)
        if not m["pings_sent"]:
            return "no ping sent"
        return f"{m['pongs']}/{m['pings_sent']} pings answered, RTT p50 {m['pong_rtt_p50_ms']} ms"


CHECKS = (IdleSilent, IdleKeepalive, IdlePing)
