"""Decode: PacketBatch -> per-packet columns (addresses, ports, protocol, TCP fields, tunnels)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from analyzer.config import DecodeOptions
from analyzer.decode import _kernel as K
from analyzer.sources.batch import PacketBatch

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ANOMALY_NAMES", "DecodeOptions", "DecodedBatch", "decode", "decoded_frame", "format_ip", "is_one_of",
           "mark_inner_truncation"]

# Set here, not by the kernel: the inner packet of a VXLAN/GENEVE datagram captured whole is shorter
# than its IP header says (`mark_inner_truncation`)
A_INNER_TRUNC = 32  # above the kernel's own codes (1-10), so that a new one there cannot collide

ANOMALY_NAMES = {
    K.A_L2_TRUNC: "link_header_truncated",
    K.A_IP_TRUNC: "ip_header_truncated",
    K.A_IP_BAD: "ip_header_invalid",
    K.A_IP6_EXT_TRUNC: "ipv6_extension_truncated",
    K.A_L4_TRUNC: "l4_header_truncated",
    K.A_TUNNEL_BAD: "tunnel_header_invalid",
    K.A_TOO_DEEP: "too_many_nested_headers",
    K.A_LINKTYPE: "unsupported_linktype",
    K.A_IP_LEN: "ip_length_invalid",
    K.A_L4_BAD: "l4_header_invalid",
    A_INNER_TRUNC: "inner_packet_truncated",
}

TUNNEL_NAMES = ((K.T_MPLS, "mpls"), (K.T_GRE, "gre"), (K.T_ERSPAN, "erspan"), (K.T_IPIP, "ipip"),
                (K.T_GTP, "gtp"), (K.T_GENEVE, "geneve"), (K.T_VXLAN, "vxlan"))  # fmt: skip


@dataclass(slots=True)
class DecodedBatch:
    batch: PacketBatch
    cols: np.ndarray  # int64 [n, K.NI]
    ucols: np.ndarray  # uint64 [n, K.NU]


def decode(batch: PacketBatch, options: DecodeOptions | None = None) -> DecodedBatch:
    options = options or DecodeOptions()
    n = len(batch)
    cols = np.zeros((n, K.NI), np.int64)
    ucols = np.zeros((n, K.NU), np.uint64)
    if n:
        K.decode_batch(batch.buf, batch.offset, batch.caplen, batch.wirelen, batch.linktype,
                       np.asarray(options.vxlan_ports, np.int64), np.asarray(options.geneve_ports, np.int64),
                       cols, ucols)
        if (cols[:, K.C_TUN] & _MIRROR_TUNNELS).any():
            mark_inner_truncation(cols, batch.caplen, batch.wirelen)
    return DecodedBatch(batch, cols, ucols)


_MIRROR_TUNNELS = K.T_VXLAN | K.T_GENEVE
_HEADER_CUT = (K.A_L4_TRUNC, K.A_IP_TRUNC, K.A_IP6_EXT_TRUNC)


def is_one_of(values: np.ndarray, codes: tuple[int, ...]) -> np.ndarray:
    """Elementwise `value in codes` for a few integer codes: one `==` per code. np.isin sorts (or
    tabulates) both sides on every call, ~0.2 ms on a 4,000-row column of a batch: ~10x slower."""
    out = values == codes[0]
    for code in codes[1:]:
        out |= values == code
    return out


def mark_inner_truncation(cols: np.ndarray, caplen: np.ndarray, wirelen: np.ndarray) -> np.ndarray:
    """Mark as truncated the packets carried in VXLAN/GENEVE whose outer datagram was captured
    whole but whose inner IP packet is shorter than its header says: what a VPC Traffic Mirroring
    session does to a packet longer than its PacketLength, or than the target's MTU allows (the
    mirror cuts the inner packet, then encapsulates what is left). A capture of the mirror target
    (a pcap of VXLAN) and the live listener then mark them alike: `truncated`, counted by their
    header length like a snaplen cut; the cut is an `inner_packet_truncated` anomaly unless a
    header was cut (then the kernel's *_header_truncated anomaly says it already).
    Returns the mask of the packets marked here."""
    c = cols
    whole = wirelen <= caplen  # a snaplen cut of the capture is marked by the kernel already
    tun = (c[:, K.C_TUN] & _MIRROR_TUNNELS) != 0
    anom = c[:, K.C_ANOM]
    l4 = is_one_of(c[:, K.C_PROTO], (6, 17, 136)) | (c[:, K.C_FRAG] == 2)
    short_payload = (c[:, K.C_STATUS] == K.ST_OK) & l4 & (anom == K.A_NONE) & (c[:, K.C_PLCAP] < c[:, K.C_PLLEN])
    cut_header = is_one_of(anom, _HEADER_CUT)
    new = tun & whole & (short_payload | cut_header) & (c[:, K.C_TRUNC] == 0)
    c[new, K.C_TRUNC] = 1
    c[new & short_payload, K.C_ANOM] = A_INNER_TRUNC
    return new


def format_ip(hi: int, lo: int, version: int) -> str:
    """Text form of an address stored as two 64-bit halves (IPv4 as ::ffff:a.b.c.d)."""
    import ipaddress

    if version == 4:
        return str(ipaddress.IPv4Address(int(lo) & 0xFFFFFFFF))
    return str(ipaddress.IPv6Address((int(hi) << 64) | int(lo)))


def tunnel_name(bits: int) -> str | None:
    names = [name for bit, name in TUNNEL_NAMES if bits & bit]
    return "/".join(names) if names else None


def decoded_frame(d: DecodedBatch) -> pd.DataFrame:
    """Per-packet columns as a DataFrame (for tests, debugging and notebooks; not the hot path)."""
    from analyzer._pandas import pd

    c, u = d.cols, d.ucols
    rows = []
    for i in range(len(c)):
        v = int(c[i, K.C_IPVER])
        rows.append({
            "status": int(c[i, K.C_STATUS]),
            "anomaly": ANOMALY_NAMES.get(int(c[i, K.C_ANOM])),
            "ip_version": v,
            "proto": int(c[i, K.C_PROTO]),
            "src_ip": format_ip(u[i, K.U_SHI], u[i, K.U_SLO], v) if v else None,
            "dst_ip": format_ip(u[i, K.U_DHI], u[i, K.U_DLO], v) if v else None,
            "src_port": int(c[i, K.C_SPORT]),
            "dst_port": int(c[i, K.C_DPORT]),
            "ip_len": int(c[i, K.C_IPLEN]),
            "payload_len": int(c[i, K.C_PLLEN]),
            "payload_captured": int(c[i, K.C_PLCAP]),
            "tcp_flags": int(c[i, K.C_FLAGS]),
            "seq": int(c[i, K.C_SEQ]),
            "fragment": int(c[i, K.C_FRAG]),
            "vni": int(c[i, K.C_VNI]) if c[i, K.C_VNI] >= 0 else None,
            "tunnel": tunnel_name(int(c[i, K.C_TUN])),
            "vlan": int(c[i, K.C_VLAN]) if c[i, K.C_VLAN] >= 0 else None,
            "truncated": bool(c[i, K.C_TRUNC]),
            "outer_src_ip": format_ip(u[i, K.U_OSHI], u[i, K.U_OSLO], int(c[i, K.C_OIPVER]))
            if c[i, K.C_OIPVER] else None,
            "outer_dst_ip": format_ip(u[i, K.U_ODHI], u[i, K.U_ODLO], int(c[i, K.C_OIPVER]))
            if c[i, K.C_OIPVER] else None,
            "gwlb_endpoint_id": f"{int(u[i, K.U_GWEP]):016x}" if u[i, K.U_GWEP] else None,
        })
    return pd.DataFrame(rows)
