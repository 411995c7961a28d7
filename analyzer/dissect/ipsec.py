"""IPsec: IKE (RFC 2408/2409 IKEv1, RFC 7296 IKEv2) and ESP (RFC 4303), in UDP (RFC 3948) and as
IP protocol 50, facts only.

- UDP 500: IKE messages. The 28-byte ISAKMP/IKE header: initiator SPI (8), responder SPI (8), next
  payload, version (major.minor nibbles: 0x10 IKEv1, 0x20 IKEv2), exchange type, flags, message
  ID, length (the whole message: one message per datagram).
- UDP 4500 (NAT traversal, RFC 3948 section 2): a datagram starting with four zero bytes (the
  non-ESP marker) carries an IKE message after them; a single 0xFF byte is a NAT-keepalive; any
  other datagram is ESP, whose first four bytes are the SPI (never zero) and the next four the
  sequence number.
- IP protocol 50 (raw ESP): the flow table makes one flow per address pair (transport "esp"); the
  IP header already says ESP, so every such flow is ESP (no payload bytes are kept for it).

A UDP flow is IKE when its first datagram has a valid IKE header (version 1.0 or 2.0, a known
exchange type, the length field equal to the message, a non-zero initiator SPI); ESP-in-UDP alone
(no IKE in the flow, e.g. after a timeout split) is recognised only with port 4500 on one side and
a constant non-zero SPI per direction in the first datagrams (ESP has no other signature).

Facts: `app_protocol` "esp" when ESP packets are in the flow (the protected traffic itself), else
"ike"; `protection` "ipsec"; `encrypted` True when ESP is seen or an IKE message is encrypted
(IKEv1 flags bit 0x01, IKEv2 SK/SKF payload 46/53), undecided (`handshake_incomplete`) when only
the cleartext opening exchange (IKE_SA_INIT, Main Mode's first messages) is in the capture. ESP
with the NULL cipher (RFC 2410) cannot be told from encrypted ESP without the keys: the flow says
True, as Zeek and nDPI do. AH (IP protocol 51: integrity only) is not claimed.

Anchors: Zeek's IKE handling (the spicy IPSec analyzer: ike.log version, exchange type, SPIs;
esp.log SPI and sequence), Wireshark's packet-isakmp.c / packet-esp.c (udpencap) header layout.
"""

from __future__ import annotations

import struct

from analyzer.dissect import register
from analyzer.dissect.base import Column, Facts, FlowPayload

__all__ = ["EXCHANGES", "IPsecDissector", "ike_header"]

IKE_HEADER = 28
NAT_T_PORT = 4500
MAX_SPIS = 8
PROBE_DATAGRAMS = 4
EXCHANGES_V1 = {0: "none", 1: "base", 2: "main_mode", 3: "auth_only", 4: "aggressive", 5: "informational",
                32: "quick_mode", 33: "new_group"}
EXCHANGES_V2 = {34: "IKE_SA_INIT", 35: "IKE_AUTH", 36: "CREATE_CHILD_SA", 37: "INFORMATIONAL",
                38: "IKE_SESSION_RESUME", 43: "IKE_INTERMEDIATE", 44: "IKE_FOLLOWUP_KE"}
EXCHANGES = {0x10: EXCHANGES_V1, 0x20: EXCHANGES_V2}
_SK_PAYLOADS = (46, 53)  # IKEv2 Encrypted and Encrypted Fragment payloads
_HEADER = struct.Struct(">8s8sBBBBII")
_U32 = struct.Struct(">I")

COLUMNS: tuple[Column, ...] = (
    Column("ike_version", "string", "IKE version of the first IKE message: 1.0 or 2.0"),
    Column("ike_exchanges", "string", "IKE exchange types seen, in order of first appearance, comma-separated"),
    Column("ike_initiator_spi", "string", "IKE SA initiator SPI (cookie), hex"),
    Column("ike_responder_spi", "string", "IKE SA responder SPI (cookie), hex; null until the responder answered"),
    Column("ike_encrypted_messages", "Int32", "IKE messages whose payloads are encrypted (after the key exchange)"),
    Column("esp_packets", "Int32",
           "ESP packets in this UDP flow (NAT traversal, RFC 3948) among the datagrams kept (the first 32)"),
    Column("esp_spis", "string", "ESP SPIs seen (hex, at most 8, comma-separated)"),
    Column("ipsec_nat_traversal", "boolean", "IKE or ESP encapsulated for NAT traversal (UDP 4500 framing)"),
)


