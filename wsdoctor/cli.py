"""Command line: ``wsdoctor run | mock | checks | render``.

Each subcommand lives in ``wsdoctor.commands.<name>`` with ``add_parser(sub)`` and ``handle(args)``;
those modules import only argparse and stdlib-only wsdoctor modules at the top, and everything
heavy inside ``handle``, so ``wsdoctor --help`` never loads aiohttp, jinja2 or dnspython.
``main(argv) -> int`` maps :class:`UsageError` to a one-line message and exit 2, any other
:class:`WsdoctorError` or unexpected exception to exit 3; signals give 130/143.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from wsdoctor import __version__
from wsdoctor.commands.common import ExitCode, Parser
from wsdoctor.errors import UsageError, WsdoctorError

__all__ = ["COMMANDS", "ExitCode", "build_parser", "entry", "main"]

#: Subcommands, in help order: each a module of ``wsdoctor.commands``.
COMMANDS = ("run", "mock", "checks", "render", "explain", "serve", "load")


def build_parser() -> Parser:
    p = Parser(
        prog="wsdoctor",
        description=(
            "Diagnose WebSocket connections to Deepgram's streaming speech-to-text API: find the first "
            "layer that breaks (DNS, TCP, TLS, proxy, upgrade, auth, stream, close), prove it, say what to do."
        ),
    )
    p.add_argument("--version", action="version", version=f"wsdoctor {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in COMMANDS:
        importlib.import_module(f"wsdoctor.commands.{name}").add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        if not args_list:
            parser.print_help()
            return ExitCode.USAGE
        args = parser.parse_args(args_list)
        handler = getattr(args, "handler", None)
        if handler is None:
            parser.print_help()
            return ExitCode.USAGE
        return int(handler(args))
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
