"""Our `.tls` sessions against tshark on the shared corpus (../shared/corpus).

For every corpus capture, `analyze([F]).tls` is compared with the shipped tshark oracle
(`oracle/<source>/<file>.csv`, tshark 4.0.17, keys stripped: what a passive observer sees) by the
same code `intransit verify` uses (`analyzer.verify.compare`): per TLS/DTLS/QUIC session the
negotiated version, cipher, SNI, ALPN offered and selected, and the leaf certificate's validity.

Every disagreement is listed in KNOWN below and explained, with who is right, in
tests/oracle/ORACLE_TLS_NOTES.md; the test fails on any other disagreement and when a listed one goes
away, so the list stays honest. The overall agreement must reach 99 % of sessions.

Also here, because they need the corpus and tshark:
* JA4 / JA4S of the whole pipeline (`analyze().tls`, real flow reassembly) equal FoxIO's upstream
  `python_ja4.json` on every FoxIO capture (tests/corpus/test_tls_corpus.py checks the TLS dissector
  alone, on scapy-reassembled flows, and holds the list of ja4.py's own mistakes, reused here);
* `analyzer.verify.tshark_sessions` (tshark through pyshark) reproduces the oracle's facts on a
  few captures chosen for their tshark specifics.

`python tests/oracle/test_oracle_tls.py` prints the numbers and the disagreements.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import warnings
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pandas as pd
import pytest

from analyzer import analyze, schema
from analyzer import dissect as registry
from analyzer.dissect.tls import schema as tls_schema
from analyzer.errors import CaptureError
from analyzer.sources.base import CaptureFile
from analyzer.sources.batch import PacketBatch
from analyzer.verify import Comparison, compare, tshark_sessions

pytestmark = [pytest.mark.corpus, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(os.environ.get("INTRANSIT_CORPUS", ROOT.parent / "shared" / "corpus"))
MANIFEST = CORPUS / "manifest.csv"
NOTES = Path(__file__).with_name("ORACLE_TLS_NOTES.md")
TSHARK = shutil.which("tshark")

# TLS that starts after some cleartext (STARTTLS and its relatives). tshark follows the upgrade, and
# so do we now: the pipeline finds a ClientHello answered by a ServerHello after the cleartext and
# dissects from there (flows.tls_upgraded). These must agree with tshark like any other session.
AFTER_CLEARTEXT = {
    ("ja4/socks-https-example.pcap", "tcp:0"): "SOCKS 4 CONNECT, then TLS",
    ("ja4/socks-https-example.pcap", "tcp:2"): "SOCKS 4 CONNECT, then TLS",
    ("ja4/socks-https-example.pcap", "tcp:4"): "SOCKS 4 CONNECT, then TLS",
    ("zeek/socks-with-ssl.pcap", "tcp:0"): "SOCKS 5 CONNECT, then TLS",
    ("ndpi/rdp_over_tls.pcap", "tcp:0"): "RDP X.224 negotiation, then TLS",
    ("ndpi/smtp-starttls.pcap", "tcp:0"): "SMTP STARTTLS",
    ("ndpi/smtp-starttls.pcap", "tcp:1"): "SMTP STARTTLS",
    ("zeek/tls/smtp-starttls.pcap", "tcp:0"): "SMTP STARTTLS",
    ("ndpi/pop3_stls.pcap", "tcp:0"): "POP3 STLS",
    ("ndpi/ftp-start-tls.pcap", "tcp:0"): "FTP AUTH TLS",
    ("zeek/tls/irc-starttls.pcap", "tcp:0"): "IRC STARTTLS",
    ("zeek/tls/xmpp-starttls.pcap", "tcp:0"): "XMPP <starttls/>",
    ("zeek/ldap/ldap-starttls.pcap", "tcp:0"): "LDAP StartTLS extended operation",
    ("ndpi/mysql.pcapng", "tcp:1"): "MySQL SSL request",
    ("zeek/mysql/tls-12-amazon-rds.pcap", "tcp:0"): "MySQL SSL request",
    ("zeek/mysql/tls-13-amazon-rds.pcap", "tcp:0"): "MySQL SSL request",
    ("zeek/postgresql/psql-aws-ssl-require-15432.pcap", "tcp:0"): "PostgreSQL SSLRequest",
    ("suricata-verify/pgsql/pgsql-upgrade-tls/input.pcap", "tcp:0"): "PostgreSQL SSLRequest",
}

# (capture, tshark conversation, fact) -> who is right and why, in one line (details in the notes)
KNOWN: dict[tuple[str, str, str], str] = {
    # tshark 4.0 keeps the Initial keys of the client's first (GREASE-version) Initial after the
    # Version Negotiation and Retry, and fails to decrypt the real ClientHello; we decrypt it
    ("ndpi/quic-forcing-vn-with-data.pcapng", "udp:0", "alpn_offered"): "ours: tshark cannot decrypt",
    # The TURN-over-TCP flow (port 3478) relays DTLS in the DATA attributes of its Send and Data
    # Indications (16 fe ff / 16 fe fd handshake records, 17 fe fd application data: seen with
    # `tshark -Y "tcp && stun.attribute == 0x0013" -T fields -e stun.value`); tshark 4.0 shows those
    # attributes as bytes and dissects no DTLS there, so it has no session; the stun dissector hands
    # the relayed datagrams to DTLS (RFC 8656 §12, RFC 7983) and we have one.
    ("ndpi/stun_dtls_rtp.pcapng", "Ca09181d0b692003366", "session"): "ours: tshark does not dissect DTLS relayed "
                                                                       "in TURN Data/Send Indications over TCP",
}


def _corpus() -> Path:
    if not MANIFEST.is_file():
        pytest.skip(f"{CORPUS} is absent: the oracle tests need the shared capture corpus")
    return CORPUS


def _captures() -> list[dict[str, str]]:
    with MANIFEST.open(newline="") as fh:
        return list(csv.DictReader(fh))


class _KeysStripped:
    """A corpus capture read as its oracle CSV was made: without its pcapng Decryption Secrets
    Blocks (which `analyze` applies by itself, decrypting TLS 1.3 / QUIC certificates)."""

    def __init__(self, path: str) -> None:
        self.inner = CaptureFile(path)
        self.name = self.inner.name

    def batches(self) -> Iterator[PacketBatch]:
        for batch in self.inner.batches():
            batch.secrets = []
            yield batch


@cache
def ours(rel: str, keys: bool = False) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(tls, certs, flows) of one corpus capture ("pcaps/..." relative name); `keys`: with the
    capture's own Decryption Secrets Blocks (the oracle CSV has them stripped)."""
    path = str(_corpus() / rel)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # damaged captures warn; what was read is kept
            a = analyze([path]) if keys else analyze([], sources=[_KeysStripped(path)])
    except CaptureError:  # nothing readable at all (ndpi/fuzz-2021-10-13.pcap): no sessions
        return (schema.empty_frame(tls_schema.TLS), schema.empty_frame(tls_schema.CERTS),
                schema.empty_frame(registry.FLOWS))  # fmt: skip
    return a.tls, a.certs, a.flows


