"""``wsdoctor run``: diagnose one endpoint (or the built-in mock) and write the reports."""

from __future__ import annotations

import argparse
import contextlib
import os
from typing import TYPE_CHECKING, Any

from wsdoctor import __version__
from wsdoctor.commands.common import ExitCode, ids, positive
from wsdoctor.commands.output import add_output_arguments, emit, prepare_outputs
from wsdoctor.errors import UsageError

if TYPE_CHECKING:
    from wsdoctor.check import RunOptions
    from wsdoctor.model import JSONValue, Report, Target

__all__ = ["DEFAULT_URL", "add_parser", "handle"]

DEFAULT_URL = "wss://api.deepgram.com/v1/listen"


def add_parser(sub: Any) -> None:
    run = sub.add_parser(
        "run",
        help="diagnose a WebSocket endpoint (default: Deepgram's)",
        description="Run every check against URL and report the first layer that breaks.",
    )
    run.add_argument("url", nargs="?", help=f"ws:// or wss:// URL (default {DEFAULT_URL})")
    run.add_argument("--target", choices=["mock"], help="'mock': start the built-in Deepgram mock and diagnose it")
    run.add_argument(
        "--mock-fault", metavar="NAME", help="with --target mock: inject this mock fault (see 'wsdoctor mock --help')"
    )
    run.add_argument(
        "--api-key-env",
        metavar="NAME",
        default="DEEPGRAM_API_KEY",
        help="environment variable holding the API key (default DEEPGRAM_API_KEY); "
        "keys are never taken on the command line",
    )
    run.add_argument("--ca-file", metavar="PEM", help="trust exactly these CA certificates for wss://")
    run.add_argument(
        "--resolve",
        metavar="HOST:PORT:ADDR",
        action="append",
        default=[],
        help="connect to ADDR for HOST:PORT, keeping SNI and Host (curl semantics); repeatable",
    )
    run.add_argument(
        "--checks",
        metavar="IDS",
        type=ids,
        default=[],
        help="comma-separated check ids or families to run (their requirements run too)",
    )
    run.add_argument(
        "--skip", metavar="IDS", type=ids, default=[], help="comma-separated check ids or families to skip"
    )
    run.add_argument("--quick", action="store_true", help="skip slow checks (the idle family)")
    run.add_argument(
        "--idle-max",
        metavar="S",
        type=positive,
        default=30.0,
        help="bound the idle family: how long silent/KeepAlive connections are watched (default 30)",
    )
    run.add_argument(
        "--keepalive-every",
        metavar="S",
        type=positive,
        default=4.0,
        help="KeepAlive interval of the idle family (default 4, inside Deepgram's advised 3-5 s)",
    )
    run.add_argument(
        "--soak",
        metavar="S",
        type=positive,
        help="also stream audio for S seconds (max 3600), reconnecting on drops, and report them",
    )
    run.add_argument(
        "--mock-idle-timeout",
        metavar="S",
        type=positive,
        default=5.0,
        help="with --target mock: the mock's NET-0001 idle window (default 5; Deepgram's is about 10)",
    )
    run.add_argument(
        "--timeout",
        metavar="S",
        type=positive,
        help="bound the whole run; unfinished checks are reported as interrupted",
    )
    run.add_argument(
        "--connect-timeout",
        metavar="S",
        type=positive,
        default=5.0,
        help="per-connection connect/TLS/upgrade timeout (default 5)",
    )
    run.add_argument(
        "--close-wait",
        metavar="S",
        type=positive,
        default=5.0,
        help="how long to wait for each close step (default 5)",
    )
    run.add_argument(
        "--fail-on", choices=["warn", "fail"], default="fail", help="exit 1 on failures (default) or on warnings too"
    )

    add_output_arguments(run)
    run.set_defaults(handler=handle)


def _options(args: argparse.Namespace) -> RunOptions:
    from wsdoctor.check import ResolveOverride, RunOptions

    if args.ca_file:
        try:
            with open(args.ca_file, "rb"):
                pass
        except OSError as exc:
            raise UsageError(f"--ca-file {args.ca_file!r}: {exc.strerror}") from None
    return RunOptions(
        api_key_env=args.api_key_env,
        ca_file=args.ca_file,
        resolve=tuple(ResolveOverride.parse(r) for r in args.resolve),
        connect_timeout_s=args.connect_timeout,
        close_wait_s=args.close_wait,
        quick=args.quick,
        idle_max_s=args.idle_max,
        keepalive_every_s=args.keepalive_every,
        ping_every_s=min(2.0, args.keepalive_every),
        soak_s=_soak(args.soak),
    )


def _soak(seconds: float | None) -> float | None:
    if seconds is not None and seconds > 3600:
        raise UsageError(f"--soak {seconds:g}: at most 3600 seconds")
    return seconds


