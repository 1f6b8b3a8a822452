"""Property-based tests (hypothesis) with a fixed example budget, so CI stays fast and repeatable.

- the JSON report round-trips exactly, whatever the strings and numbers in it;
- ``render`` on arbitrary JSON either renders or says one line with exit 2, never a traceback;
- the URL and ``--resolve`` parsers return or raise UsageError, nothing else;
- no generated secret survives redaction into any reporter's output.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from reports.base import load_reporter, reporter_names
from reports.json import JsonReporter
from wsdoctor.check import ResolveOverride
from wsdoctor.cli import main
from wsdoctor.errors import UsageError
from wsdoctor.model import CheckResult, Finding, Report, Status, Target
from wsdoctor.redact import Redactor

FAST = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

text = st.text(max_size=40)  # any unicode: controls, surrogates, bidi, NUL
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**53), max_value=2**53), finite, text)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)),
    max_leaves=12,
)
check_ids = st.from_regex(r"[a-z]{1,8}\.[a-z-]{1,12}", fullmatch=True)
codes = st.from_regex(r"[a-z]{1,6}\.[a-z-]{1,14}", fullmatch=True)
cause_ids = st.from_regex(r"[a-z][a-z-]{0,20}", fullmatch=True)

findings = st.builds(
    Finding,
    code=codes,
    cause=cause_ids,
    severity=st.sampled_from([Status.INFO, Status.WARN, Status.FAIL]),
    message=text,
    evidence=st.dictionaries(text, json_value, max_size=3),
)
results = st.builds(
    CheckResult,
    check_id=check_ids,
    title=text,
    status=st.sampled_from(list(Status)[:5]),
    summary=text,
    duration_s=st.floats(min_value=0, max_value=1e4),
    started_at_s=st.floats(min_value=0, max_value=1e4),
    metrics=st.dictionaries(text, st.one_of(st.none(), st.integers(-1000, 1000), finite), max_size=3),
    evidence=st.dictionaries(text, json_value, max_size=3),
    findings=st.lists(findings, max_size=3).map(tuple),
    blocked_by=st.one_of(st.none(), check_ids),
)
reports = st.builds(
    Report,
    target=st.just(Target.parse("wss://api.deepgram.com/v1/listen?model=nova-3")),
    results=st.lists(results, max_size=5).map(tuple),
    started_at=text,
    duration_s=st.floats(0, 1e4),
    wsdoctor_version=text,
    environment=st.dictionaries(text, json_value, max_size=3),
    interrupted=st.booleans(),
)


@FAST
@given(reports)
def test_json_report_round_trips(report: Report) -> None:
    assert Report.from_dict(json.loads(JsonReporter().render(report))) == report


@FAST
@given(json_value)
def test_render_never_tracebacks(tmp_path_factory: pytest.TempPathFactory, data: Any) -> None:
    path = tmp_path_factory.mktemp("render") / "r.json"
    path.write_text(json.dumps(data))
    assert main(["render", str(path)]) in (0, 2)


@FAST
@given(reports)
def test_render_of_any_valid_report_works(tmp_path_factory: pytest.TempPathFactory, report: Report) -> None:
    path = tmp_path_factory.mktemp("render") / "r.json"
    path.write_text(JsonReporter().render(report))
    assert main(["render", str(path)]) == 0


@FAST
@given(st.text(max_size=80))
def test_url_parser_returns_or_raises_usage_error(url: str) -> None:
    try:
        target = Target.parse(url)
    except UsageError as exc:
        message = str(exc)
    else:
        assert target.scheme in ("ws", "wss")
        assert 0 < target.port < 65536
        assert target.host
        return
    assert "\n" not in message  # one line, for the one-line error contract


@FAST
@given(st.text(max_size=60))
def test_resolve_parser_returns_or_raises_usage_error(value: str) -> None:
    try:
        r = ResolveOverride.parse(value)
    except UsageError:
        return
    assert 0 < r.port < 65536


secrets_st = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-", min_size=12, max_size=40
).filter(lambda s: any(ch.isalpha() for ch in s))  # "000000000000" also occurs in any timestamp or number


@FAST
@given(secrets_st, reports, st.sampled_from(["summary", "message", "evidence", "header", "metric-key"]))
def test_no_secret_survives_any_reporter(secret: str, report: Report, where: str) -> None:
    # Only the result built below carries the secret: a generated report that happens to hold the same
    # string on its own (a summary "00000000000A") is not a leak of it.
    assume(secret not in json.dumps(report.to_dict()))
    r = CheckResult(check_id="ws.auth", title="t", status=Status.FAIL, summary="s")
    if where == "summary":
        r = CheckResult(check_id="ws.auth", title="t", status=Status.FAIL, summary=f"got {secret} back")
    elif where == "message":
        r = CheckResult(
            check_id="ws.auth",
            title="t",
            status=Status.FAIL,
            summary="s",
            findings=(Finding("ws.auth-rejected", "credentials", Status.FAIL, f"key={secret}"),),
        )
    elif where == "evidence":
        r = CheckResult(
            check_id="ws.auth",
            title="t",
            status=Status.FAIL,
            summary="s",
            evidence={"echo": {"deep": [f"Token {secret}"]}},
        )
    elif where == "header":
        r = CheckResult(
            check_id="ws.auth",
            title="t",
            status=Status.FAIL,
            summary="s",
            evidence={"headers": [["Authorization", f"Bearer {secret}"]]},
        )
    else:
        r = CheckResult(check_id="ws.auth", title="t", status=Status.FAIL, summary="s", metrics={secret: 1})
    redacted = Redactor([secret]).result(r)
    safe = Report(
        target=report.target,
        results=(*report.results, redacted),
        started_at="2026-01-01T00:00:00Z",
        duration_s=1.0,
        wsdoctor_version="0.1.0",
    )
    for name in reporter_names():
        cls: Any = load_reporter(name)
        output = cls().render(safe)
        assert secret not in output, (name, where)


@FAST
@given(st.text(max_size=400))
def test_explain_on_any_text_never_raises(text_in: str) -> None:
    from wsdoctor.explain import explain_text

    answer = explain_text(text_in)
    for match in answer.matches:
        assert match.entry.causes  # whatever matched points somewhere in the catalogue


@FAST
@given(st.text(max_size=100))
def test_proxy_parser_returns_or_raises_value_error(value: str) -> None:
    from wsdoctor.probes.proxy import ProxyURL

    try:
        proxy = ProxyURL.parse(value)
    except ValueError:
        return
    assert proxy.host
    assert 0 < proxy.port < 65536
    if proxy.password is not None:
        assert proxy.password.reveal() not in proxy.display or not proxy.password.reveal()


@FAST
@given(st.text(max_size=100))
def test_run_rejects_bad_proxy_flags_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path_factory: pytest.TempPathFactory, value: str
) -> None:
    out = tmp_path_factory.mktemp("proxy") / "r.json"
    argv = ["run", "ws://127.0.0.1:9/v1/listen", "--proxy", value, "--checks", "env.proxy", "--json", str(out)]
    code = main(argv) if value.strip() and not value.startswith("-") else 2
    err = capsys.readouterr().err
    assert code in (0, 1, 2)
    if code == 2 and err:
        assert err.count("\n") == 1
