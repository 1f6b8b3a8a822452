"""Writing a report: the terminal summary plus every file format asked for on the command line.

One place owns the output flags of ``run`` and ``render`` (``--json``, ``--html``, ``--junit``,
``--openmetrics``, ``--markdown``) so both stay in step: paths are checked before any probe runs
(exit 2 for an unwritable one, or for two formats aimed at one file), files are written atomically
(temp file + rename), and the terminal summary moves to stderr when ``--json -`` claims stdout.

Redaction happens here once more, on the whole report, before any reporter sees it. For ``run``
the runner has already masked every result (this pass is idempotent and changes nothing); for
``render`` it is the only pass, and a report.json edited by hand -- or one that holds the key now
in the environment -- cannot carry a secret into any output.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any, TextIO

from wsdoctor.commands.common import ExitCode

if TYPE_CHECKING:
    from wsdoctor.model import Report

__all__ = ["FILE_OUTPUTS", "add_output_arguments", "emit", "exit_code", "prepare_outputs"]


#: (flag, argparse dest) of every report file format, in the order they are written.
FILE_OUTPUTS = (
    ("--json", "json"),
    ("--html", "html"),
    ("--junit", "junit"),
    ("--openmetrics", "openmetrics"),
    ("--markdown", "markdown"),
)


def add_output_arguments(parser: Any) -> None:
    parser.add_argument("--json", metavar="PATH|-", help="write the JSON report to PATH ('-' for stdout)")
    parser.add_argument(
        "--html", metavar="PATH", help="write a self-contained HTML report to PATH (no scripts, works offline)"
    )
    parser.add_argument("--junit", metavar="PATH", help="write JUnit XML to PATH (one testcase per check, for CI)")
    parser.add_argument(
        "--openmetrics",
        metavar="PATH",
        help="write OpenMetrics text to PATH (for node_exporter's textfile collector: a *.prom file)",
    )
    parser.add_argument(
        "--markdown",
        metavar="PATH",
        help="write a short Markdown summary to PATH (a ticket, or $GITHUB_STEP_SUMMARY in CI)",
    )
    parser.add_argument("--no-color", action="store_true", help="no colour even on a terminal")


def prepare_outputs(args: argparse.Namespace) -> None:
    """Raise UsageError now if any requested report file cannot be written."""
    from wsdoctor.errors import UsageError
    from wsdoctor.fileio import check_writable

    claimed: dict[str, str] = {}
    for flag, dest in FILE_OUTPUTS:
        path = getattr(args, dest, None)
        if not path or (dest == "json" and path == "-"):
            continue
        target = check_writable(path)
        key = os.path.realpath(target)
        if key in claimed:
            raise UsageError(f"{claimed[key]} and {flag} would both write {str(path)!r}")
        claimed[key] = flag


def exit_code(report: Report, fail_on: str) -> int:
    """0 all clear; 1 failures found, or a run cut short before every check finished (never a
    silent pass, never "a bug in wsdoctor" either); 3 only when a check itself broke."""
    counts = report.summary.counts
    if counts["fail"]:
        return ExitCode.FAILURES
    if counts["error"]:
        return ExitCode.INTERNAL
    if report.interrupted:
        return ExitCode.FAILURES
    if fail_on == "warn" and counts["warn"]:
        return ExitCode.FAILURES
    return ExitCode.OK


def _shape_problem(report: Report) -> str | None:
    """What the reporters rely on beyond ``Report.from_dict``'s checks: every metric is a number or
    null (the schema's rule), so a hand-edited ``"connect_s": "fast"`` is caught here, not by a
    reporter's arithmetic."""
    for r in report.results:
        for key, value in r.metrics.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                return f"metric {key!r} of {r.check_id!r} is {type(value).__name__} {value!r:.60}, not a number"
    return None


def _redacted(report: Report, args: argparse.Namespace) -> Report:
    """``report`` with secret-shaped strings and the environment's API key masked (idempotent)."""
    from wsdoctor.redact import Redactor

    key = os.environ.get(getattr(args, "api_key_env", None) or "DEEPGRAM_API_KEY")
    return Redactor([key] if key else []).report(report)


def emit(report: Report, args: argparse.Namespace, signal_code: int = 0) -> int:
    from reports.json import JsonReporter
    from reports.terminal import TerminalReporter
    from wsdoctor.fileio import atomic_write_text

    problem = _shape_problem(report)
    if problem is not None:
        from wsdoctor.errors import InternalError, UsageError

        source = getattr(args, "report", None)  # set by `render`: the file we were asked to read
        if source is not None:
            raise UsageError(f"{source!r} is not a valid wsdoctor report: {problem}")
        raise InternalError(f"a check produced an invalid result: {problem}")
    report = _redacted(report, args)
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
    if getattr(args, "html", None):
        from reports.html import HtmlReporter

        atomic_write_text(args.html, HtmlReporter().render(report))
    if getattr(args, "junit", None):
        from reports.junit import JunitReporter

        atomic_write_text(args.junit, JunitReporter().render(report))
    if getattr(args, "openmetrics", None):
        from reports.openmetrics import OpenMetricsReporter

        atomic_write_text(args.openmetrics, OpenMetricsReporter().render(report))
    if getattr(args, "markdown", None):
        from reports.markdown import MarkdownReporter

        atomic_write_text(args.markdown, MarkdownReporter().render(report))
    if signal_code:
        return signal_code
    return exit_code(report, getattr(args, "fail_on", "fail"))


# -- other commands -----------------------------------------------------------------------------
