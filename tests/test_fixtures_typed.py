"""Every recorded observation in fixtures/observations/ loads through its type's ``from_dict``.

The analyzers take typed observations, and the fixture tests feed them recorded ones: a fixture
that no longer matches its type (a field renamed in the probe, a value out of its vocabulary, a
stale hand-cut derived value) must fail here, loudly, instead of being judged half-read. A new
fixture directory must be mapped below. Every recorded value survives from_dict -> to_dict, so what
a report holds is what the analyzers judged.
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
from wsdoctor.probes.watch import WatchedConnection
from wsdoctor.probes.wsclient import UpgradeObservation
from wsdoctor.record import FixtureError, Record

OBS = Path(__file__).resolve().parent.parent / "fixtures" / "observations"


class ClosePair:
    """close/ holds the two sessions of close.handshake."""

    def __init__(self, d: Mapping[str, Any]) -> None:
        if unknown := set(d) - {"closestream", "client_close", "_note"}:
            raise FixtureError(f"close fixture: unknown field(s) {sorted(unknown)}")
        self.closestream = SessionObservation.from_dict(d["closestream"])
        self.client_close = SessionObservation.from_dict(d["client_close"])

    def to_dict(self) -> dict[str, Any]:
        return {"closestream": self.closestream.to_dict(), "client_close": self.client_close.to_dict()}


#: fixture directory -> its observation type (host/ by file-name prefix)
TYPES: dict[str, type[Record]] = {
    "http": UpgradeObservation,
    "ws": UpgradeObservation,
    "idle": IdleFamily,
    "stream": SessionObservation,
    "dns": DnsObservation,
    "tcp": TcpObservation,
    "tls": TlsObservation,
    "proxy": ProxyConnectObservation,
    "env": RouteDecision,
    "sdk": SdkObservation,
    "watch": WatchedConnection,
}
HOST_TYPES: dict[str, type[Record]] = {
    "sockets": SocketObservation,
    "fds": FdObservation,
    "ephemeral": EphemeralObservation,
    "loop": SchedulingObservation,
    "clock": ClockObservation,
}

FIXTURES = sorted(p.relative_to(OBS).as_posix() for p in OBS.glob("*/*.json"))


def raw(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((OBS / name).read_text())
    return data


def loader(name: str) -> Callable[[Mapping[str, Any]], Any]:
    family, file = name.split("/")
    if family == "close":
        return ClosePair
    if family == "host":
        return HOST_TYPES[file.split("-", 1)[0]].from_dict
    return TYPES[family].from_dict


def test_every_fixture_directory_has_a_type() -> None:
    assert {p.name for p in OBS.iterdir() if p.is_dir()} == {*TYPES, "host", "close"}
    assert len(FIXTURES) >= 99  # the glob found the recordings (99 when this was written)


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


@pytest.mark.parametrize("name", FIXTURES)
def test_every_fixture_loads_strictly_and_keeps_every_value(name: str) -> None:
    """Fields added since a recording appear with their defaults; nothing recorded is lost or
    changed (a stale derived value, e.g. an ephemeral range's size, fails), and the report form
    reads back as itself."""
    data = raw(name)
    data.pop("_note", None)
    obs = loader(name)(data)
    emitted = json.loads(json.dumps(obs.to_dict()))
    _subset(data, emitted)
    assert loader(name)(emitted).to_dict() == obs.to_dict()


def _at(data: Any, path: tuple[str | int, ...]) -> Any:
    for step in path:
        data = data[step]
    return data


@pytest.mark.parametrize(
    ("name", "path", "renamed"),
    [
        ("stream/healthy.json", ("upgrade",), ("outcome", "result")),
        ("close/healthy.json", ("client_close", "events", 0), ("kind", "type")),
        ("http/healthy.json", ("answer",), ("status", "status_code")),
        ("idle/healthy.json", ("connections", 0, "upgrade"), ("outcome", "result")),
        ("dns/healthy.json", (), ("addresses", "address_list")),
        ("dns/healthy.json", ("records", "A"), ("answers", "answer")),
        ("tcp/healthy.json", (), ("port", "target_port")),
        ("tcp/proxy-refused.json", ("attempts", 0), ("outcome", "result")),
        ("tls/expired.json", (), ("verify_message", "verify_msg")),
        ("tls/expired.json", ("chain", 0), ("issuer", "issued_by")),
        ("tls/expired.json", ("stores", "certifi"), ("verify_code", "code")),
        ("proxy/denied-403.json", (), ("direct_tcp", "direct")),
        ("proxy/denied-403.json", ("tunnel",), ("status", "status_code")),
        ("env/disagreement.json", (), ("route", "way")),
        ("env/disagreement.json", ("disagreements", 0), ("used_by_urllib", "urllib_uses")),
        ("host/sockets-close-wait.json", (), ("time_wait", "time_waits")),
        ("host/sockets-close-wait.json", ("close_wait_persisting", 0), ("status", "state")),
        ("host/fds-ok.json", (), ("soft_limit", "soft")),
        ("host/loop-lag.json", ("wakeups",), ("max_lag_s", "max_lag")),
        ("sdk/installed-current.json", (), ("pins", "pinned")),
        ("sdk/installed-current.json", ("pins", 0), ("exact", "version")),
        ("watch/sdk-healthy.json", ("client_stats",), ("max_gap_s", "longest_gap")),
        ("watch/sdk-healthy.json", ("events", 0), ("side", "direction")),
    ],
)
def test_a_renamed_field_is_a_fixture_error(name: str, path: tuple[str | int, ...], renamed: tuple[str, str]) -> None:
    data = raw(name)
    node = _at(data, path)
    old, new = renamed
    node[new] = node.pop(old)
    with pytest.raises(FixtureError, match=new):
        loader(name)(data)


@pytest.mark.parametrize(
    ("name", "path", "key", "value"),
    [
        ("stream/healthy.json", (), "terminal", "vanished"),
        ("stream/healthy.json", ("events", 0), "direction", "sideways"),
        ("ws/healthy.json", (), "outcome", "econnaborted"),
        ("dns/healthy.json", ("records", "A"), "outcome", "okay"),
        ("dns/healthy.json", (), "source", "hosts-file"),
        ("tcp/refused.json", ("attempts", 0), "outcome", "ECONNREFUSED"),
        ("tcp/refused.json", ("attempts", 0), "family", "ipv5"),
        ("tls/sni-reset.json", (), "outcome", "handshake-failed"),
        ("proxy/established.json", ("tunnel",), "status", "200"),
        ("env/direct.json", (), "route", "socks"),
        ("host/loop-ok.json", (), "sampler", "fiber"),
        ("host/fds-ok.json", (), "scope", "host"),
        ("watch/sdk-healthy.json", ("client_end",), "tcp", "vanished"),
        ("watch/sdk-healthy.json", ("events", 0), "side", "middle"),
    ],
)
def test_a_value_outside_its_type_is_a_fixture_error(
    name: str, path: tuple[str | int, ...], key: str, value: str
) -> None:
    data = raw(name)
    _at(data, path)[key] = value
    with pytest.raises(FixtureError, match=f"{value}|{key}"):
        loader(name)(data)


def test_a_missing_required_field_is_a_fixture_error() -> None:
    data = raw("ws/healthy.json")
    del data["url"]
    with pytest.raises(FixtureError, match="missing field 'url'"):
        UpgradeObservation.from_dict(data)
