"""Probe of SDK and library versions, offline: what this environment has installed, and what an
app directory pins.

Theory of operation. Nothing here touches the network. :func:`installed_pins` asks
``importlib.metadata`` for the versions of the packages we watch in *this* Python environment.
:func:`scan_app_dir` walks an application directory (bounded depth and file count, skipping
``node_modules``, virtualenvs and build output) and parses the manifests and lockfiles it finds:

==========================  ===========  ==================================================
file                        ecosystem    parser
==========================  ===========  ==================================================
requirements*.txt           pypi         PEP 508 lines (``==``, ``>=``, ``~=``, ``==X.*``...)
pyproject.toml              pypi         tomllib: [project], [dependency-groups], Poetry
poetry.lock, uv.lock        pypi         tomllib: ``[[package]]`` name/version (exact)
package.json                npm          JSON: (dev/optional/peer)dependencies ranges
package-lock.json           npm          JSON: v1 ``dependencies`` / v2+ ``packages`` (exact)
go.mod                      go           regex over ``require`` lines (exact)
*.csproj, Directory.*.props nuget        xml.etree: PackageReference / PackageVersion
==========================  ===========  ==================================================

Each declaration becomes a :class:`Pin`: the text as written plus what it means for versions
(``exact``, or a ``lower`` bound and an exclusive ``upper`` bound). A lockfile's exact version is
the truth; a manifest range only says which versions are *reachable*. Judging pins against the
known-issues table is the job of ``checks/sdk.py``; parsing problems are recorded per file as one
line, never raised.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from wsdoctor.record import Record

__all__ = [
    "WATCHED",
    "Constraint",
    "Ecosystem",
    "Pin",
    "PinKind",
    "SdkObservation",
    "Tool",
    "constraint",
    "in_range",
    "installed_pins",
    "normalize_name",
    "parse_file",
    "scan_app_dir",
    "version_key",
]

#: The package ecosystems we read: PyPI, npm, Go modules, NuGet.
Ecosystem = Literal["pypi", "npm", "go", "nuget"]
#: Where a pin comes from: this interpreter's environment, a lockfile (exact), or a manifest (a range).
PinKind = Literal["installed", "lock", "manifest"]
#: The tool that owns a pin's file (and so the upgrade command to give).
Tool = Literal["pip", "poetry", "uv", "npm", "go", "dotnet"]

#: The packages whose versions we read, per ecosystem (names normalised).
WATCHED: dict[Ecosystem, frozenset[str]] = {
    "pypi": frozenset({"deepgram-sdk", "websockets", "aiohttp"}),
    "npm": frozenset({"@deepgram/sdk", "ws"}),
    "go": frozenset({"github.com/deepgram/deepgram-go-sdk", "github.com/gorilla/websocket"}),
    "nuget": frozenset({"deepgram"}),
}
SKIP_DIRS = frozenset(
    {
        "node_modules",
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        "env",
        ".env",
        "__pycache__",
        "site-packages",
        ".tox",
        ".nox",
        "dist",
        "build",
        "bin",
        "obj",
        "vendor",
        "target",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
    }
)
MAX_DEPTH = 4
MAX_ENTRIES = 5000  # directory entries visited before the walk stops
MAX_MANIFEST_BYTES = 20 * 1024 * 1024  # package-lock.json files of big apps run to several MB
_LOCKFILES = {"poetry.lock", "uv.lock", "package-lock.json", "npm-shrinkwrap.json"}


def normalize_name(ecosystem: str, name: str) -> str:
    name = name.strip()
    if ecosystem == "pypi":
        return re.sub(r"[-_.]+", "-", name).lower()
    if ecosystem in ("npm", "nuget"):
        return name.lower()
    return name


# -- versions -------------------------------------------------------------------------------------

_VERSION_RE = re.compile(r"^\s*[vV]?(\d+(?:\.\d+)*)(.*)$")


def version_key(text: str) -> tuple[Any, ...] | None:
    """A sortable key for a version string (PEP 440 and semver alike); None if it is not one.

    ``3.2`` equals ``3.2.0``; pre-releases (``3.0.0-rc.1``, ``4.0.0b2``, ``1.0.dev3``) sort before
    the final release, post-releases after; build metadata (``+...``) is ignored.
    """
    m = _VERSION_RE.match(text)
    if not m:
        return None
    release = [int(x) for x in m.group(1).split(".")]
    release += [0] * (4 - len(release))
    rest = m.group(2).split("+", 1)[0].strip().lstrip("-._").lower()
    if rest.startswith("incompatible"):
        rest = ""
    if not rest:
        return (tuple(release), 1, ())
    parts = tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-_]+|(?<=\D)(?=\d)", rest) if p)
    if rest.startswith(("post", "rev", "r")) and not rest.startswith("rc"):
        return (tuple(release), 2, parts)
    return (tuple(release), 0, parts)


def _bump(text: str, index: int) -> str:
    """``_bump("1.4.2", 1)`` -> ``"1.5.0"``: the exclusive upper bound of a ~/^ range."""
    m = _VERSION_RE.match(text)
    nums = [int(x) for x in (m.group(1) if m else "0").split(".")]
    nums += [0] * (index + 1 - len(nums))
    nums = nums[: index + 1]
    nums[index] += 1
    return ".".join(str(n) for n in nums + [0] * max(0, 2 - index))


_OP_RE = re.compile(r"^\s*(===|==|!=|~=|<=|>=|<|>|\^|~|=)?\s*([^\s,]+)\s*$")


def in_range(version: str, spec: str) -> bool:
    """Whether ``version`` satisfies ``spec`` (comparisons joined by commas, e.g. ``>=3.0,<3.2.2``)."""
    key = version_key(version)
    if key is None:
        return False
    for part in (p for p in spec.split(",") if p.strip()):
        m = _OP_RE.match(part)
        if not m:
            return False
        op, bound = m.group(1) or "==", version_key(m.group(2))
        if bound is None:
            return False
        ok = {
            "<": key < bound,
            "<=": key <= bound,
            ">": key > bound,
            ">=": key >= bound,
            "==": key == bound,
            "===": key == bound,
            "=": key == bound,
            "!=": key != bound,
        }.get(op)
        if not ok:
            return False
    return True


@dataclass(frozen=True, slots=True)
class Constraint:
    """What a declared requirement allows: one exact version, or [lower, upper)."""

    exact: str | None = None
    lower: str | None = None
    upper: str | None = None  # exclusive

    @property
    def known(self) -> bool:
        return self.exact is not None or self.lower is not None or self.upper is not None


def _tighter_upper(a: str | None, b: str) -> str:
    if a is None:
        return b
    ka, kb = version_key(a), version_key(b)
    return b if ka is not None and kb is not None and kb < ka else a


def constraint(spec: str, style: str) -> Constraint:
    """Read a version requirement as written in ``style``: pep440, poetry, npm, go, nuget, lock."""
    spec = spec.strip()
    if not spec or spec in ("*", "latest", "x") or style == "unknown":
        return Constraint()
    if style in ("lock", "go"):
        return Constraint(exact=spec) if version_key(spec) else Constraint()
    if style == "nuget":
        if spec.startswith("[") and spec.endswith("]") and "," not in spec:
            return Constraint(exact=spec[1:-1])
        if spec.startswith(("[", "(")):
            lo, _, hi = spec[1:-1].partition(",")
            top = hi.strip() if hi.strip() and spec.endswith(")") else (_bump(hi, 3) if hi.strip() else None)
            return Constraint(lower=lo.strip() or None, upper=top)
        if spec.endswith("*"):
            base = spec.rstrip("*.")
            return Constraint(lower=base or None, upper=_bump(base, base.count(".")) if base else None)
        # NuGet restores the lowest version that satisfies a bare minimum: in practice, that one.
        return Constraint(exact=spec) if version_key(spec) else Constraint()
    if style == "npm":
        if "||" in spec or ":" in spec or "/" in spec:
            return Constraint()  # alternatives, git/file/npm: aliases: not judged
        spec = re.sub(r"(>=|<=|>|<|=)\s+", r"\1", spec)  # ">= 1.2" -> ">=1.2"
        parts = spec.split()
    else:
        parts = [p for p in spec.split(",") if p.strip()]
    lower: str | None = None
    upper: str | None = None
    exact: str | None = None
    for part in parts:
        m = _OP_RE.match(part)
        if not m:
            return Constraint()
        op, ver = m.group(1), m.group(2).rstrip(".")
        wildcard = ver.endswith((".*", ".x", ".X"))
        base = re.sub(r"(\.[*xX])+$", "", ver)
        if version_key(base) is None:
            return Constraint()
        depth = base.count(".")
        if op in (None, "=", "==", "===") and not wildcard:
            if style == "pep440" and op is None:
                return Constraint()
            if style == "npm" and op is None and depth < 2:  # "1.2" in npm means 1.2.x
                lower, upper = base, _tighter_upper(upper, _bump(base, depth))
                continue
            exact = base
        elif op in (None, "=", "==") and wildcard:
            lower, upper = base, _tighter_upper(upper, _bump(base, depth))
        elif op == "^":
            nums = [int(x) for x in base.split(".")] + [0, 0, 0]
            index = next((i for i, n in enumerate(nums[:3]) if n != 0), min(depth, 2))
            lower, upper = base, _tighter_upper(upper, _bump(base, index))
        elif op == "~" or op == "~=":
            index = max(0, depth - 1) if op == "~=" else min(depth, 1)
            if op == "~" and depth == 0:
                index = 0
            lower, upper = base, _tighter_upper(upper, _bump(base, index))
        elif op in (">=", ">"):
            lower = base
        elif op == "<":
            upper = _tighter_upper(upper, base)
        elif op == "<=":
            upper = _tighter_upper(upper, _bump(base, 3))
        # "!=" excludes one version: it does not change what is reachable
    if exact is not None:
        return Constraint(exact=exact)
    return Constraint(lower=lower, upper=upper)


# -- pins -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pin(Record):
    """One declaration of a watched package: where, as written, and what it allows."""

    ecosystem: Ecosystem
    package: str  # normalised (normalize_name)
    spec: str  # as written ("==3.1.0", "^2.2.0", "v1.1.0", "installed")
    file: str  # relative to the app dir, or "installed: <python prefix>"
    kind: PinKind
    exact: str | None = None
    lower: str | None = None
    upper: str | None = None
    tool: Tool | None = None


def _pin(ecosystem: Ecosystem, name: str, spec: str, style: str, file: str, kind: PinKind, tool: Tool) -> Pin | None:
    package = normalize_name(ecosystem, name)
    if package not in WATCHED[ecosystem]:
        return None
    c = constraint(spec, style)
    return Pin(ecosystem, package, spec.strip() or "*", file, kind, c.exact, c.lower, c.upper, tool)


@dataclass(frozen=True, slots=True)
class SdkObservation(Record):
    source: Literal["installed", "app-dir"]  # this Python environment, or ``--app-dir``
    root: str | None
    pins: tuple[Pin, ...]
    files: tuple[str, ...] = ()  # manifests and lockfiles read
    errors: tuple[str, ...] = ()  # one line per file that could not be parsed
    truncated: bool = False  # the walk hit MAX_ENTRIES


def installed_pins() -> SdkObservation:
    """The watched Python packages installed in this interpreter's environment."""
    import sys
    from importlib.metadata import PackageNotFoundError, version

    where = f"installed: {sys.prefix}"
    pins = []
    for name in sorted(WATCHED["pypi"]):
        try:
            ver = version(name)
        except PackageNotFoundError:
            continue
        pins.append(Pin("pypi", name, ver, where, "installed", exact=ver, tool="pip"))
    return SdkObservation(source="installed", root=sys.prefix, pins=tuple(pins))


