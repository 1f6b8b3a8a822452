"""sdk.*: are the Deepgram SDK and the WebSocket libraries free of known keepalive/close/proxy bugs?

Theory of operation. Offline: no network, no package index. :mod:`wsdoctor.probes.sdk` reads
versions -- ``sdk.installed`` from this Python environment (importlib.metadata), ``sdk.app-pins``
from the manifests and lockfiles of ``--app-dir`` (requirements*.txt, pyproject.toml, poetry.lock,
uv.lock, package.json, package-lock.json, go.mod, *.csproj) -- and :func:`analyze` compares every
pin with ``wsdoctor/data/sdk_known_issues.json``: version ranges of deepgram-sdk, websockets,
aiohttp, @deepgram/sdk, ws, the Go SDK and the .NET SDK whose keepalive, close or proxy handling
was later fixed, each row citing the release note, issue or commit it comes from.

A pin is affected when its exact version (a lockfile, ``==``, an installed version) is inside a
known-bad range, or when a manifest range caps the package below the fixing release (``~=3.1.0``
can never reach a fix shipped in 3.2.2). A ``>=`` floor alone is not judged: the lockfile says what
is really installed. When an app directory has both a manifest and a lockfile for a package, the
lockfile wins. One ``sdk.outdated`` finding (warn) per package and file lists every known problem
and the exact upgrade command for the tool the file belongs to.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import ClassVar, Literal

import wsdoctor
from wsdoctor.check import Context, ObservingCheck, finding
from wsdoctor.model import CheckResult, Finding, JSONValue, Status
from wsdoctor.probes.sdk import Ecosystem, Pin, SdkObservation, Tool
from wsdoctor.record import Record

__all__ = [
    "CHECKS",
    "KNOWN_ISSUES_PATH",
    "KnownIssue",
    "Requirement",
    "SdkAppPins",
    "SdkInstalled",
    "analyze",
    "load_known_issues",
    "upgrade_command",
]

KNOWN_ISSUES_PATH = Path(wsdoctor.__file__).resolve().parent / "data" / "sdk_known_issues.json"
#: How long parsing an app directory may take before the check gives up (big monorepos).
SCAN_DEADLINE_S = 15.0

#: Whether a row's ``requires`` holds for a pin: "unknown" when the other package is not pinned.
RequirementMet = Literal["yes", "no", "unknown"]


@dataclass(frozen=True, slots=True)
class Requirement(Record):
    """A row applies only to apps that also have ``package`` in ``range`` (e.g. websockets>=14)."""

    package: str
    range: str


@dataclass(frozen=True, slots=True)
class KnownIssue(Record):
    """One row of ``sdk_known_issues.json``: a version range of a package with a known problem."""

    ecosystem: Ecosystem
    package: str
    affected: str  # comparisons joined by commas: ">=3.0.0,<3.2.2"
    fixed_in: str
    area: Literal["keepalive", "close", "proxy", "compatibility"]
    summary: str
    source: str  # the release note, issue, pull request or commit this row comes from
    release: str | None = None  # the tag that first shipped the fix
    requires: Requirement | None = None


@lru_cache(maxsize=1)
def _load(path: str) -> tuple[KnownIssue, ...]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    # Strict, like a recorded observation: a mistyped row is our bug and fails loudly.
    return tuple(KnownIssue.from_dict(row) for row in data["issues"])


def load_known_issues(path: Path | None = None) -> tuple[KnownIssue, ...]:
    """The known-problem table (rows: ecosystem, package, affected, fixed_in, area, summary, source)."""
    return _load(str(path or KNOWN_ISSUES_PATH))


_PRETTY = {("nuget", "deepgram"): "Deepgram"}


def _pretty(ecosystem: str, package: str) -> str:
    return _PRETTY.get((ecosystem, package), package)


def _display(version: str) -> str:
    return version[1:] if version[:1] in "vV" and version[1:2].isdigit() else version


def upgrade_command(ecosystem: str, package: str, version: str, tool: Tool | None) -> str:
    """The command that moves ``package`` to at least ``version`` with the tool that owns the pin."""
    v = _display(version)
    if ecosystem == "pypi":
        if tool == "poetry":
            return f"poetry add '{package}@>={v}'"
        if tool == "uv":
            return f"uv add '{package}>={v}'"
        return f"pip install -U '{package}>={v}'"
    if ecosystem == "npm":
        return f"npm install {package}@^{v}"
    if ecosystem == "go":
        return f"go get {package}@v{v} && go mod tidy"
    if ecosystem == "nuget":
        return (
            f"dotnet add package Deepgram --version {v}"
            if package == "deepgram"
            else f"dotnet add package {package} --version {v}"
        )
    return f"upgrade {package} to {v} or later"


def _folder(pin: Pin) -> str:
    return pin.file.rpartition("/")[0]


def _affected(pin: Pin, row: KnownIssue) -> bool:
    from wsdoctor.probes.sdk import in_range, version_key

    if pin.exact:
        return in_range(pin.exact, row.affected)
    if not pin.upper:
        return False  # a floor (or nothing): the fix is reachable; the lockfile decides
    fixed_key, upper_key = version_key(row.fixed_in), version_key(pin.upper)
    if fixed_key is None or upper_key is None or upper_key > fixed_key:
        return False  # the fixing release is allowed by the constraint
    # Capped below the fix: affected if the allowed range overlaps the bad one (its lower bound).
    lows = [p.strip()[2:] for p in row.affected.split(",") if p.strip().startswith(">=")]
    return not lows or (version_key(lows[0]) or ()) < upper_key


def _requirement_state(row: KnownIssue, pin: Pin, pins: Sequence[Pin]) -> RequirementMet:
    """For a row with ``requires``: "yes", "no", or "unknown" (the other package is not pinned)."""
    from wsdoctor.probes.sdk import in_range, normalize_name

    req = row.requires
    if req is None:
        return "yes"
    other = normalize_name(pin.ecosystem, req.package)
    folder = _folder(pin)
    candidates = [
        p.exact for p in pins if p.package == other and p.exact and (p.kind == "installed" or _folder(p) == folder)
    ]
    if not candidates:
        return "unknown"
    return "yes" if any(in_range(exact, req.range) for exact in candidates) else "no"


def analyze(obs: SdkObservation, issues: Sequence[KnownIssue] | None = None) -> list[Finding]:
    """Judge a :class:`~wsdoctor.probes.sdk.SdkObservation` against the known issues."""
    from wsdoctor.probes.sdk import version_key

    rows = list(issues if issues is not None else load_known_issues())
    pins = obs.pins
    # The lockfile is the truth: skip manifest pins of a package that a lockfile in the same folder pins.
    locked = {(p.ecosystem, p.package, _folder(p)) for p in pins if p.kind == "lock" and p.exact}
    findings = []
    for pin in pins:
        if pin.kind == "manifest" and (pin.ecosystem, pin.package, _folder(pin)) in locked:
            continue
        problems: list[tuple[KnownIssue, RequirementMet]] = []
        for row in rows:
            if row.ecosystem != pin.ecosystem or row.package.lower() != pin.package.lower():
                continue
            if not _affected(pin, row):
                continue
            state = _requirement_state(row, pin, pins)
            if state == "no":
                continue
            problems.append((row, state))
        if not problems:
            continue
        target = max((r.fixed_in for r, _ in problems), key=lambda v: version_key(v) or ())
        found = _display(pin.exact) if pin.exact else pin.spec
        areas = sorted({r.area for r, _ in problems})
        command = upgrade_command(pin.ecosystem, pin.package, target, pin.tool)
        what = "; ".join(
            f"{r.summary} (fixed in {_display(r.fixed_in)}"
            + (f", if {r.requires.package}{r.requires.range} is installed" if s == "unknown" and r.requires else "")
            + ")"
            for r, s in problems
        )
        problem_list: list[JSONValue] = [
            {
                "area": r.area,
                "summary": r.summary,
                "affected": r.affected,
                "fixed_in": r.fixed_in,
                "release": r.release,
                "source": r.source,
                "requires": r.requires.to_dict() if r.requires else None,
                "requirement_met": s,
            }
            for r, s in problems
        ]
        findings.append(
            finding(
                "sdk.outdated",
                Status.WARN,
                f"{_pretty(pin.ecosystem, pin.package)} {found} ({pin.file}) has known "
                f"{'/'.join(areas)} problems fixed in "
                f"{_display(target)}: {what}. Upgrade: {command}",
                {
                    "package": pin.package,
                    "ecosystem": pin.ecosystem,
                    "found": found,
                    "spec": pin.spec,
                    "where": pin.file,
                    "fixed_in": _display(target),
                    "upgrade": command,
                    "problems": problem_list,
                    "source": problems[0][0].source,
                },
            )
        )
    return findings


class _SdkCheck(ObservingCheck[SdkObservation]):
    """Both sdk checks judge the pins they read against the known issues, recorded as ``sdk``."""

    evidence_key = "sdk"

    def judge(self, obs: SdkObservation, ctx: Context) -> list[Finding]:
        return analyze(obs)


class SdkInstalled(_SdkCheck):
    id = "sdk.installed"
    title = "The installed Deepgram SDK / websockets / aiohttp have no known keepalive, close or proxy bugs"
    timeout: ClassVar[float] = 10.0

    async def observe(self, ctx: Context) -> SdkObservation | CheckResult:
        import asyncio

        from wsdoctor.probes.sdk import installed_pins

        return await asyncio.to_thread(installed_pins)

    def summarize(self, obs: SdkObservation, ctx: Context) -> str:
        found = ", ".join(f"{p.package} {p.exact}" for p in obs.pins) or "none of deepgram-sdk, websockets, aiohttp"
        return f"in this Python environment ({obs.root}): {found}"


class SdkAppPins(_SdkCheck):
    id = "sdk.app-pins"
    title = "The app's pinned SDK and WebSocket library versions have no known keepalive, close or proxy bugs"
    timeout: ClassVar[float] = SCAN_DEADLINE_S + 5.0

    async def observe(self, ctx: Context) -> SdkObservation | CheckResult:
        import asyncio

        from wsdoctor.probes.sdk import scan_app_dir

        if not ctx.options.app_dir:
            return self.skip("not applicable: no --app-dir given")
        try:
            obs = await asyncio.wait_for(asyncio.to_thread(scan_app_dir, ctx.options.app_dir), SCAN_DEADLINE_S)
        except TimeoutError:
            return self.skip(f"reading the app directory took longer than {SCAN_DEADLINE_S:g} s")
        if not obs.files:
            return self.skip(f"no manifest or lockfile found under {ctx.options.app_dir}", evidence=self.evidence(obs))
        return obs

    def summarize(self, obs: SdkObservation, ctx: Context) -> str:
        pins = ", ".join(sorted({f"{p.package} {_display(p.exact) if p.exact else p.spec}" for p in obs.pins}))
        summary = f"{len(obs.files)} file(s) read: {pins or 'no Deepgram SDK or WebSocket library pinned'}"
        if obs.errors:
            summary += f"; {len(obs.errors)} could not be parsed"
        return summary


CHECKS = (SdkInstalled, SdkAppPins)
