"""The passive frame reader against frames wsproto writes, cut at every kind of boundary."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.frame_protocol import CloseReason, FrameProtocol

from wsdoctor.probes.wireframes import FrameReader, Opcode

MESSAGES = st.lists(
    st.one_of(
        st.binary(max_size=70_000).map(lambda b: ("binary", b)),
        st.text(max_size=300).map(lambda t: ("text", t)),
        st.binary(max_size=125).map(lambda b: ("ping", b)),
    ),
    max_size=12,
)


def _wire(messages: list[tuple[str, object]], *, client: bool) -> tuple[bytes, list[tuple[int, int]]]:
    proto = FrameProtocol(client=client, extensions=[])
    out, expected = b"", []
    for kind, payload in messages:
        if kind == "ping":
            assert isinstance(payload, bytes)
            out += proto.ping(payload)
            expected.append((Opcode.PING, len(payload)))
        else:
            out += proto.send_data(payload)  # type: ignore[arg-type]
            size = len(payload.encode()) if isinstance(payload, str) else len(payload)  # type: ignore[arg-type]
            expected.append((Opcode.TEXT if kind == "text" else Opcode.BINARY, size))
    out += proto.close(CloseReason.NORMAL_CLOSURE, "bye")
    expected.append((Opcode.CLOSE, 5))
    return out, expected


@settings(max_examples=120, deadline=None)
@given(messages=MESSAGES, cuts=st.lists(st.integers(min_value=1, max_value=20_000), max_size=30), client=st.booleans())
def test_any_chunking_reads_the_same_frames(messages: list[tuple[str, object]], cuts: list[int], client: bool) -> None:
    data, expected = _wire(messages, client=client)
    reader = FrameReader(expect_masked=client, keep_text=4096, keep_head=64)
    frames, pos = [], 0
    for cut in [*cuts, len(data)]:
        frames += reader.feed(data[pos : pos + cut])
        pos += cut
    frames += reader.feed(data[pos:])
    assert [(f.opcode, f.length) for f in frames] == expected
    assert all(f.violation is None for f in frames)
    for f, (kind, payload) in zip(frames, [*messages, ("close", None)], strict=True):
        if kind == "text":
            assert isinstance(payload, str)
            assert f.kept.decode() == payload  # unmasked, whole (under keep_text)
        elif kind == "binary":
            assert isinstance(payload, bytes)
            assert f.kept == payload[:64]  # the head only
    assert reader.bytes_seen == len(data) and reader.broken is None


def test_violations_are_recorded_not_fatal() -> None:
    reader = FrameReader(expect_masked=True)
    unmasked = bytes([0x82, 3]) + b"abc"
    reserved = bytes([0x83, 0x80 | 1]) + b"\x00\x00\x00\x00" + b"x"
    long_ping = bytes([0x89, 0x80 | 126]) + (200).to_bytes(2, "big") + b"\x00" * 4 + b"p" * 200
    frames = reader.feed(unmasked + reserved + long_ping)
    assert [f.violation for f in frames] == [
        "an unmasked client frame",
        "reserved opcode 0x3",
        "a control frame longer than 125 bytes or fragmented",
    ]


def test_a_length_with_the_top_bit_set_stops_parsing_but_counts() -> None:
    reader = FrameReader(expect_masked=False)
    assert reader.feed(bytes([0x82, 127]) + b"\xff" * 8 + b"rest") == []
    assert reader.broken and reader.bytes_seen == 14
    assert reader.feed(b"more") == [] and reader.bytes_seen == 18