# -- parsers --------------------------------------------------------------------------------------

_REQ_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$")


def _pep508(line: str) -> tuple[str, str] | None:
    """``'deepgram-sdk[extra]>=3,<4 ; python_version>"3.8"'`` -> ``("deepgram-sdk", ">=3,<4")``."""
    line = line.split(";", 1)[0].strip()
    m = _REQ_RE.match(line)
    if not m:
        return None
    rest = m.group(3).strip()
    if rest.startswith("@"):
        return m.group(1), ""  # direct URL reference: no version to judge
    if rest.startswith("(") and rest.endswith(")"):
        rest = rest[1:-1]
    return m.group(1), rest.replace(" ", "")


def _requirements(text: str, file: str) -> Iterator[Pin]:
    joined = re.sub(r"\\\r?\n", " ", text)
    for raw in joined.splitlines():
        line = re.split(r"\s+#", raw, maxsplit=1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        line = re.split(r"\s--", line, maxsplit=1)[0]  # trailing --hash=... options
        parsed = _pep508(line)
        if parsed:
            pin = _pin("pypi", parsed[0], parsed[1], "pep440", file, "manifest", "pip")
            if pin:
                yield pin


def _pyproject(text: str, file: str) -> Iterator[Pin]:
    import tomllib

    data = tomllib.loads(text)
    project = data.get("project") or {}
    strings: list[str] = list(project.get("dependencies") or [])
    for group in (project.get("optional-dependencies") or {}).values():
        strings.extend(group or [])
    for group in (data.get("dependency-groups") or {}).values():
        strings.extend(s for s in group or [] if isinstance(s, str))
    tool: Tool = "uv" if "uv" in (data.get("tool") or {}) else "pip"
    for s in strings:
        parsed = _pep508(str(s))
        if parsed:
            pin = _pin("pypi", parsed[0], parsed[1], "pep440", file, "manifest", tool)
            if pin:
                yield pin
    poetry = (data.get("tool") or {}).get("poetry") or {}
    tables = [poetry.get("dependencies") or {}, poetry.get("dev-dependencies") or {}]
    tables += [(g or {}).get("dependencies") or {} for g in (poetry.get("group") or {}).values()]
    for table in tables:
        for name, value in table.items():
            spec = value.get("version", "") if isinstance(value, dict) else value if isinstance(value, str) else ""
            pin = _pin("pypi", name, str(spec), "poetry", file, "manifest", "poetry")
            if pin:
                yield pin


def _toml_lock(text: str, file: str, tool: Tool) -> Iterator[Pin]:
    import tomllib

    for pkg in tomllib.loads(text).get("package") or []:
        if isinstance(pkg, dict) and isinstance(pkg.get("name"), str) and isinstance(pkg.get("version"), str):
            pin = _pin("pypi", pkg["name"], pkg["version"], "lock", file, "lock", tool)
            if pin:
                yield pin


def _package_json(text: str, file: str) -> Iterator[Pin]:
    data = json.loads(text)
    for section in ("dependencies", "devDependencies", "optionalDependencies", "peerDependencies"):
        for name, spec in (data.get(section) or {}).items():
            if isinstance(spec, str):
                pin = _pin("npm", name, spec, "npm", file, "manifest", "npm")
                if pin:
                    yield pin


def _package_lock(text: str, file: str) -> Iterator[Pin]:
    data = json.loads(text)
    seen: set[tuple[str, str]] = set()
    packages = data.get("packages")
    if isinstance(packages, dict):
        for key, meta in packages.items():
            if not key or not isinstance(meta, dict) or not isinstance(meta.get("version"), str):
                continue
            # Top-level packages, and the ones nested under the Deepgram SDK (what it really runs
            # with); a ws deep inside some dev tool is not the app's WebSocket.
            parts = key.split("node_modules/")
            name = parts[-1].rstrip("/")
            parents = [p.rstrip("/") for p in parts[1:-1]]
            if parents and parents != ["@deepgram/sdk"]:
                continue
            if (name, meta["version"]) not in seen:
                seen.add((name, meta["version"]))
                pin = _pin("npm", name, meta["version"], "lock", file, "lock", "npm")
                if pin:
                    yield pin
        return
    for name, meta in (data.get("dependencies") or {}).items():  # lockfileVersion 1
        if isinstance(meta, dict) and isinstance(meta.get("version"), str):
            pin = _pin("npm", name, meta["version"], "lock", file, "lock", "npm")
            if pin:
                yield pin


_GO_REQUIRE = re.compile(r"^\s*(?:require\s+)?([A-Za-z0-9.\-_~/]+)\s+(v[0-9][^\s]*)", re.M)


def _go_mod(text: str, file: str) -> Iterator[Pin]:
    in_block = False
    for raw in text.splitlines():
        line = raw.split("//", 1)[0].strip()
        if line.startswith("require ("):
            in_block = True
            continue
        if in_block and line == ")":
            in_block = False
            continue
        if not (in_block or line.startswith("require ")):
            continue
        m = _GO_REQUIRE.match(line)
        if m:
            pin = _pin("go", m.group(1), m.group(2), "go", file, "lock", "go")
            if pin:
                yield pin


def _msbuild(text: str, file: str) -> Iterator[Pin]:
    # Project files are ours to read but not ours to trust: no DTDs, no entities (billion laughs).
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise ValueError("DOCTYPE/ENTITY declarations are not accepted")
    import xml.etree.ElementTree as ET  # DOCTYPE/ENTITY refused above, size bounded

    root = ET.fromstring(text)  # noqa: S314 - see above
    for el in root.iter():
        tag = el.tag.rsplit("}", 1)[-1]
        if tag not in ("PackageReference", "PackageVersion"):
            continue
        name = el.get("Include") or el.get("Update")
        version = el.get("Version") or el.get("VersionOverride")
        if version is None:
            child = next((c for c in el if c.tag.rsplit("}", 1)[-1] == "Version"), None)
            version = child.text if child is not None else None
        if name and version:
            pin = _pin("nuget", name, version.strip(), "nuget", file, "manifest", "dotnet")
            if pin:
                yield pin


def _parser_for(name: str) -> Callable[[str, str], Iterator[Pin]] | None:
    lower = name.lower()
    if lower.startswith("requirements") and lower.endswith(".txt"):
        return _requirements
    if lower == "pyproject.toml":
        return _pyproject
    if lower == "poetry.lock":
        return lambda text, file: _toml_lock(text, file, "poetry")
    if lower == "uv.lock":
        return lambda text, file: _toml_lock(text, file, "uv")
    if lower == "package.json":
        return _package_json
    if lower in ("package-lock.json", "npm-shrinkwrap.json"):
        return _package_lock
    if lower == "go.mod":
        return _go_mod
    if lower.endswith((".csproj", ".fsproj", ".vbproj")) or lower in (
        "directory.packages.props",
        "directory.build.props",
    ):
        return _msbuild
    return None


def parse_file(path: Path, rel: str) -> list[Pin]:
    """Pins of the watched packages declared in one manifest/lockfile. Raises ValueError/OSError."""
    parser = _parser_for(path.name)
    if parser is None:
        return []
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise ValueError(f"larger than {MAX_MANIFEST_BYTES // (1024 * 1024)} MiB")
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    pins: list[Pin] = list(parser(text, rel))
    return pins


def _walk(root: Path) -> Iterator[tuple[Path, bool]]:
    """(manifest path, truncated flag) for the files we can parse, bounded in depth and entries."""
    visited = 0
    stack: list[tuple[Path, int]] = [(root, 0)]
    while stack:
        directory, depth = stack.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            visited += 1
            if visited > MAX_ENTRIES:
                yield Path(), True
                return
            if entry.is_dir(follow_symlinks=False):
                if depth < MAX_DEPTH and entry.name not in SKIP_DIRS and not entry.name.startswith("."):
                    stack.append((Path(entry.path), depth + 1))
            elif entry.is_file() and _parser_for(entry.name) is not None:
                yield Path(entry.path), False


def scan_app_dir(root: str | os.PathLike[str]) -> SdkObservation:
    """Parse every manifest/lockfile under ``root`` (bounded walk) into pins of watched packages."""
    base = Path(root)
    pins: list[Pin] = []
    files: list[str] = []
    errors: list[str] = []
    truncated = False
    for path, cut in _walk(base):
        if cut:
            truncated = True
            break
        rel = path.relative_to(base).as_posix()
        files.append(rel)
        try:
            pins.extend(parse_file(path, rel))
        except (OSError, ValueError, UnicodeError, RecursionError) as exc:
            errors.append(f"{rel}: {type(exc).__name__}: {str(exc)[:200]}")
        except Exception as exc:  # tomllib/ElementTree raise their own subclasses of these, mostly
            errors.append(f"{rel}: {type(exc).__name__}: {str(exc)[:200]}")
    return SdkObservation(
        source="app-dir",
        root=str(base),
        pins=tuple(pins),
        files=tuple(files),
        errors=tuple(errors),
        truncated=truncated,
    )
