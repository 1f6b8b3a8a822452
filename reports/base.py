"""What a reporter is, and how one is found.

A reporter turns a :class:`~wsdoctor.model.Report` into text (terminal, JSON, HTML, JUnit...). It
never probes and never writes files: ``render()`` returns the whole document as a ``str`` and the
caller writes it (``wsdoctor.fileio.atomic_write_text``), so ``wsdoctor render report.json`` can
re-render any saved report with the same code path as a live run.

Built-in reporters come in through the same door as third-party ones: the ``wsdoctor.reporters``
entry-point group (``pyproject.toml``), looked up by :func:`load_reporter`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar, Protocol, runtime_checkable

from wsdoctor.errors import PluginError, UsageError
from wsdoctor.model import CheckResult, Report, Status

__all__ = ["ENTRY_POINT_GROUP", "Reporter", "load_reporter", "reporter_names", "rest_fallback_applies"]

#: Layers whose failure is the WebSocket's own trouble (the Upgrade through the path, streaming, idle
#: timeouts, the close handshake) -- where the article's Alternative, REST, sidesteps the problem.
#: Not dns/tcp/tls (REST shares them) nor ws (401/429 refuse REST alike).
_WEBSOCKET_LAYERS = frozenset({"http", "stream", "idle", "close"})


def rest_fallback_applies(results: Iterable[CheckResult]) -> bool:
    """Recommend REST for pre-recorded audio: REST worked where the WebSocket failed, or a check said
    so in its evidence. One rule for every reporter."""
    results = list(results)
    if any(f.evidence.get("rest_fallback") is True for r in results for f in r.findings):
        return True
    rest_ok = any(r.check_id.startswith("rest.") and r.status is Status.PASS for r in results)
    return rest_ok and any(r.layer in _WEBSOCKET_LAYERS and r.status is Status.FAIL for r in results)

ENTRY_POINT_GROUP = "wsdoctor.reporters"


@runtime_checkable
class Reporter(Protocol):
    """Renders a report to text. ``name`` is the entry-point name (``"json"``, ``"terminal"``)."""

    name: ClassVar[str]

    def render(self, report: Report) -> str:
        """The complete document. Pure: same report, same text; no I/O."""
        ...


def reporter_names() -> list[str]:
    """The names registered in the ``wsdoctor.reporters`` group, sorted."""
    from importlib.metadata import entry_points  # only commands that render pay for this

    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def load_reporter(name: str) -> type[Reporter]:
    """The reporter class registered under ``name``.

    Raises :class:`UsageError` for a name nobody registered (the user asked for it) and
    :class:`PluginError` when the registered object cannot be loaded, is ambiguous, or is not a
    reporter (the installation is broken, not the command line).
    """
    from importlib.metadata import entry_points

    found = entry_points(group=ENTRY_POINT_GROUP).select(name=name)
    targets = sorted({ep.value for ep in found})
    if not targets:
        known = ", ".join(reporter_names()) or "none installed"
        raise UsageError(f"unknown reporter {name!r} (available: {known})")
    if len(targets) > 1:
        raise PluginError(f"reporter {name!r} is registered more than once: {', '.join(targets)}")
    ep = next(iter(found))
    try:
        obj = ep.load()
    except Exception as exc:  # a plugin's import can fail in any way; report which one broke
        why = f"{type(exc).__name__}: {exc}"
        raise PluginError(f"reporter {name!r} ({ep.value}) failed to load: {why}") from exc
    if not isinstance(obj, type) or not callable(getattr(obj, "render", None)):
        raise PluginError(f"reporter {name!r} ({ep.value}) is not a class with a render() method")
    reporter: type[Reporter] = obj
    return reporter
