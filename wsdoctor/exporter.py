"""``wsdoctor serve``: a Prometheus exporter in the style of blackbox_exporter.

Theory of operation. Prometheus does the scheduling, storage and alerting; wsdoctor only answers
scrapes. A scrape of ``GET /probe?target=T&profile=P`` runs one diagnosis
(:func:`wsdoctor.diagnosis.diagnose`) of the configured target ``T`` with the checks and options of
profile ``P`` and answers with the report rendered by
:class:`reports.openmetrics.OpenMetricsReporter` (``Content-Type: application/openmetrics-text;
version=1.0.0``). Prometheus' relabeling turns each listed target into such a scrape
(``docs/prometheus/prometheus.yml``), so one exporter serves a whole fleet of endpoints and
Prometheus' own ``up`` says whether the exporter answered at all.

- **No open proxy.** ``target`` must be, exactly, the name or the URL of a target in the config;
  anything else is ``403``, so the exporter cannot be made to connect anywhere else (SSRF).
  ``profile`` must be one the target allows (``403``); an unknown profile or a missing ``target``
  is ``400``. Without ``profile`` the target's first allowed profile is used.
- **Bounded time.** The probe's deadline is ``min(profile timeout, X-Prometheus-Scrape-Timeout-
  Seconds - 0.5 s)``, handed to the diagnosis as ``Diagnosis.deadline_s``: checks still running
  then are cancelled and the partial report is answered with ``wsdoctor_probe_success 0`` and
  ``wsdoctor_probe_interrupted 1`` -- an answer within the scrape timeout beats a scrape error,
  because it says *how far* the probe got. A hard guard (the scrape timeout minus 0.1 s) answers
  even if the cancellation itself is slow.
- **Bounded concurrency, no queue.** At most ``max_concurrent_probes`` probes run at once; one
  more gets ``503`` at once. A queue would only spend the waiting scrape's timeout and then fail
  anyway, whereas the 503 shows up as ``up == 0`` and in ``wsdoctor_exporter_probes_total
  {result="busy"}``, which says to raise the bound or lower the scrape rate.
- **Abandoned probes are cancelled, and still counted.** A probe whose answer is given up -- the
  hard guard fired, or the client went away (Prometheus closes the connection at its scrape
  timeout; aiohttp then cancels the handler) -- has its checks cancelled, and again every
  :data:`ABANDON_RECANCEL_S` while they have not ended (a check may swallow one cancellation).
  Until every one of its tasks has really ended it holds its slot: it counts against
  ``max_concurrent_probes`` (so the next scrapes get 503 rather than piling work on a loop that is
  still busy) and shows in ``wsdoctor_exporter_probes_in_flight`` and
  ``wsdoctor_exporter_probes_abandoned``.
- **Bounded connections.** Each connection must deliver a complete request head within
  :data:`REQUEST_READ_TIMEOUT_S` of connecting or of its previous response, else it is closed (a
  slowloris client trickling a header byte a second holds nothing for long). At most
  ``max_connections`` are open at once (:data:`MAX_CONNECTIONS`, at least
  ``max_concurrent_probes + 64``, at most half the open-files limit; fixed at start). At the cap a
  new connection displaces the oldest one that has no request in progress -- an idle or trickling
  one, never a running probe -- so a flood of slow sockets cannot lock out Prometheus; when every
  connection is busy the new one is closed at once. Closures are counted by reason in
  ``wsdoctor_exporter_connections_closed_total``.
- ``GET /metrics``: the exporter's own health -- probes by result, probe durations, probes in
  flight (abandoned ones included), the bound, open connections and their bound, config reloads
  (blackbox's ``config_last_reload_successful``), start time.
- Config reload on ``SIGHUP`` (a bad file keeps the old config and sets
  ``wsdoctor_exporter_config_last_reload_successful 0``); graceful stop on ``SIGINT``/``SIGTERM``:
  the listener closes, in-flight probes are cancelled within a bounded time.

Config (TOML always; YAML when PyYAML is installed, which ``pip install wsdoctor`` does)::

    listen = "127.0.0.1:9115"          # --listen overrides
    max_concurrent_probes = 4
    [profiles.quick]                  # every key optional; defaults below
    checks = ["dns", "tcp", "tls", "http", "ws"]   # ids or families; default all
    skip = []
    quick = true                      # skip slow checks (the idle family); default true here
    timeout = 30                      # whole probe, seconds (the scrape timeout cuts it further)
    connect_timeout = 5
    close_wait = 2
    idle_max = 30
    keepalive_every = 4
    proxy = "http://proxy.corp:3128"  # or no_proxy = true; default: the proxy variables
    api_key_env = "DEEPGRAM_API_KEY"  # the key is read from this variable at each probe
    ca_file = "/etc/ssl/corp-ca.pem"
    [targets.deepgram]
    url = "wss://api.deepgram.com/v1/listen"
    profiles = ["quick"]              # default: every profile

Without ``--config``: the one target ``deepgram`` (Deepgram's endpoint) and one profile
``default`` (all defaults). Unknown keys are errors (a typo must not silently change a probe).

aiohttp is imported inside the functions that serve, so ``wsdoctor --help`` never loads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from wsdoctor import deepgram
from wsdoctor.errors import UsageError
from wsdoctor.model import SUCCESS_VERDICTS, Target

if TYPE_CHECKING:
    from aiohttp import web

    from wsdoctor.check import Check
    from wsdoctor.model import Report

__all__ = [
    "ABANDON_RECANCEL_S",
    "DEFAULT_LISTEN",
    "MAX_CONNECTIONS",
    "REQUEST_READ_TIMEOUT_S",
    "Exporter",
    "ExporterConfig",
    "Listening",
    "Profile",
    "TargetEntry",
    "load_config",
    "parse_config",
    "parse_listen",
    "probe_deadline",
    "serve",
    "start_listening",
]

log = logging.getLogger("wsdoctor.exporter")

DEFAULT_LISTEN = "127.0.0.1:9115"
DEFAULT_URL = deepgram.DEFAULT_URL
#: Prometheus sends its scrape timeout; we answer this much earlier (blackbox's default offset).
SCRAPE_TIMEOUT_OFFSET_S = 0.5
#: The shortest deadline a probe gets, whatever the header says.
MIN_DEADLINE_S = 0.2
#: How long a graceful stop waits for in-flight probes before cutting them.
SHUTDOWN_GRACE_S = 5.0
#: A connection must send a complete request head within this long of connecting (or of its
#: previous response). A real client sends it in one packet, so 5 s is ample over any network,
#: and a slowloris socket is gone after 5 s instead of holding a file descriptor forever.
REQUEST_READ_TIMEOUT_S = 5.0
#: Open connections at once (raised to max_concurrent_probes + 64 when that is more, lowered to
#: half the open-files limit -- each probe needs descriptors of its own). Prometheus holds one
#: connection per concurrent scrape, so 256 is far above any real use.
MAX_CONNECTIONS = 256
#: An abandoned probe's tasks are cancelled again this often until they have ended.
ABANDON_RECANCEL_S = 1.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
# "abandoned": the client went away before the answer (its probe was cancelled)
_PROBE_RESULTS = ("success", "failure", "busy", "forbidden", "bad_request", "error", "abandoned")
_CLOSE_REASONS = ("read_timeout", "displaced", "over_capacity")


@dataclass(frozen=True, slots=True)
class Profile:
    """Which checks a probe runs and how: the exporter's equivalent of ``wsdoctor run`` flags."""

    name: str
    checks: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()
    quick: bool = True
    timeout_s: float = 30.0
    connect_timeout_s: float = 5.0
    close_wait_s: float = 2.0
    idle_max_s: float = 30.0
    keepalive_every_s: float = 4.0
    proxy: str | None = None
    no_proxy: bool = False
    api_key_env: str = "DEEPGRAM_API_KEY"
    ca_file: str | None = None


