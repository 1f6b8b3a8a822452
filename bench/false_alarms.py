"""Benchmark: false failures on healthy paths, counted over repeated full runs.

A healthy path is the built-in mock, or tests/replay.py replaying Deepgram's captured frames
verbatim (a different server implementation). Each run is the full suite -- every check, the idle
family and host.loop-lag included -- as a separate ``wsdoctor run`` process; half of the runs happen
while every core is busy with CPU hogs (2 spinning processes per core), as on a loaded CI runner.
A false alarm is any check that ends warn, fail or error, or a verdict other than HEALTHY.

Usage: python bench/false_alarms.py [--runs 20] [--short]. Prints one line per (server, load) and,
last, the total the README quotes: "false alarms: N of M healthy runs".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.replay import replay_server  # noqa: E402
from tests.test_false_alarms import cpu_hog  # noqa: E402

KEY = "bench-false-alarms-key"


def one_run(args: list[str], env: dict[str, str]) -> tuple[list[str], str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        t0 = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "wsdoctor", "run", *args, "--json", str(out)],
            capture_output=True, text=True, timeout=180, cwd=ROOT, env={**os.environ, **env}, check=False,
        )
        wall = time.monotonic() - t0
        report = json.loads(out.read_text())
    bad = [f"{r['check_id']}={r['status']}" for r in report["results"] if r["status"] in ("warn", "fail", "error")]
    return bad, report["summary"]["verdict"], wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs per (server, load) pair")
    parser.add_argument("--short", action="store_true", help="2 runs per pair (CI)")
    args = parser.parse_args()
    runs = 2 if args.short else args.runs
    total = alarms = 0
    seen: Counter[str] = Counter()
    with replay_server(KEY, idle_s=5.0) as replay:
        servers = {
            "mock": (["--target", "mock"], {}),
            "replay": ([replay.url, "--idle-max", "9"], {"DEEPGRAM_API_KEY": KEY}),
        }
        for load in ("idle", "busy"):
            for name, (run_args, env) in servers.items():
                false = 0
                walls = []
                for _ in range(runs):
                    if load == "busy":
                        with cpu_hog(60.0):
                            bad, verdict, wall = one_run(run_args, env)
                    else:
                        bad, verdict, wall = one_run(run_args, env)
                    walls.append(wall)
                    if bad or verdict != "healthy":
                        false += 1
                        seen.update(bad or [f"verdict={verdict}"])
                total += runs
                alarms += false
                print(
                    f"{name:6} {load:4} ({2 * (os.cpu_count() or 1) if load == 'busy' else 0} CPU hogs): "
                    f"{false} false alarm(s) in {runs} runs; wall {min(walls):.1f}-{max(walls):.1f} s",
                    flush=True,
                )
    if seen:
        print("what alarmed:", ", ".join(f"{k} x{v}" for k, v in seen.most_common()))
    print(f"false alarms: {alarms} of {total} healthy runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
