"""The connection timeline: bar geometry for the HTML report's waterfall, computed from a Report.

Pure and numeric. The template only draws what this module returns: every position is a float in
a track :data:`TRACK` units wide (the SVG ``viewBox`` width), every label a short string we built
ourselves -- no server text reaches the chart.

Two groups of rows share one time axis (seconds):

- **Phases of a connection**, the one phase vocabulary of metrics, JSON and terminal
  (:data:`wsdoctor.model.PHASES`, ids, metrics and titles): DNS (``resolve_s``) -> TCP
  (``connect_s``) -> proxy CONNECT (``proxy_s``) -> TLS (``tls_s``) -> HTTP upgrade (``upgrade_s``)
  are laid end to end; from the moment the socket is open, the first result (``first_result_s``),
  the audio streamed (``audio_s``, with the stream's terminal events (:class:`wsdoctor.model.EndKind`):
  a TCP EOF without close frame, a reset, a close code), then the close handshake
  (``closestream_to_close_s`` or ``close_reply_s``); then idle rows when idle checks measured
  something (``idle_cutoff_s``, ``server_idle_timeout_s``, ``keepalive_held_s``). Each value comes
  from the first check that measured it. A phase nobody measured is *not* drawn as 0: its row says
  why (not reached, not applicable, failed), because that gap is what locates the break.
- **Checks as they ran**: one bar per check from ``started_at_s`` for ``duration_s``, coloured by
  status, with the terminal events found in its evidence (any dict holding ``events``).

The phases are a composite of several connections (each check opens its own), so they show the
*typical* cost of each step; the check rows are the literal run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from wsdoctor.model import PHASES, CheckResult, EndKind, Report, Status, end_kind, evidence_mappings

__all__ = [
    "MIN_BAR",
    "TRACK",
    "Bar",
    "Histogram",
    "Mark",
    "Tick",
    "Timeline",
    "build_timeline",
    "format_seconds",
    "phase_histograms",
]

#: Width of a track in SVG user units; x and width are in these units (x / 10 is a percentage).
TRACK = 1000.0
#: A phase of 0.3 ms next to a 3 s stream would be invisible: every measured bar gets this much.
MIN_BAR = 4.0
_MAX_MARKS = 8
_MAX_WALK_DEPTH = 6
_MAX_TICKS = 6

#: How the chart names the wire events that end a connection (a received close frame: by its code).
_END_TEXT = {
    EndKind.EOF: "TCP closed without a close frame (1006)",
    EndKind.RESET: "connection reset (RST)",
    EndKind.PROTOCOL_ERROR: "protocol error",
    EndKind.OVERSIZE: "oversized frame",
    EndKind.FLOOD: "frame flood (cut by wsdoctor)",
    EndKind.ERROR: "socket error",
}


@dataclass(frozen=True, slots=True)
class Mark:
    """A point event on a row: how a connection ended, or an idle cutoff."""

    t_s: float
    x: float
    kind: str  # an EndKind value ("eof", "reset", "close", ...) or "cutoff"
    label: str


@dataclass(frozen=True, slots=True)
class Bar:
    """One row: a label, an optional bar (``width`` 0 = nothing drawn) and the value shown beside it."""

    key: str  # phase name or check id
    label: str
    state: str  # pass | warn | fail | error | skip | blocked | na | unchecked | unmeasured
    start_s: float | None
    duration_s: float | None
    x: float
    width: float
    value: str  # "2.6 ms", "not reached", ...
    note: str  # where the number came from
    marks: tuple[Mark, ...] = ()


@dataclass(frozen=True, slots=True)
class Tick:
    t_s: float
    x: float
    label: str


@dataclass(frozen=True, slots=True)
class Timeline:
    phases: tuple[Bar, ...]
    checks: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    span_s: float

    @property
    def empty(self) -> bool:
        return not self.checks and not any(b.width for b in self.phases)


@dataclass(frozen=True, slots=True)
class _Phase:
    key: str
    label: str
    metrics: tuple[str, ...]
    layers: tuple[str, ...]
    #: For a measured value: judge the bar by these finding codes only (the first result can be
    #: on time in a stream that later broke); ``None`` = by the status of the check that measured it.
    codes: tuple[str, ...] | None = None
    optional: bool = False  # drawn only when measured (or, for the proxy, when a proxy check ran)


#: What the chart adds to the model's phases (keyed by phase id): the layers whose checks say why a
#: phase has no number, the codes that judge a measured bar, metrics that time it when the model's
#: own is missing, and whether it is drawn only when measured.
_LAYERS_OF = {
    "resolve": ("dns",),
    "connect": ("tcp",),
    "proxy": ("proxy",),
    "tls": ("tls",),
    "upgrade": ("http", "ws"),
    "first_result": ("stream",),
    "close": ("close",),
}
_JUDGED_BY = {"first_result": ("stream.slow-first-result",)}
_ALSO_TIMED_BY = {"close": ("close_reply_s",)}
_OPTIONAL = frozenset({"proxy"})
#: The socket is open once this phase ends: the phases up to it are laid end to end.
_OPENED_BY = "upgrade"
_CHART_PHASES = tuple(
    _Phase(
        p.id,
        p.title,
        (p.metric, *_ALSO_TIMED_BY.get(p.id, ())),
        _LAYERS_OF.get(p.id, ()),
        codes=_JUDGED_BY.get(p.id),
        optional=p.id in _OPTIONAL,
    )
    for p in PHASES
)
_OPEN_AT = next(i for i, p in enumerate(_CHART_PHASES) if p.key == _OPENED_BY) + 1
_BEFORE_OPEN = _CHART_PHASES[:_OPEN_AT]
_FIRST_RESULT, _CLOSE = (next(p for p in _CHART_PHASES if p.key == key) for key in ("first_result", "close"))
_AUDIO = _Phase("audio", "Audio streamed", ("audio_s",), ("stream",))
_IDLE = (
    _Phase("idle_cutoff", "Idle cutoff", ("idle_cutoff_s",), ("idle",), optional=True),
    _Phase("server_idle", "Server idle close", ("server_idle_timeout_s",), ("idle",), optional=True),
    _Phase("keepalive", "Held by KeepAlive", ("keepalive_held_s",), ("idle",), optional=True),
)
_STATE_TEXT = {
    "fail": "failed here",
    "error": "check errored",
    "blocked": "not reached",
    "na": "not applicable",
    "skip": "skipped",
    "unchecked": "not checked",
    "unmeasured": "not measured",
}


def format_seconds(value: float | None) -> str:
    """``0.0026`` -> ``"2.6 ms"``, ``1.016`` -> ``"1.02 s"``; ``None``/non-finite -> ``"—"``."""
    if value is None or not math.isfinite(value):
        return "—"
    if value < 0.0005:
        return f"{value * 1000:.2f} ms"
    if value < 0.01:
        return f"{value * 1000:.1f} ms"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 100:
        return f"{value:.2f} s"
    return f"{value:.0f} s"


def _number(value: object) -> float | None:
    """A finite, non-negative float, or None (hand-edited reports may hold anything)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return f if math.isfinite(f) and f >= 0 else None


