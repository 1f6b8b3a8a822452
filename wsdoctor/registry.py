"""Discovers checks and reporters the way a third party's are discovered: entry points.

Two groups, and no other way in: ``wsdoctor.checks`` (each entry point names a sequence of
:class:`~wsdoctor.check.Check` subclasses) and ``wsdoctor.reporters`` (each names one class with a
``render(report) -> str`` method, :class:`reports.base.Reporter`). Built-ins are declared in our own
``pyproject.toml`` under the same groups, so listing, ordering, ``--checks``/``--skip``,
``--report NAME=PATH`` and error handling treat a plugin's check or reporter exactly like ours
(pluggy's lesson: a private shortcut for built-ins lets the public path rot).

Failures differ by what was asked. A check plugin that fails to import does not take the run down:
it becomes one ``error`` result, named after the entry point. A reporter is loaded only when the
command line names it, before any probe runs: an unknown name is a :class:`UsageError` (exit 2)
listing the installed ones, and one that cannot be loaded is a :class:`PluginError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wsdoctor.check import Check
from wsdoctor.errors import PluginError, UsageError
from wsdoctor.model import LAYERS, layer_of

if TYPE_CHECKING:
    from reports.base import Reporter

__all__ = [
    "ENTRY_POINT_GROUP",
    "REPORTER_GROUP",
    "LoadedChecks",
    "load_checks",
    "load_reporter",
    "order_checks",
    "reporter_names",
]

ENTRY_POINT_GROUP = "wsdoctor.checks"
REPORTER_GROUP = "wsdoctor.reporters"


@dataclass(frozen=True, slots=True)
class LoadedChecks:
    checks: dict[str, type[Check]]
    broken: dict[str, str]  # entry-point name -> one-line reason it could not load


def _validate(cls: object, origin: str) -> type[Check]:
    if not (isinstance(cls, type) and issubclass(cls, Check)):
        raise PluginError(f"{origin}: {cls!r} is not a wsdoctor Check subclass")
    for attr in ("id", "title"):
        if not isinstance(getattr(cls, attr, None), str):
            raise PluginError(f"{origin}: {cls.__name__} has no {attr}")
    if "." not in cls.id:
        raise PluginError(f"{origin}: check id {cls.id!r} is not of the form family.name")
    return cls


def load_checks(group: str = ENTRY_POINT_GROUP) -> LoadedChecks:
    from importlib.metadata import entry_points  # only commands that need checks pay for this

    found: dict[str, type[Check]] = {}
    broken: dict[str, str] = {}
    seen_eps: set[tuple[str, str]] = set()
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        if (ep.name, ep.value) in seen_eps:  # the same distribution visible twice on sys.path
            continue
        seen_eps.add((ep.name, ep.value))
        try:
            loaded = ep.load()
            classes: Iterable[object] = loaded if isinstance(loaded, (list, tuple)) else (loaded,)
            for cls in classes:
                check = _validate(cls, f"entry point {ep.name!r}")
                prev = found.setdefault(check.id, check)
                if prev is not check:
                    raise PluginError(f"check id {check.id!r} is claimed by {prev.__module__} and {check.__module__}")
        except PluginError:
            raise
        except Exception as exc:  # a broken plugin is reported, not fatal
            broken[ep.name] = f"{type(exc).__name__}: {exc}"[:300]
    return LoadedChecks(checks=found, broken=broken)


def order_checks(checks: Iterable[type[Check]]) -> list[type[Check]]:
    """Display order: by layer (the order a connection is built); within a layer, the order the
    family declares its checks in (``CHECKS``), which the sort keeps because it is stable."""

    def key(c: type[Check]) -> int:
        layer = layer_of(c.id)
        return LAYERS.index(layer) if layer in LAYERS else len(LAYERS)

    return sorted(checks, key=key)


def reporter_names(group: str = REPORTER_GROUP) -> list[str]:
    """The names registered in the ``wsdoctor.reporters`` group, sorted."""
    from importlib.metadata import entry_points  # only commands that render pay for this

    return sorted({ep.name for ep in entry_points(group=group)})


def load_reporter(name: str, group: str = REPORTER_GROUP) -> type[Reporter]:
    """The reporter class registered under ``name``.

    Raises :class:`UsageError` for a name nobody registered (the user asked for it) and
    :class:`PluginError` when the registered object cannot be loaded, is ambiguous, or is not a
    reporter (the installation is broken, not the command line). The same distribution seen twice
    on ``sys.path`` (same name, same object) is one registration, as in :func:`load_checks`.
    """
    from importlib.metadata import entry_points

    found = entry_points(group=group).select(name=name)
    targets = sorted({ep.value for ep in found})
    if not targets:
        known = ", ".join(reporter_names(group)) or "none installed"
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
