"""Evidence as reporters show it: one spelling of an evidence value for every reporter.

A finding's evidence is free-form JSON. The terminal, HTML and JUnit reporters each show its first
items as ``key = value`` lines; :func:`evidence_value` decides how a value reads, the same in all of
them, and :func:`evidence_items` which items are shown. Both return raw text: making it safe for
the medium (control characters, markup, XML) and bounding it stays each reporter's job.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

from reports.json import finite
from wsdoctor.model import JSONValue

__all__ = ["evidence_items", "evidence_value"]


def evidence_value(value: JSONValue) -> str:
    """A string as it is; a number with 4 significant digits (a dash when it is not finite); ``true``,
    ``false``, ``null`` and lists and objects as compact JSON, non-finite numbers inside as ``null``."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else "—"
    try:
        return json.dumps(finite(value), ensure_ascii=False, separators=(",", ":"), default=str)
    except (ValueError, TypeError, RecursionError):  # a circular structure: only a buggy check makes one
        return "…"


def evidence_items(evidence: Mapping[str, JSONValue], most: int) -> tuple[list[tuple[str, str]], int]:
    """The first ``most`` items of ``evidence`` as ``(key, value text)``, and how many are left out."""
    items = list(evidence.items())
    return [(str(k), evidence_value(v)) for k, v in items[:most]], max(0, len(items) - most)