def _measured(results: Sequence[CheckResult], keys: Iterable[str]) -> tuple[float, CheckResult] | None:
    for key in keys:
        for r in results:
            value = _number(r.metrics.get(key))
            if value is not None:
                return value, r
    return None


def _worst(results: Sequence[CheckResult]) -> str:
    """What the checks of a layer say about a phase they did not time."""
    if not results:
        return "unchecked"
    statuses = {r.status for r in results}
    for status, state in ((Status.FAIL, "fail"), (Status.ERROR, "error"), (Status.WARN, "warn")):
        if status in statuses:
            return state
    if statuses == {Status.SKIP}:
        return "blocked" if any(r.blocked_by for r in results) else "na"
    return "unmeasured"


def _state_of(result: CheckResult, codes: tuple[str, ...] | None) -> str:
    if codes is None:
        return result.status.value
    severities = {f.severity for f in result.findings if f.code in codes}
    if Status.FAIL in severities:
        return "fail"
    return "warn" if Status.WARN in severities else "pass"


def _end_events(evidence: Mapping[str, object]) -> Iterator[tuple[float, str, str, Mapping[str, object]]]:
    """(t_s, kind, label, session) of every event that ended a recorded connection."""
    for _path, session in evidence_mappings(evidence, _MAX_WALK_DEPTH):
        events = session.get("events")
        if not isinstance(events, list | tuple):
            continue
        for event in events:
            if not isinstance(event, Mapping):
                continue
            t = _number(event.get("t_s"))
            kind = end_kind(event.get("kind"))
            if t is None or kind is None:
                continue
            if kind is not EndKind.CLOSE:
                yield t, kind.value, _END_TEXT.get(kind, kind.value), session
            elif event.get("direction") == "in":  # our own close frame ends nothing until answered
                code = event.get("code")
                shown = str(code) if isinstance(code, int) and not isinstance(code, bool) else "?"
                yield t, kind.value, f"close frame {shown} received", session