@dataclass(frozen=True, slots=True)
class TargetEntry:
    name: str
    url: str  # as written in the config (what ?target= may match)
    target: Target
    profiles: tuple[str, ...]  # allowed, in config order; the first is the default


@dataclass(frozen=True, slots=True)
class ExporterConfig:
    listen: tuple[str, int]
    max_concurrent_probes: int
    targets: Mapping[str, TargetEntry]
    profiles: Mapping[str, Profile]
    source: str = "built-in defaults"

    def lookup(self, wanted: str) -> TargetEntry | None:
        """The target whose name or configured URL is exactly ``wanted`` (no normalisation)."""
        if wanted in self.targets:
            return self.targets[wanted]
        return next((t for t in self.targets.values() if t.url == wanted), None)


# -- configuration ------------------------------------------------------------------------------

_PROFILE_KEYS: dict[str, tuple[str, type | tuple[type, ...]]] = {
    # config key -> (Profile field, accepted type)
    "checks": ("checks", list),
    "skip": ("skip", list),
    "quick": ("quick", bool),
    "timeout": ("timeout_s", (int, float)),
    "connect_timeout": ("connect_timeout_s", (int, float)),
    "close_wait": ("close_wait_s", (int, float)),
    "idle_max": ("idle_max_s", (int, float)),
    "keepalive_every": ("keepalive_every_s", (int, float)),
    "proxy": ("proxy", str),
    "no_proxy": ("no_proxy", bool),
    "api_key_env": ("api_key_env", str),
    "ca_file": ("ca_file", str),
}


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT`` or ``:PORT`` (all interfaces); port 0 picks a free one."""
    import ipaddress

    host, sep, port_s = text.rpartition(":")
    if not sep or not port_s.isdigit():
        raise UsageError(f"listen address {text!r}: expected HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = host or "0.0.0.0"  # noqa: S104 - ":PORT" asks for every interface, as blackbox's ":9115"
    port = int(port_s)
    if port > 65535:
        raise UsageError(f"listen address {text!r}: port out of range")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise UsageError(f"listen address {text!r}: put an IPv6 address in brackets") from None
    return host, port


def _where(source: str, path: str) -> str:
    return f"{source}: {path}"


def _positive(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (0 < value < math.inf):
        raise UsageError(f"{where}: must be a positive number of seconds, not {value!r}")
    return float(value)


def _profile(name: str, raw: Any, source: str) -> Profile:
    where = _where(source, f"profiles.{name}")
    if not _NAME.match(name):
        raise UsageError(f"{where}: a profile name is 1-64 letters, digits, '_', '.', ':' or '-'")
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise UsageError(f"{where}: expected a table/mapping")
    values: dict[str, Any] = {"name": name}
    for key, value in raw.items():
        if key not in _PROFILE_KEYS:
            raise UsageError(f"{where}: unknown key {key!r} (one of: {', '.join(sorted(_PROFILE_KEYS))})")
        attr, kind = _PROFILE_KEYS[key]
        if kind == (int, float):
            values[attr] = _positive(value, f"{where}.{key}")
        elif kind is list:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise UsageError(f"{where}.{key}: expected a list of check ids")
            values[attr] = tuple(value)
        elif not isinstance(value, kind) or (kind is str and not value):
            raise UsageError(f"{where}.{key}: expected a {'boolean' if kind is bool else 'non-empty string'}")
        else:
            values[attr] = value
    profile = Profile(**values)
    if profile.ca_file is not None and not os.access(profile.ca_file, os.R_OK):
        raise UsageError(f"{where}.ca_file {profile.ca_file!r}: not a readable file")
    if profile.proxy is not None:
        from wsdoctor.probes.proxy import ProxyURL, redact_proxy_text

        if profile.no_proxy:
            raise UsageError(f"{where}: proxy and no_proxy = true exclude each other")
        try:
            parsed = ProxyURL.parse(profile.proxy)
        except ValueError as exc:
            raise UsageError(f"{where}.proxy {redact_proxy_text(profile.proxy)!r}: {exc}") from None
        if parsed.scheme != "http":
            raise UsageError(f"{where}.proxy {parsed.display!r}: only http:// proxies are supported")
    return profile


def parse_config(data: Any, source: str = "config") -> ExporterConfig:
    """Validate a parsed TOML/YAML document. Raises :class:`UsageError` with one line naming the key."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise UsageError(f"{source}: the top level must be a table/mapping")
    unknown = sorted(set(data) - {"listen", "max_concurrent_probes", "profiles", "targets"})
    if unknown:
        known = "listen, max_concurrent_probes, profiles, targets"
        raise UsageError(f"{source}: unknown key {unknown[0]!r} (one of: {known})")
    listen_raw = data.get("listen", DEFAULT_LISTEN)
    if not isinstance(listen_raw, str):
        raise UsageError(f"{source}: listen: expected a string HOST:PORT")
    listen = parse_listen(listen_raw)
    bound = data.get("max_concurrent_probes", 4)
    if isinstance(bound, bool) or not isinstance(bound, int) or not 1 <= bound <= 1000:
        raise UsageError(f"{source}: max_concurrent_probes: expected an integer from 1 to 1000, not {bound!r}")
    raw_profiles = data.get("profiles") or {"default": {}}
    if not isinstance(raw_profiles, Mapping):
        raise UsageError(f"{source}: profiles: expected a table/mapping of profile names")
    profiles = {str(name): _profile(str(name), raw, source) for name, raw in raw_profiles.items()}
    raw_targets = data.get("targets") or {"deepgram": {"url": DEFAULT_URL}}
    if not isinstance(raw_targets, Mapping):
        raise UsageError(f"{source}: targets: expected a table/mapping of target names")
    targets: dict[str, TargetEntry] = {}
    for name, raw in raw_targets.items():
        name = str(name)
        where = _where(source, f"targets.{name}")
        if not _NAME.match(name):
            raise UsageError(f"{where}: a target name is 1-64 letters, digits, '_', '.', ':' or '-'")
        if not isinstance(raw, Mapping) or not isinstance(raw.get("url"), str):
            raise UsageError(f"{where}: expected a table with url = \"ws(s)://...\"")
        extra = sorted(set(raw) - {"url", "profiles"})
        if extra:
            raise UsageError(f"{where}: unknown key {extra[0]!r} (one of: url, profiles)")
        try:
            target = Target.parse(raw["url"])
        except UsageError as exc:
            raise UsageError(f"{where}.url: {exc}") from None
        allowed = raw.get("profiles", list(profiles))
        if not isinstance(allowed, list) or not allowed or not all(isinstance(p, str) for p in allowed):
            raise UsageError(f"{where}.profiles: expected a non-empty list of profile names")
        missing = [p for p in allowed if p not in profiles]
        if missing:
            raise UsageError(f"{where}.profiles: no profile named {missing[0]!r}")
        targets[name] = TargetEntry(name=name, url=raw["url"], target=target, profiles=tuple(allowed))
    return ExporterConfig(
        listen=listen, max_concurrent_probes=bound, targets=targets, profiles=profiles, source=source
    )


