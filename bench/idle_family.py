"""Benchmark: the idle family runs its connections side by side.

Starts the built-in mock on 127.0.0.1 with a short NET-0001 window, runs the idle family probe
(silent, KeepAlive, KeepAlive+ping) and prints its wall time next to the window and next to the sum
of the three connections' own durations (what running them one after another would cost).
Target: wall <= window + 2 s. Usage: python bench/idle_family.py [--window 3] [--runs 3]
The figure the README quotes is printed last.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from wsdoctor.check import Context, RunOptions, Secret
from wsdoctor.mock import MockConfig, start_mock
from wsdoctor.model import Target
from wsdoctor.probes.idle import run_idle_family


async def one_run(window: float) -> tuple[float, float]:
    key = "bench-key-0000"
    mock = await start_mock(MockConfig(api_key=key, idle_timeout_s=window))
    try:
        ctx = Context(
            target=Target.parse(mock.url),
            api_key=Secret(key),
            options=RunOptions(keepalive_every_s=window / 3, ping_every_s=window / 3, idle_max_s=30.0),
        )
        t0 = time.monotonic()
        family = await run_idle_family(ctx)
        wall = time.monotonic() - t0
        serial = sum((c.end_t or 0.0) for c in family.connections)
        return wall, serial
    finally:
        await mock.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=3.0, help="the mock's NET-0001 window, seconds")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--short", action="store_true", help="one run (CI)")
    args = parser.parse_args()
    if args.short:
        args.runs = 1
    walls, serials = [], []
    for _ in range(args.runs):
        wall, serial = asyncio.run(one_run(args.window))
        walls.append(wall)
        serials.append(serial)
        print(f"run: family wall {wall:.2f} s, the same connections one after another {serial:.2f} s")
    wall, serial = statistics.median(walls), statistics.median(serials)
    print(f"window {args.window:.1f} s; target wall <= window + 2 s = {args.window + 2:.1f} s")
    print(f"side by side vs one after another: {wall / serial:.2f}x")
    print(
        f"idle family wall {wall:.2f} s = window + {wall - args.window:.2f} s "
        f"({'within' if wall <= args.window + 2 else 'OVER'} target)"
    )


if __name__ == "__main__":
    main()
