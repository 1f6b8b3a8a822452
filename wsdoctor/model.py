"""The report model: frozen dataclasses that every check produces and every reporter reads.

Facts flow one way: probes record observations, ``analyze()`` turns them into :class:`Finding`
objects, a check wraps them in a :class:`CheckResult`, and the runner assembles a :class:`Report`.
Reporters never probe; they only read a ``Report`` (or one rebuilt from JSON by
:meth:`Report.from_dict`). ``to_dict``/``from_dict`` round-trip exactly: enums become their string
values, tuples become lists, and the summary is *derived* (written for readers, recomputed on load).

This module is stdlib-only so that ``wsdoctor --help`` stays fast.
"""

from __future__ import annotations

import enum
import ipaddress
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Union

from wsdoctor.errors import UsageError
from wsdoctor.record import JSONValue, from_json, to_json

__all__ = [
    "LAYERS",
    "PHASES",
    "SCHEMA",
    "CheckResult",
    "EndKind",
    "Finding",
    "FrameKind",
    "JSONValue",
    "Outcome",
    "Phase",
    "Report",
    "Status",
    "Summary",
    "Target",
    "is_ip_address",
    "layer_of",
]

SCHEMA = "wsdoctor.report/1"

Metric = Union[int, float, None]

#: The order in which a connection is built. The *primary cause* of a report is the cause of the
#: failing finding in the earliest layer: a DNS failure explains everything after it, not the other
#: way round. ``proxy`` sits after ``tcp`` because the CONNECT happens on an open TCP connection and
#: before TLS; ``ws`` is the authenticated upgrade (credentials, limits); ``host`` and ``sdk`` are
#: local and only primary when the path itself is healthy.
LAYERS: tuple[str, ...] = (
    "env",
    "dns",
    "tcp",
    "proxy",
    "tls",
    "http",
    "ws",
    "stream",
    "idle",
    "close",
    "rest",
    "host",
    "sdk",
)


def layer_of(code_or_id: str) -> str:
    """``"tls.expired"`` -> ``"tls"``. Unknown prefixes sort after every known layer."""
    return code_or_id.split(".", 1)[0]


def _layer_rank(code_or_id: str) -> int:
    layer = layer_of(code_or_id)
    return LAYERS.index(layer) if layer in LAYERS else len(LAYERS)


@dataclass(frozen=True, slots=True)
class Phase:
    """One phase of a connection, in the one vocabulary metrics, JSON, the terminal and HTML share
    (blackbox_exporter style: timestamps during, durations after; a phase not reached is ``None``)."""

    id: str  # "resolve"
    metric: str  # the CheckResult metric holding its duration: "resolve_s"
    label: str  # its ``phase`` label in OpenMetrics (public, stable): "dns"
    title: str  # for people: "DNS lookup"
    exported: bool = True  # has a wsdoctor_phase_seconds series


#: The phases of a connection, in order. Ids, metrics and labels are public: add, never rename.
PHASES: tuple[Phase, ...] = (
    Phase("resolve", "resolve_s", "dns", "DNS lookup"),
    Phase("connect", "connect_s", "tcp", "TCP connect"),
    Phase("proxy", "proxy_s", "proxy", "Proxy CONNECT", exported=False),
    Phase("tls", "tls_s", "tls", "TLS handshake"),
    Phase("upgrade", "upgrade_s", "upgrade", "HTTP upgrade"),
    Phase("first_result", "first_result_s", "first_result", "First result"),
    Phase("close", "closestream_to_close_s", "close", "Close handshake"),
)


