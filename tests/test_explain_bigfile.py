"""``wsdoctor explain --file`` streams a 100 MB log: bounded memory, every error found, fast.

The log is generated in a temp dir (realistic access-log and debug lines, one real error every
50,000 lines, plus one absurd 1 MB line); ``wsdoctor explain`` runs in
a fresh interpreter that reports its own peak RSS (``VmHWM`` of /proc/self/status: a number for that
address space alone, not polluted by pytest or anything else this test session ran).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

MB = 1024 * 1024
LOG_BYTES = 100 * MB
RSS_LIMIT_KB = 100 * 1024  # the bound: peak RSS under 100 MB

NOISE = [
    '127.0.0.1 - - [10/Oct/2026:13:55:36 +0000] "GET /v1/listen HTTP/1.1" 101 0 "-" "python-websockets/14.1" rt=12.5',
    '2026-10-10T13:55:36.123Z INFO  transcriber: Results is_final=true duration=1.02 transcript="the quick brown fox"',
    "2026-10-10T13:55:36.124Z DEBUG websockets.client: > BINARY 2b 4f 0a 11 ... [3200 bytes]",
    "2026-10-10T13:55:36.130Z DEBUG worker: processed 1006 jobs, queue depth 429, p99 200 ms",
]
ERROR = "2026-10-10T13:55:40.000Z ERROR dg: send() failed - ConnectionClosed: no close frame received or sent"
LINES_PER_BLOCK = 50_000


def write_log(path: Path) -> tuple[int, list[int]]:
    """Write ~100 MB; return (lines written, line numbers of the injected errors)."""
    block = "\n".join(NOISE[i % len(NOISE)] for i in range(LINES_PER_BLOCK - 1)) + "\n"
    errors: list[int] = []
    lines = 0
    with path.open("w", encoding="utf-8") as fh:
        size = 0
        while size < LOG_BYTES:
            fh.write(block)
            lines += LINES_PER_BLOCK - 1
            fh.write(ERROR + "\n")
            lines += 1
            errors.append(lines)
            size += len(block) + len(ERROR) + 1
        fh.write("x" * MB + " keepalive ping timeout but far past the 64 KiB cut\n")  # one absurd line
        lines += 1
        fh.write("Error: getaddrinfo ENOTFOUND api.deepgram.com\n")
        lines += 1
    return lines, errors


# VmHWM is the high-water mark of this address space, reset by exec. (ru_maxrss is not: Linux
# carries the forking parent's -- here pytest's -- peak across execve into the child's number.)
RUNNER = (
    "import resource, sys\n"
    "from wsdoctor.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "sys.stdout.flush()\n"
    "try:\n"
    "    hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:')).split()[1]\n"
    "except OSError:\n"
    "    hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "print('PEAK_RSS_KB', hwm, file=sys.stderr)\n"
    "sys.exit(rc)\n"
)


@pytest.mark.timeout(120)
def test_100mb_log_is_streamed_with_bounded_memory(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    t0 = time.monotonic()
    total_lines, error_lines = write_log(log)
    assert log.stat().st_size >= LOG_BYTES
    t1 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, "explain", "--file", str(log), "--json", "-"],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    elapsed = time.monotonic() - t1
    assert proc.returncode == 0, proc.stderr[-2000:]
    peak_kb = int(proc.stderr.rsplit("PEAK_RSS_KB", 1)[1].split()[0])
    data = json.loads(proc.stdout)
    by_id = {m["id"]: m for m in data["matches"]}
    assert set(by_id) == {"websockets-no-close-frame", "dns-not-found"}
    close = by_id["websockets-no-close-frame"]
    assert close["count"] == len(error_lines)
    assert close["line_numbers"] == error_lines[:20]
    assert by_id["dns-not-found"]["first_line"] == total_lines
    assert data["input"]["lines"] == total_lines
    assert data["input"]["truncated_lines"] == 1
    assert data["input"]["bytes"] == log.stat().st_size
    print(f"generate {t1 - t0:.1f} s, explain {elapsed:.1f} s, peak RSS {peak_kb / 1024:.1f} MiB")
    assert peak_kb < RSS_LIMIT_KB, f"peak RSS {peak_kb} KiB"
    assert time.monotonic() - t0 < 15, "generating and explaining 100 MB must stay under 15 s"
