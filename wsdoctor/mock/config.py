"""The mock's configuration and counters.

Stdlib only: the CLI builds a :class:`MockConfig` (and validates ``--fault``) before it pays for
importing aiohttp. Every duration is in seconds and every window is a parameter, so tests can run
the real behaviour with half-second windows instead of Deepgram's ten.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from wsdoctor.errors import UsageError
from wsdoctor.mock.faults import FAULTS

__all__ = ["MockConfig", "MockStats"]


@dataclass(frozen=True, slots=True)
class MockConfig:
    api_key: str | None = None  # None: any non-empty credential accepted
    fault: str | None = None  # a key of FAULTS, or None for healthy
    idle_timeout_s: float = 10.0  # NET-0001 window
    results_interval_s: float = 1.0  # seconds of *audio* per Results message
    fault_after_s: float = 1.0  # mid-stream faults: audio seconds (or wall seconds if no audio) before firing
    slow_results_delay_s: float = 6.0  # slow-results: extra delay before the first Results
    idle_cutoff_s: float = 4.0  # idle-cutoff: TCP cut without close frame after this many idle seconds
    max_session_s: float = 300.0  # hard bound per connection; then abort
    max_frame_bytes: int = 1 << 20  # larger client frames => close 1009
    #: Concurrency limit per process, like an account's: one more stream gets 429 TOO_MANY_REQUESTS.
    max_streams: int | None = None

    def __post_init__(self) -> None:
        if self.fault is not None and self.fault not in FAULTS:
            raise UsageError(f"unknown mock fault {self.fault!r}; choose one of: {', '.join(FAULTS)}")
        if self.api_key is not None and not self.api_key.strip():
            raise UsageError("mock api_key must be non-empty (or None to accept any credential)")
        for name in ("idle_timeout_s", "results_interval_s", "idle_cutoff_s", "max_session_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise UsageError(f"mock {name} must be a positive number of seconds, got {value!r}")
        for name in ("fault_after_s", "slow_results_delay_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise UsageError(f"mock {name} must be >= 0 seconds, got {value!r}")
        if self.max_streams is not None and not (isinstance(self.max_streams, int) and self.max_streams > 0):
            raise UsageError(f"mock max_streams must be a positive integer, got {self.max_streams!r}")
        if not (isinstance(self.max_frame_bytes, int) and self.max_frame_bytes > 0):
            raise UsageError(f"mock max_frame_bytes must be a positive integer, got {self.max_frame_bytes!r}")


@dataclass(slots=True)
class MockStats:
    """Plain counters a test (or ``wsdoctor run --target mock``) can read while the mock runs."""

    connections: int = 0  # TCP connections accepted
    upgrades: int = 0  # 101 Switching Protocols sent
    rejected: int = 0  # /v1/listen requests answered with a 4xx/5xx instead of a 101 or a transcript
    close_frames_received: int = 0  # WebSocket close frames from clients
    closestream_received: int = 0  # {"type": "CloseStream"} text messages (and empty binary frames)
    keepalives_received: int = 0  # {"type": "KeepAlive"} text messages
    results_sent: int = 0  # Results messages written to clients

    def as_dict(self) -> dict[str, int]:
        return {f.name: int(getattr(self, f.name)) for f in fields(self)}
