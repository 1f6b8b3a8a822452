"""The stages one probe connection moves through, stamped by a monotonic clock.

Theory of operation (after h11's ``_state.py``): everything that decides how far a connection
got lives here. A probe calls :meth:`Lifecycle.advance` as it enters each stage; the table
``_NEXT`` lists the legal moves, and an illegal one raises :class:`InternalError` because only our
own code can make it. The furthest stage reached answers a diagnosis's first question -- "how far
did it get?" -- and the marks give per-phase durations without any flag to decode.

Durations are derived afterwards by the pure :func:`phase_durations` (blackbox_exporter style):
timestamps during, arithmetic after. A phase never reached is ``None``, not 0: that gap is what
locates the break.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence

from wsdoctor.errors import InternalError

__all__ = ["PHASES", "Lifecycle", "Stage", "phase_durations"]


class Stage(enum.Enum):
    RESOLVING = "resolving"
    CONNECTING = "connecting"  # TCP, to the target or to the proxy
    TUNNELING = "tunneling"  # HTTP CONNECT through the proxy
    TLS = "tls"
    UPGRADING = "upgrading"  # request sent, waiting for the 101
    OPEN = "open"
    CLOSING_LOCAL = "closing-local"  # we sent CloseStream / a close frame first
    CLOSING_REMOTE = "closing-remote"  # they sent a close frame first
    CLOSED = "closed"  # ended cleanly: close handshake done, or an HTTP answer that was not a 101
    ABORTED = "aborted"  # ended without a close handshake; after OPEN this is the 1006 case


_NEXT: dict[Stage | None, frozenset[Stage]] = {
    None: frozenset({Stage.RESOLVING, Stage.CONNECTING}),
    Stage.RESOLVING: frozenset({Stage.CONNECTING, Stage.ABORTED}),
    Stage.CONNECTING: frozenset({Stage.TUNNELING, Stage.TLS, Stage.UPGRADING, Stage.ABORTED}),
    Stage.TUNNELING: frozenset({Stage.TLS, Stage.UPGRADING, Stage.ABORTED}),
    Stage.TLS: frozenset({Stage.UPGRADING, Stage.ABORTED}),
    Stage.UPGRADING: frozenset({Stage.OPEN, Stage.CLOSED, Stage.ABORTED}),
    Stage.OPEN: frozenset({Stage.CLOSING_LOCAL, Stage.CLOSING_REMOTE, Stage.ABORTED}),
    # A close crossing ours on the wire moves us from one closing state to the other's end.
    Stage.CLOSING_LOCAL: frozenset({Stage.CLOSED, Stage.ABORTED}),
    Stage.CLOSING_REMOTE: frozenset({Stage.CLOSED, Stage.ABORTED}),
    Stage.CLOSED: frozenset(),
    Stage.ABORTED: frozenset(),
}

#: One phase vocabulary for metrics, JSON, terminal and HTML.
PHASES: tuple[str, ...] = ("resolve", "connect", "proxy", "tls", "upgrade")

# phase -> (stage that starts it, stages that may end it)
_PHASE_SPAN: dict[str, tuple[Stage, tuple[Stage, ...]]] = {
    "resolve": (Stage.RESOLVING, (Stage.CONNECTING,)),
    "connect": (Stage.CONNECTING, (Stage.TUNNELING, Stage.TLS, Stage.UPGRADING)),
    "proxy": (Stage.TUNNELING, (Stage.TLS, Stage.UPGRADING)),
    "tls": (Stage.TLS, (Stage.UPGRADING,)),
    "upgrade": (Stage.UPGRADING, (Stage.OPEN, Stage.CLOSED)),
}


class Lifecycle:
    """Explicit state of one connection plus the time each stage was entered."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.t0 = clock()
        self.stage: Stage | None = None
        self.marks: list[tuple[Stage, float]] = []

    def advance(self, new: Stage) -> None:
        if new not in _NEXT[self.stage]:
            raise InternalError(f"illegal connection stage move {self.stage} -> {new}")
        self.stage = new
        self.marks.append((new, round(self._clock() - self.t0, 6)))

    def abort(self) -> None:
        """End without a close handshake; a no-op once already ended."""
        if self.stage not in (Stage.CLOSED, Stage.ABORTED):
            self.advance(Stage.ABORTED)

    def elapsed(self) -> float:
        return self._clock() - self.t0

    @property
    def furthest(self) -> Stage | None:
        """The last stage entered before the connection ended (the break is right after it)."""
        for stage, _t in reversed(self.marks):
            if stage not in (Stage.ABORTED,):
                return stage
        return None

    def mark_of(self, stage: Stage) -> float | None:
        return next((t for s, t in self.marks if s is stage), None)

    def to_marks(self) -> list[list[str | float]]:
        return [[s.value, t] for s, t in self.marks]


def phase_durations(marks: Sequence[Sequence[str | float]] | Mapping[str, float]) -> dict[str, float | None]:
    """``[["connecting", 0.0], ["upgrading", 0.012], ["open", 0.020]]`` ->
    ``{"resolve_s": None, "connect_s": 0.012, "proxy_s": None, "tls_s": None, "upgrade_s": 0.008}``.

    Pure: used by checks on recorded observations.
    """
    at: dict[str, float] = {}
    if isinstance(marks, Mapping):
        at = {str(k): float(v) for k, v in marks.items()}
    else:
        for stage, t in marks:
            at.setdefault(str(stage), float(t))
    out: dict[str, float | None] = {}
    for phase, (start, ends) in _PHASE_SPAN.items():
        begin = at.get(start.value)
        end = next((at[e.value] for e in ends if e.value in at), None)
        out[f"{phase}_s"] = round(end - begin, 6) if begin is not None and end is not None else None
    return out
