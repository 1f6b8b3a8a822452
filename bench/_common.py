"""Shared helpers for the bench scripts: timing subprocesses, the mock as a subprocess."""

from __future__ import annotations

import os
import select
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


def time_command(argv: Sequence[str], runs: int, env: dict[str, str] | None = None) -> float:
    """Median wall time of ``argv`` over ``runs`` runs (each bounded to 5 minutes)."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(
            list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300, check=False, env=env
        )
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@contextmanager
def mock_server(*args: str) -> Iterator[str]:
    """``wsdoctor mock ARGS`` on 127.0.0.1; yields its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "wsdoctor", "mock", "--host", "127.0.0.1", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        line = proc.stdout.readline() if ready else ""
        if "listening on" not in line:
            raise RuntimeError(f"mock did not start: {line!r}")
        yield line.split("listening on", 1)[1].split()[0]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
