"""The reporters: JSON is a contract that round-trips and validates; the terminal is readable, complete
and safe against hostile server text. Inputs are the saved reports in ``fixtures/reports/``."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from rich.cells import cell_len

from reports.base import Reporter, load_reporter, reporter_names
from reports.json import JsonReporter, load_schema
from reports.terminal import TerminalReporter
from wsdoctor.causes import CAUSES, FINDING_CODES, REST_FALLBACK, fixes_for
from wsdoctor.errors import UsageError
from wsdoctor.model import CheckResult, Finding, Report, Status, Target

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "reports"
NAMES = ("healthy", "failing-proxy", "hostile")
CHECK_IDS = (
    "dns.resolve",
    "tcp.connect",
    "tls.handshake",
    "http.upgrade",
    "ws.auth",
    "stream.transcribe",
    "close.handshake",
)

SGR = re.compile(r"\x1b\[[0-9;]*m")
# Anything a terminal could act on: C0 (newline aside), DEL, C1, bidi embeddings/overrides/isolates.
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def load(name: str) -> Report:
    return Report.from_dict(json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8")))


def strict_loads(text: str) -> Any:
    def reject(token: str) -> None:
        raise AssertionError(f"invalid JSON token {token}")

    return json.loads(text, parse_constant=reject)


def flat(text: str) -> str:
    """Whitespace-normalised text, so wrapped lines can be searched for a sentence."""
    return " ".join(text.split())


def result(check_id: str, status: Status, *findings: Finding, **kw: Any) -> CheckResult:
    return CheckResult(check_id, check_id, status, f"{check_id} {status.value}", findings=findings, **kw)


def report_of(*results: CheckResult, interrupted: bool = False) -> Report:
    return Report(
        target=Target.parse("wss://api.deepgram.com/v1/listen"),
        results=results,
        started_at="2025-01-01T00:00:00Z",
        duration_s=1.0,
        wsdoctor_version="0.1.0",
        interrupted=interrupted,
    )


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


# -- JSON ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_json_round_trips(name: str) -> None:
    report = load(name)
    text = JsonReporter().render(report)
    assert text.endswith("\n")
    assert Report.from_dict(strict_loads(text)) == report


@pytest.mark.parametrize("name", NAMES)
def test_json_validates_against_schema(name: str, validator: jsonschema.Draft202012Validator) -> None:
    raw = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    validator.validate(raw)
    validator.validate(strict_loads(JsonReporter().render(load(name))))


def test_fixture_summaries_are_what_the_tests_expect() -> None:
    assert load("healthy").summary.verdict == "healthy"
    assert load("healthy").target.is_mock
    failing = load("failing-proxy")
    assert (failing.summary.verdict, failing.summary.primary_cause) == ("failing", "proxy-firewall")
    assert failing.summary.primary_finding == "http.intermediary-response"
    assert {r.blocked_by for r in failing.results if r.status is Status.SKIP} == {"http.upgrade"}
    for name in NAMES:
        assert tuple(r.check_id for r in load(name).results) == CHECK_IDS


def test_schema_is_a_contract(validator: jsonschema.Draft202012Validator) -> None:
    good = strict_loads(JsonReporter().render(load("failing-proxy")))
    validator.validate(good)

    def broken(mutate: Any) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(json.dumps(good))
        mutate(data)
        return data

    bad = [
        broken(lambda d: d.update(extra=1)),
        broken(lambda d: d.update(schema="wsdoctor.report/2")),
        broken(lambda d: d["target"].update(token="x")),
        broken(lambda d: d["results"][0].update(status="ok")),
        broken(lambda d: d["results"][0].update(extra=1)),
        broken(lambda d: d["results"][0]["metrics"].update(resolve_s="fast")),
        broken(lambda d: d["results"][3]["findings"][0].update(code="NoDot")),
        broken(lambda d: d["results"][3]["findings"][0].update(cause="Proxy Firewall")),
        broken(lambda d: d["results"][3]["findings"][0].update(severity="pass")),
        broken(lambda d: d["summary"].update(verdict="ok")),
        broken(lambda d: d["summary"]["counts"].update(unknown=1)),
        broken(lambda d: d.pop("results")),
    ]
    for data in bad:
        assert not validator.is_valid(data), data


def test_non_finite_numbers_render_valid_json(validator: jsonschema.Draft202012Validator) -> None:
    report = report_of(
        result(
            "stream.transcribe",
            Status.WARN,
            Finding(
                "stream.slow-first-result",
                "service",
                Status.WARN,
                "slow",
                evidence={"samples": [1.0, math.nan, {"deep": -math.inf}]},
            ),
            metrics={"first_result_s": math.nan, "gap_s": math.inf, "results": 3},
            evidence={"jitter_s": math.nan},
        )
    )
    data = strict_loads(JsonReporter().render(report))
    validator.validate(data)
    r = data["results"][0]
    assert r["metrics"] == {"first_result_s": None, "gap_s": None, "results": 3}
    assert r["evidence"] == {"jitter_s": None}
    assert r["findings"][0]["evidence"] == {"samples": [1.0, None, {"deep": None}]}


def test_wrong_schema_value_is_a_usage_error() -> None:
    data = strict_loads(JsonReporter().render(load("healthy")))
    data["schema"] = "wsdoctor.report/2"
    with pytest.raises(UsageError, match="schema"):
        Report.from_dict(data)
    with pytest.raises(UsageError):
        Report.from_dict([data])  # type: ignore[arg-type]


def test_json_is_safe_to_cat_and_still_exact() -> None:
    report = load("hostile")
    text = JsonReporter().render(report)
    assert not RAW_CONTROL.search(text)
    assert "\\u001b]0;pwned\\u0007" in text
    assert "\\u202e" in text
    assert Report.from_dict(strict_loads(text)) == report


def test_json_escapes_lone_surrogates() -> None:
    # bytes decoded with surrogateescape (a raw close reason, say) must not break the UTF-8 write
    report = report_of(result("close.handshake", Status.PASS, evidence={"reason": "ok\udcff"}))
    text = JsonReporter().render(report)
    text.encode("utf-8")
    assert Report.from_dict(strict_loads(text)) == report


# -- terminal ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_terminal_lists_every_check(name: str) -> None:
    out = TerminalReporter().render(load(name))
    for check_id in CHECK_IDS:
        assert check_id in out
    assert "Verdict: " in out
    assert "wsdoctor 0.1.0" in out


def test_terminal_failing_proxy_shows_verdict_cause_and_fixes() -> None:
    out = TerminalReporter().render(load("failing-proxy"))
    text = flat(out)
    assert "Verdict: FAILING — primary cause: proxy-firewall (§3 Proxy or Firewall Restrictions)" in text
    cause = CAUSES["proxy-firewall"]
    assert flat(cause.title) in text
    assert flat(cause.explanation) in text
    # the findings' own fixes first (failure before warning), then the cause's general ones
    shown = fixes_for("proxy-firewall", ["http.intermediary-response", "tls.interception"])
    assert shown[0] == FINDING_CODES["http.intermediary-response"].fixes[0]
    assert shown[1] == FINDING_CODES["tls.interception"].fixes[0]
    for n, fix in enumerate(shown, 1):
        assert f"{n}. {flat(fix)}" in text
    assert "http.intermediary-response (from http.upgrade)" in text
    assert "server=squid/5.7" in text
    # the failing finding comes before the warning, as in the summary
    assert text.index("http.intermediary-response (from") < text.index("tls.interception (from")
    assert "Skipped:" in out
    assert REST_FALLBACK[:40] not in text


def test_terminal_healthy_and_incomplete_verdicts() -> None:
    assert "Verdict: HEALTHY — every check that ran passed (1 skipped)" in TerminalReporter().render(load("healthy"))
    all_pass = report_of(result("dns.resolve", Status.PASS))
    assert "Verdict: HEALTHY — every check passed" in TerminalReporter().render(all_pass)
    interrupted = report_of(result("dns.resolve", Status.PASS), interrupted=True)
    assert "Verdict: INCOMPLETE — run interrupted" in TerminalReporter().render(interrupted)


def test_terminal_without_color_has_no_escape_at_all() -> None:
    for name in NAMES:
        assert "\x1b" not in TerminalReporter(color=False).render(load(name))


def test_terminal_colour_is_sgr_only() -> None:
    out = TerminalReporter(color=True).render(load("failing-proxy"))
    assert SGR.search(out)  # colour really is on
    assert "\x1b" not in SGR.sub("", out)


@pytest.mark.parametrize("color", [False, True])
def test_terminal_escapes_hostile_strings(color: bool) -> None:
    out = TerminalReporter(color=color).render(load("hostile"))
    plain = SGR.sub("", out)
    assert "\x1b" not in plain
    assert not RAW_CONTROL.search(plain)
    # shown, visibly, as escapes rather than dropped
    assert "\\x1b]0;pwned\\x07" in plain
    assert "\\x1b[31m" in plain
    assert "\\x00" in plain
    assert "\\u202e" in plain
    assert "<script>alert(1)</script>" in plain  # harmless in a terminal; HTML escapes it
    assert "more characters" in plain  # 5000-character strings are cut


def test_terminal_hostile_summary_directly() -> None:
    nasty = "ok \x1b]0;pwned\x07 \x1b[31mred \x00 \u202eevil \x9b2J"
    finding = Finding("http.upgrade-stripped", "proxy-firewall", Status.FAIL, nasty, evidence={nasty: nasty})
    report = report_of(CheckResult("http.upgrade", nasty, Status.FAIL, nasty, findings=(finding,)))
    for color in (False, True):
        plain = SGR.sub("", TerminalReporter(color=color).render(report))
        assert "\x1b" not in plain
        assert not RAW_CONTROL.search(plain)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("color", [False, True])
def test_terminal_narrow_width(name: str, color: bool) -> None:
    out = TerminalReporter(color=color, width=60).render(load(name))
    for line in SGR.sub("", out).splitlines():
        assert cell_len(line) <= 60, line
    assert "Verdict: " in out


def test_terminal_is_deterministic_whatever_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    report = load("failing-proxy")
    before = (TerminalReporter(color=True).render(report), TerminalReporter().render(report))
    for name, value in {"COLUMNS": "20", "NO_COLOR": "1", "TERM": "dumb", "FORCE_COLOR": "1"}.items():
        monkeypatch.setenv(name, value)
    assert (TerminalReporter(color=True).render(report), TerminalReporter().render(report)) == before


def test_terminal_unknown_cause_renders() -> None:
    report = report_of(
        result(
            "acme.widget", Status.FAIL, Finding("acme.widget-broken", "acme-widgets", Status.FAIL, "the widget broke")
        )
    )
    out = TerminalReporter().render(report)
    assert "Verdict: FAILING — primary cause: acme-widgets (not in wsdoctor's cause catalogue)" in out
    assert "Primary cause: acme-widgets" in out
    assert "No fixes catalogued" in out
    assert "the widget broke" in out


def test_terminal_rest_fallback() -> None:
    streaming_broken = report_of(
        result(
            "stream.transcribe",
            Status.FAIL,
            Finding("stream.reset", "network-instability", Status.FAIL, "reset after 2.1 s"),
        ),
        result("rest.prerecorded", Status.PASS),
    )
    assert flat(REST_FALLBACK) in flat(TerminalReporter().render(streaming_broken))
    rest_broken_too = report_of(
        result("stream.transcribe", Status.FAIL),
        result("rest.prerecorded", Status.FAIL),
    )
    assert flat(REST_FALLBACK) not in flat(TerminalReporter().render(rest_broken_too))
    flagged = report_of(
        result(
            "close.handshake",
            Status.FAIL,
            Finding(
                "close.no-close-frame", "network-instability", Status.FAIL, "EOF", evidence={"rest_fallback": True}
            ),
        )
    )
    assert flat(REST_FALLBACK) in flat(TerminalReporter().render(flagged))


def test_terminal_error_and_non_finite_numbers() -> None:
    report = report_of(
        CheckResult(
            "tcp.connect", "t", Status.ERROR, "RuntimeError: boom", duration_s=math.nan, metrics={"connect_s": math.inf}
        ),
    )
    out = flat(TerminalReporter().render(report))
    assert "ERROR tcp.connect" in out
    assert "1 check(s) ended in ERROR" in out
    assert "which is not a diagnosis" in out
    assert "Verdict: FAILING — no cause identified" in out
    assert "nan" not in out.lower()
    assert "inf" not in out


# -- loading reporters ---------------------------------------------------------------------------


def test_load_reporter_through_entry_points() -> None:
    assert {"json", "terminal"} <= set(reporter_names())
    assert load_reporter("json") is JsonReporter
    assert load_reporter("terminal") is TerminalReporter
    for cls in (JsonReporter, TerminalReporter):
        assert isinstance(cls(), Reporter)
        assert cls.name == next(n for n in ("json", "terminal") if load_reporter(n) is cls)


def test_load_reporter_unknown_name_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"unknown reporter 'nope' \(available: .*json"):
        load_reporter("nope")


# -- one vocabulary for every reporter (wsdoctor.model, reports.evidence) -------------------------


def _every_reporter(report: Report) -> dict[str, str]:
    """Each human-facing reporter's document for ``report``, unescaped where the format escapes."""
    import html

    from reports.html import HtmlReporter
    from reports.junit import JunitReporter
    from reports.markdown import MarkdownReporter

    return {
        "terminal": flat(TerminalReporter(width=300).render(report)),
        "html": html.unescape(HtmlReporter().render(report)),
        "junit": html.unescape(JunitReporter().render(report)),
        "markdown": MarkdownReporter().render(report),
    }


