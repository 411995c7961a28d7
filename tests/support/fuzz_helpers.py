"""Seeded damage for the dissectors' fuzz loops (the plaintext, data and net groups share it)."""

from __future__ import annotations

import random
from collections.abc import Sequence


def damage(rng: random.Random, data: bytes, inserts: Sequence[bytes]) -> bytes:
    """`data` maybe cut short, then up to five edits: a byte changed, one of `inserts` (the tokens
    that steer that protocol's parser: line ends, length prefixes, tags) put in, or a run deleted."""
    buf = bytearray(data[:rng.randrange(len(data) + 1)] if rng.random() < 0.5 else data)
    for _ in range(rng.randrange(6)):
        if not buf:
            break
        at = rng.randrange(len(buf))
        kind = rng.random()
        if kind < 0.4:
            buf[at] = rng.randrange(256)
        elif kind < 0.7:
            buf[at:at] = bytes(rng.choice(list(inserts)))
        else:
            del buf[at:at + rng.randrange(1, 8)]
    return bytes(buf)
