"""``wsdoctor explain``: map a pasted error message or a whole log to the likely causes.

Theory of operation. The knowledge base is data (``wsdoctor/data/explain.json``): each entry names
the real error strings of one failure as the clients print them (python websockets, aiohttp,
Deepgram's SDKs, Node ws/undici, Go gorilla, .NET ClientWebSocket, browsers, OpenSSL, the OS),
what they mean, the cause ids of :mod:`wsdoctor.causes` they point to, fixes specific to that
error, the ``wsdoctor run`` checks that would confirm it, and the public source it comes from.
Every entry carries the real strings as ``examples``; the tests feed each one through the engine.

Matching is two-staged so a 100 MB log is read at disk speed, not regex speed:

1. **Needles.** Every entry lists a few lower-case literals (``needles``) that any line it can
   match must contain. The input is read in blocks of :data:`BLOCK_BYTES`; each block is
   lower-cased once and searched for every needle with ``bytes.find`` (C speed). Only the lines
   that contain a needle become candidates, and only for the entries whose needle they contain.
2. **Patterns.** A candidate line is decoded (UTF-8, errors replaced) and the entry's regular
   expressions (case-insensitive, anchored on the distinctive words of the message so that
   unrelated text does not match) decide.

The regexes are kept linear and their input bounded, so that no line, however hostile, costs more
than a bounded amount of regex work (issue 16: one pattern with two unbounded whitespace runs
around an optional ``[:=]`` took 13 s on a 65 KB line of spaces). One rule for the data, one for
the engine:

* Patterns use bounded quantifiers only (``{0,8}``, never ``*`` or ``+``), no repetition inside a
  repetition, and match at most :data:`MAX_MATCH_CHARS` characters (``tests/test_explain_redos.py``
  checks every pattern statically and times it on adversarial lines).
* The regexes never see a whole line, only **windows** of it: :data:`WINDOW_BYTES` either side of
  a needle hit (error messages are short, and the needle is part of the message, so a match that
  contains a hit lies inside that hit's window; a line up to 2 KiB is its own window). The first
  hit of each of the entry's needles gets a window; while nothing matched, later hits past those
  windows get up to :data:`MAX_WINDOWS` more (a ``1006`` in an id does not hide a ``code 1006``
  further on), and a line that repeats a needle thousands of times is looked at in those places
  only. A word boundary at a window's start still sees the character before it
  (``Pattern.search(text, pos, endpos)``). So the regex work per candidate line is bounded by the
  knowledge base (entries x patterns x windows), not by the line's length: a future bad pattern is
  slow on a few KiB at worst, never on 64 KiB.

Lines are cut at :data:`MAX_LINE_BYTES`; the rest of an over-long line is skipped, never buffered,
so memory stays bounded by one block plus one line whatever the input. A line that matches a
*specific* entry does not also count for a ``generic`` one (a gorilla "close 1006 ... unexpected
EOF" is not also reported as a bare "1006"). Per entry we keep the count, the first few line
numbers and a few example lines (sanitised, bounded). Nothing here prints or touches the network:
the CLI in :mod:`wsdoctor.commands.explain` renders the :class:`Explanation`.

Stdlib-only at import time, like the rest of the CLI path.
"""

from __future__ import annotations

import heapq
import io
import json
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from wsdoctor import deepgram
from wsdoctor.causes import CAUSES
from wsdoctor.errors import InternalError
from wsdoctor.model import JSONValue
from wsdoctor.sanitize import printable

__all__ = [
    "BLOCK_BYTES",
    "KB_PATH",
    "MAX_LINE_BYTES",
    "MAX_MATCH_CHARS",
    "MAX_WINDOWS",
    "SCHEMA",
    "WINDOW_BYTES",
    "Entry",
    "Explanation",
    "KnowledgeBase",
    "Match",
    "explain_stream",
    "explain_text",
    "load_kb",
]

