"""OpenVPN over UDP and TCP (the OpenVPN wire protocol: openvpn/src/openvpn/ssl_pkt.h, ssl.c;
Wireshark's packet-openvpn.c), facts only.

Every packet starts with one byte: opcode (high 5 bits) and key id (low 3 bits). Over TCP each
packet is preceded by its 2-byte big-endian length. Opcodes: 1/2 hard reset client/server V1,
3 soft reset, 4 P_CONTROL_V1 (the TLS handshake travels in these), 5 P_ACK_V1, 6 P_DATA_V1,
7/8 P_CONTROL_HARD_RESET_CLIENT_V2 / SERVER_V2, 9 P_DATA_V2 (with a 3-byte peer id), 10
P_CONTROL_HARD_RESET_CLIENT_V3 (tls-crypt-v2), 11 P_CONTROL_WKC_V1. A control packet carries the
sender's 8-byte session id after the opcode, then (with --tls-auth) an HMAC, a packet id and a time,
then an ACK array (count, packet ids, the peer's session id), then its own packet id.

A flow is OpenVPN when the client's first packet is a hard reset (opcode 1, 7 or 10, key id 0, at
least 14 bytes) and the server's first packet, when there is one, is a hard reset answer (2 or 8,
key id 0); an unanswered hard reset is claimed only on the OpenVPN port 1194.

Control channel wrapping (`openvpn_control_wrap`), from the server's hard reset answer, which
acknowledges the client's packet and so echoes the client's session id: right after the ACK
count and packet id (offset 14): "none"; after an HMAC of h bytes and packet id + time (offset 22 +
h): "tls-auth" (h = 20 for SHA-1, 32 for SHA-256, ...); not visible at all: "tls-crypt" (the rest of
the packet is encrypted; "tls-crypt-v2" when the client reset is V3).

`encrypted` True once data channel packets (P_DATA_V1/V2) are seen: the tunnel's packets travel
encrypted with the negotiated data cipher (protection "openvpn"); only the control channel
(handshake) leaves it undecided (`handshake_incomplete`). A data channel with `--cipher none`
(possible in OpenVPN 2.x, removed in 2.6's default) cannot be told apart without the keys.
"""

from __future__ import annotations

from analyzer.dissect import register
from analyzer.dissect.base import Column, Facts, FlowPayload

__all__ = ["OPCODES", "OpenVPNDissector", "packets"]

OPCODES = {1: "P_CONTROL_HARD_RESET_CLIENT_V1", 2: "P_CONTROL_HARD_RESET_SERVER_V1", 3: "P_CONTROL_SOFT_RESET_V1",
           4: "P_CONTROL_V1", 5: "P_ACK_V1", 6: "P_DATA_V1", 7: "P_CONTROL_HARD_RESET_CLIENT_V2",
           8: "P_CONTROL_HARD_RESET_SERVER_V2", 9: "P_DATA_V2", 10: "P_CONTROL_HARD_RESET_CLIENT_V3",
           11: "P_CONTROL_WKC_V1"}
CLIENT_RESETS = {1: "V1", 7: "V2", 10: "V3"}
SERVER_RESETS = (2, 8)
DATA = (6, 9)
MIN_CONTROL = 14  # opcode, session id, ACK count, packet id
MAX_PACKETS = 256  # packets read per direction over TCP
MAX_TCP_PACKET = 16384  # --tun-mtu plus overhead stays well below; a longer "length" is not OpenVPN
PORT = 1194
_HMAC_SIZES = (16, 20, 32, 48, 64)  # MD5, SHA-1, SHA-256, SHA-384, SHA-512

COLUMNS: tuple[Column, ...] = (
    Column("openvpn_reset_version", "string", "version of the client's hard reset: V1, V2, or V3 (tls-crypt-v2)"),
    Column("openvpn_control_wrap", "string",
           "control channel protection seen in the server's reset: none, tls-auth, tls-crypt, tls-crypt-v2"),
    Column("openvpn_hmac_bytes", "Int32", "tls-auth HMAC length in bytes (20 SHA-1, 32 SHA-256, ...)"),
    Column("openvpn_client_session_id", "string", "the client's control channel session id (hex)"),
    Column("openvpn_server_session_id", "string", "the server's control channel session id (hex)"),
    Column("openvpn_control_packets", "Int32",
           "control channel packets (resets, P_CONTROL, P_ACK) among the packets kept for dissection"),
    Column("openvpn_data_packets", "Int32",
           "data channel packets (P_DATA_V1/V2) among the packets kept for dissection (UDP: the first 32 datagrams)"),
)


