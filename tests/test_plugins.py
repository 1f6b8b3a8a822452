"""A third-party plugin, installed by pip like any distribution, is used exactly like a built-in.

``tests/plugin_pkg`` is a package of its own (``wsdoctor-hello``) that registers one check
(``hello.target``, entry-point group ``wsdoctor.checks``) and one reporter (``tsv``, group
``wsdoctor.reporters``). It is copied to a temporary directory, ``pip install``-ed there with
``--target`` (no network, no dependencies, its own stdlib build backend) and put on ``PYTHONPATH``
of the ``wsdoctor`` processes the tests start; nothing is installed into the test's environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PLUGIN_SRC = Path(__file__).resolve().parent / "plugin_pkg"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory holding the installed plugin (module and .dist-info, entry points included)."""
    root = tmp_path_factory.mktemp("plugin")
    src, site = root / "src", root / "site"
    shutil.copytree(PLUGIN_SRC, src, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    offline = ["--no-deps", "--no-build-isolation", "--no-index"]
    out = subprocess.run(
        [*pip, *offline, "--target", str(site), str(src)], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert sorted(p.name for p in site.glob("*.dist-info")) == ["wsdoctor_hello-1.0.dist-info"]
    yield site
    shutil.rmtree(root, ignore_errors=True)


def wsdoctor(site: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [sys.executable, "-m", "wsdoctor", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": path},
    )


def test_checks_lists_the_plugins_check(plugin_site: Path) -> None:
    out = wsdoctor(plugin_site, "checks")
    assert out.returncode == 0, out.stderr
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("hello.target"))
    assert "a third-party check that greets the target" in line
    assert "could not be loaded" not in out.stdout
    assert "tcp.connect" in out.stdout  # the built-ins, from the same door


def test_run_and_render_use_the_plugins_check_and_reporter(plugin_site: Path, tmp_path: Path) -> None:
    tsv, report = tmp_path / "run.tsv", tmp_path / "report.json"
    out = wsdoctor(
        plugin_site,
        *("run", "--target", "mock", "--checks", "hello.target"),
        *("--report", f"tsv={tsv}", "--json", str(report)),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "hello.target" in out.stdout and "HEALTHY" in out.stdout  # the terminal summary stays
    rows = tsv.read_text().splitlines()
    assert rows[0] == "check\tstatus\tsummary"
    assert len(rows) == 2 and rows[1].startswith("hello.target\tpass\thello from a plugin to 127.0.0.1:")
    data = json.loads(report.read_text())
    assert [r["check_id"] for r in data["results"]] == ["hello.target"]
    assert data["target"]["is_mock"] is True

    again = tmp_path / "render.tsv"
    out = wsdoctor(plugin_site, "render", str(report), "--report", f"tsv={again}")
    assert out.returncode == 0, out.stdout + out.stderr
    assert again.read_text() == tsv.read_text()  # run and render: one reporter, one text

    out = wsdoctor(plugin_site, "render", str(report), "--report", "tsv=-")
    assert out.returncode == 0, out.stderr
    assert out.stdout == tsv.read_text()  # '-' is stdout for any reporter; the summary went to stderr
    assert "HEALTHY" in out.stderr


def test_an_unknown_reporter_lists_the_plugins_too(plugin_site: Path, tmp_path: Path) -> None:
    out = wsdoctor(plugin_site, "render", str(tmp_path / "unused.json"), "--report", "pdf=x.pdf", cwd=tmp_path)
    assert out.returncode == 2
    assert "unknown reporter 'pdf' (available: html, json, junit, markdown, openmetrics, terminal, tsv)" in out.stderr
    assert not (tmp_path / "x.pdf").exists()
