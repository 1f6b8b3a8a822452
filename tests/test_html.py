"""The HTML reporter and its timeline: self-contained, inert, complete, and safe against a hostile
server. Inputs are the saved reports in ``fixtures/reports/`` (one recorded from a real run), small
synthetic reports, and a live run against the hostile impostor of ``tests/hostile.py``."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from reports.base import load_reporter
from reports.html import CSP, HtmlReporter, build_view, pretty_json
from reports.terminal import TerminalReporter
from reports.timeline import MIN_BAR, TRACK, build_timeline, format_seconds
from tests.hostile import ANSI, BREAKOUT, KEY, SCRIPT, HostileServer, Outputs, run_wsdoctor
from wsdoctor.causes import CAUSES, REST_FALLBACK
from wsdoctor.cli import main
from wsdoctor.model import CheckResult, Finding, Report, Status, Target, rest_fallback_applies

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures" / "reports"
NAMES = ("healthy", "failing-proxy", "hostile", "mock-tls-idle-cutoff")
TEMPLATES = ROOT / "reports" / "templates"
# Anything a terminal or a parser could act on, newline aside.
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
SGR = re.compile(r"\x1b\[[0-9;]*m")


def load(name: str) -> Report:
    return Report.from_dict(json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8")))


def result(check_id: str, status: Status, *findings: Finding, **kw: Any) -> CheckResult:
    return CheckResult(check_id, check_id, status, f"{check_id} {status.value}", findings=findings, **kw)


def report_of(*results: CheckResult, interrupted: bool = False, **kw: Any) -> Report:
    return Report(
        target=Target.parse("wss://api.deepgram.com/v1/listen"),
        results=results,
        started_at="2025-01-01T00:00:00Z",
        duration_s=1.0,
        wsdoctor_version="0.1.0",
        interrupted=interrupted,
        **kw,
    )


class Page(HTMLParser):
    """Every tag with its attributes, and the text, of an HTML document."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text_parts: list[str] = []
        self._in_style = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if not self._in_style:
            self.text_parts.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.text_parts).split())

    def names(self) -> set[str]:
        return {t for t, _a in self.tags}


def flat(text: str) -> str:
    return " ".join(text.split())


def assert_inert(html: str) -> Page:
    """The document can neither run script nor fetch anything, whatever it displays."""
    page = Page(html)
    allowed = {
        "html",
        "head",
        "meta",
        "link",
        "title",
        "style",
        "body",
        "main",
        "header",
        "section",
        "article",
        "footer",
        "p",
        "span",
        "strong",
        "code",
        "pre",
        "h1",
        "h2",
        "h3",
        "h4",
        "ul",
        "ol",
        "li",
        "dl",
        "dt",
        "dd",
        "table",
        "colgroup",
        "col",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "details",
        "summary",
        "div",
        "br",
        "svg",
        "rect",
        "line",
    }
    assert page.names() <= allowed, page.names() - allowed
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            assert name not in {"src", "srcset", "action", "formaction", "xlink:href", "background"}, (tag, name)
            if name == "href":
                assert tag == "link" and value == "data:,", (tag, value)
            if name == "style":
                assert re.fullmatch(r"left: \d+(\.\d+)?%", value or ""), value
            assert "javascript:" not in (value or "").lower()
    csp = [a for t, a in page.tags if t == "meta" and (a.get("http-equiv") or "").lower() == "content-security-policy"]
    assert [a["content"] for a in csp] == [CSP]
    assert "default-src 'none'" in CSP and "script-src" not in CSP
    # no URL the browser could fetch, anywhere in the markup or the CSS
    assert not re.search(r"url\(|@import|(?:https?|ftp|wss?)://[^\s\"'<]*\.(?:css|js|png|woff2?)", html)
    assert not RAW_CONTROL.search(html)
    return page


# -- every saved report renders, complete and inert ---------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_fixture_renders_inert_and_complete(name: str) -> None:
    report = load(name)
    html = HtmlReporter().render(report)
    page = assert_inert(html)
    text = page.text
    assert html.startswith("<!DOCTYPE html>")
    for r in report.results:  # per-check table and raw evidence
        assert html.count(f"<code>{r.check_id}</code>") >= 2, r.check_id
    verdict = report.summary.verdict
    assert f"v-{verdict}" in html
    assert {"healthy": "Healthy", "warnings": "Warnings", "failing": "Failing"}[verdict] in text
    assert "Connection timeline" in text and "Raw evidence" in text and "Environment" in text
    assert HtmlReporter().render(report) == html  # deterministic


