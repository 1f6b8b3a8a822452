"""Redaction: every form of secret the issue names is masked, once, in the model -- so it reaches no
reporter (terminal, JSON, HTML, JUnit), no file and no output stream, whether the report was made
by a live run, echoed back by a hostile server, or edited by hand and re-rendered."""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from reports.html import HtmlReporter
from reports.json import JsonReporter
from reports.junit import JunitReporter
from reports.terminal import TerminalReporter
from tests.hostile import KEY, HostileServer, Outputs, run_wsdoctor
from wsdoctor.cli import main
from wsdoctor.model import CheckResult, Finding, Report, Status, Target
from wsdoctor.redact import MASK, Redactor

API_KEY = "3f9a1c0b7d" * 4  # the shape of a Deepgram key: 40 hex digits (built, so no key-like literal)
JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ3c2RvY3RvciJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
PROXY_PASSWORD = "pr0xy-P@ss:w0rd"
OTHER = "s3cr3tV4lue_zz99"  # a credential with no recognisable shape: caught by context only


def texts(redactor: Redactor, value: Any) -> str:
    return json.dumps(redactor.value(value), ensure_ascii=False)


# -- each form, on its own -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "secret"),
    [
        # the run's own key, anywhere, in any casing of context
        (f"the key is {KEY} (from $DEEPGRAM_API_KEY)", KEY),
        (f"wss://h/v1/listen?x={urllib.parse.quote(KEY)}", KEY),
        # bearer tokens and Token credentials in prose or raw HTTP
        (f"Authorization: Bearer {JWT}", JWT),
        (f"sent bearer {JWT} to the server", JWT),
        (f"a bare temporary token {JWT}", JWT),
        (f"Token {OTHER}", OTHER),
        (f"Basic {OTHER}==", OTHER),
        # Authorization / Proxy-Authorization lines in a raw excerpt, whatever the scheme
        (f"GET / HTTP/1.1\r\nAuthorization: Digest username=u, response={OTHER}\r\nHost: x", OTHER),
        (f"HTTP/1.1 407\r\nproxy-authorization: NTLM {OTHER}\r\n\r\n", OTHER),
        (f"X-Api-Key: {OTHER}", OTHER),
        # proxy passwords in URLs, an '@' in the password included
        (f"http://user:{PROXY_PASSWORD}@proxy.corp:3128", PROXY_PASSWORD),
        (f"HTTPS_PROXY=http://user:{urllib.parse.quote(PROXY_PASSWORD)}@proxy:3128/", "pr0xy-P%40ss%3Aw0rd"),
        (f"socks5://:{OTHER}@10.0.0.1:1080", OTHER),
        # the subprotocol form of a key
        (f"Sec-WebSocket-Protocol: token, {OTHER}", OTHER),
        (f"offered subprotocols token,{OTHER}", OTHER),
        # credential query parameters
        (f"Location: https://login.example/?next=/&access_token={OTHER}&x=1", OTHER),
        (f"wss://api.deepgram.com/v1/listen?token={OTHER}", OTHER),
        # a Deepgram-shaped key nobody registered
        (f"err_msg: invalid key {API_KEY}.", API_KEY),
    ],
)
def test_text_form_is_masked(raw: str, secret: str) -> None:
    redactor = Redactor([KEY])
    out = redactor.text(raw)
    assert secret not in out
    assert MASK in out
    assert redactor.text(out) == out  # idempotent: re-redacting a report changes nothing


@pytest.mark.parametrize(
    "value",
    [
        {"Authorization": f"Token {OTHER}"},
        {"headers": {"proxy-authorization": OTHER}},
        {"headers": [["Authorization", OTHER], ["Host", "x"]]},
        {"headers": [{"name": "Authorization", "value": OTHER}]},
        {"sec-websocket-protocol": f"token, {OTHER}"},
        {"subprotocols": ["token", OTHER]},
        {"Cookie": f"session={OTHER}"},
        [["Proxy-Authorization", f"Basic {OTHER}"]],
    ],
)
def test_structured_form_is_masked(value: Any) -> None:
    out = texts(Redactor(), value)
    assert OTHER not in out
    assert MASK in out


def test_innocent_text_survives() -> None:
    redactor = Redactor([KEY])
    for text in (
        "Basic authentication is required by the proxy",
        "dg-request-id 6a1c2f1e-8f0d-4b0a-9c56-1d2e3f4a5b6c",
        "Sec-WebSocket-Accept: PBMXB/BzwbhmbJaXK5oCV9mcEGU=",
        "a token was sent",
        "ws://127.0.0.1:8080/v1/listen?model=nova-2&encoding=linear16",
        "sha256 " + hashlib.sha256(b"").hexdigest(),  # 64 hex digits: a digest, not a key
    ):
        assert redactor.text(text) == text


def test_short_secrets_are_not_registered() -> None:
    assert Redactor(["abc", ""]).secrets == []


