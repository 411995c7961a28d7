"""QUIC Handshake packets decrypted with key logs (issue 17 section 4).

The packet protection is checked against RFC 9001 appendix A.5 (ChaCha20-Poly1305 keys, header
protection and a packet); the sessions against tshark on the public corpus captures that carry
their own Decryption Secrets Block (Chrome to Cloudflare over QUIC v1 with a brotli-compressed
certificate, picoquic over QUIC v2 and over draft-32 DNS-over-QUIC). The corpus tests skip, saying
so, when ../shared/corpus is absent."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from support.tls_helpers import corpus_dir

import analyzer
from analyzer.dissect.quic._handshake import HandshakeKeys
from analyzer.dissect.tls.decrypt import SUITES, hkdf_expand_label

CORPUS = corpus_dir()
WITH_SECRETS = ["ja4/chrome-cloudflare-quic-with-secrets.pcapng", "ndpi/quic-v2.pcapng", "ndpi/doq.pcapng"]
needs_corpus = pytest.mark.skipif(CORPUS is None, reason="../shared/corpus (public captures) is absent")
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark (the oracle) is not installed")


def test_rfc9001_a5_chacha20_keys_header_protection_and_packet():
    secret = bytes.fromhex("9ac312a7f877468ebe69422748ad00a15443f18203a07d6060f688f30f21632b")
    suite = SUITES[0x1303]
    assert hkdf_expand_label(secret, b"quic key", 32, suite.hash).hex() == (
        "c6d98ff3441c3fe1b2182094f69caa2ed4b716b65488960a7a984979fb23e1c8")
    keys = HandshakeKeys(secret, suite, b"quic")
    assert keys.iv.hex() == "e0459b3474bdd0e44a41c144"
    assert "c6d98ff3" not in repr(keys)
    packet = bytes.fromhex("4cfe4189655e5cd55c41f69080575d7999c25a5bfb")
    mask = keys.mask(packet[5:21])  # sample: 4 bytes after the packet number's start (offset 1)
    assert mask.hex() == "aefefe7d03"
    first = packet[0] ^ (mask[0] & 0x1F)  # a short header: five bits protected
    pn = bytes(b ^ m for b, m in zip(packet[1:4], mask[1:4], strict=True))
    assert (first, pn.hex()) == (0x42, "00bff4")
    full_pn = 654360564  # RFC 9001 A.5: decoded against the largest packet number 654360563
    nonce = (int.from_bytes(keys.iv, "big") ^ full_pn).to_bytes(12, "big")
    assert keys.aead.decrypt(nonce, packet[4:], bytes([first]) + pn) == b"\x01"  # a PING frame
    assert isinstance(keys.aead, ChaCha20Poly1305)


def _tshark_chains(pcap: Path) -> set[tuple[str, ...]]:
    out = subprocess.run(["tshark", "-r", str(pcap), "-Y", "quic and tls.handshake.certificate", "-T", "fields",
                          "-e", "tls.handshake.certificate"], capture_output=True, text=True, check=True,
                         timeout=120).stdout
    return {tuple(hashlib.sha256(bytes.fromhex(h)).hexdigest() for h in line.split(",")) for line in out.split()}


@needs_corpus
@needs_tshark
@pytest.mark.parametrize("name", WITH_SECRETS)
def test_quic_certificates_from_the_captures_secrets_equal_tsharks(name):
    assert CORPUS is not None
    pcap = CORPUS / "pcaps" / name
    r = analyzer.analyze([str(pcap)])
    quic = r.tls[r.tls["protocol"] == "quic"]
    assert len(quic) == 1 and quic["cert_visible"].all()
    ours = {tuple(c.split(",")) for c in quic["cert_chain"]}
    assert ours == _tshark_chains(pcap)
    assert r.anomalies.empty
    flow = r.flows[r.flows["uid"] == quic["uid"].iloc[0]]
    assert flow["cert_sha256"].iloc[0] == next(iter(ours))[0]


@needs_corpus
def test_without_the_secrets_nothing_is_decrypted_and_a_wrong_key_is_an_anomaly(tmp_path):
    assert CORPUS is not None
    pcap = CORPUS / "pcaps" / "ndpi" / "quic-v2.pcapng"
    bare = tmp_path / "bare.pcapng"
    text = _dsb_text(pcap, bare)
    assert text and bare.stat().st_size < pcap.stat().st_size
    r = analyzer.analyze([str(bare)])
    assert not r.tls["cert_visible"].any() and r.certs.empty and r.anomalies.empty
    # the secrets, extracted, given back as a key log file: the same certificates
    keylog = tmp_path / "quic.keylog"
    keylog.write_bytes(text)
    with_file = analyzer.analyze([str(bare)], keylog=str(keylog))
    assert with_file.tls["cert_chain"].tolist() == analyzer.analyze([str(pcap)]).tls["cert_chain"].tolist()
    # a wrong handshake secret: an anomaly (never the secret), no certificate
    wrong = tmp_path / "wrong.keylog"
    lines = []
    for line in text.decode().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "SERVER_HANDSHAKE_TRAFFIC_SECRET":
            parts[2] = parts[2][::-1]
        lines.append(" ".join(parts))
    wrong.write_text("\n".join(lines) + "\n")
    bad = analyzer.analyze([str(bare)], keylog=str(wrong))
    assert not bad.tls["cert_visible"].any()
    assert "quic_decryption_failed" in bad.anomalies["kind"].tolist()
    for line in lines:
        assert line.split()[-1] not in " ".join(bad.anomalies["detail"])


def _dsb_text(pcap: Path, without: Path) -> bytes:
    """The NSS key log text of a (little-endian) pcapng's Decryption Secrets Blocks; the capture
    without them is written to `without` (editcap 4.0 cannot rewrite this Linux-cooked pcapng)."""
    data = pcap.read_bytes()
    out = b""
    kept = bytearray()
    pos = 0
    while pos + 12 <= len(data):
        btype = int.from_bytes(data[pos : pos + 4], "little")
        blen = int.from_bytes(data[pos + 4 : pos + 8], "little")
        if btype == 10:
            slen = int.from_bytes(data[pos + 12 : pos + 16], "little")
            out += data[pos + 16 : pos + 16 + slen]
        else:
            kept += data[pos : pos + blen]
        pos += blen
    without.write_bytes(bytes(kept))
    return out


# ------------------------------------------------------------------------ crafted Handshake packets
def _handshake_packet(payload: bytes, keys: HandshakeKeys, *, version: int, pn: int, server: bool) -> bytes:
    """A Handshake packet protected with a key log's handshake keys (as an endpoint writes it)."""
    from test_quic_flows import SCID_S
    from test_quic_vectors import DCID

    from analyzer.dissect.quic import protect, version_info

    info = version_info(version)
    assert info is not None
    dcid, scid = (b"", SCID_S) if server else (SCID_S, DCID)
    length = 2 + len(payload) + 16
    hdr = bytes([0xC0 | info.types.index("handshake") << 4 | 1]) + version.to_bytes(4, "big")
    hdr += bytes([len(dcid)]) + dcid + bytes([len(scid)]) + scid + (length | 0x4000).to_bytes(2, "big")
    hdr += pn.to_bytes(2, "big")
    return protect(hdr, 2, pn, payload, keys)  # type: ignore[arg-type]


