"""Import-cycle test: every analyzer module imports on its own in a fresh interpreter.

One subprocess preloads the third-party libraries (numpy, numba, pandas, ...), then forks one child
per analyzer module; the child starts with no analyzer module loaded and imports just that one.
A cycle that only works in a lucky import order fails here. Where fork is unavailable each module
gets its own interpreter (slower).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "analyzer"


def _modules() -> list[str]:
    names = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__main__":
            continue  # runs the CLI when imported; `python -m analyzer` is tested in test_cli
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


MODULES = _modules()

FORKING = r"""
import importlib, os, sys, traceback
import click, cryptography, numba, numpy, pandas, pyarrow  # noqa: F401  third-party only
assert not [m for m in sys.modules if m == "analyzer" or m.startswith("analyzer.")]
failed = []
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status:
        failed.append(name)
print("FAILED:" + ",".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_module_is_listed():
    assert "analyzer" in MODULES and "analyzer.sources.readers" in MODULES and "analyzer.cli" in MODULES
    assert len(MODULES) > 15


def _run(modules: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    if hasattr(os, "fork"):
        return subprocess.run(
            [sys.executable, "-c", FORKING, *modules], capture_output=True, text=True, cwd=cwd, timeout=600
        )
    for name in modules:  # no fork (Windows): one interpreter per module
        out = subprocess.run(
            [sys.executable, "-c", f"import {name}"], capture_output=True, text=True, cwd=cwd, timeout=300
        )
        if out.returncode:
            return out
    return out


def test_each_module_imports_alone():
    out = _run(MODULES, ROOT)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-6000:]


def test_the_harness_catches_a_cycle(tmp_path):
    pkg = tmp_path / "cyc"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from cyc.b import B\nA = 1\n")
    (pkg / "b.py").write_text("from cyc.a import A\nB = 1\n")
    out = _run(["cyc.a"], tmp_path)
    assert out.returncode != 0 and "cyc" in out.stderr


def _imports_pandas(node: ast.AST) -> bool:
    if isinstance(node, ast.Import):
        return any(a.name == "pandas" or a.name.startswith("pandas.") for a in node.names)
    return isinstance(node, ast.ImportFrom) and bool(node.module) and (
        node.module == "pandas" or str(node.module).startswith("pandas."))


def _outside_type_checking(tree: ast.AST) -> list[ast.AST]:
    """Import nodes that run (not those under `if TYPE_CHECKING:`)."""
    found: list[ast.AST] = []

    def walk(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and isinstance(child.test, ast.Name) and child.test.id == "TYPE_CHECKING":
                for other in child.orelse:
                    walk(other)
                continue
            if _imports_pandas(child):
                found.append(child)
            walk(child)

    walk(tree)
    return found


def test_pandas_is_imported_only_through_analyzer_pandas():
    """analyzer._pandas tells pyarrow about pandas when the CLI deferred pyarrow's probe: a module
    importing pandas directly could hand pandas objects to a pyarrow that does not know pandas."""
    offenders = []
    for path in sorted(PKG.rglob("*.py")):
        if path.name == "_pandas.py" and path.parent == PKG:
            continue
        for node in _outside_type_checking(ast.parse(path.read_text(encoding="utf-8"))):
            offenders.append(f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}")
    assert offenders == []
    # the check sees a direct import (and ignores one under TYPE_CHECKING)
    sample = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pandas\n"
              "def f():\n    import pandas as pd\n")
    assert len(_outside_type_checking(ast.parse(sample))) == 1
