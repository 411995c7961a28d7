"""Hostile input for the DTLS parsers and dissector: any bytes give a value or a package error."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.udp_helpers import flow_from_payloads
from test_dtls import full_12_handshake, hs, record

from analyzer.dissect import FLOWS
from analyzer.dissect.dtls import DTLSDissector, dissect_dtls, parse_handshake_fragment, parse_records
from analyzer.dissect.tls.schema import CERT_LINKS, CERTS, TLS
from analyzer.errors import NeedMoreData, ParseError
from analyzer.schema import ANOMALIES

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SCHEMAS = {"tls": TLS, "anomalies": ANOMALIES, "certs": CERTS, "cert_links": CERT_LINKS}


def _check(facts: object) -> None:
    rows = facts.rows  # type: ignore[attr-defined]
    assert set(rows) <= set(SCHEMAS)
    for frame, frame_rows in rows.items():
        for row in frame_rows:
            assert set(row) <= set(SCHEMAS[frame]), set(row) - set(SCHEMAS[frame])
    assert len(rows.get("tls", [])) <= 1
    assert set(facts.flow) <= set(FLOWS)  # type: ignore[attr-defined]


@FUZZ
@given(st.binary(max_size=400), st.one_of(st.none(), st.integers(0, 20)))
def test_records_any_bytes(data: bytes, cid_len: int | None) -> None:
    recs, err = parse_records(data, cid_len)
    assert sum(len(r.fragment) for r in recs) <= len(data)
    assert err is None or isinstance(err, str)


@FUZZ
@given(st.binary(max_size=200))
def test_handshake_fragment_any_bytes(data: bytes) -> None:
    try:
        frag, end = parse_handshake_fragment(data)
    except (ParseError, NeedMoreData):
        return
    assert end <= len(data) and frag.fragment_offset + len(frag.body) <= frag.length


@FUZZ
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=600)), max_size=10))
def test_dissector_any_datagrams(dgs: list[tuple[bool, bytes]]) -> None:
    flow = flow_from_payloads(dgs)
    DTLSDissector().probe(flow)
    _check(dissect_dtls(flow))


fragments = st.tuples(
    st.sampled_from([1, 2, 3, 11, 12, 14, 16, 4, 99]),  # message type
    st.integers(0, 3),  # message_seq
    st.binary(max_size=300),  # body
    st.integers(0, 300),  # fragment offset
    st.integers(0, 300),  # fragment length
)


Frag = tuple[int, int, bytes, int, int]
datagram_items = st.lists(
    st.tuples(st.booleans(), st.lists(fragments, max_size=3), st.sampled_from([20, 21, 22, 23])),
    max_size=8,
)


@FUZZ
@given(datagram_items)
def test_dissector_well_framed_random_handshakes(items: list[tuple[bool, list[Frag], int]]) -> None:
    """Valid record framing around arbitrary (often inconsistent) handshake fragments."""
    dgs = []
    for to_server, frags, ctype in items:
        body = b"".join(
            hs(t, seq, b, min(off, len(b)), min(ln, len(b) - min(off, len(b))))
            for t, seq, b, off, ln in frags
        )
        dgs.append((to_server, record(ctype if ctype != 25 else 22, body)))
    _check(dissect_dtls(flow_from_payloads(dgs)))


@FUZZ
@given(st.integers(0, 10_000), st.integers(1, 255))
def test_bit_flips_in_a_full_handshake(i: int, x: int) -> None:
    dgs = full_12_handshake(cert_fragments=True)
    total = sum(len(p) for _, p in dgs)
    i %= total
    out = []
    for d, p in dgs:
        if 0 <= i < len(p):
            p = p[:i] + bytes([p[i] ^ x]) + p[i + 1 :]
        i -= len(p)
        out.append((d, p))
    _check(dissect_dtls(flow_from_payloads(out)))
