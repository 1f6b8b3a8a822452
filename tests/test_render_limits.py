"""``wsdoctor render`` bounds its input before parsing it: size (50 MB), nesting depth (64) and the
number of JSON values (2,000,000). Anything beyond is exit 2 with one line naming the bound -- never
an internal error, never gigabytes of memory -- and reports within the bounds still render.

Memory is measured in a child process (its own peak RSS); every child has a timeout."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsdoctor.cli import main
from wsdoctor.commands.render import MAX_REPORT_BYTES, MAX_REPORT_DEPTH, MAX_REPORT_VALUES, json_shape

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "reports"
HEALTHY = (FIXTURES / "healthy.json").read_text(encoding="utf-8")

# Runs `wsdoctor ARGS` and prints the child's own peak RSS in kB as the last stderr line: VmHWM of
# its address space (ru_maxrss would not do: Linux carries it across exec from the forking pytest).
_MEASURED = (
    "import sys\n"
    "from wsdoctor.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
    "print(hwm, file=sys.stderr)\n"
    "sys.exit(rc)\n"
)


def measured(args: list[str], stdin: Any = None, timeout: float = 60) -> tuple[int, str, float, float]:
    """(exit code, stderr without the RSS line, peak RSS in MB, seconds) of ``wsdoctor ARGS``."""
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURED, *args],
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    elapsed = time.monotonic() - t0
    *err, rss = proc.stderr.splitlines()
    return proc.returncode, "\n".join(err), int(rss) / 1024, elapsed


def with_evidence(value: Any) -> str:
    """The healthy fixture with ``value`` as the first result's evidence."""
    data = json.loads(HEALTHY)
    data["results"][0]["evidence"] = {"nested": value}
    return json.dumps(data)


def nested(levels: int, kind: str) -> Any:
    value: Any = "leaf"
    for i in range(levels):
        value = [value] if kind == "list" or (kind == "mixed" and i % 2) else {"k": value}
    return value


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.startswith("wsdoctor: error:") and err.count("\n") == 1, err
    assert "Traceback" not in err and "internal error" not in err
    return err


# -- depth --------------------------------------------------------------------------------------

# The evidence value sits at depth 4: the report object, "results", the result, "evidence".
EVIDENCE_DEPTH = 4


@pytest.mark.parametrize("kind", ["list", "dict", "mixed"])
def test_nesting_up_to_the_bound_renders(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "r.json"
    path.write_text(with_evidence(nested(MAX_REPORT_DEPTH - EVIDENCE_DEPTH, kind)))
    assert json_shape(path.read_bytes())[0] == MAX_REPORT_DEPTH
    assert (
        main(
            [
                "render",
                str(path),
                "--html",
                str(tmp_path / "r.html"),
                "--junit",
                str(tmp_path / "r.xml"),
                "--markdown",
                str(tmp_path / "r.md"),
                "--json",
                str(tmp_path / "again.json"),
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "again.json").read_text())["results"][0]["evidence"]["nested"] is not None


@pytest.mark.parametrize("kind", ["list", "dict", "mixed"])
@pytest.mark.parametrize("levels", [MAX_REPORT_DEPTH - EVIDENCE_DEPTH + 1, 500, 5_000])
def test_nesting_beyond_the_bound_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, levels: int
) -> None:
    path = tmp_path / "r.json"
    text = with_evidence("SENTINEL")
    opener, closer = {"list": ("[", "]"), "dict": ('{"k":', "}"), "mixed": ('[{"k":', "}]")}[kind]
    reps = levels if kind != "mixed" else (levels + 1) // 2
    path.write_text(text.replace('"SENTINEL"', opener * reps + "1" + closer * reps))
    html = tmp_path / "r.html"
    assert main(["render", str(path), "--html", str(html)]) == 2
    err = one_line_error(capsys)
    assert f"limit of {MAX_REPORT_DEPTH}" in err and "levels deep" in err
    assert not html.exists()


def test_hundred_thousand_levels_and_unbalanced_openers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for content in ("[" * 100_000 + "]" * 100_000, "[" * 100_000, '{"a":' * 100_000, "[{" * 50_000 + "1"):
        path = tmp_path / "r.json"
        path.write_text(content)
        assert main(["render", str(path)]) == 2
        assert f"limit of {MAX_REPORT_DEPTH}" in one_line_error(capsys)


def test_brackets_inside_strings_do_not_count(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(with_evidence({"text": "[" * 100_000 + '\\"{' * 1000, "k\\\\": "]" * 10}))
    text = path.read_text()
    assert json_shape(text, max_depth=0)[0] == _depth(json.loads(text)) < 10
    assert main(["render", str(path)]) == 0


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(alphabet='[]{}",\\:ab \n\u00e9'),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(alphabet='[]{}"\\,a', max_size=4), inner, max_size=4)
    ),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_shape_matches_a_parse(value: Any) -> None:
    """The scan's depth is the parsed value's depth; its value count bounds the real one."""
    text = json.dumps(value, ensure_ascii=False)
    depth, values = json_shape(text, max_depth=0)  # force the full scan
    assert depth == _depth(value)
    assert values >= 1
    fast = json_shape(text)[0]  # few containers: their count stands in for the depth (an upper bound)
    assert fast >= depth and (fast > MAX_REPORT_DEPTH) == (depth > MAX_REPORT_DEPTH)


