"""``wsdoctor run``: diagnose one endpoint (or the built-in mock) and write the reports.

The engine (:func:`wsdoctor.diagnosis.diagnose`) diagnoses a :class:`~wsdoctor.model.Target` and
knows nothing of the mock. ``--target mock`` is this command's business: it starts the mock on
127.0.0.1 (port 0) with a key it generates -- the mock accepts only that key, and the engine treats
it as the run's key, so it is redacted from every output like any other -- hands the engine the
mock's URL as a target marked ``is_mock``, and stops the mock when the diagnosis is over (after a
signal or ``--timeout`` too).
"""

from __future__ import annotations

import argparse
import contextlib
import os

from wsdoctor.commands.common import TYPE_CHECKING, ExitCode, add_shared_options, ids, positive
from wsdoctor.commands.output import add_output_arguments
from wsdoctor.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from wsdoctor.check import ResolveOverride, RunOptions
    from wsdoctor.diagnosis import Diagnosis
    from wsdoctor.mock import MockConfig
    from wsdoctor.model import Report, Target

__all__ = ["DEFAULT_URL", "DESCRIPTION", "add_arguments", "add_route_arguments", "connection_options", "handle"]

#: Deepgram's streaming endpoint: ``wsdoctor.deepgram.DEFAULT_URL``, spelled out so that ``--help``
#: does not import the protocol module (tests/test_cli.py keeps the two equal).
DEFAULT_URL = "wss://api.deepgram.com/v1/listen"

DESCRIPTION = "Run every check against URL and report the first layer that breaks."

#: ``--api`` values (:class:`wsdoctor.deepgram.Api`, spelled out: ``--help`` must not import it).
API_CHOICES = ("listen", "flux", "speak", "agent")
#: What a client of each API asks the mock for (``--target mock --api X``): the path and the query an
#: SDK's defaults produce. listen's is the mock's own URL.
MOCK_ENDPOINTS = {
    "flux": "/v2/listen?model=flux-general-en&encoding=linear16&sample_rate=16000",
    "speak": "/v1/speak?model=aura-2-thalia-en&encoding=linear16&sample_rate=24000",
    "agent": "/v1/agent/converse",
}


def add_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument("url", nargs="?", help=f"ws:// or wss:// URL (default {DEFAULT_URL})")
    run.add_argument("--target", choices=["mock"], help="'mock': start the built-in Deepgram mock and diagnose it")
    run.add_argument(
        "--api",
        choices=API_CHOICES,
        help="which Deepgram API the URL is (default: from its path -- /v1/listen, /v2/listen (Flux), /v1/speak, "
        "/v1/agent/converse -- else listen); with --target mock, the mock's endpoint to diagnose",
    )
    run.add_argument(
        "--mock-fault", metavar="NAME", help="with --target mock: inject this mock fault (see 'wsdoctor mock --help')"
    )
    add_shared_options(run, "--api-key-env", "--ca-file")
    add_route_arguments(run)
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
        "--repeat",
        metavar="N",
        type=int,
        help="also time the connection phases over N sequential connections (min/p50/p95/p99/max), 1-1000",
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
    add_shared_options(run, "--connect-timeout", "--close-wait")
    run.add_argument(
        "--fail-on", choices=["warn", "fail"], default="fail", help="exit 1 on failures (default) or on warnings too"
    )
    run.add_argument(
        "--pid",
        metavar="PID",
        type=int,
        help="host checks inspect this running app's sockets and file descriptors instead of wsdoctor's",
    )
    run.add_argument(
        "--app-dir",
        metavar="DIR",
        help="sdk checks read the SDK/library versions pinned in this app's requirements*.txt, pyproject.toml, "
        "poetry.lock, uv.lock, package(-lock).json, go.mod, *.csproj",
    )

    add_output_arguments(run)


def add_route_arguments(parser: argparse.ArgumentParser) -> None:
    """How connections reach the target: --proxy/--no-proxy, --dns-server, --resolve (``run`` and
    ``watch`` open their connections the same way; :func:`connection_options` reads them back)."""
    proxy = parser.add_mutually_exclusive_group()
    proxy.add_argument(
        "--proxy",
        metavar="URL",
        help="tunnel through this HTTP proxy (http://[user:pass@]host:port), overriding HTTPS_PROXY & co.; "
        "the password never appears in any output",
    )
    proxy.add_argument("--no-proxy", action="store_true", help="ignore the proxy variables and connect directly")
    parser.add_argument(
        "--dns-server",
        metavar="ADDR[:PORT]",
        help="ask this DNS server (only) for the target's A/AAAA records instead of the system resolver",
    )
    parser.add_argument(
        "--resolve",
        metavar="HOST:PORT:ADDR",
        action="append",
        default=[],
        help="connect to ADDR for HOST:PORT, keeping SNI and Host (curl semantics); repeatable",
    )


