"""A real nginx WebSocket proxy with ``proxy_read_timeout 4s`` in front of the mock: its cut is an
idle.middlebox-cutoff of about 4 s (proxy-firewall), told apart from the mock's own 1011 NET-0001
close (idle.server-timeout, connection-handling) when nginx lets the stream live longer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.mockproc import mock_process
from tests.system.services import nginx_proxy, require_root
from wsdoctor.cli import main

KEY = "wsdoctor-nginx-key-Lm42"


def run_idle(port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *extra: str) -> dict[str, Any]:
    monkeypatch.setenv("WSD_NGINX_KEY", KEY)
    out = tmp_path / "r.json"
    main(
        [
            "run",
            f"ws://127.0.0.1:{port}/v1/listen",
            "--api-key-env",
            "WSD_NGINX_KEY",
            "--checks",
            "idle",
            "--json",
            str(out),
            *extra,
        ]
    )
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def silent_of(report: dict[str, Any]) -> dict[str, Any]:
    return next(r for r in report["results"] if r["check_id"] == "idle.silent")


def test_nginx_read_timeout_is_a_middlebox_cutoff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_root()
    with mock_process("--api-key", KEY, "--idle-timeout", "10") as url:
        upstream = int(url.rsplit(":", 1)[1].split("/", 1)[0])
        with nginx_proxy(upstream, tmp_path, read_timeout="4s") as port:
            report = run_idle(port, tmp_path, monkeypatch, "--idle-max", "12")
    silent = silent_of(report)
    assert [f["code"] for f in silent["findings"]] == ["idle.middlebox-cutoff"], silent
    assert silent["findings"][0]["cause"] == "proxy-firewall"
    assert silent["metrics"]["idle_cutoff_s"] == pytest.approx(4.0, abs=1.0)
    assert report["summary"]["primary_cause"] == "proxy-firewall"
    # KeepAlive flows client->server only: nginx's read timeout cuts that stream too, while pings
    # (answered by pongs, server->client) keep the same path open.
    keepalive = next(r for r in report["results"] if r["check_id"] == "idle.keepalive")
    assert [f["code"] for f in keepalive["findings"]] == ["idle.middlebox-cutoff"]
    assert keepalive["findings"][0]["evidence"]["pings_kept_path_open"] is True


def test_server_timeout_through_nginx_is_not_a_middlebox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_root()
    with mock_process("--api-key", KEY, "--idle-timeout", "3") as url:
        upstream = int(url.rsplit(":", 1)[1].split("/", 1)[0])
        with nginx_proxy(upstream, tmp_path, read_timeout="30s") as port:
            report = run_idle(port, tmp_path, monkeypatch, "--idle-max", "10", "--keepalive-every", "1")
    silent = silent_of(report)
    assert [f["code"] for f in silent["findings"]] == ["idle.server-timeout"]
    assert silent["findings"][0]["cause"] == "connection-handling"
    assert silent["metrics"]["server_idle_timeout_s"] == pytest.approx(3.0, abs=1.0)
    assert silent["metrics"]["idle_cutoff_s"] is None
