"""Multi-scale Hessian vesselness (Frangi et al. 1998) for 2-D images, Numba-fast.

:func:`vesselness` gives the Frangi response, maximum over scales; :func:`ridge_response`
also gives, per pixel, the scale-normalised ridge strength, the scale at which the response
peaked and the unit normal across the ridge there.

Definition (as :func:`skimage.filters.frangi` in 2-D, with the scale normalisation the
paper uses): at each scale ``sigma`` the Hessian of the image smoothed by a Gaussian of
``sigma`` pixels is multiplied by ``sigma**2``; its eigenvalues are sorted by magnitude,
``|lambda1| <= |lambda2|``; ``Rb**2 = (lambda1 / lambda2)**2`` and ``S**2 = lambda1**2 +
lambda2**2``::

    V = exp(-Rb**2 / (2 beta**2)) * (1 - exp(-S**2 / (2 gamma**2)))

and ``V = 0`` where ``lambda2`` has the wrong sign for the ridge polarity (``lambda2 > 0``
for dark ridges, ``black_ridges=True``; ``lambda2 < 0`` for bright ones). ``gamma`` defaults
to half the largest ``S`` over the image, per scale. The Gaussian derivatives use the same
discrete kernels as scikit-image (two first-order passes of ``sigma / sqrt(2)``), truncated
where they fall below 1e-4 of their peak. Borders are handled by reflection
(``d c b a | a b c d``: scipy ``mode='reflect'``, OpenCV ``BORDER_REFLECT``), applied once to
the input; scikit-image reflects the intermediate first-derivative image a second time, so
the two differ within about ``2 sigma`` of the border.

Speed: scales of 2.2 px and more are computed on a Gaussian pyramid (images smoothed and
decimated by 2, 4, ...) and their per-scale responses upsampled bilinearly before the
maximum; see :func:`plan` and ``benchmarks/vesselness.md`` for the accuracy of this
approximation (Pearson r >= 0.99 against full-resolution computation on test images).

Numba kernels live in :mod:`veinscope._kernels.hessian` and are compiled with
``cache=True``. When the package is installed read-only, set the environment variable
``NUMBA_CACHE_DIR`` to a writable folder (before importing veinscope) so that the compiled
kernels are cached there; otherwise they are recompiled in every new process. Call
:func:`warmup` once in a long-running process to compile (or load) them up front.

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
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from veinscope._kernels import hessian as _hk

__all__ = ["RidgeResponse", "plan", "ridge_response", "vesselness", "warmup"]

log = logging.getLogger(__name__)

#: Relative size below which kernel taps are dropped (the Hessian changes by ~1e-4 relative).
KERNEL_EPS = 1e-4
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
#: Images with fewer pixels run serially (thread start-up would dominate).
PARALLEL_MIN_PIXELS = 65_536


# --------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RidgeResponse:
    """Multi-scale ridge response of a 2-D image.

    Attributes
    ----------
    vesselness : ndarray, shape (M, N), float32
        Frangi vesselness in [0, 1], maximum over scales.
    strength : ndarray, shape (M, N), float32
        Scale-normalised ridge strength, maximum over scales: ``sigma**2 * |lambda2|`` where
        ``lambda2`` (the larger-magnitude Hessian eigenvalue) has the sign of a ridge of the
        requested polarity, 0 otherwise. In image intensity units (a contrast-like magnitude).
    scale_px : ndarray, shape (M, N), float32
        Sigma (pixels) at which the vesselness peaked; 0 where the vesselness is 0.
    normal_y, normal_x : ndarray, shape (M, N), float32
        Unit eigenvector of ``lambda2`` at that scale (the direction across the ridge),
        ``normal_x >= 0``; ``(0, 0)`` where the vesselness is 0.
    sigmas_px : tuple of float
        Scales used, ascending.
    """

    vesselness: np.ndarray
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
    return np.ascontiguousarray(image, dtype=np.float32)


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
def _build_pyramid(img: np.ndarray, depth: int, parallel: bool) -> list[np.ndarray]:
    levels = [img]
    smooth = _hk.smooth_decimate_parallel if parallel else _hk.smooth_decimate_serial
    for level in range(1, depth + 1):
        prev_blur = 0.0 if level == 1 else LEVEL_BLUR_PX
        inc = math.sqrt((2.0 * LEVEL_BLUR_PX) ** 2 - prev_blur**2)
        h = _smoothing_kernel(inc).astype(np.float32)
        src = levels[-1]
        dst = np.empty(_level_shape(src.shape, 1), np.float32)
        smooth(src, h, h.shape[0] - 1, dst)
        levels.append(dst)
    return levels


def _compute(image, sigmas_px, black_ridges, beta, gamma, *, ridge: bool, parallel=None, pyramid: bool = True):
    img = _check_image(image)
    sigmas = _check_sigmas(sigmas_px)
    beta = _check_positive("beta", beta)
    gamma = _check_positive("gamma", gamma, allow_none=True)
    if not isinstance(black_ridges, (bool, np.bool_)):
        raise TypeError(f"black_ridges must be True or False, got {black_ridges!r}")
    if parallel is None:
        parallel = img.size >= PARALLEL_MIN_PIXELS
    amax = float((_hk.finite_absmax_parallel if parallel else _hk.finite_absmax_serial)(img))
    if not math.isfinite(amax):
        raise ValueError("image must contain only finite values (found NaN or inf)")
    sign = 1.0 if black_ridges else -1.0
    plans = plan(img.shape, sigmas, pyramid=pyramid)
    depth = max(p.level for p in plans)
    levels = _build_pyramid(img, depth, parallel)
    norm2_max = _hk.hessian_norm2_max_parallel if parallel else _hk.hessian_norm2_max_serial
    cb = np.float32(1.0 / (2.0 * beta * beta))
    # The kernels work on the Hessian divided by amax (values of order 1 in float32 whatever
    # the intensity range); gamma, the noise floor and the strength are scaled to match.
    if amax == 0.0:
        amax = 1.0
    # float32 rounding leaves |S| ~ 1e-7 max|image| on flat images: below the floor V = 0
    floor2 = NOISE_FLOOR_REL**2

    # per-scale constants
    consts = []
    for p in plans:
        h0, h1, h2 = (k.astype(np.float32) for k in _derivative_kernels(p.residual_px))
        k = (p.sigma_px / 2**p.level) ** 2 / amax
        if gamma is None:
            smax = math.sqrt(float(norm2_max(levels[p.level], h0, h1, h2, p.radius, np.float32(k))))
            g = 0.5 * smax if smax * smax > floor2 else 1.0
        else:
            g = gamma / amax
        consts.append((np.float32(sign * k), np.float32(1.0 / (2.0 * g * g))))
        log.debug("sigma %.3g px: level %d, residual %.3g, radius %d, gamma %.4g", p.sigma_px, p.level,
                  p.residual_px, p.radius, g * amax)

    # coarse per-scale maps, flattened into one buffer
    coarse = [i for i, p in enumerate(plans) if p.level > 0]
    shapes = [levels[plans[i].level].shape for i in coarse]
    sizes = [m * n for m, n in shapes]
    coff = np.zeros(len(coarse), np.int64)
    if coarse:
        coff[1:] = np.cumsum(sizes)[:-1]
    total = int(sum(sizes))
    cshape = np.array(shapes, np.int64).reshape(len(coarse), 2)
    cshift = np.array([plans[i].level for i in coarse], np.int64)
    csig = np.array([plans[i].sigma_px for i in coarse], np.float32)
    nmaps = 4 if ridge else 1
    cflat = np.zeros((nmaps, total), np.float32)

    def run(level_img, idx, outs, merge: bool, finalise: bool):
        h0, h1, h2, radii = _pack_kernels([plans[i].residual_px for i in idx])
        ks = np.array([consts[i][0] for i in idx], np.float32)
        cgs = np.array([consts[i][1] for i in idx], np.float32)
        fl2s = np.full(len(idx), floor2, np.float32)
        if merge:
            c_off, c_shape, c_shift, c_sig, c_flat = coff, cshape, cshift, csig, cflat
        else:
            c_off = np.zeros(0, np.int64)
            c_shape = np.zeros((0, 2), np.int64)
            c_shift = np.zeros(0, np.int64)
            c_sig = np.zeros(0, np.float32)
            c_flat = np.zeros((nmaps, 0), np.float32)
        if ridge:
            fn = _hk.frangi_ridge_parallel if parallel else _hk.frangi_ridge_serial
            sig = np.array([plans[i].sigma_px for i in idx], np.float32)
            fn(level_img, h0, h1, h2, radii, ks, cgs, fl2s, cb, sig, np.float32(amax), c_flat, c_off, c_shape, c_shift, c_sig,
               finalise, *outs)
        else:
            fn = _hk.frangi_v_parallel if parallel else _hk.frangi_v_serial
            fn(level_img, h0, h1, h2, radii, ks, cgs, fl2s, cb, c_flat[0], c_off, c_shape, c_shift, outs[0])

    for c, i in enumerate(coarse):
        m, n = shapes[c]
        view = [cflat[q, coff[c] : coff[c] + m * n].reshape(m, n) for q in range(nmaps)]
        if ridge:
            scratch = np.empty((m, n), np.float32)
            outs = (view[0], scratch, view[1], view[2], view[3])
        else:
            outs = (view[0],)
        run(levels[plans[i].level], [i], outs, merge=False, finalise=False)

    fine = [i for i, p in enumerate(plans) if p.level == 0]
    outs = tuple(np.empty(img.shape, np.float32) for _ in range(5 if ridge else 1))
    run(img, fine, outs, merge=True, finalise=True)
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
        Gaussian scales in pixels (> 0); a ridge of width ``w`` responds best near
        ``sigma = w / (2 sqrt(3))`` .. ``w / 2``.
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
        If ``image`` is not 2-D, empty or not finite, ``sigmas_px`` is empty or has a
        non-positive value, or ``beta`` / ``gamma`` is not positive.
    TypeError
        If ``image`` has a non-numeric dtype or an argument has the wrong type.

    Notes
    -----
    Scales of 2.2 px and more are computed on a decimated Gaussian pyramid and upsampled
    bilinearly (see :func:`plan`); borders use reflection. Method: Frangi et al. 1998,
    :DOI:`10.1007/BFb0056195`.

    Examples
    --------
    >>> img = np.ones((9, 9)); img[:, 4] = 0.0            # a dark vertical line
    >>> v = vesselness(img, sigmas_px=[1.0])
    >>> int(np.argmax(v[4])), bool(v[4, 4] > 0.5), float(v[4, 0])
    (4, True, 0.0)
    """
    (v,), _ = _compute(image, sigmas_px, black_ridges, beta, gamma, ridge=False)
    return v


