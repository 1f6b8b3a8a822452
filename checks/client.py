"""client.* and upstream.*: judging the app's own connection, as ``wsdoctor watch`` recorded it.

Theory of operation. ``wsdoctor run`` proves that *wsdoctor's* client works on the user's path;
most "no close frame received or sent" tickets end in the *app's* handling of the connection -- the
article's first cause. :mod:`wsdoctor.probes.relay` forwards the app's connection and records it
(:class:`~wsdoctor.probes.watch.WatchedConnection`); :func:`analyze` judges that record, purely,
against Deepgram's protocol (:mod:`wsdoctor.deepgram`):

- the app's silences (``client.idle-gap``: fail when Deepgram's NET-0001 followed),
- what it sends in which frame (``client.keepalive-binary``, ``client.empty-binary-frame``,
  ``client.protocol-violation``),
- how it ends (``client.no-closestream``, ``client.close-not-awaited``),
- its audio against what its URL declares (``client.encoding-mismatch``: container magic bytes and
  the WAV header's rate/channels against ``encoding``/``sample_rate``/``channels``; ``client.pace``:
  audio seconds sent per wall second, for raw encodings),
- its credentials and libraries (``client.key-in-url``, ``client.sdk-known-issue`` from the
  User-Agent and the sdk checks' known-issue table),

and, attributed to the upstream, what the upstream did (``upstream.rejected``,
``upstream.closed-error``, ``upstream.dropped``, ``upstream.unreachable``). A NET-0001 close is
*not* an upstream error: it is Deepgram doing what it documents after the app's silence, so it is
the app's ``client.idle-gap``. :func:`analyze_session` adds what only the sequence of connections
shows (``client.reconnect-storm``). :func:`result_for` makes one ``CheckResult`` per connection.

Healthy is the rule: an app that streams, sends CloseStream and reads until Deepgram's close frame
gets no finding (tests drive the official deepgram-sdk through the relay to prove it).
"""

from __future__ import annotations

import itertools
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from wsdoctor import deepgram as dg
from wsdoctor.check import finding
from wsdoctor.model import CheckResult, Finding, JSONValue, Status
from wsdoctor.probes.watch import FrameEvent, WatchedConnection

__all__ = [
    "CHECK_PREFIX",
    "Container",
    "analyze",
    "analyze_session",
    "result_for",
    "sdk_products",
    "sniff_container",
]

CHECK_PREFIX = "watch"
#: A connection is judged for pace only with this much audio (seconds of the declared format).
PACE_MIN_AUDIO_S = 3.0
#: Audio faster than this many times real time is "much faster" (Deepgram allows 1.25x; the margin
#: absorbs a burst of buffered audio at the start of a real-time stream).
PACE_FAST = dg.MAX_REALTIME_RATIO * 1.6
PACE_SLOW = 0.5
#: Reconnect storm: this many reconnects in a row, each within STORM_GAP_S of a failed connection's
#: end, with delays that do not grow.
#: An app that drops its socket sooner than this after CloseStream/its close frame did not wait for
#: Deepgram's close (client.close-not-awaited); one that waited longer was let down by the upstream.
CLOSE_PATIENCE_S = 1.0
#: Deepgram sends its final results and close within this after CloseStream (close.no-close-reply's bound).
CLOSE_REPLY_EXPECTED_S = 5.0
STORM_RECONNECTS = 3
STORM_GAP_S = 2.0


# --- audio containers ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Container:
    """What the first bytes of the audio are."""

    name: str  # "wav" | "ogg" | "webm" | "mp3" | "flac" | "mp4" | "aac" | "amr" | "aiff" | "au"
    sample_rate: int | None = None  # from a WAV header
    channels: int | None = None


