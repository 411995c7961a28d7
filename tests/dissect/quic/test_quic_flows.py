"""Crafted QUIC flows through the whole dissector: coalescing, reassembly, VN, Retry, HRR, close."""

from __future__ import annotations

import time

import pytest
from support.udp_helpers import flow_from_payloads
from test_quic_vectors import (
    CLIENT_CRYPTO_FRAME,
    DCID,
    SERVER_PAYLOAD,
    V1_CLIENT_PROTECTED,
    V1_RETRY,
    V1_SERVER_PROTECTED,
    V2_CLIENT_PROTECTED,
    V2_SERVER_PROTECTED,
)

from analyzer.dissect import registered
from analyzer.dissect.quic import (
    MAX_DATAGRAMS,
    InitialKeys,
    QuicDissector,
    dissect_quic,
    looks_like_quic,
    protect,
    version_info,
)
from analyzer.dissect.tls.constants import HRR_RANDOM
from analyzer.dissect.tls.fingerprints import ja4
from analyzer.dissect.tls.handshake import parse_client_hello
from analyzer.dissect.tls.schema import TLS
from analyzer.schema import frame_from_rows

CH_MSG = CLIENT_CRYPTO_FRAME[4:]  # handshake header + ClientHello body (RFC 9001 A.2)
SH_MSG = SERVER_PAYLOAD[9:]  # handshake header + ServerHello body (RFC 9001 A.3)
SCID_S = bytes.fromhex("f067a5502a4262b5")


def varint(n: int) -> bytes:
    if n < 0x40:
        return bytes([n])
    if n < 0x4000:
        return (n | 0x4000).to_bytes(2, "big")
    if n < 0x40000000:
        return (n | 0x80000000).to_bytes(4, "big")
    return (n | 0xC000000000000000).to_bytes(8, "big")


def crypto(offset: int, data: bytes) -> bytes:
    return b"\x06" + varint(offset) + varint(len(data)) + data


def packet(
    payload: bytes,
    *,
    kind: str = "initial",
    version: int = 1,
    dcid: bytes = DCID,
    scid: bytes = b"",
    key_dcid: bytes | None = None,
    server: bool = False,
    pn: int = 0,
    token: bytes = b"",
    pn_len: int = 2,
) -> bytes:
    """A protected long-header packet; Initials are encrypted with keys from `key_dcid`."""
    info = version_info(version)
    assert info is not None
    type_bits = info.types.index(kind)
    if len(payload) < 4:
        payload += bytes(4 - len(payload))  # PADDING so that the header sample exists
    length = pn_len + len(payload) + 16
    hdr = bytes([0xC0 | type_bits << 4 | (pn_len - 1)]) + version.to_bytes(4, "big")
    hdr += bytes([len(dcid)]) + dcid + bytes([len(scid)]) + scid
    if kind == "initial":
        hdr += varint(len(token)) + token
    hdr += length.to_bytes(2, "big") if length < 0x4000 else varint(length)
    hdr = hdr[:-2] + (length | 0x4000).to_bytes(2, "big") if length < 0x4000 else hdr
    hdr += (pn & ((1 << (8 * pn_len)) - 1)).to_bytes(pn_len, "big")
    if kind != "initial":
        return hdr + payload + bytes(16)  # not decryptable by an observer anyway
    keys = InitialKeys.for_dcid(info.salts[0], info.label_prefix, key_dcid or dcid, server=server)
    return protect(hdr, pn_len, pn, payload, keys)