SCHEMA = "wsdoctor.explain/1"
KB_PATH = Path(__file__).resolve().parent / "data" / "explain.json"
#: Longer lines are cut here: an error message is never this long, a minified blob often is.
MAX_LINE_BYTES = 64 * 1024
#: The regexes see this many bytes either side of a needle hit, never the whole line: error
#: messages are short, and a pattern's match (at most MAX_MATCH_CHARS) holds the needle it needs.
WINDOW_BYTES = 2048
#: Windows for later needle hits, per line and entry, beyond those of each needle's first hit.
MAX_WINDOWS = 3
#: The knowledge base's patterns match at most this many characters (tests/test_explain_redos.py).
MAX_MATCH_CHARS = 2048
#: Read size; memory is about two of these (the block and its lower-cased copy) plus one line.
BLOCK_BYTES = 1024 * 1024
#: Per entry, how many line numbers and example lines the result keeps.
MAX_LINE_NUMBERS = 20
MAX_EXAMPLES = 3
EXAMPLE_CHARS = 300

#: Check ids ``confirm_with`` may name: the built-ins, and the idle family being built.
KNOWN_CHECK_IDS = frozenset(
    {
        "dns.resolve",
        "tcp.connect",
        "tls.handshake",
        "http.upgrade",
        "ws.auth",
        "stream.transcribe",
        "flux.stream",
        "speak.stream",
        "agent.session",
        "close.handshake",
        "idle.silent",
        "idle.keepalive",
        "idle.middlebox",
        "host.sockets",
        "host.fds",
        "host.ephemeral-ports",
        "host.loop-lag",
        "host.clock",
        "sdk.installed",
        "sdk.app-pins",
    }
)


@dataclass(frozen=True, slots=True)
class Entry:
    """One known error: how to recognise it and what it means."""

    id: str
    title: str
    patterns: tuple[re.Pattern[str], ...]
    needles: tuple[bytes, ...]
    clients: tuple[str, ...]
    meaning: str
    causes: tuple[str, ...]
    fixes: tuple[str, ...]
    confirm_with: tuple[str, ...]
    source: str
    examples: tuple[str, ...]
    generic: bool = False
    finding_codes: tuple[str, ...] = ()

    def matches(self, line: str, pos: int = 0, endpos: int = sys.maxsize) -> bool:
        """Whether a pattern matches in ``line[pos:endpos]`` (a word boundary sees before ``pos``)."""
        return any(p.search(line, pos, endpos) for p in self.patterns)

    @property
    def confirm_command(self) -> str | None:
        return f"wsdoctor run --checks {','.join(self.confirm_with)}" if self.confirm_with else None


@dataclass(frozen=True, slots=True)
class KnowledgeBase:
    entries: tuple[Entry, ...]
    #: needle -> indexes of the entries that list it
    needle_index: Mapping[bytes, tuple[int, ...]]

    def by_id(self, entry_id: str) -> Entry:
        for e in self.entries:
            if e.id == entry_id:
                return e
        raise KeyError(entry_id)


def _strings(raw: Any, key: str, entry_id: str, *, required: bool = True) -> tuple[str, ...]:
    value = raw.get(key, [] if not required else None)
    if not isinstance(value, list) or (required and not value) or not all(isinstance(v, str) and v for v in value):
        raise InternalError(f"explain knowledge base: entry {entry_id!r}: {key!r} must be a non-empty list of strings")
    return tuple(value)


def _deepgram_literals(raw: Mapping[str, Any], entry_id: str) -> tuple[str, ...]:
    """The markers :mod:`wsdoctor.deepgram` holds for the Deepgram strings an entry names
    (``"deepgram": {"closes": ["NET-0001"], "rejections": ["INVALID_AUTH"]}``): the protocol module
    is the one source of truth for how a Deepgram close reason or error code is recognised."""
    spec = raw.get("deepgram")
    if spec is None:
        return ()
    if not isinstance(spec, dict) or not set(spec) <= {"closes", "rejections"}:
        raise InternalError(f"explain knowledge base: entry {entry_id!r}: 'deepgram' takes 'closes' and 'rejections'")
    literals: list[str] = []
    closes = {r.id: r for r in deepgram.CLOSE_REASONS}
    for cid in _strings(spec, "closes", entry_id, required=False):
        if cid not in closes:
            raise InternalError(f"explain knowledge base: entry {entry_id!r}: unknown Deepgram close {cid!r}")
        literals += closes[cid].markers
    for name in _strings(spec, "rejections", entry_id, required=False):
        found = deepgram.rejection_markers(name)
        if not found:
            raise InternalError(f"explain knowledge base: entry {entry_id!r}: no markers for Deepgram error {name!r}")
        literals += found
    return tuple(dict.fromkeys(literals))


