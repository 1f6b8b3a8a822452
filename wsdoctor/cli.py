"""Command line: ``wsdoctor run | mock | checks | render | explain | serve | load | watch``.

Each subcommand lives in ``wsdoctor.commands.<name>`` with ``handle(args)`` and, optionally,
``DESCRIPTION`` and ``add_arguments(parser)``; :func:`build_parser` makes every subparser the same
way from those and :data:`wsdoctor.commands.SUMMARIES`. The modules import only argparse and
stdlib-only wsdoctor modules at the top, and everything else inside ``handle``. :func:`main` builds
in full only the subcommand named on the command line;
the others are one-line stubs (:data:`wsdoctor.commands.SUMMARIES`), so ``wsdoctor --help`` imports
what argparse needs and no more: no subcommand module, not aiohttp, jinja2 or dnspython, nor the
model, its dataclasses or ``typing`` (``tests/test_cli.py`` checks ``sys.modules``;
``bench/startup.py`` times it).
``main(argv) -> int`` maps :class:`UsageError` to a one-line message and exit 2, any other
:class:`WsdoctorError` or unexpected exception to exit 3; signals give 130/143.
"""

from __future__ import annotations

import importlib
import os
import sys

from wsdoctor import __version__
from wsdoctor.commands import SUMMARIES
from wsdoctor.commands.common import TYPE_CHECKING, ExitCode, Parser
from wsdoctor.errors import UsageError, WsdoctorError

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence
    from types import ModuleType
    from typing import NoReturn

__all__ = ["COMMANDS", "ExitCode", "build_parser", "entry", "main"]

#: Subcommands, in help order: each a module of ``wsdoctor.commands``.
COMMANDS = tuple(SUMMARIES)


def build_parser(full: Collection[str] | None = None) -> Parser:
    """The parser, with the subcommands in ``full`` (default: all) built from their modules and the
    others as stubs that only list themselves in ``wsdoctor --help``."""
    p = Parser(
        prog="wsdoctor",
        description=(
            "Diagnose WebSocket connections to Deepgram's streaming speech-to-text API: find the first "
            "layer that breaks (DNS, TCP, TLS, proxy, upgrade, auth, stream, close), prove it, say what to do."
        ),
    )
    p.add_argument("--version", action="version", version=f"wsdoctor {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, summary in SUMMARIES.items():
        if full is None or name in full:
            _add_command(sub.add_parser(name, help=summary), importlib.import_module(f"wsdoctor.commands.{name}"))
        else:
            sub.add_parser(name, help=summary)
    return p


def _add_command(parser: Parser, module: ModuleType) -> None:
    """Fill a subcommand's parser from its module: the description and arguments it declares, and
    its ``handle`` as the handler."""
    parser.description = getattr(module, "DESCRIPTION", None)
    add_arguments = getattr(module, "add_arguments", None)
    if add_arguments is not None:
        add_arguments(parser)
    parser.set_defaults(handler=module.handle)


def _command_of(args: Sequence[str]) -> str | None:
    """The subcommand ``args`` asks for: its first argument that is not an option (the top-level
    parser has no option that takes a value), if that is a subcommand."""
    first = next((a for a in args if not a.startswith("-")), None)
    return first if first in SUMMARIES else None


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        command = _command_of(args_list)
        parser = build_parser(() if command is None else (command,))
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