def sniff_container(head: bytes, *, strict_mp3: bool = False) -> Container | None:
    """The container or stream format whose magic bytes start ``head``, or ``None`` (raw audio).

    An MP3 without an ID3 tag starts with a frame sync (11 set bits) that raw PCM can also produce
    (0xFFFF is a sample of -1): with ``strict_mp3`` only an ID3 tag counts."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        if len(head) >= 28 and head[12:16] == b"fmt ":
            channels, rate = struct.unpack("<HI", head[22:28])
            return Container("wav", sample_rate=rate, channels=channels)
        return Container("wav")
    for magic, name in (
        (b"OggS", "ogg"),
        (b"\x1a\x45\xdf\xa3", "webm"),
        (b"fLaC", "flac"),
        (b"ID3", "mp3"),
        (b"#!AMR", "amr"),
        (b"FORM", "aiff"),
        (b".snd", "au"),
    ):
        if head.startswith(magic):
            return Container(name)
    if head[4:8] == b"ftyp":
        return Container("mp4")
    if not strict_mp3 and len(head) >= 3 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        if head[1] & 0x06 == 0:  # layer bits 00: ADTS AAC
            return Container("aac")
        if head[2] >> 4 != 0xF and (head[2] >> 2) & 0x3 != 0x3:  # a valid bitrate and sample-rate index
            return Container("mp3")
    return None


# --- User-Agent -> packages ------------------------------------------------------------------------

_PRODUCT = re.compile(r"([A-Za-z@][A-Za-z0-9@._/+-]*?)/v?(\d+(?:\.\d+){0,3})")


def sdk_products(user_agent: str) -> list[tuple[str, str, str]]:
    """(ecosystem, package, version) named by a User-Agent, for the sdk known-issue table.

    Deepgram's SDKs (deepgram.PY_SDK_USER_AGENT, JS_SDK_USER_AGENT): "@deepgram/sdk/V python/..." is
    the Python SDK 3-4, "@deepgram/sdk/V" otherwise the JS SDK, "deepgram-sdk/V" the Python SDK 5+.
    Libraries: Python websockets ("Python/3.x websockets/V") and aiohttp ("Python/3.x aiohttp/V")."""
    tokens = _PRODUCT.findall(user_agent[:300])
    names = {name.lower() for name, _v in tokens}
    out: list[tuple[str, str, str]] = []
    for name, version in tokens:
        lower = name.lower()
        if lower == "@deepgram/sdk":
            ecosystem = "pypi" if "python" in names else "npm"
            out.append((ecosystem, "deepgram-sdk" if ecosystem == "pypi" else "@deepgram/sdk", version))
        elif lower == "deepgram-sdk":
            out.append(("pypi", "deepgram-sdk", version))
        elif lower in ("websockets", "aiohttp"):
            out.append(("pypi", lower, version))
    return out


def _known_issues(user_agent: str | None) -> list[Finding]:
    if not user_agent:
        return []
    from checks.sdk import load_known_issues, upgrade_command
    from wsdoctor.probes.sdk import in_range, version_key

    findings = []
    for ecosystem, package, version in sdk_products(user_agent):
        rows = [
            r
            for r in load_known_issues()
            if r.ecosystem == ecosystem
            and r.package.lower() == package.lower()
            and r.requires is None
            and in_range(version, r.affected)
        ]
        if not rows:
            continue
        target = max((r.fixed_in for r in rows), key=lambda v: version_key(v) or ())
        findings.append(
            finding(
                "client.sdk-known-issue",
                Status.WARN,
                f"The app's User-Agent names {package} {version}, which has {len(rows)} known connection "
                f"problem(s): {'; '.join(r.summary for r in rows[:3])}{' ...' if len(rows) > 3 else ''} "
                f"(fixed in {target}).",
                {
                    "package": package,
                    "version": version,
                    "user_agent": user_agent,
                    "upgrade": upgrade_command(ecosystem, package, target, None),
                    "problems": [{"summary": r.summary, "fixed_in": r.fixed_in, "source": r.source} for r in rows],
                },
            )
        )
    return findings


# --- one connection -------------------------------------------------------------------------------


def _number(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _upstream_close(conn: WatchedConnection) -> dg.CloseReason | None:
    end = conn.upstream_end
    return dg.identify_close(end.close_code, end.close_reason) if end.close_t is not None else None


def _keepalives(count: int) -> str:
    return f"; {count} KeepAlive(s) sent, none in that silence." if count else "; no KeepAlive was sent."


def _idle(conn: WatchedConnection) -> list[Finding]:
    stats = conn.client_stats
    reason = _upstream_close(conn)
    net0001 = reason is not None and reason.id == dg.NET_0001.id
    gap, since = stats.max_gap_s, stats.max_gap_from_t
    evidence: dict[str, JSONValue] = {
        "longest_silence_s": gap,
        "silence_from_s": since,
        "keepalives_sent": conn.keepalive_count,
        "deepgram_window_s": dg.IDLE_TIMEOUT_S,
    }
    if net0001:
        evidence["close"] = {"code": conn.upstream_end.close_code, "reason": conn.upstream_end.close_reason}
        return [
            finding(
                "client.idle-gap",
                Status.FAIL,
                f"The app sent nothing for {gap:.1f} s (from t={since or 0:.1f} s) and Deepgram closed the stream "
                f"with {conn.upstream_end.close_code} NET-0001" + _keepalives(conn.keepalive_count),
                evidence,
            )
        ]
    if gap >= dg.IDLE_TIMEOUT_S:
        return [
            finding(
                "client.idle-gap",
                Status.WARN,
                f"The app sent nothing for {gap:.1f} s (from t={since or 0:.1f} s): longer than Deepgram's "
                f"~{dg.IDLE_TIMEOUT_S:g} s window, which ends a real stream with 1011 NET-0001.",
                evidence,
            )
        ]
    return []


def _frames(conn: WatchedConnection) -> list[Finding]:
    """/v1/listen: what goes in a binary frame is audio, and never nothing."""
    stats = conn.client_stats
    out = []
    if stats.binary_json_count:
        kinds = sorted(set(stats.binary_json))
        out.append(
            finding(
                "client.keepalive-binary",
                Status.FAIL,
                f"The app sent {stats.binary_json_count} control message(s) ({', '.join(kinds)}) as binary frames; "
                "Deepgram reads binary frames as audio, so they do not act and they corrupt the audio.",
                {"types": list(kinds), "count": stats.binary_json_count},
            )
        )
    if stats.empty_binary:
        out.append(
            finding(
                "client.empty-binary-frame",
                Status.FAIL,
                f"The app sent {stats.empty_binary} empty binary frame(s), the first at "
                f"t={stats.first_empty_binary_t:.2f} s: Deepgram takes one as the end of the audio and closes "
                "the stream.",
                {"count": stats.empty_binary, "first_at_s": stats.first_empty_binary_t},
            )
        )
    return out


def _protocol(conn: WatchedConnection) -> list[Finding]:
    """RFC 6455, for every API."""
    stats = conn.client_stats
    if not (stats.violations or stats.broken):
        return []
    return [
        finding(
            "client.protocol-violation",
            Status.FAIL,
            f"The app's frames break RFC 6455: {', '.join(sorted(set(stats.violations)) or [str(stats.broken)])}.",
            {"violations": list(stats.violations), "broken": stats.broken},
        )
    ]


def _no_closestream(conn: WatchedConnection) -> list[Finding]:
    """/v1/listen: audio, then the end of the stream without asking for the final results."""
    client, stats = conn.client_end, conn.client_stats
    app_ended = client.close_t is not None or client.tcp in ("fin", "rst")
    if (
        not stats.audio_bytes
        or conn.closestream_t is not None
        or stats.empty_binary
        or not app_ended
        or conn.first_to_end == "upstream"  # the app's end was a reaction to the upstream's
    ):
        return []
    how = f"a close frame {client.close_code}" if client.close_t is not None else f"a TCP {client.tcp.upper()}"
    return [
        finding(
            "client.no-closestream",
            Status.WARN,
            f"The app sent {stats.audio_bytes} bytes of audio and then ended the stream with {how} without "
            "CloseStream: Deepgram's final results for the last audio were never asked for.",
            {"audio_bytes": stats.audio_bytes, "client_close_code": client.close_code, "client_tcp": client.tcp},
        )
    ]


def _close_handshake(conn: WatchedConnection) -> list[Finding]:
    """Did the app wait for the upstream's close frame before dropping its socket (every API)?"""
    client, upstream = conn.client_end, conn.upstream_end
    out: list[Finding] = []
    if (
        client.tcp in ("fin", "rst")
        and client.tcp_t is not None
        and upstream.close_t is None
        and conn.first_to_end != "upstream"
    ):
        signals = [t for t in (conn.closestream_t, client.close_t) if t is not None]
        waited = round(client.tcp_t - min(signals), 3) if signals else None
        if waited is not None and waited >= CLOSE_PATIENCE_S:
            return [_no_close_reply(conn, waited)]
        after = f" {waited:.2f} s after it ended the stream" if waited is not None else ""
        out.append(
            finding(
                "client.close-not-awaited",
                Status.FAIL,
                f"The app closed its TCP connection ({client.tcp.upper()} at t={client.tcp_t:.2f} s){after} before "
                "Deepgram's close frame arrived: the stream ended with no close frame received -- the article's "
                "error, caused by the app.",
                {
                    "client_tcp": client.tcp,
                    "client_tcp_at_s": client.tcp_t,
                    "client_close_code": client.close_code,
                    "closestream_at_s": conn.closestream_t,
                    "waited_s": waited,
                },
            )
        )
    return out


