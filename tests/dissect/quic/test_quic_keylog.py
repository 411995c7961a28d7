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
