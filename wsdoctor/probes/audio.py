"""Real speech audio for the stream probes, paced at real time.

Deepgram expects live audio at about real-time speed (it accepts up to ~1.25x); sending faster
measures a different system. The WAV container is sent as-is (header first), so Deepgram -- and
the mock -- detect the format without ``encoding`` parameters.
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from wsdoctor.errors import UsageError

__all__ = ["SpeechAudio", "load_wav", "stream_realtime"]

CHUNK_S = 0.1  # 100 ms per frame: what Deepgram's examples send


@dataclass(frozen=True, slots=True)
class SpeechAudio:
    header: bytes  # the WAV header (everything before the PCM data)
    pcm: bytes
    bytes_per_s: int

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / self.bytes_per_s

    def chunks(self, seconds: float | None = None) -> list[bytes]:
        """100 ms chunks of the first ``seconds`` of audio; the header rides on the first one."""
        size = max(2, int(self.bytes_per_s * CHUNK_S) // 2 * 2)
        pcm = self.pcm if seconds is None else self.pcm[: int(self.bytes_per_s * seconds) // 2 * 2]
        out = [pcm[i : i + size] for i in range(0, len(pcm), size)] or [b""]
        out[0] = self.header + out[0]
        return out


def load_wav(path: Path) -> SpeechAudio:
    try:
        raw = path.read_bytes()
        with wave.open(str(path), "rb") as w:
            frames = w.readframes(w.getnframes())
            bytes_per_s = w.getframerate() * w.getnchannels() * w.getsampwidth()
    except (OSError, wave.Error, EOFError) as exc:
        raise UsageError(f"cannot read audio {str(path)!r}: {exc}") from None
    data_at = raw.find(frames[:64]) if frames else len(raw)
    header = raw[:data_at] if data_at > 0 else raw[:44]
    return SpeechAudio(header=header, pcm=frames, bytes_per_s=bytes_per_s)


async def stream_realtime(
    chunks: list[bytes], send: Callable[[bytes], Awaitable[bool]], *, chunk_s: float = CHUNK_S
) -> int:
    """Send ``chunks`` one every ``chunk_s`` seconds (drift-free); stop early if a send fails.

    Returns the number of chunks sent."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i, chunk in enumerate(chunks):
        delay = start + i * chunk_s - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if not await send(chunk):
            return i
    return len(chunks)
