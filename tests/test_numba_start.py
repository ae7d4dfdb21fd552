"""Numba's quick start (veinscope._numba_start): same Numba and SciPy afterwards, less import.

Each case runs in a fresh interpreter: the quick path only applies before Numba's CPU target is
initialised, which this test process has long done."""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = r"""
import json, sys, threading
{before}
from veinscope._numba_start import start_numba
quick = start_numba()
state = {{"quick": quick, "linalg_after_start": "scipy.linalg" in sys.modules}}
import numba.np.arraymath
state["have_blas"] = numba.np.arraymath._HAVE_BLAS
import numpy as np
import scipy.linalg
import scipy.linalg.cython_blas
state["cython_blas_attr"] = hasattr(scipy.linalg, "cython_blas")
state["solve_ok"] = bool(np.allclose(scipy.linalg.solve([[2.0, 1.0], [1.0, 3.0]], [3.0, 5.0]), [0.8, 1.4]))
from numba import njit
@njit
def dot(a, b):
    return np.dot(a, b)
a = np.arange(6.0).reshape(2, 3)
state["numba_blas_ok"] = bool(np.allclose(dot(a, a.T), a @ a.T))
print(json.dumps(state))
"""


def _run(before: str = "") -> dict:
    r = subprocess.run([sys.executable, "-c", _PROBE.format(before=before)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_quick_start_skips_scipy_linalg_and_leaves_numba_and_scipy_whole():
    s = _run()
    assert s["quick"] is True
    assert s["linalg_after_start"] is False  # the placeholder is gone, the package code never ran
    assert s["have_blas"] is True  # Numba's check passed as before
    assert s["cython_blas_attr"] and s["solve_ok"]  # the real scipy.linalg imports as usual later
    assert s["numba_blas_ok"]  # and Numba's own BLAS calls (np.dot) still work


def test_ordinary_start_when_scipy_linalg_is_already_imported():
    s = _run("import scipy.linalg")
    assert s["quick"] is False
    assert s["have_blas"] and s["solve_ok"] and s["numba_blas_ok"]


def test_ordinary_start_while_other_threads_run():
    # another thread could import scipy.linalg inside the window and get the placeholder
    s = _run("ev = threading.Event(); t = threading.Thread(target=ev.wait, daemon=True); t.start()")
    assert s["quick"] is False
    assert s["linalg_after_start"] is True  # Numba's own check imported the real package
    assert s["have_blas"] and s["cython_blas_attr"] and s["solve_ok"] and s["numba_blas_ok"]
