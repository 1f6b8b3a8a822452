"""``wsdoctor watch``: put wsdoctor between the app and Deepgram, and judge the app's connections.

The app points its Deepgram base URL at ``ws://127.0.0.1:PORT``; :mod:`wsdoctor.probes.relay`
forwards every connection byte for byte to ``--upstream`` (Deepgram by default, reached the way
``run`` reaches it: proxy, ``--resolve``, ``--dns-server``, ``--ca-file``) or to the built-in mock
(``--target mock``), and records it. When the watch ends -- ``--duration``, Ctrl-C or SIGTERM, all
normal ways to end it -- each connection becomes one result judged by :mod:`checks.client`, and
the report goes through the same reporters as ``run`` (same flags). A line per finished connection
is printed while it runs. The exit code is the findings' (0, or 1 on failures, or on warnings
with ``--fail-on warn``), not the signal's: ``timeout -s INT 60 wsdoctor watch`` is a CI step.
"""

from __future__ import annotations

import argparse
import sys

from wsdoctor.commands.common import TYPE_CHECKING, add_shared_options, positive
from wsdoctor.commands.output import add_output_arguments
from wsdoctor.commands.run import add_route_arguments
from wsdoctor.errors import UsageError

if TYPE_CHECKING:
    from wsdoctor.check import Context, RunOptions
    from wsdoctor.mock import MockConfig
    from wsdoctor.model import Report
    from wsdoctor.probes.relay import Relay
    from wsdoctor.probes.watch import WatchedConnection

__all__ = ["DEFAULT_LISTEN", "DEFAULT_UPSTREAM", "DESCRIPTION", "add_arguments", "handle"]

DEFAULT_UPSTREAM = "wss://api.deepgram.com"
DEFAULT_LISTEN = "127.0.0.1:8765"

DESCRIPTION = (
    "Relay your app's Deepgram connections through wsdoctor and judge them frame by frame: point the app's "
    f"Deepgram base URL at ws://{DEFAULT_LISTEN} (see --listen); every connection is forwarded untouched to "
    "--upstream (path and query kept, so every Deepgram API works) and reported when the watch ends "
    "(--duration, Ctrl-C or SIGTERM)."
)


def add_arguments(watch: argparse.ArgumentParser) -> None:
    watch.add_argument(
        "--listen",
        metavar="HOST:PORT",
        default=DEFAULT_LISTEN,
        help=f"where the app connects (default {DEFAULT_LISTEN}; port 0 picks a free one); loopback unless you "
        "name another address",
    )
    upstream = watch.add_mutually_exclusive_group()
    upstream.add_argument(
        "--upstream",
        metavar="URL",
        help=f"forward to this scheme://host[:port] (default {DEFAULT_UPSTREAM}); a path in it is ignored: the "
        "app's own path and query are kept",
    )
    upstream.add_argument("--target", choices=["mock"], help="'mock': forward to the built-in Deepgram mock")
    watch.add_argument("--mock-fault", metavar="NAME", help="with --target mock: the mock's fault")
    watch.add_argument(
        "--mock-idle-timeout",
        metavar="S",
        type=positive,
        default=10.0,
        help="with --target mock: the mock's NET-0001 idle window (default 10, as Deepgram's)",
    )
    watch.add_argument(
        "--duration", metavar="S", type=positive, help="end the watch after S seconds (default: until Ctrl-C/SIGTERM)"
    )
    add_route_arguments(watch)
    add_shared_options(watch, "--ca-file", "--connect-timeout")
    watch.add_argument(
        "--fail-on", choices=["warn", "fail"], default="fail", help="exit 1 on failures (default) or on warnings too"
    )
    watch.add_argument("--quiet", action="store_true", help="no line per connection while watching")
    add_output_arguments(watch)


