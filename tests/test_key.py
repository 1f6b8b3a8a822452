"""The key variable as a finding: missing, holding more than the key, a temporary token -- named
without ever printing the key; the run goes on with the cleaned key.

Unit tests on the pure pieces (``deepgram.key_shape``, ``probes.key.read_key``, ``checks.ws.analyze_key``)
and real runs against the mock with keys shaped the way apps get them wrong: a trailing newline
(``$(cat key.txt)``), quotes copied from a ``.env`` file, a ``Token `` prefix inside the variable.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from checks.ws import analyze, analyze_key
from tests.mockproc import mock_process
from tests.observations import upgrade_obs
from wsdoctor import deepgram
from wsdoctor.model import Outcome, Status
from wsdoctor.probes.key import KeyObservation, read_key

ROOT = Path(__file__).resolve().parent.parent
KEY = "4f1c0ffee-wsdoctor-key-test"
NOW = 1_800_000_000.0
UPGRADE_401 = upgrade_obs(Outcome.HTTP_RESPONSE, status=401, headers=[("dg-request-id", "r-1")])


def jwt(**claims: Any) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("raw", "problems", "cleaned"),
    [
        (KEY, (), KEY),
        (KEY + "\n", ("newline",), KEY),
        (f"  {KEY}\t", ("whitespace",), KEY),
        (f'"{KEY}"', ("quotes",), KEY),
        (f"'{KEY}'\n", ("newline", "quotes"), KEY),
        (f"Token {KEY}", ("scheme-prefix",), KEY),
        (f"bearer {KEY}", ("scheme-prefix",), KEY),
        (f"{KEY[:5]} {KEY[5:]}", ("inner-whitespace",), f"{KEY[:5]} {KEY[5:]}"),
    ],
)
def test_key_shape_names_each_problem(raw: str, problems: tuple[str, ...], cleaned: str) -> None:
    assert deepgram.key_shape(raw).problems == problems
    assert deepgram.clean_key(raw) == cleaned
    obs, used = read_key("DEEPGRAM_API_KEY", raw, now=NOW)
    assert used == cleaned and obs.state == "set"
    assert KEY not in json.dumps(obs.to_dict()) and KEY[:8] not in json.dumps(obs.to_dict())  # no key material


def test_unset_and_empty_are_told_apart() -> None:
    assert read_key("K", None)[0].state == "unset"
    assert read_key("K", "  \n")[0].state == "empty"
    assert read_key("K", " \n")[1] is None


def test_no_key_is_a_warning_that_names_the_variable_and_what_was_not_tested() -> None:
    obs = KeyObservation("MY_DG_KEY", "unset", read_at=NOW)
    (f,) = analyze_key(obs, UPGRADE_401, ("stream.transcribe", "close.handshake"))
    assert (f.code, f.cause, f.severity) == ("ws.no-key", "credentials", Status.WARN)
    assert "$MY_DG_KEY is not set" in f.message and "export MY_DG_KEY=" in f.message
    assert "stream.transcribe, close.handshake" in f.message
    assert "dg-request-id r-1" in f.message  # the path works up to authentication
    empty = KeyObservation("MY_DG_KEY", "empty", read_at=NOW)
    assert "is set but empty" in analyze_key(empty, UPGRADE_401)[0].message


def test_no_key_is_no_finding_when_the_server_needs_none() -> None:
    upgraded = upgrade_obs(Outcome.UPGRADED, status=101)
    assert analyze_key(KeyObservation("K", "unset", read_at=NOW), upgraded) == []


def test_a_malformed_key_is_named_without_the_key() -> None:
    obs, _ = read_key("DEEPGRAM_API_KEY", f'"Token {KEY}"\n', now=NOW)
    (f,) = analyze_key(obs, None)
    assert (f.code, f.severity) == ("ws.key-format", Status.WARN)
    for words in ("a line break", "quotes", "the scheme 'Token'"):
        assert words in f.message
    assert KEY not in f.message and KEY not in json.dumps(f.evidence)


@pytest.mark.parametrize(
    ("exp", "severity", "words"),
    [
        (NOW - 3600, Status.WARN, "expired 3600 s before the run"),
        (NOW + 20, Status.WARN, "expires 20 s after the run started"),
        (NOW + 600, Status.INFO, "expires 600 s after the run started"),
        (None, Status.INFO, "not an API key"),
    ],
)
def test_a_temporary_token_and_its_expiry(exp: float | None, severity: Status, words: str) -> None:
    token = jwt(exp=exp, iat=NOW - 30) if exp is not None else jwt(sub="x")
    obs, used = read_key("DEEPGRAM_API_KEY", token, now=NOW)
    assert used == token
    (f,) = analyze_key(obs, None)
    assert (f.code, f.severity) == ("ws.temporary-token", severity)
    assert words in f.message and token not in f.message


def test_a_401_for_an_expired_token_says_so() -> None:
    obs, _ = read_key("DEEPGRAM_API_KEY", jwt(exp=NOW - 90), now=NOW)
    (f,) = analyze(UPGRADE_401, obs)
    assert f.code == "ws.auth-rejected" and "expired 90 s before the run" in f.message


@pytest.mark.parametrize("raw", [KEY + "\n", f'"{KEY}"', f"Token {KEY}"])
def test_a_real_run_with_a_malformed_key_still_authenticates_with_the_cleaned_one(raw: str, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    with mock_process("--api-key", KEY) as url:
        proc = subprocess.run(
            [sys.executable, "-m", "wsdoctor", "run", url, "--checks", "ws.auth", "--json", str(out)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            env={**os.environ, "DEEPGRAM_API_KEY": raw},
        )
    report = json.loads(out.read_text())
    auth = next(r for r in report["results"] if r["check_id"] == "ws.auth")
    assert auth["status"] == "warn", auth
    assert [f["code"] for f in auth["findings"]] == ["ws.key-format"]
    assert auth["evidence"]["upgrade"]["outcome"] == "upgraded"  # the cleaned key works
    assert proc.returncode == 0
    assert KEY not in out.read_text() and KEY not in proc.stdout + proc.stderr


def test_a_real_run_with_a_temporary_token_names_it(tmp_path: Path) -> None:
    import time

    token = jwt(exp=time.time() + 600, iat=time.time() - 5)
    out = tmp_path / "r.json"
    with mock_process() as url:  # the mock takes any credential: a JWT goes through as Bearer
        subprocess.run(
            [sys.executable, "-m", "wsdoctor", "run", url, "--checks", "ws.auth", "--json", str(out)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            env={**os.environ, "DEEPGRAM_API_KEY": token},
        )
    auth = next(r for r in json.loads(out.read_text())["results"] if r["check_id"] == "ws.auth")
    (f,) = auth["findings"]
    assert (f["code"], f["severity"]) == ("ws.temporary-token", "info")
    assert auth["evidence"]["upgrade"]["outcome"] == "upgraded"
    assert token not in out.read_text()
