"""Bounds on what a result may carry into a report: evidence is capped, and what was dropped is counted.

A hostile or broken peer decides how much it sends -- a flood of messages, a megabyte close-reason
excerpt, JSON nested thousands deep -- and a report must stay small enough to attach to a ticket,
render and load (the JSON report stays under 5 MB whatever the peer did). Probes already bound what
they keep (events per connection, bytes per excerpt); this is the last net, applied by the runner to
every result before it leaves, beside redaction:

- a string longer than :data:`MAX_STRING` keeps its start and says how much was cut;
- a list longer than :data:`MAX_ITEMS` keeps its first and last items (the end of a connection is
  at the end of its events) with ``{"_dropped": N}`` in between;
- a mapping with more than :data:`MAX_ITEMS` keys keeps the first ones and ``"_dropped_keys": N``;
- anything nested deeper than :data:`MAX_DEPTH` becomes ``"<nested deeper than N levels>"``.

The walk recurses at most :data:`MAX_DEPTH` levels, so it cannot overflow the stack; it is idempotent
(bounded evidence comes out unchanged), stdlib-only, and knows nothing of the checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from wsdoctor.model import CheckResult, JSONValue

__all__ = ["MAX_DEPTH", "MAX_ITEMS", "MAX_STRING", "bound_result", "bounded"]

MAX_STRING = 4000
MAX_ITEMS = 400
MAX_DEPTH = 16


def bounded(value: JSONValue, depth: int = 0) -> JSONValue:
    """``value`` within the bounds above (see the module docstring)."""
    if isinstance(value, str):
        if len(value) <= MAX_STRING:
            return value
        return value[:MAX_STRING] + f"… ({len(value) - MAX_STRING} more characters cut)"
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth >= MAX_DEPTH:
        return f"<nested deeper than {MAX_DEPTH} levels>"
    if isinstance(value, Mapping):
        items = list(value.items())
        out: dict[str, JSONValue] = {str(k): bounded(v, depth + 1) for k, v in items[:MAX_ITEMS]}
        if len(items) > MAX_ITEMS:
            out["_dropped_keys"] = len(items) - MAX_ITEMS
        return out
    if isinstance(value, Sequence):
        seq = list(value)
        if len(seq) <= MAX_ITEMS:
            return [bounded(v, depth + 1) for v in seq]
        head, tail = MAX_ITEMS // 2, MAX_ITEMS // 2 - 1
        return [
            *(bounded(v, depth + 1) for v in seq[:head]),
            {"_dropped": len(seq) - head - tail},
            *(bounded(v, depth + 1) for v in seq[len(seq) - tail :]),
        ]
    return str(value)[:MAX_STRING]


def _bounded_map(evidence: Mapping[str, JSONValue]) -> dict[str, JSONValue]:
    out = bounded(evidence)
    assert isinstance(out, dict)
    return out


def bound_result(result: CheckResult) -> CheckResult:
    """``result`` with its evidence, its findings' evidence and its texts within bounds."""
    return replace(
        result,
        summary=str(bounded(result.summary)),
        evidence=_bounded_map(result.evidence),
        findings=tuple(
            replace(f, message=str(bounded(f.message)), evidence=_bounded_map(f.evidence)) for f in result.findings
        ),
    )
