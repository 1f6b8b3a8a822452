"""Every recorded observation in fixtures/observations/ loads through its type's ``from_dict``.

The analyzers take typed observations, and the fixture tests feed them recorded ones: a fixture
that no longer matches its type (a field renamed in the probe, a value out of its vocabulary) must
fail here, loudly, instead of being judged half-read. A new fixture directory must be mapped below.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from wsdoctor.probes.host import (
    ClockObservation,
    EphemeralObservation,
    FdObservation,
    SchedulingObservation,
    SocketObservation,
)
from wsdoctor.probes.idle import IdleFamily
from wsdoctor.probes.netpath import ProxyConnectObservation, TcpObservation, TlsObservation
from wsdoctor.probes.proxy import RouteDecision
from wsdoctor.probes.resolver import DnsObservation
from wsdoctor.probes.sdk import SdkObservation
from wsdoctor.probes.session import SessionObservation
from wsdoctor.probes.wsclient import UpgradeObservation
from wsdoctor.record import FixtureError

OBS = Path(__file__).resolve().parent.parent / "fixtures" / "observations"


def _close_pair(d: Mapping[str, Any]) -> object:
    if set(d) - {"closestream", "client_close", "_note"}:
        raise FixtureError(f"close fixture: unknown keys {sorted(set(d) - {'closestream', 'client_close'})}")
    return SessionObservation.from_dict(d["closestream"]), SessionObservation.from_dict(d["client_close"])


#: host/ holds one probe's observations per file-name prefix
_HOST = {
    "sockets": SocketObservation.from_dict,
    "fds": FdObservation.from_dict,
    "ephemeral": EphemeralObservation.from_dict,
    "loop": SchedulingObservation.from_dict,
    "clock": ClockObservation.from_dict,
}


def _host(d: Mapping[str, Any], name: str) -> object:
    return _HOST[name.split("-", 1)[0]](d)


#: fixture directory -> how its files load (the same way the analyzer tests load them)
LOADERS: dict[str, Callable[[Mapping[str, Any]], object]] = {
    "close": _close_pair,
    "http": UpgradeObservation.from_dict,
    "idle": IdleFamily.from_dict,
    "stream": SessionObservation.from_dict,
    "ws": UpgradeObservation.from_dict,
    "dns": DnsObservation.from_dict,
    "tcp": TcpObservation.from_dict,
    "tls": TlsObservation.from_dict,
    "proxy": ProxyConnectObservation.from_dict,
    "env": RouteDecision.from_dict,
    "sdk": SdkObservation.from_dict,
}

FIXTURES = sorted(p.relative_to(OBS).as_posix() for p in OBS.glob("*/*.json"))


def load(name: str) -> object:
    family, file = name.split("/")
    data = json.loads((OBS / name).read_text())
    return _host(data, file) if family == "host" else LOADERS[family](data)


def test_every_fixture_directory_has_a_loader() -> None:
    assert {p.name for p in OBS.iterdir() if p.is_dir()} <= set(LOADERS) | {"host"}
    assert len(FIXTURES) >= 99  # the glob found the recordings (99 when this was written)


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_loads_as_its_type(name: str) -> None:
    load(name)


@pytest.mark.parametrize("name", ["stream/healthy.json", "http/healthy.json", "idle/healthy.json"])
def test_a_renamed_field_fails(name: str) -> None:
    data = json.loads((OBS / name).read_text())
    target = data.get("upgrade", data)
    if "connections" in data:
        target = data["connections"][0]["upgrade"]
    target["result"] = target.pop("outcome")
    with pytest.raises(FixtureError, match="unknown field"):
        LOADERS[name.split("/")[0]](data)


def test_a_value_outside_its_vocabulary_fails() -> None:
    data = json.loads((OBS / "stream/healthy.json").read_text())
    data["terminal"] = "vanished"
    with pytest.raises(FixtureError, match="vanished"):
        SessionObservation.from_dict(data)
    data = json.loads((OBS / "stream/healthy.json").read_text())
    data["events"][0]["direction"] = "sideways"
    with pytest.raises(FixtureError, match="sideways"):
        SessionObservation.from_dict(data)


def test_a_missing_required_field_fails() -> None:
    data = json.loads((OBS / "ws/healthy.json").read_text())
    del data["url"]
    with pytest.raises(FixtureError, match="missing field 'url'"):
        UpgradeObservation.from_dict(data)


def _subset(recorded: Any, emitted: Any, where: str = "") -> None:
    if isinstance(recorded, dict):
        for key, value in recorded.items():
            assert key in emitted, f"{where}.{key} dropped"
            _subset(value, emitted[key], f"{where}.{key}")
    elif isinstance(recorded, list):
        assert len(recorded) == len(emitted), where
        for i, (r, e) in enumerate(zip(recorded, emitted, strict=True)):
            _subset(r, e, f"{where}[{i}]")
    else:
        assert recorded == emitted, where


@pytest.mark.parametrize("name", [f for f in FIXTURES if f.split("/")[0] in ("stream", "http", "idle")])
def test_round_trip_keeps_every_recorded_value(name: str) -> None:
    """What a report holds is what the analyzers judged: every recorded value survives
    from_dict -> to_dict (fields added since the recording appear with their defaults)."""
    data = json.loads((OBS / name).read_text())
    data.pop("_note", None)
    obs = LOADERS[name.split("/")[0]](data)
    emitted = json.loads(json.dumps(obs.to_dict()))  # type: ignore[attr-defined]
    _subset(data, emitted)
    assert type(obs).from_dict(emitted).to_dict() == obs.to_dict()  # type: ignore[attr-defined]
