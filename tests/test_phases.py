"""phases.repeat's analyzer on typed observations: failed attempts, connections without Results,
erratic phases, and the sample's JSON shape (what a report's evidence holds) -- no network. The
real faults behind these codes are driven in test_real_faults.py and test_scale.py."""

from __future__ import annotations

from typing import Any

import pytest

from checks import phases
from wsdoctor.model import PHASES, Finding, Outcome, Status
from wsdoctor.probes.phases import REPEAT_PHASES, PhaseSample, RepeatObservation
from wsdoctor.record import FixtureError


def sample(outcome: str = "upgraded", **durations: float | None) -> dict[str, Any]:
    """One sample as the probe writes it: a healthy ws:// attempt unless told otherwise."""
    reached = outcome == "upgraded"
    return {
        "outcome": outcome,
        "resolve_s": None,
        "connect_s": 0.001,
        "proxy_s": None,
        "tls_s": None,
        "upgrade_s": 0.002 if reached else None,
        "first_result_s": 0.9 if reached else None,
    } | durations


def observe(*samples: dict[str, Any]) -> RepeatObservation:
    return RepeatObservation.from_dict({"samples": list(samples)})


def codes(findings: list[Finding]) -> list[tuple[str, str]]:
    return [(f.code, f.severity.value) for f in findings]


def test_the_phases_are_the_shared_vocabulary_but_close() -> None:
    assert [p.id for p in REPEAT_PHASES] == ["resolve", "connect", "proxy", "tls", "upgrade", "first_result"]
    assert set(PHASES) - set(REPEAT_PHASES) == {next(p for p in PHASES if p.id == "close")}


def test_a_sample_writes_the_report_s_shape() -> None:
    data = sample()
    obs = PhaseSample.from_dict(data)
    assert obs.outcome is Outcome.UPGRADED
    assert list(obs.to_dict()) == [
        "outcome",
        "resolve_s",
        "connect_s",
        "proxy_s",
        "tls_s",
        "upgrade_s",
        "first_result_s",
    ]
    assert obs.to_dict() == data
    repeat = observe(data, sample("timeout"))
    assert RepeatObservation.from_dict(repeat.to_dict()) == repeat


def test_a_renamed_or_unknown_field_is_an_error() -> None:
    data = sample()
    data["upgrade"] = data.pop("upgrade_s")
    with pytest.raises(FixtureError, match="upgrade"):
        PhaseSample.from_dict(data)
    with pytest.raises(FixtureError, match="outcome"):
        PhaseSample.from_dict(sample("upgraded-ish"))
    with pytest.raises(FixtureError, match="tls_s"):
        PhaseSample.from_dict({k: v for k, v in sample().items() if k != "tls_s"})  # a missing phase
    with pytest.raises(FixtureError, match="sample"):
        RepeatObservation.from_dict({"sample": [sample()]})


def test_healthy_repeats_have_no_finding() -> None:
    assert phases.analyze(observe(*[sample() for _ in range(10)])) == []


def test_some_failed_attempts_warn_and_all_failed_fail() -> None:
    (some,) = phases.analyze(observe(sample(), sample("timeout"), sample("reset"), sample("timeout")))
    assert (some.code, some.severity) == ("phases.failures", Status.WARN)
    assert some.evidence == {"outcomes": {"timeout": 2, "reset": 1}}
    assert "3 of 4 connection attempts failed: {'timeout': 2, 'reset': 1}" in some.message
    (every,) = phases.analyze(observe(sample("refused"), sample("http-response")))
    assert (every.code, every.severity) == ("phases.failures", Status.FAIL)


def test_connections_without_results() -> None:
    findings = phases.analyze(observe(sample(), sample(first_result_s=None)))
    assert codes(findings) == [("stream.no-results", "warn")]
    assert findings[0].evidence == {"without_results": 1}


def test_an_erratic_phase_is_named() -> None:
    samples = [sample() for _ in range(18)] + [sample(upgrade_s=0.5), sample(upgrade_s=0.6)]
    (spread,) = phases.analyze(observe(*samples))
    assert (spread.code, spread.severity) == ("phases.latency-spread", Status.WARN)
    assert spread.evidence == {
        "phase": "upgrade",
        "n": 20,
        "min": 0.002,
        "p50": 0.002,
        "p95": 0.5,
        "p99": 0.6,
        "max": 0.6,
    }


def test_phase_stats_cover_every_phase_even_unreached() -> None:
    stats = phases.phase_stats(observe(sample(connect_s=0.003), sample(connect_s=0.001)).samples)
    assert list(stats) == [p.id for p in REPEAT_PHASES]
    assert stats["tls"].to_dict() == {"n": 0, "min": None, "p50": None, "p95": None, "p99": None, "max": None}
    assert stats["connect"].to_dict() == {"n": 2, "min": 0.001, "p50": 0.001, "p95": 0.003, "p99": 0.003, "max": 0.003}