def _no_close_reply(conn: WatchedConnection, waited: float) -> Finding:
    """The app ended the stream and waited; the upstream's close never came (not the app's fault)."""
    severity = Status.FAIL if waited >= CLOSE_REPLY_EXPECTED_S else Status.WARN
    return finding(
        "upstream.no-close-reply",
        severity,
        f"The app ended the stream and waited {waited:.1f} s; the upstream never sent its close frame"
        + (
            "."
            if severity is Status.FAIL
            else f" (wait up to {CLOSE_REPLY_EXPECTED_S:g} s before closing the socket yourself)."
        ),
        {"waited_s": waited, "closestream_at_s": conn.closestream_t, "client_close_code": conn.client_end.close_code},
    )


def _declared(conn: WatchedConnection) -> tuple[str | None, int | None, int]:
    query = conn.handshake.query if conn.handshake else {}
    encoding = query.get(dg.PARAM_ENCODING)
    return (
        encoding.lower() if encoding else None,
        _number(query.get(dg.PARAM_SAMPLE_RATE)),
        _number(query.get(dg.PARAM_CHANNELS)) or 1,
    )


def _encoding(conn: WatchedConnection) -> list[Finding]:
    if conn.first_audio_head is None:
        return []
    head = bytes.fromhex(conn.first_audio_head)
    encoding, rate, channels = _declared(conn)
    raw = encoding in dg.RAW_ENCODINGS
    container = sniff_container(head, strict_mp3=raw)
    evidence: dict[str, JSONValue] = {
        "declared_encoding": encoding,
        "declared_sample_rate": rate,
        "declared_channels": channels,
        "first_bytes": conn.first_audio_head,
        "container_seen": container.name if container else None,
    }
    problem = None
    if (
        container is not None
        and encoding is not None
        and container.name not in dg.ENCODING_CONTAINERS.get(encoding, ())
    ):
        problem = (
            f"The URL declares encoding={encoding} but the audio starts with a {container.name.upper()} header: "
            "Deepgram decodes the header bytes as audio (raw) or expects another stream format."
        )
    elif container is not None and container.sample_rate and rate and container.sample_rate != rate:
        problem = f"The URL declares sample_rate={rate} but the WAV header says {container.sample_rate} Hz."
    elif (
        container is not None
        and container.channels
        and conn.handshake
        and dg.PARAM_CHANNELS in conn.handshake.query
        and container.channels != channels
    ):
        problem = f"The URL declares channels={channels} but the WAV header says {container.channels}."
    elif container is None and encoding is None:
        problem = (
            "The URL declares no encoding, so Deepgram must recognise a container, but the audio starts with no "
            "known container header (raw PCM?): declare encoding and sample_rate."
        )
    if container is not None:
        evidence["container_sample_rate"] = container.sample_rate
        evidence["container_channels"] = container.channels
    if problem is None:
        return []
    return [finding("client.encoding-mismatch", Status.WARN, problem, evidence)]


