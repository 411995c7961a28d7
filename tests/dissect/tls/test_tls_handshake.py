"""Handshake message parsers: crafted bytes (exact length control) and scapy-built hellos."""

from __future__ import annotations

import struct

import pytest
from support.tls_helpers import (
    alpn_ext,
    client_hello_body,
    ext,
    handshake,
    server_hello_body,
    sni_ext,
    u16s,
)

from analyzer.dissect.tls import constants as C
from analyzer.dissect.tls.handshake import (
    parse_alert,
    parse_certificate_list,
    parse_client_hello,
    parse_server_hello,
    parse_server_key_exchange,
    parse_sslv2_client_hello,
)
from analyzer.errors import ParseError

PQ_SHARE = b"\x07" * 1216  # X25519MLKEM768 client share size


def full_client_hello() -> bytes:
    return client_hello_body(
        ciphers=[0x2A2A, 0x1301, 0x1302, 0xC02B, 0x00FF],
        session_id=b"\x05" * 32,
        extensions=[
            ext(0x2A2A, b""),
            sni_ext("www.example.org"),
            ext(23, b""),
            ext(0xFF01, b"\x00"),
            ext(10, u16s([0x3A3A, 0x11EC, 29, 23])),
            ext(11, b"\x01\x00"),
            ext(35, b"ticket-bytes"),
            alpn_ext([b"h2", b"http/1.1"]),
            ext(13, u16s([0x0403, 0x0804, 0x0401])),
            ext(
                51,
                struct.pack(">H", 4 + 1216 + 4 + 32)
                + struct.pack(">HH", 0x11EC, 1216)
                + PQ_SHARE
                + struct.pack(">HH", 29, 32)
                + b"\x01" * 32,
            ),
            ext(45, b"\x01\x01"),
            ext(43, b"\x06\x4a\x4a\x03\x04\x03\x03"),
            ext(0xFE0D, b"\x00" * 10),
            ext(42, b""),
            ext(57, b"\x01\x02\x03"),
            ext(41, b"\x00\x00"),
        ],
    )


def test_client_hello_every_convenience_field() -> None:
    ch = parse_client_hello(full_client_hello())
    assert ch.legacy_version == 0x0303
    assert ch.random == b"\x11" * 32
    assert ch.session_id == b"\x05" * 32
    assert ch.cipher_suites == [0x2A2A, 0x1301, 0x1302, 0xC02B, 0x00FF]
    assert ch.compression_methods == [0]
    assert ch.extension_types == [0x2A2A, 0, 23, 0xFF01, 10, 11, 35, 16, 13, 51, 45, 43, 0xFE0D, 42, 57, 41]
    assert ch.server_name == "www.example.org"
    assert ch.alpn == ["h2", "http/1.1"]
    assert ch.alpn_raw == [b"h2", b"http/1.1"]
    assert ch.supported_groups == [0x3A3A, 0x11EC, 29, 23]
    assert ch.ec_point_formats == [0]
    assert ch.signature_algorithms == [0x0403, 0x0804, 0x0401]
    assert ch.key_share_groups == [0x11EC, 29]
    assert ch.supported_versions == [0x4A4A, 0x0304, 0x0303]
    assert ch.psk_key_exchange_modes == [1]
    assert ch.psk and ch.early_data and ch.ech
    assert ch.session_ticket and ch.session_ticket_data
    assert ch.renegotiation_info and ch.extended_master_secret
    assert ch.quic_transport_parameters == b"\x01\x02\x03"
    assert ch.grease
    assert ch.max_version == 0x0304
    assert not ch.sslv2
    assert ch.errors == []
    # the raw body of each extension is kept, in order
    assert dict(ch.extensions)[51][:6] == struct.pack(">HHH", 4 + 1216 + 4 + 32, 0x11EC, 1216)


def test_client_hello_minimal_without_extensions() -> None:
    ch = parse_client_hello(client_hello_body(version=0x0301, ciphers=[0x002F]))
    assert ch.extensions == [] and ch.server_name is None and ch.alpn == []
    assert ch.max_version == 0x0301
    assert not ch.grease and not ch.renegotiation_info