@pytest.mark.parametrize(
    ("failing", "expected"),
    [
        ("http.upgrade", True),  # a hop strips the Upgrade: a POST goes through
        ("stream.transcribe", True),
        ("idle.silent", True),  # a middlebox cuts idle streams: a POST holds no idle stream
        ("close.handshake", True),
        ("ws.auth", False),  # a 401/402/429 refuses REST alike
        ("tls.handshake", False),  # REST takes the same TLS path
        ("dns.resolve", False),
    ],
)
def test_one_rest_fallback_rule_for_every_reporter(failing: str, expected: bool) -> None:
    from reports.markdown import text
    from wsdoctor.model import rest_fallback_applies

    report = report_of(
        result(failing, Status.FAIL, Finding("close.no-close-frame", "network-instability", Status.FAIL, "broke")),
        result("rest.transcribe", Status.PASS),
    )
    assert rest_fallback_applies(report.results) is expected
    docs = _every_reporter(report)
    shown = {
        "terminal": flat(REST_FALLBACK) in docs["terminal"],
        "html": REST_FALLBACK in docs["html"],
        "junit": REST_FALLBACK in docs["junit"],
        "markdown": text(REST_FALLBACK) in docs["markdown"],
    }
    assert shown == dict.fromkeys(shown, expected)


