"""Generic vessel map of any image (retina, microscopy, skin): a score and a binary mask.

:func:`vesselmap` scores every pixel of a grey or RGB image for "belongs to a thin dark (or,
with ``bright=True``, bright) elongated structure" and thresholds the score into a mask.
It is the same for every image: no per-image tuning, one fixed set of parameters.

Method
------
1. **Channel.** RGB images use the green channel (blood absorbs green most, so vessels have
   the best contrast there in fundus photos, skin photos and unstained microscopy); grey
   images are used as they are. Intensities are treated as non-negative light measurements.
2. **Field of view.** With a ``fov`` mask, a thin rim of it (1 % of its equivalent diameter,
   5 px on DRIVE) is dropped, because photographed fields of view fade out at their edge,
   and everything outside is extended ring by ring with Gaussian-weighted means of the
   pixels already known (the iterative mean padding of Soares et al. 2006, with smooth
   weights), so that no filter sees a step at the border and the rim is not a vessel.
3. **Background normalisation.** The image is divided by its large-scale background (a
   Gaussian of 12 px): uneven illumination and vignetting become a flat background of 1 and
   vessel contrast becomes relative.
4. **Thirteen generic features**, each normalised per image by its median and scaled median
   absolute deviation inside the field of view (so one model fits every image):

   * ``line_1.5px``, ``line_1px``: the second derivative across the direction, from the
     Hessian of a Gaussian of 1.5 px (1 px) steered to 12 orientations, averaged along a
     straight digital line of 21 px (17 px) in that orientation, maximum over orientations
     (a multi-scale line detector on Hessian ridge strength, in the spirit of Nguyen et al.
     2013 and of elongated matched filters; it bridges junctions and thin, noisy vessels
     where Frangi's saturated measure fails);
   * ``darkness``, ``darkness_3px``: the normalised image smoothed by 1 px (3 px), negated;
   * ``tophat``, ``tophat_3px``, ``tophat_11px``: black top-hats, morphological closing by a
     disc of radius 7 (3, 11) px minus the 1 px-smoothed image (how much darker a pixel is
     than its surroundings, at three sizes);
   * ``edge_1px``, ``edge_4px``: gradient magnitude at 1 px and 4 px (edges of bright
     regions are not vessels);
   * ``eig_hi_1px``, ``eig_lo_1px``, ``eig_hi_2px``, ``eig_lo_2px``: the two scale-normalised
     Hessian eigenvalues at 1 px and 2 px (the local shape: line, blob, edge or flat).
5. **Combination.** ``score = sigmoid(logit)`` with ``logit = b + w . z + z' Q z``: a
   second-order (quadratic) logistic regression, 13 linear and 91 product weights
   (:mod:`veinscope._vesselmap_model`), fitted on the 20 DRIVE training images by
   ``benchmarks/bench_drive.py --fit``; the same script fits each half alone and scores the
   other half, which is the honest estimate for unseen images (figures in BENCHMARKS.md).
   ``mask = logit > threshold`` inside the field of view, the threshold chosen for mean
   accuracy on the training images.

Every length is in pixels: the map finds vessels about 1-14 px wide. For images whose
vessels are much wider, downsample first.

References
----------
.. [1] Soares, J. V. B., Leandro, J. J. G., Cesar, R. M., Jelinek, H. F., & Cree, M. J.
   (2006). Retinal vessel segmentation using the 2-D Gabor wavelet and supervised
   classification. IEEE TMI 25(9), 1214-1222. :DOI:`10.1109/TMI.2006.879967`
   (field-of-view extension, per-image feature normalisation)
.. [2] Nguyen, U. T. V., Bhuiyan, A., Park, L. A. F., & Ramamohanarao, K. (2013). An
   effective retinal blood vessel segmentation method using multi-scale line detection.
   Pattern Recognition 46(3), 703-715. :DOI:`10.1016/j.patcog.2012.08.009`
.. [3] Frangi, A. F., Niessen, W. J., Vincken, K. L., & Viergever, M. A. (1998). Multiscale
   vessel enhancement filtering. MICCAI'98, 130-137. :DOI:`10.1007/BFb0056195`
.. [4] Zana, F., & Klein, J.-C. (2001). Segmentation of vessel-like patterns using
   mathematical morphology and curvature evaluation. IEEE TIP 10(7), 1010-1019.
   :DOI:`10.1109/83.931095` (top-hat vessel enhancement)
.. [5] Staal, J., Abramoff, M. D., Niemeijer, M., Viergever, M. A., & van Ginneken, B.
   (2004). Ridge-based vessel segmentation in color images of the retina. IEEE TMI 23(4),
   501-509. :DOI:`10.1109/TMI.2004.825627` (the DRIVE database)
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from veinscope._kernels import vmap_lines as _vk
from veinscope._version import __version__

__all__ = ["VesselMap", "vesselmap", "warmup", "FEATURES"]

log = logging.getLogger(__name__)

#: Fraction of the field of view's equivalent diameter dropped at its rim before extension.
RIM_FRAC = 0.01
#: Gaussian sigma (px) of the weights that extend the image outside the field of view.
FILL_SIGMA_PX = 1.5
#: Gaussian sigma (px) of the large-scale background the image is divided by.
BACKGROUND_SIGMA_PX = 12.0
#: Smoothing (px) of the intensity features (darkness, top-hat).
SMOOTH_SIGMA_PX = 1.0
#: Radius (px) of the disc closing of the top-hat feature.
TOPHAT_RADIUS_PX = 7
#: Orientations of the line features (over 180 degrees).
N_ORIENTATIONS = 12
#: (Hessian sigma px, line length px) of the line features.
LINE_SCALES = ((1.5, 21.0), (1.0, 17.0))
#: Weighting along the lines: "box" (uniform over the length) or "gauss" (length = sigma).
LINE_PROFILE = "box"
#: Gaussian sigmas (px) of the edge (gradient magnitude) features.
EDGE_SIGMAS_PX = (1.0, 4.0)
#: Radii (px) of the extra top-hat features.
EXTRA_TOPHAT_RADII_PX = (3, 11)
#: Smoothing (px) of the coarse darkness feature.
COARSE_SMOOTH_SIGMA_PX = 3.0
#: Gaussian sigmas (px) of the Hessian eigenvalue features.
EIGEN_SIGMAS_PX = (1.0, 2.0)
#: Feature names, in the order of the model's weights (:mod:`veinscope._vesselmap_model`).
FEATURES = (
    "line_1.5px", "line_1px", "darkness", "tophat", "edge_1px", "edge_4px",
    "tophat_3px", "tophat_11px", "darkness_3px",
    "eig_hi_1px", "eig_lo_1px", "eig_hi_2px", "eig_lo_2px",
)  # fmt: skip
#: Smallest image side accepted (pixels).
MIN_SIDE_PX = 16
#: Smallest number of field-of-view pixels accepted.
MIN_FOV_PIXELS = 64
#: Pixels sampled (on a regular grid) for the per-image normalisation statistics.
STATS_SAMPLES = 400_000
#: Images with fewer pixels run the line kernels serially.
PARALLEL_MIN_PIXELS = 250_000


@dataclass(frozen=True)
class VesselMap:
    """Vessel score and segmentation of one image.

    Attributes
    ----------
    score : ndarray, shape (M, N), float32
        Probability-like vessel score in [0, 1], higher = more vessel; 0 outside the field
        of view.
    mask : ndarray, shape (M, N), bool
        Binary vessel segmentation (False outside the field of view).
    params : dict
        Parameters used (method constants, model weights, threshold, whether a field of view
        was given, the channel, polarity) and ``veinscope_version``.
    """

    score: np.ndarray
    mask: np.ndarray
    params: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Summary as plain Python values (no arrays): shape, vessel fraction, params."""
        return {
            "shape": list(self.score.shape),
            "vessel_frac": float(self.mask.mean()) if self.mask.size else 0.0,
            "params": dict(self.params),
        }


