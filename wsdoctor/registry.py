"""Discovers checks the way a third party's are discovered: entry-point group ``wsdoctor.checks``.

Built-ins are declared in our own ``pyproject.toml`` under the same group, so listing, ordering,
``--checks``/``--skip`` and error handling treat a plugin's check exactly like ours (pluggy's
lesson: a private shortcut for built-ins lets the public path rot). Each entry point names a
sequence of :class:`~wsdoctor.check.Check` subclasses. A plugin that fails to import does not take
the run down: it becomes one ``error`` result, named after the entry point.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from wsdoctor.check import Check
from wsdoctor.errors import PluginError
from wsdoctor.model import LAYERS, layer_of

__all__ = ["ENTRY_POINT_GROUP", "LoadedChecks", "load_checks", "order_checks"]

ENTRY_POINT_GROUP = "wsdoctor.checks"


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
