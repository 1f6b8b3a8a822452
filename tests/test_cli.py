"""The command line's contract: fast help, one-line errors with exit 2, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from wsdoctor.cli import main

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wsdoctor", *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys; from wsdoctor.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('aiohttp', 'jinja2', 'dns', 'rich', 'wsproto', 'h11') if m in sys.modules)\n"
        "print('HEAVY=' + ','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert "HEAVY=\n" in out.stdout, out.stdout


def test_version_and_module_entry() -> None:
    out = run_cli("--version")
    assert out.returncode == 0
    assert out.stdout.startswith("wsdoctor ")


def test_checks_lists_every_builtin() -> None:
    out = run_cli("checks")
    assert out.returncode == 0
    for cid in (
        "dns.resolve",
        "tcp.connect",
        "tls.handshake",
        "http.upgrade",
        "ws.auth",
        "stream.transcribe",
        "close.handshake",
    ):
        assert cid in out.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "http//not a url"], "invalid URL"),
        (["run", "ftp://example.invalid/x"], "scheme must be ws:// or wss://"),
        (["run", "ws://"], "no host"),
        (["run", "ws://127.0.0.1:99999/"], "invalid URL"),
        (["run", "--target", "mock", "--checks", "nope.nothing"], "unknown check id 'nope.nothing'"),
        (["run", "--target", "mock", "--json", "/nonexistent-dir/r.json"], "does not exist"),
        (["run", "--target", "mock", "--resolve", "bad"], "expected HOST:PORT:ADDR"),
        (["run", "--target", "mock", "--timeout", "-1"], "positive"),
        (["run", "--target", "mock", "--mock-fault", "nope"], "unknown mock fault"),
        (["run", "--target", "mock", "--ca-file", "/nonexistent.pem"], "--ca-file"),
        (["run", "ws://127.0.0.1:1/", "--target", "mock"], "not both"),
        (["render", "/nonexistent/report.json"], "cannot read"),
        (["mock", "--fault", "nope"], "unknown fault"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert needle in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_unwritable_report_path_fails_before_probing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        code = main(["run", "ws://127.0.0.1:9/", "--json", str(ro / "r.json")])
        err = capsys.readouterr().err
    finally:
        ro.chmod(0o700)
    if code != 2 and __import__("os").geteuid() == 0:
        # root ignores directory permissions; a path under a regular file is unwritable for anyone
        code = main(["run", "ws://127.0.0.1:9/", "--json", str(tmp_path / "file" / "r.json")])
        err = capsys.readouterr().err
    assert code == 2
    assert "cannot write report" in err


@pytest.mark.parametrize(
    "content",
    ["{not json", "[]", '{"schema": "other/1"}', '{"schema": "wsdoctor.report/1", "results": 5}', "\x00\x01"],
)
def test_render_rejects_bad_reports(tmp_path: Path, content: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "r.json"
    path.write_text(content)
    assert main(["render", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wsdoctor: error:") and err.count("\n") == 1


def test_render_saved_report_without_network(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "again.json"
    assert main(["render", str(ROOT / "fixtures/reports/failing-proxy.json"), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "http.intermediary-response" in text and "proxy-firewall" in text
    again = json.loads(out.read_text())
    original = json.loads((ROOT / "fixtures/reports/failing-proxy.json").read_text())
    assert again["summary"] == original["summary"]


def test_report_to_a_device_is_written_in_place_not_renamed_over(tmp_path: Path) -> None:
    """--json /dev/stdout (or a FIFO) must not be replaced by a regular file (as root: /dev/null!)."""
    import os
    import stat
    import threading

    from wsdoctor.fileio import atomic_write_text

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    atomic_write_text(fifo, '{"ok": true}\n')
    reader.join(5)
    assert got == ['{"ok": true}\n']
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    atomic_write_text("/dev/null", "nothing\n")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