def test_every_reporter_lists_the_same_request_ids() -> None:
    from wsdoctor.model import request_ids

    headers = {"answer": {"headers": [["Server", "x"], ["DG-Request-Id", "rid-header-pair"]]}}
    deep: dict[str, Any] = {"dg-request-id": "rid-deep"}
    for level in range(5):  # 11 levels down: past what the HTML report used to walk
        deep = {f"level{level}": [deep]}
    report = report_of(
        result("http.upgrade", Status.PASS, evidence={"upgrade": headers, "other": {"Dg-Request-Id": "rid-mapping"}}),
        result(
            "ws.auth",
            Status.FAIL,
            Finding("ws.payment-required", "account-limits", Status.FAIL, "402", {"dg_request_id": "rid-finding"}),
        ),
        result(
            "stream.transcribe",
            Status.PASS,
            evidence={"events": [{"detail": {"request_id": "rid-results"}}], "deep": deep},
        ),
        result("rest.transcribe", Status.PASS, evidence={"request_id": "rid-header-pair"}),  # seen before
    )
    ids = request_ids(report)
    assert ids == {
        "rid-header-pair": "http.upgrade",
        "rid-mapping": "http.upgrade",
        "rid-finding": "ws.auth",
        "rid-results": "stream.transcribe",
        "rid-deep": "stream.transcribe",
    }
    assert request_ids(report.results[1:2]) == {"rid-finding": "ws.auth"}
    docs = _every_reporter(report)
    for name in ("html", "junit", "markdown"):
        at = [docs[name].index(rid) for rid in ids]
        assert at == sorted(at), name  # every id, in report order


