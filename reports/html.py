"""The HTML reporter: one self-contained file a support engineer can open from a ticket.

Layout, top to bottom: the target and run; the verdict banner with the primary cause in plain words
and the finding that proves it; the ``dg-request-id`` values to quote to Deepgram support; the
article's REST alternative where it applies; one card per cause (article section, explanation, the
findings with their evidence, the fixes); the connection timeline (an SVG waterfall from
:mod:`reports.timeline`); the per-check table (status, duration, key metric, summary); the raw
evidence per check, collapsible (headers, certificate, close frames and other connection ends,
then the whole JSON); the environment (tool version, OS, Python, proxy variables as redacted).

Promises:

- **Self-contained and inert.** Inline CSS and SVG only: no script, no external URL, no font or
  image fetch, so it works offline and from an e-mail attachment. A strict Content-Security-Policy
  (``default-src 'none'``) makes even a template mistake unable to run script or fetch anything.
- **Hostile text stays text.** jinja2 autoescaping is on and no report data is marked safe. On
  top of that every value printed goes through :func:`display` (the environment's ``finalize``):
  control characters, bidi overrides and lone surrogates become visible escapes
  (:func:`wsdoctor.sanitize.printable`). Chart geometry is numbers computed in Python.
- **Readable anywhere.** Print CSS (colours kept, raw evidence expanded, no page break inside a
  card) and a narrow-screen layout (tables become stacked rows, the waterfall keeps its labels).
- **Deterministic and never crashing** on a report it did not expect: unknown causes render with
  their id, non-finite numbers as a dash, free-form evidence as JSON.

jinja2 is imported inside :meth:`HtmlReporter.render`, so importing this module stays cheap.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from reports.evidence import evidence_items, evidence_value
from reports.frames import TRACK as FRAMES_TRACK
from reports.frames import FrameTimeline, frame_timelines
from reports.json import finite
from reports.timeline import TRACK, Histogram, Timeline, build_timeline, format_seconds, phase_histograms
from wsdoctor.causes import CAUSES, REST_FALLBACK, fixes_for
from wsdoctor.model import (
    CheckResult,
    Finding,
    Report,
    Status,
    Summary,
    end_kind,
    evidence_mappings,
    ordered_findings,
    request_ids,
    rest_fallback_applies,
)
from wsdoctor.sanitize import printable

__all__ = [
    "CSP",
    "HtmlReporter",
    "build_view",
    "display",
    "key_metric",
    "key_metric_parts",
    "pretty_json",
]

#: Nothing may load or run; inline styles and data: images are all the page needs.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

_ID_LIMIT = 120
_LINE_LIMIT = 600
_VALUE_LIMIT = 300
_JSON_LIMIT = 40_000
_EVIDENCE_ITEMS = 12
#: How deep the raw-evidence view looks for headers, certificates and connection ends.
_EVIDENCE_DEPTH = 8
_REQUEST_IDS = 24
_VERDICT_TEXT = {"healthy": "Healthy", "warnings": "Warnings", "failing": "Failing", "incomplete": "Incomplete"}


def display(value: object, limit: int = 100_000) -> str:
    """Text safe to place in a document: control characters and lone surrogates escaped."""
    text = printable(value, limit, keep_newlines=True)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _short(value: object, limit: int = _LINE_LIMIT) -> str:
    return display(value, limit)


def _number(key: str, value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):  # bool included
        return str(value)
    if not isinstance(value, float):  # a hand-edited report may hold anything
        return _short(value, _VALUE_LIMIT)
    if not math.isfinite(value):
        return "—"
    if key.endswith("_s"):
        return format_seconds(value)
    return f"{value:.4g}"


def key_metric_parts(result: CheckResult) -> tuple[str, str] | None:
    """``(name, shown value)`` of the first metric with a value: checks list their headline metric
    first (the terminal reporter's rule)."""
    for key, value in result.metrics.items():
        if value is not None and not (isinstance(value, float) and not math.isfinite(value)):
            return _short(key, _ID_LIMIT), _number(key, value)
    return None


def key_metric(result: CheckResult) -> str | None:
    """The key metric as one line, ``"connect_s = 0.41 ms"``."""
    parts = key_metric_parts(result)
    return f"{parts[0]} = {parts[1]}" if parts else None


def _header_pairs(headers: object) -> list[tuple[str, str]]:
    """``[[name, value], ...]`` or ``{name: value}`` as pairs; anything else gives nothing."""
    if isinstance(headers, Mapping):
        return [(str(k), evidence_value(v)) for k, v in headers.items()]
    pairs = []
    if isinstance(headers, list | tuple):
        for item in headers:
            if isinstance(item, list | tuple) and len(item) == 2:
                pairs.append((str(item[0]), evidence_value(item[1])))
    return pairs


def pretty_json(value: Any, indent: int = 0, width: int = 100) -> str:
    """JSON for people: one key per line, but any list or object that fits in ``width`` characters
    on one line stays on it (a header pair, a stage mark, a short event), as it would in a log."""
    flat = json.dumps(value, ensure_ascii=False, default=str)
    pad = "  " * indent
    if len(flat) + len(pad) <= width or not isinstance(value, dict | list) or not value:
        return flat
    inner = "  " * (indent + 1)
    if isinstance(value, dict):
        items = [
            f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {pretty_json(v, indent + 1, width).lstrip()}"
            for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    items = [inner + pretty_json(v, indent + 1, width).lstrip() for v in value]
    return "[\n" + ",\n".join(items) + "\n" + pad + "]"


def _value(value: Any) -> str:
    """An evidence value as every reporter spells it (:func:`reports.evidence.evidence_value`), bounded."""
    return _short(evidence_value(value), _VALUE_LIMIT)


# -- the view model: plain strings and numbers, built before the template sees anything --------

#: Label and value pairs, shown as the rows of a table or a definition list.
Rows = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class FindingView:
    severity: str
    code: str
    check_id: str
    message: str
    evidence: Rows
    more_evidence: int


@dataclass(frozen=True, slots=True)
class CauseView:
    id: str
    title: str
    known: bool
    section: str
    explanation: str
    severity: str
    primary: bool
    findings: tuple[FindingView, ...]
    fixes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CheckRow:
    status: str
    check_id: str
    title: str
    duration: str
    metric: tuple[str, str] | None
    summary: str
    blocked_by: str | None


@dataclass(frozen=True, slots=True)
class HeaderSet:
    label: str
    rows: Rows


@dataclass(frozen=True, slots=True)
class FrameRow:
    t: str
    direction: str
    kind: str
    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class EvidenceView:
    check_id: str
    status: str
    title: str
    headers: tuple[HeaderSet, ...]
    certificates: tuple[Rows, ...]
    frames: tuple[FrameRow, ...]
    json: str
    empty: bool


@dataclass(frozen=True, slots=True)
class Verdict:
    verdict: str
    label: str
    headline: str
    detail: str | None
    primary_cause: str | None
    primary_code: str | None
    primary_check: str | None
    section: str | None
    counts: tuple[tuple[str, int], ...]
    errors: int


@dataclass(frozen=True, slots=True)
class View:
    title: str
    csp: str
    version: str
    target: str
    is_mock: bool
    started_at: str
    duration: str
    interrupted: bool
    verdict: Verdict
    request_ids: Rows
    more_request_ids: int
    rest_fallback: str | None
    causes: tuple[CauseView, ...]
    checks: tuple[CheckRow, ...]
    timeline: Timeline
    histograms: tuple[Histogram, ...]
    frames: tuple[FrameTimeline, ...]  # wsdoctor watch: each connection's frames
    evidence: tuple[EvidenceView, ...]
    environment: Rows
    environment_has_version: bool
    schema: str


def _finding_view(result: CheckResult, finding: Finding) -> FindingView:
    items, more = evidence_items(finding.evidence, _EVIDENCE_ITEMS)
    return FindingView(
        severity=finding.severity.value,
        code=_short(finding.code, _ID_LIMIT),
        check_id=_short(result.check_id, _ID_LIMIT),
        message=_short(finding.message),
        evidence=tuple((_short(k, _ID_LIMIT), _short(v, _VALUE_LIMIT)) for k, v in items),
        more_evidence=more,
    )


def _section(cause_id: str) -> str:
    cause = CAUSES.get(cause_id)
    if cause is None:
        return "not in wsdoctor's cause catalogue"
    return cause.article_section or "beyond the article"


def _causes(report: Report, summary: Summary) -> tuple[CauseView, ...]:
    ordered = ordered_findings(report.results)
    views = []
    for cs in summary.causes:
        cause = CAUSES.get(cs.cause)
        views.append(
            CauseView(
                id=_short(cs.cause, _ID_LIMIT),
                title=cause.title if cause else _short(cs.cause, _ID_LIMIT),
                known=cause is not None,
                section=_section(cs.cause),
                explanation=cause.explanation if cause else "",
                severity=cs.severity.value,
                primary=cs.cause == summary.primary_cause,
                findings=tuple(_finding_view(r, f) for r, f in ordered if f.cause == cs.cause),
                fixes=fixes_for(cs.cause, cs.codes),
            )
        )
    return tuple(views)


def _verdict(report: Report, summary: Summary) -> Verdict:
    counts = tuple((status, n) for status, n in summary.counts.items() if n)
    errors = summary.counts.get("error", 0)
    primary = summary.primary_cause
    cause = CAUSES.get(primary) if primary else None
    found = next(
        (
            (r, f)
            for r, f in ordered_findings(report.results)
            if f.code == summary.primary_finding and f.cause == primary
        ),
        None,
    )
    detail = _short(found[1].message) if found else None
    if summary.verdict == "healthy":
        passed, skipped = summary.counts.get("pass", 0), summary.counts.get("skip", 0)
        headline = "No check ran" if not passed else "Every check that ran passed"
        if passed and skipped:
            headline += f" ({skipped} skipped)"
        elif passed:
            headline = "Every check passed"
    elif primary:
        headline = cause.title if cause else f"Cause: {_short(primary, _ID_LIMIT)}"
    elif errors:
        headline = f"{errors} check(s) ended in ERROR: wsdoctor itself broke there, which is not a diagnosis"
    elif summary.verdict == "incomplete":
        headline = "The run was interrupted before it finished"
    else:
        headline = "No cause identified"
    if summary.verdict == "incomplete" and primary:
        headline = f"Interrupted; so far: {headline}"
    return Verdict(
        verdict=summary.verdict,
        label=_VERDICT_TEXT.get(summary.verdict, _short(summary.verdict, _ID_LIMIT)),
        headline=headline,
        detail=detail,
        primary_cause=_short(primary, _ID_LIMIT) if primary else None,
        primary_code=_short(summary.primary_finding, _ID_LIMIT) if summary.primary_finding else None,
        primary_check=_short(found[0].check_id, _ID_LIMIT) if found else None,
        section=_section(primary) if primary else None,
        counts=counts,
        errors=errors,
    )


def _check_rows(results: Sequence[CheckResult]) -> tuple[CheckRow, ...]:
    return tuple(
        CheckRow(
            status=r.status.value,
            check_id=_short(r.check_id, _ID_LIMIT),
            title=_short(r.title, _LINE_LIMIT),
            duration=format_seconds(r.duration_s) if r.status is not Status.SKIP else "—",
            metric=key_metric_parts(r),
            summary=_short(r.summary) or ("no reason given" if r.status is Status.SKIP else ""),
            blocked_by=_short(r.blocked_by, _ID_LIMIT) if r.blocked_by else None,
        )
        for r in results
    )


def _path_label(path: Sequence[str]) -> str:
    return " › ".join(path) if path else "evidence"


def _evidence_view(result: CheckResult) -> EvidenceView:
    headers: list[HeaderSet] = []
    certs: list[Rows] = []
    frames: list[FrameRow] = []
    for path, node in evidence_mappings(result.evidence, _EVIDENCE_DEPTH):
        if "headers" in node:
            pairs = _header_pairs(node["headers"])
            if pairs:
                status, reason = node.get("status"), node.get("reason")
                label = (
                    f"HTTP {status} {reason or ''}".strip()
                    if isinstance(status, int) and not isinstance(status, bool)
                    else _path_label(path)
                )
                headers.append(
                    HeaderSet(
                        label=_short(label, _ID_LIMIT),
                        rows=tuple((_short(k, _ID_LIMIT), _short(v, _VALUE_LIMIT * 2)) for k, v in pairs[:60]),
                    )
                )
        if "subject" in node and "issuer" in node:
            certs.append(
                tuple(
                    (_short(k, _ID_LIMIT), _value(v)) for k, v in node.items() if not isinstance(v, Mapping)
                )[:20]
            )
        events = node.get("events")
        if isinstance(events, list | tuple):
            for ev in events:
                if not isinstance(ev, Mapping):
                    continue
                kind = end_kind(ev.get("kind"))
                if kind is not None:
                    t = ev.get("t_s")
                    code = ev.get("code")
                    frames.append(
                        FrameRow(
                            t=format_seconds(t) if isinstance(t, int | float) and not isinstance(t, bool) else "—",
                            direction={"in": "received", "out": "sent"}.get(str(ev.get("direction")), "—"),
                            kind=_short(kind, _ID_LIMIT),
                            code=str(code) if isinstance(code, int) and not isinstance(code, bool) else "—",
                            reason=_short(ev.get("reason") or "", _VALUE_LIMIT),
                        )
                    )
        if "close_code" in node:
            code = node.get("close_code")
            frames.append(
                FrameRow(
                    t="—",
                    direction="received",
                    kind="close",
                    code=str(code) if isinstance(code, int) and not isinstance(code, bool) else "—",
                    reason=_short(node.get("close_reason") or "", _VALUE_LIMIT),
                )
            )
    try:
        raw = pretty_json(finite(dict(result.evidence)))
    except (ValueError, TypeError, RecursionError):
        raw = "(evidence could not be shown as JSON)"
    return EvidenceView(
        check_id=_short(result.check_id, _ID_LIMIT),
        status=result.status.value,
        title=_short(result.title),
        headers=tuple(headers[:12]),
        certificates=tuple(certs[:6]),
        frames=tuple(frames[:40]),
        json=display(raw, _JSON_LIMIT),
        empty=not result.evidence,
    )


def _environment(report: Report) -> Rows:
    rows: list[tuple[str, str]] = []
    for key, value in report.environment.items():
        if isinstance(value, Mapping):
            if not value:
                rows.append((_short(key, _ID_LIMIT), "(none set)"))
            for k, v in value.items():
                rows.append((_short(f"{key} · {k}", _ID_LIMIT), _value(v)))
        else:
            rows.append((_short(key, _ID_LIMIT), _value(value)))
    return tuple(rows[:80])


def build_view(report: Report) -> View:
    """Everything the template shows, as bounded strings and numbers. Pure."""
    summary = report.summary
    ids = list(request_ids(report).items())
    return View(
        title=f"wsdoctor: {_VERDICT_TEXT.get(summary.verdict, summary.verdict)} · {_short(report.target.url, 200)}",
        csp=CSP,
        version=_short(report.wsdoctor_version, _ID_LIMIT),
        target=_short(report.target.url, _LINE_LIMIT),
        is_mock=report.target.is_mock,
        started_at=_short(report.started_at, _ID_LIMIT),
        duration=format_seconds(report.duration_s),
        interrupted=report.interrupted,
        verdict=_verdict(report, summary),
        request_ids=tuple((_short(v, _ID_LIMIT), _short(c, _ID_LIMIT)) for v, c in ids[:_REQUEST_IDS]),
        more_request_ids=max(0, len(ids) - _REQUEST_IDS),
        rest_fallback=REST_FALLBACK if rest_fallback_applies(report.results) else None,
        causes=_causes(report, summary),
        checks=_check_rows(report.results),
        timeline=build_timeline(report),
        histograms=phase_histograms(report.results),
        frames=frame_timelines(report.results),
        evidence=tuple(_evidence_view(r) for r in report.results),
        environment=_environment(report),
        environment_has_version="wsdoctor" in report.environment,
        schema=_short(report.schema, _ID_LIMIT),
    )


def _finalize(value: Any) -> Any:
    """Applied by jinja2 to every ``{{ ... }}`` before escaping: no control character survives."""
    from markupsafe import Markup

    if value is None:
        return ""
    if isinstance(value, Markup):  # our own macro output, already escaped
        return value
    if isinstance(value, str):
        return display(value)
    return value


class HtmlReporter:
    """Renders a report as one self-contained, script-free HTML document."""

    name: ClassVar[str] = "html"

    def render(self, report: Report) -> str:
        import jinja2  # here, not at the top: `wsdoctor --help` must not pay for it

        env = jinja2.Environment(
            loader=jinja2.PackageLoader("reports", "templates"),
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html", "j2", "svg", "xml"), default_for_string=True, default=True
            ),
            undefined=jinja2.StrictUndefined,
            finalize=_finalize,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        template = env.get_template("report.html.j2")
        return template.render(view=build_view(report), track=TRACK, frames_track=FRAMES_TRACK)