def packets(flow: FlowPayload, to_server: bool) -> list[bytes]:
    """The OpenVPN packets of one direction: UDP datagrams, or TCP's length-prefixed packets."""
    if flow.transport == "udp":
        return [dg.payload for dg in flow.datagrams if dg.to_server == to_server and dg.payload]
    data = (flow.to_server if to_server else flow.to_client).data
    out: list[bytes] = []
    pos = 0
    for _ in range(MAX_PACKETS):
        if pos + 2 > len(data):
            break
        length = int.from_bytes(data[pos:pos + 2], "big")
        if length == 0 or length > MAX_TCP_PACKET:
            break
        pkt = data[pos + 2:pos + 2 + length]
        if pkt:  # a packet cut by the end of the prefix is kept as far as it goes
            out.append(pkt)
        pos += 2 + length
    return out


def _first(flow: FlowPayload, to_server: bool) -> bytes:
    if flow.transport == "udp":
        return next((dg.payload for dg in flow.datagrams if dg.to_server == to_server and dg.payload), b"")
    data = (flow.to_server if to_server else flow.to_client).data
    if len(data) < 3:
        return b""
    length = int.from_bytes(data[:2], "big")
    return data[2:2 + length] if MIN_CONTROL <= length <= MAX_TCP_PACKET else b""


def _wrap(server_reset: bytes, client_sid: bytes, reset_version: str | None) -> tuple[str, int | None]:
    """The control channel wrapping, from where the server's reset echoes the client's session id."""
    if server_reset[14:22] == client_sid and server_reset[9:10] == b"\x01":
        return "none", None
    for h in _HMAC_SIZES:
        if server_reset[22 + h:30 + h] == client_sid and server_reset[17 + h:18 + h] == b"\x01":
            return "tls-auth", h
    return ("tls-crypt-v2" if reset_version == "V3" else "tls-crypt"), None


class OpenVPNDissector:
    """OpenVPN on UDP or TCP, found by its hard reset exchange on any port."""

    name = "openvpn"
    app_protocols = ("openvpn",)
    transports = frozenset({"udp", "tcp"})
    ports = frozenset({PORT})
    columns = COLUMNS
    frames = ()

    def probe(self, flow: FlowPayload) -> bool:
        client = _first(flow, True)
        if len(client) < MIN_CONTROL or client[0] & 7 or client[0] >> 3 not in CLIENT_RESETS:
            return False
        server = _first(flow, False)
        if not server:
            return flow.server_port == PORT
        return len(server) >= MIN_CONTROL and not server[0] & 7 and server[0] >> 3 in SERVER_RESETS

    def dissect(self, flow: FlowPayload) -> Facts:
        facts = Facts()
        out: dict[str, object] = {"app_protocol": "openvpn", "protection": "openvpn"}
        up, down = packets(flow, True), packets(flow, False)
        control = data = 0
        unknown = 0
        for pkt in (*up, *down):
            opcode = pkt[0] >> 3
            if opcode in DATA:
                data += 1
            elif opcode in OPCODES:
                control += 1
            else:
                unknown += 1
        version = None
        client_sid = b""
        if up and up[0][0] >> 3 in CLIENT_RESETS and len(up[0]) >= 9:
            version = CLIENT_RESETS[up[0][0] >> 3]
            client_sid = up[0][1:9]
            out["openvpn_reset_version"] = version
            out["openvpn_client_session_id"] = client_sid.hex()
        if down and down[0][0] >> 3 in SERVER_RESETS and len(down[0]) >= MIN_CONTROL:
            out["openvpn_server_session_id"] = down[0][1:9].hex()
            if client_sid:
                wrap, hmac_bytes = _wrap(down[0], client_sid, version)
                out["openvpn_control_wrap"] = wrap
                if hmac_bytes is not None:
                    out["openvpn_hmac_bytes"] = hmac_bytes
        if unknown:
            facts.anomaly("openvpn_unknown_opcode", f"{unknown} packet(s) with an opcode OpenVPN does not define")
        out.update(openvpn_control_packets=control, openvpn_data_packets=data)
        if data:
            out["encrypted"] = True
        else:
            out["undecided_reason"] = "handshake_incomplete"
        facts.flow.update(out)
        return facts


DISSECTOR = register(OpenVPNDissector())
