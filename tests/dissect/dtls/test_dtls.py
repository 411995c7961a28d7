"""DTLS dissector: crafted handshakes (fragments, HelloVerifyRequest, CIDs, 1.3, alerts, STUN mux, WebRTC)."""

from __future__ import annotations

import datetime as dt
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from support.udp_helpers import flow_from_payloads

import analyzer
from analyzer.dissect import registered
from analyzer.dissect.dtls import (
    DTLSDissector,
    dissect_dtls,
    looks_like_dtls,
    mux_kind,
    parse_handshake_fragment,
    parse_records,
)
from analyzer.dissect.tls.constants import HRR_RANDOM
from analyzer.dissect.tls.fingerprints import ja4
from analyzer.dissect.tls.handshake import parse_client_hello
from analyzer.dissect.tls.schema import CERT_LINKS, CERTS, TLS
from analyzer.errors import NeedMoreData, ParseError
from analyzer.schema import frame_from_rows

DTLS10, DTLS12, DTLS13 = 0xFEFF, 0xFEFD, 0xFEFC


def record(
    ctype: int, body: bytes, *, epoch: int = 0, seq: int = 0, version: int = DTLS12, cid: bytes = b""
) -> bytes:
    return (
        struct.pack(">BHH", ctype, version, epoch)
        + seq.to_bytes(6, "big")
        + cid
        + struct.pack(">H", len(body))
        + body
    )


def hs(mtype: int, mseq: int, body: bytes, off: int = 0, ln: int | None = None) -> bytes:
    ln = len(body) - off if ln is None else ln
    return (
        bytes([mtype])
        + len(body).to_bytes(3, "big")
        + struct.pack(">H", mseq)
        + off.to_bytes(3, "big")
        + ln.to_bytes(3, "big")
        + body[off : off + ln]
    )


def ext(etype: int, body: bytes) -> bytes:
    return struct.pack(">HH", etype, len(body)) + body


def client_hello(
    *,
    cookie: bytes = b"",
    ciphers: tuple[int, ...] = (0xC02B, 0xC02F),
    version: int = DTLS12,
    sni: str | None = "dtls.example",
    cid: bytes | None = None,
    supported: tuple[int, ...] = (),
) -> bytes:
    exts = b""
    if sni is not None:
        name = sni.encode()
        exts += ext(0, struct.pack(">HBH", len(name) + 3, 0, len(name)) + name)
    exts += ext(10, b"\x00\x04\x00\x1d\x00\x17") + ext(11, b"\x01\x00") + ext(13, b"\x00\x04\x04\x03\x08\x04")
    if supported:
        exts += ext(43, bytes([2 * len(supported)]) + b"".join(struct.pack(">H", v) for v in supported))
        exts += ext(51, b"\x00\x26\x00\x1d\x00\x20" + bytes(32) + b"\x00\x17\x00\x00")
    if cid is not None:
        exts += ext(54, bytes([len(cid)]) + cid)
    body = struct.pack(">H", version) + bytes(range(32)) + b"\x00" + bytes([len(cookie)]) + cookie
    body += (
        struct.pack(">H", 2 * len(ciphers)) + b"".join(struct.pack(">H", c) for c in ciphers) + b"\x01\x00"
    )
    return body + struct.pack(">H", len(exts)) + exts


def server_hello(
    *,
    cipher: int = 0xC02F,
    version: int = DTLS12,
    selected: int | None = None,
    cid: bytes | None = None,
    hrr: bool = False,
    session_id: bytes = b"",
) -> bytes:
    exts = ext(0xFF01, b"\x00") + ext(11, b"\x01\x00")
    if selected is not None:
        exts = ext(43, struct.pack(">H", selected)) + ext(
            51, b"\x00\x1d" if hrr else b"\x00\x1d\x00\x20" + bytes(32)
        )
    if cid is not None:
        exts += ext(54, bytes([len(cid)]) + cid)
    random = HRR_RANDOM if hrr else bytes(32)
    body = (
        struct.pack(">H", version)
        + random
        + bytes([len(session_id)])
        + session_id
        + struct.pack(">HB", cipher, 0)
    )
    return body + struct.pack(">H", len(exts)) + exts


