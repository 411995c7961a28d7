"""The policy's findings against independent judgements on the real corpus (issue 12 §5).

nDPI's expected outputs (`upstream/ndpi/*.out`) flag flows with risks; every flow flagged with one of
the risks below must get our matching finding, and Zeek's policy-script notices in the corpus
baselines (`scripts.policy.protocols.ssl.expiring-certs`, `...ssl.weak-keys`) likewise. Each
disagreement is listed in EXPLAINED with the reason, written up in tests/oracle/ORACLE_POLICY_NOTES.md
(who is right), and checked to still be one. The audit runs with every address internal
(`--vpc 0.0.0.0/0 ::/0`), so cleartext is cleartext-internal; certificate times are judged at the
capture's time (the rules' `seen`), as nDPI and Zeek judge them at packet time.
Skips, saying why, without ../shared/corpus.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pandas as pd
import pytest

import analyzer

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus"
VPC = ["0.0.0.0/0", "::/0"]

# nDPI risk -> the findings that match it
NDPI_RISKS: dict[str, set[str]] = {
    "Obsolete TLS (v1.1 or older)": {"tls-legacy-version", "tls-client-legacy-only"},
    # nDPI's weak list has static-RSA suites (TLS_RSA_WITH_AES_*): our tls-no-forward-secrecy
    "Weak TLS Cipher": {"tls-weak-cipher", "tls-no-forward-secrecy"},
    "Self-signed Cert": {"cert-self-signed"},
    "TLS Cert Expired": {"cert-expired"},
    "TLS Cert About To Expire": {"cert-expiring"},
    "Clear-Text Credentials": {"cleartext-credentials"},
    "Unsafe Protocol": {"cleartext-internal", "cleartext-egress", "starttls-not-used", "starttls-unavailable"},
    "SSH Obsolete": {"ssh-legacy"},
    # beyond the list, compared as well
    "TLS Cert Mismatch": {"cert-name-mismatch"},
    "TLS Cert Validity Too Long": {"cert-validity-too-long"},
}
ZEEK_NOTICES: dict[str, set[str]] = {
    "SSL::Certificate_Expired": {"cert-expired"},
    "SSL::Certificate_Expires_Soon": {"cert-expiring"},
    "SSL::Weak_Cipher": {"tls-weak-cipher"},
    "SSL::Old_Version": {"tls-legacy-version"},
    "SSL::Weak_Key": {"cert-weak-key"},
}
ZEEK_LOGS = ("tls/tls-expired-cert.pcap/scripts.policy.protocols.ssl.expiring-certs/notice.log",
             "tls/ssl.v3.pcap/scripts.policy.protocols.ssl.weak-keys/notice-out.log")

# (capture, judgement, lowest port of the flow) -> why we do not match (ORACLE_POLICY_NOTES.md)
EXPLAINED: dict[tuple[str, str, int], str] = {
    ("ftp-start-tls.pcap", "Unsafe Protocol", 21): "upgraded by AUTH TLS: not cleartext",
    ("pop3_stls.pcap", "Unsafe Protocol", 110): "upgraded by STLS: not cleartext",
    ("ossfuzz_seed_fake_traces_1.pcapng", "Unsafe Protocol", 1): "Gnutella: no dissector, not judged",
}

_LINE = re.compile(r"^\s*\d+\s+(?:TCP|UDP)\s+(\S+)\s+<?->\s+(\S+)\s")
Ends = frozenset[tuple[str, int]]


def _end(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host.strip("[]"), int(port)


def ndpi_judgements() -> list[tuple[Path, str, Ends]]:
    """(capture, risk, the flow's two ends) for every flow nDPI flags with one of NDPI_RISKS."""
    out = []
    for expected in sorted((CORPUS / "upstream" / "ndpi").glob("*.out")):
        capture = CORPUS / "pcaps" / "ndpi" / expected.name.removesuffix(".out")
        for line in expected.read_text(errors="replace").splitlines():
            m = _LINE.match(line)
            if m is None:
                continue
            for risk in NDPI_RISKS:
                if f"** {risk} **" in line:
                    out.append((capture, risk, frozenset({_end(m.group(1)), _end(m.group(2))})))
    return out


def zeek_judgements() -> list[tuple[Path, str, Ends]]:
    """(capture, notice, ends) of Zeek's baselines' SSL notices, for the flows of the corpus capture
    (a btest may run several captures; rows of the others are left out by `_flow`). Weak_Key rows
    about DH parameters or keys of 2048 bits and more come from the btest's raised thresholds
    (notice_weak_key_bits = 4096...); they are left out (see the notes)."""
    out = []
    for rel in ZEEK_LOGS:
        log = CORPUS / "upstream" / "zeek" / rel
        capture = CORPUS / "pcaps" / "zeek" / Path(rel).parts[0] / Path(rel).parts[1]
        if not log.is_file():
            continue
        for line in log.read_text(errors="replace").splitlines():
            cells = line.split("\t")
            if line.startswith("#") or len(cells) < 12:
                continue
            notice, msg = cells[10], cells[11]
            if notice not in ZEEK_NOTICES:
                continue
            bits = re.search(r"weak certificate with (\d+) bit key", msg)
            if notice == "SSL::Weak_Key" and (bits is None or int(bits.group(1)) >= 2048):
                continue
            out.append((capture, notice, frozenset({(cells[2], int(cells[3])), (cells[4], int(cells[5]))})))
    return out


@cache
def _audit(capture: Path) -> tuple[dict[Ends, list[str]], dict[str, set[str]]]:
    """(uids by the flow's two ends, rules found by uid) of one capture."""
    r = analyzer.audit([str(capture)], vpc=VPC, on_problem=lambda p: None)
    by_ends: dict[Ends, list[str]] = {}
    for row in r.flows.itertuples():
        if row.client_port is pd.NA or row.server_port is pd.NA:
            continue  # ESP, ICMP, ...: no ports, nothing nDPI or Zeek flags here
        key = frozenset({(str(row.client_ip), int(row.client_port)), (str(row.server_ip), int(row.server_port))})
        by_ends.setdefault(key, []).append(str(row.uid))
    rules: dict[str, set[str]] = {}
    for uid, rule in zip(r.findings["uid"], r.findings["rule"], strict=True):
        rules.setdefault(str(uid), set()).add(str(rule))
    return by_ends, rules


def _ours(capture: Path, ends: Ends) -> set[str] | None:
    """Rules found on the flow with these ends (None: no such flow in the capture)."""
    by_ends, rules = _audit(capture)
    uids = by_ends.get(ends)
    if uids is None:
        return None
    return set().union(*(rules.get(u, set()) for u in uids))


def _compare(judgements: list[tuple[Path, str, Ends]], table: dict[str, set[str]]) -> tuple[int, int, list, set]:
    agree = total = 0
    unexplained: list[tuple[str, str, list[tuple[str, int]], set[str] | None]] = []
    explained_seen: set[tuple[str, str, int]] = set()
    for capture, what, ends in judgements:
        if not capture.is_file():
            continue
        ours = _ours(capture, ends)
        if ours is None and table is ZEEK_NOTICES:
            continue  # a row of another capture of the same btest
        total += 1
        if ours and ours & table[what]:
            agree += 1
            continue
        key = (capture.name, what, min(p for _, p in ends))
        if key in EXPLAINED:
            explained_seen.add(key)
        else:
            unexplained.append((capture.name, what, sorted(ends), ours))
    return agree, total, unexplained, explained_seen


def test_ndpi_risks_get_our_findings():
    judgements = ndpi_judgements()
    if not judgements:
        pytest.skip(f"the corpus is not at {CORPUS} (nDPI expected outputs): nothing to compare")
    agree, total, unexplained, explained = _compare(judgements, NDPI_RISKS)
    assert total >= 30
    assert not unexplained, unexplained
    assert explained == set(EXPLAINED), set(EXPLAINED) - explained  # each explanation still needed
    assert agree / total >= 0.85, (agree, total)
    print(f"nDPI agreement: {agree}/{total}")


def test_zeek_ssl_notices_get_our_findings():
    judgements = zeek_judgements()
    if not judgements:
        pytest.skip(f"the corpus is not at {CORPUS} (Zeek baselines): nothing to compare")
    agree, total, unexplained, _ = _compare(judgements, ZEEK_NOTICES)
    assert total >= 3  # expired, expiring soon, RC4-MD5 with a 1024-bit key (ssl.v3.pcap)
    assert not unexplained, unexplained
    assert agree == total
