"""Reading proxy settings the way the user's app does (urllib's rules, curl's NO_PROXY), pure;
plus the CLI's flags: --proxy / --no-proxy / --dns-server parsing and password redaction."""

from __future__ import annotations

import json

import pytest

from wsdoctor.cli import main
from wsdoctor.model import Target
from wsdoctor.probes.proxy import ProxyURL, RouteDecision, decide_route, no_proxy_match, proxy_env

WSS = Target.parse("wss://api.deepgram.com/v1/listen")
WS = Target.parse("ws://10.1.2.3:8080/v1/listen")


def test_lower_case_wins_and_both_are_reported() -> None:
    env = {"HTTPS_PROXY": "http://upper:3128", "https_proxy": "http://lower:3128"}
    decision, proxy = decide_route(env, WSS)
    assert proxy is not None and proxy.host == "lower"
    assert decision.source == "https_proxy"
    (both,) = decision.disagreements
    assert (both.upper, both.lower, both.used_by_urllib) == ("HTTPS_PROXY", "https_proxy", "https_proxy")
    assert both.to_dict()["used_by_urllib"] == "https_proxy"  # the report's form is unchanged


def test_a_decision_reads_back_from_its_json_form() -> None:
    env = {"HTTPS_PROXY": "http://bob:hunter2@upper:3128", "https_proxy": "http://lower:3128", "NO_PROXY": "x"}
    decision, _ = decide_route(env, WSS)
    assert RouteDecision.from_dict(decision.to_dict()) == decision
    assert RouteDecision.from_dict(json.loads(json.dumps(decision.to_dict()))) == decision


def test_an_empty_lower_case_variable_unsets_the_upper_case_one() -> None:
    effective, _seen = proxy_env({"HTTPS_PROXY": "http://upper:3128", "https_proxy": ""})
    assert "https" not in effective


@pytest.mark.parametrize(
    ("env", "target", "route", "source"),
    [
        ({"HTTPS_PROXY": "http://p:3128"}, WSS, "proxy", "HTTPS_PROXY"),
        ({"HTTP_PROXY": "http://p:3128"}, WSS, "direct", None),  # http_proxy is not for wss://
        ({"HTTP_PROXY": "http://p:3128"}, WS, "proxy", "HTTP_PROXY"),
        ({"ALL_PROXY": "http://p:3128"}, WSS, "proxy", "ALL_PROXY"),
        ({"wss_proxy": "http://p:1", "HTTPS_PROXY": "http://p:2"}, WSS, "proxy", "wss_proxy"),
        ({"ALL_PROXY": "socks5://p:1080"}, WSS, "unsupported", "ALL_PROXY"),
        ({"TRAVIS_APT_PROXY": "http://p:3128"}, WSS, "direct", None),
        ({}, WSS, "direct", None),
    ],
)
def test_route(env: dict[str, str], target: Target, route: str, source: str | None) -> None:
    decision, _ = decide_route(env, target)
    assert decision.route == route, decision
    assert decision.source == source


@pytest.mark.parametrize(
    ("no_proxy", "host", "port", "match"),
    [
        ("*", "api.deepgram.com", 443, "*"),
        ("deepgram.com", "api.deepgram.com", 443, "deepgram.com"),
        (".deepgram.com", "api.deepgram.com", 443, ".deepgram.com"),
        ("deepgram.com", "notdeepgram.com", 443, None),
        ("api.deepgram.com:8443", "api.deepgram.com", 443, None),
        ("api.deepgram.com:443", "api.deepgram.com", 443, "api.deepgram.com:443"),
        ("localhost, 10.0.0.0/8", "10.1.2.3", 8080, "10.0.0.0/8"),
        ("10.1.2.3", "10.1.2.3", 8080, "10.1.2.3"),
        ("::1", "::1", 8080, "::1"),
        ("[::1]:8080", "::1", 8080, "[::1]:8080"),
        ("", "api.deepgram.com", 443, None),
    ],
)
def test_no_proxy_rules(no_proxy: str, host: str, port: int, match: str | None) -> None:
    assert no_proxy_match(no_proxy, host, port) == match


def test_no_proxy_exempts_and_says_so() -> None:
    decision, proxy = decide_route({"https_proxy": "http://p:3128", "no_proxy": ".deepgram.com"}, WSS)
    assert proxy is None and decision.route == "direct"
    assert decision.no_proxy_entry == ".deepgram.com"
    assert "NO_PROXY entry '.deepgram.com' exempts api.deepgram.com" in decision.reason


def test_flags_override_the_environment() -> None:
    env = {"HTTPS_PROXY": "http://p:3128"}
    assert decide_route(env, WSS, no_proxy=True)[0].route == "direct"
    decision, proxy = decide_route(env, WSS, proxy="http://q:8080")
    assert proxy is not None and proxy.host == "q" and decision.source == "--proxy"