def test_failing_report_shows_verdict_cause_article_fixes_and_evidence() -> None:
    report = load("failing-proxy")
    page = Page(HtmlReporter().render(report))
    text = page.text
    cause = CAUSES["proxy-firewall"]
    # the banner: the primary cause in plain words, the finding that proves it
    banner = text[: text.index("Causes and fixes")]
    assert cause.title in banner
    assert "Primary cause proxy-firewall" in banner
    assert "§3 Proxy or Firewall Restrictions" in banner
    assert "http.intermediary-response" in banner
    assert flat(report.result("http.upgrade").findings[0].message) in banner  # type: ignore[union-attr]
    # each cause: section, explanation, fixes, the evidence (findings with their data)
    for fix in cause.fixes:
        assert flat(fix) in text
    assert flat(cause.explanation) in text
    assert "squid/5.7" in text
    assert text.index("http.intermediary-response from http.upgrade") < text.index("tls.interception from")
    # skipped checks say why
    assert "requires http.upgrade" in text or "blocked by http.upgrade" in text
    assert REST_FALLBACK not in text


def test_healthy_report_and_request_ids_are_prominent() -> None:
    report = load("healthy")
    html = HtmlReporter().render(report)
    text = Page(html).text
    assert "Every check that ran passed (1 skipped)" in text
    ids_section = html[html.index('aria-label="Deepgram request ids"') : html.index("Connection timeline")]
    assert "6a1c2f1e-8f0d-4b0a-9c56-1d2e3f4a5b6c" in ids_section
    assert "quote these to Deepgram support" in ids_section
    assert html.index("6a1c2f1e-8f0d-4b0a-9c56-1d2e3f4a5b6c") < html.index("Connection timeline")


def test_recorded_run_shows_headers_certificate_and_connection_ends() -> None:
    report = load("mock-tls-idle-cutoff")
    html = HtmlReporter().render(report)
    text = Page(html).text
    assert "Headers · HTTP 401 Unauthorized" in text
    assert "Headers · HTTP 101 Switching Protocols" in text
    assert "Certificate" in text and "wsdoctor mock CA" in text and "not_after" in text
    assert "Close frames and connection ends" in text
    assert "eof" in text and "1000" in text
    # every dg-request-id of the run is listed once, up top
    ids = [v for v in re.findall(r'<code class="rid">([^<]+)</code>', html)]
    assert len(ids) == len(set(ids)) >= 5
    # the key metric of each check, with its unit
    assert "first_result_s" in text and "902 ms" in text
    assert "idle_cutoff_s" in text
    # environment: tool version, OS, Python, proxy variables (none here)
    env = html[html.index('aria-label="Environment"') :]
    for needle in ("0.1.0", "3.11.7", "Linux", "proxy_env", "(none set)"):
        assert needle in env


def test_rest_fallback_uses_the_terminal_rule() -> None:
    streaming_broken = report_of(
        result("stream.transcribe", Status.FAIL, Finding("stream.reset", "network-instability", Status.FAIL, "RST")),
        result("rest.transcribe", Status.PASS),
    )
    rest_broken_too = report_of(result("stream.transcribe", Status.FAIL), result("rest.transcribe", Status.FAIL))
    flagged = report_of(
        result(
            "close.handshake",
            Status.FAIL,
            Finding(
                "close.no-close-frame", "network-instability", Status.FAIL, "EOF", evidence={"rest_fallback": True}
            ),
        )
    )
    for report, expected in (
        (streaming_broken, True),
        (rest_broken_too, False),
        (flagged, True),
        (load("failing-proxy"), False),
        (load("healthy"), False),
    ):
        assert rest_fallback_applies(report.results) is expected
        assert (flat(REST_FALLBACK) in Page(HtmlReporter().render(report)).text) is expected
        assert (flat(REST_FALLBACK) in flat(TerminalReporter().render(report))) is expected


def test_unknown_cause_info_severity_errors_and_odd_numbers() -> None:
    report = report_of(
        result("acme.widget", Status.FAIL, Finding("acme.widget-broken", "acme-widgets", Status.FAIL, "it broke")),
        result(
            "idle.silent",
            Status.PASS,
            Finding("idle.server-timeout", "connection-handling", Status.INFO, "closed after 10 s, as documented"),
        ),
        CheckResult(
            "tcp.connect",
            "t",
            Status.ERROR,
            "RuntimeError: boom",
            duration_s=math.nan,
            started_at_s=math.inf,
            metrics={"connect_s": math.inf, "n": 3},
        ),
    )
    html = HtmlReporter().render(report)
    assert_inert(html)
    text = Page(html).text
    assert "Cause: acme-widgets" in text
    assert "No fixes catalogued" in text
    assert "closed after 10 s, as documented" in text and "INFO" in text
    assert "ended in ERROR" in text
    assert "nan" not in text.lower().replace("nanoseconds", "")
    assert "inf " not in text


