"""Writing a report: the terminal summary plus every report output asked for on the command line.

One place owns the output flags of ``run``, ``render`` and ``load``, so the three stay in step:

- ``--report NAME=PATH``, repeatable: the reporter registered as ``NAME`` in the
  ``wsdoctor.reporters`` entry-point group (a third party's as much as ours) writes PATH;
- ``--json/--html/--junit/--openmetrics/--markdown PATH``: shorthands for ``--report json=PATH``...

PATH ``-`` is stdout (for one output at most); the terminal summary, the default human output,
then moves to stderr. Every reporter, built-ins included, is loaded by name through
:func:`wsdoctor.registry.load_reporter`: this module imports none of them, so a new reporter needs
no change here. :func:`prepare_outputs` settles everything before any probe runs: an unknown name
(exit 2, listing the installed ones), a path that cannot be written, or two outputs aimed at one
file (exit 2, one line). :func:`emit` then writes each file atomically (temp file + rename), in
command-line order.

Redaction happens here once more, on the whole report, before any reporter sees it. For ``run``
the runner has already masked every result (this pass is idempotent and changes nothing); for
``render`` it is the only pass, and a report.json edited by hand -- or one that holds the key now
in the environment -- cannot carry a secret into any output.

Imported by ``wsdoctor --help`` (through the subcommands): stdlib-only at the top.
"""

from __future__ import annotations

import argparse
import os
import sys

from wsdoctor.commands.common import TYPE_CHECKING, ExitCode

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, TextIO

    from reports.base import Reporter
    from wsdoctor.model import Report

__all__ = ["SHORTHANDS", "STDOUT", "Output", "add_output_arguments", "emit", "exit_code", "prepare_outputs"]

#: Shorthand flags: (flag, reporter name, help). ``--json PATH`` is ``--report json=PATH``.
SHORTHANDS = (
    ("--json", "json", "write the JSON report to PATH ('-' for stdout)"),
    ("--html", "html", "write a self-contained HTML report to PATH (no scripts, works offline)"),
    ("--junit", "junit", "write JUnit XML to PATH (one testcase per check, for CI)"),
    (
        "--openmetrics",
        "openmetrics",
        "write OpenMetrics text to PATH (for node_exporter's textfile collector: a *.prom file)",
    ),
    ("--markdown", "markdown", "write a short Markdown summary to PATH (a ticket, or $GITHUB_STEP_SUMMARY in CI)"),
)

#: The PATH that means standard output.
STDOUT = "-"

#: Where the requested outputs accumulate on the parsed arguments: [(reporter name, PATH, flag)].
_DEST = "outputs"