def _pace(conn: WatchedConnection) -> list[Finding]:
    encoding, rate, channels = _declared(conn)
    stats = conn.client_stats
    if encoding not in dg.RAW_ENCODINGS or not rate or stats.first_audio_t is None or stats.last_audio_t is None:
        return []
    byte_rate = dg.RAW_ENCODINGS[encoding] * rate * channels
    audio_s = stats.audio_bytes / byte_rate
    if audio_s < PACE_MIN_AUDIO_S:
        return []
    # The wall time the audio took: its runs (pauses longer than AUDIO_RUN_BREAK_S left out: an app
    # that streams only while someone speaks is not slow), plus each run's last frame's duration.
    frame_s = audio_s / max(1, stats.audio_frames)
    wall_s = max(1e-3, stats.audio_active_s + max(1, stats.audio_runs) * frame_s)
    ratio = audio_s / wall_s
    evidence: dict[str, JSONValue] = {
        "audio_s": round(audio_s, 3),
        "wall_s": round(wall_s, 3),
        "audio_runs": stats.audio_runs,
        "ratio": round(ratio, 3),
        "bytes_per_s_declared": byte_rate,
        "mean_chunk_ms": round(frame_s * 1000, 1),
        "deepgram_max_ratio": dg.MAX_REALTIME_RATIO,
    }
    if ratio > PACE_FAST:
        return [
            finding(
                "client.pace",
                Status.WARN,
                f"The app sent {audio_s:.1f} s of {encoding} audio in {wall_s:.2f} s ({ratio:.1f}x real time); "
                f"Deepgram streams at most {dg.MAX_REALTIME_RATIO:g}x, so results lag and the stream may be cut.",
                evidence,
            )
        ]
    if ratio < PACE_SLOW:
        return [
            finding(
                "client.pace",
                Status.WARN,
                f"The app sent {audio_s:.1f} s of {encoding} audio over {wall_s:.1f} s ({ratio:.2f}x real time): "
                "either the declared sample_rate/channels are higher than the audio's, or the source stalls.",
                evidence,
            )
        ]
    return []


