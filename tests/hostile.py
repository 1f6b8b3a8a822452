"""A Deepgram impostor for report-safety tests, and a helper that runs wsdoctor against it.

The server speaks enough of Deepgram's protocol for every check to get far (401 without a key, 101
with it, Results for audio, a close after a second of audio, a REST answer), but every string it
controls is hostile: HTML that would run (``<script>``, ``</script><img onerror>``), ANSI/OSC
escape sequences (colour, screen clear, window title), a C1 CSI, bidi overrides and NULs -- in
headers, the error body, ``dg-request-id``, transcripts and the close reason. It also echoes the
client's credential back (``Token <key>`` in a header, the bare key in a transcript and the close
reason), so a test can prove the key reaches no output even when the server repeats it.

It listens on 127.0.0.1, port 0, in a thread with its own event loop; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

SCRIPT = "<script>alert(1)</script>"
BREAKOUT = "</script><img src=x onerror=alert(2)>"
ANSI = "\x1b[31m\x1b[2J\x1b]0;pwned\x07"
BIDI = "\u202e"
NUL = "\x00"
#: What may pass a header (h11 accepts only visible ASCII and bytes >= 0x80): markup and a C1 CSI.
HEADER_EVIL = f"{BREAKOUT} \x9b2J"
#: A test key that matches none of the secret *shapes*: only the known-secret net can catch it.
KEY = "wsdoctorTestKey_q9Vw3Xz7Lm2Rt5"


def transcript(key: str) -> str:
    return f"{SCRIPT}{BREAKOUT}{ANSI}{NUL}{BIDI}evil transcript; you sent {key}"


def close_reason(key: str) -> str:
    reason = f"{BREAKOUT}\x1b[2J{NUL}{key}"
    assert len(reason.encode()) <= 123, "a close reason must fit in a control frame"
    return reason


def _request_id(n: int) -> str:
    return f"{SCRIPT}-{n}"


def _hostile_headers(request: web.BaseRequest, n: int) -> dict[str, str]:
    return {
        "dg-request-id": _request_id(n),
        "X-Evil": HEADER_EVIL,
        "X-Echo-Authorization": request.headers.get("Authorization", "none"),
        "Set-Cookie": f"session={KEY}",
        "Server": f"{SCRIPT} \x9b31m",
    }


class HostileServer:
    """``with HostileServer(key) as srv: srv.url``"""

    def __init__(self, key: str = KEY) -> None:
        self.key = key
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="hostile-server", daemon=True)
        self._count = 0
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/listen"

    def __enter__(self) -> HostileServer:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("hostile server did not start within 10 s")
        if self._error is not None:
            raise RuntimeError(f"hostile server failed to start: {self._error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # surfaced by __enter__
            self._error = exc
            self._started.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_get("/v1/listen", self._listen)
        app.router.add_post("/v1/listen", self._rest)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            await self._runner.cleanup()

    def _next(self) -> int:
        self._count += 1
        return self._count

    async def _listen(self, request: web.Request) -> web.StreamResponse:
        n = self._next()
        headers = _hostile_headers(request, n)
        if request.headers.get("Authorization") != f"Token {self.key}":
            body = {"err_code": SCRIPT, "err_msg": f"{ANSI}{NUL}{BREAKOUT} bad key", "request_id": _request_id(n)}
            headers["dg-error"] = HEADER_EVIL
            return web.json_response(body, status=401, headers=headers)
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=8 * 1024 * 1024)
        ws.headers.update(headers)
        await ws.prepare(request)
        audio_bytes = 0
        sent_results = False
        try:
            async with asyncio.timeout(30):
                async for msg in ws:
                    if msg.type == WSMsgType.BINARY:
                        audio_bytes += len(msg.data)
                        if not sent_results:
                            sent_results = True
                            await ws.send_str(json.dumps(self._results(n)))
                        if audio_bytes > 32_000:  # about a second of 16 kHz 16-bit audio
                            await ws.close(code=1011, message=close_reason(self.key).encode())
                            break
                    elif msg.type == WSMsgType.TEXT and "CloseStream" in msg.data:
                        await ws.send_str(json.dumps(self._results(n)))
                        await ws.close(code=1011, message=close_reason(self.key).encode())
                        break
                    elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                        break
        except TimeoutError:
            pass
        if not ws.closed:
            await ws.close(code=1011, message=close_reason(self.key).encode())
        return ws

    def _results(self, n: int) -> dict[str, Any]:
        return {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": 1.0,
            "start": 0.0,
            "is_final": True,
            "speech_final": True,
            "from_finalize": False,
            "channel": {"alternatives": [{"transcript": transcript(self.key), "confidence": 0.9, "words": []}]},
            "metadata": {"request_id": _request_id(n), "model_uuid": SCRIPT, "model_info": {"name": ANSI}},
        }

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        n = self._next()
        await request.read()
        body = {
            "metadata": {"request_id": _request_id(n)},
            "results": {"channels": [{"alternatives": [{"transcript": transcript(self.key)}]}]},
        }
        return web.json_response(body, headers=_hostile_headers(request, n))


@dataclass(frozen=True)
class Outputs:
    """Everything one ``wsdoctor run`` against the hostile server produced."""

    returncode: int
    stdout: str
    stderr: str
    json_text: str
    html_text: str
    junit_text: str


def run_wsdoctor(tmp: Path, url: str, key: str = KEY, *extra: str, timeout: float = 120) -> Outputs:
    """``wsdoctor run URL --quick`` with the key in the environment and every report format."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"}}
    env.update({"DEEPGRAM_API_KEY": key, "NO_PROXY": "*", "COLUMNS": "100"})
    paths = {name: tmp / f"report.{name}" for name in ("json", "html", "xml")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "wsdoctor",
            "run",
            url,
            "--quick",
            "--json",
            str(paths["json"]),
            "--html",
            str(paths["html"]),
            "--junit",
            str(paths["xml"]),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
        errors="surrogateescape",
    )
    read = {name: p.read_text(encoding="utf-8") if p.exists() else "" for name, p in paths.items()}
    return Outputs(proc.returncode, proc.stdout, proc.stderr, read["json"], read["html"], read["xml"])