def make_cert() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dtls.example")])
    now = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(7).not_valid_before(now).not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return cert.public_bytes(serialization.Encoding.DER)


CERT = make_cert()


def certificate_msg(*ders: bytes) -> bytes:
    items = b"".join(len(d).to_bytes(3, "big") + d for d in ders)
    return len(items).to_bytes(3, "big") + items


SKE = b"\x03\x00\x1d\x20" + bytes(32) + b"\x04\x03\x00\x02\xab\xcd"  # ECDHE x25519, a signature
CKE = b"\x20" + bytes(32)
HVR = struct.pack(">H", DTLS10) + b"\x08cookie!!"
FINISHED_ENCRYPTED = bytes(40)


def full_12_handshake(cert_fragments: bool = False) -> list[tuple[bool, bytes]]:
    ch1 = record(22, hs(1, 0, client_hello(ciphers=(0x002F,))), version=DTLS10)
    hvr = record(22, hs(3, 0, HVR), version=DTLS10)
    ch2 = record(22, hs(1, 1, client_hello(cookie=b"cookie!!")), seq=1, version=DTLS10)
    cert_body = certificate_msg(CERT)
    sh = record(22, hs(2, 1, server_hello()), seq=1)
    if cert_fragments:
        n = len(cert_body)
        a, b = n // 3, 2 * n // 3
        flight1 = (
            sh
            + record(22, hs(11, 2, cert_body, b, n - b), seq=2)
            + record(22, hs(11, 2, cert_body, 0, a), seq=3)
        )
        flight2 = (
            record(22, hs(11, 2, cert_body, a, b - a), seq=4)
            + record(22, hs(11, 2, cert_body, 0, a), seq=5)  # a duplicate fragment
            + record(22, hs(12, 3, SKE), seq=6)
            + record(22, hs(14, 4, b""), seq=7)
        )
        server_flight = [(False, flight1), (False, flight2), (False, flight1)]  # whole flight retransmitted
    else:
        flight = (
            sh
            + record(22, hs(11, 2, cert_body), seq=2)
            + record(22, hs(12, 3, SKE), seq=3)
            + record(22, hs(14, 4, b""), seq=4)
        )
        server_flight = [(False, flight)]
    client_fin = (
        record(22, hs(16, 2, CKE), seq=2)
        + record(20, b"\x01", seq=3)
        + record(22, FINISHED_ENCRYPTED, epoch=1)
    )
    server_fin = record(20, b"\x01", seq=8) + record(22, FINISHED_ENCRYPTED, epoch=1)
    app = record(23, bytes(48), epoch=1, seq=1)
    return [
        (True, ch1),
        (False, hvr),
        (True, ch2),
        *server_flight,
        (True, client_fin),
        (False, server_fin),
        (True, app),
    ]


def only(facts: object, frame: str) -> list[dict[str, object]]:
    return list(facts.rows.get(frame, []))  # type: ignore[attr-defined]


def kinds(facts: object) -> list[str]:
    return [str(a["kind"]) for a in only(facts, "anomalies")]


def test_registered() -> None:
    d = next(d for d in registered() if d.name == "dtls")
    assert isinstance(d, DTLSDissector)
    assert d.transports == frozenset({"udp"}) and {443, 4433, 5684, 3478} <= d.ports


