"""What the flow table hands the dissectors: the reassembled payload prefixes of one ended flow.

The flow table hands each dissector one `FlowPayload`: the ordered, reassembled payload prefix of
each direction of one flow (TCP) or its first datagrams (UDP). These types belong to the flows
layer (it makes them); `analyzer.dissect` reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class StreamPrefix:
    """One direction of a TCP flow, reassembled in sequence order up to the byte budget.

    `data` holds the contiguous bytes from the start of the stream (the byte after the SYN when
    `start_known`, else the lowest sequence number seen: the flow was picked up mid-stream).
    Reassembly stops at the first hole: `gap_at` is then the stream offset of that hole (equal to
    len(data)) and `gap_len` its length in bytes; nothing after a hole is guessed. `budget_hit`
    says the prefix was cut: by the per-direction byte budget, or, for a stream of TLS records,
    after the third record from the first application-data record (what the TLS dissector reads;
    FlowOptions.tls_trim). `segments` counts the TCP segments with payload that contributed.
    """

    data: bytes = b""
    start_known: bool = True
    gap_at: int | None = None
    gap_len: int = 0
    budget_hit: bool = False
    segments: int = 0
    # Timestamps (epoch seconds) as (stream_offset, ts) pairs in offset order, to date a message.
    # May be empty: the flow table does not record per-segment times (that costs per packet).
    times: list[tuple[int, float]] = field(default_factory=list)


@dataclass(slots=True)
class Datagram:
    """One UDP payload in capture order."""

    ts: float
    to_server: bool
    payload: bytes


@dataclass(slots=True)
class FlowPayload:
    """Everything a dissector may read of one flow."""

    uid: str
    transport: str  # "tcp", "udp", ...
    client_ip: str
    server_ip: str
    client_port: int
    server_port: int
    ts_start: float
    to_server: StreamPrefix = field(default_factory=StreamPrefix)
    to_client: StreamPrefix = field(default_factory=StreamPrefix)
    datagrams: list[Datagram] = field(default_factory=list)
    # True when the client sent a SYN and the server answered with a RST (no payload will come).
    rejected: bool = False
    # True when a RST was seen from either side (a handshake that stops early may be a failure).
    reset: bool = False
