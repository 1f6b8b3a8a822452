"""A process that only sleeps, and records how late the host wakes it: the host's scheduling delay.

Theory of operation. ``host.loop-lag`` must measure the *host*, not wsdoctor: wsdoctor's own event
loop is late whenever wsdoctor itself is busy (TLS, JSON, the in-process mock), and on a loaded CI
runner a busy process is simply given its fair share -- neither is evidence that the host starves
an app. So this file runs as its own small process (``python -I -S schedsampler.py WINDOW INTERVAL``,
no site-packages, no wsdoctor imports: it starts in milliseconds and shares nothing with wsdoctor,
not even the GIL). It sleeps ``INTERVAL`` seconds again and again for ``WINDOW`` seconds and prints
one JSON line: how late each wake-up was, and, on Linux, the kernel's own account of the time it
spent runnable but not running (``/proc/self/task/TID/schedstat``, second field, "run_delay").

A process that mostly sleeps -- like an app streaming audio -- is woken promptly by a fair
scheduler even when every core is busy. When it is not, something stops the whole process or its
cgroup: CPU quota throttling in a container, a hypervisor stealing the CPU, a SIGSTOP, a swap storm.

``sample()`` is also imported (as a fallback, in a thread) when a process cannot be spawned; then
wsdoctor's GIL can delay it, which ``run_delay`` tells apart (waiting for the GIL is not runnable
time in the kernel's eyes).

Stdlib only, and nothing at import time but definitions.
"""

from __future__ import annotations

import json
import sys
import threading
import time

__all__ = ["run_delay_s", "sample"]


def run_delay_s(native_id: int | None = None) -> float | None:
    """Seconds this thread has spent runnable but waiting for a CPU (Linux schedstat), or None."""
    tid = native_id if native_id is not None else threading.get_native_id()
    try:
        with open(f"/proc/self/task/{tid}/schedstat", encoding="ascii") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def sample(window_s: float, interval_s: float) -> dict[str, object]:
    """Sleep ``interval_s`` repeatedly for ``window_s``; return every wake-up's lateness."""
    lags: list[float] = []
    before = run_delay_s()
    end = time.monotonic() + window_s
    while time.monotonic() < end and len(lags) < 10_000:
        t0 = time.monotonic()
        time.sleep(interval_s)
        lags.append(max(0.0, time.monotonic() - t0 - interval_s))
    after = run_delay_s()
    delay = round(after - before, 6) if before is not None and after is not None else None
    return {"lags_s": [round(x, 6) for x in lags], "run_delay_s": delay}


def main(argv: list[str]) -> int:
    window_s, interval_s = float(argv[1]), float(argv[2])
    print(json.dumps(sample(window_s, interval_s)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