def test_full_dtls12_handshake_with_hello_verify_request() -> None:
    facts = dissect_dtls(flow_from_payloads(full_12_handshake(), server_port=4433))
    f = facts.flow
    assert f["app_protocol"] == "dtls" and f["encrypted"] is True
    assert f["tls_version"] == "DTLS 1.2"
    assert f["tls_cipher"] == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    assert f["tls_server_name"] == "dtls.example"
    assert f["tls_established"] is True
    assert f["tls_client_max_version"] == "DTLS 1.2"
    # the hello that counts is the one answering the HelloVerifyRequest (it offers other ciphers)
    ch2 = parse_client_hello(client_hello(cookie=b"cookie!!"), dtls=True)
    assert f["ja4"] == ja4(ch2, "d")[0] and str(f["ja4"]).startswith("dd2d0204")
    assert str(f["ja4s"]).startswith("dd20200_c02f_")
    rows = only(facts, "tls")
    frame_from_rows(rows, TLS)
    row = rows[0]
    assert row["protocol"] == "dtls"
    assert row["client_ciphers"] == "c02b,c02f"
    assert row["history"] == "CvCsxknGIi"
    assert row["selected_group"] == "x25519"
    assert row["cert_visible"] is True
    sha = row["cert_sha256"]
    assert f["cert_sha256"] == sha and f["cert_key_bits"] == 256
    links = only(facts, "cert_links")
    frame_from_rows(links, CERT_LINKS)
    assert links == [{"uid": "Utest", "sha256": sha, "position": 0, "sent_by": "server"}]
    certs = only(facts, "certs")
    frame_from_rows(certs, CERTS)
    assert len(certs) == 1 and certs[0]["sha256"] == sha and certs[0]["subject_cn"] == "dtls.example"
    assert kinds(facts) == []


def test_certificate_fragments_out_of_order_duplicated_and_retransmitted() -> None:
    facts = dissect_dtls(flow_from_payloads(full_12_handshake(cert_fragments=True)))
    whole = dissect_dtls(flow_from_payloads(full_12_handshake()))
    assert facts.flow["cert_sha256"] == whole.flow["cert_sha256"]
    assert len(only(facts, "certs")) == 1 and len(only(facts, "cert_links")) == 1
    # each message parsed once; the retransmitted whole ServerHello repeats its letter (as in Zeek)
    assert only(facts, "tls")[0]["history"] == "CvCsxknsGIi"
    assert kinds(facts) == []


def test_messages_in_separate_datagrams_reverse_order() -> None:
    body = client_hello()
    parts = [record(22, hs(1, 0, body, off, 20 if off + 20 < len(body) else len(body) - off), seq=i)
             for i, off in enumerate(range(0, len(body), 20))]  # fmt: skip
    facts = dissect_dtls(flow_from_payloads([(True, p) for p in reversed(parts)]))
    assert facts.flow["tls_server_name"] == "dtls.example"
    assert facts.flow["tls_established"] is False
    assert only(facts, "tls")[0]["failure_reason"] == "no server hello"


def test_stun_and_rtp_on_the_same_five_tuple() -> None:
    stun = bytes.fromhex("000100002112a442") + bytes(12)
    rtp = bytes.fromhex("80e0") + bytes(30)
    dgs = [(True, stun), (False, stun), (True, stun)] + [
        x for pair in zip(full_12_handshake(), [(True, rtp)] * 20, strict=False) for x in pair
    ]
    flow = flow_from_payloads(dgs, server_port=19305)
    d = DTLSDissector()
    assert d.probe(flow)
    facts = d.dissect(flow)
    assert facts.flow["tls_established"] is True
    assert kinds(facts) == []


def test_fatal_alert() -> None:
    dgs = [(True, record(22, hs(1, 0, client_hello()))), (False, record(21, b"\x02\x28"))]
    facts = dissect_dtls(flow_from_payloads(dgs))
    row = only(facts, "tls")[0]
    assert row["established"] is False
    assert row["alert_level"] == "fatal" and row["alert_description"] == "handshake_failure"
    assert row["failure_reason"] == "server alert: handshake_failure"
    assert row["history"] == "Cl"
    assert facts.flow["encrypted"] is False


