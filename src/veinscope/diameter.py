"""Sub-pixel visible vessel width at centreline points, from blurred-bar profile fits.

At every centreline point the contrast profile across the vessel is sampled along the normal
(bilinear interpolation, 1 px steps, in a Numba kernel) and fitted by a few Levenberg-Marquardt
iterations with a top-hat ("bar") cross-section of width ``w`` and height ``A``, convolved with
a Gaussian point spread function of standard deviation ``s``, on a linear background::

    p(t) = b + g (t - tc) + A/2 [erf((t - c + w/2) / (sqrt2 s_j)) - erf((t - c - w/2) / (sqrt2 s_j))]

with ``s_j^2 = s^2 + v_j``, ``v_j`` the blur that bilinear interpolation adds at sample j. The
width reported is ``w``: the full width at half maximum of the vessel's own (deblurred)
profile, the *visible* width. Blur moves both edges of a wide vessel by the same amount in
opposite directions, so its ``w`` hardly depends on ``s``; blur preserves the area ``A w`` at
every width. The erf-edged bar is the classical model of a line's cross-section (Steger 1998,
doi:10.1109/34.659930); fitting a blurred profile model across a vessel gives sub-pixel widths
where half-height or rectangular-profile rules are biased for narrow vessels (Lowell et al.
2004, doi:10.1109/TMI.2004.830524).

Steps (all per point; nothing is averaged along a vessel, the caller aggregates):

1. Initial estimate: the inner +-12 px of the profile (the full length only when needed) are
   smoothed; the peak within 3 px of the point, its half-height crossings and the background
   just beyond the edges give ``c``, ``w``, ``A``, ``b``, ``g`` and the fitting window
   (edges +- ``1.5 s + 2.5`` px, cut at the valley before a neighbouring vessel).
2. **PSF** (``psf_sigma_px=None``): the (up to 500) profiles with the largest blurred widths
   are fitted with ``s`` free. The median ``s`` of the fits with ``w >= 4 s`` (where ``s`` and
   ``w`` separate) is a first estimate; the final one is the median over the fits whose
   initial half-height width is at least ``4 s`` (a selection that does not favour fits whose
   ``s`` came out low), iterated to a fixed point. One value is used for the whole image. It is
   an *effective* blur: optics, defocus, pixel integration, demosaicing, compression and light
   scattered in skin all add to it. With fewer than 20 such profiles (a photo with thin vessels
   only, or a very blurred one) the blur cannot be told from the width: the PSF defaults to
   :data:`DEFAULT_PSF_SIGMA_PX`, a warning is logged, ``params["psf_estimated"]`` is False,
   and thin widths are only as good as that guess (benchmarks/diameter.md). For such photos
   pass ``psf_sigma_px``, e.g. measured on the printed edges of the calibration card.
3. Profiles whose blurred width is at least ``4 s + 1`` px are fitted with ``s`` fixed: their
   amplitudes are measured by the data (``w >= 4 s``).
4. **Thin vessels** (every other profile). Below about ``w = 4 s`` the profile is nearly a
   Gaussian whose width hardly changes with ``w`` (``var = s^2 + w^2 / 12``): ``w`` and ``A``
   trade off along ``A w = area`` and only the area is well measured. The mean amplitude of
   the wide fits within ``prior_radius_px`` (the *nearby wider parts*) enters the fit as a
   pseudo-observation with a relative standard deviation of :data:`AMPLITUDE_PRIOR_REL_SD`.
   Where the data determine ``A`` the prior changes nothing; where they do not, the width
   tends to ``area / A_nearby``: the thin vessel is assumed as dark as the wider vessels
   around it. Such points are flagged ``prior_driven``; a thin vessel paler than its
   neighbours comes out too narrow, a darker one too wide. Without a wide neighbour the width
   rests on the profile shape and the PSF alone; below ``w ~ 1.5 s`` it is then little more
   than noise and may collapse to ~0 ("unresolved", still ``ok`` so that medians along a
   vessel stay unbiased).
5. **Normals** may be off by ~10 degrees, which widens a profile by ``1 / cos``. For
   ``w >= 4`` px the centroids of two profiles offset +-clip(w/2, 2, 8) px along the vessel
   give the tilt, and ``w`` is multiplied by its cosine (for ``w < 4`` the error is < 0.06 px).

Cost: about 3 microseconds per point on one core (K = 100,000 in about 0.3 s), see
``benchmarks/diameter.md``. Kernels are ``nogil``: callers may split the points over threads.
"""

