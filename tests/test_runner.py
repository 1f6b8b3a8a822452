"""The runner and registry: DAG order, concurrency, deadlines, skips, cancellation, plugins."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import ClassVar

import jsonschema
import pytest

from reports.json import load_schema
from wsdoctor.check import Check, Context, RunOptions
from wsdoctor.errors import UsageError
from wsdoctor.model import CheckResult, Finding, Status, Target
from wsdoctor.registry import load_checks
from wsdoctor.runner import run_checks, select_checks

ROOT = Path(__file__).resolve().parent.parent
TARGET = Target.parse("ws://127.0.0.1:9/v1/listen")


def make_ctx(results: dict[str, CheckResult]) -> Context:
    return Context(target=TARGET, options=RunOptions(), results=dict(results))


class Sleepy(Check):
    id = "t.sleepy"
    title = "sleeps"
    delay: ClassVar[float] = 0.3

    async def run(self, ctx: Context) -> CheckResult:
        await asyncio.sleep(self.delay)
        return self.result(summary="slept")


class Sleepy2(Sleepy):
    id = "t.sleepy2"


class Long(Sleepy):
    id = "t.long"
    delay: ClassVar[float] = 30.0


class Failing(Check):
    id = "t.failing"
    title = "finds a fault"

    async def run(self, ctx: Context) -> CheckResult:
        return self.result([Finding("tcp.refused", "proxy-firewall", Status.FAIL, "refused")], summary="")


class NeedsFailing(Check):
    id = "t.needs-failing"
    title = "depends on a failing check"
    requires = ("t.failing",)

    async def run(self, ctx: Context) -> CheckResult:  # pragma: no cover - must never run
        raise AssertionError("a dependant of a failed check ran")


class NeedsNeeds(NeedsFailing):
    id = "t.needs-needs"
    requires = ("t.needs-failing",)


class Hangs(Check):
    id = "t.hangs"
    title = "never returns"
    timeout: ClassVar[float] = 0.2

    async def run(self, ctx: Context) -> CheckResult:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


class Crashes(Check):
    id = "t.crashes"
    title = "raises"

    async def run(self, ctx: Context) -> CheckResult:
        raise ValueError("boom")


class NotApplicable(Check):
    id = "t.na"
    title = "not applicable"

    async def run(self, ctx: Context) -> CheckResult:
        return self.skip("not applicable here")


class AfterNotApplicable(Check):
    id = "t.after-na"
    title = "runs after a not-applicable skip"
    requires = ("t.na",)

    async def run(self, ctx: Context) -> CheckResult:
        assert ctx.result_of("t.na") is not None
        return self.result(summary="ran")


class LeaksKey(Check):
    id = "t.leaks"
    title = "puts the key in its evidence"

    async def run(self, ctx: Context) -> CheckResult:
        assert ctx.api_key is not None
        key = ctx.api_key.reveal()
        return self.result(
            summary=f"key {key}",
            evidence={"headers": [["Authorization", f"Token {key}"]], "echo": f"server said {key}"},
        )


async def test_independent_checks_run_concurrently() -> None:
    t0 = time.monotonic()
    outcome = await run_checks([Sleepy, Sleepy2], make_ctx)
    assert time.monotonic() - t0 < 0.55  # 2 x 0.3 s in parallel, not 0.6 s in series
    assert [r.status for r in outcome.results] == [Status.PASS, Status.PASS]
    assert all(r.duration_s >= 0.29 for r in outcome.results)


async def test_dependants_of_a_failure_are_skipped_with_reason() -> None:
    outcome = await run_checks([Failing, NeedsFailing, NeedsNeeds], make_ctx)
    by_id = {r.check_id: r for r in outcome.results}
    assert by_id["t.failing"].status is Status.FAIL
    assert by_id["t.needs-failing"].status is Status.SKIP
    assert by_id["t.needs-failing"].blocked_by == "t.failing"
    assert "requires t.failing, which failed" in by_id["t.needs-failing"].summary
    assert by_id["t.needs-needs"].blocked_by == "t.needs-failing"  # the skip cascades


async def test_not_applicable_skip_does_not_block() -> None:
    outcome = await run_checks([NotApplicable, AfterNotApplicable], make_ctx)
    assert [r.status for r in outcome.results] == [Status.SKIP, Status.PASS]


async def test_deadline_and_exception_become_error_and_the_run_goes_on() -> None:
    t0 = time.monotonic()
    outcome = await run_checks([Hangs, Crashes, Sleepy], make_ctx)
    assert time.monotonic() - t0 < 1.0
    by_id = {r.check_id: r for r in outcome.results}
    assert by_id["t.hangs"].status is Status.ERROR
    assert "overran its 0.2 s deadline" in by_id["t.hangs"].summary
    assert by_id["t.crashes"].status is Status.ERROR
    assert "ValueError: boom" in by_id["t.crashes"].summary
    assert by_id["t.sleepy"].status is Status.PASS


async def test_cancellation_returns_partial_results() -> None:
    task = asyncio.create_task(run_checks([Failing, Sleepy, Long], make_ctx))
    await asyncio.sleep(0.1)
    task.cancel()
    outcome = await asyncio.wait_for(task, 5)
    assert outcome.interrupted
    by_id = {r.check_id: r for r in outcome.results}
    assert by_id["t.failing"].status is Status.FAIL  # finished before the interrupt: kept
    assert by_id["t.long"].status is Status.SKIP  # cut short: neither a diagnosis nor a bug of the check
    assert "interrupted" in by_id["t.long"].summary


async def test_secrets_are_redacted_from_results() -> None:
    from wsdoctor.check import Secret

    key = "dg-secret-0123456789abcdef"

    def ctx_with_key(results: dict[str, CheckResult]) -> Context:
        return Context(target=TARGET, api_key=Secret(key), results=dict(results))

    outcome = await run_checks([LeaksKey], ctx_with_key, secrets=[key])
    text = json.dumps(outcome.results[0].to_dict())
    assert key not in text
    assert "REDACTED" in text
    assert repr(Secret(key)) == "Secret('***')"


def test_select_pulls_in_requirements_and_rejects_unknown_ids() -> None:
    available = {c.id: c for c in (Failing, NeedsFailing, NeedsNeeds, Sleepy)}
    chosen, _ = select_checks(available, only=["t.needs-needs"])
    assert [c.id for c in chosen] == ["t.failing", "t.needs-failing", "t.needs-needs"]
    chosen, skipped = select_checks(available, skip=["t.failing"])
    assert "t.failing" not in [c.id for c in chosen]
    assert skipped == {"t.failing"}
    with pytest.raises(UsageError, match="unknown check id"):
        select_checks(available, only=["t.nope"])


def test_every_checks_module_is_declared_as_an_entry_point() -> None:
    # checks/client.py judges what `wsdoctor watch` recorded of an app: it has no Check of `run`.
    watch_only = {"client"}
    modules = {p.stem for p in (ROOT / "checks").glob("*.py") if not p.stem.startswith("_")} - watch_only
    loaded = load_checks()
    assert not loaded.broken
    declared = {cls.__module__.split(".")[1] for cls in loaded.checks.values() if cls.__module__.startswith("checks.")}
    assert modules == declared


def test_third_party_plugin_is_loaded_through_entry_points(tmp_path: Path) -> None:
    """A real distribution on sys.path, found by importlib.metadata like any installed plugin."""
    (tmp_path / "wsd_example_plugin.py").write_text(
        textwrap.dedent("""
        from wsdoctor import Check, CheckResult, Context

        class Hello(Check):
            id = "example.hello"
            title = "a third-party check"

            async def run(self, ctx: Context) -> CheckResult:
                return self.result(summary="hello from a plugin")

        CHECKS = (Hello,)
    """)
    )
    dist = tmp_path / "wsd_example_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: wsd-example-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[wsdoctor.checks]\nexample = wsd_example_plugin:CHECKS\nbroken = wsd_missing_module:CHECKS\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "wsdoctor", "checks"], capture_output=True, text=True, env=env, timeout=30, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "example.hello" in out.stdout
    assert "plugin.broken" in out.stdout
    assert "could not be loaded" in out.stdout


@pytest.mark.parametrize(("sig", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_mid_run_writes_a_partial_report(tmp_path: Path, sig: signal.Signals, exit_code: int) -> None:
    report = tmp_path / "partial.json"
    proc = subprocess.Popen(
        # slow-results holds the first Results back 6 s: the stream lasts ~8 s, so the signal lands
        # inside it even when a loaded machine starts the run a second or two late
        [
            sys.executable,
            "-m",
            "wsdoctor",
            "run",
            "--target",
            "mock",
            "--mock-fault",
            "slow-results",
            "--json",
            str(report),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(3.5)  # past the handshake checks, inside the stream
    proc.send_signal(sig)
    try:
        _out, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == exit_code, err
    data = json.loads(report.read_text())
    jsonschema.Draft202012Validator(load_schema()).validate(data)
    assert data["interrupted"] is True
    assert data["summary"]["verdict"] == "incomplete"
    statuses = {r["check_id"]: r["status"] for r in data["results"]}
    assert statuses["tcp.connect"] == "pass"
    stream = next(r for r in data["results"] if r["check_id"] == "stream.transcribe")
    assert stream["status"] == "skip" and "interrupted" in stream["summary"]
    assert "error" not in statuses.values()  # a signal is nobody's bug
    assert "Traceback" not in err


def test_run_timeout_bounds_the_whole_run(tmp_path: Path) -> None:
    report = tmp_path / "t.json"
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "wsdoctor", "run", "--target", "mock", "--timeout", "1.5", "--json", str(report)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert time.monotonic() - t0 < 1.5 + 4.0  # the bound, plus interpreter start and the 2 s socket grace
    data = json.loads(report.read_text())
    assert data["interrupted"] is True
    assert out.returncode == 1  # cut short: never a silent pass, and never "a bug in wsdoctor" (3)
    cut = [r for r in data["results"] if "deadline" in r["summary"]]
    assert cut and all(r["status"] == "skip" and "--timeout 1.5 s" in r["summary"] for r in cut)
    assert "Traceback" not in out.stderr


def test_the_engine_does_not_start_or_import_the_mock() -> None:
    """diagnose() takes a Target; the mock is the business of the command that asked for it."""
    code = textwrap.dedent("""
        import asyncio, sys
        from wsdoctor.check import Check, RunOptions
        from wsdoctor.diagnosis import Diagnosis, diagnose
        from wsdoctor.model import Target

        class Noop(Check):
            id = "t.noop"
            title = "does nothing"

            async def run(self, ctx):
                return self.result(summary="nothing")

        target = Target.parse("ws://127.0.0.1:9/v1/listen")
        report = asyncio.run(diagnose(Diagnosis(target=target, options=RunOptions(), checks=[Noop])))
        print(report.results[0].status.value, "wsdoctor.mock" in sys.modules, "aiohttp.web" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["pass", "False", "False"]


def test_target_mock_is_started_by_run_with_a_key_no_output_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import secrets
    from typing import Any

    import wsdoctor.diagnosis
    from wsdoctor.cli import main

    made: list[str] = []
    redacted: list[str] = []

    def token_urlsafe(n: int | None = None) -> str:
        made.append(f"Kq7mockkey{len(made)}x9Zt4VwB2")
        return made[-1]

    real_run_checks = wsdoctor.diagnosis.run_checks

    async def run_checks(*args: Any, **kwargs: Any) -> Any:
        redacted.extend(kwargs["secrets"])
        return await real_run_checks(*args, **kwargs)

    monkeypatch.setattr(secrets, "token_urlsafe", token_urlsafe)
    monkeypatch.setattr(wsdoctor.diagnosis, "run_checks", run_checks)
    out_json, out_md = tmp_path / "r.json", tmp_path / "r.md"
    code = main(["run", "--target", "mock", "--checks", "ws.auth", "--json", str(out_json), "--markdown", str(out_md)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    key = next(k for k in made if k.startswith("Kq7mockkey"))
    assert "mock-" + key in redacted  # the mock's key is the run's key: redacted from every result
    data = json.loads(out_json.read_text())
    assert data["target"]["is_mock"] is True
    statuses = {r["check_id"]: r["status"] for r in data["results"]}
    assert statuses["http.upgrade"] == statuses["ws.auth"] == "pass"  # the mock accepted the key it was given
    assert '"state": "mock"' in out_json.read_text()  # no variable of the user's was judged
    for text in (out_json.read_text(), out_md.read_text(), printed.out, printed.err):
        assert key not in text
        assert key[:12] not in text