def load_config(path: str | None) -> ExporterConfig:
    """Read and validate the config file (TOML; YAML for ``.yaml``/``.yml``). ``None``: defaults."""
    if path is None:
        return parse_config({}, "built-in defaults")
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise UsageError(f"cannot read config {path!r}: {exc.strerror}") from None
    if path.lower().endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:  # pragma: no cover - PyYAML is a dependency
            raise UsageError(f"{path!r}: a YAML config needs PyYAML (pip install pyyaml); or use TOML") from None
        try:
            data = yaml.safe_load(raw.decode("utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            first = str(exc).replace("\n", " ")
            raise UsageError(f"{path!r} is not valid YAML: {first}") from None
    else:
        import tomllib

        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"{path!r} is not valid TOML: {exc}") from None
    return parse_config(data, path)


def probe_deadline(profile_timeout_s: float, scrape_timeout_header: str | None) -> float:
    """``min(profile timeout, scrape timeout - 0.5 s)``, never below :data:`MIN_DEADLINE_S`.
    A missing or malformed header leaves the profile's timeout."""
    deadline = profile_timeout_s
    scrape = _scrape_timeout(scrape_timeout_header)
    if scrape is not None:
        deadline = min(deadline, scrape - SCRAPE_TIMEOUT_OFFSET_S)
    return max(MIN_DEADLINE_S, deadline)


def _scrape_timeout(header: str | None) -> float | None:
    if header is None:
        return None
    try:
        value = float(header)
    except ValueError:
        return None
    return value if 0 < value < math.inf else None


# -- the exporter's own metrics -----------------------------------------------------------------


@dataclass(slots=True)
class _Stats:
    started_at: float = field(default_factory=time.time)
    probes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_PROBE_RESULTS, 0))
    duration_sum_s: float = 0.0
    duration_count: int = 0
    in_flight: int = 0  # handlers running a probe
    abandoned: int = 0  # probes given up on whose tasks have not ended yet
    connections: int = 0
    max_connections: int = 0
    connections_closed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_CLOSE_REASONS, 0))
    reload_ok: bool = True
    reload_ok_at: float = field(default_factory=time.time)
    reloads_failed: int = 0

    def render(self, config: ExporterConfig) -> str:
        from reports.openmetrics import escape_label_value, format_value
        from wsdoctor import __version__

        out = [
            "# TYPE wsdoctor_exporter_build_info gauge",
            "# HELP wsdoctor_exporter_build_info Version of the wsdoctor exporter (always 1).",
            f'wsdoctor_exporter_build_info{{version="{escape_label_value(__version__)}"}} 1',
            "# TYPE wsdoctor_exporter_probes counter",
            "# HELP wsdoctor_exporter_probes Probe requests answered, by result.",
        ]
        out += [f'wsdoctor_exporter_probes_total{{result="{r}"}} {n}' for r, n in self.probes.items()]
        out += [
            "# TYPE wsdoctor_exporter_probe_duration_seconds summary",
            "# UNIT wsdoctor_exporter_probe_duration_seconds seconds",
            "# HELP wsdoctor_exporter_probe_duration_seconds Wall time of the probes that ran.",
            f"wsdoctor_exporter_probe_duration_seconds_sum {format_value(self.duration_sum_s)}",
            f"wsdoctor_exporter_probe_duration_seconds_count {self.duration_count}",
            "# TYPE wsdoctor_exporter_probes_in_flight gauge",
            "# HELP wsdoctor_exporter_probes_in_flight Probes running now, abandoned ones included until they end.",
            f"wsdoctor_exporter_probes_in_flight {self.in_flight + self.abandoned}",
            "# TYPE wsdoctor_exporter_probes_abandoned gauge",
            "# HELP wsdoctor_exporter_probes_abandoned Probes given up on (hard limit, client gone), not ended yet.",
            f"wsdoctor_exporter_probes_abandoned {self.abandoned}",
            "# TYPE wsdoctor_exporter_max_concurrent_probes gauge",
            "# HELP wsdoctor_exporter_max_concurrent_probes The bound on concurrent probes; one more gets 503.",
            f"wsdoctor_exporter_max_concurrent_probes {config.max_concurrent_probes}",
            "# TYPE wsdoctor_exporter_connections gauge",
            "# HELP wsdoctor_exporter_connections Open HTTP connections.",
            f"wsdoctor_exporter_connections {self.connections}",
            "# TYPE wsdoctor_exporter_max_connections gauge",
            "# HELP wsdoctor_exporter_max_connections The bound on open connections.",
            f"wsdoctor_exporter_max_connections {self.max_connections}",
            "# TYPE wsdoctor_exporter_connections_closed counter",
            "# HELP wsdoctor_exporter_connections_closed Connections the exporter closed, by reason.",
            *(f'wsdoctor_exporter_connections_closed_total{{reason="{r}"}} {n}'
              for r, n in self.connections_closed.items()),
            "# TYPE wsdoctor_exporter_targets gauge",
            "# HELP wsdoctor_exporter_targets Targets the config allows.",
            f"wsdoctor_exporter_targets {len(config.targets)}",
            "# TYPE wsdoctor_exporter_config_last_reload_successful gauge",
            "# HELP wsdoctor_exporter_config_last_reload_successful 1 if the last config (re)load worked.",
            f"wsdoctor_exporter_config_last_reload_successful {1 if self.reload_ok else 0}",
            "# TYPE wsdoctor_exporter_config_last_reload_success_timestamp_seconds gauge",
            "# UNIT wsdoctor_exporter_config_last_reload_success_timestamp_seconds seconds",
            "# HELP wsdoctor_exporter_config_last_reload_success_timestamp_seconds When the config last loaded.",
            f"wsdoctor_exporter_config_last_reload_success_timestamp_seconds {format_value(self.reload_ok_at)}",
            "# TYPE wsdoctor_exporter_start_time_seconds gauge",
            "# UNIT wsdoctor_exporter_start_time_seconds seconds",
            "# HELP wsdoctor_exporter_start_time_seconds When the exporter started (Unix time).",
            f"wsdoctor_exporter_start_time_seconds {format_value(self.started_at)}",
            "# EOF",
        ]
        return "\n".join(out) + "\n"