from __future__ import annotations

import logging
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from veinscope._kernels import profile as _k

__all__ = [
    "AMPLITUDE_PRIOR_REL_SD",
    "DEFAULT_MAX_WIDTH_PX",
    "DEFAULT_PSF_SIGMA_PX",
    "DEFAULT_PRIOR_RADIUS_PX",
    "DiameterEstimate",
    "profile_diameters",
    "warmup",
]

log = logging.getLogger(__name__)

#: PSF sigma (px) used when it is neither given nor measurable from wide vessels.
DEFAULT_PSF_SIGMA_PX = 1.0
#: Largest visible width searched for (px) when ``max_width_px`` is not given.
DEFAULT_MAX_WIDTH_PX = 40.0
#: Radius (px) within which wide vessels lend their contrast to thin ones.
DEFAULT_PRIOR_RADIUS_PX = 64.0
#: Relative standard deviation of the amplitude prior (thin vs. nearby wide vessels).
AMPLITUDE_PRIOR_REL_SD = 0.15

_STEP_PX = 1.0
#: Levenberg-Marquardt iterations. Bar-like profiles converge in 2-4; profiles that are not
#: bars (skewed, with dips beside them) crawl along curved valleys and are given up (``ok``
#: False) rather than allowed to cost 10x the time.
_MAX_ITER = 20
_PSF_MIN_FWHM_PX = 2.0  # blurred half-height width of the candidates for the PSF estimate
_WIDE_FACTOR = 4.0  # w >= _WIDE_FACTOR * s: amplitude and PSF are determined by the data
_PSF_SAMPLE = 500
_PSF_PROBE_MAX = 2.0  # largest PSF sigma (px) the profile length allows for when estimating it
_PSF_MIN_FITS = 20
_PSF_SELECT_FACTOR = 4.0  # final PSF fits: blurred half-height width >= 4 s


@dataclass(frozen=True)
class DiameterEstimate:
    """Per-point result of :func:`profile_diameters`.

    Attributes
    ----------
    width_px : ndarray (K,) float32
        Visible width (FWHM of the deblurred bar, px); NaN where ``ok`` is False.
    amplitude : ndarray (K,) float32
        Height ``A`` of the deblurred bar (units of ``contrast``): the vessel's own peak
        contrast. NaN where ``ok`` is False. For ``prior_driven`` points it is mostly the
        nearby wide vessels' contrast; ``amplitude * width_px`` (the area) is measured there.
    offset_px : ndarray (K,) float32
        Position of the vessel centre along the (normalised) normal relative to the point
        (px): the sub-pixel centreline is ``points_yx + offset_px[:, None] * unit_normals``.
    ok : ndarray (K,) bool
        The fit converged to a plausible bar (positive, above the noise, near the point).
    psf_sigma_px : float
        Effective PSF sigma used (given or estimated, px).
    prior_driven : ndarray (K,) bool
        Thin vessel (``w < 4 psf_sigma_px``) fitted with the amplitude prior from nearby wide
        vessels: its width leans on their contrast.
    params : dict
        Parameters of the call and the estimates that apply to all points.
    """

    width_px: np.ndarray
    amplitude: np.ndarray
    offset_px: np.ndarray
    ok: np.ndarray
    psf_sigma_px: float = float("nan")
    prior_driven: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    params: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.width_px.shape[0])

    def to_dict(self) -> dict[str, Any]:
        """Arrays and parameters as a plain dict (arrays are not copied)."""
        return {
            "width_px": self.width_px,
            "amplitude": self.amplitude,
            "offset_px": self.offset_px,
            "ok": self.ok,
            "psf_sigma_px": self.psf_sigma_px,
            "prior_driven": self.prior_driven,
            "params": dict(self.params),
        }


def _check_positive(name: str, value: Any, hi: float) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    v = float(value)
    if not (math.isfinite(v) and 0.0 < v <= hi):
        raise ValueError(f"{name} must be a finite number in (0, {hi:g}], got {value!r}")
    return v


