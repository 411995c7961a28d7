"""The directory, management and remote-access dissectors never raise and stay bounded on damaged
sessions: real-shaped sessions of each protocol (TCP streams and UDP datagrams) cut at random points,
with random bytes flipped, inserted and deleted (seeded), and with hypothesis-made arbitrary bytes.
Sibling of test_plaintext_fuzz.py."""

from __future__ import annotations

import random
import struct
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.fuzz_helpers import damage, examples, fuzz_settings

from analyzer.dissect.base import Datagram, DissectContext, Facts, FlowPayload, StreamPrefix
from analyzer.dissect.credentials import CREDENTIALS
from analyzer.dissect.dns import DNSDissector
from analyzer.dissect.ldap import LDAPDissector
from analyzer.dissect.ntp import NTPDissector
from analyzer.dissect.rdp import RDPDissector
from analyzer.dissect.sip import SIPDissector
from analyzer.dissect.snmp import SNMPDissector
from analyzer.dissect.syslog import SyslogDissector
from analyzer.dissect.telnet import TelnetDissector
from analyzer.dissect.vnc import VNCDissector


def _tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    return bytes([tag]) + (bytes([n]) if n < 0x80 else b"\x81" + bytes([n])) + value


_DNSQ = struct.pack(">HHHHHH", 1, 0x0100, 1, 0, 0, 0) + b"\x03www\x07example\x03com\x00\x00\x01\x00\x01"
_DNSR = _DNSQ[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" + _DNSQ[12:] + b"\xc0\x0c\x00\x01\x00\x01" + bytes(6)
_BIND = _tlv(0x30, _tlv(0x02, b"\x01") + _tlv(0x60, _tlv(0x02, b"\x03") + _tlv(0x04, b"cn=a") + _tlv(0x80, b"pw")))
_BINDR = _tlv(0x30, _tlv(0x02, b"\x01") + _tlv(0x61, _tlv(0x0A, b"\x00") + _tlv(0x04, b"") + _tlv(0x04, b"")))
_STLS = _tlv(0x30, _tlv(0x02, b"\x02") + _tlv(0x77, _tlv(0x80, b"1.3.6.1.4.1.1466.20037")))
_STLSR = _tlv(0x30, _tlv(0x02, b"\x02") + _tlv(0x78, _tlv(0x0A, b"\x00") + _tlv(0x04, b"") + _tlv(0x04, b"")))
_PDU = _tlv(0xA0, _tlv(0x02, b"\x01") + _tlv(0x02, b"\x00") + _tlv(0x02, b"\x00") + _tlv(0x30, b""))
_SNMP = _tlv(0x30, _tlv(0x02, b"\x01") + _tlv(0x04, b"public") + _PDU)
_V3 = _tlv(0x30, _tlv(0x02, b"\x03") + _tlv(0x30, _tlv(0x02, b"\x01") + _tlv(0x02, b"\x05\xdc") + _tlv(0x04, b"\x07")
                                                 + _tlv(0x02, b"\x03"))
           + _tlv(0x04, _tlv(0x30, _tlv(0x04, b"e") + _tlv(0x02, b"\x01") + _tlv(0x02, b"\x01") + _tlv(0x04, b"u")
                             + _tlv(0x04, bytes(12)) + _tlv(0x04, bytes(8)))) + _tlv(0x04, bytes(30)))
_RDPREQ = b"\x03\x00\x00\x2b\x26\xe0\x00\x00\x00\x00\x00Cookie: mstshash=alice\r\n\x01\x00\x08\x00\x03\x00\x00\x00"
_RDPCC = b"\x03\x00\x00\x13\x0e\xd0\x00\x00\x12\x34\x00\x02\x00\x08\x00\x02\x00\x00\x00"
_V38 = b"RFB 003.008\n"

STREAMS = {
    "dns": (struct.pack(">H", len(_DNSQ)) + _DNSQ, struct.pack(">H", len(_DNSR)) + _DNSR),
    "ldap": (_BIND + _STLS + b"\x16\x03\x01\x00\x05hello", _BINDR + _STLSR + b"\x16\x03\x03"),
    "telnet": (b"\xff\xfb\x18\xff\xfa\x27\x00\x00USER\x01bob\xff\xf0alice\r\nsecret\r\nls\r\n",
               b"\xff\xfd\x18\xff\xfd\x27login: alice\r\nPassword: \r\nLast login: x\r\n$ "),
    "rdp": (_RDPREQ + b"\x16\x03\x01\x00\x05hello", _RDPCC + b"\x16\x03\x03"),
    "vnc": (_V38 + b"\x13\x00\x02" + struct.pack(">III", 256, 5, 6) + b"alicesecret",
            _V38 + b"\x02\x13\x02\x00\x02\x00\x02" + struct.pack(">II", 256, 258) + b"\x01"),
    "sip": (b"REGISTER sip:e.com SIP/2.0\r\nCall-ID: 1@h\r\nCSeq: 1 REGISTER\r\nAuthorization: Digest "
            b'username="alice", response="x"\r\nContent-Length: 2\r\n\r\nabOPTIONS sip:e.com SIP/2.0\r\n\r\n',
            b"SIP/2.0 200 OK\r\nCall-ID: 1@h\r\nCSeq: 1 REGISTER\r\nServer: x\r\nContent-Length: 0\r\n\r\n"),
}
DATAGRAMS = {
    "dns": [(True, _DNSQ), (False, _DNSR)],
    "snmp": [(True, _SNMP), (False, _SNMP.replace(b"\xa0", b"\xa2")), (True, _V3)],
    "ntp": [(True, b"\x23" + bytes(47)), (False, b"\x24\x02\x06\xe9" + bytes(44) + b"\x01\x04\x00\x08" + bytes(4))],
    "syslog": [(True, b"<34>Oct 11 22:14:15 host su: x"), (True, b"<165>1 2003-10-11T22:14:15Z h app - - - m")],
    "sip": [(True, b"\r\n\r\n"), (True, STREAMS["sip"][0]), (False, STREAMS["sip"][1])],
}
DISSECTORS = {"dns": DNSDissector, "ldap": LDAPDissector, "snmp": SNMPDissector, "telnet": TelnetDissector,
              "ntp": NTPDissector, "syslog": SyslogDissector, "rdp": RDPDissector, "vnc": VNCDissector,
              "sip": SIPDissector}
CONTEXT = DissectContext(frames=frozenset({"credentials"}))


_INSERTS = [b"\r\n", b"\xff", b"\xff\xfa", b"\x30\x84", b"\x84\xff\xff\xff\xff", b"\xc0\x0c", b"login:", b"\x00"]


def _damage(rng: random.Random, data: bytes) -> bytes:
    return damage(rng, data, _INSERTS)


def _tcp(client: bytes, server: bytes) -> FlowPayload:
    return FlowPayload(uid="C", transport="tcp", client_ip="a", server_ip="b", client_port=1, server_port=1,
                       ts_start=0.0, to_server=StreamPrefix(client), to_client=StreamPrefix(server))


def _udp(datagrams: list[tuple[bool, bytes]]) -> FlowPayload:
    return FlowPayload(uid="U", transport="udp", client_ip="a", server_ip="b", client_port=1, server_port=1,
                       ts_start=0.0, datagrams=[Datagram(float(i), s, p) for i, (s, p) in enumerate(datagrams)])


def _check(facts: Facts, name: str) -> None:
    assert isinstance(facts, Facts)
    assert facts.flow.get("app_protocol") in DISSECTORS[name].app_protocols
    for row in facts.rows.get("credentials", []):
        assert set(row) | {"uid"} == set(CREDENTIALS.schema)


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_damaged_streams_never_raise(name: str):
    rng = random.Random(f"net-{name}")
    d = DISSECTORS[name]().for_run(CONTEXT)
    client, server = STREAMS[name]
    assert d.probe(_tcp(client, server))
    _check(d.dissect(_tcp(client, server)), name)
    worst = 0.0
    for _ in range(1000):
        fp = _tcp(_damage(rng, client), _damage(rng, server))
        d.probe(fp)
        started = time.perf_counter()
        facts = d.dissect(fp)
        worst = max(worst, time.perf_counter() - started)
        _check(facts, name)
    assert worst < 0.05


@pytest.mark.parametrize("name", sorted(DATAGRAMS))
def test_damaged_datagrams_never_raise(name: str):
    rng = random.Random(f"net-udp-{name}")
    d = DISSECTORS[name]().for_run(CONTEXT)
    assert d.probe(_udp(DATAGRAMS[name]))
    for _ in range(1000):
        fp = _udp([(s, _damage(rng, p)) for s, p in DATAGRAMS[name]])
        d.probe(fp)
        _check(d.dissect(fp), name)


@fuzz_settings(examples(150))
@given(client=st.binary(max_size=300), server=st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(client: bytes, server: bytes):
    for name, cls in DISSECTORS.items():
        d = cls().for_run(CONTEXT)
        if "tcp" in d.transports:
            fp = _tcp(client, server)
            d.probe(fp)
            _check(d.dissect(fp), name)
        if "udp" in d.transports:
            fp = _udp([(True, client), (False, server)])
            d.probe(fp)
            _check(d.dissect(fp), name)
