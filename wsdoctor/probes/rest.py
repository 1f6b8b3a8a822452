"""The article's Alternative: POST the same speech to Deepgram's REST /v1/listen.

Theory of operation: one HTTP POST (aiohttp client) of the bundled WAV to the target's host with
the streaming URL's path and query, ``https`` for a ``wss`` target and ``http`` for ``ws``,
``Authorization: Token <key>``. Same trust as the WebSocket probes (system store + certifi or
``--ca-file``), ``--resolve`` honoured, the same proxy route as the WebSocket probes (``--proxy``,
``--no-proxy`` or the proxy variables, read by :mod:`wsdoctor.probes.proxy`), every step bounded.
The answer is kept: status,
``dg-request-id``/``dg-error``, the transcript. When streaming fails and this works, the report
recommends REST for pre-recorded audio.
"""

from __future__ import annotations

import asyncio
import socket
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wsdoctor import __version__, deepgram
from wsdoctor.check import Context
from wsdoctor.model import JSONValue, Outcome
from wsdoctor.probes.record import from_json
from wsdoctor.probes.wsclient import classify_oserror, tls_context

__all__ = ["RestObservation", "post_audio"]

MAX_BODY = 1 << 20


@dataclass(frozen=True, slots=True)
class RestObservation:
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

    def to_dict(self) -> dict[str, JSONValue]:
        d: dict[str, JSONValue] = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["outcome"] = self.outcome.value
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RestObservation:
        return from_json(cls, d)


def rest_url(ctx: Context) -> str:
    target = ctx.target
    scheme = "https" if target.tls else "http"
    return f"{scheme}://{target.host_header}{target.resource}"


async def post_audio(ctx: Context) -> RestObservation:
    import aiohttp
    from aiohttp.abc import AbstractResolver, ResolveResult

    options, target = ctx.options, ctx.target
    url = rest_url(ctx)
    shown = urllib.parse.urlunsplit(
        urllib.parse.urlsplit(target.url)._replace(scheme="https" if target.tls else "http")
    )

    class OverrideResolver(AbstractResolver):
        """``--resolve``: connect to the given address, keep Host and SNI."""

        def __init__(self, address: str) -> None:
            self.address = address

        async def resolve(
            self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
        ) -> list[ResolveResult]:
            fam = socket.AF_INET6 if ":" in self.address else socket.AF_INET
            return [
                {
                    "hostname": host,
                    "host": self.address,
                    "port": port,
                    "family": fam,
                    "proto": 0,
                    "flags": socket.AI_NUMERICHOST,
                }
            ]

        async def close(self) -> None:
            return None

    from wsdoctor.probes.proxy import route_for

    # The app's route: through the proxy when one applies (aiohttp sends CONNECT for https and an
    # absolute-form request for http), with the proxy URL's userinfo as Proxy-Authorization.
    _decision, proxy = route_for(ctx)
    proxy_url: str | None = None
    proxy_headers: dict[str, str] | None = None
    if proxy is not None:
        host = f"[{proxy.host}]" if ":" in proxy.host else proxy.host
        proxy_addr = options.resolve_for(proxy.host, proxy.port)
        proxy_url = f"http://{proxy_addr or host}:{proxy.port}"
        auth = proxy.authorization()
        if auth is not None:
            proxy_headers = {"Proxy-Authorization": auth}
    override = options.resolve_for(target.host, target.port) if proxy is None else None
    if override is None and proxy is None and not target.is_ip_literal:
        # Our resolver, not aiohttp's: --dns-server is honoured, and getaddrinfo runs in a daemon
        # thread that cannot hold the process past a deadline (netpath.system_getaddrinfo).
        from wsdoctor.probes.netpath import resolve_host

        try:
            override = (await resolve_host(ctx, target.host, target.port))[0]
        except (OSError, TimeoutError) as exc:
            return RestObservation(url=shown, outcome=Outcome.DNS_ERROR, error=f"{type(exc).__name__}: {exc}"[:300])
    connector = aiohttp.TCPConnector(
        ssl=tls_context(options.ca_file) if target.tls else False,
        resolver=OverrideResolver(override) if override else None,
        limit=1,
    )
    headers = {"Content-Type": "audio/wav", "User-Agent": f"wsdoctor/{__version__}"}
    if ctx.api_key is not None:
        key = ctx.api_key.reveal()
        scheme = deepgram.AUTH_SCHEME_TOKEN if deepgram.key_shape(key).jwt else deepgram.AUTH_SCHEME_KEY
        headers["Authorization"] = f"{scheme} {key}"
    if proxy_headers and not target.tls:
        # http:// through a proxy is one absolute-form request *to the proxy*: its credentials go
        # on that request (aiohttp applies proxy_headers to CONNECT only).
        headers.update(proxy_headers)
    # A 3 s clip transcribes in about a second; 10 s more than the connect bound is generous and
    # keeps a server that drips its answer (slowloris) from holding the run.
    timeout = aiohttp.ClientTimeout(
        total=ctx.timeout(options.connect_timeout_s + 10.0), connect=ctx.timeout(options.connect_timeout_s)
    )
    body = options.audio_path.read_bytes()
    t0 = ctx.clock()
    try:
        async with (
            aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False) as session,
            session.post(
                url, data=body, headers=headers, allow_redirects=False, proxy=proxy_url, proxy_headers=proxy_headers
            ) as resp,
        ):
            raw = await resp.content.read(MAX_BODY)
            elapsed = round(ctx.clock() - t0, 6)
            text = raw.decode("utf-8", "replace")
            transcript = duration = problem = None
            if resp.status == 200:
                transcript, duration, problem = _transcript(text)
            return RestObservation(
                url=shown,
                outcome=Outcome.ANSWERED,
                status=resp.status,
                time_s=elapsed,
                request_id=resp.headers.get(deepgram.HEADER_REQUEST_ID),
                dg_error=resp.headers.get(deepgram.HEADER_ERROR),
                server=resp.headers.get("server"),
                transcript=transcript,
                audio_duration_s=duration,
                body_excerpt=text[:500] if resp.status != 200 or problem else None,
                body_problem=problem,
            )
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        cause = exc.__cause__ if isinstance(exc, aiohttp.ClientConnectorError) and exc.__cause__ else exc
        outcome = Outcome.TIMEOUT if isinstance(exc, (TimeoutError, asyncio.TimeoutError)) else classify_oserror(cause)
        return RestObservation(
            url=shown, outcome=outcome, time_s=round(ctx.clock() - t0, 6), error=f"{type(exc).__name__}: {exc}"[:300]
        )


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
