"""JA3 / JA3S / JA4 / JA4S / JA4X against published vectors and the spec's edge cases."""

from __future__ import annotations

import datetime as dt
import hashlib
import struct

import pytest
from support.tls_helpers import alpn_ext, client_hello_body, ext, server_hello_body, sni_ext, u16s

from analyzer.dissect.tls.fingerprints import ja3, ja3s, ja4, ja4s, ja4x, ja4x_parts
from analyzer.dissect.tls.handshake import parse_client_hello, parse_server_hello, parse_sslv2_client_hello
from analyzer.errors import ParseError

# FoxIO's own unit-test vector (rust/ja4/src/tls.rs, test_client_stats_into_out).
FOXIO_CIPHERS = [0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0xC013, 0xC014,
                 0x009C, 0x009D, 0x002F, 0x0035]  # fmt: skip
FOXIO_EXTS = [0x001B, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002D, 0x000D, 0x0005, 0x0023, 0x0012, 0x002B,
              0xFF01, 0x000B, 0x000A, 0x0015]  # fmt: skip
FOXIO_SIGS = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]


def foxio_hello(grease: bool = True) -> bytes:
    bodies = {
        0x0000: sni_ext("example.com")[4:],
        0x0010: alpn_ext([b"h2", b"http/1.1"])[4:],
        0x000D: u16s(FOXIO_SIGS),
        0x002B: b"\x06" + (b"\x7a\x7a" if grease else b"\x03\x02") + b"\x03\x04\x03\x03",
    }
    exts = [ext(t, bodies.get(t, b"")) for t in FOXIO_EXTS]
    ciphers = list(FOXIO_CIPHERS)
    if grease:
        exts = [ext(0x0A0A, b""), *exts, ext(0xFAFA, b"\x00")]
        ciphers = [0x2A2A, *ciphers]
    return client_hello_body(ciphers=ciphers, extensions=exts)


def test_ja4_foxio_vector() -> None:
    for grease in (True, False):
        fp, raw = ja4(parse_client_hello(foxio_hello(grease)))
        assert fp == "t13d1516h2_8daaf6152771_e5627efa2ab1"
        assert raw == (
            "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_"
            "0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_"
            "0403,0804,0401,0503,0805,0501,0806,0601"
        )


def test_ja4_transport_prefix_and_dtls_versions() -> None:
    ch = parse_client_hello(foxio_hello())
    assert ja4(ch, "q")[0].startswith("q13d1516h2_")
    dtls = parse_client_hello(client_hello_body(version=0xFEFD, ciphers=[0xC02B]))
    assert ja4(dtls, "d")[0].startswith("dd2i0100")
    # DTLS version codes count down: DTLS 1.3 (0xfefc) is newer than DTLS 1.2 (0xfefd)
    both = parse_client_hello(client_hello_body(version=0xFEFD, extensions=[ext(43, b"\x04\xfe\xfc\xfe\xfd")]))
    assert ja4(both, "d")[0].startswith("dd3")


def test_ja4s_foxio_vector() -> None:
    sh = parse_server_hello(
        server_hello_body(cipher=0xC030, extensions=[ext(5, b""), ext(0x17, b""), ext(0xFF01, b"\x00"), ext(0, b"")])
    )
    assert ja4s(sh) == ("t120400_c030_4e8089b08790", "t120400_c030_0005,0017,ff01,0000")
    empty = parse_server_hello(server_hello_body(version=0x0301, cipher=0x000A))
    assert ja4s(empty) == ("t100000_000a_000000000000", "t100000_000a_")
    h2 = parse_server_hello(server_hello_body(cipher=0x1301, extensions=[ext(43, b"\x03\x04"), alpn_ext([b"h2"])]))
    assert ja4s(h2, "q")[0].startswith("q1302h2_1301_")


def test_ja3_against_the_tshark_oracle_vector() -> None:
    # badcurveball.pcap in the corpus: ja3_full and ja3 from the oracle CSV.
    ciphers = [
        0xAAAA,
        4865,
        4866,
        4867,
        49195,
        49199,
        49196,
        49200,
        52393,
        52392,
        49171,
        49172,
        156,
        157,
        47,
        53,
        10,
    ]
    exts_order = [19018, 0, 23, 65281, 10, 11, 35, 16, 5, 13, 18, 51, 45, 43, 27, 31354, 21]
    bodies = {10: u16s([0x1A1A, 29, 23, 24]), 11: b"\x01\x00"}
    ch = parse_client_hello(
        client_hello_body(ciphers=ciphers, extensions=[ext(t, bodies.get(t, b"")) for t in exts_order])
    )
    md5, full = ja3(ch)
    assert full == (
        "771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53-10,"
        "0-23-65281-10-11-35-16-5-13-18-51-45-43-27-21,29-23-24,0"
    )
    assert md5 == "66918128f1b9b03303d77c6f2eefd128"


