"""Deepgram's streaming protocol as facts, each with its public source: the one module that spells
a Deepgram wire string.

Theory of operation. Everything wsdoctor knows about how Deepgram behaves on the wire lives here,
as data, and every other module reads it from here: the mock speaks it, the checks judge by it,
``explain`` recognises pasted errors with it. A fact carries the URL it comes from. Where Deepgram's
documentation and the wire disagree, the wire wins and the docs' wording is kept beside it:

- the NET-0001 close really carries the sentence "Deepgram did not receive audio data or a text
  message within the timeout window. See https://dpgr.am/net0001" -- no ``NET-0001`` token, only the
  lower-case slug in the link -- although the docs' tables list the payload as ``NET-0001``;
- its window is "10 seconds" in the docs and 10-12 s in captures;
- HTTP rejections carry ``{err_code, err_msg, request_id}`` with ``dg-error`` equal to ``err_msg``,
  but ``err_code`` may be an UPPER_SNAKE code (``INVALID_AUTH``) or a phrase (``Bad Request``), the
  docs also show ``{category, message, details, request_id}`` and plain-text bodies, and
  ``request_id`` may be missing.

Close reasons are *recognised* by stable identifiers, never by one literal: the docs' token
(``NET-0001``, any case, with or without the dash), the slug of the link (``dpgr.am/net0001``), or
the distinctive words of the sentence (an app that trims " See https://..." still matches). Where
only the docs describe a string (DATA-0000's wire reason has not been captured), the fact says so
(``captured=False``) and recognition leans on the close code.

Where a fact is uncertain it says so; nothing here judges (finding codes and causes are the checks'
business). Stdlib only: ``wsdoctor explain`` and ``wsdoctor mock --help`` import it.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "API_PATHS",
    "CLOSE_REASONS",
    "DATA_0000",
    "DEFAULT_URL",
    "HEADER_ERROR",
    "HEADER_PROJECT_ID",
    "HEADER_REQUEST_ID",
    "IDLE_TIMEOUT_S",
    "NET_0000",
    "NET_0001",
    "PATH_OF",
    "REJECTIONS",
    "SERVER_MESSAGE_FIELDS",
    "Api",
    "ClientMessage",
    "CloseReason",
    "ErrorBody",
    "KeyShape",
    "Rejection",
    "RequestProblem",
    "ServerMessage",
    "SpeakMessage",
    "api_for",
    "client_message",
    "identify_close",
    "invalid_query_parameter",
    "is_deepgram_host",
    "key_shape",
    "message_problems",
    "parse_error_body",
    "rejection_markers",
    "request_problem",
]


# --- sources -------------------------------------------------------------------------------------
# Public pages the facts below come from. Captures ("seen on the wire") are users' logs and SDK
# issues that print what Deepgram sent; the rest is Deepgram's documentation and SDK code.

DOCS_TROUBLESHOOTING = "https://developers.deepgram.com/docs/stt-troubleshooting-websocket-data-and-net-errors"
DOCS_RECOVERING = (
    "https://developers.deepgram.com/docs/recovering-from-connection-errors-and-timeouts-when-live-streaming-audio"
)
DOCS_KEEPALIVE = "https://developers.deepgram.com/docs/audio-keep-alive"
DOCS_CLOSE_STREAM = "https://developers.deepgram.com/docs/close-stream"
DOCS_FINALIZE = "https://developers.deepgram.com/docs/finalize"
DOCS_ERRORS = "https://developers.deepgram.com/reference/errors"
DOCS_RATE_LIMITS = "https://developers.deepgram.com/reference/api-rate-limits"
DOCS_TOKENS = "https://developers.deepgram.com/guides/fundamentals/token-based-authentication"
DOCS_SUBPROTOCOL = "https://developers.deepgram.com/docs/using-the-sec-websocket-protocol"
DOCS_LIVE = "https://developers.deepgram.com/docs/live-streaming-audio"
DOCS_LEGACY_ERRORS = "https://enterprise-docs.deepgram.com/guides/streaming/error-handling"
SPEC_MOCK = "https://github.com/deepgram/spec-mock-go-sdk"  # Deepgram's Smithy-generated wire model (Go)
PY_SDK_TYPES = "https://github.com/deepgram/deepgram-python-sdk/tree/main/src/deepgram/listen/v1/types"
DOCS_ENCODING = "https://developers.deepgram.com/docs/encoding"
DOCS_SAMPLE_RATE = "https://developers.deepgram.com/docs/sample-rate"
#: The SDKs' User-Agent: "@deepgram/sdk/<v> python/<minor>.<micro>" (Python SDK 3.x-4.x,
#: deepgram/clients/common/v1/options.py), "@deepgram/sdk/<v> node/<v>" or "javascript" (JS SDK,
#: src/lib/constants.ts), "deepgram-sdk/<v>" (Python SDK 5+, generated: core/client_wrapper.py).
PY_SDK_USER_AGENT = "https://github.com/deepgram/deepgram-python-sdk/blob/main/deepgram/clients/common/v1/options.py"
JS_SDK_USER_AGENT = "https://github.com/deepgram/deepgram-js-sdk/blob/main/src/lib/constants.ts"
GO_SDK_WEBSOCKET = "https://github.com/deepgram/deepgram-go-sdk/blob/main/pkg/client/common/v1/websocket.go"
CAPTURE_PY_319 = "https://github.com/deepgram/deepgram-python-sdk/issues/319"
CAPTURE_PY_478 = "https://github.com/deepgram/deepgram-python-sdk/issues/478"
CAPTURE_PIPECAT_1113 = "https://github.com/pipecat-ai/pipecat/issues/1113"
CAPTURE_PY_509 = "https://github.com/deepgram/deepgram-python-sdk/issues/509"
CAPTURE_DOTNET_133 = "https://github.com/deepgram/deepgram-dotnet-sdk/issues/133"
CAPTURE_JS_336 = "https://github.com/deepgram/deepgram-js-sdk/issues/336"
CAPTURE_JS_301 = "https://github.com/deepgram/deepgram-js-sdk/issues/301"
CAPTURE_NATIVELY_369 = "https://github.com/Natively-AI-assistant/natively-cluely-ai-assistant/issues/369"
CAPTURE_RUST_109 = "https://github.com/deepgram/deepgram-rust-sdk/issues/109"
CAPTURE_PIPECAT_4307 = "https://github.com/pipecat-ai/pipecat/issues/4307"
CAPTURE_JS_353 = "https://github.com/deepgram/deepgram-js-sdk/issues/353"
CAPTURE_PY_726 = "https://github.com/deepgram/deepgram-python-sdk/issues/726"
CAPTURE_WHISPERING_5 = "https://github.com/braden-w/whispering/issues/5"
CAPTURE_PIPECAT_2764 = "https://github.com/pipecat-ai/pipecat/issues/2764"


# --- endpoints and authentication ------------------------------------------------------------

#: The streaming endpoint (docs: live streaming audio). Regional hosts share the protocol.
DEFAULT_URL = "wss://api.deepgram.com/v1/listen"
LISTEN_PATH = "/v1/listen"


class Api(enum.StrEnum):
    """Deepgram's WebSocket APIs. Each has its own keep-alive and close rules; the ``listen`` rules
    (KeepAlive JSON every 3-5 s, CloseStream, NET-0001 after ~10 s) are not the others'."""

    LISTEN = "listen"  # streaming speech-to-text, /v1/listen (DOCS_LIVE)
    FLUX = "flux"  # conversational speech-to-text, /v2/listen (flux-* models)
    SPEAK = "speak"  # streaming text-to-speech, /v1/speak
    AGENT = "agent"  # the Voice Agent, /v1/agent/converse on agent.deepgram.com


