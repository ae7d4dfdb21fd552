"""Numba's first use without importing ``scipy.linalg``: 0.14 s off a process's start.

The first Numba kernel a process calls (compiled or loaded from the cache) initialises Numba's
CPU target, which imports ``numba.np.arraymath``; that module checks once that a BLAS is
available by importing ``scipy.linalg.cython_blas``. Importing the submodule runs
``scipy/linalg/__init__.py`` first, and SciPy 1.17's ``scipy.linalg`` pulls in its array-API
layer, which clones NumPy and so loads ``numpy.f2py``, ``numpy.testing`` and ``numpy.ctypeslib``:
0.14 s of a 1 s start on a quiet 2-core machine (BENCHMARKS.md, "start-up, session 8"), for a
check whose answer VeinScope never uses (its kernels call no BLAS routine).

:func:`start_numba` initialises Numba's CPU target while ``scipy.linalg`` is a bare placeholder
package (the real package's folder, none of its code): the check imports the compiled
``cython_blas`` extension module alone (10 ms) and passes as before. Afterwards the placeholder
and the extension's entry are taken out of ``sys.modules`` again, so a later
``import scipy.linalg`` or ``import scipy.linalg.cython_blas`` anywhere runs the real package
as usual (the extension module object is reused). Nothing is patched and no result changes.

The window is safe only if no other thread imports ``scipy.linalg`` during it, so it is used
only while the process has a single thread, before the target is initialised and before
``scipy.linalg`` is imported; otherwise (and if any step fails) Numba starts the ordinary way.
"""

from __future__ import annotations

import sys
import threading
import types

__all__ = ["start_numba"]

_LINALG = "scipy.linalg"
_BLAS = "scipy.linalg.cython_blas"


def start_numba() -> bool:
    """Initialise Numba's CPU target, skipping SciPy's ``scipy.linalg`` package code where
    that is safe (see the module docstring). Returns True when the quick path was taken,
    False when Numba was already started, ``scipy.linalg`` was already imported, other
    threads run, or the quick path was not possible (then Numba is started the ordinary way)."""
    from numba.core.registry import cpu_target

    quick = (
        "numba.np.arraymath" not in sys.modules
        and _LINALG not in sys.modules
        and _BLAS not in sys.modules
        and threading.active_count() == 1
    )
    placeholder = None
    if quick:
        try:
            import scipy

            placeholder = types.ModuleType(_LINALG)
            placeholder.__path__ = [p + "/linalg" for p in scipy.__path__]
            sys.modules[_LINALG] = placeholder
            __import__(_BLAS)
        except Exception:  # noqa: BLE001 - any failure: start Numba the ordinary way
            _remove_placeholder(placeholder)
            placeholder = None
    try:
        cpu_target.target_context.refresh()
    finally:
        _remove_placeholder(placeholder)
    return placeholder is not None


def _remove_placeholder(placeholder: types.ModuleType | None) -> None:
    if placeholder is not None and sys.modules.get(_LINALG) is placeholder:
        del sys.modules[_LINALG]
        sys.modules.pop(_BLAS, None)
