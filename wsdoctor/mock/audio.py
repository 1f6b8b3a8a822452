"""Pure audio helpers for the mock: what format is this, how many seconds is it, is it speech.

Theory of operation. Deepgram detects containers by their first bytes when the client passes no
``encoding``; with ``encoding=...`` the bytes are raw samples described by ``sample_rate`` and
``channels``. The mock does the same with :func:`sniff` (RIFF/WAVE with its ``fmt `` chunk parsed,
Ogg, FLAC, MP3 with or without ID3, WebM/Matroska) and :func:`raw_format`.

:class:`SpanCutter` turns the byte stream into *audio time*: it counts data bytes (the WAV header
excluded), cuts them into spans of ``interval_s`` seconds of audio, and, for PCM it can decode
(16/32-bit and 8-bit PCM, float32, mu-law, A-law), measures each span's RMS level and zero-crossing
rate to tell speech from silence. Silence has no energy, white noise (garbage bytes read as PCM)
crosses zero on about every other sample; speech has energy and a low crossing rate. Compressed
audio (Ogg/Opus, FLAC, MP3, WebM, raw opus/flac/...) is not decoded: its duration is estimated from
a nominal bit rate and its spans count as "unknown", which the server renders as an empty
transcript.

No I/O, no asyncio: everything here is a plain function or a small state machine fed bytes.
"""

from __future__ import annotations

import math
import struct
import sys
from array import array
from dataclasses import dataclass

__all__ = [
    "RAW_ENCODINGS",
    "AudioFormat",
    "Levels",
    "Sniff",
    "Span",
    "SpanCutter",
    "is_speech",
    "levels",
    "pcm16_rms",
    "raw_format",
    "sniff",
]

# Deepgram's streaming `encoding` values. PCM ones map to bytes per sample; compressed ones to a
# nominal byte rate (bytes per second) used only to estimate durations.
_PCM_WIDTH: dict[str, int] = {"linear16": 2, "linear32": 4, "mulaw": 1, "alaw": 1}
_COMPRESSED_BYTE_RATE: dict[str, int] = {
    "flac": 24_000,
    "opus": 4_000,
    "ogg-opus": 4_000,
    "speex": 2_000,
    "amr-nb": 1_600,
    "amr-wb": 3_000,
    "g729": 1_000,
}
RAW_ENCODINGS: frozenset[str] = frozenset(_PCM_WIDTH) | frozenset(_COMPRESSED_BYTE_RATE)

# Nominal byte rates for containers whose payload the mock does not decode.
_CONTAINER_BYTE_RATE: dict[str, int] = {"ogg": 4_000, "webm": 4_000, "mp3": 16_000, "flac": 24_000}

