"""The JUnit XML reporter: every check a testcase, so CI systems show a diagnosis as test results.

Shape (the common subset that Jenkins, GitLab, GitHub Actions test reporters, Azure Pipelines and
CircleCI all accept -- Jenkins' junit-10 rules and Ant's, intersected)::

    <testsuites name="wsdoctor" tests= failures= errors= skipped= time=>
      <testsuite name="wsdoctor" tests= failures= errors= skipped= time= timestamp=>
        <properties><property name= value=/>...</properties>     target, verdict, primary cause...
        <testcase classname="wsdoctor.<family>" name="<check id>" time=>
          fail  -> <failure message="code: message" type="<finding code>">findings, evidence, fixes</failure>
          error -> <error message="..." type="wsdoctor.error">...</error>
          skip  -> <skipped message="<reason>"/>
          warn  -> passes; findings and fixes go to <system-out>
          pass  -> <system-out> with the summary and metrics
        </testcase>
      </testsuite>
    </testsuites>

Promises: well-formed XML 1.0 whatever the servers said -- characters XML forbids (NUL and the
other C0 controls, lone surrogates, U+FFFE/U+FFFF) and those a CI log viewer could act on (C1,
bidi overrides) become visible ``\\xNN``/``\\uNNNN`` escapes; numbers are finite decimals; the
document is built with :mod:`xml.etree.ElementTree`, which escapes markup in text and attributes.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import ClassVar

from reports.evidence import evidence_items
from reports.html import key_metric
from wsdoctor.causes import CAUSES, REST_FALLBACK, fixes_for
from wsdoctor.model import (
    CheckResult,
    Finding,
    Report,
    Status,
    layer_of,
    request_ids,
    rest_fallback_applies,
    websocket_failed,
)
from wsdoctor.sanitize import printable

__all__ = ["JunitReporter", "xml_text"]

# What printable() leaves that XML 1.0 still forbids, or that no log viewer should get raw.
_XML_ILLEGAL = re.compile("[\ud800-\udfff\ufffe\uffff]")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
_MESSAGE_LIMIT = 1000
_TEXT_LIMIT = 20_000
_EVIDENCE_ITEMS = 12


def xml_text(value: object, limit: int = _TEXT_LIMIT) -> str:
    """``value`` as text that is legal in XML 1.0 and safe in a log viewer (newlines kept)."""
    text = printable(value, limit, keep_newlines=True)
    return _XML_ILLEGAL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _seconds(value: float) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) and math.isfinite(value) and value >= 0 else "0.000"


def _finding_text(finding: Finding) -> list[str]:
    lines = [f"{finding.severity.value.upper()} {finding.code} [{finding.cause}]: {finding.message}"]
    items, more = evidence_items(finding.evidence, _EVIDENCE_ITEMS)
    lines.extend(f"    {key} = {printable(value, 300)}" for key, value in items)
    if more:
        lines.append(f"    … {more} more in the JSON report")
    return lines


def _fixes_text(findings: Iterable[Finding]) -> list[str]:
    """Per cause (in order of first appearance): its findings' own fixes first, then the cause's."""
    lines: list[str] = []
    by_cause: dict[str, list[str]] = {}
    for f in findings:
        by_cause.setdefault(f.cause, []).append(f.code)
    for cause_id, codes in by_cause.items():
        cause = CAUSES.get(cause_id)
        fixes = fixes_for(cause_id, codes)
        if cause is None:
            lines.append(f"Cause {cause_id}: not in wsdoctor's cause catalogue.")
        else:
            section = cause.article_section or "beyond the article"
            lines.append(f"Cause {cause.id} ({section}): {cause.title}")
        if not fixes:
            lines.append("  no fixes catalogued.")
        lines.extend(f"  {n}. {fix}" for n, fix in enumerate(fixes, 1))
    return lines


def _details(result: CheckResult, rest: bool) -> str:
    lines = [f"{result.check_id}: {result.summary}"]
    metric = key_metric(result)
    if metric:
        lines.append(f"key metric: {metric}")
    ids = list(request_ids([result]))
    if ids:
        lines.append(f"dg-request-id: {', '.join(ids[:6])}")
    if result.findings:
        lines.append("")
        lines.append("Findings:")
        for f in result.findings:
            lines.extend(f"  {line}" for line in _finding_text(f))
        lines.append("")
        lines.append("Fixes:")
        lines.extend(f"  {line}" for line in _fixes_text(result.findings))
    if rest and websocket_failed(result):
        lines.append("")
        lines.append(f"Alternative: {REST_FALLBACK}")
    return xml_text("\n".join(lines))


def _testcase(result: CheckResult, rest: bool) -> ET.Element:
    case = ET.Element(
        "testcase",
        {
            "classname": xml_text(f"wsdoctor.{layer_of(result.check_id)}", 200),
            "name": xml_text(result.check_id, 200),
            "time": _seconds(result.duration_s if result.status is not Status.SKIP else 0.0),
        },
    )
    status = result.status
    if status is Status.FAIL:
        failing = [f for f in result.findings if f.severity is Status.FAIL] or list(result.findings)
        first = failing[0] if failing else None
        message = f"{first.code}: {first.message}" if first else result.summary
        child = ET.SubElement(
            case,
            "failure",
            {"message": xml_text(message, _MESSAGE_LIMIT), "type": xml_text(first.code if first else "fail", 200)},
        )
        child.text = _details(result, rest)
    elif status is Status.ERROR:
        child = ET.SubElement(
            case, "error", {"message": xml_text(result.summary, _MESSAGE_LIMIT), "type": "wsdoctor.error"}
        )
        child.text = xml_text(
            f"{result.check_id}: {result.summary}\n\nwsdoctor itself broke here (a bug or an overrun deadline); "
            "this is not a diagnosis of the connection."
        )
    elif status is Status.SKIP:
        reason = result.summary or "no reason given"
        if result.blocked_by and result.blocked_by not in reason:
            reason = f"{reason} (blocked by {result.blocked_by})"
        ET.SubElement(case, "skipped", {"message": xml_text(reason, _MESSAGE_LIMIT)})
    else:  # pass, warn: the testcase passes; what was seen goes to system-out
        out = ET.SubElement(case, "system-out")
        out.text = _details(result, rest)
    return case


class JunitReporter:
    """Renders a report as JUnit XML: one testsuite, one testcase per check."""

    name: ClassVar[str] = "junit"

    def render(self, report: Report) -> str:
        results = report.results
        summary = report.summary
        counts = summary.counts
        rest = rest_fallback_applies(results)
        totals = {
            "tests": str(len(results)),
            "failures": str(counts.get("fail", 0)),
            "errors": str(counts.get("error", 0)),
            "skipped": str(counts.get("skip", 0)),
            "time": _seconds(report.duration_s),
        }
        root = ET.Element("testsuites", {"name": "wsdoctor", **totals})
        suite_attrs = {"name": "wsdoctor", **totals}
        if _TIMESTAMP.match(report.started_at):
            suite_attrs["timestamp"] = report.started_at[:19]  # xs:dateTime without zone: Ant's rule
        suite = ET.SubElement(root, "testsuite", suite_attrs)
        properties = ET.SubElement(suite, "properties")
        props: list[tuple[str, object]] = [
            ("wsdoctor.version", report.wsdoctor_version),
            ("target", report.target.url),
            ("target.mock", str(report.target.is_mock).lower()),
            ("started_at", report.started_at),
            ("verdict", summary.verdict),
            ("primary_cause", summary.primary_cause or ""),
            ("primary_finding", summary.primary_finding or ""),
            ("interrupted", str(report.interrupted).lower()),
        ]
        for key in ("python", "os"):
            if isinstance(report.environment.get(key), str):
                props.append((key, report.environment[key]))
        props.extend((f"dg-request-id.{n}", rid) for n, rid in enumerate(list(request_ids(results))[:20], 1))
        for name, value in props:
            ET.SubElement(properties, "property", {"name": xml_text(name, 200), "value": xml_text(value, 2000)})
        for result in results:
            suite.append(_testcase(result, rest))
        out = ET.SubElement(suite, "system-out")
        verdict = f"verdict: {summary.verdict}"
        if summary.primary_cause:
            verdict += f"; primary cause: {summary.primary_cause} ({summary.primary_finding})"
        out.text = xml_text(verdict)
        ET.indent(root, space="  ")
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