def test_hand_edited_oddities_do_not_crash() -> None:
    deep: Any = "bottom"
    for _ in range(50):
        deep = {"k": [deep]}
    report = report_of(
        result(
            "tcp.connect",
            Status.PASS,
            metrics={"connect_s": "fast", "n": True},  # type: ignore[dict-item]
            evidence={
                "headers": "not a list",
                "deep": deep,
                "events": [1, None, {"kind": 5}],
                "subject": {"x": 1},
                "issuer": None,
                "close_code": "x",
            },
        ),
    )
    html = HtmlReporter().render(report)
    assert_inert(html)
    assert "connect_s" in Page(html).text and "fast" in Page(html).text
    from reports.junit import JunitReporter

    JunitReporter().render(report)


def test_interrupted_and_empty_reports() -> None:
    interrupted = report_of(result("dns.resolve", Status.PASS), interrupted=True)
    text = Page(HtmlReporter().render(interrupted)).text
    assert "Incomplete" in text and "interrupted" in text
    empty = Page(HtmlReporter().render(report_of())).text
    assert "Incomplete" in empty


def test_long_and_hostile_strings_are_bounded_and_visible() -> None:
    html = HtmlReporter().render(load("hostile"))
    page = assert_inert(html)
    text = page.text
    assert "<script>alert(1)</script>" in text  # shown as text...
    assert "<script>" not in html  # ...because it is escaped in the markup
    assert "\\x1b]0;pwned\\x07" in text and "\\x00" in text and "\\u202e" in text
    assert "more characters" in text  # 5000-character strings are cut
    assert len(html) < 400_000


def test_lone_surrogates_and_nul_in_every_field() -> None:
    nasty = "a\udcff\x00\x1b[31m\u202e<b>x</b>"
    finding = Finding("close.unexpected-code", "service", Status.FAIL, nasty, evidence={nasty: [nasty, {"r": nasty}]})
    report = report_of(
        CheckResult(
            "close.handshake",
            nasty,
            Status.FAIL,
            nasty,
            findings=(finding,),
            evidence={
                "events": [{"t_s": 0.1, "direction": "in", "kind": "close", "code": 1011, "reason": nasty}],
                "headers": [[nasty, nasty]],
            },
        ),
        environment={"proxy_env": {"HTTPS_PROXY": nasty}, nasty: nasty},
    )
    html = HtmlReporter().render(report)
    html.encode("utf-8")  # writable as UTF-8
    assert_inert(html)
    assert "<b>" not in html and "&lt;b&gt;" in html


def test_jinja_is_configured_safely_and_imported_late() -> None:
    for template in TEMPLATES.iterdir():
        source = template.read_text(encoding="utf-8")
        assert "|safe" not in source.replace(" ", "") and "autoescape false" not in source
        assert "<script" not in source and "http://" not in source and "https://" not in source
    code = "import sys, reports.html, reports.junit, reports.timeline; print('jinja2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == "False"


def test_loaded_through_the_entry_point() -> None:
    assert load_reporter("html") is HtmlReporter
    assert HtmlReporter.name == "html"


@pytest.mark.parametrize("name", NAMES)
def test_raw_evidence_json_is_exact_and_compact(name: str) -> None:
    for r in load(name).results:
        text = pretty_json(dict(r.evidence))
        assert json.loads(text) == json.loads(json.dumps(dict(r.evidence)))
    marks = pretty_json({"marks": [["connecting", 0.001], ["open", 0.002]], "long": ["x" * 60, "y" * 60]})
    assert '["connecting", 0.001]' in marks and '"long": [\n' in marks


def test_view_is_plain_data() -> None:
    view = build_view(load("failing-proxy"))
    assert view.verdict.primary_cause == "proxy-firewall"
    assert view.causes[0].primary and view.causes[0].id == "proxy-firewall"
    assert [c.check_id for c in view.checks][:2] == ["dns.resolve", "tcp.connect"]


# -- the timeline (pure geometry) ---------------------------------------------------------------