def test_dtls13_unified_header_handshake() -> None:
    ch = record(22, hs(1, 0, client_hello(supported=(DTLS13, DTLS12))))
    sh = record(22, hs(2, 0, server_hello(cipher=0x1301, selected=DTLS13)))
    server_enc = bytes([0x2E]) + b"\x00\x01" + struct.pack(">H", 40) + bytes(40)  # 001 0 1 1 10: epoch 2
    client_enc = bytes([0x2E]) + b"\x00\x01" + struct.pack(">H", 30) + bytes(30)
    client_app = bytes([0x2B]) + b"\x00\x02" + bytes(30)  # 001 0 1 0 11: epoch 3, no length
    facts = dissect_dtls(
        flow_from_payloads([(True, ch), (False, sh + server_enc), (True, client_enc + client_app)])
    )
    row = only(facts, "tls")[0]
    assert row["version"] == "DTLS 1.3" and row["cipher"] == "TLS_AES_128_GCM_SHA256"
    assert row["established"] is True and row["cert_visible"] is False
    assert row["client_max_version"] == "DTLS 1.3"
    ch_body = client_hello(supported=(DTLS13, DTLS12))
    assert row["ja4"] == ja4(parse_client_hello(ch_body, dtls=True), "d")[0]
    # without the client's epoch-3 record the handshake is not shown complete
    facts = dissect_dtls(flow_from_payloads([(True, ch), (False, sh + server_enc), (True, client_enc)]))
    assert facts.flow["tls_established"] is False


def test_dtls13_hello_retry_request() -> None:
    ch = record(22, hs(1, 0, client_hello(supported=(DTLS13,))))
    hrr = record(22, hs(2, 0, server_hello(cipher=0x1301, selected=DTLS13, hrr=True)))
    ch2 = record(22, hs(1, 1, client_hello(supported=(DTLS13,), ciphers=(0x1301,))), seq=1)
    sh = record(22, hs(2, 1, server_hello(cipher=0x1301, selected=DTLS13)), seq=1)
    facts = dissect_dtls(flow_from_payloads([(True, ch), (False, hrr), (True, ch2), (False, sh)]))
    row = only(facts, "tls")[0]
    assert row["hello_retry_request"] is True and row["history"] == "CjCs"
    assert row["client_ciphers"] == "c02b,c02f"  # the first hello, as for TLS


def test_dtls12_connection_id_records() -> None:
    ch = record(22, hs(1, 0, client_hello(cid=b"\xaa\xbb")))
    sh = record(22, hs(2, 0, server_hello(cid=b"\x01\x02\x03\x04"))) + record(20, b"\x01", seq=1)
    client = record(25, bytes(40), epoch=1, seq=5, cid=b"\x01\x02\x03\x04")  # tls12_cid, server's CID
    server = record(25, bytes(40), epoch=1, seq=6, cid=b"\xaa\xbb")
    facts = dissect_dtls(flow_from_payloads([(True, ch), (False, sh), (True, client), (False, server)]))
    assert kinds(facts) == []
    assert facts.flow["tls_established"] is False  # CID records are opaque: no CCS from the client
    # and one wrong-length CID record would fail to parse: the length comes from the hellos
    recs, err = parse_records(client, cid_len=2)
    assert err is not None and not recs


def test_unified_header_with_unknown_cid_length() -> None:
    recs, err = parse_records(bytes([0x3E]) + bytes(30))
    assert recs == [] and err is not None and "unknown length" in err
    facts = dissect_dtls(
        flow_from_payloads([(True, record(22, hs(1, 0, client_hello()))), (False, bytes([0x3E]) + bytes(30))])
    )
    assert "dtls_record" in kinds(facts)


def test_handshake_fragment_errors() -> None:
    with pytest.raises(NeedMoreData):
        parse_handshake_fragment(b"\x01\x00\x00")
    with pytest.raises(ParseError):  # fragment beyond the message
        parse_handshake_fragment(hs(1, 0, b"abc", 0, 3)[:4] + b"\x00\x00\x00\x00\x02\x00\x00\x03abc")
    facts = dissect_dtls(
        flow_from_payloads(
            [(True, record(22, b"\x01\x10\x00\x00\x00\x00\x00\x00\x00\x00\x00\x10" + bytes(16)))]
        )
    )
    assert "dtls_message_too_long" in kinds(facts)


