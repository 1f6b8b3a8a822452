"""The Markdown reporter: a short summary to paste into a ticket or a CI job summary.

GitHub-flavoured Markdown (CommonMark plus tables), written for GitHub issues and
``$GITHUB_STEP_SUMMARY``, Jira/GitLab Markdown and any CommonMark renderer. Top to bottom: a heading
with the verdict and the target; the primary cause with the section of Deepgram's article it comes
from and the first finding; the top three fixes; a compact table of the checks; the other causes
and the INFO notes in one line each; the REST alternative when REST worked where streaming failed;
the ``dg-request-id`` values to quote to Deepgram support; a footer (version, time, duration).

Promises:

- **No raw HTML, no markup from the server.** Every string that comes from the report -- close
  reasons, summaries, messages and request ids are server-controlled; ids and the URL could come
  from a hand-edited file -- is escaped for Markdown *and* HTML by :func:`text` (``<``, ``>`` and
  ``&`` as entities; the punctuation Markdown or GitHub acts on inside a line backslash-escaped,
  so no emphasis, link, image, autolink, math, ``@mention`` or ``#123`` reference can form, and a
  pipe cannot break a table; the bare URLs, ``www.`` domains and e-mail addresses GitHub links by
  itself get an invisible word joiner inside their trigger), or put in a code span by
  :func:`code` (fenced with more backticks than the value holds, so a backtick cannot close it;
  pipes escaped inside tables, as GFM asks).
  Control characters are made visible first (:func:`wsdoctor.sanitize.printable`) and newlines
  become spaces, so nothing can start a new block. The reporter writes no HTML tags itself.
- **Short.** Each server string is cut (:data:`_CELL_LIMIT`, :data:`_MESSAGE_LIMIT`), at most
  :data:`_MAX_REQUEST_IDS` request ids are listed, and only the top :data:`_TOP_FIXES` fixes.
- **Every dg-request-id, once.** :func:`wsdoctor.model.request_ids` walks every result's and
  finding's evidence: ``dg-request-id`` headers (as ``[name, value]`` pairs or as mapping keys, any
  case) and the ``request_id`` of Results / Metadata messages and REST answers; deduplicated, in
  report order.
- Pure and deterministic, like every reporter.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import ClassVar

from wsdoctor.causes import ARTICLE_TITLE, CAUSES, REST_FALLBACK, fixes_for
from wsdoctor.model import Report, Status, request_ids, rest_fallback_applies
from wsdoctor.sanitize import printable

__all__ = ["MarkdownReporter", "code", "text"]

_CELL_LIMIT = 160
_MESSAGE_LIMIT = 400
_ID_LIMIT = 120
_MAX_REQUEST_IDS = 20
_TOP_FIXES = 3

_STATUS_BADGE: dict[Status, str] = {
    Status.PASS: "✅ pass",
    Status.WARN: "⚠️ warn",
    Status.FAIL: "❌ fail",
    Status.SKIP: "⏭️ skip",
    Status.ERROR: "💥 error",
    Status.INFO: "ℹ️ info",
}
_VERDICT_BADGE: dict[str, str] = {
    "healthy": "✅ HEALTHY",
    "warnings": "⚠️ WARNINGS",
    "failing": "❌ FAILING",
    "incomplete": "⏸️ INCOMPLETE",
}

# HTML-significant characters become entities (a backslash does not stop a CommonMark renderer
# from passing "<script>" through as raw HTML; "&lt;" always renders as a literal "<").
_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}
# ASCII punctuation Markdown (or GitHub) acts on in the middle of a line -- emphasis, code spans,
# links and images (no "[" means no link), table cells, strikethrough, @mentions, #references, math
# -- is backslash-escaped (CommonMark renders "\\*" as "*"). Characters that only matter at the start
# of a line ("-", "+", "1.", "=") stay readable: server text never starts a line here.
_BACKSLASHED = frozenset("\\`*_[]!|~@#$")


def _clean(value: object, limit: int) -> str:
    """Control characters visible, bounded, on one line."""
    return printable(str(value).replace("\r", " ").replace("\n", " "), limit)


#: GitHub's renderer (cmark-gfm) also turns *bare* text into links -- its "extended autolinks":
#: ``http://``/``https://``/``ftp://`` URLs, ``www.`` domains, e-mail addresses (and ``mailto:``/
#: ``xmpp:``) -- and no backslash escape stops that. An invisible WORD JOINER (U+2060) inside each
#: trigger breaks the pattern while the text reads the same: after the ":" of "://", between "www"
#: and its ".", after an "@".
_NO_LINK = "\u2060"
_WWW = re.compile(r"(www)\.", re.IGNORECASE)


def text(value: object, limit: int = _MESSAGE_LIMIT) -> str:
    """``value`` as inline Markdown text that renders literally: no markup, no HTML, no link, one line."""
    out = []
    for ch in _clean(value, limit):
        if ch in _ENTITIES:
            out.append(_ENTITIES[ch])
        elif ch == "@":
            out.append("\\@" + _NO_LINK)  # no @mention, no e-mail autolink
        elif ch in _BACKSLASHED:
            out.append("\\" + ch)
        else:
            out.append(ch)
    escaped = "".join(out).replace("://", ":" + _NO_LINK + "//")
    return _WWW.sub(r"\1" + _NO_LINK + ".", escaped)


def code(value: object, limit: int = _ID_LIMIT, *, in_table: bool = False) -> str:
    """``value`` as a code span that no content can close (CommonMark: fence with one backtick
    more than the longest run inside). Code spans never produce HTML. In a table cell a pipe must
    be ``\\|`` even inside a code span (GFM splits cells first and then drops the backslash)."""
    s = _clean(value, limit)
    if in_table:
        s = s.replace("|", "\\|")
    longest = run = 0
    for ch in s:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    pad = " " if s.startswith("`") or s.endswith("`") or not s.strip() else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def _seconds(value: float) -> str:
    return f"{value:.2f} s" if math.isfinite(value) else "—"


class MarkdownReporter:
    """Renders a short GitHub-flavoured Markdown summary of a report."""

    name: ClassVar[str] = "markdown"

    def render(self, report: Report) -> str:
        return "\n".join(self._lines(report)).rstrip("\n") + "\n"

    def _lines(self, report: Report) -> Iterator[str]:
        summary = report.summary
        badge = _VERDICT_BADGE.get(summary.verdict, text(summary.verdict).upper())
        yield f"### wsdoctor: {badge} — {code(report.target.url, 300)}"
        yield ""
        counts = " · ".join(f"{n} {s}" for s, n in summary.counts.items() if n)
        cut = " The run was cut by its deadline before every check ended." if report.interrupted else ""
        yield f"**Verdict: {text(summary.verdict)}** ({len(report.results)} checks: {counts or 'none'}).{cut}"
        yield ""
        yield from self._primary(report)
        yield "| Check | Status | Time | Result |"
        yield "| --- | --- | ---: | --- |"
        for r in report.results:
            badge = _STATUS_BADGE.get(r.status, text(r.status.value))
            yield (
                f"| {code(r.check_id, _ID_LIMIT, in_table=True)} | {badge} | {_seconds(r.duration_s)} "
                f"| {text(r.summary, _CELL_LIMIT)} |"
            )
        yield ""
        yield from self._other_causes(report)
        if rest_fallback_applies(report.results):
            yield f"**Alternative:** {text(REST_FALLBACK)}"
            yield ""
        ids = list(request_ids(report))
        if ids:
            yield "**dg-request-id** values to quote to Deepgram support:"
            yield ""
            for rid in ids[:_MAX_REQUEST_IDS]:
                yield f"- {code(rid)}"
            if len(ids) > _MAX_REQUEST_IDS:
                yield f"- … and {len(ids) - _MAX_REQUEST_IDS} more in the JSON report"
            yield ""
        yield (
            f"wsdoctor {text(report.wsdoctor_version, 40)} · started {text(report.started_at, 40)} · "
            f"{_seconds(report.duration_s)}"
        )

    def _primary(self, report: Report) -> Iterator[str]:
        summary = report.summary
        if summary.primary_cause is None:
            return
        cause = CAUSES.get(summary.primary_cause)
        title = text(cause.title) if cause is not None else "not in wsdoctor's cause catalogue"
        if cause is not None and cause.article_section:
            where = f"Deepgram's article *{text(ARTICLE_TITLE)}*, {text(cause.article_section)}"
        elif cause is not None:
            where = "beyond Deepgram's article"
        else:
            where = "unknown cause"
        yield f"**Primary cause:** {title} ({code(summary.primary_cause)}) — {where}."
        first = next(
            (
                (r, f)
                for r in report.results
                for f in r.findings
                if f.code == summary.primary_finding and f.cause == summary.primary_cause
            ),
            None,
        )
        if first is not None:
            result, finding = first
            yield ""
            yield f"**Finding:** {code(finding.code)} from {code(result.check_id)}: {text(finding.message)}"
        primary_codes = next((c.codes for c in summary.causes if c.cause == summary.primary_cause), ())
        fix_list = fixes_for(summary.primary_cause, primary_codes)
        if fix_list:
            yield ""
            yield "**Top fixes:**"
            yield ""
            for i, fix in enumerate(fix_list[:_TOP_FIXES], 1):
                yield f"{i}. {text(fix)}"
        yield ""

    def _other_causes(self, report: Report) -> Iterator[str]:
        summary = report.summary
        others = [
            c for c in summary.causes if c.cause != summary.primary_cause and c.severity is not Status.INFO
        ]
        if others:
            parts = [f"{code(c.cause)} ({', '.join(code(x) for x in c.codes)})" for c in others]
            yield f"**Other causes:** {'; '.join(parts)}"
            yield ""
        notes = [(r, f) for r in report.results for f in r.findings if f.severity is Status.INFO]
        if notes:
            yield "**Notes:** " + "; ".join(f"{code(f.code)}: {text(f.message, _CELL_LIMIT)}" for _r, f in notes)
            yield ""
