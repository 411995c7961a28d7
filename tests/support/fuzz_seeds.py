"""Crafted seed sessions for the registry-wide fuzz target (tests/dissect/test_registry_fuzz.py),
for the dissectors no bundled capture (captures/) exercises yet: real-shaped sessions of each,
taken from the dissectors' unit and fuzz tests' builders
(STUN: the stun tests'). A protocol with a bundled capture needs
nothing here; once RDP, VNC, SIP, IPsec, MongoDB, AMQP or NNTP gets one, its entry can go."""

from __future__ import annotations

import base64
import struct

from analyzer.dissect.base import Datagram, FlowPayload, StreamPrefix


def tcp(client: bytes, server: bytes, port: int) -> FlowPayload:
    return FlowPayload(uid="Cseed", transport="tcp", client_ip="10.0.0.1", server_ip="10.0.0.2", client_port=40000,
                       server_port=port, ts_start=0.0, to_server=StreamPrefix(client), to_client=StreamPrefix(server))


def udp(datagrams: list[tuple[bool, bytes]], port: int, client_port: int = 40000) -> FlowPayload:
    return FlowPayload(uid="Useed", transport="udp", client_ip="10.0.0.1", server_ip="10.0.0.2",
                       client_port=client_port, server_port=port, ts_start=0.0,
                       datagrams=[Datagram(float(i), s, p) for i, (s, p) in enumerate(datagrams)])


def mongo_session() -> tuple[bytes, bytes]:
    payload = b"\0alice\0secret"
    doc = (b"\x10saslStart\0\x01\0\0\0" + b"\x02mechanism\0\x06\0\0\0PLAIN\0"
           + b"\x05payload\0" + struct.pack("<i", len(payload)) + b"\x00" + payload)
    doc = struct.pack("<i", len(doc) + 5) + doc + b"\0"
    msg = struct.pack("<I", 0) + b"\x00" + doc
    reply = b"\x01ok\0" + struct.pack("<d", 1.0) + b"\x08done\0\x01"
    reply = struct.pack("<i", len(reply) + 5) + reply + b"\0"
    rmsg = struct.pack("<I", 0) + b"\x00" + reply
    return (struct.pack("<iiii", 16 + len(msg), 1, 0, 2013) + msg,
            struct.pack("<iiii", 16 + len(rmsg), 2, 1, 2013) + rmsg)


def amqp_session() -> tuple[bytes, bytes]:
    def method(cls: int, meth: int, args: bytes) -> bytes:
        payload = struct.pack(">HH", cls, meth) + args
        return struct.pack(">BHI", 1, 0, len(payload)) + payload + b"\xce"
    props = b"\x07productS\x00\x00\x00\x08RabbitMQ"
    start = method(10, 10, b"\x00\x09" + struct.pack(">I", len(props)) + props + b"\x00\x00\x00\x05PLAIN"
                   + b"\x00\x00\x00\x05en_US")
    response = b"\0alice\0secret"
    ok = method(10, 11, b"\x00\x00\x00\x00\x05PLAIN" + struct.pack(">I", len(response)) + response + b"\x05en_US")
    return b"AMQP\x00\x00\x09\x01" + ok + method(10, 40, b"\x01/\0\0"), start + method(10, 30, b"\0" * 8)


def _ike(exchange: int, *, next_payload: int = 33, flags: int = 0x08, spi_r: bytes = bytes(8)) -> bytes:
    body = b"\0" * 40
    return struct.pack(">8s8sBBBBII", bytes.fromhex("0102030405060708"), spi_r, next_payload, 0x20, exchange, flags,
                       0, 28 + len(body)) + body


_SPI_R = bytes.fromhex("a1a2a3a4a5a6a7a8")
_PLAIN = base64.b64encode(b"\0alice\0secret")
_RDPREQ = b"\x03\x00\x00\x2b\x26\xe0\x00\x00\x00\x00\x00Cookie: mstshash=alice\r\n\x01\x00\x08\x00\x03\x00\x00\x00"
_RDPCC = b"\x03\x00\x00\x13\x0e\xd0\x00\x00\x12\x34\x00\x02\x00\x08\x00\x02\x00\x00\x00"
_V38 = b"RFB 003.008\n"
_SIP_REQ = (b"REGISTER sip:e.com SIP/2.0\r\nCall-ID: 1@h\r\nCSeq: 1 REGISTER\r\nAuthorization: Digest "
            b'username="alice", response="x"\r\nContent-Length: 2\r\n\r\nabOPTIONS sip:e.com SIP/2.0\r\n\r\n')
