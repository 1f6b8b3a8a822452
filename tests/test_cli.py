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


#: What ``--help`` must not load: the network and rendering stacks, and the engine (the model, checks,
#: runner, registry, protocol module), whose dataclasses and ``typing`` were most of ``--help``'s time.
HELP_FORBIDDEN = (
    "aiohttp",
    "jinja2",
    "dns",
    "rich",
    "wsproto",
    "h11",
    "psutil",
    "yaml",
    "wsdoctor.model",
    "wsdoctor.check",
    "wsdoctor.runner",
    "wsdoctor.registry",
    "wsdoctor.diagnosis",
    "wsdoctor.deepgram",
    "wsdoctor.mock",
    "reports",
    "checks",
    "dataclasses",
    "typing",
    "inspect",
    "importlib.metadata",
    "asyncio",
    "json",
)


def modules_loaded_by(*argv: str) -> set[str]:
    """The modules ``python -m wsdoctor ARGV`` imports beyond the interpreter's own start-up, read
    from ``sys.modules`` (``python -X importtime`` does not list modules loaded through
    ``importlib.import_module``, which is how the subcommands are loaded)."""
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        f"sys.argv = ['wsdoctor', *{list(argv)!r}]\n"
        "import runpy\n"
        "try:\n    runpy.run_module('wsdoctor', run_name='__main__', alter_sys=True)\nexcept SystemExit:\n    pass\n"
        "sys.stderr.write('LOADED=' + ','.join(sorted(set(sys.modules) - before)) + '\\n')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    line = next(ln for ln in out.stderr.splitlines() if ln.startswith("LOADED="))
    return set(line.removeprefix("LOADED=").split(","))


def forbidden(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == f or m.startswith(f + ".") for f in HELP_FORBIDDEN))


def test_help_imports_only_what_argparse_needs() -> None:
    loaded = modules_loaded_by("--help")
    assert "wsdoctor.cli" in loaded
    assert forbidden(loaded) == []
    # the top-level help is built from the one-line summaries: no subcommand module is imported
    assert sorted(m for m in loaded if m.startswith("wsdoctor.commands.")) == ["wsdoctor.commands.common"]


@pytest.mark.parametrize("command", ["run", "mock", "checks", "render", "explain", "serve", "load"])
def test_subcommand_help_imports_nothing_heavy_either(command: str) -> None:
    """A subcommand module's top level is argparse setup only; its needs are imported by its handler."""
    loaded = modules_loaded_by(command, "--help")
    assert f"wsdoctor.commands.{command}" in loaded
    assert forbidden(loaded) == []


def test_run_default_url_is_deepgrams() -> None:
    from wsdoctor import deepgram
    from wsdoctor.commands.run import DEFAULT_URL

    assert DEFAULT_URL == deepgram.DEFAULT_URL  # spelled out in run.py to keep --help light


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


# -- any reporter, by name: --report NAME=PATH and its shorthands -------------------------------


def test_unknown_reporter_is_exit_2_listing_the_installed_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # port 9 on loopback: if a probe ran, this would take a connect attempt; it must not get there
    code = main(["run", "ws://127.0.0.1:9/", "--report", f"pdf={tmp_path / 'r.pdf'}"])
    out = capsys.readouterr()
    assert code == 2
    assert out.out == ""  # nothing ran
    assert out.err.startswith("wsdoctor: error: unknown reporter 'pdf' (available: ") and out.err.count("\n") == 1
    for name in ("html", "json", "junit", "markdown", "openmetrics", "terminal"):
        assert name in out.err
    assert not (tmp_path / "r.pdf").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--report", "html"], "expected NAME=PATH"),
        (["--report", "=r.html"], "expected NAME=PATH"),
        (["--report", "html="], "expected NAME=PATH"),
        (["--json", "-", "--report", "markdown=-"], "--json and --report markdown would both write stdout"),
        (["--report", "html=/nonexistent-dir/r.html"], "cannot write report"),
    ],
)
def test_bad_report_requests_are_one_line_and_exit_2(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in (["run", "ws://127.0.0.1:9/"], ["render", str(ROOT / "fixtures/reports/healthy.json")]):
        code = main([*command, *args])
        out = capsys.readouterr()
        assert code == 2, out.err
        assert needle in out.err and out.err.count("\n") == 1 and "Traceback" not in out.err
        assert out.out == ""


def test_two_outputs_on_one_file_through_report_and_a_shorthand(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    same = tmp_path / "r.out"
    src = str(ROOT / "fixtures/reports/healthy.json")
    code = main(["render", src, "--report", f"html={same}", "--junit", str(same)])
    assert code == 2
    assert f"--report html and --junit would both write {str(same)!r}" in capsys.readouterr().err
    assert not same.exists()


def test_report_flag_and_shorthand_write_the_same_file(tmp_path: Path) -> None:
    src = str(ROOT / "fixtures/reports/failing-proxy.json")
    for name in ("json", "html", "junit", "openmetrics", "markdown"):
        assert main(["render", src, f"--{name}", str(tmp_path / f"short.{name}")]) == 0
        assert main(["render", src, "--report", f"{name}={tmp_path / f'long.{name}'}"]) == 0
        assert (tmp_path / f"short.{name}").read_bytes() == (tmp_path / f"long.{name}").read_bytes(), name


def test_any_reporter_to_stdout_moves_the_summary_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = str(ROOT / "fixtures/reports/failing-proxy.json")
    txt = tmp_path / "summary.txt"
    assert main(["render", src, "--report", "markdown=-", "--report", f"terminal={txt}", "--no-color"]) == 0
    out = capsys.readouterr()
    assert out.out.lstrip().startswith("#") and "proxy-firewall" in out.out  # the Markdown, alone on stdout
    assert "Verdict:" in out.err  # the terminal summary, on stderr
    assert txt.read_text() == out.err  # --report terminal=PATH: the same summary, uncoloured


def test_render_loads_only_the_reporters_it_was_asked_for(tmp_path: Path) -> None:
    md = tmp_path / "r.md"
    loaded = modules_loaded_by("render", str(ROOT / "fixtures/reports/healthy.json"), "--report", f"markdown={md}")
    assert md.exists()
    assert {"reports.markdown", "reports.terminal"} <= loaded
    assert not {"reports.html", "reports.junit", "reports.openmetrics", "jinja2"} & loaded


def test_commands_import_no_reporter_directly() -> None:
    """Reporters, built-ins included, come through the wsdoctor.reporters entry points only."""
    import re

    for path in sorted((ROOT / "wsdoctor" / "commands").glob("*.py")):
        direct = re.findall(r"^\s*(?:from|import) reports\.(?!base\b)\w+", path.read_text(), re.MULTILINE)
        assert direct == [], f"{path.name} imports {direct}"


def test_load_writes_any_reporter(tmp_path: Path) -> None:
    md = tmp_path / "load.md"
    out = run_cli(
        "load", "ws://127.0.0.1:9/v1/listen", "--streams", "1", "--duration", "0.5", "--report", f"markdown={md}"
    )
    assert out.returncode == 1, out.stderr  # port 9 refuses: a failed load, reported
    assert "load.streams" in md.read_text()
