"""QUIC building blocks: varints, packet numbers, headers, frames, CRYPTO reassembly, parameters."""

from __future__ import annotations

import pytest
from test_quic_flows import crypto, varint

from analyzer.dissect.quic import (
    CryptoStream,
    decode_packet_number,
    format_transport_params,
    parse_frames,
    parse_long_header,
    read_varint,
    version_name,
)
from analyzer.errors import NeedMoreData, ParseError


@pytest.mark.parametrize(
    ("wire", "value"),
    [  # RFC 9000 appendix A.1 examples
        ("c2197c5eff14e88c", 151288809941952652),
        ("9d7f3e7d", 494878333),
        ("7bbd", 15293),
        ("25", 37),
        ("4025", 37),
    ],
)
def test_varint_rfc9000_examples(wire: str, value: int) -> None:
    data = bytes.fromhex(wire)
    assert read_varint(data, 0) == (value, len(data))


def test_varint_cut() -> None:
    with pytest.raises(NeedMoreData):
        read_varint(b"\x7b", 0)
    with pytest.raises(NeedMoreData):
        read_varint(b"", 0)


def test_packet_number_decoding_rfc9000_example() -> None:
    # RFC 9000 A.3: largest 0xa82f30ea, truncated 0x9b32 (16 bits) -> 0xa82f9b32
    assert decode_packet_number(0xA82F30EA, 0x9B32, 16) == 0xA82F9B32
    assert decode_packet_number(-1, 2, 32) == 2
    assert decode_packet_number(255, 0, 8) == 256


def test_version_names() -> None:
    assert version_name(1) == "1"
    assert version_name(0x6B3343CF) == "2"
    assert version_name(0xFF00001D) == "draft-29"
    assert version_name(0x51303436) == "Q046"
    assert version_name(0x54303531) == "T051"
    assert version_name(0xBABABABA) == "0xbabababa"


def test_long_header_version_negotiation() -> None:
    vn = b"\x80\x00\x00\x00\x00\x04abcd\x02xy" + (1).to_bytes(4, "big") + (0xFF00001D).to_bytes(4, "big")
    hdr = parse_long_header(vn, 0)
    assert hdr.kind == "vn" and hdr.dcid == b"abcd" and hdr.scid == b"xy"
    assert hdr.versions == (1, 0xFF00001D)
    with pytest.raises(ParseError):
        parse_long_header(vn[:-1], 0)


def test_long_header_unknown_version_keeps_invariants() -> None:
    pkt = b"\xc5\x12\x34\x56\x78\x03abc\x00" + bytes(50)
    hdr = parse_long_header(pkt, 0)
    assert (hdr.kind, hdr.version, hdr.dcid, hdr.end) == ("unknown", 0x12345678, b"abc", len(pkt))


@pytest.mark.parametrize(
    "data",
    [
        b"\xc0\x00\x00\x00\x01",  # cut in the DCID length
        b"\xc0\x00\x00\x00\x01\x08\x01\x02",  # DCID cut
        b"\xc0\x00\x00\x00\x01\x00\x00\x41",  # token length cut
        b"\xc0\x00\x00\x00\x01\x00\x00\x00\x44\x00",  # Length 1024 past the end
    ],
)
def test_long_header_cut(data: bytes) -> None:
    with pytest.raises(NeedMoreData):
        parse_long_header(data, 0)


def test_long_header_rejects_long_connection_ids() -> None:
    with pytest.raises(ParseError):
        parse_long_header(b"\xc0\x00\x00\x00\x01\x15" + bytes(21) + b"\x00\x00\x01\x00", 0)