def test_report_redacts_every_string_and_is_idempotent() -> None:
    report = leaky_report()
    clean = Redactor([KEY]).report(report)
    dumped = json.dumps(clean.to_dict(), ensure_ascii=False)
    for secret in SECRETS:
        assert secret not in dumped, secret
    assert Redactor([KEY]).report(clean) == clean


# -- every reporter, through the command line -------------------------------------------------

SECRETS = (KEY, JWT, PROXY_PASSWORD, OTHER, API_KEY)


def leaky_report() -> Report:
    """A report.json edited by hand (or written by a careless plugin): secrets everywhere."""
    finding = Finding(
        "ws.auth-rejected",
        "credentials",
        Status.FAIL,
        f"rejected Token {OTHER} and bearer {JWT}",
        evidence={"authorization": f"Token {KEY}", "echo": KEY, "key": API_KEY},
    )
    return Report(
        target=Target.parse("wss://api.deepgram.com/v1/listen?token=zzz"),
        results=(
            CheckResult(
                "ws.auth",
                f"title with {KEY}",
                Status.FAIL,
                f"401 for key {KEY}",
                findings=(finding,),
                metrics={"upgrade_s": 0.1},
                evidence={
                    "upgrade": {
                        "answer": {
                            "status": 401,
                            "headers": [["Authorization", f"Bearer {JWT}"], ["dg-request-id", "abc-123"]],
                        }
                    },
                    "raw_excerpt": f"GET /v1/listen HTTP/1.1\r\nProxy-Authorization: Basic {OTHER}\r\n",
                    "proxy": f"http://me:{PROXY_PASSWORD}@proxy:3128",
                    "subprotocols": ["token", KEY],
                },
            ),
            CheckResult(
                "stream.transcribe", "s", Status.SKIP, f"requires ws.auth (key {API_KEY})", blocked_by="ws.auth"
            ),
        ),
        started_at="2025-01-01T00:00:00Z",
        duration_s=1.0,
        wsdoctor_version="0.1.0",
        environment={"proxy_env": {"HTTPS_PROXY": f"http://me:{PROXY_PASSWORD}@proxy:3128"}, "note": KEY},
    )


