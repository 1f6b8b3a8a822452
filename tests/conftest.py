"""Shared fixtures. Every test starts with a clean environment: no proxy, CA or key variables
leak in from the machine (``http_proxy`` counts as much as ``HTTP_PROXY``)."""

from __future__ import annotations

import os

import pytest

_ISOLATED = {
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "WS_PROXY",
    "WSS_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "DEEPGRAM_API_KEY",
    "DEEPGRAM_TOKEN",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.upper() in _ISOLATED]:
        monkeypatch.delenv(name)
