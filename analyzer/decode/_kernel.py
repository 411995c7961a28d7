"""Compiled per-packet decoder (numba): L2 -> tunnels -> IPv4/IPv6 -> TCP/UDP/ICMP header fields.

Every read is bounds-checked against the captured length; a packet cut short is still decoded as
far as its bytes go and counted by its original length. Nothing here allocates per packet.
"""

from __future__ import annotations

import numpy as np

from analyzer._native import helper, kernel

# status
ST_NOT_IP = 0
ST_OK = 1
ST_BAD = 2

# anomaly codes (kept in sync with ANOMALY_NAMES in analyzer.decode)
A_NONE = 0
A_L2_TRUNC = 1
A_IP_TRUNC = 2
A_IP_BAD = 3
A_IP6_EXT_TRUNC = 4
A_L4_TRUNC = 5
A_TUNNEL_BAD = 6
A_TOO_DEEP = 7
A_LINKTYPE = 8
A_IP_LEN = 9
A_L4_BAD = 10

# tunnel bits, outermost recorded first in `tun`
T_VXLAN = 1
T_GENEVE = 2
T_GRE = 4
T_ERSPAN = 8
T_IPIP = 16
T_MPLS = 32
T_GWLB = 64  # GENEVE carried AWS Gateway Load Balancer TLVs
T_GTP = 128

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD


@helper(inline="always")
def _be16(buf, p):
    return (np.int64(buf[p]) << 8) | np.int64(buf[p + 1])


@helper(inline="always")
def _be32(buf, p):
    return (np.int64(buf[p]) << 24) | (np.int64(buf[p + 1]) << 16) | (np.int64(buf[p + 2]) << 8) | np.int64(
        buf[p + 3])


@helper(inline="always")
def _be64(buf, p):
    v = np.uint64(0)
    for i in range(8):
        v = (v << np.uint64(8)) | np.uint64(buf[p + i])
    return v


@helper()
def _ethernet(buf, p, lim):
    """Ethernet + 802.1Q/QinQ + MPLS + PPPoE -> (l3 offset, ethertype, vlan, mpls, ok)."""
    if p + 14 > lim:
        return p, 0, -1, False, False
    return _l2_tags(buf, p + 14, _be16(buf, p + 12), lim)


@helper()
def _l2_tags(buf, p, et, lim):
    """VLAN tags, MPLS labels and PPPoE after an ethertype `et` whose payload starts at p.

    Shared by Ethernet and the Linux cooked headers: SLL2 with a VLAN tag (what libpcap writes for
    `tcpdump -i any` on a tagged interface) used to be "not IP", SLL with QinQ/PPPoE too.
    """
    vlan = -1
    mpls = False
    for _ in range(8):
        if et == 0x8100 or et == 0x88A8 or et == 0x9100:
            if p + 4 > lim:
                return p, 0, vlan, mpls, False
            if vlan < 0:
                vlan = _be16(buf, p) & 0x0FFF
            et = _be16(buf, p + 2)
            p += 4
        elif et == 0x8847 or et == 0x8848:  # MPLS: skip labels to the bottom of the stack
            mpls = True
            while True:
                if p + 4 > lim:
                    return p, 0, vlan, mpls, False
                bos = buf[p + 2] & 1
                p += 4
                if bos:
                    break
            if p >= lim:
                return p, 0, vlan, mpls, False
            nib = buf[p] >> 4
            if nib == 4:
                et = ETH_IPV4
            elif nib == 6:
                et = ETH_IPV6
            else:  # pseudowire with control word and inner Ethernet
                if p + 4 + 14 <= lim:
                    p += 4
                    et = _be16(buf, p + 12)
                    p += 14
                else:
                    return p, 0, vlan, mpls, False
        elif et == 0x8864:  # PPPoE session
            if p + 8 > lim:
                return p, 0, vlan, mpls, False
            proto = _be16(buf, p + 6)
            p += 8
            if proto == 0x0021:
                et = ETH_IPV4
            elif proto == 0x0057:
                et = ETH_IPV6
            else:
                return p, proto, vlan, mpls, True
        else:
            break
    return p, et, vlan, mpls, True


