"""Load mode: does the path hold N concurrent real-time streams?

Theory of operation. ``run_load`` starts ``streams`` authenticated connections at ``ramp`` new
streams per second. Each one streams the bundled speech in a loop at real-time pace (100 ms frames)
for ``duration_s``, then sends CloseStream and waits (bounded) for the close. Per stream it records
facts only: how the Upgrade was answered (101, or the status with ``dg-error``), the handshake time,
the time to the first Results, how it ended (clean close, close code, EOF, reset) and how many
streams were open when it was rejected. ``analyze_load`` (pure) turns them into percentiles and
findings: rejections with 429 mean a concurrency or rate limit (account-limits), and the level of
concurrency where they began is the limit; drops are classified like any other ending.

Bounds: ``streams <= 1000``, ``duration_s <= 600``; every wait is bounded, and the whole run is cut
at ``duration + ramp time + 3 x connect timeout + 2 x close wait`` whatever happens.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from wsdoctor import deepgram
from wsdoctor.causes import cause_for
from wsdoctor.check import Context
from wsdoctor.errors import UsageError
from wsdoctor.model import Finding, JSONValue, Status
from wsdoctor.probes.audio import CHUNK_S, load_wav
from wsdoctor.probes.session import pump_until_end, stop_pump, wait_end
from wsdoctor.probes.wsclient import WsProbe

__all__ = ["MAX_DURATION_S", "MAX_STREAMS", "analyze_load", "check_target_allowed", "percentiles", "run_load"]

MAX_STREAMS = 1000
MAX_DURATION_S = 600.0


def check_target_allowed(host: str, i_own_it: bool) -> None:
    """Load goes to loopback only, unless the user says the endpoint is theirs."""
    if i_own_it:
        return
    if host.lower() == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise UsageError(
        f"refusing to load {host!r}: not a loopback address (pass --i-own-this-endpoint if it is yours "
        "and you accept the cost; Deepgram bills streamed audio)"
    )


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    """min/p50/p95/p99/max by nearest rank (what was seen, no interpolation)."""
    if not values:
        return {"min": None, "p50": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))], 4)

    return {
        "min": round(ordered[0], 4),
        "p50": rank(0.5),
        "p95": rank(0.95),
        "p99": rank(0.99),
        "max": round(ordered[-1], 4),
    }


async def _one_stream(
    ctx: Context, index: int, duration_s: float, frames: list[bytes], loop_frames: list[bytes], active: list[int]
) -> dict[str, JSONValue]:
    loop = asyncio.get_running_loop()
    record: dict[str, JSONValue] = {"index": index}
    async with WsProbe(ctx, credentials=True) as probe:
        upgrade = await probe.connect()
        record["outcome"] = upgrade.outcome
        marks = dict(upgrade.marks)
        if "connecting" in marks and ("open" in marks or "closed" in marks):
            record["handshake_s"] = round(marks.get("open", marks.get("closed", 0.0)) - marks["connecting"], 4)
        if upgrade.outcome != "upgraded":
            record["active_when_rejected"] = active[0]
            if upgrade.answer is not None:
                record["status"] = upgrade.answer.status
                record["dg_error"] = upgrade.answer.header(deepgram.HEADER_ERROR)
                record["from_deepgram"] = upgrade.answer.header(deepgram.HEADER_REQUEST_ID) is not None
            record["error"] = upgrade.error
            return record
        active[0] += 1
        record["active_at_open"] = active[0]
        pump = asyncio.create_task(pump_until_end(probe))
        end_at = loop.time() + duration_s
        try:
            i = 0
            next_send = loop.time()
            while loop.time() < end_at and not pump.done():
                frame = frames[i] if i < len(frames) else loop_frames[i % len(loop_frames)]
                if not await probe.send_audio(frame):
                    break
                i += 1
                next_send += CHUNK_S
                await asyncio.wait({pump}, timeout=max(0.0, next_send - loop.time()))
            dropped = pump.done() or probe.terminal() is not None
            record["dropped"] = dropped
            if not dropped:
                await probe.send_json(deepgram.client_message(deepgram.ClientMessage.CLOSE_STREAM))
                if not await wait_end(pump, ctx.options.close_wait_s):
                    await probe.send_close(1000)
                    await wait_end(pump, ctx.options.close_wait_s)
        finally:
            active[0] -= 1
            await stop_pump(pump)
        results = [e for e in probe.events if e.msg_type == deepgram.ServerMessage.RESULTS]
        if results and probe.audio_first_t is not None:
            record["first_result_s"] = round(results[0].t_s - probe.audio_first_t, 4)
        record["results"] = len(results)
        record["audio_s"] = round(i * CHUNK_S, 2)
        term = probe.terminal()
        record["ended_by"] = term.kind if term else None
        if term is not None and term.kind == "close":
            record["close_code"] = term.code
            record["close_reason"] = term.reason
        return record


async def run_load(ctx: Context, *, streams: int, duration_s: float, ramp_per_s: float) -> dict[str, JSONValue]:
    if not 1 <= streams <= MAX_STREAMS:
        raise UsageError(f"--streams {streams}: between 1 and {MAX_STREAMS}")
    if not 0 < duration_s <= MAX_DURATION_S:
        raise UsageError(f"--duration {duration_s:g}: between 0 and {MAX_DURATION_S:g} seconds")
    if not ramp_per_s > 0:
        raise UsageError("--ramp must be a positive number of streams per second")
    audio = load_wav(ctx.options.audio_path)
    frames = audio.chunks()
    loop_frames = list(frames)
    loop_frames[0] = loop_frames[0][len(audio.header) :]
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    active = [0]
    ramp_s = (streams - 1) / ramp_per_s
    bound = duration_s + ramp_s + 3 * ctx.options.connect_timeout_s + 2 * ctx.options.close_wait_s + 5.0

    async def started(i: int) -> dict[str, JSONValue]:
        await asyncio.sleep(max(0.0, t0 + i / ramp_per_s - loop.time()))
        record = await _one_stream(ctx, i, duration_s, frames, loop_frames, active)
        record["started_s"] = round(loop.time() - t0, 3)
        return record

    tasks = [asyncio.create_task(started(i)) for i in range(streams)]
    interrupted = False
    try:
        done, pending = await asyncio.wait(tasks, timeout=bound)
    except asyncio.CancelledError:  # Ctrl-C / SIGTERM: account for what ran, as a partial report
        interrupted = True
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()
        done = {t for t in tasks if t.done()}
        pending = {t for t in tasks if not t.done()}
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=3.0)  # their probes close their sockets on the way out
    records: list[dict[str, JSONValue]] = []
    for i, task in enumerate(tasks):
        if task in done and not task.cancelled() and task.exception() is None:
            records.append(task.result())
        else:
            cut = "interrupted" if interrupted else "cut at the run bound"
            reason = cut if task in pending else f"error: {task.exception()!r}"[:200]
            records.append({"index": i, "outcome": "unfinished", "error": reason})
    return {
        "streams": streams,
        "duration_s": duration_s,
        "ramp_per_s": ramp_per_s,
        "wall_s": round(loop.time() - t0, 3),
        "interrupted": interrupted,
        "records": records,
    }


def analyze_load(obs: Mapping[str, Any]) -> tuple[dict[str, JSONValue], list[Finding]]:
    """Percentiles, accounting and findings from the per-stream records. Pure."""
    records = list(obs.get("records", []))
    upgraded = [r for r in records if r.get("outcome") == "upgraded"]
    rejected = [r for r in records if r.get("outcome") == "http-response"]
    unfinished = [r for r in records if r.get("outcome") == "unfinished"]  # cut by the bound or a signal
    failed = [r for r in records if r.get("outcome") not in ("upgraded", "http-response", "unfinished")]
    clean = [
        r for r in upgraded if not r.get("dropped") and r.get("ended_by") == "close" and r.get("close_code") == 1000
    ]
    dropped = [r for r in upgraded if r.get("dropped")]
    unclean = [r for r in upgraded if r not in clean and r not in dropped]
    by_status = Counter(str(r.get("status")) for r in rejected)
    drops_by = Counter(
        f"{r.get('ended_by')}{' ' + str(r.get('close_code')) if r.get('close_code') else ''}" for r in dropped
    )
    limited = [r for r in rejected if r.get("status") == 429]
    first_limit = min((int(r.get("active_when_rejected") or 0) for r in limited), default=None)
    summary: dict[str, JSONValue] = {
        "streams": len(records),
        "upgraded": len(upgraded),
        "completed_clean": len(clean),
        "dropped": len(dropped),
        "ended_unclean": len(unclean),
        "rejected": len(rejected),
        "failed_to_connect": len(failed),
        "unfinished": len(unfinished),
        "rejected_by_status": dict(by_status),
        "drops_by_ending": dict(drops_by),
        "max_concurrent_open": max((int(r.get("active_at_open") or 0) for r in upgraded), default=0),
        "limit_reached_at": first_limit,
        "handshake_s": percentiles([float(r["handshake_s"]) for r in records if r.get("handshake_s") is not None]),
        "first_result_s": percentiles(
            [float(r["first_result_s"]) for r in upgraded if r.get("first_result_s") is not None]
        ),
    }
    assert len(clean) + len(dropped) + len(unclean) + len(rejected) + len(failed) + len(unfinished) == len(records)
    findings: list[Finding] = []
    if limited:
        findings.append(
            Finding(
                "ws.rate-limited",
                "account-limits",
                Status.FAIL,
                f"{len(limited)} of {len(records)} streams were refused with 429 once about {first_limit} were open: "
                f"a concurrency limit of ~{first_limit} streams on this key/path",
                {"limit_reached_at": first_limit, "rejected_429": len(limited)},
            )
        )
    others = {s: n for s, n in by_status.items() if s != "429"}
    if others:
        findings.append(
            Finding(
                "ws.server-error" if any(s.startswith("5") for s in others) else "ws.auth-rejected",
                "service" if any(s.startswith("5") for s in others) else "credentials",
                Status.FAIL,
                f"streams refused with {dict(others)}",
                {"rejected_by_status": others},
            )
        )
    if dropped:
        code = (
            "stream.reset"
            if any(r.get("ended_by") in ("reset", "error") for r in dropped)
            else "close.no-close-frame"
            if any(r.get("ended_by") == "eof" for r in dropped)
            else "close.unexpected-code"
        )
        findings.append(
            Finding(
                code,
                cause_for(code) if code != "close.unexpected-code" else "service",
                Status.FAIL,
                f"{len(dropped)} of {len(upgraded)} open streams ended early: {dict(drops_by)}",
                {"drops_by_ending": dict(drops_by)},
            )
        )
    if failed:
        kinds = Counter(str(r.get("outcome")) for r in failed)
        findings.append(
            Finding(
                "http.no-response",
                cause_for("http.no-response"),
                Status.FAIL,
                f"{len(failed)} streams could not connect: {dict(kinds)}",
                {"outcomes": dict(kinds)},
            )
        )
    p95 = summary["first_result_s"]["p95"] if isinstance(summary["first_result_s"], dict) else None
    if isinstance(p95, float) and p95 > 3.0:
        findings.append(
            Finding(
                "stream.slow-first-result",
                "service",
                Status.WARN,
                f"first Results p95 {p95:.2f} s under load (Deepgram: ~1 s)",
                {"p95_s": p95},
            )
        )
    return summary, findings
