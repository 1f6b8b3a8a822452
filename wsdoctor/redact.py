"""Redaction: secrets leave the model before any reporter, log or fixture can see them.

Two nets. The first knows the secrets of this run (the API key, proxy passwords and the Basic
credential built from them) and replaces every occurrence in every string -- as written, and
percent-encoded as a URL would carry it. The second knows the *structure* that carries a secret,
whatever its value, so a hostile server echoing a credential we never registered, a plugin's
evidence, or a hand-edited report.json still cannot get it printed.

**Which names carry a credential** (:func:`is_secret_name`). A query parameter, a header, a mapping
key or a ``name=value`` assignment carries one when its name, compared in lower case with the
separators ``-``, ``_`` and ``.`` removed and percent-encoding undone,

- is one of :data:`SECRET_NAMES` -- ``token``, ``access_token``, ``id_token``, ``refresh_token``,
  ``key``, ``apikey``/``api_key``/``api-key``, ``x-api-key``, ``secret``, ``client_secret``,
  ``password``/``passwd``/``pwd``/``pass``, ``auth``, ``authorization``, ``sig``, ``signature``,
  ``x-amz-signature``, ``x-goog-signature``, ``session``/``sessionid``, ``credential(s)``,
  ``private_key``, ``jwt``, ``bearer``, ``cookie`` ... and, in a URL's query only, ``code``,
  ``sid`` and ``ticket`` (OAuth and SSO hand those out in redirects; elsewhere ``code`` is a
  finding code or a close code, never a credential), or
- *contains* one of :data:`SECRET_NAME_PARTS`: ``key``, ``token``, ``secret``, ``pass``, ``pwd``,
  ``auth``, ``sig``, ``cred``, ``session`` (or a listed name other than the URL-only ones:
  ``X-Bearer``, ``X-OTP``, ``my_phpsessid``) -- so ``X-Custom-Auth-Token``, ``db.password``,
  ``MY_SECRET_KEY`` and ``x-amz-security-token`` are all caught without being listed;

except the names in :data:`READABLE_NAMES`, which match the rule but carry no secret: Deepgram's own
query parameters (``keywords``, ``keyterm``, ``keyterms``, ``keyword_boost`` contain "key" but are
vocabulary sent to the model, and a 400 about them is only diagnosable if they stay readable; the
full list of Deepgram's parameters is :data:`DEEPGRAM_PARAMETERS`, and none of the others matches
the rule, so ``model=nova-3``, ``encoding``, ``sample_rate``, ``tag`` ... stay readable by
construction), the WebSocket handshake nonce ``Sec-WebSocket-Key``, the *challenges*
``WWW-Authenticate``/``Proxy-Authenticate`` (which scheme a proxy asks for is the diagnosis of a
407), ``Access-Control-Allow-Credentials`` and Deepgram's ``transaction_key`` metadata field.

**Where** (:meth:`Redactor.text` on every string, :meth:`Redactor.value` on JSON-like values):

- header values: ``Authorization``, ``Proxy-Authorization``, ``Cookie``/``Set-Cookie``,
  ``X-Api-Key``/``Dg-Api-Key`` anywhere in text, and any header whose name matches the rule -- as a
  ``Name: value`` line (or a hyphenated ``X-Name: value`` anywhere), as mapping keys, as
  ``[name, value]`` pairs and as ``{"name": ..., "value": ...}`` records; ``Sec-WebSocket-Protocol``
  as a mapping key or pair;
- ``Token``/``Bearer``/``Basic``/``NTLM``/``Negotiate`` credentials in prose (a ``Basic`` one also
  when it is short: any base64 that decodes to ``user:password``), and bare JWTs;
- every userinfo password in a URL (``scheme://user:password@host``, also without a scheme): the
  password runs to the *last* ``@`` of the URL, so one holding ``@``, ``/``, ``:``, ``?``, ``#`` or
  ``%`` is masked whole;
- every query (or fragment, or ``;`` matrix) parameter whose name carries a credential, in any URL
  anywhere in a string; ``name=value`` assignments (``DEEPGRAM_API_KEY=...``) and quoted pairs
  (``"password": "..."``, ``'X-Token': '...'``) likewise;
- all of the above also when percent-encoded (a URL inside a query value, an encoded ``=``, ``&``
  or ``@``): each piece of a run between raw ``? & # =`` that holds ``%XX`` escapes is decoded (up
  to three levels) and, if that reveals a secret, shown with the secret masked and what was escaped
  escaped again (``callback=https%3A%2F%2Fu%3A***REDACTED***%40h``), so a URL keeps its structure;
- ``token, <key>`` subprotocol values, as text or as a ``["token", "<key>"]`` list;
- bare 40-hex-digit strings: the shape of a Deepgram API key.

Mapping values under a key that ends in ``proxy`` (``HTTPS_PROXY``, evidence ``proxy``) are proxy
URLs: everything before their last ``@`` but the user name is masked (:func:`redact_url`), whatever
the password holds -- spaces included.

:meth:`Redactor.report` applies all of it to every string of a whole :class:`Report`. It is
idempotent (a masked report comes out unchanged: :meth:`Redactor.text` runs its passes to a fixed
point), so the output layer can run it on every report it writes -- live or loaded from a file --
without double-masking anything. Over-masking is preferred to a leak: ``host:443/x@y`` in prose
reads as a password, a header value is masked to the end of its line, and a value after a
credential name to the next ``&`` or space. What structure cannot delimit -- a raw ``&`` inside a
query value, a raw space inside a URL's password in free text -- is left to the first net (the
run's key and proxy passwords are registered whole) and, for proxy variables, to :func:`redact_url`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from wsdoctor.model import _SECRET_QUERY_KEYS, CheckResult, Finding, Report

__all__ = [
    "DEEPGRAM_PARAMETERS",
    "MASK",
    "READABLE_NAMES",
    "SECRET_NAMES",
    "SECRET_NAME_PARTS",
    "Redactor",
    "is_secret_name",
    "redact_url",
]

MASK = "***REDACTED***"

_SEPARATORS = re.compile(r"[\s._-]+")


@functools.lru_cache(maxsize=4096)
def _normal(name: str) -> str:
    """``X-Api_Key`` -> ``xapikey``: lower case, percent-decoded, separators ``- _ .`` removed."""
    name = name.strip()
    for _ in range(3):
        decoded = urllib.parse.unquote(name)
        if decoded == name:
            break
        name = decoded
    return _SEPARATORS.sub("", name.lower())


#: A name that *contains* one of these (after :func:`_normal`) carries a credential.
SECRET_NAME_PARTS: tuple[str, ...] = ("key", "token", "secret", "pass", "pwd", "auth", "sig", "cred", "session")
#: Names listed outright (most also match the rule; ``jwt``, ``bearer``, ``cookie``, ``code`` ... do not).
SECRET_NAMES: frozenset[str] = frozenset(
    {
        *_SECRET_QUERY_KEYS,
        "cookie",
        "set-cookie",
        "proxy-authorization",
        "dg-api-key",
    }
)
#: Listed names that mean a credential only in a URL's query: ``code`` elsewhere is a finding code.
_URL_ONLY_NAMES = frozenset({"code", "sid", "ticket"})
#: Deepgram's query parameters (listen v1 and v2/Flux, speak), from
#: https://developers.deepgram.com/reference/speech-to-text/listen-streaming and its siblings. Only
#: ``keywords``, ``keyterm`` and ``keyword_boost`` match the rule; they are vocabulary, not keys.
DEEPGRAM_PARAMETERS: frozenset[str] = frozenset(
    {
        "alternatives", "bit_rate", "callback", "callback_method", "channels", "container",
        "custom_intent", "custom_intent_mode", "custom_topic", "custom_topic_mode", "detect_entities",
        "detect_language", "detect_topics", "diarize", "diarize_model", "diarize_version", "dictation",
        "eager_eot_threshold", "encoding", "endpointing", "eot_threshold", "eot_timeout_ms", "extra",
        "filler_words", "intents", "interim_results", "keyterm", "keyterms", "keyword_boost", "keywords",
        "language", "language_hint", "measurements", "mip_opt_out", "model", "multichannel", "ner",
        "no_delay", "numerals", "paragraphs", "profanity_filter", "punctuate", "redact", "replace",
        "sample_rate", "search", "sentiment", "smart_format", "summarize", "tag", "tier", "topics",
        "utt_split", "utterance_end_ms", "utterances", "vad_events", "version",
    }
)  # fmt: skip
#: Names that match the rule but carry no secret (see the module docstring).
READABLE_NAMES: frozenset[str] = DEEPGRAM_PARAMETERS | {
    "sec-websocket-key",
    "sec-websocket-accept",
    "access-control-allow-credentials",
    "transaction_key",
    "api_key_env",
}
_SECRET_NORMAL = frozenset(_normal(n) for n in SECRET_NAMES)
_URL_ONLY_NORMAL = frozenset(_normal(n) for n in _URL_ONLY_NAMES)
_READABLE_NORMAL = frozenset(_normal(n) for n in READABLE_NAMES)
#: Header names whose value is masked wherever ``Name: value`` is written, with or without a hyphen.
_SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "sec-websocket-protocol",
        "x-api-key",
        "dg-api-key",
    }
)
_SECRET_HEADERS_NORMAL = frozenset(_normal(n) for n in _SECRET_HEADERS)
#: First items of a two-item list that make the second one a credential: a header pair, or the
#: subprotocol list ``["token", "<key>"]`` a browser client offers.
_SECRET_PAIR_NAMES = _SECRET_HEADERS | {"token", "bearer"}
_NAME_LIKE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,80}")


#: What a name may *contain* to carry a credential: the rule's parts and every listed name (so
#: ``X-Bearer``, ``X-OTP``, ``my_phpsessid`` and ``x-cookie`` count as the bare names do), except
#: the URL-only ones (``barcode`` is no credential).
_CONTAINED = tuple(
    sorted({*SECRET_NAME_PARTS} | {n for n in _SECRET_NORMAL | _SECRET_HEADERS_NORMAL if n not in _URL_ONLY_NORMAL})
)


def is_secret_name(name: str, *, in_url: bool = False) -> bool:
    """Whether a query parameter / header / key called ``name`` carries a credential (module doc).
    ``in_url``: the name is a URL's query parameter, where ``code``, ``sid`` and ``ticket`` count too."""
    n = _normal(name)
    if not n or n in _READABLE_NORMAL or n.endswith("authenticate"):
        return False
    if n in _SECRET_NORMAL or n in _SECRET_HEADERS_NORMAL:
        return in_url or n not in _URL_ONLY_NORMAL
    return any(part in n for part in _CONTAINED)