def _credentials(conn: WatchedConnection) -> list[Finding]:
    if conn.handshake is None or not conn.handshake.exposed_params:
        return []
    names = list(conn.handshake.exposed_params)
    return [
        finding(
            "client.key-in-url",
            Status.WARN,
            f"The app sends a credential in the URL's query string ({', '.join(names)}): every proxy, load "
            "balancer and access log on the way records it.",
            {"parameters": names},
        )
    ]


def _upstream(conn: WatchedConnection) -> list[Finding]:
    answer = conn.answer
    if answer.error is not None and answer.status is None:
        return [
            finding(
                "upstream.unreachable",
                Status.FAIL,
                (
                    f"wsdoctor could not reach {conn.upstream} for this connection: {answer.error}."
                    if answer.connect_s is None
                    else f"{conn.upstream} gave no usable answer to the app's upgrade: {answer.error}."
                ),
                {"outcome": answer.outcome, "error": answer.error},
            )
        ]
    if answer.status is not None and answer.status != 101 and (conn.handshake is None or conn.handshake.websocket):
        body = dg.parse_error_body(answer.body)
        problem = dg.request_problem(answer.dg_error, body)
        cause = _rejection_cause(answer.status, problem)
        evidence: dict[str, JSONValue] = {
            "status": answer.status,
            "dg_error": answer.dg_error,
            "request_id": answer.request_id,
            "body": answer.body,
        }
        return [
            Finding(
                "upstream.rejected",
                cause,
                Status.FAIL,
                f"The upstream refused the app's upgrade with HTTP {answer.status} {answer.reason or ''}".rstrip()
                + (f": {body.message}" if body is not None and body.message else "."),
                evidence,
            )
        ]
    end = conn.upstream_end
    reason = _upstream_close(conn)
    if end.close_t is not None and end.close_code not in (None, dg.CLOSE_NORMAL):
        if reason is not None and reason.id == dg.NET_0001.id:
            return []  # the app's silence: client.idle-gap says so
        cause = "audio-format" if reason is not None and reason.id == dg.DATA_0000.id else "service"
        return [
            Finding(
                "upstream.closed-error",
                cause,
                Status.FAIL,
                f"The upstream closed the stream with {end.close_code}"
                + (f" {reason.id}" if reason is not None else "")
                + (f" ({end.close_reason!r})" if end.close_reason else "")
                + (f": {reason.meaning}" if reason is not None else "."),
                {"code": end.close_code, "reason": end.close_reason, "at_s": end.close_t},
            )
        ]
    if (
        conn.upgraded_t is not None
        and end.close_t is None
        and end.tcp in ("fin", "rst")
        and conn.first_to_end == "upstream"
    ):
        return [
            finding(
                "upstream.dropped",
                Status.FAIL,
                f"The upstream ended the connection with a TCP {end.tcp.upper()} at t={end.tcp_t:.2f} s "
                "without a close frame.",
                {"tcp": end.tcp, "at_s": end.tcp_t},
            )
        ]
    return []


