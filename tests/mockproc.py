"""Run ``wsdoctor mock`` as a real subprocess on 127.0.0.1 and read its URL (bounded waits)."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def mock_process(*args: str, start_timeout: float = 20.0) -> Iterator[str]:
    """Yield the ws:// URL printed by ``wsdoctor mock ARGS``; stop the process afterwards."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "wsdoctor", "mock", "--host", "127.0.0.1", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
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
            raise RuntimeError(f"wsdoctor mock did not start: {line!r} {err[-2000:]!r}")
        yield line.split("listening on", 1)[1].split()[0]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