#: The path of each API (the SDKs append it to their base URL: PY_SDK_TYPES' sibling clients).
API_PATHS: dict[str, Api] = {
    LISTEN_PATH: Api.LISTEN,
    "/v2/listen": Api.FLUX,
    "/v1/speak": Api.SPEAK,
    "/v1/agent/converse": Api.AGENT,
}
#: ... and the way back: each API's path.
PATH_OF: dict[Api, str] = {api: path for path, api in API_PATHS.items()}
#: Flux: "if you are not sending audio and want to keep the websocket open, you'll just need to send
#: websocket pings regularly (timeout is 60s)" (Deepgram staff, FLUX_KEEPALIVE_ISSUE); a v1 JSON
#: KeepAlive sent to Flux ends the connection with 1005 (FLUX_KEEPALIVE_1005).
FLUX_KEEPALIVE_ISSUE = "https://github.com/deepgram/deepgram-python-sdk/issues/618"
FLUX_KEEPALIVE_1005 = "https://github.com/deepgram/deepgram-python-sdk/issues/649"
FLUX_IDLE_TIMEOUT_S = 60.0
#: Flux reports an idle stream as an Error message with this code, not a NET-0001 close
#: (https://github.com/livekit/agents/issues/3579); the close code after it is not captured.
FLUX_INACTIVE_CLIENT = "INACTIVE_CLIENT"
#: Flux's server messages (the SDK's listen.v2 types): Connected first, then TurnInfo (event Update,
#: StartOfTurn, EagerEndOfTurn, TurnResumed, EndOfTurn), Configure{Success,Failure}, Error, Warning.
FLUX_CONNECTED = "Connected"
FLUX_TURN_INFO = "TurnInfo"
FLUX_END_OF_TURN = "EndOfTurn"


#: Streaming TTS (/v1/speak): "The maximum number of times you can send the Flush message is 20 times
#: every 60 seconds. After that, you will receive a warning message" (DOCS_TTS_FLUSH). Each Flush is
#: answered with ``{"type": "Flushed", "sequence_id": N}``; Clear with Cleared; Close ends the stream
#: (close 1000); KeepAlive is listen's, not speak's.
DOCS_TTS_FLUSH = "https://developers.deepgram.com/docs/tts-ws-flush"
SPEAK_FLUSH_LIMIT = 20
SPEAK_FLUSH_WINDOW_S = 60.0


class SpeakMessage(enum.StrEnum):
    """What a /v1/speak client sends (the SDK's speak.v1 types)."""

    SPEAK = "Speak"  # {"type": "Speak", "text": ...}
    FLUSH = "Flush"
    CLEAR = "Clear"
    CLOSE = "Close"