def ike_header(payload: bytes) -> tuple[bytes, bytes, int, int, int, int] | None:
    """(initiator SPI, responder SPI, next payload, version, exchange type, flags) of a valid IKE
    message, else None."""
    if len(payload) < IKE_HEADER:
        return None
    spi_i, spi_r, nxt, version, exchange, flags, _msgid, length = _HEADER.unpack_from(payload)
    names = EXCHANGES.get(version)
    if names is None or exchange not in names or length != len(payload) or spi_i == bytes(8):
        return None
    return spi_i, spi_r, nxt, version, exchange, flags


def _classify(payload: bytes, nat_t: bool) -> tuple[str, bytes]:
    """("ike" | "esp" | "keepalive" | "other", the IKE message or ESP packet)."""
    if nat_t:
        if payload == b"\xff":
            return "keepalive", payload
        if payload[:4] == b"\x00\x00\x00\x00":
            return ("ike", payload[4:]) if ike_header(payload[4:]) is not None else ("other", payload)
        if len(payload) >= 8:
            return "esp", payload
        return "other", payload
    return ("ike", payload) if ike_header(payload) is not None else ("other", payload)


def _nat_t(flow: FlowPayload) -> bool:
    """RFC 3948 framing: port 4500 on one side (and not IKE's 500 on the other)."""
    return NAT_T_PORT in (flow.server_port, flow.client_port) and 500 not in (flow.server_port, flow.client_port)


class IPsecDissector:
    """IKE and ESP on UDP 500/4500 (any port for IKE by content), and raw ESP flows."""

    name = "ipsec"
    app_protocols = ("ike", "esp")
    transports = frozenset({"udp", "esp"})
    ports = frozenset({500, NAT_T_PORT})
    columns = COLUMNS
    frames = ()

    def probe(self, flow: FlowPayload) -> bool:
        if flow.transport == "esp":
            return True
        first = next((dg.payload for dg in flow.datagrams if dg.payload), b"")
        if ike_header(first) is not None:
            return True
        if not _nat_t(flow):
            return False
        if first[:4] == b"\x00\x00\x00\x00" and ike_header(first[4:]) is not None:
            return True
        spis: dict[bool, bytes] = {}
        for dg in flow.datagrams[:PROBE_DATAGRAMS]:
            kind, _ = _classify(dg.payload, True)
            if kind == "keepalive":
                continue
            if kind != "esp" or dg.payload[:4] == b"\x00\x00\x00\x00" or len(dg.payload) < 16:
                return False
            if spis.setdefault(dg.to_server, dg.payload[:4]) != dg.payload[:4]:
                return False
        return bool(spis)

    def dissect(self, flow: FlowPayload) -> Facts:
        facts = Facts()
        if flow.transport == "esp":
            facts.flow.update(app_protocol="esp", encrypted=True, protection="ipsec")
            return facts
        nat_t = _nat_t(flow)
        out: dict[str, object] = {"protection": "ipsec"}
        exchanges: list[str] = []
        spis: list[str] = []
        ike = esp = sealed = other = 0
        marker = False
        for dg in flow.datagrams:
            if not dg.payload:
                continue
            kind, msg = _classify(dg.payload, nat_t)
            if kind == "ike":
                header = ike_header(msg)
                assert header is not None
                spi_i, spi_r, nxt, version, exchange, flags = header
                ike += 1
                marker = marker or len(msg) != len(dg.payload)
                if ike == 1:
                    out["ike_version"] = f"{version >> 4}.{version & 0xF}"
                    out["ike_initiator_spi"] = spi_i.hex()
                if spi_r != bytes(8):
                    out.setdefault("ike_responder_spi", spi_r.hex())
                name = EXCHANGES[version][exchange]
                if name not in exchanges and len(exchanges) < 16:
                    exchanges.append(name)
                if (version == 0x10 and flags & 0x01) or (version == 0x20 and nxt in _SK_PAYLOADS):
                    sealed += 1
            elif kind == "esp":
                esp += 1
                spi = msg[:4].hex()
                if spi not in spis and len(spis) < MAX_SPIS:
                    spis.append(spi)
            elif kind == "other":
                other += 1
        if other:
            facts.anomaly("ipsec_unexpected_datagram", f"{other} datagram(s) neither IKE nor ESP")
        if exchanges:
            out["ike_exchanges"] = ",".join(exchanges)
        out["ike_encrypted_messages"] = sealed
        if nat_t:
            out["esp_packets"] = esp
            out["ipsec_nat_traversal"] = marker or esp > 0
        if spis:
            out["esp_spis"] = ",".join(spis)
        out["app_protocol"] = "esp" if esp else "ike"
        if esp or sealed:
            out["encrypted"] = True
        else:
            out["undecided_reason"] = "handshake_incomplete"
        facts.flow.update(out)
        return facts


DISSECTOR = register(IPsecDissector())