def _phases(report: Report) -> dict[str, Any]:
    return {b.key: b for b in build_timeline(report).phases}


def test_timeline_lays_phases_end_to_end() -> None:
    report = report_of(
        result("dns.resolve", Status.PASS, metrics={"resolve_s": 0.1}),
        result("tcp.connect", Status.PASS, metrics={"connect_s": 0.2}),
        result("tls.handshake", Status.PASS, metrics={"tls_s": 0.3, "proxy_s": None}),
        result("http.upgrade", Status.PASS, metrics={"upgrade_s": 0.4}),
        result("stream.transcribe", Status.PASS, metrics={"first_result_s": 0.5, "audio_s": 2.0}),
        result("close.handshake", Status.PASS, metrics={"closestream_to_close_s": 0.25, "close_reply_s": 0.01}),
    )
    tl = build_timeline(report)
    p = {b.key: b for b in tl.phases}
    assert list(p) == ["resolve", "connect", "tls", "upgrade", "first_result", "audio", "close"]  # no proxy row
    starts = {k: b.start_s for k, b in p.items()}
    assert starts["resolve"] == 0 and starts["connect"] == pytest.approx(0.1) and starts["tls"] == pytest.approx(0.3)
    assert starts["upgrade"] == pytest.approx(0.6)
    assert starts["first_result"] == starts["audio"] == pytest.approx(1.0)  # both from the open socket
    assert starts["close"] == pytest.approx(3.0)  # after the audio
    assert p["close"].duration_s == 0.25 and "closestream_to_close_s" in p["close"].note
    assert all(b.state == "pass" for b in tl.phases)
    # geometry: proportional, in track units, monotonic, inside the track
    assert tl.span_s == pytest.approx(3.25 * 1.02)
    assert p["audio"].width == pytest.approx(2.0 / tl.span_s * TRACK, abs=0.02)
    xs = [p[k].x for k in ("resolve", "connect", "tls", "upgrade", "first_result")]
    assert xs == sorted(xs)
    for b in (*tl.phases, *tl.checks):
        assert b.x >= 0 and b.x + b.width <= TRACK + 1e-6
    assert [t.label for t in tl.ticks] == ["0", "1 s", "2 s", "3 s"]
    assert all(0 <= t.x <= TRACK for t in tl.ticks)


def test_timeline_says_why_a_phase_was_not_measured() -> None:
    report = report_of(
        result("dns.resolve", Status.PASS, metrics={"resolve_s": None}),
        result("tcp.connect", Status.PASS, metrics={"connect_s": 0.001}, duration_s=2.0),
        CheckResult("tls.handshake", "t", Status.SKIP, "not applicable: ws:// has no TLS"),
        result("http.upgrade", Status.FAIL, Finding("http.upgrade-stripped", "proxy-firewall", Status.FAIL, "x")),
        CheckResult("stream.transcribe", "s", Status.SKIP, "requires ws.auth", blocked_by="ws.auth"),
    )
    p = _phases(report)
    assert (p["resolve"].state, p["resolve"].value, p["resolve"].width) == ("unmeasured", "not measured", 0)
    assert (p["tls"].state, p["tls"].value) == ("na", "not applicable")
    assert (p["upgrade"].state, p["upgrade"].value) == ("fail", "failed here")
    assert (p["first_result"].state, p["first_result"].value) == ("blocked", "not reached")
    assert (p["close"].state, p["close"].value) == ("unchecked", "not checked")
    assert p["connect"].width == MIN_BAR  # 1 ms on a 2 s axis still shows


def test_timeline_marks_how_connections_ended() -> None:
    session = {
        "open_t": 0.01,
        "events": [
            {"t_s": 0.5, "direction": "in", "kind": "text", "msg_type": "Results"},
            {"t_s": 0.91, "direction": "in", "kind": "eof"},
        ],
    }
    report = report_of(
        result("tcp.connect", Status.PASS, metrics={"connect_s": 0.1}),
        result(
            "stream.transcribe",
            Status.FAIL,
            metrics={"first_result_s": 0.49, "audio_s": 1.0},
            started_at_s=0.2,
            duration_s=1.0,
            evidence={"session": session},
        ),
        result(
            "close.handshake",
            Status.PASS,
            started_at_s=0.2,
            duration_s=0.5,
            evidence={
                "a": {
                    "events": [
                        {"t_s": 0.3, "direction": "in", "kind": "close", "code": 1000},
                        {"t_s": 0.31, "direction": "out", "kind": "close", "code": 1000},
                    ]
                }
            },
        ),
    )
    tl = build_timeline(report)
    audio = next(b for b in tl.phases if b.key == "audio")
    assert audio.state == "fail"
    assert [(m.kind, m.t_s) for m in audio.marks] == [("eof", pytest.approx(0.1 + 0.9))]
    assert "without a close frame" in audio.marks[0].label and "900 ms after open" in audio.marks[0].label
    first = next(b for b in tl.phases if b.key == "first_result")
    assert first.state == "pass"  # on time, even though the stream broke later
    stream_row = next(b for b in tl.checks if b.key == "stream.transcribe")
    assert [(m.kind, m.t_s) for m in stream_row.marks] == [("eof", pytest.approx(0.2 + 0.91))]
    close_row = next(b for b in tl.checks if b.key == "close.handshake")
    assert [(m.kind, m.label) for m in close_row.marks] == [("close", "close frame 1000 received at 300 ms")]