# -- size ---------------------------------------------------------------------------------------


def test_a_200_mb_report_is_refused_without_being_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    with path.open("wb") as fh:  # sparse: no disk used
        fh.truncate(200 * 1024 * 1024)
    code, err, rss_mb, elapsed = measured(["render", str(path), "--html", str(tmp_path / "r.html")])
    assert code == 2, err
    assert err.count("\n") == 0 and "200 MB" in err and "limit of 50 MB" in err
    assert rss_mb < 120, rss_mb
    assert elapsed < 15, elapsed
    assert not (tmp_path / "r.html").exists()


def test_the_size_bound_is_exact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A valid report padded to exactly MAX_REPORT_BYTES renders; one byte more is refused."""
    path = tmp_path / "r.json"
    body = HEALTHY.encode()
    path.write_bytes(body + b" " * (MAX_REPORT_BYTES - len(body)))
    assert path.stat().st_size == MAX_REPORT_BYTES
    assert main(["render", str(path)]) == 0
    capsys.readouterr()
    with path.open("ab") as fh:
        fh.write(b" ")
    assert main(["render", str(path)]) == 2
    assert "limit of 50 MB" in one_line_error(capsys)


def test_a_pipe_is_read_no_further_than_the_bound(tmp_path: Path) -> None:
    """/dev/stdin has no size to check first: it is read up to the bound, then refused."""
    feed = "import sys\nb = b' ' * (1 << 20)\nfor _ in range(300):\n    sys.stdout.buffer.write(b)"
    feeder = subprocess.Popen(
        [sys.executable, "-c", feed],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        code, err, rss_mb, _ = measured(["render", "/dev/stdin"], stdin=feeder.stdout)
    finally:
        feeder.kill()
        feeder.wait(10)
        assert feeder.stdout is not None
        feeder.stdout.close()
    assert code == 2 and "over the limit of 50 MB" in err and err.count("\n") == 0, err
    assert rss_mb < 200, rss_mb  # the bound plus one byte, not 300 MB


# -- number of values ---------------------------------------------------------------------------


@pytest.mark.parametrize("item", ["[]", "{}", "0", "[[],{}]"])
def test_a_dense_report_is_refused_in_bounded_time_and_memory(tmp_path: Path, item: str) -> None:
    """45 MB of tiny values would be ~1-2 GB of Python objects; refused before parsing."""
    path = tmp_path / "dense.json"
    count = 45 * 1024 * 1024 // (len(item) + 1)
    path.write_text(with_evidence("SENTINEL").replace('"SENTINEL"', "[" + ",".join([item] * count) + "]"))
    code, err, rss_mb, elapsed = measured(["render", str(path)])
    assert code == 2, err
    assert f"limit of {MAX_REPORT_VALUES:,}" in err and err.count("\n") == 0
    assert rss_mb < 400, rss_mb
    assert elapsed < 30, elapsed


def test_many_values_under_the_bound_render(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(with_evidence(list(range(100_000))))
    assert 100_000 < json_shape(path.read_text())[1] < MAX_REPORT_VALUES
    assert main(["render", str(path), "--json", str(tmp_path / "again.json")]) == 0


def test_every_existing_fixture_is_far_inside_the_bounds() -> None:
    for path in FIXTURES.glob("*.json"):
        depth, values = json_shape(path.read_bytes(), max_depth=0)
        assert depth <= 16 and values * 10 < MAX_REPORT_VALUES and path.stat().st_size * 10 < MAX_REPORT_BYTES


@pytest.mark.parametrize("content", [b"\xff\xfe{}", b'{"a": "\xc3"}', b""])
def test_undecodable_or_empty_is_still_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    path = tmp_path / "r.json"
    path.write_bytes(content)
    assert main(["render", str(path)]) == 2
    one_line_error(capsys)
