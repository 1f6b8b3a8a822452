"""The JSON reporter: the machine-readable contract of a run.

Promises:

- The document is ``Report.to_dict()``, valid against ``reports/schema/report.schema.json``
  (``"schema": "wsdoctor.report/1"``), and ``Report.from_dict(json.loads(text)) == report`` for
  every report whose numbers are finite: it round-trips exactly.
- It is always *valid* JSON: a non-finite float (NaN, ±inf) anywhere in the tree -- typically a
  metric or evidence value computed from a missing timing -- is written as ``null``, never as the
  ``NaN`` token that ``json.dumps`` emits by default and strict parsers reject.
- It is safe to ``cat``: characters a terminal could act on (C1 controls, DEL, bidi overrides, line
  and paragraph separators) and lone surrogates are written as ``\\uXXXX`` escapes. JSON already
  escapes C0 controls; everything else non-ASCII stays readable (``ensure_ascii=False``). The
  escapes decode to the very same string, so this costs nothing in fidelity.
- UTF-8 encodable: a lone surrogate (from bytes decoded with ``surrogateescape``) is escaped rather
  than breaking the write.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any, ClassVar

from wsdoctor.model import JSONValue, Report

__all__ = ["SCHEMA_RESOURCE", "JsonReporter", "finite", "load_schema"]

#: Where the schema lives inside the ``reports`` package (shipped as package data).
SCHEMA_RESOURCE = ("schema", "report.schema.json")

# Outside JSON's own escapes: C1 controls + DEL, bidi embeddings/overrides/isolates, LS/PS (which
# some JavaScript and terminals treat as line breaks), and lone surrogates (not UTF-8 encodable).
# In json.dumps output these can only occur inside string literals, so escaping them is lossless.
_TERMINAL_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None``, recursively.

    Mappings become dicts and tuples/lists become lists (as ``json.dumps`` would write them);
    anything else is returned as is.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def load_schema() -> dict[str, JSONValue]:
    """The JSON Schema (draft 2020-12) that every rendered report satisfies."""
    text = resources.files("reports").joinpath(*SCHEMA_RESOURCE).read_text(encoding="utf-8")
    schema: dict[str, JSONValue] = json.loads(text)
    return schema


class JsonReporter:
    """Renders ``Report.to_dict()`` as indented, strictly valid, terminal-safe JSON."""

    name: ClassVar[str] = "json"

    def render(self, report: Report) -> str:
        data = finite(report.to_dict())
        text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False)
        return _TERMINAL_UNSAFE.sub(_escape, text) + "\n"