def _is_secret_header(name: str) -> bool:
    return _normal(name) in _SECRET_HEADERS_NORMAL or is_secret_name(name)


# -- the shapes, in text ---------------------------------------------------------------------------
#
# The structural net (:func:`_shapes`) is a fixed sequence of passes over a string. Four mask a value
# by the name in front of it (:class:`_NamedValues`): a header, a URL's query parameter, a quoted
# pair, an assignment. The others mask a credential by its own shape: after an auth scheme, in a
# URL's userinfo, in a subprotocol list, a JWT, a 40-hex-digit API key.


def _mask_spans(s: str, spans: Iterable[tuple[int, int]]) -> str:
    """``s`` with each ``(start, end)`` of ``spans`` (in order, not overlapping) replaced by :data:`MASK`."""
    out: list[str] = []
    pos = 0
    for start, end in spans:
        out += [s[pos:start], MASK]
        pos = end
    if not out:
        return s
    out.append(s[pos:])
    return "".join(out)


class _NamedValues:
    """One *name, then value* shape: ``head`` (a pattern with a ``name`` group) finds a name and the
    separator after it, ``value`` (matched right after the head) is how far the value runs, and
    ``secret`` (given the head's match) says whether it is masked. Only the head is consumed by the
    scan, so a harmless value never hides the next name."""

    __slots__ = ("head", "secret", "value")

    def __init__(self, head: str, value: str, secret: Callable[[re.Match[str]], bool]) -> None:
        self.head = re.compile(head)
        self.value = re.compile(value)
        self.secret = secret

    def __call__(self, s: str) -> str:
        """``s`` with every secret value masked."""
        return _mask_spans(s, self._secret_values(s))

    def _secret_values(self, s: str) -> Iterator[tuple[int, int]]:
        pos = 0
        for m in self.head.finditer(s):
            if m.start() < pos or not self.secret(m):
                continue
            found = self.value.match(s, m.end())
            end = found.end() if found else m.end()
            value = s[m.end() : end]
            if value and value != MASK:
                yield m.end(), end
                pos = end


