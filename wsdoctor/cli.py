"""Command line: ``wsdoctor run | mock | checks | render``.

Only argparse and stdlib-only wsdoctor modules are imported here: each subcommand imports what it
needs inside its handler, so ``wsdoctor --help`` never loads aiohttp, jinja2 or dnspython.
``main(argv) -> int`` maps :class:`UsageError` to a one-line message and exit 2, any other
:class:`WsdoctorError` or unexpected exception to exit 3; signals give 130/143.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn, TextIO

from wsdoctor import __version__
from wsdoctor.errors import UsageError, WsdoctorError

if TYPE_CHECKING:
    from wsdoctor.check import RunOptions
    from wsdoctor.model import JSONValue, Report, Target

__all__ = ["ExitCode", "entry", "main"]

DEFAULT_URL = "wss://api.deepgram.com/v1/listen"


class ExitCode(enum.IntEnum):
    OK = 0
    FAILURES = 1
    USAGE = 2
    INTERNAL = 3
    SIGINT = 130
    SIGTERM = 143


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError (one line, exit 2) instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def _ids(text: str) -> list[str]:
    return [i.strip() for i in text.split(",") if i.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="wsdoctor",
        description=(
            "Diagnose WebSocket connections to Deepgram's streaming speech-to-text API: find the first "
            "layer that breaks (DNS, TCP, TLS, proxy, upgrade, auth, stream, close), prove it, say what to do."
        ),
    )
    p.add_argument("--version", action="version", version=f"wsdoctor {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

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
        type=_ids,
        default=[],
        help="comma-separated check ids or families to run (their requirements run too)",
    )
    run.add_argument(
        "--skip", metavar="IDS", type=_ids, default=[], help="comma-separated check ids or families to skip"
    )
    run.add_argument("--quick", action="store_true", help="skip slow checks")
    run.add_argument(
        "--timeout",
        metavar="S",
        type=_positive,
        help="bound the whole run; unfinished checks are reported as interrupted",
    )
    run.add_argument(
        "--connect-timeout",
        metavar="S",
        type=_positive,
        default=5.0,
        help="per-connection connect/TLS/upgrade timeout (default 5)",
    )
    run.add_argument(
        "--close-wait",
        metavar="S",
        type=_positive,
        default=5.0,
        help="how long to wait for each close step (default 5)",
    )
    run.add_argument("--json", metavar="PATH|-", help="write the JSON report to PATH ('-' for stdout)")
    run.add_argument(
        "--fail-on", choices=["warn", "fail"], default="fail", help="exit 1 on failures (default) or on warnings too"
    )
    run.add_argument("--no-color", action="store_true", help="no colour even on a terminal")

    mock = sub.add_parser("mock", help="serve the built-in Deepgram-compatible mock")
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
        "--idle-timeout", metavar="S", type=_positive, default=10.0, help="NET-0001 idle window (default 10)"
    )

    mock.add_argument("--fault-after", metavar="S", type=_positive, default=1.0,
                      help="mid-stream faults fire after this many seconds of audio (default 1)")
    mock.add_argument("--slow-results-delay", metavar="S", type=_positive, default=6.0,
                      help="slow-results: delay of the first Results (default 6)")
    mock.add_argument("--idle-cutoff", metavar="S", type=_positive, default=4.0,
                      help="idle-cutoff: cut an idle connection without a close frame after S (default 4)")

    sub.add_parser("checks", help="list the available checks")

    render = sub.add_parser("render", help="re-render a saved JSON report (no network)")
    render.add_argument("report", help="a JSON report written by 'wsdoctor run --json'")
    render.add_argument("--json", metavar="PATH|-", help="write the (re-validated) JSON report to PATH")
    render.add_argument("--no-color", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        if not args_list:
            parser.print_help()
            return ExitCode.USAGE
        args = parser.parse_args(args_list)
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "mock":
            return _cmd_mock(args)
        if args.command == "checks":
            return _cmd_checks()
        if args.command == "render":
            return _cmd_render(args)
        parser.print_help()
        return ExitCode.USAGE
    except UsageError as exc:
        print(f"wsdoctor: error: {_one_line(exc)}", file=sys.stderr)
        return ExitCode.USAGE
    except WsdoctorError as exc:
        print(f"wsdoctor: internal error: {_one_line(exc)}", file=sys.stderr)
        return ExitCode.INTERNAL
    except KeyboardInterrupt:
        print("wsdoctor: interrupted", file=sys.stderr)
        return ExitCode.SIGINT
    except BrokenPipeError:
        return ExitCode.OK
    except Exception as exc:  # a bug: one line, exit 3, details only on request
        if os.environ.get("WSDOCTOR_DEBUG"):
            raise
        print(
            f"wsdoctor: internal error: {type(exc).__name__}: {_one_line(exc)} (set WSDOCTOR_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        return ExitCode.INTERNAL


def entry() -> NoReturn:
    sys.exit(main())


def _one_line(exc: BaseException) -> str:
    from wsdoctor.sanitize import printable

    return printable(str(exc).replace("\n", " "), 400)


# -- run ---------------------------------------------------------------------------------------
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
    )


def _cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from wsdoctor.fileio import check_writable
    from wsdoctor.model import Target
    from wsdoctor.registry import load_checks
    from wsdoctor.runner import select_checks

    if args.target == "mock" and args.url:
        raise UsageError("give either a URL or --target mock, not both")
    if args.mock_fault and args.target != "mock":
        raise UsageError("--mock-fault needs --target mock")
    target = Target.parse(args.url or DEFAULT_URL) if args.target != "mock" else None
    options = _options(args)
    if args.json and args.json != "-":
        check_writable(args.json)  # fail before any probe runs, not after a minute of probing
    loaded = load_checks()
    checks, user_skipped = select_checks(loaded.checks, only=args.checks, skip=args.skip, quick=args.quick)
    if args.mock_fault:
        from wsdoctor.mock import FAULTS

        if args.mock_fault not in FAULTS:
            raise UsageError(f"unknown mock fault {args.mock_fault!r} (one of: {', '.join(sorted(FAULTS))})")
    key = os.environ.get(args.api_key_env) or None
    runner = _Run(args, options, target, checks, user_skipped, key, loaded.broken)
    report, signal_code = asyncio.run(runner.main())
    return _emit(report, args, signal_code)


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
            mock = await start_mock(MockConfig(api_key=key, fault=self.args.mock_fault))
            target = Target.parse(mock.url, is_mock=True)
        assert target is not None
        secret = Secret(key) if key else None
        options, ctx_target = self.options, target

        def make_context(results: dict[str, CheckResult]) -> Context:
            return Context(target=ctx_target, options=options, api_key=secret, results=dict(results))

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


def _exit_code(report: Report, fail_on: str) -> int:
    counts = report.summary.counts
    if counts["fail"]:
        return ExitCode.FAILURES
    if counts["error"]:
        return ExitCode.INTERNAL
    if fail_on == "warn" and counts["warn"]:
        return ExitCode.FAILURES
    return ExitCode.OK


def _emit(report: Report, args: argparse.Namespace, signal_code: int = 0) -> int:
    from reports.json import JsonReporter
    from reports.terminal import TerminalReporter
    from wsdoctor.fileio import atomic_write_text

    json_to_stdout = args.json == "-"
    human: TextIO = sys.stderr if json_to_stdout else sys.stdout
    color = human.isatty() and not getattr(args, "no_color", False) and not os.environ.get("NO_COLOR")
    width = None
    if human.isatty():
        import shutil

        width = shutil.get_terminal_size((100, 24)).columns
    human.write(TerminalReporter(color=color, width=width).render(report))
    human.flush()
    if args.json:
        text = JsonReporter().render(report)
        if json_to_stdout:
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            atomic_write_text(args.json, text)
    if signal_code:
        return signal_code
    return _exit_code(report, getattr(args, "fail_on", "fail"))


# -- other commands -----------------------------------------------------------------------------
def _cmd_mock(args: argparse.Namespace) -> int:
    from wsdoctor.mock import FAULTS, MockConfig, serve

    if args.list_faults:
        for name, fault in sorted(FAULTS.items()):
            print(f"{name:22} {fault.description}")
        return ExitCode.OK
    if args.fault and args.fault not in FAULTS:
        raise UsageError(f"unknown fault {args.fault!r} (one of: {', '.join(sorted(FAULTS))})")
    if not 0 <= args.port < 65536:
        raise UsageError(f"--port {args.port}: out of range")
    config = MockConfig(api_key=args.api_key, fault=args.fault, idle_timeout_s=args.idle_timeout,
                        fault_after_s=args.fault_after, slow_results_delay_s=args.slow_results_delay,
                        idle_cutoff_s=args.idle_cutoff)
    return serve(config, host=args.host, port=args.port, tls=args.tls)


def _cmd_checks() -> int:
    from wsdoctor.registry import load_checks, order_checks

    loaded = load_checks()
    for check in order_checks(loaded.checks.values()):
        needs = f"  (requires {', '.join(check.requires)})" if check.requires else ""
        slow = "  [slow]" if check.slow else ""
        print(f"{check.id:20} {check.title}{needs}{slow}")
    for name, reason in sorted(loaded.broken.items()):
        print(f"{'plugin.' + name:20} could not be loaded: {reason}")
    return ExitCode.OK


def _cmd_render(args: argparse.Namespace) -> int:
    import json

    from wsdoctor.model import Report

    if args.json and args.json != "-":
        from wsdoctor.fileio import check_writable

        check_writable(args.json)
    try:
        with open(args.report, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise UsageError(f"cannot read {args.report!r}: {exc.strerror}") from None
    except (ValueError, RecursionError) as exc:
        raise UsageError(f"{args.report!r} is not valid JSON: {exc}") from None
    report = Report.from_dict(data)
    _emit(report, args)
    return ExitCode.OK  # rendering worked; the verdict is in the output, not the exit code
