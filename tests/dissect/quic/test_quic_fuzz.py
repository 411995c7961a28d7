"""Hostile input: every QUIC parser takes any bytes and returns a value or a package error."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.udp_helpers import flow_from_payloads
from test_quic_flows import CH_MSG, crypto, packet
from test_quic_vectors import V1_CLIENT_PROTECTED, V1_SERVER_PROTECTED

from analyzer.dissect import FLOWS
from analyzer.dissect.quic import (
    CryptoStream,
    QuicDissector,
    dissect_quic,
    format_transport_params,
    looks_like_quic,
    parse_frames,
    parse_long_header,
    read_varint,
)
from analyzer.dissect.tls.schema import TLS
from analyzer.errors import NeedMoreData, ParseError
from analyzer.schema import ANOMALIES

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check_facts(facts: object) -> None:
    """Rows use only declared columns (a cheap stand-in for `frame_from_rows`, which is slow)."""
    rows = facts.rows  # type: ignore[attr-defined]
    for frame, schema in (("tls", TLS), ("anomalies", ANOMALIES)):
        for row in rows.get(frame, []):
            assert set(row) <= set(schema), set(row) - set(schema)
    assert set(rows) <= {"tls", "anomalies"}
    assert len(rows.get("tls", [])) <= 1
    assert set(facts.flow) <= set(FLOWS)  # type: ignore[attr-defined]


@FUZZ
@given(st.binary(max_size=300), st.integers(0, 10))
def test_long_header_any_bytes(data: bytes, pos: int) -> None:
    try:
        hdr = parse_long_header(data, min(pos, len(data)))
    except (ParseError, NeedMoreData):
        return
    assert hdr.start < hdr.end <= len(data) or hdr.end == len(data)
    assert len(hdr.dcid) <= 255


@FUZZ
@given(st.binary(max_size=20))
def test_varint_any_bytes(data: bytes) -> None:
    try:
        value, end = read_varint(data, 0)
    except NeedMoreData:
        return
    assert 0 <= value < 1 << 62 and end in (1, 2, 4, 8)


@FUZZ
@given(st.binary(max_size=600))
def test_frames_any_bytes(data: bytes) -> None:
    fs = parse_frames(data)
    assert sum(len(d) for _, d in fs.crypto) <= len(data)


@FUZZ
@given(st.binary(max_size=600))
def test_transport_params_any_bytes(data: bytes) -> None:
    assert len(format_transport_params(data)) <= 1000


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 1 << 20), st.binary(max_size=300)), max_size=30))
def test_crypto_stream_matches_a_model(chunks: list[tuple[int, bytes]]) -> None:
    cap = 4096
    s = CryptoStream(cap)
    model: dict[int, int] = {}
    for off, data in chunks:
        s.add(off, data)
        for i, b in enumerate(data):
            if off + i < cap:
                model.setdefault(off + i, b)  # first copy wins
    assert len(s._buf) <= cap
    n = 0
    while n in model:
        n += 1
    assert s.contiguous == bytes(model[i] for i in range(n))
    assert s.received == len(model)


datagrams = st.lists(st.tuples(st.booleans(), st.binary(max_size=1400)), max_size=12)


@FUZZ
@given(datagrams)
def test_dissector_any_datagrams(dgs: list[tuple[bool, bytes]]) -> None:
    flow = flow_from_payloads(dgs)
    QuicDissector().probe(flow)
    _check_facts(dissect_quic(flow))


@FUZZ
@given(
    st.lists(st.tuples(st.booleans(), st.binary(max_size=60)), max_size=8),
    st.sampled_from([0xC0, 0xD0, 0xE0, 0xF0, 0x80]),
)
def test_dissector_long_header_shaped_noise(dgs: list[tuple[bool, bytes]], first: int) -> None:
    flow = flow_from_payloads([(d, bytes([first]) + b"\x00\x00\x00\x01" + p) for d, p in dgs])
    looks_like_quic(flow.datagrams[0].payload) if flow.datagrams else None
    _check_facts(dissect_quic(flow))


@FUZZ
@given(st.lists(st.binary(max_size=400), min_size=1, max_size=4), st.booleans())
def test_dissector_decryptable_garbage(payloads: list[bytes], server: bool) -> None:
    """Correctly encrypted Initials with arbitrary plaintext reach the frame and TLS parsers."""
    dgs = [(True, V1_CLIENT_PROTECTED)] if server else []
    key_dcid = bytes.fromhex("8394c8f03e515708") if server else bytes(8)
    for i, p in enumerate(payloads):
        dcid = b"" if server else bytes(8)
        dgs.append((not server, packet(p, server=server, dcid=dcid, pn=i, key_dcid=key_dcid)))
    _check_facts(dissect_quic(flow_from_payloads(dgs)))


@FUZZ
@given(
    st.lists(st.tuples(st.integers(0, 3000), st.binary(max_size=200)), max_size=6), st.binary(max_size=300)
)
def test_dissector_decryptable_crypto_frames(frames: list[tuple[int, bytes]], hello: bytes) -> None:
    """Arbitrary CRYPTO frames and a corrupted ClientHello inside valid packets."""
    body = b"\x01" + len(hello).to_bytes(3, "big") + hello
    payload = crypto(0, body) + b"".join(crypto(off, d) for off, d in frames)
    facts = dissect_quic(flow_from_payloads([(True, packet(payload + bytes(50)))]))
    _check_facts(facts)


@FUZZ
@given(st.integers(0, 1199), st.integers(1, 255), st.integers(0, 134), st.integers(1, 255))
def test_dissector_bit_flips_in_real_packets(i: int, x: int, j: int, y: int) -> None:
    c = bytearray(V1_CLIENT_PROTECTED)
    c[i] ^= x
    s = bytearray(V1_SERVER_PROTECTED)
    s[j] ^= y
    facts = dissect_quic(flow_from_payloads([(True, bytes(c)), (False, bytes(s))]))
    _check_facts(facts)
    if i >= 26 or i in range(1, 5):  # payload or version bits: nothing may decrypt wrongly
        assert facts.flow.get("tls_server_name") in (None, "example.com")


@FUZZ
@given(st.integers(0, len(CH_MSG) - 1), st.integers(1, 255))
def test_client_hello_bit_flips(i: int, x: int) -> None:
    ch = bytearray(CH_MSG)
    ch[i] ^= x
    _check_facts(dissect_quic(flow_from_payloads([(True, packet(crypto(0, bytes(ch)) + bytes(900)))])))