def server_hello(*, hrr: bool = False, cipher: int = 0x1301, alpn: bytes | None = None) -> bytes:
    random = HRR_RANDOM if hrr else bytes(range(32))
    exts = b"\x00\x2b\x00\x02\x03\x04"
    exts += b"\x00\x33\x00\x02\x00\x1d" if hrr else b"\x00\x33\x00\x24\x00\x1d\x00\x20" + bytes(32)
    if alpn is not None:
        body = b"\x00" + bytes([len(alpn) + 1, len(alpn)]) + alpn
        exts += b"\x00\x10" + len(body).to_bytes(2, "big") + body
    msg = b"\x03\x03" + random + b"\x00" + cipher.to_bytes(2, "big") + b"\x00"
    msg += len(exts).to_bytes(2, "big") + exts
    return b"\x02" + len(msg).to_bytes(3, "big") + msg


def tls_row(facts: object) -> dict[str, object]:
    rows = facts.rows.get("tls", [])  # type: ignore[attr-defined]
    assert len(rows) == 1
    frame_from_rows(rows, TLS)  # every key is declared in the schema
    return dict(rows[0])


def kinds(facts: object) -> list[str]:
    return [a["kind"] for a in facts.rows.get("anomalies", [])]  # type: ignore[attr-defined]


def test_registered_and_probe() -> None:
    names = [d.name for d in registered()]
    assert "quic" in names
    d = next(d for d in registered() if d.name == "quic")
    assert isinstance(d, QuicDissector)
    assert d.transports == frozenset({"udp"})
    assert {443, 4433, 784, 853} <= d.ports
    assert d.probe(flow_from_payloads([(True, V1_CLIENT_PROTECTED)]))


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        bytes.fromhex("16fefd00000000000000000010"),  # DTLS handshake record
        bytes.fromhex("000100002112a442") + bytes(12),  # STUN binding request
        bytes.fromhex("80e0") + bytes(30),  # RTP
        bytes.fromhex("c0deadbeef") + bytes(40),  # long header bits, unknown version
        bytes.fromhex("c000000001") + bytes([30]) + bytes(40),  # v1 with a 30-byte DCID
        b"\xc0\x00\x00\x00\x01\x08" + DCID + b"\x00\x00\x44\x9e",  # Length past the datagram
    ],
)
def test_probe_rejects(payload: bytes) -> None:
    assert not looks_like_quic(payload)
    assert not QuicDissector().probe(flow_from_payloads([(True, payload)], server_port=5000))


def test_rfc9001_handshake_v1() -> None:
    facts = dissect_quic(flow_from_payloads([(True, V1_CLIENT_PROTECTED), (False, V1_SERVER_PROTECTED)]))
    f = facts.flow
    ch = parse_client_hello(CH_MSG[4:])
    assert f["app_protocol"] == "quic" and f["encrypted"] is True
    assert f["tls_version"] == "TLS 1.3"
    assert f["tls_server_name"] == "example.com"
    assert f["tls_cipher"] == "TLS_AES_128_GCM_SHA256"
    assert f["tls_established"] is True
    assert f["ja4"] == ja4(ch, "q")[0] and str(f["ja4"]).startswith("q13d0")
    assert str(f["ja4s"]).startswith("q130200_1301_")
    assert f["tls_alpn"] == "alpn"  # the only value offered, handshake answered
    row = tls_row(facts)
    assert row["protocol"] == "quic" and row["quic_version"] == "1"
    assert row["cert_visible"] is False
    assert row["history"] == "Cs"
    assert row["alpn_offered"] == "alpn"
    assert row["client_ciphers"] == "1301,1302"
    # decoded by hand from RFC 9001 A.2's quic_transport_parameters extension
    assert row["quic_transport_params"] == (
        "initial_max_data=4611686018427387903,initial_max_stream_data_bidi_local=65535,"
        "initial_max_stream_data_uni=65535,initial_max_streams_bidi=16,max_idle_timeout=30000,"
        "initial_max_streams_uni=16,initial_source_connection_id=8394c8f03e515708,"
        "initial_max_stream_data_bidi_remote=65535"
    )
    assert kinds(facts) == []


