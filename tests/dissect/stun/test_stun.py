"""STUN / TURN dissector (analyzer/dissect/stun.py): crafted RFC 8489 / RFC 8656 messages over UDP and
TCP, the probe, hostile input (a seeded fuzz loop), and the corpus's Google Meet TURN-over-TCP relay,
whose relayed DTLS session is checked against tshark's dissection of the same relayed datagrams (taken
from tshark's own STUN DATA attributes and replayed through text2pcap)."""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from support.flow_helpers import tcp_flow
from support.fuzz_helpers import damage
from support.udp_helpers import flow_from_payloads

import analyzer
from analyzer.dissect.base import DissectContext, Facts
from analyzer.dissect.stun import STUNDissector, is_stun, parse_message

CORPUS = Path(__file__).resolve().parents[4] / "shared" / "corpus" / "pcaps"
COOKIE = b"\x21\x12\xa4\x42"


def attr(atype: int, value: bytes) -> bytes:
    return struct.pack(">HH", atype, len(value)) + value + bytes(-len(value) % 4)


def message(mtype: int, *attrs: bytes, tid: bytes = b"t" * 12) -> bytes:
    body = b"".join(attrs)
    return struct.pack(">HH", mtype, len(body)) + COOKIE + tid + body


BINDING_REQUEST = message(0x0001, attr(0x0006, b"ab12:cd34"), attr(0x8022, b"itc test agent"))
BINDING_SUCCESS = message(0x0101, attr(0x0020, b"\x00\x01\x12\x34\x01\x02\x03\x04"))
ALLOCATE = message(0x0003, attr(0x0006, b"alice"), attr(0x0014, b"turn.example"))
RTP = bytes.fromhex("806f0001") + bytes(28)


def dissector() -> STUNDissector:
    return STUNDissector().for_run(DissectContext(frames=frozenset({"tls"})))


def test_message_type_decoding():
    m = parse_message(message(0x0113))  # an Allocate error response: method 3, class 3
    assert m is not None and (m.method, m.klass) == (3, 3)
    m = parse_message(message(0x0017))  # Data indication: method 7, class 1
    assert m is not None and (m.method, m.klass) == (7, 1)
    m = parse_message(BINDING_REQUEST)
    assert m is not None and m.username == b"ab12:cd34" and m.software == b"itc test agent"


def test_ice_binding_checks_alone_are_cleartext():
    flow = flow_from_payloads([(True, BINDING_REQUEST), (False, BINDING_SUCCESS)], server_port=19302)
    d = dissector()
    assert d.probe(flow)
    f = d.dissect(flow).flow
    assert (f["app_protocol"], f["encrypted"], f["protection"]) == ("stun", False, "none")
    assert f["stun_methods"] == "binding" and f["stun_username"] == "ab12:cd34"
    assert f["stun_software"] == "itc test agent" and "stun_relayed" not in f


def test_direct_media_without_dtls_is_undecided():
    flow = flow_from_payloads([(True, BINDING_REQUEST), (False, BINDING_SUCCESS), (True, RTP), (False, RTP)])
    f = dissector().dissect(flow).flow
    assert f["encrypted"] is None and f["undecided_reason"] == "undecided" and f["stun_media"] == "rtp"


def test_turn_over_tcp_relay_of_rtp_is_a_tunnel():
    send = message(0x0016, attr(0x0012, bytes(8)), attr(0x0013, RTP))  # Send indication
    channel = struct.pack(">HH", 0x4000, len(RTP)) + RTP
    flow = tcp_flow(ALLOCATE + send + channel, message(0x0103), 3478)
    d = dissector()
    assert d.probe(flow)
    f = d.dissect(flow).flow
    assert f["stun_methods"] == "allocate,send" and f["stun_realm"] == "turn.example"
    assert f["stun_relayed"] == "rtp" and f["encrypted"] is None and f["undecided_reason"] == "tunnel"


def test_probe_refuses_non_stun():
    d = dissector()
    bad = [b"", b"\x00\x01\x00\x00" + b"\x00" * 16,  # no magic cookie (RFC 3489, or anything)
           b"\x00\x01\x00\x05" + COOKIE + bytes(12),  # length not a multiple of 4
           b"\x00\x01\x00\x08" + COOKIE + bytes(12),  # length past the end
           b"\xc0\x01\x00\x00" + COOKIE + bytes(12),  # top bits set
           b"\x16\xfe\xfd" + bytes(20), RTP]
    for payload in bad:
        assert not is_stun(payload)
        assert not d.probe(flow_from_payloads([(True, payload)])), payload
        assert not d.probe(tcp_flow(payload, b"", 3478)), payload