def test_scsv_counts_as_renegotiation_info() -> None:
    ch = parse_client_hello(client_hello_body(ciphers=[0x002F, 0x00FF]))
    assert ch.renegotiation_info


def test_dtls_cookie_is_read() -> None:
    body = bytearray(client_hello_body(version=0xFEFD, ciphers=[0xC02B], extensions=[ext(43, b"\x02\xfe\xfc")]))
    # insert a DTLS cookie (length 4) after the empty session id (offset 35)
    body[35:35] = b"\x04coo!"
    ch = parse_client_hello(bytes(body), dtls=True)
    assert ch.cookie == b"coo!"
    assert ch.cipher_suites == [0xC02B]
    assert ch.max_version == 0xFEFC  # DTLS 1.3 outranks DTLS 1.2 despite the smaller code
    with pytest.raises(ParseError):  # read as TLS the cookie shifts everything
        ch2 = parse_client_hello(bytes(body))
        assert ch2.cipher_suites == [0xC02B]


def test_scapy_built_hellos_parse_like_scapy_says() -> None:
    from scapy.layers.tls.extensions import (
        ProtocolName,
        ServerName,
        TLS_Ext_ALPN,
        TLS_Ext_ServerName,
        TLS_Ext_SignatureAlgorithms,
        TLS_Ext_SupportedGroups,
        TLS_Ext_SupportedPointFormat,
        TLS_Ext_SupportedVersion_CH,
        TLS_Ext_SupportedVersion_SH,
    )
    from scapy.layers.tls.handshake import TLSClientHello, TLSServerHello
    from scapy.layers.tls.keyexchange_tls13 import KeyShareEntry, TLS_Ext_KeyShare_CH
    from scapy.layers.tls.record import TLS

    hello = TLSClientHello(
        version=0x0303,
        gmt_unix_time=0,
        random_bytes=b"\x01" * 28,
        sid=b"",
        ciphers=[0x1301, 0xC02F, 0x0A0A],
        comp=[0],
        ext=[
            TLS_Ext_ServerName(servernames=[ServerName(servername=b"example.com")]),
            TLS_Ext_SupportedGroups(groups=[29, 23]),
            TLS_Ext_ALPN(protocols=[ProtocolName(protocol=b"h2"), ProtocolName(protocol=b"http/1.1")]),
            TLS_Ext_SupportedPointFormat(ecpl=[0]),
            TLS_Ext_SignatureAlgorithms(sig_algs=[0x0403, 0x0804]),
            TLS_Ext_SupportedVersion_CH(versions=[0x0304, 0x0303]),
            TLS_Ext_KeyShare_CH(client_shares=[KeyShareEntry(group=29, key_exchange=b"\x02" * 32)]),
        ],
    )
    record = bytes(TLS(type=22, version=0x0301, msg=[hello]))
    ch = parse_client_hello(record[9:])
    assert ch.server_name == "example.com"
    assert ch.alpn == ["h2", "http/1.1"]
    assert ch.supported_groups == [29, 23]
    assert ch.signature_algorithms == [0x0403, 0x0804]
    assert ch.supported_versions == [0x0304, 0x0303]
    assert ch.key_share_groups == [29]
    assert ch.cipher_suites == [0x1301, 0xC02F, 0x0A0A]
    assert ch.extension_types == [0, 10, 16, 11, 13, 43, 51]
    # and scapy reads our parse target the same way
    again = TLS(record)
    assert again.msg[0].ciphers == ch.cipher_suites

    server = TLSServerHello(
        version=0x0303,
        gmt_unix_time=0,
        random_bytes=b"\x03" * 28,
        sid=b"",
        cipher=0x1301,
        comp=0,
        ext=[TLS_Ext_SupportedVersion_SH(version=0x0304)],
    )
    sh = parse_server_hello(bytes(TLS(type=22, version=0x0303, msg=[server]))[9:])
    assert sh.cipher_suite == 0x1301 and sh.selected_version == 0x0304 and sh.version == 0x0304
    assert not sh.is_hello_retry_request