def _rejection_cause(status: int, problem: dg.RequestProblem) -> str:
    if status in (401, 403):
        return "credentials"
    if status in (402, 429):
        return "account-limits"
    if status == 400:
        return {
            dg.RequestProblem.PARAMETERS: "request-parameters",
            dg.RequestProblem.CREDENTIALS: "credentials",
            dg.RequestProblem.PERMISSIONS: "credentials",
        }.get(problem, "audio-format")
    if status >= 500:
        return "service"
    return "credentials" if status == 407 else "request-parameters"


def _upstream_error(conn: WatchedConnection, code: str) -> FrameEvent | None:
    """The upstream's Error message carrying ``code`` (Flux's and the agent's way to say why)."""
    return next((e for e in conn.events if e.side == "upstream" and e.type == "Error" and code in (e.text or "")), None)


def _timed_out(conn: WatchedConnection, code: str, api: str, what: str) -> list[Finding]:
    """An idle timeout the upstream announced with an Error: the app's silence (client.idle-gap)."""
    event = _upstream_error(conn, code)
    if event is None:
        return []
    return [
        finding(
            "client.idle-gap",
            Status.FAIL,
            f"The app sent no audio and no {what} for {conn.client_stats.max_gap_s:.1f} s and {api} ended the "
            f"session with {code}" + _keepalives(conn.keepalive_count),
            {
                "longest_silence_s": conn.client_stats.max_gap_s,
                "keepalives_sent": conn.keepalive_count,
                "pings_sent": conn.client_stats.pings,
                "at_s": event.t,
                "error": code,
            },
        )
    ]


def _flux(conn: WatchedConnection) -> list[Finding]:
    """Flux (/v2/listen) keeps a silent stream open with WebSocket pings; the v1 JSON KeepAlive ends it."""
    timed_out = _timed_out(conn, dg.FLUX_INACTIVE_CLIENT, "Flux", "WebSocket ping")
    count = conn.client_stats.messages.get(dg.ClientMessage.KEEPALIVE.value, 0)
    if not count:
        return timed_out
    end = conn.upstream_end
    return [
        finding(
            "client.flux-keepalive",
            Status.FAIL,
            f"The app sent {count} JSON KeepAlive message(s) to Flux (/v2/listen), which does not accept them"
            + (f"; the upstream closed with {end.close_code}" if end.close_code is not None else "")
            + ": on Flux a silent stream is kept open with WebSocket pings.",
            {"keepalives": count, "upstream_close_code": end.close_code, "sources": [dg.FLUX_KEEPALIVE_1005]},
        ),
        *timed_out,
    ]