class Outcome(enum.StrEnum):
    """How one connection attempt ended, as far as its probe went (a probe's fact): TCP
    (``connected``), TLS (``ok``), a proxy tunnel (``established``), a REST request (``answered``),
    or up to the answer to the Upgrade."""

    CONNECTED = "connected"  # TCP opened (tcp.connect's probe)
    OK = "ok"  # the TLS handshake succeeded and verified (tls.handshake's probe)
    ESTABLISHED = "established"  # the proxy answered CONNECT with 2xx (proxy.connect's probe)
    ANSWERED = "answered"  # an HTTP request got its response (the REST probe)
    UPGRADED = "upgraded"  # 101 with a valid handshake
    HTTP_RESPONSE = "http-response"  # an HTTP answer other than a 101
    BAD_101 = "bad-101"  # a 101 that breaks RFC 6455
    PROXY_ERROR = "proxy-error"  # the proxy refused the CONNECT
    PROTOCOL_ERROR = "protocol-error"  # not HTTP at all
    EOF = "eof"
    RESET = "reset"
    TIMEOUT = "timeout"
    REFUSED = "refused"
    UNREACHABLE = "unreachable"
    TLS_VERIFY_FAILED = "tls-verify-failed"
    TLS_ERROR = "tls-error"
    DNS_ERROR = "dns-error"
    OSERROR = "oserror"  # any other socket error; its errno name is in the observation's error

    @classmethod
    def of(cls, value: object) -> Outcome:
        """The outcome named ``value``; an unknown name (an old report's errno name) is OSERROR."""
        try:
            return cls(str(value))
        except ValueError:
            return cls.OSERROR


class EndKind(enum.StrEnum):
    """How an open connection ended: the kind of its last event."""

    CLOSE = "close"  # a close frame arrived (the close handshake)
    EOF = "eof"  # TCP ended without a close frame: the article's "no close frame received or sent"
    RESET = "reset"  # TCP reset
    ERROR = "error"  # a socket error
    PROTOCOL_ERROR = "protocol-error"  # the peer broke RFC 6455
    OVERSIZE = "oversize"  # a message past the size or fragment bound
    FLOOD = "flood"  # frames or bytes past the rate bound


class FrameKind(enum.StrEnum):
    """A frame that leaves a connection open; a close frame or an ending is an :class:`EndKind`.
    Together they are every kind a recorded wire event can have."""

    TEXT = "text"
    BINARY = "binary"
    PING = "ping"
    PONG = "pong"


