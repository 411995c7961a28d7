"""Finding ids without pandas (`analyzer.policy._ids`) equal pandas' `hash_pandas_object` ones, byte for byte."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pyarrow as pa

from analyzer.policy._ids import finding_ids, hash64


def _pandas_hash(values: list[str | None]) -> np.ndarray:
    return pd.util.hash_pandas_object(pd.Series(values, dtype="string").astype(object), index=False).to_numpy(
        dtype=np.uint64)


def _strings(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    planes = [(0x20, 0x7E), (0x80, 0x7FF), (0x800, 0xD7FF), (0xE000, 0xFFFF), (0x10000, 0x10FFFF)]
    out = []
    for _ in range(n):
        length = rng.choice([0, 1, 7, 8, 9, 15, 16, 17, rng.randint(0, 90)])
        out.append("".join(chr(rng.randint(*rng.choice(planes))) for _ in range(length)))
    return out


def test_hash64_equals_pandas_on_many_strings():
    values = ["", "a", "abcdefg", "abcdefgh", "abcdefghi", "é", "日本語", "😀" * 9, "x" * 300,
              "tls-legacy-version|C1a2b3c4d5e6f7a8b9", "suppression-expired|legacy-payroll", *_strings(4000, 7)]
    want = _pandas_hash(values)
    assert (hash64(pa.array(values, pa.large_string())) == want).all()
    assert (hash64(pa.array(values, pa.string())) == want).all()
    # a slice (a non-zero offset into the buffers)
    assert (hash64(pa.array(values, pa.large_string()).slice(5, 100)) == want[5:105]).all()


def test_null_hashes_as_pandas_missing_value():
    values = ["x", None, "", None, "y"]
    assert (hash64(pa.array(values, pa.large_string())) == _pandas_hash(values)).all()
    assert len(hash64(pa.array([], pa.large_string()))) == 0


def test_finding_ids_are_the_old_hex_digits():
    keys = ["cert-expired|C19b0716407bc26ca23", "é|ü", ""]
    hashed = _pandas_hash(keys)
    assert finding_ids(pa.array(keys, pa.large_string())).to_pylist() == [f"{int(h):016x}" for h in hashed]