# --------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------
def _check_image(image) -> tuple[np.ndarray, str]:
    """Return (the working channel as float32 (M, N), channel name); never modifies input."""
    if not isinstance(image, np.ndarray):
        try:
            image = np.asarray(image)
        except Exception as exc:  # pragma: no cover - numpy raises many kinds
            raise TypeError(f"image must be an array, got {type(image).__name__}") from exc
    if image.dtype.kind not in "biuf":
        raise TypeError(f"image must have a bool, integer or float dtype, got {image.dtype}")
    if image.ndim == 2:
        grey, channel = image, "grey"
    elif image.ndim == 3 and image.shape[2] in (3, 4):
        grey, channel = image[:, :, 1], "green"
    else:
        raise ValueError(f"image must have shape (M, N) or (M, N, 3), got {image.shape}")
    if min(grey.shape) < MIN_SIDE_PX:
        raise ValueError(f"image must be at least {MIN_SIDE_PX}x{MIN_SIDE_PX} pixels, got shape {image.shape}")
    g = np.array(grey, dtype=np.float32)  # always a copy
    if not np.isfinite(g).all():
        raise ValueError("image must contain only finite values (found NaN or inf)")
    return g, channel


def _check_fov(fov, shape: tuple[int, int]) -> np.ndarray | None:
    if fov is None:
        return None
    f = np.asarray(fov)
    if f.dtype != np.bool_:
        if f.dtype.kind not in "biu":
            raise TypeError(f"fov must be a boolean (M, N) array, got dtype {f.dtype}")
        f = f != 0
    if f.shape != tuple(shape):
        raise ValueError(f"fov must have the image's shape {tuple(shape)}, got {f.shape}")
    n = int(f.sum())
    if n < MIN_FOV_PIXELS:
        raise ValueError(f"fov must contain at least {MIN_FOV_PIXELS} pixels, got {n}")
    return np.ascontiguousarray(f)


