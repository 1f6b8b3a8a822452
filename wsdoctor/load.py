"""Load mode: does the path hold N concurrent real-time streams?

Theory of operation. ``run_load`` starts ``streams`` authenticated connections at ``ramp`` new
streams per second. Each one streams the bundled speech in a loop at real-time pace (100 ms frames)
for ``duration_s``, then ends the way the close check's *closestream* session does: CloseStream,
a bounded wait, our own close frame if nothing closed the stream, a bounded wait again. Per stream
it records facts -- how the Upgrade was answered (101, or the status with ``dg-error``), the
handshake time, the time to the first Results, how it ended (clean close, close code, EOF, reset),
how many streams were open when it was rejected -- and the stream's finding, judged by the very
functions the checks judge one connection with (:func:`judge_stream`): a refused Upgrade as
ws.auth and http.upgrade judge it (402 ``ws.payment-required``, 400 ``ws.bad-request`` with the
cause its body blames, 429 ``ws.rate-limited``...), an open stream's ending as close.handshake
judges its closestream session (``close.no-close-frame``, ``stream.reset``, a close code...).
``analyze_load`` (pure) turns the records into accounting, percentiles and one finding per code:
for 429s also the level of concurrency where they began, the limit.

Bounds: ``streams <= 1000``, ``duration_s <= 600``; every wait is bounded, and the whole run is cut
at ``duration + ramp time + 3 x connect timeout + 2 x close wait`` whatever happens.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from checks.close import analyze_closestream
from checks.http import analyze as analyze_upgrade
from checks.ws import analyze as analyze_auth
from wsdoctor import deepgram
from wsdoctor.causes import cause_for
from wsdoctor.check import Context
from wsdoctor.errors import UsageError
from wsdoctor.model import EndKind, Finding, JSONValue, Outcome, Status
from wsdoctor.probes.audio import CHUNK_S, SpeechAudio, load_wav, stream_realtime
from wsdoctor.probes.session import SessionObservation, pump_until_end, stop_pump, wait_end
from wsdoctor.probes.wsclient import UpgradeObservation, WsProbe
from wsdoctor.sanitize import printable

__all__ = [
    "MAX_DURATION_S",
    "MAX_STREAMS",
    "analyze_load",
    "check_target_allowed",
    "judge_stream",
    "percentiles",
    "run_load",
]

MAX_STREAMS = 1000
MAX_DURATION_S = 600.0
#: A stream still running when the run was cut (its bound, or a signal): not an Upgrade outcome.
UNFINISHED = "unfinished"


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


def judge_stream(upgrade: UpgradeObservation, session: SessionObservation | None = None) -> Finding | None:
    """One stream's finding, as the checks judge one connection: a refused or failed Upgrade as
    ws.auth judges it (http.upgrade for what ws.auth leaves to it: no HTTP answer, a redirect, a
    broken 101); an open stream as close.handshake judges its closestream ``session``. ``None``: a
    clean stream."""
    if upgrade.outcome is Outcome.UPGRADED:
        found = analyze_closestream(session) if session is not None else []
    else:
        found = analyze_auth(upgrade, own=False) or analyze_upgrade(upgrade)
        if not found:  # an answer no check classifies (a 404 from Deepgram): the stream did not open
            said = f"HTTP {upgrade.answer.status}" if upgrade.answer is not None else upgrade.outcome.value
            found = [
                Finding(
                    "http.no-response",
                    cause_for("http.no-response"),
                    Status.FAIL,
                    f"the stream could not be opened: {said}",
                    {"outcome": upgrade.outcome.value},
                )
            ]
    return found[0] if found else None


def _finding_record(finding: Finding | None) -> dict[str, JSONValue] | None:
    """What a record keeps of its stream's finding (the evidence is the record itself)."""
    if finding is None:
        return None
    return {
        "code": finding.code,
        "cause": finding.cause,
        "severity": finding.severity.value,
        "message": printable(finding.message, 400),
    }


