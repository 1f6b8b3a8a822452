"""Every finding code carries its own fixes, and every reporter shows them before its cause's.

A machine with no network at all (dns.resolver-unreachable) must be told first to connect it, not
to "reconnect with jittered backoff" -- the cause's generic advice. For each finding code, a report
whose only failure is that code is rendered by the terminal, Markdown, HTML and JUnit reporters, and
the first fix each shows is the code's own.
"""

from __future__ import annotations

import html
import re

import pytest

from reports.html import HtmlReporter
from reports.junit import JunitReporter
from reports.markdown import MarkdownReporter
from reports.terminal import TerminalReporter
from wsdoctor.causes import CAUSES, FINDING_CODES, fixes_for
from wsdoctor.model import CheckResult, Finding, Report, Status, Target


def flat(text: str) -> str:
    return " ".join(text.split())


def report_with(code: str) -> Report:
    meta = FINDING_CODES[code]
    finding = Finding(code, meta.cause, Status.FAIL, f"{code} was found", {"where": "here"})
    check = f"{code.split('.')[0]}.probe"
    return Report(
        target=Target.parse("wss://api.deepgram.com/v1/listen"),
        results=(CheckResult(check, check, Status.FAIL, finding.message, findings=(finding,)),),
        started_at="2026-12-01T00:00:00Z",
        duration_s=1.0,
        wsdoctor_version="0.1.0",
    )


def test_every_code_has_its_own_fixes_distinct_from_its_causes() -> None:
    for code, meta in FINDING_CODES.items():
        assert meta.fixes, code
        assert meta.cause in CAUSES, code
        assert not set(meta.fixes) & set(CAUSES[meta.cause].fixes), code
        shown = fixes_for(meta.cause, [code])
        assert shown[: len(meta.fixes)] == meta.fixes, code
        assert shown[len(meta.fixes) :] == CAUSES[meta.cause].fixes, code


def test_fixes_for_unknown_codes_and_causes_is_what_is_known() -> None:
    assert fixes_for("plugin-cause", ["plugin.code"]) == ()
    assert fixes_for("credentials", ["plugin.code"]) == CAUSES["credentials"].fixes
    both = fixes_for("network-instability", ["dns.timeout", "dns.timeout", "close.no-close-frame"])
    assert both[0] == FINDING_CODES["dns.timeout"].fixes[0]
    assert both[1] == FINDING_CODES["close.no-close-frame"].fixes[0]
    assert len(both) == len(set(both))


@pytest.mark.parametrize("code", sorted(FINDING_CODES))
def test_the_first_fix_every_reporter_shows_is_the_findings_own(code: str) -> None:
    report = report_with(code)
    own = FINDING_CODES[code].fixes[0]

    terminal = TerminalReporter(color=False, width=100).render(report)
    after = flat(terminal[terminal.index("Fixes:") :])
    assert after.startswith(f"Fixes: 1. {flat(own)}"), after[:200]

    markdown = MarkdownReporter().render(report)
    top = re.sub(r"\\(.)", r"\1", markdown[markdown.index("**Top fixes:**") :])  # Markdown escapes undone
    top = top.replace("\u2060", "")  # and the word joiners that stop GitHub's autolinks
    assert flat(top).startswith(f"**Top fixes:** 1. {flat(own)}")

    page = HtmlReporter().render(report)
    fixes = page[page.index("<h4>Fixes</h4>") :]
    first = re.search(r"<li>(.*?)</li>", fixes, re.S)
    assert first is not None and flat(html.unescape(first.group(1))) == flat(own)

    junit = JunitReporter().render(report)
    text = html.unescape(junit)
    assert f"1. {own}" in text
    assert text.index(f"1. {own}") < text.index(CAUSES[FINDING_CODES[code].cause].fixes[0])


def test_no_network_at_all_is_told_to_connect_not_to_back_off() -> None:
    report = report_with("dns.resolver-unreachable")
    out = flat(TerminalReporter(color=False, width=120).render(report))
    fixes = out[out.index("Fixes:") :]
    assert fixes.index("connect it to a network") < fixes.index("jittered exponential backoff")
