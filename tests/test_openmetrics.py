"""The OpenMetrics reporter: parsed back with prometheus_client's strict OpenMetrics parser, every
phase present, findings as cause labels, hostile strings escaped, no free text in labels."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from reports.base import load_reporter
from reports.openmetrics import PHASES, OpenMetricsReporter, escape_label_value, format_value
from wsdoctor.model import CheckResult, Finding, Report, Status, Target

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "reports"


def load(name: str) -> Report:
    return Report.from_dict(json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8")))


def samples(text: str) -> list[Any]:
    assert text.endswith("# EOF\n")
    return [s for fam in text_string_to_metric_families(text) for s in fam.samples]


def values(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [(dict(s.labels), s.value) for s in samples(text) if s.name == name]


def report_of(
    *results: CheckResult, interrupted: bool = False, url: str = "wss://api.deepgram.com/v1/listen"
) -> Report:
    return Report(
        target=Target.parse(url),
        results=results,
        started_at="2025-01-01T00:00:00Z",
        duration_s=1.5,
        wsdoctor_version="0.1.0",
        interrupted=interrupted,
    )


@pytest.mark.parametrize("name", ["healthy", "failing-proxy", "hostile", "mock-tls-idle-cutoff"])
def test_fixtures_parse_and_carry_every_family(name: str) -> None:
    report = load(name)
    text = OpenMetricsReporter().render(report)
    names = {fam.name for fam in text_string_to_metric_families(text)}
    assert {
        "wsdoctor_info",
        "wsdoctor_probe_success",
        "wsdoctor_check_status",
        "wsdoctor_phase_seconds",
        "wsdoctor_idle_cutoff_seconds",
        "wsdoctor_finding",
        "wsdoctor_verdict",
    } <= names
    # the phase labels are public: the exported phases of the model, spelled as blackbox_exporter does
    assert [labels["phase"] for labels, _ in values(text, "wsdoctor_phase_seconds")] == [p for p, _ in PHASES]
    assert [p for p, _ in PHASES] == ["dns", "tcp", "tls", "upgrade", "first_result", "close"]
    statuses = values(text, "wsdoctor_check_status")
    assert len(statuses) == 5 * len(report.results)
    for r in report.results:
        current = [lab["status"] for lab, v in statuses if lab["check"] == r.check_id and v == 1]
        assert current == [r.status.value]
    verdicts = [lab["verdict"] for lab, v in values(text, "wsdoctor_verdict") if v == 1]
    assert verdicts == [report.summary.verdict]


def test_healthy_is_success_and_has_no_finding_series() -> None:
    text = OpenMetricsReporter(target_label="mock").render(load("healthy"))
    assert values(text, "wsdoctor_probe_success") == [({"target": "mock"}, 1.0)]
    assert values(text, "wsdoctor_finding") == []
    assert values(text, "wsdoctor_primary_cause") == []
    assert values(text, "wsdoctor_info") == [({"target": "mock", "version": load("healthy").wsdoctor_version}, 1.0)]


def test_failing_proxy_carries_cause_labels() -> None:
    report = load("failing-proxy")
    text = OpenMetricsReporter().render(report)
    assert values(text, "wsdoctor_probe_success")[0][1] == 0
    findings = values(text, "wsdoctor_finding")
    assert findings, text
    assert {lab["cause"] for lab, _ in findings} == {"proxy-firewall"}
    assert ("http.intermediary-response", "proxy-firewall") in {(lab["code"], lab["cause"]) for lab, _ in findings}
    ((primary, value),) = values(text, "wsdoctor_primary_cause")
    assert value == 1
    assert primary["cause"] == "proxy-firewall" and primary["code"] == "http.intermediary-response"


def test_unreached_phases_are_nan_and_reached_ones_are_numbers() -> None:
    report = report_of(
        CheckResult("tcp.connect", "t", Status.PASS, "ok", metrics={"connect_s": 0.012}),
        CheckResult("tls.handshake", "t", Status.FAIL, "no", metrics={"tls_s": None}),
        CheckResult(
            "idle.silent", "t", Status.PASS, "ok", metrics={"idle_cutoff_s": 4.2, "server_idle_timeout_s": None}
        ),
    )
    text = OpenMetricsReporter().render(report)
    phases = {lab["phase"]: v for lab, v in values(text, "wsdoctor_phase_seconds")}
    assert phases["tcp"] == pytest.approx(0.012)
    for phase in ("dns", "tls", "upgrade", "first_result", "close"):
        assert math.isnan(phases[phase]), phase
    assert values(text, "wsdoctor_idle_cutoff_seconds")[0][1] == pytest.approx(4.2)
    assert math.isnan(values(text, "wsdoctor_server_idle_timeout_seconds")[0][1])


def test_info_findings_get_no_series_and_duplicates_are_merged() -> None:
    info = Finding("idle.server-timeout", "connection-handling", Status.INFO, "documented 10 s close")
    dup = Finding("close.no-close-frame", "network-instability", Status.FAIL, "eof")
    report = report_of(
        CheckResult("idle.silent", "t", Status.PASS, "ok", findings=(info,)),
        CheckResult("stream.transcribe", "t", Status.FAIL, "x", findings=(dup,)),
        CheckResult("close.handshake", "t", Status.FAIL, "y", findings=(dup,)),
    )
    text = OpenMetricsReporter().render(report)  # the parser rejects duplicate series
    assert values(text, "wsdoctor_finding") == [
        (
            {
                "target": report.target.url,
                "code": "close.no-close-frame",
                "cause": "network-instability",
                "severity": "fail",
            },
            1.0,
        )
    ]


def test_interrupted_run_is_not_a_success() -> None:
    report = report_of(CheckResult("tcp.connect", "t", Status.PASS, "ok"), interrupted=True)
    text = OpenMetricsReporter().render(report)
    assert values(text, "wsdoctor_probe_success")[0][1] == 0
    assert values(text, "wsdoctor_probe_interrupted")[0][1] == 1


def test_hostile_strings_are_escaped_and_never_free_text() -> None:
    nasty = 'a"b\\c\nd\x1b[31m}\u202e'
    finding = Finding(f"close.{nasty}", nasty, Status.FAIL, "the message " + nasty)
    report = report_of(
        CheckResult(f"x.{nasty}", nasty, Status.FAIL, "SUMMARY-TEXT " + nasty, findings=(finding,)),
        url="wss://user:hunter2@api.deepgram.com/v1/listen?token=s3cr3t&model=nova-2",
    )
    text = OpenMetricsReporter().render(report)
    assert "\x1b" not in text and "\u202e" not in text
    assert "hunter2" not in text and "s3cr3t" not in text
    assert "SUMMARY-TEXT" not in text and "the message" not in text
    lines = text.splitlines()
    assert all(line.startswith("#") or line.count(" ") >= 1 for line in lines)
    checks = {lab["check"] for lab, _ in values(text, "wsdoctor_check_status")}
    assert len(checks) == 1
    (check,) = checks
    assert check.startswith('x.a"b\\c') and "\\x0a" in check  # round-trips through the parser's unescape


def test_label_escaping_and_number_spelling() -> None:
    assert escape_label_value('q"b\\') == 'q\\"b\\\\'
    assert escape_label_value("x" * 500).endswith("more characters)")
    assert [format_value(v) for v in (None, float("nan"), float("inf"), -float("inf"), 2, 0.5, True)] == [
        "NaN",
        "NaN",
        "+Inf",
        "-Inf",
        "2",
        "0.5",
        "1",
    ]


def test_registered_as_a_reporter() -> None:
    assert load_reporter("openmetrics") is OpenMetricsReporter


def test_render_writes_openmetrics_and_markdown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from wsdoctor.cli import main

    prom, md = tmp_path / "wsdoctor.prom", tmp_path / "summary.md"
    src = str(FIXTURES / "failing-proxy.json")
    assert main(["render", src, "--openmetrics", str(prom), "--markdown", str(md)]) == 0
    assert values(prom.read_text(), "wsdoctor_probe_success")[0][1] == 0
    assert "proxy-firewall" in md.read_text()
    assert main(["render", src, "--openmetrics", str(md), "--markdown", str(md)]) == 2  # one file, two formats
    assert "would both write" in capsys.readouterr().err


def test_textfile_collector_format_passes_promtool(tmp_path: Path) -> None:
    """node_exporter's textfile collector reads the older text format: promtool checks exactly that."""
    import shutil
    import subprocess

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    for name in ("healthy", "failing-proxy", "hostile"):
        text = OpenMetricsReporter().render(load(name))
        proc = subprocess.run(
            [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30, check=False
        )
        assert proc.returncode == 0, (name, proc.stdout, proc.stderr)
