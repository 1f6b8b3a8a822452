"""Every finding code in the public vocabulary is produced from a real fault by some test.

A code that only unit tests on hand-written observations produce is a code nobody has seen a real
peer cause. This keeps the rule visible: each code must be named by at least one test module that
drives real servers, processes or kernels (the files listed in ``UNIT_ONLY`` judge recorded or
synthetic observations only, so they do not count).
"""

from __future__ import annotations

from pathlib import Path

from wsdoctor.causes import FINDING_CODES

TESTS = Path(__file__).resolve().parent
UNIT_ONLY = {
    "test_analyze.py",
    "test_netpath_analyze.py",
    "test_fixes.py",
    "test_deepgram_wire.py",
    "test_reports.py",
    "test_html.py",
    "test_markdown.py",
    "test_junit.py",
    "test_openmetrics.py",
    "test_explain.py",
    "test_explain_bigfile.py",
    "test_explain_redos.py",
    "test_redaction.py",
    "test_ws_properties.py",
    "test_browser.py",
    "test_vocabulary.py",
    "test_phases.py",
    "test_fixtures_typed.py",
}


def test_every_code_is_produced_from_a_real_fault_somewhere() -> None:
    texts = [p.read_text() for p in TESTS.rglob("test_*.py") if p.name not in UNIT_ONLY]
    missing = [c for c in FINDING_CODES if not any(f'"{c}"' in t or f"'{c}'" in t for t in texts)]
    assert missing == [], f"no real-fault test names these codes: {missing}"