@helper()
def _link(buf, o, lim, lt):
    """Link layer -> (l3 offset, ethertype (0 = not IP / unknown), vlan, mpls, anomaly)."""
    if lt == 1:
        p, et, vlan, mpls, ok = _ethernet(buf, o, lim)
        return p, et, vlan, mpls, (A_NONE if ok else A_L2_TRUNC)
    if lt == 101 or lt == 12 or lt == 14:
        if o >= lim:
            return o, 0, -1, False, A_L2_TRUNC
        nib = buf[o] >> 4
        return o, (ETH_IPV4 if nib == 4 else (ETH_IPV6 if nib == 6 else 0)), -1, False, A_NONE
    if lt == 228:
        return o, ETH_IPV4, -1, False, A_NONE
    if lt == 229:
        return o, ETH_IPV6, -1, False, A_NONE
    if lt == 113:  # Linux cooked v1: 16-byte header, protocol at 14
        if o + 16 > lim:
            return o, 0, -1, False, A_L2_TRUNC
        p, et, vlan, mpls, ok = _l2_tags(buf, o + 16, _be16(buf, o + 14), lim)
        return p, et, vlan, mpls, (A_NONE if ok else A_L2_TRUNC)
    if lt == 276:  # Linux cooked v2: 20-byte header, protocol at 0
        if o + 20 > lim:
            return o, 0, -1, False, A_L2_TRUNC
        p, et, vlan, mpls, ok = _l2_tags(buf, o + 20, _be16(buf, o), lim)
        return p, et, vlan, mpls, (A_NONE if ok else A_L2_TRUNC)
    if lt == 0 or lt == 108:  # BSD loopback: 4-byte family, host order (NULL) or network (LOOP)
        if o + 4 > lim:
            return o, 0, -1, False, A_L2_TRUNC
        fam_le = np.int64(buf[o]) | (np.int64(buf[o + 1]) << 8)
        fam_be = np.int64(buf[o + 3]) | (np.int64(buf[o + 2]) << 8)
        fam = fam_be if (lt == 108 or fam_le == 0) else fam_le
        if fam == 2:
            return o + 4, ETH_IPV4, -1, False, A_NONE
        if fam == 24 or fam == 28 or fam == 30 or fam == 10:
            return o + 4, ETH_IPV6, -1, False, A_NONE
        return o + 4, 0, -1, False, A_NONE
    if lt == 9 or lt == 50:  # PPP, optionally with HDLC address/control
        p = o
        if p + 2 <= lim and buf[p] == 0xFF and buf[p + 1] == 0x03:
            p += 2
        if p + 2 > lim:
            return p, 0, -1, False, A_L2_TRUNC
        proto = _be16(buf, p)
        if proto == 0x0021:
            return p + 2, ETH_IPV4, -1, False, A_NONE
        if proto == 0x0057:
            return p + 2, ETH_IPV6, -1, False, A_NONE
        return p + 2, 0, -1, False, A_NONE
    if lt == 239:  # NFLOG: 4-byte header then TLVs (little-endian length/type); payload is type 9
        p = o + 4
        while p + 4 <= lim:
            tlen = np.int64(buf[p]) | (np.int64(buf[p + 1]) << 8)
            ttype = np.int64(buf[p + 2]) | (np.int64(buf[p + 3]) << 8)
            if tlen < 4:
                return p, 0, -1, False, A_L2_TRUNC
            if ttype == 9:
                q = p + 4
                if q >= lim:
                    return q, 0, -1, False, A_L2_TRUNC
                nib = buf[q] >> 4
                return q, (ETH_IPV4 if nib == 4 else (ETH_IPV6 if nib == 6 else 0)), -1, False, A_NONE
            p += (tlen + 3) & ~3
        return p, 0, -1, False, A_NONE
    if lt == 127 or lt == 105:  # radiotap + 802.11, or bare 802.11: data frames carry LLC/SNAP
        return _wifi(buf, o, lim, lt == 127)
    return o, 0, -1, False, A_LINKTYPE


