"""UDP flows of given datagrams, and damage for fuzzing, for the tunnel dissectors' tests."""

from __future__ import annotations

import random

from analyzer.dissect.base import Datagram, FlowPayload


def udp_flow(datagrams: list[tuple[bool, bytes]], server_port: int, *, client_port: int = 40000) -> FlowPayload:
    """A UDP flow of (to_server, payload) datagrams in order."""
    return FlowPayload(uid="C1", transport="udp", client_ip="10.0.0.1", server_ip="10.0.0.2", client_port=client_port,
                       server_port=server_port, ts_start=0.0,
                       datagrams=[Datagram(float(i), up, p) for i, (up, p) in enumerate(datagrams)])


def damage(rng: random.Random, data: bytes, edits: int = 6) -> bytes:
    """`data` cut short (sometimes), with up to `edits` - 1 bytes flipped or runs inserted."""
    buf = bytearray(data[:rng.randrange(len(data) + 1)] if rng.random() < 0.4 else data)
    for _ in range(rng.randrange(edits)):
        if not buf:
            break
        at = rng.randrange(len(buf))
        if rng.random() < 0.6:
            buf[at] = rng.randrange(256)
        else:
            buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 6)))
    return bytes(buf)
