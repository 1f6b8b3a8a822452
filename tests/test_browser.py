"""The HTML report in a real browser: Debian's headless Chromium, driven by playwright.

Each page is opened from a file:// URL, as a support engineer opens an e-mail attachment, with
every console message and network request recorded: a report must render with no console error,
request nothing but itself, and run no script -- not even the one a hostile server tried to plant.
The tests also take the README's screenshots, check the narrow (390 px) layout and the print view.

Chromium comes from apt (``.ci/run`` installs it); playwright drives it through its executable
path -- ``playwright install`` is never used. Where Chromium or playwright is missing the tests
fail under CI (``CI=true``) and skip, with the reason, elsewhere.

Set ``WSDOCTOR_UPDATE_SCREENSHOTS=1`` to write the screenshots into ``docs/`` (the README shows
them); otherwise they go to a temp directory, so a test run never dirties the work tree.
"""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reports.html import HtmlReporter
from tests.hostile import HostileServer, run_wsdoctor
from wsdoctor.model import Report

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures" / "reports"
DOCS = ROOT / "docs"
SCREENSHOT = DOCS / "report-screenshot.png"
TIMELINE_SHOT = DOCS / "report-timeline.png"
#: The report the README shows: a real run against `wsdoctor mock --tls --fault idle-cutoff`.
README_REPORT = "mock-tls-idle-cutoff"
CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
UPDATE = os.environ.get("WSDOCTOR_UPDATE_SCREENSHOTS") == "1"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# What headless Chromium needs as root in a container, and nothing that phones home. playwright
# gives every launch a fresh temporary --user-data-dir of its own.
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--font-render-hinting=none",
]
TIMEOUT_MS = 20_000


