"""The only test that leaves the machine: the full suite against wss://api.deepgram.com.

Opt-in: ``pytest -m live`` with DEEPGRAM_API_KEY set. Never run in CI (the default ``-m 'not live'``
deselects it) and skipped with that reason when no key is present.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from wsdoctor.cli import main

# Read at import time: the autouse clean_env fixture removes it from the environment of each test.
LIVE_KEY = os.environ.get("DEEPGRAM_API_KEY")


@pytest.mark.live
def test_full_suite_against_deepgram(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not LIVE_KEY:
        pytest.skip("DEEPGRAM_API_KEY is not set: the live test needs a real Deepgram key")
    monkeypatch.setenv("DEEPGRAM_API_KEY", LIVE_KEY)
    out = tmp_path / "live.json"
    code = main(["run", "wss://api.deepgram.com/v1/listen", "--json", str(out)])
    report = json.loads(out.read_text())
    assert code == 0, report["summary"]
    assert LIVE_KEY not in out.read_text()
    statuses = {r["check_id"]: r["status"] for r in report["results"]}
    assert statuses["tls.handshake"] == "pass"
    assert statuses["stream.transcribe"] == "pass"
