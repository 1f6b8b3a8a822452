"""The mock survives abusive clients: garbage, half-open connections and 10,000 connection attempts,
without crashing or growing without bound -- and still serves a real diagnosis afterwards."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

from tests.mockproc import mock_process

KEY = "wsdoctor-abuse-key-Hh55"


def mock_pid(port: int) -> int:
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return int(conn.pid)
    raise AssertionError(f"no process listens on {port}")


async def hammer(port: int, attempts: int, concurrency: int) -> int:
    """``attempts`` connect/close cycles, some sending garbage or a half request; bounded in time."""
    sem = asyncio.Semaphore(concurrency)
    done = 0

    async def one(i: int) -> None:
        nonlocal done
        async with sem:
            try:
                _reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
            except (OSError, TimeoutError):
                return
            try:
                if i % 10 == 1:
                    writer.write(os.urandom(512))  # garbage
                elif i % 10 == 2:
                    writer.write(b"GET /v1/listen HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")  # half a request
                elif i % 10 == 3:
                    writer.write(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a TLS ClientHello on plain ws
                await asyncio.wait_for(writer.drain(), 2)
                done += 1
            except (OSError, TimeoutError):
                pass
            finally:
                writer.close()

    await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(attempts))), 120)
    return done


def test_mock_survives_abuse(tmp_path: Path) -> None:
    with mock_process("--api-key", KEY) as url:
        port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
        proc = psutil.Process(mock_pid(port))
        rss_before = proc.memory_info().rss
        # half-open: connections that send nothing and stay open while the rest happens
        idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(200)]
        t0 = time.monotonic()
        done = asyncio.run(hammer(port, 10_000, 200))
        elapsed = time.monotonic() - t0
        for s in idle:
            s.close()
        time.sleep(0.5)
        assert proc.is_running()
        assert done > 9_000, done
        rss_after = proc.memory_info().rss
        # still a working Deepgram endpoint
        out = tmp_path / "after.json"
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "wsdoctor",
                "run",
                url,
                "--api-key-env",
                "WSD_ABUSE_KEY",
                "--quick",
                "--checks",
                "stream.transcribe",
                "--json",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "WSD_ABUSE_KEY": KEY},
            check=False,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert json.loads(out.read_text())["summary"]["verdict"] == "healthy"
    growth_mb = (rss_after - rss_before) / 2**20
    assert growth_mb < 40, f"mock RSS grew {growth_mb:.1f} MB over 10k abusive connections ({elapsed:.1f} s)"
