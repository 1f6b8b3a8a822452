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
from collections.abc import Mapping
from typing import Any, ClassVar

from checks.close import is_idle_timeout, judge_close_code, judge_ending
from checks.ws import AuthenticatedCheck
from wsdoctor import deepgram
from wsdoctor.causes import cause_for
from wsdoctor.check import Context, RunOptions
from wsdoctor.model import CheckResult, Finding, Status

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

_FAMILY_KEY = "idle.family"
#: How much later than the silent stream's window a KeepAlive stream must close for its KeepAlives
#: to count as having extended it (timers on both ends jitter by tens of milliseconds).
KEEPALIVE_TOLERANCE_S = 0.5


def _conn(family: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    return next((c for c in family.get("connections", []) if c.get("name") == name), None)


def _idle_for(conn: Mapping[str, Any]) -> float | None:
    """Seconds between the start of the idle period and the end of the connection."""
    start = conn.get("idle_from_t")
    end = conn.get("end_t")
    if start is None or end is None:
        return None
    return round(float(end) - float(start), 3)


def _close_event(conn: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return next((e for e in conn.get("events", []) if e.get("direction") == "in" and e.get("kind") == "close"), None)


def _metadata_before_close(conn: Mapping[str, Any]) -> bool:
    close = _close_event(conn)
    return close is not None and any(
        e.get("msg_type") == deepgram.ServerMessage.METADATA and e["t_s"] <= close["t_s"]
        for e in conn.get("events", [])
    )


def idle_metrics(family: Mapping[str, Any]) -> dict[str, float | int | None]:
    silent = _conn(family, "silent") or {}
    ping = _conn(family, "ping") or {}
    server_timeout = cutoff = None
    close = _close_event(silent)
    if silent.get("ended_by") == "close" and is_idle_timeout(close):
        server_timeout = _idle_for(silent)
    if silent.get("ended_by") in ("eof", "reset"):
        cutoff = _idle_for(silent)
    rtts = pong_rtts_ms(ping)
    return {
        "server_idle_timeout_s": server_timeout,
        "idle_cutoff_s": cutoff,
        "pings_sent": int(ping.get("pings_sent", 0)),
        "pongs": len(rtts),
        "pong_rtt_p50_ms": round(statistics.median(rtts), 2) if rtts else None,
        "pong_rtt_max_ms": round(max(rtts), 2) if rtts else None,
        "family_wall_s": family.get("wall_s"),
    }


def pong_rtts_ms(conn: Mapping[str, Any]) -> list[float]:
    """Round trips, pairing each pong with the earliest unanswered ping (pongs come back in order)."""
    pending: list[float] = []
    rtts: list[float] = []
    for e in conn.get("events", []):
        if e.get("kind") == "ping" and e.get("direction") == "out":
            pending.append(float(e["t_s"]))
        elif e.get("kind") == "pong" and e.get("direction") == "in" and pending:
            rtts.append((float(e["t_s"]) - pending.pop(0)) * 1000)
    return rtts


def _cut_finding(conn: Mapping[str, Any], what: str) -> Finding:
    idle_s = _idle_for(conn)
    return Finding(
        "idle.middlebox-cutoff",
        cause_for("idle.middlebox-cutoff"),
        Status.FAIL,
        f"{what} was cut after {idle_s:.1f} s idle without a close frame and without Deepgram's NET-0001 reason: "
        f"a proxy, firewall or load balancer idle timeout of about {idle_s:.0f} s on the path",
        {"idle_cutoff_s": idle_s, "ended_by": conn.get("ended_by"), "connection": conn.get("name")},
    )


def analyze_silent(family: Mapping[str, Any]) -> list[Finding]:
    conn = _conn(family, "silent")
    if not conn or conn["upgrade"]["outcome"] != "upgraded":
        return []
    ended = conn.get("ended_by")
    if ended in ("eof", "reset"):
        return [_cut_finding(conn, "a silent stream")]
    if ended == "close":
        close = _close_event(conn) or {}
        idle_s = _idle_for(conn)
        if is_idle_timeout(close):
            first = "after its Metadata" if _metadata_before_close(conn) else "without Metadata first"
            return [
                Finding(
                    "idle.server-timeout",
                    cause_for("idle.server-timeout"),
                    Status.INFO,
                    f"Deepgram closes a silent stream after {idle_s:.1f} s with {close.get('code')} NET-0001 "
                    f"({first}): a client must send a text KeepAlive every 3-5 s while no audio flows",
                    {
                        "server_idle_timeout_s": idle_s,
                        "code": close.get("code"),
                        "reason": close.get("reason"),
                        "metadata_first": _metadata_before_close(conn),
                    },
                )
            ]
        f = judge_close_code(close.get("code"), close.get("reason"), f"after {idle_s} s idle")
        return [f] if f else []
    if ended in ("protocol-error", "oversize", "error", "flood"):
        terminal = next((e for e in reversed(conn.get("events", [])) if e.get("kind") == ended), None)
        f = judge_ending(str(ended), terminal, f"after {_idle_for(conn)} s of silence")
        if f is not None and ended == "error":  # a socket error on an idle stream: the server broke it
            f = Finding("stream.protocol-error", cause_for("stream.protocol-error"), f.severity, f.message, f.evidence)
        return [f] if f else []
    return []


def analyze_keepalive(family: Mapping[str, Any]) -> list[Finding]:
    conn = _conn(family, "keepalive")
    if not conn or conn["upgrade"]["outcome"] != "upgraded":
        return []
    ended = conn.get("ended_by")
    if conn.get("closed_by_us"):
        return []  # it outlived the watch: KeepAlive works on this path
    every = conn.get("keepalive_every_s")
    if ended in ("eof", "reset"):
        ping = _conn(family, "ping") or {}
        f = _cut_finding(conn, f"a stream sending KeepAlive every {every:g} s")
        hint = (
            " WebSocket pings every {:g} s kept the same path open (server->client pongs count for it): "
            "enable pings in your client too.".format(ping.get("ping_every_s") or 0)
            if ping.get("closed_by_us")
            else ""
        )
        msg = (
            f.message + ". KeepAlive travels client->server only; some proxies (nginx proxy_read_timeout) count "
            "only server->client traffic." + hint
        )
        return [
            Finding(
                f.code, f.cause, f.severity, msg, {**f.evidence, "pings_kept_path_open": bool(ping.get("closed_by_us"))}
            )
        ]
    if ended == "close":
        close = _close_event(conn) or {}
        if is_idle_timeout(close):
            return _judge_keepalive_idle_close(family, conn, close)
        other = judge_close_code(close.get("code"), close.get("reason"), f"after {_idle_for(conn)} s of KeepAlive")
        return [other] if other else []
    return []


def _keepalive_times(conn: Mapping[str, Any]) -> list[float]:
    return [
        float(e["t_s"])
        for e in conn.get("events", [])
        if e.get("direction") == "out" and e.get("msg_type") == deepgram.ClientMessage.KEEPALIVE
    ]


def _judge_keepalive_idle_close(
    family: Mapping[str, Any], conn: Mapping[str, Any], close: Mapping[str, Any]
) -> list[Finding]:
    """NET-0001 on the KeepAlive connection. Ineffective KeepAlive is a claim about the server's
    timer, so it needs evidence that the timer ignored them: a KeepAlive sent before the close, and
    a close that came one idle window after the idle period began (the window the silent connection
    measured), not one window after the last KeepAlive. A close before the first KeepAlive was due,
    or one window after the last KeepAlive, means KeepAlive works and this server's window is
    shorter than our interval: no finding about the client's KeepAlive."""
    sent = _keepalive_times(conn)
    idle_s = _idle_for(conn)
    every = conn.get("keepalive_every_s")
    window = idle_metrics(family)["server_idle_timeout_s"]
    ev: dict[str, Any] = {
        "keepalives_sent": len(sent),
        "keepalive_every_s": every,
        "closed_after_idle_s": idle_s,
        "server_idle_timeout_s": window,
        "reason": close.get("reason"),
    }
    if not sent or idle_s is None:
        return []  # closed before the first KeepAlive was due: no evidence about KeepAlive at all
    close_t, idle_from = float(close["t_s"]), float(conn.get("idle_from_t") or 0.0)
    ev["after_last_keepalive_s"] = round(close_t - sent[-1], 3)
    if isinstance(window, int | float):
        tolerance = max(KEEPALIVE_TOLERANCE_S, 0.1 * window)
        if close_t - idle_from > window + tolerance:
            return []  # the KeepAlives did extend the stream: the window is shorter than our interval
    return [
        Finding(
            "idle.keepalive-ineffective",
            cause_for("idle.keepalive-ineffective"),
            Status.FAIL,
            f"the stream was closed with NET-0001 after {idle_s} s of idle although {len(sent)} text KeepAlive "
            f"were sent (every {every:g} s), the last {ev['after_last_keepalive_s']} s before the close: the server "
            "did not count them (check KeepAlive is sent as a text frame, and some audio within the first 10 s)",
            ev,
        )
    ]


def analyze_ping(family: Mapping[str, Any]) -> list[Finding]:
    conn = _conn(family, "ping")
    if not conn or conn["upgrade"]["outcome"] != "upgraded":
        return []
    sent = int(conn.get("pings_sent", 0))
    rtts = pong_rtts_ms(conn)
    findings: list[Finding] = []
    if sent >= 2 and not rtts:
        findings.append(
            Finding(
                "idle.no-pong",
                cause_for("idle.no-pong"),
                Status.WARN,
                f"{sent} WebSocket pings got no pong: clients with a ping timeout (python websockets: ping_interval "
                "20 s, ping_timeout 20 s) will close healthy streams with 1011 'keepalive ping timeout'",
                {"pings_sent": sent},
            )
        )
    if conn.get("ended_by") in ("eof", "reset") and not conn.get("closed_by_us"):
        findings.append(_cut_finding(conn, "a stream sending KeepAlive and WebSocket pings"))
    return findings


class _IdleCheck(AuthenticatedCheck):
    slow = True
    timeout: ClassVar[float] = 45.0

    def deadline_s(self, options: RunOptions) -> float:
        return options.idle_max_s + 2 * options.connect_timeout_s + 6.0

    async def family(self, ctx: Context) -> dict[str, Any] | CheckResult:
        from wsdoctor.probes.idle import run_idle_family

        if (skipped := self.auth_skip(ctx)) is not None:
            return skipped

        async def probe() -> dict[str, Any]:
            return (await run_idle_family(ctx)).to_dict()

        return await ctx.shared(_FAMILY_KEY, probe)


class IdleSilent(_IdleCheck):
    id = "idle.silent"
    title = "A silent stream is closed by the server (1011 NET-0001), not cut by the path"

    async def run(self, ctx: Context) -> CheckResult:
        family = await self.family(ctx)
        if isinstance(family, CheckResult):
            return family
        conn = _conn(family, "silent") or {}
        m = idle_metrics(family)
        ended = conn.get("ended_by")
        if ended is None or conn.get("closed_by_us"):
            summary = f"still open after {ctx.options.idle_max_s:g} s of silence: no idle timeout seen"
        elif m["server_idle_timeout_s"] is not None:
            summary = f"closed by the server after {m['server_idle_timeout_s']} s of silence (1011 NET-0001)"
        else:
            summary = f"ended by {ended} after {_idle_for(conn)} s of silence"
        return self.result(
            analyze_silent(family),
            summary=summary,
            metrics={k: m[k] for k in ("server_idle_timeout_s", "idle_cutoff_s", "family_wall_s")},
            evidence={"silent": conn},
        )


class IdleKeepalive(_IdleCheck):
    id = "idle.keepalive"
    title = "KeepAlive every 4 s keeps a stream open past the idle window"

    async def run(self, ctx: Context) -> CheckResult:
        family = await self.family(ctx)
        if isinstance(family, CheckResult):
            return family
        conn = _conn(family, "keepalive") or {}
        held = _idle_for(conn)
        if conn.get("closed_by_us"):
            sent = conn.get("keepalives_sent")
            summary = f"open for {held} s of idle with {sent} KeepAlive (outlived the silent stream)"
        elif conn.get("ended_by") == "close" and not conn.get("keepalives_sent"):
            summary = (
                f"closed after {held} s idle, before the first KeepAlive was due (every "
                f"{conn.get('keepalive_every_s')} s): this server's idle window is shorter than the interval"
            )
        else:
            summary = f"ended by {conn.get('ended_by')} after {held} s idle"
        return self.result(
            analyze_keepalive(family), summary=summary, metrics={"keepalive_held_s": held}, evidence={"keepalive": conn}
        )


class IdlePing(_IdleCheck):
    id = "idle.ping"
    title = "WebSocket pings are answered across the path"

    async def run(self, ctx: Context) -> CheckResult:
        family = await self.family(ctx)
        if isinstance(family, CheckResult):
            return family
        conn = _conn(family, "ping") or {}
        m = idle_metrics(family)
        summary = (
            f"{m['pongs']}/{m['pings_sent']} pings answered, RTT p50 {m['pong_rtt_p50_ms']} ms"
            if m["pings_sent"]
            else "no ping sent"
        )
        return self.result(
            analyze_ping(family),
            summary=summary,
            metrics={k: m[k] for k in ("pings_sent", "pongs", "pong_rtt_p50_ms", "pong_rtt_max_ms")},
            evidence={"ping": conn},
        )


CHECKS = (IdleSilent, IdleKeepalive, IdlePing)
