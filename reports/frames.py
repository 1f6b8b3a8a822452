"""The per-connection frame timeline of a ``wsdoctor watch`` report: geometry and rows, pure.

A watch result carries its connection's record as evidence (``evidence["connection"]``, the form
of :class:`wsdoctor.probes.watch.WatchedConnection`). This module turns its ``events`` into what the
HTML template draws: two lanes on one time axis -- what the app sent, what the upstream sent --
with audio runs as bars, text messages, pings and pongs as ticks and each close frame or TCP end
as a mark, plus a table of the events. The evidence may come from a hand-edited report.json
(``wsdoctor render``), so every field is read defensively and every string is bounded; positions
are floats in a track :data:`TRACK` units wide.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from wsdoctor.model import CheckResult

__all__ = ["TRACK", "FrameMark", "FrameRow", "FrameTimeline", "frame_timelines"]

TRACK = 1000.0
MAX_ROWS = 200  # table rows per connection (the record keeps up to 1000 events)
MAX_CONNECTIONS = 50  # connections drawn; the rest are in the raw evidence
_TEXT = 120


@dataclass(frozen=True, slots=True)
class FrameMark:
    lane: str  # "client" | "upstream"
    kind: str  # "audio" | "text" | "binary" | "ping" | "pong" | "close" | "bad-close" | "end"
    x: float
    width: float
    label: str


@dataclass(frozen=True, slots=True)
class FrameRow:
    t: str
    side: str
    kind: str
    size: str
    detail: str


@dataclass(frozen=True, slots=True)
class FrameTimeline:
    check_id: str
    title: str
    status: str
    duration: str
    marks: tuple[FrameMark, ...]
    rows: tuple[FrameRow, ...]
    more_rows: int
    dropped: int


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _str(value: object, limit: int = _TEXT) -> str:
    text = value if isinstance(value, str) else "" if value is None else str(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _side(value: object) -> str:
    return "app" if value == "client" else "upstream" if value == "upstream" else "?"


def _detail(event: Mapping[str, object]) -> str:
    kind = event.get("kind")
    if kind == "audio":
        return f"{event.get('count', 1)} frames" + (
            f" until {_num(event.get('t_end')) or 0:.2f} s" if _num(event.get("t_end")) is not None else ""
        )
    if kind == "close":
        code = event.get("code")
        return f"code {code if code is not None else '(none)'}" + (
            f" {_str(event.get('text'))!s}" if event.get("text") else ""
        )
    parts = [_str(event.get("type"), 40)] if event.get("type") else []
    if event.get("text"):
        parts.append(_str(event.get("text")))
    if event.get("head"):
        parts.append("bytes " + _str(event.get("head"), 40))
    return " · ".join(parts)


def _end_marks(conn: Mapping[str, object], scale: float) -> list[FrameMark]:
    out = []
    for key, lane in (("client_end", "client"), ("upstream_end", "upstream")):
        end = conn.get(key)
        if not isinstance(end, Mapping):
            continue
        tcp, t = end.get("tcp"), _num(end.get("tcp_t"))
        if tcp in ("fin", "rst", "relay-closed") and t is not None:
            out.append(
                FrameMark(lane, "end", min(TRACK, t * scale), 0.0, f"{_side(lane)} TCP {_str(tcp, 20)} at {t:.2f} s")
            )
    return out


def _timeline(result: CheckResult, conn: Mapping[str, object]) -> FrameTimeline:
    raw_events = conn.get("events")
    events = [e for e in raw_events if isinstance(e, Mapping)] if isinstance(raw_events, Sequence) else []
    duration = max(
        [_num(conn.get("duration_s")) or 0.0] + [_num(e.get("t_end")) or _num(e.get("t")) or 0.0 for e in events]
    )
    scale = TRACK / duration if duration > 0 else 0.0
    marks: list[FrameMark] = []
    for e in events:
        t = _num(e.get("t"))
        if t is None:
            continue
        lane = "client" if e.get("side") == "client" else "upstream"
        kind = _str(e.get("kind"), 20)
        x = min(TRACK, t * scale)
        width = 0.0
        if kind == "audio":
            t_end = _num(e.get("t_end")) or t
            width = max(2.0, (t_end - t) * scale)
        elif kind == "close":
            code = e.get("code")
            kind = "close" if code == 1000 else "bad-close"
        label = f"{_side(e.get('side'))} {_str(e.get('kind'), 20)} at {t:.2f} s: {_detail(e)}"
        marks.append(FrameMark(lane, kind, x, width, _str(label, 200)))
    marks += _end_marks(conn, scale)
    rows = tuple(
        FrameRow(
            t=f"{_num(e.get('t')) or 0.0:.3f}",
            side=_side(e.get("side")),
            kind=_str(e.get("kind"), 20),
            size=str(int(_num(e.get("size")) or 0)),
            detail=_detail(e),
        )
        for e in events[:MAX_ROWS]
    )
    dropped = conn.get("events_dropped")
    return FrameTimeline(
        check_id=_str(result.check_id, 80),
        title=_str(result.title, 200),
        status=result.status.value,
        duration=f"{duration:.2f} s",
        marks=tuple(marks[: 4 * MAX_ROWS]),
        rows=rows,
        more_rows=max(0, len(events) - MAX_ROWS),
        dropped=int(dropped) if isinstance(dropped, int) and not isinstance(dropped, bool) else 0,
    )


def frame_timelines(results: Sequence[CheckResult]) -> tuple[FrameTimeline, ...]:
    """One timeline per result that holds a watched connection's events (at most MAX_CONNECTIONS)."""
    out = []
    for result in results:
        conn = result.evidence.get("connection")
        if isinstance(conn, Mapping) and isinstance(conn.get("events"), Sequence):
            out.append(_timeline(result, conn))
            if len(out) >= MAX_CONNECTIONS:
                break
    return tuple(out)
