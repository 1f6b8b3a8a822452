"""What every subcommand shares: exit codes, argument types, the one-line error parser.

Stdlib-only: imported by ``wsdoctor --help``.
"""

from __future__ import annotations

import argparse
import enum
from typing import NoReturn

from wsdoctor.errors import UsageError

__all__ = ["ExitCode", "Parser", "ids", "positive"]


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