def test_timeline_idle_cutoffs_and_odd_numbers() -> None:
    report = report_of(
        result("tcp.connect", Status.PASS, metrics={"connect_s": math.nan}),
        result("idle.silent", Status.FAIL, metrics={"idle_cutoff_s": 3.0, "server_idle_timeout_s": None}),
        result(
            "idle.keepalive", Status.PASS, metrics={"keepalive_held_s": 12.0}, started_at_s=-4.0, duration_s=math.inf
        ),
    )
    tl = build_timeline(report)
    p = {b.key: b for b in tl.phases}
    assert "server_idle" not in p  # measured nothing: no row
    assert p["connect"].value == "not measured"  # NaN is not a measurement
    cut = p["idle_cutoff"]
    assert (cut.state, cut.duration_s) == ("fail", 3.0)
    assert [(m.kind, m.t_s) for m in cut.marks] == [("cutoff", 3.0)]
    assert "cut without a close frame after 3.00 s idle" in cut.marks[0].label
    held = p["keepalive"]
    assert held.state == "pass" and held.marks[0].kind == "close" and "still open" in held.marks[0].label
    assert math.isfinite(tl.span_s) and tl.span_s >= 12.0
    assert all(math.isfinite(b.x) and math.isfinite(b.width) for b in (*tl.phases, *tl.checks))


def test_format_seconds() -> None:
    assert [format_seconds(v) for v in (0.0003, 0.0026, 0.25, 1.016, 250.0, None, math.nan)] == [
        "0.30 ms",
        "2.6 ms",
        "250 ms",
        "1.02 s",
        "250 s",
        "—",
        "—",
    ]
    assert build_timeline(report_of()).empty


# -- a live run against a hostile server --------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> Outputs:
    with HostileServer() as server:
        return run_wsdoctor(tmp_path_factory.mktemp("hostile"), server.url)


def test_hostile_server_html_is_inert(hostile_run: Outputs) -> None:
    out = hostile_run
    assert out.returncode == 1, out.stderr  # it found failures; it did not crash
    html = out.html_text
    page = assert_inert(html)
    assert "script" not in page.names() and "img" not in page.names()
    text = page.text
    # the server's strings are there, visibly, as inert text
    assert SCRIPT in text  # the dg-request-id and transcript
    assert BREAKOUT in text  # the close reason and headers
    assert "&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in html
    assert "\\x1b[2J" in text and "\\x00" in text and "\\x9b" in text
    assert "\x00" not in html and "\x1b" not in html and "\x9b" not in html
    assert "close.unexpected-code" in text and "1011" in text


def test_hostile_server_terminal_has_no_raw_escape(hostile_run: Outputs) -> None:
    out = hostile_run.stdout + hostile_run.stderr
    assert "Verdict: FAILING" in out
    assert "\x1b" not in out and not RAW_CONTROL.search(out.replace("\n", ""))
    assert "\\x1b[2J" in out and "\\x00" in out  # shown, not executed
    assert ANSI not in out


def test_hostile_server_json_and_junit_stay_valid(hostile_run: Outputs) -> None:
    import xml.etree.ElementTree as ET

    data = json.loads(hostile_run.json_text)
    assert Report.from_dict(data).summary.verdict == "failing"
    root = ET.fromstring(hostile_run.junit_text)
    assert root.find("testsuite") is not None
    assert not RAW_CONTROL.search(hostile_run.junit_text.replace("\n", ""))
    assert KEY not in hostile_run.junit_text


# -- the command line: --html on run and render ------------------------------------------------


