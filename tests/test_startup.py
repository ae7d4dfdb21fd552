"""Start-up: what importing VeinScope and the first analysis load, and that warmup() loads the
kernels from a warm Numba cache instead of compiling them.

Start-up time itself is measured in ``benchmarks/bench_analyze.py --startup`` (BENCHMARKS.md),
not asserted here: these tests check the causes (modules imported, kernels compiled), which do
not depend on how busy the machine is. Each check runs in a fresh interpreter, since this test
process has long imported everything.
"""

import gc
import json
import subprocess
import sys
from pathlib import Path

from veinscope import cli

DEMO_LEG = Path(__file__).resolve().parents[1] / "sample_images" / "demo_leg.jpg"

HEAVY = ("numpy", "numba", "llvmlite", "scipy", "cv2", "PIL", "skimage", "sqlalchemy", "matplotlib", "tifffile", "fpdf")


def _fresh(code: str) -> dict:
    """Run ``code`` in a new interpreter; it prints one JSON object last."""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


_LOADED = "import json, sys; print(json.dumps(sorted(sys.modules)))"


def _tops(modules) -> set:
    return {m.split(".")[0] for m in modules}


def test_import_veinscope_loads_no_heavy_package():
    loaded = _fresh("import veinscope; " + _LOADED)
    assert not _tops(loaded) & set(HEAVY), sorted(_tops(loaded) & set(HEAVY))


def test_command_line_help_loads_no_heavy_package(capsys):
    loaded = _fresh(
        "import contextlib, io; from veinscope.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n    assert main(['--help']) == 0\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n    assert main(['analyze', '--help']) == 0\n" + _LOADED
    )
    assert not _tops(loaded) & set(HEAVY), sorted(_tops(loaded) & set(HEAVY))


def test_first_analysis_loads_only_what_it_needs():
    """warmup() (a tiny analysis) and then a photo with the card (scale and colours from the
    card) need NumPy, Numba, OpenCV and Pillow, nothing else of weight. SciPy's top level is
    Numba's own import (its version check); scipy.linalg, which Numba's BLAS check would
    import, is skipped by veinscope._numba_start."""
    loaded = _fresh(
        "import veinscope; veinscope.warmup()\n"
        f"a = veinscope.analyze(veinscope.load_photo({str(DEMO_LEG)!r}))\n"
        "assert a.params['scale_source'] == 'card', a.params['scale_source']\n" + _LOADED
    )
    tops = _tops(loaded)
    assert {"numpy", "numba", "cv2", "PIL"} <= tops
    assert not tops & {"skimage", "sqlalchemy", "matplotlib", "tifffile", "fpdf", "streamlit", "pandas"}, sorted(tops)
    scipy_parts = {m.split(".")[1] for m in loaded if m.startswith("scipy.") and not m.split(".")[1].startswith("_")}
    assert scipy_parts <= {"version"}, sorted(scipy_parts)


_COUNT_COMPILES = r"""
import json, sys
from numba.core import event
from numba.core.dispatcher import Dispatcher
import veinscope
with event.install_recorder("numba:compile") as rec:
    veinscope.warmup()
kernels = {}
for name, mod in list(sys.modules.items()):
    if name.startswith("veinscope._kernels.") and mod is not None:
        for obj in vars(mod).values():
            if isinstance(obj, Dispatcher) and obj.overloads:
                st = obj.stats
                kernels[name + "." + obj.__name__] = [sum(st.cache_hits.values()), sum(st.cache_misses.values())]
print(json.dumps({"compiled": sum(1 for _, e in rec.buffer if e.is_start), "kernels": kernels}))
"""


def test_warmup_loads_every_kernel_from_a_warm_cache():
    """The first process fills the Numba cache if needed; a second one must compile nothing:
    every kernel warmup() touches comes from the cache (a stale or unusable cache, e.g. a
    kernel that cannot be cached, would cost seconds of compilation at every start)."""
    _fresh(_COUNT_COMPILES)
    got = _fresh(_COUNT_COMPILES)
    assert got["compiled"] == 0, got
    assert len(got["kernels"]) >= 10, got
    not_cached = {k: v for k, v in got["kernels"].items() if v[0] < 1 or v[1] != 0}
    assert not not_cached, not_cached


def test_command_line_freezes_the_collector_at_exit_only_when_run_as_the_process(monkeypatch, tmp_path):
    registered = []
    real_register = cli.atexit.register

    def register(func, *args, **kwargs):
        if func is gc.freeze:
            registered.append(func)  # recorded, not registered: this test process carries on
            return func
        return real_register(func, *args, **kwargs)

    monkeypatch.setattr(cli.atexit, "register", register)
    freeze_count = gc.get_freeze_count()
    missing = str(tmp_path / "missing.jpg")
    # in-process call (argv given): the caller's collector is left alone
    assert cli.main(["analyze", missing, "--out", str(tmp_path / "a")]) == 1
    assert registered == [] and gc.get_freeze_count() == freeze_count
    # the command line (argv from sys.argv): gc.freeze is registered to run at exit
    monkeypatch.setattr(sys, "argv", ["veinscope", "analyze", missing, "--out", str(tmp_path / "b")])
    assert cli.main() == 1
    assert registered == [gc.freeze] and gc.get_freeze_count() == freeze_count
    # --help and usage errors return before it
    registered.clear()
    for argv in (["veinscope", "--help"], ["veinscope", "analyze"]):
        monkeypatch.setattr(sys, "argv", argv)
        assert cli.main() in (0, 2)
    assert registered == []
