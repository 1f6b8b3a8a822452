"""The check contract and the context handed to every check.

A check is a small class: an ``id`` (``family.name``), a ``title``, the ids it ``requires``, a hard
``timeout`` and an async ``run(ctx)`` that returns a :class:`~wsdoctor.model.CheckResult`. The
runner orders checks by ``requires``, runs independent ones concurrently, enforces the deadline
and skips dependants of a failed requirement. Checks do the I/O through ``wsdoctor.probes`` and
judge with a pure ``analyze()`` next to them in ``checks/<family>.py``.

:class:`ObservingCheck` is that split as a template, in the spirit of a sans-I/O core: ``observe``
does all the I/O and returns a typed observation (or a skip), ``judge`` hands it to the pure
``analyze``, ``summarize``/``measure``/``evidence`` say it in a line, in numbers and in the report;
its ``run`` only wires them together, so no ``run()`` holds a judgement and a recorded observation
is judged exactly as a live one. :func:`finding` makes a finding with its code's default cause.

Stdlib-only at import time: aiohttp and friends are imported inside ``run``.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar, final

from wsdoctor.causes import cause_for
from wsdoctor.errors import UsageError
from wsdoctor.model import CheckResult, Finding, JSONValue, Metric, Status, Target

if TYPE_CHECKING:
    from wsdoctor.probes.key import KeyObservation

__all__ = [
    "MIN_PHASE_S",
    "Check",
    "Context",
    "ObsT",
    "Observation",
    "ObservingCheck",
    "ResolveOverride",
    "RunOptions",
    "Secret",
    "finding",
]

T = TypeVar("T")

FIXTURES_AUDIO = Path(__file__).resolve().parent / "data" / "speech.wav"


class Secret:
    """A credential that never prints itself. ``reveal()`` is the only way to read it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


@dataclass(frozen=True, slots=True)
class ResolveOverride:
    """``--resolve HOST:PORT:ADDR`` with curl's meaning: connect to ADDR, keep SNI and Host."""

    host: str
    port: int
    address: str

    @classmethod
    def parse(cls, text: str) -> ResolveOverride:
        host, sep1, rest = text.partition(":")
        port_s, sep2, addr = rest.partition(":")
        addr = addr.strip("[]")
        if not (sep1 and sep2 and host and port_s and addr):
            raise UsageError(f"--resolve {text!r}: expected HOST:PORT:ADDR")
        try:
            port = int(port_s)
            ipaddress.ip_address(addr)
        except ValueError:
            raise UsageError(f"--resolve {text!r}: PORT must be a number and ADDR an IP address") from None
        if not 0 < port < 65536:
            raise UsageError(f"--resolve {text!r}: port out of range")
        return cls(host=host.lower(), port=port, address=addr)


#: The shortest wait a phase is given when a deadline is near: long enough for loopback, and a
#: phase that cannot finish in it still records a timeout rather than never starting.
MIN_PHASE_S = 0.1


@dataclass(frozen=True, slots=True)
class RunOptions:
    """Everything a check may read from the command line. Defaults are the CLI's defaults."""

    api_key_env: str = "DEEPGRAM_API_KEY"
    ca_file: str | None = None
    resolve: tuple[ResolveOverride, ...] = ()
    connect_timeout_s: float = 5.0
    close_wait_s: float = 5.0
    slow_first_result_s: float = 3.0  # warn above, fail above twice this
    quick: bool = False
    audio_path: Path = FIXTURES_AUDIO
    idle_max_s: float = 30.0  # bounds the whole idle family (its connections run side by side)
    keepalive_every_s: float = 4.0  # Deepgram: KeepAlive every 3-5 s while idle
    ping_every_s: float = 2.0  # WebSocket pings on the ping connection of the idle family
    soak_s: float | None = None  # --soak: stream this long, reconnecting on drops
    repeat: int | None = None  # --repeat N: time the connection phases over N sequential connections
    pid: int | None = None  # --pid: host checks inspect this process's sockets and fds, not ours
    app_dir: str | None = None  # --app-dir: sdk checks read the versions pinned in this app's lockfiles
    proxy: str | None = None  # --proxy URL: overrides the proxy variables (may hold a password)
    no_proxy: bool = False  # --no-proxy: ignore the proxy variables, go direct (trust_env=False)
    dns_server: tuple[str, int] | None = None  # --dns-server ADDR[:PORT]: resolve through it only
    #: --api: which Deepgram API the target is ("listen", "flux", "speak", "agent"); None: from its path
    api: str | None = None

    def within(self, budget_s: float) -> RunOptions:
        """These options with every per-phase wait cut to fit ``budget_s`` seconds (a run deadline:
        ``--timeout``, a scrape timeout), so a silent resolver or a blackholed SYN is still named --
        as a timeout of the phase, with its evidence -- before the deadline, instead of being cut."""
        from dataclasses import replace

        cap = max(MIN_PHASE_S, budget_s)
        return replace(
            self,
            connect_timeout_s=min(self.connect_timeout_s, cap),
            close_wait_s=min(self.close_wait_s, cap),
            idle_max_s=min(self.idle_max_s, cap),
            soak_s=min(self.soak_s, cap) if self.soak_s is not None else None,
        )

    def resolve_for(self, host: str, port: int) -> str | None:
        for r in self.resolve:
            if r.host == host.lower() and r.port == port:
                return r.address
        return None


