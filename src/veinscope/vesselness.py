"""Multi-scale Hessian vesselness (Frangi et al. 1998) for 2-D images, Numba-fast.

:func:`vesselness` gives the Frangi response, maximum over scales; :func:`ridge_response`
also gives, per pixel, the scale-normalised ridge strength, the scale at which the response
peaked and the unit normal across the ridge there.

Definition
----------
At each scale ``sigma`` (pixels) the Hessian of the image smoothed by a Gaussian of
``sigma`` is multiplied by ``sigma**2`` (scale normalisation); its eigenvalues are sorted by
magnitude, ``|lambda1| <= |lambda2|``; ``Rb**2 = (lambda1 / lambda2)**2`` and
``S**2 = lambda1**2 + lambda2**2``::

    V = exp(-Rb**2 / (2 beta**2)) * (1 - exp(-S**2 / (2 gamma**2)))

and ``V = 0`` where ``lambda2`` has the wrong sign for the ridge polarity (``lambda2 > 0``
for dark ridges, ``black_ridges=True``, ``lambda2 < 0`` for bright ones) or where ``S`` is
below ``NOISE_FLOOR_REL`` times ``max|image|`` (float32 rounding on flat areas, so that a
constant image gives exact zeros). ``gamma`` defaults to half the largest ``S`` over the
image, per scale. The result is the maximum over scales.

This is :func:`skimage.filters.frangi` in 2-D called once per scale, with the same discrete
derivative kernels (two first-order passes of ``sigma / sqrt(2)``, here composed into one
kernel per axis and truncated where the taps fall below ``KERNEL_EPS`` of their peak).
scikit-image 0.26 called with all scales at once differs: it drops the ``sigma**2`` factor
and reuses the first scale's gamma for all scales (scikit-image issue #7711), which favours
the smallest scale; see ``benchmarks/vesselness.md`` for the correlations.

Borders are handled by reflection of the input (``d c b a | a b c d``: scipy
``mode='reflect'``, OpenCV ``BORDER_REFLECT``), applied once; scikit-image also reflects the
intermediate first-derivative image, so the two differ within about ``2 sigma`` of the border.

Approximations (for speed)
--------------------------
* Scales of ``2 * MIN_LEVEL_SIGMA_PX`` pixels and more are computed on a Gaussian pyramid
  (:func:`plan`): level ``l`` is the image smoothed to a blur of ``LEVEL_BLUR_PX`` level pixels
  and decimated by ``2**l`` (even rows and columns kept); a scale goes to the deepest level on
  which it still spans ``MIN_LEVEL_SIGMA_PX`` level pixels, where the residual blur
  ``sqrt((sigma / 2**l)**2 - LEVEL_BLUR_PX**2)`` completes it and the Hessian is normalised
  by ``(sigma / 2**l)**2`` (equal to ``sigma**2`` times the full-resolution Hessian). Its
  response, and for :func:`ridge_response` its strength and the doubled-angle direction of
  its Hessian, are upsampled bilinearly to full resolution before the maximum; its default
  gamma is taken over the level's pixels. Against the same filter at full resolution this
  keeps Pearson r >= 0.98 on the test images of ``benchmarks/vesselness.md``.
* Everything runs in float32; the exponentials use polynomial approximations (absolute
  error below 3e-6; with ``beta >= 0.5`` and the default gamma both exponents stay below 2
  and a cheaper form with the same accuracy is used).

Performance notes: a 4000 x 3000 image with 6 scales takes about 0.2 s of CPU per thread on
2 threads (``benchmarks/vesselness.md``). Numba kernels live in
:mod:`veinscope._kernels.hessian` and are compiled with ``cache=True``; when the package is
installed read-only, set the environment variable ``NUMBA_CACHE_DIR`` to a writable folder
(before importing veinscope) so that the compiled kernels are cached there, otherwise they
are recompiled in every new process (about a minute). Call :func:`warmup` once in a
long-running process. The number of threads is Numba's (``numba.set_num_threads``); results
do not depend on it.

References
----------
.. [1] Frangi, A. F., Niessen, W. J., Vincken, K. L., & Viergever, M. A. (1998). Multiscale
   vessel enhancement filtering. MICCAI'98, LNCS 1496, 130-137. :DOI:`10.1007/BFb0056195`
.. [2] Lindeberg, T. (1998). Edge and ridge detection with automatic scale selection.
   IJCV 30(2), 117-156. :DOI:`10.1023/A:1008097225773` (scale-normalised derivatives)
"""

