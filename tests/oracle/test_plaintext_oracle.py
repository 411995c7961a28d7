"""The plaintext dissectors (http, smtp, imap, pop3, ftp) against tshark: on the bundled captures and
on every corpus capture whose manifest tags name one of these protocols, STARTTLS or cleartext, each
TCP conversation tshark decodes as HTTP / HTTP2 (in the clear) / SMTP / IMAP / POP / FTP must get the
same `app_protocol` from us, except the disagreements explained in tests/oracle/ORACLE_PLAINTEXT_NOTES.md
(listed in EXPECTED_DISAGREEMENTS, each checked to still be one). The agreement over the whole set
must stay >= 97%."""

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
BUNDLED = [ROOT / "captures" / f"{name}.pcap" for name in (
    "http_plain", "http_basic_auth", "ftp_login", "ftps_explicit", "smtp_plain_auth", "smtp_starttls",
    "tls_client_to_http_port", "vxlan_kernel")]
_TAGS = ("http", "smtp", "imap", "pop", "ftp", "starttls", "cleartext")
# tshark's protocol names -> ours
_NAMES = {"http": "http", "http2": "http2", "smtp": "smtp", "imap": "imap", "pop": "pop3", "ftp": "ftp"}




CAPTURES = [*BUNDLED, *tagged_corpus(CORPUS, _TAGS)]

# (capture name, the tshark protocol, the server port) -> what we say and why (ORACLE_PLAINTEXT_NOTES.md)
EXPECTED_DISAGREEMENTS: dict[tuple[str, str, int], str | None] = {
    # tshark decodes port 21 as FTP; the server's 7 bytes are Telnet option negotiation (IAC DO ...):
    # the Telnet dissector names it
    ("telnet-auth-missing-name.pcap", "ftp", 21): "telnet",
}


def tshark_conversations(path: Path) -> dict[frozenset[tuple[str, int]], set[str]]:
    """Per TCP conversation (its two endpoints' ports, with the innermost addresses): the plaintext
    protocols tshark decoded in it. Conversations where tshark decrypted TLS are left out (HTTP/2
    inside a keylogged TLS session is not cleartext HTTP/2)."""
    out = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-Y", "http||http2||smtp||imap||pop||ftp", "-T", "fields",
         "-E", "separator=\t", "-e", "frame.protocols", "-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport",
         "-e", "ip.dst", "-e", "ipv6.dst", "-e", "tcp.dstport"],
        capture_output=True, text=True, timeout=180, check=False).stdout
    seen: dict[frozenset[tuple[str, int]], set[str]] = {}
    for line in out.splitlines():
        cells = line.split("\t")
        if len(cells) < 7 or not cells[3] or not cells[6]:
            continue
        layers = cells[0].split(":")
        found = {_NAMES[x] for x in layers if x in _NAMES}
        if "tls" in layers and found & {"http", "http2"}:
            continue
        # the innermost addresses: IPv6 in IPv4 (6in4) has both fields, the inner one last in the stack
        last = {name: i for i, name in enumerate(layers)}
        inner_v6 = bool(cells[2]) and (not cells[1] or last.get("ipv6", -1) > last.get("ip", -1))
        src = (cells[2] if inner_v6 else cells[1]).split(",")[-1]
        dst = (cells[5] if inner_v6 else cells[4]).split(",")[-1]
        key = frozenset({(src, int(cells[3].split(",")[-1])), (dst, int(cells[6].split(",")[-1]))})
        seen.setdefault(key, set()).update(found)
    return {k: v for k, v in seen.items() if v}


def compare(path: Path) -> list[tuple[str, str | None, int]]:
    """(tshark's protocol, ours, server port) for each conversation tshark names as ours."""
    oracle = tshark_conversations(path)
    if not oracle:
        return []
    flows = analyzer.analyze([str(path)], on_problem=lambda p: None).flows
    ours: dict[frozenset[tuple[str, int]], list[str | None]] = {}
    for row in flows[flows["transport"] == "tcp"].itertuples():
        key = frozenset({(str(row.client_ip), int(row.client_port)), (str(row.server_ip), int(row.server_port))})
        app = row.app_protocol
        ours.setdefault(key, []).append(None if pd.isna(app) else str(app))
    result = []
    for key, protocols in oracle.items():
        theirs = "smtp" if "smtp" in protocols else sorted(protocols)[0]  # SMTP carries IMF, not HTTP
        mine = [a for a in ours.get(key, []) if a is not None]
        ports = sorted(p for _, p in key)
        result.append((theirs, mine[0] if mine else None, ports[0]))
    return result