# --------------------------------------------------------------------------------------
# filters
# --------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=32)
def _gauss_kernels(sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sampled Gaussian correlation kernels of order 0, 1, 2 (float32, radius ceil(4 sigma)).

    Normalised to be exact on polynomials: ``sum k0 = 1``, ``sum u k1 = 1``,
    ``sum k2 = 0`` and ``sum u**2 / 2 k2 = 1`` (``u`` the offset); as correlation kernels
    (OpenCV), ``k1`` gives the first and ``k2`` the second derivative.
    """
    r = max(1, int(math.ceil(4.0 * sigma)))
    u = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-0.5 * (u / sigma) ** 2)
    k0 = g / g.sum()
    k1 = u * g
    k1 /= (u * k1).sum()
    k2 = (u * u - sigma * sigma) * g
    k2 -= k2.mean()
    k2 /= (0.5 * u * u * k2).sum()
    out = tuple(k.astype(np.float32) for k in (k0, k1, k2))
    for k in out:
        k.flags.writeable = False
    return out  # type: ignore[return-value]


def _sep(img: np.ndarray, ky: np.ndarray, kx: np.ndarray) -> np.ndarray:
    """Separable correlation, ``ky`` along rows (y) and ``kx`` along columns, reflected borders."""
    return cv2.sepFilter2D(img, cv2.CV_32F, kx, ky, borderType=cv2.BORDER_REFLECT)


def _gaussian(img: np.ndarray, sigma: float) -> np.ndarray:
    k0, _, _ = _gauss_kernels(float(sigma))
    return _sep(img, k0, k0)


def _fill_weights(sigma: float) -> np.ndarray:
    r = max(1, int(math.ceil(2.0 * sigma)))
    u = np.arange(-r, r + 1, dtype=np.float64)
    w = np.exp(-0.5 * (u[:, None] ** 2 + u[None, :] ** 2) / sigma**2)
    return w.astype(np.float32)


def _extend_outside(g: np.ndarray, fov: np.ndarray) -> tuple[np.ndarray, int]:
    """Drop the rim of the field of view and extend the image outside it; returns (image, rim px)."""
    if fov.all():
        return g, 0
    area = float(fov.sum())
    rim = int(round(RIM_FRAC * 2.0 * math.sqrt(area / math.pi)))
    inner = fov
    if rim > 0:
        dist = cv2.distanceTransform(fov.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        cand = dist > rim
        if int(cand.sum()) >= MIN_FOV_PIXELS:
            inner = cand
        else:
            rim = 0
    # filters reach at most ~3 background sigmas: rings beyond are filled with a constant
    max_rings = int(math.ceil(4.0 * BACKGROUND_SIGMA_PX + 3.0 * max(L for _, L in LINE_SCALES)))
    out = _vk.fill_outside(g, inner, _fill_weights(FILL_SIGMA_PX), max_rings)
    return out, rim


def _line_taps(length: float, dom: float, cross: float, profile: str) -> tuple[np.ndarray, np.ndarray]:
    """Row offsets' column shifts and weights of a digital line.

    ``dom`` is the component of the unit direction along the stepping axis (``|dom| >=
    |cross|``); one step is ``1 / |dom|`` px along the line. ``profile`` "box": uniform over
    about ``length`` px; "gauss": Gaussian of sigma ``length`` px, cut at 2.5 sigma.
    """
    step = 1.0 / abs(dom)
    if profile == "box":
        k = int(round(length * abs(dom))) // 2
        j = np.arange(-k, k + 1)
        w = np.ones(j.size)
    else:
        k = max(1, int(round(2.5 * length * abs(dom))))
        j = np.arange(-k, k + 1)
        w = np.exp(-0.5 * (j * step / length) ** 2)
    shifts = np.array([int(round(v * cross / dom)) for v in j], np.int64)
    return shifts, (w / w.sum()).astype(np.float32)


def _line_feature(x: np.ndarray, sigma: float, length: float, parallel: bool) -> np.ndarray:
    """Max over orientations of the line mean of the second derivative across the line.

    ``x`` has dark vessels; the steered second derivative ``n' H n`` (``n`` the unit normal
    of the line, ``H`` the Hessian of a Gaussian of ``sigma`` px, times ``sigma**2``) is
    positive across a dark line and is averaged along a digital line (:data:`LINE_PROFILE`)
    of about ``length`` px.
    """
    k0, k1, k2 = _gauss_kernels(float(sigma))
    s2 = np.float32(sigma * sigma)
    hxx = _sep(x, k0, k2) * s2
    hxy = _sep(x, k1, k1) * s2
    hyy = _sep(x, k2, k0) * s2
    taps = []
    for a in range(N_ORIENTATIONS):
        th = math.pi * a / N_ORIENTATIONS
        dx, dy = math.cos(th), -math.sin(th)  # along the line (x right, y down)
        nx, ny = -dy, dx  # across the line
        vertical = abs(dy) >= abs(dx)
        shifts, w = _line_taps(length, dy if vertical else dx, dx if vertical else dy, LINE_PROFILE)
        taps.append((vertical, (nx * nx, 2.0 * nx * ny, ny * ny), shifts, w))
    pad = max(int(np.abs(t[2]).max()) for t in taps) + 1
    pad = max(pad, max(t[2].size // 2 for t in taps) + 1)
    m, n = x.shape
    line = _vk.line_mean_max_parallel if parallel else _vk.line_mean_max
    best = np.full((m, n), -np.inf, np.float32)
    best_t = np.full((n, m), -np.inf, np.float32)
    padded = [cv2.copyMakeBorder(h, pad, pad, pad, pad, cv2.BORDER_REFLECT) for h in (hxx, hxy, hyy)]
    padded_t = None
    steered = np.empty_like(padded[0])
    steered_t = None
    for vertical, (cxx, cxy, cyy), shifts, w in taps:
        k = w.size // 2
        if vertical:  # near-vertical lines: rows of the image
            _vk.steer3(cxx, cxy, cyy, padded[0], padded[1], padded[2], steered)
            line(steered[pad - k : pad + m + k], shifts, w, best)
        else:  # near-horizontal lines: rows of the transposed image (same steered field)
            if padded_t is None:
                padded_t = [np.ascontiguousarray(p.T) for p in padded]
                steered_t = np.empty_like(padded_t[0])
            _vk.steer3(cxx, cxy, cyy, padded_t[0], padded_t[1], padded_t[2], steered_t)
            line(steered_t[pad - k : pad + n + k], shifts, w, best_t)
    np.maximum(best, best_t.T, out=best)
    return best


def _edge(x: np.ndarray, sigma: float) -> np.ndarray:
    k0, k1, _ = _gauss_kernels(float(sigma))
    gx = _sep(x, k0, k1)
    gy = _sep(x, k1, k0)
    return np.sqrt(gx * gx + gy * gy) * np.float32(sigma)


def _eigenvalues(x: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Scale-normalised Hessian eigenvalues (larger, smaller) of a Gaussian of ``sigma`` px."""
    k0, k1, k2 = _gauss_kernels(float(sigma))
    s2 = np.float32(sigma * sigma)
    hxx = _sep(x, k0, k2) * s2
    hxy = _sep(x, k1, k1) * s2
    hyy = _sep(x, k2, k0) * s2
    half_tr = 0.5 * (hxx + hyy)
    disc = np.sqrt(0.25 * (hxx - hyy) ** 2 + hxy * hxy)
    return half_tr + disc, half_tr - disc