def test_server_hello_fields() -> None:
    body = server_hello_body(
        cipher=0xC030,
        session_id=b"\x09" * 32,
        extensions=[
            ext(0xFF01, b"\x00"),
            ext(23, b""),
            ext(35, b""),
            alpn_ext([b"h2"]),
            ext(11, b"\x01\x00"),
        ],
    )
    sh = parse_server_hello(body)
    assert sh.version == 0x0303 and sh.selected_version is None
    assert sh.cipher_suite == 0xC030 and sh.compression == 0
    assert sh.session_id == b"\x09" * 32
    assert sh.alpn == "h2" and sh.alpn_raw == b"h2"
    assert sh.renegotiation_info and sh.extended_master_secret and sh.session_ticket
    assert sh.ec_point_formats == [0]
    assert sh.extension_types == [0xFF01, 23, 35, 16, 11]


def test_hello_retry_request_and_tls13_server_hello() -> None:
    hrr = parse_server_hello(
        server_hello_body(random=C.HRR_RANDOM, cipher=0x1302, extensions=[ext(43, b"\x03\x04"), ext(51, b"\x00\x17")])
    )
    assert hrr.is_hello_retry_request and hrr.key_share_group == 23 and hrr.version == 0x0304
    sh = parse_server_hello(
        server_hello_body(
            cipher=0x1301,
            extensions=[ext(43, b"\x03\x04"), ext(51, b"\x00\x1d\x00\x20" + b"k" * 32), ext(41, b"\x00\x00")],
        )
    )
    assert not sh.is_hello_retry_request and sh.key_share_group == 29 and sh.psk_selected


