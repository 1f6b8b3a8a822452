"""The article's Alternative: POST the same speech to Deepgram's REST /v1/listen.

Theory of operation: one HTTP/1.1 POST (h11, sans-I/O, like the Upgrade) of the bundled WAV to the
target's host with the streaming URL's path and query, ``https`` for a ``wss`` target and ``http``
for ``ws``, ``Authorization: Token <key>``, on the probes' one connection
(:func:`wsdoctor.probes.connect.open_connection`): the same trust, ``--resolve``, DNS and proxy
route as the WebSocket probes -- a CONNECT tunnel for https, an absolute-form request to the proxy
for plain http, as HTTP clients do. Every step is bounded, the whole exchange by
``--connect-timeout`` + 10 s, the head by 64 KiB and the body by 1 MiB. The answer is kept:
status, ``dg-request-id``/``dg-error``, the transcript. When streaming fails and this works, the
report recommends REST for pre-recorded audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
from dataclasses import dataclass

import h11

from wsdoctor import __version__, deepgram
from wsdoctor.check import Context
from wsdoctor.model import Outcome
from wsdoctor.probes.connect import ConnectFailed, Connection, open_connection
from wsdoctor.probes.http1 import PeerClosed, client, next_event
from wsdoctor.probes.transport import classify_oserror, error_text
from wsdoctor.record import Record

__all__ = ["RestObservation", "post_audio"]

MAX_BODY = 1 << 20


@dataclass(frozen=True, slots=True)
class RestObservation(Record):
    url: str
    outcome: Outcome  # ANSWERED, or how the connection failed
    status: int | None = None
    time_s: float | None = None
    request_id: str | None = None
    dg_error: str | None = None
    server: str | None = None
    transcript: str | None = None
    audio_duration_s: float | None = None
    body_excerpt: str | None = None
    error: str | None = None
    #: why a 200's body could not be read as a transcript (not JSON, the wrong shape), else None
    body_problem: str | None = None


def rest_url(ctx: Context) -> str:
    target = ctx.target
    scheme = "https" if target.tls else "http"
    return f"{scheme}://{target.host_header}{target.resource}"


async def post_audio(ctx: Context) -> RestObservation:
    """POST the bundled speech to ``/v1/listen`` on the connection the factory opens. Never raises
    for the network or the peer: every failure is the observation's ``outcome`` and ``error``."""
    options, target = ctx.options, ctx.target
    shown = urllib.parse.urlunsplit(
        urllib.parse.urlsplit(target.url)._replace(scheme="https" if target.tls else "http")
    )
    body = options.audio_path.read_bytes()
    # A 3 s clip transcribes in about a second; 10 s more than the connect bound is generous and
    # keeps a server that drips its answer (slowloris) from holding the run.
    budget = ctx.timeout(options.connect_timeout_s + 10.0)
    t0 = ctx.clock()
    conn: Connection | None = None
    try:
        async with asyncio.timeout(budget):
            conn = await open_connection(ctx, tunnel=False)
            status, headers, raw = await _exchange(conn, _request(ctx, conn, len(body)), body, budget)
    except ConnectFailed as exc:
        return RestObservation(url=shown, outcome=exc.outcome, time_s=round(ctx.clock() - t0, 6), error=exc.error)
    except PeerClosed as exc:
        return RestObservation(url=shown, outcome=Outcome.EOF, time_s=round(ctx.clock() - t0, 6), error=str(exc))
    except (OSError, TimeoutError, h11.ProtocolError) as exc:
        outcome = Outcome.PROTOCOL_ERROR if isinstance(exc, h11.ProtocolError) else classify_oserror(exc)
        error = f"not a valid HTTP answer: {exc}" if outcome is Outcome.PROTOCOL_ERROR else error_text(exc, outcome)
        if isinstance(exc, TimeoutError):
            error = f"no complete answer within {budget:.1f} s"
        return RestObservation(url=shown, outcome=outcome, time_s=round(ctx.clock() - t0, 6), error=error[:300])
    finally:
        if conn is not None:
            await conn.aclose()
    elapsed = round(ctx.clock() - t0, 6)
    text = raw.decode("utf-8", "replace")
    transcript = duration = problem = None
    if status == 200:
        transcript, duration, problem = _transcript(text)
    return RestObservation(
        url=shown,
        outcome=Outcome.ANSWERED,
        status=status,
        time_s=elapsed,
        request_id=headers.get(deepgram.HEADER_REQUEST_ID),
        dg_error=headers.get(deepgram.HEADER_ERROR),
        server=headers.get("server"),
        transcript=transcript,
        audio_duration_s=duration,
        body_excerpt=text[:500] if status != 200 or problem else None,
        body_problem=problem,
    )