def test_mismatched_fragments() -> None:
    body = client_hello()
    a = record(22, hs(1, 0, body, 0, 30))
    b = record(22, bytes([11]) + hs(1, 0, body, 30)[1:], seq=1)  # same message_seq, other type
    facts = dissect_dtls(flow_from_payloads([(True, a), (True, b)]))
    assert "dtls_fragment_mismatch" in kinds(facts)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        bytes.fromhex("000100002112a442") + bytes(12),  # STUN
        bytes.fromhex("80e0") + bytes(30),  # RTP
        bytes.fromhex("c000000001088394c8f03e515708"),  # QUIC Initial
        bytes.fromhex("16030100a5") + bytes(165),  # TLS over TCP record
        bytes.fromhex("16fefd0000000000000000ffff") + bytes(10),  # length past the datagram
    ],
)
def test_probe_rejects(payload: bytes) -> None:
    assert not looks_like_dtls(payload)
    assert not DTLSDissector().probe(flow_from_payloads([(True, payload)]))


def test_old_openssl_version_and_resumption() -> None:
    sid = bytes(range(32))
    body = client_hello(version=0x0100)
    body = body[:34] + bytes([32]) + sid + body[35:]
    ch = record(22, hs(1, 0, body), version=0x0100)
    sh = record(22, hs(2, 0, server_hello(version=0x0100, cipher=0x0035, session_id=sid)), version=0x0100)
    ccs_fin = record(20, b"\x01", seq=1, version=0x0100) + record(22, bytes(40), epoch=1, version=0x0100)
    facts = dissect_dtls(flow_from_payloads([(True, ch), (False, sh + ccs_fin), (True, ccs_fin)]))
    row = only(facts, "tls")[0]
    assert row["version"] == "DTLS 1.0" and row["resumed"] is True and row["established"] is True
    assert str(row["ja4"]).startswith("d00d")


def test_ja4_dtls13_version_digit_when_12_also_offered() -> None:
    ch = parse_client_hello(client_hello(supported=(DTLS13, DTLS12)), dtls=True)
    assert ja4(ch, "d")[0].startswith("dd3")


# --- WebRTC on one UDP 5-tuple (issue 17 section 3b): STUN, DTLS and SRTP/SRTCP demultiplexed by the
# first byte (RFC 7983). The DTLS facts come from the DTLS datagrams among the others; `dtls_multiplexed`
# says what else was there; DTLS-SRTP (use_srtp accepted, RFC 5764) is protection "srtp". End to end on
# the corpus's Google Meet capture against tshark (STUN, DTLS, and RTP/RTCP with its heuristics on).

WEBRTC_CORPUS = Path(__file__).resolve().parents[4] / "shared" / "corpus" / "pcaps"
STUN = bytes.fromhex("000100002112a442") + bytes(12)  # a Binding request
RTP = bytes.fromhex("806f0001") + bytes(28)  # V=2, payload type 111
RTCP = bytes.fromhex("80c80006") + bytes(24)  # V=2, sender report (200)
USE_SRTP = bytes.fromhex("000e0005" "00020001" "00")  # extension 14: SRTP_AES128_CM_HMAC_SHA1_80, no MKI


def _with_use_srtp(dgs: list[tuple[bool, bytes]]) -> list[tuple[bool, bytes]]:
    """The handshake with a ServerHello that accepts use_srtp."""
    sh = server_hello()
    n = int.from_bytes(sh[-13:-11], "big")  # the default ServerHello's 11 bytes of extensions
    assert n == 11
    with_ext = sh[:-13] + (n + len(USE_SRTP)).to_bytes(2, "big") + sh[-11:] + USE_SRTP
    old = record(22, hs(2, 1, sh), seq=1)
    new = record(22, hs(2, 1, with_ext), seq=1)
    return [(to_server, p.replace(old, new)) for to_server, p in dgs]