def handle(args: argparse.Namespace) -> int:
    import asyncio

    from wsdoctor.model import Target
    from wsdoctor.registry import load_checks
    from wsdoctor.runner import select_checks

    if args.target == "mock" and args.url:
        raise UsageError("give either a URL or --target mock, not both")
    if args.mock_fault and args.target != "mock":
        raise UsageError("--mock-fault needs --target mock")
    target = Target.parse(args.url or DEFAULT_URL) if args.target != "mock" else None
    options = _options(args)
    prepare_outputs(args)  # fail before any probe runs, not after a minute of probing
    loaded = load_checks()
    checks, user_skipped = select_checks(loaded.checks, only=args.checks, skip=args.skip, quick=args.quick)
    if args.mock_fault:
        from wsdoctor.mock import FAULTS

        if args.mock_fault not in FAULTS:
            raise UsageError(f"unknown mock fault {args.mock_fault!r} (one of: {', '.join(sorted(FAULTS))})")
    key = os.environ.get(args.api_key_env) or None
    runner = _Run(args, options, target, checks, user_skipped, key, loaded.broken)
    report, signal_code = asyncio.run(runner.main())
    return emit(report, args, signal_code)


class _Run:
    """The async body of ``wsdoctor run``: mock lifecycle, signals, run deadline."""

    def __init__(
        self,
        args: argparse.Namespace,
        options: RunOptions,
        target: Target | None,
        checks: list[type],
        user_skipped: set[str],
        key: str | None,
        broken: dict[str, str],
    ) -> None:
        self.args, self.options, self.target = args, options, target
        self.checks, self.user_skipped, self.key, self.broken = checks, user_skipped, key, broken
        self.signal_code = 0

    async def main(self) -> tuple[Report, int]:
        import asyncio
        import datetime
        import signal

        from wsdoctor.check import Context, Secret
        from wsdoctor.model import CheckResult, Report, Status, Target
        from wsdoctor.runner import run_checks

        started_at = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        mock = None
        key = self.key
        target = self.target
        if self.args.target == "mock":
            import secrets as pysecrets

            from wsdoctor.mock import MockConfig, start_mock

            key = "mock-" + pysecrets.token_urlsafe(24)
            config = MockConfig(api_key=key, fault=self.args.mock_fault, idle_timeout_s=self.args.mock_idle_timeout)
            mock = await start_mock(config)
            target = Target.parse(mock.url, is_mock=True)
        assert target is not None
        secret = Secret(key) if key else None
        options, ctx_target = self.options, target

        memo: dict[str, Any] = {}  # run-wide: family probes shared between checks (Context.shared)

        def make_context(results: dict[str, CheckResult]) -> Context:
            return Context(target=ctx_target, options=options, api_key=secret, results=dict(results), memo=memo)

        loop = asyncio.get_running_loop()
        task = asyncio.create_task(
            run_checks(self.checks, make_context, user_skipped=self.user_skipped, secrets=[key] if key else [])
        )

        def on_signal(code: int) -> None:
            self.signal_code = code
            task.cancel()

        for sig, code in ((signal.SIGINT, ExitCode.SIGINT), (signal.SIGTERM, ExitCode.SIGTERM)):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, on_signal, int(code))
        try:
            done, _ = await asyncio.wait({task}, timeout=self.args.timeout)
            if not done:
                task.cancel()
            outcome = await task
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.remove_signal_handler(sig)
            for shared in memo.values():  # a shared probe outliving its checks is cut now
                if isinstance(shared, asyncio.Future) and not shared.done():
                    shared.cancel()
                    with contextlib.suppress(BaseException):
                        await asyncio.wait_for(shared, 2.0)
            if mock is not None:
                await mock.stop()
        results = list(outcome.results)
        for name, reason in sorted(self.broken.items()):
            results.append(
                CheckResult(
                    check_id=f"plugin.{name}",
                    title=f"plugin {name!r} could not be loaded",
                    status=Status.ERROR,
                    summary=reason,
                )
            )
        report = Report(
            target=target,
            results=tuple(results),
            started_at=started_at,
            duration_s=outcome.duration_s,
            wsdoctor_version=__version__,
            environment=_environment(key),
            interrupted=outcome.interrupted,
        )
        return report, self.signal_code


def _environment(key: str | None) -> dict[str, JSONValue]:
    import platform

    from wsdoctor.redact import Redactor

    redactor = Redactor([key] if key else [])
    proxies = {
        name: redactor.text(value)
        for name, value in sorted(os.environ.items())
        if name.upper() in {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "WS_PROXY", "WSS_PROXY"}
    }
    return {
        "wsdoctor": __version__,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "proxy_env": proxies,
    }
