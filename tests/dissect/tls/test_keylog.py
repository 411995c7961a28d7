"""TLS 1.3 handshakes decrypted with key logs (issue 17 section 4): the key log reader, the record
decryption per cipher suite, the bundled TLS 1.3 captures against tshark with the same keys, the
pcapng Decryption Secrets Block, wrong keys, and what is never decrypted.

Oracle: tshark with `-o tls.keylog_file:FILE` (captures/make_captures.sh recorded the key logs with
OpenSSL's -keylogfile and curl's SSLKEYLOGFILE)."""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

import analyzer
from analyzer.config import Options
from analyzer.dissect.tls.decrypt import SUITES, decompress_certificate, decrypt_flight, hkdf_expand_label
from analyzer.errors import ParseError, UsageError
from analyzer.keylog import KeyStore, parse_keylog, read_keylog

ROOT = Path(__file__).resolve().parents[3]
CAPTURES = ROOT / "captures"
KEYED = [("tls13_openssl.pcap", "tls13_openssl.keylog"), ("cert_good_chain_tls13.pcap", "cert_good_chain_tls13.keylog")]
RANDOM = bytes(range(32))
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark (the oracle) is not installed")
needs_editcap = pytest.mark.skipif(shutil.which("editcap") is None, reason="editcap (installed with tshark) is absent")


def secrets_hex(path: Path) -> set[str]:
    """Every secret of a key log file, as hex (the third field of each line)."""
    out = set()
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and not line.startswith("#"):
            out.add(parts[2].lower())
    return out


# ------------------------------------------------------------------------------ the key log reader
def test_only_the_handshake_secrets_are_kept_and_bad_lines_are_counted():
    hs_c, hs_s, app = "11" * 32, "22" * 48, "33" * 32
    text = "\n".join([
        "# a comment",
        "",
        f"CLIENT_HANDSHAKE_TRAFFIC_SECRET {RANDOM.hex()} {hs_c}",
        f"SERVER_HANDSHAKE_TRAFFIC_SECRET {RANDOM.hex()} {hs_s}",
        f"CLIENT_TRAFFIC_SECRET_0 {RANDOM.hex()} {app}",
        f"SERVER_TRAFFIC_SECRET_0 {RANDOM.hex()} {app}",
        f"EXPORTER_SECRET {RANDOM.hex()} {app}",
        f"CLIENT_RANDOM {RANDOM.hex()} {'44' * 48}",
        f"CLIENT_EARLY_TRAFFIC_SECRET {RANDOM.hex()} {app}",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET nothex 00",  # line 10
        f"SERVER_HANDSHAKE_TRAFFIC_SECRET {'ab' * 31} {hs_c}",  # a random of 31 bytes
        f"NO_SUCH_LABEL {RANDOM.hex()} {app}",
    ])
    log = parse_keylog(text)
    assert log.get(RANDOM) == (bytes.fromhex(hs_c), bytes.fromhex(hs_s))
    assert len(log) == 1
    assert (log.lines, log.bad_lines, log.first_bad) == (10, 3, 10)
    # what decrypts application data is never held, whatever the label
    held = {s for pair in log.secrets.values() for s in pair if s}
    assert bytes.fromhex(app) not in held and bytes.fromhex("44" * 48) not in held
    for shown in (repr(log), str(log), repr(KeyStore(log))):
        assert hs_c not in shown and hs_s not in shown
    assert repr(log) == "KeyLog(1 sessions, 3 of 10 lines not understood)"


def test_a_bad_key_log_file_is_a_one_line_error_that_quotes_nothing(tmp_path):
    with pytest.raises(UsageError, match="cannot be read"):
        read_keylog(tmp_path / "missing.keylog")
    junk = tmp_path / "junk.keylog"
    junk.write_text("SERVER_HANDSHAKE_TRAFFIC_SECRET 1234 deadbeefdeadbeef\n")
    with pytest.raises(UsageError) as info:
        read_keylog(junk)
    assert "not an NSS key log" in str(info.value) and "deadbeef" not in str(info.value)
    assert "\n" not in str(info.value)
    with pytest.raises(UsageError, match="not an NSS key log"):
        analyzer.analyze([str(CAPTURES / "tls13_openssl.pcap")], keylog=str(CAPTURES / "tls13_openssl.pcap"))
    with pytest.raises(UsageError, match="keylog must be"):
        Options().with_values(keylog=b"CLIENT_RANDOM")


