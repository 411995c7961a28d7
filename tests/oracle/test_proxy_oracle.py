"""The proxy and WebRTC dissectors (socks, stun, and DTLS among STUN/RTP) against tshark: on the bundled
proxy captures and on every corpus capture whose manifest tags name socks, stun or dtls, each TCP/UDP
conversation tshark decodes as SOCKS or STUN must get our matching `app_protocol` ("socks", "stun";
a conversation where tshark also decodes DTLS is ours "dtls" with `dtls_multiplexed` naming stun),
except the disagreements explained in tests/oracle/ORACLE_PROXY_NOTES.md (none today). The agreement
over the whole set must stay >= 97%. Every nDPI "Clear-Text Credentials" flow of these protocols in the
corpus's upstream outputs must give a credentials row (there are none today: the check runs on what is
there, and the bundled SOCKS 5 login stands in for it)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from support.oracle_helpers import agreement, tagged_corpus

import analyzer

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus"
BUNDLED = [ROOT / "captures" / f"{name}.pcap" for name in (
    "socks4_ssh_tls", "socks5_ssh_tls", "socks5_auth_tls", "http_connect_tls", "dtls12_openssl")]
_TAGS = ("socks", "stun", "dtls")




CAPTURES = [p for p in BUNDLED if p.is_file()] + tagged_corpus(CORPUS, _TAGS, whole_tags=True)
# (capture name, tshark's protocol, server port) -> what we say and why (ORACLE_PROXY_NOTES.md)
EXPECTED_DISAGREEMENTS: dict[tuple[str, str, int], str | None] = {}


def tshark_conversations(path: Path) -> dict[frozenset[tuple[str, int]], set[str]]:
    """Per conversation (its endpoints): the protocols of interest tshark decoded in it. The bundled
    SOCKS 5 login runs on port 1081, which tshark decodes as SOCKS only when told."""
    out = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-d", "tcp.port==1081,socks", "-Y", "socks||stun||dtls", "-T", "fields",
         "-E", "separator=\t", "-e", "frame.protocols", "-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport",
         "-e", "udp.srcport", "-e", "ip.dst", "-e", "ipv6.dst", "-e", "tcp.dstport", "-e", "udp.dstport"],
        capture_output=True, text=True, timeout=180, check=False).stdout
    seen: dict[frozenset[tuple[str, int]], set[str]] = {}
    for line in out.splitlines():
        cells = line.split("\t")
        if len(cells) < 9:
            continue
        layers = set(cells[0].split(":"))
        sport, dport = cells[3] or cells[4], cells[7] or cells[8]
        if not sport or not dport:
            continue
        src, dst = (cells[1] or cells[2]).split(",")[-1], (cells[5] or cells[6]).split(",")[-1]
        key = frozenset({(src, int(sport.split(",")[-1])), (dst, int(dport.split(",")[-1]))})
        seen.setdefault(key, set()).update(layers & {"socks", "stun", "dtls"})
    return {k: v for k, v in seen.items() if v & {"socks", "stun"}}


def compare(path: Path) -> list[tuple[str, str | None, int]]:
    """(tshark's protocol, ours, server port) for each conversation tshark names SOCKS or STUN."""
    oracle = tshark_conversations(path)
    if not oracle:
        return []
    flows = analyzer.analyze([str(path)]).flows
    ours = {frozenset({(c, int(cp)), (s, int(sp))}): (a, m, int(sp)) for c, cp, s, sp, a, m in zip(
        flows["client_ip"], flows["client_port"], flows["server_ip"], flows["server_port"], flows["app_protocol"],
        flows["dtls_multiplexed"], strict=True)}
    out = []
    for key, protocols in oracle.items():
        app, muxed, port = ours.get(key, (None, None, 0))
        theirs = "socks" if "socks" in protocols else "stun"
        if theirs == "stun" and "dtls" in protocols and app == "dtls" and "stun" in str(muxed).split(","):
            app = "stun"  # one 5-tuple: ours is the DTLS flow that says STUN shared it
        out.append((theirs, None if app is None or app != app else str(app), port))
    return out


@pytest.mark.tshark
def test_app_protocol_agrees_with_tshark():
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed (the oracle)")
    if not tagged_corpus(CORPUS, _TAGS, whole_tags=True):
        pytest.skip(f"{CORPUS} not present: only the bundled captures are checked")
    result = agreement(((path.name, theirs, ours, port) for path in CAPTURES for theirs, ours, port in compare(path)),
                       EXPECTED_DISAGREEMENTS)
    assert not result.unexplained, result.unexplained
    assert result.total >= 8 and result.share >= 0.97, result


def test_ndpi_cleartext_credentials_of_these_protocols_give_rows():
    upstream = CORPUS / "upstream" / "ndpi"
    if not upstream.is_dir():
        pytest.skip(f"{upstream} not present")
    flagged = []
    for out in sorted(upstream.glob("*.out")):
        for line in out.read_text(errors="replace").splitlines():
            if "Clear-Text Credentials" in line and re.search(r"\[proto: [\d.]+/(SOCKS|STUN)", line):
                flagged.append((out.name.removesuffix(".out"), line))
    for name, _line in flagged:
        capture = next((CORPUS / "pcaps").rglob(name), None)
        assert capture is not None, name
        creds = analyzer.analyze([str(capture)]).credentials
        assert set(creds["protocol"]) & {"socks", "stun"}, name
    # the bundled SOCKS 5 login stands in while the corpus has none
    creds = analyzer.analyze([str(ROOT / "captures" / "socks5_auth_tls.pcap")]).credentials
    assert list(creds["mechanism"]) == ["user_pass", "user_pass"]
