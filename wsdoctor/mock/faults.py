"""The mock's fault table: every way ``wsdoctor mock --fault NAME`` can misbehave.

Each fault imitates one thing that really happens between a client and Deepgram: a rejected
upgrade, a captive portal, a TCP connection dropped or reset mid-stream, a server that never
answers a close, a middlebox idle timeout, a Deepgram close code. The table only *names and
describes* behaviour; ``wsdoctor.mock.server`` implements it. The mock knows nothing about
wsdoctor's findings: which finding a fault should produce is the business of the checks and their
tests.

Stdlib only, so ``wsdoctor mock --help`` can list the choices without importing aiohttp.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FAULTS", "MIDSTREAM_FAULTS", "REJECT_FAULTS", "Fault"]


@dataclass(frozen=True)
class Fault:
    name: str
    description: str


_TABLE: tuple[Fault, ...] = (
    Fault("reject-401", "Upgrade refused with 401 INVALID_AUTH (bad or revoked API key)."),
    Fault("reject-402", "Upgrade refused with 402 ASR_PAYMENT_REQUIRED (project out of credits)."),
    Fault("reject-403", "Upgrade refused with 403 INSUFFICIENT_PERMISSIONS (key lacks the scope)."),
    Fault("reject-429", "Upgrade refused with 429 TOO_MANY_REQUESTS (concurrency or rate limit)."),
    Fault("reject-503", "Upgrade refused with 503 SERVICE_UNAVAILABLE (Deepgram-side outage)."),
    Fault(
        "html-200",
        "Every request gets a 200 text/html captive-portal login page (Server: CaptivePortal/1.0, "
        "no dg-request-id, no upgrade): an intermediary answered instead of Deepgram.",
    ),
    Fault(
        "drop-no-close",
        "After fault_after_s of audio (or wall seconds with no audio), the TCP connection is closed "
        "with a plain FIN and no WebSocket close frame (the client sees 1006).",
    ),
    Fault(
        "rst",
        "After fault_after_s of audio (or wall seconds with no audio), the TCP connection is reset "
        "(SO_LINGER 0): the client gets ECONNRESET and no close frame.",
    ),
    Fault(
        "never-close-reply",
        "CloseStream is ignored (no final Results, no Metadata, no close) and a client close frame "
        "is never answered; TCP stays open until the client leaves or max_session_s.",
    ),
    Fault(
        "slow-results",
        "The first Results is held back by slow_results_delay_s; later messages follow in order.",
    ),
    Fault(
        "idle-cutoff",
        "A middlebox idle timeout: after idle_cutoff_s without any client frame, TCP is cut with a "
        "FIN and no close frame (earlier than Deepgram's NET-0001 window).",
    ),
    Fault(
        "ignore-keepalive",
        'Text {"type": "KeepAlive"} does not reset the idle timer, so 1011 NET-0001 fires anyway.',
    ),
    Fault(
        "ignore-pings",
        "WebSocket pings are never answered with a pong (a server or path that drops control frames).",
    ),
    Fault(
        "close-1011-net0000",
        "After fault_after_s of audio, Deepgram closes with 1011 NET-0000 (no response in time).",
    ),
    Fault("close-1012", "After fault_after_s of audio, the server closes with 1012 (service restart)."),
    Fault(
        "close-1008",
        "After fault_after_s of audio, the server closes with 1008 DATA-0000 even though the audio is valid.",
    ),
    Fault(
        "tts-mute",
        "Streaming TTS (/v1/speak) answers each Flush with Flushed but sends no audio.",
    ),
)

FAULTS: dict[str, Fault] = {f.name: f for f in _TABLE}

# Faults answered at the HTTP upgrade (and on the REST route) instead of a 101.
REJECT_FAULTS: frozenset[str] = frozenset(n for n in FAULTS if n.startswith("reject-"))

# Faults that fire once fault_after_s of audio has arrived (or that many wall seconds passed
# after the upgrade, whichever comes first).
MIDSTREAM_FAULTS: frozenset[str] = frozenset({"drop-no-close", "rst", "close-1011-net0000", "close-1012", "close-1008"})
