"""QUIC frames of a decrypted packet payload (RFC 9000 section 19) and CRYPTO stream reassembly.

`parse_frames(payload)` walks every frame type RFC 9000 (and the DATAGRAM extension, RFC 9221)
defines, keeping what a passive auditor needs (CRYPTO data, CONNECTION_CLOSE, PING/ACK counts) and
skipping the rest by their encoded lengths. An unknown frame type ends the walk: frame lengths are
not self-describing, so nothing after it can be trusted. The frames parsed before an error are kept.

`CryptoStream` reassembles CRYPTO frame data by offset: out of order, overlapping, duplicated,
across packets and datagrams, bounded by a byte cap (never allocating by a wire length first).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from analyzer.dissect.quic._packets import read_varint
from analyzer.errors import NeedMoreData, ParseError

__all__ = ["ConnectionClose", "CryptoStream", "FrameSummary", "parse_frames"]

# Frame types -> the number of varints that follow (fixed-shape frames only).
_VARINT_FRAMES = {
    0x04: 3,  # RESET_STREAM
    0x05: 2,  # STOP_SENDING
    0x10: 1,  # MAX_DATA
    0x11: 2,  # MAX_STREAM_DATA
    0x12: 1,  # MAX_STREAMS (bidi)
    0x13: 1,  # MAX_STREAMS (uni)
    0x14: 1,  # DATA_BLOCKED
    0x15: 2,  # STREAM_DATA_BLOCKED
    0x16: 1,  # STREAMS_BLOCKED (bidi)
    0x17: 1,  # STREAMS_BLOCKED (uni)
    0x19: 1,  # RETIRE_CONNECTION_ID
}
_NAMES = {
    0x00: "padding", 0x01: "ping", 0x02: "ack", 0x03: "ack", 0x04: "reset_stream",
    0x05: "stop_sending", 0x06: "crypto", 0x07: "new_token", 0x10: "max_data",
    0x11: "max_stream_data", 0x12: "max_streams", 0x13: "max_streams", 0x14: "data_blocked",
    0x15: "stream_data_blocked", 0x16: "streams_blocked", 0x17: "streams_blocked",
    0x18: "new_connection_id", 0x19: "retire_connection_id", 0x1A: "path_challenge",
    0x1B: "path_response", 0x1C: "connection_close", 0x1D: "connection_close",
    0x1E: "handshake_done", 0x30: "datagram", 0x31: "datagram",
}  # fmt: skip


@dataclass(slots=True)
class ConnectionClose:
    error_code: int
    frame_type: int | None  # the frame that triggered a transport error (type 0x1c only)
    reason: str
    application: bool  # type 0x1d: an application-level close

    @property
    def tls_alert(self) -> int | None:
        """The TLS alert of a CRYPTO_ERROR (0x0100..0x01ff, RFC 9001 section 4.8)."""
        if not self.application and 0x100 <= self.error_code <= 0x1FF:
            return self.error_code - 0x100
        return None


@dataclass(slots=True)
class FrameSummary:
    """What one packet payload carried."""

    crypto: list[tuple[int, bytes]] = field(default_factory=list)  # (stream offset, data)
    close: ConnectionClose | None = None
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None  # why the walk stopped early (the frames before it are kept)
    error_offset: int | None = None


def parse_frames(payload: bytes) -> FrameSummary:
    """Walk all frames of a decrypted payload. Never raises on wire bytes."""
    out = FrameSummary()
    counts = out.counts
    pos = 0
    end = len(payload)
    try:
        while pos < end:
            start = pos
            ftype, pos = read_varint(payload, pos, end)
            if ftype == 0x00:
                # runs of PADDING are common (1000+ bytes): skip them in one C-level step
                rest = payload[pos:]
                pos += len(rest) - len(rest.lstrip(b"\x00"))
            elif ftype == 0x01 or ftype == 0x1E:
                pass
            elif ftype == 0x06:
                off, pos = read_varint(payload, pos, end)
                ln, pos = read_varint(payload, pos, end)
                if pos + ln > end:
                    raise ParseError(f"crypto frame length {ln} runs past the packet", start)
                out.crypto.append((off, payload[pos : pos + ln]))
                pos += ln
            elif ftype == 0x02 or ftype == 0x03:
                _, pos = read_varint(payload, pos, end)  # largest acknowledged
                _, pos = read_varint(payload, pos, end)  # ack delay
                nranges, pos = read_varint(payload, pos, end)
                _, pos = read_varint(payload, pos, end)  # first range
                if nranges > end - pos:  # each range takes at least 2 bytes
                    raise ParseError(f"ack frame claims {nranges} ranges", start)
                for _ in range(nranges * 2):
                    _, pos = read_varint(payload, pos, end)
                if ftype == 0x03:
                    for _ in range(3):
                        _, pos = read_varint(payload, pos, end)
            elif ftype == 0x1C or ftype == 0x1D:
                code, pos = read_varint(payload, pos, end)
                trigger = None
                if ftype == 0x1C:
                    trigger, pos = read_varint(payload, pos, end)
                rlen, pos = read_varint(payload, pos, end)
                if pos + rlen > end:
                    raise ParseError(f"connection_close reason length {rlen} runs past the packet", start)
                reason = payload[pos : pos + min(rlen, 200)].decode("utf-8", "backslashreplace")
                pos += rlen
                out.close = ConnectionClose(code, trigger, reason, ftype == 0x1D)
            elif ftype in _VARINT_FRAMES:
                for _ in range(_VARINT_FRAMES[ftype]):
                    _, pos = read_varint(payload, pos, end)
            elif ftype == 0x07:
                ln, pos = read_varint(payload, pos, end)
                pos = _skip(pos, ln, end, start)
            elif 0x08 <= ftype <= 0x0F:
                _, pos = read_varint(payload, pos, end)  # stream id
                if ftype & 0x04:
                    _, pos = read_varint(payload, pos, end)
                if ftype & 0x02:
                    ln, pos = read_varint(payload, pos, end)
                    pos = _skip(pos, ln, end, start)
                else:
                    pos = end
            elif ftype == 0x18:
                _, pos = read_varint(payload, pos, end)
                _, pos = read_varint(payload, pos, end)
                if pos >= end:
                    raise NeedMoreData(1)
                cid_len = payload[pos]
                if cid_len < 1 or cid_len > 20:
                    raise ParseError(f"new_connection_id with a {cid_len}-byte id", start)
                pos = _skip(pos + 1, cid_len + 16, end, start)
            elif ftype == 0x1A or ftype == 0x1B:
                pos = _skip(pos, 8, end, start)
            elif ftype == 0x30:
                pos = end
            elif ftype == 0x31:
                ln, pos = read_varint(payload, pos, end)
                pos = _skip(pos, ln, end, start)
            else:
                raise ParseError(f"unknown frame type 0x{ftype:x}", start)
            name = _NAMES.get(ftype, "other")
            counts[name] = counts.get(name, 0) + 1
    except NeedMoreData:
        out.error = "frame runs past the end of the packet"
        out.error_offset = pos
    except ParseError as exc:
        out.error = str(exc)
        out.error_offset = exc.offset
    return out


def _skip(pos: int, n: int, end: int, start: int) -> int:
    if pos + n > end:
        raise ParseError(f"frame field of {n} bytes runs past the packet", start)
    return pos + n


class CryptoStream:
    """Offset-keyed reassembly of one CRYPTO stream (one direction, one encryption level).

    Data beyond `cap` bytes of stream offset is dropped and `overflow` set; nothing is allocated
    for it. Overlaps keep the first copy of each byte (a retransmission carries the same bytes;
    a conflicting copy is counted in `conflicts`).
    """

    __slots__ = ("_buf", "_spans", "cap", "conflicts", "frames", "overflow")

    def __init__(self, cap: int = 64 * 1024) -> None:
        self.cap = cap
        self._buf = bytearray()
        self._spans: list[list[int]] = []  # sorted, disjoint, non-adjacent [start, end) ranges
        self.overflow = False
        self.conflicts = 0
        self.frames = 0

    def add(self, offset: int, data: bytes) -> None:
        self.frames += 1
        if not data:
            return
        end = offset + len(data)
        if end > self.cap:
            self.overflow = True
            if offset >= self.cap:
                return
            data = data[: self.cap - offset]
            end = self.cap
        if end > len(self._buf):
            self._buf.extend(bytes(end - len(self._buf)))
        # write only the bytes not yet covered; count conflicting duplicates
        pos = offset
        for s, e in self._spans:
            if e <= pos:
                continue
            if s >= end:
                break
            if s > pos:
                self._buf[pos:s] = data[pos - offset : s - offset]
            ov_s, ov_e = max(s, pos), min(e, end)
            if ov_e > ov_s and self._buf[ov_s:ov_e] != data[ov_s - offset : ov_e - offset]:
                self.conflicts += 1
            pos = max(pos, e)
            if pos >= end:
                break
        if pos < end:
            self._buf[pos:end] = data[pos - offset :]
        self._merge(offset, end)

    def _merge(self, s: int, e: int) -> None:
        spans = self._spans
        out: list[list[int]] = []
        placed = False
        for span in spans:
            if span[1] < s:
                out.append(span)
            elif span[0] > e:
                if not placed:
                    out.append([s, e])
                    placed = True
                out.append(span)
            else:
                s, e = min(s, span[0]), max(e, span[1])
        if not placed:
            out.append([s, e])
        self._spans = out

    @property
    def contiguous(self) -> bytes:
        """The bytes from offset 0 up to the first hole."""
        if self._spans and self._spans[0][0] == 0:
            return bytes(self._buf[: self._spans[0][1]])
        return b""

    @property
    def contiguous_len(self) -> int:
        return self._spans[0][1] if self._spans and self._spans[0][0] == 0 else 0

    @property
    def received(self) -> int:
        return sum(e - s for s, e in self._spans)

    @property
    def holes(self) -> bool:
        return len(self._spans) > 1 or bool(self._spans and self._spans[0][0] != 0)
