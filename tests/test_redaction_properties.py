"""Redaction by structure, with generated names and values (hypothesis, fixed budget, derandomized).

Issue 16: credentials were masked only under a few query names, and a proxy password with ``/`` in it
reached the environment section and an error message. These properties hold for *any* credential
name -- the listed ones and any name the rule accepts (it contains key/token/secret/pass/pwd/auth/
sig/cred/session, any case, separators ``- _ .``) -- and any value, ``/ @ : # ? %``, base64, percent
-encoded and Unicode included:

- the Redactor masks it in URLs (query, userinfo, nested in an encoded ``callback``), header lines,
  ``Basic`` credentials, assignments, JSON/repr text, mapping keys, pairs and records -- with no
  secret registered, so only the structure can catch it -- and stays idempotent;
- ``Target.parse`` never shows it, in the display URL or in an error;
- ``ProxyURL.parse`` accepts any password, raw or percent-encoded, keeps it exactly, and nothing
  printable (``display``, ``redact_proxy_text``, the route decision, ``environment()``, errors) holds it;
- a whole report carrying it everywhere, redacted as the output layer does, renders in every
  reporter (JSON, terminal, HTML, JUnit, Markdown, OpenMetrics) without it -- raw, percent-encoded,
  base64, HTML- or JSON-escaped;
- Deepgram's own parameters (``keywords``, ``keyterm``, ``model``, ``sample_rate``, ``tag`` ...) stay
  readable.
"""

from __future__ import annotations

import base64
import html
import json
import string
import urllib.parse
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from reports.base import load_reporter, reporter_names
from wsdoctor.cli import main
from wsdoctor.diagnosis import environment, run_secrets
from wsdoctor.errors import UsageError
from wsdoctor.model import _SECRET_QUERY_KEYS, CheckResult, Finding, Report, Status, Target
from wsdoctor.probes.proxy import ProxyURL, decide_route, redact_proxy_text
from wsdoctor.redact import (
    DEEPGRAM_PARAMETERS,
    MASK,
    READABLE_NAMES,
    SECRET_NAME_PARTS,
    Redactor,
    is_secret_name,
    redact_url,
)


def budget(n: int) -> settings:
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


def normal(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch not in "-_. ")


_READABLE = {normal(n) for n in READABLE_NAMES}
_URL_ONLY = {"code", "sid", "ticket"}

# -- names ------------------------------------------------------------------------------------------

affix = st.one_of(st.just(""), st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,5}", fullmatch=True))
separator = st.sampled_from(["", "-", "_", "."])


@st.composite
def rule_names(draw: st.DrawFn) -> str:
    """Any name the rule accepts: [prefix sep] fragment [sep suffix], in any case."""
    prefix, suffix = draw(affix), draw(affix)
    fragment = draw(st.sampled_from(SECRET_NAME_PARTS))
    fragment = draw(st.sampled_from([fragment, fragment.upper(), fragment.title()]))
    name = prefix + (draw(separator) if prefix else "") + fragment + (draw(separator) if suffix else "") + suffix
    if not name[0].isalpha():
        name = "X-" + name
    assume(normal(name) not in _READABLE and not normal(name).endswith("authenticate"))
    return name


listed_names = st.sampled_from(sorted(_SECRET_QUERY_KEYS - _URL_ONLY)).flatmap(
    lambda n: st.sampled_from([n, n.upper(), n.title()])
)
#: Credential names valid everywhere (header, field, key, assignment, query).
names = st.one_of(listed_names, rule_names())
#: In a URL's query, OAuth's ``code`` & co. count as well.
query_names = st.one_of(names, st.sampled_from(sorted(_URL_ONLY)))

# -- values -----------------------------------------------------------------------------------------

