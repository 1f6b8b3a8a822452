"""The mock's streaming text-to-speech endpoint (``/v1/speak``), as Deepgram serves it.

From :mod:`wsdoctor.deepgram` (DOCS_TTS_FLUSH) and the official SDK's speak.v1 types (every message
is validated against them in tests/test_mock_speak.py):

- the upgrade passes the same credential check and reject-* faults as /v1/listen;
- ``Metadata`` first (``request_id``, model name, version and uuid);
- ``Speak`` text is buffered; ``Flush`` turns the buffer into binary audio (silent linear16 at
  ``sample_rate``, ~60 ms per character, in 20 ms frames) followed by ``Flushed`` with the next
  ``sequence_id``; ``Clear`` drops the buffer and answers ``Cleared``; ``Close`` flushes what is left
  and closes with 1000;
- faults: the reject-* faults at the upgrade; ``drop-no-close`` and ``rst`` end TCP at the first
  Flush without a close frame; ``never-close-reply`` ignores Close; ``slow-results`` holds the audio
  back by ``slow_results_delay_s``; ``tts-mute`` answers Flush with Flushed and no audio;
- more than 20 Flush messages in 60 s: a ``Warning`` instead of audio (the docs say a warning comes;
  its code and wording are not captured anywhere public: the mock's own).
"""

from __future__ import annotations

import asyncio
import collections

from aiohttp import WSMsgType, web

from wsdoctor import deepgram
from wsdoctor.mock import messages
from wsdoctor.mock.endpoint import Opened, client_message, cut, open_socket, serving

__all__ = ["SPEAK_MODEL", "Speaker", "speak_get"]

SPEAK_MODEL = ("aura-2-thalia-en", "2025-04-07.0", "ecb76e9d-f2db-4127-8060-79b05590d22f")
SECONDS_PER_CHAR = 0.06
FRAME_S = 0.02


class Speaker:
    """The messages of one TTS stream (pure: tests drive it without sockets)."""

    def __init__(self, request_id: str, sample_rate: int = 24000) -> None:
        self.request_id = request_id
        self.sample_rate = sample_rate
        self.text: list[str] = []
        self.flushed = 0
        self.cleared = 0
        self.flush_times: collections.deque[float] = collections.deque()

    def metadata(self) -> messages.JSONDict:
        name, version, uuid = SPEAK_MODEL
        return {
            "type": "Metadata",
            "request_id": self.request_id,
            "model_name": name,
            "model_version": version,
            "model_uuid": uuid,
        }

    def speak(self, text: str) -> None:
        if sum(len(t) for t in self.text) < 100_000:
            self.text.append(text[:2000])

    def flush(self, now: float) -> list[bytes | messages.JSONDict]:
        """Audio for the buffered text, then Flushed; a Warning past the limit."""
        while self.flush_times and now - self.flush_times[0] > deepgram.SPEAK_FLUSH_WINDOW_S:
            self.flush_times.popleft()
        if len(self.flush_times) >= deepgram.SPEAK_FLUSH_LIMIT:
            return [
                {
                    "type": "Warning",
                    "code": "FLUSH_LIMIT_EXCEEDED",
                    "description": f"Flush is limited to {deepgram.SPEAK_FLUSH_LIMIT} messages per "
                    f"{deepgram.SPEAK_FLUSH_WINDOW_S:g} seconds; this one was not processed.",
                }
            ]
        self.flush_times.append(now)
        chars = sum(len(t) for t in self.text)
        self.text = []
        frame = b"\x00\x00" * int(self.sample_rate * FRAME_S)
        frames = max(0, round(chars * SECONDS_PER_CHAR / FRAME_S))
        out: list[bytes | messages.JSONDict] = [frame] * frames
        out.append({"type": "Flushed", "sequence_id": self.flushed})
        self.flushed += 1
        return out

    def clear(self) -> messages.JSONDict:
        self.text = []
        out: messages.JSONDict = {"type": "Cleared", "sequence_id": self.cleared}
        self.cleared += 1
        return out


async def _send(ws: web.WebSocketResponse, items: list[bytes | messages.JSONDict]) -> None:
    for item in items:
        if isinstance(item, bytes):
            await ws.send_bytes(item)
        else:
            await ws.send_json(item)


async def speak_get(request: web.Request) -> web.StreamResponse:
    """GET /v1/speak."""
    import time

    opened = await open_socket(request)
    if not isinstance(opened, Opened):
        return opened
    mock, request_id, ws = opened.mock, opened.request_id, opened.ws
    rate = request.query.get("sample_rate", "")
    fault = mock.config.fault
    speaker = Speaker(request_id, int(rate) if rate.isdigit() and 8000 <= int(rate) <= 48000 else 24000)
    async with serving(ws):
        await ws.send_json(speaker.metadata())
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            kind, obj = client_message(msg.data)
            if kind == deepgram.SpeakMessage.SPEAK and isinstance(obj.get("text"), str):
                speaker.speak(obj["text"])
            elif kind == deepgram.SpeakMessage.FLUSH:
                if fault in ("drop-no-close", "rst"):
                    cut(request, reset=fault == "rst")  # TCP ends mid-stream, no close frame
                    break
                answer = speaker.flush(time.monotonic())
                if fault == "tts-mute":
                    answer = [item for item in answer if not isinstance(item, bytes)]
                elif fault == "slow-results" and any(isinstance(item, bytes) for item in answer):
                    await asyncio.sleep(mock.config.slow_results_delay_s)  # the audio is late
                await _send(ws, answer)
            elif kind == deepgram.SpeakMessage.CLEAR:
                await ws.send_json(speaker.clear())
            elif kind == deepgram.SpeakMessage.CLOSE:
                if fault == "never-close-reply":
                    continue  # ignored: the stream stays open
                if speaker.text:
                    await _send(ws, speaker.flush(time.monotonic()))
                await ws.close(code=deepgram.CLOSE_NORMAL)
                break
    return ws