def test_mux_kind_follows_rfc_7983():
    assert [mux_kind(bytes([b, 0xC8])) for b in (0, 3, 16, 19, 64, 79)] == [1, 1, 2, 2, 4, 4]
    assert mux_kind(RTP) == 8 and mux_kind(RTCP) == 16 and mux_kind(b"\x80") == 8
    assert mux_kind(b"\x05") == 0 and mux_kind(b"\xff") == 0


def test_stun_srtp_and_srtcp_around_the_handshake():
    hand = _with_use_srtp(full_12_handshake())
    dgs = [(True, STUN), (False, STUN), *hand[:2], (True, STUN), *hand[2:], (True, RTP), (False, RTCP)]
    facts = dissect_dtls(flow_from_payloads(dgs, server_port=19305))
    f = facts.flow
    assert (f["app_protocol"], f["encrypted"], f["protection"]) == ("dtls", True, "srtp")
    assert f["dtls_multiplexed"] == "stun,rtp,rtcp"
    assert f["tls_version"] == "DTLS 1.2" and f["tls_established"] is True
    # the same handshake alone: the same DTLS facts, protection dtls, nothing multiplexed
    alone = dissect_dtls(flow_from_payloads(full_12_handshake(), server_port=19305)).flow
    assert alone["protection"] == "dtls" and "dtls_multiplexed" not in alone
    for column in ("tls_version", "tls_cipher", "ja4", "cert_sha256", "tls_server_name"):  # not ja4s: +1 extension
        assert f[column] == alone[column], column


def test_use_srtp_offered_but_not_accepted_is_dtls():
    hand = full_12_handshake()
    assert DTLS12 and dissect_dtls(flow_from_payloads(hand)).flow["protection"] == "dtls"


def _webrtc_corpus(name: str) -> Path:
    path = WEBRTC_CORPUS / name
    if not path.exists():
        pytest.skip(f"{path} not present (the shared corpus is not on this machine)")
    return path


@pytest.mark.tshark
def test_google_meet_capture_equals_tshark():
    path = _webrtc_corpus("ndpi/stun_dtls_rtp.pcapng")
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed (the oracle)")
    r = analyzer.analyze([str(path)])
    udp = r.flows[r.flows["transport"] == "udp"].reset_index(drop=True)
    assert len(udp) == 1
    f = udp.iloc[0]
    out = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-o", "rtp.heuristic_rtp:TRUE", "-o", "rtcp.heuristic_rtcp:TRUE", "-Y", "udp",
         "-T", "fields", "-E", "separator=\t", "-e", "frame.protocols", "-e", "dtls.handshake.type",
         "-e", "dtls.handshake.version", "-e", "dtls.handshake.ciphersuite", "-e", "dtls.handshake.extension.type"],
        capture_output=True, text=True, timeout=120, check=True).stdout
    rows = [line.split("\t") for line in out.splitlines()]
    seen = set()
    for protocols, *_ in rows:
        layers = protocols.split(":")
        for name in ("stun", "rtp", "rtcp"):
            if name in layers and "dtls" not in layers:
                seen.add(name)
    assert f["dtls_multiplexed"] == ",".join(n for n in ("stun", "rtp", "rtcp") if n in seen)
    hello = next(r for r in rows if r[1].split(",")[0] == "2")  # the ServerHello
    assert f["tls_version"] == {"0xfefd": "DTLS 1.2", "0xfeff": "DTLS 1.0"}[hello[2].split(",")[0]]
    assert int(r.tls.iloc[0]["cipher_code"]) == int(hello[3].split(",")[0], 16)
    accepted_srtp = "14" in hello[4].split(",")
    assert accepted_srtp and (f["encrypted"], f["protection"]) == (True, "srtp")