#: What a URL can carry raw (no space, quote, angle bracket or '&', which end a value in text).
URL_SAFE = string.ascii_letters + string.digits + "/@:#?%-._~+=!$*,;()[]\\é€"
core = st.text(alphabet=URL_SAFE, min_size=4, max_size=20)
base64_core = st.binary(min_size=4, max_size=18).map(lambda b: base64.b64encode(b).decode())
percent_core = core.map(lambda c: urllib.parse.quote(c, safe=""))
#: Values that are credentials: distinctive (so "not in the output" means something) but otherwise
#: anything -- special characters, base64, already percent-encoded.
url_values = st.one_of(core, base64_core, percent_core).map(lambda c: f"Zq{c}9X")
#: Anything a header or a field may hold (one line).
line_values = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=4, max_size=20
).map(lambda c: f"Zq{c}9X")
#: A proxy password: anything at all, spaces, '@', '/', '#', '?', '%' and Unicode included.
passwords = st.one_of(
    line_values,
    url_values,
    st.text(alphabet="/@:#?% ", min_size=1, max_size=6).map(lambda c: f"Pw{c}x7"),
)


def forms(value: str, user: str = "alice") -> set[str]:
    """Every way an output could spell ``value``."""
    found = {
        value,
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote(value),
        urllib.parse.quote_plus(value),
        base64.b64encode(value.encode()).decode(),
        base64.b64encode(f"{user}:{value}".encode()).decode(),
        html.escape(value),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
    }
    return {f for f in found if len(f) >= 6}


def assert_absent(value: str, text: str, where: str = "") -> None:
    views = (text, html.unescape(text), text.replace("\\", ""))
    for form in forms(value):
        for view in views:
            assert form not in view, (where, form, text[:2000])


def url_in_text(name: str, value: str, encode_name: bool, raw: bool) -> str:
    shown_name = "".join(f"%{b:02X}" for b in name.encode()) if encode_name else name
    shown_value = value if raw else urllib.parse.quote(value, safe="")
    return f"wss://api.deepgram.com/v1/listen?model=nova-3&{shown_name}={shown_value}&keyterm=acme"


# -- the name rule ----------------------------------------------------------------------------------


@budget(60)
@given(name=names)
def test_every_generated_name_is_a_credential(name: str) -> None:
    assert is_secret_name(name)
    assert is_secret_name(name, in_url=True)
    assert is_secret_name(urllib.parse.quote(name.replace("-", "%2D")))


@pytest.mark.parametrize("name", sorted(DEEPGRAM_PARAMETERS))
def test_deepgram_parameters_are_not_credentials(name: str) -> None:
    assert not is_secret_name(name, in_url=True)
    url = f"wss://api.deepgram.com/v1/listen?{name}=nova-3_x.1&model=nova-3"
    assert Target.parse(url).url == url
    assert Redactor().text(f"sent {url} and {name}=v1") == f"sent {url} and {name}=v1"


def test_url_only_names_and_readable_headers() -> None:
    for name in _URL_ONLY:
        assert is_secret_name(name, in_url=True) and not is_secret_name(name)
    text = 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nProxy-Authenticate: Basic realm="corp"\r\n'
    assert Redactor().text(text) == text
    evidence = {"code": "ws.auth-rejected", "close": {"code": 1011}, "proxy_authenticate": ["Basic"]}
    assert Redactor().value(evidence) == evidence


# -- the Redactor, structure only -------------------------------------------------------------------


@budget(80)
@given(
    name=query_names,
    field=names,
    value=url_values,
    encode_name=st.booleans(),
    raw=st.booleans(),
)
def test_text_forms_are_masked_without_knowing_the_value(
    name: str, field: str, value: str, encode_name: bool, raw: bool
) -> None:
    user = "alice"
    basic = base64.b64encode(f"{user}:{value}".encode()).decode()
    nested = urllib.parse.quote(f"https://{user}:{value}@hooks.example/x", safe="")
    samples = [
        f"GET {url_in_text(name, value, encode_name, raw)} failed",
        f"Location: https://login.example/cb?state=1#{name}={urllib.parse.quote(value, safe='')}",
        f"proxy http://{user}:{value}@proxy.corp:3128/ refused",
        f"proxy {user}:{value}@proxy.corp:3128 refused",
        f"wss://api.deepgram.com/v1/listen?callback={nested}&model=nova-3",
        f"HTTP/1.1 401 Unauthorized\r\n{field}: {value}\r\nServer: x\r\n\r\n",
        f"the server echoed X-{field}: {value}",
        f"Proxy-Authorization: Basic {basic}",
        f"sent Basic {basic} to the proxy",
        f"{field}={value}",
        f"env: {field}={value} python app.py",
        json.dumps({field: value, "model": "nova-3"}),
        repr({field: value, "Host": "api.deepgram.com"}),
    ]
    redactor = Redactor()
    for sample in samples:
        out = redactor.text(sample)
        assert_absent(value, out, sample)
        assert redactor.text(out) == out, sample  # idempotent
    assert "model=nova-3" in redactor.text(samples[0])
    assert "keyterm=acme" in redactor.text(samples[0])


