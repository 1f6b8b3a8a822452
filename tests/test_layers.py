"""The layering rules, read from the source: no import cycle among the probes (counting imports
inside functions, which hide cycles from Python), one way to open a connection, one copy of the
socket helpers, and the direction core <- probes <- checks <- reporters."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBES = ROOT / "wsdoctor" / "probes"


def _imports(path: Path) -> set[str]:
    """Every ``wsdoctor...``/``checks...``/``reports...`` module ``path`` imports, anywhere in it
    (type-checking-only imports excluded: they never run)."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for child in node.body for n in ast.walk(child))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m.split(".")[0] in ("wsdoctor", "checks", "reports")}


def _probe_graph() -> dict[str, set[str]]:
    modules = {f"wsdoctor.probes.{p.stem}" for p in PROBES.glob("*.py") if p.stem != "__init__"}
    return {
        f"wsdoctor.probes.{p.stem}": {m for m in _imports(p) if m in modules}
        for p in PROBES.glob("*.py")
        if p.stem != "__init__"
    }


def test_no_import_cycle_among_the_probes() -> None:
    graph = _probe_graph()
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            raise AssertionError(" -> ".join([*path[path.index(node) :], node]))
        if node in done:
            return
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, [*path, node])
        done.add(node)

    for module in sorted(graph):
        visit(module, [])
    assert "wsdoctor.probes.connect" in graph["wsdoctor.probes.wsclient"]


def _calls(path: Path, name: str) -> list[int]:
    tree = ast.parse(path.read_text())
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Attribute) and node.func.attr == name)
            or (isinstance(node.func, ast.Name) and node.func.id == name)
        )
    ]


def test_one_way_to_open_a_connection() -> None:
    """Only the connection factory opens sockets (and the proxy's CONNECT, one of its steps); the
    tunnel is opened only by the factory. Checks and the engine never open one themselves."""
    sources = [*PROBES.glob("*.py"), *(ROOT / "checks").glob("*.py"), *(ROOT / "wsdoctor").glob("*.py")]
    openers = {
        p.relative_to(ROOT).as_posix() for p in sources if _calls(p, "open_connection") and "asyncio" in p.read_text()
    }
    direct = {
        p.relative_to(ROOT).as_posix()
        for p in sources
        if any("asyncio.open_connection" in line for line in p.read_text().splitlines())
    }
    assert direct <= {"wsdoctor/probes/connect.py", "wsdoctor/probes/proxy.py"}, direct
    tunnels = {p.relative_to(ROOT).as_posix() for p in sources if _calls(p, "open_tunnel")}
    assert tunnels == {"wsdoctor/probes/connect.py"}, tunnels
    assert "wsdoctor/probes/connect.py" in openers
    assert not any("aiohttp" in p.read_text() and "import aiohttp" in p.read_text() for p in PROBES.glob("*.py"))


def test_each_socket_helper_is_written_once() -> None:
    defined: dict[str, list[str]] = {}
    for path in [*ROOT.joinpath("wsdoctor").rglob("*.py"), *ROOT.joinpath("checks").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.lstrip("_") in (
                "is_ip",
                "is_ip_address",
                "classify_oserror",
                "describe_oserror",
                "error_text",
                "tls_context",
                "resolve_host",
            ):
                name = node.name.lstrip("_").removesuffix("_address")  # is_ip and is_ip_address: one job
                defined.setdefault(name, []).append(path.relative_to(ROOT).as_posix())
    assert {name: len(where) for name, where in defined.items()} == dict.fromkeys(defined, 1), defined


def test_layers_point_one_way() -> None:
    """The core (model, check, errors) imports no probe, check or reporter; probes import no check
    or reporter; checks import no reporter."""
    core = [ROOT / "wsdoctor" / f"{m}.py" for m in ("model", "check", "errors", "causes", "deepgram")]
    for path in core:
        bad = {m for m in _imports(path) if m.startswith(("wsdoctor.probes", "checks", "reports"))}
        assert not bad, (path.name, bad)
    for path in PROBES.glob("*.py"):
        bad = {m for m in _imports(path) if m.startswith(("checks", "reports"))}
        assert not bad, (path.name, bad)
    for path in (ROOT / "checks").glob("*.py"):
        bad = {m for m in _imports(path) if m.startswith("reports")}
        assert not bad, (path.name, bad)