def test_options_never_show_the_keys():
    path = CAPTURES / "tls13_openssl.keylog"
    opts = Options().with_values(keylog=str(path))
    assert opts.dissect.keylog is not None and len(opts.dissect.keylog) == 1
    for secret in secrets_hex(path):
        assert secret not in repr(opts).lower() and secret not in repr(opts.dissect).lower()
    # several files (and a KeyLog) merge
    both = Options().with_values(keylog=[str(CAPTURES / k) for _p, k in KEYED]).dissect.keylog
    assert both is not None and len(both) == 2
    assert Options().with_values(keylog=both).dissect.keylog == both


# --------------------------------------------------------------------- record decryption per suite
def _records(secret: bytes, code: int, messages: bytes, sizes: list[int]) -> bytes:
    """TLS 1.3 records protecting `messages` (handshake type 22), split at `sizes`, as a server
    would write them with this secret (RFC 8446 5.2, 7.3)."""
    suite = SUITES[code]
    key = hkdf_expand_label(secret, b"key", suite.key_len, suite.hash)
    iv = hkdf_expand_label(secret, b"iv", 12, suite.hash)
    seal = suite.aead(key) if suite.aead in (AESGCM, ChaCha20Poly1305) else AESCCM(key, tag_length=suite.tag)
    out = b"\x14\x03\x03\x00\x01\x01"  # the middlebox-compatibility ChangeCipherSpec
    pos = 0
    for seq, size in enumerate([*sizes, len(messages)]):
        chunk = messages[pos : pos + size] if size else messages[pos:]
        pos += len(chunk)
        inner = chunk + b"\x16" + b"\x00" * 3  # content type, then padding
        header = struct.pack(">BHH", 23, 0x0303, len(inner) + suite.tag)
        nonce = (int.from_bytes(iv, "big") ^ seq).to_bytes(12, "big")
        out += header + seal.encrypt(nonce, inner, header)
        if pos >= len(messages):
            break
    return out


def _handshake(mtype: int, body: bytes) -> bytes:
    return bytes([mtype]) + len(body).to_bytes(3, "big") + body


def _certificate(ders: list[bytes]) -> bytes:
    entries = b"".join(len(d).to_bytes(3, "big") + d + b"\x00\x00" for d in ders)
    return b"\x00" + len(entries).to_bytes(3, "big") + entries


def _server_flight(ders: list[bytes], alpn: bytes = b"h2", compressed: bool = False, request: bytes = b"") -> bytes:
    """EncryptedExtensions (ALPN), `request` (a CertificateRequest), Certificate, CertificateVerify, Finished."""
    alpn_ext = struct.pack(">HHH", 16, len(alpn) + 3, len(alpn) + 1) + bytes([len(alpn)]) + alpn
    ee = _handshake(8, struct.pack(">H", len(alpn_ext) + 4) + alpn_ext + b"\x00\x00\x00\x00")
    cert = _certificate(ders)
    if compressed:
        data = zlib.compress(cert)
        cert_msg = _handshake(25, struct.pack(">H", 1) + len(cert).to_bytes(3, "big") + len(data).to_bytes(3, "big")
                              + data)
    else:
        cert_msg = _handshake(11, cert)
    return ee + request + cert_msg + _handshake(15, b"\x04\x03\x00\x00") + _handshake(20, b"\x00" * 32)


