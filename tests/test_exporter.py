"""``wsdoctor serve`` as a real process on 127.0.0.1 in front of real ``wsdoctor mock`` processes:
/probe answers OpenMetrics that prometheus_client's parser accepts, a faulty mock carries the
right ``cause`` label, unlisted targets get 403, the scrape timeout cuts a probe that would hang,
the concurrency bound answers 503, SIGHUP reloads, SIGTERM stops cleanly. Config parsing is tested
as plain functions. Every wait is bounded."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from reports.openmetrics import CONTENT_TYPE
from tests.mockproc import mock_process, wsdoctor_process
from wsdoctor.cli import main
from wsdoctor.errors import UsageError
from wsdoctor.exporter import load_config, parse_config, parse_listen, probe_deadline

FAST_PROFILE = """
[profiles.fast]
quick = true
close_wait = 1
timeout = 20
api_key_env = "WSD_TEST_KEY"

[profiles.upgrade]
checks = ["dns", "tcp", "http", "ws"]
api_key_env = "WSD_TEST_KEY"
"""


@contextmanager
def exporter_process(config: Path, start_timeout: float = 20.0) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Yield the base URL of ``wsdoctor serve --config CONFIG`` and its process; SIGTERM it after."""
    with wsdoctor_process(
        ["serve", "--config", str(config), "--listen", "127.0.0.1:0"],
        env={"WSD_TEST_KEY": "test-key-123"},
        stop_signal=signal.SIGTERM,
        start_timeout=start_timeout,
        stop_timeout=15,
    ) as (url, proc):
        yield url, proc


