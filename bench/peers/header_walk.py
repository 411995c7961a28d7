#!/usr/bin/env python3
"""Peer: the floor of a per-packet Python loop, walking pcap record headers only.

Copied from ../shared/bench/peers/header_walk.py (struct.unpack_from on an mmap); only this
docstring and the formatting differ. usage: header_walk.py FILE
"""

import mmap
import struct
import sys

path = sys.argv[1]
with open(path, "rb") as f:
    mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
magic = mm[:4]
assert magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"), "classic little-endian pcap only"
unpack = struct.Struct("<IIII").unpack_from
off, end, n, nbytes = 24, len(mm), 0, 0
while off + 16 <= end:
    _, _, caplen, _ = unpack(mm, off)
    off += 16 + caplen
    n += 1
    nbytes += caplen
print(f"packets={n} bytes={nbytes}")