#: The Voice Agent (/v1/agent/converse on agent.deepgram.com): ``Welcome`` first (captured:
#: AGENT_CAPTURE), then the client's ``Settings`` must come before anything else and is answered with
#: ``SettingsApplied``; while no audio flows, a ``KeepAlive`` text message every ~8 s
#: (AGENT_TIMEOUT_ISSUE: "We also send periodic KeepAlive JSON messages every 8 seconds ... as
#: documented"); a silent client gets an Error CLIENT_MESSAGE_TIMEOUT (wording captured there), a
#: message the server cannot read an Error UNPARSABLE_CLIENT_MESSAGE (captured) -- each followed by a
#: close frame without a status code (clients report 1005, AGENT_CAPTURE).
AGENT_CAPTURE = "https://github.com/deepgram-devs/flask-agent-function-calling-demo/issues/17"
AGENT_TIMEOUT_ISSUE = "https://github.com/deepgram/deepgram-js-sdk/issues/419"
AGENT_HOST = "agent.deepgram.com"
AGENT_KEEPALIVE_EVERY_S = 8.0
AGENT_IDLE_TIMEOUT_S = 10.0
AGENT_WELCOME = "Welcome"
AGENT_SETTINGS = "Settings"
AGENT_SETTINGS_APPLIED = "SettingsApplied"
AGENT_CLIENT_MESSAGE_TIMEOUT = (
    "CLIENT_MESSAGE_TIMEOUT",
    "We waited too long for a websocket message. Please ensure that you're sending binary messages containing "
    "user speech.",
)
AGENT_UNPARSABLE = (
    "UNPARSABLE_CLIENT_MESSAGE",
    "Text message received from client did not match any of the formats we expect.",
)


def api_for(path: str) -> Api | None:
    """The API a request path addresses (a self-hosted prefix before it allowed), or ``None``."""
    clean = path.split("?", 1)[0].rstrip("/")
    for api_path, api in API_PATHS.items():
        if clean == api_path or clean.endswith(api_path):
            return api
    return None


DEEPGRAM_DOMAIN = "deepgram.com"
REGIONAL_HOSTS = ("api.deepgram.com", "api.eu.deepgram.com", "api.au.deepgram.com", "api.in.deepgram.com")

#: ``Authorization: Token <key>`` for API keys, ``Bearer <jwt>`` for temporary tokens (any case in
#: practice: the Python SDK sends ``bearer``). Browsers use the subprotocol pair ``token, <key>`` and
#: the server then selects ``token`` in the 101 (DOCS_SUBPROTOCOL; captured in CAPTURE_JS_301).
AUTH_SCHEME_KEY = "Token"
AUTH_SCHEME_TOKEN = "Bearer"  # noqa: S105 - an HTTP auth scheme, not a password
SUBPROTOCOL_SCHEMES = ("token", "bearer")
#: Temporary tokens (``POST /v1/auth/grant``) live 30 s by default; they only need to be valid at
#: the upgrade (DOCS_TOKENS).
TEMPORARY_TOKEN_TTL_S = 30


def is_deepgram_host(host: str) -> bool:
    """A host of Deepgram's own (``api.deepgram.com``, regional ``api.eu.deepgram.com``, ...)."""
    host = host.lower().rstrip(".")
    return host == DEEPGRAM_DOMAIN or host.endswith("." + DEEPGRAM_DOMAIN)


# --- HTTP headers ----------------------------------------------------------------------------------

#: On every response Deepgram writes, 101 and rejections alike (DOCS_TROUBLESHOOTING: "Always
#: present"). An answer without it was written by something in between.
HEADER_REQUEST_ID = "dg-request-id"
#: On failed upgrades: the error message, equal to the body's ``err_msg`` (DOCS_TROUBLESHOOTING;
#: captured: ``dg-error: Invalid credentials.`` with a 401, CAPTURE_RUST_109 ``dg-error: Bad Request``).
HEADER_ERROR = "dg-error"
#: On a 101 beside dg-request-id (captured: CAPTURE_PIPECAT_4307).
HEADER_PROJECT_ID = "dg-project-id"


# --- timing and limits -----------------------------------------------------------------------------

#: NET-0001 window: "10 seconds" in the docs (DOCS_KEEPALIVE, DOCS_TROUBLESHOOTING); captures show the
#: close 10-12 s after the last client frame, and older docs and SDKs say 12 s.
IDLE_TIMEOUT_S = 10.0
IDLE_TIMEOUT_OBSERVED_MAX_S = 12.5
#: "Send a KeepAlive message every 3-5 seconds" (DOCS_KEEPALIVE).
KEEPALIVE_EVERY_S = (3.0, 5.0)
#: "Deepgram allows audio to be streamed at a maximum of 1.25x realtime" (DOCS_RECOVERING).
MAX_REALTIME_RATIO = 1.25
#: Deepgram staff advise 20-250 ms of audio per binary frame (https://github.com/orgs/deepgram/discussions/224).
AUDIO_CHUNK_MS = (20, 250)
#: Streaming concurrency per project on pay-as-you-go plans; one more gets HTTP 429 (DOCS_RATE_LIMITS).
#: Concurrent connections per project on default plans, per API (DOCS_RATE_LIMITS): one more gets 429.
CONCURRENCY_DEFAULT: dict[str, int] = {"listen": 50, "speak": 15, "agent": 15}
STREAMING_CONCURRENCY_DEFAULT = CONCURRENCY_DEFAULT["listen"]
#: Results of a real-time stream arrive about 1 s after the audio they cover starts (DOCS_LIVE).
FIRST_RESULT_S = 1.0