def test_ja3_empty_fields_and_ja3s() -> None:
    ch = parse_client_hello(client_hello_body(version=0x0301, ciphers=[0x002F, 0x0035]))
    md5, full = ja3(ch)
    assert full == "769,47-53,,,"
    assert md5 == hashlib.md5(full.encode()).hexdigest()
    sh = parse_server_hello(
        server_hello_body(
            cipher=49195,
            extensions=[
                ext(0, b""),
                ext(65281, b"\x00"),
                ext(11, b"\x01\x00"),
                ext(35, b""),
                alpn_ext([b"http/1.1"]),
            ],
        )
    )
    assert ja3s(sh) == ("2d1eb5817ece335c24904f516ad5da12", "771,49195,0-65281-11-35-16")


@pytest.mark.parametrize(
    ("alpn", "code"),
    [
        (None, "00"),
        ([b"h2"], "h2"),
        ([b"http/1.1", b"h2"], "h1"),
        ([b"h"], "h0"),
        ([b"\xc3\xa9t\xc3\xa9"], "99"),  # non-ASCII first byte: both FoxIO implementations say 99
        ([b"x\xff"], "x9"),
        ([b"\x01\x02\xab"], "0b"),  # non-printable ASCII: hex of the value, first and last digit
    ],
)
def test_ja4_alpn_characters(alpn: list[bytes] | None, code: str) -> None:
    exts = [alpn_ext(alpn)] if alpn is not None else []
    fp, _ = ja4(parse_client_hello(client_hello_body(extensions=exts)))
    assert fp[8:10] == code


def test_ja4_degenerate_hellos() -> None:
    none = parse_client_hello(client_hello_body(ciphers=[], extensions=[]))
    assert ja4(none) == ("t12i000000_000000000000_000000000000", "t12i000000__")
    # only SNI: the extension list left after removing SNI/ALPN is empty and there are no sigalgs
    only_sni = parse_client_hello(client_hello_body(version=0x0301, ciphers=[0x0005], extensions=[sni_ext("a.b")]))
    assert ja4(only_sni) == (
        "t10d010100_" + hashlib.sha256(b"0005").hexdigest()[:12] + "_000000000000",
        "t10d010100_0005_",
    )
    # an SNI extension without a host name still says "d" (the spec; see NOTES.md)
    empty_sni = parse_client_hello(client_hello_body(extensions=[ext(0, b"")]))
    assert ja4(empty_sni)[0][3] == "d"
    many = parse_client_hello(
        client_hello_body(ciphers=range(1, 150), extensions=[ext(1000 + i, b"") for i in range(120)])
    )
    assert ja4(many)[0][:10] == "t12i999900"
    grease_only_versions = parse_client_hello(client_hello_body(extensions=[ext(43, b"\x02\x0a\x0a")]))
    assert ja4(grease_only_versions)[0][1:3] == "12"
    draft = parse_client_hello(client_hello_body(extensions=[ext(43, b"\x02\x7f\x1c")]))
    assert ja4(draft)[0][1:3] == "00"


def test_sslv2_hello_has_no_ja3_or_ja4() -> None:
    body = b"\x01\x00\x02" + struct.pack(">HHH", 3, 0, 16) + b"\x01\x00\x80" + b"c" * 16
    ch = parse_sslv2_client_hello(body)
    assert ja4(ch) == ("", "") and ja3(ch) == ("", "")


def test_signature_algorithms_come_from_extension_13_only() -> None:
    # signature_algorithms_cert (50) must not leak in (FoxIO's ja4.py mixes them: see NOTES.md)
    ch = parse_client_hello(client_hello_body(extensions=[ext(13, u16s([0x0804, 0x0403])), ext(50, u16s([0x0401]))]))
    assert ja4(ch)[1].endswith("_000d,0032_0804,0403")


# --- JA4X -----------------------------------------------------------------------------------


def _oid_to_hex(dotted: str) -> str:
    """FoxIO python/ja4x.py's OID encoding, reimplemented from the dotted string."""
    arcs = [int(x) for x in dotted.split(".")]
    out = [arcs[0] * 40 + arcs[1]]
    for n in arcs[2:]:
        chunk = [n & 0x7F]
        n >>= 7
        while n:
            chunk.insert(0, 0x80 | (n & 0x7F))
            n >>= 7
        out.extend(chunk)
    return bytes(out).hex()


def _h12(values: list[str]) -> str:
    return hashlib.sha256(",".join(values).encode()).hexdigest()[:12] if values else "000000000000"


def test_ja4x_matches_an_independent_computation() -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    issuer = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test CA"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Test Root"),
        ]
    )
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "www.example.org")])
    now = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(1234)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("www.example.org")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    want_issuer = [_oid_to_hex(a.oid.dotted_string) for a in issuer]
    want_subject = [_oid_to_hex(a.oid.dotted_string) for a in subject]
    want_ext = [_oid_to_hex(e.oid.dotted_string) for e in cert.extensions]
    assert ja4x_parts(der) == (want_issuer, want_subject, want_ext)
    assert want_issuer == ["550406", "55040a", "550403"]
    assert ja4x(der) == f"{_h12(want_issuer)}_{_h12(want_subject)}_{_h12(want_ext)}"


def test_ja4x_rejects_broken_der() -> None:
    for bad in (b"", b"\x30", b"\x30\x05\x30\x03\x02\x01", b"\x30\x84\xff\xff\xff\xff", b"\x31\x00"):
        with pytest.raises(ParseError):
            ja4x(bad)