def test_evidence_values_read_the_same_in_every_reporter() -> None:
    from reports.evidence import evidence_value

    values: dict[str, Any] = {
        "f": 0.123456789,
        "nan": math.nan,
        "n": 7,
        "b": True,
        "none": None,
        "l": [1.5, math.inf, "x"],
        "d": {"a": 1, "z": None},
    }
    expected = {
        "f": "0.1235",
        "nan": "—",
        "n": "7",
        "b": "true",
        "none": "null",
        "l": '[1.5,null,"x"]',
        "d": '{"a":1,"z":null}',
    }
    assert {k: evidence_value(v) for k, v in values.items()} == expected
    evidence = dict(list(values.items())[:6])  # the terminal shows six items
    report = report_of(
        result(
            "close.handshake",
            Status.FAIL,
            Finding("close.no-close-frame", "network-instability", Status.FAIL, "EOF", evidence),
        )
    )
    docs = _every_reporter(report)
    for key, value in list(expected.items())[:6]:
        assert f"{key}={value}" in docs["terminal"]
        assert f"<dt>{key}</dt><dd><code>{value}</code></dd>" in docs["html"]
        assert f"{key} = {value}" in docs["junit"]


def test_every_way_a_connection_ends_is_drawn_and_listed() -> None:
    import html

    from reports.html import HtmlReporter
    from reports.timeline import build_timeline
    from wsdoctor.model import EndKind

    for kind in EndKind:
        events = [{"t_s": 0.5, "direction": "in", "kind": kind.value, "code": 1011}]
        report = report_of(result("stream.transcribe", Status.FAIL, evidence={"session": {"events": events}}))
        row = next(b for b in build_timeline(report).checks if b.key == "stream.transcribe")
        assert [m.kind for m in row.marks] == [kind.value]
        assert row.marks[0].label != f"{kind.value} at 500 ms"  # said in words, not by its token
        page = html.unescape(HtmlReporter().render(report))
        assert "Close frames and connection ends" in page
        assert f"<td>{kind.value}</td>" in page


def test_timeline_phases_are_the_models() -> None:
    from reports.timeline import build_timeline
    from wsdoctor.model import PHASES

    metrics = {p.metric: 0.01 for p in PHASES} | {"audio_s": 1.0}
    report = report_of(result("stream.transcribe", Status.PASS, metrics=metrics))
    rows = [(b.key, b.label) for b in build_timeline(report).phases]
    assert [r for r in rows if r[0] != "audio"] == [(p.id, p.title) for p in PHASES]