_PORT = re.compile(r"[0-9]{1,5}(?![^\s/])")


def _header_secret(m: re.Match[str]) -> bool:
    name = m["name"]
    if _normal(name) in _SECRET_HEADERS_NORMAL:
        return True
    if "." in name and m.group().endswith(":") and _PORT.match(m.string, m.end()):
        return False  # "auth.example.com:443" is a host and its port
    # A rule-matched name is a header when it starts a line or is hyphenated (X-Auth-Token: ...);
    # "invalid token: ..." mid-sentence is prose.
    return is_secret_name(name) and (m["bol"] is not None or "-" in name)


#: ``Name: value`` -- a header line, or a header written inline -- masked to the end of the line.
_HEADER_VALUES = _NamedValues(
    r"(?m)(?:(?P<bol>^[ \t]*)|(?<![\w.\-/:@%]))(?P<name>[A-Za-z][A-Za-z0-9_.-]{0,80})[ \t]*:[ \t]*",
    r"[^\r\n]*",
    _header_secret,
)
#: ``?name=`` / ``&name=`` / ``;name=`` / ``#name=`` in a URL; the value runs to the next ``&`` or space.
_QUERY_VALUES = _NamedValues(
    r"[?&;#](?P<name>[^=&;#?\s\"'<>/]{1,100})=",
    r"[^&\s\"'<>]*",
    lambda m: is_secret_name(m["name"], in_url=True),
)
#: ``"name": "value"`` / ``'name': 'value'`` (JSON, Python reprs of header dicts); the value runs to
#: the quote that closes it (the lookbehind picks the alternative of the quote that opened it).
_QUOTED_VALUES = _NamedValues(
    r"(?P<q>[\"'])(?P<name>[^\"'\s]{1,80})(?P=q)\s*[:=]\s*(?P<q2>[\"'])",
    r"""(?<=")(?:[^"\\\r\n]|\\.)*|(?<=')(?:[^'\\\r\n]|\\.)*""",
    lambda m: _is_secret_header(m["name"]),
)
#: ``name=value`` outside a URL: at the start, after a space, a quote, a bracket or a comma.
_ASSIGN_VALUES = _NamedValues(
    r"(?:^|(?<=[\s\"'(,{\[]))(?P<name>[A-Za-z_][A-Za-z0-9_.-]{0,80})=(?!=)",
    r"\"[^\"\r\n]*\"|'[^'\r\n]*'|[^&\s\"'<>]*",
    lambda m: is_secret_name(m["name"]),
)

