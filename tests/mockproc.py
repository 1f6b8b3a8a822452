"""Run a long-lived ``wsdoctor`` command (``mock``, ``serve``) as a real subprocess, read the URL it
prints on its "listening on" line, and stop it afterwards -- every wait bounded."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


@contextmanager
def wsdoctor_process(
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    stop_signal: signal.Signals = signal.SIGINT,
    start_timeout: float = 20.0,
    stop_timeout: float = 5.0,
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Yield (the URL printed after "listening on", the process) for ``wsdoctor ARGS``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "wsdoctor", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + start_timeout
        line = ""
        while time.monotonic() < deadline and "listening on" not in line:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            line = proc.stdout.readline()
            if not line:
                break
        sel.close()
        if "listening on" not in line:
            proc.kill()
            _, err = proc.communicate(timeout=5)
            raise RuntimeError(f"wsdoctor {args[0]} did not start: {line!r} {err[-2000:]!r}")
        yield line.split("listening on", 1)[1].split()[0], proc
    finally:
        if proc.poll() is None:
            proc.send_signal(stop_signal)
            try:
                proc.wait(timeout=stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@contextmanager
def mock_process(*args: str, start_timeout: float = 20.0) -> Iterator[str]:
    """Yield the ws:// URL printed by ``wsdoctor mock ARGS`` on 127.0.0.1."""
    with wsdoctor_process(["mock", "--host", "127.0.0.1", "--port", "0", *args], start_timeout=start_timeout) as (
        url,
        _proc,
    ):
        yield url
