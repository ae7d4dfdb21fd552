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

Steps:

1. Initial estimate (per point): the inner +-12 px of the profile (the full length only when
   needed) are smoothed; the peak within 3 px of the point, its half-height crossings and the
   background just beyond the edges give ``c``, ``w``, ``A``, ``b``, ``g`` and the fitting
   window (edges +- ``1.5 s + 2.5`` px, cut at the valley before a neighbouring vessel).
2. **PSF** (``psf_sigma_px=None``). A thin vessel (``w`` below ~4 ``s``) is nearly a Gaussian of
   variance ``s^2 + w^2 / 12``: blur and width trade off, and one profile cannot tell them
   apart. A stretch of vessel can: the blur is estimated by *profile likelihood* over pooled
   profiles (step 5) of up to 200 points spread over the wider ones. Each pooled profile is
   fitted with ``s`` fixed at each value of a grid, the increase of its chi^2 over its own
   minimum (in units of its own noise) is summed over the profiles, and the sum is minimised
   (the best value bracketed by +- half a grid step, halved 5 times, then a parabola). Thin
   profiles, whose chi^2 hardly depends on ``s``, neither help nor bias it; vessels of about
   2 ``s`` and more already tell the blur. Blur and width trade off along a flat valley there,
   so these fits model the square pixel's footprint exactly (a trapezoid, by Gauss-Legendre
   nodes) instead of as part of the Gaussian: the Gaussian stand-in has the right variance but
   not the right kurtosis, which moved the blur of 2 px vessels at ``s`` = 1.5 px by 2 %. Its standard error (curvature of the sum, inflated for the pixels the stretches
   share) is ``params["psf_pooled_se_px"]``. If it is above 0.25 px (or the minimum lies at the
   end of the grid) the older estimate is used: the median ``s`` of s-free single-profile fits
   on profiles with a half-height width >= 4 ``s`` (at least 20; in photos of thin vessels only
   such "wide" fits are noise, which is why the pooled estimate, even an uncertain one, comes
   first). Otherwise the blur is not
   measurable from the vessels: :data:`DEFAULT_PSF_SIGMA_PX` is used, a warning is logged,
   ``params["psf_estimated"]`` is False and thin widths are only as good as that guess. One
   value is used for the whole image. It is an *effective* blur: optics, defocus, pixel
   integration, demosaicing, compression and light scattered in skin all add to it. For a
   photo with a calibration card, its measured edge blur is a good ``psf_sigma_px``.
3. Profiles whose blurred width is at least ``4 s + 1`` px are fitted one by one with ``s``
   fixed: their amplitudes and widths are measured by the data (``w >= 4 s``).
4. Every other profile is fitted one by one too, with the mean amplitude of the wide fits
   within ``prior_radius_px`` as a prior (relative sd :data:`AMPLITUDE_PRIOR_REL_SD`). These
   single fits give each point's vessel centre; their widths are kept only where step 5 has
   no result (flag ``prior_driven`` where the prior was used: the thin vessel is assumed as
   dark as its wider neighbours).
