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


# ------------------------------------------------------------------------ hypothesis fuzz targets
# Every hypothesis fuzz target takes its example count from `examples(ci_default)`: the CI default
# keeps the whole fuzz set well under a minute on 2 cores; INTRANSIT_FUZZ_EXAMPLES=N runs every target
# with N examples instead (the long run of tests/HARDENING_NOTES.md).
FUZZ_EXAMPLES_ENV = "INTRANSIT_FUZZ_EXAMPLES"


def examples(ci_default: int) -> int:
    """The number of examples a fuzz target runs: `ci_default`, or INTRANSIT_FUZZ_EXAMPLES."""
    import os

    text = os.environ.get(FUZZ_EXAMPLES_ENV, "").strip()
    if not text:
        return ci_default
    value = int(text)
    if value < 1:
        raise ValueError(f"{FUZZ_EXAMPLES_ENV} must be a positive integer, not {text!r}")
    return value


def fuzz_settings(ci_default: int, **more):  # type: ignore[no-untyped-def]
    """hypothesis settings of a fuzz target: `examples(ci_default)` examples, no deadline (time is
    asserted by the targets themselves, robust to a shared machine's stalls), no health checks
    (the strategies draw large inputs on purpose), and no example database (a CI run and a long run
    must not replay each other's failures as if they were new)."""
    from hypothesis import HealthCheck, settings

    return settings(max_examples=examples(ci_default), deadline=None, suppress_health_check=list(HealthCheck),
                    database=None, **more)


def mutate(draw, data: bytes, inserts: Sequence[bytes] = (b"\x00", b"\xff\xff", b"\r\n")) -> bytes:  # type: ignore[no-untyped-def]
    """Hypothesis' version of `damage`: `data` maybe cut short, then up to six edits (a byte set, a
    token or random bytes inserted, a run deleted, a run duplicated), each drawn, so a failure shrinks
    to the fewest edits."""
    from hypothesis import strategies as st

    buf = bytearray(data)
    if buf and draw(st.booleans()):
        del buf[draw(st.integers(0, len(buf))):]
    for _ in range(draw(st.integers(0, 6))):
        if not buf:
            buf += draw(st.binary(max_size=64))
            continue
        at = draw(st.integers(0, len(buf) - 1))
        kind = draw(st.integers(0, 4))
        if kind == 0:
            buf[at] = draw(st.integers(0, 255))
        elif kind == 1:
            buf[at:at] = draw(st.sampled_from(list(inserts)))
        elif kind == 2:
            buf[at:at] = draw(st.binary(min_size=1, max_size=32))
        elif kind == 3:
            del buf[at:at + draw(st.integers(1, 64))]
        else:
            buf[at:at] = buf[at:at + draw(st.integers(1, 256))]
    return bytes(buf)
