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

Lines are cut at :data:`MAX_LINE_BYTES`; the rest of an over-long line is skipped, never buffered,
so memory stays bounded by one block plus one line whatever the input. A line that matches a
*specific* entry does not also count for a ``generic`` one (a gorilla "close 1006 ... unexpected
EOF" is not also reported as a bare "1006"). Per entry we keep the count, the first few line
numbers and a few example lines (sanitised, bounded). Nothing here prints or touches the network:
the CLI in :mod:`wsdoctor.commands.explain` renders the :class:`Explanation`.

Stdlib-only at import time, like the rest of the CLI path.
"""

from __future__ import annotations

import io
import json
import re
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
    "SCHEMA",
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

    def matches(self, line: str) -> bool:
        return any(p.search(line) for p in self.patterns)

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
        candidates: dict[int, set[int]] = {}  # line start offset -> entry indexes
        for needle, entry_ids in kb.needle_index.items():
            pos = lowered.find(needle)
            while pos >= 0:
                start, end = _line_bounds(lowered, pos)
                candidates.setdefault(start, set()).update(entry_ids)
                pos = lowered.find(needle, end)  # one hit per line and needle is enough
        if candidates:
            prev_offset, prev_line = 0, line_base
            for start in sorted(candidates):
                line_no = prev_line + block.count(b"\n", prev_offset, start) + 1
                prev_offset, prev_line = start, line_no - 1
                end = block.find(b"\n", start)
                text = block[start : end if end >= 0 else len(block)].decode("utf-8", errors="replace")
                hits = [i for i in sorted(candidates[start]) if kb.entries[i].matches(text)]
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
