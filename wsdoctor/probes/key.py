"""What the API key variable holds -- its state and its form, never its characters.

Theory of operation. The key is read once per run from the variable the user named
(``--api-key-env``, default ``DEEPGRAM_API_KEY``). :func:`read_key` records whether the variable is
unset, set but empty, or set, and -- through :func:`wsdoctor.deepgram.key_shape` -- the form of the
value: surrounding whitespace or a newline (a key read from a file, pasted from a terminal), quotes
(a ``.env`` value copied with them), a scheme already inside it (``Token abc``: the SDK adds its own
and sends ``Token Token abc``), or a JWT (a temporary token: ``Bearer``, expires in about 30 s; its
``exp`` claim is read, the signature never checked). The run then uses the *cleaned* key, so the
rest of the path is still diagnosed; the observation keeps what the app would send as-is. The
observation holds no key material: lengths and booleans only, safe in any report.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wsdoctor import deepgram
from wsdoctor.model import JSONValue

__all__ = ["KeyObservation", "KeyState", "read_key"]

KeyState = str  # "unset" | "empty" | "set" | "mock" (the run made its own key for the built-in mock)


@dataclass(frozen=True, slots=True)
class KeyObservation:
    variable: str
    state: KeyState
    shape: deepgram.KeyShape | None = None
    read_at: float = 0.0  # Unix time when it was read: a JWT's exp is judged against it

    def to_dict(self) -> dict[str, JSONValue]:
        """The variable's state and the key's shape, flattened -- never the key itself."""
        shape = self.shape
        d: dict[str, JSONValue] = {"variable": self.variable, "state": self.state, "read_at": self.read_at}
        for name in ("length", "scheme_prefix", "jwt_expires_at", "jwt_issued_at"):
            d[name] = getattr(shape, name) if shape else None
        d["problems"] = list(shape.problems) if shape else []
        d["jwt"] = shape.jwt if shape else False
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> KeyObservation:
        """Rebuild from a report's evidence (enough for ``analyze``; the shape is re-derived)."""
        problems = {str(p) for p in d.get("problems") or []}
        length = d.get("length")
        shape = None
        if isinstance(length, int):
            exp, iat = d.get("jwt_expires_at"), d.get("jwt_issued_at")
            shape = deepgram.KeyShape(
                length=length,
                surrounding_whitespace="whitespace" in problems,
                newline="newline" in problems,
                quoted="quotes" in problems,
                scheme_prefix=str(d["scheme_prefix"]) if d.get("scheme_prefix") else None,
                inner_whitespace="inner-whitespace" in problems,
                jwt=bool(d.get("jwt")),
                jwt_expires_at=float(exp) if isinstance(exp, int | float) else None,
                jwt_issued_at=float(iat) if isinstance(iat, int | float) else None,
            )
        read_at = d.get("read_at")
        return cls(
            variable=str(d.get("variable", "")),
            state=str(d.get("state", "unset")),
            shape=shape,
            read_at=float(read_at) if isinstance(read_at, int | float) else 0.0,
        )


def read_key(variable: str, raw: str | None, *, now: float | None = None) -> tuple[KeyObservation, str | None]:
    """The observation of ``raw`` (the variable's value, ``None`` when unset) and the key to use."""
    read_at = time.time() if now is None else now
    if raw is None:
        return KeyObservation(variable, "unset", read_at=read_at), None
    if not raw.strip():
        return KeyObservation(variable, "empty", read_at=read_at), None
    cleaned = deepgram.clean_key(raw)
    return KeyObservation(variable, "set", deepgram.key_shape(raw), read_at), cleaned or None
