"""analyzer._process: the native libraries' settings reach them (they are read when a library loads)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _python(code: str, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k not in ("NUMPY_MADVISE_HUGEPAGE", "MIMALLOC_ARENA_EAGER_COMMIT",
                                                             "OPENBLAS_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], env={**base, "PYTHONPATH": ROOT, **env}, check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


ADVICE = "import numpy; print(numpy._core.multiarray._get_madvise_hugepage())"


def test_the_command_loads_no_native_library_before_the_settings() -> None:
    # cli.run imports these before tune_process(): numpy or pyarrow loaded by them would miss the settings
    code = ("import sys, analyzer.cli, analyzer._gc, analyzer._pandas, analyzer._process; "
            "print(sorted(m for m in ('numpy', 'pyarrow', 'pandas') if m in sys.modules))")
    assert _python(code) == "[]"


@pytest.mark.parametrize("numpy_first", [False, True])
def test_numpy_huge_page_advice_is_off(numpy_first: bool) -> None:
    first = "import numpy; " if numpy_first else ""
    code = f"{first}from analyzer._process import tune_process; tune_process(); {ADVICE}"
    assert _python(code) == "False"
    assert _python(first + ADVICE) == "True"  # numpy's own default, which this changes


def test_a_users_setting_is_kept() -> None:
    code = ("import os; from analyzer._process import tune_process; tune_process(); "
            f"print(os.environ['MIMALLOC_ARENA_EAGER_COMMIT'], os.environ['OPENBLAS_NUM_THREADS']); {ADVICE}")
    assert _python(code, NUMPY_MADVISE_HUGEPAGE="1", MIMALLOC_ARENA_EAGER_COMMIT="1").split() == ["1", "1", "True"]
