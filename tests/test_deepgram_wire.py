"""Every real Deepgram string in ``fixtures/deepgram-wire/`` is a test, through the analyzers and
through ``explain``.

The corpus holds what Deepgram really sent, copied from public pages (each item names its URL):
close reasons as clients print them, HTTP rejections, server messages. The judges were once
calibrated on our own mock, whose NET-0001 reason carried a "NET-0001" token the real one lacks, and
a healthy idle close came out as a failure. These tests keep the judges on the wire's side:

- a close item's code and reason are recognised (``deepgram.identify_close``) as the reason it is;
- through ``judge_close_code`` it yields the expected finding and cause, and a NET-0001 close of a
  silent stream is the INFO it is (never a failure) through ``idle.silent``'s analyzer;
- an HTTP item's status, headers and body, as an upgrade answer, yield the expected finding and
  cause through ``ws.auth``'s analyzer;
- a server message satisfies the protocol module's message contract;
- every item's text, pasted into ``explain``, names the expected knowledge-base entry.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from checks import close, idle, ws
from tests.observations import upgrade_obs
from wsdoctor import deepgram
from wsdoctor.causes import CAUSES, FINDING_CODES
from wsdoctor.explain import explain_text, load_kb
from wsdoctor.model import EndKind, FrameKind, Outcome, Status
from wsdoctor.probes.idle import IdleConnection, IdleFamily
from wsdoctor.probes.wsclient import UpgradeObservation, WireEvent

CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "deepgram-wire"
KINDS = {"close-log", "http-error", "server-message", "no-close-frame", "rest-response"}


def _items() -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(CORPUS.glob("*.json"))]


ITEMS = _items()


def _ids(kind: str | None = None, need: str | None = None) -> list[Any]:
    return [
        pytest.param(item, id=item["id"])
        for item in ITEMS
        if (kind is None or item["kind"] == kind) and (need is None or item.get(need) is not None)
    ]


def test_the_corpus_is_large_varied_and_sourced() -> None:
    assert len(ITEMS) >= 40
    kinds = {k: sum(1 for i in ITEMS if i["kind"] == k) for k in KINDS}
    assert all(n >= 4 for k, n in kinds.items() if k != "rest-response"), kinds
    reasons = [i["expect"]["reason"] for i in ITEMS]
    assert reasons.count("NET-0001") >= 8 and reasons.count("NET-0000") >= 3
    sources = {i["source"] for i in ITEMS}
    assert len(sources) >= 30  # many independent pages, not one page copied many times


@pytest.mark.parametrize("item", _ids())
def test_item_format(item: dict[str, Any]) -> None:
    path = CORPUS / f"{item['id']}.json"
    assert path.is_file() and re.fullmatch(r"[a-z0-9-]+", item["id"])
    assert item["kind"] in KINDS
    assert item["source"].startswith("https://") and item["text"]
    expect = item["expect"]
    assert expect["reason"] in (None, *(r.id for r in deepgram.CLOSE_REASONS))
    assert expect["finding"] is None or expect["finding"] in FINDING_CODES
    assert expect["cause"] is None or expect["cause"] in CAUSES
    if item.get("close") is not None:
        assert item["close"]["reason"] in item["text"]  # the structured part is read off the text
    # no key material: Deepgram keys are 40 hex characters
    assert not re.search(r"\b[0-9a-f]{40}\b", json.dumps(item))


@pytest.mark.parametrize("item", _ids(need="close"))
def test_close_reason_is_recognised_by_its_identifiers(item: dict[str, Any]) -> None:
    closed = item["close"]
    known = deepgram.identify_close(closed["code"], closed["reason"])
    assert (known.id if known else None) == item["expect"]["reason"]


#: RFC 6455 7.4.1: reserved codes a client *reports* and no close frame carries. A 1006 means the
#: connection ended without a close frame; the probe records that as an EOF, not as a close.
_NO_CLOSE_FRAME = 1006


@pytest.mark.parametrize("item", _ids(need="close"))
def test_close_is_judged_as_expected(item: dict[str, Any]) -> None:
    closed, expect = item["close"], item["expect"]
    if closed["code"] == _NO_CLOSE_FRAME:
        finding = close.judge_ending(EndKind.EOF, None, "mid-stream")
    else:
        finding = close.judge_close_code(closed["code"], closed["reason"], "mid-stream")
    if expect["finding"] is None:
        assert finding is None
        return
    assert finding is not None
    assert (finding.code, finding.cause) == (expect["finding"], expect["cause"])


def _silent_family(code: int, reason: str) -> IdleFamily:
    """The idle family's silent connection as the probe records it when Deepgram ends it the way
    captures show: Metadata, then the close, about 10 s after the upgrade."""
    silent = IdleConnection(
        name="silent",
        upgrade=upgrade_obs(Outcome.UPGRADED, status=101),
        ended_by=EndKind.CLOSE,
        idle_from_t=0.2,
        end_t=10.7,
        events=(
            WireEvent(10.68, "in", FrameKind.TEXT, msg_type="Metadata"),
            WireEvent(10.7, "in", EndKind.CLOSE, code=code, reason=reason),
            WireEvent(10.7, "out", EndKind.CLOSE, code=code),
        ),
    )
    return IdleFamily(idle_max_s=12.0, margin_s=1.5, wall_s=10.8, connections=(silent,))


@pytest.mark.parametrize("item", [p for p in _ids(need="close") if p.values[0]["expect"]["reason"] == "NET-0001"])
def test_a_real_net0001_on_a_silent_stream_is_info_never_a_failure(item: dict[str, Any]) -> None:
    family = _silent_family(item["close"]["code"], item["close"]["reason"])
    findings = idle.analyze_silent(family)
    assert [(f.code, f.severity) for f in findings] == [("idle.server-timeout", Status.INFO)]
    assert idle.idle_metrics(family)["server_idle_timeout_s"] == 10.5


def _upgrade_answer(http: dict[str, Any]) -> UpgradeObservation:
    """The ws.auth probe's observation of this rejection. A page that shows no headers is not
    evidence that Deepgram sent none: Deepgram puts dg-request-id on every answer, so it is added
    when the capture does not show the headers at all."""
    headers = [(str(k), str(v)) for k, v in (http.get("headers") or {}).items()]
    if not any(k.lower() == deepgram.HEADER_REQUEST_ID for k, _ in headers):
        headers.append((deepgram.HEADER_REQUEST_ID, "00000000-0000-4000-8000-000000000000"))
    return upgrade_obs(Outcome.HTTP_RESPONSE, status=http["status"], headers=headers, body=http.get("body") or "")


@pytest.mark.parametrize("item", [p for p in _ids(need="http") if p.values[0]["http"]["status"] is not None])
def test_rejection_is_judged_as_expected(item: dict[str, Any]) -> None:
    expect = item["expect"]
    findings = ws.analyze(_upgrade_answer(item["http"]))
    if expect["finding"] is None:
        assert findings == []
        return
    assert [(f.code, f.cause) for f in findings] == [(expect["finding"], expect["cause"])]


@pytest.mark.parametrize("item", [p for p in _ids(need="http") if p.values[0]["http"].get("body")])
def test_rejection_body_is_read_whatever_its_shape(item: dict[str, Any]) -> None:
    body = deepgram.parse_error_body(item["http"]["body"])
    assert body is not None and body.message
    if item["http"]["body"].lstrip().startswith("{"):
        assert body.shape in ("legacy", "modern") and body.code


_LISTEN_TYPES = {m.value for m in deepgram.ServerMessage}


@pytest.mark.parametrize("item", _ids(kind="server-message"))
def test_server_message_meets_the_contract(item: dict[str, Any]) -> None:
    message = item["message"]
    if item.get("api", "listen") != "listen":
        pytest.skip(f"a {item['api']} message: another Deepgram API's contract")
    assert message["type"] in _LISTEN_TYPES
    assert deepgram.message_problems(message) == []


@pytest.mark.parametrize("item", [p for p in _ids() if p.values[0]["expect"]["explain"]])
def test_explain_names_the_expected_entry(item: dict[str, Any]) -> None:
    result = explain_text(item["text"])
    ids = [m.entry.id for m in result.matches]
    assert item["expect"]["explain"] in ids, ids
    cause = item["expect"]["cause"]
    entry = load_kb().by_id(item["expect"]["explain"])
    if cause is not None and item["kind"] != "no-close-frame":
        assert cause in entry.causes, (entry.id, entry.causes)


def test_explain_never_blames_the_network_or_deepgram_for_a_clean_close() -> None:
    """A 1000 is a clean close: at most the client's own handling (sending after it) is at fault."""
    for item in ITEMS:
        if item.get("close") and item["close"]["code"] == 1000:
            causes = {c for m in explain_text(item["text"]).matches for c in m.entry.causes}
            assert causes <= {"connection-handling"}, (item["id"], causes)