def test_rfc9369_handshake_v2() -> None:
    facts = dissect_quic(flow_from_payloads([(True, V2_CLIENT_PROTECTED), (False, V2_SERVER_PROTECTED)]))
    assert facts.flow["tls_established"] is True
    assert facts.flow["tls_server_name"] == "example.com"
    assert tls_row(facts)["quic_version"] == "2"


def test_client_only_is_not_established() -> None:
    facts = dissect_quic(flow_from_payloads([(True, V1_CLIENT_PROTECTED)]))
    assert facts.flow["tls_established"] is False
    assert facts.flow.get("tls_alpn") is None  # negotiated ALPN unknown
    assert facts.flow.get("tls_cipher") is None
    assert tls_row(facts)["history"] == "C"


def test_server_handshake_packet_implies_established() -> None:
    hs = packet(b"\x01", kind="handshake", dcid=b"", scid=SCID_S, server=True)
    facts = dissect_quic(flow_from_payloads([(True, V1_CLIENT_PROTECTED), (False, hs)]))
    assert facts.flow["tls_established"] is True
    assert facts.flow.get("tls_cipher") is None


def test_client_hello_split_out_of_order_with_duplicates() -> None:
    a, b, c = CH_MSG[:50], CH_MSG[50:130], CH_MSG[130:]
    p1 = packet(crypto(130, c) + crypto(50, b[:40]) + bytes(900), pn=1)
    p2 = packet(crypto(50, b) + crypto(50, b) + bytes(900), pn=2)  # duplicate in one packet
    p3 = packet(crypto(0, a + b[:10]) + bytes(900), pn=3)  # overlaps the next range
    facts = dissect_quic(flow_from_payloads([(True, p1), (True, p2), (True, p3)]))
    assert facts.flow["tls_server_name"] == "example.com"
    assert kinds(facts) == []


def test_client_hello_in_many_packets_and_datagrams() -> None:
    chunks = [CH_MSG[i : i + 16] for i in range(0, len(CH_MSG), 16)]
    dgs = [(True, packet(crypto(i * 16, ch), pn=i)) for i, ch in reversed(list(enumerate(chunks)))]
    facts = dissect_quic(flow_from_payloads(dgs))
    assert facts.flow["tls_server_name"] == "example.com"


def test_coalesced_server_initial_and_handshake_then_junk() -> None:
    server_initial = packet(b"\x02\x00\x00\x00\x00" + crypto(0, SH_MSG), dcid=b"", scid=SCID_S,
                            key_dcid=DCID, server=True, pn=1)  # fmt: skip
    hs = packet(b"\x01" * 30, kind="handshake", dcid=b"", scid=SCID_S, server=True)
    junk = b"\xc3\x00\x00\x00\x01\x04abcd" + bytes(40)  # another DCID: not of this connection
    facts = dissect_quic(
        flow_from_payloads([(True, V1_CLIENT_PROTECTED), (False, server_initial + hs + junk)])
    )
    assert facts.flow["tls_established"] is True
    assert facts.flow["tls_cipher"] == "TLS_AES_128_GCM_SHA256"
    assert kinds(facts) == []


def test_version_negotiation_then_v1() -> None:
    grease = 0x1A2A3A4A
    first = b"\xc0" + grease.to_bytes(4, "big") + b"\x08" + bytes(8) + b"\x00" + bytes(1200)
    vn = b"\x80\x00\x00\x00\x00\x00\x08" + bytes(8) + (1).to_bytes(4, "big") + (0x6B3343CF).to_bytes(4, "big")
    facts = dissect_quic(flow_from_payloads([(True, first), (False, vn), (True, V1_CLIENT_PROTECTED),
                                             (False, V1_SERVER_PROTECTED)]))  # fmt: skip
    row = tls_row(facts)
    assert row["quic_version"] == "1"
    assert row["established"] is True
    assert row.get("failure_reason") is None
    vn_rows = [a for a in facts.rows["anomalies"] if a["kind"] == "quic_version_negotiation"]
    assert len(vn_rows) == 1 and "offers 1,2" in str(vn_rows[0]["detail"])
    assert "0x1a2a3a4a" in str(vn_rows[0]["detail"])


