"""Benchmark: ``explain_stream`` on a log of adversarial lines next to a log of normal lines.

Issue 16: one knowledge-base pattern backtracked catastrophically (a 65 KB line took ~13 s). The
patterns are now bounded and the regexes only see a few KiB around each needle hit, so a hostile
log must be read about as fast as a normal one (target: adversarial/normal time within 1.5x).

The adversarial log is built, for every knowledge-base pattern, from the strings it is meant to
match: a prefix of a real match followed by a 64 KiB run of one character (space, tab, quote,
colon, letter, digit...: what ``\\s``, ``\\S``, ``\\w``, ``[^ ]`` and ``.`` accept; ``code`` + 64 KiB
of spaces was the 13 s line), prefixes repeated, near misses (a real match with its last character
changed) repeated, and the pattern's literal fragments repeated or followed by such runs. Each body
carries one of the entry's needles, at its start or its end, so the regexes must look at it. The
lines are 64 KiB, 4 KiB and some past the 64 KiB cut, round-robin over the patterns (so the 10 MB
of ``--short`` attack every pattern too). The normal log is the access-log and debug lines of
tests/test_explain_bigfile.py (a quarter of them hold needle hits: ``1006``, ``429``) with one real
error every thousand lines. Both are written to a temp dir; only ``explain_stream`` is timed, best
of ``--runs``.

Usage: python bench/explain_adversarial.py [--short] [--mb N] [--runs N]. Prints both throughputs
in MB/s and, last, the figure to quote: the ratio adversarial/normal.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.test_explain_redos import literal_runs  # noqa: E402 - one walker for the test and the bench
from wsdoctor.explain import MAX_LINE_BYTES, KnowledgeBase, explain_stream, load_kb  # noqa: E402

MB = 1_000_000
NOISE = [
    '127.0.0.1 - - [10/Oct/2026:13:55:36 +0000] "GET /v1/listen HTTP/1.1" 101 0 "-" "python-websockets/14.1" rt=12.5',
    '2026-10-10T13:55:36.123Z INFO  transcriber: Results is_final=true duration=1.02 transcript="the quick brown fox"',
    "2026-10-10T13:55:36.124Z DEBUG websockets.client: > BINARY 2b 4f 0a 11 ... [3200 bytes]",
    "2026-10-10T13:55:36.130Z DEBUG worker: processed 1006 jobs, queue depth 429, p99 200 ms",
]
#: Characters to run after a prefix: what ``\s``, ``\S``, ``\w``, ``[^ ]``, ``.`` and friends accept.
RUN_CHARS = " \t:='\"(-_.a1/\\"


def bodies(pattern: re.Pattern[str], examples: tuple[str, ...], size: int) -> Iterator[str]:
    """Adversarial line bodies of ``size`` characters for one pattern, the nastiest kinds first."""
    matched = [m.group(0) for ex in examples if (m := pattern.search(ex))]
    runs = [c for c in RUN_CHARS if pattern.search(c * 8) is None]  # a run that is itself a match is no attack
    fragments = literal_runs(pattern.pattern)
    for frag in fragments:  # a literal fragment, then a long run ("code" + 64 KiB of spaces)
        for c in runs:
            yield (frag + c * size)[:size]
    cuts = [(m, k) for m in matched for k in range(1, len(m))]
    for i, (m, k) in enumerate(cuts):  # a prefix of a real match, then a long run
        yield (m[:k] + runs[i % len(runs)] * size)[:size]
    for m, k in cuts:  # a prefix repeated
        yield (m[:k] * (size // k + 1))[:size]
    for m in matched:  # a near miss repeated
        miss = m[:-1] + ("y" if m[-1].lower() == "x" else "x") + " "
        yield (miss * (size // len(miss) + 1))[:size]
    for frag in fragments:  # the literal fragments repeated, alone or interleaved with run characters
        yield (frag * (size // len(frag) + 1))[:size]
        for c in runs:
            yield ((frag + c) * (size // (len(frag) + 1) + 1))[:size]


def adversarial_lines(kb: KnowledgeBase) -> Iterator[str]:
    """Attack lines for every pattern of every entry, round-robin over the patterns (any prefix of
    the stream attacks them all), each carrying one of the entry's needles, endlessly."""
    while True:
        streams = [
            (e.needles[i % len(e.needles)].decode(), bodies(p, e.examples, MAX_LINE_BYTES))
            for e in kb.entries
            for i, p in enumerate(e.patterns)
        ]
        n = 0
        while streams:
            alive = []
            for needle, it in streams:
                body = next(it, None)
                if body is None:
                    continue
                alive.append((needle, it))
                n += 1
                if n % 3 == 0:
                    yield f"{needle} {body}"  # the hit first: the body follows it
                elif n % 3 == 1:
                    yield f"{body[: MAX_LINE_BYTES - len(needle) - 2]} ~{needle}"  # the hit at the end, a "~" before it
                else:
                    yield f"{body[:4096]} {needle}"  # a 4 KiB line
                if n % 17 == 0:
                    yield body + body[:4096] + " " + needle  # past the cut: this hit is never seen
            streams = alive