class _Scale:
    def __init__(self, span_s: float) -> None:
        self.span_s = span_s

    def x(self, t: float) -> float:
        return round(min(max(t / self.span_s, 0.0), 1.0) * TRACK, 2)

    def bar(self, start: float, duration: float | None) -> tuple[float, float]:
        x = self.x(start)
        if duration is None:
            return x, 0.0
        width = max(MIN_BAR, self.x(start + duration) - x)
        if x + width > TRACK:
            x = max(0.0, TRACK - width)
        return x, round(width, 2)


@dataclass(frozen=True, slots=True)
class _Row:
    """A row before the axis is known: times only."""

    key: str
    label: str
    state: str
    start_s: float | None
    duration_s: float | None
    value: str
    note: str
    marks: tuple[tuple[float, str, str], ...] = ()

    def end_s(self) -> float:
        ends = [(self.start_s or 0.0) + (self.duration_s or 0.0), *(t for t, _k, _l in self.marks)]
        return max(ends)

    def place(self, scale: _Scale) -> Bar:
        x, width = scale.bar(self.start_s or 0.0, self.duration_s) if self.start_s is not None else (0.0, 0.0)
        marks = tuple(Mark(t, scale.x(t), kind, label) for t, kind, label in self.marks)
        return Bar(
            self.key, self.label, self.state, self.start_s, self.duration_s, x, width, self.value, self.note, marks
        )


def _phase_row(phase: _Phase, results: Sequence[CheckResult], start: float) -> _Row | None:
    layer_results = [r for r in results if r.layer in phase.layers]
    found = _measured(results, phase.metrics)
    if found is None:
        if phase.optional and (phase.key != "proxy" or not layer_results):
            return None
        state = _worst(layer_results)
        if state in ("pass", "warn"):
            state = "unmeasured"
        return _Row(phase.key, phase.label, state, start, None, _STATE_TEXT.get(state, state), "")
    value, owner = found
    metric = next(k for k in phase.metrics if _number(owner.metrics.get(k)) is not None)
    return _Row(
        phase.key,
        phase.label,
        _state_of(owner, phase.codes),
        start,
        value,
        format_seconds(value),
        f"{metric} from {owner.check_id}",
    )


def _stream_marks(results: Sequence[CheckResult], open_at: float) -> tuple[tuple[float, str, str], ...]:
    """The stream session's ending, placed relative to the moment the socket opened."""
    owner = _measured(results, ("audio_s", "first_result_s"))
    candidates = [owner[1]] if owner else [r for r in results if r.layer == "stream"]
    marks: list[tuple[float, str, str]] = []
    for r in candidates[:1]:
        for t, kind, label, session in _end_events(r.evidence):
            opened = _number(session.get("open_t")) or 0.0
            rel = max(t - opened, 0.0)
            marks.append((open_at + rel, kind, f"{label} {format_seconds(rel)} after open"))
    return tuple(marks[:_MAX_MARKS])


def _phases(results: Sequence[CheckResult]) -> list[_Row]:
    rows: list[_Row] = []
    cursor = 0.0
    for phase in _BEFORE_OPEN:
        row = _phase_row(phase, results, cursor)
        if row is not None:
            rows.append(row)
            cursor += row.duration_s or 0.0
    open_at = cursor
    first = _phase_row(_FIRST_RESULT, results, open_at)
    audio = _phase_row(_AUDIO, results, open_at)
    if audio is not None:
        marks = _stream_marks(results, open_at)
        audio = _Row(
            audio.key, audio.label, audio.state, audio.start_s, audio.duration_s, audio.value, audio.note, marks
        )
    streamed = (audio.duration_s if audio else None) or (first.duration_s if first else None) or 0.0
    close = _phase_row(_CLOSE, results, open_at + streamed)
    rows.extend(r for r in (first, audio, close) if r is not None)
    for phase in _IDLE:
        row = _phase_row(phase, results, open_at)
        if row is None or row.duration_s is None:
            continue
        end = open_at + row.duration_s
        kind, what = ("cutoff", "cut without a close frame") if phase.key == "idle_cutoff" else ("close", "ended")
        if phase.key == "keepalive":
            kind, what = ("cutoff", "stream ended") if row.state == "fail" else ("close", "still open")
        rows.append(
            _Row(
                row.key,
                row.label,
                row.state,
                row.start_s,
                row.duration_s,
                row.value,
                row.note,
                ((end, kind, f"{what} after {format_seconds(row.duration_s)} idle"),),
            )
        )
    return rows