def _request(ctx: Context, conn: Connection, length: int) -> h11.Request:
    target = ctx.target
    headers = [
        ("Host", target.host_header),
        ("User-Agent", f"wsdoctor/{__version__}"),
        ("Content-Type", "audio/wav"),
        ("Content-Length", str(length)),
        ("Connection", "close"),
    ]
    if ctx.api_key is not None:
        key = ctx.api_key.reveal()
        scheme = deepgram.AUTH_SCHEME_TOKEN if deepgram.key_shape(key).jwt else deepgram.AUTH_SCHEME_KEY
        headers.append(("Authorization", f"{scheme} {key}"))
    resource = target.resource
    if conn.route.absolute_form:
        # plain http through a proxy: one absolute-form request *to the proxy*, its credentials on it
        resource = f"http://{target.host_header}{target.resource}"
        if conn.route.proxy_authorization:
            headers.append(("Proxy-Authorization", conn.route.proxy_authorization))
    return h11.Request(method="POST", target=resource, headers=headers)


async def _exchange(
    conn: Connection, request: h11.Request, body: bytes, budget: float
) -> tuple[int, dict[str, str], bytes]:
    """Send the request, read the answer: (status, headers by lower-case name, body up to
    MAX_BODY), within ``budget`` seconds; the sizes are bounded here."""
    h = client()
    conn.writer.write(h.send(request) + h.send(h11.Data(data=body)) + h.send(h11.EndOfMessage()))
    with contextlib.suppress(OSError):  # a server may answer (401, 413) and close before reading the
        await conn.writer.drain()  # body: read what it said
    response: h11.Response | None = None
    raw = b""
    deadline = asyncio.get_running_loop().time() + budget
    while len(raw) < MAX_BODY:
        event = await next_event(h, conn.reader, deadline, what="answer to the POST")
        if isinstance(event, h11.Response):
            response = event
        elif isinstance(event, h11.Data):
            raw += bytes(event.data)[: MAX_BODY - len(raw)]
        elif not isinstance(event, h11.InformationalResponse):
            break  # the end of the answer (EndOfMessage, ConnectionClosed, PAUSED)
    if response is None:
        raise ConnectionResetError("the connection closed before an HTTP answer")
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers}
    return response.status_code, headers, raw


def _transcript(text: str) -> tuple[str | None, float | None, str | None]:
    """(transcript, audio duration, what is wrong with the body) of a pre-recorded response. The body
    is the peer's choice: any JSON, any shape, read defensively; a wrong one is a fact, not a crash."""
    import json

    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return None, None, "nested too deep to parse" if isinstance(exc, RecursionError) else "not valid JSON"
    if not isinstance(data, dict):
        return None, None, f"not a JSON object but {type(data).__name__}"
    results = data.get("results")
    channels = results.get("channels") if isinstance(results, dict) else None
    channel = channels[0] if isinstance(channels, list) and channels else None
    alternatives = channel.get("alternatives") if isinstance(channel, dict) else None
    alt = alternatives[0] if isinstance(alternatives, list) and alternatives else None
    if not isinstance(alt, dict) or not isinstance(alt.get("transcript"), str):
        return None, None, "no results.channels[0].alternatives[0].transcript string"
    metadata = data.get("metadata")
    duration = metadata.get("duration") if isinstance(metadata, dict) else None
    seconds = float(duration) if isinstance(duration, int | float) and not isinstance(duration, bool) else None
    return alt["transcript"][:500], seconds, None