class _ReportAction(argparse.Action):
    """Appends ``(reporter name, PATH, flag as the user wrote it)`` to ``args.outputs``, in order.

    A shorthand carries its reporter's name as ``const``; ``--report`` parses ``NAME=PATH`` (split
    at the first ``=``: a path may hold one, a name may not). Whether NAME is installed is judged
    later, by :func:`prepare_outputs`: looking at entry points here would slow down ``--help``."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        text = str(values)
        if self.const is not None:
            name, path, flag = str(self.const), text, str(option_string)
        else:
            name, sep, path = text.partition("=")
            name = name.strip()
            if not sep or not name or not path:
                raise argparse.ArgumentError(self, f"expected NAME=PATH (e.g. html=report.html), got {text!r}")
            flag = f"--report {name}"
        requested = [*(getattr(namespace, _DEST, None) or ()), (name, path, flag)]
        setattr(namespace, _DEST, requested)


def add_output_arguments(parser: Any) -> None:
    parser.add_argument(
        "--report",
        metavar="NAME=PATH",
        action=_ReportAction,
        dest=_DEST,
        help="write the report with the reporter NAME to PATH ('-' for stdout); repeatable. NAME is any "
        "installed reporter (entry-point group wsdoctor.reporters; an unknown NAME lists them)",
    )
    for flag, name, text in SHORTHANDS:
        parser.add_argument(
            flag,
            metavar="PATH|-" if name == "json" else "PATH",
            action=_ReportAction,
            dest=_DEST,
            const=name,
            help=f"{text}; short for --report {name}=PATH",
        )
    parser.add_argument("--no-color", action="store_true", help="no colour even on a terminal")


class Output:
    """One output settled by :func:`prepare_outputs`: which reporter writes where."""

    __slots__ = ("flag", "name", "path", "reporter")

    def __init__(self, name: str, path: str, flag: str, reporter: type[Reporter]) -> None:
        self.name = name
        self.path = path  # STDOUT, or a file checked writable
        self.flag = flag  # as the user wrote it, for error messages
        self.reporter = reporter

    def __repr__(self) -> str:
        return f"Output({self.name!r}, {self.path!r})"


def prepare_outputs(args: argparse.Namespace) -> list[Output]:
    """The outputs ``args`` asks for, each reporter loaded and each path checked, in order.

    Raises UsageError now -- before any probe runs -- for an unknown reporter, a path that cannot
    be written, or two outputs aimed at one file (stdout included)."""
    from wsdoctor.errors import UsageError
    from wsdoctor.fileio import check_writable
    from wsdoctor.registry import load_reporter

    outputs: list[Output] = []
    claimed: dict[str, str] = {}
    for name, path, flag in getattr(args, _DEST, None) or ():
        reporter = load_reporter(name)
        key = STDOUT if path == STDOUT else os.path.realpath(check_writable(path))
        if key in claimed:
            where = "stdout" if key == STDOUT else repr(str(path))
            raise UsageError(f"{claimed[key]} and {flag} would both write {where}")
        claimed[key] = flag
        outputs.append(Output(name, path, flag, reporter))
    return outputs


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


def _redacted(report: Report, args: argparse.Namespace, secrets: Sequence[str] = ()) -> Report:
    """``report`` with secret-shaped strings, the environment's API key and ``secrets`` masked
    (idempotent)."""
    from wsdoctor.redact import Redactor

    key = os.environ.get(getattr(args, "api_key_env", None) or "DEEPGRAM_API_KEY")
    return Redactor([*secrets, key] if key else list(secrets)).report(report)


def emit(
    report: Report,
    args: argparse.Namespace,
    outputs: list[Output],
    signal_code: int = 0,
    secrets: Sequence[str] = (),
) -> int:
    """Write the terminal summary and every output of :func:`prepare_outputs`; the exit code.

    ``secrets``: credentials only the command knows (``watch``: what the apps sent), masked here
    with the rest in the one redaction pass every report goes through."""
    from wsdoctor.fileio import atomic_write_text
    from wsdoctor.registry import load_reporter

    problem = _shape_problem(report)
    if problem is not None:
        from wsdoctor.errors import InternalError, UsageError

        source = getattr(args, "report", None)  # set by `render`: the file we were asked to read
        if source is not None:
            raise UsageError(f"{source!r} is not a valid wsdoctor report: {problem}")
        raise InternalError(f"a check produced an invalid result: {problem}")
    report = _redacted(report, args, secrets)
    to_stdout = [o for o in outputs if o.path == STDOUT]
    human: TextIO = sys.stderr if to_stdout else sys.stdout
    if not any(o.name == "terminal" for o in to_stdout):  # else it is already on stdout, once is enough
        color = human.isatty() and not getattr(args, "no_color", False) and not os.environ.get("NO_COLOR")
        width = None
        if human.isatty():
            import shutil

            width = shutil.get_terminal_size((100, 24)).columns
        terminal: Any = load_reporter("terminal")  # its constructor takes color= and width=
        human.write(terminal(color=color, width=width).render(report))
        human.flush()
    for output in outputs:
        text = output.reporter().render(report)
        if output.path == STDOUT:
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            atomic_write_text(output.path, text)
    if signal_code:
        return signal_code
    return exit_code(report, getattr(args, "fail_on", "fail"))
