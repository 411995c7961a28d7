"""The encryption state of every flow: app_protocol, encrypted, protection, undecided_reason,
payload_shape (README, "Flow encryption state")."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support.flow_helpers import tcp_flow
from support.pcap_helpers import tcp_session, write_packets

import analyzer
from analyzer.dissect import Facts, app_protocols, merge_handover
from analyzer.dissect.vocabulary import PROTECTIONS, UNDECIDED_REASONS
from analyzer.flows.payload import Datagram, FlowPayload
from analyzer.pipeline import payload_shape, undecided_reasons

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = ROOT / "captures"


@pytest.fixture(scope="module")
def flows() -> pd.DataFrame:
    with pytest.warns(UserWarning, match="same content"):
        return analyzer.analyze(str(CAPTURES)).flows


def test_every_flow_is_decided_or_says_why(flows: pd.DataFrame) -> None:
    undecided = flows["encrypted"].isna()
    assert (flows["undecided_reason"].isna() == ~undecided).all()
    with_payload = (flows["payload_bytes_to_server"] + flows["payload_bytes_to_client"]) > 0
    recognised = flows["app_protocol"].notna()
    # the bundled captures' recognised flows are all decided (their handshakes are complete), but
    # for the one whose packets a 96-byte snap length cut
    vague = flows[undecided & recognised]
    assert [Path(s).name for s in vague["source"]] == ["snaplen96.pcap"]
    assert vague["undecided_reason"].tolist() == ["truncated"]
    assert (flows.loc[~with_payload, "undecided_reason"] == "no_payload").all()
    assert (flows.loc[with_payload & ~recognised, "undecided_reason"] == "unknown_protocol").all()
    assert flows.loc[with_payload & ~recognised, "payload_shape"].isin(["printable", "binary"]).all()
    assert flows.loc[recognised, "payload_shape"].isna().all()


def test_values_come_from_the_vocabularies(flows: pd.DataFrame) -> None:
    assert set(flows["app_protocol"].dropna()) <= set(app_protocols())
    assert set(flows["protection"].dropna()) <= set(PROTECTIONS)
    assert set(flows["undecided_reason"].dropna()) <= set(UNDECIDED_REASONS)
    # every recognised flow names its protection
    assert flows.loc[flows["app_protocol"].notna(), "protection"].notna().all()


def test_protection_on_the_bundled_captures(flows: pd.DataFrame) -> None:
    by = {name: set(group) for name, group in flows.groupby("app_protocol")["protection"]}
    # HTTP in the clear, and HTTP CONNECT tunnels carrying TLS (captures/http_connect_tls*.pcap)
    assert by["http"] == {"none", "tls"}
    # SOCKS: tunnels carrying TLS, and a SOCKS 5 login refused (only the cleartext exchange crossed)
    assert by["socks"] == {"none", "tls"}
    assert by["ssh"] == {"ssh"}
    assert by["quic"] == {"quic"} and by["dtls"] == {"dtls"}
    # SMTP: one session in the clear (AUTH PLAIN), one upgraded with STARTTLS
    assert by["smtp"] == {"none", "starttls"}
    upgraded = flows[(flows["app_protocol"] == "smtp") & (flows["protection"] == "starttls")]
    assert upgraded["encrypted"].tolist() == [True] and upgraded["tls_version"].notna().all()
    cleartext = flows[(flows["protection"] == "none")]
    assert (cleartext["encrypted"] == False).all()  # noqa: E712 (a nullable boolean column)


def test_readme_lists_the_vocabularies() -> None:
    text = (ROOT / "README.md").read_text()
    rows = {m.group(1): set(re.findall(r"`([a-z0-9_-]+)`", m.group(2)))
            for m in re.finditer(r"^\| `(\w+)` \| (.+) \|$", text, re.M)}
    assert rows["app_protocol"] == set(app_protocols())
    assert rows["protection"] == set(PROTECTIONS)
    assert rows["undecided_reason"] == set(UNDECIDED_REASONS)


def test_payload_shape() -> None:
    assert payload_shape(tcp_flow(b"HELLO there\r\n", b"", 9)) == "printable"
    assert payload_shape(tcp_flow(b"", b"\x00\x01binary", 9)) == "binary"
    assert payload_shape(tcp_flow(b"", b"", 9)) is None
    udp = FlowPayload("u", "udp", "10.0.0.1", "10.0.0.2", 5000, 6000, 0.0,
                      datagrams=[Datagram(0.0, True, b""), Datagram(0.1, False, b"\xff\xfe")])
    assert payload_shape(udp) == "binary"
    # only the first 64 bytes count: a binary tail does not change a printable head
    assert payload_shape(tcp_flow(b"A" * 64 + b"\x00", b"", 9)) == "printable"


def test_undecided_reasons_vectorised() -> None:
    cols = {"payload_bytes_to_server": np.array([0, 10, 10, 10, 10]),
            "payload_bytes_to_client": np.array([0, 0, 5, 5, 5])}
    extra = {"encrypted": np.array([None, None, None, True, None], object),
             "app_protocol": np.array([None, None, "ssh", "tls", "smtp"], object),
             "undecided_reason": np.array([None, None, None, None, "upgrade_not_seen"], object)}
    out = undecided_reasons(cols, extra, 5, dissected=True)
    assert out.tolist() == ["no_payload", "unknown_protocol", "undecided", None, "upgrade_not_seen"]
    off = undecided_reasons(cols, {}, 5, dissected=False)
    assert off.tolist() == ["no_payload", "not_dissected", "not_dissected", "not_dissected", "not_dissected"]


def test_dissection_off_says_so(tmp_path: Path) -> None:
    path = tmp_path / "http.pcap"
    write_packets(path, tcp_session(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\n", dport=80))
    on = analyzer.analyze(str(path)).flows
    off = analyzer.analyze(str(path), dissect=False).flows
    assert on["protection"].tolist() == ["none"] and on["encrypted"].tolist() == [False]
    assert off["undecided_reason"].tolist() == ["not_dissected"] and off["protection"].isna().all()


def test_handover_merge_keeps_starttls_and_drops_the_parents_reason() -> None:
    parent = Facts(flow={"app_protocol": "smtp", "protection": "starttls", "undecided_reason": "upgrade_not_seen"})
    child = Facts(flow={"app_protocol": "tls", "encrypted": True, "protection": "tls"})
    merged = merge_handover(parent, child).flow
    assert merged["app_protocol"] == "smtp" and merged["protection"] == "starttls" and merged["encrypted"] is True
    assert "undecided_reason" not in merged
    tunnel = Facts(flow={"app_protocol": "http"})  # HTTP CONNECT: TLS inside a tunnel is "tls"
    assert merge_handover(tunnel, child).flow["protection"] == "tls"


def test_an_undeclared_app_protocol_value_is_an_anomaly(tmp_path: Path) -> None:
    class Liar:
        name = "liar"
        app_protocols = ("liar",)
        transports = frozenset({"tcp"})
        ports = frozenset({80})
        columns = ()
        frames = ()

        def probe(self, flow: FlowPayload) -> bool:
            return True

        def dissect(self, flow: FlowPayload) -> Facts:
            return Facts(flow={"app_protocol": "not-mine", "encrypted": False, "protection": "none"})

    path = tmp_path / "x.pcap"
    write_packets(path, tcp_session(b"GET / HTTP/1.1\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\n", dport=80))
    result = analyzer.analyze(str(path), dissectors=[Liar()])
    assert result.anomalies["kind"].tolist() == ["undeclared_value"]
    assert "'not-mine'" in result.anomalies["detail"].iloc[0]
