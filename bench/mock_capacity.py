"""Benchmark: how many concurrent real-time sessions the mock sustains on this machine.

Runs ``wsdoctor mock --workers 2`` and ``wsdoctor load`` against it with N streams for S seconds,
and prints first-result percentiles (target at 500 streams: p95 < 1.5 s).
Usage: python bench/mock_capacity.py [--streams 500] [--duration 10] [--short]
The figure the README quotes is printed last.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import mock_server

KEY = "bench-capacity-key"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--short", action="store_true", help="50 streams for 3 s (CI)")
    args = parser.parse_args()
    streams, duration = (50, 3.0) if args.short else (args.streams, args.duration)
    with mock_server("--api-key", KEY, "--workers", str(args.workers)) as url, tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "load.json"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "wsdoctor",
                "load",
                url,
                "--streams",
                str(streams),
                "--duration",
                str(duration),
                "--ramp",
                "100",
                "--json",
                str(out),
                "--api-key-env",
                "BENCH_KEY",
            ],
            stdout=subprocess.DEVNULL,
            timeout=duration + 300,
            env={**os.environ, "BENCH_KEY": KEY},
            check=False,
        )
        summary = json.loads(out.read_text())["results"][0]["evidence"]["summary"]
    fr = summary["first_result_s"]
    print(
        f"{summary['completed_clean']}/{streams} streams clean, {summary['dropped']} dropped, "
        f"{summary['rejected']} rejected; max {summary['max_concurrent_open']} open at once"
    )
    print(f"first result p50 {fr['p50']} s, p99 {fr['p99']} s; handshake p95 {summary['handshake_s']['p95']} s")
    print(
        f"mock capacity {streams} streams x {duration:g} s with {args.workers} workers: first-result p95 {fr['p95']} s "
        f"({'within' if fr['p95'] is not None and fr['p95'] < 1.5 else 'OVER'} the 1.5 s target)"
    )


if __name__ == "__main__":
    main()