async def _one_stream(ctx: Context, index: int, chunks: list[bytes], active: list[int]) -> dict[str, JSONValue]:
    record: dict[str, JSONValue] = {"index": index}
    wait = ctx.options.close_wait_s
    async with WsProbe(ctx, credentials=True) as probe:
        upgrade = await probe.connect()
        record["outcome"] = upgrade.outcome.value
        marks = dict(upgrade.marks)
        if "connecting" in marks and ("open" in marks or "closed" in marks):
            record["handshake_s"] = round(marks.get("open", marks.get("closed", 0.0)) - marks["connecting"], 4)
        if upgrade.outcome is not Outcome.UPGRADED:
            record["active_when_rejected"] = active[0]
            if upgrade.answer is not None:
                record["status"] = upgrade.answer.status
                record["dg_error"] = upgrade.answer.header(deepgram.HEADER_ERROR)
                record["from_deepgram"] = upgrade.answer.header(deepgram.HEADER_REQUEST_ID) is not None
            record["error"] = upgrade.error
            record["finding"] = _finding_record(judge_stream(upgrade))
            return record
        active[0] += 1
        record["active_at_open"] = active[0]
        open_t = probe.now()
        closestream_t = None
        pump = asyncio.create_task(pump_until_end(probe))
        try:
            sent = await stream_realtime(chunks, probe.send_audio)
            dropped = pump.done() or probe.terminal() is not None
            record["dropped"] = dropped
            # The closestream session's ending: CloseStream, then our close frame, each waited for.
            if not dropped and await probe.send_json(deepgram.client_message(deepgram.ClientMessage.CLOSE_STREAM)):
                closestream_t = probe.now()
                if not await wait_end(pump, wait) and await probe.send_close(deepgram.CLOSE_NORMAL):
                    await wait_end(pump, wait)
        finally:
            active[0] -= 1
            await stop_pump(pump)
        results = [e for e in probe.events if e.msg_type == deepgram.ServerMessage.RESULTS]
        if results and probe.audio_first_t is not None:
            record["first_result_s"] = round(results[0].t_s - probe.audio_first_t, 4)
        record["results"] = len(results)
        record["audio_s"] = audio_s = round(sent * CHUNK_S, 2)
        term = probe.terminal()
        record["ended_by"] = term.kind.value if term else None
        if term is not None and term.kind is EndKind.CLOSE:
            record["close_code"] = term.code
            record["close_reason"] = term.reason
        # This stream as close.handshake records its closestream session: what its judge reads.
        session = SessionObservation(
            upgrade=upgrade, ending="closestream", close_wait_s=wait, audio_s=audio_s, open_t=open_t,
            closestream_t=closestream_t, close_sent_t=probe.close_sent_t,
            terminal=term.end_kind if term else None, events=tuple(probe.events),
        )  # fmt: skip
        record["finding"] = _finding_record(judge_stream(upgrade, session))
        return record


def _looped_chunks(audio: SpeechAudio, duration_s: float) -> list[bytes]:
    """``duration_s`` of 100 ms chunks: the speech with its WAV header, then its PCM again and again.
    One list for every stream (it only holds references to the same few chunks)."""
    first = audio.chunks()
    again = [first[0][len(audio.header) :], *first[1:]]
    count = max(1, math.ceil(duration_s / CHUNK_S - 1e-9))
    return [first[i] if i < len(first) else again[i % len(again)] for i in range(count)]


async def run_load(ctx: Context, *, streams: int, duration_s: float, ramp_per_s: float) -> dict[str, JSONValue]:
    if not 1 <= streams <= MAX_STREAMS:
        raise UsageError(f"--streams {streams}: between 1 and {MAX_STREAMS}")
    if not 0 < duration_s <= MAX_DURATION_S:
        raise UsageError(f"--duration {duration_s:g}: between 0 and {MAX_DURATION_S:g} seconds")
    if not ramp_per_s > 0:
        raise UsageError("--ramp must be a positive number of streams per second")
    chunks = _looped_chunks(load_wav(ctx.options.audio_path), duration_s)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    active = [0]
    ramp_s = (streams - 1) / ramp_per_s
    bound = duration_s + ramp_s + 3 * ctx.options.connect_timeout_s + 2 * ctx.options.close_wait_s + 5.0

    async def started(i: int) -> dict[str, JSONValue]:
        await asyncio.sleep(max(0.0, t0 + i / ramp_per_s - loop.time()))
        record = await _one_stream(ctx, i, chunks, active)
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
            records.append({"index": i, "outcome": UNFINISHED, "error": reason})
    return {
        "streams": streams,
        "duration_s": duration_s,
        "ramp_per_s": ramp_per_s,
        "slow_first_result_s": ctx.options.slow_first_result_s,
        "wall_s": round(loop.time() - t0, 3),
        "interrupted": interrupted,
        "records": records,
    }


def _worst(severities: Sequence[object]) -> Status:
    for status in (Status.FAIL, Status.WARN):
        if status.value in severities:
            return status
    return Status.INFO


