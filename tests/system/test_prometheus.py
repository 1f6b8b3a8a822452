"""A real Prometheus scrapes ``wsdoctor serve`` the blackbox way (relabeling into ``?target=``)
every second, for a healthy mock and a mock that rejects the key, and its query API returns
``wsdoctor_probe_success`` for both, with the faulty one's cause. Bounded: ~30 s at most."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from tests.mockproc import mock_process
from tests.system.services import prometheus_server
from tests.test_exporter import exporter_process

PROMETHEUS_CONFIG = """
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: wsdoctor
    metrics_path: /probe
    params:
      profile: [upgrade]
    static_configs:
      - targets: [healthy, unauthorized]
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: {exporter}
  - job_name: wsdoctor_exporter
    static_configs:
      - targets: [{exporter}]
"""

# DNS, TCP, the upgrade and auth: a few milliseconds on loopback, well inside the 0.5 s a 1 s
# scrape timeout leaves a probe.
EXPORTER_CONFIG = """
max_concurrent_probes = 4
[profiles.upgrade]
checks = ["dns", "tcp", "http", "ws"]
api_key_env = "WSD_TEST_KEY"
[targets.healthy]
url = "{healthy}"
[targets.unauthorized]
url = "{unauthorized}"
"""


def query(port: int, promql: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(url, timeout=5) as resp:
        data = json.loads(resp.read())
    assert data["status"] == "success", data
    result: list[dict[str, Any]] = data["data"]["result"]
    return result


def wait_for(port: int, promql: str, want: int, timeout: float = 30.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    result: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        result = query(port, promql)
        if len(result) >= want:
            return result
        time.sleep(0.5)
    raise AssertionError(f"{promql!r}: {len(result)} series after {timeout} s, wanted {want}: {result}")


def test_prometheus_scrapes_the_exporter(tmp_path: Path) -> None:
    with ExitStack() as stack:
        healthy = stack.enter_context(mock_process())
        unauthorized = stack.enter_context(mock_process("--fault", "reject-401"))
        config = tmp_path / "wsdoctor.toml"
        config.write_text(EXPORTER_CONFIG.format(healthy=healthy, unauthorized=unauthorized))
        base, _proc = stack.enter_context(exporter_process(config))
        exporter = base.removeprefix("http://")
        port = stack.enter_context(prometheus_server(PROMETHEUS_CONFIG.format(exporter=exporter), tmp_path))

        series = wait_for(port, 'wsdoctor_probe_success{job="wsdoctor"}', 2)
        success = {s["metric"]["instance"]: s["value"][1] for s in series}
        assert success == {"healthy": "1", "unauthorized": "0"}, series
        assert {s["metric"]["target"] for s in series} == {"healthy", "unauthorized"}

        causes = query(port, 'wsdoctor_finding{job="wsdoctor", instance="unauthorized"}')
        assert "credentials" in {s["metric"]["cause"] for s in causes}, causes
        # the exporter's own /metrics, scraped too, counts the probes it answered
        assert wait_for(port, 'wsdoctor_exporter_probes_total{result="success"} >= 1', 1)
        assert wait_for(port, 'wsdoctor_exporter_probes_total{result="failure"} >= 1', 1)
