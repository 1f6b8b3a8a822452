"""The mock's Flux endpoint (``/v2/listen``): conversational speech-to-text, as Deepgram serves it.

What it does, from :mod:`wsdoctor.deepgram` and the official SDK's listen.v2 types (every message is
validated against them in tests/test_mock_flux.py):

- the upgrade passes the same credential check and reject-* faults as /v1/listen;
- ``Connected`` first (``request_id``, ``sequence_id`` 0), every message numbered by ``sequence_id``;
- audio: a ``TurnInfo`` for every ``FLUX_UPDATE_S`` of audio -- ``StartOfTurn`` then ``Update``s,
  with the canned sentence as transcript;
- ``CloseStream``: the open turn ends (``EndOfTurn``, ``trigger`` "model"), then close 1000;
- the v1 JSON ``KeepAlive``: the connection ends with a close frame that carries no code -- clients
  report 1005 (deepgram.FLUX_KEEPALIVE_1005);
- faults (``--fault``): the reject-* faults at the upgrade; ``drop-no-close`` and ``rst`` end TCP
  after ``fault_after_s`` of audio without a close frame; ``never-close-reply`` ignores CloseStream;
  ``close-1011-net0000`` sends an ``Error`` (INTERNAL_SERVER_ERROR, the SDK type's example) and closes 1011;
- silence: WebSocket pings keep it open; after ``FLUX_IDLE_TIMEOUT_S`` (``--idle-timeout`` scales it)
  without audio or a ping, an ``Error`` with code ``INACTIVE_CLIENT`` (deepgram.FLUX_INACTIVE_CLIENT),
  then close 1011 (the code after it is not captured anywhere public: the mock's choice).

It is a plain aiohttp WebSocket handler (its few faults inline, the socket's opening and ending
from :mod:`wsdoctor.mock.endpoint`): Flux needs none of the machinery of /v1/listen's session.
"""

from __future__ import annotations

import asyncio

from aiohttp import WSMsgType, web

from wsdoctor import deepgram
from wsdoctor.mock import messages
from wsdoctor.mock.endpoint import Opened, client_message, cut, open_socket, scaled_window, send_empty_close, serving

__all__ = ["FLUX_UPDATE_S", "flux_get", "flux_messages"]

FLUX_UPDATE_S = 0.5  # audio seconds per TurnInfo
DRAIN_S = 1.0  # after a cut, how long the handler stays (reading nothing) before it lets go
_BYTES_PER_S_DEFAULT = 32000  # linear16, 16 kHz, mono: Flux's documented default input