def _ending(record: Mapping[str, Any]) -> str:
    """How an open stream ended, for counting: ``eof``, ``reset``, ``close 1011``..."""
    code = record.get("close_code")
    return f"{record.get('ended_by')}{' ' + str(code) if code else ''}"


def _grouped(records: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], list[Mapping[str, Any]]]:
    """The streams that have a finding, by (code, cause), in the order the codes first appear."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in records:
        f = r.get("finding")
        if isinstance(f, Mapping):
            groups.setdefault((str(f.get("code")), str(f.get("cause"))), []).append(r)
    return groups


def _group_finding(code: str, cause: str, streams: Sequence[Mapping[str, Any]], total: int) -> Finding:
    """One finding for every stream the checks' judgement gave ``code`` and ``cause``."""
    first = streams[0]["finding"]
    severity = _worst([r["finding"].get("severity") for r in streams])
    evidence: dict[str, JSONValue] = {"streams": len(streams), "first_stream": streams[0].get("index")}
    statuses = Counter(str(r["status"]) for r in streams if r.get("status") is not None)
    endings = Counter(_ending(r) for r in streams if r.get("outcome") == Outcome.UPGRADED)
    if statuses:
        evidence["by_status"] = dict(statuses)
    if endings:
        evidence["by_ending"] = dict(endings)
    message = f"{len(streams)} of {total} streams; the first: {first.get('message')}"
    if code == "ws.rate-limited":
        limit = min(int(r.get("active_when_rejected") or 0) for r in streams)
        evidence["limit_reached_at"] = limit
        where = (
            f"once about {limit} were open: a concurrency limit of ~{limit} streams on this key/path"
            if limit
            else "before any was open: a rate limit, or a concurrency limit already used up elsewhere"
        )
        message = f"{len(streams)} of {total} streams were refused with 429 {where}"
    return Finding(code, cause, severity, message, evidence)


def analyze_load(obs: Mapping[str, Any]) -> tuple[dict[str, JSONValue], list[Finding]]:
    """Accounting, percentiles and findings from the per-stream records. Pure.

    Every stream the checks' judgement (:func:`judge_stream`) gave a finding counts towards one
    finding per code and cause, in the order the codes first appear."""
    records = list(obs.get("records", []))
    upgraded = [r for r in records if r.get("outcome") == Outcome.UPGRADED]
    rejected = [r for r in records if r.get("outcome") == Outcome.HTTP_RESPONSE]
    unfinished = [r for r in records if r.get("outcome") == UNFINISHED]  # cut by the bound or a signal
    failed = [r for r in records if r.get("outcome") not in (Outcome.UPGRADED, Outcome.HTTP_RESPONSE, UNFINISHED)]
    clean = [
        r
        for r in upgraded
        if not r.get("dropped") and r.get("ended_by") == EndKind.CLOSE and r.get("close_code") == deepgram.CLOSE_NORMAL
    ]
    dropped = [r for r in upgraded if r.get("dropped")]
    unclean = [r for r in upgraded if r not in clean and r not in dropped]
    groups = _grouped(records)
    limited = groups.get(("ws.rate-limited", "account-limits"), [])
    summary: dict[str, JSONValue] = {
        "streams": len(records),
        "upgraded": len(upgraded),
        "completed_clean": len(clean),
        "dropped": len(dropped),
        "ended_unclean": len(unclean),
        "rejected": len(rejected),
        "failed_to_connect": len(failed),
        "unfinished": len(unfinished),
        "rejected_by_status": dict(Counter(str(r.get("status")) for r in rejected)),
        "drops_by_ending": dict(Counter(_ending(r) for r in dropped)),
        "by_finding": {code: len(streams) for (code, _cause), streams in groups.items()},
        "max_concurrent_open": max((int(r.get("active_at_open") or 0) for r in upgraded), default=0),
        "limit_reached_at": min((int(r.get("active_when_rejected") or 0) for r in limited), default=None),
        "handshake_s": percentiles([float(r["handshake_s"]) for r in records if r.get("handshake_s") is not None]),
        "first_result_s": percentiles(
            [float(r["first_result_s"]) for r in upgraded if r.get("first_result_s") is not None]
        ),
    }
    assert len(clean) + len(dropped) + len(unclean) + len(rejected) + len(failed) + len(unfinished) == len(records)
    findings = [_group_finding(code, cause, streams, len(records)) for (code, cause), streams in groups.items()]
    p95 = summary["first_result_s"]["p95"] if isinstance(summary["first_result_s"], dict) else None
    slow = float(obs.get("slow_first_result_s") or 3.0)
    if isinstance(p95, float) and p95 > slow:
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
