"""The directory, management and remote-access dissectors (dns/mdns/llmnr, ldap, snmp, telnet, ntp,
syslog, rdp, vnc, sip) against tshark: on the bundled net captures and on every corpus capture whose
manifest tags or tshark oracle CSV name one of these protocols, each TCP/UDP conversation tshark
decodes as one of them (in the clear: not inside TLS/QUIC/DTLS) must get the same `app_protocol` from
us, except the disagreements explained in tests/oracle/ORACLE_NET_NOTES.md (EXPECTED_DISAGREEMENTS,
each checked to still be one). Agreement over the set must stay >= 97%. Also: every nDPI
"Clear-Text Credentials" flow of these protocols yields a credentials row."""

from __future__ import annotations

import csv
import functools
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from support.oracle_helpers import agreement

import analyzer

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus"
BUNDLED = sorted(ROOT / "captures" / n for n in ("ldap_simple_bind.pcap", "ldap_starttls.pcap", "snmp_v2c.pcap",
                                                 "snmp_v3.pcap", "telnet_login.pcap", "dns_dnsmasq.pcap",
                                                 "ntp_chrony.pcap", "syslog_udp.pcap"))
# tshark's protocol names -> ours
NAMES = {"dns": "dns", "mdns": "mdns", "llmnr": "llmnr", "ldap": "ldap", "snmp": "snmp", "telnet": "telnet",
         "ntp": "ntp", "syslog": "syslog", "rdp": "rdp", "vnc": "vnc", "sip": "sip"}
_ENCRYPTED_LAYERS = {"tls", "quic", "dtls"}
_TAG_WORDS = ("dns", "ldap", "snmp", "telnet", "ntp", "syslog", "rdp", "vnc", "sip")

# (capture name, tshark's protocol, server port) -> what we say and why (ORACLE_NET_NOTES.md)
EXPECTED_DISAGREEMENTS: dict[tuple[str, str, int], str | None] = {}


def corpus_captures() -> list[Path]:
    """Corpus captures whose manifest tags, or whose tshark oracle CSV's app_protocols, name one of
    these protocols."""
    manifest = CORPUS / "manifest.csv"
    if not manifest.is_file():
        return []
    out = []
    with manifest.open() as fh:
        for row in csv.DictReader(fh):
            path = CORPUS / row["file"]
            if not path.is_file():
                continue
            words = set(row["tags"].replace("_", ";").split(";"))
            protocols: set[str] = set()
            oracle = CORPUS / row["oracle_csv"] if row.get("oracle_csv") else None
            if oracle is not None and oracle.is_file():
                with oracle.open() as oh:
                    for conv in csv.DictReader(oh):
                        protocols.update(conv.get("app_protocols", "").split("|"))
            if words & set(_TAG_WORDS) or protocols & set(NAMES):
                out.append(path)
    return out


CAPTURES = [*BUNDLED, *corpus_captures()]


def tshark_conversations(path: Path) -> dict[tuple[str, frozenset[tuple[str, int]]], set[str]]:
    """Per conversation (transport, its two endpoints with the innermost addresses): the protocols of
    ours tshark decoded in it, outside TLS/QUIC/DTLS."""
    display = "||".join(NAMES)
    out = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-Y", display, "-T", "fields", "-E", "separator=\t",
         "-e", "frame.protocols", "-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport", "-e", "udp.srcport",
         "-e", "ip.dst", "-e", "ipv6.dst", "-e", "tcp.dstport", "-e", "udp.dstport"],
        capture_output=True, text=True, timeout=180, check=False).stdout
    seen: dict[tuple[str, frozenset[tuple[str, int]]], set[str]] = {}
    for line in out.splitlines():
        cells = line.split("\t")
        if len(cells) < 9:
            continue
        layers = cells[0].split(":")
        ours = [i for i, name in enumerate(layers) if name in NAMES]
        if not ours or _ENCRYPTED_LAYERS & set(layers[:ours[0]]):
            continue
        transport = "tcp" if cells[3] else "udp"
        sport, dport = (cells[3], cells[7]) if transport == "tcp" else (cells[4], cells[8])
        if not sport or not dport:
            continue
        last = {name: i for i, name in enumerate(layers)}
        inner_v6 = bool(cells[2]) and (not cells[1] or last.get("ipv6", -1) > last.get("ip", -1))
        src = (cells[2] if inner_v6 else cells[1]).split(",")[-1]
        dst = (cells[6] if inner_v6 else cells[5]).split(",")[-1]
        key = (transport, frozenset({(src, int(sport.split(",")[-1])), (dst, int(dport.split(",")[-1]))}))
        seen.setdefault(key, set()).update(NAMES[layers[i]] for i in ours)
    return seen