def _check_rows(results: Sequence[CheckResult]) -> list[_Row]:
    rows = []
    for r in results:
        start = _number(r.started_at_s) or 0.0
        duration = _number(r.duration_s) or 0.0
        marks = []
        for t, kind, label, _session in _end_events(r.evidence):
            at = min(start + t, start + duration) if duration else start + t
            marks.append((at, kind, f"{label} at {format_seconds(t)}"))
        status = r.status.value
        value = "skipped" if r.status is Status.SKIP else format_seconds(duration)
        rows.append(
            _Row(
                r.check_id,
                r.check_id,
                status,
                start,
                duration if r.status is not Status.SKIP else None,
                value,
                r.title,
                tuple(marks[:_MAX_MARKS]),
            )
        )
    return rows


_MIN_SPAN_S = 0.001
_MAX_SPAN_S = 1e7


def _ticks(span: float) -> tuple[float, list[float]]:
    """A 1-2-5 step giving at most :data:`_MAX_TICKS` intervals, and the tick times."""
    raw = span / _MAX_TICKS
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    count = math.floor(span / step + 1e-9)
    return step, [round(i * step, 9) for i in range(count + 1)]


def build_timeline(report: Report) -> Timeline:
    """Rows and axis for ``report``. Never raises on odd numbers: they are dropped, not drawn."""
    results = report.results
    phase_rows = _phases(results)
    check_rows = _check_rows(results)
    ends = [row.end_s() for row in (*phase_rows, *check_rows)]
    span = max([e for e in ends if math.isfinite(e)] + [0.0])
    # A hand-edited or hostile report can hold any finite number: a subnormal span would underflow
    # the tick arithmetic (log10 of 0), a huge one overflow it. A real run lasts 1 ms to a few hours.
    span = min(max(span * 1.02, _MIN_SPAN_S), _MAX_SPAN_S)
    scale = _Scale(span)
    step, times = _ticks(span)
    ticks = tuple(
        Tick(t, scale.x(t), "0" if t == 0 else (format_seconds(t) if step < 1 else f"{t:g} s")) for t in times
    )
    return Timeline(
        phases=tuple(row.place(scale) for row in phase_rows),
        checks=tuple(row.place(scale) for row in check_rows),
        ticks=ticks,
        span_s=span,
    )


@dataclass(frozen=True, slots=True)
class Histogram:
    """One phase of ``phases.repeat`` (``--repeat N``): bar heights in 0..1 over equal-width bins."""

    phase: str
    n: int
    bars: tuple[float, ...]  # normalised heights, one per bin, left (fast) to right (slow)
    low: str  # the first bin's lower edge, formatted
    high: str  # the last bin's upper edge, formatted
    p50: str
    p95: str
    p99: str


HISTOGRAM_BINS = 12


def phase_histograms(results: Sequence[CheckResult], bins: int = HISTOGRAM_BINS) -> tuple[Histogram, ...]:
    """Per-phase latency histograms from the samples ``phases.repeat`` recorded. Pure: numbers only,
    so the template only draws rectangles."""
    result = next((r for r in results if r.check_id == "phases.repeat"), None)
    samples = result.evidence.get("samples") if result is not None else None
    stats = result.evidence.get("phases") if result is not None else None
    if not isinstance(samples, Sequence) or not isinstance(stats, Mapping):
        return ()
    out: list[Histogram] = []
    for phase, st in stats.items():
        values = sorted(v for s in samples if isinstance(s, Mapping) if (v := _number(s.get(f"{phase}_s"))) is not None)
        if not values or not isinstance(st, Mapping):
            continue
        lo, hi = values[0], values[-1]
        width = (hi - lo) / bins or 1.0
        counts = [0] * bins
        for v in values:
            counts[min(bins - 1, int((v - lo) / width))] += 1
        top = max(counts)
        out.append(
            Histogram(
                phase=str(phase)[:40],
                n=len(values),
                bars=tuple(round(c / top, 4) for c in counts),
                low=format_seconds(lo),
                high=format_seconds(hi),
                p50=format_seconds(_number(st.get("p50"))),
                p95=format_seconds(_number(st.get("p95"))),
                p99=format_seconds(_number(st.get("p99"))),
            )
        )
    return tuple(out)
