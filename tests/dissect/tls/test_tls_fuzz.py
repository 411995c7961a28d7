"""Hostile bytes: every parser gives a value or a ParseError, the dissector never raises, and no
length field makes anything allocate more than the bytes present."""

from __future__ import annotations

import contextlib
import struct
import tracemalloc

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.fuzz_helpers import examples, fuzz_settings
from support.tls_helpers import (
    alpn_ext,
    client_hello_body,
    ext,
    flow_from_bytes,
    handshake,
    record,
    server_hello_body,
    sni_ext,
)

from analyzer.dissect.base import Facts
from analyzer.dissect.tls import TLSDissector
from analyzer.dissect.tls.fingerprints import ja3, ja3s, ja4, ja4s, ja4x
from analyzer.dissect.tls.handshake import (
    parse_certificate_list,
    parse_client_hello,
    parse_server_hello,
    parse_server_key_exchange,
    parse_sslv2_client_hello,
)
from analyzer.errors import ParseError

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VALID_CH = client_hello_body(
    ciphers=[0x0A0A, 0x1301, 0xC02F],
    session_id=b"\x01" * 32,
    extensions=[
        sni_ext("fuzz.example"),
        ext(10, b"\x00\x04\x00\x1d\x00\x17"),
        ext(11, b"\x01\x00"),
        alpn_ext([b"h2"]),
        ext(13, b"\x00\x02\x04\x03"),
        ext(43, b"\x04\x03\x04\x03\x03"),
        ext(51, b"\x00\x24\x00\x1d\x00\x20" + b"k" * 32),
        ext(35, b"tt"),
        ext(57, b"\x01"),
    ],
)
VALID_SH = server_hello_body(
    cipher=0x1301, extensions=[ext(43, b"\x03\x04"), ext(51, b"\x00\x1d\x00\x02ab"), alpn_ext([b"h2"])]
)


def _mutations(base: bytes) -> st.SearchStrategy[bytes]:
    """Truncations, byte flips and insertions of a valid message."""

    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        data = bytearray(base)
        for _ in range(draw(st.integers(1, 6))):
            op = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
            if not data:
                break
            i = draw(st.integers(0, len(data) - 1))
            if op == "flip":
                data[i] = draw(st.integers(0, 255))
            elif op == "cut":
                del data[i:]
            elif op == "insert":
                data[i:i] = draw(st.binary(min_size=1, max_size=8))
            else:
                del data[i : i + draw(st.integers(1, 8))]
        return bytes(data)

    return mutate()


def _hello_or_error(body: bytes, **kw: bool) -> None:
    try:
        ch = parse_client_hello(body, **kw)
    except ParseError:
        return
    ja3(ch)
    ja4(ch)
    ja4(ch, "q")
    assert isinstance(ch.max_version, int) and isinstance(ch.grease, bool)


@FUZZ
@given(st.binary(max_size=600))
def test_client_hello_random_bytes(body: bytes) -> None:
    _hello_or_error(body)
    _hello_or_error(body, dtls=True)


@FUZZ
@given(_mutations(VALID_CH))
def test_client_hello_mutations(body: bytes) -> None:
    _hello_or_error(body)


@FUZZ
@given(st.one_of(st.binary(max_size=300), _mutations(VALID_SH)))
def test_server_hello(body: bytes) -> None:
    try:
        sh = parse_server_hello(body)
    except ParseError:
        return
    ja3s(sh)
    ja4s(sh)
    assert isinstance(sh.version, int)


@FUZZ
@given(st.binary(max_size=300))
def test_sslv2_hello_and_small_messages(body: bytes) -> None:
    for fn in (
        parse_sslv2_client_hello,
        parse_certificate_list,
        lambda b: parse_certificate_list(b, tls13=True),
        lambda b: parse_server_key_exchange(b, "ECDHE"),
        lambda b: parse_server_key_exchange(b, "DHE"),
    ):
        with contextlib.suppress(ParseError):
            fn(body)


@FUZZ
@given(st.binary(max_size=400))
def test_ja4x_on_any_bytes(der: bytes) -> None:
    try:
        value = ja4x(b"\x30\x82" + struct.pack(">H", len(der)) + der)
    except ParseError:
        return
    assert value.count("_") == 2


