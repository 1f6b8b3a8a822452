"""Benchmark: ``wsdoctor --help`` start-up next to ``python -c pass``.

Target: at most 30 ms above the bare interpreter (``--help`` imports argparse and the subcommand
modules' argument setup, nothing else: no aiohttp/jinja2/dnspython, no model, no dataclasses or
typing). The two commands run alternately, so a machine busy with something else slows both alike;
each figure is the median. Prints both medians, the difference in ms and the ratio; the figure the
README quotes is the last line.

Each run is waited for with a blocking ``wait()`` and bounded by a timer that kills it: a
``subprocess.run(..., timeout=...)`` polls with sleeps that double up to 32 ms, so any command
ending between about 30 and 64 ms would be seen at ~64 ms -- ``python -c pass`` and ``--help`` alike.
Usage: python bench/startup.py [--short]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
import time

#: How much ``wsdoctor --help`` may add to ``python -c pass``.
BUDGET_S = 0.030


def _once(argv: list[str]) -> float:
    """Wall time of one run of ``argv`` (killed after 60 s)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    watchdog = threading.Timer(60, proc.kill)
    watchdog.start()
    try:
        proc.wait()
    finally:
        watchdog.cancel()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--short", action="store_true", help="fewer runs (CI)")
    runs = 5 if parser.parse_args().short else 21
    bare, helped = [sys.executable, "-c", "pass"], [sys.executable, "-m", "wsdoctor", "--help"]
    _once(bare), _once(helped)  # warm the page cache and the .pyc files; not counted
    base_times, help_times = [], []
    for _ in range(runs):
        base_times.append(_once(bare))
        help_times.append(_once(helped))
    base, helped_s = statistics.median(base_times), statistics.median(help_times)
    extra = helped_s - base
    print(f"python -c pass: {base * 1000:.0f} ms (median of {runs})")
    print(f"wsdoctor --help: {helped_s * 1000:.0f} ms (median of {runs}); ratio {helped_s / base:.2f}x")
    print(
        f"startup wsdoctor --help {helped_s * 1000:.0f} ms = python {base * 1000:.0f} ms + {extra * 1000:.0f} ms, "
        f"{helped_s / base:.2f}x ({'within' if extra <= BUDGET_S else 'OVER'} the "
        f"{BUDGET_S * 1000:.0f} ms budget above python)"
    )


if __name__ == "__main__":
    main()
