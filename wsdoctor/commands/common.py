"""What every subcommand shares: exit codes, argument types, the one-line error parser.

Imported by ``wsdoctor --help``, like every subcommand module's top level, so it imports argparse,
enum and nothing else: not even ``typing`` (:data:`TYPE_CHECKING` stands in for
``typing.TYPE_CHECKING``, which mypy and ruff recognise by its name). Type-only imports go under
``if TYPE_CHECKING:``; everything else a subcommand needs is imported inside its handler.
``tests/test_cli.py`` runs ``--help`` in a fresh interpreter and fails on any heavier import.
"""

from __future__ import annotations

import argparse
import enum

from wsdoctor.errors import UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: True for mypy, False at run time
if TYPE_CHECKING:
    from typing import Any, NoReturn

__all__ = ["SHARED_OPTIONS", "TYPE_CHECKING", "ExitCode", "Parser", "add_shared_options", "ids", "positive"]


class ExitCode(enum.IntEnum):
    OK = 0
    FAILURES = 1
    USAGE = 2
    INTERNAL = 3
    SIGINT = 130
    SIGTERM = 143


class Parser(argparse.ArgumentParser):
    """argparse that raises UsageError (one line, exit 2) instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def ids(text: str) -> list[str]:
    return [i.strip() for i in text.split(",") if i.strip()]


#: The options more than one command takes (``run`` and ``load``), each declared once: flag ->
#: ``add_argument`` keywords. A command adds the ones it takes with :func:`add_shared_options`, in
#: the order its help lists them; a help text that quotes a default does so as ``%(default)g``, so a
#: command that changes the default (``load --connect-timeout``: 10) still says the right one.
SHARED_OPTIONS: dict[str, dict[str, Any]] = {
    "--api-key-env": {
        "metavar": "NAME",
        "default": "DEEPGRAM_API_KEY",
        "help": "environment variable holding the API key (default DEEPGRAM_API_KEY); "
        "keys are never taken on the command line",
    },
    "--ca-file": {"metavar": "PEM", "help": "trust exactly these CA certificates for wss://"},
    "--connect-timeout": {
        "metavar": "S",
        "type": positive,
        "default": 5.0,
        "help": "per-connection connect/TLS/upgrade timeout (default %(default)g)",
    },
    "--close-wait": {
        "metavar": "S",
        "type": positive,
        "default": 5.0,
        "help": "how long to wait for each close step (default %(default)g)",
    },
}


def add_shared_options(parser: argparse.ArgumentParser, *flags: str, **defaults: Any) -> None:
    """Add the :data:`SHARED_OPTIONS` named by ``flags`` to ``parser``, in that order; ``defaults``
    (by destination, e.g. ``connect_timeout=10.0``) replace the shared defaults for this command."""
    for flag in flags:
        parser.add_argument(flag, **SHARED_OPTIONS[flag])
    if defaults:
        parser.set_defaults(**defaults)