def test_version_negotiation_only() -> None:
    first = b"\xc0\xfa\xfa\xfa\xfa\x08" + bytes(8) + b"\x00" + bytes(1200)
    vn = b"\x80\x00\x00\x00\x00\x00\x08" + bytes(8) + (1).to_bytes(4, "big")
    facts = dissect_quic(flow_from_payloads([(True, first), (False, vn)]))
    assert facts.flow == {"app_protocol": "quic", "encrypted": True, "protection": "quic"}
    assert "quic_version_negotiation" in kinds(facts)


def test_retry_then_initial_with_new_dcid() -> None:
    # RFC 9001 A.4 Retry answers the A.2 Initial: the client's next Initial uses DCID f067a550...
    ch2 = packet(crypto(0, CH_MSG) + bytes(1000), dcid=SCID_S, token=b"token", pn=3)
    sh = packet(b"\x02\x00\x00\x00\x00" + crypto(0, SH_MSG), dcid=b"", scid=b"\x11" * 8, key_dcid=SCID_S,
                server=True)  # fmt: skip
    facts = dissect_quic(flow_from_payloads([(True, V1_CLIENT_PROTECTED), (False, V1_RETRY), (True, ch2),
                                             (False, sh)]))  # fmt: skip
    assert facts.flow["tls_established"] is True
    retry = [a for a in facts.rows["anomalies"] if a["kind"] == "quic_retry"]
    assert len(retry) == 1 and "valid" in str(retry[0]["detail"]) and "INVALID" not in str(retry[0]["detail"])
    assert [a for a in kinds(facts) if a != "quic_retry"] == []


def test_forged_retry_is_flagged() -> None:
    forged = V1_RETRY[:-1] + b"\x00"
    facts = dissect_quic(flow_from_payloads([(True, V1_CLIENT_PROTECTED), (False, forged)]))
    retry = [a for a in facts.rows["anomalies"] if a["kind"] == "quic_retry"]
    assert "INVALID" in str(retry[0]["detail"])


def test_hello_retry_request() -> None:
    hrr = packet(b"\x02\x00\x00\x00\x00" + crypto(0, server_hello(hrr=True)), dcid=b"", scid=SCID_S,
                 key_dcid=DCID, server=True, pn=0)  # fmt: skip
    ch2 = packet(crypto(len(CH_MSG), CH_MSG) + bytes(1000), dcid=SCID_S, key_dcid=DCID, pn=3)
    hrr_len = len(server_hello(hrr=True))
    sh = packet(crypto(hrr_len, server_hello(cipher=0x1302)), dcid=b"", scid=SCID_S, key_dcid=DCID,
                server=True, pn=1)  # fmt: skip
    facts = dissect_quic(flow_from_payloads([(True, V1_CLIENT_PROTECTED), (False, hrr), (True, ch2),
                                             (False, sh)]))  # fmt: skip
    row = tls_row(facts)
    assert row["hello_retry_request"] is True
    assert row["history"] == "CjCs"
    assert row["cipher"] == "TLS_AES_256_GCM_SHA384"
    assert facts.flow["tls_established"] is True


def test_connection_close_with_tls_alert() -> None:
    close = b"\x1c" + varint(0x100 + 40) + varint(0x06) + varint(9) + b"no shares"
    srv = packet(close, dcid=b"", scid=SCID_S, key_dcid=DCID, server=True)
    facts = dissect_quic(flow_from_payloads([(True, V1_CLIENT_PROTECTED), (False, srv)]))
    row = tls_row(facts)
    assert row["established"] is False
    assert row["alert_description"] == "handshake_failure"
    assert "handshake_failure" in str(row["failure_reason"]) and "no shares" in str(row["failure_reason"])
    assert row["history"] == "Cl"


