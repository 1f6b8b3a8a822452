"""Benchmark: ``wsdoctor --help`` start-up next to ``python -c pass``.

Target: <= 100 ms absolute on a 2-core machine (no aiohttp/jinja2/dnspython on that path).
Usage: python bench/startup.py [--short]. The figure the README quotes is printed last.
"""

from __future__ import annotations

import argparse
import sys

from _common import time_command


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--short", action="store_true", help="fewer runs (CI)")
    runs = 5 if parser.parse_args().short else 21
    base = time_command([sys.executable, "-c", "pass"], runs)
    helped = time_command([sys.executable, "-m", "wsdoctor", "--help"], runs)
    print(f"python -c pass: {base * 1000:.0f} ms (median of {runs})")
    print(f"wsdoctor --help: {helped * 1000:.0f} ms; ratio {helped / base:.2f}x")
    print(
        f"startup wsdoctor --help {helped * 1000:.0f} ms = python + {(helped - base) * 1000:.0f} ms "
        f"({'within' if helped <= 0.1 else 'OVER'} the 100 ms target)"
    )


if __name__ == "__main__":
    main()
