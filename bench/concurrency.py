"""Benchmark: the full suite's wall time next to its longest single check.

If independent checks really run concurrently, the run takes about as long as its longest check
(target: <= longest + 1 s), not the sum of all. Usage: python bench/concurrency.py [--short].
The figure the README quotes is printed last.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--short", action="store_true", help="skip the idle family (CI)")
    short = parser.parse_args().short
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        argv = [sys.executable, "-m", "wsdoctor", "run", "--target", "mock", "--json", str(out)]
        t0 = time.perf_counter()
        subprocess.run(argv + (["--quick"] if short else []), stdout=subprocess.DEVNULL, timeout=300, check=False)
        wall = time.perf_counter() - t0
        report = json.loads(out.read_text())
    durations = {r["check_id"]: r["duration_s"] for r in report["results"]}
    longest_id = max(durations, key=lambda k: durations[k])
    longest, total = durations[longest_id], sum(durations.values())
    print(f"{len(durations)} checks; sum of their durations {total:.2f} s; longest {longest_id} {longest:.2f} s")
    print(f"run duration (report) {report['duration_s']:.2f} s; process wall {wall:.2f} s")
    run_s = report["duration_s"]
    print(
        f"full suite {run_s:.2f} s vs longest check {longest:.2f} s: +{run_s - longest:.2f} s "
        f"({'within' if run_s <= longest + 1 else 'OVER'} the +1 s target); "
        f"{total / run_s:.2f}x faster than one after another"
    )


if __name__ == "__main__":
    main()
