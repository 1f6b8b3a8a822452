"""Redaction: secrets leave the model before any reporter, log or fixture can see them.

Two nets. The first knows the secrets of this run (the API key, proxy passwords) and replaces every
occurrence in every string -- as written, and percent-encoded as a URL would carry it. The second
knows the *shapes* of secrets whatever their value, so a hostile server echoing a credential we
never registered, or a hand-edited report.json, still cannot get it printed:

- header values of ``Authorization``, ``Proxy-Authorization``, ``Cookie``/``Set-Cookie``,
  ``Sec-WebSocket-Protocol``, ``X-Api-Key``/``Dg-Api-Key`` -- as mapping keys, as ``[name, value]``
  pairs, as ``{"name": ..., "value": ...}`` records, and as ``Name: value`` lines in raw text;
- ``Token``/``Bearer``/``Basic`` credentials in prose, and bare JWTs (temporary Deepgram tokens);
- passwords in URLs (``scheme://user:password@host``), also when the password holds an ``@``;
- credential query parameters (``?token=``, ``access_token=``, ``api_key=``, ``key=``...);
- ``token, <key>`` subprotocol values, as text or as a ``["token", "<key>"]`` list;
- bare 40-hex-digit strings: the shape of a Deepgram API key.

:meth:`Redactor.report` applies all of it to every string of a whole :class:`Report`. It is
idempotent (a masked report comes out unchanged), so the output layer can run it on every report
it writes -- live or loaded from a file -- without double-masking anything.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from wsdoctor.model import CheckResult, Finding, Report

__all__ = ["MASK", "Redactor"]

MASK = "***REDACTED***"
_SECRET_HEADERS = {
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "sec-websocket-protocol",
    "x-api-key",
    "dg-api-key",
}
#: First items of a two-item list that make the second one a credential: a header pair, or the
#: subprotocol list ``["token", "<key>"]`` a browser client offers.
_SECRET_PAIR_NAMES = _SECRET_HEADERS | {"token", "bearer"}
_CRED = r"[A-Za-z0-9._~+/=-]"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # A secret header written as a line of raw HTTP (a body or raw excerpt): mask to the end of the line.
    (
        re.compile(r"(?im)\b((?:proxy-)?authorization|x-api-key|dg-api-key|(?:set-)?cookie)([ \t]*:[ \t]*)[^\r\n]+"),
        rf"\1\2{MASK}",
    ),
    # A credential has a digit, a capital or base64 punctuation: "Basic authentication" is prose.
    (
        re.compile(rf"\b([Tt]oken|TOKEN|[Bb]earer|BEARER|[Bb]asic|BASIC)\s+(?=[a-z._~-]*[0-9A-Z+/=]){_CRED}{{8,}}"),
        rf"\1 {MASK}",
    ),
    # user:password@ in URLs; the password runs to the *last* @ before the path, so "p@ss" is whole.
    (re.compile(r"(?i)(://[^/\s:@]*:)[^\s/]*@"), rf"\1{MASK}@"),
    # Credential query parameters in any URL that reaches the report (Location headers, raw text).
    (
        re.compile(r"(?i)([?&;](?:token|key|api_key|apikey|api-key|access_token|auth)=)[^&#\s\"'<>]+"),
        rf"\1{MASK}",
    ),
    # Subprotocol "token, <key>" (the Sec-WebSocket-Protocol way of sending a key).
    (re.compile(rf"(?i)\b(token,\s*){_CRED}{{8,}}"), rf"\1{MASK}"),
    # A JWT (temporary Deepgram tokens are JWTs), whatever carries it.
    (re.compile(r"\beyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*"), MASK),
    # A Deepgram API key is 40 hex digits; a request id is a UUID (with dashes), so it survives.
    (re.compile(r"(?<![0-9A-Za-z_-])[0-9a-fA-F]{40}(?![0-9A-Za-z_-])"), MASK),
)


class Redactor:
    """Masks secrets in strings, JSON-like values, results and whole reports."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is masked whole. Very short values
        # would mask innocent text; a real key is never that short. The percent-encoded form is
        # how a key travels in a URL (a proxy password with '@' or ':' in it, say).
        known = {s for s in secrets if s and len(s) >= 6}
        known |= {urllib.parse.quote(s, safe="") for s in known}
        self.secrets = sorted(known, key=len, reverse=True)

    def text(self, s: str) -> str:
        for secret in self.secrets:
            if secret in s:
                s = s.replace(secret, MASK)
        for pattern, replacement in _PATTERNS:
            s = pattern.sub(replacement, s)
        return s

    def value(self, v: Any) -> Any:
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, Mapping):
            # A header record {"name": "Authorization", "value": "Token ..."} loses its value.
            name = v.get("name")
            secret_record = isinstance(name, str) and name.lower() in _SECRET_HEADERS
            return {
                self.text(str(k)): (
                    MASK
                    if v[k] and (str(k).lower() in _SECRET_HEADERS or (secret_record and str(k).lower() == "value"))
                    else self.value(v[k])
                )
                for k in v
            }
        if isinstance(v, Sequence) and not isinstance(v, (bytes, bytearray)):
            items = list(v)
            # A header pair ["Authorization", "Token abc"] keeps its name and loses its value.
            if len(items) == 2 and isinstance(items[0], str) and items[0].lower() in _SECRET_PAIR_NAMES:
                return [self.text(items[0]), MASK]
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
