"""FTP data channels linked to their control flow (analyzer/dissect/ftp_link.py and its use in the
collector): passive and active mode on real captures, TLS data channels, the time window, and the
documented limit of streamed output (the link then lives in `ftp_data.data_uid`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import analyzer
from analyzer import pipeline, schema
from analyzer.dissect import flow_schema
from analyzer.dissect.ftp_link import FtpDataLink

ROOT = Path(__file__).resolve().parents[3]
PCAPS = ROOT.parent / "shared" / "corpus" / "pcaps"
needs_corpus = pytest.mark.skipif(not PCAPS.is_dir(), reason="../shared/corpus is absent (real FTP captures)")
S = 1_000_000_000


def test_passive_data_flow_of_the_bundled_capture():
    r = analyzer.analyze([str(ROOT / "captures" / "ftp_login.pcap")])
    control = r.flows[r.flows.app_protocol == "ftp"].iloc[0]
    data = r.flows[r.flows.app_protocol == "ftp-data"].iloc[0]
    assert (data.server_port, data.ftp_control_uid, data.encrypted, data.protection) == (30007, control.uid, False,
                                                                                         "none")
    assert r.ftp_data.data_uid.tolist() == [data.uid]
    flows_only = analyzer.analyze([str(ROOT / "captures" / "ftp_login.pcap")], frames=("flows",)).flows
    assert flows_only.ftp_control_uid.dropna().tolist() == [control.uid]  # also without the ftp_data frame


def test_encrypted_control_channel_announces_nothing():
    r = analyzer.analyze([str(ROOT / "captures" / "ftps_explicit.pcap")])
    assert r.flows.ftp_control_uid.isna().all() and r.ftp_data.empty
    assert sorted(r.flows.app_protocol) == ["ftp", "tls"]  # the data flow stays a TLS flow, not guessed


@needs_corpus
def test_active_and_passive_channels_of_a_real_session():
    r = analyzer.analyze([str(PCAPS / "zeek" / "ftp" / "ipv4.pcap")])
    control = r.flows[r.flows.app_protocol == "ftp"].uid.tolist()
    data = r.flows[r.flows.app_protocol == "ftp-data"]
    assert len(data) == 4 and set(data.ftp_control_uid) == set(control)
    assert sorted(r.ftp_data.command) == ["PASV", "PASV", "PORT", "PORT"]
    assert sorted(r.ftp_data.data_uid) == sorted(data.uid)
    active = r.ftp_data[r.ftp_data.command == "PORT"]
    by_uid = r.flows.set_index("uid")
    for row in active.itertuples():  # the FTP server connects to the client's announced address
        assert (by_uid.loc[row.data_uid, "server_ip"], by_uid.loc[row.data_uid, "server_port"]) == (row.host, row.port)


@needs_corpus
def test_a_port_announced_twice_names_two_flows():
    r = analyzer.analyze([str(PCAPS / "suricata-verify" / "ftp" / "ftp-download-passive" / "input.pcap")])
    again = r.ftp_data[r.ftp_data.port == 21008]
    assert len(again) == 2 and again.data_uid.nunique() == 2


def make_chunk(rows: list[dict[str, object]]) -> tuple[dict[str, pa.Array], dict[str, str]]:
    """A flows chunk as the collector holds it (Arrow columns of the flows schema)."""
    flows_schema = flow_schema()
    cols: dict[str, object] = {name: [row.get(name) for row in rows] for name in flows_schema}
    cols["ts_start"] = np.array([row["ts_start"] for row in rows], "datetime64[ns]")
    return schema.arrow_columns(cols, flows_schema, len(rows)), flows_schema


def flow(uid: str, ip: str, port: int, ts: int, **more: object) -> dict[str, object]:
    return {"uid": uid, "transport": "tcp", "server_ip": ip, "server_port": port, "ts_start": ts,
            "payload_bytes_to_server": 0, "payload_bytes_to_client": 10, **more}


def test_apply_sets_the_link_within_the_control_lifetime():
    link = FtpDataLink()
    link.ended({"transport": np.array(["tcp", "udp"], object), "uid": ["D0", "U"],
                "server_ip": np.array(["10.0.0.2", "10.0.0.2"], object), "server_port": np.array([5000, 5001]),
                "ts_start": np.array([2 * S, 2 * S])})
    rows = link.announce("CTRL", 1 * S, 10 * S, [
        {"command": "PASV", "host": "10.0.0.2", "port": 5000, "protected": False},
        {"command": "PASV", "host": "10.0.0.2", "port": 5001, "protected": False},
        {"command": "PORT", "host": "10.0.0.1", "port": 6000, "protected": True},
        {"command": "PORT", "host": "10.0.0.1", "port": 6001, "protected": True},
        {"command": "PASV", "host": "10.0.0.2", "port": 5002, "protected": False}])
    assert [r.get("data_uid") for r in rows] == ["D0", None, None, None, None]  # UDP is never a data flow
    chunk, flows_schema = make_chunk([
        flow("D1", "10.0.0.1", 6000, 3 * S, app_protocol="tls", tls_version="TLS 1.3", encrypted=True,
             protection="tls"),
        flow("D2", "10.0.0.1", 6001, 4 * S, payload_bytes_to_client=0, undecided_reason="no_payload"),
        flow("LATE", "10.0.0.2", 5002, 60 * S, undecided_reason="unknown_protocol"),  # after the control flow
        flow("OTHER", "10.0.0.9", 5000, 3 * S, app_protocol="http", encrypted=False, protection="none")])
    link.apply(chunk, flows_schema, schema.arrow_column)
    got = {name: chunk[name].to_pylist() for name in ("ftp_control_uid", "app_protocol", "protection", "encrypted",
                                                      "undecided_reason")}
    assert got == {"ftp_control_uid": ["CTRL", "CTRL", None, None],
                   "app_protocol": ["ftp-data", "ftp-data", None, "http"],
                   "protection": ["tls", "tls", None, "none"],  # D2: empty, PROT P was in force
                   "encrypted": [True, None, None, False],
                   "undecided_reason": [None, "no_payload", "unknown_protocol", None]}


def test_streamed_flows_are_linked_when_both_flows_end_in_one_export(monkeypatch: pytest.MonkeyPatch):
    """Streamed output: a chunk is linked before it is written. (A data flow exported in an earlier
    chunk than its control flow's announcement keeps its link in ftp_data.data_uid only: see
    analyzer/dissect/ftp_link.py; here both flows end together at the end of the capture.)"""
    monkeypatch.setattr(pipeline, "FLOW_ROWS_PER_FRAME", 1)  # every export is its own chunk

    class Keep:
        def __init__(self) -> None:
            self.frames: list[object] = []

        def write(self, chunk: object) -> None:
            self.frames.append(chunk)

        def close(self) -> None:
            pass

    sink = Keep()
    r = analyzer.analyze([str(ROOT / "captures" / "ftp_login.pcap")], sinks={"flows": sink})
    import pandas as pd

    flows = pd.concat(sink.frames)  # type: ignore[arg-type]
    [data_uid] = r.ftp_data.data_uid.tolist()
    data = flows[flows.uid == data_uid].iloc[0]
    control = flows[flows.app_protocol == "ftp"].iloc[0]
    assert (data.ftp_control_uid, data.app_protocol, data.encrypted) == (control.uid, "ftp-data", False)