def oracle(row: dict[str, str]) -> pd.DataFrame:
    return pd.read_csv(_corpus() / row["oracle_csv"], dtype=str, keep_default_na=False)


@cache
def corpus_comparison() -> dict[str, Comparison]:
    """One Comparison per corpus capture, keyed by the capture's name under pcaps/."""
    out = {}
    for row in _captures():
        tls, certs, _ = ours(row["file"])
        out[row["file"][len("pcaps/") :]] = compare(tls, oracle(row), certs)
    return out


def disagreements() -> dict[tuple[str, str, str], tuple[object, object]]:
    bad = {}
    for name, cmp in corpus_comparison().items():
        for r in cmp.disagreements.itertuples():
            bad[(name, str(r.conv if pd.notna(r.conv) else r.uid), str(r.fact))] = (r.ours, r.tshark)
    return bad


def totals() -> tuple[int, int]:
    cmps = corpus_comparison().values()
    return sum(c.total for c in cmps), sum(c.agreeing for c in cmps)


# --- agreement with the tshark oracle -----------------------------------------------------------
def test_every_disagreement_with_tshark_is_known_and_explained() -> None:
    _corpus()
    bad = disagreements()
    assert set(bad) == set(KNOWN), {k: bad.get(k, "gone") for k in set(bad) ^ set(KNOWN)}
    notes = NOTES.read_text()
    for name, conv, _ in KNOWN:
        assert f"{name} {conv}" in notes, f"{name} {conv} is not explained in {NOTES.name}"