def _normalised(g: np.ndarray, fov: np.ndarray | None, bright: bool) -> tuple[np.ndarray, int]:
    """Green/grey channel -> background-normalised image with dark vessels (1 = background)."""
    lo = float(g.min())
    if lo < 0.0:
        g = g - np.float32(lo)
    rim = 0
    if fov is not None:
        g, rim = _extend_outside(g, fov)
    bg = _gaussian(g, BACKGROUND_SIGMA_PX)
    sample = g if fov is None else g[fov]
    top = float(np.percentile(sample[:: max(1, sample.size // STATS_SAMPLES)], 99.0))
    floor = np.float32(max(0.05 * top, 1e-12))
    x = g / np.maximum(bg, floor)
    if bright:
        x = np.float32(2.0) - x
    return np.ascontiguousarray(x, dtype=np.float32), rim


def _feature_stack(image, *, fov=None, bright=False) -> tuple[np.ndarray, np.ndarray, dict]:
    """Robust per-image z-scores of the :data:`FEATURES`: (K, M, N) float32, fov, info."""
    g, channel = _check_image(image)
    fov_arr = _check_fov(fov, g.shape)
    if not isinstance(bright, (bool, np.bool_)):
        raise TypeError(f"bright must be True or False, got {bright!r}")
    x, rim = _normalised(g, fov_arr, bool(bright))
    parallel = x.size >= PARALLEL_MIN_PIXELS
    xs = _gaussian(x, SMOOTH_SIGMA_PX)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * TOPHAT_RADIUS_PX + 1,) * 2)
    feats = [_line_feature(x, s, L, parallel) for s, L in LINE_SCALES]
    feats.append(-xs)
    feats.append(cv2.morphologyEx(xs, cv2.MORPH_CLOSE, disc, borderType=cv2.BORDER_REPLICATE) - xs)
    feats.extend(_edge(x, s) for s in EDGE_SIGMAS_PX)
    for r in EXTRA_TOPHAT_RADII_PX:
        d = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2)
        feats.append(cv2.morphologyEx(xs, cv2.MORPH_CLOSE, d, borderType=cv2.BORDER_REPLICATE) - xs)
    feats.append(-_gaussian(x, COARSE_SMOOTH_SIGMA_PX))
    for s in EIGEN_SIGMAS_PX:
        feats.extend(_eigenvalues(x, s))
    inside = np.ones(x.shape, bool) if fov_arr is None else fov_arr
    # per-image robust normalisation on a regular grid of at most ~STATS_SAMPLES pixels
    step = max(1, int(math.sqrt(x.size / STATS_SAMPLES)))
    grid = inside[::step, ::step]
    z = np.empty((len(feats),) + x.shape, np.float32)
    for i, f in enumerate(feats):
        v = f[::step, ::step][grid].astype(np.float64)
        med = float(np.median(v))
        mad = 1.4826 * float(np.median(np.abs(v - med)))
        scale = max(mad, 0.1 * float(v.std()))
        if not scale > 1e-12 * max(1.0, abs(med)):
            z[i] = 0.0
        else:
            np.subtract(f, np.float32(med), out=z[i])
            z[i] *= np.float32(1.0 / scale)
    info = {"channel": channel, "rim_px": rim, "fov_given": fov_arr is not None}
    return z, inside, info


@functools.lru_cache(maxsize=1)
def _model() -> tuple[np.ndarray, np.ndarray, float, float]:
    """(linear (K,), quadratic upper-triangular (K, K), intercept, threshold) as float32."""
    from veinscope import _vesselmap_model as m

    if tuple(m.FEATURES) != FEATURES:
        raise RuntimeError("veinscope._vesselmap_model was fitted on other features; re-run benchmarks/bench_drive.py --fit")
    k = len(FEATURES)
    lin = np.asarray(m.LINEAR, np.float32)
    quad = np.zeros((k, k), np.float32)
    iu = np.triu_indices(k)
    quad[iu] = np.asarray(m.QUADRATIC, np.float32)
    for a in (lin, quad):
        a.flags.writeable = False
    return lin, quad, float(m.INTERCEPT), float(m.THRESHOLD)


def _logit(z: np.ndarray) -> np.ndarray:
    """The model's logit of a (K, M, N) feature stack."""
    lin, quad, b, _ = _model()
    out = np.empty(z.shape[1:], np.float32)
    _vk.quad_logit(np.ascontiguousarray(z, np.float32), lin, quad, b, out)
    return out


def vesselmap(image, *, fov=None, bright=False) -> VesselMap:
    """Vessel score and mask of a grey or RGB image (retina, microscopy, skin).

    Parameters
    ----------
    image : array_like, shape (M, N) or (M, N, 3)
        Grey or RGB image of any numeric dtype (the green channel of RGB is used; a fourth
        alpha channel is ignored). Intensities are used as they are (any scale). Never
        modified. At least 16x16 pixels.
    fov : array_like of bool, shape (M, N), optional
        Field of view: only pixels inside are scored (score 0 and mask False outside). A
        thin rim of it (1 % of its equivalent diameter) is re-estimated from the inside,
        so a fading edge is not taken for a vessel. Default: the whole image.
    bright : bool
        False (default) for dark vessels on a brighter background (fundus and skin photos,
        bright-field microscopy); True for bright vessels (fluorescence, angiograms).

    Returns
    -------
    VesselMap
        ``score`` float32 in [0, 1], ``mask`` bool, ``params``.

    Raises
    ------
    ValueError
        If the image is not (M, N) / (M, N, 3), smaller than 16x16 or not finite, or
        ``fov`` has another shape or fewer than 64 pixels.
    TypeError
        If the image or ``fov`` has a non-numeric dtype or ``bright`` is not a bool.

    Notes
    -----
    Method and references in the module docstring; figures on DRIVE
    (doi:10.1109/TMI.2004.825627) in ``benchmarks/drive.md``. Vessel widths of about
    1-14 px are found; downsample images whose vessels are wider.

    Examples
    --------
    >>> img = np.full((48, 48), 200, np.uint8)
    >>> img[:, 23:25] = 150                       # a dark vertical line, 2 px wide
    >>> vm = vesselmap(img)
    >>> bool(vm.mask[24, 23]), bool(vm.mask[24, 5]), vm.score.dtype.name
    (True, False, 'float32')
    """
    z, inside, info = _feature_stack(image, fov=fov, bright=bright)
    logit = _logit(z)
    score = np.empty_like(logit)
    np.negative(logit, out=score)
    np.exp(np.clip(score, -80.0, 80.0), out=score)
    score += 1.0
    np.reciprocal(score, out=score)
    score[~inside] = 0.0
    threshold = _model()[3]
    mask = (logit > np.float32(threshold)) & inside
    params = {
        "method": "second-order logistic regression of 13 per-image robust-z generic features (see module docstring)",
        "features": list(FEATURES),
        "model": "veinscope._vesselmap_model (fitted by benchmarks/bench_drive.py --fit)",
        "threshold_logit": threshold,
        "bright": bool(bright),
        "channel": info["channel"],
        "fov_given": info["fov_given"],
        "rim_px": info["rim_px"],
        "background_sigma_px": BACKGROUND_SIGMA_PX,
        "line_scales_px": [list(s) for s in LINE_SCALES],
        "n_orientations": N_ORIENTATIONS,
        "edge_sigmas_px": list(EDGE_SIGMAS_PX),
        "extra_tophat_radii_px": list(EXTRA_TOPHAT_RADII_PX),
        "eigen_sigmas_px": list(EIGEN_SIGMAS_PX),
        "tophat_radius_px": TOPHAT_RADIUS_PX,
        "veinscope_version": __version__,
    }
    return VesselMap(score=score, mask=mask, params=params)


def warmup() -> None:
    """Compile (or load from the Numba cache) the vessel-map kernels on a tiny image."""
    img = np.full((MIN_SIDE_PX * 2, MIN_SIDE_PX * 2), 100.0, np.float32)
    img[:, MIN_SIDE_PX] = 60.0
    fov = np.zeros(img.shape, bool)
    fov[4:-4, 4:-4] = True
    vesselmap(img, fov=fov)
    # the parallel line kernel is used on large images only
    src = np.zeros((5, 8), np.float32)
    _vk.line_mean_max_parallel(src, np.zeros(5, np.int64), np.full(5, 0.2, np.float32), np.zeros((1, 6), np.float32))