# --- close frames -----------------------------------------------------------------------------------

#: Longer texts are cut before matching: a close reason is at most 123 bytes (RFC 6455), a pasted
#: log line may be long, and the markers are short literals near the start of what Deepgram sends.
_MAX_MATCH_CHARS = 4096


@dataclass(frozen=True, slots=True)
class CloseReason:
    """One of Deepgram's documented close reasons, as the wire carries it."""

    id: str  # the docs' token: "NET-0001"
    code: int  # the close code Deepgram sends with it
    wire: str  # the reason text as Deepgram sends it (see ``captured``)
    docs: str  # the docs' description of the same close
    meaning: str  # what it means for a client, in a sentence
    #: lower-case literals, any of which identifies the reason in a close reason or a log line: the
    #: token with and without its dash (the slug of the dpgr.am link is the dashless token), and the
    #: distinctive words of the sentence. Literals, so matching is a substring search: linear time.
    markers: tuple[str, ...]
    captured: bool  # True: ``wire`` was seen on the wire; False: only the docs describe it
    sources: tuple[str, ...]
    #: codes other sources used for the same reason (DATA-0000 was 1002 in 2021's docs)
    legacy_codes: tuple[int, ...] = ()

    def matches(self, text: str) -> bool:
        lowered = text[:_MAX_MATCH_CHARS].lower()
        return any(m in lowered for m in self.markers)


NET_0001 = CloseReason(
    id="NET-0001",
    code=1011,
    wire="Deepgram did not receive audio data or a text message within the timeout window. See https://dpgr.am/net0001",
    docs=(
        "The service has not received a Binary or Text frame from the client within the timeout window. This may "
        "indicate an internal issue with Deepgram's systems, the client's systems, or the network connecting them."
    ),
    meaning=(
        "no audio and no text frame (KeepAlive) reached Deepgram for about 10 s; Deepgram sent its Metadata and "
        "closed the stream"
    ),
    markers=("net-0001", "net0001", "did not receive audio data or a text message"),
    captured=True,
    sources=(CAPTURE_PY_319, CAPTURE_PY_478, CAPTURE_PIPECAT_1113, DOCS_TROUBLESHOOTING, SPEC_MOCK),
)

NET_0000 = CloseReason(
    id="NET-0000",
    code=1011,
    wire="Deepgram did not provide a response message within the timeout window. See https://dpgr.am/net0000",
    docs=(
        "The service has not transmitted a Text frame to the client within the timeout window. This may indicate an "
        "internal issue with Deepgram's systems, or Deepgram may have not received enough audio data to transcribe "
        "a frame."
    ),
    meaning=(
        "Deepgram produced no response in time: an internal delay, or audio it could not turn into a frame "
        "(often undecodable or container audio declared as raw)"
    ),
    markers=("net-0000", "net0000", "did not provide a response message"),
    captured=True,
    sources=(CAPTURE_PY_509, CAPTURE_DOTNET_133, DOCS_TROUBLESHOOTING, SPEC_MOCK),
)

DATA_0000 = CloseReason(
    id="DATA-0000",
    code=1008,
    # No capture of the wire text exists in any public page we could find; the docs' description is
    # what the mock sends, and recognition relies on code 1008 as much as on these words.
    wire=(
        "The payload cannot be decoded as audio. The payload either is not audio data or is a codec unsupported by "
        "Deepgram."
    ),
    docs=(
        "The payload cannot be decoded as audio. The payload either is not audio data or is a codec unsupported by "
        "Deepgram."
    ),
    meaning="the bytes sent cannot be decoded as audio of the declared (or any supported) format",
    markers=("data-0000", "data0000", "cannot be decoded as audio"),
    captured=False,
    sources=(DOCS_TROUBLESHOOTING, SPEC_MOCK, DOCS_LEGACY_ERRORS),
    legacy_codes=(1002,),
)

CLOSE_REASONS: tuple[CloseReason, ...] = (NET_0001, NET_0000, DATA_0000)

#: After CloseStream: final Results, Metadata, then close 1000 with an empty reason (DOCS_CLOSE_STREAM;
#: captured empty reason in a relay log, see fixtures/deepgram-wire).
CLOSE_NORMAL = 1000
#: Close codes after which a client should reconnect (with jittered backoff): the transient ones.
RETRYABLE_CLOSE_CODES = frozenset({1006, 1011, 1012, 1013})


def identify_close(code: int | None, reason: str | None) -> CloseReason | None:
    """Which of Deepgram's documented closes this is, by its stable identifiers.

    The reason text decides first (token, slug or sentence, any case); without a recognisable reason
    a 1008 is DATA-0000, Deepgram's only documented 1008. A 1011 without a known reason is not
    guessed: it may be NET-0000, NET-0001 or another internal error."""
    if reason:
        for known in CLOSE_REASONS:
            if known.matches(reason):
                return known
    if code == DATA_0000.code:
        return DATA_0000
    return None


