"""Runs checks as a DAG: independent ones concurrently, each under a hard deadline.

Theory of operation. ``select_checks`` turns the registry plus ``--checks/--skip/--quick`` into
the checks to run (``--checks`` pulls in what the chosen checks require, so they have facts to
work with). ``run_checks`` builds a :class:`graphlib.TopologicalSorter` from ``requires`` and
starts every check whose requirements are done, as its own task. A check ends in one of three ways:

- it returns a :class:`CheckResult` (pass/warn/fail/skip);
- it overruns ``deadline_s`` -> ``error`` "overran its N s deadline" (never a hang);
- it raises -> ``error`` with the exception in one line (wsdoctor broke, not the network).

A check whose requirement failed, errored, or was itself blocked is not run: it becomes ``skip``
with ``blocked_by`` naming the requirement. A "not applicable" skip (TLS on ws://) does not block,
and neither does a requirement the user deselected with ``--skip``: like pytest's deselection, it
removes that check only, and its dependants work with what they have.
If the whole run is cancelled (Ctrl-C, SIGTERM, ``--timeout``), running checks are cancelled --
their sockets closed by their own ``async with`` -- and become ``skip`` with the reason the caller
gives (``why_interrupted``): being cut short is neither a diagnosis nor a bug of the check. A check that
finished during the grace period keeps its result; checks that never started are ``skip`` too. The
partial results are returned, so a partial report is still written.
Secrets are redacted from every result before it leaves the runner, and its evidence is bounded
(:mod:`wsdoctor.bounds`): whatever a peer sent, a report stays small.
"""

from __future__ import annotations

import asyncio
import contextlib
import graphlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from wsdoctor.bounds import bound_result
from wsdoctor.check import Check, Context
from wsdoctor.errors import UsageError
from wsdoctor.model import CheckResult, Status
from wsdoctor.redact import Redactor
from wsdoctor.registry import order_checks

__all__ = ["RunOutcome", "run_checks", "select_checks"]


def select_checks(
    available: dict[str, type[Check]], *, only: Sequence[str] = (), skip: Sequence[str] = (), quick: bool = False
) -> tuple[list[type[Check]], set[str]]:
    """The checks to run, in display order, and the ids the user skipped (for skip reasons)."""
    unknown = sorted({i for i in (*only, *skip) if i not in available and not _is_family(i, available)})
    if unknown:
        raise UsageError(f"unknown check id {unknown[0]!r} (see 'wsdoctor checks' for the list)")
    skipped = _expand(skip, available)
    if only:
        chosen = _expand(only, available)
        queue = list(chosen)
        while queue:  # pull in requirements, transitively
            for req in available[queue.pop()].requires:
                if req in available and req not in chosen:
                    chosen.add(req)
                    queue.append(req)
    else:
        chosen = set(available)
    if quick:
        chosen = {i for i in chosen if not available[i].slow or i in only}
    chosen -= skipped
    return order_checks(c for i, c in available.items() if i in chosen), skipped


def _is_family(name: str, available: dict[str, type[Check]]) -> bool:
    return "." not in name and any(i.startswith(name + ".") for i in available)


def _expand(ids: Iterable[str], available: dict[str, type[Check]]) -> set[str]:
    """``tls`` selects every ``tls.*`` check; a full id selects itself."""
    out: set[str] = set()
    for i in ids:
        out |= {i} if i in available else {a for a in available if a.startswith(i + ".")}
    return out


@dataclass(frozen=True, slots=True)
class RunOutcome:
    results: tuple[CheckResult, ...]
    interrupted: bool
    duration_s: float


def _blocking(result: CheckResult) -> bool:
    if result.status in (Status.FAIL, Status.ERROR):
        return True
    return result.status is Status.SKIP and result.blocked_by is not None


def _error(check: Check, reason: str) -> CheckResult:
    return CheckResult(check_id=check.id, title=check.title, status=Status.ERROR, summary=reason)


async def _run_one(check: Check, ctx: Context) -> CheckResult:
    deadline = check.deadline_s(ctx.options)
    try:
        async with asyncio.timeout(deadline):
            result = await check.run(ctx)
    except TimeoutError:
        return _error(check, f"overran its {deadline:g} s deadline")
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the check broke: wsdoctor's bug, not a diagnosis
        return _error(check, f"internal error: {type(exc).__name__}: {exc}"[:400])
    if not isinstance(result, CheckResult) or result.check_id != check.id:
        return _error(check, f"internal error: run() returned {type(result).__name__}, not its CheckResult")
    return result


async def run_checks(
    checks: Sequence[type[Check]],
    make_context: Callable[[dict[str, CheckResult]], Context],
    *,
    secrets: Iterable[str] = (),
    on_result: Callable[[CheckResult], None] | None = None,
    why_interrupted: Callable[[], str] | None = None,
) -> RunOutcome:
    """Run ``checks`` respecting ``requires``. Cancellation yields a partial :class:`RunOutcome`."""
    redactor = Redactor(secrets)
    instances = {c.id: c() for c in checks}
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for cid, check in instances.items():
        sorter.add(cid, *(r for r in check.requires if r in instances))
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        raise UsageError(f"checks require each other in a cycle: {' -> '.join(exc.args[1])}") from None

    results: dict[str, CheckResult] = {}
    running: dict[asyncio.Task[CheckResult], tuple[str, float]] = {}
    t0 = time.monotonic()
    interrupted = False

    def finish(cid: str, result: CheckResult, started: float) -> None:
        now = time.monotonic()
        result = redactor.result(
            bound_result(replace(result, duration_s=round(now - started, 6), started_at_s=round(started - t0, 6)))
        )
        results[cid] = result
        sorter.done(cid)
        if on_result is not None:
            on_result(result)

    try:
        while sorter.is_active():
            for cid in sorter.get_ready():
                check = instances[cid]
                blocker = next((r for r in check.requires if r in results and _blocking(results[r])), None)
                now = time.monotonic()
                if blocker is not None:
                    why = results[blocker].status.value
                    why = "failed" if why == "fail" else ("errored" if why == "error" else "was skipped")
                    finish(cid, check.skip(f"requires {blocker}, which {why}", blocked_by=blocker), now)
                else:
                    ctx = make_context(results)
                    running[asyncio.create_task(_run_one(check, ctx), name=f"check:{cid}")] = (cid, now)
            if not running:
                continue  # newly finished skips may have made others ready
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                cid, started = running.pop(task)
                finish(cid, task.result(), started)
    except asyncio.CancelledError:
        interrupted = True
        for task in running:
            task.cancel()
        # Give cancelled checks a bounded moment to close their sockets.
        if running:
            await asyncio.wait(running, timeout=2.0)
        why = why_interrupted() if why_interrupted is not None else "interrupted before it finished"
        for task, (cid, started) in list(running.items()):
            # Not a bug of the check and not a diagnosis: a skip that says why (a deadline, a signal).
            result = instances[cid].skip(why)
            with contextlib.suppress(BaseException):
                if task.done() and not task.cancelled():
                    result = task.result()  # it finished during the grace: keep what it found
            elapsed = round(time.monotonic() - started, 6)
            timed = replace(result, duration_s=elapsed, started_at_s=round(started - t0, 6))
            results[cid] = redactor.result(bound_result(timed))
        for cid, check in instances.items():
            if cid not in results:
                results[cid] = check.skip(f"not started: {why}")
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()
    ordered = tuple(results[c.id] for c in checks if c.id in results)
    return RunOutcome(results=ordered, interrupted=interrupted, duration_s=round(time.monotonic() - t0, 6))
