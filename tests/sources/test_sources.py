"""Capture readers: pcap/pcapng variants, compression, stdin, paths, link types, damage, memory."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import struct
import sys
import tempfile
import tracemalloc
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Raw
from scapy.utils import PcapNgWriter, PcapWriter, wrpcap
from support.fuzz_helpers import examples, fuzz_settings
from support.pcap_helpers import (
    ETHERNET,
    RAW,
    Section,
    batch_of,
    block,
    epb,
    eth,
    idb,
    opb,
    pcap_bytes,
    shb,
    spb,
    unknown_block,
)

from analyzer.decode import decode, decoded_frame
from analyzer.errors import CaptureError
from analyzer.sources.readers import expand_paths, read_capture

T0 = 1_700_000_000_123_456_789  # ns; the last three digits only survive nanosecond formats


def frames(n: int = 3) -> list[bytes]:
    return [
        bytes(eth() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1000 + i, dport=53) / Raw(b"q" * i))
        for i in range(n)
    ]


def read_all(path: str | Path, chunk: int | None = None) -> tuple[list[tuple[int, bytes, int, int]], list]:
    """(ts_ns, bytes, wirelen, linktype) per packet, and every Problem reported."""
    pkts, problems = [], []
    args = (str(path),) if chunk is None else (str(path), chunk)
    for b in read_capture(*args):
        assert len(b.offset) == len(b.caplen) == len(b.wirelen) == len(b.ts_ns) == len(b.linktype)
        pkts += [(int(b.ts_ns[i]), b.packet(i), int(b.wirelen[i]), int(b.linktype[i])) for i in range(len(b))]
        problems += b.problems
    return pkts, problems


# --------------------------------------------------------------------------------------- pcap
@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nanos", [False, True])
def test_pcap_byte_orders_and_resolutions(capture_file, order, nanos):
    fr = frames()
    ts = [T0, T0 + 1_000, T0 + 4_000_000_000_000]  # the last one: 46 days later
    recs = [(ts[0], fr[0]), (ts[1], fr[1], 1514), (ts[2], fr[2])]
    path = capture_file("x.pcap", pcap_bytes(recs, order=order, nanos=nanos))
    pkts, problems = read_all(path)
    assert not problems
    exact = ts if nanos else [t // 1000 * 1000 for t in ts]
    assert [p[0] for p in pkts] == exact
    assert [p[1] for p in pkts] == fr
    assert [p[2] for p in pkts] == [len(fr[0]), 1514, len(fr[2])]
    assert {p[3] for p in pkts} == {ETHERNET}


def test_pcap_linktype_upper_bits_are_ignored(capture_file):
    data = bytearray(pcap_bytes([(T0, frames(1)[0])]))
    data[20:24] = struct.pack("<I", ETHERNET | 0x10000000)  # FCS length bits in the link-type field
    pkts, _ = read_all(capture_file("fcs.pcap", bytes(data)))
    assert pkts[0][3] == ETHERNET


def test_scapy_writers_microseconds_and_nanoseconds(tmp_path):
    pkts = [eth() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2)]
    pkts[0].time = Decimal("1700000000.123456")  # scapy rounds to its file's resolution
    wrpcap(str(tmp_path / "us.pcap"), pkts)
    pkts[0].time = Decimal("1700000000.123456789")
    with PcapWriter(str(tmp_path / "ns.pcap"), nano=True) as w:
        w.write(pkts)
    with PcapNgWriter(str(tmp_path / "ng.pcapng")) as w:
        w.write(pkts)
    assert read_all(tmp_path / "us.pcap")[0][0][0] == 1_700_000_000_123_456_000
    assert read_all(tmp_path / "ns.pcap")[0][0][0] == 1_700_000_000_123_456_789
    got = read_all(tmp_path / "ng.pcapng")[0][0]
    assert got[1] == bytes(pkts[0])
    assert abs(got[0] - 1_700_000_000_123_456_789) < 1000  # scapy's pcapng writer: microseconds


# ------------------------------------------------------------------------------------- pcapng
@pytest.mark.parametrize("order", ["<", ">"])
def test_pcapng_interfaces_resolutions_and_block_kinds(capture_file, order):
    fr = frames(2)
    raw4 = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2))
    raw6 = bytes(IPv6(src="::1", dst="::2") / UDP(sport=1, dport=2))
    sec = Section(order)
    sec.interface(ETHERNET, tsresol=9)  # 0: ns
    sec.interface(RAW)  # 1: default microseconds
    sec.interface(ETHERNET, tsresol=0x80 | 20)  # 2: 2^-20 s
    sec.interface(229, tsresol=3, tsoffset=1_700_000_000)  # 3: ms + offset, raw IPv6
    sec.packet(0, T0, fr[0])
    sec.raw(unknown_block(order=order))  # skipped
    sec.packet(1, T0 // 1000, raw4, wire=1500)
    sec.raw(block(4, b"\x00" * 8, order))  # name resolution block: skipped
    sec.packet(2, (1_700_000_000 << 20) | (3 << 18), fr[1])  # .75 s
    sec.packet(3, 123_456, raw6, opts=[(1, b"comment")])
    sec.raw(spb(fr[0], order))  # interface 0, no timestamp
    sec.raw(opb(1, 5_000_000, raw4, order))
    sec.raw(block(5, b"\x00" * 16, order))  # interface statistics: skipped
    path = capture_file("x.pcapng", sec.build())
    pkts, problems = read_all(path)
    assert not problems
    assert [p[3] for p in pkts] == [ETHERNET, RAW, ETHERNET, 229, ETHERNET, RAW]
    assert [p[1] for p in pkts] == [fr[0], raw4, fr[1], raw6, fr[0], raw4]
    assert pkts[1][2] == 1500
    assert [p[0] for p in pkts[:4]] == [
        T0,
        T0 // 1000 * 1000,
        1_700_000_000_750_000_000,
        1_700_000_123_456_000_000,
    ]
    assert pkts[4][0] == pkts[3][0]  # a Simple Packet Block has no time: that of the packet before it
    assert pkts[5][0] == 5_000_000_000


def test_simple_packet_blocks_take_the_previous_time(capture_file):
    """SPBs used to get time 0: a flow mixing them with EPBs then started in 1970."""
    f = frames(1)[0]
    sec = Section().interface(ETHERNET, tsresol=9).raw(spb(f)).packet(0, T0, f).raw(spb(f)).raw(spb(f))
    sec.packet(0, T0 + 5, f)
    path = capture_file("spb.pcapng", sec.build())
    assert [p[0] for p in read_all(path)[0]] == [0, T0, T0, T0, T0 + 5]
    assert [p[0] for p in read_all(path, 64)[0]] == [0, T0, T0, T0, T0 + 5]  # carried across batches


def test_pcapng_several_sections_reset_interfaces(capture_file):
    fr = frames(2)
    raw4 = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2))
    one = Section("<").interface(ETHERNET, tsresol=9).packet(0, T0, fr[0])
    two = Section(">").interface(RAW, tsresol=0x80 | 32).interface(ETHERNET).packet(0, 5 << 32, raw4)
    two.packet(1, 7_000_001, fr[1])
    three = Section("<").interface(ETHERNET).raw(unknown_block(0x80000001, 44))  # custom block
    path = capture_file("multi.pcapng", one.build() + two.build() + three.build())
    pkts, problems = read_all(path)
    assert not problems
    assert [(p[0], p[1], p[3]) for p in pkts] == [
        (T0, fr[0], ETHERNET),
        (5_000_000_000, raw4, RAW),
        (7_000_001_000, fr[1], ETHERNET),
    ]
    assert read_all(path, 64) == (pkts, [])  # blocks straddling tiny read chunks


@pytest.mark.parametrize("tsresol", [0xC0, 0xFF, 0x7F, 0x80 | 40, 30])
def test_pcapng_hostile_resolution_or_offset_never_raises(capture_file, tsresol):
    # 2^-64, 2^-127, 10^-127 used to raise OverflowError from numpy
    sec = Section().interface(ETHERNET, tsresol=tsresol, tsoffset=1 << 62)
    sec.packet(0, (1 << 64) - 2, frames(1)[0])
    pkts, _ = read_all(capture_file("r.pcapng", sec.build()))
    assert len(pkts) == 1


def test_pcapng_binary_fraction_is_exact(capture_file):
    # 2^-40 s ticks (64 bits hold 2^24 s): 0.5 s + 1 tick (0.909 ps) -> floor to the nanosecond
    ticks = (10_000_000 << 40) | (1 << 39) | 1
    sec = Section().interface(ETHERNET, tsresol=0x80 | 40).packet(0, ticks, frames(1)[0])
    pkts, _ = read_all(capture_file("b.pcapng", sec.build()))
    assert pkts[0][0] == 10_000_000_500_000_000


@pytest.mark.parametrize("chunk", [64, 1000, 4096])
def test_tiny_chunks_give_the_same_packets(capture_file, chunk):
    """Records straddling and larger than the read chunk are carried over intact."""
    rng = np.random.default_rng(1)
    data = [rng.integers(0, 256, size=int(n), dtype=np.uint8).tobytes() for n in rng.integers(1, 3000, 300)]
    p1 = capture_file("c.pcap", pcap_bytes([(i * 1000, d) for i, d in enumerate(data)], nanos=True))
    sec = Section().interface(ETHERNET, tsresol=9)
    for i, d in enumerate(data):
        sec.packet(0, i * 1000, d)
        if i % 50 == 0:
            sec.raw(unknown_block(size=5000))
    p2 = capture_file("c.pcapng", sec.build())
    for p in (p1, p2):
        pkts, problems = read_all(p, chunk)
        assert not problems
        assert [x[1] for x in pkts] == data
        assert [x[0] for x in pkts] == [i * 1000 for i in range(len(data))]


def test_batches_kept_by_the_consumer_keep_their_bytes(capture_file):
    """list(read_capture(...)) used to return batches whose buffers had been reused and overwritten."""
    data = [bytes([i % 251]) * (100 + i % 400) for i in range(500)]
    path = capture_file("keep.pcap", pcap_bytes([(i, d) for i, d in enumerate(data)]))
    batches = list(read_capture(str(path), 4096))
    assert len(batches) > 3
    assert [b.packet(i) for b in batches for i in range(len(b))] == data


# -------------------------------------------------------------------------------- compression
COMPRESSORS = {
    "gzip": gzip.compress,
    "bz2": bz2.compress,
    "xz": lzma.compress,
    "zstd": lambda d: zstandard.ZstdCompressor().compress(d),
}


@pytest.mark.parametrize("kind", list(COMPRESSORS))
def test_compressed_captures_detected_by_content(capture_file, kind):
    fr = frames(5)
    plain = pcap_bytes([(T0 + i, f) for i, f in enumerate(fr)], nanos=True)
    ng = Section().interface(ETHERNET, tsresol=9).packet(0, T0, fr[0]).build()
    for name, data, expect in (("a.pcap", plain, fr), ("b.cap", ng, fr[:1])):  # names say nothing
        pkts, problems = read_all(capture_file(name, COMPRESSORS[kind](data)))
        assert not problems
        assert [p[1] for p in pkts] == expect
        assert pkts[0][0] == T0


@pytest.mark.parametrize("kind", ["gzip", "xz", "zstd"])
def test_truncated_compressed_capture_keeps_what_was_read(capture_file, kind):
    data = pcap_bytes([(i * 1000, bytes([i % 256]) * (60 + i % 50)) for i in range(20000)])
    comp = COMPRESSORS[kind](data)
    pkts, problems = read_all(capture_file("cut.bin", comp[: len(comp) // 2]))
    assert 1000 < len(pkts) < 20000
    assert problems
    assert all(p.offset is not None for p in problems)


@pytest.mark.parametrize("kind", list(COMPRESSORS))
def test_garbage_after_compression_magic_is_a_capture_error(capture_file, kind):
    comp = COMPRESSORS[kind](pcap_bytes([(0, b"x" * 100)] * 50))
    bad = comp[:12] + bytes(200)  # zlib.error and ZstdError used to escape as tracebacks
    with pytest.raises(CaptureError) as info:
        read_all(capture_file("g.bin", bad))
    assert "decompression failed" in info.value.message


# -------------------------------------------------------------------------------------- stdin
@pytest.mark.parametrize("compressed", [False, True])
def test_stdin_dash(monkeypatch, compressed):
    fr = frames(3)
    data = Section().interface(ETHERNET, tsresol=9).packet(0, T0, fr[0]).packet(0, T0 + 1, fr[1]).build()
    if compressed:
        data = gzip.compress(data)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(data))))
    pkts, problems = read_all("-")
    assert not problems
    assert [(p[0], p[1]) for p in pkts] == [(T0, fr[0]), (T0 + 1, fr[1])]


# -------------------------------------------------------------------------------------- paths
def test_directories_and_globs(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for i, name in enumerate(("d/b.pcap", "d/a.pcap", "d/sub/c.pcapng", "d/.hidden.pcap", "e.pcap")):
        (tmp_path / name).write_bytes(pcap_bytes([(0, b"x" * (20 + i))]))  # distinct: identical ones are read once
    (tmp_path / "d" / "README.txt").write_text("notes")  # not a capture by content: left alone
    (tmp_path / "d" / "keys.log").write_bytes(gzip.compress(b"x"))  # compressed: tried
    got = expand_paths([str(tmp_path / "d")])
    assert got == [
        str(tmp_path / "d" / "a.pcap"),
        str(tmp_path / "d" / "b.pcap"),
        str(tmp_path / "d" / "keys.log"),
        str(tmp_path / "d" / "sub" / "c.pcapng"),
    ]
    assert expand_paths(str(tmp_path / "d" / "*.pcap")) == got[:2]
    assert expand_paths([str(tmp_path / "**" / "*.pcapng")]) == [got[3]]
    assert expand_paths(["-", str(tmp_path / "e.pcap")]) == ["-", str(tmp_path / "e.pcap")]
    named = str(tmp_path / "d" / "README.txt")
    assert expand_paths([named]) == [named]  # a file named explicitly is always tried
    with pytest.raises(CaptureError, match="no file matches"):
        expand_paths([str(tmp_path / "*.nothing")])


# ---------------------------------------------------------------------------------- link types
IP4 = IP(src="10.1.1.1", dst="10.2.2.2") / TCP(sport=40000, dport=443, flags="S")
IP6 = IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(sport=40000, dport=443, flags="S")


def _sll(proto: int, payload: bytes) -> bytes:
    return struct.pack(">HHH8sH", 0, 1, 6, b"\x02" * 6 + b"\0\0", proto) + payload


def _sll2(proto: int, payload: bytes) -> bytes:
    return struct.pack(">HHIHBB8s", proto, 0, 3, 1, 0, 6, b"\x02" * 6 + b"\0\0") + payload


def _nflog(payload: bytes) -> bytes:
    prefix = struct.pack("<HH", 8, 10) + b"abc\0"  # NFULA_PREFIX first: the TLV walk must skip it
    pl = struct.pack("<HH", 4 + len(payload), 9) + payload
    return struct.pack(">BBH", 2, 0, 0) + prefix + pl


LINK_CASES = {
    "ethernet": (1, lambda ip, et: bytes(eth())[:12] + struct.pack(">H", et) + ip),
    "sll": (113, lambda ip, et: _sll(et, ip)),
    "sll-vlan": (113, lambda ip, et: _sll(0x8100, struct.pack(">HH", 7, et) + ip)),
    "sll2": (276, lambda ip, et: _sll2(et, ip)),
    "sll2-vlan": (276, lambda ip, et: _sll2(0x8100, struct.pack(">HH", 7, et) + ip)),  # tcpdump -i any
    "sll-qinq": (113, lambda ip, et: _sll(0x88A8, struct.pack(">HHHH", 5, 0x8100, 7, et) + ip)),
    "raw12": (12, lambda ip, et: ip),
    "raw14": (14, lambda ip, et: ip),
    "raw101": (101, lambda ip, et: ip),
    "null-le": (0, lambda ip, et: struct.pack("<I", 2 if et == 0x800 else 24) + ip),
    "null-be": (0, lambda ip, et: struct.pack(">I", 2 if et == 0x800 else 30) + ip),
    "loop": (108, lambda ip, et: struct.pack(">I", 2 if et == 0x800 else 28) + ip),
    "ppp": (9, lambda ip, et: struct.pack(">H", 0x21 if et == 0x800 else 0x57) + ip),
    "ppp-hdlc": (50, lambda ip, et: b"\xff\x03" + struct.pack(">H", 0x21 if et == 0x800 else 0x57) + ip),
    "nflog": (239, lambda ip, et: _nflog(ip)),
}


@pytest.mark.parametrize("name", list(LINK_CASES))
def test_link_types(capture_file, name):
    linktype, make = LINK_CASES[name]
    recs = [(T0, make(bytes(IP4), 0x0800)), (T0 + 1, make(bytes(IP6), 0x86DD))]
    path = capture_file("l.pcap", pcap_bytes(recs, linktype=linktype, nanos=True))
    rows = []
    for b in read_capture(str(path)):
        assert set(b.linktype.tolist()) == {linktype}
        rows.append(decoded_frame(decode(b)))
    df = rows[0]
    assert df["anomaly"].isna().all()
    assert df[["src_ip", "dst_ip", "src_port", "dst_port", "proto"]].values.tolist() == [
        ["10.1.1.1", "10.2.2.2", 40000, 443, 6],
        ["2001:db8::1", "2001:db8::2", 40000, 443, 6],
    ]


@pytest.mark.parametrize("linktype", [228, 229])
def test_ipv4_ipv6_only_link_types(linktype):
    ip = IP4 if linktype == 228 else IP6
    df = decoded_frame(decode(batch_of([bytes(ip)], linktype)))
    assert df.loc[0, "ip_version"] == (4 if linktype == 228 else 6)
    assert df.loc[0, "dst_port"] == 443


def test_link_type_values_beyond_int16_are_unsupported_not_a_crash(capture_file):
    """A damaged header naming link type 0x8001 used to raise OverflowError (linktype is int16)."""
    f = frames(1)[0]
    for path in (
        capture_file("a.pcap", pcap_bytes([(1, f)], linktype=0x8001)),
        capture_file("b.pcapng", Section().interface(0xFFFF).packet(0, 1, f).build()),
    ):
        batches = list(read_capture(str(path)))
        assert decoded_frame(decode(batches[0]))["anomaly"].tolist() == ["unsupported_linktype"]


def test_unknown_link_type_is_an_anomaly_not_an_error():
    df = decoded_frame(decode(batch_of([bytes(IP4)], 147)))
    assert df.loc[0, "anomaly"] == "unsupported_linktype"


# ---------------------------------------------------------------------------------- bad input
GOOD = frames(4)
PCAP = pcap_bytes([(T0 + i, f) for i, f in enumerate(GOOD)], nanos=True)
REC = [24]  # record offsets in PCAP
for _f in GOOD:
    REC.append(REC[-1] + 16 + len(_f))


def _ng() -> tuple[bytes, list[int]]:
    blocks = [shb(), idb(ETHERNET, tsresol=9)] + [epb(0, T0 + i, f) for i, f in enumerate(GOOD)]
    offs = np.cumsum([0] + [len(b) for b in blocks]).tolist()
    return b"".join(blocks), offs


NG, NG_OFF = _ng()  # NG_OFF[2 + i] = offset of packet block i


@pytest.mark.parametrize(
    ("name", "data", "offset", "words"),
    [
        ("empty", b"", 0, "empty file"),
        ("wrong magic", b"GIF89a" + bytes(100), 0, "not a pcap or pcapng"),
        ("pcap header cut", PCAP[:10], 10, "file header"),
        ("pcapng bad byte order magic", NG[:8] + b"\1\2\3\4" + NG[12:], 8, "byte-order magic"),
        ("text file", b"hello world\n" * 10, 0, "not a pcap"),
    ],
)
def test_unreadable_captures_raise_capture_error(capture_file, name, data, offset, words):
    path = capture_file("bad.pcap", data)
    with pytest.raises(CaptureError) as info:
        read_all(path)
    err = info.value
    assert err.path == str(path)
    assert err.offset == offset
    assert words in err.message
    assert str(path) in str(err) and f"byte {offset}" in str(err)


@pytest.mark.parametrize(
    ("name", "data", "kept", "offset", "kind"),
    [
        ("pcap last record cut", PCAP[:-5], 3, REC[3], "truncated_record"),
        ("pcap cut in a record header", PCAP[: REC[2] + 7], 2, REC[2], "truncated_record"),
        (
            "pcap absurd caplen",
            PCAP[: REC[2]] + struct.pack("<IIII", 0, 0, 0x7FFFFFFF, 60) + bytes(80),
            2,
            REC[2],
            "corrupt_record",
        ),
        ("pcapng last block cut", NG[:-6], 3, NG_OFF[5], "truncated_record"),
        ("pcapng bad trailer", NG[:-1] + b"\x99", 3, NG_OFF[5], "corrupt_record"),
        (
            "pcapng absurd block length",
            NG[: NG_OFF[4]] + struct.pack("<II", 6, 0x7FFFFFF0) + bytes(64),
            2,
            NG_OFF[4],
            "corrupt_record",
        ),
        (
            "pcapng unaligned block length",
            NG[: NG_OFF[4]] + struct.pack("<II", 6, 61) + bytes(64),
            2,
            NG_OFF[4],
            "corrupt_record",
        ),
        (
            "pcapng packet longer than its block",
            NG[: NG_OFF[4]] + epb(0, 0, GOOD[0])[:20] + struct.pack("<I", 5000) + epb(0, 0, GOOD[0])[24:],
            2,
            NG_OFF[4],
            "corrupt_record",
        ),
        ("pcapng bad later section", NG + NG[:8] + b"\1\2\3\4" + NG[12:], 4, len(NG) + 8, "corrupt_record"),
    ],
)
def test_damage_keeps_what_was_read(capture_file, name, data, kept, offset, kind):
    pkts, problems = read_all(capture_file("d.pcap", data))
    assert [p[1] for p in pkts] == GOOD[:kept]
    assert [(p.kind, p.offset) for p in problems] == [(kind, offset)]
    assert problems[0].detail


@pytest.mark.parametrize(
    ("data", "offset"),
    [
        (PCAP[: REC[0] + 10], REC[0]),  # the first record cut
        (PCAP[: REC[0]] + struct.pack("<IIII", 0, 0, 1 << 30, 60) + bytes(80), REC[0]),
        (NG[: NG_OFF[2]] + struct.pack("<II", 6, 13) + bytes(64), NG_OFF[2]),
    ],
)
def test_damage_before_the_first_packet_is_a_capture_error(capture_file, data, offset):
    """Nothing could be read: not a 'partial' capture with zero packets."""
    with pytest.raises(CaptureError) as info:
        read_all(capture_file("first.pcap", data))
    assert info.value.offset == offset


def test_packets_naming_undescribed_interfaces_are_reported_with_offset(capture_file):
    data = shb() + idb(ETHERNET) + epb(0, 1, GOOD[0]) + epb(3, 2, GOOD[1]) + epb(0, 3, GOOD[2])
    pkts, problems = read_all(capture_file("i.pcapng", data))
    assert [p[1] for p in pkts] == [GOOD[0], GOOD[2]]
    assert [p.kind for p in problems] == ["unknown_interface"]
    assert problems[0].offset is not None and "interface 3" in problems[0].detail


def test_interface_option_running_past_its_block(capture_file):
    """An if_tsresol option header without its value used to raise IndexError."""
    body = struct.pack("<HHI", ETHERNET, 0, 0) + struct.pack("<HH", 2, 4) + b"eth0" + struct.pack("<HH", 9, 1)
    data = shb() + block(1, body, "<") + epb(0, 5, GOOD[0])
    pkts, problems = read_all(capture_file("opt.pcapng", data))
    assert [(p[0], p[1]) for p in pkts] == [(5000, GOOD[0])] and not problems


def test_directory_and_missing_file(tmp_path):
    with pytest.raises(CaptureError, match="is a directory"):
        read_all(tmp_path)
    with pytest.raises(CaptureError, match="cannot open"):
        read_all(tmp_path / "missing.pcap")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(capture_file):
    path = capture_file("locked.pcap", PCAP)
    path.chmod(0)
    with pytest.raises(CaptureError, match="cannot open"):
        read_all(path)


@st.composite
def damaged(draw):
    data = bytearray(draw(st.sampled_from([PCAP, NG, NG + NG])))
    for _ in range(draw(st.integers(0, 6))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))]), draw(st.sampled_from([64, 100, 1 << 20]))


@fuzz_settings(examples(250))
@given(damaged())
def test_damaged_files_never_raise_anything_but_capture_error(case):
    data, chunk = case
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "f")
        with open(path, "wb") as fh:
            fh.write(data)
        try:
            for b in read_capture(path, chunk):
                ends = b.offset + b.caplen
                assert (b.offset >= 0).all() and (ends <= len(b.buf)).all()
                assert (b.caplen >= 0).all()
                for p in b.problems:
                    assert p.offset is None or 0 <= p.offset <= len(data)
        except CaptureError as exc:
            assert exc.path == path


# ------------------------------------------------------------------------------------- memory
def _peak_reading(path: str) -> int:
    tracemalloc.start()
    try:
        n = 0
        for b in read_capture(path):
            n += len(decode(b).cols)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_reading_memory_does_not_grow_with_file_size(tmp_path):
    frame = frames(1)[0]
    small, big = tmp_path / "50k.pcap", tmp_path / "200k.pcap"
    small.write_bytes(pcap_bytes((i * 1000, frame) for i in range(50_000)))
    big.write_bytes(pcap_bytes((i * 1000, frame) for i in range(200_000)))
    _peak_reading(str(small))  # warm-up: numba loads its cache, imports settle
    p_small = _peak_reading(str(small))
    p_big = _peak_reading(str(big))
    assert p_big < p_small * 1.25 + 512 * 1024, (p_small, p_big)
    assert p_big < big.stat().st_size, (p_big, big.stat().st_size)