def connection_options(args: argparse.Namespace) -> dict[str, Any]:
    """The RunOptions fields of how a connection is opened -- :func:`add_route_arguments`' flags,
    ``--ca-file`` and ``--connect-timeout`` -- checked (UsageError, exit 2)."""
    if args.ca_file:
        try:
            with open(args.ca_file, "rb"):
                pass
        except OSError as exc:
            raise UsageError(f"--ca-file {args.ca_file!r}: {exc.strerror}") from None
    return {
        "resolve": _resolve(args.resolve),
        "proxy": _proxy(args.proxy),
        "no_proxy": args.no_proxy,
        "dns_server": _dns_server(args.dns_server),
        "ca_file": args.ca_file,
        "connect_timeout_s": args.connect_timeout,
    }


def _resolve(entries: list[str]) -> tuple[ResolveOverride, ...]:
    from wsdoctor.check import ResolveOverride

    return tuple(ResolveOverride.parse(r) for r in entries)


def _options(args: argparse.Namespace) -> RunOptions:
    from wsdoctor.check import RunOptions

    return RunOptions(
        api_key_env=args.api_key_env,
        close_wait_s=args.close_wait,
        quick=args.quick,
        idle_max_s=args.idle_max,
        keepalive_every_s=args.keepalive_every,
        ping_every_s=min(2.0, args.keepalive_every),
        soak_s=_soak(args.soak),
        repeat=_repeat(args.repeat),
        pid=_pid(args.pid),
        app_dir=_app_dir(args.app_dir),
        api=args.api,
        **connection_options(args),
    )


def _pid(pid: int | None) -> int | None:
    """``--pid``: a process that exists now (psutil is imported here, not for ``--help``)."""
    if pid is None:
        return None
    import psutil

    if pid <= 0 or not psutil.pid_exists(pid):
        raise UsageError(f"--pid {pid}: no such process")
    return pid


def _app_dir(path: str | None) -> str | None:
    if path is None:
        return None
    if not os.path.isdir(path):
        raise UsageError(f"--app-dir {path!r}: not a directory")
    return os.path.abspath(path)


def _proxy(text: str | None) -> str | None:
    if text is None:
        return None
    from wsdoctor.probes.proxy import ProxyURL, redact_proxy_text

    try:
        parsed = ProxyURL.parse(text)
    except ValueError as exc:
        raise UsageError(f"--proxy {redact_proxy_text(text)!r}: {exc}") from None
    if parsed.scheme != "http":
        raise UsageError(f"--proxy {parsed.display!r}: only http:// proxies are supported")
    return text


def _dns_server(text: str | None) -> tuple[str, int] | None:
    """``ADDR``, ``ADDR:PORT``, ``[V6]:PORT`` or a bare IPv6 address."""
    if text is None:
        return None
    import ipaddress

    addr, port_s = text, "53"
    if text.startswith("["):
        addr, _, rest = text[1:].partition("]")
        port_s = rest[1:] if rest.startswith(":") else ("53" if not rest else "x")
    elif text.count(":") == 1:
        addr, _, port_s = text.partition(":")
    try:
        ipaddress.ip_address(addr)
        port = int(port_s)
    except ValueError:
        raise UsageError(f"--dns-server {text!r}: expected an IP address, optionally with :PORT") from None
    if not 0 < port < 65536:
        raise UsageError(f"--dns-server {text!r}: port out of range")
    return addr, port


def _repeat(n: int | None) -> int | None:
    if n is not None and not 1 <= n <= 1000:
        raise UsageError(f"--repeat {n}: between 1 and 1000")
    return n


def _soak(seconds: float | None) -> float | None:
    if seconds is not None and seconds > 3600:
        raise UsageError(f"--soak {seconds:g}: at most 3600 seconds")
    return seconds


