"""``wsdoctor mock``: serve the built-in Deepgram-compatible mock until interrupted."""

from __future__ import annotations

import argparse

from wsdoctor.commands.common import ExitCode, positive
from wsdoctor.errors import UsageError

__all__ = ["add_arguments", "handle"]


def add_arguments(mock: argparse.ArgumentParser) -> None:
    mock.add_argument("--host", default="127.0.0.1")
    mock.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    mock.add_argument(
        "--tls", action="store_true", help="serve wss:// with a generated certificate (prints its CA file)"
    )
    mock.add_argument(
        "--fault", metavar="NAME", help="inject a fault; one of the names listed by 'wsdoctor mock --list-faults'"
    )
    mock.add_argument("--list-faults", action="store_true", help="list the faults and exit")
    mock.add_argument("--api-key", metavar="KEY", help="require this key (default: accept any non-empty key)")
    mock.add_argument(
        "--idle-timeout", metavar="S", type=positive, default=10.0, help="NET-0001 idle window (default 10)"
    )

    mock.add_argument(
        "--fault-after",
        metavar="S",
        type=positive,
        default=1.0,
        help="mid-stream faults fire after this many seconds of audio (default 1)",
    )
    mock.add_argument(
        "--slow-results-delay",
        metavar="S",
        type=positive,
        default=6.0,
        help="slow-results: delay of the first Results (default 6)",
    )
    mock.add_argument(
        "--idle-cutoff",
        metavar="S",
        type=positive,
        default=4.0,
        help="idle-cutoff: cut an idle connection without a close frame after S (default 4)",
    )
    mock.add_argument(
        "--results-interval",
        metavar="S",
        type=positive,
        default=1.0,
        help="seconds of audio per Results message (default 1, like Deepgram)",
    )
    mock.add_argument(
        "--workers",
        type=int,
        default=1,
        help="serve from K processes sharing the port (SO_REUSEPORT), for load tests (default 1)",
    )
    mock.add_argument(
        "--max-streams",
        type=int,
        metavar="N",
        help="a concurrency limit: stream N+1 gets 429 TOO_MANY_REQUESTS (per worker)",
    )


def handle(args: argparse.Namespace) -> int:
    from wsdoctor.mock import FAULTS, MockConfig, serve

    if args.list_faults:
        for name, fault in sorted(FAULTS.items()):
            print(f"{name:22} {fault.description}")
        return ExitCode.OK
    if args.fault and args.fault not in FAULTS:
        raise UsageError(f"unknown fault {args.fault!r} (one of: {', '.join(sorted(FAULTS))})")
    if not 0 <= args.port < 65536:
        raise UsageError(f"--port {args.port}: out of range")
    if not 1 <= args.workers <= 64:
        raise UsageError(f"--workers {args.workers}: between 1 and 64")
    config = MockConfig(
        max_streams=args.max_streams,
        results_interval_s=args.results_interval,
        api_key=args.api_key,
        fault=args.fault,
        idle_timeout_s=args.idle_timeout,
        fault_after_s=args.fault_after,
        slow_results_delay_s=args.slow_results_delay,
        idle_cutoff_s=args.idle_cutoff,
    )
    return serve(config, host=args.host, port=args.port, tls=args.tls, workers=args.workers)
