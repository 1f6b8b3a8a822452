"""The mock's Voice Agent endpoint (``/v1/agent/converse``), as Deepgram serves it.

From :mod:`wsdoctor.deepgram` (the AGENT_* facts, with their captures) and the official SDK's
agent.v1 types (tests/test_mock_agent.py validates every message against them):

- the upgrade passes the same credential check and reject-* faults as /v1/listen;
- ``Welcome`` (``request_id``) first; the client's ``Settings`` is answered with ``SettingsApplied``;
  audio before Settings is not listened to (the agent has no audio format yet);
- audio: a ``ConversationText`` (role user, the canned sentence) per ``AGENT_TEXT_EVERY_S`` of audio
  (16 kHz linear16 unless Settings says otherwise);
- a text message that is not JSON with a known ``type``: Error UNPARSABLE_CLIENT_MESSAGE, then a
  close frame without a status code (captured);
- no binary audio and no KeepAlive for ``AGENT_IDLE_TIMEOUT_S`` (``--idle-timeout`` scales it, as for
  Flux): Error CLIENT_MESSAGE_TIMEOUT (captured wording), then the same code-less close;
- the client's close frame is answered with 1000; faults: ``drop-no-close``/``rst`` after
  ``fault_after_s`` of audio, ``never-close-reply`` ignores the client's close frame for a while,
  ``slow-results`` applies Settings ``slow_results_delay_s`` late, ``close-1011-net0000`` sends an
  Error (INTERNAL_SERVER_ERROR, the mock's wording) and the code-less close.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import WSMsgType, web

from wsdoctor import deepgram
from wsdoctor.mock import messages
from wsdoctor.mock.endpoint import Opened, client_message, cut, open_socket, scaled_window, send_empty_close, serving

__all__ = ["AGENT_TEXT_EVERY_S", "KNOWN_CLIENT_TYPES", "agent_get", "error"]

AGENT_TEXT_EVERY_S = 1.0
#: The client message types the SDK's agent.v1 client sends (its send_* methods).
KNOWN_CLIENT_TYPES = frozenset(
    {
        "Settings",
        "UpdatePrompt",
        "UpdateListen",
        "UpdateThink",
        "UpdateThinkLive",
        "UpdateSpeak",
        "InjectUserMessage",
        "InjectAgentMessage",
        "InjectDynamicAgentMessage",
        "FunctionCallResponse",
        "KeepAlive",
    }
)


def error(code_and_text: tuple[str, str]) -> messages.JSONDict:
    code, text = code_and_text
    return {"type": "Error", "description": text, "code": code}


def _audio_rate(settings: Any) -> int:
    try:
        rate = settings["audio"]["input"]["sample_rate"]
    except (KeyError, TypeError):
        return 32000
    return 2 * rate if isinstance(rate, int) and 8000 <= rate <= 48000 else 32000


async def agent_get(request: web.Request) -> web.StreamResponse:
    """GET /v1/agent/converse."""
    # the handler answers the client's close (or, never-close-reply, does not)
    opened = await open_socket(request, autoclose=False)
    if not isinstance(opened, Opened):
        return opened
    mock, request_id, ws = opened.mock, opened.request_id, opened.ws
    fault = mock.config.fault
    idle_s = scaled_window(mock, deepgram.AGENT_IDLE_TIMEOUT_S)
    words = messages.WordSource()
    settings: Any = None
    audio_s = 0.0
    texts_sent = 0
    async with serving(ws):
        await ws.send_json({"type": deepgram.AGENT_WELCOME, "request_id": request_id})
        while True:
            try:
                msg = await ws.receive(timeout=idle_s)
            except TimeoutError:
                await ws.send_json(error(deepgram.AGENT_CLIENT_MESSAGE_TIMEOUT))
                await send_empty_close(ws)
                break
            if msg.type == WSMsgType.BINARY:
                if settings is None:
                    continue  # no audio format yet: not listened to
                audio_s += len(msg.data) / _audio_rate(settings)
                while int(audio_s / AGENT_TEXT_EVERY_S) > texts_sent:
                    texts_sent += 1
                    text = messages.transcript_of(words.take(0.0, AGENT_TEXT_EVERY_S))
                    await ws.send_json({"type": "ConversationText", "role": "user", "content": text})
                if fault == "close-1011-net0000" and audio_s >= mock.config.fault_after_s:
                    await ws.send_json(error(("INTERNAL_SERVER_ERROR", "The agent could not process the session.")))
                    await send_empty_close(ws)
                    break
                if fault in ("drop-no-close", "rst") and audio_s >= mock.config.fault_after_s:
                    cut(request, reset=fault == "rst")
                    await asyncio.sleep(1.0)
                    break
            elif msg.type == WSMsgType.TEXT:
                kind, obj = client_message(msg.data)
                if kind not in KNOWN_CLIENT_TYPES:
                    await ws.send_json(error(deepgram.AGENT_UNPARSABLE))
                    await send_empty_close(ws)
                    break
                if kind == deepgram.AGENT_SETTINGS and settings is None:
                    settings = obj
                    if fault == "slow-results":
                        await asyncio.sleep(mock.config.slow_results_delay_s)  # Settings applied late
                    await ws.send_json({"type": deepgram.AGENT_SETTINGS_APPLIED})
            elif msg.type == WSMsgType.CLOSE:
                if fault == "never-close-reply":
                    await asyncio.sleep(idle_s)  # the client waits for a close that does not come
                else:
                    await ws.close(code=deepgram.CLOSE_NORMAL)
                break
            elif msg.type in (WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                break
    return ws
