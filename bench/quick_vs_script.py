"""Benchmark: ``wsdoctor run --target mock --quick`` next to a minimal hand-written aiohttp script.

The script does what a bare client does: start the same in-process mock, connect, stream the same
bundled speech (2.8 s) at real time, send CloseStream, wait for the close. wsdoctor does that plus
DNS/TCP/Upgrade/auth/close-handshake/REST checks concurrently. Target: <= 1.3x the script's wall time.
Usage: python bench/quick_vs_script.py [--short]. The figure the README quotes is printed last.
"""

from __future__ import annotations

import argparse
import sys

from _common import time_command

SCRIPT = r"""
import asyncio, json, wave
import aiohttp
from wsdoctor.check import FIXTURES_AUDIO
from wsdoctor.mock import MockConfig, start_mock

async def main():
    mock = await start_mock(MockConfig(api_key="bench-key-000"))
    raw = FIXTURES_AUDIO.read_bytes()
    chunks = [raw[i:i + 3200] for i in range(0, len(raw), 3200)]
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(mock.url, headers={"Authorization": "Token bench-key-000"}) as ws:
            async def send():
                loop = asyncio.get_running_loop(); t0 = loop.time()
                for i, c in enumerate(chunks):
                    await asyncio.sleep(max(0, t0 + i * 0.1 - loop.time()))
                    await ws.send_bytes(c)
                await ws.send_str(json.dumps({"type": "CloseStream"}))
            sender = asyncio.create_task(send())
            async for msg in ws:
                pass
            await sender
    await mock.stop()

asyncio.run(main())
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--short", action="store_true", help="fewer runs (CI)")
    runs = 1 if parser.parse_args().short else 5
    script = time_command([sys.executable, "-c", SCRIPT], runs)
    ours = time_command([sys.executable, "-m", "wsdoctor", "run", "--target", "mock", "--quick"], runs)
    print(
        f"minimal aiohttp script: {script:.2f} s; wsdoctor run --target mock --quick: {ours:.2f} s (median of {runs})"
    )
    print(f"quick run vs script {ours / script:.2f}x ({'within' if ours <= 1.3 * script else 'OVER'} the 1.3x target)")


if __name__ == "__main__":
    main()
