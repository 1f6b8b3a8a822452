"""Writing a report: the terminal summary plus every file format asked for on the command line.

One place owns the output flags of ``run`` and ``render`` so both stay in step: paths are checked
before any probe runs (exit 2 for an unwritable one), files are written atomically, and the
terminal summary moves to stderr when ``--json -`` claims stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any, TextIO

from wsdoctor.commands.common import ExitCode

if TYPE_CHECKING:
    from wsdoctor.model import Report

__all__ = ["add_output_arguments", "emit", "exit_code", "prepare_outputs"]


def add_output_arguments(parser: Any) -> None:
    parser.add_argument("--json", metavar="PATH|-", help="write the JSON report to PATH ('-' for stdout)")
    parser.add_argument("--no-color", action="store_true", help="no colour even on a terminal")


def prepare_outputs(args: argparse.Namespace) -> None:
    """Raise UsageError now if any requested report file cannot be written."""
    from wsdoctor.fileio import check_writable

    for path in (getattr(args, "json", None),):
        if path and path != "-":
            check_writable(path)


def exit_code(report: Report, fail_on: str) -> int:
    counts = report.summary.counts
    if counts["fail"]:
        return ExitCode.FAILURES
    if counts["error"]:
        return ExitCode.INTERNAL
    if fail_on == "warn" and counts["warn"]:
        return ExitCode.FAILURES
    return ExitCode.OK


def emit(report: Report, args: argparse.Namespace, signal_code: int = 0) -> int:
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
    return exit_code(report, getattr(args, "fail_on", "fail"))


# -- other commands -----------------------------------------------------------------------------