from __future__ import annotations

import functools
import logging
import math
import numbers
import sys
import types
from dataclasses import dataclass
from typing import Iterable

import numba
import numpy as np

from veinscope._kernels import hessian as _hk

__all__ = ["RidgeResponse", "plan", "ridge_response", "vesselness", "warmup"]

log = logging.getLogger(__name__)

#: Relative size below which kernel taps are dropped (the Hessian changes by ~1e-3 relative).
KERNEL_EPS = 1e-3
#: A scale goes to the coarsest pyramid level where it still spans this many level pixels.
MIN_LEVEL_SIGMA_PX = 1.1
#: Blur of every decimated level, in its own pixels (pre-smoothing against aliasing).
LEVEL_BLUR_PX = 0.8
#: Deepest pyramid level (decimation by 2**MAX_LEVEL).
MAX_LEVEL = 6
#: Smallest side (pixels) of a pyramid level that may be used.
MIN_LEVEL_SIDE_PX = 16
#: Pixels whose scale-normalised Hessian norm S is below this fraction of max|image| are
#: treated as flat (V = 0, strength = 0): float32 rounding alone gives S ~ 5e-8 max|image|.
NOISE_FLOOR_REL = 1e-6
#: A line is saturated at a scale where its vesselness is at least this: with the default
#: beta 0.5, an along-line curvature under 2.2 % of the across-line one (``R**2 <= 2 beta**2
#: * 1e-3``). Clean lines in camera noise read 0.9999-1.0000 at every scale that sees them (a
#: spread of 1e-4, set by the noise, 10x below this); textured skin rarely reaches it (at
#: 0.99, texture marks and faint lines on textured skin start to move, tests/test_pipeline.py).
#: Among saturated scales the strength chooses the scale (:func:`ridge_response`).
SATURATED_VESSELNESS = 0.999
#: Images (and pyramid levels) with fewer pixels are processed by one thread.
PARALLEL_MIN_PIXELS = 250_000


# --------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RidgeResponse:
    """Multi-scale ridge response of a 2-D image.

    Attributes
    ----------
    vesselness : ndarray, shape (M, N), float32, or None
        Frangi vesselness in [0, 1], maximum over scales; None when the strength is weighted by
        it (``ridge_response(..., weighted=True)``).
    strength : ndarray, shape (M, N), float32
        Scale-normalised ridge strength, maximum over scales: ``sigma**2 * |lambda2|`` where
        ``lambda2`` (the larger-magnitude Hessian eigenvalue) has the sign of a ridge of the
        requested polarity, 0 otherwise. In image intensity units (a contrast-like magnitude).
        Multiplied by the vesselness when ``vesselness`` is None.
    scale_px : ndarray, shape (M, N), float32
        Sigma (pixels) at which the vesselness peaked or, among scales that all see a
        saturated line (vesselness >= :data:`SATURATED_VESSELNESS`), at which the strength
        peaked; 0 where the vesselness is 0.
    normal_y, normal_x : ndarray, shape (M, N), float32
        Unit eigenvector of ``lambda2`` at that scale (the direction across the ridge),
        ``normal_x >= 0``; ``(0, 0)`` where the vesselness is 0.
    sigmas_px : tuple of float
        Scales used, ascending.
    """

    vesselness: np.ndarray | None
    strength: np.ndarray
    scale_px: np.ndarray
    normal_y: np.ndarray
    normal_x: np.ndarray
    sigmas_px: tuple[float, ...]


