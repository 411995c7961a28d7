"""Execute every notebook the way a user would (a real Jupyter kernel), and check it is paired."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the kernel imports the package of this checkout (not another copy installed in the environment)
    root = str(path.parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "outputs must be stripped"
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, errors
    # the figure cell really rendered an image
    assert any("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
               for o in c.get("outputs", [])), "no figure was rendered"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_paired_with_its_script(path: Path) -> None:
    jupytext = pytest.importorskip("jupytext")
    script = path.with_suffix(".py")
    assert script.exists(), f"{script.name} (jupytext pair) is missing"
    nb = jupytext.read(path)
    py = jupytext.read(script)
    assert [c.source for c in nb.cells] == [c.source for c in py.cells], "run `jupytext --sync` on the pair"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_count_axes_have_integer_ticks(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bar chart of counts has no tick at 0.5 flows: every figure's visible y ticks are whole."""
    jupytext = pytest.importorskip("jupytext")
    from matplotlib.figure import Figure

    monkeypatch.chdir(path.parent)
    monkeypatch.syspath_prepend(str(path.parents[1]))  # this checkout's package, as the kernel gets it
    namespace: dict[str, object] = {}
    for cell in jupytext.read(path.with_suffix(".py")).cells:
        if cell.cell_type == "code":
            source = "\n".join(ln for ln in cell.source.splitlines() if not ln.startswith("%"))  # no magics
            exec(compile(source, str(path.with_suffix(".py")), "exec"), namespace)
    figures = [v for v in namespace.values() if isinstance(v, Figure)]
    assert figures
    for fig in figures:
        fig.canvas.draw()  # the locators place the ticks
        for ax in fig.axes:
            low, high = ax.get_ylim()
            ticks = [t for t in ax.get_yticks() if low <= t <= high]
            assert ticks and all(float(t).is_integer() for t in ticks), (ax.get_ylabel(), ticks)