def _as_points(name: str, a: Any) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype.kind not in "fiu" or arr.dtype.kind == "b":
        raise ValueError(f"{name} must be a real (K, 2) array, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name} must have shape (K, 2), got {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float64)


def profile_diameters(
    contrast: np.ndarray,
    points_yx: np.ndarray,
    normals_yx: np.ndarray,
    *,
    psf_sigma_px: float | None = None,
    max_width_px: float | None = None,
    prior_radius_px: float = DEFAULT_PRIOR_RADIUS_PX,
) -> DiameterEstimate:
    """Visible vessel width at centreline points by fitting a blurred bar to each profile.

    Parameters
    ----------
    contrast : ndarray (M, N), real
        Vessel contrast map, vessel positive over a background near 0 (e.g. optical density
        above the local skin background). Any real dtype (used as float32/float64); NaN
        pixels are treated as outside the image. Not modified.
    points_yx : ndarray (K, 2), real
        Centreline points (row, col) in px, sub-pixel allowed; may be ~1 px off-centre.
    normals_yx : ndarray (K, 2), real
        Directions across the vessel (row, col); normalised here. Errors of ~10 degrees are
        corrected for widths >= 4 px. Points with a zero or non-finite normal get ``ok`` False.
    psf_sigma_px : float, optional
        Effective blur of the contrast map (Gaussian sigma, px, including the pixel's own
        1/12 px^2) if known; then kept fixed. If None it is estimated from the wide vessels
        among the points, or defaults to :data:`DEFAULT_PSF_SIGMA_PX` (see the module notes).
    max_width_px : float, optional
        Largest visible width looked for (px), default :data:`DEFAULT_MAX_WIDTH_PX`. The
        profile half-length is ``max_width_px / 2 + 3 s + 6`` px.
    prior_radius_px : float, optional
        Radius (px, about) within which wide vessels (``w >= 4 s``) lend their amplitude to
        thin ones, default :data:`DEFAULT_PRIOR_RADIUS_PX`; 0 disables the amplitude prior.

    Returns
    -------
    DiameterEstimate

    Raises
    ------
    ValueError
        On a wrong shape, dtype or option value, naming the parameter.

    Notes
    -----
    The sub-pixel centre of point k is ``points_yx[k] + offset_px[k] * n_k`` with ``n_k`` the
    normalised normal. Cost: about 3 microseconds per point on one core.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.special import erf
    >>> x = np.arange(64.0)
    >>> edge = lambda d: erf(d / (np.sqrt(2) * 1.0))
    >>> bar = 0.5 * (edge(x - 32 + 3) - edge(x - 32 - 3))      # 6 px wide, PSF sigma 1 px
    >>> img = np.tile(bar, (40, 1))
    >>> est = profile_diameters(img, [[20.0, 31.0]], [[0.0, 1.0]], psf_sigma_px=1.0)
    >>> round(float(est.width_px[0]), 2), round(float(est.offset_px[0]), 2)
    (6.0, 1.0)
    """
    img = np.asarray(contrast)
    if img.ndim != 2:
        raise ValueError(f"contrast must be a 2-D (M, N) array, got shape {img.shape}")
    if img.dtype.kind not in "fiu" or img.dtype == np.bool_:
        raise ValueError(f"contrast must be a real-valued array, got dtype {img.dtype}")
    if img.shape[0] < 2 or img.shape[1] < 2:
        raise ValueError(f"contrast must be at least 2 x 2 pixels, got shape {img.shape}")
    pts = _as_points("points_yx", points_yx)
    nrm = _as_points("normals_yx", normals_yx)
    if pts.shape[0] != nrm.shape[0]:
        raise ValueError(
            f"normals_yx must have one row per point: points_yx has {pts.shape[0]}, normals_yx has {nrm.shape[0]}"
        )
    big = float(max(img.shape))
    if psf_sigma_px is not None:
        psf_sigma_px = _check_positive("psf_sigma_px", psf_sigma_px, 0.5 * _k.S_MAX)
    w_max = DEFAULT_MAX_WIDTH_PX if max_width_px is None else _check_positive("max_width_px", max_width_px, 4.0 * big)
    if w_max < 1.0:
        raise ValueError(f"max_width_px must be at least 1 px, got {max_width_px!r}")
    if not isinstance(prior_radius_px, numbers.Real) or isinstance(prior_radius_px, bool):
        raise ValueError(f"prior_radius_px must be a number >= 0, got {prior_radius_px!r}")
    radius = float(prior_radius_px)
    if not (math.isfinite(radius) and radius >= 0.0):
        raise ValueError(f"prior_radius_px must be a finite number >= 0, got {prior_radius_px!r}")

    k = pts.shape[0]
    params: dict[str, Any] = {
        "psf_sigma_px_given": psf_sigma_px,
        "max_width_px": w_max,
        "prior_radius_px": radius,
        "amplitude_prior_rel_sd": AMPLITUDE_PRIOR_REL_SD,
    }
    if k == 0:
        empty = np.zeros(0, np.float32)
        return DiameterEstimate(
            empty, empty.copy(), empty.copy(), np.zeros(0, bool),
            psf_sigma_px=float("nan") if psf_sigma_px is None else psf_sigma_px,
            prior_driven=np.zeros(0, bool), params=params,
        )

    if img.dtype not in (np.float32, np.float64):
        img = img.astype(np.float32)
    img = np.ascontiguousarray(img)
    norm = np.hypot(nrm[:, 0], nrm[:, 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = nrm / norm[:, None]
    unit[~(norm > 1e-12)] = np.nan  # such points come back with status OUTSIDE

    s_hi = psf_sigma_px if psf_sigma_px is not None else _PSF_PROBE_MAX
    half_len = 0.5 * w_max + 3.0 * s_hi + 6.0
    # visit the points tile by tile: profiles of neighbouring points share cache lines of a
    # 12 MP image, points in raster or random order do not
    every = _tile_order(pts, img.shape)
    ini = np.full((k, _k.NINI), np.nan)
    status0 = np.full(k, _k.STATUS_NOT_RUN, np.int8)
    _k.initial_profiles(img, pts, unit, every, half_len, _STEP_PX, s_hi, ini, status0)
    found = status0 == _k.STATUS_OK
    fwhm0 = ini[:, _k.INI_ER] - ini[:, _k.INI_EL]
    out = _Outputs(k)
    out.status[:] = status0
    nan_start = np.full((k, _k.NPAR), np.nan)
    no_prior = np.zeros(k)

    # 1. PSF: s-free fits of the (up to _PSF_SAMPLE) profiles with the largest blurred widths
    if psf_sigma_px is None:
        wide = np.flatnonzero(found & (fwhm0 >= _PSF_MIN_FWHM_PX))
        if wide.size > _PSF_SAMPLE:
            wide = np.sort(wide[np.argpartition(-fwhm0[wide], _PSF_SAMPLE - 1)[:_PSF_SAMPLE]])
        probe = _Outputs(k)
        _fit(img, pts, unit, wide, ini, DEFAULT_PSF_SIGMA_PX, True, no_prior, no_prior, nan_start, w_max, probe)
        th = probe.theta[wide]
        fit_ok = probe.status[wide] == _k.STATUS_OK
        good = fit_ok & (th[:, 4] >= _WIDE_FACTOR * th[:, 5])
        if good.sum() >= _PSF_MIN_FITS:
            # selecting on each fit's own w / s favours fits whose s came out low: the final set
            # is chosen on the initial (fit-independent) width against the current estimate,
            # to a fixed point; too few such profiles and the blur is not measurable
            s_est = float(np.median(th[good, 5]))
            for _ in range(4):
                good = fit_ok & (fwhm0[wide] >= _PSF_SELECT_FACTOR * s_est)
                if good.sum() < _PSF_MIN_FITS:
                    break
                s_new = float(np.median(th[good, 5]))
                if abs(s_new - s_est) < 0.005:
                    break
                s_est = s_new
        params["psf_fits"] = int(good.sum())
        if good.sum() >= _PSF_MIN_FITS:
            s0 = float(np.median(th[good, 5]))
            params["psf_estimated"] = True
        else:
            s0 = DEFAULT_PSF_SIGMA_PX
            params["psf_estimated"] = False
            log.warning(
                "only %d vessel profiles wide enough to measure the blur; assuming a PSF sigma of %.2f px "
                "(thin-vessel widths depend on it)",
                int(good.sum()), s0,
            )
    else:
        s0 = psf_sigma_px
        params["psf_estimated"] = False
    params["psf_sigma_px"] = s0

    # 2. wide profiles (blurred width >= 4 s + 1): PSF fixed, no prior; they are the sources
    #    of the amplitude prior
    wide = every[(found & (fwhm0 >= _WIDE_FACTOR * s0 + 1.0))[every]]
    _fit(img, pts, unit, wide, ini, s0, False, no_prior, no_prior, nan_start, w_max, out)
    ok = out.status == _k.STATUS_OK
    source = ok & (out.theta[:, 4] >= _WIDE_FACTOR * s0)
    params["prior_sources"] = int(source.sum())
    rms_ok = out.rms[source]
    noise = float(np.median(rms_ok)) if rms_ok.size else float("nan")
    params["noise_rms"] = noise

    # 3. the other profiles, with the amplitude of nearby wide vessels as a prior where there is one
    rest = found & ~source
    rest[wide[~ok[wide]]] = False  # wide profiles that failed would fail again
    idx = every[rest[every]]
    a_prior = np.zeros(k)
    wa = np.zeros(k)
    has = np.zeros(k, bool)
    if radius > 0.0 and source.any() and math.isfinite(noise) and noise > 0.0 and idx.size:
        amp = out.theta[:, 2] / out.theta[:, 4]
        mean, count = _k.neighbour_mean(pts, amp, source, radius)
        has = rest & (count > 0) & (mean > 0)
        a_prior[has] = mean[has]
        wa[has] = (noise / (AMPLITUDE_PRIOR_REL_SD * mean[has])) ** 2
    start = nan_start
    _fit(img, pts, unit, idx, ini, s0, False, a_prior, wa, start, w_max, out)
    params["prior_refits"] = int(has.sum())

    ok = out.status == _k.STATUS_OK
    th = out.theta
    with np.errstate(invalid="ignore", divide="ignore"):
        amplitude = np.where(ok, th[:, 2] / th[:, 4], np.nan).astype(np.float32)
    width = np.where(ok, th[:, 4], np.nan).astype(np.float32)
    offset = np.where(ok, th[:, 3], np.nan).astype(np.float32)
    return DiameterEstimate(
        width_px=width,
        amplitude=amplitude,
        offset_px=offset,
        ok=ok,
        psf_sigma_px=float(s0),
        prior_driven=has & ok & (th[:, 4] < _WIDE_FACTOR * s0),
        params=params,
    )


def _tile_order(pts: np.ndarray, shape: tuple[int, ...], tile: int = 64) -> np.ndarray:
    """Indices of the points sorted by 64 x 64 px tile (row-major), stable within a tile."""
    with np.errstate(invalid="ignore"):
        ty = np.clip(np.nan_to_num(pts[:, 0], nan=0.0), 0, shape[0] - 1) // tile
        tx = np.clip(np.nan_to_num(pts[:, 1], nan=0.0), 0, shape[1] - 1) // tile
    key = ty.astype(np.int64) * (shape[1] // tile + 1) + tx.astype(np.int64)
    return np.argsort(key, kind="stable").astype(np.int64)


class _Outputs:
    """Output arrays of :func:`veinscope._kernels.profile.fit_profiles`."""

    def __init__(self, k: int) -> None:
        self.theta = np.full((k, _k.NPAR), np.nan)
        self.status = np.full(k, _k.STATUS_NOT_RUN, np.int8)
        self.rms = np.full(k, np.nan)
        self.tilt = np.zeros(k)
        self.niter = np.zeros(k, np.int32)


def _fit(img, pts, unit, index, ini, s_guess, fit_s, a_prior, wa, start, w_max, out: _Outputs) -> None:
    _k.fit_profiles(
        img, pts, unit, np.ascontiguousarray(index, dtype=np.int64), ini, _STEP_PX, float(s_guess), bool(fit_s),
        0.0, 0.0, a_prior, wa, start, float(w_max), _MAX_ITER, True,
        out.theta, out.status, out.rms, out.tilt, out.niter,
    )


def warmup(*, dtypes=(np.float32, np.float64)) -> None:
    """Compile (or load from the Numba cache) every kernel of this module, for float32 and
    float64 contrast maps (``dtypes``), on a tiny image with a wide and a thin vessel."""
    x = np.arange(48.0)
    prof = np.exp(-0.5 * ((x - 14.0) / 4.0) ** 4) + 0.6 * np.exp(-0.5 * ((x - 34.0) / 1.2) ** 2)
    img = np.tile(prof, (40, 1))
    pts = np.array([[r, c] for r in range(4, 36) for c in (14.0, 34.0)], float)
    nrm = np.tile([0.0, 1.0], (len(pts), 1))
    for dtype in dtypes:
        profile_diameters(img.astype(dtype), pts, nrm)