# -- connections --------------------------------------------------------------------------------


class _Conn:
    __slots__ = ("busy", "timer", "transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.busy = False
        self.timer: asyncio.TimerHandle | None = None


class _ConnectionGuard:
    """Open connections, their request-head deadlines and the cap (see the module docstring).

    A connection is *busy* while a handler runs for it (the app's middleware says so) and *idle*
    otherwise: before its first request head is complete, and between keep-alive requests. Only
    idle ones have a deadline, and only idle ones are displaced at the cap, oldest first."""

    def __init__(self, limit: int, read_timeout_s: float, stats: _Stats) -> None:
        self.limit = limit
        self.read_timeout_s = read_timeout_s
        self.stats = stats
        stats.max_connections = limit
        self._conns: dict[asyncio.Transport, _Conn] = {}
        self._idle: dict[_Conn, None] = {}  # insertion-ordered: the longest idle first

    def protocol_factory(self, factory: Any) -> Any:
        """Wrap aiohttp's protocol factory (``runner.server``) so each connection passes here."""
        return lambda: _GuardedProtocol(self, factory)

    def opened(self, transport: asyncio.Transport) -> bool:
        if len(self._conns) >= self.limit:
            oldest = next(iter(self._idle), None)
            if oldest is None:  # every connection is running a request: this one goes, at once
                self.stats.connections_closed["over_capacity"] += 1
                transport.abort()
                return False
            self._drop(oldest, "displaced")
        conn = _Conn(transport)
        self._conns[transport] = conn
        self.stats.connections = len(self._conns)
        self._set_idle(conn)
        return True

    def closed(self, transport: asyncio.Transport) -> None:
        conn = self._conns.pop(transport, None)
        if conn is not None:
            self._forget(conn)

    def request_started(self, transport: asyncio.Transport | None) -> None:
        conn = self._conns.get(transport) if transport is not None else None
        if conn is not None:
            self._idle.pop(conn, None)
            if conn.timer is not None:
                conn.timer.cancel()
                conn.timer = None
            conn.busy = True

    def request_finished(self, transport: asyncio.Transport | None) -> None:
        conn = self._conns.get(transport) if transport is not None else None
        if conn is not None and conn.busy:
            conn.busy = False
            self._set_idle(conn)

    def close_all(self) -> None:
        for conn in list(self._conns.values()):
            self._conns.pop(conn.transport, None)
            self._forget(conn)
            conn.transport.abort()

    def _set_idle(self, conn: _Conn) -> None:
        self._idle[conn] = None
        conn.timer = asyncio.get_running_loop().call_later(self.read_timeout_s, self._expire, conn)

    def _expire(self, conn: _Conn) -> None:
        conn.timer = None
        if not conn.busy and self._conns.get(conn.transport) is conn:
            self._drop(conn, "read_timeout")

    def _drop(self, conn: _Conn, reason: str) -> None:
        self._conns.pop(conn.transport, None)
        self._forget(conn)
        self.stats.connections_closed[reason] += 1
        conn.transport.abort()

    def _forget(self, conn: _Conn) -> None:
        self._idle.pop(conn, None)
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        self.stats.connections = len(self._conns)


class _GuardedProtocol(asyncio.Protocol):
    """aiohttp's protocol for one connection, created only once the guard has let it in."""

    def __init__(self, guard: _ConnectionGuard, factory: Any) -> None:
        self._guard = guard
        self._factory = factory
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # a stream server's transport
        self._transport = transport
        if self._guard.opened(transport):
            self._inner = self._factory()
            self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is not None and self._transport is not None:
            self._guard.closed(self._transport)
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


def connection_limit(max_concurrent_probes: int) -> int:
    """:data:`MAX_CONNECTIONS`, at least ``max_concurrent_probes + 64``, at most half the
    open-files limit (never below 16)."""
    limit = max(MAX_CONNECTIONS, max_concurrent_probes + 64)
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return limit
    if soft != resource.RLIM_INFINITY and soft > 0:
        limit = min(limit, max(16, soft // 2))
    return limit


# -- the web app --------------------------------------------------------------------------------


class Exporter:
    """The ``/probe`` and ``/metrics`` handlers around one (reloadable) config."""

    def __init__(
        self,
        config: ExporterConfig,
        checks: Mapping[str, type[Check]],
        broken_plugins: Mapping[str, str] | None = None,
        config_path: str | None = None,
    ) -> None:
        for profile in config.profiles.values():
            self._select(checks, profile)  # an unknown check id is a config error, now
        self.config = config
        self.checks = dict(checks)
        self.broken_plugins = dict(broken_plugins or {})
        self.config_path = config_path
        self.stats = _Stats()
        self._abandoned: set[asyncio.Task[None]] = set()  # one reaper per abandoned probe
        self.guard: _ConnectionGuard | None = None  # set by start_listening()

    @staticmethod
    def _select(checks: Mapping[str, type[Check]], profile: Profile) -> tuple[list[type[Check]], set[str]]:
        from wsdoctor.runner import select_checks

        try:
            return select_checks(dict(checks), only=profile.checks, skip=profile.skip, quick=profile.quick)
        except UsageError as exc:
            raise UsageError(f"profile {profile.name!r}: {exc}") from None

    def reload(self) -> bool:
        """Re-read the config file (SIGHUP). A bad file keeps the running config."""
        try:
            config = load_config(self.config_path)
            for profile in config.profiles.values():
                self._select(self.checks, profile)
        except UsageError as exc:
            self.stats.reload_ok = False
            self.stats.reloads_failed += 1
            log.error("config reload failed, keeping the running config: %s", exc)
            return False
        if config.listen != self.config.listen:
            log.warning("listen address changes take effect at the next start")
        self.config = config
        self.stats.reload_ok = True
        self.stats.reload_ok_at = time.time()
        log.info("config reloaded from %s: %d targets, %d profiles", config.source, len(config.targets),
                 len(config.profiles))
        return True

    def app(self) -> web.Application:
        from aiohttp import web

        app = web.Application(middlewares=[self._request_tracker()])
        app.router.add_get("/", self.index)
        app.router.add_get("/probe", self.probe)
        app.router.add_get("/metrics", self.metrics)
        return app

    def _request_tracker(self) -> Any:
        """The middleware that tells the connection guard when a handler runs."""
        from aiohttp import web

        @web.middleware
        async def track(request: web.Request, handler: Any) -> web.StreamResponse:
            """Tell the connection guard a handler runs: no read deadline, not displaceable."""
            guard, transport = self.guard, request.transport
            if guard is not None:
                guard.request_started(transport)
            try:
                response: web.StreamResponse = await handler(request)
                return response
            finally:
                if guard is not None:
                    guard.request_finished(transport)

        return track

    async def index(self, request: web.Request) -> web.Response:
        from aiohttp import web

        names = ", ".join(sorted(self.config.targets))
        body = (
            "wsdoctor exporter\n\n"
            "GET /probe?target=NAME&profile=PROFILE  diagnose a configured target (OpenMetrics)\n"
            "GET /metrics                            the exporter's own metrics\n\n"
            f"targets: {names}\nprofiles: {', '.join(sorted(self.config.profiles))}\n"
        )
        return web.Response(text=body, content_type="text/plain")

    async def metrics(self, request: web.Request) -> web.Response:
        from aiohttp import web

        from reports.openmetrics import CONTENT_TYPE

        return web.Response(body=self.stats.render(self.config).encode(), headers={"Content-Type": CONTENT_TYPE})

    def _refuse(self, status: int, result: str, message: str) -> web.Response:
        from aiohttp import web

        self.stats.probes[result] += 1
        return web.Response(status=status, text=message + "\n", content_type="text/plain")

    async def probe(self, request: web.Request) -> web.Response:
        from aiohttp import web

        from reports.openmetrics import CONTENT_TYPE, OpenMetricsReporter

        config = self.config  # one config for the whole probe, even across a reload
        wanted = request.query.get("target")
        if not wanted:
            return self._refuse(400, "bad_request", "missing the 'target' parameter")
        entry = config.lookup(wanted)
        if entry is None:
            # Never echo the unlisted value: it may be a URL with credentials.
            return self._refuse(403, "forbidden", "target not allowed: list it in the exporter's config")
        profile_name = request.query.get("profile") or entry.profiles[0]
        profile = config.profiles.get(profile_name)
        if profile is None:
            known = ", ".join(sorted(config.profiles))
            return self._refuse(400, "bad_request", f"unknown profile (configured: {known})")
        if profile_name not in entry.profiles:
            return self._refuse(403, "forbidden", f"profile not allowed for target {entry.name!r}")
        if self.stats.in_flight + self.stats.abandoned >= config.max_concurrent_probes:
            ended = f" ({self.stats.abandoned} abandoned, not ended yet)" if self.stats.abandoned else ""
            return self._refuse(
                503, "busy", f"{config.max_concurrent_probes} probes already running{ended}; try later"
            )
        header = request.headers.get("X-Prometheus-Scrape-Timeout-Seconds")
        deadline = probe_deadline(profile.timeout_s, header)
        scrape = _scrape_timeout(header)
        hard = max(deadline, scrape - 0.1) if scrape is not None else deadline + 3.0
        self.stats.in_flight += 1
        t0 = time.monotonic()
        try:
            report = await self._run(entry, profile, deadline, hard)
        except asyncio.CancelledError:  # the client went away (or we are stopping): no answer
            self.stats.probes["abandoned"] += 1
            raise
        except Exception as exc:  # our bug: say so in one line, keep serving
            log.exception("probe of %s failed", entry.name)
            return self._refuse(500, "error", f"internal error: {type(exc).__name__}")
        finally:
            self.stats.in_flight -= 1
            self.stats.duration_sum_s += time.monotonic() - t0
            self.stats.duration_count += 1
        verdict = report.summary.verdict
        self.stats.probes["success" if verdict in SUCCESS_VERDICTS else "failure"] += 1
        log.info(
            "probe target=%s profile=%s verdict=%s primary_cause=%s deadline=%.1fs took=%.2fs",
            entry.name, profile.name, verdict, report.summary.primary_cause, deadline, time.monotonic() - t0,
        )
        body = OpenMetricsReporter(target_label=entry.name).render(report)
        return web.Response(body=body.encode(), headers={"Content-Type": CONTENT_TYPE})

    async def _run(self, entry: TargetEntry, profile: Profile, deadline: float, hard: float) -> Report:
        """One diagnosis, cut at ``deadline``; if even the cut overruns ``hard``, an empty
        interrupted report. Every task the probe creates, however deep (the runner's per-check
        tasks too), is recorded through a context variable and the loop's task factory; whatever
        of them still runs when this returns or is cancelled is abandoned (:meth:`_abandon`)."""
        import datetime

        from wsdoctor import __version__
        from wsdoctor.check import RunOptions
        from wsdoctor.diagnosis import Diagnosis, diagnose
        from wsdoctor.model import Report

        checks, _deselected = self._select(self.checks, profile)
        # A profile field named as a run option is that option (``wsdoctor run``'s flag of that name).
        shared = {f.name for f in fields(RunOptions)} & {f.name for f in fields(Profile)}
        options = RunOptions(
            **{name: getattr(profile, name) for name in sorted(shared)},
            ping_every_s=min(2.0, profile.keepalive_every_s),
        )
        diagnosis = Diagnosis(
            target=entry.target,
            options=options,
            checks=checks,
            key=os.environ.get(profile.api_key_env),
            broken_plugins=self.broken_plugins,
            deadline_s=deadline,
            deadline_label="the probe deadline (scrape timeout)",
        )
        started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        t0 = time.monotonic()
        tracked: set[asyncio.Task[Any]] = set()
        token = _PROBE_TASKS.set(tracked)
        try:
            run = asyncio.ensure_future(diagnose(diagnosis))  # its context, and its children's, hold `tracked`
        finally:
            _PROBE_TASKS.reset(token)
        _track(run, tracked)  # also without the task factory (an app served some other way)
        try:
            try:
                done, _ = await asyncio.wait({run}, timeout=hard)
            except asyncio.CancelledError:
                log.warning("probe of %s: the client went away; cancelling it", entry.name)
                raise
            if run in done:
                return run.result()
            log.warning("probe of %s overran its hard limit of %.1f s; answering without it", entry.name, hard)
            return Report(
                target=entry.target,
                results=(),
                started_at=started,
                duration_s=round(time.monotonic() - t0, 6),
                wsdoctor_version=__version__,
                interrupted=True,
            )
        finally:
            self._abandon(tracked, entry.name)  # what still runs (also checks a deadline cut left behind)

    def _abandon(self, tracked: set[asyncio.Task[Any]], name: str) -> None:
        """Cancel the probe's tasks still running and count the probe (in the bound and in
        /metrics) until every one of them has really ended; a reaper cancels them again while
        they have not (a check may swallow a cancellation)."""
        live = [t for t in tracked if not t.done()]
        if not live:
            return
        for task in live:
            task.cancel()
        self.stats.abandoned += 1
        reaper = asyncio.ensure_future(self._reap(tracked, name))
        self._abandoned.add(reaper)  # a strong reference, and the count

        def ended(t: asyncio.Task[None]) -> None:
            self._abandoned.discard(t)
            self.stats.abandoned -= 1

        reaper.add_done_callback(ended)

    async def _reap(self, tracked: set[asyncio.Task[Any]], name: str) -> None:
        """Until no task of the probe runs (tasks its cancelled tasks start join ``tracked``)."""
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        while live := {t for t in tracked if not t.done()}:
            done, pending = await asyncio.wait(live, timeout=ABANDON_RECANCEL_S)
            for task in done:
                _consume(task)
            for task in pending:  # one that swallowed the cancellation gets another
                task.cancel()
        log.info("abandoned probe of %s ended %.1f s after it was cancelled", name, loop.time() - t0)

    async def wait_abandoned(self, timeout: float) -> bool:
        """Wait (at most ``timeout``) until every abandoned probe has ended; True if they have."""
        if self._abandoned:
            await asyncio.wait(set(self._abandoned), timeout=timeout)
        return not self._abandoned


def _consume(task: asyncio.Task[Any]) -> None:
    """Retrieve a finished task's exception, so asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()


#: The task set of the probe whose code is running: every task created in that context (the
#: diagnosis, the runner's per-check tasks, a check's own) is added to it by the task factory.
_PROBE_TASKS: contextvars.ContextVar[set[asyncio.Task[Any]] | None] = contextvars.ContextVar(
    "wsdoctor_probe_tasks", default=None
)


def _track(task: asyncio.Task[Any], tracked: set[asyncio.Task[Any]] | None) -> None:
    if tracked is not None and not task.done():
        tracked.add(task)
        task.add_done_callback(tracked.discard)


def _tracking_task_factory(previous: Any) -> Any:
    """A task factory that records each new task in the creating probe's set (if any)."""

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = (
            previous(loop, coro, **kwargs) if previous is not None else asyncio.Task(coro, loop=loop, **kwargs)
        )
        _track(task, _PROBE_TASKS.get())
        return task

    return factory


@dataclass
class Listening:
    """A started exporter: its address, and :meth:`stop`."""

    exporter: Exporter
    runner: Any  # aiohttp.web.AppRunner
    server: asyncio.base_events.Server
    guard: _ConnectionGuard
    previous_task_factory: Any = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def stop(self) -> None:
        """Close the listener, stop the handlers (in-flight probes are cancelled after
        SHUTDOWN_GRACE_S), wait a bounded time for abandoned probes, close what is left."""
        self.server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.runner.cleanup(), SHUTDOWN_GRACE_S + 5.0)
        if not await self.exporter.wait_abandoned(SHUTDOWN_GRACE_S):
            log.warning("%d abandoned probes still running at exit", len(self.exporter._abandoned))
        self.guard.close_all()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.server.wait_closed(), 1.0)
        asyncio.get_running_loop().set_task_factory(self.previous_task_factory)


async def start_listening(
    exporter: Exporter,
    host: str,
    port: int,
    *,
    max_connections: int | None = None,
    read_timeout_s: float = REQUEST_READ_TIMEOUT_S,
) -> Listening:
    """Serve ``exporter`` on ``host:port`` (port 0: a free one) behind the connection guard."""
    from aiohttp import web

    runner = web.AppRunner(
        exporter.app(),
        handle_signals=False,
        access_log=None,
        shutdown_timeout=SHUTDOWN_GRACE_S,
        handler_cancellation=True,  # a client that leaves cancels its probe (see _run)
    )
    await runner.setup()
    limit = max_connections or connection_limit(exporter.config.max_concurrent_probes)
    guard = _ConnectionGuard(limit, read_timeout_s, exporter.stats)
    exporter.guard = guard
    assert runner.server is not None
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(guard.protocol_factory(runner.server), host, port, backlog=128)
    except OSError as exc:
        await runner.cleanup()
        raise UsageError(f"wsdoctor serve cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    previous = loop.get_task_factory()
    loop.set_task_factory(_tracking_task_factory(previous))
    return Listening(exporter, runner, server, guard, previous)


async def _main(exporter: Exporter, host: str, port: int) -> int:
    import signal

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed: list[signal.Signals] = []
    for sig, action in ((signal.SIGINT, stop.set), (signal.SIGTERM, stop.set), (signal.SIGHUP, exporter.reload)):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, action)
            installed.append(sig)
    listening: Listening | None = None
    try:
        listening = await start_listening(exporter, host, port)
        addr = listening.address
        shown = f"[{addr[0]}]" if ":" in str(addr[0]) else str(addr[0])
        print(
            f"wsdoctor exporter listening on http://{shown}:{addr[1]} "
            f"({len(exporter.config.targets)} targets, {len(exporter.config.profiles)} profiles, "
            f"config: {exporter.config.source})",
            flush=True,
        )
        await stop.wait()
        log.info("stopping: closing the listener, cutting in-flight probes after %.0f s", SHUTDOWN_GRACE_S)
    finally:
        if listening is not None:
            await listening.stop()
        for sig in installed:
            loop.remove_signal_handler(sig)
    return 0


def serve(config_path: str | None, listen: str | None = None) -> int:
    """Blocking entry point of ``wsdoctor serve``: load the config and the checks, serve until
    SIGINT/SIGTERM; returns the exit code. Config errors raise :class:`UsageError` (exit 2)."""
    from wsdoctor.registry import load_checks

    config = load_config(config_path)
    host, port = parse_listen(listen) if listen is not None else config.listen
    loaded = load_checks()
    exporter = Exporter(config, loaded.checks, loaded.broken, config_path)
    if not log.handlers:  # our own logger only: the root logger stays the embedding program's
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s wsdoctor serve: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    return asyncio.run(_main(exporter, host, port))