def ridge_response(image, *, sigmas_px, black_ridges=True, beta=0.5, gamma=None) -> RidgeResponse:
    """Vesselness plus ridge strength, best scale and across-ridge normal.

    Parameters are those of :func:`vesselness`.

    Returns
    -------
    RidgeResponse
        ``vesselness`` as :func:`vesselness` returns it; ``strength`` the maximum over
        scales of ``sigma**2 * |lambda2|`` for ridges of the requested polarity (intensity
        units); ``scale_px``, ``normal_y``, ``normal_x`` at the scale where the vesselness
        peaked (0 where it is 0).

    Examples
    --------
    >>> img = np.ones((15, 15)); img[7, :] = 0.0          # a dark horizontal line
    >>> rr = ridge_response(img, sigmas_px=[1.0, 2.0])
    >>> float(rr.normal_y[7, 7]), float(rr.normal_x[7, 7]), rr.sigmas_px
    (1.0, 0.0, (1.0, 2.0))
    """
    (v, scale, strength, ny, nx), sigmas = _compute(image, sigmas_px, black_ridges, beta, gamma, ridge=True)
    return RidgeResponse(vesselness=v, strength=strength, scale_px=scale, normal_y=ny, normal_x=nx,
                         sigmas_px=sigmas)


def warmup() -> None:
    """Compile (or load from the Numba cache) every kernel on tiny inputs.

    Takes well under a second when the cache is warm; call it once in a long-running
    process (the app does) so that the first real image is not slowed by compilation.
    """
    side = 2 * MIN_LEVEL_SIDE_PX
    img = np.zeros((side, side), np.float32)
    img[side // 2, :] = 1.0
    sig = (1.0, 2.0 * MIN_LEVEL_SIGMA_PX)
    for parallel in (False, True):
        _compute(img, sig, True, 0.5, None, ridge=False, parallel=parallel)
        _compute(img, sig, True, 0.5, None, ridge=True, parallel=parallel)