MAX_HEADER_BYTES = 64 * 1024  # a WAV header that needs more than this is treated as undecodable
SPEECH_MIN_RMS = 300.0  # ~ -40 dBFS on a 16-bit scale
SPEECH_MAX_ZCR = 0.35  # white noise sits near 0.5 crossings per sample

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"OggS", "ogg"),
    (b"fLaC", "flac"),
    (b"ID3", "mp3"),
    (b"\x1a\x45\xdf\xa3", "webm"),
)


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """What the mock knows about a stream. ``sample_codec`` is how to read samples for levels:
    one of "s16", "s32", "u8", "f32", "mulaw", "alaw", or None (compressed, not decoded)."""

    container: str  # "wav", "ogg", "flac", "mp3", "webm" or "raw"
    encoding: str  # "linear16", "mulaw", ... for PCM; the container or codec name otherwise
    sample_rate: int | None
    channels: int
    bits_per_sample: int | None
    byte_rate: int  # bytes per second of audio (exact for PCM, nominal for compressed)
    header_len: int = 0  # container bytes before the first audio byte (WAV only)
    sample_codec: str | None = None

    @property
    def frame_bytes(self) -> int:
        """Bytes per sample frame (all channels) for decodable PCM, else 1."""
        if self.sample_codec is None or not self.bits_per_sample:
            return 1
        return max(1, self.bits_per_sample // 8) * self.channels


@dataclass(frozen=True, slots=True)
class Sniff:
    """Result of :func:`sniff`: a format, or ``need_more`` (a valid prefix so far), or neither
    (undecodable: Deepgram answers 1008 DATA-0000)."""

    format: AudioFormat | None
    need_more: bool = False


_NEED_MORE = Sniff(None, need_more=True)
_UNKNOWN = Sniff(None)


def sniff(head: bytes) -> Sniff:
    """Identify the container from the first bytes of a stream (as many as have arrived)."""
    if not head:
        return _NEED_MORE
    if head[:4] == b"RIFF"[: len(head[:4])] and len(head) < 12:
        return _NEED_MORE
    if head[:4] == b"RIFF":
        return _sniff_wav(head) if head[8:12] == b"WAVE" else _UNKNOWN
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return Sniff(_container(name))
        if len(head) < len(magic) and magic.startswith(head):
            return _NEED_MORE
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0 and (head[1] & 0x06) != 0:
        return Sniff(_container("mp3"))  # MPEG audio frame sync (layer bits != 00)
    if len(head) == 1 and head[0] == 0xFF:
        return _NEED_MORE
    return _UNKNOWN


def _container(name: str) -> AudioFormat:
    return AudioFormat(
        container=name,
        encoding=name,
        sample_rate=None,
        channels=1,
        bits_per_sample=None,
        byte_rate=_CONTAINER_BYTE_RATE[name],
    )


def _sniff_wav(head: bytes) -> Sniff:
    """Walk the RIFF chunks up to ``data``; the ``fmt `` chunk gives rate, channels and width."""
    fmt: tuple[int, int, int, int, int] | None = None  # tag, channels, rate, byte_rate, bits
    off = 12
    while True:
        if off + 8 > len(head):
            return _NEED_MORE if len(head) < MAX_HEADER_BYTES else _UNKNOWN
        chunk_id = head[off : off + 4]
        (size,) = struct.unpack_from("<I", head, off + 4)
        body = off + 8
        if chunk_id == b"data":
            if fmt is None:
                return _UNKNOWN
            return _wav_format(fmt, header_len=body)
        if chunk_id == b"fmt ":
            if size < 16:
                return _UNKNOWN
            if body + size > len(head):
                return _NEED_MORE if len(head) < MAX_HEADER_BYTES else _UNKNOWN
            tag, channels, rate, byte_rate, _align, bits = struct.unpack_from("<HHIIHH", head, body)
            if tag == 0xFFFE and size >= 26:  # WAVE_FORMAT_EXTENSIBLE: the sub-format GUID starts with the tag
                (tag,) = struct.unpack_from("<H", head, body + 24)
            if not (1 <= channels <= 64 and 1000 <= rate <= 384_000):
                return _UNKNOWN  # nonsense, and a 1 Hz "rate" would turn each byte into seconds
            fmt = (tag, channels, rate, byte_rate, bits)
        off = body + size + (size & 1)  # chunks are padded to even sizes


def _wav_format(fmt: tuple[int, int, int, int, int], *, header_len: int) -> Sniff:
    tag, channels, rate, byte_rate, bits = fmt
    codec: str | None
    encoding: str
    if tag == 1 and bits == 16:
        codec, encoding = "s16", "linear16"
    elif tag == 1 and bits == 32:
        codec, encoding = "s32", "linear32"
    elif tag == 1 and bits == 8:
        codec, encoding = "u8", "linear8"
    elif tag == 3 and bits == 32:
        codec, encoding = "f32", "float32"
    elif tag == 7:
        codec, encoding, bits = "mulaw", "mulaw", 8
    elif tag == 6:
        codec, encoding, bits = "alaw", "alaw", 8
    else:
        codec, encoding = None, f"wav-format-{tag}"
    if codec is not None:
        byte_rate = rate * channels * max(1, bits // 8)  # exact; the header's own field may lie
    byte_rate = max(byte_rate, 1000)
    return Sniff(
        AudioFormat(
            container="wav",
            encoding=encoding,
            sample_rate=rate,
            channels=channels,
            bits_per_sample=bits or None,
            byte_rate=byte_rate,
            header_len=header_len,
            sample_codec=codec,
        )
    )


def raw_format(encoding: str, sample_rate: int, channels: int = 1) -> AudioFormat:
    """The format of a headerless stream described by Deepgram's query parameters."""
    if encoding in _PCM_WIDTH:
        width = _PCM_WIDTH[encoding]
        codec = {"linear16": "s16", "linear32": "s32", "mulaw": "mulaw", "alaw": "alaw"}[encoding]
        return AudioFormat(
            container="raw",
            encoding=encoding,
            sample_rate=sample_rate,
            channels=channels,
            bits_per_sample=width * 8,
            byte_rate=sample_rate * channels * width,
            sample_codec=codec,
        )
    if encoding in _COMPRESSED_BYTE_RATE:
        return AudioFormat(
            container="raw",
            encoding=encoding,
            sample_rate=sample_rate,
            channels=channels,
            bits_per_sample=None,
            byte_rate=_COMPRESSED_BYTE_RATE[encoding],
        )
    raise ValueError(f"unsupported encoding {encoding!r}")


# --- sample decoding ---------------------------------------------------------------------------


def _ulaw(byte: int) -> int:
    u = ~byte & 0xFF
    t = ((u & 0x0F) << 3) + 0x84
    t <<= (u & 0x70) >> 4
    return (0x84 - t) if u & 0x80 else (t - 0x84)


def _alaw(byte: int) -> int:
    a = byte ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if a & 0x80 else -t


_ULAW_TABLE: tuple[int, ...] = tuple(_ulaw(b) for b in range(256))
_ALAW_TABLE: tuple[int, ...] = tuple(_alaw(b) for b in range(256))


def _samples(data: bytes, codec: str) -> list[int] | array[int] | array[float]:
    """Decode whole samples to a 16-bit scale (floats for f32). ``data`` is frame-aligned."""
    if codec == "s16":
        a16 = array("h", data)
        if sys.byteorder == "big":
            a16.byteswap()
        return a16
    if codec == "s32":
        a32 = array("i", data)
        if sys.byteorder == "big":
            a32.byteswap()
        return [s >> 16 for s in a32]
    if codec == "f32":
        af = array("f", data)
        if sys.byteorder == "big":
            af.byteswap()
        return array("f", (s * 32767.0 if math.isfinite(s) else 0.0 for s in af))
    if codec == "u8":
        return [(b - 128) << 8 for b in data]
    if codec == "mulaw":
        return [_ULAW_TABLE[b] for b in data]
    if codec == "alaw":
        return [_ALAW_TABLE[b] for b in data]
    raise ValueError(f"unknown sample codec {codec!r}")


@dataclass(slots=True)
class Levels:
    """Running RMS and zero-crossing statistics of one channel."""

    sum_sq: float = 0.0
    count: int = 0
    crossings: int = 0
    last_negative: bool | None = None

    def add(self, samples: list[int] | array[int] | array[float], step: int = 1) -> None:
        mono = samples[::step] if step > 1 else samples
        if not mono:
            return
        self.sum_sq += float(sum(s * s for s in mono))
        prev = self.last_negative
        for s in mono:
            neg = s < 0
            if prev is not None and neg != prev:
                self.crossings += 1
            prev = neg
        self.last_negative = prev
        self.count += len(mono)

    @property
    def rms(self) -> float:
        return math.sqrt(self.sum_sq / self.count) if self.count else 0.0

    @property
    def zcr(self) -> float:
        return self.crossings / self.count if self.count else 0.0


def levels(data: bytes, codec: str = "s16", channels: int = 1) -> Levels:
    """RMS / zero-crossing levels of a chunk (channel 0 only); a trailing partial frame is ignored."""
    width = {"s16": 2, "s32": 4, "f32": 4}.get(codec, 1)
    frame = width * max(1, channels)
    out = Levels()
    out.add(_samples(data[: len(data) - len(data) % frame], codec), step=max(1, channels))
    return out


def pcm16_rms(chunk: bytes) -> float:
    """RMS of little-endian signed 16-bit PCM (0.0 for an empty chunk)."""
    return levels(chunk, "s16").rms


def is_speech(lv: Levels) -> bool:
    """Energy without noise: loud enough, and not crossing zero like white noise does."""
    return lv.count > 0 and lv.rms >= SPEECH_MIN_RMS and lv.zcr <= SPEECH_MAX_ZCR


# --- audio time ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Span:
    """A stretch of audio time. ``speech`` is None when the audio is not decodable PCM."""

    start_s: float
    duration_s: float
    speech: bool | None
    rms: float | None = None


class SpanCutter:
    """Feeds audio *data* bytes (header already stripped) and cuts them into spans of
    ``interval_s`` seconds of audio, each with a speech/silence verdict."""

    def __init__(self, fmt: AudioFormat, interval_s: float) -> None:
        self.format = fmt
        frame = fmt.frame_bytes
        self._frame = frame
        self._span_bytes = max(frame, round(interval_s * fmt.byte_rate / frame) * frame)
        self.audio_bytes = 0  # data bytes received so far
        self._span_start_bytes = 0  # where the pending span starts
        self._carry = b""  # a partial sample frame waiting for its other bytes
        self._levels = Levels()

    @property
    def audio_s(self) -> float:
        """Seconds of audio received so far."""
        return self.audio_bytes / self.format.byte_rate

    @property
    def pending_s(self) -> float:
        return (self.audio_bytes - self._span_start_bytes) / self.format.byte_rate

    def feed(self, data: bytes) -> list[Span]:
        spans: list[Span] = []
        view = memoryview(data)
        while view:
            room = self._span_start_bytes + self._span_bytes - self.audio_bytes
            take = view[:room]
            view = view[room:]
            self._measure(bytes(take))
            self.audio_bytes += len(take)
            if self.audio_bytes - self._span_start_bytes >= self._span_bytes:
                spans.append(self._cut())
        return spans

    def flush(self) -> Span:
        """Cut the pending (possibly empty) partial span, as Finalize and CloseStream do."""
        return self._cut()

    def _measure(self, chunk: bytes) -> None:
        codec = self.format.sample_codec
        if codec is None:
            return
        data = self._carry + chunk
        usable = len(data) - len(data) % self._frame
        self._carry = data[usable:]
        if usable:
            self._levels.add(_samples(data[:usable], codec), step=self.format.channels)

    def _cut(self) -> Span:
        rate = self.format.byte_rate
        start = self._span_start_bytes / rate
        duration = (self.audio_bytes - self._span_start_bytes) / rate
        lv = self._levels
        if self.format.sample_codec is None:
            span = Span(start, duration, None)
        else:
            span = Span(start, duration, is_speech(lv), lv.rms)
        self._span_start_bytes = self.audio_bytes
        self._levels = Levels()
        return span