class _Turns:
    """The sequence of server messages of one Flux stream (pure: tests build it without sockets)."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.sequence_id = 0
        self.turn_index = 0
        self.in_turn = False
        self.audio_s = 0.0
        self.turn_start_s = 0.0
        self.words: list[messages.Word] = []
        self.source = messages.WordSource()

    def _numbered(self, body: messages.JSONDict) -> messages.JSONDict:
        out: messages.JSONDict = {**body, "sequence_id": self.sequence_id}
        self.sequence_id += 1
        return out

    def error(self, code: str, description: str) -> messages.JSONDict:
        return self._numbered({"type": "Error", "code": code, "description": description})

    def connected(self) -> messages.JSONDict:
        return self._numbered({"type": "Connected", "request_id": self.request_id})

    def _turn_info(self, event: str, *, trigger: str | None = None) -> messages.JSONDict:
        body: messages.JSONDict = {
            "type": "TurnInfo",
            "request_id": self.request_id,
            "event": event,
            "turn_index": self.turn_index,
            "audio_window_start": round(self.turn_start_s, 3),
            "audio_window_end": round(self.audio_s, 3),
            "transcript": messages.transcript_of(self.words),
            "words": [{"word": w.word, "confidence": w.confidence, "start": w.start, "end": w.end} for w in self.words],
            "end_of_turn_confidence": 0.9 if event == "EndOfTurn" else 0.1,
        }
        if trigger is not None:
            body["trigger"] = trigger
        return self._numbered(body)

    def audio(self, seconds: float) -> list[messages.JSONDict]:
        """TurnInfo for the audio just received, once per FLUX_UPDATE_S of it."""
        out = []
        before = self.audio_s
        self.audio_s += seconds
        while int(self.audio_s / FLUX_UPDATE_S) > int(before / FLUX_UPDATE_S):
            before = (int(before / FLUX_UPDATE_S) + 1) * FLUX_UPDATE_S
            self.words += self.source.take(before - FLUX_UPDATE_S, FLUX_UPDATE_S)
            if not self.in_turn:
                self.in_turn = True
                self.turn_start_s = before - FLUX_UPDATE_S
                out.append(self._turn_info("StartOfTurn"))
            else:
                out.append(self._turn_info("Update"))
        return out

    def close_stream(self) -> list[messages.JSONDict]:
        """CloseStream: the open turn ends."""
        if not self.in_turn:
            return []
        out = [self._turn_info("EndOfTurn", trigger="model")]
        self.in_turn = False
        self.turn_index += 1
        self.words = []
        return out


def flux_messages(
    audio_s: float, *, request_id: str = "00000000-0000-0000-0000-000000000000"
) -> list[messages.JSONDict]:
    """Every message a Flux stream of ``audio_s`` seconds then CloseStream gets (for schema tests)."""
    turns = _Turns(request_id)
    out = [turns.connected()]
    step = 0.1
    sent = 0.0
    while sent < audio_s:
        out += turns.audio(step)
        sent += step
    return out + turns.close_stream()


async def flux_get(request: web.Request) -> web.StreamResponse:
    """GET /v2/listen."""
    opened = await open_socket(request)
    if not isinstance(opened, Opened):
        return opened
    mock, request_id, ws = opened.mock, opened.request_id, opened.ws
    rate = request.query.get("sample_rate", "")
    bytes_per_s = 2 * int(rate) if rate.isdigit() and int(rate) > 0 else _BYTES_PER_S_DEFAULT
    idle_s = scaled_window(mock, deepgram.FLUX_IDLE_TIMEOUT_S)
    turns = _Turns(request_id)
    fault = mock.config.fault
    await ws.send_json(turns.connected())
    async with serving(ws):
        while True:
            try:
                msg = await ws.receive(timeout=idle_s)
            except TimeoutError:
                await ws.send_json(
                    turns.error(deepgram.FLUX_INACTIVE_CLIENT, "No audio or ping within the timeout window.")
                )
                await ws.close(code=1011)
                break
            if msg.type == WSMsgType.BINARY:
                for body in turns.audio(len(msg.data) / bytes_per_s):
                    await ws.send_json(body)
                if fault == "close-1011-net0000" and turns.audio_s >= mock.config.fault_after_s:
                    # Flux reports a server-side failure as an Error message, then closes.
                    await ws.send_json(turns.error("INTERNAL_SERVER_ERROR", "The server could not process the audio."))
                    await ws.close(code=1011)
                    break
                if fault in ("drop-no-close", "rst") and turns.audio_s >= mock.config.fault_after_s:
                    cut(request, reset=fault == "rst")
                    await asyncio.sleep(DRAIN_S)  # the client sees the end; its last frames are ignored
                    break
            elif msg.type == WSMsgType.TEXT:
                kind, _obj = client_message(msg.data)
                if kind == "CloseStream":
                    if fault == "never-close-reply":
                        continue  # ignored: no EndOfTurn, no close
                    for body in turns.close_stream():
                        await ws.send_json(body)
                    await ws.close(code=deepgram.CLOSE_NORMAL)
                    break
                if kind == deepgram.ClientMessage.KEEPALIVE.value:
                    await send_empty_close(ws)  # what a v1 KeepAlive gets on Flux
                    break
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                break
            # PING is answered by aiohttp (autoping) and, having arrived, reset the idle timer.
    return ws
