"""Private Numba kernels: plain arrays and scalars in, arrays out.

Every ``@njit`` function of VeinScope lives here. Public code calls the numpy-level
wrappers in the stage modules (``vesselness.py``, ``diameter.py``...), never these directly.
Kernels are compiled with ``cache=True``; set ``NUMBA_CACHE_DIR`` to a writable folder when
the package is installed read-only.
"""
