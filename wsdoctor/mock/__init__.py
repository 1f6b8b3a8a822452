"""wsdoctor's built-in Deepgram-compatible mock server (``wsdoctor mock``).

Theory of operation. The mock is a small aiohttp application that speaks Deepgram's streaming
protocol on ``/v1/listen`` well enough for the official SDKs to stream to it and parse every
message with their own models: the same auth schemes (``Token``, ``Bearer``, the ``token``
subprotocol), ``dg-request-id`` on every response and ``dg-error`` on every rejection, Results
driven by *audio* time (one final Results per ``results_interval_s`` of audio received), Metadata
and close 1000 after CloseStream, 1011 NET-0001 after ``idle_timeout_s`` without audio or text,
1008 DATA-0000 for undecodable audio, and the pre-recorded REST API on ``POST /v1/listen``.
Each fault in :data:`FAULTS` switches on one realistic way the path to Deepgram breaks (rejected
upgrades, captive portals, drops without a close frame, resets, unanswered closes, slow results,
middlebox idle cutoffs). Everything listens on 127.0.0.1 by default and every wait is bounded.

``wsdoctor.mock.server`` holds the full theory of operation. This package is imported lazily:
``FAULTS``, ``Fault``, ``MockConfig`` and ``MockStats`` are stdlib-only (the CLI can validate
``--fault`` without loading aiohttp); ``MockServer``, ``start_mock`` and ``serve`` load aiohttp on
first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wsdoctor.mock.config import MockConfig, MockStats
from wsdoctor.mock.faults import FAULTS, Fault

if TYPE_CHECKING:
    from wsdoctor.mock.server import MockServer, serve, start_mock

__all__ = ["FAULTS", "Fault", "MockConfig", "MockServer", "MockStats", "serve", "start_mock"]

_LAZY = frozenset({"MockServer", "serve", "start_mock"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from wsdoctor.mock import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