@helper()
def _wifi(buf, o, lim, radiotap):
    """802.11 data frame (after a radiotap header when `radiotap`) -> as _link returns.

    Only unprotected data frames carry readable IP; management, control and protected frames are
    'not IP' (no anomaly: encrypted Wi-Fi is not damage). A radiotap Flags field with FCS set means
    the last 4 bytes are the frame check sequence, not payload.
    """
    p = o
    if radiotap:
        if o + 8 > lim or buf[o] != 0:
            return o, 0, -1, False, A_L2_TRUNC
        rlen = np.int64(buf[o + 2]) | (np.int64(buf[o + 3]) << 8)
        if rlen < 8 or o + rlen > lim:
            return o, 0, -1, False, A_L2_TRUNC
        present = np.int64(buf[o + 4]) | (np.int64(buf[o + 5]) << 8) | (np.int64(buf[o + 6]) << 16) | (
            np.int64(buf[o + 7]) << 24)
        q = o + 4
        while (np.int64(buf[q + 3]) & 0x80) and q + 8 <= o + rlen:  # extended present bitmasks
            q += 4
        q += 4
        if present & 2:  # Flags (field 1), after TSFT (field 0: 8 bytes, 8-aligned) when present
            if present & 1:
                q = o + ((q - o + 7) & ~7) + 8
            if q < o + rlen and (buf[q] & 0x10):
                lim -= 4
        p = o + rlen
    if p + 24 > lim:
        return p, 0, -1, False, A_L2_TRUNC
    fc = buf[p]
    flags = buf[p + 1]
    if (fc >> 2) & 3 != 2 or (fc >> 4) & 4 or flags & 0x40:  # not data, a null frame, or protected
        return p, 0, -1, False, A_NONE
    h = 24
    if (flags & 3) == 3:
        h += 6  # both DS bits: a fourth address
    if (fc >> 4) & 8:
        h += 2  # QoS control
        if flags & 0x80:
            h += 4  # HT control
    p += h
    if p + 8 > lim:
        return p, 0, -1, False, A_L2_TRUNC
    if buf[p] != 0xAA or buf[p + 1] != 0xAA or buf[p + 2] != 3:
        return p, 0, -1, False, A_NONE
    pp, et, vlan, mpls, ok = _l2_tags(buf, p + 8, _be16(buf, p + 6), lim)
    return pp, et, vlan, mpls, (A_NONE if ok else A_L2_TRUNC)


@helper(inline="always")
def _vxlan_header_ok(buf, q):
    """An 8-byte VXLAN header at q (RFC 7348 section 5): flags 0x08 (the I bit; the other seven
    are reserved), 24 reserved bits, the VNI, 8 reserved bits, every reserved bit zero. Checked
    because the port alone does not make VXLAN: a DNS query may leave from port 4789. Two forms
    seen on the same port are accepted too, where their extra bits sit in RFC 7348's reserved ones:
    Group Based Policy (Linux, Open vSwitch; draft-smith-vxlan-group-policy: flags 0x88, the D and
    A bits, a 16-bit group id) and VXLAN-GPE carrying Ethernet (draft-ietf-nvo3-vxlan-gpe: flags
    0x0C, next protocol 3; scapy builds VXLAN over Ethernet so)."""
    if buf[q + 7] != 0:
        return False
    f = buf[q]
    if f == 0x08:
        return buf[q + 1] == 0 and buf[q + 2] == 0 and buf[q + 3] == 0
    if f == 0x88:
        return (buf[q + 1] & 0xB7) == 0
    return f == 0x0C and buf[q + 1] == 0 and buf[q + 2] == 0 and buf[q + 3] == 3


@helper(inline="always")
def _geneve_header_ok(buf, q, udp_end):
    """A GENEVE header at q (RFC 8926 section 3.4): version 0, its options inside the UDP datagram
    (as sent: a capture cut short is an anomaly, not ordinary UDP), and a protocol type this decoder
    follows (Ethernet 0x6558, IPv4, IPv6)."""
    if (buf[q] >> 6) != 0 or q + 8 + (np.int64(buf[q]) & 0x3F) * 4 > udp_end:
        return False
    gproto = _be16(buf, q + 2)
    return gproto == 0x6558 or gproto == ETH_IPV4 or gproto == ETH_IPV6


