"""HTTP/1.1 answers read with h11: the one read loop of every probe that speaks HTTP.

Theory of operation. h11 is sans-I/O: it says ``NEED_DATA`` and we feed it bytes. The WebSocket
Upgrade, the proxy's ``CONNECT`` and the REST POST all wait for an answer the same way, so the
waiting lives here once: :func:`next_event` reads until h11 has an event, never past the caller's
deadline (a peer that drips bytes is cut at it), at most ``READ_SIZE`` bytes a read (h11 bounds
the head itself with ``max_incomplete_event_size``), keeping the first bytes for the evidence. A
peer that closes before a single byte of its answer raises :class:`PeerClosed` -- an EOF, which
h11 alone would report as a protocol error.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import h11

if TYPE_CHECKING:
    from h11._events import Event

__all__ = ["MAX_HEAD_BYTES", "READ_SIZE", "PeerClosed", "client", "next_event"]

READ_SIZE = 65536
MAX_HEAD_BYTES = 64 * 1024  # h11 refuses a head larger than this: "endless headers" are bounded
EXCERPT_BYTES = 512  # the first bytes of an answer kept as evidence (``seen``)


def client() -> h11.Connection:
    """A client connection whose answer's head is bounded (MAX_HEAD_BYTES)."""
    return h11.Connection(our_role=h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)


class PeerClosed(ConnectionError):
    """The peer closed the connection before sending a byte of its answer."""


async def next_event(
    h: h11.Connection,
    reader: asyncio.StreamReader,
    deadline: float,
    *,
    what: str,
    seen: bytearray | None = None,
    raw: bytearray | None = None,
) -> Event | type[h11.PAUSED] | type[h11.NEED_DATA]:
    """The next event h11 has, reading as it needs until the event loop's time ``deadline``.

    ``what`` names the answer in the timeout's message; ``seen`` collects the first bytes read,
    ``raw`` every byte read (``watch`` forwards an answer's head untouched; h11 bounds a head, so
    ``raw`` holds at most MAX_HEAD_BYTES + READ_SIZE).
    Never NEED_DATA in fact (the type is h11's). Raises TimeoutError, PeerClosed, OSError, or
    h11.RemoteProtocolError for a malformed answer."""
    loop = asyncio.get_running_loop()
    while True:
        event = h.next_event()
        if event is not h11.NEED_DATA:
            return event
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError(f"no complete {what} in time")
        data = await asyncio.wait_for(reader.read(READ_SIZE), remaining)
        if seen is not None and len(seen) < EXCERPT_BYTES:
            seen += data[: EXCERPT_BYTES - len(seen)]
        if raw is not None:
            raw += data
        if not data and h.their_state is h11.SEND_RESPONSE and not _answer_started(h):
            raise PeerClosed(f"the connection closed before any {what}")
        h.receive_data(data)


def _answer_started(h: h11.Connection) -> bool:
    """Bytes of the answer are buffered (a partial head): a close now is a malformed answer."""
    return bool(h.trailing_data[0])
