"""``wsdoctor explain``: which causes a pasted error message or a whole log points to.

``wsdoctor explain "TEXT"``, ``wsdoctor explain --file app.log`` (``--file -`` or a pipe: stdin).
The input is streamed through :mod:`wsdoctor.explain` (bounded memory whatever its size); the
answer lists every known error found, with the causes of the article, the fixes and the
``wsdoctor run --checks ...`` command that would confirm it. Exit codes: 0 something matched,
1 "no match" (we do not guess on text we do not recognise), 2 usage error (no input, both TEXT and
--file, unreadable file: one line, no traceback).

Imports only the stdlib and stdlib-only wsdoctor modules, at the top and in the handler alike.
"""

from __future__ import annotations

import argparse
import os
import sys

from wsdoctor.commands.common import TYPE_CHECKING, ExitCode
from wsdoctor.errors import UsageError

if TYPE_CHECKING:
    from typing import IO, TextIO

    from wsdoctor.explain import Explanation, Match

__all__ = ["DESCRIPTION", "add_arguments", "handle", "render_text"]

DESCRIPTION = (
    "Recognise WebSocket error messages and close codes from common clients (python websockets, "
    "aiohttp, Deepgram's SDKs, Node ws, Go gorilla, .NET, browsers) in TEXT, a log file or stdin, "
    "and say what they mean. Exit 0 if something matched, 1 for 'no match'."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("text", nargs="?", metavar="TEXT", help="the error message (quote it)")
    p.add_argument("--file", metavar="LOG", help="read a log file instead ('-' for stdin); streamed, any size")
    p.add_argument("--json", metavar="PATH|-", help="also write the answer as JSON to PATH ('-' for stdout)")


def handle(args: argparse.Namespace) -> int:
    from wsdoctor import __version__
    from wsdoctor.explain import explain_stream, explain_text

    if args.text is not None and args.file is not None:
        raise UsageError("give either TEXT or --file LOG, not both")
    if args.json and args.json != "-":
        from wsdoctor.fileio import check_writable

        check_writable(args.json)
    if args.text is not None:
        if not args.text.strip():
            raise UsageError("TEXT is empty")
        result = explain_text(args.text)
    elif args.file is not None and args.file != "-":
        result = _explain_file(args.file)
    else:
        stdin = sys.stdin
        if args.file is None and (stdin is None or stdin.isatty()):
            raise UsageError("nothing to explain: give TEXT, --file LOG, or pipe a log on stdin")
        if stdin is None:
            raise UsageError("no stdin to read")
        result = explain_stream(stdin.buffer, source="stdin")

    json_to_stdout = args.json == "-"
    human: TextIO = sys.stderr if json_to_stdout else sys.stdout
    human.write(render_text(result))
    human.flush()
    if args.json:
        import json

        text = json.dumps(result.to_dict(__version__), indent=2, ensure_ascii=False) + "\n"
        if json_to_stdout:
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            from wsdoctor.fileio import atomic_write_text

            atomic_write_text(args.json, text)
    return ExitCode.OK if result.matched else ExitCode.FAILURES


def _explain_file(path: str) -> Explanation:
    from wsdoctor.explain import explain_stream

    if os.path.isdir(path):
        raise UsageError(f"cannot read {path!r}: it is a directory")
    try:
        fh: IO[bytes] = open(path, "rb")  # noqa: SIM115 - closed below, after streaming
    except OSError as exc:
        raise UsageError(f"cannot read {path!r}: {exc.strerror or exc}") from None
    try:
        return explain_stream(fh, source=path)
    except OSError as exc:  # e.g. EIO halfway through, or a FIFO that went away
        raise UsageError(f"cannot read {path!r}: {exc.strerror or exc}") from None
    finally:
        fh.close()


def _wrap(text: str, indent: str, width: int = 100) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width=width, initial_indent=indent, subsequent_indent=indent) or [indent]


def render_text(result: Explanation) -> str:
    """The terminal answer. Every line from the input passes through :func:`printable`."""
    from wsdoctor.sanitize import printable

    src = printable(result.source, 200)
    out = [f"wsdoctor explain · {src} · {result.lines:,} line{'s' if result.lines != 1 else ''}"]
    if result.truncated_lines:
        out[0] += f" · {result.truncated_lines} over-long line(s) cut at 64 KiB"
    if not result.matched:
        out.append("")
        out.append("no match: none of the known WebSocket / Deepgram error messages appears in this input.")
        out.append("  (wsdoctor does not guess. To diagnose the connection itself, run: wsdoctor run)")
        return "\n".join(out) + "\n"
    n = len(result.matches)
    out[0] += f" · {n} known error{'s' if n != 1 else ''} found"
    for i, m in enumerate(result.matches, 1):
        out.append("")
        out.extend(_render_match(i, m))
    return "\n".join(out) + "\n"


def _render_match(i: int, m: Match) -> list[str]:
    from wsdoctor.causes import CAUSES
    from wsdoctor.sanitize import printable

    e = m.entry
    where = f"line {m.first_line}" if m.count == 1 else f"{m.count} lines, first at line {m.first_line}"
    out = [f"[{i}] {e.title}  ({where})", f"    id: {e.id} · clients: {', '.join(e.clients)}"]
    for line_no, text in m.examples:
        out.append(f"    line {line_no}: {printable(text, 160)}")
    out.extend(_wrap(f"meaning: {e.meaning}", "    "))
    out.append("    likely causes:")
    for c in e.causes:
        cause = CAUSES[c]
        section = cause.article_section or "beyond the article"
        out.append(f"      - {c}: {cause.title} ({section})")
    out.append("    fixes:")
    fixes = list(e.fixes)
    for c in e.causes[:1]:  # the main cause's generic advice, after the error-specific fixes
        fixes.extend(f for f in CAUSES[c].fixes[:2] if f not in fixes)
    for k, fix in enumerate(fixes, 1):
        lines = _wrap(f"{k}. {fix}", "      ")
        out.append(lines[0])
        out.extend("   " + ln for ln in lines[1:])
    if e.confirm_command:
        out.append(f"    confirm with: {e.confirm_command}")
    out.append(f"    source: {e.source}")
    return out
