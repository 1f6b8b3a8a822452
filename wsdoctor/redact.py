"""Redaction: secrets leave the model before any reporter, log or fixture can see them.

Two nets. The first knows the secrets of this run (the API key, proxy passwords) and replaces every
occurrence in every string. The second knows the *shapes* of secrets whatever their value:
``Authorization``/``Proxy-Authorization`` header values, ``Token``/``Bearer`` credentials, passwords
in URLs, ``token, <key>`` subprotocol values -- so a hostile server echoing a credential we never
registered still cannot get it printed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from wsdoctor.model import CheckResult, Finding

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
_PATTERNS = (
    # A credential has a digit, a capital or base64 punctuation: "Basic authentication" is prose.
    re.compile(r"\b([Tt]oken|TOKEN|[Bb]earer|BEARER|[Bb]asic|BASIC)\s+(?=[a-z._~-]*[0-9A-Z+/=])[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)(://[^/\s:@]*:)[^@\s/]+@"),  # user:password@ in URLs
    re.compile(r"(?i)\b(token,\s*)[A-Za-z0-9._~+/=-]{8,}"),  # subprotocol "token, <key>"
)


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is masked whole. Very short values
        # would mask innocent text; a real key is never that short.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def text(self, s: str) -> str:
        for secret in self.secrets:
            if secret in s:
                s = s.replace(secret, MASK)
        s = _PATTERNS[0].sub(lambda m: f"{m.group(1)} {MASK}", s)
        s = _PATTERNS[1].sub(lambda m: f"{m.group(1)}{MASK}@", s)
        return _PATTERNS[2].sub(lambda m: f"{m.group(1)}{MASK}", s)

    def value(self, v: Any) -> Any:
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, Mapping):
            return {
                self.text(str(k)): (MASK if str(k).lower() in _SECRET_HEADERS and v[k] else self.value(v[k])) for k in v
            }
        if isinstance(v, Sequence) and not isinstance(v, (bytes, bytearray)):
            items = list(v)
            # A header pair ["Authorization", "Token abc"] keeps its name and loses its value.
            if len(items) == 2 and isinstance(items[0], str) and items[0].lower() in _SECRET_HEADERS:
                return [items[0], MASK]
            return [self.value(i) for i in items]
        return v

    def finding(self, f: Finding) -> Finding:
        return replace(f, message=self.text(f.message), evidence=self.value(dict(f.evidence)))

    def result(self, r: CheckResult) -> CheckResult:
        return replace(
            r,
            summary=self.text(r.summary),
            evidence=self.value(dict(r.evidence)),
            findings=tuple(self.finding(f) for f in r.findings),
        )