# --- HTTP rejections --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rejection:
    """An HTTP answer Deepgram gives instead of a 101 (or to a REST request), as documented."""

    name: str  # our stable name for it (``explain`` refers to rejections by it)
    status: int
    err_code: str
    err_msg: str  # also the value of dg-error
    meaning: str
    sources: tuple[str, ...]
    #: lower-case literals that identify this rejection in a pasted log (the distinctive err_code,
    #: and err_msg words no other service uses); none for generic ones like "Bad Request"
    markers: tuple[str, ...] = ()


INVALID_AUTH = Rejection(
    "INVALID_AUTH",
    401,
    "INVALID_AUTH",
    "Invalid credentials.",
    "the key (or temporary token) is wrong, revoked or expired",
    (DOCS_ERRORS, CAPTURE_NATIVELY_369),
    ("invalid_auth",),
)
INSUFFICIENT_PERMISSIONS = Rejection(
    "INSUFFICIENT_PERMISSIONS",
    403,
    "INSUFFICIENT_PERMISSIONS",
    "Project does not have access to the requested model.",
    "the key is valid but its project may not use what was requested (a model, a feature)",
    (DOCS_ERRORS,),
    ("insufficient_permissions", "does not have access to the requested model"),
)
ASR_PAYMENT_REQUIRED = Rejection(
    "ASR_PAYMENT_REQUIRED",
    402,
    "ASR_PAYMENT_REQUIRED",
    "Project does not have enough credits for an ASR request and does not have an overage agreement.",
    "the key's project is out of credits",
    (DOCS_ERRORS, CAPTURE_JS_353),
    ("asr_payment_required", "does not have enough credits"),
)
TOO_MANY_REQUESTS = Rejection(
    "TOO_MANY_REQUESTS",
    429,
    "TOO_MANY_REQUESTS",
    "Too many requests. Please try again later",
    "the project's rate or concurrency limit was reached",
    (DOCS_ERRORS, DOCS_RATE_LIMITS, CAPTURE_PY_726),
    ("too_many_requests",),
)
BAD_REQUEST_QUERY = Rejection(
    "BAD_REQUEST_QUERY",
    400,
    "Bad Request",
    "Invalid query string.",
    "a query parameter is unknown or has a value Deepgram does not accept",
    (DOCS_ERRORS,),
    ("invalid query string",),
)
BAD_REQUEST_AUDIO = Rejection(
    "BAD_REQUEST_AUDIO",
    400,
    "Bad Request",
    "Bad Request: failed to process audio: corrupt or unsupported data",
    "the posted audio cannot be decoded",
    (DOCS_ERRORS,),
    ("failed to process audio",),
)
UNSUPPORTED_AUDIO_FORMAT = Rejection(
    "UNSUPPORTED_AUDIO_FORMAT",
    400,
    "UNSUPPORTED_AUDIO_FORMAT",
    "Unsupported audio format",
    "the requested audio encoding/container combination is not supported (seen on /v1/speak)",
    (CAPTURE_PIPECAT_2764,),
    ("unsupported_audio_format",),
)
SERVICE_UNAVAILABLE = Rejection(
    "SERVICE_UNAVAILABLE",
    503,
    "Service Unavailable",
    "Please try again later",
    "Deepgram-side trouble; transient",
    (DOCS_ERRORS,),
)


def invalid_query_parameter(detail: str) -> Rejection:
    """A 400 for a query parameter Deepgram cannot use, in its captured shape (``INVALID_QUERY_PARAMETER``,
    e.g. "Keywords are not supported for Nova-3. Please use `keyterm` instead.") with the docs' wording
    "Failed to deserialize query parameters: [message]" (DOCS_ERRORS)."""
    return Rejection(
        "INVALID_QUERY_PARAMETER",
        400,
        "INVALID_QUERY_PARAMETER",
        f"Failed to deserialize query parameters: {detail}",
        "a query parameter is unknown or has a value Deepgram does not accept",
        (DOCS_ERRORS, CAPTURE_WHISPERING_5),
        ("invalid_query_parameter", "failed to deserialize query parameters"),
    )


#: A Flux model sent to /v1/listen: 400 with the legacy body {err_code, err_msg, request_id}. The
#: code and message are as public connector code quotes them "read off the live endpoint" (a code
#: comment found through code search, no stable URL); Flux living on /v2/listen is the docs'
#: (FLUX_DOCS).
FLUX_DOCS = "https://developers.deepgram.com/docs/flux/flux-nova-3-comparison"
V2_MODEL_ON_V1 = Rejection(
    "V2_MODEL_ON_V1_LISTEN_ENDPOINT",
    400,
    "V2_MODEL_ON_V1_LISTEN_ENDPOINT",
    "Flux models are not supported on the `/v1/listen` endpoint. Please use `/v2/listen`.",
    "a Flux (flux-*) model was asked of /v1/listen: Flux lives on /v2/listen, with its own protocol",
    (FLUX_DOCS,),
    ("v2_model_on_v1_listen_endpoint", "flux models are not supported on the `/v1/listen` endpoint"),
)
FLUX_MODEL_PREFIX = "flux-"


