"""Make server-controlled text safe to show: no control characters, bounded length.

Close reasons, headers and transcripts come from the server, which may be hostile. Terminal output
must never carry a raw escape sequence (it could rewrite the screen or the window title), so every
C0/C1 control character, DEL and the Unicode bidi overrides are shown as visible ``\\xNN`` escapes.
HTML escaping is the template engine's job (autoescape); this module is about *control* characters.
"""

from __future__ import annotations

import re

__all__ = ["printable"]

# C0 controls, DEL, C1 controls, and bidi embedding/override/isolate characters (Trojan Source).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


def printable(text: object, limit: int = 500, *, keep_newlines: bool = False) -> str:
    """``text`` with every control character escaped, cut to ``limit`` characters."""
    s = text if isinstance(text, str) else str(text)
    if len(s) > limit:
        s = s[:limit] + f"… ({len(s) - limit} more characters)"
    if keep_newlines:
        return "\n".join(_UNSAFE.sub(_escape, line) for line in s.split("\n"))
    return _UNSAFE.sub(_escape, s)