def _dissect_never_raises(to_server: bytes, to_client: bytes, start_known: bool = True) -> Facts:
    flow = flow_from_bytes(to_server, to_client)
    flow.to_server.start_known = start_known
    flow.to_client.start_known = start_known
    d = TLSDissector(strict=True, ja4x=True)
    d.probe(flow)
    facts = d.dissect(flow)
    for a in facts.rows.get("anomalies", []):
        assert a["kind"].startswith("tls_") and isinstance(a["detail"], str)
    return facts


@FUZZ
@given(st.binary(max_size=800), st.binary(max_size=800), st.booleans())
def test_dissector_random_streams(a: bytes, b: bytes, start_known: bool) -> None:
    _dissect_never_raises(a, b, start_known)
    _dissect_never_raises(b"\x16\x03\x01" + a, b"\x16\x03\x03" + b, start_known)


CLIENT_STREAM = record(22, handshake(1, VALID_CH), 0x0301) + record(20, b"\x01") + record(23, b"x" * 40)
SERVER_STREAM = (
    record(22, handshake(2, VALID_SH)) + record(20, b"\x01") + record(23, b"y" * 60) + record(21, b"\x02\x28")
)


@FUZZ
@given(_mutations(CLIENT_STREAM), _mutations(SERVER_STREAM), st.booleans())
def test_dissector_mutated_sessions(a: bytes, b: bytes, start_known: bool) -> None:
    _dissect_never_raises(a, b, start_known)


def test_a_five_byte_sslv2_server_hello_header_is_not_read_past_its_end() -> None:
    """Found by hypothesis: the SSL 2.0 SERVER-HELLO check read a sixth byte of a 5-byte payload."""
    _dissect_never_raises(b"", b"\x80\x0b\x04\x00\x00", True)
    _dissect_never_raises(b"\x16\x03\x01", b"\x80\x0b\x04\x00\x00", False)


def test_length_fields_do_not_drive_allocation() -> None:
    hostile = [
        record(22, b"\x01\xff\xff\xff" + b"\x03\x03"),  # handshake claims 16 MiB
        record(22, b"\x0b\x00\x10\x00" + b"\xff\xff\xff" + b"\x00" * 10),  # certificate list claims 16 MiB
        struct.pack(">BHH", 22, 0x0303, 0xFFFF) + b"\x01\x00",  # record claims 64 KiB
        b"\xff\xff\x01\x03\x01\xff\xff\xff\xff\xff\xff",  # SSLv2 header with absurd lengths
    ]
    d = TLSDissector(strict=True)
    for data in hostile:
        tracemalloc.start()
        d.dissect(flow_from_bytes(data, data))
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < 256 * 1024, (data[:8], peak)
    tracemalloc.start()
    with contextlib.suppress(ParseError):
        parse_client_hello(b"\x03\x03" + b"\x00" * 32 + b"\x00" + b"\xff\xfe" + b"\x00" * 20)
    assert tracemalloc.get_traced_memory()[1] < 64 * 1024
    tracemalloc.stop()


def _full_tls12() -> tuple[bytes, bytes]:
    from support.tls_helpers import certificate_msg, make_chain

    chain = make_chain("fuzz.example")
    client = record(22, handshake(1, VALID_CH)) + record(22, handshake(16, b"\x20" + b"K" * 32)) + record(20, b"\x01")
    server = record(
        22,
        handshake(2, server_hello_body(cipher=0xC02F))
        + certificate_msg(chain)
        + handshake(12, b"\x03\x00\x1d\x20" + b"P" * 32 + b"\x04\x03\x00\x00")
        + handshake(14, b""),
    )
    return client, server + record(20, b"\x01")


FULL_CLIENT, FULL_SERVER = _full_tls12()


@fuzz_settings(examples(150))
@given(_mutations(FULL_SERVER))
def test_dissector_mutated_certificate_flights(server: bytes) -> None:
    facts = _dissect_never_raises(FULL_CLIENT, server)
    for row in facts.rows.get("certs", []):
        assert len(str(row["sha256"])) == 64