def test_render_masks_a_hand_edited_report_in_every_reporter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Written without redaction (as a hand edit would be); the key is also in the environment.
    source = tmp_path / "edited.json"
    source.write_text(json.dumps(leaky_report().to_dict()), encoding="utf-8")
    for secret in SECRETS:
        assert secret in source.read_text(encoding="utf-8")
    monkeypatch.setenv("DEEPGRAM_API_KEY", KEY)
    out = {name: tmp_path / f"out.{name}" for name in ("json", "html", "xml")}
    code = main(
        ["render", str(source), "--json", str(out["json"]), "--html", str(out["html"]), "--junit", str(out["xml"])]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    outputs = {"stdout": captured.out, "stderr": captured.err, **{k: p.read_text("utf-8") for k, p in out.items()}}
    assert "ws.auth" in outputs["stdout"] and "ws.auth" in outputs["html"] and "ws.auth" in outputs["xml"]
    for where, text in outputs.items():
        for secret in SECRETS:
            assert secret not in text, (where, secret)
    assert MASK in outputs["html"] and MASK in outputs["xml"] and MASK in outputs["json"]


def test_reporters_show_only_what_the_model_holds() -> None:
    """The reporters add no secret of their own: on a redacted model, all four are clean."""
    clean = Redactor([KEY]).report(leaky_report())
    for reporter in (TerminalReporter(), TerminalReporter(color=True), JsonReporter(), HtmlReporter(), JunitReporter()):
        text = reporter.render(clean)
        for secret in SECRETS:
            assert secret not in text, (type(reporter).__name__, secret)


@pytest.fixture(scope="module")
def leaky_run(tmp_path_factory: pytest.TempPathFactory) -> Outputs:
    # The server echoes the key back: as "Token <key>" in a header, bare in the transcript, the
    # close reason and a cookie. Only redaction stands between it and the reports.
    with HostileServer() as server:
        return run_wsdoctor(tmp_path_factory.mktemp("leaky"), server.url)


def test_key_from_the_environment_reaches_no_output(leaky_run: Outputs) -> None:
    out = leaky_run
    assert out.returncode == 1, out.stderr
    streams = {
        "stdout": out.stdout,
        "stderr": out.stderr,
        "json": out.json_text,
        "html": out.html_text,
        "junit": out.junit_text,
    }
    for where, text in streams.items():
        assert KEY not in text, where
        assert urllib.parse.quote(KEY) not in text, where
    # the run really got far enough for the echoes to happen, and they were masked, not dropped
    data = json.loads(out.json_text)
    dumped = json.dumps(data)
    assert "X-Echo-Authorization" in dumped or "x-echo-authorization" in dumped
    assert MASK in dumped
    assert MASK in out.html_text and MASK in out.junit_text and MASK in out.stdout


# -- issue 16: redaction by structure, not by a handful of names --------------------------------

ISSUE_16_NAMES = (
    "password", "secret", "access_key", "sig", "client_secret", "authorization", "X-Amz-Signature",
    "x-goog-signature", "refresh_token", "id_token", "private_key", "sessionid", "credentials", "jwt",
    "My-Custom-Auth", "db.passwd", "APIKEY", "x_api_key", "pass%77ord",
)  # fmt: skip


@pytest.mark.parametrize("name", ISSUE_16_NAMES)
def test_any_credential_query_name_is_masked_in_text_target_and_labels(name: str) -> None:
    from reports.openmetrics import OpenMetricsReporter

    url = f"wss://api.deepgram.com/v1/listen?model=nova-3&{name}={OTHER}&keywords=acme:2"
    out = Redactor().text(f"GET {url} -> 401")
    assert OTHER not in out and MASK in out and "model=nova-3" in out and "keywords=acme:2" in out
    target = Target.parse(url)
    assert OTHER not in target.url and "model=nova-3" in target.url
    # a Target built by hand (a plugin, an old report) still yields no credential label
    raw = Report(
        target=Target(url=url, scheme="wss", host="api.deepgram.com", port=443, resource="/"),
        results=(),
        started_at="x",
        duration_s=0.0,
        wsdoctor_version="0.1.0",
    )
    assert OTHER not in OpenMetricsReporter().render(raw)


def test_oauth_code_counts_only_in_a_url() -> None:
    redactor = Redactor()
    assert OTHER not in redactor.text(f"Location: https://app.example/cb?code={OTHER}&state=1")
    evidence = {"code": "ws.auth-rejected", "close": {"code": 1011, "reason": "closed (code=1011)"}}
    assert redactor.value(evidence) == evidence


@pytest.mark.parametrize(
    "text",
    [
        "wss://api.deepgram.com/v1/listen?model=nova-3&keywords=acme:2&keyterm=wsdoctor&encoding=linear16"
        "&sample_rate=16000&tag=ci&keyword_boost=legacy&mip_opt_out=true",
        "Server Do53:10.255.255.53@53 answered SERVFAIL",  # dnspython: resolver@port
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        'Proxy-Authenticate: Basic realm="corp"',
        'WWW-Authenticate: Bearer realm="deepgram"',
        "connect to auth.example.com:443 timed out",
        "invalid token: the key has expired",
        "a Basic auth challenge",
    ],
)
def test_harmless_text_with_credential_words_survives(text: str) -> None:
    assert Redactor().text(text) == text


@pytest.mark.parametrize(
    "raw",
    [
        f"Location: https://u:{urllib.parse.quote(OTHER)}@h/?next=%2F",
        f"callback=https%3A%2F%2Fu%3A{OTHER}%40hooks.example%2Fx&model=nova-3",  # a URL inside a query value
        f"wss://h/v1/listen?x=1%26client_secret%3D{OTHER}&model=nova-3",  # an encoded separator
        f"HTTP/1.1 200\r\nX-Custom-Session-Token: {OTHER}\r\n",
        f"the proxy echoed X-Forwarded-Auth: {OTHER}",
        f"{{'X-Token': '{OTHER}', 'Host': 'h'}}",
        f'{{"client_secret": "{OTHER}"}}',
        f"export DEEPGRAM_API_KEY={OTHER}",
        f"Basic {base64.b64encode(b'u:p').decode()}",  # short, but it decodes to user:password
        f"proxy bob:{OTHER}/x@proxy.corp:3128 refused",
    ],
)
def test_structural_forms_are_masked_and_idempotent(raw: str) -> None:
    redactor = Redactor()
    out = redactor.text(raw)
    assert OTHER not in out and "dTpw" not in out, out
    assert MASK in out
    assert redactor.text(out) == out


def test_a_proxy_password_with_a_slash_reaches_no_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 16: ``/`` ended the password for urlsplit, so only its start was registered."""
    from wsdoctor.diagnosis import environment, run_secrets

    password = "hunter2/#?@:%20 é"
    monkeypatch.setenv("HTTPS_PROXY", f"http://bob:{password}@127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", f"socks5://bob:{password}@127.0.0.1:notaport")
    secrets = run_secrets(None, None)
    assert password in secrets
    for registered in ([], secrets):
        env = json.dumps(environment(registered), ensure_ascii=False)
        assert "hunter2" not in env and "127.0.0.1" in env
    out = tmp_path / "r.json"
    code = main(["run", "ws://127.0.0.1:9/v1/listen", "--checks", "env.proxy", "--json", str(out)])
    captured = capsys.readouterr()
    assert code in (0, 1), captured.err
    for text in (captured.out, captured.err, out.read_text("utf-8")):
        assert "hunter2" not in text