@pytest.mark.parametrize("code", sorted(SUITES))
def test_every_tls13_suite_decrypts_a_server_flight_split_across_records(code):
    secret = hashlib.new(SUITES[code].hash().name, b"test").digest()
    ders = [b"\x30\x03\x02\x01\x01", b"\x30\x03\x02\x01\x02"]
    flight_bytes = _server_flight(ders)
    # messages split mid-message across records, as a large chain is
    data = b"\x16\x03\x03\x00\x02hi" + _records(secret, code, flight_bytes, [7, 20])
    flight = decrypt_flight(data, 7, secret, code, "server")
    assert flight.errors == []
    assert flight.certs == ders and flight.alpn == "h2" and flight.finished
    assert flight.messages == [8, 11, 15, 20]
    # the wrong secret: an anomaly, nothing read
    wrong = decrypt_flight(data, 7, bytes(len(secret)), code, "server")
    assert wrong.certs == [] and [e[0] for e in wrong.errors] == ["tls_decryption_failed"]
    assert secret.hex() not in repr(wrong) and secret.hex() not in str(wrong.errors)


def test_after_finished_nothing_is_read():
    secret = hashlib.sha256(b"x").digest()
    flight_bytes = _server_flight([b"\x30\x00"]) + _handshake(4, b"\x00" * 40)  # a ticket after Finished
    flight = decrypt_flight(_records(secret, 0x1301, flight_bytes, [len(flight_bytes) - 44]), 0, secret, 0x1301,
                            "server")
    assert flight.finished and flight.messages == [8, 11, 15, 20]


def test_compressed_certificates_decompress_within_their_stated_length():
    secret = hashlib.sha256(b"y").digest()
    ders = [b"\x30\x03\x02\x01\x07"]
    flight = decrypt_flight(_records(secret, 0x1301, _server_flight(ders, compressed=True), []), 0, secret, 0x1301,
                            "server")
    assert flight.certs == ders and not flight.errors
    bomb = zlib.compress(b"\x00" * (1 << 20))
    body = struct.pack(">H", 1) + (100).to_bytes(3, "big") + len(bomb).to_bytes(3, "big") + bomb
    with pytest.raises(ParseError, match="not the 100 announced"):
        decompress_certificate(body)  # more than announced: refused after length + 1 bytes
    with pytest.raises(ParseError, match="uncompressed length"):
        decompress_certificate(struct.pack(">H", 2) + (1 << 23).to_bytes(3, "big") + b"\x00\x00\x01\x00")
    with pytest.raises(ParseError, match="unknown algorithm"):
        decompress_certificate(struct.pack(">H", 9) + b"\x00\x00\x01\x00\x00\x01\x00")
    with pytest.raises(ParseError):
        decompress_certificate(struct.pack(">H", 2) + b"\x00\x00\x05\x00\x00\x03abc")  # not brotli


