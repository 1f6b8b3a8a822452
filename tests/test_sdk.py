"""sdk.* checks: the known-issues table, version/constraint parsing, every lockfile format, and
``wsdoctor run --app-dir`` on real-looking app directories (fixtures/apps/) -- all offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from checks import sdk
from wsdoctor.check import Context, RunOptions
from wsdoctor.cli import main
from wsdoctor.model import Status, Target
from wsdoctor.probes.sdk import (
    WATCHED,
    Pin,
    SdkObservation,
    constraint,
    in_range,
    parse_file,
    scan_app_dir,
    version_key,
)
from wsdoctor.record import FixtureError

ROOT = Path(__file__).resolve().parent.parent
APPS = ROOT / "fixtures" / "apps"
OBS = ROOT / "fixtures" / "observations" / "sdk"
ISSUES = sdk.load_known_issues()


def load_json(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((OBS / name).read_text())
    return data


def load_obs(name: str) -> SdkObservation:
    """A recorded fixture as the typed observation the probe returns (strictly: see probes.record)."""
    return SdkObservation.from_dict(load_json(name))


def outdated(findings: list[Any]) -> dict[tuple[str, str], str]:
    """(package, where) -> fixed_in for every sdk.outdated finding."""
    assert all(f.code == "sdk.outdated" and f.cause == "sdk-libraries" for f in findings)
    return {(f.evidence["package"], f.evidence["where"]): f.evidence["fixed_in"] for f in findings}


# -- the known-issues table -------------------------------------------------------------------


def test_every_known_issue_is_sourced_and_consistent() -> None:
    assert len(ISSUES) >= 20
    for row in ISSUES:
        assert row.source.startswith("https://"), row
        assert row.area in {"keepalive", "close", "proxy", "compatibility"}, row
        assert row.ecosystem in WATCHED and row.package.lower() in WATCHED[row.ecosystem], row
        assert version_key(row.fixed_in) is not None, row
        assert not in_range(row.fixed_in, row.affected), f"the fix is inside its own bad range: {row}"
        assert row.summary, row


def test_every_ecosystem_has_rows() -> None:
    assert {r.ecosystem for r in ISSUES} == {"pypi", "npm", "go", "nuget"}
    assert {r.area for r in ISSUES} >= {"keepalive", "close", "proxy"}


def test_a_mistyped_catalogue_row_is_an_error() -> None:
    row = {
        "ecosystem": "pypi",
        "package": "websockets",
        "affected": "<1",
        "fixed_in": "1",
        "area": "keepalive",
        "summary": "s",
        "source": "https://example.invalid/",
    }
    assert sdk.KnownIssue.from_dict(row).requires is None
    with pytest.raises(FixtureError, match="fixed"):
        sdk.KnownIssue.from_dict({**row, "fixed": row["fixed_in"]})
    with pytest.raises(FixtureError, match="area"):
        sdk.KnownIssue.from_dict({**row, "area": "latency"})


# -- versions and constraints -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("3.0.0-rc.1", "3.0.0"),
        ("4.0.0b2", "4.0.0"),
        ("1.0.dev3", "1.0"),
        ("1.0", "1.0.post1"),
        ("3.2.2", "3.10.0"),
        ("v1.1.0", "v1.3.3"),
        ("0.0.0-20240101120000-abcdef123456", "0.1.0"),
    ],
)
def test_version_order(a: str, b: str) -> None:
    ka, kb = version_key(a), version_key(b)
    assert ka is not None and kb is not None
    assert ka < kb


def test_version_equivalences() -> None:
    assert version_key("3.2") == version_key("3.2.0") == version_key("v3.2.0")
    assert version_key("1.2.3+incompatible") == version_key("1.2.3")
    assert version_key("not-a-version") is None


@pytest.mark.parametrize(
    ("spec", "style", "exact", "lower", "upper"),
    [
        ("==3.1.0", "pep440", "3.1.0", None, None),
        (">=3.0,<3.2", "pep440", None, "3.0", "3.2"),
        ("~=3.1.0", "pep440", None, "3.1.0", "3.2.0"),
        ("~=3.1", "pep440", None, "3.1", "4.0.0"),
        ("==3.1.*", "pep440", None, "3.1", "3.2.0"),
        (">=12.0", "pep440", None, "12.0", None),
        ("", "pep440", None, None, None),
        ("^3.1.0", "poetry", None, "3.1.0", "4.0.0"),
        ("^0.2.3", "poetry", None, "0.2.3", "0.3.0"),
        ("~3.1.0", "poetry", None, "3.1.0", "3.2.0"),
        ("3.2.0", "poetry", "3.2.0", None, None),
        ("2.2.0", "npm", "2.2.0", None, None),
        ("^2.2.0", "npm", None, "2.2.0", "3.0.0"),
        ("~6.1.0", "npm", None, "6.1.0", "6.2.0"),
        (">=7.0.0 <7.4.0", "npm", None, "7.0.0", "7.4.0"),
        ("7.x", "npm", None, "7", "8.0.0"),
        ("^1.0.0 || ^2.0.0", "npm", None, None, None),
        ("git+https://github.com/x/y.git", "npm", None, None, None),
        ("v1.1.0", "go", "v1.1.0", None, None),
        ("3.2.0", "nuget", "3.2.0", None, None),
        ("[4.1.0]", "nuget", "4.1.0", None, None),
        ("[4.0,4.4)", "nuget", None, "4.0", "4.4"),
        ("4.*", "nuget", None, "4", "5.0.0"),
    ],
)
def test_constraints(spec: str, style: str, exact: str | None, lower: str | None, upper: str | None) -> None:
    c = constraint(spec, style)
    assert (c.exact, c.lower, c.upper) == (exact, lower, upper)


# -- analyze() on recorded observations ------------------------------------------------------


def test_a_pin_is_read_strictly() -> None:
    """A pin missing its kind used to read as a manifest; an unknown tool as any string."""
    pin = load_json("installed-current.json")["pins"][0]
    assert Pin.from_dict(pin).kind == "installed"
    with pytest.raises(FixtureError, match="kind"):
        Pin.from_dict({k: v for k, v in pin.items() if k != "kind"})
    with pytest.raises(FixtureError, match="tool"):
        Pin.from_dict(pin | {"tool": "conda"})
    with pytest.raises(FixtureError, match="ecosystem"):
        Pin.from_dict(pin | {"ecosystem": "cargo"})


def test_installed_old_sdk_with_websockets_14() -> None:
    findings = sdk.analyze(load_obs("installed-sdk376-websockets14.json"))
    by_pkg = {f.evidence["package"]: f for f in findings}
    assert set(by_pkg) == {"deepgram-sdk", "websockets", "aiohttp"}
    dg = by_pkg["deepgram-sdk"]
    assert dg.evidence["fixed_in"] == "3.9.0"
    assert dg.evidence["problems"][0]["requirement_met"] == "yes"
    assert "extra_headers" in dg.message
    assert dg.message.endswith("Upgrade: pip install -U 'deepgram-sdk>=3.9.0'")
    assert dg.severity is Status.WARN
    assert dg.evidence["source"] == "https://github.com/deepgram/deepgram-python-sdk/issues/483"


def test_the_websockets_requirement_gates_the_row() -> None:
    findings = sdk.analyze(load_obs("installed-sdk376-websockets13.json"))
    assert "deepgram-sdk" not in {f.evidence["package"] for f in findings}


def test_unknown_requirement_is_reported_as_conditional() -> None:
    (finding,) = sdk.analyze(load_obs("app-sdk-without-websockets.json"))
    compat = [p for p in finding.evidence["problems"] if p["area"] == "compatibility"]
    assert compat[0]["requirement_met"] == "unknown"
    assert "if websockets>=14 is installed" in finding.message


def test_current_versions_are_clean() -> None:
    assert sdk.analyze(load_obs("installed-current.json")) == []


def test_legacy_v2_sdk() -> None:
    (finding,) = sdk.analyze(load_obs("installed-legacy-v2.json"))
    assert finding.evidence["fixed_in"] == "2.12.0"
    assert {p["area"] for p in finding.evidence["problems"]} == {"close", "keepalive"}


# -- real app directories, every ecosystem ----------------------------------------------------

EXPECTED: dict[str, dict[tuple[str, str], str]] = {
    "python-pip": {
        ("deepgram-sdk", "requirements.txt"): "3.7.6",
        ("websockets", "requirements.txt"): "15.0",
        ("aiohttp", "requirements.txt"): "3.14.0",
    },
    "python-poetry": {
        ("deepgram-sdk", "poetry.lock"): "3.7.6",
        ("websockets", "poetry.lock"): "15.0",
        ("aiohttp", "poetry.lock"): "3.14.0",
    },
    "python-uv": {
        ("deepgram-sdk", "uv.lock"): "3.9.0",
        ("websockets", "uv.lock"): "15.0",
        ("aiohttp", "uv.lock"): "3.14.0",
    },
    "python-pep621": {("deepgram-sdk", "pyproject.toml"): "3.9.0"},
    "node": {("@deepgram/sdk", "package-lock.json"): "2.3.0", ("ws", "package-lock.json"): "7.5.0"},
    "go": {("github.com/deepgram/deepgram-go-sdk", "go.mod"): "1.3.3"},
    "dotnet": {("deepgram", "LiveCaptions.csproj"): "3.3.0"},
}

UPGRADES = {
    "python-pip": "pip install -U 'deepgram-sdk>=3.7.6'",
    "python-poetry": "poetry add 'deepgram-sdk@>=3.7.6'",
    "python-uv": "uv add 'deepgram-sdk>=3.9.0'",
    "node": "npm install @deepgram/sdk@^2.3.0",
    "go": "go get github.com/deepgram/deepgram-go-sdk@v1.3.3 && go mod tidy",
    "dotnet": "dotnet add package Deepgram --version 3.3.0",
}


@pytest.mark.parametrize("app", sorted(EXPECTED))
def test_old_pins_are_outdated(app: str) -> None:
    obs = scan_app_dir(APPS / app)
    assert obs.errors == ()
    findings = sdk.analyze(obs)
    assert outdated(findings) == EXPECTED[app]
    if app in UPGRADES:
        assert any(UPGRADES[app] in f.message for f in findings), [f.message for f in findings]


def test_current_pins_have_no_finding() -> None:
    obs = scan_app_dir(APPS / "current")
    assert len(obs.files) == 7
    assert {p.package for p in obs.pins} >= {"deepgram-sdk", "websockets", "aiohttp", "@deepgram/sdk", "ws"}
    assert sdk.analyze(obs) == []


def test_nested_transitive_ws_is_ignored_but_the_sdks_own_is_read() -> None:
    pins = parse_file(APPS / "node" / "package-lock.json", "package-lock.json")
    assert sorted((p.package, p.exact) for p in pins) == [
        ("@deepgram/sdk", "2.2.0"),
        ("ws", "6.1.2"),
        ("ws", "8.13.0"),  # node_modules/@deepgram/sdk/node_modules/ws; jest's ws 5.2.3 is not the app's
    ]


def test_manifest_is_superseded_by_the_lockfile_in_the_same_folder() -> None:
    obs = scan_app_dir(APPS / "python-poetry")
    assert any(p.file == "pyproject.toml" and p.package == "deepgram-sdk" for p in obs.pins)
    findings = sdk.analyze(obs)
    assert all(f.evidence["where"] == "poetry.lock" for f in findings)


def test_broken_and_hostile_files_are_reported_not_raised(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text("{ not json")
    (tmp_path / "App.csproj").write_text(
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><Project>&lol;</Project>'
    )
    (tmp_path / "pyproject.toml").write_text("[project\nname=")
    (tmp_path / "requirements.txt").write_text("deepgram-sdk==3.1.0\n-e git+https://example.invalid/x.git\n")
    nested = tmp_path / "node_modules" / "ws"
    nested.mkdir(parents=True)
    (nested / "package.json").write_text('{"dependencies": {"ws": "1.0.0"}}')  # skipped directory
    obs = scan_app_dir(tmp_path)
    assert sorted(e.split(":", 1)[0] for e in obs.errors) == ["App.csproj", "package.json", "pyproject.toml"]
    assert [(p.package, p.exact) for p in obs.pins] == [("deepgram-sdk", "3.1.0")]


# -- the checks, through the CLI --------------------------------------------------------------


@pytest.mark.parametrize("app", sorted(EXPECTED))
def test_run_app_dir_cli(
    app: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.json"
    code = main(
        [
            *("run", "ws://127.0.0.1:9/v1/listen", "--checks", "sdk.app-pins"),
            *("--app-dir", str(APPS / app), "--json", str(out)),
        ]
    )
    text = capsys.readouterr().out
    assert code == 0  # outdated libraries warn; they do not fail the run
    (result,) = json.loads(out.read_text())["results"]
    assert result["status"] == "warn"
    found = {(f["evidence"]["package"], f["evidence"]["where"]) for f in result["findings"]}
    assert found == set(EXPECTED[app])
    assert "sdk.outdated" in text


def test_run_app_dir_validation(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["run", "ws://127.0.0.1:9/", "--checks", "sdk.app-pins", "--app-dir", str(tmp_path / "nope")]) == 2
    assert "--app-dir" in capsys.readouterr().err


async def test_app_pins_skips_without_app_dir_and_on_empty_dir(tmp_path: Path) -> None:
    check = sdk.SdkAppPins()
    target = Target.parse("ws://127.0.0.1:9/")
    r = await check.run(Context(target=target, options=RunOptions()))
    assert r.status is Status.SKIP
    assert "--app-dir" in r.summary
    r = await check.run(Context(target=target, options=RunOptions(app_dir=str(tmp_path))))
    assert r.status is Status.SKIP
    assert "no manifest" in r.summary


async def test_installed_reads_this_environment() -> None:
    r = await sdk.SdkInstalled().run(Context(target=Target.parse("ws://127.0.0.1:9/")))
    assert r.status in (Status.PASS, Status.WARN)
    pins = {p["package"]: p for p in r.evidence["sdk"]["pins"]}
    from importlib.metadata import version

    assert pins["aiohttp"]["exact"] == version("aiohttp")
    assert pins["websockets"]["exact"] == version("websockets")
    evidence = r.evidence["sdk"]
    assert isinstance(evidence, dict)
    assert r.findings == tuple(sdk.analyze(SdkObservation.from_dict(evidence)))
