"""Typed records to and from JSON: the one way an observation becomes its report form and back.

Theory of operation. A probe's observation is a frozen dataclass; its ``to_dict()`` is what a report's
evidence and a recorded fixture hold. :func:`from_json` is the way back, for every observation
class, driven by the dataclass's own fields and type hints -- so the analyzers, which take typed
observations, can be tested on recorded fixtures, and a fixture that drifts from the type fails
loudly instead of being judged half-read:

- an unknown key is an error (a renamed field shows up as one), except ``_note`` (a fixture's
  comment) and the keys the class declares as ``derived`` (written for readers, recomputed);
- a missing key takes the field's default, or is an error when the field has none;
- values are checked against the hints: ``int``/``float``/``str``/``bool``, ``X | None``,
  ``tuple[X, ...]``, ``list[X]``, ``dict[str, X]``, ``Literal[...]``, nested observation dataclasses
  (their own ``from_dict``), enums (by value), and JSON blobs (``JSONValue``/``Any``) passed through
  as data.

:class:`Record` gives an observation dataclass both directions from its fields: ``to_dict()``
writes every field in order (enums by value, tuples as lists, nested records by their own
``to_dict``), leaves out the fields named in ``_SPARSE`` while they hold their default (a wire
event's ``size`` 0, a DNS record's absent ``error``), and adds the ``_DERIVED`` properties for
readers; ``from_dict()`` is :func:`from_json` knowing those. A class whose report form is not its
fields (a key's shape, one written conditionally) overrides ``to_dict`` and says why.

Stdlib only; nothing here does I/O.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import types
import typing
from collections.abc import Collection, Mapping, Sequence
from typing import Any, ClassVar, Self, TypeVar, Union

__all__ = ["FixtureError", "JSONValue", "Record", "from_json", "to_json"]

# Sequence/Mapping (covariant) rather than list/dict, so a list[dict[str, JSONValue]] is a JSONValue.
JSONValue = Union[None, bool, int, float, str, Sequence["JSONValue"], Mapping[str, "JSONValue"]]

T = TypeVar("T")


class Record:
    """Base of the observation dataclasses: ``to_dict``/``from_dict`` from the fields (module doc)."""

    __slots__ = ()
    #: fields written only while they differ from their default
    _SPARSE: ClassVar[frozenset[str]] = frozenset()
    #: properties written after the fields, for readers; recomputed, so skipped when read back
    _DERIVED: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, JSONValue]:
        return to_json(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        return from_json(cls, d, derived=cls._DERIVED)


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def to_json(obj: Any) -> dict[str, JSONValue]:
    """A :class:`Record` (any dataclass) as its report form: see the module docstring."""
    sparse: frozenset[str] = getattr(obj, "_SPARSE", frozenset())
    out: dict[str, JSONValue] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.name in sparse and value == _default(f):
            continue
        out[f.name] = _encode(value)
    for name in getattr(obj, "_DERIVED", ()):
        out[name] = _encode(getattr(obj, name))
    return out


def _encode(value: Any) -> JSONValue:
    if isinstance(value, enum.Enum):
        encoded: JSONValue = value.value
        return encoded
    to_dict = getattr(value, "to_dict", None)
    if to_dict is not None and dataclasses.is_dataclass(value):
        result: JSONValue = to_dict()
        return result
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    plain: JSONValue = value
    return plain


class FixtureError(ValueError):
    """A recorded observation does not match its type (a renamed, missing or mistyped field)."""


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def from_json(cls: type[T], data: Mapping[str, Any], *, derived: Collection[str] = ()) -> T:
    """``cls`` rebuilt from its ``to_dict()`` form, strictly (see the module docstring)."""
    if not isinstance(data, Mapping):
        raise FixtureError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - set(fields) - set(derived) - {"_note"}
    if unknown:
        raise FixtureError(f"{cls.__name__}: unknown field(s) {sorted(unknown)} (renamed? not of this type?)")
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        if name not in data:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise FixtureError(f"{cls.__name__}: missing field {name!r}")
            continue
        kwargs[name] = _convert(hints[name], data[name], f"{cls.__name__}.{name}")
    return cls(**kwargs)


def _convert(hint: Any, value: Any, where: str) -> Any:
    if hint is Any or hint is object or hint == JSONValue:
        return value  # data, as recorded
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, where)
            except FixtureError as exc:
                errors.append(str(exc))
        raise FixtureError(errors[0] if len(errors) == 1 else f"{where}: {value!r:.60} fits none of {hint}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise FixtureError(f"{where}: expected a list, got {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise FixtureError(f"{where}: expected {len(args)} items, got {len(value)}")
        return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if origin is typing.Literal:
        if value in args:
            return value
        raise FixtureError(f"{where}: {value!r:.60} is not one of {list(args)}")
    if origin in (dict, collections.abc.Mapping) or hint in (dict, collections.abc.Mapping):
        if not isinstance(value, Mapping):
            raise FixtureError(f"{where}: expected an object, got {type(value).__name__}")
        item = args[1] if len(args) == 2 else Any
        return {str(k): _convert(item, v, f"{where}[{k!r}]") for k, v in value.items()}
    if origin in (list, collections.abc.Sequence) or hint is list:
        if not isinstance(value, list | tuple):
            raise FixtureError(f"{where}: expected a list, got {type(value).__name__}")
        item = args[0] if args else Any
        return [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            raise FixtureError(f"{where}: {value!r:.60} is not a {hint.__name__}") from None
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        parse = getattr(hint, "from_dict", None)
        return parse(value) if parse is not None else from_json(hint, value)
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise FixtureError(f"{where}: expected a number, got {type(value).__name__}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise FixtureError(f"{where}: expected an integer, got {type(value).__name__}")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise FixtureError(f"{where}: expected true/false, got {type(value).__name__}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise FixtureError(f"{where}: expected a string, got {type(value).__name__}")
    # JSONValue and other aliases that are unions of JSON types resolve above; anything else is data
    return value