def test_tls13_draft_server_hello_layout() -> None:
    # drafts before -22: version, random, cipher, extensions (no session id, no compression);
    # key_share was extension 40 before draft -23
    body = struct.pack(">H", 0x7F10) + b"\x33" * 32 + struct.pack(">H", 0xCCA9)
    exts = ext(40, b"\x00\x1d\x00\x20" + b"k" * 32)
    body += struct.pack(">H", len(exts)) + exts
    sh = parse_server_hello(body)
    assert sh.version == 0x7F10 and sh.cipher_suite == 0xCCA9 and sh.key_share_group == 29
    assert C.version_name(sh.version) == "TLS 1.3 (draft 16)"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\x03\x03" + b"\x00" * 20, "shorter"),
        (b"\x03\x03" + b"\x00" * 32 + b"\x21" + b"\x00" * 40, "session id"),
        (b"\x03\x03" + b"\x00" * 32 + b"\x00" + b"\x00\x03\x13\x01\x00" + b"\x01\x00", "cipher suites"),
        (b"\x03\x03" + b"\x00" * 32 + b"\x00" + b"\xff\xfe\x13\x01", "cipher suites"),
        (b"\x03\x03" + b"\x00" * 32 + b"\x00" + b"\x00\x02\x13\x01", "compression"),
        (b"\x03\x03" + b"\x00" * 32 + b"\x00" + b"\x00\x02\x13\x01\x05\x00", "compression"),
    ],
)
def test_client_hello_contradicting_itself_raises_parse_error(body: bytes, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse_client_hello(body)


def test_broken_extension_block_keeps_what_came_before() -> None:
    good = sni_ext("a.example") + ext(23, b"")
    body = client_hello_body(extensions=[good]) + b""
    # claim 200 more bytes of extensions than exist, and append a cut extension header
    base = client_hello_body()
    exts = good + b"\x00\x0a\x00"
    cut = base + struct.pack(">H", len(exts) + 200) + exts
    ch = parse_client_hello(cut)
    assert ch.extension_types == [0, 23]
    assert ch.server_name == "a.example"
    assert any("exceeds" in e for e in ch.errors) and any("cut" in e for e in ch.errors)
    assert parse_client_hello(body).errors == []


def test_malformed_single_extension_is_an_error_not_a_failure() -> None:
    ch = parse_client_hello(
        client_hello_body(extensions=[ext(10, b"\x00\x03\x00\x1d\x00"), ext(16, b"\x00\x09\x02h2")])
    )
    assert ch.supported_groups == [] and ch.alpn == []
    assert len(ch.errors) == 2 and ch.errors[0].startswith("ext 10:")
    assert ch.extension_types == [10, 16]


def test_sslv2_compatible_client_hello() -> None:
    ciphers = bytes.fromhex("0100800700c000002f0000350000ff")
    challenge = b"\x44" * 16
    body = b"\x01\x03\x01" + struct.pack(">HHH", len(ciphers), 0, len(challenge)) + ciphers + challenge
    ch = parse_sslv2_client_hello(body)
    assert ch.sslv2 and ch.legacy_version == 0x0301 and ch.random == challenge
    assert ch.cipher_suites == [0x010080, 0x0700C0, 0x2F, 0x35, 0xFF]
    assert ch.renegotiation_info
    assert ch.extensions == []
    with pytest.raises(ParseError):
        parse_sslv2_client_hello(body[:-1])
    with pytest.raises(ParseError):
        parse_sslv2_client_hello(b"\x04" + body[1:])


def test_certificate_list_tls12_and_tls13() -> None:
    a, b = b"\x30\x03\x02\x01\x01", b"\x30\x00"
    entries = b"".join(len(x).to_bytes(3, "big") + x for x in (a, b))
    assert parse_certificate_list(len(entries).to_bytes(3, "big") + entries) == [a, b]
    entries13 = b"".join(len(x).to_bytes(3, "big") + x + b"\x00\x00" for x in (a, b))
    body13 = b"\x00" + len(entries13).to_bytes(3, "big") + entries13
    assert parse_certificate_list(body13, tls13=True) == [a, b]
    with pytest.raises(ParseError):
        parse_certificate_list(len(entries).to_bytes(3, "big") + entries[:-1])
    with pytest.raises(ParseError):
        parse_certificate_list((len(entries) + 1).to_bytes(3, "big") + entries + b"\x00")


def test_server_key_exchange_groups_and_dh_sizes() -> None:
    ecdhe = b"\x03\x00\x1d\x20" + b"p" * 32 + b"\x04\x01\x00\x00"
    assert parse_server_key_exchange(ecdhe, "ECDHE").named_group == 29
    prime = b"\xff" * 256
    dhe = struct.pack(">H", len(prime)) + prime + b"\x00\x01\x02" + b"\x00\x01\x05"
    info = parse_server_key_exchange(dhe, "DHE")
    assert info.kind == "dhe" and info.dh_bits == 2048
    small = struct.pack(">H", 65) + b"\x00" + b"\x80" + b"\x00" * 63
    assert parse_server_key_exchange(small, "DHE").dh_bits == 512  # leading zero byte not counted
    with pytest.raises(ParseError):
        parse_server_key_exchange(struct.pack(">H", 300) + prime, "DHE")
    assert parse_server_key_exchange(b"\x01\x02", "RSA").kind == "unknown"


def test_alert() -> None:
    assert parse_alert(b"\x02\x28") == (2, 40)
    with pytest.raises(ParseError):
        parse_alert(b"\x02")


def test_constants_are_explicit_for_unknown_values() -> None:
    assert C.version_name(0x0303) == "TLS 1.2"
    assert C.version_name(0x0300) == "SSL 3.0"
    assert C.version_name(0x0002) == "SSL 2.0"
    assert C.version_name(0xFEFD) == "DTLS 1.2"
    assert C.version_name(0xFEFC) == "DTLS 1.3"
    assert C.version_name(0x1234) == "unknown (0x1234)"
    assert C.version_name(0x7A7A) == "GREASE"
    assert C.version_name(None) is None
    assert len(C.GREASE) == 16 and 0x0A0A in C.GREASE and 0xFAFA in C.GREASE and 0x0A1A not in C.GREASE
    assert C.extension_name(0) == "server_name" and C.extension_name(0x1A1A) == "GREASE"
    assert C.extension_name(65000) == "unknown_65000"
    assert C.alert_description_name(40) == "handshake_failure" and C.alert_description_name(250) == "unknown_250"
    assert C.alert_level_name(2) == "fatal"
    assert C.group_name(0x11EC) == "X25519MLKEM768" and C.group_name(0x4444) == "unknown_0x4444"
    assert C.signature_scheme_name(0x0804) == "rsa_pss_rsae_sha256"
    assert C.is_tls13(0x0304) and C.is_tls13(0x7F1C) and not C.is_tls13(0x0303)


def test_handshake_header_helper_matches_the_spec() -> None:
    assert handshake(1, b"abc") == b"\x01\x00\x00\x03abc"