def write(path: Path, lines: Iterator[str], target: int) -> tuple[int, int]:
    """Write ``lines`` until ``target`` bytes; return (bytes, lines) written."""
    size = count = 0
    with path.open("w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(line)
            fh.write("\n")
            size += len(line.encode()) + 1
            count += 1
            if size >= target:
                break
    return size, count


def normal_lines() -> Iterator[str]:
    error = "2026-10-10T13:55:40.000Z ERROR dg: send() failed - ConnectionClosed: no close frame received or sent"
    while True:
        yield from (NOISE[i % len(NOISE)] for i in range(999))
        yield error


def best_time(path: Path, kb: KnowledgeBase, runs: int) -> tuple[float, int]:
    """Best wall time of ``explain_stream`` over ``runs``, and how many entries matched."""
    times = []
    matched = 0
    for _ in range(runs):
        with path.open("rb") as fh:
            t0 = time.perf_counter()
            result = explain_stream(fh, source=path.name, kb=kb)
            times.append(time.perf_counter() - t0)
        matched = len(result.matches)
    return min(times), matched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="10 MB per log, one run (CI)")
    parser.add_argument("--mb", type=int, default=None, help="size of each log in MB (default 100, --short 10)")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per log, best kept (default 3, --short 1)")
    args = parser.parse_args()
    target = (args.mb or (10 if args.short else 100)) * MB
    runs = args.runs or (1 if args.short else 3)
    kb = load_kb()
    with tempfile.TemporaryDirectory(prefix="wsdoctor-bench-") as tmp:
        adv_path, norm_path = Path(tmp) / "adversarial.log", Path(tmp) / "normal.log"
        adv_size, adv_lines = write(adv_path, adversarial_lines(kb), target)
        norm_size, norm_lines = write(norm_path, normal_lines(), target)
        print(f"adversarial log: {adv_size / MB:.0f} MB, {adv_lines} lines (64 KiB, 4 KiB, past the cut)")
        print(f"normal log: {norm_size / MB:.0f} MB, {norm_lines} access/debug lines, one error per 1000")
        t_norm, m_norm = best_time(norm_path, kb, runs)
        t_adv, m_adv = best_time(adv_path, kb, runs)
    print(f"normal: {norm_size / MB / t_norm:.1f} MB/s ({t_norm:.2f} s, {m_norm} entries matched)")
    print(f"adversarial: {adv_size / MB / t_adv:.1f} MB/s ({t_adv:.2f} s, {m_adv} entries matched)")
    ratio = (t_adv / adv_size) / (t_norm / norm_size)
    print(
        f"explain adversarial/normal time per MB: {ratio:.2f}x "
        f"({'within' if ratio <= 1.5 else 'OVER'} the 1.5x target; best of {runs})"
    )


if __name__ == "__main__":
    main()
