"""The terminal reporter: what a human reads first.

Layout, top to bottom: a header line (wsdoctor version, target, when, how long); one table row per
check (status badge, id, duration, one-line summary and its key metric); the verdict line with the
primary cause; one block per cause, in the summary's order (title, article section, explanation,
the findings with the check that made them, the numbered fixes); the article's REST alternative
when REST worked where streaming failed; and the reasons of skipped checks.

Promises:

- Safe on any terminal. Every string that comes from the report -- server text above all (close
  reasons, headers, bodies), but also ids and the URL, since a report may be a hand-edited file --
  goes through :func:`wsdoctor.sanitize.printable`, and is placed in ``rich.text.Text`` objects, never
  interpolated into console markup. With ``color=False`` the output contains no ESC byte at all;
  with ``color=True`` the only escape sequences are the SGR colour codes rich writes for our styles.
- Deterministic: the same report gives the same text, whatever the environment (``COLUMNS``,
  ``NO_COLOR``, ``TERM``...). Deciding *whether* to colour is the caller's job.
- Never crashes on a report it did not expect: an unknown cause id (a third-party plugin) renders
  with its id as title and no fixes; non-finite numbers render as a dash.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Mapping
from typing import ClassVar

from rich import box
from rich.console import Console, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from reports.evidence import evidence_items
from wsdoctor.causes import CAUSES, REST_FALLBACK, fixes_for
from wsdoctor.model import (
    CheckResult,
    Finding,
    JSONValue,
    Report,
    Status,
    Summary,
    ordered_findings,
    rest_fallback_applies,
)
from wsdoctor.sanitize import printable

__all__ = ["TerminalReporter"]

_STATUS_STYLE: dict[Status, str] = {
    Status.PASS: "green",
    Status.WARN: "yellow",
    Status.FAIL: "bold red",
    Status.SKIP: "dim",
    Status.ERROR: "magenta",
    Status.INFO: "cyan",
}
_VERDICT_STYLE: dict[str, str] = {
    "healthy": "bold green",
    "warnings": "bold yellow",
    "failing": "bold red",
    "incomplete": "bold magenta",
}
#: Bounds on how much of one server-controlled string reaches the screen.
_SUMMARY_LIMIT = 300
_MESSAGE_LIMIT = 500
_EVIDENCE_ITEMS = 6
_EVIDENCE_VALUE_LIMIT = 80
_ID_LIMIT = 80


def _safe(value: object, limit: int = _MESSAGE_LIMIT) -> str:
    return printable(value, limit)


def _seconds(value: float) -> str:
    return f"{value:.2f} s" if math.isfinite(value) else "—"


def _number(key: str, value: float | int) -> str:
    if isinstance(value, int):  # bool included
        return str(value)
    if not math.isfinite(value):
        return "—"
    return f"{value:.3f}" if key.endswith("_s") else f"{value:.4g}"


def _key_metric(result: CheckResult) -> str | None:
    """The first metric with a value: checks list their headline metric first."""
    for key, value in result.metrics.items():
        if value is not None:
            return f"{_safe(key, _ID_LIMIT)}={_number(key, value)}"
    return None


def _evidence_line(evidence: Mapping[str, JSONValue]) -> str | None:
    items, more = evidence_items(evidence, _EVIDENCE_ITEMS)
    shown = [f"{_safe(k, _ID_LIMIT)}={_safe(v, _EVIDENCE_VALUE_LIMIT)}" for k, v in items]
    if more:
        shown.append(f"… {more} more in the JSON report")
    return " · ".join(shown) or None


def _section(cause_id: str) -> str:
    cause = CAUSES.get(cause_id)
    if cause is None:
        return "not in wsdoctor's cause catalogue"
    return cause.article_section or "beyond the article"


class TerminalReporter:
    """Renders a report for a human at a terminal, with or without colour."""

    name: ClassVar[str] = "terminal"

    def __init__(self, *, color: bool = False, width: int | None = None) -> None:
        self.color = color
        self.width = width or 100

    def render(self, report: Report) -> str:
        buf = io.StringIO()
        console = Console(
            file=buf,
            width=self.width,
            force_terminal=self.color,
            color_system="standard" if self.color else None,
            no_color=not self.color,
            markup=False,  # our data is never markup; every cell below is a Text anyway
            emoji=False,
            highlight=False,
            force_jupyter=False,
            force_interactive=False,
            legacy_windows=False,
            _environ={},  # deterministic: COLUMNS, NO_COLOR, TERM... are the caller's business
        )
        summary = report.summary
        for block in self._blocks(report, summary):
            console.print(block, overflow="fold")
        # rich pads table rows and padded blocks to the full width; trailing blanks only get in
        # the way of copy-paste, diffs and CI logs.
        return "".join(line.rstrip(" ") + "\n" for line in buf.getvalue().splitlines())

    # -- the blocks, in order -------------------------------------------------------------------

    def _blocks(self, report: Report, summary: Summary) -> Iterable[RenderableType]:
        yield self._header(report)
        yield Text()
        yield self._table(report.results)
        counts = [f"{n} {_safe(status, _ID_LIMIT)}" for status, n in summary.counts.items() if n]
        yield Text(f"{sum(summary.counts.values())} checks: {' · '.join(counts) or 'none ran'}", style="dim")
        yield Text()
        yield self._verdict(summary)
        if summary.counts.get("error"):
            yield Text(
                f"{summary.counts['error']} check(s) ended in ERROR: wsdoctor itself broke there "
                "(a bug or an overrun deadline), which is not a diagnosis.",
                style="magenta",
            )
        primary = summary.primary_cause
        for cause_summary in summary.causes:
            yield Text()
            yield from self._cause_block(report, cause_summary.cause, primary=cause_summary.cause == primary,
                                         note=cause_summary.severity is Status.INFO)
        if rest_fallback_applies(report.results):
            yield Text()
            yield Text.assemble(("Alternative: ", "bold"), REST_FALLBACK)
        skipped = [r for r in report.results if r.status is Status.SKIP]
        if skipped:
            yield Text()
            yield self._skipped(skipped)

    def _header(self, report: Report) -> Text:
        header = Text(overflow="fold")
        header.append(f"wsdoctor {_safe(report.wsdoctor_version, _ID_LIMIT)}", style="bold")
        header.append(" · ")
        header.append(_safe(report.target.url, _SUMMARY_LIMIT), style="cyan")
        if report.target.is_mock:
            header.append(" (built-in mock)")
        header.append(f" · {_safe(report.started_at, _ID_LIMIT)} · {_seconds(report.duration_s)}")
        return header

    def _table(self, results: Iterable[CheckResult]) -> Table:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
        table.add_column("status", no_wrap=True)
        table.add_column("check", overflow="fold")
        table.add_column("time", justify="right", no_wrap=True)
        table.add_column("result", overflow="fold", ratio=1)
        for r in results:
            badge = Text(r.status.value.upper(), style=_STATUS_STYLE.get(r.status, ""))
            line = Text(_safe(r.summary, _SUMMARY_LIMIT))
            metric = _key_metric(r)
            if metric:
                line.append(f" · {metric}", style="dim")
            table.add_row(badge, Text(_safe(r.check_id, _ID_LIMIT)), Text(_seconds(r.duration_s)), line)
        return table

    def _verdict(self, summary: Summary) -> Text:
        verdict = summary.verdict
        line = Text("Verdict: ", style="bold")
        line.append(_safe(verdict, _ID_LIMIT).upper(), style=_VERDICT_STYLE.get(verdict, "bold"))
        primary = summary.primary_cause
        because = (
            f"primary cause: {_safe(primary, _ID_LIMIT)} ({_section(primary)})" if primary else None
        )
        counts = summary.counts
        if verdict == "healthy":
            if counts.get("pass", 0) == 0:
                line.append(" — no check ran")
            elif counts.get("skip"):
                line.append(f" — every check that ran passed ({counts['skip']} skipped)")
            else:
                line.append(" — every check passed")
        elif verdict == "incomplete":
            line.append(" — run interrupted")
            if because:
                line.append(f"; so far, {because}")
        elif because:
            line.append(f" — {because}")
        else:
            line.append(" — no cause identified")
        return line

    def _cause_block(
        self, report: Report, cause_id: str, *, primary: bool, note: bool = False
    ) -> Iterable[RenderableType]:
        cause = CAUSES.get(cause_id)
        shown_id = _safe(cause_id, _ID_LIMIT)
        heading = Text(overflow="fold")
        label = "Primary cause: " if primary else ("Note: " if note else "Also: ")
        heading.append(label, style="bold red" if primary else ("bold cyan" if note else "bold"))
        heading.append(_safe(cause.title) if cause else shown_id, style="bold")
        if cause:
            heading.append(f"  [{shown_id}]", style="dim")
        yield heading
        yield Padding(Text(_section(cause_id), style="italic"), (0, 0, 0, 2))
        if cause:
            yield Padding(Text(cause.explanation), (0, 0, 0, 2))

        findings = self._findings_of(report, cause_id)
        if findings:
            yield Padding(Text("Findings:", style="bold"), (0, 0, 0, 2))
            grid = Table.grid(padding=(0, 1))
            grid.add_column(no_wrap=True)
            grid.add_column(overflow="fold", ratio=1)
            for check_id, f in findings:
                text = Text()
                text.append(_safe(f.code, _ID_LIMIT), style="bold")
                text.append(f" (from {_safe(check_id, _ID_LIMIT)}): ", style="dim")
                text.append(_safe(f.message))
                evidence = _evidence_line(f.evidence)
                if evidence:
                    text.append(f"\nevidence: {evidence}", style="dim")
                grid.add_row(Text(f.severity.value.upper(), style=_STATUS_STYLE.get(f.severity, "")), text)
            yield Padding(grid, (0, 0, 0, 4))

        fix_list = fixes_for(cause_id, [f.code for _check, f in findings])
        if fix_list:
            yield Padding(Text("Fixes:", style="bold"), (0, 0, 0, 2))
            fixes = Table.grid(padding=(0, 1))
            fixes.add_column(justify="right", no_wrap=True)
            fixes.add_column(overflow="fold", ratio=1)
            for n, fix in enumerate(fix_list, 1):
                fixes.add_row(Text(f"{n}."), Text(fix))
            yield Padding(fixes, (0, 0, 0, 4))
        else:
            yield Padding(
                Text("No fixes catalogued: this cause comes from a plugin; see its documentation.",
                     style="dim"),
                (0, 0, 0, 2),
            )

    @staticmethod
    def _findings_of(report: Report, cause_id: str) -> list[tuple[str, Finding]]:
        """This cause's findings, failures first, then in layer order (as the summary ranks them)."""
        return [(r.check_id, f) for r, f in ordered_findings(report.results) if f.cause == cause_id]

    @staticmethod
    def _skipped(skipped: Iterable[CheckResult]) -> RenderableType:
        grid = Table.grid(padding=(0, 1))
        grid.add_column(overflow="fold")
        grid.add_column(overflow="fold", ratio=1)
        for r in skipped:
            reason = Text(_safe(r.summary, _SUMMARY_LIMIT) or "no reason given")
            if r.blocked_by and r.blocked_by not in r.summary:
                reason.append(f" (blocked by {_safe(r.blocked_by, _ID_LIMIT)})", style="dim")
            grid.add_row(Text(_safe(r.check_id, _ID_LIMIT), style="dim"), reason)
        table = Table.grid()
        table.add_row(Text("Skipped:", style="bold"))
        table.add_row(Padding(grid, (0, 0, 0, 2)))
        return table
