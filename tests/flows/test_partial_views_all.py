"""Partial views of every bundled capture of every group (captures/manifest*.json): a client-only and
a server-only mirror, and mirrors that started during the connections (each flow's first 3 or 5
packets dropped: after the TCP handshake, and after the first exchange). Issue 17 §5.

For every flow of the two-sided run that a dissector recognised:
- an encrypted session is never called cleartext (`encrypted` never False), and a cleartext one
  never encrypted;
- `visibility` says what was missing;
- every fact the partial view states equals the two-sided run's (a partial view may state fewer);
- a cleartext protocol is still recognised from what the side shows (the mid-stream second look,
  analyzer.dissect.midstream), except where the view shows nothing of it (`UNSEEN`, each with why).
test_partial_views.py checks the TLS captures' handshake facts in the same cuts.
"""

from __future__ import annotations

import json
import tempfile
from functools import cache
from pathlib import Path

import pandas as pd
import pytest
from support.cut_helpers import after, client_only, cut_capture, server_only
from support.frame_helpers import cell

import analyzer
from analyzer import schema

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = ROOT / "captures"


def _bundled() -> list[str]:
    """Every .pcap of every manifest group that is not inside a tunnel (the cut reads the inner
    addresses of plain IP packets only)."""
    out: set[str] = set()
    for manifest in sorted(CAPTURES.glob("manifest*.json")):
        for name, entry in json.loads(manifest.read_text())["captures"].items():
            if name.endswith(".pcap") and not entry.get("tunnel") and (CAPTURES / name).exists():
                out.add(name)
    return sorted(out)


CAPTURE_NAMES = _bundled()
CUTS = {"client": client_only, "server": server_only, "mid3": after(3), "mid5": after(5)}
# Facts that count what was seen, or describe the first message seen (the client's request, or
# from a server-only view the server's answer): they differ with the view by definition.
# `tls_incomplete` says a handshake message was cut: a view that begins inside the handshake cuts
# one by construction (issue 16 item 5), so it is a fact about the view, like `truncated`.
VIEW_DEPENDENT = {"ntp_mode", "ntp_stratum", "snmp_pdu", "telnet_options", "tls_incomplete"}
COUNTS = ("_messages", "_commands", "_requests", "_responses", "_queries", "_packets", "_initiations",
          "_channels")
# TLS's `tls_established` needs both sides' Finished; a one-sided view leaves it False (TLS's own
# rule, tests/flows/test_partial_views.py), so it is compared on the mid-stream cuts only.
ONE_SIDED_UNSEEN = {"tls_established"}
# Cleartext protocols the view cannot show: (capture, cut, app_protocol) -> why. Everything else
# must be recognised.
UNSEEN = {
    ("socks5_auth_tls.pcap", "server", "socks"): "a refused SOCKS 5 login from the server's side is 4 bytes "
                                                  "(05 02 01 01) and nothing after: too little to claim",
    ("socks5_auth_tls.pcap", "mid5", "socks"): "the refused login's greeting was cut: an RFC 1929 login "
                                                "(01, user, password) alone is not told apart mid-stream",
    ("dns_dnsmasq.pcap", "server", "dns"): "DNS over TCP: a response alone is not told apart "
                                           "(the probe wants the query)",
    ("dns_dnsmasq.pcap", "mid3", "dns"): "DNS over TCP: the query was cut",
    ("dns_dnsmasq.pcap", "mid5", "dns"): "DNS over TCP: the query was cut",
    ("ftp_login.pcap", "server", "ftp-data"): "the FTP data channel: its control flow links it, and here "
                                              "the control flow is one-sided",
    ("ftp_login.pcap", "mid3", "ftp-data"): "the FTP data channel (as above): the control flow's EPSV reply is linked "
                                "only in the two-sided order of flows",
    ("mariadb_no_ssl.pcap", "client", "mysql"): "MySQL: the client's first packet answers the "
                                                "server greeting it follows",
    ("mariadb_ssl.pcap", "client", "mysql"): "MySQL (as above)",
    ("mariadb_ssl_offered_not_used.pcap", "client", "mysql"): "MySQL (as above)",
    ("mariadb_no_ssl.pcap", "mid5", "mysql"): "MySQL: the handshake was cut; later packets are not self-describing",
    ("mariadb_ssl_offered_not_used.pcap", "mid5", "mysql"): "MySQL (as above)",
    ("mqtt_password.pcap", "server", "mqtt"): "MQTT: CONNACK/SUBACK alone are a few binary bytes",
    ("mqtt_password.pcap", "mid5", "mqtt"): "MQTT: CONNECT was cut; the rest is a few binary bytes",
    ("postgresql_cleartext_ssl_refused.pcap", "server", "postgresql"): "PostgreSQL: the server's 'N' "
                                                                       "and messages alone",
    ("postgresql_scram_no_ssl.pcap", "server", "postgresql"): "PostgreSQL (as above)",
    ("postgresql_ssl.pcap", "server", "postgresql"): "PostgreSQL (as above)",
    ("postgresql_scram_no_ssl.pcap", "mid5", "postgresql"): "PostgreSQL: the startup message was cut",
    ("tls_client_to_http_port.pcap", "server", "tls"): "the TLS was the client's; the server's bare HTML "
                                                       "names no protocol",
    ("tls_client_to_http_port.pcap", "mid5", "tls"): "as above: the client's hello was cut",
    ("redis_auth.pcap", "server", "redis"): "Redis: +OK / RESP replies alone (a bare +OK is not POP3 either)",
}