@budget(60)
@given(field=names, value=line_values)
def test_structured_forms_are_masked(field: str, value: str) -> None:
    evidence = {
        "headers": {field: value, "Host": "api.deepgram.com"},
        "pairs": [[field, value], ["dg-request-id", "abc-123"]],
        "records": [{"name": field, "value": value}],
        "nested": {"deep": [{field: [value]}]},
        "text": f"{field}: {value}",
    }
    out = json.dumps(Redactor().value(evidence), ensure_ascii=False)
    assert_absent(value, out)
    assert "abc-123" in out and "api.deepgram.com" in out


# -- Target.parse -----------------------------------------------------------------------------------


@budget(60)
@given(name=query_names, value=url_values, password=passwords, encode_name=st.booleans())
def test_target_display_and_errors_hold_no_credential(name: str, value: str, password: str, encode_name: bool) -> None:
    query = url_in_text(name, value, encode_name, raw=False).split("?", 1)[1]
    for url in (
        f"wss://api.deepgram.com/v1/listen?{query}",
        f"wss://bob:{urllib.parse.quote(password, safe='')}@api.deepgram.com/v1/listen?{query}",
        f"wss://bob:{password}@api.deepgram.com/v1/listen?{query}",
        f"ftp://bob:{password}@api.deepgram.com/v1/listen?{query}",
    ):
        try:
            shown = Target.parse(url).url
        except UsageError as exc:
            shown = str(exc)
        assert_absent(value, shown, url)
        if len(password) >= 6:
            assert_absent(password, shown, url)
    ok = Target.parse(f"wss://api.deepgram.com/v1/listen?{query}")
    assert "model=nova-3" in ok.url and "keyterm=acme" in ok.url
    assert value in urllib.parse.unquote(ok.resource)  # the request itself still carries it


# -- proxies ----------------------------------------------------------------------------------------