@dataclass(frozen=True)
class ScalePlan:
    """Where and how one scale is computed (see :func:`plan`).

    Attributes
    ----------
    sigma_px : float
        Scale in pixels of the input image.
    level : int
        Pyramid level (the image decimated by ``2**level``).
    residual_px : float
        Gaussian sigma applied at that level, in level pixels, so that the total blur is
        ``sigma_px``: ``sqrt((sigma_px / 2**level)**2 - level_blur**2)``.
    radius : int
        Half-width of the derivative kernels, in level pixels.
    """

    sigma_px: float
    level: int
    residual_px: float
    radius: int


# --------------------------------------------------------------------------------------
# kernels
# --------------------------------------------------------------------------------------
def _gaussian_kernel1d(sigma: float, order: int, radius: int) -> np.ndarray:
    """Sampled, normalised Gaussian (order 0) or its derivative, as scipy.ndimage builds it.

    Returned centred as a convolution kernel ``k[t + radius]``, ``t = -radius..radius``.
    """
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    phi = np.exp(-0.5 / (sigma * sigma) * x * x)
    phi /= phi.sum()
    if order == 0:
        return phi
    if order == 1:
        return -x / (sigma * sigma) * phi
    raise ValueError(f"order must be 0 or 1, got {order!r}")


def _derivative_kernels(sigma: float, eps: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read-only half kernels of order 0, 1, 2 for ``sigma`` (see the cached function)."""
    return _derivative_kernels_cached(float(sigma), KERNEL_EPS if eps is None else float(eps))


@functools.lru_cache(maxsize=256)
def _derivative_kernels_cached(sigma: float, eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Half kernels of order 0, 1, 2 for scale ``sigma`` (float64, length R + 1).

    Each is the composition of two sampled first-order (or zero-order) Gaussian kernels of
    ``sigma / sqrt(2)``, as ``skimage.feature.hessian_matrix(use_gaussian_derivatives=True)``
    applies them, truncated where all three fall below ``eps`` of their peak. The centre taps
    are then set so that the order-0 kernel sums to 1 and the order-2 kernel to 0.
    """
    sp = sigma / math.sqrt(2.0)
    truncate = 8.0 if sigma > 1 else 100.0
    lw = max(1, int(truncate * sp + 0.5))
    g0 = _gaussian_kernel1d(sp, 0, lw)
    g1 = _gaussian_kernel1d(sp, 1, lw)
    full = [np.convolve(g0, g0), np.convolve(g1, g0), np.convolve(g1, g1)]
    centre = 2 * lw
    keep = 1
    for k in full:
        big = np.nonzero(np.abs(k) > eps * np.abs(k).max())[0]
        keep = max(keep, int(np.abs(big - centre).max()))
    radius = keep
    halves = []
    for k in full:
        h = np.zeros(radius + 1)
        n = min(radius, centre)
        h[: n + 1] = k[centre : centre + n + 1]
        halves.append(h)
    halves[0][0] = 1.0 - 2.0 * halves[0][1:].sum()
    halves[2][0] = -2.0 * halves[2][1:].sum()
    for h in halves:
        h.flags.writeable = False
    return halves[0], halves[1], halves[2]


def _smoothing_kernel(sigma: float, eps: float | None = None) -> np.ndarray:
    """Half of the sampled normalised Gaussian of ``sigma`` (float64), truncated at ``eps``.

    The centre tap is set so that the kernel sums to 1.
    """
    eps = KERNEL_EPS if eps is None else eps
    lw = max(1, int(8.0 * sigma + 0.5))
    g = _gaussian_kernel1d(sigma, 0, lw)
    big = np.nonzero(g > eps * g.max())[0]
    radius = max(1, int(np.abs(big - lw).max()))
    h = g[lw : lw + radius + 1].copy()
    h[0] = 1.0 - 2.0 * h[1:].sum()
    return h


# --------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------
def _check_image(image) -> np.ndarray:
    """Return ``image`` as a C-contiguous float32 2-D array (a copy unless it already is one)."""
    if not isinstance(image, np.ndarray):
        try:
            image = np.asarray(image)
        except Exception as exc:  # pragma: no cover - numpy raises many kinds
            raise TypeError(f"image must be a 2-D array, got {type(image).__name__}") from exc
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D (M, N), got shape {image.shape}")
    if image.size == 0:
        raise ValueError(f"image must not be empty, got shape {image.shape}")
    kind = image.dtype.kind
    if kind not in "biuf":
        raise TypeError(f"image must have a bool, integer or float dtype, got {image.dtype}")
    arr = np.ascontiguousarray(image, dtype=np.float32)
    if not arr.flags.writeable:  # Numba would compile every kernel again for read-only arrays
        arr = arr.copy()
    return arr


def _check_sigmas(sigmas_px) -> tuple[float, ...]:
    if isinstance(sigmas_px, numbers.Real):
        values = [sigmas_px]
    else:
        try:
            values = list(sigmas_px)
        except TypeError as exc:
            raise TypeError(f"sigmas_px must be a number or a sequence of numbers, got {sigmas_px!r}") from exc
    if not values:
        raise ValueError("sigmas_px must contain at least one scale, got an empty sequence")
    out = []
    for s in values:
        if isinstance(s, (bool, np.bool_)) or not isinstance(s, numbers.Real):
            raise TypeError(f"sigmas_px must contain numbers, got {s!r}")
        s = float(s)
        if not math.isfinite(s) or s <= 0:
            raise ValueError(f"sigmas_px must be positive and finite, got {s!r}")
        out.append(s)
    return tuple(sorted(set(out)))


def _check_positive(name: str, value, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return value


# --------------------------------------------------------------------------------------
# planning
# --------------------------------------------------------------------------------------
def _level_shape(shape: tuple[int, int], level: int) -> tuple[int, int]:
    m, n = shape
    for _ in range(level):
        m = (m + 1) // 2
        n = (n + 1) // 2
    return m, n


def plan(shape: tuple[int, int], sigmas_px: Iterable[float], *, pyramid: bool = True) -> tuple[ScalePlan, ...]:
    """Pyramid level, residual blur and kernel radius for each scale.

    A scale ``sigma`` is computed on level ``l`` (the image smoothed and decimated by
    ``2**l``), the deepest one on which ``sigma / 2**l >= MIN_LEVEL_SIGMA_PX`` and whose
    sides are at least ``MIN_LEVEL_SIDE_PX``. Level ``l >= 1`` carries a blur of
    ``LEVEL_BLUR_PX`` level pixels, so the derivative kernels there use the residual
    ``sqrt((sigma / 2**l)**2 - LEVEL_BLUR_PX**2)`` and the Hessian is normalised by
    ``(sigma / 2**l)**2``, which equals ``sigma**2`` times the full-resolution Hessian.

    Parameters
    ----------
    shape : (int, int)
        Image shape (M, N).
    sigmas_px : iterable of float
        Scales in pixels (validated, sorted).
    pyramid : bool
        False puts every scale on level 0 (exact, slow; used by tests).

    Returns
    -------
    tuple of ScalePlan

    Examples
    --------
    >>> [(p.level, round(p.residual_px, 2)) for p in plan((3000, 4000), [1, 2, 3.5, 8])]
    [(0, 1.0), (0, 2.0), (1, 1.56), (2, 1.83)]
    """
    sigmas = _check_sigmas(sigmas_px)
    out = []
    for s in sigmas:
        level = 0
        if pyramid:
            while level < MAX_LEVEL:
                nxt = level + 1
                if s / 2**nxt < MIN_LEVEL_SIGMA_PX or min(_level_shape(shape, nxt)) < MIN_LEVEL_SIDE_PX:
                    break
                level = nxt
        s_level = s / 2**level
        blur = LEVEL_BLUR_PX if level > 0 else 0.0
        residual = math.sqrt(s_level * s_level - blur * blur)
        h0, _, _ = _derivative_kernels(residual)
        out.append(ScalePlan(sigma_px=s, level=level, residual_px=residual, radius=h0.shape[0] - 1))
    return tuple(out)


def _pack_kernels(residuals: list[float]):
    """Zero-padded (S, Rmax + 1) float32 half-kernel stacks and the radii."""
    ks = [_derivative_kernels(r) for r in residuals]
    rmax = max([k[0].shape[0] - 1 for k in ks], default=2)
    stacks = [np.zeros((len(ks), rmax + 1), np.float32) for _ in range(3)]
    radii = np.zeros(len(ks), np.int64)
    for i, trio in enumerate(ks):
        radii[i] = trio[0].shape[0] - 1
        for o in range(3):
            stacks[o][i, : trio[o].shape[0]] = trio[o]
    return stacks[0], stacks[1], stacks[2], radii


# --------------------------------------------------------------------------------------
# the computation
# --------------------------------------------------------------------------------------
def _run(kernel: str, parallel: bool | None, first, *args):
    """Run ``_hk.<kernel>`` over all output rows, in parallel over bands of rows or on one
    thread (the same kernel with Numba's thread count set to 1 for the call: one compiled kernel
    to load at start-up, not a serial twin as well). ``parallel=None`` decides by size: small
    images cost more to share out than they save. Both give the same result."""
    threads = numba.get_num_threads()
    if parallel is None:
        parallel = first.size >= PARALLEL_MIN_PIXELS and threads > 1
    if parallel or threads == 1:
        getattr(_hk, kernel)(first, *args)
        return
    numba.set_num_threads(1)  # this thread's setting only
    try:
        getattr(_hk, kernel)(first, *args)
    finally:
        numba.set_num_threads(threads)


def _build_pyramid(img: np.ndarray, depth: int, parallel: bool | None) -> tuple[list[np.ndarray], float, float]:
    """Levels 0..depth: level l + 1 is level l smoothed (blur LEVEL_BLUR_PX of level l + 1
    pixels in total) and decimated by 2, keeping even rows and columns. Also returns the
    minimum and maximum of the image (NaN if it holds a NaN)."""
    levels = [img]
    minmax = np.zeros(2, np.float32)
    for level in range(1, depth + 1):
        prev_blur = 0.0 if level == 1 else LEVEL_BLUR_PX
        inc = math.sqrt((2.0 * LEVEL_BLUR_PX) ** 2 - prev_blur**2)
        h = _smoothing_kernel(inc).astype(np.float32)
        src = levels[-1]
        dst = np.empty(_level_shape(src.shape, 1), np.float32)
        mm = np.zeros(2, np.float32)
        _run("smooth_decimate", parallel, src, h, h.shape[0] - 1, dst, mm)
        if level == 1:
            minmax = mm
        levels.append(dst)
    if depth == 0:
        minmax = np.array([img.min(), img.max()], np.float32)
    return levels, float(minmax[0]), float(minmax[1])


def _compute(image, sigmas_px, black_ridges, beta, gamma, *, ridge: bool, pyramid: bool = True,
             parallel: bool | None = None, weighted: bool = False):
    """Shared implementation of :func:`vesselness` and :func:`ridge_response`.

    Returns ``(outputs, sigmas)`` where ``outputs`` is ``(V,)`` or
    ``(V, scale, strength, normal_y, normal_x)``; with ``weighted`` (ridges only) V is None and
    the strength is multiplied by it. ``pyramid=False`` computes every scale at
    full resolution (the exact reference). ``parallel`` forces the threaded (True) or serial
    (False) kernels; by default large images use ``numba.get_num_threads()`` threads. Results
    do not depend on it.
    """
    img = _check_image(image)
    sigmas = _check_sigmas(sigmas_px)
    beta = _check_positive("beta", beta)
    gamma = _check_positive("gamma", gamma, allow_none=True)
    if not isinstance(black_ridges, (bool, np.bool_)):
        raise TypeError(f"black_ridges must be True or False, got {black_ridges!r}")
    plans = plan(img.shape, sigmas, pyramid=pyramid)
    levels, lo, hi = _build_pyramid(img, max(p.level for p in plans), parallel)
    if not (math.isfinite(lo) and math.isfinite(hi)):  # NaN and inf show up here
        raise ValueError("image must contain only finite values (found NaN or inf)")
    amax = max(abs(lo), abs(hi))
    # The kernels see the Hessian divided by amax (values of order 1 in float32 whatever the
    # intensity range); gamma and the strength are scaled to match.
    if amax == 0.0:
        amax = 1.0
    sign = 1.0 if black_ridges else -1.0
    cb = np.float32(1.0 / (2.0 * beta * beta))
    # float32 rounding leaves S ~ 5e-8 max|image| on flat images: below the floor V = 0
    floor2 = NOISE_FLOOR_REL**2

    def gamma_of(smax2):
        """1 / (2 gamma**2) from the largest S**2 of a scale (default gamma) or the given one."""
        if gamma is None:
            g = 0.5 * math.sqrt(smax2) if smax2 > floor2 else 1.0
        else:
            g = gamma / amax
        return 1.0 / (2.0 * g * g), g * amax

    fl2 = np.float32(floor2)
    sscale = np.float32(amax)
    # both exponents stay below 2 (cb <= 2, and S**2 / (2 gamma**2) <= 2 with the default
    # gamma): the kernels may use the cheaper exponentials
    short = bool(cb <= 2.0 and gamma is None)
    # coarse levels: blobness and S**2 maps (and ridge maps) per scale, one pass per level;
    # their vesselness is formed row by row while they are upsampled in the final pass
    coarse = [i for i, p in enumerate(plans) if p.level > 0]
    shapes = [levels[plans[i].level].shape for i in coarse]
    sizes = [m * n for m, n in shapes]
    coff = np.zeros(len(coarse), np.int64)
    if coarse:
        coff[1:] = np.cumsum(sizes)[:-1]
    cshape = np.array(shapes, np.int64).reshape(len(coarse), 2)
    cshift = np.array([plans[i].level for i in coarse], np.int64)
    csig = np.array([plans[i].sigma_px for i in coarse], np.float32)
    ccg = np.zeros(len(coarse), np.float32)
    cmaps = np.empty((5 if ridge else 2, int(sum(sizes))), np.float32)
    for level in sorted({plans[i].level for i in coarse}):
        pos = [c for c, i in enumerate(coarse) if plans[i].level == level]
        sel = [coarse[c] for c in pos]
        h0, h1, h2, radii = _pack_kernels([plans[i].residual_px for i in sel])
        ks = np.array([sign * (plans[i].sigma_px / 2**level) ** 2 / amax for i in sel], np.float32)
        smax2 = np.zeros(len(sel), np.float32)
        lim = levels[level]
        _run("frangi_maps", parallel, lim, h0, h1, h2, radii, ks, cb, fl2, sscale, ridge, short,
             cmaps, coff[pos[0]], smax2)
        for c, i, v in zip(pos, sel, smax2):
            ccg[c], g = gamma_of(float(v))
            p = plans[i]
            log.debug("sigma %.3g px: level %d, residual %.3g px, radius %d, gamma %.4g",
                      p.sigma_px, p.level, p.residual_px, p.radius, g)

    # the coarse levels live on in cmaps: free them before the full-size outputs (12 MP: 16 MB)
    levels = lim = None
    # full resolution: gamma pass, then Frangi of its scales with the coarse maps upsampled
    fine = [i for i, p in enumerate(plans) if p.level == 0]
    h0, h1, h2, radii = _pack_kernels([plans[i].residual_px for i in fine])
    ks = np.array([sign * plans[i].sigma_px**2 / amax for i in fine], np.float32)
    cgs = np.zeros(len(fine), np.float32)
    smax2 = np.zeros(len(fine), np.float32)
    if fine and gamma is None:
        _run("hessian_norm2_max", parallel, img, h0, h1, h2, radii, np.abs(ks), smax2)
    for j, i in enumerate(fine):
        cgs[j], g = gamma_of(float(smax2[j]))
        log.debug("sigma %.3g px: level 0, radius %d, gamma %.4g", plans[i].sigma_px, plans[i].radius, g)
    weighted = bool(weighted and ridge)
    outs = tuple(np.empty((0, img.shape[1]) if weighted and k == 0 else img.shape, np.float32)
                 for k in range(5 if ridge else 1))  # fmt: skip
    if ridge:
        sig = np.array([plans[i].sigma_px for i in fine], np.float32)
        _run("frangi_ridge", parallel, img, h0, h1, h2, radii, ks, cgs, fl2, cb, short, sig, sscale,
             cmaps, coff, cshape, cshift, ccg, csig, np.float32(SATURATED_VESSELNESS), *outs, weighted)
        if weighted:
            outs = (None, *outs[1:])
    else:
        _run("frangi_v", parallel, img, h0, h1, h2, radii, ks, cgs, fl2, cb, short,
             cmaps, coff, cshape, cshift, ccg, outs[0])
    return outs, sigmas


# --------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------
def vesselness(image, *, sigmas_px, black_ridges=True, beta=0.5, gamma=None) -> np.ndarray:
    """Frangi vesselness of a 2-D image, maximum over scales.

    Parameters
    ----------
    image : array_like, shape (M, N)
        Bool, integer or float image (intensities are used as they are, not rescaled).
        Never modified.
    sigmas_px : float or sequence of float
        Gaussian scales in pixels (> 0, any order, duplicates ignored), e.g.
        ``np.geomspace(1, 8, 6)``; a ridge responds most at scales comparable to its
        half-width.
    black_ridges : bool
        True (default) for dark ridges on a bright background (veins in a photo), False for
        bright ridges.
    beta : float
        Sensitivity to deviation from a line (blob-ness), default 0.5.
    gamma : float, optional
        Sensitivity to structure, in the units of ``sigma**2 * Hessian`` (image intensity).
        Default: half the largest Hessian norm over the image, per scale.

    Returns
    -------
    ndarray, shape (M, N), float32
        Vesselness in [0, 1]; 0 where no scale sees a ridge of the requested polarity.

    Raises
    ------
    ValueError
        If ``image`` is not 2-D, is empty or holds NaN or infinity, ``sigmas_px`` is empty
        or has a non-positive value, or ``beta`` / ``gamma`` is not positive.
    TypeError
        If ``image`` has a non-numeric dtype or an argument has the wrong type.

    Notes
    -----
    Scales of ``2 * MIN_LEVEL_SIGMA_PX`` (2.2) px and more are computed on a decimated
    Gaussian pyramid and upsampled bilinearly (see :func:`plan` and the module notes);
    borders use reflection. Method: Frangi et al. 1998, :DOI:`10.1007/BFb0056195`.

    Examples
    --------
    >>> img = np.ones((9, 9)); img[:, 4] = 0.0            # a dark vertical line
    >>> v = vesselness(img, sigmas_px=[1.0])
    >>> int(np.argmax(v[4])), bool(v[4, 4] > 0.5), float(v[4, 0])
    (4, True, 0.0)
    """
    (v,), _ = _compute(image, sigmas_px, black_ridges, beta, gamma, ridge=False)
    return v


def ridge_response(image, *, sigmas_px, black_ridges=True, beta=0.5, gamma=None, weighted=False) -> RidgeResponse:
    """Vesselness plus ridge strength, best scale and across-ridge normal.

    Parameters are those of :func:`vesselness`, and:

    weighted : bool
        Return the strength multiplied by the vesselness (the line strength that
        :func:`veinscope.segment.detect_vessels` ranks ridges by, the same float32 values as
        ``strength * vesselness``) and no vesselness map: one image-sized float32 map less
        memory (48 MB for a 12 MP photo).

    Returns
    -------
    RidgeResponse
        ``vesselness`` as :func:`vesselness` returns it (None when ``weighted``); ``strength``
        the maximum over scales of ``sigma**2 * |lambda2|`` for ridges of the requested
        polarity (intensity units), times the vesselness when ``weighted``; ``scale_px``,
        ``normal_y``, ``normal_x`` at the scale where the vesselness peaked or, among scales
        that all see a saturated line (vesselness at least :data:`SATURATED_VESSELNESS`),
        where the strength peaked (0 where the vesselness is 0).

    Notes
    -----
    Scale selection on a saturated line: with a small ``gamma`` the structure term of a clear
    line is 1 at every scale that sees it, and the vesselness is ``exp(-R**2 / (2 beta**2))``
    of the anisotropy ``R = lambda1 / lambda2``, which the camera noise in the along-line
    curvature sets (0.9999-1.0000 from 3.6 to 25 px on a clean 15 px bar): its argmax would be
    chosen by noise, and a small scale puts the profile test's flank (``2 scale + 1`` px) inside
    a wide vessel. Such scales are tied, and the scale-normalised strength, which peaks at half
    a bar's width (Lindeberg 1998, :DOI:`10.1023/A:1008097225773`), chooses among them.

    Examples
    --------
    >>> img = np.ones((15, 15)); img[7, :] = 0.0          # a dark horizontal line
    >>> rr = ridge_response(img, sigmas_px=[1.0, 2.0])
    >>> float(rr.normal_y[7, 7]), float(rr.normal_x[7, 7]), rr.sigmas_px
    (1.0, 0.0, (1.0, 2.0))
    """
    (v, scale, strength, ny, nx), sigmas = _compute(image, sigmas_px, black_ridges, beta, gamma, ridge=True,
                                                    weighted=bool(weighted))  # fmt: skip
    return RidgeResponse(vesselness=v, strength=strength, scale_px=scale, normal_y=ny, normal_x=nx,
                         sigmas_px=sigmas)


def warmup(*, ridge_only: bool = False) -> None:
    """Compile (or load from the Numba cache) every kernel on tiny inputs.

    Takes well under a second when the cache is warm; call it once in a long-running
    process (the app does) so that the first real image is not slowed by compilation.
    ``ridge_only`` loads only the kernels of :func:`ridge_response` (what
    :func:`veinscope.analyze` uses), not those of :func:`vesselness`.
    """
    side = 2 * MIN_LEVEL_SIDE_PX
    img = np.zeros((side, side), np.float32)
    img[side // 2, :] = 1.0
    sig = (1.0, 2.0 * MIN_LEVEL_SIGMA_PX)
    if not ridge_only:
        _compute(img, sig, True, 0.5, None, ridge=False, parallel=True)
    _compute(img, sig, True, 0.5, None, ridge=True, parallel=True)


class _CallableModule(types.ModuleType):
    """``veinscope.vesselness`` is both this module and the function: importing the module
    (``from veinscope.vesselness import ...``) makes it the package attribute, so the module
    itself calls :func:`vesselness`."""

    def __call__(self, image, *, sigmas_px, black_ridges=True, **kwargs):
        return vesselness(image, sigmas_px=sigmas_px, black_ridges=black_ridges, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
