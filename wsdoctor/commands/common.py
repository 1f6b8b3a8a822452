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
    from typing import NoReturn

__all__ = ["TYPE_CHECKING", "ExitCode", "Parser", "ids", "positive"]


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