def test_frames_all_types_walk() -> None:
    payload = (
        b"\x00\x00\x00"  # padding
        + b"\x01"  # ping
        + b"\x02" + varint(10) + varint(0) + varint(1) + varint(0) + varint(1) + varint(2)  # ack 1 range
        + b"\x03" + varint(5) + varint(0) + varint(0) + varint(0) + varint(1) + varint(2) + varint(3)
        + b"\x04" + varint(1) + varint(2) + varint(3)  # reset_stream
        + b"\x05" + varint(1) + varint(2)
        + b"\x07" + varint(3) + b"tok"  # new_token
        + b"\x0a" + varint(4) + varint(2) + b"hi"  # stream with length
        + b"\x0e" + varint(4) + varint(9) + varint(1) + b"x"  # stream with offset and length
        + b"\x10" + varint(1) + b"\x11" + varint(1) + varint(2) + b"\x12" + varint(3) + b"\x13" + varint(3)
        + b"\x14" + varint(1) + b"\x15" + varint(1) + varint(1) + b"\x16" + varint(1) + b"\x17" + varint(1)
        + b"\x18" + varint(1) + varint(0) + b"\x04abcd" + bytes(16)  # new_connection_id
        + b"\x19" + varint(1)
        + b"\x1a" + bytes(8) + b"\x1b" + bytes(8)
        + b"\x1e"  # handshake_done
        + b"\x31" + varint(2) + b"dg"  # datagram with length
        + crypto(7, b"hello")
        + b"\x1d" + varint(0x10) + varint(3) + b"bye"  # application close
        + b"\x08" + varint(0) + b"rest of the packet"  # stream to the end
    )  # fmt: skip
    fs = parse_frames(payload)
    assert fs.error is None, fs.error
    assert fs.crypto == [(7, b"hello")]
    assert fs.close is not None and fs.close.application and fs.close.reason == "bye"
    assert fs.close.tls_alert is None
    assert fs.counts["ack"] == 2 and fs.counts["padding"] == 1 and fs.counts["datagram"] == 1


def test_frames_errors_keep_prefix() -> None:
    fs = parse_frames(crypto(0, b"abc") + b"\x06\x00\x10ab")  # second crypto frame cut
    assert fs.crypto == [(0, b"abc")] and fs.error
    fs = parse_frames(crypto(0, b"abc") + b"\x21")  # unknown type 0x21
    assert fs.crypto == [(0, b"abc")] and "unknown frame type 0x21" in str(fs.error)
    fs = parse_frames(b"\x02\x00\x00" + varint(1_000_000) + b"\x00")  # absurd ACK range count
    assert fs.error and "ranges" in fs.error
    fs = parse_frames(b"\x1c" + varint(0x178) + b"\x06\x00")  # crypto error: alert 120
    assert fs.close is not None and fs.close.tls_alert == 120


def test_crypto_stream_reassembly() -> None:
    s = CryptoStream(cap=100)
    s.add(5, b"fghij")
    assert s.contiguous == b"" and s.holes
    s.add(0, b"abc")
    assert s.contiguous == b"abc" and s.holes
    s.add(2, b"cde")  # overlaps both neighbours: fills the hole
    assert s.contiguous == b"abcdefghij" and not s.holes
    s.add(0, b"abcdefghij")  # retransmission
    assert s.conflicts == 0
    s.add(1, b"X")  # conflicting copy: the first one stays
    assert s.contiguous == b"abcdefghij" and s.conflicts == 1
    s.add(95, b"0123456789")  # crosses the cap: truncated
    assert s.overflow and s.received == 15
    s.add(500, b"far")  # beyond the cap: dropped, nothing allocated
    assert len(s._buf) == 100


def test_crypto_stream_many_pieces_any_order() -> None:
    data = bytes(range(256)) * 4
    pieces = [(i, data[i : i + 37]) for i in range(0, len(data), 37)]
    for order in (pieces, pieces[::-1], pieces[1::2] + pieces[::2]):
        s = CryptoStream()
        for off, chunk in order:
            s.add(off, chunk)
        assert s.contiguous == data and s.contiguous_len == len(data)


def test_transport_params_format() -> None:
    raw = (
        varint(0x01) + varint(4) + (30000 | 0x80000000).to_bytes(4, "big")
        + varint(0x0F) + varint(2) + b"\xab\xcd"
        + varint(0x0C) + varint(0)  # disable_active_migration
        + varint(27) + varint(1) + b"\x00"  # GREASE id 31*0+27
        + varint(0x11) + varint(12) + (1).to_bytes(4, "big") + (1).to_bytes(4, "big")
        + (0x6B3343CF).to_bytes(4, "big")
        + varint(0x7777) + varint(2) + b"\x01\x02"
    )  # fmt: skip
    assert format_transport_params(raw) == (
        "max_idle_timeout=30000,initial_source_connection_id=abcd,disable_active_migration,GREASE,"
        "version_information=1/1|2,0x7777=0102"
    )
    assert format_transport_params(raw + b"\x05\x09\x01").endswith(",!malformed")
    assert len(format_transport_params((varint(0x4000) + varint(60) + bytes(60)) * 60)) <= 1000