REJECTIONS: tuple[Rejection, ...] = (
    INVALID_AUTH,
    INSUFFICIENT_PERMISSIONS,
    ASR_PAYMENT_REQUIRED,
    TOO_MANY_REQUESTS,
    BAD_REQUEST_QUERY,
    BAD_REQUEST_AUDIO,
    UNSUPPORTED_AUDIO_FORMAT,
    SERVICE_UNAVAILABLE,
    V2_MODEL_ON_V1,
)


def rejection_markers(name: str) -> tuple[str, ...]:
    """The markers of the rejection called ``name`` (empty for an unknown name)."""
    found = next((r for r in (*REJECTIONS, invalid_query_parameter("")) if r.name == name), None)
    return found.markers if found is not None else ()


#: Not every answer is a rejection from the table: these are the statuses Deepgram documents.
DOCUMENTED_STATUSES = frozenset({400, 401, 402, 403, 404, 408, 413, 415, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class ErrorBody:
    """The error body of an HTTP rejection, whichever of Deepgram's shapes it came in."""

    shape: str  # "legacy" {err_code, err_msg, request_id} | "modern" {category, message, details, request_id} | "text"
    code: str | None  # err_code, or category
    message: str | None  # err_msg, or message (+ details)
    request_id: str | None


_BODY_FIELD_CHARS = 500


def _field(obj: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        value = obj.get(name)
        if isinstance(value, str) and value:
            return value[:_BODY_FIELD_CHARS]
    return None


_SALVAGE = re.compile(r'"(err_code|error_code|err_msg|request_id|category|message|details)"\s*:\s*"([^"\\]{0,500})')


def _salvage(text: str) -> dict[str, str] | None:
    """The string fields of a JSON object that was cut short, read with a bounded pattern."""
    found = {name: value for name, value in _SALVAGE.findall(text[:4096])}
    return found or None


def parse_error_body(text: str | None) -> ErrorBody | None:
    """Read a rejection body in any of the documented shapes (DOCS_ERRORS): the legacy
    ``{err_code, err_msg, request_id}`` (also seen as ``error_code``), the modern
    ``{category, message, details, request_id}``, or plain text. ``None`` for an empty body."""
    if not text or not text.strip():
        return None
    text = text.strip()
    obj: Any = None
    if text.startswith("{") and len(text) <= 65536:
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):
            obj = None
    if obj is None and text.startswith("{"):
        obj = _salvage(text)  # cut short (a 2 KiB excerpt, a log line's ellipsis): read what is there
    if isinstance(obj, dict):
        legacy_code = _field(obj, "err_code", "error_code")
        if legacy_code is not None or "err_msg" in obj:
            return ErrorBody("legacy", legacy_code, _field(obj, "err_msg"), _field(obj, "request_id"))
        if "category" in obj or "details" in obj:
            message = _field(obj, "message")
            details = _field(obj, "details")
            joined = f"{message} ({details})" if message and details else (message or details)
            return ErrorBody("modern", _field(obj, "category"), joined, _field(obj, "request_id"))
    return ErrorBody("text", None, text[:_BODY_FIELD_CHARS], None)


class RequestProblem(enum.StrEnum):
    """What a 400 (or a 401/403 body) says is wrong with the request, in Deepgram's words."""

    CREDENTIALS = "credentials"  # "Invalid credentials." answered with a 400 (seen on token grants)
    AUDIO = "audio"  # the audio or its declared encoding
    PARAMETERS = "parameters"  # the query string: model, language, features, encoding names
    PERMISSIONS = "permissions"  # the key's project may not use the model/feature
    UNKNOWN = "unknown"


_PROBLEM_WORDS: tuple[tuple[RequestProblem, re.Pattern[str]], ...] = (
    (RequestProblem.CREDENTIALS, re.compile(r"invalid[ _]credentials|invalid[ _]auth|api key", re.IGNORECASE)),
    (
        RequestProblem.PERMISSIONS,
        re.compile(r"insufficient[ _]permissions|does not have access|forbidden", re.IGNORECASE),
    ),
    (
        RequestProblem.AUDIO,
        re.compile(
            r"process audio|decode|corrupt|unsupported[ _](?:audio|data)|audio[ _]format|sample[ _]rate|"
            r"\bencoding\b|\bchannels\b|no audio|payload",
            re.IGNORECASE,
        ),
    ),
    (
        RequestProblem.PARAMETERS,
        re.compile(r"query|parameter|\bmodel\b|language|keyword|keyterm|v2_model|feature|bad request", re.IGNORECASE),
    ),
)


def request_problem(dg_error: str | None, body: ErrorBody | None) -> RequestProblem:
    """What a rejection's ``dg-error`` and body blame, in the order Deepgram's messages name things:
    credentials, then permissions, the audio, the parameters."""
    text = " ".join(s for s in (dg_error, body.code if body else None, body.message if body else None) if s)
    text = text[:2000]
    for problem, pattern in _PROBLEM_WORDS:
        if pattern.search(text):
            return problem
    return RequestProblem.UNKNOWN


# --- messages on the stream -------------------------------------------------------------------------


class ServerMessage(enum.StrEnum):
    """The ``type`` of each JSON text frame Deepgram sends on /v1/listen (it never sends binary)."""

    RESULTS = "Results"
    METADATA = "Metadata"
    UTTERANCE_END = "UtteranceEnd"
    SPEECH_STARTED = "SpeechStarted"
    #: ``{"type": "Error", "variant": ..., "description": ...}``: variant ``SchemaError`` for a text
    #: frame the server cannot use (the session goes on); ``Closing`` before a close, only with
    #: ``?debug=true`` (SPEC_MOCK).
    ERROR = "Error"


#: Required fields per message type: the official Python SDK's pydantic models (PY_SDK_TYPES,
#: deepgram-sdk 7.x) plus what every captured Results carries (is_final, speech_final,
#: from_finalize are always present on the wire though the SDK makes them optional). The SDK's models
#: are the schema in the tests; this table is the same contract without pydantic, for the runtime.
SERVER_MESSAGE_FIELDS: dict[ServerMessage, dict[str, tuple[type, ...]]] = {
    ServerMessage.RESULTS: {
        "type": (str,),
        "channel_index": (list,),
        "duration": (int, float),
        "start": (int, float),
        "is_final": (bool,),
        "speech_final": (bool,),
        "from_finalize": (bool,),
        "channel": (dict,),
        "metadata": (dict,),
    },
    ServerMessage.METADATA: {
        "type": (str,),
        "transaction_key": (str,),
        "request_id": (str,),
        "sha256": (str,),
        "created": (str,),
        "duration": (int, float),
        "channels": (int,),
    },
    ServerMessage.UTTERANCE_END: {"type": (str,), "channel": (list,), "last_word_end": (int, float)},
    ServerMessage.SPEECH_STARTED: {"type": (str,), "channel": (list,), "timestamp": (int, float)},
    ServerMessage.ERROR: {"type": (str,), "variant": (str,), "description": (str,)},
}
_ALTERNATIVE_FIELDS: dict[str, tuple[type, ...]] = {"transcript": (str,), "confidence": (int, float), "words": (list,)}
_WORD_FIELDS: dict[str, tuple[type, ...]] = {
    "word": (str,),
    "start": (int, float),
    "end": (int, float),
    "confidence": (int, float),
}
_RESULTS_METADATA_FIELDS: dict[str, tuple[type, ...]] = {
    "request_id": (str,),
    "model_uuid": (str,),
    "model_info": (dict,),
}
#: Metadata's transaction_key is always the literal "deprecated" (SPEC_MOCK; every capture).
TRANSACTION_KEY = "deprecated"
#: A Metadata sent before any audio was decoded carries ``"sha256": "incomplete"`` in live captures.
SHA256_INCOMPLETE = "incomplete"


def _typed(obj: Mapping[str, Any], fields: Mapping[str, tuple[type, ...]], where: str) -> list[str]:
    problems = []
    for name, types in fields.items():
        if name not in obj:
            problems.append(f"{where}{name}: missing")
        elif not isinstance(obj[name], types) or (bool not in types and isinstance(obj[name], bool)):
            problems.append(
                f"{where}{name}: {type(obj[name]).__name__}, expected {'/'.join(t.__name__ for t in types)}"
            )
    return problems


def message_problems(obj: Any) -> list[str]:
    """What is wrong with a server message's shape against Deepgram's contract (empty: nothing).

    Pure and bounded: it reads at most the first alternative and the first few words."""
    if not isinstance(obj, Mapping):
        return [f"not a JSON object but {type(obj).__name__}"]
    kind = obj.get("type")
    try:
        known = ServerMessage(kind) if isinstance(kind, str) else None
    except ValueError:
        known = None
    if known is None:
        return [f"type: {str(kind)[:40]!r} is not a Deepgram message type"]
    problems = _typed(obj, SERVER_MESSAGE_FIELDS[known], "")
    if known is ServerMessage.RESULTS and not problems:
        index = obj["channel_index"]
        if not (len(index) == 2 and all(isinstance(i, int) and not isinstance(i, bool) for i in index)):
            problems.append("channel_index: expected [index, total]")
        alternatives = obj["channel"].get("alternatives")
        if not isinstance(alternatives, list) or not alternatives:
            problems.append("channel.alternatives: missing or empty")
        elif not isinstance(alternatives[0], Mapping):
            problems.append(f"channel.alternatives[0]: {type(alternatives[0]).__name__}, expected object")
        else:
            problems += _typed(alternatives[0], _ALTERNATIVE_FIELDS, "channel.alternatives[0].")
            words = alternatives[0].get("words")
            for i, word in enumerate(words[:5] if isinstance(words, list) else []):
                if not isinstance(word, Mapping):
                    problems.append(f"channel.alternatives[0].words[{i}]: expected object")
                else:
                    problems += _typed(word, _WORD_FIELDS, f"channel.alternatives[0].words[{i}].")
        problems += _typed(obj["metadata"], _RESULTS_METADATA_FIELDS, "metadata.")
    return problems


class ClientMessage(enum.StrEnum):
    """Control messages a client sends as *text* frames (binary frames are audio)."""

    #: Resets the NET-0001 timer; no answer. "Send the KeepAlive message as a text WebSocket message.
    #: Sending it as a binary message may result in incorrect handling" (DOCS_KEEPALIVE).
    KEEPALIVE = "KeepAlive"
    #: Flush: the server returns the pending audio's Results with ``from_finalize: true`` (DOCS_FINALIZE).
    FINALIZE = "Finalize"
    #: End of audio: final Results, Metadata, then close 1000 (DOCS_CLOSE_STREAM). An *empty binary
    #: frame* is the deprecated form of the same signal and surprises clients that send one by accident
    #: (DOCS_TROUBLESHOOTING: "Sending an empty byte (e.g., b'') will cause unexpected closures").
    CLOSE_STREAM = "CloseStream"


def client_message(kind: ClientMessage) -> dict[str, str]:
    """``{"type": "KeepAlive"}`` and friends, as the SDKs send them."""
    return {"type": kind.value}


# --- audio the client declares ----------------------------------------------------------------------

#: Query parameters that describe the audio (DOCS_ENCODING, DOCS_SAMPLE_RATE).
PARAM_ENCODING = "encoding"
PARAM_SAMPLE_RATE = "sample_rate"
PARAM_CHANNELS = "channels"
#: "Encoding is required when raw, headerless audio packets are sent to the streaming service. If
#: containerized audio packets are sent to the streaming service, this feature should not be used."
#: (DOCS_ENCODING). Raw encodings with their bytes per sample (per channel):
RAW_ENCODINGS: dict[str, int] = {"linear16": 2, "linear32": 4, "mulaw": 1, "alaw": 1}
#: Every value ``encoding`` accepts (DOCS_ENCODING); the codecs beyond RAW_ENCODINGS carry their own
#: framing, and two of them have a stream header a sniffer can see: FLAC's "fLaC", Ogg's "OggS".
ENCODINGS = (*RAW_ENCODINGS, "flac", "amr-nb", "amr-wb", "opus", "ogg-opus", "speex", "g729")
ENCODING_CONTAINERS: dict[str, tuple[str, ...]] = {"flac": ("flac",), "ogg-opus": ("ogg",), "opus": ("ogg",)}


# --- the key ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyShape:
    """What can be said about a key's *form* without ever showing it. No field holds key material."""

    length: int
    surrounding_whitespace: bool  # leading/trailing spaces, tabs
    newline: bool  # a line break anywhere (a file read with its newline, a pasted key)
    quoted: bool  # wrapped in '...' or "..." (a .env value copied with its quotes)
    scheme_prefix: str | None  # "Token" / "Bearer" already inside the value
    inner_whitespace: bool  # whitespace inside the key itself
    jwt: bool  # three base64url segments: a temporary token, sent as Bearer
    jwt_expires_at: float | None = None  # its ``exp`` claim (Unix seconds), when readable
    jwt_issued_at: float | None = None  # its ``iat`` claim

    @property
    def problems(self) -> tuple[str, ...]:
        out = []
        if self.newline:
            out.append("newline")
        if self.surrounding_whitespace:
            out.append("whitespace")
        if self.quoted:
            out.append("quotes")
        if self.scheme_prefix:
            out.append("scheme-prefix")
        if self.inner_whitespace:
            out.append("inner-whitespace")
        return tuple(out)


_JWT = re.compile(r"^[A-Za-z0-9_-]{2,}\.([A-Za-z0-9_-]{2,})\.[A-Za-z0-9_-]*$")


def _jwt_claims(token: str) -> dict[str, Any] | None:
    m = _JWT.match(token)
    if not m:
        return None
    payload = m.group(1)
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        claims = json.loads(raw)
    except (ValueError, binascii.Error, RecursionError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def clean_key(raw: str) -> str:
    """The key an app most likely meant: whitespace, quotes and a scheme prefix taken off."""
    key = raw.strip()
    if len(key) >= 2 and key[0] == key[-1] and key[0] in "'\"":
        key = key[1:-1].strip()
    scheme, _, rest = key.partition(" ")
    if scheme.lower() in ("token", "bearer") and rest.strip():
        key = rest.strip()
    return key


def key_shape(raw: str) -> KeyShape:
    """The form of a key as read from the environment (never its characters)."""
    stripped = raw.strip()
    quoted = len(stripped) >= 2 and stripped[0] == stripped[-1] and stripped[0] in "'\""
    unquoted = stripped[1:-1].strip() if quoted else stripped
    scheme, _, rest = unquoted.partition(" ")
    prefix = scheme[:1].upper() + scheme[1:].lower() if scheme.lower() in ("token", "bearer") and rest.strip() else None
    key = clean_key(raw)
    claims = _jwt_claims(key)
    return KeyShape(
        length=len(key),
        surrounding_whitespace=raw.strip("\r\n") != raw.strip(),  # spaces/tabs, newlines aside
        newline="\n" in raw or "\r" in raw,
        quoted=quoted,
        scheme_prefix=prefix,
        inner_whitespace=any(ch.isspace() for ch in key),
        jwt=claims is not None,
        jwt_expires_at=_number((claims or {}).get("exp")),
        jwt_issued_at=_number((claims or {}).get("iat")),
    )