def load_kb(path: Path | None = None) -> KnowledgeBase:
    """Load and validate the knowledge base. A malformed one is our bug: :class:`InternalError`."""
    try:
        data = json.loads((path or KB_PATH).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InternalError(f"explain knowledge base unreadable: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        raise InternalError("explain knowledge base: no 'entries' list")
    entries: list[Entry] = []
    seen: set[str] = set()
    for raw in data["entries"]:
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            raise InternalError("explain knowledge base: every entry needs an 'id'")
        eid = raw["id"]
        if eid in seen:
            raise InternalError(f"explain knowledge base: duplicate id {eid!r}")
        seen.add(eid)
        literals = _deepgram_literals(raw, eid)
        try:
            own = _strings(raw, "patterns", eid, required=not literals)
            patterns = tuple(re.compile(p, re.IGNORECASE) for p in own)
        except re.error as exc:
            raise InternalError(f"explain knowledge base: entry {eid!r}: bad pattern: {exc}") from None
        patterns += tuple(re.compile(re.escape(lit), re.IGNORECASE) for lit in literals)
        needles = tuple(dict.fromkeys((*_strings(raw, "needles", eid, required=not literals), *literals)))
        if any(n != n.lower() or not n.isascii() for n in needles):
            raise InternalError(f"explain knowledge base: entry {eid!r}: needles must be lower-case ASCII")
        causes = _strings(raw, "causes", eid)
        unknown = [c for c in causes if c not in CAUSES]
        if unknown:
            raise InternalError(f"explain knowledge base: entry {eid!r}: unknown cause {unknown[0]!r}")
        confirm = _strings(raw, "confirm_with", eid, required=False)
        bad = [c for c in confirm if c not in KNOWN_CHECK_IDS]
        if bad:
            raise InternalError(f"explain knowledge base: entry {eid!r}: unknown check id {bad[0]!r}")
        source = raw.get("source")
        if not isinstance(source, str) or not source.startswith("https://"):
            raise InternalError(f"explain knowledge base: entry {eid!r}: 'source' must be an https URL")
        entries.append(
            Entry(
                id=eid,
                title=str(raw.get("title") or eid),
                patterns=patterns,
                needles=tuple(n.encode("ascii") for n in needles),
                clients=_strings(raw, "clients", eid),
                meaning=str(raw.get("meaning") or ""),
                causes=causes,
                fixes=_strings(raw, "fixes", eid),
                confirm_with=confirm,
                source=source,
                examples=_strings(raw, "examples", eid),
                generic=bool(raw.get("generic", False)),
                finding_codes=_strings(raw, "finding_codes", eid, required=False),
            )
        )
    index: dict[bytes, list[int]] = {}
    for i, e in enumerate(entries):
        for n in e.needles:
            index.setdefault(n, []).append(i)
    return KnowledgeBase(entries=tuple(entries), needle_index={k: tuple(v) for k, v in index.items()})


@dataclass(slots=True)
class Match:
    """What one entry matched in the input."""

    entry: Entry
    count: int = 0
    line_numbers: list[int] = field(default_factory=list)
    examples: list[tuple[int, str]] = field(default_factory=list)

    @property
    def first_line(self) -> int:
        return self.line_numbers[0] if self.line_numbers else 0

    def add(self, line_no: int, text: str) -> None:
        self.count += 1
        if len(self.line_numbers) < MAX_LINE_NUMBERS:
            self.line_numbers.append(line_no)
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append((line_no, printable(text.strip(), EXAMPLE_CHARS)))

    def to_dict(self) -> dict[str, JSONValue]:
        e = self.entry
        return {
            "id": e.id,
            "title": e.title,
            "count": self.count,
            "first_line": self.first_line,
            "line_numbers": list(self.line_numbers),
            "examples": [{"line": n, "text": t} for n, t in self.examples],
            "clients": list(e.clients),
            "meaning": e.meaning,
            "causes": [
                {"id": c, "title": CAUSES[c].title, "article_section": CAUSES[c].article_section} for c in e.causes
            ],
            "fixes": list(e.fixes),
            "finding_codes": list(e.finding_codes),
            "confirm_with": list(e.confirm_with),
            "confirm_command": e.confirm_command,
            "source": e.source,
        }


@dataclass(slots=True)
class Explanation:
    """The answer for one input: which entries matched, where, and how much was read."""

    source: str  # "text" | "stdin" | the file name as given
    lines: int = 0
    bytes_read: int = 0
    truncated_lines: int = 0
    matches: list[Match] = field(default_factory=list)

    @property
    def matched(self) -> bool:
        return bool(self.matches)

    def to_dict(self, version: str) -> dict[str, JSONValue]:
        return {
            "schema": SCHEMA,
            "wsdoctor_version": version,
            "input": {
                "source": printable(self.source, 300),
                "lines": self.lines,
                "bytes": self.bytes_read,
                "truncated_lines": self.truncated_lines,
            },
            "matched": self.matched,
            "matches": [m.to_dict() for m in self.matches],
        }


def _blocks(stream: IO[bytes], block_bytes: int, counter: list[int]) -> Iterator[tuple[bytes, bool]]:
    """Yield (chunk of complete lines, whether the last line is cut) with bounded memory.

    Each chunk ends at a newline except when a single line is longer than ``MAX_LINE_BYTES``:
    then the first ``MAX_LINE_BYTES`` of it are yielded as one line (flag True) and the rest
    of that line is read and dropped, never kept.
    """
    carry = b""
    skipping = False  # inside the tail of an over-long line
    while True:
        data = stream.read(block_bytes)
        if not data:
            break
        counter[0] += len(data)
        if skipping:
            nl = data.find(b"\n")
            if nl < 0:
                continue
            data = data[nl + 1 :]
            skipping = False
        buf = carry + data if carry else data
        last_nl = buf.rfind(b"\n")
        if last_nl >= 0:
            yield buf[: last_nl + 1], False
            carry = buf[last_nl + 1 :]
        else:
            carry = buf
        if len(carry) > MAX_LINE_BYTES:
            yield carry[:MAX_LINE_BYTES] + b"\n", True
            carry = b""
            skipping = True
    if carry:
        yield carry + b"\n", False


def _line_bounds(block: bytes, pos: int) -> tuple[int, int]:
    start = block.rfind(b"\n", 0, pos) + 1
    end = block.find(b"\n", pos)
    return start, (end if end >= 0 else len(block))


def _windows(lowered: bytes, start: int, end: int, hits: Iterable[tuple[int, bytes]]) -> Iterator[tuple[int, int]]:
    """The byte ranges ``[lo, hi)`` of the line ``lowered[start:end]`` an entry's regexes see.

    ``hits`` are (offset in ``lowered``, needle): the first hit of each of the entry's needles on
    this line. A window spans :data:`WINDOW_BYTES` either side of a hit (cut at the line's ends);
    it covers the hits with half a window of context either side of them inside it. First the first
    hit of every needle gets a window (earliest first, unless one before covers it): all of them,
    as many as the entry has needles. Then later hits, earliest first, the next one past what is
    covered found with ``bytes.find`` (never walking every hit), get up to :data:`MAX_WINDOWS` more.
    The caller stops asking as soon as a window matches.
    """
    half = WINDOW_BYTES // 2
    seen: list[tuple[int, int]] = []

    def covered_to(pos: int, size: int) -> int:
        """The end of a window that covers this hit, or -1."""
        for lo, hi in seen:
            if lo <= max(start, pos - half) and min(end, pos + size + half) <= hi:
                return hi
        return -1

    def window(pos: int, size: int) -> tuple[int, int]:
        seen.append((max(start, pos - WINDOW_BYTES), min(end, pos + size + WINDOW_BYTES)))
        return seen[-1]

    first = sorted(hits)
    for pos, needle in first:
        if covered_to(pos, len(needle)) < 0:
            yield window(pos, len(needle))
    later = list(first)
    extra = 0
    while later and extra < MAX_WINDOWS:
        pos, needle = heapq.heappop(later)
        hi = covered_to(pos, len(needle))
        if hi < 0:
            yield window(pos, len(needle))
            extra += 1
            heapq.heappush(later, (pos, needle))  # covered now: the next turn moves past it
        elif hi < end:
            nxt = lowered.find(needle, max(pos + 1, hi - half - len(needle) + 1), end)
            if nxt >= 0:
                heapq.heappush(later, (nxt, needle))


def _entry_matches(
    entry: Entry, text: str, raw: bytes, lowered: bytes, start: int, hits: Iterable[tuple[int, bytes]]
) -> bool:
    """Whether ``entry`` matches the line ``text`` (``raw`` decoded; ``raw`` is ``lowered[start:...]``
    before lower-casing) in one of the windows around its needle hits."""
    if len(raw) <= WINDOW_BYTES:  # any window is the whole line
        return entry.matches(text)
    same = len(text) == len(raw)  # every character is one byte: byte offsets are character offsets
    for lo, hi in _windows(lowered, start, start + len(raw), hits):
        lo, hi = lo - start, hi - start
        if not same:  # a window edge inside a multi-byte character moves by at most one character
            lo = len(raw[:lo].decode("utf-8", errors="replace"))
            hi = len(raw[:hi].decode("utf-8", errors="replace"))
        if entry.matches(text, lo, hi):
            return True
    return False


def explain_stream(
    stream: IO[bytes],
    *,
    source: str,
    kb: KnowledgeBase | None = None,
    block_bytes: int = BLOCK_BYTES,
) -> Explanation:
    """Read ``stream`` to the end, block by block, and match every line against the knowledge base."""
    kb = kb or load_kb()
    result = Explanation(source=source)
    matches: dict[int, Match] = {}
    line_base = 0  # lines before the current block
    counter = [0]
    for block, cut in _blocks(stream, block_bytes, counter):
        if cut:
            result.truncated_lines += 1
        lowered = block.lower()
        candidates: dict[int, dict[bytes, int]] = {}  # line start offset -> needle -> its first hit
        for needle in kb.needle_index:
            pos = lowered.find(needle)
            while pos >= 0:
                start, end = _line_bounds(lowered, pos)
                candidates.setdefault(start, {})[needle] = pos
                pos = lowered.find(needle, end)  # the first hit per line and needle; _windows finds more
        if candidates:
            prev_offset, prev_line = 0, line_base
            for start in sorted(candidates):
                line_no = prev_line + block.count(b"\n", prev_offset, start) + 1
                prev_offset, prev_line = start, line_no - 1
                end = block.find(b"\n", start)
                raw = block[start : end if end >= 0 else len(block)]
                text = raw.decode("utf-8", errors="replace")
                if len(raw) <= WINDOW_BYTES:  # a short line is its own window (the common case)
                    ids = {i for needle in candidates[start] for i in kb.needle_index[needle]}
                    hits = [i for i in sorted(ids) if kb.entries[i].matches(text)]
                else:
                    by_entry: dict[int, list[tuple[int, bytes]]] = {}
                    for needle, pos in candidates[start].items():
                        for i in kb.needle_index[needle]:
                            by_entry.setdefault(i, []).append((pos, needle))
                    hits = [
                        i
                        for i in sorted(by_entry)
                        if _entry_matches(kb.entries[i], text, raw, lowered, start, by_entry[i])
                    ]
                specific = [i for i in hits if not kb.entries[i].generic]
                for i in specific or hits:
                    matches.setdefault(i, Match(kb.entries[i])).add(line_no, text)
        line_base += block.count(b"\n")
    result.lines = line_base
    result.bytes_read = counter[0]
    # Earliest symptom first: in a log, the first error is usually the cause of the later ones.
    result.matches = sorted(matches.values(), key=lambda m: (m.first_line, -m.count, m.entry.id))
    return result


def explain_text(text: str, *, kb: KnowledgeBase | None = None, source: str = "text") -> Explanation:
    """Explain a pasted message (one or many lines)."""
    return explain_stream(io.BytesIO(text.encode("utf-8", errors="replace")), source=source, kb=kb)


def iter_examples(kb: KnowledgeBase) -> Iterable[tuple[str, str]]:
    """(entry id, example string) for every example in the knowledge base (used by the tests)."""
    for e in kb.entries:
        for ex in e.examples:
            yield e.id, ex


def cause_lines(causes: Sequence[str]) -> list[str]:
    """``"<id>: <title> (<article section>)"`` for each cause id, for terminal output."""
    out = []
    for c in causes:
        cause = CAUSES[c]
        section = cause.article_section or "beyond the article"
        out.append(f"{c}: {cause.title} ({section})")
    return out