def _tls_msg(mtype: int, body: bytes) -> bytes:
    return bytes([mtype]) + len(body).to_bytes(3, "big") + body


@pytest.mark.parametrize(("version", "cipher"), [(1, 0x1301), (1, 0x1303), (0x6B3343CF, 0x1302)])
def test_crafted_handshake_packets_give_the_chain_and_alpn(version, cipher):
    """The server's flight in CRYPTO frames over two Handshake packets (out of order), the client's
    Finished in a third, for QUIC v1 (AES-128-GCM, ChaCha20-Poly1305: ChaCha20 header protection) and
    v2 (AES-256-GCM with the "quicv2" labels)."""
    from support.tls_helpers import make_chain
    from support.udp_helpers import flow_from_payloads
    from test_quic_flows import CH_MSG, SCID_S, crypto, packet, server_hello
    from test_quic_vectors import DCID, V1_CLIENT_PROTECTED, V2_CLIENT_PROTECTED

    from analyzer.dissect.quic import QuicDissector, version_info
    from analyzer.keylog import KeyStore, parse_keylog

    info = version_info(version)
    assert info is not None
    random = CH_MSG[6:38]  # the RFC 9001 A.2 ClientHello's random
    suite = SUITES[cipher]
    c_secret, s_secret = hashlib.new(suite.hash().name, b"c").digest(), hashlib.new(suite.hash().name, b"s").digest()
    store = KeyStore(parse_keylog(f"CLIENT_HANDSHAKE_TRAFFIC_SECRET {random.hex()} {c_secret.hex()}\n"
                                  f"SERVER_HANDSHAKE_TRAFFIC_SECRET {random.hex()} {s_secret.hex()}\n"))
    chain = make_chain("quic.example")
    entries = b"".join(len(d).to_bytes(3, "big") + d + b"\x00\x00" for d in chain)
    alpn = b"\x00\x10\x00\x05\x00\x03\x02h3"
    flight = (_tls_msg(8, len(alpn).to_bytes(2, "big") + alpn)
              + _tls_msg(11, b"\x00" + len(entries).to_bytes(3, "big") + entries)
              + _tls_msg(15, b"\x04\x03\x00\x00") + _tls_msg(20, bytes(suite.hash().digest_size)))
    s_keys = HandshakeKeys(s_secret, suite, info.label_prefix)
    c_keys = HandshakeKeys(c_secret, suite, info.label_prefix)
    half = len(flight) // 2
    hs1 = _handshake_packet(crypto(0, flight[:half]), s_keys, version=version, pn=0, server=True)
    hs2 = _handshake_packet(crypto(half, flight[half:]), s_keys, version=version, pn=1, server=True)
    fin = _handshake_packet(crypto(0, _tls_msg(20, bytes(suite.hash().digest_size))), c_keys, version=version,
                            pn=0, server=False)
    client_initial = V1_CLIENT_PROTECTED if version == 1 else V2_CLIENT_PROTECTED
    server_initial = packet(b"\x02\x00\x00\x00\x00" + crypto(0, server_hello(cipher=cipher)), version=version,
                            dcid=b"", scid=SCID_S, key_dcid=DCID, server=True, pn=0)
    datagrams = [(True, client_initial), (False, server_initial + hs2), (False, hs1), (True, fin)]
    facts = QuicDissector(store).dissect(flow_from_payloads(datagrams))
    row = facts.rows["tls"][0]
    sha = [hashlib.sha256(d).hexdigest() for d in chain]
    assert row["cert_chain"] == ",".join(sha) and row["cert_visible"] is True
    assert row["alpn"] == "h3"  # EncryptedExtensions' choice, not the one value offered ("alpn")
    assert facts.flow["cert_sha256"] == sha[0] and facts.flow["tls_alpn"] == "h3"
    assert {r["sha256"] for r in facts.rows["certs"]} == set(sha)
    assert "anomalies" not in facts.rows
    # a wrong server secret: an anomaly, the Initial-level facts as before
    wrong = KeyStore(parse_keylog(f"SERVER_HANDSHAKE_TRAFFIC_SECRET {random.hex()} {c_secret.hex()}\n"))
    bad = QuicDissector(wrong).dissect(flow_from_payloads(datagrams))
    assert bad.rows["tls"][0]["cert_visible"] is False and bad.rows["tls"][0]["alpn"] == "alpn"
    assert [a["kind"] for a in bad.rows["anomalies"]] == ["quic_decryption_failed"]
    assert c_secret.hex() not in bad.rows["anomalies"][0]["detail"]
    # no keys: the dissector as before
    plain = QuicDissector().dissect(flow_from_payloads(datagrams))
    assert plain.rows["tls"][0]["cert_visible"] is False and "certs" not in plain.rows
