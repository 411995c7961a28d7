"""Imports flow one way down the layers of ../shared/DESIGN.md, and the public surface is pinned.

sources < decode < flows < dissect < policy < report < engines < cli, with a foundation every layer
may use (errors, configuration, schemas and conversion helpers, the compiled-kernel binding). Every
import is counted, wherever it is written: module level, inside a function, under TYPE_CHECKING, and
`importlib.import_module("...")` / lazy-attribute tables with a literal module name, so an edge
cannot hide from this test behind a late import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "analyzer"

LAYERS = ["foundation", "sources", "decode", "flows", "dissect", "policy", "report", "engines", "cli"]
FOUNDATION = {"analyzer._version", "analyzer.errors", "analyzer.config", "analyzer.schema", "analyzer._native",
              "analyzer._gc", "analyzer._pandas", "analyzer._lazy", "analyzer.keylog",
              # the finding ids' hash kernel: a kernel module for the policy, kept out of analyzer.policy
              # because binding the kernels imports every kernel module (a flows run must not load the policy)
              "analyzer._siphash", "analyzer._process"}
ENGINES = {"analyzer.pipeline", "analyzer.verify", "analyzer._warm", "analyzer.auditor"}
CLI = {"analyzer", "analyzer.cli", "analyzer.__main__"}
REPORT = {"analyzer.plots"}


def layer_of(module: str) -> str:
    if module in FOUNDATION:
        return "foundation"
    if module in CLI:
        return "cli"
    if module in REPORT:
        return "report"
    if module in ENGINES or module.startswith("analyzer.engines"):
        return "engines"
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in LAYERS:
        return parts[1]
    raise AssertionError(f"{module} has no layer: add it to tests/core/test_layers.py")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(path: Path, module: str) -> set[str]:
    """Every analyzer module `path` imports (any form, any place in the file)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)  # `from analyzer import dissect`
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("analyzer."):
            found.add(node.value)  # importlib.import_module("analyzer.x"), lazy attribute tables
    modules = {module_name(p) for p in PKG.rglob("*.py")}
    # `analyzer` itself is imported with any of its modules; its __init__ loads nothing eagerly
    return {m for m in found if m in modules and m not in (module, "analyzer")}


# The one edge allowed upwards, and why: the kernel binder compiles the numba kernels of the layers
# (and the live engine's de-duplication kernel) ahead of time into one extension module (or binds
# them with numba's JIT), so it names them. The kernels call nothing else of the package but the
# lower layers' kernel constants; no other module may follow this example.
ALLOWED = {("analyzer._native", m) for m in ("analyzer.sources._walk", "analyzer.decode._kernel",
                                             "analyzer.flows._kernel", "analyzer.engines._dedup",
                                             "analyzer.sources._recv")}


MODULES = sorted((module_name(p), p) for p in PKG.rglob("*.py"))


def test_every_module_has_a_layer():
    for name, _ in MODULES:
        layer_of(name)


@pytest.mark.parametrize(("name", "path"), MODULES, ids=[m for m, _ in MODULES])
def test_no_module_imports_a_higher_layer(name: str, path: Path):
    mine = LAYERS.index(layer_of(name))
    upward = sorted(m for m in imported(path, name)
                    if LAYERS.index(layer_of(m)) > mine and (name, m) not in ALLOWED)
    assert not upward, f"{name} ({layer_of(name)}) imports higher layers: {upward}"


def test_the_test_sees_an_upward_edge(tmp_path: Path):
    """The scanner finds imports in functions, under TYPE_CHECKING and in import_module strings."""
    fake = PKG / "flows" / "table.py"
    src = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from analyzer.dissect import base\n"
           "def f():\n    import importlib\n    importlib.import_module('analyzer.report.export')\n")
    probe = tmp_path / "table.py"
    probe.write_text(src)
    # scanned as if it were analyzer/flows/table.py
    found = imported(probe, "analyzer.flows.table")
    assert {"analyzer.dissect.base", "analyzer.report.export"} <= found
    assert fake.exists()


def test_dissect_builds_no_frames():
    """Dissectors state facts: building a pandas frame belongs to the collector."""
    for path in (PKG / "dissect").rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
        mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "pandas" not in names and "analyzer._pandas" not in mods, path


PUBLIC = ["FLOWS", "FLOWS_CONTRACT", "Analysis", "CaptureError", "IntransitError", "NeedMoreData", "Options",
          "ParseError", "UsageError", "__version__", "analyze", "audit", "warm_up"]


def test_public_surface_is_pinned():
    """A change to `analyzer.__all__` is a change of the public API: make it here on purpose."""
    import analyzer

    assert sorted(analyzer.__all__) == sorted(PUBLIC)
    for name in PUBLIC:
        assert getattr(analyzer, name) is not None, name
