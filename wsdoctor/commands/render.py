"""``wsdoctor render``: re-render a saved JSON report without any network access.

Any installed reporter can re-render it (``--report NAME=PATH``, or a shorthand such as ``--html``;
see :mod:`wsdoctor.commands.output`), each loaded by name through the ``wsdoctor.reporters`` entry
points.

The file is untrusted input (hand-edited, truncated, or not ours at all), so three bounds are
checked before anything parses it, each a one-line error and exit 2 that names the bound:

- :data:`MAX_REPORT_BYTES` -- the file's size, judged before it is read (a pipe is read no further
  than the bound). Reports are capped at 5 MB when written; 10 times that leaves room for any real
  one and for hand edits, and bounds the memory a render can take.
- :data:`MAX_REPORT_VALUES` -- how many JSON values the text holds (counted as containers plus
  commas). A real report has one per 20-35 bytes: ~250,000 at 5 MB, ~2.5 million in a 50 MB file
  of that shape, so for real reports the size is the bound that binds. This one stops dense input:
  50 MB of ``[],[],...`` is 17 million values and 1.3 GB of memory just to parse.
- :data:`MAX_REPORT_DEPTH` -- nesting depth. A real report nests under 10 levels; the reporters and
  the redactor walk the data recursively, so ~500 levels would otherwise be an internal error.

The scan (:func:`json_shape`) is iterative and linear in the (already bounded) size: strings are
cut out, the brackets and commas that remain are counted, and the depth is the highest running sum
of ``+1`` per ``[``/``{`` and ``-1`` per ``]``/``}`` -- no recursion, no parse, no Python object
per value.
"""

from __future__ import annotations

import argparse
import re
from itertools import accumulate

from wsdoctor.commands.common import TYPE_CHECKING, ExitCode
from wsdoctor.commands.output import add_output_arguments
from wsdoctor.errors import UsageError

if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "MAX_REPORT_BYTES",
    "MAX_REPORT_DEPTH",
    "MAX_REPORT_VALUES",
    "add_arguments",
    "handle",
    "json_shape",
    "load_report_json",
]

#: Largest report.json ``render`` reads (written reports are capped at 5 MB).
MAX_REPORT_BYTES = 50 * 1024 * 1024
#: Deepest nesting of arrays/objects accepted (real reports: under 10).
MAX_REPORT_DEPTH = 64
#: Most JSON values accepted (real reports: one per 20-35 bytes, ~250,000 at 5 MB).
MAX_REPORT_VALUES = 4_000_000

#: Bytes that matter to the structure of JSON text: quotes, brackets, separators.
_STRUCTURAL = b'"[]{},'
_UNSTRUCTURAL = bytes(c for c in range(256) if c not in _STRUCTURAL)
_STRING = re.compile(rb'"[^"]*+"')  # once escapes are gone, a string is a quote, non-quotes, a quote
_CHUNK = 1 << 20
_STEP = [0] * 256
for _c in b"[{":
    _STEP[_c] = 1
for _c in b"]}":
    _STEP[_c] = -1
del _c


def json_shape(
    data: bytes | str, max_depth: int = MAX_REPORT_DEPTH, max_values: int = MAX_REPORT_VALUES
) -> tuple[int, int]:
    """(nesting depth, number of values) of the JSON text ``data``, without parsing it.

    Linear time, no recursion, no Python object per value: escaped backslashes and quotes are
    dropped (``bytes.replace``), then every byte but quotes, brackets and commas
    (``bytes.translate``); strings are cut out a chunk at a time (each chunk ends outside a string,
    so the regular expression's list of pieces stays small); the brackets and commas left are
    outside strings. (UTF-8 has no byte below 0x80 inside a multi-byte character, so bytes show
    exactly the JSON's own punctuation.)

    Values: containers plus commas plus one, an upper bound for valid JSON. Depth: the highest
    running sum of +1 per opener and -1 per closer, exact for valid JSON -- computed only when
    there are more than ``max_depth`` containers and at most ``max_values`` values; otherwise the
    number of containers stands in for it (an upper bound, and over ``max_depth`` only if it could
    be). So a caller checks the values first, then the depth. Invalid JSON gives some numbers;
    the parser that runs afterwards rejects it."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    reduced = data.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _UNSTRUCTURAL)
    pieces = []
    pos, size = 0, len(reduced)
    while pos < size:
        end = min(size, pos + _CHUNK)
        if reduced.count(b'"', pos, end) % 2:  # inside a string: end the chunk after it
            close = reduced.find(b'"', end)
            end = size if close < 0 else close + 1
        pieces.append(_STRING.sub(b"", reduced[pos:end]))
        pos = end
    del reduced
    skeleton = b"".join(pieces).translate(None, b'"')  # an unterminated string's quote, if any
    del pieces
    opens = skeleton.count(b"[") + skeleton.count(b"{")
    values = opens + skeleton.count(b",") + 1
    if opens <= max_depth or values > max_values:
        return opens, values
    brackets = skeleton.translate(None, b",")
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0), values


def add_arguments(render: argparse.ArgumentParser) -> None:
    render.add_argument("report", help="a JSON report written by 'wsdoctor run --json'")
    add_output_arguments(render)


def load_report_json(path: str) -> Any:
    """The parsed JSON of the report at ``path``, within the three bounds; else UsageError."""
    import json

    from wsdoctor.fileio import read_capped

    raw = read_capped(path, MAX_REPORT_BYTES, "wsdoctor report")
    depth, values = json_shape(raw)
    if values > MAX_REPORT_VALUES:
        raise UsageError(
            f"{path!r} holds about {values:,} JSON values, "
            f"over the limit of {MAX_REPORT_VALUES:,} for a wsdoctor report"
        )
    if depth > MAX_REPORT_DEPTH:
        raise UsageError(
            f"{path!r} nests {depth} levels deep, over the limit of {MAX_REPORT_DEPTH} for a wsdoctor report"
        )
    try:
        text = raw.decode("utf-8")
        del raw
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise UsageError(f"{path!r} is not valid JSON: {exc}") from None


def handle(args: argparse.Namespace) -> int:
    from wsdoctor.commands.output import emit, prepare_outputs
    from wsdoctor.model import Report

    outputs = prepare_outputs(args)
    data = load_report_json(args.report)
    report = Report.from_dict(data)
    emit(report, args, outputs)
    return ExitCode.OK  # rendering worked; the verdict is in the output, not the exit code
