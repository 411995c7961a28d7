"""pandas for the package, imported on first use: `from analyzer._pandas import pd`.

Modules of the package import pandas from here, never directly (tests/core/test_imports.py checks), for
one reason: the CLI's streaming path (csv/jsonl/parquet of .flows, .tls, ...) works on Arrow
tables end to end and never needs pandas, whose import costs 0.6-0.9 s of wall time on this kind of
machine (about 0.8G instructions: a fifth of a 1M-packet run).

pyarrow, though, imports pandas by itself on its first `pa.array()` call, even for a numpy array,
to ask whether the input is a pandas object. `defer_in_pyarrow()` (called by the CLI only, never
on import) lets that first probe fail, so pyarrow records "no pandas" without importing it. Until
pyarrow learns otherwise it would treat a pandas Series passed to `pa.array()` as a plain sequence
(a float Series' NaN would stay NaN instead of becoming null). pyarrow retries the import on its
next call that needs pandas (`to_pandas`, `from_pandas`, ...), and importing pandas through this
module makes that retry at once, so pandas never meets a pyarrow that does not know it.
"""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd  # noqa: F401  (the lazy attribute below)


def _pyarrow_pandas_shim() -> Any:
    """pyarrow's lazy pandas importer (private; None if a pyarrow version lacks it)."""
    import pyarrow.lib

    return getattr(pyarrow.lib, "_pandas_api", None)


def defer_in_pyarrow() -> bool:
    """Make pyarrow's first pandas probe fail instead of importing pandas (see the module doc).

    Only for processes whose code is all ours (the CLI): a library must not change how pyarrow
    treats its caller's pandas objects. Returns whether the probe was deferred (not when pandas is
    already imported, or pyarrow has no such probe)."""
    if "pandas" in sys.modules:
        return False
    shim = _pyarrow_pandas_shim()
    if shim is None or not hasattr(type(shim), "have_pandas"):
        return False
    blocker = _RefusePandas()
    sys.meta_path.insert(0, blocker)
    try:
        return not shim.have_pandas  # the probe: its import fails, and it is not repeated
    finally:
        sys.meta_path.remove(blocker)


class _RefusePandas:
    """An import finder that refuses pandas (a None in sys.modules would not do: pyarrow's compiled
    import takes it as the module)."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError(f"{name} deferred by analyzer._pandas.defer_in_pyarrow")


def _import_pandas() -> Any:
    import pandas

    shim = _pyarrow_pandas_shim()
    if shim is not None:
        with contextlib.suppress(ImportError):  # (pandas was just imported)
            shim.compat  # noqa: B018  (a probe that retries a failed import: pyarrow now knows pandas)
    return pandas


def __getattr__(name: str) -> Any:
    if name != "pd":
        raise AttributeError(f"module 'analyzer._pandas' has no attribute {name!r}")
    value = _import_pandas()
    globals()["pd"] = value
    return value
