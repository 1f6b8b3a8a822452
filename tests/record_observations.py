"""Re-record fixtures/observations/ from real runs against the mock's faults.

Run by hand (``python -m tests.record_observations``) when a probe's observation format changes;
the analyze() unit tests then judge these recorded facts without any network.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.mockproc import mock_process

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "observations"
KEY = "wsdoctor-record-key-7Hq2"

# (fault, file stem, extra run args)
SCENARIOS = [
    (None, "healthy", []),
    ("reject-401", "reject-401", []),
    ("reject-429", "reject-429", []),
    ("reject-503", "reject-503", []),
    ("html-200", "html-200", []),
    ("drop-no-close", "drop-no-close", ["--close-wait", "1.5"]),
    ("rst", "rst", ["--close-wait", "1.5"]),
    ("never-close-reply", "never-close-reply", ["--close-wait", "1"]),
    ("slow-results", "slow-results", ["--checks", "stream.transcribe"]),
    ("close-1008", "close-1008", ["--close-wait", "1.5"]),
    ("close-1011-net0000", "close-1011-net0000", ["--close-wait", "1.5"]),
    ("close-1012", "close-1012", ["--close-wait", "1.5"]),
]

# check id -> (family dir, evidence key)
EVIDENCE = {
    "http.upgrade": ("http", "upgrade"),
    "ws.auth": ("ws", "upgrade"),
    "stream.transcribe": ("stream", "session"),
    "close.handshake": ("close", None),
}


# (fault, file stem, mock args, run args) for the idle family: recorded as one family document
IDLE_SCENARIOS = [
    (None, "healthy", ["--idle-timeout", "2"], ["--keepalive-every", "0.5"]),
    ("idle-cutoff", "idle-cutoff", ["--idle-cutoff", "2.5"], ["--idle-max", "8"]),
    ("ignore-keepalive", "ignore-keepalive", ["--idle-timeout", "2"], ["--keepalive-every", "0.5"]),
    ("ignore-pings", "ignore-pings", ["--idle-timeout", "3"], ["--keepalive-every", "1"]),
]


def report_of(mock_args: list[str], run_args: list[str]) -> dict[str, Any]:
    """Start ``wsdoctor mock MOCK_ARGS``, run ``wsdoctor run URL RUN_ARGS`` against it, return the report."""
    with mock_process("--api-key", KEY, *mock_args) as url, tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "r.json"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "wsdoctor",
                "run",
                url,
                "--api-key-env",
                "REC_KEY",
                "--json",
                str(report_path),
                *run_args,
            ],
            env={**os.environ, "REC_KEY": KEY},
            capture_output=True,
            timeout=120,
            check=False,
        )
        data: dict[str, Any] = json.loads(report_path.read_text())
        return data


def write(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"recorded {path.relative_to(ROOT)}")


def record_idle() -> None:
    for fault, stem, mock_args, run_args in IDLE_SCENARIOS:
        report = report_of(mock_args + (["--fault", fault] if fault else []), ["--checks", "idle", *run_args])
        by_id = {r["check_id"]: r for r in report["results"]}
        family = {
            "idle_max_s": 30.0,
            "margin_s": 1.5,
            "wall_s": by_id["idle.silent"]["metrics"]["family_wall_s"],
            "connections": [
                by_id["idle.silent"]["evidence"]["silent"],
                by_id["idle.keepalive"]["evidence"]["keepalive"],
                by_id["idle.ping"]["evidence"]["ping"],
            ],
        }
        write(OUT / "idle" / f"{stem}.json", family)


async def _scheduling(pauses: list[float] = (), own_block_s: float = 0.0, thread: bool = False) -> dict[str, Any]:
    """host.loop-lag's probe under a real fault: its sampler process stopped (SIGSTOP) for each pause,
    wsdoctor's own loop blocked, or (``thread``) no process spawnable and a GIL-holding C call."""
    import asyncio
    import signal
    import time

    import psutil

    from wsdoctor.probes import host as host_probe

    if thread:
        host_probe.SAMPLER_PATH = "/nonexistent/schedsampler.py"

    async def stop_sampler() -> None:
        pid = None
        while pid is None:
            pid = next((c.pid for c in psutil.Process().children() if "schedsampler" in " ".join(c.cmdline())), None)
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        for pause in pauses:
            os.kill(pid, signal.SIGSTOP)
            await asyncio.sleep(pause)
            os.kill(pid, signal.SIGCONT)
            await asyncio.sleep(0.3)

    async def block_own_loop() -> None:
        for _ in range(2):
            await asyncio.sleep(0.3)
            time.sleep(own_block_s)  # noqa: ASYNC251 - the point: our own loop, blocked

    async def hold_gil() -> None:
        for _ in range(3):
            await asyncio.sleep(0.3)
            await asyncio.to_thread(lambda: sum(range(40_000_000)))

    faults = [stop_sampler()] if pauses else []
    faults += [block_own_loop()] if own_block_s else []
    faults += [hold_gil()] if thread else []
    probe = asyncio.ensure_future(host_probe.sample_scheduling(window_s=2.0))
    await asyncio.gather(*faults)
    return (await probe).to_dict()


def record_host_scheduling() -> None:
    import asyncio

    for stem, kw, note in [
        ("loop-ok", {}, "A healthy host: the sampler process woke on time."),
        ("loop-stall", {"pauses": [1.2]}, "The sampler process was stopped (SIGSTOP) for 1.2 s, as a VM pause does."),
        ("loop-lag", {"pauses": [0.35, 0.35]}, "The sampler process was stopped twice for 0.35 s."),
        ("loop-single-hiccup", {"pauses": [0.35]}, "The sampler process was stopped once for 0.35 s."),
        ("loop-own-busy", {"own_block_s": 0.45}, "wsdoctor's own loop blocked twice for 0.45 s; the host was fine."),
        ("loop-thread-gil", {"thread": True}, "No sampler process (thread fallback); a C call held our GIL 3 times."),
    ]:
        data = asyncio.run(_scheduling(**kw))
        data["_note"] = note
        write(OUT / "host" / f"{stem}.json", data)


def main() -> int:
    if "--idle-only" in sys.argv:
        record_idle()
        return 0
    if "--host-only" in sys.argv:
        record_host_scheduling()
        return 0
    for fault, stem, extra in SCENARIOS:
        report = report_of(["--fault", fault] if fault else [], extra)
        for result in report["results"]:
            where = EVIDENCE.get(result["check_id"])
            if where is None or result["status"] == "skip":
                continue
            family, key = where
            evidence = result["evidence"] if key is None else result["evidence"].get(key)
            if not evidence:
                continue
            write(OUT / family / f"{stem}.json", evidence)
    record_idle()
    record_host_scheduling()
    return 0


if __name__ == "__main__":
    sys.exit(main())