@dataclass(slots=True)
class Context:
    """What a check gets: the target, the options, the key, and the results it may read."""

    target: Target
    options: RunOptions = field(default_factory=RunOptions)
    api_key: Secret | None = None
    #: Results of the checks finished so far (always including everything in ``requires``).
    results: Mapping[str, CheckResult] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic
    #: Run-wide memo shared by every check's context (see :meth:`shared`).
    memo: dict[str, Any] = field(default_factory=dict)
    #: What the key variable held (state and form, no key material); ``None`` when nobody read it.
    key: KeyObservation | None = None
    #: Ids of the checks in this run that need an API key (``Check.needs_key``): what a run without
    #: one cannot test.
    key_checks: tuple[str, ...] = ()
    #: When every phase must be over (``clock()`` time), for a run with a deadline; ``None``: none.
    deadline_at: float | None = None

    @property
    def api(self) -> str:
        """The Deepgram API under test: ``--api``, else what the URL's path says, else "listen"
        (:class:`wsdoctor.deepgram.Api` values)."""
        if self.options.api:
            return self.options.api
        from wsdoctor.deepgram import AGENT_HOST, Api, api_for

        found = api_for(self.target.resource)
        if found is None and self.target.host.lower() == AGENT_HOST:
            found = Api.AGENT  # the Voice Agent's host serves nothing else
        return (found or Api.LISTEN).value

    def timeout(self, phase_s: float) -> float:
        """The wait to give one phase: ``phase_s``, or what is left before the run's deadline.

        A probe calls this for each wait of a multi-phase connection (resolve, connect, TLS, upgrade):
        the options are already cut to the budget when the check starts, this keeps the phases that
        follow one another inside it too."""
        if self.deadline_at is None:
            return phase_s
        return max(MIN_PHASE_S, min(phase_s, self.deadline_at - self.clock()))

    def shared(self, key: str, factory: Callable[[], Coroutine[Any, Any, T]]) -> Awaitable[T]:
        """One task per run for ``key``: the first check to ask starts ``factory()``, the others
        await the same result. A family probe (e.g. the idle connections, which must run side by
        side) is measured once and judged by several checks. Awaiting is shielded, so one
        check's deadline does not cancel the probe its siblings are waiting on."""
        import asyncio

        task = self.memo.get(key)
        if task is None:
            task = self.memo[key] = asyncio.ensure_future(factory())
        return asyncio.shield(task)

    def result_of(self, check_id: str) -> CheckResult | None:
        return self.results.get(check_id)

    def evidence_of(self, check_id: str, key: str) -> Any:
        """One evidence entry of a finished check (``None`` if absent): how checks pass facts on."""
        result = self.results.get(check_id)
        return result.evidence.get(key) if result is not None else None


