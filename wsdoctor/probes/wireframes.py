"""A passive WebSocket frame reader: sans-I/O, bounded, for bytes that are forwarded untouched.

Theory of operation. ``wsdoctor watch`` relays an app's connection byte for byte; it must not
re-encode a frame (the upstream would see wsdoctor's framing, not the app's), so it cannot use a
WebSocket library's connection object. It feeds a copy of each direction's bytes to a
:class:`FrameReader`, which parses RFC 6455 framing as a bystander: it reports each frame's header
facts as soon as the frame ends and never buffers more than a header (14 bytes) plus what it is
told to keep of a payload -- control and text payloads up to ``keep_text`` bytes (unmasked), the
first ``keep_head`` bytes of a binary one -- so a 1 GiB frame costs 1 GiB of *counting*, not of
memory. Like wsproto it is explicit state fed by ``feed(data)``; unlike wsproto it never refuses:
a violation (an unmasked client frame, a reserved opcode, a long control frame, a 64-bit length
with its top bit set) is recorded on the frame as ``violation`` and parsing goes on, because the
two real endpoints are the judges of their own protocol. Only a length wsdoctor cannot represent
stops it (``broken``): it then counts bytes and reports nothing more.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["FrameReader", "Opcode", "WireFrame"]


class Opcode(enum.IntEnum):
    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


_CONTROL_MAX = 125  # RFC 6455 5.5: control frames carry at most 125 bytes and are never fragmented


@dataclass(frozen=True, slots=True)
class WireFrame:
    """One frame as it crossed the relay."""

    opcode: int  # the raw opcode (an :class:`Opcode` value, or a reserved one with ``violation``)
    fin: bool
    rsv: int  # the three RSV bits (non-zero: an extension compressed it, or a violation)
    masked: bool
    length: int  # payload length as the header declared it
    kept: bytes  # the unmasked payload's first bytes (all of it for control/text up to keep_text)
    violation: str | None = None  # what RFC 6455 forbids about this frame, if anything

    @property
    def complete(self) -> bool:
        """``kept`` holds the whole payload."""
        return len(self.kept) == self.length


_EXTENDED_LENGTH = {126: 2, 127: 8}


def _header_size(buf: bytearray) -> int:
    """How long the header starting ``buf`` is, as far as its first two bytes say (2 until then)."""
    if len(buf) < 2:
        return 2
    return 2 + _EXTENDED_LENGTH.get(buf[1] & 0x7F, 0) + (4 if buf[1] & 0x80 else 0)


def _unmask(data: bytes, key: bytes, offset: int) -> bytes:
    if not data:
        return data
    rotated = key[offset % 4 :] + key[: offset % 4]
    mask = (rotated * (len(data) // 4 + 1))[: len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(mask, "big")).to_bytes(len(data), "big")


class FrameReader:
    """Parses one direction of a WebSocket connection (module doc). ``expect_masked``: client
    frames must be masked, server frames must not."""

    __slots__ = (
        "_buf",
        "_fin",
        "_keep",
        "_kept",
        "_length",
        "_mask",
        "_opcode",
        "_remaining",
        "_rsv",
        "_seen",
        "_violation",
        "broken",
        "bytes_seen",
        "expect_masked",
        "keep_head",
        "keep_text",
    )

    def __init__(self, *, expect_masked: bool, keep_text: int = 4096, keep_head: int = 64) -> None:
        self.expect_masked = expect_masked
        self.keep_text = keep_text
        self.keep_head = keep_head
        self.bytes_seen = 0
        self.broken: str | None = None  # set once framing is lost; nothing is parsed after it
        self._buf = bytearray()  # a frame header being assembled (at most 14 bytes)
        self._remaining = -1  # payload bytes left of the current frame; -1: reading a header
        self._kept = bytearray()
        self._seen = 0  # payload bytes of the current frame seen so far (unmask offset)
        self._opcode = self._rsv = self._length = self._keep = 0
        self._fin = False
        self._mask: bytes | None = None
        self._violation: str | None = None

    def feed(self, data: bytes) -> list[WireFrame]:
        """The frames that ``data`` completes, in order."""
        self.bytes_seen += len(data)
        if self.broken is not None:
            return []
        frames: list[WireFrame] = []
        view = memoryview(data)
        pos = 0
        while pos < len(view):
            if self._remaining < 0:
                pos = self._header(view, pos)
                if self.broken is not None:
                    return frames
                if self._remaining < 0:
                    break  # header incomplete: wait for more bytes
                if self._remaining == 0:
                    frames.append(self._finish())
                continue
            take = min(self._remaining, len(view) - pos)
            room = self._keep - len(self._kept)
            if room > 0:
                chunk = bytes(view[pos : pos + min(take, room)])
                self._kept += _unmask(chunk, self._mask, self._seen) if self._mask else chunk
            self._seen += take
            self._remaining -= take
            pos += take
            if self._remaining == 0:
                frames.append(self._finish())
        return frames

    def _header(self, view: memoryview, pos: int) -> int:
        """Consume header bytes from ``view[pos:]``; set up the payload once the header is whole."""
        while True:
            need = _header_size(self._buf)
            if len(self._buf) >= need:
                break
            if pos >= len(view):
                return pos
            take = min(need - len(self._buf), len(view) - pos)  # at most the header: never a payload byte
            self._buf += view[pos : pos + take]
            pos += take
        b0, b1 = self._buf[0], self._buf[1]
        short = b1 & 0x7F
        at = 2
        if short == 126:
            length = int.from_bytes(self._buf[2:4], "big")
            at = 4
        elif short == 127:
            length = int.from_bytes(self._buf[2:10], "big")
            at = 10
            if length >> 63:
                self.broken = "a 64-bit payload length with its most significant bit set"
                return pos
        else:
            length = short
        masked = bool(b1 & 0x80)
        self._mask = bytes(self._buf[at : at + 4]) if masked else None
        self._fin, self._rsv, self._opcode, self._length = bool(b0 & 0x80), (b0 >> 4) & 0x7, b0 & 0x0F, length
        self._violation = self._check(masked)
        control = self._opcode >= 0x8
        self._keep = min(length, self.keep_text if control or self._opcode == Opcode.TEXT else self.keep_head)
        if self._opcode == Opcode.CONTINUATION:
            self._keep = min(length, self.keep_text)  # the reader decides what a fragment is worth
        self._buf.clear()
        self._kept = bytearray()
        self._seen = 0
        self._remaining = length
        return pos

    def _check(self, masked: bool) -> str | None:
        if masked != self.expect_masked:
            return "an unmasked client frame" if self.expect_masked else "a masked server frame"
        try:
            opcode = Opcode(self._opcode)
        except ValueError:
            return f"reserved opcode {self._opcode:#x}"
        if opcode >= Opcode.CLOSE and (self._length > _CONTROL_MAX or not self._fin):
            return "a control frame longer than 125 bytes or fragmented"
        if self._rsv:
            return "RSV bits set without a negotiated extension"
        return None

    def _finish(self) -> WireFrame:
        frame = WireFrame(
            opcode=self._opcode,
            fin=self._fin,
            rsv=self._rsv,
            masked=self._mask is not None,
            length=self._length,
            kept=bytes(self._kept),
            violation=self._violation,
        )
        self._remaining = -1
        self._kept = bytearray()
        return frame