def _listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` read by the one listen-address parser (``serve``'s), with watch's own rule on
    top: the host is named -- an IP address or localhost, never ``:PORT`` for every interface."""
    from wsdoctor.exporter import parse_listen

    try:
        host, port = parse_listen(text)
    except UsageError:
        raise UsageError(f"--listen {text!r}: expected HOST:PORT, e.g. {DEFAULT_LISTEN}") from None
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise UsageError(f"--listen {text!r}: HOST must be an IP address or localhost") from None
    if not text.rpartition(":")[0]:
        raise UsageError(f"--listen {text!r}: name the address to listen on, e.g. {DEFAULT_LISTEN}")
    return host, port


def _is_loopback(host: str) -> bool:
    import ipaddress

    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _upstream_url(text: str) -> str:
    from wsdoctor.model import Target

    target = Target.parse(text)  # UsageError for anything that is not ws(s)/http(s)://host[:port]
    host = f"[{target.host}]" if ":" in target.host else target.host
    return f"{target.scheme}://{host}:{target.port}/"


def handle(args: argparse.Namespace) -> int:
    import asyncio

    from wsdoctor.commands.output import emit, prepare_outputs

    if args.mock_fault and args.target != "mock":
        raise UsageError("--mock-fault needs --target mock")
    listen = _listen(args.listen)
    upstream = None if args.target == "mock" else _upstream_url(args.upstream or DEFAULT_UPSTREAM)
    options = _options(args)
    outputs = prepare_outputs(args)
    mock = _mock_config(args) if args.target == "mock" else None
    if not _is_loopback(listen[0]):
        print(
            f"wsdoctor watch: listening on {listen[0]}, not loopback: anyone who reaches this port can use the "
            "upstream with the credentials the apps send",
            file=sys.stderr,
        )
    report, secrets = asyncio.run(_Watch(listen, upstream, options, mock, args).main())
    # The watch has ended (that is what a signal asks): more signals while the reports are written
    # are ignored for that moment, so a second Ctrl-C does not leave the user without them.
    import signal

    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return emit(report, args, outputs, secrets=secrets)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _options(args: argparse.Namespace) -> RunOptions:
    from wsdoctor.check import RunOptions
    from wsdoctor.commands.run import connection_options

    return RunOptions(**connection_options(args))


def _mock_config(args: argparse.Namespace) -> MockConfig:
    from wsdoctor.mock import FAULTS, MockConfig

    if args.mock_fault and args.mock_fault not in FAULTS:
        raise UsageError(f"unknown mock fault {args.mock_fault!r} (one of: {', '.join(sorted(FAULTS))})")
    # The mock accepts any credential: the app's key is the app's business, never checked against ours.
    return MockConfig(fault=args.mock_fault, idle_timeout_s=args.mock_idle_timeout)


def _line(conn: WatchedConnection, status: str, codes: list[str]) -> str:
    from wsdoctor.sanitize import printable

    hs = conn.handshake
    what = f"{hs.method} {hs.path}" if hs else "(no request)"
    return printable(
        f"wsdoctor watch: #{conn.index} {what} {conn.duration_s:.1f} s {status}"
        + (f" {', '.join(codes)}" if codes else ""),
        300,
    )


class _Watch:
    """The async body: the mock (for --target mock), the relay, the end, the report."""

    def __init__(
        self,
        listen: tuple[str, int],
        upstream: str | None,
        options: RunOptions,
        mock: MockConfig | None,
        args: argparse.Namespace,
    ) -> None:
        self.listen = listen
        self.upstream = upstream
        self.options = options
        self.mock = mock
        self.args = args

    def _context(self, url: str) -> Context:
        from wsdoctor.check import Context
        from wsdoctor.model import Target

        return Context(target=Target.parse(url, is_mock=self.mock is not None), options=self.options)

    def _on_connection(self, conn: WatchedConnection) -> None:
        if self.args.quiet:
            return
        from checks.client import analyze

        findings = analyze(conn)
        worst = "fail" if any(f.severity.value == "fail" for f in findings) else "warn" if findings else "ok"
        print(_line(conn, worst, [f.code for f in findings]), file=sys.stderr, flush=True)

    async def main(self) -> tuple[Report, list[str]]:
        """The report, and the credentials the apps sent (for the one redaction pass, in emit)."""
        import asyncio
        import contextlib
        import signal
        import time
        from datetime import UTC, datetime

        from wsdoctor.probes.relay import Relay, RelayConfig

        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
        started_at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        t0 = time.monotonic()
        server = None
        relay: Relay | None = None
        try:
            upstream = self.upstream
            if self.mock is not None:
                from wsdoctor.mock import start_mock

                server = await start_mock(self.mock)
                upstream = server.url
            assert upstream is not None
            relay = Relay(
                RelayConfig(self.listen[0], self.listen[1], self._context(upstream)), on_connection=self._on_connection
            )
            try:
                host, port = await relay.start()
            except OSError as exc:
                raise UsageError(f"--listen {self.args.listen!r}: {exc.strerror or exc}") from None
            shown = f"[{host}]" if ":" in host else host
            print(
                f"wsdoctor watch: listening on ws://{shown}:{port}, forwarding to {relay.upstream_url}"
                + (" (the built-in mock)" if self.mock is not None else "")
                + "; point your app's Deepgram base URL here. Ctrl-C ends the watch and writes the report.",
                file=sys.stderr,
                flush=True,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.args.duration)
            await relay.stop()
            # Built while our handlers still hold SIGINT/SIGTERM: a second Ctrl-C cannot lose it.
            return build_report(relay, started_at, time.monotonic() - t0), sorted(relay.secrets)
        finally:
            if relay is not None:
                await relay.stop()
            if server is not None:
                await server.stop()
            for sig in installed:
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.remove_signal_handler(sig)


def build_report(relay: Relay | None, started_at: str, duration_s: float) -> Report:
    """The watch's report: one result per connection, bounded. Not yet redacted: :func:`emit` masks
    the credentials the apps sent (``relay.secrets``) in the one pass every report goes through
    (twice cost 4 s of a 9 s exit with 200 connections)."""
    from checks.client import analyze, analyze_session, result_for
    from wsdoctor import __version__
    from wsdoctor.bounds import bound_result
    from wsdoctor.diagnosis import environment
    from wsdoctor.model import CheckResult, Report, Status, Target

    conns = relay.connections if relay is not None else []
    secrets = sorted(relay.secrets) if relay is not None else []
    session = analyze_session(conns)
    results = [bound_result(result_for(c, analyze(c) + session.get(c.index, []))) for c in conns]
    upstream = relay.upstream_url if relay is not None else DEFAULT_UPSTREAM + "/"
    if not results:
        results.append(
            CheckResult(
                check_id="watch.connections",
                title="connections through the watch",
                status=Status.SKIP,
                summary="no app connected to the watch: point the app's Deepgram base URL at the address it printed",
            )
        )
    env = environment(secrets)
    env["watch"] = {
        "upstream": upstream,
        "connections": len(conns),
        "refused_over_limit": relay.refused if relay is not None else 0,
        "records_dropped": relay.records_dropped if relay is not None else 0,
    }
    return Report(
        target=Target.parse(upstream),
        results=tuple(results),
        started_at=started_at,
        duration_s=round(duration_s, 3),
        wsdoctor_version=__version__,
        environment=env,
    )
