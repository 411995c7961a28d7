"""Community ID v1 (https://github.com/corelight/community-id-spec), as Zeek and Suricata compute it."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import struct

# ICMP message types that have a counterpart: the pair counts as a two-way flow
# (the spec's and Zeek's ICMP4_counterpart/ICMP6_counterpart tables: a router advertisement, 9, is
# one-way, as the solicitation 10 maps to 9 but not back; node information query/response 139/140
# are a pair; both used to be wrong here, giving IDs that did not match Zeek's and Suricata's)
_ICMP4_PAIRS = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 10: 9, 17: 18, 18: 17}
_ICMP6_PAIRS = {128: 129, 129: 128, 133: 134, 134: 133, 135: 136, 136: 135, 130: 131, 131: 130,
                139: 140, 140: 139, 144: 145, 145: 144}  # fmt: skip
_PORTED = {6, 17, 132}
_PORTS = struct.Struct("!HH")


def community_id_packed(s: bytes, d: bytes, proto: int, sport: int = 0, dport: int = 0, seed: int = 0) -> str:
    """Community ID v1 from packed addresses (4 or 16 bytes each). ICMP: sport=type, dport=code."""
    one_way = False
    if proto == 1 or proto == 58:
        pairs = _ICMP4_PAIRS if proto == 1 else _ICMP6_PAIRS
        if sport in pairs:
            dport = pairs[sport]
        else:
            one_way = True
    elif proto not in _PORTED:
        sport = dport = 0
    if not one_way and (s > d or (s == d and sport > dport)):
        s, d, sport, dport = d, s, dport, sport
    data = seed.to_bytes(2, "big") + s + d + bytes((proto, 0))
    if proto in _PORTED or proto == 1 or proto == 58:
        data += _PORTS.pack(sport, dport)
    return "1:" + base64.b64encode(hashlib.sha1(data).digest()).decode("ascii")


def community_id(src: str, dst: str, proto: int, sport: int = 0, dport: int = 0, seed: int = 0) -> str:
    """Community ID v1 of a flow seen from src to dst (text addresses)."""
    return community_id_packed(ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed, proto,
                               sport, dport, seed)