def test_sessions_compared_cover_the_corpus() -> None:
    _corpus()
    total, _ = totals()
    assert total >= 430  # 437 at the time of writing: 243 TCP, 194 UDP (QUIC and DTLS)
    kinds = pd.concat([c.sessions for c in corpus_comparison().values()])
    assert (kinds["transport"] == "udp").sum() >= 150
    assert kinds["tshark_cert_validity"].notna().sum() >= 60  # certificate validity really compared


def test_tls_after_cleartext_is_dissected_and_marked_upgraded() -> None:
    _corpus()
    missing = []
    for (name, conv), why in AFTER_CLEARTEXT.items():
        flows = ours(f"pcaps/{name}")[2]
        if not (flows["tls_upgraded"].fillna(False).astype(bool) & flows["tls_version"].notna()).any():
            missing.append((name, conv, why))
    assert not missing, missing


def test_agreement_with_tshark_is_at_least_99_percent_of_sessions() -> None:
    _corpus()
    total, agree = totals()
    assert agree / total >= 0.99, f"{agree}/{total} sessions agree"


# --- JA4 through the whole pipeline -----------------------------------------------------------------
def _foxio_known() -> set[tuple[str, str, str]]:
    """ja4.py's own mistakes on FoxIO captures, as tests/corpus/test_tls_corpus.py lists them."""
    from test_tls_corpus import KNOWN_FOXIO

    return {(rel[len("ja4/") :], stream, col) for rel, stream, col in KNOWN_FOXIO if rel.startswith("ja4/")}


def test_ja4_of_the_pipeline_equals_foxio_upstream_on_every_foxio_capture() -> None:
    root = _corpus()
    counts = {"ja4": 0, "ja4s": 0, "later_hellos": 0}
    bad = set()
    for path in sorted((root / "upstream" / "ja4").glob("*/python_ja4.json")):
        name = path.parent.name
        try:
            entries = json.loads(path.read_text())
        except ValueError:
            continue
        tls = ours(f"pcaps/ja4/{name}")[0]
        rows = tls.to_dict("records")
        for e in entries:
            keys = [k for k in e if k == "JA4S" or k.startswith("JA4.")]
            if not keys:
                continue
            ends = {(e["src"], int(e["srcport"])), (e["dst"], int(e["dstport"]))}
            match = [r for r in rows
                     if {(r["client_ip"], r["client_port"]), (r["server_ip"], r["server_port"])} == ends]
            if not match:  # ja4.py reports the outer addresses of tunnelled packets: match by ports
                ports = {p for _, p in ends}
                match = [r for r in rows if {r["client_port"], r["server_port"]} == ports]
            row = match[0] if match else {}
            for key in keys:
                if key in ("JA4.1", "JA4S"):
                    col = "ja4" if key == "JA4.1" else "ja4s"
                    counts[col] += 1
                    if row.get(col) != e[key] and (name, str(e["stream"]), col) not in _foxio_known():
                        bad.add((name, str(e["stream"]), col, e[key], row.get(col)))
                else:
                    # JA4.2, ...: the ClientHello after a HelloRetryRequest; `.tls` carries the
                    # first ClientHello's JA4 only (see ORACLE_TLS_NOTES.md section 4)
                    counts["later_hellos"] += 1
    assert not bad, sorted(bad)
    assert counts["ja4"] >= 130 and counts["ja4s"] >= 65, counts