def handle(args: argparse.Namespace) -> int:
    import asyncio

    from wsdoctor.commands.output import emit, prepare_outputs
    from wsdoctor.diagnosis import Diagnosis
    from wsdoctor.model import Target
    from wsdoctor.registry import load_checks
    from wsdoctor.runner import select_checks

    if args.target == "mock" and args.url:
        raise UsageError("give either a URL or --target mock, not both")
    if args.mock_fault and args.target != "mock":
        raise UsageError("--mock-fault needs --target mock")
    target = Target.parse(_with_api_path(args.url, args.api)) if args.target != "mock" else None
    options = _options(args)
    outputs = prepare_outputs(args)  # fail before any probe runs, not after a minute of probing
    loaded = load_checks()
    checks, _deselected = select_checks(loaded.checks, only=args.checks, skip=args.skip, quick=args.quick)
    mock = _mock_config(args) if args.target == "mock" else None

    def diagnosis(target: Target, key: str | None) -> Diagnosis:
        # The key and proxy passwords are redacted by diagnose() (run_secrets), before any reporter.
        return Diagnosis(target, options, checks, key, broken_plugins=loaded.broken, deadline_s=args.timeout)

    # the key as set (diagnose() tells unset, empty and malformed apart); the mock gets a key of its own
    key = os.environ.get(args.api_key_env) if mock is None else None
    report, signal_code = asyncio.run(_Run(diagnosis, target, key, mock, args.api).main())
    return emit(report, args, outputs, signal_code)


def _with_api_path(url: str | None, api: str | None) -> str:
    """The URL to diagnose: a URL without a path gets its API's (``--api``, or the agent's host), so
    ``wsdoctor run wss://agent.deepgram.com`` means /v1/agent/converse."""
    if url is None:
        return DEFAULT_URL
    import urllib.parse

    from wsdoctor.deepgram import AGENT_HOST, PATH_OF, Api

    parts = urllib.parse.urlsplit(url)
    if parts.path not in ("", "/"):
        return url
    wanted = api or ("agent" if (parts.hostname or "").lower() == AGENT_HOST else None)
    if wanted is None:
        return url
    return urllib.parse.urlunsplit(parts._replace(path=PATH_OF[Api(wanted)]))


def _mock_config(args: argparse.Namespace) -> MockConfig:
    """The built-in mock ``--target mock`` starts (without its key: :meth:`_Run.main` makes one)."""
    from wsdoctor.mock import FAULTS, MockConfig

    if args.mock_fault and args.mock_fault not in FAULTS:
        raise UsageError(f"unknown mock fault {args.mock_fault!r} (one of: {', '.join(sorted(FAULTS))})")
    return MockConfig(fault=args.mock_fault, idle_timeout_s=args.mock_idle_timeout)


class _Run:
    """``wsdoctor run``'s async body: the diagnosis, with SIGINT/SIGTERM turned into a partial report
    and, for ``--target mock``, the mock's life around it."""

    def __init__(
        self,
        diagnosis: Callable[[Target, str | None], Diagnosis],
        target: Target | None,
        key: str | None,
        mock: MockConfig | None = None,
        api: str | None = None,
    ) -> None:
        self.api = api
        self.diagnosis = diagnosis
        self.target = target
        self.key = key
        self.mock = mock
        self.signal_code = 0

    async def main(self) -> tuple[Report, int]:
        import asyncio
        import signal

        from wsdoctor.diagnosis import diagnose

        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []

        def on_task(task: asyncio.Task[Any]) -> None:
            def on_signal(code: int) -> None:
                self.signal_code = code
                task.cancel()

            for sig, code in ((signal.SIGINT, ExitCode.SIGINT), (signal.SIGTERM, ExitCode.SIGTERM)):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(sig, on_signal, int(code))
                    installed.append(sig)

        server = None
        try:
            target, key = self.target, self.key
            if self.mock is not None:
                import secrets
                from dataclasses import replace

                from wsdoctor.mock import start_mock
                from wsdoctor.model import Target

                key = "mock-" + secrets.token_urlsafe(24)  # the user's key never goes to the mock
                server = await start_mock(replace(self.mock, api_key=key))
                url = server.url
                if self.api in MOCK_ENDPOINTS:
                    url = url.removesuffix("/v1/listen") + MOCK_ENDPOINTS[self.api]
                target = Target.parse(url, is_mock=True)
            assert target is not None  # handle() parsed a URL unless it asked for the mock
            report = await diagnose(self.diagnosis(target, key), on_task=on_task)
        finally:
            try:
                if server is not None:  # inside the signal handlers: a signal now still gets its report
                    await server.stop()
            finally:
                for sig in installed:
                    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                        loop.remove_signal_handler(sig)
        return report, self.signal_code
