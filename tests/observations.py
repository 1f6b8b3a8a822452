"""Typed observations built by hand for unit tests, with the defaults a real probe records.

The analyzers take the probes' frozen dataclasses; these builders keep a test to the facts it is
about (an answer's status and headers, how a connection ended) instead of a full recording.
"""

from __future__ import annotations

from collections.abc import Sequence

from wsdoctor.model import Outcome
from wsdoctor.probes.wsclient import HttpAnswer, UpgradeObservation

URL = "wss://api.deepgram.com/v1/listen"


def upgrade_obs(
    outcome: Outcome,
    *,
    status: int | None = None,
    headers: Sequence[tuple[str, str]] = (),
    body: str = "",
    reason: str = "",
    authenticated: bool = True,
    url: str = URL,
) -> UpgradeObservation:
    """One Upgrade as WsProbe.connect records it; ``status`` makes it carry an HTTP answer."""
    answer = HttpAnswer(status, reason, tuple(headers), body) if status is not None else None
    opened = outcome is Outcome.UPGRADED
    return UpgradeObservation(
        url=url,
        authenticated=authenticated,
        address="192.0.2.10:443",
        marks=(("connecting", 0.0), ("upgrading", 0.05)) + ((("open", 0.08),) if opened else ()),
        outcome=outcome,
        answer=answer,
        accept_ok=True if opened else None,
    )
