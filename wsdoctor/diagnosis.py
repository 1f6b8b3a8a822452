"""One diagnosis, start to finish, as a coroutine: what ``wsdoctor run`` does minus the terminal.

Theory of operation. :func:`diagnose` reads the key it was handed, builds one
:class:`~wsdoctor.check.Context` per check (all sharing the run-wide memo that family probes use),
runs the checks through :func:`wsdoctor.runner.run_checks` as a task, and bounds it: by
``deadline_s`` (``--timeout``, or a Prometheus scrape timeout) and by cancellation (signals). Either
way the partial results come back as a :class:`~wsdoctor.model.Report` marked ``interrupted``.
Family probes still running when the checks are done are cancelled. Secrets (the API key, proxy
passwords) are redacted by the runner before any result leaves it.

The engine diagnoses a :class:`~wsdoctor.model.Target` and never starts a server: the built-in mock
is started by the command that asked for it (``wsdoctor run --target mock``), which hands over the
mock's URL as a target marked ``is_mock`` and the key it gave the mock, and stops it afterwards.
This module does not import :mod:`wsdoctor.mock`.

Used by ``wsdoctor run`` (with signal handling around it) and by the exporter (``wsdoctor serve``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import platform
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from wsdoctor import __version__
from wsdoctor.check import Check, Context, RunOptions, Secret
from wsdoctor.model import CheckResult, JSONValue, Report, Status, Target
from wsdoctor.probes.key import KeyObservation, read_key
from wsdoctor.redact import Redactor
from wsdoctor.runner import run_checks

__all__ = ["Diagnosis", "diagnose", "environment", "run_secrets"]

#: Every phase is over this long before the run's deadline; the rest writes the report in time.
PHASE_MARGIN_S = 0.4

_PROXY_VARS = {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "WS_PROXY", "WSS_PROXY"}


@dataclass(slots=True)
class Diagnosis:
    """What to diagnose and how.

    ``key`` is the key variable's value as read (``None``: unset), cleaned by :func:`diagnose`. For
    a target marked ``is_mock`` -- the built-in mock, started by the caller -- it is the key the
    caller gave that mock: recorded as key state ``"mock"`` (no variable of the user's to judge),
    used and redacted like any key."""

    target: Target
    options: RunOptions
    checks: Sequence[type[Check]]
    key: str | None = None
    broken_plugins: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)  # besides the key and proxy passwords (run_secrets)
    deadline_s: float | None = None
    deadline_label: str = "--timeout"  # what set the deadline, in the words of the report


def run_secrets(key: str | None, proxy: str | None) -> list[str]:
    """Everything to redact in a run: the key, the ``--proxy`` password and the password of every
    proxy variable in the environment (either case) -- as written, percent-decoded, and inside the
    ``Basic`` credential sent to the proxy. The password is everything between the userinfo's first
    ``:`` and the URL's *last* ``@`` (:func:`wsdoctor.probes.proxy.split_proxy_url`), so one holding
    ``/``, ``@``, ``#``, ``?``, ``%`` or spaces is registered whole, even when the URL does not parse."""
    from wsdoctor.probes.proxy import proxy_secrets

    found = [key] if key else []
    values = [proxy] if proxy else []
    values += [v for k, v in os.environ.items() if k.upper() in _PROXY_VARS and v]
    for value in values:
        found += proxy_secrets(value)
    return [s for s in dict.fromkeys(found) if len(s) >= 3]


def environment(secrets: Iterable[str]) -> dict[str, JSONValue]:
    """Where the run happened; proxy variables as set (both cases), passwords redacted -- by
    structure (:func:`wsdoctor.probes.proxy.redact_proxy_text`: whatever the password holds, and
    also when the caller registered no secret), then by the run's known secrets."""
    from wsdoctor.probes.proxy import redact_proxy_text

    redactor = Redactor(secrets)
    proxies = {
        name: redactor.text(redact_proxy_text(value))
        for name, value in sorted(os.environ.items())
        if name.upper() in _PROXY_VARS
    }
    return {
        "wsdoctor": __version__,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "proxy_env": proxies,
    }


async def diagnose(d: Diagnosis, *, on_task: Callable[[asyncio.Task[Any]], None] | None = None) -> Report:
    """Run the diagnosis; returns a (possibly partial) report. ``on_task`` receives the checks task
    so a caller can cancel it (signals); cancelling it yields a report marked interrupted."""
    started_at = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    target = d.target
    key_obs, key = read_key(d.options.api_key_env, d.key)
    if target.is_mock:  # the caller made this key for the mock: nothing the user set to judge
        key_obs = KeyObservation(d.options.api_key_env, "mock", read_at=key_obs.read_at)
    secret = Secret(key) if key else None
    # the key as the run uses it (cleaned) and as the variable holds it (raw) are both secrets
    raw_key = d.key.strip() if d.key else None
    secrets = [
        s for s in dict.fromkeys((*run_secrets(key, d.options.proxy), *run_secrets(raw_key, None), *d.secrets)) if s
    ]
    memo: dict[str, Any] = {}  # run-wide: family probes shared between checks (Context.shared)
    ctx_target = target
    # Each API has its own stream checks: the others' are not part of this run (not even as skips).
    api = Context(target=target, options=d.options).api
    checks = [c for c in d.checks if c.applies_to(api)]
    key_checks = tuple(c.id for c in checks if c.needs_key and c.requested(d.options))
    # Phases must be over a little before the hard deadline, so that a phase still waiting (a silent
    # resolver, a blackholed SYN) ends as a timeout with its evidence rather than being cut.
    phases_end = time.monotonic() + d.deadline_s - PHASE_MARGIN_S if d.deadline_s is not None else None
    deadline_hit = False

    def make_context(results: dict[str, CheckResult]) -> Context:
        options = d.options
        if phases_end is not None:
            options = options.within(phases_end - time.monotonic())
        return Context(
            target=ctx_target,
            options=options,
            api_key=secret,
            results=dict(results),
            memo=memo,
            key=key_obs,
            key_checks=key_checks,
            deadline_at=phases_end,
        )

    def why_interrupted() -> str:
        if deadline_hit:
            return f"not finished within the run's deadline ({d.deadline_label} {d.deadline_s:g} s)"
        return "interrupted before it finished"

    task = asyncio.create_task(run_checks(checks, make_context, secrets=secrets, why_interrupted=why_interrupted))
    if on_task is not None:
        on_task(task)
    try:
        done, _ = await asyncio.wait({task}, timeout=d.deadline_s)
        if not done:
            deadline_hit = True
            task.cancel()
        outcome = await task
    finally:
        for shared in memo.values():  # a shared probe outliving its checks is cut now
            if isinstance(shared, asyncio.Future) and not shared.done():
                shared.cancel()
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(shared, 2.0)
    results = list(outcome.results)
    for name, reason in sorted(d.broken_plugins.items()):
        results.append(
            CheckResult(
                check_id=f"plugin.{name}",
                title=f"plugin {name!r} could not be loaded",
                status=Status.ERROR,
                summary=reason,
            )
        )
    return Report(
        target=target,
        results=tuple(results),
        started_at=started_at,
        duration_s=outcome.duration_s,
        wsdoctor_version=__version__,
        environment=environment(secrets),
        interrupted=outcome.interrupted,
    )