class Status(enum.StrEnum):
    """Outcome of one check. ``error`` means *wsdoctor* broke (a bug or an overrun deadline), never
    a diagnosis; ``skip`` always carries a reason."""

    PASS = "pass"  # noqa: S105 - a status, not a password
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"
    ERROR = "error"
    #: Only as a finding's severity: a measured fact worth acting on that is not a fault -- e.g.
    #: Deepgram closing a silent stream after 10 s, exactly as documented. It never changes a
    #: check's status and is never the primary cause, but its cause and fixes are still shown.
    INFO = "info"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a check found, tied to a cause of the catalogue (``wsdoctor.causes``)."""

    code: str  # stable "layer.what", e.g. "close.no-close-frame"
    cause: str  # stable cause id, e.g. "network-instability"
    severity: Status  # Status.WARN or Status.FAIL
    message: str  # one sentence, what was observed, with the numbers
    evidence: Mapping[str, JSONValue] = field(default_factory=dict)

    def to_dict(self) -> dict[str, JSONValue]:
        return to_json(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        return from_json(cls, data)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The result of one check: our ``ScanCommandAttempt`` (sslyze)."""

    check_id: str
    title: str
    status: Status
    summary: str  # one line a human reads in the table
    duration_s: float = 0.0
    started_at_s: float = 0.0  # offset from the start of the run, for the timeline
    metrics: Mapping[str, Metric] = field(default_factory=dict)
    evidence: Mapping[str, JSONValue] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    #: For a skip caused by a requirement that failed: the id of that requirement. A skip that is
    #: merely "not applicable" (no TLS on ws://) has none, and does not cascade to dependants.
    blocked_by: str | None = None

    @property
    def layer(self) -> str:
        return layer_of(self.check_id)

    def to_dict(self) -> dict[str, JSONValue]:
        return to_json(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckResult:
        return from_json(cls, data)


def _metrics(data: Mapping[str, Any]) -> dict[str, Metric]:
    """Metrics are numbers or null: a hand-edited report with anything else is not ours."""
    out: dict[str, Metric] = {}
    for key, value in dict(data).items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError(f"metric {str(key)[:60]!r} is not a number")
        out[str(key)] = value
    return out


_DEFAULT_PORTS = {"ws": 80, "wss": 443}
#: Query parameters (and header or field names) that carry credentials; never echoed. Compared in
#: lower case with ``-``/``_``/``.`` ignored; beside this list, any name *containing* key, token,
#: secret, pass, pwd, auth, sig, cred or session is a credential too, Deepgram's own parameters
#: (``keywords``, ``keyterm``...) excepted -- the whole rule is :func:`wsdoctor.redact.is_secret_name`.
#: ``code``, ``sid`` and ``ticket`` count only in a URL's query (OAuth/SSO redirects).
_SECRET_QUERY_KEYS = frozenset(
    {
        "token", "access_token", "id_token", "refresh_token", "auth_token", "session_token", "security_token",
        "x-amz-security-token", "key", "apikey", "api_key", "api-key", "x-api-key", "secret", "client_secret",
        "secret_key", "access_key", "private_key", "password", "passwd", "pwd", "pass", "passphrase", "auth",
        "authorization", "sig", "signature", "x-amz-signature", "x-amz-credential", "x-goog-signature",
        "x-goog-credential", "session", "sessionid", "session_id", "jsessionid", "phpsessid", "credential",
        "credentials", "jwt", "bearer", "assertion", "client_assertion", "samlresponse", "otp", "code", "sid",
        "ticket",
    }
)  # fmt: skip


def is_ip_address(text: str) -> bool:
    """``text`` is an IPv4 or IPv6 address (brackets and an IPv6 zone ``%eth0`` allowed), not a name."""
    try:
        ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Target:
    """Where a run points. ``url`` is the *display* form: credentials stripped."""

    url: str
    scheme: str  # "ws" or "wss"
    host: str  # without brackets for IPv6
    port: int
    # path + query as sent in the request line; may hold a token, so it is neither written to JSON
    # nor part of equality (a report loaded from JSON equals the one that was written)
    resource: str = field(compare=False)
    is_mock: bool = False

    @property
    def tls(self) -> bool:
        return self.scheme == "wss"

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    @property
    def is_ip_literal(self) -> bool:
        return is_ip_address(self.host)

    @classmethod
    def parse(cls, url: str, *, is_mock: bool = False) -> Target:
        """Parse a ws:// or wss:// URL (http/https are accepted and mapped, as SDKs do).

        The display form (``url``) holds no credential: no userinfo, and every query parameter whose
        name carries one (:func:`wsdoctor.redact.is_secret_name`) masked, percent-encoded names
        included; other values go through the structural redaction (a URL inside a ``callback``).
        Raises :class:`UsageError` with a one-line reason for anything else -- a reason that never
        quotes the password or a credential parameter.
        """
        from wsdoctor.redact import MASK, Redactor, is_secret_name

        if not url or any(ch.isspace() or ord(ch) < 0x20 for ch in url):
            raise UsageError(f"invalid URL {_shown(url)}: empty or contains whitespace/control characters")
        try:
            parts = urllib.parse.urlsplit(url)
            port = parts.port
        except ValueError as exc:
            # urllib's messages may quote the netloc -- with a password that holds '/', '?' or '#',
            # part of it -- so only their kind is said.
            said = str(exc)
            if "could not be cast" in said:
                said = "the port is not a number"
            elif not said.startswith(("Port out of range", "Invalid IPv6 URL")):
                said = "the host is not a valid host name or address"
            raise UsageError(f"invalid URL {_shown(url)}: {said}") from None
        scheme = {"https": "wss", "http": "ws"}.get(parts.scheme.lower(), parts.scheme.lower())
        if scheme not in _DEFAULT_PORTS:
            raise UsageError(f"invalid URL {_shown(url)}: scheme must be ws:// or wss://")
        host = parts.hostname or ""
        if not host:
            raise UsageError(f"invalid URL {_shown(url)}: no host")
        if port == 0:
            raise UsageError(f"invalid URL {_shown(url)}: port 0")
        port = port or _DEFAULT_PORTS[scheme]
        structural = Redactor()
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        shown_query = urllib.parse.urlencode(
            [(k, MASK if v and is_secret_name(k, in_url=True) else structural.text(v)) for k, v in query], safe="*"
        )
        path = parts.path or "/"
        resource = path + (f"?{parts.query}" if parts.query else "")
        netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
        display = urllib.parse.urlunsplit((scheme, netloc, structural.text(path), shown_query, ""))
        # A password holding a raw '/', '?' or '#' ends the authority early for urllib (as for
        # browsers): "wss://u:12/x@host/" is host "u", port 12, path "/x@host/". Whatever the
        # reading, what stood between the first ':' and the last '@' never reaches the display.
        rest = url.split("://", 1)[1] if "://" in url else ""
        user_colon_password = rest[: rest.rfind("@")] if "@" in rest else ""
        password = user_colon_password.partition(":")[2]
        if password and any(ch in password for ch in "/?#"):
            decoded = urllib.parse.unquote(password)
            for form in sorted({password, decoded, urllib.parse.quote(decoded, safe="")}, key=len, reverse=True):
                if len(form) >= 2:
                    display = display.replace(form, MASK)
        return cls(url=display, scheme=scheme, host=host, port=port, resource=resource, is_mock=is_mock)

    def to_dict(self) -> dict[str, JSONValue]:
        # ``resource`` may hold a token in its query string: the display URL is the safe form.
        return {"url": self.url, "scheme": self.scheme, "host": self.host, "port": self.port, "is_mock": self.is_mock}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Target:
        parsed = cls.parse(str(data["url"]), is_mock=bool(data.get("is_mock", False)))
        return replace(parsed, host=str(data.get("host", parsed.host)), port=int(data.get("port", parsed.port)))


def _shown(url: str) -> str:
    """A URL quoted for an error message: no credentials, no control characters, bounded.

    The URL did not parse, so nothing of its structure is trusted: everything between ``://`` and
    the *last* ``@`` but the user name is masked, and every credential query parameter up to the
    next ``&`` (:func:`wsdoctor.redact.redact_url`) -- before the text is cut, never after.
    """
    from wsdoctor.redact import redact_url

    cleaned = "".join(ch if ch.isprintable() else "?" for ch in redact_url(url))
    return repr(cleaned[:200])


@dataclass(frozen=True, slots=True)
class CauseSummary:
    """A cause with the findings that point to it, in layer order."""

    cause: str
    codes: tuple[str, ...]
    checks: tuple[str, ...]
    severity: Status

    def to_dict(self) -> dict[str, JSONValue]:
        return to_json(self)


@dataclass(frozen=True, slots=True)
class Summary:
    verdict: str  # "healthy" | "warnings" | "failing" | "incomplete"
    primary_cause: str | None
    primary_finding: str | None
    counts: Mapping[str, int]
    causes: tuple[CauseSummary, ...]

    def to_dict(self) -> dict[str, JSONValue]:
        return to_json(self)


#: The statuses a check can end with (INFO is a finding severity only).
CHECK_STATUSES = (Status.PASS, Status.WARN, Status.FAIL, Status.SKIP, Status.ERROR)
_SEVERITY_RANK = {Status.FAIL: 0, Status.WARN: 1, Status.INFO: 2}


def _finding_order(item: tuple[int, CheckResult, Finding]) -> tuple[int, int, int]:
    index, _result, finding = item
    return (_SEVERITY_RANK.get(finding.severity, 3), _layer_rank(finding.code), index)


def summarize(results: Sequence[CheckResult], *, interrupted: bool = False) -> Summary:
    """Derive the verdict and the primary cause: the cause of the failing finding in the earliest
    layer (warnings only when nothing failed). Pure; used by ``Report.summary``."""
    counts = {s.value: 0 for s in CHECK_STATUSES}
    for r in results:
        counts[r.status.value] += 1
    items = [(i, r, f) for i, r in enumerate(results) for f in r.findings]
    items.sort(key=_finding_order)
    grouped: dict[str, tuple[list[str], list[str], Status]] = {}
    for _i, r, f in items:
        codes, checks, _severity = grouped.setdefault(f.cause, ([], [], f.severity))
        if f.code not in codes:
            codes.append(f.code)
        if r.check_id not in checks:
            checks.append(r.check_id)
    causes = tuple(
        CauseSummary(cause=c, codes=tuple(v[0]), checks=tuple(v[1]), severity=v[2]) for c, v in grouped.items()
    )
    faults = [f for _, _, f in items if f.severity is not Status.INFO]
    primary = faults[0] if faults else None
    failed = counts["fail"] or counts["error"] or any(f.severity is Status.FAIL for f in faults)
    if failed and results:
        verdict = "failing"  # a failure found before an interruption is still the diagnosis
    elif interrupted or not results:
        verdict = "incomplete"
    elif counts["warn"] or faults:
        verdict = "warnings"
    else:
        verdict = "healthy"
    return Summary(
        verdict=verdict,
        primary_cause=primary.cause if primary else None,
        primary_finding=primary.code if primary else None,
        counts=counts,
        causes=causes,
    )


@dataclass(frozen=True, slots=True)
class Report:
    """One run of wsdoctor: the target, every check's result, and where it ran."""

    target: Target
    results: tuple[CheckResult, ...]
    started_at: str  # ISO 8601 UTC
    duration_s: float
    wsdoctor_version: str
    environment: Mapping[str, JSONValue] = field(default_factory=dict)
    interrupted: bool = False
    schema: str = SCHEMA

    @property
    def summary(self) -> Summary:
        return summarize(self.results, interrupted=self.interrupted)

    def result(self, check_id: str) -> CheckResult | None:
        return next((r for r in self.results if r.check_id == check_id), None)

    def findings(self) -> list[Finding]:
        return [f for r in self.results for f in r.findings]

    def to_dict(self) -> dict[str, JSONValue]:
        return {
            "schema": self.schema,
            "wsdoctor_version": self.wsdoctor_version,
            "started_at": self.started_at,
            "duration_s": self.duration_s,
            "interrupted": self.interrupted,
            "target": self.target.to_dict(),
            "environment": dict(self.environment),
            "summary": self.summary.to_dict(),
            "results": [r.to_dict() for r in self.results],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        """Rebuild a report from its JSON form. Raises :class:`UsageError` if it is not ours."""
        if not isinstance(data, Mapping):
            raise UsageError("not a wsdoctor report: the top level is not a JSON object")
        if data.get("schema") != SCHEMA:
            raise UsageError(f"not a wsdoctor report: schema is {data.get('schema')!r}, expected {SCHEMA!r}")
        try:
            return cls(
                target=Target.from_dict(data["target"]),
                results=tuple(CheckResult.from_dict(r) for r in data["results"]),
                started_at=str(data["started_at"]),
                duration_s=float(data["duration_s"]),
                wsdoctor_version=str(data["wsdoctor_version"]),
                environment=dict(data.get("environment") or {}),
                interrupted=bool(data.get("interrupted", False)),
            )
        except UsageError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UsageError(f"malformed wsdoctor report: {type(exc).__name__}: {exc}") from None


# -- Shared vocabularies and walks over a report, for every reporter, load and the exporter ---------

#: Every verdict a report can have (:attr:`Summary.verdict`), best first.
VERDICTS: tuple[str, ...] = ("healthy", "warnings", "failing", "incomplete")
#: The verdicts of a run in which nothing failed or broke and that was not cut: a successful probe
#: (``wsdoctor_probe_success 1``, the exporter's ``result="success"``).
SUCCESS_VERDICTS: frozenset[str] = frozenset({"healthy", "warnings"})


def end_kind(value: object) -> EndKind | None:
    """The :class:`EndKind` named ``value`` (an event's ``kind``), or ``None`` for an event that does
    not end a connection (text, binary, ping...) or a name this version does not know."""
    try:
        return EndKind(str(value))
    except ValueError:
        return None


def ordered_findings(results: Sequence[CheckResult]) -> list[tuple[CheckResult, Finding]]:
    """Every finding with the result that made it, as the summary ranks them: failures first, then
    warnings, then notes; within a severity by layer (earliest first), then in report order."""
    items = [(i, r, f) for i, r in enumerate(results) for f in r.findings]
    items.sort(key=_finding_order)
    return [(r, f) for _i, r, f in items]


#: Layers whose failure is the WebSocket's own trouble -- the Upgrade on its way through the path,
#: the stream, idle cutoffs, the close handshake -- which the article's Alternative, REST for
#: pre-recorded audio, sidesteps: a POST to /v1/listen takes the same DNS, TCP, (proxy) and TLS
#: path but needs no Upgrade and no long-lived connection. Not dns/tcp/proxy/tls (REST shares
#: them), not ws (a 401, 402, 429 or 400 refuses REST alike), not host/sdk (local).
REST_FALLBACK_LAYERS: frozenset[str] = frozenset({"http", "stream", "idle", "close"})


def websocket_failed(result: CheckResult) -> bool:
    """A check of the WebSocket's own layers (:data:`REST_FALLBACK_LAYERS`) failed."""
    return result.status is Status.FAIL and result.layer in REST_FALLBACK_LAYERS


def rest_fallback_applies(results: Iterable[CheckResult]) -> bool:
    """Recommend REST for pre-recorded audio: a rest check passed where the WebSocket failed
    (:func:`websocket_failed`), or a finding says so in its evidence (``rest_fallback: true``).
    The one rule of every reporter."""
    results = list(results)
    if any(f.evidence.get("rest_fallback") is True for r in results for f in r.findings):
        return True
    rest_ok = any(r.layer == "rest" and r.status is Status.PASS for r in results)
    return rest_ok and any(websocket_failed(r) for r in results)


#: How deep a walk over evidence goes: deeper than the runner's bound (``wsdoctor.bounds``) there
#: is only the string that replaced what was cut.
EVIDENCE_DEPTH = 16
EvidencePath = tuple[str, ...]


def evidence_nodes(
    value: object, max_depth: int = EVIDENCE_DEPTH
) -> Iterator[tuple[EvidencePath, Mapping[str, Any] | Sequence[Any]]]:
    """Every mapping and list inside an evidence tree with the key path to it (list items by their
    index), outermost first, in document order; never deeper than ``max_depth`` levels."""
    stack: list[tuple[EvidencePath, object]] = [((), value)]
    while stack:
        path, node = stack.pop()
        if not isinstance(node, Mapping | list | tuple):
            continue
        yield path, node
        if len(path) < max_depth:
            items = node.items() if isinstance(node, Mapping) else enumerate(node)
            stack.extend(reversed([((*path, str(k)), v) for k, v in items]))


def evidence_mappings(
    value: object, max_depth: int = EVIDENCE_DEPTH
) -> Iterator[tuple[EvidencePath, Mapping[str, Any]]]:
    """The mappings of :func:`evidence_nodes`: every dict inside an evidence tree, with its path."""
    for path, node in evidence_nodes(value, max_depth):
        if isinstance(node, Mapping):
            yield path, node


#: Where Deepgram's request id is found: the ``dg-request-id`` header (a mapping key or a
#: ``[name, value]`` pair, any case), the ``request_id`` of Results, Metadata and REST answers, and
#: the ``dg_request_id`` the checks put in a finding's evidence.
_REQUEST_ID_KEYS = frozenset({"dg-request-id", "dg_request_id", "request_id"})


def request_ids(source: Report | Iterable[CheckResult]) -> dict[str, str]:
    """Every Deepgram request id in the evidence of the results and of their findings, once, in
    report order: ``{request id: id of the first check that saw it}``."""
    results = source.results if isinstance(source, Report) else source
    found: dict[str, str] = {}
    for result in results:
        for evidence in (result.evidence, *(f.evidence for f in result.findings)):
            for _path, node in evidence_nodes(evidence):
                if isinstance(node, Mapping):
                    pairs = [(k, v) for k, v in node.items() if str(k).lower() in _REQUEST_ID_KEYS]
                elif len(node) == 2 and isinstance(node[0], str) and node[0].lower() == "dg-request-id":
                    pairs = [(node[0], node[1])]
                else:
                    continue
                for _key, value in pairs:
                    if isinstance(value, str) and value:
                        found.setdefault(value, result.check_id)
    return found


__all__ += [
    "EVIDENCE_DEPTH",
    "REST_FALLBACK_LAYERS",
    "SUCCESS_VERDICTS",
    "VERDICTS",
    "end_kind",
    "evidence_mappings",
    "evidence_nodes",
    "ordered_findings",
    "request_ids",
    "rest_fallback_applies",
    "websocket_failed",
]