def test_passwords_never_leave_the_proxy_url() -> None:
    url = ProxyURL.parse("http://al%40ice:p%3Ass-w0rd@proxy.corp:3128")
    assert url.username == "al@ice"
    assert url.password is not None and url.password.reveal() == "p:ss-w0rd"
    assert "w0rd" not in url.display and "w0rd" not in repr(url)
    decision, _ = decide_route({"HTTPS_PROXY": "http://bob:hunter2@p:3128"}, WSS)
    assert "hunter2" not in str(decision.to_dict())
    auth = ProxyURL.parse("http://bob:hunter2@p:3128").authorization()
    assert auth == "Basic Ym9iOmh1bnRlcjI="


@pytest.mark.parametrize(
    "argv",
    [
        ["--proxy", "ftp://p:21"],
        ["--proxy", "http://p:notaport"],
        ["--proxy", "http://p:1", "--no-proxy"],
        ["--dns-server", "not-an-ip"],
        ["--dns-server", "127.0.0.1:99999"],
        ["--dns-server", "127.0.0.1:x"],
    ],
)
def test_bad_flags_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "ws://127.0.0.1:9/", *argv]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err


def test_a_bad_proxy_url_error_hides_its_password(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "ws://127.0.0.1:9/", "--proxy", "ftp://bob:hunter2-secret@p:21"]) == 2
    captured = capsys.readouterr()
    assert "hunter2-secret" not in captured.out + captured.err


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("::1", ("::1", 53)),
        ("[::1]:5353", ("::1", 5353)),
    ],
)
def test_dns_server_flag(text: str, parsed: tuple[str, int]) -> None:
    from wsdoctor.commands.run import _dns_server

    assert _dns_server(text) == parsed


# -- issue 16: a password may hold any character -----------------------------------------------

ODD_PASSWORDS = ("pa/ss", "p@ss@", "p:ss:", "pa#ss", "pa?ss", "pa%ss", "pa ss", "pässwörd€", "/@:#?% ", "%zz%4")


@pytest.mark.parametrize("password", ODD_PASSWORDS)
@pytest.mark.parametrize("encoded", [False, True])
def test_any_password_parses_and_never_prints(password: str, encoded: bool) -> None:
    import urllib.parse

    from wsdoctor.probes.proxy import proxy_secrets, redact_proxy_text

    written = urllib.parse.quote(password, safe="") if encoded else password
    url = f"http://alice:{written}@proxy.corp:3128"
    proxy = ProxyURL.parse(url)
    assert (proxy.scheme, proxy.host, proxy.port, proxy.username) == ("http", "proxy.corp", 3128, "alice")
    assert proxy.password is not None
    if encoded or "%" not in password:
        assert proxy.password.reveal() == password
    assert proxy.display == "http://alice:***@proxy.corp:3128"
    assert redact_proxy_text(url) == proxy.display
    assert written in proxy_secrets(url)
    decision, parsed = decide_route({"HTTPS_PROXY": url}, WSS)
    assert parsed == proxy and decision.route == "proxy"
    assert written not in str(decision.to_dict()) and password not in str(decision.to_dict())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("http://bob:hunter2/secret@p:notaport", "port is not a number"),
        ("http://bob:hunter2#secret@p:99999", "out of range"),
        ("http://bob:hunter2?secret@", "no proxy host"),
        ("ftp://bob:hunter2@secret@p:21", "unsupported proxy scheme 'ftp'"),
        ("http://bob:hunter2 secret@p q:3128", "not a valid host"),
        ("http://bob:hunter2@[not-v6]:3128", "not an IPv6 address"),
        ("http://bob:hunter2@::1:3128", "in brackets"),
    ],
)
def test_errors_and_their_redacted_text_never_quote_the_password(text: str, message: str) -> None:
    from wsdoctor.probes.proxy import redact_proxy_text

    with pytest.raises(ValueError, match=message) as info:
        ProxyURL.parse(text)
    assert "hunter2" not in str(info.value)
    assert "hunter2" not in redact_proxy_text(text) and "secret" not in redact_proxy_text(text)
    decision, parsed = decide_route({}, WSS, proxy=text)
    assert parsed is None and decision.route == "unsupported"
    assert "hunter2" not in str(decision.to_dict())


def test_userinfo_is_everything_before_the_last_at() -> None:
    proxy = ProxyURL.parse("bob:p@ss:w/rd@[::1]:8080/ignored?x=1#y")  # no scheme: http
    assert (proxy.scheme, proxy.host, proxy.port) == ("http", "::1", 8080)
    assert proxy.password is not None and proxy.password.reveal() == "p@ss:w/rd"
    assert proxy.display == "http://bob:***@[::1]:8080"
    assert ProxyURL.parse("http://:only-pass@p").authorization() == "Basic Om9ubHktcGFzcw=="
    assert ProxyURL.parse("http://@p:3128").username is None


def test_a_bad_proxy_flag_with_a_slash_in_its_password(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "ws://127.0.0.1:9/", "--proxy", "http://bob:hunter2/secret@p:notaport"]) == 2
    captured = capsys.readouterr()
    assert "hunter2" not in captured.out + captured.err and "secret" not in captured.out + captured.err
    assert "Traceback" not in captured.err