def test_render_writes_html_and_junit_atomically(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    html, xml = tmp_path / "r.html", tmp_path / "r.xml"
    html.write_text("old")
    code = main(["render", str(FIXTURES / "failing-proxy.json"), "--html", str(html), "--junit", str(xml)])
    assert code == 0, capsys.readouterr().err
    assert html.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert xml.read_text(encoding="utf-8").startswith('<?xml version="1.0"')
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "r.xml"]  # no temp files left


def test_a_failed_render_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    html = tmp_path / "r.html"
    html.write_text("old")

    def boom(self: HtmlReporter, report: Report) -> str:
        raise RuntimeError("renderer broke")

    monkeypatch.setattr(HtmlReporter, "render", boom)
    assert main(["render", str(FIXTURES / "healthy.json"), "--html", str(html)]) == 3
    assert html.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]
    assert "renderer broke" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--html", "--junit"])
def test_unwritable_report_directory_is_exit_2_before_probing(
    flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")  # a path under a regular file is unwritable, even for root
    # port 9 on loopback: if probes ran, this would take a connect attempt; it must not get there
    code = main(["run", "ws://127.0.0.1:9/", flag, str(blocker / "r.out")])
    err = capsys.readouterr()
    assert code == 2
    assert err.err.startswith("wsdoctor: error: cannot write report") and err.err.count("\n") == 1
    assert err.out == ""  # no probe ran, no report printed


def test_two_formats_to_one_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    same = str(tmp_path / "r.out")
    assert main(["render", str(FIXTURES / "healthy.json"), "--html", same, "--junit", same]) == 2
    assert "--html and --junit would both write" in capsys.readouterr().err


def _wrong_metric() -> str:
    data = json.loads((FIXTURES / "healthy.json").read_text(encoding="utf-8"))
    data["results"][1]["metrics"]["connect_s"] = "fast"  # the schema says number or null
    return json.dumps(data)


@pytest.mark.parametrize(
    "content",
    ["{not json", '{"schema": "wsdoctor.report/9"}', "[1]", '{"schema": "wsdoctor.report/1"}', _wrong_metric()],
)
def test_render_bad_report_with_html_is_one_line_exit_2(
    content: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "r.json"
    path.write_text(content)
    assert main(["render", str(path), "--html", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wsdoctor: error:") and err.count("\n") == 1
    assert not (tmp_path / "r.html").exists()


def test_run_against_the_mock_writes_every_format(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "wsdoctor",
            "run",
            "--target",
            "mock",
            "--quick",
            "--html",
            str(tmp_path / "r.html"),
            "--junit",
            str(tmp_path / "r.xml"),
            "--json",
            str(tmp_path / "r.json"),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    report = Report.from_dict(json.loads((tmp_path / "r.json").read_text()))
    html = (tmp_path / "r.html").read_text()
    assert_inert(html)
    assert "Every check" in Page(html).text
    assert html == HtmlReporter().render(report)  # run and render produce the same page


def test_repeat_histograms_per_phase() -> None:
    from reports.timeline import phase_histograms
    from wsdoctor.model import CheckResult

    samples = [
        {
            "outcome": "upgraded",
            "connect_s": 0.001 + i / 10000,
            "upgrade_s": 0.002 if i < 18 else 0.2,
            "first_result_s": 0.9,
        }
        for i in range(20)
    ]
    stats = {
        "connect": {"n": 20, "p50": 0.0011, "p95": 0.0029, "p99": 0.003},
        "upgrade": {"n": 20, "p50": 0.002, "p95": 0.2, "p99": 0.2},
        "first_result": {"n": 20, "p50": 0.9, "p95": 0.9, "p99": 0.9},
        "tls": {"n": 0, "p50": None, "p95": None, "p99": None},
    }
    result = CheckResult(
        check_id="phases.repeat",
        title="t",
        status=Status.PASS,
        summary="s",
        evidence={"samples": samples, "phases": stats},
    )
    hists = {h.phase: h for h in phase_histograms([result])}
    assert set(hists) == {"connect", "upgrade", "first_result"}  # no samples, no histogram
    upgrade = hists["upgrade"]
    assert upgrade.n == 20
    assert upgrade.bars[0] == 1.0  # 18 fast ones in the first bin...
    assert upgrade.bars[-1] == pytest.approx(2 / 18, abs=0.01)  # ...and the slow tail in the last
    page = HtmlReporter().render(report_of(result))
    assert 'aria-label="Phase latency"' in page
    assert page.count('class="hbar"') == 3 * 12
