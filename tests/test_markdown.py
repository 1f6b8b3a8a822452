"""The Markdown reporter, rendered by a real Markdown parser (markdown-it-py, CommonMark + GFM
tables): same verdict, the primary cause with its article section and fixes, one table row per
check, every dg-request-id, and no raw HTML from server-controlled strings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from reports.base import load_reporter
from reports.markdown import MarkdownReporter, code, text
from wsdoctor.causes import CAUSES, FINDING_CODES, fixes_for
from wsdoctor.model import CheckResult, Finding, Report, Status, Target, request_ids

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "reports"
NAMES = ("healthy", "failing-proxy", "hostile", "mock-tls-idle-cutoff")


def load(name: str) -> Report:
    return Report.from_dict(json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8")))


def md() -> MarkdownIt:
    # html=True: the parser *would* pass raw HTML through, so the test proves we never emit any.
    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def html_tokens(source: str) -> list[str]:
    found = []
    for token in md().parse(source):
        if token.type == "html_block":
            found.append(token.content)
        for child in token.children or ():
            if child.type == "html_inline":
                found.append(child.content)
    return found


def report_of(*results: CheckResult) -> Report:
    return Report(
        target=Target.parse("wss://api.deepgram.com/v1/listen"),
        results=results,
        started_at="2025-01-01T00:00:00Z",
        duration_s=1.0,
        wsdoctor_version="0.1.0",
    )


@pytest.mark.parametrize("name", NAMES)
def test_renders_with_the_same_verdict_and_no_raw_html(name: str) -> None:
    report = load(name)
    source = MarkdownReporter().render(report)
    assert html_tokens(source) == []
    html = md().render(source)
    assert f"Verdict: {report.summary.verdict}" in html
    assert report.summary.verdict.upper() in html.split("\n", 1)[0]  # in the heading
    assert html.count("<tr>") == len(report.results) + 1  # header + one row per check
    assert "<script" not in html and "<img" not in html
    assert "\x1b" not in source and "\u202e" not in source


def test_failing_proxy_names_cause_article_section_and_top_fixes() -> None:
    report = load("failing-proxy")
    html = md().render(MarkdownReporter().render(report))
    cause = CAUSES["proxy-firewall"]
    assert cause.title in html
    assert cause.article_section is not None and cause.article_section in html
    assert "<code>proxy-firewall</code>" in html
    assert "<code>http.intermediary-response</code>" in html
    assert html.count("<li>") >= 3
    top = fixes_for("proxy-firewall", ["http.intermediary-response", "tls.interception"])[:3]
    assert top[0] == FINDING_CODES["http.intermediary-response"].fixes[0]  # the finding's own fix leads
    for fix in top:
        assert fix[:40] in html.replace("&quot;", '"').replace("&#x27;", "'")


def test_hostile_report_stays_text() -> None:
    source = MarkdownReporter().render(load("hostile"))
    html = md().render(source)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown, escaped
    assert "<script" not in html
    assert html_tokens(source) == []


def test_server_strings_cannot_break_tables_code_spans_or_link() -> None:
    nasty = "a|b `tick` ``two`` <script>x</script> [link](javascript:alert(1)) **bold** @someone #1 $x$\nnext"
    rid = "<img src=x onerror=alert(1)>`|"
    finding = Finding("close.no-close-frame", "network-instability", Status.FAIL, nasty, evidence={"request_id": rid})
    report = report_of(
        CheckResult(
            "close.handshake",
            "t",
            Status.FAIL,
            nasty,
            findings=(finding,),
            evidence={"upgrade": {"answer": {"headers": [["DG-Request-Id", "abc-123"], ["x", "y"]]}}},
        ),
        CheckResult(
            "stream.transcribe",
            "t",
            Status.PASS,
            "ok",
            evidence={"events": [{"detail": {"request_id": "abc-123"}}, {"detail": {"request_id": "def"}}]},
        ),
    )
    source = MarkdownReporter().render(report)
    assert html_tokens(source) == []
    tokens = md().parse(source)
    rows = [t for t in tokens if t.type == "tr_open"]
    cells = [t for t in tokens if t.type == "td_open"]
    assert len(cells) == 4 * (len(rows) - 1)  # no pipe added a column
    html = md().render(source)
    assert "<a " not in html and "<strong>bold" not in html and "<script" not in html and "<img" not in html
    assert "a|b" in html and "[link](javascript:alert(1))" in html  # rendered literally
    assert list(request_ids(report)) == ["abc-123", rid, "def"]  # in report order, once
    assert f"<code>{rid.replace('<', '&lt;').replace('>', '&gt;')}</code>" in html


def test_escape_helpers() -> None:
    assert text("<b>&") == "&lt;b&gt;&amp;"
    assert text("*x* |") == "\\*x\\* \\|"
    assert code("a`b") == "``a`b``"
    assert code("`x`") == "`` `x` ``"
    assert code("a|b", in_table=True) == "`a\\|b`"


def test_request_ids_of_a_real_run_are_listed_once() -> None:
    report = load("healthy")
    ids = list(request_ids(report))
    assert ids and len(ids) == len(set(ids))
    source = MarkdownReporter().render(report)
    for rid in ids[:20]:
        assert rid in source


def test_registered_as_a_reporter() -> None:
    assert load_reporter("markdown") is MarkdownReporter


# --- GitHub's own renderer --------------------------------------------------------------------------
# markdown-it is CommonMark; GitHub renders with cmark-gfm, whose "extended autolinks" turn bare URLs,
# www. domains and e-mail addresses into links although no bracket or angle bracket is present.

cmarkgfm = pytest.importorskip("cmarkgfm", reason="GitHub's renderer (cmarkgfm) is a test dependency")


def gfm(source: str) -> str:
    from cmarkgfm.cmark import Options

    # UNSAFE: the renderer would pass raw HTML through, so the test proves we never emit any
    return cmarkgfm.github_flavored_markdown_to_html(source, options=Options.CMARK_OPT_UNSAFE)


LINKY = [
    "see http://evil.example/login and https://x.example/?a=b",
    "HTTPS://EVIL.EXAMPLE/caps and ftp://files.example/x",
    "www.evil.example and WWW.EVIL.EXAMPLE/path",
    "mail attacker@evil.example or mailto:attacker@evil.example or xmpp:bot@evil.example",
    "[click](http://evil.example) ![img](http://evil.example/x.png) <http://evil.example>",
    "@someone please look #123 and GH-1",
]


@pytest.mark.parametrize("nasty", LINKY)
def test_server_text_never_becomes_a_link_on_github(nasty: str) -> None:
    finding = Finding("close.no-close-frame", "network-instability", Status.FAIL, nasty, evidence={})
    report = report_of(CheckResult("close.handshake", "t", Status.FAIL, nasty, findings=(finding,)))
    html = gfm(MarkdownReporter().render(report))
    assert "<a " not in html and "<img" not in html, html
    visible = html.replace("\u2060", "").replace("&amp;", "&")
    assert nasty.split()[1] in visible  # still readable, word for word


URLISH = r"(https?|ftp)://[a-z]{1,8}\.[a-z]{2,3}/[a-z0-9]{0,6}|www\.[a-z]{1,8}\.com|[a-z]{1,6}@[a-z]{1,6}\.[a-z]{2}"


@given(st.from_regex(URLISH, fullmatch=True))
@settings(max_examples=100, deadline=None)
def test_no_generated_url_or_address_links(value: str) -> None:
    assert "<a " not in gfm(f"x {text(value)} y"), value
