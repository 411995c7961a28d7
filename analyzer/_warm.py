"""Prepare the compiled kernels once: an ahead-of-time build, else numba's on-disk cache."""

from __future__ import annotations

import os
import struct
import sys
import tempfile


def _tiny_pcap() -> bytes:
    def eth_ipv4(proto: int, l4: bytes) -> bytes:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0, 64, proto, 0, bytes([10, 0, 0, 1]),
                         bytes([10, 0, 0, 2]))
        return b"\x00" * 12 + b"\x08\x00" + ip + l4

    syn = struct.pack("!HHIIBBHHH", 40000, 443, 1, 0, 0x50, 0x02, 65535, 0, 0)
    data = struct.pack("!HHIIBBHHH", 40000, 443, 2, 1, 0x50, 0x18, 65535, 0, 0) + b"\x16\x03\x01\x00\x00"
    udp = struct.pack("!HHHH", 40001, 53, 12, 0) + b"abcd"
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i, frame in enumerate((eth_ipv4(6, syn), eth_ipv4(6, data), eth_ipv4(17, udp))):
        out.append(struct.pack("<IIII", 1_700_000_000 + i, 0, len(frame), len(frame)) + frame)
    return b"".join(out)


def warm_up(aot: bool = True) -> str:
    """Make the first real run fast; returns how the kernels will run ('aot' or 'jit').

    With `aot`, compiles the kernels ahead of time into an extension module (once per version of
    the kernel sources; ~1 s less start-up per run, as numba is then never imported) and falls back
    to numba's on-disk cache when that cannot be built (no C compiler, read-only install). Then
    analyses a tiny synthetic capture so every kernel has been loaded once.
    """
    from analyzer import _native

    if aot and os.environ.get(_native.FORCE_JIT_ENV, "") in ("", "0") and _native._find_aot() is None:
        try:
            _native.build_aot()
        except Exception as exc:  # the JIT path does the same work, only starts slower
            print(f"intransit: ahead-of-time kernel build failed, numba JIT will be used: {exc}", file=sys.stderr)
    _run_tiny()
    if os.environ.get(_native.FORCE_JIT_ENV, "") in ("", "0") and _native._find_aot() is not None:
        return "aot"
    return "jit"


def _run_tiny() -> None:
    from analyzer.pipeline import analyze

    fd, path = tempfile.mkstemp(suffix=".pcap")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(_tiny_pcap())
        analyze([path])
    finally:
        os.unlink(path)
