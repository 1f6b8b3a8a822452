"""``wsdoctor explain``: every knowledge-base example is recognised, unrelated text is not, and the
CLI's contract (exit codes, --file, stdin, --json) holds. All local, no network."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from wsdoctor.causes import CAUSES, FINDING_CODES
from wsdoctor.cli import main
from wsdoctor.explain import (
    KNOWN_CHECK_IDS,
    MAX_LINE_BYTES,
    explain_stream,
    explain_text,
    iter_examples,
    load_kb,
)

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / "fixtures" / "logs"
KB = load_kb()
EXAMPLES = sorted(set(iter_examples(KB)))

#: The JSON answer's contract (a small schema of our own, checked on real output).
EXPLAIN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["schema", "wsdoctor_version", "input", "matched", "matches"],
    "properties": {
        "schema": {"const": "wsdoctor.explain/1"},
        "wsdoctor_version": {"type": "string"},
        "matched": {"type": "boolean"},
        "input": {
            "type": "object",
            "required": ["source", "lines", "bytes", "truncated_lines"],
            "properties": {
                "lines": {"type": "integer", "minimum": 0},
                "bytes": {"type": "integer", "minimum": 0},
                "truncated_lines": {"type": "integer", "minimum": 0},
            },
        },
        "matches": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [
                    "id",
                    "title",
                    "count",
                    "first_line",
                    "line_numbers",
                    "examples",
                    "causes",
                    "fixes",
                    "confirm_with",
                    "source",
                ],
                "properties": {
                    "count": {"type": "integer", "minimum": 1},
                    "first_line": {"type": "integer", "minimum": 1},
                    "line_numbers": {"type": "array", "items": {"type": "integer"}, "maxItems": 20},
                    "examples": {
                        "type": "array",
                        "maxItems": 3,
                        "items": {"type": "object", "required": ["line", "text"]},
                    },
                    "causes": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": "object", "required": ["id", "title", "article_section"]},
                    },
                    "source": {"type": "string", "pattern": "^https://"},
                },
            },
        },
    },
}


def ids(text: str) -> list[str]:
    return [m.entry.id for m in explain_text(text, kb=KB).matches]


# -- the knowledge base -----------------------------------------------------------------------


def test_knowledge_base_covers_at_least_30_distinct_real_strings() -> None:
    assert len({ex for _, ex in EXAMPLES}) >= 30
    assert len(KB.entries) >= 30


@pytest.mark.parametrize(("entry_id", "example"), EXAMPLES, ids=[f"{e}:{x[:40]}" for e, x in EXAMPLES])
def test_every_example_is_recognised_as_its_entry(entry_id: str, example: str) -> None:
    found = ids(example)
    assert entry_id in found, f"{example!r} -> {found}"
    if not KB.by_id(entry_id).generic:
        # a specific entry is never drowned by a generic one on the same line
        assert not any(KB.by_id(i).generic for i in found), found


def test_every_entry_is_well_formed() -> None:
    for e in KB.entries:
        assert e.source.startswith("https://"), e.id
        assert e.causes and all(c in CAUSES for c in e.causes), e.id
        assert all(c in KNOWN_CHECK_IDS for c in e.confirm_with), e.id
        assert all(code in FINDING_CODES for code in e.finding_codes), (e.id, e.finding_codes)
        assert e.fixes and e.meaning and e.clients, e.id
        for ex in e.examples:  # the needle prefilter must let every example through
            assert any(n.decode() in ex.lower() for n in e.needles), (e.id, ex)


def test_the_brief_s_error_strings_are_all_known() -> None:
    expected = {
        "no close frame received or sent": "websockets-no-close-frame",
        "sent 1011 (internal error) keepalive ping timeout; no close frame received": "websockets-keepalive-timeout",
        "websocket: close 1006 (abnormal closure): unexpected EOF": "gorilla-1006-eof",
        "The remote party closed the WebSocket connection without completing the close handshake.": (
            "dotnet-closed-prematurely"
        ),
        "Deepgram closed the stream: 1011 NET-0001": "deepgram-net-0001",
        "closed 1011 NET-0000": "deepgram-net-0000",
        "closed 1008 DATA-0000": "deepgram-data-0000",
        "server rejected WebSocket connection: HTTP 401": "http-401",
        "server rejected WebSocket connection: HTTP 429": "http-429",
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer certificate": (
            "tls-local-issuer"
        ),
        "certificate verify failed: certificate has expired": "tls-expired",
        "HTTP/1.1 407 Proxy Authentication Required": "proxy-407",
        "OSError: Tunnel connection failed: 403 Forbidden": "proxy-tunnel-denied",
        "Error: read ECONNRESET": "net-connection-reset",
        "Error: connect ETIMEDOUT 10.0.0.1:443": "net-timeout",
        "Error: getaddrinfo ENOTFOUND api.deepgram.com": "dns-not-found",
        "ws closed: code=1006 reason=": "close-1006-generic",
        "received WSMsgType.CLOSED": "aiohttp-closed-error",
    }
    for text, entry in expected.items():
        assert entry in ids(text), (text, ids(text))


@pytest.mark.parametrize(
    "text",
    [
        "hello world",
        '127.0.0.1 - - [10/Oct/2026:13:55:36 +0000] "GET /index.html HTTP/1.1" 200 2326 "-" "curl/8.5.0"',
        "HTTP/1.1 200 OK",
        "Traceback (most recent call last):\n"
        '  File "app.py", line 3, in <module>\n'
        "    print(1 / 0)\n"
        "ZeroDivisionError: division by zero",
        "INFO worker: processed 1006 jobs in 12.5 s",
        '{"type": "Results", "is_final": true, "channel": {"alternatives": [{"transcript": "close the door"}]}}',
        "websockets.exceptions.ConnectionClosedOK is imported but unused",  # code talk, not a failure ...
        "Connection closed normally with code 1000",
        "WARNING billing: retrying invoice 429 (attempt 2)",
        "timed out waiting for the build cache",
    ],
)
def test_unrelated_text_does_not_match(text: str) -> None:
    found = ids(text)
    # ... except the one deliberate exception: the exception's name is the signal
    if "ConnectionClosedOK" in text:
        assert found == ["websockets-closed-ok-then-send"]
        return
    assert found == [], found


# -- the streaming engine ---------------------------------------------------------------------


def test_line_numbers_are_exact_across_block_boundaries() -> None:
    lines = [f"INFO line {i} nothing to see here" for i in range(1, 5001)]
    lines[1233] = "ERROR websockets.exceptions.ConnectionClosedError: no close frame received or sent"
    lines[4998] = "Error: getaddrinfo ENOTFOUND api.deepgram.com"
    data = ("\n".join(lines) + "\n").encode()
    for block in (64, 1000, 4096, 1 << 20):  # tiny blocks split lines and needles everywhere
        result = explain_stream(io.BytesIO(data), source="t", kb=KB, block_bytes=block)
        got = {m.entry.id: m.line_numbers for m in result.matches}
        assert got == {"websockets-no-close-frame": [1234], "dns-not-found": [4999]}, (block, got)
        assert result.lines == 5000
        assert result.bytes_read == len(data)


def test_overlong_lines_are_cut_and_never_buffered() -> None:
    huge = b"x" * (3 * MAX_LINE_BYTES) + b" no close frame received or sent"  # the match is past the cut
    data = b"first\n" + huge + b"\nError: read ECONNRESET\nlast without newline"
    result = explain_stream(io.BytesIO(data), source="t", kb=KB, block_bytes=8192)
    assert result.truncated_lines == 1
    assert result.lines == 4
    assert [(m.entry.id, m.line_numbers) for m in result.matches] == [("net-connection-reset", [3])]


def test_counts_examples_and_order() -> None:
    text = "\n".join(
        ["Error: read ECONNRESET"] * 7 + ["received 1011 (internal error) NET-0001"] + ["Error: read ECONNRESET"] * 30
    )
    result = explain_text(text, kb=KB)
    first, second = result.matches
    assert (first.entry.id, first.count, first.first_line) == ("net-connection-reset", 37, 1)
    assert len(first.line_numbers) == 20
    assert len(first.examples) == 3
    assert (second.entry.id, second.count, second.first_line) == ("deepgram-net-0001", 1, 8)


def test_hostile_bytes_are_sanitised() -> None:
    data = b"\xff\xfe\x1b]0;pwned\x07 Error: read ECONNRESET \xe2\x80\xae\r\n"
    result = explain_stream(io.BytesIO(data), source="t\x1b[31m", kb=KB)
    (m,) = result.matches
    (_, text) = m.examples[0]
    assert "\x1b" not in text
    assert "\u202e" not in text
    assert "\\x1b" in text
    assert "\x1b" not in json.dumps(result.to_dict("x"), ensure_ascii=False)


def test_fixture_logs() -> None:
    expected = {
        "python-sdk-idle.log": [("deepgram-net-0001", 6)],
        "node-proxy.log": [("net-timeout", 3), ("close-1006-generic", 11), ("proxy-407", 13)],
        "go-dictation.log": [("gorilla-concurrent-write", 3)],
        "dotnet-kiosk.log": [("dotnet-closed-prematurely", 4)],
        "unrelated.log": [],
    }
    for name, want in expected.items():
        with (LOGS / name).open("rb") as fh:
            result = explain_stream(fh, source=name, kb=KB)
        assert [(m.entry.id, m.first_line) for m in result.matches] == want, name


# -- the command line -------------------------------------------------------------------------


def test_cli_text_match_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "websocket: close 1006 (abnormal closure): unexpected EOF"]) == 0
    out = capsys.readouterr().out
    assert "gorilla" in out.lower()
    assert "§2 Network Instability" in out  # causes carry the article section
    assert "confirm with: wsdoctor run --checks close.handshake" in out
    assert "source: https://" in out


def test_cli_no_match_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "hello world"]) == 1
    assert "no match" in capsys.readouterr().out


def test_cli_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "x", "--file", str(LOGS / "unrelated.log")]) == 2
    assert main(["explain", "--file", str(tmp_path / "missing.log")]) == 2
    assert main(["explain", "--file", str(tmp_path)]) == 2
    assert main(["explain", "   "]) == 2
    assert main(["explain", "x", "--json", str(tmp_path / "no" / "such" / "dir.json")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert all(line.startswith("wsdoctor: error: ") for line in err.splitlines()), err


def test_cli_file_and_json_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "answer.json"
    assert main(["explain", "--file", str(LOGS / "node-proxy.log"), "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    jsonschema.Draft202012Validator(EXPLAIN_SCHEMA).validate(data)
    assert [m["id"] for m in data["matches"]] == ["net-timeout", "close-1006-generic", "proxy-407"]
    assert data["input"]["lines"] == 13
    proxy = data["matches"][2]
    assert proxy["causes"][0] == {
        "id": "proxy-firewall",
        "title": CAUSES["proxy-firewall"].title,
        "article_section": "§3 Proxy or Firewall Restrictions",
    }
    assert proxy["confirm_command"].startswith("wsdoctor run --checks ")
    assert "proxy-407" in capsys.readouterr().out


def test_cli_json_to_stdout_round_trips(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "received 1011 (internal error) NET-0001", "--json", "-"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)  # stdout holds only the JSON; the text went to stderr
    jsonschema.Draft202012Validator(EXPLAIN_SCHEMA).validate(data)
    assert json.loads(json.dumps(data)) == data
    assert data["matched"] is True
    assert data["matches"][0]["id"] == "deepgram-net-0001"
    assert "NET-0001" in captured.err


def test_cli_no_match_json_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "hello", "--json", "-"]) == 1
    data = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator(EXPLAIN_SCHEMA).validate(data)
    assert data["matched"] is False
    assert data["matches"] == []


def test_cli_reads_stdin_when_piped() -> None:
    log = (LOGS / "python-sdk-idle.log").read_bytes()
    out = subprocess.run(
        [sys.executable, "-m", "wsdoctor", "explain", "--json", "-"],
        input=log,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["input"]["source"] == "stdin"
    assert [m["id"] for m in data["matches"]] == ["deepgram-net-0001"]
    unrelated = subprocess.run(
        [sys.executable, "-m", "wsdoctor", "explain", "--file", "-"],
        input=(LOGS / "unrelated.log").read_bytes(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert unrelated.returncode == 1
    assert b"no match" in unrelated.stdout


def test_cli_stdin_tty_without_input_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Tty())
    assert main(["explain"]) == 2


def test_terminal_output_has_no_raw_control_characters(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    log = tmp_path / "hostile.log"
    log.write_bytes(b"\x1b[2J\x1b]0;title\x07 Error: read ECONNRESET\n")
    assert main(["explain", "--file", str(log)]) == 0
    out = capsys.readouterr().out
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f]", out)