# --- tshark through pyshark reproduces the oracle ---------------------------------------------------
PYSHARK_CASES = [
    "flowtest/ssl-v2.pcap",  # SSLv2 records (no tls.handshake subtree), 3-byte cipher kind
    "zeek/tls/x509-generalizedtime.pcap",  # GeneralizedTime validity (the oracle's column misses it)
    "ndpi/rdp_over_tls.pcap",  # TLS inside RDP: found by the discovery pass and decoded as TLS
    "ndpi/dtls_certificate.pcapng",  # DTLS with a certificate
    "ja4/tls-alpn-h2.pcap",  # TLS 1.2, ALPN selected, certificate
    "zeek/quic/quicv2-http3-443.pcap",  # QUIC v2
    "ndpi/quic_frags_ch_out_of_order_same_packet_craziness.pcapng",  # ClientHello over several CRYPTO frames
]


@pytest.mark.tshark
@pytest.mark.parametrize("rel", PYSHARK_CASES)
def test_tshark_through_pyshark_gives_the_oracle_facts(rel: str) -> None:
    root = _corpus()
    if TSHARK is None:
        pytest.skip("tshark is not installed")
    row = next(r for r in _captures() if r["file"] == f"pcaps/{rel}")
    live = tshark_sessions(str(root / row["file"]))
    tls, certs, _ = ours(row["file"])
    by_oracle = compare(tls, oracle(row), certs).sessions
    by_live = compare(tls, live, certs).sessions
    cols = ["conv", *(c for c in by_live.columns if c.startswith("tshark_"))]
    if rel == "zeek/tls/x509-generalizedtime.pcap":  # the oracle has only `cryptography`'s view here
        assert by_live["tshark_cert_validity"].iloc[0] == "2015-09-01T13:33:37Z/2025-09-01T13:33:37Z"
    pd.testing.assert_frame_equal(by_live[cols], by_oracle[cols])


@pytest.mark.tshark
def test_a_certificate_tshark_decrypts_with_the_pcapng_key_log_is_not_held_against_us() -> None:
    """tshark applies a pcapng's Decryption Secrets Block by itself; the oracle CSV has them
    stripped, a live run does not. Without the block ours cannot see the certificate (not held
    against us); with it (as `analyze` reads the file) ours equals tshark's."""
    root = _corpus()
    if TSHARK is None:
        pytest.skip("tshark is not installed")
    rel = "pcaps/ndpi/quic-v2.pcapng"
    live = tshark_sessions(str(root / rel))
    assert live["leaf_validity_tshark"].notna().any()  # decrypted
    tls, certs, _ = ours(rel)
    cmp = compare(tls, live, certs)
    assert cmp.disagreements.empty and cmp.total == 1
    assert "cert_validity:decrypted_cert" in str(cmp.sessions["unverifiable"].iloc[0])
    tls, certs, _ = ours(rel, keys=True)
    cmp = compare(tls, live, certs)
    assert cmp.disagreements.empty and cmp.total == 1 and cmp.agreeing == 1
    assert "cert_validity" not in str(cmp.sessions["unverifiable"].iloc[0])
    assert tls["cert_visible"].all()


if __name__ == "__main__":  # pragma: no cover
    total, agree = totals()
    print(f"{total} sessions compared, {agree} agree ({100 * agree / total:.1f}%)")
    for key, (o, t) in sorted(disagreements().items()):
        print(*key, f"ours={o!r}", f"tshark={t!r}", "|", KNOWN.get(key, "NOT KNOWN"))
