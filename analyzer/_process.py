"""Process-wide settings of a command run: the native libraries' memory and thread behaviour.

Each is an environment variable a library reads when it loads, so `tune_process()` must run
before numpy and pyarrow are imported (the console script's `cli.run` calls it first; a
benchmark that stands for a command calls it too). A value the user set is kept.

Why each one (measured, see bench/RESULTS.md):

- OPENBLAS_NUM_THREADS=1: nothing here uses BLAS; without it, importing numpy starts OpenBLAS
  worker threads that spin on the same core as the run when it is pinned (callgrind: ~1% of a
  200k-packet run).
- MIMALLOC_ARENA_EAGER_COMMIT=0: Arrow's allocator (mimalloc) commits its arenas eagerly and asks
  for transparent huge pages: the first touch of each 2 MiB page then zeroes it whole. A streamed
  audit's policy stage allocates its columns there in bursts (bench_1000k: 0.25-0.3 s of kernel
  time, the audit's system time twice the flows'); committed on demand, it is gone and the peak
  RSS is lower.
- NUMPY_MADVISE_HUGEPAGE=0: numpy advises the kernel to back every large array with transparent
  huge pages (madvise MADV_HUGEPAGE). Where THP is "madvise" (Debian's and most distributions'
  default, with defrag "madvise"), a fault in such an array allocates and zeroes a 2 MiB page and
  may first compact memory, synchronously. The flow table's arrays and the batches' columns are
  large and freshly allocated: in the live listener the flow table's kernel spent 0.56 of its
  0.62 s of CPU on 961 such faults in 200k datagrams (0.04 s without the advice), and the
  sustained listener's CPU per datagram fell from 8.56 to 7.50 us.
"""

from __future__ import annotations

import os
import sys

SETTINGS = {
    "OPENBLAS_NUM_THREADS": "1",
    "MIMALLOC_ARENA_EAGER_COMMIT": "0",
    "NUMPY_MADVISE_HUGEPAGE": "0",
}


def tune_process() -> None:
    """Set SETTINGS' environment defaults for the libraries this process loads from now on. numpy
    reads its variable at import: when it is already loaded, its advice is switched off directly
    (unless the user's environment asked for it)."""
    for name, value in SETTINGS.items():
        os.environ.setdefault(name, value)
    numpy = sys.modules.get("numpy")
    if numpy is not None and os.environ["NUMPY_MADVISE_HUGEPAGE"] == "0":
        setter = getattr(getattr(getattr(numpy, "_core", None), "multiarray", None), "_set_madvise_hugepage", None)
        if setter is not None:
            setter(False)