_SIP_RESP = b"SIP/2.0 200 OK\r\nCall-ID: 1@h\r\nCSeq: 1 REGISTER\r\nServer: x\r\nContent-Length: 0\r\n\r\n"


def _stun(mtype: int, *attrs: tuple[int, bytes], tid: bytes = b"t" * 12) -> bytes:
    """A STUN message (RFC 8489 §5) with TLV attributes padded to 4 bytes."""
    body = b"".join(struct.pack(">HH", a, len(v)) + v + bytes(-len(v) % 4) for a, v in attrs)
    return struct.pack(">HH", mtype, len(body)) + b"\x21\x12\xa4\x42" + tid + body


# ICE binding check and its answer, then a DTLS ClientHello-shaped record and RTP on the same 5-tuple
# (RFC 7983); a TURN Allocate over TCP answered by a relayed address.
_STUN_REQ = _stun(0x0001, (0x0006, b"ab12:cd34"), (0x8022, b"itc seed agent"))
_STUN_OK = _stun(0x0101, (0x0020, b"\x00\x01\x12\x34\x01\x02\x03\x04"))
_TURN_ALLOC = _stun(0x0003, (0x0019, b"\x11\x00\x00\x00"), (0x0006, b"alice"), (0x0014, b"turn.example"))
_TURN_OK = _stun(0x0103, (0x0016, b"\x00\x01\x3a\x2a\x0a\x0d\x00\x3e"), (0x000D, b"\x00\x00\x00\x78"))


def crafted_seeds() -> dict[str, list[FlowPayload]]:
    """Dissector name -> seed flows."""
    return {
        "rdp": [tcp(_RDPREQ + b"\x16\x03\x01\x00\x05hello", _RDPCC + b"\x16\x03\x03", 3389)],
        "vnc": [tcp(_V38 + b"\x13\x00\x02" + struct.pack(">III", 256, 5, 6) + b"alicesecret",
                    _V38 + b"\x02\x13\x02\x00\x02\x00\x02" + struct.pack(">II", 256, 258) + b"\x01", 5900)],
        "sip": [tcp(_SIP_REQ, _SIP_RESP, 5060),
                udp([(True, b"\r\n\r\n"), (True, _SIP_REQ), (False, _SIP_RESP)], 5060)],
        "ipsec": [udp([(True, _ike(34)), (False, _ike(34, spi_r=_SPI_R, flags=0x20)),
                       (True, _ike(35, spi_r=_SPI_R, next_payload=46))], 500, client_port=500),
                  udp([(True, b"\0\0\0\0" + _ike(35, spi_r=_SPI_R, next_payload=46)),
                       (True, struct.pack(">II", 0xC0000001, 1) + b"\x5a" * 48),
                       (False, struct.pack(">II", 0x0C000002, 1) + b"\x5a" * 48)], 4500)],
        "stun": [udp([(True, _STUN_REQ), (False, _STUN_OK),
                      (True, b"\x16\xfe\xff" + bytes(8) + b"\x00\x04abcd"),
                      (False, bytes.fromhex("806f0001") + bytes(28))], 3478),
                 tcp(_TURN_ALLOC, _TURN_OK, 3478)],
        "mongodb": [tcp(*mongo_session(), 27017)],
        "amqp": [tcp(*amqp_session(), 5672)],
        "nntp": [tcp(b"CAPABILITIES\r\nAUTHINFO USER alice\r\nAUTHINFO PASS secret\r\nAUTHINFO SASL PLAIN " + _PLAIN
                     + b"\r\nLIST\r\nSTARTTLS\r\n\x16\x03\x01",
                     b"200 news ready\r\n101 caps\r\nSTARTTLS\r\n.\r\n381 more\r\n281 ok\r\n281 ok\r\n215 list\r\n"
                     b"g 1 1 y\r\n.\r\n382 go\r\n", 119)],
    }