5. **Thin vessels: pooled fits** (``pool_half_len_px > 0``; the points of step 4 whose width is
   below ``4 s + 1`` px or whose fit failed). The vessel centres (step 4) of the neighbouring
   centreline points within ``pool_half_len_px`` along the vessel (same ``segment`` if given,
   normals within ~35 degrees, centres within ~1.5 px of the point's line) are fitted by a
   quadratic centre curve; every pixel of that stretch is placed at its exact distance from
   the curve (at any angle but a few the pixel grid falls at many sub-pixel offsets across the
   vessel, as in the slanted-edge method of ISO 12233), the distances are binned (0.25 px) and
   the blurred bar is fitted to the bin means weighted by their pixel counts, with ``s`` fixed
   and no amplitude prior: the vessel is measured on its own pixels. No interpolation blur
   enters, the noise falls with the square root of the pixels pooled, and errors of the
   normals do not matter (the curve gives the direction). While the standard error of ``w``
   (from the fit's covariance) is above 0.12 px the stretch is lengthened 1.5 x, up to twice
   ``pool_half_len_px``. The points within 0.4 of the stretch's half-length along the curve
   take the same result instead of being fitted again (flag ``pooled``). A thin vessel's width
   is thus an average over 2 x 10-20 px of its length (about 2-4 mm at 10 px/mm); the engine
   averages over 1 mm anyway.
6. **Normals** may be off by ~10 degrees, which widens a single profile by ``1 / cos``. For
   ``w >= 4`` px the centroids of two profiles offset +-clip(w/2, 2, 8) px along the vessel
   give the tilt, and ``w`` is multiplied by its cosine (for ``w < 4`` the pooled fit uses
   the centre curve instead).

Cost: about 3-5 microseconds per point on one core (K = 100,000 in about 0.4 s), see
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
from veinscope._threads import run_chunked

__all__ = [
    "AMPLITUDE_PRIOR_REL_SD",
    "DEFAULT_MAX_WIDTH_PX",
    "DEFAULT_PSF_SIGMA_PX",
    "DEFAULT_POOL_HALF_LEN_PX",
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
#: Half-length (px) of the stretch of vessel pooled for a thin vessel's width.
DEFAULT_POOL_HALF_LEN_PX = 10.0

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
#: Pooled fits: the window across the vessel reaches at least this far from its centre
#: (``_POOL_REACH_S`` s + ``_POOL_REACH_PX`` px; the background on both sides pins the area).
_POOL_REACH_S = 4.0
_POOL_REACH_PX = 5.0
#: ... the stretch grows 1.5 x from ``pool_half_len_px`` up to this factor of it while the
#: standard error of the width is above ``_POOL_TARGET_SE_PX``.
_POOL_MAX_FACTOR = 2.0
_POOL_TARGET_SE_PX = 0.12
_PSF_POOL_SAMPLE = 200  # pooled profiles for the blur's profile likelihood
#: Blur values (px) at which the pooled profiles' chi^2 is evaluated first.
_PSF_GRID = (0.3, 0.5, 0.7, 0.9, 1.1, 1.35, 1.65, 2.0, 2.4)
_PSF_MAX_SE_PX = 0.25  # a pooled estimate less certain than this (px) is not used


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
        Thin vessel (``w < 4 psf_sigma_px``) fitted on its own profile with the amplitude
        prior from nearby wide vessels: its width leans on their contrast.
    pooled : ndarray (K,) bool
        Width, amplitude (and, where the single fit failed, offset) come from a fit to the
        pixels of a stretch of the vessel around the point (module notes, step 5).
    params : dict
        Parameters of the call and the estimates that apply to all points.
    """

    width_px: np.ndarray
    amplitude: np.ndarray
    offset_px: np.ndarray
    ok: np.ndarray
    psf_sigma_px: float = float("nan")
    prior_driven: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    pooled: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
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
            "pooled": self.pooled,
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
    pool_half_len_px: float = DEFAULT_POOL_HALF_LEN_PX,
    segment: np.ndarray | None = None,
    width_hint_px: np.ndarray | None = None,
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
        thin ones that could not be pooled, default :data:`DEFAULT_PRIOR_RADIUS_PX`; 0
        disables the amplitude prior.
    pool_half_len_px : float, optional
        Half-length (px) of the stretch of vessel pooled for thin vessels and for the PSF
        estimate, default :data:`DEFAULT_POOL_HALF_LEN_PX` (grown up to 2 x where the width
        is not yet precise); 0: single profiles only (the behaviour before pooling).
    segment : ndarray (K,) int, optional
        Vessel (centreline chain) label of each point. Only points with the same label are
        pooled together; without it, neighbours are recognised by position and direction
        alone (centres on the point's line, normals within ~35 degrees).
    width_hint_px : ndarray (K,) real, optional
        A width each point's vessel is expected to have from elsewhere (px; e.g. twice the
        scale a line filter answered at; NaN: none). Where the initial estimate, read on the
        inner +-12 px of the profile, is under half of it and the hinted vessel's edges with
        their foot (``2 s + 1`` px) reach beyond that inner part, the estimate is read again on
        the whole profile, and taken where it comes out wider with an edge's foot beyond the
        inner part. Inside a wide, soft vessel the inner part lies on its top, and a crest of
        skin texture there passed for a narrow vessel whose half-height edges are the crest's
        own dips (issue 4: on generated veins over 3 mm a fifth of the points were read under
        half the true width). ``params["hint_reread"]`` counts the estimates replaced.

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
    normalised normal. Cost: about 3-5 microseconds per point on one core.

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
    if not isinstance(pool_half_len_px, numbers.Real) or isinstance(pool_half_len_px, bool):
        raise ValueError(f"pool_half_len_px must be a number >= 0, got {pool_half_len_px!r}")
    pool_len = float(pool_half_len_px)
    if not (math.isfinite(pool_len) and 0.0 <= pool_len <= 1000.0):
        raise ValueError(f"pool_half_len_px must be a finite number in [0, 1000], got {pool_half_len_px!r}")
    if segment is None:
        seg = np.full(pts.shape[0], -1, np.int64)
    else:
        seg = np.asarray(segment)
        if seg.dtype.kind not in "iu" or seg.shape != (pts.shape[0],):
            raise ValueError(
                f"segment must be an integer array of shape ({pts.shape[0]},), got dtype {seg.dtype}, shape {seg.shape}"
            )
        seg = np.ascontiguousarray(seg, dtype=np.int64)
    hint = None
    if width_hint_px is not None:
        hint = np.asarray(width_hint_px)
        if hint.dtype.kind not in "fiu" or hint.dtype == np.bool_ or hint.shape != (pts.shape[0],):
            raise ValueError(
                f"width_hint_px must be a real array of shape ({pts.shape[0]},), got dtype {hint.dtype}, shape {hint.shape}"
            )
        hint = hint.astype(np.float64)

    k = pts.shape[0]
    params: dict[str, Any] = {
        "psf_sigma_px_given": psf_sigma_px,
        "max_width_px": w_max,
        "prior_radius_px": radius,
        "amplitude_prior_rel_sd": AMPLITUDE_PRIOR_REL_SD,
        "pool_half_len_px": pool_len,
        "segment_given": segment is not None,
        "width_hint_given": hint is not None,
    }
    if k == 0:
        empty = np.zeros(0, np.float32)
        return DiameterEstimate(
            empty, empty.copy(), empty.copy(), np.zeros(0, bool),
            psf_sigma_px=float("nan") if psf_sigma_px is None else psf_sigma_px,
            prior_driven=np.zeros(0, bool), pooled=np.zeros(0, bool), params=params,
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
    run_chunked(lambda lo, hi: _k.initial_profiles(img, pts, unit, every[lo:hi], half_len, _STEP_PX, s_hi, ini, status0,
                                                   _k.INNER_HALF_LEN), every.shape[0])  # fmt: skip
    found = status0 == _k.STATUS_OK
    fwhm0 = ini[:, _k.INI_ER] - ini[:, _k.INI_EL]
    if hint is not None:
        # far under the expected width, and the expected vessel's edges and their foot beyond the
        # inner part (where they are inside it, its minima are the skin's and the half-height
        # level the vessel's): a crest on a wide vessel's top? read on the whole profile
        with np.errstate(invalid="ignore"):
            wide_hint = 0.5 * hint + 2.0 * s_hi + 1.0 > _k.INNER_HALF_LEN
            again = every[(found & wide_hint & (fwhm0 < 0.5 * hint))[every]]
        n_again = 0
        if again.size:
            ini2 = np.full((k, _k.NINI), np.nan)
            st2 = np.full(k, _k.STATUS_NOT_RUN, np.int8)
            run_chunked(lambda lo, hi: _k.initial_profiles(img, pts, unit, again[lo:hi], half_len, _STEP_PX, s_hi, ini2, st2,
                                                           half_len), again.size)  # fmt: skip
            # taken where wider and its edges' foot lies beyond the inner part (else the inner
            # part saw them, and only a lower minimum further out widened the re-read)
            foot = 2.0 * s_hi + 1.0
            with np.errstate(invalid="ignore"):
                take = (st2 == _k.STATUS_OK) & (ini2[:, _k.INI_ER] - ini2[:, _k.INI_EL] > fwhm0)
                take &= np.maximum(-ini2[:, _k.INI_EL], ini2[:, _k.INI_ER]) + foot > _k.INNER_HALF_LEN
            ini[take] = ini2[take]
            fwhm0 = ini[:, _k.INI_ER] - ini[:, _k.INI_EL]
            n_again = int(take.sum())
        params["hint_reread"] = n_again
    out = _Outputs(k)
    out.status[:] = status0
    nan_start = np.full((k, _k.NPAR), np.nan)
    no_prior = np.zeros(k)

    # 1. PSF: profile likelihood over pooled stretches (module notes, step 2); s-free fits of
    #    the (up to _PSF_SAMPLE) single profiles with the largest blurred widths as the fallback
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
        s_pool = None
        if pool_len > 0.0:
            s_pool, n_pool, se_pool = _pooled_psf(img, pts, unit, seg, found, ini, fwhm0, every, pool_len, w_max)
            params["psf_pooled_fits"] = n_pool
            params["psf_pooled_se_px"] = round(se_pool, 4) if math.isfinite(se_pool) else None
            if se_pool > _PSF_MAX_SE_PX:
                s_pool = None
        if s_pool is not None:
            s0 = s_pool
            params["psf_estimated"] = True
            params["psf_source"] = "pooled profiles"
        elif good.sum() >= _PSF_MIN_FITS:
            s0 = float(np.median(th[good, 5]))
            params["psf_estimated"] = True
            params["psf_source"] = "wide profiles"
        else:
            s0 = DEFAULT_PSF_SIGMA_PX
            params["psf_estimated"] = False
            log.warning(
                "the blur could not be measured on the vessels (pooled estimate not usable, %d single profiles "
                "wide enough); assuming a PSF sigma of %.2f px (thin-vessel widths depend on it)",
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

    # 4. thin vessels (and points whose own fit failed): one fit to the pixels of the stretch
    #    of vessel +-pool_len px along the centre curve through the neighbouring centres
    pooled = np.zeros(k, bool)
    if pool_len > 0.0 and idx.size:
        thin = rest & (~ok | (th[:, 4] < _WIDE_FACTOR * s0 + 1.0))
        tgt = every[thin[every]]
        c_pt = np.where(ok, th[:, 3], 0.5 * (ini[:, _k.INI_EL] + ini[:, _k.INI_ER]))
        c_pt[~found] = np.nan
        centres = pts + c_pt[:, None] * unit
        margin = _k.WIN_S * s0 + _k.WIN_PX
        reach = _POOL_REACH_S * s0 + _POOL_REACH_PX
        lo_d = np.maximum(np.minimum(ini[:, _k.INI_EL] - margin, c_pt - reach), ini[:, _k.INI_LIM_LO]) - c_pt
        hi_d = np.minimum(np.maximum(ini[:, _k.INI_ER] + margin, c_pt + reach), ini[:, _k.INI_LIM_HI]) - c_pt
        pth = np.full((k, _k.NPAR), np.nan)
        pst = np.full(k, _k.STATUS_NOT_RUN, np.int8)
        prms = np.full(k, np.nan)
        npix = np.zeros(k, np.int64)
        pse = np.full(k, np.nan)
        pstart = np.where(ok[:, None], th, np.nan)
        _k.pooled_profiles(
            img, centres, unit, seg, np.ascontiguousarray(tgt, np.int64), lo_d, hi_d, pstart, float(s0),
            pool_len, _POOL_MAX_FACTOR * pool_len, _POOL_TARGET_SE_PX, _k.POOL_SHARE, float(w_max), no_prior,
            no_prior, _MAX_ITER, pth, pst, prms, npix, pse,
        )
        pooled = pst == _k.STATUS_OK
        params["pooled_fits"] = int(pooled.sum())
        params["pooled_targets"] = int(tgt.size)
        with np.errstate(invalid="ignore", divide="ignore"):
            width[pooled] = pth[pooled, 4]
            amplitude[pooled] = pth[pooled, 2] / pth[pooled, 4]
        newly = pooled & ~ok
        offset[newly] = (c_pt[newly] + pth[newly, 3]).astype(np.float32)
        ok = ok | pooled
        th = th.copy()
        th[pooled, 4] = pth[pooled, 4]
    return DiameterEstimate(
        width_px=width,
        amplitude=amplitude,
        offset_px=offset,
        ok=ok,
        psf_sigma_px=float(s0),
        prior_driven=has & ok & ~pooled & (th[:, 4] < _WIDE_FACTOR * s0),
        pooled=pooled,
        params=params,
    )


def _pooled_psf(img, pts, unit, seg, found, ini, fwhm0, every, pool_len, w_max):
    """PSF sigma shared by the pooled profiles (stretches of vessel) of the widest points, by
    profile likelihood: every pooled profile is fitted with the blur fixed at each value of a
    grid (the pixel footprint modelled exactly, :func:`veinscope._kernels.profile.pooled_rss`),
    the increase of its chi^2 over its own minimum (in units of its own noise) is summed over
    the profiles and the sum is minimised (bracketed, then a parabola).
    Thin vessels, whose chi^2 hardly changes with the blur, neither help nor bias the estimate;
    pooling beats the noise, so vessels of about 2 PSF sigma and more already tell the blur.
    Returns (sigma or None, number of profiles used)."""
    k = pts.shape[0]
    cand = every[(found & (fwhm0 >= _PSF_MIN_FWHM_PX))[every]]
    if cand.size < _PSF_MIN_FITS:
        return None, 0, np.inf
    # a sample spread over the candidates (every n-th by width), not only the very widest
    by_width = cand[np.argsort(-fwhm0[cand], kind="stable")]
    step = max(1, int(math.ceil(cand.size / _PSF_POOL_SAMPLE)))
    sel = np.sort(by_width[::step])
    # centres of the sample and of their neighbours: fits with the blur fixed at a guess (the
    # centre hardly depends on it)
    near = _k.points_near(pts, np.ascontiguousarray(sel, np.int64), pool_len + 1.5) & found
    near[sel] = False
    near = every[near[every]]
    # about 2 L + 1 centres per stretch are plenty (more where points are duplicated)
    near = np.concatenate([sel, near[:: max(1, int(math.ceil(near.size / ((2.0 * pool_len + 1.0) * sel.size))))]])
    out = _Outputs(k)
    nan_start = np.full((k, _k.NPAR), np.nan)
    _fit(img, pts, unit, near, ini, DEFAULT_PSF_SIGMA_PX, False, np.zeros(k), np.zeros(k), nan_start, w_max, out)
    ok = out.status == _k.STATUS_OK
    c_pt = np.where(ok, out.theta[:, 3], np.nan)
    centres = pts + c_pt[:, None] * unit
    sel = sel[ok[sel]]
    if sel.size < _PSF_MIN_FITS:
        return None, int(sel.size), np.inf
    reach = _POOL_REACH_S * _PSF_PROBE_MAX + _POOL_REACH_PX
    margin = _k.WIN_S * _PSF_PROBE_MAX + _k.WIN_PX
    lo_d = np.maximum(np.minimum(ini[:, _k.INI_EL] - margin, c_pt - reach), ini[:, _k.INI_LIM_LO]) - c_pt
    hi_d = np.minimum(np.maximum(ini[:, _k.INI_ER] + margin, c_pt + reach), ini[:, _k.INI_LIM_HI]) - c_pt
    index = np.ascontiguousarray(sel, np.int64)
    rss: dict[float, np.ndarray] = {}
    dof = np.ones(sel.size)

    def evaluate(sigmas) -> None:
        new = sorted({round(float(g), 4) for g in sigmas} - set(rss))
        new = [g for g in new if _k.S_MIN <= g <= _PSF_PROBE_MAX + 0.5]
        if not new:
            return
        r = np.full((sel.size, len(new)), np.nan)
        npix = np.zeros(sel.size, np.int64)
        _k.pooled_rss(img, centres, unit, seg, index, lo_d, hi_d, out.theta, np.array(new, np.float64), pool_len,
                      float(w_max), _MAX_ITER, r, npix)
        for i, g in enumerate(new):
            rss[g] = r[:, i]
        dof[:] = np.maximum(npix - 5, 1)  # the same pixels at every blur

    def total() -> tuple[np.ndarray, np.ndarray, int]:
        grid = np.array(sorted(rss))
        mat = np.array([rss[g] for g in grid])  # (grid values, profiles)
        use = np.all(np.isfinite(mat), axis=0) & np.all(mat > 0, axis=0)
        if use.sum() < _PSF_MIN_FITS:
            return grid, np.full(grid.size, np.nan), int(use.sum())
        m = mat[:, use]
        best = m.min(axis=0)
        # chi^2 increase in units of each profile's own noise variance (best RSS / dof)
        return grid, ((m / best - 1.0) * dof[use]).sum(axis=1), int(use.sum())

    def vertex(grid: np.ndarray, tot: np.ndarray, i: int) -> float:
        x0, x1, x2 = grid[i - 1 : i + 2]
        y0, y1, y2 = tot[i - 1 : i + 2]
        den = (x1 - x0) * (y1 - y2) - (x1 - x2) * (y1 - y0)
        num = (x1 - x0) ** 2 * (y1 - y2) - (x1 - x2) ** 2 * (y1 - y0)
        xv = x1 - 0.5 * num / den if den != 0 else x1
        return float(min(max(xv, x0), x2))

    evaluate(_PSF_GRID)
    # bracket the minimum: best value +- h, h halved each round (the summed chi^2 is far from a
    # parabola over a coarse grid step, so its vertex is not trusted until the bracket is small)
    h = 0.0
    for _ in range(5):
        grid, tot, n_used = total()
        if not np.isfinite(tot).all():
            return None, n_used, np.inf
        i = int(np.argmin(tot))
        if i == 0 or i == grid.size - 1:
            return None, n_used, np.inf  # the minimum lies at the end of the grid: the blur is not measured
        # half the grid step first (the bracket then reaches about one step), halved each round
        h = 0.5 * min(grid[i] - grid[i - 1], grid[i + 1] - grid[i]) if h == 0.0 else 0.5 * h
        evaluate((grid[i] - h, grid[i] + h))
    grid, tot, n_used = total()
    if not np.isfinite(tot).all():
        return None, n_used, np.inf
    i = int(np.argmin(tot))
    if i == 0 or i == grid.size - 1:
        return None, n_used, np.inf
    xv = vertex(grid, tot, i)
    # standard error from the curvature of the summed chi^2 (delta chi^2 = 1), inflated by the
    # overlap of the pooled stretches (neighbouring points share pixels): about (2 L + 1) / n
    # for every n-th of the candidates along vessels sampled every ~1 px
    x0, x1, x2 = grid[i - 1 : i + 2]
    y0, y1, y2 = tot[i - 1 : i + 2]
    curv = 2.0 * ((y2 - y1) / (x2 - x1) - (y1 - y0) / (x1 - x0)) / (x2 - x0)  # second derivative
    overlap = max(1.0, (2.0 * pool_len + 1.0) / step)
    se = math.sqrt(2.0 * overlap / curv) if curv > 0 else np.inf
    return xv, n_used, se


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
    index = np.ascontiguousarray(index, dtype=np.int64)
    # each point is fitted on its own: chunks of the index on threads give the same values
    run_chunked(lambda lo, hi: _k.fit_profiles(
        img, pts, unit, index[lo:hi], ini, _STEP_PX, float(s_guess), bool(fit_s),
        0.0, 0.0, a_prior, wa, start, float(w_max), _MAX_ITER, True,
        out.theta, out.status, out.rms, out.tilt, out.niter,
    ), index.shape[0])  # fmt: skip


#: FWHM of a Gaussian in units of its sigma.
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def _centreline_reach(shape, pts, unit, idx, g, wide_side_frac, wide_n_side) -> np.ndarray:
    """:func:`half_max_widths`' ``centreline_reach`` limit for the points ``idx`` (first widths ``g``)."""
    from veinscope._kernels.fwhm import centreline_reach

    mask = np.zeros(shape[:2], bool)
    yx = np.round(pts).astype(np.int64)
    ok = (yx[:, 0] >= 0) & (yx[:, 0] < shape[0]) & (yx[:, 1] >= 0) & (yx[:, 1] < shape[1])
    mask[yx[ok, 0], yx[ok, 1]] = True
    gg = np.where(np.isfinite(g), g, 0.0)
    lat = np.maximum(1.0, 0.3 * gg)
    gap = np.maximum(3.0, gg)
    limit = float(max(wide_side_frac * gg.max(initial=0.0), wide_n_side)) + 1.0
    out = np.empty(idx.size)
    centreline_reach(mask, np.ascontiguousarray(pts, np.float64), np.ascontiguousarray(unit, np.float64),
                     np.ascontiguousarray(idx, np.int64), lat, gap, limit, out)  # fmt: skip
    return out


def half_max_widths(
    contrast: np.ndarray,
    points_yx: np.ndarray,
    normals_yx: np.ndarray,
    guess_px: np.ndarray,
    *,
    psf_sigma_px: float = 0.0,
    reach: tuple[float, float] = (1.5, 12.0),
    n_side: int = 2,
    step_px: float = 0.25,
    max_width_px: float = np.inf,
    gap_frac: float = 0.25,
    side_frac: float = 0.4,
    blur_shape: bool = True,
    wide_from_px: float = np.inf,
    wide_snr: float = 20.0,
    wide_side_frac: float = 2.0,
    wide_n_side: int = 12,
    along_max_px: np.ndarray | None = None,
    centreline_reach: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The visible width by its definition: full width at half maximum of each cross-section.

    :func:`profile_diameters` fits a blurred bar, which is the right model for bars but not for
    vessels: a cylinder's profile has rounded shoulders (a bar fit falls up to 25 % short of its
    half-maximum width when the skin blurs it), and a thin vessel blurred by the skin above it
    is bell-shaped (a bar fit through the camera's blur comes out up to 50 % wide). Here the
    width is measured on the profile itself: the mean of ``2 n_side + 1`` parallel profiles
    across the vessel, its baseline the median beyond 0.75 of the window
    (``H = max(reach[0] * guess, guess / 2 + reach[1])`` px either side), its peak from a
    least-squares parabola through the samples within a quarter of the guess of the
    centreline, and the two half-maximum crossings. Noise and skin texture bias the plain
    recipe inwards: the highest sample lies above the true peak, and going out from the peak
    the first crossing of the half level comes early. So on each side the first crossing is
    moved out by the samples still at or above half within ``gap_frac * guess`` (at least 1 px)
    beyond it; on a clean profile there are none. The parabola's vertex, its maximum, is pushed
    up by noise too (by the square of the noise in its slope over its curvature), which
    narrowed faint vessels (contrast twice the noise: 0.94 of their width). So the crossings are
    found twice: at the half level of the vertex, then at the half level of the parabola's
    value at the centre of those first crossings, a position found from the flanks. On a clean
    profile both give the same width. The camera's blur (``psf_sigma_px``, a
    Gaussian) is then taken out: in quadrature, ``w = sqrt(fwhm^2 - (2.355 psf)^2)`` (with a
    floor of 0.5 px), for a bell-shaped profile, for which that is exact. A vessel with steep
    edges is not widened that much by the blur (a bar's half-maximum width not at all once it
    is a few blurs wide), yet a 1.2 mm vein at 6 px/mm is only 7 px wide, where the quadrature
    takes 5 % off. So (``blur_shape``) the quadrature's narrowing is scaled by the profile's
    own shape: by how far a small blur moves its half-maximum crossings (the heat equation:
    ``-v / 2 (f''(x) - f''(0) / 2) / f'(x)`` for blur variance ``v``, ``f'`` and ``f''`` read
    from parabolas through the profile at each crossing and at the centre) over how far it
    moves a Gaussian's of the same width, clipped to 0-1 (1: a bell, as before; 0: straight
    edges, the width as seen).

    Parameters
    ----------
    contrast : ndarray (M, N), real
        Vessel contrast map, vessel positive (as for :func:`profile_diameters`). Not modified.
    points_yx, normals_yx : ndarray (K, 2)
        Centreline points (px) and directions across the vessel (normalised here).
    guess_px : ndarray (K,)
        A first width per point (px), e.g. from :func:`profile_diameters`; sets the window.
        Points with a non-finite or non-positive guess get NaN.
    psf_sigma_px : float
        The camera's blur (Gaussian sigma, px) to take out; 0 keeps the observed width.
    max_width_px : float
        Widest vessel looked for (px); a wider half-maximum width is not this vessel's (a
        shadow or blotch around it) and gives NaN.
    gap_frac : float
        Longest dip below the half level (fraction of the guess, at least 1 px) that the outer
        crossing search steps across; 0 keeps the first crossings only.
    side_frac : float
        The ``2 n_side + 1`` parallel profiles are ``max(1, side_frac * guess / n_side)`` px
        apart along the vessel, so they reach ``+-side_frac`` of the width (at least ``n_side``
        px): a wide vessel's profile is averaged over a length that grows with its width, at
        the same cost. Its noise, which makes the first crossings early and narrowed wide faint
        vessels (1.2 mm at contrast 1.5x the noise: 0.91 of their width with the profiles 1 px
        apart), falls with that length. 0 keeps them 1 px apart.
    blur_shape : bool
        Scale the camera blur's quadrature by the profile's shape (above); False takes the
        quadrature whole.
    wide_from_px : float
        Points whose half-maximum width, measured as above, is at least this (px; the guess
        where none was found) and whose profile is faint (``wide_snr``) are measured again on
        a mean of more parallel profiles spread further along the vessel: over as many times
        the first length (``side_frac``) as takes the profile's noise down to ``wide_snr``
        (the noise of a mean falls as the root of the length averaged), at most
        ``+-wide_side_frac`` of the first width, the profiles as far apart as
        ``wide_n_side`` of them over that (the window across is set as before). A faint wide vein's
        half-maximum crossings sit on flanks as shallow as its width is large, so the noise
        left in the mean of a few profiles moves them by a share of the width that grows as
        the contrast falls (veins 1-3 mm wide at ΔE00 2-3 on generated photos: interquartile
        0.76-1.10 of the visible width with ``side_frac`` 0.4). Reticular veins and wider run
        in long smooth courses (curving over many of their widths), so their profile can be
        averaged over a few widths without the course's bend widening it; a telangiectasia
        curves and branches within a few of its own widths, so the longer average is kept
        for the wide ones (``analyze(wide_profile_mm=...)`` sets the threshold in mm).
        ``inf`` (default): every point as above.
    wide_snr : float
        Only wide points whose profile, measured as above, stands under this many times its
        noise above the skin (its height over 1.4826 x the median absolute deviation of its
        flank samples from a straight line through them) are measured again with the longer
        average: a crossing's error is about the noise over the flank's slope, which for a
        bell-shaped profile makes the width's relative error about the noise over the height,
        so 20 would keep that under about 5 %; but the flank samples, 0.25 px apart, are
        correlated and the line through them takes up slow noise, so this noise reads about
        half the true one (session 26's review, on analytic faint cylinders) and the gate sits
        nearer 10 times the true noise (about 10 %). Clear profiles, and those where the second
        measurement finds no width, keep the first.
    wide_side_frac, wide_n_side : float, int
        The longer average: ``+-wide_side_frac`` first widths along the vessel (at most 4),
        ``2 wide_n_side + 1`` profiles (at least 1 px apart).
    along_max_px : ndarray (K,), optional
        How far along the vessel (px, each way) the longer average may reach at each point:
        e.g. half the length of the point's chain. A chain not much longer than it is wide is
        a blob or a piece of a cluster of fine vessels, not a long smooth course, and an
        average reaching past its ends takes in whatever lies beyond them (the cluster's other
        vessels: read as one wide vessel). The longer average is shortened to fit (to the
        first length, as if not wide, when even twice that does not). None: no limit.
    centreline_reach : bool
        ``pts`` are the centreline of the detected vessels: a point measured on a longer
        average reaches no further along its tangent than the centreline runs on that way, the
        nearer way (points within max(1, 0.3 first widths) px across the tangent line, no gap
        longer than max(3 px, one first width) along it; any chain's points, as a faint vessel's
        centreline comes in pieces): past a vessel's end the average would take in the skin
        beyond it, and where the vessel turns or branches, whatever lies ahead. With
        ``along_max_px``, the smaller of the two limits.

    Returns
    -------
    width_px : ndarray (K,) float64
        Visible width (px); NaN where no clean half-maximum crossing was found on both sides.
    offset_px : ndarray (K,) float64
        Centre of the half-maximum crossings along the normal from each point (px).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(80.0)
    >>> img = np.tile(np.exp(-0.5 * ((x - 40.3) / 3.0) ** 2), (30, 1))  # FWHM 7.06 px
    >>> w, c = half_max_widths(img, [[15.0, 40.0]], [[0.0, 1.0]], [6.0])
    >>> round(float(w[0]), 1), round(float(c[0]), 1)
    (7.1, 0.3)
    """
    from veinscope._kernels.fwhm import half_max_widths as _kernel

    img = np.asarray(contrast)
    if img.ndim != 2 or img.dtype.kind not in "fiu" or img.dtype == np.bool_:
        raise ValueError(f"contrast must be a real-valued 2-D array, got shape {img.shape} and dtype {img.dtype}")
    if img.dtype not in (np.float32, np.float64):
        img = img.astype(np.float64)
    pts = _as_points("points_yx", points_yx)
    nrm = _as_points("normals_yx", normals_yx)
    guess = np.asarray(guess_px, dtype=np.float64).reshape(-1)
    if not (pts.shape[0] == nrm.shape[0] == guess.shape[0]):
        raise ValueError(
            f"points_yx, normals_yx and guess_px must have the same length, got {pts.shape[0]}, {nrm.shape[0]}, {guess.shape[0]}"
        )
    if not (math.isfinite(psf_sigma_px) and psf_sigma_px >= 0):
        raise ValueError(f"psf_sigma_px must be a number >= 0, got {psf_sigma_px!r}")
    if not (math.isfinite(gap_frac) and 0 <= gap_frac <= 1):
        raise ValueError(f"gap_frac must be a number in [0, 1], got {gap_frac!r}")
    if not (math.isfinite(side_frac) and 0 <= side_frac <= 2):
        raise ValueError(f"side_frac must be a number in [0, 2], got {side_frac!r}")
    if not (wide_from_px > 0 and not math.isnan(wide_from_px)):
        raise ValueError(f"wide_from_px must be a positive number of pixels (or inf), got {wide_from_px!r}")
    if not (wide_snr > 0 and not math.isnan(wide_snr)):
        raise ValueError(f"wide_snr must be a positive number (or inf), got {wide_snr!r}")
    if not (math.isfinite(wide_side_frac) and 0 <= wide_side_frac <= 4):
        raise ValueError(f"wide_side_frac must be a number in [0, 4], got {wide_side_frac!r}")
    if isinstance(wide_n_side, bool) or int(wide_n_side) != wide_n_side or not 1 <= wide_n_side <= 64:
        raise ValueError(f"wide_n_side must be a whole number in [1, 64], got {wide_n_side!r}")
    if along_max_px is None:
        along = np.full(pts.shape[0], np.inf)
    else:
        along = np.asarray(along_max_px, dtype=np.float64).reshape(-1)
        if along.shape[0] != pts.shape[0]:
            raise ValueError(f"along_max_px must have one value per point ({pts.shape[0]}), got {along.shape[0]}")
        along = np.where(np.isnan(along), 0.0, along)
    norm = np.hypot(nrm[:, 0], nrm[:, 1])
    bad = ~(np.isfinite(norm) & (norm > 0))
    unit = np.where(bad[:, None], 0.0, nrm / np.where(bad, 1.0, norm)[:, None])
    guess = np.where(bad, np.nan, guess)
    w = np.empty(pts.shape[0])
    c = np.empty(pts.shape[0])
    img = np.ascontiguousarray(img)
    reach_a = np.array(reach, np.float64)
    if pts.shape[0]:
        pts = np.ascontiguousarray(pts)
        unit = np.ascontiguousarray(unit)

        def fwhm(p, u, g, out_w, out_c, out_s, ns, sf):
            # each point on its own: chunks of points on threads give the same values
            run_chunked(lambda lo, hi: _kernel(img, p[lo:hi], u[lo:hi], g[lo:hi], float(step_px), int(ns), float(sf),
                                               reach_a, float(gap_frac), out_w[lo:hi], out_c[lo:hi], out_s[lo:hi]),
                        p.shape[0])  # fmt: skip

        # the longer averages: k times the length of the first (k = 2 .. k_max), their profiles
        # as far apart as wide_n_side's over wide_side_frac
        k_max = max(1, int(math.floor(wide_side_frac / side_frac + 1e-9))) if side_frac > 0 else 1
        spacing = wide_side_frac / wide_n_side

        def measure(idx, g, level):
            # the points idx with first widths g, each averaged over level times the first length
            # (no further along the vessel than along_max_px allows)
            if side_frac > 0:
                fit = np.floor(along[idx] / np.maximum(side_frac * np.where(np.isfinite(g), g, 0.0), 1e-12) + 1e-9)
                level = np.where(level > 1, np.clip(np.minimum(level, fit), 1, None), level).astype(np.int64)
            ow, oc, osn = np.empty(idx.size), np.empty(idx.size), np.empty(idx.size)
            for k in np.unique(level):
                i = np.flatnonzero(level == k)
                sf = side_frac if k <= 1 else (wide_side_frac if k >= k_max else k * side_frac)
                ns = n_side if k <= 1 else max(n_side, int(round(sf / spacing)))
                w_, c_, s_ = np.empty(i.size), np.empty(i.size), np.empty(i.size)
                fwhm(np.ascontiguousarray(pts[idx[i]]), np.ascontiguousarray(unit[idx[i]]),
                     np.ascontiguousarray(g[i]), w_, c_, s_, int(ns), float(sf))  # fmt: skip
                ow[i], oc[i], osn[i] = w_, c_, s_
            return ow, oc, osn

        w, c, snr = measure(np.arange(pts.shape[0]), guess, np.ones(pts.shape[0], np.int64))
        # a wide profile whose height is under wide_snr times its noise: once more, averaged
        # along the vessel over as many times the first length as takes the noise down to
        # that (the noise of a mean falls as the root of the length averaged), at most
        # wide_side_frac widths (a profile without a width: the most)
        level = np.ones(pts.shape[0], np.int64)
        # wide by its own half-maximum width where the first measurement found one (the bar
        # fit's first width reads a faint thin vessel up to twice as wide), else by the guess
        wide = np.where(np.isfinite(w), w, guess) >= wide_from_px  # NaN: not wide
        need = np.where(snr > 0, (wide_snr / np.where(snr > 0, snr, 1.0)) ** 2, np.inf)
        level[wide] = np.clip(np.ceil(need[wide] - 1e-9), 1, k_max).astype(np.int64)
        if (level > 1).any():
            i = np.flatnonzero(level > 1)
            if centreline_reach:
                along[i] = np.minimum(along[i], _centreline_reach(img.shape, pts, unit, i, guess[i], wide_side_frac, wide_n_side))
            w2, c2, _ = measure(i, guess[i], level[i])
            ok = np.isfinite(w2)
            w[i[ok]], c[i[ok]] = w2[ok], c2[ok]
        # profiles wider than their guess were seen through too small a window (the flanks
        # still on the vessel's blurred shoulders): once more, the window set by their width
        again = np.flatnonzero(np.isfinite(w) & (w > guess))
        if again.size:
            w2, c2, _ = measure(again, w[again], level[again])
            ok = np.isfinite(w2)
            w[again[ok]], c[again[ok]] = w2[ok], c2[ok]
    # out in quadrature: the camera's blur and the 1/6 px^2 that linear interpolation between
    # pixels adds to the sampled profile
    blur_var = _FWHM_PER_SIGMA**2 * (float(psf_sigma_px) ** 2 + 1.0 / 6.0)
    quad = np.sqrt(np.maximum(w * w - blur_var, 0.25))  # NaN stays NaN
    if blur_shape and pts.shape[0]:
        from veinscope._kernels.fwhm import blur_shape as _shape

        k = np.empty(pts.shape[0])
        run_chunked(lambda lo, hi: _shape(img, pts[lo:hi], unit[lo:hi], w[lo:hi], c[lo:hi], float(step_px), int(n_side),
                                          float(side_frac), k[lo:hi]), pts.shape[0])  # fmt: skip
        k = np.where(np.isfinite(k), np.clip(k, 0.0, 1.0), 1.0)
        # a small blur's first-order effect says nothing of a profile that is mostly blur: the
        # shape counts by the share of the profile's variance that is the vessel's own
        own = np.clip(1.0 - blur_var / np.maximum(w * w, 1e-12), 0.0, 1.0)
        k = 1.0 - (1.0 - k) * own
        w = w - k * (w - quad)
    else:
        w = quad
    w[w > max_width_px] = np.nan
    return w, c


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
        half_max_widths(img.astype(dtype), pts, nrm, np.full(len(pts), 4.0))
    # the longer average held to the centreline (analyze's wide_profile_mm): its own kernel
    half_max_widths(img, pts, nrm, np.full(len(pts), 4.0), wide_from_px=1.0, wide_snr=np.inf, centreline_reach=True)
