"""``wsdoctor load URL --streams N --duration S [--ramp R]``: N concurrent real-time streams.

The result is an ordinary report with one check, ``load.streams``, so every reporter (terminal,
JSON, HTML, any other ``--report NAME=PATH``) renders it: accounting of every stream, handshake and
first-result percentiles, drops by ending, and the concurrency where rejections began.
"""

from __future__ import annotations

import argparse
import os

from wsdoctor.commands.common import TYPE_CHECKING, ExitCode, add_shared_options, positive
from wsdoctor.commands.output import add_output_arguments
from wsdoctor.errors import UsageError

if TYPE_CHECKING:
    from typing import Any

__all__ = ["DESCRIPTION", "add_arguments", "handle"]

DESCRIPTION = "Stream speech on N connections at once; report where the path or account gives."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("url", help="ws:// or wss:// URL (loopback only unless --i-own-this-endpoint)")
    p.add_argument("--streams", type=int, default=10, help="concurrent streams, 1-1000 (default 10)")
    p.add_argument("--duration", type=positive, default=10.0, help="seconds each stream streams, max 600 (default 10)")
    p.add_argument("--ramp", type=positive, default=50.0, help="new streams started per second (default 50)")
    add_shared_options(p, "--api-key-env", "--ca-file", "--connect-timeout", "--close-wait", connect_timeout=10.0)
    p.add_argument(
        "--i-own-this-endpoint",
        action="store_true",
        help="allow a non-loopback target (you pay for and may disturb it)",
    )
    add_output_arguments(p)


def handle(args: argparse.Namespace) -> int:
    import asyncio
    import datetime

    from wsdoctor import __version__
    from wsdoctor.check import Context, RunOptions, Secret
    from wsdoctor.commands.output import emit, prepare_outputs
    from wsdoctor.diagnosis import environment
    from wsdoctor.load import MAX_DURATION_S, MAX_STREAMS, analyze_load, check_target_allowed, run_load
    from wsdoctor.model import CheckResult, Report, Status, Target
    from wsdoctor.redact import Redactor

    target = Target.parse(args.url)
    check_target_allowed(target.host, args.i_own_this_endpoint)
    if not 1 <= args.streams <= MAX_STREAMS:
        raise UsageError(f"--streams {args.streams}: between 1 and {MAX_STREAMS}")
    if args.duration > MAX_DURATION_S:
        raise UsageError(f"--duration {args.duration:g}: at most {MAX_DURATION_S:g} seconds")
    outputs = prepare_outputs(args)
    key = os.environ.get(args.api_key_env) or None
    options = RunOptions(
        api_key_env=args.api_key_env,
        ca_file=args.ca_file,
        connect_timeout_s=args.connect_timeout,
        close_wait_s=args.close_wait,
    )
    ctx = Context(target=target, options=options, api_key=Secret(key) if key else None)
    started_at = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    signal_code = 0

    async def main() -> dict[str, Any]:
        import signal

        nonlocal signal_code
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(run_load(ctx, streams=args.streams, duration_s=args.duration, ramp_per_s=args.ramp))

        def on_signal(code: int) -> None:
            nonlocal signal_code
            signal_code = code
            task.cancel()

        for sig, code in ((signal.SIGINT, ExitCode.SIGINT), (signal.SIGTERM, ExitCode.SIGTERM)):
            loop.add_signal_handler(sig, on_signal, int(code))
        try:
            return await task
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    obs = asyncio.run(main())
    summary, findings = analyze_load(obs)
    status = (
        Status.FAIL if any(f.severity is Status.FAIL for f in findings) else Status.WARN if findings else Status.PASS
    )
    hs, fr = summary["handshake_s"], summary["first_result_s"]
    assert isinstance(hs, dict) and isinstance(fr, dict)
    line = (
        f"{summary['completed_clean']}/{summary['streams']} streams completed cleanly, "
        f"{summary['dropped']} dropped, {summary['rejected']} rejected, {summary['failed_to_connect']} failed; "
        f"handshake p95 {hs['p95']} s, first result p95 {fr['p95']} s"
    )
    metrics: dict[str, float | int | None] = {
        "streams": args.streams,
        "completed_clean": int(str(summary["completed_clean"])),
        "dropped": int(str(summary["dropped"])),
        "rejected": int(str(summary["rejected"])),
        "handshake_p50_s": hs["p50"],
        "handshake_p95_s": hs["p95"],
        "handshake_p99_s": hs["p99"],
        "first_result_p50_s": fr["p50"],
        "first_result_p95_s": fr["p95"],
        "first_result_p99_s": fr["p99"],
        "limit_reached_at": summary["limit_reached_at"] if isinstance(summary["limit_reached_at"], int) else None,
    }
    result = CheckResult(
        check_id="load.streams",
        title=f"{args.streams} concurrent real-time streams",
        status=status,
        summary=line if not findings else "; ".join(f.message for f in findings),
        duration_s=float(str(obs["wall_s"])),
        metrics=metrics,
        evidence={"summary": summary, "load": obs},
        findings=tuple(findings),
    )
    result = Redactor([key] if key else []).result(result)
    report = Report(
        target=target,
        results=(result,),
        started_at=started_at,
        duration_s=float(str(obs["wall_s"])),
        wsdoctor_version=__version__,
        environment=environment([key] if key else []),
        interrupted=bool(obs.get("interrupted")),
    )
    code = emit(report, args, outputs, signal_code)
    return int(code) if code != ExitCode.INTERNAL else int(ExitCode.FAILURES)
