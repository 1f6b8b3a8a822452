"""Benchmark: peak RSS of a full ``wsdoctor run --target mock`` (target < 80 MB).

Reads the process's own VmHWM at exit (not ru_maxrss, which Linux carries across exec from the
parent). Usage: python bench/rss.py [--short]. The figure the README quotes is printed last.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

RUNNER = (
    "import sys\nfrom wsdoctor.cli import main\ntry:\n    main(sys.argv[1:])\nfinally:\n"
    "    hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:')).split()[1]\n"
    "    print('VmHWM_KB', hwm, file=sys.stderr)\n"
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--short", action="store_true", help="skip the idle family (CI)")
    short = parser.parse_args().short
    baseline = subprocess.run(
        [sys.executable, "-c", RUNNER, "checks"], capture_output=True, text=True, timeout=60, check=False
    )
    argv = [sys.executable, "-c", RUNNER, "run", "--target", "mock"] + (["--quick"] if short else [])
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    base_kb = int(baseline.stderr.rsplit("VmHWM_KB", 1)[1].split()[0]) if "VmHWM_KB" in baseline.stderr else 0
    peak_kb = int(proc.stderr.rsplit("VmHWM_KB", 1)[1].split()[0])
    print(f"baseline (wsdoctor checks: interpreter, imports, registry): {base_kb / 1024:.1f} MB")
    print(
        f"peak RSS of a {'quick' if short else 'full'} run {peak_kb / 1024:.1f} MB "
        f"({'within' if peak_kb < 80 * 1024 else 'OVER'} the 80 MB target)"
    )


if __name__ == "__main__":
    main()
