"""The notebooks in notebooks/ run top to bottom (no network) and are stored without outputs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: Each notebook must run in under 3 minutes on the CI machine.
BUDGET_S = 180
#: Notebooks that take more than ~20 s (several full analyses): marked slow, still run by CI.
SLOW = {"02_calibration_and_quality", "03_comparing_sessions", "04_accuracy"}
RUNS = [pytest.param(p, id=p.stem, marks=[pytest.mark.slow] if p.stem in SLOW else []) for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path):
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: strip the outputs"


@pytest.mark.parametrize("path", RUNS)
def test_notebook_runs(path, monkeypatch, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")  # silence jupyter_core's path-migration warning
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend draws the figures
    monkeypatch.setenv("VEINSCOPE_DATA_DIR", str(tmp_path / "data"))  # never the user's records
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=BUDGET_S, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    t0 = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - t0
    assert seconds < BUDGET_S, f"{path.name} took {seconds:.0f} s"


def test_notebook_03_charts_each_sessions_own_length():
    """Notebook 03's progress chart put the first session's whole-photo length beside the later sessions'
    visible baseline length over the overlap only (blue: 249 -> 104 mm where the photos show 249 -> 131 mm);
    its rows are made as the app's Progress rows are: each session's own analysis."""
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(ROOT / "notebooks" / "03_comparing_sessions.ipynb", as_version=4)
    src = next(c.source for c in nb.cells if c.cell_type == "code" and "progress_figure(rows" not in c.source
               and "rows = [" in c.source)
    assert 'cd["lengths"]' not in src and "veinscope.analyze(sessions[k])" in src, src