class Check:
    """Base class of every check, built-in or third-party (entry-point group ``wsdoctor.checks``)."""

    id: ClassVar[str]
    title: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()
    timeout: ClassVar[float] = 10.0
    slow: ClassVar[bool] = False  # excluded by --quick
    needs_key: ClassVar[bool] = False  # needs an API key: skipped, and named as untested, without one
    #: The Deepgram APIs whose protocol this check speaks ("listen", "flux", "speak", "agent"); ``None``:
    #: every API (the network path, the upgrade, the host). Another API's run skips it, saying why.
    apis: ClassVar[frozenset[str] | None] = None

    @classmethod
    def applies_to(cls, api: str) -> bool:
        return cls.apis is None or api in cls.apis

    def deadline_s(self, options: RunOptions) -> float:
        """The hard deadline for this run; override when it depends on the options."""
        return self.timeout

    @classmethod
    def requested(cls, options: RunOptions) -> bool:
        """False for an opt-in check the options did not ask for (``--soak``, ``--repeat``): it
        skips as "not requested", and a run without a key does not count it as untested."""
        return True

    async def run(self, ctx: Context) -> CheckResult:
        raise NotImplementedError

    # Helpers that fill in id and title, so checks only say what they found.
    def result(
        self,
        findings: Iterable[Finding] = (),
        *,
        summary: str,
        metrics: Mapping[str, Metric] | None = None,
        evidence: Mapping[str, JSONValue] | None = None,
    ) -> CheckResult:
        found = tuple(findings)
        status = Status.PASS
        if any(f.severity is Status.FAIL for f in found):
            status = Status.FAIL
        elif any(f.severity is Status.WARN for f in found):
            status = Status.WARN
        if found and status is not Status.PASS:
            summary = "; ".join(f.message for f in found if f.severity is status)
        return CheckResult(
            check_id=self.id,
            title=self.title,
            status=status,
            summary=summary,
            metrics=dict(metrics or {}),
            evidence=dict(evidence or {}),
            findings=found,
        )

    def skip(
        self, reason: str, *, blocked_by: str | None = None, evidence: Mapping[str, JSONValue] | None = None
    ) -> CheckResult:
        return CheckResult(
            check_id=self.id,
            title=self.title,
            status=Status.SKIP,
            summary=reason,
            blocked_by=blocked_by,
            evidence=dict(evidence or {}),
        )


class Observation(Protocol):
    """What a probe hands a check: a frozen record whose ``to_dict()`` is its report form
    (:class:`wsdoctor.record.Record`)."""

    def to_dict(self) -> Mapping[str, JSONValue]: ...


ObsT = TypeVar("ObsT", bound=Observation)


class ObservingCheck(Check, Generic[ObsT]):
    """A check that observes, then judges: the I/O in :meth:`observe`, the judgement in :meth:`judge`.

    ``run`` is fixed: :meth:`preflight` (a skip decided before any probing), observe (a
    :class:`~wsdoctor.model.CheckResult` returned there is a skip, and is the result), then judge,
    summarize, measure and record the one observation. A check whose evidence holds several
    observations observes a small composite record of them and overrides :meth:`evidence`.
    ``judge`` and ``summarize`` do no I/O: they read the observation and, from ``ctx``, only the
    run's settings (thresholds, the key variable's observation)."""

    #: The evidence entry the observation is recorded under; ``None``: its report form is the evidence.
    evidence_key: ClassVar[str | None] = None
    #: For an opt-in check (see :meth:`Check.requested`): the option that asks for it, named in its skip.
    opt_in: ClassVar[str] = ""

    def preflight(self, ctx: Context) -> CheckResult | None:
        """A skip decided before any probing, else ``None``: an opt-in check the options did not ask for."""
        if not self.requested(ctx.options):
            return self.skip(f"not requested (use {self.opt_in})")
        if not self.applies_to(ctx.api):
            spoken = "/".join(sorted(self.apis or ()))
            return self.skip(f"not for the {ctx.api} API: this check speaks {spoken}'s protocol")
        return None

    async def observe(self, ctx: Context) -> ObsT | CheckResult:
        """Probe, and return what was seen -- or a skip (``self.skip(...)``) when there is nothing to probe."""
        raise NotImplementedError

    def judge(self, obs: ObsT, ctx: Context) -> list[Finding]:
        """The findings: the module's pure ``analyze`` applied to ``obs``."""
        raise NotImplementedError

    def summarize(self, obs: ObsT, ctx: Context) -> str:
        """One line for the table (replaced by the findings' messages when they warn or fail)."""
        raise NotImplementedError

    def measure(self, obs: ObsT) -> Mapping[str, Metric]:
        return {}

    def evidence(self, obs: ObsT) -> Mapping[str, JSONValue]:
        recorded = obs.to_dict()
        return recorded if self.evidence_key is None else {self.evidence_key: recorded}

    @final
    async def run(self, ctx: Context) -> CheckResult:
        skipped = self.preflight(ctx)
        if skipped is not None:
            return skipped
        obs = await self.observe(ctx)
        if isinstance(obs, CheckResult):
            return obs
        return self.result(
            self.judge(obs, ctx),
            summary=self.summarize(obs, ctx),
            metrics=self.measure(obs),
            evidence=self.evidence(obs),
        )


def finding(code: str, severity: Status, message: str, evidence: Mapping[str, JSONValue] | None = None) -> Finding:
    """A finding that points to its code's default cause (:func:`wsdoctor.causes.cause_for`)."""
    return Finding(code, cause_for(code), severity, message, {} if evidence is None else evidence)
