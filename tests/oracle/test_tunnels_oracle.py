"""The tunnel dissectors (smb, ipsec, wireguard, openvpn) and the FTP data-channel link against
tshark: on the tunnels group's bundled captures and every corpus capture whose manifest tags name
IKE, ESP or FTP, each conversation tshark decodes as SMB/SMB2, ISAKMP, UDP-encapsulated ESP, raw
ESP, WireGuard, OpenVPN or FTP-DATA must get the same `app_protocol` from us (the numbers and the
explained disagreements: tests/oracle/ORACLE_TUNNELS_NOTES.md). The agreement must stay >= 97%."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from support.oracle_helpers import agreement, tagged_corpus

import analyzer

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus"
BUNDLED = [ROOT / "captures" / name for name in (
    "smb3_encrypted.pcap", "smb3_plain.pcap", "wireguard.pcap", "openvpn_udp.pcap", "openvpn_udp_tlsauth.pcap",
    "openvpn_tcp_tlscrypt.pcap", "ftp_login.pcap")]
_TAGS = ("ike", "ipsec", "esp", "smb", "wireguard", "openvpn", "ftp")
FILTER = "smb||smb2||isakmp||esp||wg||openvpn||ftp-data"
# OpenVPN has no heuristic in tshark 4.0 on TCP: its port is given (the bundled captures use 1194)
DECODE_AS = ("-d", "tcp.port==1194,openvpn", "-d", "udp.port==1194,openvpn")
# (capture name, tshark's protocol, transport) -> our app_protocol there, each explained in
# ORACLE_TUNNELS_NOTES.md; none so far
EXPECTED_DISAGREEMENTS: dict[tuple[str, str, str], str | None] = {}




CAPTURES = [*BUNDLED, *tagged_corpus(CORPUS, _TAGS)]


def _theirs(layers: set[str], transport: str) -> str | None:
    """tshark's protocol stack of a conversation, in our app_protocol words."""
    if "esp" in layers:
        return "esp"  # raw ESP (IP protocol 50) or ESP in UDP 4500 (udpencap)
    for theirs, ours in (("isakmp", "ike"), ("wg", "wireguard"), ("openvpn", "openvpn"), ("ftp-data", "ftp-data"),
                         ("smb2", "smb"), ("smb", "smb")):
        if theirs in layers:
            return ours
    return None


def tshark_conversations(path: Path) -> dict[tuple[str, frozenset[tuple[str, int]]], set[str]]:
    """Per conversation (transport, its two endpoints: address and port, -1 for raw ESP): the
    protocols tshark decoded in it."""
    out = subprocess.run(
        ["tshark", "-n", "-r", str(path), *DECODE_AS, "-Y", FILTER, "-T", "fields", "-E", "separator=\t",
         "-e", "frame.protocols", "-e", "ip.src", "-e", "ipv6.src", "-e", "ip.dst", "-e", "ipv6.dst",
         "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "udp.srcport", "-e", "udp.dstport"],
        capture_output=True, text=True, timeout=180, check=False).stdout
    seen: dict[tuple[str, frozenset[tuple[str, int]]], set[str]] = {}
    for line in out.splitlines():
        cells = line.split("\t")
        if len(cells) < 9:
            continue
        layers = cells[0].split(":")
        src = (cells[2] or cells[1]).split(",")[-1]
        dst = (cells[4] or cells[3]).split(",")[-1]
        if cells[5]:
            transport, sport, dport = "tcp", int(cells[5].split(",")[-1]), int(cells[6].split(",")[-1])
        elif cells[7]:
            transport, sport, dport = "udp", int(cells[7].split(",")[-1]), int(cells[8].split(",")[-1])
        else:
            transport, sport, dport = "esp", -1, -1
        seen.setdefault((transport, frozenset({(src, sport), (dst, dport)})), set()).update(layers)
    return seen


def compare(path: Path) -> list[tuple[str, str | None, str]]:
    """(tshark's protocol, ours, transport) for each conversation tshark names as one of ours."""
    oracle = {k: _theirs(v, k[0]) for k, v in tshark_conversations(path).items()}
    oracle = {k: v for k, v in oracle.items() if v is not None}
    if not oracle:
        return []
    flows = analyzer.analyze([str(path)], on_problem=lambda p: None).flows
    ours: dict[tuple[str, frozenset[tuple[str, int]]], str | None] = {}
    for row in flows.itertuples():
        cport = -1 if pd.isna(row.client_port) else int(row.client_port)
        sport = -1 if pd.isna(row.server_port) else int(row.server_port)
        key = (str(row.transport), frozenset({(str(row.client_ip), cport), (str(row.server_ip), sport)}))
        app = None if pd.isna(row.app_protocol) else str(row.app_protocol)
        if ours.get(key) is None:
            ours[key] = app
    return [(theirs, ours.get(key), key[0]) for key, theirs in oracle.items()]


@pytest.mark.tshark
def test_agreement_with_tshark():
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed (the oracle)")
    result = agreement(((path.name, theirs, mine, transport) for path in CAPTURES
                        for theirs, mine, transport in compare(path)), EXPECTED_DISAGREEMENTS)
    assert result.total >= (8 if len(CAPTURES) == len(BUNDLED) else 50), result
    assert not result.unexplained, result.unexplained
    assert result.share >= 0.97, result


@pytest.mark.skipif(not (CORPUS / "upstream" / "ndpi").is_dir(), reason="../shared/corpus is absent")
def test_ndpi_ipsec_flows_are_ipsec():
    """nDPI's expected output names IPsec (IKE and ESP in UDP) for these captures' flows: we say ike/esp,
    encrypted where ESP or an encrypted IKE exchange was seen, protection ipsec on every one."""
    for name in ("ipsec_isakmp_esp.pcap", "esp.pcapng"):
        expected = (CORPUS / "upstream" / "ndpi" / f"{name}.out").read_text(errors="replace")
        assert "IPSec" in expected or "IPsec" in expected
        flows = analyzer.analyze([str(CORPUS / "pcaps" / "ndpi" / name)]).flows
        assert set(flows.app_protocol) <= {"ike", "esp"} and (flows.protection == "ipsec").all()
        assert flows[flows.app_protocol == "esp"].encrypted.all()