@budget(60)
@given(password=passwords, encoded=st.booleans())
def test_proxy_url_accepts_any_password_and_never_shows_it(
    password: str, encoded: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = urllib.parse.quote(password, safe="") if encoded else password
    url = f"http://alice:{written}@proxy.corp:3128"
    proxy = ProxyURL.parse(url)
    assert (proxy.host, proxy.port, proxy.username) == ("proxy.corp", 3128, "alice")
    assert proxy.password is not None
    if encoded or "%" not in password:
        assert proxy.password.reveal() == password
    assert proxy.authorization() == "Basic " + base64.b64encode(f"alice:{proxy.password.reveal()}".encode()).decode()
    for shown in (proxy.display, repr(proxy), redact_proxy_text(url)):
        assert_absent(password, shown)
    # unparseable (bad port, bad scheme): the message and the masked text still hide it
    for bad in (f"http://alice:{written}@proxy.corp:notaport", f"ftp://alice:{written}@proxy.corp:21"):
        with pytest.raises(ValueError, match=r".") as info:
            ProxyURL.parse(bad)
        assert_absent(password, str(info.value))
        assert_absent(password, redact_proxy_text(bad))
    # the route decision, environment() with and without the run's secrets
    target = Target.parse("wss://api.deepgram.com/v1/listen")
    decision, parsed = decide_route({"HTTPS_PROXY": url, "https_proxy": url + "/"}, target)
    assert parsed is not None and parsed.password == proxy.password
    assert_absent(password, json.dumps(decision.to_dict(), ensure_ascii=False))
    monkeypatch.setenv("HTTPS_PROXY", url)
    monkeypatch.setenv("ALL_PROXY", f"socks5://alice:{written}@proxy.corp:notaport")
    for secrets in ([], run_secrets(None, None)):
        env = json.dumps(environment(secrets), ensure_ascii=False)
        assert_absent(password, env)
        assert "proxy.corp" in env


@budget(12)
@given(password=passwords)
def test_a_bad_proxy_flag_error_hides_any_password(password: str, capsys: pytest.CaptureFixture[str]) -> None:
    for flag in (f"ftp://bob:{password}@p:21", f"http://bob:{password}@p:notaport"):
        assert main(["run", "ws://127.0.0.1:9/", "--proxy", flag]) == 2
        captured = capsys.readouterr()
        assert_absent(password, captured.out + captured.err, flag)


# -- every reporter ---------------------------------------------------------------------------------


def leaky_report(name: str, field: str, value: str, proxy_password: str) -> Report:
    user = "alice"
    basic = base64.b64encode(f"{user}:{value}".encode()).decode()
    quoted = urllib.parse.quote(value, safe="")
    url = f"wss://api.deepgram.com/v1/listen?model=nova-3&{name}={quoted}&keyterm=acme&tag=ci"
    proxy = f"http://{user}:{proxy_password}@proxy.corp:3128"
    finding = Finding(
        "ws.auth-rejected",
        "credentials",
        Status.FAIL,
        f"rejected {url} with X-{field}: {value}",
        evidence={field: value, "request": f"GET {url}\r\nProxy-Authorization: Basic {basic}\r\n"},
    )
    return Report(
        target=Target.parse(url),
        results=(
            CheckResult(
                "ws.auth",
                f"auth via {field}={value}",
                Status.FAIL,
                f"401 for {url}",
                findings=(finding,),
                metrics={"upgrade_s": 0.1},
                evidence={
                    "answer": {"status": 401, "headers": [[field, value], ["dg-request-id", "req-1"]]},
                    "raw_excerpt": f"HTTP/1.1 401\r\n{field}: {value}\r\n\r\n",
                    "proxy": proxy,
                    "json": json.dumps({field: value}),
                },
            ),
            CheckResult(
                "stream.transcribe", "s", Status.SKIP, f"requires ws.auth ({field}={quoted})", blocked_by="ws.auth"
            ),
        ),
        started_at="2025-01-01T00:00:00Z",
        duration_s=1.0,
        wsdoctor_version="0.1.0",
        environment={"proxy_env": {"HTTPS_PROXY": proxy, "NO_PROXY": "localhost"}, "note": f"{field}={value}"},
    )


@budget(40)
@given(name=query_names, field=names, value=url_values, proxy_password=passwords)
def test_no_reporter_shows_a_credential(name: str, field: str, value: str, proxy_password: str) -> None:
    report = leaky_report(name, field, value, proxy_password)
    raw = json.dumps(report.to_dict(), ensure_ascii=False)
    assert value in raw or urllib.parse.quote(value, safe="") in raw  # the test really plants it
    clean = Redactor().report(report)  # what the output layer does, with no secret registered
    assert Redactor().report(clean) == clean
    outputs: dict[str, str] = {}
    for reporter_name in reporter_names():
        reporter: Any = load_reporter(reporter_name)
        outputs[reporter_name] = reporter().render(clean)
    for where, text in outputs.items():
        assert_absent(value, text, where)
        if len(proxy_password) >= 6:
            assert_absent(proxy_password, text, where)
    # what must stay readable did
    assert "keyterm=acme" in outputs["json"] and "tag=ci" in outputs["json"] and "model=nova-3" in outputs["json"]
    assert MASK in outputs["json"] and "proxy.corp" in outputs["json"]


def test_redact_url_masks_to_the_last_at_whatever_the_password_holds() -> None:
    url = "http://bob:p@ss w/rd#?%x@proxy.corp:3128/?token=a b&model=nova-3"
    out = redact_url(url)
    assert out == f"http://bob:{MASK}@proxy.corp:3128/?token={MASK}&model=nova-3"
    assert redact_url(out) == out