def _speak(conn: WatchedConnection) -> list[Finding]:
    """Streaming TTS (/v1/speak): at most 20 Flush messages in any 60 s."""
    flushes = conn.max_flushes_per_60s
    if flushes <= dg.SPEAK_FLUSH_LIMIT:
        return []
    return [
        finding(
            "client.flush-rate",
            Status.WARN,
            f"The app sent {flushes} Flush messages within 60 s; Deepgram processes {dg.SPEAK_FLUSH_LIMIT} per "
            "60 s and answers the rest with a Warning, and very frequent flushes degrade the audio.",
            {"max_flushes_per_60s": flushes, "limit": dg.SPEAK_FLUSH_LIMIT, "source": dg.DOCS_TTS_FLUSH},
        )
    ]


def _agent(conn: WatchedConnection) -> list[Finding]:
    """The Voice Agent: Settings first; audio or a KeepAlive every ~8 s, else CLIENT_MESSAGE_TIMEOUT."""
    out = []
    first = conn.first_client_message
    if first is not None and first != dg.AGENT_SETTINGS:
        out.append(
            finding(
                "client.agent-settings-first",
                Status.FAIL,
                f"The app's first message to the Voice Agent was {first}, not Settings: the agent has no audio "
                "format or models until Settings arrives.",
                {"first_message": first},
            )
        )
    return out + _timed_out(conn, dg.AGENT_CLIENT_MESSAGE_TIMEOUT[0], "the Voice Agent", "KeepAlive")


def analyze(conn: WatchedConnection) -> list[Finding]:
    """Every finding of one watched connection (module doc). Pure.

    The stream rules (silence, CloseStream, what goes in which frame, the audio's format and pace)
    are /v1/listen's: they are applied to listen connections only. Flux gets its own keep-alive rule;
    the other APIs (and unknown paths) get the rules every WebSocket shares -- RFC 6455, the close
    handshake, credentials, libraries -- and the upstream's side."""
    if conn.handshake is None:
        return []  # not an HTTP request: nothing of Deepgram's protocol to judge
    findings = _credentials(conn) + _known_issues(conn.handshake.user_agent) + _upstream(conn)
    if conn.upgraded_t is None:
        return findings
    api = dg.api_for(conn.handshake.path)
    shared = _protocol(conn) + _close_handshake(conn)
    if api is dg.Api.LISTEN:
        stream = _idle(conn) + _frames(conn) + _no_closestream(conn) + _encoding(conn) + _pace(conn)
        return findings + stream + shared
    if api is dg.Api.FLUX:
        own = _flux(conn)
        if any(f.code == "client.idle-gap" for f in own):  # the close after INACTIVE_CLIENT is the app's doing
            findings = [f for f in findings if f.code != "upstream.closed-error"]
        return findings + own + shared
    if api is dg.Api.SPEAK:
        return findings + _speak(conn) + shared
    if api is dg.Api.AGENT:
        return findings + _agent(conn) + shared
    return findings + shared


# --- the session ---------------------------------------------------------------------------------


def _failed(conn: WatchedConnection) -> bool:
    if conn.upgraded_t is None:
        return True
    return not (conn.upstream_end.close_code == dg.CLOSE_NORMAL or conn.client_end.close_code == dg.CLOSE_NORMAL)


def _key(conn: WatchedConnection) -> tuple[str, str, str]:
    hs = conn.handshake
    return (conn.client.rpartition(":")[0], hs.path if hs else "", (hs.user_agent or "") if hs else "")