def test_server_alpn_in_server_hello_is_used() -> None:
    srv = packet(crypto(0, server_hello(alpn=b"h3")), dcid=b"", scid=SCID_S, key_dcid=DCID, server=True)
    facts = dissect_quic(flow_from_payloads([(True, V1_CLIENT_PROTECTED), (False, srv)]))
    assert facts.flow["tls_alpn"] == "h3"


def test_directions_swapped_by_the_flow_layer() -> None:
    # the flow layer took the server for the client: every datagram's to_server is inverted
    facts = dissect_quic(flow_from_payloads([(False, V1_CLIENT_PROTECTED), (True, V1_SERVER_PROTECTED)]))
    assert facts.flow["tls_server_name"] == "example.com"
    assert facts.flow["tls_established"] is True
    assert "quic_direction" in kinds(facts)


def test_draft29_and_v2_versions_named() -> None:
    for version, name in ((0xFF00001D, "draft-29"), (0xFF00001C, "draft-28"), (0x6B3343CF, "2")):
        p = packet(crypto(0, CH_MSG) + bytes(1000), version=version)
        facts = dissect_quic(flow_from_payloads([(True, p)]))
        assert tls_row(facts)["quic_version"] == name
        assert facts.flow["tls_server_name"] == "example.com"


def test_crypto_beyond_cap_is_ignored() -> None:
    p = packet(crypto(70_000, b"x" * 100) + crypto(0, CH_MSG) + bytes(800))
    facts = dissect_quic(flow_from_payloads([(True, p)]))
    assert facts.flow["tls_server_name"] == "example.com"
    assert "quic_crypto_overflow" in kinds(facts)


def test_oversized_handshake_message_is_refused() -> None:
    p = packet(crypto(0, b"\x01\x01\x86\xa0" + bytes(600)) + bytes(400))  # claims 100000 bytes
    facts = dissect_quic(flow_from_payloads([(True, p)]))
    assert "quic_crypto_overflow" in kinds(facts)
    assert tls_row(facts)["quic_version"] == "1"
    assert facts.flow.get("tls_server_name") is None


def test_garbage_hello_is_an_anomaly() -> None:
    p = packet(crypto(0, b"\x01\x00\x00\x05" + b"\xff" * 5) + bytes(900))
    facts = dissect_quic(flow_from_payloads([(True, p)]))
    assert "quic_bad_hello" in kinds(facts)


def test_unknown_frame_type_keeps_earlier_frames() -> None:
    p = packet(crypto(0, CH_MSG) + b"\x40\x99" + bytes(500))  # frame type 0x99 (2-byte varint)
    facts = dissect_quic(flow_from_payloads([(True, p)]))
    assert facts.flow["tls_server_name"] == "example.com"
    assert "quic_frame_error" in kinds(facts)


def test_short_header_only_flow_on_443() -> None:
    dgs = [(i % 2 == 0, bytes([0x40 | i]) + bytes(range(40))) for i in range(6)]
    flow = flow_from_payloads(dgs, server_port=443)
    d = QuicDissector()
    assert d.probe(flow)
    facts = d.dissect(flow)
    assert facts.flow == {"app_protocol": "quic", "encrypted": True, "protection": "quic"}
    assert "tls" not in facts.rows
    assert not d.probe(flow_from_payloads(dgs, server_port=5353))


def test_work_is_bounded() -> None:
    junk = b"\xc0\x00\x00\x00\x01\x08" + bytes(8) + b"\x00\x00\x44\xa0" + bytes(1200)
    flow = flow_from_payloads([(True, junk)] * 5000)
    t0 = time.perf_counter()
    facts = dissect_quic(flow)
    elapsed = time.perf_counter() - t0
    assert elapsed < 2.0
    assert kinds(facts).count("quic_decrypt_failed") <= 3  # rows capped per kind
    assert MAX_DATAGRAMS < 5000
