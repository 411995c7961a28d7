#!/usr/bin/env python3
"""A minimal userspace GENEVE (RFC 8926) tunnel endpoint, used to record captures/geneve_*.pcap.

This kernel has no `geneve` link type, so make_captures.sh builds the tunnel in userspace: the
kernel still produces all inner traffic (real TCP from curl/openssl on a TAP or TUN device); this
helper only wraps each frame in a GENEVE header and sends it over UDP 6081 to the peer endpoint,
and unwraps what arrives back. Two modes:

* ``--mode tap``: inner Ethernet frames, protocol type 0x6558, no options (what a Linux
  ``ip link add ... type geneve`` device sends).
* ``--mode tun --aws``: inner IP packets, protocol type 0x0800/0x86DD, with the three AWS Gateway
  Load Balancer TLVs (option class 0x0108: type 1 GWLBE/VPC endpoint id, 8 bytes; type 2
  attachment id, 8 bytes; type 3 flow cookie, 4 bytes), as GWLB sends to appliances.

The device must already exist (``ip tuntap add dev NAME mode tap|tun``). Runs until SIGTERM/SIGINT.
"""

import argparse
import fcntl
import ipaddress
import os
import select
import signal
import socket
import struct
import sys
import zlib

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
GENEVE_PORT = 6081
AWS_CLASS = 0x0108


def open_tun(name: str, tap: bool) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR)
    flags = (IFF_TAP if tap else IFF_TUN) | IFF_NO_PI
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), flags))
    return fd


def option(opt_class: int, opt_type: int, data: bytes) -> bytes:
    assert len(data) % 4 == 0
    return struct.pack("!HBB", opt_class, opt_type, len(data) // 4) + data


def flow_cookie(pkt: bytes) -> int:
    """Direction-independent 32-bit cookie from the inner IPv4 5-tuple (0 if not IPv4 TCP/UDP)."""
    if len(pkt) < 24 or pkt[0] >> 4 != 4:
        return 0
    ihl = (pkt[0] & 0x0F) * 4
    proto = pkt[9]
    src, dst = pkt[12:16], pkt[16:20]
    sport = dport = b""
    if proto in (6, 17) and len(pkt) >= ihl + 4:
        sport, dport = pkt[ihl : ihl + 2], pkt[ihl + 2 : ihl + 4]
    a, b = sorted([src + sport, dst + dport])
    return zlib.crc32(bytes([proto]) + a + b)


def encap(pkt: bytes, vni: int, tap: bool, aws: bool, endpoint_id: int, attachment_id: int) -> bytes:
    if tap:
        proto = 0x6558
    else:
        proto = 0x86DD if pkt and pkt[0] >> 4 == 6 else 0x0800
    opts = b""
    if aws:
        opts = (
            option(AWS_CLASS, 1, struct.pack("!Q", endpoint_id))
            + option(AWS_CLASS, 2, struct.pack("!Q", attachment_id))
            + option(AWS_CLASS, 3, struct.pack("!I", flow_cookie(pkt)))
        )
    # ver=0 | opt_len (4-byte words); O=0 C=0; protocol type; VNI << 8 | reserved
    hdr = struct.pack("!BBHI", len(opts) // 4, 0, proto, (vni & 0xFFFFFF) << 8)
    return hdr + opts + pkt


def decap(data: bytes) -> bytes | None:
    if len(data) < 8 or data[0] >> 6 != 0:
        return None
    start = 8 + (data[0] & 0x3F) * 4
    return data[start:] if len(data) > start else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dev", required=True)
    ap.add_argument("--mode", choices=["tap", "tun"], default="tap")
    ap.add_argument("--local", required=True, type=ipaddress.IPv4Address)
    ap.add_argument("--remote", required=True, type=ipaddress.IPv4Address)
    ap.add_argument("--vni", type=int, default=77)
    ap.add_argument("--aws", action="store_true", help="add AWS GWLB TLVs (class 0x0108)")
    ap.add_argument("--endpoint-id", type=lambda s: int(s, 0), default=0x0A1B2C3D4E5F6071)
    ap.add_argument("--attachment-id", type=lambda s: int(s, 0), default=0x42)
    args = ap.parse_args()
    tap = args.mode == "tap"
    fd = open_tun(args.dev, tap)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((str(args.local), GENEVE_PORT))
    peer = (str(args.remote), GENEVE_PORT)
    running = True

    def stop(*_: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"geneve_tunnel {args.dev} {args.local} -> {args.remote} vni={args.vni} ready", flush=True)
    while running:
        try:
            ready, _, _ = select.select([fd, sock.fileno()], [], [], 0.5)
        except InterruptedError:
            continue
        for r in ready:
            if r == fd:
                pkt = os.read(fd, 65535)
                sock.sendto(encap(pkt, args.vni, tap, args.aws, args.endpoint_id, args.attachment_id), peer)
            else:
                data, _ = sock.recvfrom(65535)
                inner = decap(data)
                if inner:
                    os.write(fd, inner)
    return 0


if __name__ == "__main__":
    sys.exit(main())