@cache
def _whole(name: str) -> pd.DataFrame:
    flows = analyzer.analyze(str(CAPTURES / name)).flows
    return flows[flows["transport"].isin(["tcp", "udp"])].reset_index(drop=True)


def _match(part: pd.DataFrame, whole_row: pd.Series) -> pd.Series | None:
    """The partial view's flow of the same conversation (either orientation)."""
    for cport, sport in ((whole_row["client_port"], whole_row["server_port"]),
                         (whole_row["server_port"], whole_row["client_port"])):
        hit = part[(part["transport"] == whole_row["transport"]) & (part["client_port"] == cport)
                   & (part["server_port"] == sport)]
        if len(hit):
            return hit.iloc[0]
    return None


def _compared(column: str, cut: str) -> bool:
    return not (column in schema.FLOWS_BASE or column == "undecided_reason" or column in VIEW_DEPENDENT
                or column.endswith(COUNTS) or (cut in ("client", "server") and column in ONE_SIDED_UNSEEN))


@pytest.mark.parametrize("name", CAPTURE_NAMES)
def test_partial_views_of_every_capture(name: str, tmp_path: Path) -> None:
    assert len(CAPTURE_NAMES) >= 50  # every group's captures are here
    whole = _whole(name)
    recognised = whole[whole["app_protocol"].notna()]
    if recognised.empty:
        pytest.skip(f"{name}: no flow of it is recognised two-sided")
    facts = [c for c in whole.columns if c not in schema.FLOWS_BASE]
    for cut, keep in CUTS.items():
        part = analyzer.analyze(str(cut_capture(CAPTURES / name, tmp_path / f"{cut}.pcap", whole, keep))).flows
        for _, w in recognised.iterrows():
            p = _match(part, w)
            if p is None:
                continue  # nothing of this flow is in the view
            where = f"{name} {cut} {w['app_protocol']} :{w['server_port']}"
            encrypted, seen = cell(w["encrypted"]), cell(p["encrypted"])
            if encrypted is True:
                assert seen is not False, f"{where}: an encrypted session called cleartext"
            if encrypted is False:
                assert seen is not True, f"{where}: a cleartext session called encrypted"
            _check_visibility(p, cut, where)
            if cell(p["app_protocol"]) is None:
                # Not recognised: only where the view shows nothing of it. A protocol with no payload
                # left in the view (no_payload) shows nothing either.
                if p["undecided_reason"] != "no_payload":
                    unseen = (name, cut, w["app_protocol"]) in UNSEEN
                    assert unseen or encrypted is not False, f"{where}: not recognised"
                continue
            # a capture that is itself one-sided (the *_server_only captures): every cut of it is too
            one_sided = w["visibility"] in ("client_only", "server_only")
            for column in facts:
                if not _compared(column, "server" if one_sided else cut) or cell(p[column]) is None:
                    continue
                if column == "app_protocol" and p[column] == "tls" and w["protection"] == "starttls":
                    continue  # the cleartext part before the upgrade was cut: TLS alone is seen
                if column == "protection" and p[column] == "tls" and w[column] == "starttls":
                    continue
                if column == "tls_upgraded" and p["app_protocol"] == "tls":
                    continue
                assert cell(w[column]) == cell(p[column]), f"{where}: {column} {w[column]!r} != {p[column]!r}"


def _check_visibility(p: pd.Series, cut: str, where: str) -> None:
    one_sided = (p["packets_to_server"] == 0) or (p["packets_to_client"] == 0)
    if cut == "client":
        assert p["visibility"] == "client_only", where
    elif cut == "server":
        assert p["visibility"] == "server_only", where
    elif not one_sided:
        # a TCP flow whose handshake was dropped started mid-stream; UDP has no start to miss
        assert p["visibility"] == ("mid_stream" if p["transport"] == "tcp" else "both"), where


def test_the_unseen_list_is_needed() -> None:
    """Every (capture, cut) listed as unseen is still unseen: a list entry that a fix made
    recognisable must go, or it would hide a later regression."""
    stale = []
    for (name, cut, protocol), _why in UNSEEN.items():
        whole = _whole(name)
        recognised = whole[whole["app_protocol"] == protocol]
        with tempfile.TemporaryDirectory() as tmp:
            part = analyzer.analyze(str(cut_capture(CAPTURES / name, Path(tmp) / "cut.pcap", whole, CUTS[cut]))).flows
        missing = [w for _, w in recognised.iterrows()
                   if (p := _match(part, w)) is not None and cell(p["app_protocol"]) is None
                   and p["undecided_reason"] != "no_payload"]
        if not missing:
            stale.append((name, cut, protocol))
    assert not stale, f"recognised now, remove from UNSEEN: {stale}"
