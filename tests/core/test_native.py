"""The kernels run the same whether numba compiles them on first use or an AOT build is loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from analyzer import _native
from analyzer.sources import _walk

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = ROOT / "captures"
# one of each source kind and the tunnels: pcap, pcapng with several interfaces, gzip, VXLAN, GENEVE
SAMPLES = ["multi_if.pcapng", "http_plain.pcap.gz", "vxlan_mirror.pcap", "geneve_gwlb.pcap", "tls13_hrr.pcap",
           "quic_aioquic.pcap", "tls12_resumption.pcap"]  # fmt: skip

_PROBE = """
import json, sys
import analyzer
from analyzer import _native
r = analyzer.analyze(sys.argv[2:], max_flows=int(sys.argv[1]))
r.flows.to_parquet(sys.stdin.readline().strip())
print(json.dumps({"mode": _native.mode(), "numba": "numba" in sys.modules, "aot_error": _native.aot_error}))
"""


def _run(env_extra: dict[str, str], out: Path, max_flows: int = 1_000_000, paths: list[str] | None = None) -> dict:
    env = {**os.environ, **env_extra}
    paths = paths or [str(CAPTURES / s) for s in SAMPLES]
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(max_flows), *paths], input=f"{out}\n", env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_signature_parser_reads_every_declared_kernel():
    _native._import_kernels()
    entries = [k for k in _native._REGISTRY if k.signature is not None]
    assert {k.fn.__name__ for k in entries} >= {"walk_pcap", "walk_pcapng", "decode_batch", "process", "expire",
                                                 "rehash", "free_records", "gather", "evict"}
    for k in entries:
        specs = _native._arg_specs(k.signature)
        assert len(specs) == k.fn.__code__.co_argcount, k.fn.__name__
    assert _native._arg_specs("UniTuple(int64, 2)(int64, boolean[:, ::1], uint8[::1])") == [
        ("int64", 0), ("bool", 2), ("uint8", 1)]


def test_a_kernel_refuses_an_array_of_the_wrong_type():
    # Whatever path is bound in this process (AOT after `make setup`, else JIT): a wrong dtype is a
    # TypeError, never memory read past an array's end.
    z = [np.zeros(4, dt) for dt in (np.uint8, np.int64, np.int32, np.int32, np.uint32, np.uint32, np.int64)]
    assert _walk.walk_pcap(z[0], 0, 4, False, 100, *z[1:]) == (0, 0, _walk.NEED_MORE)
    wrong = [z[0], np.zeros(4, np.int32), *z[2:]]  # int32 offsets where int64 is declared
    with pytest.raises(TypeError):
        _walk.walk_pcap(wrong[0], 0, 4, False, 100, *wrong[1:])
    with pytest.raises(TypeError):
        _walk.walk_pcap(z[0], 0, 4, False, 100, np.zeros(8, np.int64)[::2], *z[2:])  # not contiguous


def test_checked_wrapper_checks_dtype_shape_contiguity_and_scalars():
    calls = []
    f = _native._checked("f", lambda *a: calls.append(a) or 7, "int64(int64, uint8[::1], int64[:, ::1])")
    ok = (3, np.zeros(2, np.uint8), np.zeros((2, 2), np.int64))
    assert f(*ok) == 7 and len(calls) == 1
    for bad in [(3.0, *ok[1:]), (3, np.zeros(2, np.int8), ok[2]), (3, ok[1], np.zeros((2, 4), np.int64)[:, ::2]),
                (3, ok[1], np.zeros(4, np.int64)), (3, ok[1]), (3, np.frombuffer(b"ab", np.uint8), ok[2])]:
        with pytest.raises(TypeError):
            f(*bad)
    assert len(calls) == 1


@pytest.mark.slow
def test_aot_build_loads_without_numba_and_matches_the_jit(tmp_path):
    """Build into a fresh directory, then analyse the same captures both ways in new processes."""
    try:
        with warnings.catch_warnings():  # "pending deprecation: replacement technology is being developed"
            warnings.simplefilter("ignore")
            import numba.pycc  # noqa: F401  (numba's AOT front end)
    except ImportError as exc:
        pytest.skip(f"numba.pycc is not available ({exc}): the kernels run on numba's JIT only")
    aot_dir = tmp_path / "aot"
    built = subprocess.run(
        [sys.executable, "-c", "from analyzer import _native; import sys; "
         "print(_native.build_aot(__import__('pathlib').Path(sys.argv[1])))", str(aot_dir)],
        capture_output=True, text=True, timeout=600, check=False)
    assert built.returncode == 0, built.stderr
    assert Path(built.stdout.strip()).is_file()

    aot = _run({_native.AOT_DIR_ENV: str(aot_dir), _native.FORCE_JIT_ENV: ""}, tmp_path / "aot.parquet")
    jit = _run({_native.FORCE_JIT_ENV: "1"}, tmp_path / "jit.parquet")
    assert aot == {"mode": "aot", "numba": False, "aot_error": None}
    assert jit["mode"] == "jit" and jit["numba"] is True

    import pandas as pd

    a, j = pd.read_parquet(tmp_path / "aot.parquet"), pd.read_parquet(tmp_path / "jit.parquet")
    assert len(a) >= 10
    pd.testing.assert_frame_equal(a, j)

    # the eviction kernel too (only reached when the table is at --max-flows): 48 flows, 16 at most live
    a2 = _run({_native.AOT_DIR_ENV: str(aot_dir)}, tmp_path / "aot2.parquet", 16, [str(CAPTURES)])
    j2 = _run({_native.FORCE_JIT_ENV: "1"}, tmp_path / "jit2.parquet", 16, [str(CAPTURES)])
    assert a2["mode"] == "aot" and j2["mode"] == "jit"
    a2f, j2f = pd.read_parquet(tmp_path / "aot2.parquet"), pd.read_parquet(tmp_path / "jit2.parquet")
    pd.testing.assert_frame_equal(a2f, j2f)


def test_an_unusable_aot_build_falls_back_to_the_jit(tmp_path):
    import importlib.machinery

    name = f"kernels_{_native.fingerprint()}{importlib.machinery.EXTENSION_SUFFIXES[0]}"
    (tmp_path / name).write_bytes(b"\x7fELF this is not a shared object")
    out = _run({_native.AOT_DIR_ENV: str(tmp_path), _native.FORCE_JIT_ENV: ""}, tmp_path / "f.parquet")
    assert out["mode"] == "jit"
    assert "not usable" in out["aot_error"]
    import pandas as pd

    assert len(pd.read_parquet(tmp_path / "f.parquet")) >= 10


def test_fingerprint_follows_the_kernel_sources():
    fp = _native.fingerprint()
    assert fp == _native.fingerprint() and len(fp) == 20
    # an edited kernel source must never load an old build: the name carries the hash of the sources
    assert _native._module_name().endswith(fp)


@pytest.mark.parametrize("compiled", [False, True])
def test_copy_bytes_copies_like_a_slice_and_refuses_ranges_outside(compiled: bool) -> None:
    """Kernels copy payload bytes with `copy_bytes` (memcpy when compiled, not numba's byte loop)."""
    copy = _native.copy_bytes
    if compiled:
        import numba

        _native._register_numba_extensions()
        copy = numba.njit(lambda d, d_off, s, s_off, n: _native.copy_bytes(d, d_off, s, s_off, n))
    src = np.arange(200, dtype=np.uint8)
    for d_off, s_off, n in ((0, 0, 200), (7, 13, 150), (50, 199, 1), (3, 5, 0)):
        dst = np.zeros(200, np.uint8)
        expect = dst.copy()
        expect[d_off:d_off + n] = src[s_off:s_off + n]
        copy(dst, d_off, src, s_off, n)
        assert np.array_equal(dst, expect)
    page = np.zeros((4, 64), np.uint8)  # a row of the flow table's page pool
    copy(page[2], 10, src, 100, 54)
    assert np.array_equal(page[2, 10:], src[100:154]) and not page[[0, 1, 3]].any()
    for d_off, s_off, n in ((190, 0, 11), (0, 195, 6), (-1, 0, 2), (0, -1, 2)):
        dst = np.zeros(200, np.uint8)
        with pytest.raises(ValueError, match="outside an array"):
            copy(dst, d_off, src, s_off, n)
        assert not dst.any()