# ------------------------------------------------------------------- the bundled captures vs tshark
def _tshark_chains(pcap: Path, keylog: Path | None) -> set[tuple[str, ...]]:
    """tshark's certificate chains (SHA-256 of each DER, leaf first), decrypting with `keylog`."""
    cmd = ["tshark", "-r", str(pcap), "-Y", "tls.handshake.certificate", "-T", "fields",
           "-e", "tls.handshake.certificate"]
    if keylog is not None:
        cmd[3:3] = ["-o", f"tls.keylog_file:{keylog}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
    return {tuple(hashlib.sha256(bytes.fromhex(h)).hexdigest() for h in line.split(",")) for line in out.split()}


def _tshark_validity(pcap: Path, keylog: Path) -> list[str]:
    cmd = ["tshark", "-r", str(pcap), "-o", f"tls.keylog_file:{keylog}", "-Y", "tls.handshake.certificate",
           "-T", "fields", "-e", "x509af.utcTime"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
    return [t.replace(" (UTC)", "") for line in out.split("\n") if line for t in line.split(",")]


@needs_tshark
@pytest.mark.parametrize(("pcap", "keylog"), KEYED)
def test_certificates_equal_tsharks_with_the_same_keys(pcap, keylog):
    pcap_path, keylog_path = CAPTURES / pcap, CAPTURES / keylog
    before = analyzer.analyze([str(pcap_path)])
    assert not before.tls["cert_visible"].any() and before.certs.empty  # TLS 1.3 hides them
    assert _tshark_chains(pcap_path, None) == set()

    r = analyzer.analyze([str(pcap_path)], keylog=str(keylog_path))
    ours = {tuple(c.split(",")) for c in r.tls["cert_chain"].dropna()}
    assert ours and ours == _tshark_chains(pcap_path, keylog_path)
    assert r.tls["cert_visible"].all() and r.anomalies.empty
    # validity, as tshark prints it, in chain order
    by_sha = r.certs.set_index("sha256")
    chain = next(iter(ours))
    ours_times = [by_sha.loc[sha, col].strftime("%Y-%m-%d %H:%M:%S") for sha in chain
                  for col in ("not_before", "not_after")]
    assert ours_times == _tshark_validity(pcap_path, keylog_path)
    # the flow columns follow, and the server's ALPN (EncryptedExtensions) now shows
    flows = r.flows.dropna(subset=["cert_sha256"])
    assert len(flows) == 1 and flows["cert_sha256"].iloc[0] == chain[0]
    assert flows["cert_key_bits"].iloc[0] == by_sha.loc[chain[0], "key_bits"]
    assert r.tls["alpn"].iloc[0] == "http/1.1" and before.tls["alpn"].isna().all()
    # what the key log does not change
    keep = ["version", "cipher", "server_name", "established", "history", "ja4", "ja4s"]
    assert r.tls[keep].equals(before.tls[keep])


def test_the_flows_only_run_reads_the_same_leaf():
    pcap, keylog = KEYED[1]
    full = analyzer.analyze([str(CAPTURES / pcap)], keylog=str(CAPTURES / keylog))
    flows_only = analyzer.analyze([str(CAPTURES / pcap)], keylog=str(CAPTURES / keylog), frames=("flows",))
    cols = ["cert_sha256", "cert_not_after", "cert_key_bits", "cert_self_signed", "tls_alpn"]
    assert flows_only.flows[cols].equals(full.flows[cols])
    assert flows_only.flows["cert_sha256"].notna().sum() == 1


@needs_editcap
@pytest.mark.parametrize(("pcap", "keylog"), KEYED)
def test_a_decryption_secrets_block_gives_the_same_certificates_without_keylog(tmp_path, pcap, keylog):
    out = tmp_path / (pcap + "ng")
    subprocess.run(["editcap", "--inject-secrets", f"tls,{CAPTURES / keylog}", str(CAPTURES / pcap), str(out)],
                   check=True, capture_output=True, timeout=60)
    with_dsb = analyzer.analyze([str(out)])
    with_file = analyzer.analyze([str(CAPTURES / pcap)], keylog=str(CAPTURES / keylog))
    assert with_dsb.certs["sha256"].tolist() == with_file.certs["sha256"].tolist() != []
    assert with_dsb.tls["cert_chain"].tolist() == with_file.tls["cert_chain"].tolist()
    assert with_dsb.anomalies.empty
    # the capture's secrets are the run's: another capture read after it is not affected
    both = analyzer.analyze([str(out), str(CAPTURES / "tls13_hrr.pcap")])
    assert both.tls["cert_visible"].sum() == 1


def _wrong_keylog(tmp_path: Path, source: Path) -> Path:
    lines = []
    for line in source.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].endswith("HANDSHAKE_TRAFFIC_SECRET"):
            parts[2] = ("ff" if parts[2][:2] != "ff" else "00") + parts[2][2:]
        lines.append(" ".join(parts))
    wrong = tmp_path / "wrong.keylog"
    wrong.write_text("\n".join(lines) + "\n")
    return wrong


def test_a_wrong_key_is_an_anomaly_not_a_traceback(tmp_path):
    pcap, keylog = KEYED[1]
    wrong = _wrong_keylog(tmp_path, CAPTURES / keylog)
    r = analyzer.analyze([str(CAPTURES / pcap)], keylog=str(wrong))
    assert not r.tls["cert_visible"].any() and r.certs.empty
    kinds = r.anomalies["kind"].tolist()
    assert kinds == ["tls_decryption_failed", "tls_decryption_failed"]  # the server's flight and the client's
    text = " ".join(r.anomalies["detail"])
    for secret in secrets_hex(wrong) | secrets_hex(CAPTURES / keylog):
        assert secret not in text.lower()


def test_keys_of_other_sessions_change_nothing():
    r = analyzer.analyze([str(CAPTURES / "tls13_openssl.pcap")], keylog=str(CAPTURES / "cert_good_chain_tls13.keylog"))
    assert not r.tls["cert_visible"].any() and r.anomalies.empty


def test_bad_lines_are_a_warning_by_line_number(tmp_path):
    source = CAPTURES / "tls13_openssl.keylog"
    mixed = tmp_path / "mixed.keylog"
    mixed.write_text("garbage with a secret 0123456789abcdef\n" + source.read_text())
    problems: list[object] = []
    r = analyzer.analyze([str(CAPTURES / "tls13_openssl.pcap")], keylog=str(mixed), on_problem=problems.append)
    assert r.tls["cert_visible"].all()
    assert len(problems) == 1
    detail = problems[0].detail  # type: ignore[attr-defined]
    assert "1 of" in detail and "line 1" in detail and "0123456789abcdef" not in detail


def test_a_damaged_secrets_block_is_a_problem_not_a_failure(tmp_path):
    """A DSB whose secrets length runs past its block: the capture is still read (a sources problem)."""
    out = tmp_path / "bad_dsb.pcapng"
    src = CAPTURES / "tls13_openssl.pcap"
    if shutil.which("editcap") is None:
        pytest.skip("editcap (installed with tshark) is absent")
    subprocess.run(["editcap", "--inject-secrets", f"tls,{CAPTURES / 'tls13_openssl.keylog'}", str(src), str(out)],
                   check=True, capture_output=True, timeout=60)
    data = bytearray(out.read_bytes())
    pos = 0
    while True:
        btype, blen = struct.unpack_from("<II", data, pos)
        if btype == 10:
            struct.pack_into("<I", data, pos + 12, 0xFFFF)  # secrets length past the block
            break
        pos += blen
    out.write_bytes(bytes(data))
    problems: list[object] = []
    r = analyzer.analyze([str(out)], on_problem=problems.append)
    assert len(r.tls) == 1 and not r.tls["cert_visible"].any()
    assert [p.kind for p in problems] == ["bad_secrets_block"]  # type: ignore[attr-defined]
    assert r.sources["status"].tolist() == ["partial"]


@pytest.mark.parametrize("pcap", ["tls13_hrr.pcap", "tls13_resumption.pcap"])
def test_sessions_the_key_log_does_not_name_are_unchanged(pcap):
    a = analyzer.analyze([str(CAPTURES / pcap)])
    b = analyzer.analyze([str(CAPTURES / pcap)], keylog=str(CAPTURES / "tls13_openssl.keylog"))
    assert a.tls.equals(b.tls) and a.flows.equals(b.flows) and b.anomalies.empty


def test_tls12_sessions_ignore_a_key_log():
    r = analyzer.analyze([str(CAPTURES / "cert_good_chain_tls12.pcap")], keylog=str(CAPTURES / "tls13_openssl.keylog"))
    base = analyzer.analyze([str(CAPTURES / "cert_good_chain_tls12.pcap")])
    assert r.tls.equals(base.tls) and r.certs.equals(base.certs)


@needs_editcap
def test_secrets_block_lines_not_understood_are_an_anomaly_that_quotes_nothing(tmp_path):
    mixed = tmp_path / "mixed.keylog"
    mixed.write_text("junk 00112233445566778899\n" + (CAPTURES / "tls13_openssl.keylog").read_text())
    out = tmp_path / "mixed.pcapng"
    subprocess.run(["editcap", "--inject-secrets", f"tls,{mixed}", str(CAPTURES / "tls13_openssl.pcap"), str(out)],
                   check=True, capture_output=True, timeout=60)
    r = analyzer.analyze([str(out)])
    assert r.tls["cert_visible"].all()  # the good lines still apply
    row = r.anomalies.iloc[0]
    assert (len(r.anomalies), row["kind"], row["count"]) == (1, "keylog_lines_not_understood", 1)
    assert "line 1" in row["detail"] and "00112233" not in row["detail"]


def test_a_crafted_session_gives_the_server_chain_and_the_client_certificate():
    """Both flights of a TLS 1.3 session with a client certificate, through the dissector: the
    server's chain (asked for a client certificate) with CLIENT/SERVER_HANDSHAKE_TRAFFIC_SECRET, the
    client's certificate with the client's; the client's application data after its Finished (under
    a key the key log never holds) is left alone."""
    from support.tls_helpers import (
        client_hello_body,
        ext,
        flow_from_bytes,
        handshake,
        make_chain,
        record,
        server_hello_body,
    )

    from analyzer.dissect.tls import TLSDissector

    random = bytes(range(100, 132))
    c_secret, s_secret = hashlib.sha256(b"client").digest(), hashlib.sha256(b"server").digest()
    keys = KeyStore(parse_keylog(f"CLIENT_HANDSHAKE_TRAFFIC_SECRET {random.hex()} {c_secret.hex()}\n"
                                 f"SERVER_HANDSHAKE_TRAFFIC_SECRET {random.hex()} {s_secret.hex()}\n"))
    server_chain, client_chain = make_chain("tls13.example"), make_chain("client.example")[:1]
    ch = record(22, handshake(1, client_hello_body(random=random, ciphers=(0x1301,),
                                                   extensions=[ext(43, b"\x02\x03\x04")])))
    sh = record(22, handshake(2, server_hello_body(cipher=0x1301, extensions=[ext(43, b"\x03\x04")])))
    server_flight = _server_flight(server_chain, request=_handshake(13, b"\x00\x00\x00"))
    client_flight = _handshake(11, _certificate(client_chain)) + _handshake(15, b"\x04\x03\x00\x00") + _handshake(
        20, b"\x00" * 32)
    app_data = record(23, bytes(range(64)))
    flow = flow_from_bytes(ch + _records(c_secret, 0x1301, client_flight, []) + app_data,
                           sh + _records(s_secret, 0x1301, server_flight, [300]))
    facts = TLSDissector(keys=keys).dissect(flow)
    row = facts.rows["tls"][0]
    sha = [hashlib.sha256(d).hexdigest() for d in server_chain]
    assert row["cert_chain"] == ",".join(sha) and row["cert_visible"] is True
    assert row["client_cert_chain"] == hashlib.sha256(client_chain[0]).hexdigest()
    assert row["alpn"] == "h2" and row["sni_matches_cert"] is None  # no SNI sent
    assert {r["sha256"] for r in facts.rows["certs"]} == {*sha, row["client_cert_chain"]}
    assert "anomalies" not in facts.rows
    assert facts.flow["cert_sha256"] == sha[0] and facts.flow["tls_alpn"] == "h2"
    # flows mode (no tls/certs rows): the same leaf in the flow columns
    flows_mode = TLSDissector(keys=keys, rows=False).dissect(flow)
    assert flows_mode.flow["cert_sha256"] == sha[0] and flows_mode.flow["cert_key_bits"] == 256
    # without keys: nothing of it
    plain = TLSDissector().dissect(flow)
    assert plain.rows["tls"][0]["cert_visible"] is False and plain.flow.get("cert_sha256") is None


def test_certificate_rules_judge_tls13_sessions_given_their_keys():
    """The point of the key log: the policy's certificate rules see TLS 1.3 certificates (the
    bundled leaf is valid for 397 days, more than the strict profile allows)."""
    pcap, keylog = CAPTURES / "tls13_openssl.pcap", CAPTURES / "tls13_openssl.keylog"
    blind = analyzer.audit([str(pcap)], vpc=["10.77.0.0/24"], profile="strict")
    keyed = analyzer.audit([str(pcap)], vpc=["10.77.0.0/24"], profile="strict", keylog=str(keylog))
    assert not blind.findings["rule"].str.startswith("cert-").any()
    assert keyed.findings["rule"].tolist() == ["cert-validity-too-long"]