@functools.cache
def compare(path: Path) -> tuple[tuple[str, str | None, int], ...]:
    """(tshark's protocol, ours, server port) for each conversation tshark names as one of ours."""
    oracle = tshark_conversations(path)
    if not oracle:
        return ()
    flows = analyzer.analyze([str(path)], on_problem=lambda p: None).flows
    ours: dict[tuple[str, frozenset[tuple[str, int]]], list[str]] = {}
    for row in flows.itertuples():
        if pd.isna(row.client_port) or pd.isna(row.server_port):
            continue
        key = (str(row.transport), frozenset({(str(row.client_ip), int(row.client_port)),
                                              (str(row.server_ip), int(row.server_port))}))
        if not pd.isna(row.app_protocol):
            ours.setdefault(key, []).append(str(row.app_protocol))
    result = []
    for key, protocols in oracle.items():
        theirs = sorted(protocols)[0]
        mine = ours.get(key, [])
        ports = sorted(p for _, p in key[1])
        result.append((theirs, mine[0] if mine else None, ports[0]))
    return tuple(result)


@pytest.mark.tshark
@pytest.mark.slow
def test_agreement_with_tshark():
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed (the oracle)")
    result = agreement(((path.name, theirs, mine, port) for path in CAPTURES for theirs, mine, port in compare(path)),
                       EXPECTED_DISAGREEMENTS)
    assert result.total >= 40, result
    assert not result.unexplained, result.unexplained
    assert result.share >= 0.97, result


def _ndpi_cleartext_credentials() -> list[tuple[Path, str, frozenset[tuple[str, int]]]]:
    """nDPI's "Clear-Text Credentials" flows whose protocol is one of these."""
    words = ("DNS", "LDAP", "SNMP", "Telnet", "NTP", "Syslog", "RDP", "VNC", "SIP")
    out = []
    for expected in sorted((CORPUS / "upstream" / "ndpi").glob("*.out")):
        for line in expected.read_text(errors="replace").splitlines():
            if "Clear-Text Credentials" not in line or not any(f"/{w}]" in line or f"/{w}." in line for w in words):
                continue
            parts = line.split()
            a, b = parts[2], parts[4]
            ends = frozenset((e.rsplit(":", 1)[0].strip("[]"), int(e.rsplit(":", 1)[1])) for e in (a, b))
            out.append((CORPUS / "pcaps" / "ndpi" / expected.name.removesuffix(".out"), parts[1], ends))
    return out


@pytest.mark.corpus
def test_every_ndpi_cleartext_credentials_flow_has_a_credentials_row():
    if not (CORPUS / "upstream" / "ndpi").is_dir():
        pytest.skip("corpus not present (../shared/corpus)")
    for path, transport, ends in _ndpi_cleartext_credentials():
        result = analyzer.analyze([str(path)], on_problem=lambda p: None)
        uids = [r.uid for r in result.flows.itertuples()
                if not pd.isna(r.client_port) and str(r.transport) == transport.lower()
                and frozenset({(str(r.client_ip), int(r.client_port)), (str(r.server_ip), int(r.server_port))}) == ends]
        assert len(uids) == 1, (path.name, ends)
        assert uids[0] in set(result.credentials["uid"]), (path.name, ends)