def get(url: str, headers: dict[str, str] | None = None, timeout: float = 30.0) -> tuple[int, str, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


def probe_url(base: str, **params: str) -> str:
    return f"{base}/probe?{urllib.parse.urlencode(params)}"


def parsed(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
    return out


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Four mocks (healthy, reject-401, never-close-reply, drop-no-close) and one exporter that
    allows them."""
    tmp = tmp_path_factory.mktemp("exporter")
    with ExitStack() as stack:
        urls = {
            "healthy": stack.enter_context(mock_process()),
            "unauthorized": stack.enter_context(mock_process("--fault", "reject-401")),
            "never-closes": stack.enter_context(mock_process("--fault", "never-close-reply")),
            "drops": stack.enter_context(mock_process("--fault", "drop-no-close")),
        }
        config = tmp / "wsdoctor.toml"
        targets = "".join(f'\n[targets.{name}]\nurl = "{url}"\n' for name, url in urls.items())
        config.write_text(f"max_concurrent_probes = 2\n{FAST_PROFILE}{targets}")
        base, proc = stack.enter_context(exporter_process(config))
        yield {"base": base, "urls": urls, "proc": proc, "config": config}


def test_probe_healthy_and_faulty_mock(fleet: dict[str, Any]) -> None:
    base, urls = fleet["base"], fleet["urls"]
    status, ctype, body = get(probe_url(base, target="healthy", profile="fast"))
    assert (status, ctype) == (200, CONTENT_TYPE), body
    healthy = parsed(body)
    assert healthy["wsdoctor_probe_success"] == [({"target": "healthy"}, 1.0)]
    assert "wsdoctor_finding" not in healthy
    phases = {lab["phase"]: v for lab, v in healthy["wsdoctor_phase_seconds"]}
    assert set(phases) == {"dns", "tcp", "tls", "upgrade", "first_result", "close"}
    assert 0.5 < phases["first_result"] < 3.0
    statuses = {(lab["check"], lab["status"]) for lab, v in healthy["wsdoctor_check_status"] if v == 1}
    assert ("stream.transcribe", "pass") in statuses and ("ws.auth", "pass") in statuses

    # by URL rather than by name: both are allowed, exactly as configured
    status, _, body = get(probe_url(base, target=urls["unauthorized"], profile="fast"))
    assert status == 200, body
    faulty = parsed(body)
    assert faulty["wsdoctor_probe_success"] == [({"target": "unauthorized"}, 0.0)]
    causes = {lab["cause"] for lab, _ in faulty["wsdoctor_finding"]}
    assert "credentials" in causes, faulty["wsdoctor_finding"]
    assert ({"target": "unauthorized", "cause": "credentials", "code": "ws.auth-rejected"}, 1.0) in faulty[
        "wsdoctor_primary_cause"
    ]


def test_probe_of_a_dropping_mock_names_the_no_close_frame(fleet: dict[str, Any]) -> None:
    """The article's own error: TCP ends without a close frame mid-stream."""
    status, _, body = get(probe_url(fleet["base"], target="drops", profile="fast"))
    assert status == 200, body
    metrics = parsed(body)
    assert metrics["wsdoctor_probe_success"][0][1] == 0
    findings = {(lab["code"], lab["cause"]) for lab, _ in metrics["wsdoctor_finding"]}
    assert ("close.no-close-frame", "network-instability") in findings, findings
    assert metrics["wsdoctor_primary_cause"][0][0]["cause"] == "network-instability"


def test_probe_refuses_what_the_config_does_not_list(fleet: dict[str, Any]) -> None:
    base, urls = fleet["base"], fleet["urls"]
    for target in (
        "http://169.254.169.254/latest/meta-data",
        urls["healthy"] + "?x=1",  # not an exact match
        urls["healthy"].replace("/v1/listen", "/admin"),
        "HEALTHY",
    ):
        status, _, body = get(probe_url(base, target=target))
        assert status == 403, (target, body)
        assert "169.254" not in body and "admin" not in body  # never echoed
    assert get(f"{base}/probe")[0] == 400
    assert get(probe_url(base, target="healthy", profile="nope"))[0] == 400
    metrics = parsed(get(f"{base}/metrics")[2])
    by_result = {lab["result"]: v for lab, v in metrics["wsdoctor_exporter_probes_total"]}
    assert by_result["forbidden"] >= 4 and by_result["bad_request"] >= 2


def test_scrape_timeout_header_cuts_a_hanging_probe(fleet: dict[str, Any]) -> None:
    base = fleet["base"]
    t0 = time.monotonic()
    status, _, body = get(
        probe_url(base, target="never-closes", profile="fast"), {"X-Prometheus-Scrape-Timeout-Seconds": "2"}
    )
    elapsed = time.monotonic() - t0
    assert status == 200, body
    assert elapsed < 2.0, elapsed  # answered inside the scrape timeout
    metrics = parsed(body)
    assert metrics["wsdoctor_probe_success"][0][1] == 0
    assert metrics["wsdoctor_probe_interrupted"][0][1] == 1


def test_concurrency_bound_answers_503(fleet: dict[str, Any]) -> None:
    base = fleet["base"]
    slow = probe_url(base, target="never-closes", profile="fast")
    header = {"X-Prometheus-Scrape-Timeout-Seconds": "3"}
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(get(slow, header)[0])) for _ in range(2)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:  # wait until both are in flight
        inflight = parsed(get(f"{base}/metrics")[2])["wsdoctor_exporter_probes_in_flight"][0][1]
        if inflight >= 2:
            break
        time.sleep(0.05)
    status, _, body = get(probe_url(base, target="healthy", profile="upgrade"))
    for t in threads:
        t.join(10)
    assert status == 503, body
    assert results == [200, 200]


def test_metrics_endpoint_is_openmetrics(fleet: dict[str, Any]) -> None:
    status, ctype, body = get(f"{fleet['base']}/metrics")
    assert (status, ctype) == (200, CONTENT_TYPE)
    metrics = parsed(body)
    assert metrics["wsdoctor_exporter_config_last_reload_successful"][0][1] == 1
    assert metrics["wsdoctor_exporter_max_concurrent_probes"][0][1] == 2
    assert {"wsdoctor_exporter_probe_duration_seconds_count", "wsdoctor_exporter_probes_in_flight"} <= set(metrics)


def test_sighup_reloads_and_sigterm_stops_cleanly(tmp_path: Path) -> None:
    with mock_process() as url:
        config = tmp_path / "c.toml"
        config.write_text(f'{FAST_PROFILE}\n[targets.a]\nurl = "{url}"\n')
        with exporter_process(config) as (base, proc):
            assert get(probe_url(base, target="b", profile="upgrade"))[0] == 403
            config.write_text(f'{FAST_PROFILE}\n[targets.b]\nurl = "{url}"\nprofiles = ["upgrade"]\n')
            proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 5
            while get(probe_url(base, target="b", profile="upgrade"))[0] != 200 and time.monotonic() < deadline:
                time.sleep(0.1)
            status, _, body = get(probe_url(base, target="b", profile="upgrade"))
            assert status == 200 and parsed(body)["wsdoctor_probe_success"][0][1] == 1
            config.write_text("this is = = not toml")
            proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 5
            ok = 1.0
            while ok == 1.0 and time.monotonic() < deadline:
                ok = parsed(get(f"{base}/metrics")[2])["wsdoctor_exporter_config_last_reload_successful"][0][1]
                time.sleep(0.05)
            assert ok == 0
            assert get(probe_url(base, target="b", profile="upgrade"))[0] == 200  # old config kept
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0
            assert time.monotonic() - t0 < 10
            assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")


# -- configuration, as functions --------------------------------------------------------------


def test_default_config_allows_only_deepgram() -> None:
    config = load_config(None)
    assert list(config.targets) == ["deepgram"]
    assert config.lookup("wss://api.deepgram.com/v1/listen") is config.targets["deepgram"]
    assert config.lookup("wss://evil.example/v1/listen") is None
    assert config.listen == ("127.0.0.1", 9115)


def test_yaml_and_toml_give_the_same_config(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text(
        'listen = "127.0.0.1:9200"\n[profiles.p]\nchecks = ["tcp"]\nclose_wait = 1\n'
        '[targets.t]\nurl = "wss://api.deepgram.com/v1/listen"\nprofiles = ["p"]\n'
    )
    yaml = tmp_path / "c.yml"
    yaml.write_text(
        'listen: "127.0.0.1:9200"\nprofiles:\n  p:\n    checks: [tcp]\n    close_wait: 1\n'
        "targets:\n  t:\n    url: wss://api.deepgram.com/v1/listen\n    profiles: [p]\n"
    )
    a, b = load_config(str(toml)), load_config(str(yaml))
    assert (a.listen, a.targets, a.profiles) == (b.listen, b.targets, b.profiles)
    assert a.profiles["p"].close_wait_s == 1.0 and a.profiles["p"].checks == ("tcp",)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"bogus": 1}, "unknown key 'bogus'"),
        ({"listen": "nowhere"}, "expected HOST:PORT"),
        ({"max_concurrent_probes": 0}, "max_concurrent_probes"),
        ({"profiles": {"p": {"timeout": -1}}}, "profiles.p.timeout"),
        ({"profiles": {"p": {"quik": True}}}, "unknown key 'quik'"),
        ({"profiles": {"p": {"proxy": "socks5://x:1"}}}, "only http://"),
        ({"profiles": {"p": {"ca_file": "/no/such/ca.pem"}}}, "not a readable file"),
        ({"profiles": {"p": {"proxy": "http://u:pw@x:1", "no_proxy": True}}}, "exclude each other"),
        ({"targets": {"t": {"url": "ftp://x"}}}, "targets.t.url"),
        ({"targets": {"t": {"url": "wss://x", "profiles": ["missing"]}}}, "no profile named 'missing'"),
        ({"targets": {"bad name!": {"url": "wss://x"}}}, "target name"),
        ([1, 2], "top level"),
    ],
)
def test_bad_config_is_one_usage_error(data: Any, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")) as info:
        parse_config(data, "c.toml")
    assert "\n" not in str(info.value)


def test_bad_config_file_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[profiles.p]\nchecks = ['no.such-check']\n")
    assert main(["serve", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no.such-check" in err and "Traceback" not in err
    bad.write_text("= not toml")
    assert main(["serve", "--config", str(bad)]) == 2
    assert main(["serve", "--config", str(tmp_path / "missing.yaml")]) == 2
    (tmp_path / "bad.yaml").write_text("a: [unclosed")
    assert main(["serve", "--config", str(tmp_path / "bad.yaml")]) == 2
    assert main(["serve", "--listen", "localhost"]) == 2
    import socket

    with socket.socket() as busy:  # a port someone else holds: one line, exit 2
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["serve", "--listen", f"127.0.0.1:{busy.getsockname()[1]}"]) == 2
        assert "cannot listen" in capsys.readouterr().err
    assert "Traceback" not in capsys.readouterr().err


def test_listen_and_deadline_helpers() -> None:
    assert parse_listen("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_listen("[::1]:9115") == ("::1", 9115)
    assert parse_listen(":9115") == ("0.0.0.0", 9115)
    assert probe_deadline(30, None) == 30
    assert probe_deadline(30, "10") == 9.5
    assert probe_deadline(5, "10") == 5
    assert probe_deadline(30, "0.3") == 0.2  # never below the floor
    assert probe_deadline(30, "garbage") == 30
    assert probe_deadline(30, "nan") == 30


# -- the documented Prometheus config and alert rules -------------------------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs" / "prometheus"


def test_documented_exporter_config_loads() -> None:
    config = load_config(str(DOCS / "wsdoctor.toml"))
    assert set(config.targets) == {"deepgram", "deepgram-eu"} and set(config.profiles) == {"quick", "full"}


def test_documented_prometheus_config_and_rules_are_valid() -> None:
    """promtool when installed (Debian package prometheus): config, rules and the rules' unit
    tests; otherwise the files must at least be YAML that uses only metrics wsdoctor emits."""
    import re
    import shutil

    import yaml

    from reports.openmetrics import OpenMetricsReporter
    from wsdoctor.model import CheckResult, Finding, Report, Status, Target

    rules = yaml.safe_load((DOCS / "wsdoctor.rules.yml").read_text())
    config = yaml.safe_load((DOCS / "prometheus.yml").read_text())
    assert config["rule_files"] == ["wsdoctor.rules.yml"]
    probe_jobs = [j for j in config["scrape_configs"] if j.get("metrics_path") == "/probe"]
    assert probe_jobs and all(
        any(r.get("target_label") == "__param_target" for r in j["relabel_configs"]) for j in probe_jobs
    )
    finding = Finding("proxy.connect-denied", "proxy-firewall", Status.FAIL, "403")
    sample = Report(
        Target.parse("wss://x/v1/listen"),
        (CheckResult("proxy.connect", "t", Status.FAIL, "x", findings=(finding,)),),
        "2025-01-01T00:00:00Z",
        1.0,
        "0.1.0",
    )
    emitted = {fam.name for fam in text_string_to_metric_families(OpenMetricsReporter().render(sample))}
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    used = {m for expr in exprs for m in re.findall(r"wsdoctor_\w+", re.sub(r'"[^"]*"', "", expr))}  # not job names
    assert used and used <= emitted, used - emitted

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed: validated as YAML only")
    for args in (
        ["check", "config", str(DOCS / "prometheus.yml")],
        ["check", "rules", str(DOCS / "wsdoctor.rules.yml")],
        ["test", "rules", str(DOCS / "wsdoctor.rules.test.yml")],
    ):
        proc = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
