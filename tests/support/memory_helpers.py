"""Test helper: captures that drive memory (issue 16 item 3), streamed instead of stored, and the
peak RSS of one child process.

The captures are generated packet by packet as pcap bytes (`pcap_chunks`), so a test pipes
hundreds of MB into `intransit ... -` without a file: `concurrent_flows` (N TCP connections opened
first, then each sends `per_flow` bytes round robin, none ever closes: every byte is live at once)
and `tls_sessions` (N short TLS 1.2 sessions, each with a certificate of its own). `peak_rss`
runs a command with that input and returns the child's own peak RSS (os.wait4: not the maximum
over every child this process ever had, which RUSAGE_CHILDREN would give).
"""

from __future__ import annotations

import os
import struct
import subprocess
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

ETH = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"
T0 = 1_700_000_000_000_000_000  # ns
SYN, ACK, PSH, FIN = 0x02, 0x10, 0x08, 0x01


def tcp_frame(src: int, dst: int, sport: int, dport: int, seq: int, ack: int, flags: int,
              payload: bytes = b"") -> bytes:
    """Ethernet/IPv4/TCP; addresses as 32-bit integers (checksums are never checked)."""
    ip = struct.pack(">BBHHHBBHII", 0x45, 0, 40 + len(payload), 0, 0x4000, 64, 6, 0, src, dst)
    tcp = struct.pack(">HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 0x50, flags, 65535, 0, 0)
    return ETH + ip + tcp + payload


def pcap_chunks(packets: Iterable[tuple[int, bytes]], chunk: int = 1 << 20) -> Iterator[bytes]:
    """A classic nanosecond pcap of (ts_ns, frame) packets, in chunks of about `chunk` bytes."""
    parts = [struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1)]
    size = 24
    for ts, frame in packets:
        sec, ns = divmod(ts, 1_000_000_000)
        parts.append(struct.pack("<IIII", sec, ns, len(frame), len(frame)))
        parts.append(frame)
        size += 16 + len(frame)
        if size >= chunk:
            yield b"".join(parts)
            parts, size = [], 0
    if parts:
        yield b"".join(parts)


def _client(i: int) -> tuple[int, int]:
    """Client address and port of flow i: distinct for every i below 2**24."""
    return (10 << 24) | (1 << 16) | (i >> 8 & 0xFFFF), 1024 + (i & 0xFF)


SERVER = (10 << 24) | (2 << 16) | 1


def concurrent_flows(n: int, per_flow: int = 65536, seg: int = 1460, fill: bytes = b"\x00",
                     step_ns: int = 10_000) -> Iterator[tuple[int, bytes]]:
    """n TCP connections to port 8000: all handshakes first, then every connection sends its next
    `seg` bytes in turn until each has sent `per_flow`; none closes, so all stay live to the end.
    The payload is `fill` repeated (zeros: no dissector claims it; the whole budget is kept)."""
    ts = T0
    isn_c, isn_s = 1000, 5000
    for i in range(n):
        cip, cport = _client(i)
        for frame in (tcp_frame(cip, SERVER, cport, 8000, isn_c, 0, SYN),
                      tcp_frame(SERVER, cip, 8000, cport, isn_s, isn_c + 1, SYN | ACK),
                      tcp_frame(cip, SERVER, cport, 8000, isn_c + 1, isn_s + 1, ACK)):
            yield ts, frame
            ts += step_ns
    body = (fill * (seg // len(fill) + 1))[:seg]
    for off in range(0, per_flow, seg):
        data = body[: min(seg, per_flow - off)]
        for i in range(n):
            cip, cport = _client(i)
            yield ts, tcp_frame(cip, SERVER, cport, 8000, isn_c + 1 + off, isn_s + 1, ACK | PSH, data)
            ts += step_ns


@dataclass(frozen=True)
class _Leaf:
    der: bytes
    serial_at: int


def _leaf_template() -> _Leaf:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "www.example.org")])
    serial = int.from_bytes(b"\x5a" + b"\xa5" * 15, "big")
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(serial).not_valid_before(start).not_valid_after(start + dt.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("www.example.org")]), critical=False)
            .sign(key, hashes.SHA256()))
    der = cert.public_bytes(serialization.Encoding.DER)
    at = der.index(serial.to_bytes(16, "big"))
    return _Leaf(der, at)


def tls_sessions(n: int, step_ns: int = 1_000_000) -> Iterator[tuple[int, bytes]]:
    """n complete TLS 1.2 sessions to port 443, one after the other (each closed), each with a
    leaf certificate of its own (the template's serial number replaced by the session number, so
    every DER and SHA-256 differs; the signature no longer verifies, which nothing here checks)."""
    from support.tls_helpers import certificate_msg, client_hello_body, handshake, record, server_hello_body, sni_ext

    leaf = _leaf_template()
    ch = record(22, handshake(1, client_hello_body(extensions=[sni_ext("www.example.org")])))
    sh = handshake(2, server_hello_body())
    done = handshake(14, b"")
    ts = T0
    c0, s0 = 1000, 5000
    for i in range(n):
        der = leaf.der[: leaf.serial_at] + b"\x5a" + i.to_bytes(15, "big") + leaf.der[leaf.serial_at + 16 :]
        flight = record(22, sh + certificate_msg([der]) + done)
        cip, cport = _client(i)
        s = [
            (cip, SERVER, cport, 443, c0, 0, SYN, b""),
            (SERVER, cip, 443, cport, s0, c0 + 1, SYN | ACK, b""),
            (cip, SERVER, cport, 443, c0 + 1, s0 + 1, ACK, b""),
            (cip, SERVER, cport, 443, c0 + 1, s0 + 1, ACK | PSH, ch),
            (SERVER, cip, 443, cport, s0 + 1, c0 + 1 + len(ch), ACK | PSH, flight),
            (cip, SERVER, cport, 443, c0 + 1 + len(ch), s0 + 1 + len(flight), ACK | FIN, b""),
            (SERVER, cip, 443, cport, s0 + 1 + len(flight), c0 + 2 + len(ch), ACK | FIN, b""),
            (cip, SERVER, cport, 443, c0 + 2 + len(ch), s0 + 2 + len(flight), ACK, b""),
        ]
        for pkt in s:
            yield ts, tcp_frame(*pkt)
            ts += step_ns // 8


def peak_rss(argv: Sequence[str], chunks: Iterable[bytes], *, cwd: str | None = None,
             env: dict[str, str] | None = None, timeout: float = 600) -> tuple[int, int, bytes]:
    """Run argv with `chunks` on its stdin: (its peak RSS in bytes, exit status, stderr)."""
    proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, cwd=cwd, env=env)
    assert proc.stdin is not None and proc.stderr is not None
    err: list[bytes] = []
    reader = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        for chunk in chunks:
            proc.stdin.write(chunk)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join(timeout)
    proc.stderr.close()
    return usage.ru_maxrss * 1024, proc.returncode, b"".join(err)