_CRED = r"[A-Za-z0-9._~+/=-]"
_SHAPED = re.compile(r"[0-9A-Z+/=]")
#: ``Token <x>``, ``Bearer <x>``, ``Basic <x>``...: a credential has a digit, a capital or base64
#: punctuation ("Basic authentication" is prose), or, for Basic, decodes to ``user:password``.
_SCHEME_CRED = re.compile(
    rf"\b(?P<scheme>[Tt]oken|TOKEN|[Bb]earer|BEARER|[Bb]asic|BASIC|NTLM|Negotiate|NEGOTIATE)(?P<sp>\s+)(?P<cred>{_CRED}{{4,}})"
)


def _basic_userpass(cred: str) -> bool:
    try:
        decoded = base64.b64decode(cred, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return False
    return ":" in decoded


def _scheme_cred(m: re.Match[str]) -> str:
    cred = m["cred"]
    if (len(cred) >= 8 and _SHAPED.search(cred)) or (m["scheme"].lower() == "basic" and _basic_userpass(cred)):
        return f"{m['scheme']}{m['sp']}{MASK}"
    return m.group()


#: ``scheme://user:`` -- the password after it runs to the *last* ``@`` of the run (see
#: :func:`_mask_passwords`), so ``p@ss/w:rd#?%`` is masked whole.
_USERINFO_HEAD = re.compile(r"(?i)\b[a-z][a-z0-9+.-]{0,30}://[^/\s:@\"'<>?#\[\]]{0,256}:")
#: ``user:`` of ``user:password@host`` without a scheme (how proxy variables are often written). The
#: host must hold a letter or a dot: dnspython's ``Do53:10.0.0.53@53`` (resolver@port) is no credential.
_BARE_USERINFO_HEAD = re.compile(r"(?<![\w.+:/@%~-])[A-Za-z0-9._~%-]{1,64}:(?!//)")
_HOST_AFTER_AT = re.compile(r"\[|[A-Za-z0-9-]*[A-Za-z.]")
_RUN_STOP = re.compile(r"[\s\"'<>]")


def _mask_passwords(s: str, head: re.Pattern[str], *, need_host: bool) -> str:
    """Mask from each ``head`` (``scheme://user:``) to the last ``@`` of its run (no space, quote or
    angle bracket), so the password may hold ``@ / : # ? %``. Linear: a run without an ``@`` is
    skipped whole, and a masked password is never scanned again."""
    return _mask_spans(s, _passwords(s, head, need_host=need_host))


def _passwords(s: str, head: re.Pattern[str], *, need_host: bool) -> Iterator[tuple[int, int]]:
    skip = 0
    for m in head.finditer(s):
        if m.start() < skip:
            continue
        stop = _RUN_STOP.search(s, m.end())
        run_end = stop.start() if stop else len(s)
        at = s.rfind("@", m.end(), run_end)
        while need_host and at >= 0 and not _HOST_AFTER_AT.match(s, at + 1):
            at = s.rfind("@", m.end(), at)
        if at < 0:
            skip = run_end
            continue
        skip = at + 1
        password = s[m.end() : at]
        if password and password != MASK:
            yield m.end(), at


#: Subprotocol "token, <key>" (the Sec-WebSocket-Protocol way of sending a key).
_SUBPROTOCOL = re.compile(rf"(?i)\b(token,\s*){_CRED}{{8,}}")
#: A JWT (temporary Deepgram tokens are JWTs), whatever carries it.
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*")
#: A Deepgram API key is 40 hex digits; a request id is a UUID (with dashes), so it survives.
_HEX40 = re.compile(r"(?<![0-9A-Za-z_-])[0-9a-fA-F]{40}(?![0-9A-Za-z_-])")


def _shapes(s: str) -> str:
    """One pass of the structural net (no known secrets, no decoding)."""
    s = _HEADER_VALUES(s)
    s = _SCHEME_CRED.sub(_scheme_cred, s)
    s = _mask_passwords(s, _USERINFO_HEAD, need_host=False)
    s = _mask_passwords(s, _BARE_USERINFO_HEAD, need_host=True)
    s = _QUERY_VALUES(s)
    s = _QUOTED_VALUES(s)
    s = _ASSIGN_VALUES(s)
    s = _SUBPROTOCOL.sub(rf"\1{MASK}", s)
    s = _JWT.sub(MASK, s)
    return _HEX40.sub(MASK, s)


# -- percent-encoding ------------------------------------------------------------------------------

_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_PERCENT_RUN = re.compile(r"(?:%[0-9A-Fa-f]{2})+")
#: A piece of a run between raw URL delimiters: what one level of percent-encoding may hide.
_SEGMENT = re.compile(r"[^\s\"'<>?&#=]+")
#: Decoded, these would end a run or a line: they stay escaped.
_KEEP_ESCAPED = re.compile(r"[\s\x00-\x1f\x7f\"'<>]")


def _unquote(text: str) -> tuple[str, set[str]]:
    """One level of percent-decoding (UTF-8; undecodable bytes stay escaped), and the ASCII
    characters it produced. Whitespace, controls, quotes and angle brackets stay escaped."""
    produced: set[str] = set()

    def run(m: re.Match[str]) -> str:
        decoded = bytes.fromhex(m.group().replace("%", "")).decode("utf-8", "surrogateescape")
        out = []
        for ch in decoded:
            if "\udc80" <= ch <= "\udcff":  # a byte that is not UTF-8
                out.append(f"%{ord(ch) - 0xDC00:02X}")
            elif _KEEP_ESCAPED.match(ch):
                out.append(urllib.parse.quote(ch, safe=""))
            else:
                if ch.isascii():
                    produced.add(ch)
                out.append(ch)
        return "".join(out)

    return _PERCENT_RUN.sub(run, text), produced


def redact_url(url: str) -> str:
    """One URL -- a proxy variable, an argument that does not parse -- safe for a message: everything
    between ``scheme://`` and the *last* ``@`` but the user name is masked, whatever the password
    holds (``/ @ : # ? %``, spaces), every credential query parameter is masked to the next ``&``,
    then the structural net runs. Conservative: an ``@`` later in the path counts as well."""
    m = re.match(r"\s*(?:[A-Za-z][A-Za-z0-9+.-]*://)?", url)
    head = url[: m.end()] if m else ""
    rest = url[len(head) :]
    at = rest.rfind("@")
    if at >= 0:
        user, colon, _password = rest[:at].partition(":")
        if colon:
            rest = f"{user}:{MASK}{rest[at:]}"
            at = len(user) + 1 + len(MASK)
    query_at = rest.find("?", max(at, 0))
    if query_at >= 0:
        fields = re.split(r"([&;])", rest[query_at + 1 :])
        for i in range(0, len(fields), 2):
            name, eq, value = fields[i].partition("=")
            if eq and value and value != MASK and is_secret_name(name, in_url=True):
                fields[i] = f"{name}={MASK}"
        rest = rest[: query_at + 1] + "".join(fields)
    return Redactor().text(head + rest)


class Redactor:
    """Masks secrets in strings, JSON-like values, results and whole reports."""

    #: Passes of :meth:`text` at most: one masks, the next confirms nothing is left (decoding can
    #: reveal a layer more).
    MAX_PASSES = 4

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is masked whole. Very short values
        # would mask innocent text; a real key is never that short. The percent-encoded forms are
        # how a secret travels in a URL (a proxy password with '@' or ':' in it, say).
        known = {s for s in secrets if s and len(s) >= 6}
        forms = set(known)
        for s in known:
            forms |= {
                urllib.parse.quote(s, safe=""),
                urllib.parse.quote(s),
                urllib.parse.quote_plus(s, safe=""),
            }
        self.secrets = sorted(forms, key=len, reverse=True)
        # text() is a pure function of the string (the secrets are fixed): a report repeats the same
        # strings many times (event kinds, message types, one transcript per Results...), so each
        # distinct short string is redacted once. Bounded: short strings, at most MEMO_ENTRIES.
        self._memo: dict[str, str] = {}

    MEMO_ENTRIES = 65536
    MEMO_MAX_CHARS = 512

    def _known(self, s: str) -> str:
        for secret in self.secrets:
            if secret in s:
                s = s.replace(secret, MASK)
        return s

    def _decoded(self, s: str) -> str:
        """Percent-encoded secrets: each segment of a run (between a raw ``?``, ``&``, ``#`` or ``=``) that
        holds escapes is decoded -- up to three levels -- and if that reveals a secret, the segment
        is shown with the secret masked and every character that was escaped escaped again, so a URL
        keeps its structure (``callback=https%3A%2F%2Fu%3A***REDACTED***%40h``)."""
        if "%" not in s:
            return s

        def segment(m: re.Match[str]) -> str:
            original = m.group()
            if not _PERCENT.search(original):
                return original
            text, escaped = original, set()
            for _ in range(3):
                decoded, chars = _unquote(text)
                if decoded == text:
                    break
                escaped |= chars
                masked = _shapes(self._known(decoded))
                if masked != decoded:
                    return "".join(urllib.parse.quote(ch, safe="") if ch in escaped else ch for ch in masked)
                text = decoded
            return original

        return _SEGMENT.sub(segment, s)

    def _once(self, s: str) -> str:
        return self._decoded(_shapes(self._known(s)))

    def text(self, s: str) -> str:
        memo = len(s) <= self.MEMO_MAX_CHARS
        if memo and s in self._memo:
            return self._memo[s]
        original = s
        for _ in range(self.MAX_PASSES):
            out = self._once(s)
            if out == s:
                break
            s = out
        if memo and len(self._memo) < self.MEMO_ENTRIES:
            self._memo[original] = s
        return s

    def _masked(self, v: Any) -> Any:
        """A value under a credential's name: strings (also inside lists) become the mask."""
        if isinstance(v, str):
            return MASK if v else v
        if isinstance(v, Sequence) and not isinstance(v, (bytes, bytearray)):
            return [self._masked(i) for i in v]
        return self.value(v)

    def value(self, v: Any) -> Any:
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, Mapping):
            # A header record {"name": "Authorization", "value": "Token ..."} loses its value.
            name = v.get("name")
            secret_record = isinstance(name, str) and _is_secret_header(name)
            out: dict[str, Any] = {}
            for k in v:
                key, item = str(k), v[k]
                lowered = key.lower()
                if item and (lowered in _SECRET_HEADERS or (secret_record and lowered == "value")):
                    out[self.text(key)] = MASK
                elif item and _is_secret_header(key):
                    out[self.text(key)] = self._masked(item)
                elif isinstance(item, str) and _normal(key).endswith("proxy"):
                    out[self.text(key)] = redact_url(self.text(item)) if "@" in item else self.text(item)
                else:
                    out[self.text(key)] = self.value(item)
            return out
        if isinstance(v, Sequence) and not isinstance(v, (bytes, bytearray)):
            items = list(v)
            # A header pair ["Authorization", "Token abc"] keeps its name and loses its value.
            if len(items) == 2 and isinstance(items[0], str):
                first = items[0]
                if first.lower() in _SECRET_PAIR_NAMES:
                    return [self.text(first), MASK]
                if isinstance(items[1], str) and items[1] and _NAME_LIKE.fullmatch(first) and _is_secret_header(first):
                    return [self.text(first), MASK]
            return [self.value(i) for i in items]
        return v

    def finding(self, f: Finding) -> Finding:
        return replace(
            f,
            code=self.text(f.code),
            cause=self.text(f.cause),
            message=self.text(f.message),
            evidence=self.value(dict(f.evidence)),
        )

    def result(self, r: CheckResult) -> CheckResult:
        return replace(
            r,
            check_id=self.text(r.check_id),
            title=self.text(r.title),
            summary=self.text(r.summary),
            metrics={self.text(str(k)): v for k, v in r.metrics.items()},
            evidence=self.value(dict(r.evidence)),
            findings=tuple(self.finding(f) for f in r.findings),
            blocked_by=self.text(r.blocked_by) if r.blocked_by is not None else None,
        )

    def report(self, report: Report) -> Report:
        """Every string of ``report`` redacted: results, environment, target URL, header fields.

        Used by the output layer on every report before any reporter sees it, so a report.json
        edited by hand (or written by an older wsdoctor) cannot smuggle a secret into HTML or JUnit.
        """
        return replace(
            report,
            target=replace(report.target, url=self.text(report.target.url), host=self.text(report.target.host)),
            results=tuple(self.result(r) for r in report.results),
            started_at=self.text(report.started_at),
            wsdoctor_version=self.text(report.wsdoctor_version),
            environment=self.value(dict(report.environment)),
        )