def test_damaged_messages_never_raise():
    rng = random.Random("stun")
    d = dissector()
    inserts = [b"\x00\x13", b"\x00\x06", COOKIE, b"\x40\x00", b"\x16\xfe\xfd", b"\xff\xff"]
    send = message(0x0016, attr(0x0012, bytes(8)), attr(0x0013, b"\x16\xfe\xfd" + bytes(20)))
    for _ in range(2000):
        client = damage(rng, ALLOCATE + send + BINDING_REQUEST, inserts)
        server = damage(rng, BINDING_SUCCESS + message(0x0017, attr(0x0013, RTP)), inserts)
        for flow in (tcp_flow(client, server, 3478), flow_from_payloads([(True, client), (False, server)])):
            d.probe(flow)
            facts = d.dissect(flow)
            assert isinstance(facts, Facts)
            assert all(not isinstance(v, str) or len(v) <= 256 for v in facts.flow.values())


def _corpus(name: str) -> Path:
    path = CORPUS / name
    if not path.exists():
        pytest.skip(f"{path} not present (the shared corpus is not on this machine)")
    return path


def _tshark(*args: str) -> str:
    return subprocess.run(["tshark", "-n", *args], capture_output=True, text=True, timeout=120, check=True).stdout


@pytest.mark.tshark
def test_google_meet_turn_relay_carries_dtls_equal_to_tshark(tmp_path: Path):
    """The corpus's TURN-over-TCP flow (Google Meet): its Send/Data indications relay a DTLS 1.2
    session. tshark does not dissect the relayed bytes, so its STUN DATA attributes are written out
    as UDP datagrams (text2pcap) and dissected by tshark: version, cipher and use_srtp must be ours."""
    path = _corpus("ndpi/stun_dtls_rtp.pcapng")
    if shutil.which("tshark") is None or shutil.which("text2pcap") is None:
        pytest.skip("tshark / text2pcap are not installed (the oracle)")
    r = analyzer.analyze([str(path)])
    tcp = r.flows[r.flows["transport"] == "tcp"].reset_index(drop=True)
    assert len(tcp) == 1
    f = tcp.iloc[0]
    assert f["app_protocol"] == "stun" and f["stun_realm"] == "turn.l.google.com"
    methods = {int(m, 16) for m in _tshark("-r", str(path), "-Y", "tcp and stun", "-T", "fields",
                                           "-e", "stun.type.method").split()}
    names = {1: "binding", 3: "allocate", 4: "refresh", 6: "send", 7: "data", 8: "create_permission",
             9: "channel_bind"}
    assert set(str(f["stun_methods"]).split(",")) == {names[m] for m in methods}
    values = _tshark("-r", str(path), "-Y", "tcp and (stun.type.method==0x0006 or stun.type.method==0x0007)",
                     "-T", "fields", "-e", "stun.value").split()
    relayed = [bytes.fromhex(v) for v in values if 20 <= int(v[:2], 16) <= 63]
    assert relayed
    dump = tmp_path / "relayed.txt"
    dump.write_text("".join("0000 " + " ".join(f"{b:02x}" for b in d) + "\n" for d in relayed))
    subprocess.run(["text2pcap", "-q", "-u", "1000,2000", str(dump), str(tmp_path / "relayed.pcap")], check=True,
                   capture_output=True, timeout=60)
    hello = _tshark("-r", str(tmp_path / "relayed.pcap"), "-d", "udp.port==1000,dtls", "-Y", "dtls.handshake.type==2",
                    "-T", "fields", "-e", "dtls.handshake.version", "-e", "dtls.handshake.ciphersuite",
                    "-e", "dtls.handshake.extension.type").split("\t")
    assert f["tls_version"] == {"0xfefd": "DTLS 1.2", "0xfeff": "DTLS 1.0"}[hello[0]]
    row = r.tls[r.tls["uid"] == f["uid"]].iloc[0]
    assert row["protocol"] == "dtls" and int(row["cipher_code"]) == int(hello[1], 16)
    assert "14" in hello[2].strip().split(",") and (f["encrypted"], f["protection"]) == (True, "srtp")
    assert "dtls" in str(f["stun_relayed"]).split(",")