def _unavailable(reason: str) -> None:
    if CI:
        pytest.fail(f"{reason}: CI must run the browser tests")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        _unavailable("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True, timeout=30_000)
        try:
            yield b
        finally:
            b.close()


@dataclass
class Opened:
    page: Any
    url: str
    requests: list[str] = field(default_factory=list)
    responses: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # url -> why the browser refused it
    errors: list[str] = field(default_factory=list)  # console errors and uncaught page errors
    dialogs: list[str] = field(default_factory=list)  # alert() & co: proof a script ran


@pytest.fixture
def open_report(browser: Any, tmp_path: Path) -> Iterator[Any]:
    contexts: list[Any] = []

    def opener(html: str, width: int = 1200, name: str = "report.html") -> Opened:
        path = tmp_path / name
        path.write_text(html, encoding="utf-8")
        context = browser.new_context(
            viewport={"width": width, "height": 900}, device_scale_factor=1, java_script_enabled=True
        )
        contexts.append(context)
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        opened = Opened(page, path.as_uri())
        page.on("request", lambda r: opened.requests.append(r.url))
        page.on("response", lambda r: opened.responses.append(r.url))
        page.on("requestfailed", lambda r: opened.failed.__setitem__(r.url, str(r.failure)))
        page.on("console", lambda m: opened.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: opened.errors.append(str(e)))

        def on_dialog(dialog: Any) -> None:
            opened.dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.goto(opened.url, wait_until="load")
        return opened

    yield opener
    for context in contexts:
        context.close()


def render(name: str) -> str:
    return HtmlReporter().render(
        Report.from_dict(__import__("json").loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8")))
    )


def assert_clean(opened: Opened) -> None:
    page = opened.page
    page.wait_for_timeout(200)  # let any late request or console message arrive (bounded)
    assert opened.requests == [opened.url], opened.requests
    assert opened.responses == [opened.url]
    assert opened.errors == []
    assert opened.dialogs == []
    counts = page.evaluate(
        "() => [document.scripts.length, document.images.length, document.querySelectorAll('iframe,object,embed,"
        "link[rel=stylesheet],[onerror],[onload],[onclick]').length]"
    )
    assert counts == [0, 0, 0]
    assert page.title().startswith("wsdoctor: ")
    assert page.locator(".verdict h1").inner_text().strip()


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.parametrize("name", ["healthy", "failing-proxy", "hostile", README_REPORT])
def test_report_renders_without_errors_or_requests(name: str, open_report: Any) -> None:
    opened = open_report(render(name))
    assert_clean(opened)
    # every check is in the table, and the timeline has drawn bars
    assert opened.page.locator("table.checks tbody tr").count() >= 7
    assert opened.page.locator(".tl-track rect.bar").count() >= 3


def test_hostile_server_report_runs_nothing(open_report: Any, tmp_path: Path) -> None:
    with HostileServer() as server:
        out = run_wsdoctor(tmp_path, server.url)
    assert out.returncode == 1, out.stderr
    opened = open_report(out.html_text, name="hostile-run.html")
    assert_clean(opened)
    body = opened.page.locator("body").inner_text()
    assert "<script>alert(1)</script>" in body  # the server's markup is visible as text
    assert "</script><img src=x onerror=alert(2)>" in body
    assert "\\x1b[2J" in body and "\\x00" in body


def test_csp_blocks_even_injected_script_and_fetches(open_report: Any) -> None:
    """If a template ever let markup through, the page's own policy would still stop it."""
    opened = open_report(render("hostile"))
    assert_clean(opened)
    page = opened.page
    page.evaluate(
        """() => {
            const s = document.createElement('script'); s.textContent = 'window.__pwned = 1; alert(3)';
            document.body.appendChild(s);
            document.body.insertAdjacentHTML('beforeend',
                '<img src="http://127.0.0.1:9/x.png" onerror="window.__pwned = 2">' +
                '<link rel="stylesheet" href="http://127.0.0.1:9/x.css">');
        }"""
    )
    page.wait_for_timeout(300)
    assert page.evaluate("() => window.__pwned === undefined")
    assert opened.dialogs == []
    # DevTools lists the attempts, and CSP refused each of them before anything left the browser
    assert opened.responses == [opened.url]
    assert opened.failed == {"http://127.0.0.1:9/x.png": "csp", "http://127.0.0.1:9/x.css": "csp"}
    assert any("Content Security Policy" in e for e in opened.errors)


def test_readme_screenshots(open_report: Any, tmp_path: Path) -> None:
    opened = open_report(render(README_REPORT))
    assert_clean(opened)
    page = opened.page
    target_dir = DOCS if UPDATE else tmp_path
    shot, timeline = target_dir / SCREENSHOT.name, target_dir / TIMELINE_SHOT.name
    # the top of the report: verdict, request ids and the primary cause with its evidence and fixes
    cause = page.locator("article.cause").first.bounding_box()
    assert cause is not None
    page.screenshot(
        path=str(shot),
        full_page=True,
        clip={"x": 0, "y": 0, "width": 1200, "height": cause["y"] + cause["height"] + 24},
    )
    page.locator('section[aria-label="Connection timeline"]').screenshot(path=str(timeline))
    width, height = png_size(shot)
    assert width == 1200 and 900 < height < 2600
    assert png_size(timeline)[0] > 900


def test_narrow_screen_has_no_horizontal_scroll(open_report: Any, tmp_path: Path) -> None:
    for name in (README_REPORT, "hostile"):
        opened = open_report(render(name), width=390, name=f"{name}.html")
        assert_clean(opened)
        page = opened.page
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
        # the waterfall keeps its labels and values on a phone
        assert page.locator(".tl-row .tl-value").first.is_visible()
        page.screenshot(path=str(tmp_path / f"{name}-narrow.png"), full_page=True)


def test_print_view_opens_the_evidence(open_report: Any) -> None:
    opened = open_report(render(README_REPORT))
    page = opened.page
    headers = page.locator("details.evidence table.kvtable").first
    raw_json = page.locator("details.evidence pre").first
    assert not headers.is_visible() and not raw_json.is_visible()  # collapsed on screen
    page.emulate_media(media="print")
    assert headers.is_visible()  # expanded on paper: headers, certificate, close frames
    assert not raw_json.is_visible()  # the JSON dump stays in the file
    pdf = page.pdf(format="A4", print_background=True)
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page") >= 3
    assert opened.errors == []


def test_committed_screenshot_is_what_the_readme_shows() -> None:
    width, height = png_size(SCREENSHOT)
    assert width == 1200 and height > 900
    assert SCREENSHOT.stat().st_size < 700_000 and TIMELINE_SHOT.stat().st_size < 400_000
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/report-screenshot.png" in readme and "docs/report-timeline.png" in readme
