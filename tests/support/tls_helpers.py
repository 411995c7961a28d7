"""Test helpers for the TLS dissector: pcap -> FlowPayloads (scapy, tests only) and handshake
builders for crafted inputs.

`flows_from_pcap` is a deliberately simple stand-in for the flow layer: per TCP connection (the
innermost TCP header of each packet, so tunnels work), payloads of each direction are put in
sequence order from the SYN (or the lowest sequence number seen), duplicates and overlaps dropped,
and reassembly stops at the first hole, as `StreamPrefix` documents.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from analyzer.dissect.base import FlowPayload, StreamPrefix

CORPUS = Path(os.environ.get("INTRANSIT_CORPUS", Path(__file__).resolve().parents[3] / "shared" / "corpus"))
if not CORPUS.is_dir():
    CORPUS = Path("/work/shared/corpus")


def corpus_dir() -> Path | None:
    return CORPUS if (CORPUS / "pcaps").is_dir() else None


@dataclass
class _Dir:
    segs: list[tuple[int, bytes, float, bool]] = field(default_factory=list)  # seq, data, ts, cut
    isn: int | None = None
    first_ts: float | None = None


@dataclass
class _Conn:
    a: tuple[str, int]
    b: tuple[str, int]
    first: tuple[str, int]
    syn_from: tuple[str, int] | None = None
    dirs: dict[tuple[str, int], _Dir] = field(default_factory=dict)
    reset: bool = False
    ts: float = 0.0


def _reassemble(d: _Dir, budget: int) -> StreamPrefix:
    if not d.segs:
        return StreamPrefix(start_known=d.isn is not None)
    if d.isn is not None:
        base = (d.isn + 1) & 0xFFFFFFFF
        start_known = True
    else:
        base = min(s[0] for s in d.segs)
        start_known = False
    segs = sorted(((s - base) & 0xFFFFFFFF, p, ts, cut) for s, p, ts, cut in d.segs)
    out = bytearray()
    times: list[tuple[int, float]] = []
    gap_at = None
    gap_len = 0
    n = 0
    for rel, payload, ts, cut in segs:
        if rel > 0x7FFFFFFF:  # before the base: retransmitted SYN data or wrap confusion
            continue
        end = rel + len(payload)
        if end <= len(out):
            continue
        if rel > len(out):
            gap_at = len(out)
            gap_len = rel - len(out)
            break
        piece = payload[len(out) - rel :]
        times.append((len(out), ts))
        out += piece
        n += 1
        if cut:  # snaplen cut this segment: what follows it is unknown
            gap_at = len(out)
            break
    budget_hit = len(out) > budget
    data = bytes(out[:budget])
    return StreamPrefix(
        data=data,
        start_known=start_known,
        gap_at=gap_at if not budget_hit else None,
        gap_len=gap_len,
        budget_hit=budget_hit,
        segments=n,
        times=times,
    )


def _looks_like_client_hello(data: bytes) -> bool:
    if len(data) >= 6 and data[0] == 0x16 and data[1] == 3 and data[5] == 1:
        return True
    return len(data) >= 3 and bool(data[0] & 0x80) and data[2] == 1


def flows_from_pcap(path: str | Path, budget: int = 1 << 20) -> list[FlowPayload]:
    """Every TCP connection of a capture as a FlowPayload (scapy; for tests only)."""
    from scapy.all import PcapReader, conf  # noqa: F401  (scapy imported lazily: tests only)
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    from scapy.packet import Raw

    for contrib in ("geneve", "gtp", "erspan"):
        with contextlib.suppress(ImportError):
            __import__(f"scapy.contrib.{contrib}")
    conns: dict[tuple[tuple[str, int], tuple[str, int]], _Conn] = {}
    order: list[tuple[tuple[str, int], tuple[str, int]]] = []
    with PcapReader(str(path)) as reader:
        for pkt in reader:
            tcp = None
            layer = pkt
            while layer is not None and layer.name != "NoPayload":
                if isinstance(layer, TCP):
                    tcp = layer
                layer = layer.payload if layer.payload is not None else None
            if tcp is None:
                # scapy leaves some link types undecoded (BSD loopback carrying IPv6): try the
                # first Raw payload as an IP packet.
                raw_layer = pkt.getlayer(Raw)
                if raw_layer is not None and raw_layer.load[:1] and raw_layer.load[0] >> 4 in (4, 6):
                    inner = (IP if raw_layer.load[0] >> 4 == 4 else IPv6)(raw_layer.load)
                    tcp = inner.getlayer(TCP)
                if tcp is None:
                    continue
            ip = tcp.underlayer
            if not isinstance(ip, IP | IPv6):
                continue
            src = (str(ip.src), int(tcp.sport))
            dst = (str(ip.dst), int(tcp.dport))
            key = (src, dst) if src <= dst else (dst, src)
            conn = conns.get(key)
            ts = float(pkt.time)
            if conn is None:
                conn = _Conn(a=key[0], b=key[1], first=src, ts=ts)
                conns[key] = conn
                order.append(key)
            d = conn.dirs.setdefault(src, _Dir())
            flags = int(tcp.flags)
            if flags & 0x04:
                conn.reset = True
            if flags & 0x02:
                d.isn = int(tcp.seq)
                if not flags & 0x10:
                    conn.syn_from = src
            raw = bytes(tcp.payload) if tcp.payload is not None else b""
            # Padding (Ethernet trailer) and snaplen cuts: trust the IP lengths.
            if isinstance(ip, IP):
                expect = int(ip.len) - int(ip.ihl) * 4 - int(tcp.dataofs) * 4
            else:
                expect = int(ip.plen) - int(tcp.dataofs) * 4
            cut = False
            if 0 <= expect < len(raw):
                raw = raw[:expect]
            elif expect > len(raw):
                cut = True
            if raw:
                d.segs.append((int(tcp.seq), raw, ts, cut))
    flows = []
    for i, key in enumerate(order):
        conn = conns[key]
        a, b = conn.a, conn.b
        if conn.syn_from is not None:
            client = conn.syn_from
        else:
            pa = _reassemble(conn.dirs.get(a, _Dir()), 64)
            pb = _reassemble(conn.dirs.get(b, _Dir()), 64)
            if _looks_like_client_hello(pa.data):
                client = a
            elif _looks_like_client_hello(pb.data):
                client = b
            else:
                client = conn.first
        server = b if client == a else a
        flows.append(
            FlowPayload(
                uid=f"T{i}",
                transport="tcp",
                client_ip=client[0],
                server_ip=server[0],
                client_port=client[1],
                server_port=server[1],
                ts_start=conn.ts,
                to_server=_reassemble(conn.dirs.get(client, _Dir()), budget),
                to_client=_reassemble(conn.dirs.get(server, _Dir()), budget),
                reset=conn.reset,
            )
        )
    return flows


def flow_from_bytes(
    to_server: bytes, to_client: bytes = b"", *, uid: str = "X1", reset: bool = False, server_port: int = 443
) -> FlowPayload:
    return FlowPayload(
        uid=uid,
        transport="tcp",
        client_ip="192.0.2.1",
        server_ip="192.0.2.2",
        client_port=50000,
        server_port=server_port,
        ts_start=1_700_000_000.0,
        to_server=StreamPrefix(data=to_server),
        to_client=StreamPrefix(data=to_client),
        reset=reset,
    )


# --- raw builders (no scapy: exact control of every length field) --------------------------------


def record(ctype: int, body: bytes, version: int = 0x0303) -> bytes:
    return struct.pack(">BHH", ctype, version, len(body)) + body


def handshake(mtype: int, body: bytes) -> bytes:
    return bytes([mtype]) + len(body).to_bytes(3, "big") + body


def ext(etype: int, body: bytes) -> bytes:
    return struct.pack(">HH", etype, len(body)) + body


def u16s(values: Iterable[int]) -> bytes:
    vals = list(values)
    return struct.pack(f">H{len(vals)}H", 2 * len(vals), *vals)


def sni_ext(name: str) -> bytes:
    n = name.encode()
    return ext(0, struct.pack(">HBH", len(n) + 3, 0, len(n)) + n)


def alpn_ext(names: list[bytes]) -> bytes:
    body = b"".join(bytes([len(x)]) + x for x in names)
    return ext(16, struct.pack(">H", len(body)) + body)


def client_hello_body(
    *,
    version: int = 0x0303,
    ciphers: Iterable[int] = (0x1301, 0x1302, 0xC02F),
    session_id: bytes = b"",
    extensions: Iterable[bytes] = (),
    compression: bytes = b"\x00",
    random: bytes = b"\x11" * 32,
    extensions_block: bool | None = None,
) -> bytes:
    """A ClientHello body; the extensions block is written when there are extensions (or when
    `extensions_block` is True)."""
    cs = list(ciphers)
    exts = b"".join(extensions)
    body = struct.pack(">H", version) + random + bytes([len(session_id)]) + session_id
    body += struct.pack(f">H{len(cs)}H", 2 * len(cs), *cs)
    body += bytes([len(compression)]) + compression
    if extensions_block or (extensions_block is None and exts):
        body += struct.pack(">H", len(exts)) + exts
    return body


def server_hello_body(
    *,
    version: int = 0x0303,
    cipher: int = 0xC02F,
    session_id: bytes = b"",
    extensions: Iterable[bytes] = (),
    random: bytes = b"\x22" * 32,
) -> bytes:
    exts = b"".join(extensions)
    body = struct.pack(">H", version) + random + bytes([len(session_id)]) + session_id
    body += struct.pack(">HB", cipher, 0)
    if exts:
        body += struct.pack(">H", len(exts)) + exts
    return body


def make_chain(server_name: str = "www.example.org") -> list[bytes]:
    """A two-certificate chain (leaf, self-signed root) with EC keys: DER, leaf first."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    root_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Root")])
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, server_name)])
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(leaf_name)
        .issuer_name(root_name)
        .public_key(leaf_key.public_key())
        .serial_number(2)
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(server_name)]), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    return [c.public_bytes(serialization.Encoding.DER) for c in (leaf, root)]


def certificate_msg(ders: list[bytes]) -> bytes:
    entries = b"".join(len(d).to_bytes(3, "big") + d for d in ders)
    return handshake(11, len(entries).to_bytes(3, "big") + entries)


def records(ctype: int, payload: bytes, size: int, version: int = 0x0303) -> bytes:
    """`payload` cut into records of at most `size` bytes (handshake fragmentation)."""
    return b"".join(record(ctype, payload[i : i + size], version) for i in range(0, len(payload), size))
