"""The JUnit reporter: valid against the schema CI systems accept (``fixtures/junit/junit.xsd``,
the strict intersection of Jenkins' and Ant's rules), one testcase per check, failures that carry
findings and fixes, and well-formed XML whatever a hostile server said."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import xmlschema

from reports.base import load_reporter
from reports.junit import JunitReporter, xml_text
from wsdoctor.causes import CAUSES, FINDING_CODES, REST_FALLBACK, fixes_for
from wsdoctor.model import CheckResult, Finding, Report, Status, Target, layer_of

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures" / "reports"
NAMES = ("healthy", "failing-proxy", "hostile", "mock-tls-idle-cutoff")
# XML 1.0 Char production: everything else makes a document ill-formed.
XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(ROOT / "fixtures" / "junit" / "junit.xsd"))


def load(name: str) -> Report:
    return Report.from_dict(json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8")))


def report_of(*results: CheckResult, **kw: Any) -> Report:
    return Report(
        target=Target.parse("wss://api.deepgram.com/v1/listen"),
        results=results,
        started_at=kw.pop("started_at", "2025-01-01T00:00:00Z"),
        duration_s=kw.pop("duration_s", 1.0),
        wsdoctor_version="0.1.0",
        **kw,
    )


def parse(text: str, schema: xmlschema.XMLSchema) -> ET.Element:
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    assert not XML_ILLEGAL.search(text)
    schema.validate(text)
    return ET.fromstring(text)


@pytest.mark.parametrize("name", NAMES)
def test_every_check_is_a_testcase(name: str, schema: xmlschema.XMLSchema) -> None:
    report = load(name)
    root = parse(JunitReporter().render(report), schema)
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    suite = suites[0]
    counts = report.summary.counts
    expected = {
        "name": "wsdoctor",
        "tests": str(len(report.results)),
        "failures": str(counts["fail"]),
        "errors": str(counts["error"]),
        "skipped": str(counts["skip"]),
    }
    for attrs in (suite.attrib, root.attrib):
        assert {k: attrs[k] for k in expected} == expected
    assert float(suite.attrib["time"]) == pytest.approx(report.duration_s, abs=0.001)
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        (f"wsdoctor.{layer_of(r.check_id)}", r.check_id) for r in report.results
    ]
    for case, r in zip(cases, report.results, strict=True):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        assert kinds == {"fail": ["failure"], "error": ["error"], "skip": ["skipped"]}.get(r.status.value, [])
        assert float(case.attrib["time"]) >= 0
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["verdict"] == report.summary.verdict
    assert props["target"] == xml_text(report.target.url)
    assert props["primary_cause"] == (report.summary.primary_cause or "")


def test_failure_carries_findings_and_fixes(schema: xmlschema.XMLSchema) -> None:
    report = load("failing-proxy")
    root = parse(JunitReporter().render(report), schema)
    case = root.find(".//testcase[@name='http.upgrade']")
    assert case is not None
    failure = case.find("failure")
    assert failure is not None
    assert failure.get("type") == "http.intermediary-response"
    message = failure.get("message") or ""
    assert message.startswith("http.intermediary-response: ")
    body = failure.text or ""
    assert "FAIL http.intermediary-response [proxy-firewall]" in body
    assert "server = squid/5.7" in body
    cause = CAUSES["proxy-firewall"]
    assert f"Cause proxy-firewall ({cause.article_section}): {cause.title}" in body
    shown = fixes_for("proxy-firewall", ["http.intermediary-response"])
    assert shown[0] == FINDING_CODES["http.intermediary-response"].fixes[0]
    for n, fix in enumerate(shown, 1):
        assert f"{n}. {fix}" in body
    # a skipped check says why, and names what blocked it
    skipped = root.find(".//testcase[@name='ws.auth']/skipped")
    assert skipped is not None and "http.upgrade" in (skipped.get("message") or "")
    # a warning passes, with its finding and fixes in system-out
    tls = root.find(".//testcase[@name='tls.handshake']")
    assert tls is not None and tls.find("failure") is None
    out = tls.findtext("system-out") or ""
    assert "WARN tls.interception" in out and "Fixes:" in out
    assert root.find("testsuite/properties/property[@name='primary_finding']").get("value") == (  # type: ignore[union-attr]
        "http.intermediary-response"
    )


def test_error_and_rest_fallback(schema: xmlschema.XMLSchema) -> None:
    report = report_of(
        CheckResult("tcp.connect", "t", Status.ERROR, "overran its 5 s deadline", duration_s=math.inf),
        CheckResult(
            "stream.transcribe",
            "s",
            Status.FAIL,
            "reset",
            findings=(Finding("stream.reset", "network-instability", Status.FAIL, "RST after 2 s"),),
        ),
        CheckResult("rest.transcribe", "r", Status.PASS, "HTTP 200"),
        duration_s=math.nan,
        started_at="not a date",
    )
    text = JunitReporter().render(report)
    root = parse(text, schema)
    error = root.find(".//testcase[@name='tcp.connect']/error")
    assert error is not None and error.get("message") == "overran its 5 s deadline"
    assert "not a diagnosis" in (error.text or "")
    assert root.find(".//testcase[@name='tcp.connect']").get("time") == "0.000"  # type: ignore[union-attr]
    assert root.find("testsuite").get("timestamp") is None  # type: ignore[union-attr]
    failure = root.find(".//testcase[@name='stream.transcribe']/failure")
    assert failure is not None and REST_FALLBACK in (failure.text or "")


def test_hostile_strings_make_well_formed_xml(schema: xmlschema.XMLSchema) -> None:
    nasty = "a\x00\x01\x0b\x1b[31m\x1b]0;pwned\x07\x9b\u202e\udcff\ufffe\uffff<x>&amp;\"'</testcase>]]>"
    finding = Finding("close.unexpected-code", "service", Status.FAIL, nasty, evidence={nasty: nasty})
    report = report_of(
        CheckResult(f"close.{nasty}", nasty, Status.FAIL, nasty, findings=(finding,)),
        CheckResult("stream.transcribe", nasty, Status.SKIP, nasty, blocked_by=nasty),
        CheckResult("tls.handshake", nasty, Status.WARN, nasty, findings=(Finding(nasty, nasty, Status.WARN, nasty),)),
        environment={"python": nasty, "os": nasty},
    )
    text = JunitReporter().render(report)
    text.encode("utf-8")
    root = parse(text, schema)
    assert len(root.findall(".//testcase")) == 3
    failure = root.find(".//failure")
    assert failure is not None
    shown = failure.get("message") or ""
    assert "\\x00" in shown and "\\x1b[31m" in shown and "\\ufffe" in shown and "\\udcff" in shown
    assert "<x>&amp;\"'</testcase>]]>" in shown  # markup survives as text, escaped in the XML
    for fixture in ("hostile",):
        parse(JunitReporter().render(load(fixture)), schema)


def test_xml_text_is_lossless_for_ordinary_text() -> None:
    assert xml_text("résumé · 1006 — ok\nnext") == "résumé · 1006 — ok\nnext"
    assert xml_text("\x00") == "\\x00"


def test_empty_report_is_valid(schema: xmlschema.XMLSchema) -> None:
    root = parse(JunitReporter().render(report_of()), schema)
    assert root.find("testsuite").get("tests") == "0"  # type: ignore[union-attr]


def test_loaded_through_the_entry_point() -> None:
    assert load_reporter("junit") is JunitReporter
    assert JunitReporter.name == "junit"


def test_schema_rejects_what_ci_systems_reject(schema: xmlschema.XMLSchema) -> None:
    """The XSD is a real contract: documents CI readers choke on fail it."""
    good = JunitReporter().render(load("failing-proxy"))
    assert schema.is_valid(good)
    bad = [
        good.replace('<testsuite name="wsdoctor"', "<testsuite", 1),  # no suite name
        good.replace('tests="7"', 'tests="seven"', 1),
        re.sub(r'time="0\.(\d+)"', r'time="1,\1"', good, count=1),  # thousands separator
        good.replace('classname="wsdoctor.dns" ', "", 1),
        re.sub(r'(<failure [^>]*)type="[^"]*"', r"\1", good, count=1),
        good.replace("<skipped ", "<skipped/><skipped ", 1),  # two outcomes in one testcase
        good.replace("<testcase ", "<test ", 1).replace("</testcase>", "</test>", 1),
    ]
    for doc in bad:
        assert doc != good
        assert not schema.is_valid(doc)