@helper(inline="always")
def _enter_tunnel(out_i, out_u, i, kind, shi, slo, dhi, dlo, ipver):
    """Mark tunnel `kind`; the first tunnel's carrier addresses are the vantage (outer) addresses."""
    if (out_i[i, C_TUN] & (T_VXLAN | T_GENEVE | T_GRE | T_IPIP | T_GTP)) == 0:
        out_u[i, U_OSHI] = shi
        out_u[i, U_OSLO] = slo
        out_u[i, U_ODHI] = dhi
        out_u[i, U_ODLO] = dlo
        out_i[i, C_OIPVER] = ipver
    out_i[i, C_TUN] |= kind


@kernel(
    "void(uint8[::1], int64[::1], int32[::1], int32[::1], int16[::1], int64[::1], int64[::1], int64[:, ::1], uint64[:, ::1])"
)
def decode_batch(buf, off, caplen, wirelen, linktype, vxlan_ports, geneve_ports, out_i, out_u):
    """Decode n packets into out_i (int64 [n, NI]) and out_u (uint64 [n, NU]) columns (zeroed by the caller)."""
    n = off.shape[0]
    for i in range(n):
        o = off[i]
        lim = o + caplen[i]
        out_i[i, C_VNI] = -1
        out_i[i, C_VLAN] = -1
        out_i[i, C_TRUNC] = 1 if wirelen[i] > caplen[i] else 0
        p, et, vlan, mpls, anom = _link(buf, o, lim, linktype[i])
        out_i[i, C_VLAN] = vlan
        tun = T_MPLS if mpls else 0
        if anom != A_NONE or (et != ETH_IPV4 and et != ETH_IPV6):
            out_i[i, C_STATUS] = ST_BAD if anom != A_NONE else ST_NOT_IP
            out_i[i, C_ANOM] = anom
            out_i[i, C_TUN] = tun
            continue
        # MPLS below IP is part of the tunnel stack too (it was only recorded for non-IP packets)
        out_i[i, C_TUN] = tun
        # bytes cut from the end of this packet, used to derive lengths when IP says 0 (TSO)
        wire_end_extra = wirelen[i] - caplen[i]
        depth = 0
        not_ip = False
        in_udp_carrier = False  # the layer recorded last is the IP of a UDP tunnel carrier
        while True:
            depth += 1
            if depth > 6:
                anom = A_TOO_DEEP
                break
            # ---------------- IP ----------------
            if et == ETH_IPV4:
                if p + 20 > lim:
                    anom = A_IP_TRUNC
                    break
                vihl = buf[p]
                ihl = (vihl & 0x0F) * 4
                if (vihl >> 4) != 4 or ihl < 20:
                    anom = A_IP_BAD
                    break
                total = _be16(buf, p + 2)
                if total == 0:  # TSO/GSO capture: length left to the frame
                    total = lim + wire_end_extra - p
                if total < ihl:
                    anom = A_IP_LEN
                    break
                fo = _be16(buf, p + 6)
                mf = (fo >> 13) & 1
                frag_off = (fo & 0x1FFF) * 8
                proto = buf[p + 9]
                src = _be32(buf, p + 12)
                dst = _be32(buf, p + 16)
                ipid = _be16(buf, p + 4)
                ipver = 4
                shi = np.uint64(0)
                slo = np.uint64(0xFFFF00000000) | np.uint64(src)
                dhi = np.uint64(0)
                dlo = np.uint64(0xFFFF00000000) | np.uint64(dst)
                l4 = p + ihl
                l4len = total - ihl
                iplen = total
                if p + ihl > lim:
                    anom = A_IP_TRUNC
            else:
                if p + 40 > lim:
                    anom = A_IP_TRUNC
                    break
                if (buf[p] >> 4) != 6:
                    anom = A_IP_BAD
                    break
                plen = _be16(buf, p + 4)
                if plen == 0:  # jumbogram or TSO
                    plen = lim + wire_end_extra - p - 40
                nh = buf[p + 6]
                shi = _be64(buf, p + 8)
                slo = _be64(buf, p + 16)
                dhi = _be64(buf, p + 24)
                dlo = _be64(buf, p + 32)
                ipver = 6
                iplen = 40 + plen
                l4 = p + 40
                end_ip = l4 + plen
                mf = 0
                frag_off = 0
                ipid = 0
                # extension headers: hop-by-hop 0, routing 43, fragment 44, dest opts 60,
                # AH 51, mobility 135, HIP 139, shim6 140
                ext_bad = False
                while nh == 0 or nh == 43 or nh == 44 or nh == 60 or nh == 51 or nh == 135 or (
                        nh == 139 or nh == 140):
                    if l4 + 8 > lim:
                        ext_bad = True
                        break
                    if nh == 44:
                        fo = _be16(buf, l4 + 2)
                        frag_off = fo & 0xFFF8
                        mf = fo & 1
                        ipid = _be32(buf, l4 + 4)
                        nh = buf[l4]
                        l4 += 8
                        if frag_off != 0:
                            break  # later fragments: the rest is not a header chain
                    elif nh == 51:
                        nxt = buf[l4]
                        l4 += (np.int64(buf[l4 + 1]) + 2) * 4
                        nh = nxt
                    else:
                        nxt = buf[l4]
                        l4 += (np.int64(buf[l4 + 1]) + 1) * 8
                        nh = nxt
                if ext_bad:
                    anom = A_IP6_EXT_TRUNC
                    proto = nh
                    l4len = 0
                else:
                    proto = nh
                    l4len = end_ip - l4
                    if l4len < 0:
                        anom = A_IP_LEN
                        l4len = 0
            out_i[i, C_IPVER] = ipver
            out_i[i, C_PROTO] = proto
            out_i[i, C_IPLEN] = iplen
            in_udp_carrier = False
            out_i[i, C_FRAG] = 0 if (mf == 0 and frag_off == 0) else (1 if frag_off == 0 else 2)
            out_i[i, C_IPID] = ipid
            out_u[i, U_SHI] = shi
            out_u[i, U_SLO] = slo
            out_u[i, U_DHI] = dhi
            out_u[i, U_DLO] = dlo
            if anom != A_NONE:
                break
            if frag_off != 0:
                break  # no L4 header in a later fragment
            # ---------------- tunnels ----------------
            if proto == 17 and l4 + 8 <= lim:
                in_udp_carrier = True  # stays set if the tunnel's inner packet breaks below
                sport = _be16(buf, l4)
                dport = _be16(buf, l4 + 2)
                # Either port: the packets from a VXLAN/GENEVE endpoint's port 4789/6081 are
                # tunnel packets too (tshark decodes them). The header check keeps ordinary UDP
                # that happens to use one of those ports (a DNS query from port 4789) what it is.
                is_vx = False
                for vp in vxlan_ports:
                    if dport == vp or sport == vp:
                        is_vx = True
                is_gen = False
                for gp in geneve_ports:
                    if dport == gp or sport == gp:
                        is_gen = True
                if is_vx and l4 + 16 <= lim and _vxlan_header_ok(buf, l4 + 8):
                    # the first IP tunnel keeps the outer (vantage) addresses; an MPLS label stack
                    # underneath does not count as one
                    _enter_tunnel(out_i, out_u, i, T_VXLAN, shi, slo, dhi, dlo, ipver)
                    out_i[i, C_VNI] = (_be32(buf, l4 + 12) >> 8) & 0xFFFFFF
                    p2, et, vlan, _mpls, ok = _ethernet(buf, l4 + 16, lim)
                    if not ok:
                        anom = A_TUNNEL_BAD
                        break
                    if vlan >= 0:
                        out_i[i, C_VLAN] = vlan
                    p = p2
                    if et != ETH_IPV4 and et != ETH_IPV6:
                        not_ip = True
                        break
                    continue
                if is_gen and l4 + 16 <= lim and _geneve_header_ok(buf, l4 + 8, l4 + l4len):
                    optlen = (np.int64(buf[l4 + 8]) & 0x3F) * 4
                    gproto = _be16(buf, l4 + 10)
                    if l4 + 16 + optlen > lim:
                        anom = A_TUNNEL_BAD
                        break
                    # the first IP tunnel keeps the outer (vantage) addresses; an MPLS label stack
                    # underneath does not count as one
                    _enter_tunnel(out_i, out_u, i, T_GENEVE, shi, slo, dhi, dlo, ipver)
                    out_i[i, C_VNI] = (_be32(buf, l4 + 12) >> 8) & 0xFFFFFF
                    q = l4 + 16
                    qend = q + optlen
                    while q + 4 <= qend:
                        oclass = _be16(buf, q)
                        otype = buf[q + 2] & 0x7F
                        olen = (np.int64(buf[q + 3]) & 0x1F) * 4
                        if q + 4 + olen > qend:
                            break
                        if oclass == 0x0108 and olen >= 4:
                            v = np.uint64(0)
                            for k in range(min(olen, 8)):
                                v = (v << np.uint64(8)) | np.uint64(buf[q + 4 + k])
                            if otype == 1:
                                out_u[i, U_GWEP] = v
                                out_i[i, C_TUN] |= T_GWLB
                            elif otype == 2:
                                out_u[i, U_GWATT] = v
                                out_i[i, C_TUN] |= T_GWLB
                            elif otype == 3:
                                out_u[i, U_GWCK] = v
                                out_i[i, C_GWCK_SET] = 1
                                out_i[i, C_TUN] |= T_GWLB
                        q += 4 + olen
                    if gproto == 0x6558:
                        p2, et, vlan, _mpls, ok = _ethernet(buf, qend, lim)
                        if not ok:
                            anom = A_TUNNEL_BAD
                            break
                        if vlan >= 0:
                            out_i[i, C_VLAN] = vlan
                        p = p2
                    else:  # IPv4 or IPv6 (_geneve_header_ok)
                        et = gproto
                        p = qend
                    if et != ETH_IPV4 and et != ETH_IPV6:
                        not_ip = True
                        break
                    continue
                if dport == 2152 and l4 + 16 <= lim and (buf[l4 + 8] >> 5) == 1 and buf[l4 + 9] == 0xFF:
                    # GTP-U G-PDU (mobile core): tshark decapsulates it, so do we
                    q = l4 + 16
                    if buf[l4 + 8] & 0x07:
                        q += 4
                        nxt = buf[q - 1] if q <= lim else 0
                        while nxt != 0 and q < lim:
                            elen = np.int64(buf[q]) * 4
                            if elen == 0 or q + elen > lim:
                                break
                            nxt = buf[q + elen - 1]
                            q += elen
                    if q >= lim:
                        anom = A_TUNNEL_BAD
                        break
                    nib = buf[q] >> 4
                    if nib != 4 and nib != 6:
                        not_ip = True
                        break
                    _enter_tunnel(out_i, out_u, i, T_GTP, shi, slo, dhi, dlo, ipver)
                    et = ETH_IPV4 if nib == 4 else ETH_IPV6
                    p = q
                    continue
            if proto == 47 and l4 + 4 <= lim:  # GRE (RFC 2784/2890), ERSPAN II/III
                gflags = buf[l4]
                gver = buf[l4 + 1] & 0x07
                gproto = _be16(buf, l4 + 2)
                q = l4 + 4
                if gver == 1:  # PPTP enhanced GRE: key always, seq/ack optional; carries PPP
                    q += 4
                    if gflags & 0x10:
                        q += 4
                    if buf[l4 + 1] & 0x80:
                        q += 4
                else:
                    if gflags & 0x80:
                        q += 4  # checksum + reserved
                    if gflags & 0x20:
                        q += 4  # key
                    if gflags & 0x10:
                        q += 4  # sequence
                inner_eth = False
                if gproto == 0x88BE:  # ERSPAN type II (type I has no sequence: no header)
                    if gflags & 0x10:
                        q += 8
                    inner_eth = True
                    out_i[i, C_TUN] |= T_ERSPAN
                elif gproto == 0x22EB:  # ERSPAN type III: 12 bytes, + 8 with the O flag
                    if q + 12 > lim:
                        anom = A_TUNNEL_BAD
                        break
                    o_flag = buf[q + 11] & 0x01
                    q += 12 + (8 if o_flag else 0)
                    inner_eth = True
                    out_i[i, C_TUN] |= T_ERSPAN
                elif gproto == 0x6558:
                    inner_eth = True
                elif gproto == 0x880B and gver == 1:  # PPP in PPTP GRE
                    if q + 2 <= lim and buf[q] == 0xFF and buf[q + 1] == 0x03:
                        q += 2
                    if q + 2 > lim:
                        anom = A_TUNNEL_BAD
                        break
                    pp = _be16(buf, q)
                    if pp == 0x0021 or pp == 0x0057:
                        gproto = ETH_IPV4 if pp == 0x0021 else ETH_IPV6
                        q += 2
                    elif buf[q] == 0x21 or buf[q] == 0x57:  # protocol field compression
                        gproto = ETH_IPV4 if buf[q] == 0x21 else ETH_IPV6
                        q += 1
                    else:
                        break
                elif gproto != ETH_IPV4 and gproto != ETH_IPV6:
                    break  # GRE carrying something else: the GRE packet itself is the flow
                if q > lim:
                    anom = A_TUNNEL_BAD
                    break
                _enter_tunnel(out_i, out_u, i, T_GRE, shi, slo, dhi, dlo, ipver)
                if inner_eth:
                    p2, et, vlan, _mpls, ok = _ethernet(buf, q, lim)
                    if not ok:
                        anom = A_TUNNEL_BAD
                        break
                    if vlan >= 0:
                        out_i[i, C_VLAN] = vlan
                    p = p2
                    if et != ETH_IPV4 and et != ETH_IPV6:
                        not_ip = True
                        break
                else:
                    et = gproto
                    p = q
                continue
            if proto == 4 or proto == 41:  # IPv4-in-IP, IPv6-in-IP (6in4)
                _enter_tunnel(out_i, out_u, i, T_IPIP, shi, slo, dhi, dlo, ipver)
                et = ETH_IPV4 if proto == 4 else ETH_IPV6
                p = l4
                continue
            break
        # ---------------- L4 of the innermost IP ----------------
        if not_ip:
            out_i[i, C_STATUS] = ST_NOT_IP
            continue
        if anom != A_NONE and anom != A_L4_TRUNC:
            out_i[i, C_STATUS] = ST_BAD if out_i[i, C_IPVER] == 0 else ST_OK
            out_i[i, C_ANOM] = anom
            if out_i[i, C_IPVER] == 0:
                continue
            # IP addresses are known: still a flow (ports 0), never dropped
            out_i[i, C_PLOFF] = 0
            if in_udp_carrier and l4 + 4 <= lim:
                # oracle fix (tests/oracle/test_oracle_flows.py): the inner packet of a VXLAN/GENEVE/GTP-U
                # carrier is cut short or bad, so the recorded layer is the carrier: it is the carrier's
                # UDP flow with its real ports (as tshark counts it), not a port-0 flow
                out_i[i, C_SPORT] = _be16(buf, l4)
                out_i[i, C_DPORT] = _be16(buf, l4 + 2)
            continue
        out_i[i, C_STATUS] = ST_OK
        if out_i[i, C_FRAG] == 2:
            out_i[i, C_PLOFF] = l4
            out_i[i, C_PLCAP] = max(0, min(lim, l4 + l4len) - l4)
            out_i[i, C_PLLEN] = l4len
            continue
        if proto == 6:
            if l4 + 20 > lim:
                out_i[i, C_ANOM] = A_L4_TRUNC
                if l4 + 4 <= lim:
                    out_i[i, C_SPORT] = _be16(buf, l4)
                    out_i[i, C_DPORT] = _be16(buf, l4 + 2)
                if l4 + 14 <= lim:
                    out_i[i, C_SEQ] = _be32(buf, l4 + 4)
                    out_i[i, C_ACK] = _be32(buf, l4 + 8)
                    out_i[i, C_FLAGS] = buf[l4 + 13]
                    out_i[i, C_PLLEN] = max(0, l4len - ((buf[l4 + 12] >> 4) * 4))
                continue
            doff = (buf[l4 + 12] >> 4) * 4
            out_i[i, C_SPORT] = _be16(buf, l4)
            out_i[i, C_DPORT] = _be16(buf, l4 + 2)
            out_i[i, C_SEQ] = _be32(buf, l4 + 4)
            out_i[i, C_ACK] = _be32(buf, l4 + 8)
            out_i[i, C_FLAGS] = buf[l4 + 13]
            if doff < 20 or doff > l4len:
                out_i[i, C_ANOM] = A_L4_BAD
                continue
            pl = l4 + doff
            out_i[i, C_PLOFF] = pl
            out_i[i, C_PLLEN] = l4len - doff
            out_i[i, C_PLCAP] = max(0, min(lim, pl + (l4len - doff)) - pl)
        elif proto == 17 or proto == 136:  # UDP, UDP-Lite
            if l4 + 8 > lim:
                out_i[i, C_ANOM] = A_L4_TRUNC
                if l4 + 4 <= lim:
                    out_i[i, C_SPORT] = _be16(buf, l4)
                    out_i[i, C_DPORT] = _be16(buf, l4 + 2)
                out_i[i, C_PLLEN] = max(0, l4len - 8)
                continue
            out_i[i, C_SPORT] = _be16(buf, l4)
            out_i[i, C_DPORT] = _be16(buf, l4 + 2)
            pl = l4 + 8
            out_i[i, C_PLOFF] = pl
            out_i[i, C_PLLEN] = max(0, l4len - 8)
            out_i[i, C_PLCAP] = max(0, min(lim, pl + l4len - 8) - pl)
        elif proto == 1 or proto == 58:  # ICMP/ICMPv6: type and code in the port columns
            if l4 + 4 > lim:
                out_i[i, C_ANOM] = A_L4_TRUNC
                continue
            out_i[i, C_SPORT] = buf[l4]
            out_i[i, C_DPORT] = buf[l4 + 1]
            out_i[i, C_PLLEN] = max(0, l4len - 4)
        elif proto == 132 or proto == 33:  # SCTP / DCCP ports
            if l4 + 4 <= lim:
                out_i[i, C_SPORT] = _be16(buf, l4)
                out_i[i, C_DPORT] = _be16(buf, l4 + 2)
            out_i[i, C_PLLEN] = max(0, l4len)
        else:  # ESP, AH, GRE (not decapsulated), OSPF, ...: a flow by addresses and protocol
            out_i[i, C_PLLEN] = max(0, l4len)
            if proto == 50 and l4 + 4 <= lim:  # ESP: the SPI identifies the SA
                out_i[i, C_SPI] = _be32(buf, l4)


# int64 columns
C_STATUS = 0
C_ANOM = 1
C_IPVER = 2
C_PROTO = 3
C_SPORT = 4
C_DPORT = 5
C_IPLEN = 6
C_PLOFF = 7
C_PLCAP = 8
C_PLLEN = 9
C_FLAGS = 10
C_SEQ = 11
C_ACK = 12
C_FRAG = 13
C_IPID = 14
C_VNI = 15
C_TUN = 16
C_VLAN = 17
C_TRUNC = 18
C_OIPVER = 19
C_GWCK_SET = 20
C_SPI = 21
NI = 22
# uint64 columns
U_SHI = 0
U_SLO = 1
U_DHI = 2
U_DLO = 3
U_OSHI = 4
U_OSLO = 5
U_ODHI = 6
U_ODLO = 7
U_GWEP = 8
U_GWATT = 9
U_GWCK = 10
NU = 11