@pytest.mark.tshark
def test_agreement_with_tshark():
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed (the oracle)")
    result = agreement(((path.name, theirs, mine, port) for path in CAPTURES for theirs, mine, port in compare(path)),
                       EXPECTED_DISAGREEMENTS)
    assert result.total >= 50, result
    assert not result.unexplained, result.unexplained
    assert result.share >= 0.97, result


def _ndpi_cleartext_credentials() -> list[tuple[Path, frozenset[tuple[str, int]]]]:
    """The conversations nDPI's expected outputs flag with the "Clear-Text Credentials" risk."""
    out = []
    for expected in sorted((CORPUS / "upstream" / "ndpi").glob("*.out")):
        for line in expected.read_text(errors="replace").splitlines():
            if "Clear-Text Credentials" not in line:
                continue
            words = line.split()
            a, b = words[2], words[4]  # "TCP a:port <-> b:port"
            ends = frozenset((e.rsplit(":", 1)[0].strip("[]"), int(e.rsplit(":", 1)[1])) for e in (a, b))
            out.append((CORPUS / "pcaps" / "ndpi" / expected.name.removesuffix(".out"), ends))
    return out


def test_every_ndpi_cleartext_credentials_flow_has_a_credentials_row():
    flagged = _ndpi_cleartext_credentials()
    if not flagged:
        pytest.skip("corpus not present")
    for path, ends in flagged:
        result = analyzer.analyze([str(path)], on_problem=lambda p: None)
        flows = result.flows
        uids = [row.uid for row in flows.itertuples()
                if frozenset({(str(row.client_ip), int(row.client_port)), (str(row.server_ip), int(row.server_port))})
                == ends]
        assert len(uids) == 1, (path.name, ends)
        assert uids[0] in set(result.credentials["uid"]), (path.name, ends)


FTP_DATA_CAPTURES = [ROOT / "captures" / "ftp_login.pcap", CORPUS / "pcaps" / "zeek" / "ftp" / "ipv4.pcap",
                     CORPUS / "pcaps" / "suricata-verify" / "ftp" / "ftp-download-passive" / "input.pcap"]


@pytest.mark.tshark
@pytest.mark.parametrize("path", FTP_DATA_CAPTURES, ids=[p.parent.name + "/" + p.name for p in FTP_DATA_CAPTURES])
def test_every_ftp_data_conversation_was_announced(path: Path):
    """Each conversation tshark decodes as FTP-DATA (it follows the control channel's PORT/PASV) has
    an `ftp_data` row whose address and port are the data flow's server side: the join that links a
    data flow to its control flow (a dissector sees one flow; the link needs state across flows)."""
    if shutil.which("tshark") is None or not path.is_file():
        pytest.skip("tshark or the capture is missing")
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-Y", "ftp-data", "-T", "fields", "-E", "separator=\t",
                          "-e", "tcp.srcport", "-e", "tcp.dstport"],
                         capture_output=True, text=True, timeout=120, check=False).stdout
    ports = {frozenset(int(p) for p in line.split("\t")) for line in out.splitlines() if line.strip()}
    assert ports
    result = analyzer.analyze([str(path)], on_problem=lambda p: None)
    announced = set(result.ftp_data[["host", "port"]].itertuples(index=False, name=None))
    for row in result.flows.itertuples():
        if frozenset({int(row.client_port), int(row.server_port)}) in ports:
            assert (str(row.server_ip), int(row.server_port)) in announced, (row.server_ip, row.server_port)
            ports.discard(frozenset({int(row.client_port), int(row.server_port)}))
    assert not ports  # every FTP-DATA conversation is a flow here