def analyze_session(conns: Iterable[WatchedConnection]) -> dict[int, list[Finding]]:
    """Findings that need several connections, by connection index: ``client.reconnect-storm`` on
    the connection that completes a run of STORM_RECONNECTS quick reconnects after failures."""
    by_key: dict[tuple[str, str, str], list[WatchedConnection]] = {}
    for conn in sorted(conns, key=lambda c: c.started_at_s):
        by_key.setdefault(_key(conn), []).append(conn)
    out: dict[int, list[Finding]] = {}
    for seq in by_key.values():
        chain: list[float] = []
        for prev, conn in itertools.pairwise(seq):
            prev_end = prev.started_at_s + prev.duration_s
            delay = conn.started_at_s - prev_end
            quick = _failed(prev) and 0 <= delay <= STORM_GAP_S and (not chain or delay <= chain[-1] * 1.5 + 0.05)
            chain = [*chain, round(delay, 3)] if quick else []
            if len(chain) == STORM_RECONNECTS:
                out.setdefault(conn.index, []).append(
                    finding(
                        "client.reconnect-storm",
                        Status.WARN,
                        f"The app reconnected {len(chain)} times in a row within {max(chain):.2f} s of a failed "
                        f"connection, without backing off (delays {', '.join(f'{d:.2f}' for d in chain)} s).",
                        {"delays_s": list(chain), "until_connection": conn.index},
                    )
                )
    return out


# --- the result --------------------------------------------------------------------------------


def _title(conn: WatchedConnection) -> str:
    hs = conn.handshake
    if hs is None:
        return f"connection {conn.index}: not an HTTP request"
    model = hs.query.get("model")
    agent = (hs.user_agent or "no User-Agent")[:60]
    return f"connection {conn.index}: {hs.method} {hs.path}{f' model={model}' if model else ''} ({agent})"


def _summary(conn: WatchedConnection, findings: Sequence[Finding]) -> str:
    if conn.relay_error is not None:
        return f"wsdoctor failed on this connection (a bug, please report it): {conn.relay_error}"
    if conn.handshake is None:
        return f"not forwarded: {conn.request_error or 'no request'}"
    answer, stats = conn.answer, conn.client_stats
    if conn.upgraded_t is None:
        return f"not upgraded: {answer.error or f'HTTP {answer.status}'}"
    up, cl = conn.upstream_end, conn.client_end
    ended = (
        f"upstream closed {up.close_code}"
        if up.close_t is not None and (cl.close_t is None or up.close_t <= cl.close_t)
        else f"app closed {cl.close_code}"
        if cl.close_t is not None
        else f"app TCP {cl.tcp}"
        if cl.tcp != "open"
        else f"upstream TCP {up.tcp}"
        if up.tcp != "open"
        else "still open"
    )
    base = (
        f"{conn.duration_s:.1f} s, {stats.audio_frames} audio frames ({stats.audio_bytes} B), "
        f"{stats.text} text from the app, {conn.upstream_stats.text} from upstream; {ended}"
    )
    first = next((f for f in findings if f.severity is not Status.INFO), None)
    return f"{first.code}: {base}" if first is not None else base


def result_for(conn: WatchedConnection, findings: Sequence[Finding]) -> CheckResult:
    """One connection's result: status from its findings, metrics, and the record as evidence."""
    severities = {f.severity for f in findings}
    status = Status.FAIL if Status.FAIL in severities else Status.WARN if Status.WARN in severities else Status.PASS
    if conn.relay_error is not None:
        status = Status.ERROR
    stats = conn.client_stats
    metrics: dict[str, float | int | None] = {
        "audio_bytes": stats.audio_bytes,
        "audio_frames": stats.audio_frames,
        "client_text": stats.text,
        "upstream_text": conn.upstream_stats.text,
        "longest_silence_s": stats.max_gap_s,
        "connect_s": conn.answer.connect_s,
        "upgrade_s": conn.answer.upgrade_s,
    }
    return CheckResult(
        check_id=f"{CHECK_PREFIX}.{conn.index}",
        title=_title(conn),
        status=status,
        summary=_summary(conn, findings),
        duration_s=conn.duration_s,
        started_at_s=conn.started_at_s,
        metrics=metrics,
        evidence={"connection": conn.to_dict()},
        findings=tuple(findings),
    )
