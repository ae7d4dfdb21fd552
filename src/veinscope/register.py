"""Aligning a follow-up photo of a treated site with its baseline photo.

The follow-up is mapped onto the baseline's pixel grid in up to three steps:

1. **Calibration cards** (optional): when both photos show the card, its corners give a first
   homography (``card_homography=``; detection lives in ``calibrate.py``).
2. **Features on the skin**: SIFT keypoints (Lowe 2004, doi:10.1023/B:VISI.0000029664.99615.94)
   on the skin of both photos at a working resolution, Lowe's ratio test, and a homography fitted
   robustly with MAGSAC++ (Barath et al. 2020, doi:10.1109/CVPR42600.2020.00138). Pores,
   freckles, hairs and the vessels themselves are the landmarks; SIFT descriptors are normalised
   for contrast, so exposure and white-balance changes do not matter.
3. **Dense refinement**: the homography is refined by maximising the enhanced correlation
   coefficient (ECC, Evangelidis and Psarakis 2008, doi:10.1109/TPAMI.2008.113) on a high-passed
   luminance image, which is invariant to brightness and contrast changes. Where the leg's
   curvature or a change of pose leaves a residual that a plane cannot take up, a heavily
   smoothed DIS optical flow (Kroeger et al. 2016, doi:10.1007/978-3-319-46493-0_29) is added,
   but only when it measurably reduces the residual.

The quality is measured after alignment, not assumed: the residual misalignment is the median
of local shifts found by phase correlation in patches spread over the overlapping skin
(``residual_px`` / ``residual_mm``); the inlier share of the feature matches and the overlap of
the two photos' skin are reported too. Photos that do not show the same site, or overlap too
little, raise :class:`~veinscope.errors.RegistrationError` with a plain-language message.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np

from veinscope._version import __version__
from veinscope.errors import RegistrationError

__all__ = ["Registration", "card_of_analysis", "register"]

log = logging.getLogger(__name__)

#: Least median correlation of the aligned skin texture in test patches.
_MIN_PATCH_CORRELATION = 0.2
#: Long side (px) of the images ECC refines on.
_ECC_PX = 600

_SAME_SITE_HELP = (
    "Take the follow-up photo of the same site as the baseline, from a similar distance and angle, "
    "with the same landmarks (e.g. the calibration card, a freckle, the knee) in view."
)


@dataclass(frozen=True)
class Registration:
    """How a follow-up photo maps onto its baseline.

    Attributes
    ----------
    homography : ndarray (3, 3) float64
        Maps follow-up pixel coordinates (x, y, 1) to baseline pixel coordinates.
    baseline_shape, followup_shape : (int, int)
        (M, N) of the two photos.
    flow_px : ndarray (m, n, 2) float32 or None
        Coarse residual displacement (dx, dy) in baseline pixels on a grid of
        ``flow_cell_px`` cells: baseline point p is found at ``H^-1 (p + flow(p))`` in the
        follow-up. None when the homography alone was kept.
    flow_cell_px : float
        Cell size of ``flow_px`` in baseline pixels.
    px_per_mm : float or None
        Scale of the baseline photo (None: residuals in pixels only).
    residual_px, residual_mm : float or None
        Median local misalignment left after registration, measured by phase correlation on
        patches of the overlapping skin (None when too few patches could be measured).
    inlier_frac : float
        Share of the ratio-test feature matches consistent with the homography.
    n_matches, n_inliers : int
    overlap_frac : float
        Share of the baseline's skin that is also in the follow-up photo.
    overlap : ndarray (M, N) bool
        Baseline pixels that can be compared (skin in both photos).
    methods : tuple of str
        Steps that produced the alignment, e.g. ``("features:sift", "ecc")``.
    not_compared : tuple of str
        Plain-language descriptions of the baseline parts outside the follow-up photo.
    warnings : tuple of str
    params : dict
    version : str
    """

    homography: np.ndarray
    baseline_shape: tuple[int, int]
    followup_shape: tuple[int, int]
    flow_px: np.ndarray | None = field(repr=False)
    flow_cell_px: float
    px_per_mm: float | None
    residual_px: float | None
    inlier_frac: float
    n_matches: int
    n_inliers: int
    overlap_frac: float
    overlap: np.ndarray = field(repr=False)
    methods: tuple[str, ...] = ()
    not_compared: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    version: str = __version__

    def with_scale(self, px_per_mm: float) -> Registration:
        """The same alignment with the baseline's scale ``px_per_mm`` set (a registration made
        before the scale was known, e.g. when :func:`veinscope.compare` carries the follow-up
        card's scale back to a baseline without a card): ``residual_mm``, the overlap in mm² and
        the residual's warning follow it. The refusal limit of :func:`register` (8 px, or half a
        millimetre above 16 px/mm) stays the one in pixels it was registered with."""
        if isinstance(px_per_mm, bool) or not (isinstance(px_per_mm, (int, float, np.number)) and math.isfinite(px_per_mm) and px_per_mm > 0):
            raise ValueError(f"px_per_mm must be a positive number, got {px_per_mm!r}")
        ppm = float(px_per_mm)
        warnings = tuple(w for w in self.warnings if w != _residual_warning(self.residual_px, self.px_per_mm))
        w = _residual_warning(self.residual_px, ppm)
        return replace(self, px_per_mm=ppm, warnings=warnings + ((w,) if w is not None else ()))

    @property
    def residual_mm(self) -> float | None:
        if self.residual_px is None or self.px_per_mm is None:
            return None
        return self.residual_px / self.px_per_mm

    def followup_xy(self, points_xy) -> np.ndarray:
        """Follow-up pixel positions (x, y) of baseline pixel positions, shape (K, 2) float64."""
        p = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
        if self.flow_px is not None:
            fx, fy = self._flow_at(p)
            p = p + np.stack([fx, fy], axis=1)
        hi = np.linalg.inv(self.homography)
        q = np.c_[p, np.ones(len(p))] @ hi.T
        return q[:, :2] / q[:, 2:3]

    def _flow_at(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = self.flow_cell_px
        g = self.flow_px
        u = np.clip((p[:, 0] + 0.5) / c - 0.5, 0, g.shape[1] - 1)
        v = np.clip((p[:, 1] + 0.5) / c - 0.5, 0, g.shape[0] - 1)
        x0 = np.minimum(np.floor(u).astype(int), max(g.shape[1] - 2, 0))
        y0 = np.minimum(np.floor(v).astype(int), max(g.shape[0] - 2, 0))
        x1 = np.minimum(x0 + 1, g.shape[1] - 1)
        y1 = np.minimum(y0 + 1, g.shape[0] - 1)
        ax, ay = (u - x0)[:, None], (v - y0)[:, None]
        val = (g[y0, x0] * (1 - ax) + g[y0, x1] * ax) * (1 - ay) + (g[y1, x0] * (1 - ax) + g[y1, x1] * ax) * ay
        return val[:, 0], val[:, 1]

    def warp(self, image, *, interpolation: str = "linear", fill=0) -> np.ndarray:
        """The follow-up image (or a mask or map of its size) resampled onto the baseline grid.

        Parameters
        ----------
        image : ndarray (M', N') or (M', N', C)
            Of the follow-up's shape.
        interpolation : {"nearest", "linear", "cubic"}
        fill : scalar
            Value outside the follow-up photo.

        Returns
        -------
        ndarray of the baseline's (M, N) (and C), same dtype (bool stays bool).
        """
        a = np.asarray(image)
        if a.shape[:2] != tuple(self.followup_shape):
            raise ValueError(f"image must have the follow-up's shape {tuple(self.followup_shape)}, got {a.shape[:2]}")
        flags = {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}
        if interpolation not in flags:
            raise ValueError(f"interpolation must be one of {sorted(flags)}, got {interpolation!r}")
        is_bool = a.dtype == np.bool_
        src = a.astype(np.uint8) if is_bool else a
        m, n = self.baseline_shape
        bval = (float(fill),) * 4 if np.isscalar(fill) else tuple(float(v) for v in fill)
        if self.flow_px is None:
            out = cv2.warpPerspective(
                src, self.homography, (n, m), flags=flags[interpolation], borderMode=cv2.BORDER_CONSTANT, borderValue=bval
            )
        else:
            mx, my = self._maps()
            out = cv2.remap(src, mx, my, flags[interpolation], borderMode=cv2.BORDER_CONSTANT, borderValue=bval)
        if out.ndim == 2 and a.ndim == 3:
            out = out[..., None]
        return out.astype(bool) if is_bool else out

    def _maps(self) -> tuple[np.ndarray, np.ndarray]:
        m, n = self.baseline_shape
        fl = cv2.resize(self.flow_px, (n, m), interpolation=cv2.INTER_LINEAR)
        xx, yy = np.meshgrid(np.arange(n, dtype=np.float32), np.arange(m, dtype=np.float32))
        px = xx + fl[..., 0]
        py = yy + fl[..., 1]
        hi = np.linalg.inv(self.homography).astype(np.float64)
        w = hi[2, 0] * px + hi[2, 1] * py + hi[2, 2]
        mx = ((hi[0, 0] * px + hi[0, 1] * py + hi[0, 2]) / w).astype(np.float32)
        my = ((hi[1, 0] * px + hi[1, 1] * py + hi[1, 2]) / w).astype(np.float32)
        return mx, my

    def to_dict(self) -> dict[str, Any]:
        """The ``registration`` block of ``comparison.json``."""
        ppm = self.px_per_mm
        overlap_px = int(np.count_nonzero(self.overlap))
        return {
            "residual_mm": None if self.residual_mm is None else round(self.residual_mm, 4),
            "residual_px": None if self.residual_px is None else round(self.residual_px, 3),
            "inlier_frac": round(self.inlier_frac, 4),
            "n_matches": self.n_matches,
            "n_inliers": self.n_inliers,
            "overlap_frac": round(self.overlap_frac, 4),
            "overlap_mm2": None if ppm is None else round(overlap_px / ppm**2, 2),
            "overlap_px2": overlap_px,
            "methods": list(self.methods),
            "homography": [[round(float(v), 8) for v in row] for row in self.homography],
            "not_compared": list(self.not_compared),
            "warnings": list(self.warnings),
        }


# ============================================================================================
def register(
    baseline,
    followup,
    *,
    px_per_mm: float | None = None,
    baseline_skin=None,
    followup_skin=None,
    card_homography=None,
    use_cards: bool = True,
    cards=None,
    dense: str = "auto",
    work_px: int = 1000,
    min_inliers: int = 20,
    min_inlier_frac: float = 0.12,
    min_overlap_frac: float = 0.3,
    ratio: float = 0.8,
) -> Registration:
    """Align a follow-up photo with its baseline.

    Parameters
    ----------
    baseline, followup : path, bytes, ndarray (M, N, 3) uint8 or Photo
        Anything :func:`veinscope.load_photo` accepts.
    px_per_mm : float, optional
        Scale of the baseline photo, for ``residual_mm`` and the overlap in mm².
    baseline_skin, followup_skin : ndarray (M, N) bool, optional
        Skin masks (e.g. ``Analysis.skin``); computed when not given.
    card_homography : ndarray (3, 3), optional
        Follow-up -> baseline homography from the calibration cards of both photos, used when
        the skin features do not give a consistent alignment.
    use_cards : bool
        When the skin features fail and ``card_homography`` is not given, start from the
        homography of the calibration cards found in both photos
        (:func:`veinscope.calibrate.detect_card`). The cards are taken out of the skin
        landmarks either way. The card is re-placed at every visit, so it only helps
        when it lies at the same place on the skin; the texture check after alignment still
        refuses photos of different sites.
    cards : (Calibration or None, Calibration or None), optional
        The calibration cards already found in the baseline and the follow-up (e.g. at
        intake: :func:`card_of_analysis`; None for a photo known to have no card). Without
        it both photos are searched for the card here (about 0.4 s CPU per 12 MP photo).
    dense : {"auto", "never", "always"}
        Smoothed optical-flow refinement on top of the homography: ``auto`` keeps it only when
        it reduces the measured residual.
    work_px : int
        Long side of the working resolution for features and ECC.
    min_inliers, min_inlier_frac : int, float
        Below these, the photos are taken not to show the same site.
    min_overlap_frac : float
        Least share of the baseline's skin that must be in the follow-up photo.
    ratio : float
        Lowe's ratio test threshold.

    Returns
    -------
    Registration

    Raises
    ------
    RegistrationError
        The photos do not seem to show the same site, or overlap too little.
    """
    from veinscope.io import load_photo
    from veinscope.segment import skin_mask

    t0 = time.perf_counter()
    if dense not in ("auto", "never", "always"):
        raise ValueError(f"dense must be 'auto', 'never' or 'always', got {dense!r}")
    if px_per_mm is not None and not (isinstance(px_per_mm, (int, float)) and math.isfinite(px_per_mm) and px_per_mm > 0):
        raise ValueError(f"px_per_mm must be a positive number, got {px_per_mm!r}")
    if not (isinstance(work_px, (int, np.integer)) and 200 <= work_px <= 8000):
        raise ValueError(f"work_px must be an integer 200-8000, got {work_px!r}")
    b_rgb = load_photo(baseline).rgb
    f_rgb = load_photo(followup).rgb
    bm, bn = b_rgb.shape[:2]
    fm, fn = f_rgb.shape[:2]
    sb = min(1.0, work_px / max(bm, bn))
    sf = min(1.0, work_px / max(fm, fn))
    b_small = _resize(b_rgb, sb)
    f_small = _resize(f_rgb, sf)
    b_skin_s = _small_mask(baseline_skin, b_small.shape[:2], (bm, bn), "baseline_skin") if baseline_skin is not None else skin_mask(b_small)
    f_skin_s = _small_mask(followup_skin, f_small.shape[:2], (fm, fn), "followup_skin") if followup_skin is not None else skin_mask(f_small)
    # the calibration card is printed identically and re-placed at every visit: its pattern
    # would align the cards, not the skin. It is taken out of both photos' landmarks.
    # (whether or not the cards' homography may be used: two cards aligned on each other make
    # photos of different sites look alike)
    if cards is None:
        cal_b, cal_f = _detect_card(b_rgb), _detect_card(f_rgb)
    else:
        if not (isinstance(cards, (tuple, list)) and len(cards) == 2):
            raise ValueError(f"cards must be a pair (baseline card, follow-up card), got {type(cards).__name__}")
        cal_b, cal_f = (c if c is not None and getattr(c, "homography", None) is not None else None for c in cards)
    for cal, skin_s, shape in ((cal_b, b_skin_s, (bm, bn)), (cal_f, f_skin_s, (fm, fn))):
        if cal is not None:
            card = cal.card_mask(shape, margin_mm=4.0)
            skin_s &= ~_small_mask(card, skin_s.shape, shape, "card")
    if b_skin_s.mean() < 0.02 or f_skin_s.mean() < 0.02:
        which = "baseline" if b_skin_s.mean() < 0.02 else "follow-up"
        raise RegistrationError(f"Little or no skin was found in the {which} photo, so it cannot be aligned. {_SAME_SITE_HELP}")
    ab = _scale_matrix(sb)
    af = _scale_matrix(sf)
    b_grey = _texture(b_small)
    f_grey = _texture(f_small)
    warnings: list[str] = []
    methods: list[str] = []

    # --- features ------------------------------------------------------------------------
    h_small, n_matches, n_inliers, inlier_pts = _feature_homography(b_grey, f_grey, b_skin_s, f_skin_s, ratio=ratio)
    inlier_frac = n_inliers / n_matches if n_matches else 0.0
    log.info("features: %d ratio-test matches, %d inliers", n_matches, n_inliers)
    if card_homography is None and use_cards and (h_small is None or n_inliers < min_inliers or inlier_frac < min_inlier_frac):
        card_homography = _card_homography(cal_b, cal_f)
    if card_homography is not None:
        hc = np.asarray(card_homography, dtype=np.float64)
        if hc.shape != (3, 3) or not np.all(np.isfinite(hc)):
            raise ValueError(f"card_homography must be a finite (3, 3) array, got shape {hc.shape}")
        h_card_small = ab @ hc @ np.linalg.inv(af)
        methods.append("card")
        if h_small is None or n_inliers < min_inliers:
            h_small = h_card_small
        else:
            methods.append("features:sift")
    else:
        if h_small is None or n_inliers < min_inliers or inlier_frac < min_inlier_frac:
            raise RegistrationError(
                "These photos do not seem to show the same area: only "
                f"{n_inliers} skin landmarks matched consistently (at least {min_inliers} needed, "
                f"{100 * inlier_frac:.0f} % of {n_matches} candidate matches). {_SAME_SITE_HELP}"
            )
        methods.append("features:sift")
    _check_plausible(h_small)
    # --- overlap, then ECC refinement at the working resolution ------------------------------
    bshape = (b_small.shape[1], b_small.shape[0])
    overlap_s = _overlap(b_skin_s, f_skin_s, h_small, bshape)
    overlap_frac = float(overlap_s.sum()) / max(1.0, float(b_skin_s.sum()))
    if overlap_frac < min_overlap_frac:
        raise RegistrationError(
            f"The photos overlap too little: only {100 * overlap_frac:.1f} % of the baseline's skin is in the "
            f"follow-up photo (at least {100 * min_overlap_frac:.0f} % needed). {_SAME_SITE_HELP}"
        )
    f_warp = cv2.warpPerspective(f_grey, h_small, bshape, flags=cv2.INTER_LINEAR)
    res_small, n_patches, ok_frac, ncc = _patch_residual(b_grey, f_warp, overlap_s)
    h_ecc, ecc_ok = _ecc_refine(b_grey, f_grey, overlap_s, h_small)
    if ecc_ok:
        f_warp_e = cv2.warpPerspective(f_grey, h_ecc, bshape, flags=cv2.INTER_LINEAR)
        res_e, n_e, ok_e, ncc_e = _patch_residual(b_grey, f_warp_e, overlap_s)
        # keep ECC's homography unless the measured residual says it made things worse
        if res_e is not None and (res_small is None or res_e <= res_small + 0.02):
            _check_plausible(h_ecc)
            h_small, f_warp, res_small, n_patches, ok_frac, ncc = h_ecc, f_warp_e, res_e, n_e, ok_e, ncc_e
            methods.append("ecc")
            overlap_s = _overlap(b_skin_s, f_skin_s, h_small, bshape)
            overlap_frac = float(overlap_s.sum()) / max(1.0, float(b_skin_s.sum()))
    # after alignment the same skin's texture correlates patch by patch (generated and demo
    # follow-ups: median 0.7-0.96); another site's does not, even where a few landmarks matched
    if n_patches >= 8 and (ok_frac < 0.25 or ncc < _MIN_PATCH_CORRELATION):
        raise RegistrationError(
            "These photos do not seem to show the same area: after alignment the skin texture does not match "
            f"({100 * ok_frac:.0f} % of {n_patches} test patches agree, median correlation {ncc:.2f}). {_SAME_SITE_HELP}"
        )
    # --- dense refinement where a plane does not fit (curvature, pose) ---------------------
    flow_small = None
    needs_dense = res_small is not None and res_small > 0.5
    if dense == "always" or (dense == "auto" and needs_dense and n_patches >= 8):
        flow_try = _dense_flow(b_grey, f_warp, overlap_s, smooth_px=max(4.0, 0.02 * max(b_small.shape)))
        f_warp2 = _remap_flow(f_warp, flow_try)
        res2, n2, ok2, ncc2 = _patch_residual(b_grey, f_warp2, overlap_s)
        if dense == "always" or (res2 is not None and res2 < 0.6 * res_small):
            flow_small = flow_try
            res_small, n_patches, ok_frac, ncc = res2, n2, ok2, ncc2
            methods.append("dense:dis")
            f_warp = f_warp2
    texture_corr = _texture_correlation(b_grey, f_warp, overlap_s)
    spread = _spread(inlier_pts, overlap_s) if "features:sift" in methods else None
    log.info("texture correlation after alignment %.3f, landmarks spread over %s of the overlap", texture_corr, spread)

    h_full = np.linalg.inv(ab) @ h_small @ af
    h_full /= h_full[2, 2]
    flow_full = None
    cell = 1.0
    if flow_small is not None:
        cell = 1.0 / sb
        flow_full = (flow_small / sb).astype(np.float32)
    residual_px = None if res_small is None else float(res_small / sb)
    limit_px = max(8.0, 0.5 * px_per_mm) if px_per_mm is not None else 8.0
    if residual_px is not None and residual_px > limit_px:
        what = "the calibration cards (the skin did not match)" if "card" in methods and "features:sift" not in methods else "the skin landmarks"
        raise RegistrationError(
            f"These photos could not be aligned reliably: after aligning them by {what} the skin still differs by "
            f"about {residual_px:.0f} pixels. {_SAME_SITE_HELP}"
        )
    if "card" in methods and "features:sift" not in methods and ok_frac < 0.5:
        raise RegistrationError(
            "These photos do not seem to show the same area: the calibration cards line up but the skin around them "
            f"does not ({100 * ok_frac:.0f} % of {n_patches} test patches agree; was the card moved?). {_SAME_SITE_HELP}"
        )

    overlap = cv2.resize(overlap_s.astype(np.uint8), (bn, bm), interpolation=cv2.INTER_NEAREST) > 0 if sb < 1 else overlap_s
    not_compared = _describe_uncovered(b_skin_s & ~overlap_s, b_skin_s)
    if overlap_frac < 0.9:
        warnings.append(
            f"Only {100 * overlap_frac:.0f} % of the baseline's skin is in the follow-up photo; "
            + "; ".join(not_compared)
            + " could not be compared."
        )
    if residual_px is None:
        warnings.append("The alignment could not be checked (too little skin texture in common); look at the side-by-side image.")
    elif _residual_warning(residual_px, px_per_mm) is not None:
        warnings.append(_residual_warning(residual_px, px_per_mm))
    params = {
        "work_px": work_px,
        "scale_baseline": round(sb, 6),
        "scale_followup": round(sf, 6),
        "dense": dense,
        "ratio": ratio,
        "min_inliers": min_inliers,
        "min_inlier_frac": min_inlier_frac,
        "min_overlap_frac": min_overlap_frac,
        "residual_patches": n_patches,
        "residual_patches_agreeing_frac": round(ok_frac, 4),
        "texture_correlation": round(texture_corr, 4),
        "landmark_spread_frac": None if spread is None else round(spread, 4),
        "patch_texture_correlation": round(ncc, 4),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    log.info("registered in %.2f s (%s), residual %s px", params["seconds"], "+".join(methods), residual_px)
    return Registration(
        homography=h_full,
        baseline_shape=(bm, bn),
        followup_shape=(fm, fn),
        flow_px=flow_full,
        flow_cell_px=cell,
        px_per_mm=None if px_per_mm is None else float(px_per_mm),
        residual_px=residual_px,
        inlier_frac=float(inlier_frac),
        n_matches=int(n_matches),
        n_inliers=int(n_inliers),
        overlap_frac=overlap_frac,
        overlap=overlap,
        methods=tuple(methods),
        not_compared=tuple(not_compared),
        warnings=tuple(warnings),
        params=params,
    )


# ============================================================================================
def _resize(rgb: np.ndarray, s: float) -> np.ndarray:
    if s >= 1.0:
        return rgb
    m, n = rgb.shape[:2]
    return cv2.resize(rgb, (max(1, round(n * s)), max(1, round(m * s))), interpolation=cv2.INTER_AREA)


def _small_mask(mask, shape_small, shape_full, name) -> np.ndarray:
    a = np.asarray(mask)
    if a.shape != tuple(shape_full):
        raise ValueError(f"{name} must have shape {tuple(shape_full)}, got {a.shape}")
    if a.shape == tuple(shape_small):
        return a.astype(bool)
    return cv2.resize(a.astype(np.uint8), (shape_small[1], shape_small[0]), interpolation=cv2.INTER_NEAREST) > 0


def _scale_matrix(s: float) -> np.ndarray:
    """Full-resolution pixel coordinates -> working-resolution ones (pixel centres kept)."""
    # cv2.resize maps pixel centres: x_small = (x_full + 0.5) * s - 0.5
    return np.array([[s, 0.0, 0.5 * s - 0.5], [0.0, s, 0.5 * s - 0.5], [0.0, 0.0, 1.0]])


def _texture(rgb: np.ndarray) -> np.ndarray:
    """Light-invariant texture image: log luminance, high-passed, as float32 (zero mean)."""
    lum = rgb.astype(np.float32) @ np.array([0.25, 0.6, 0.15], np.float32)
    lg = np.log(lum + 4.0)
    sigma = max(3.0, max(rgb.shape[:2]) / 120.0)
    hp = lg - cv2.GaussianBlur(lg, (0, 0), sigma)
    return cv2.GaussianBlur(hp, (0, 0), 0.7)


def _to_u8(img: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    v = img[mask] if mask is not None and mask.any() else img
    lo, hi = np.percentile(v, [0.5, 99.5]) if v.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1e-6
    return np.clip((img - lo) / (hi - lo) * 255.0, 0, 255).astype(np.uint8)


#: Most SIFT landmarks kept per photo (the strongest on the skin).
_N_FEATURES = 3000


def _skin_features(sift, grey, skin, n_max: int = _N_FEATURES):
    """SIFT keypoints and descriptors on the skin, the ``n_max`` strongest.

    OpenCV's own ``nfeatures`` keeps the strongest keypoints *before* the mask is applied:
    a textured background or fabric then takes the whole budget and leaves the skin with a
    few dozen landmarks (generated series 503: 55 of 3000). The budget is spent on the skin.
    """
    kp, des = sift.detectAndCompute(_to_u8(grey, skin), skin.astype(np.uint8) * 255)
    if des is None or len(kp) <= n_max:
        return kp, des
    resp = np.array([k.response for k in kp], np.float32)
    keep = np.sort(np.argsort(-resp, kind="stable")[:n_max])
    return tuple(kp[i] for i in keep), des[keep]


def _feature_homography(b_grey, f_grey, b_skin, f_skin, *, ratio: float):
    sift = cv2.SIFT_create(nfeatures=0, contrastThreshold=0.02)
    kb, db = _skin_features(sift, b_grey, b_skin)
    kf, df = _skin_features(sift, f_grey, f_skin)
    none = np.zeros((0, 2), np.float32)
    if db is None or df is None or len(kb) < 4 or len(kf) < 4:
        return None, 0, 0, none
    # FLANN's randomised k-d trees draw from OpenCV's random generator: seeded, so that the
    # same photos always give the same alignment (and the same figures)
    cv2.setRNGSeed(20250611)
    matcher = cv2.FlannBasedMatcher({"algorithm": 1, "trees": 4}, {"checks": 64})  # KD-tree
    knn = matcher.knnMatch(df, db, k=2)
    good = [m[0] for m in knn if len(m) == 2 and m[0].distance < ratio * m[1].distance]
    if len(good) < 4:
        return None, len(good), 0, none
    src = np.float32([kf[m.queryIdx].pt for m in good])
    dst = np.float32([kb[m.trainIdx].pt for m in good])
    thr = max(1.5, 0.002 * max(b_grey.shape))
    h, inl = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, thr, maxIters=5000, confidence=0.999)
    if h is None or inl is None:
        return None, len(good), 0, none
    n_in = int(inl.sum())
    sel = inl.ravel() > 0
    if n_in >= 8:  # polish on the inliers (least squares)
        h2, _ = cv2.findHomography(src[sel], dst[sel], 0)
        if h2 is not None:
            h = h2
    return h / h[2, 2], len(good), n_in, dst[sel]


def _residual_warning(residual_px: float | None, px_per_mm: float | None) -> str | None:
    """The warning on an uncertain alignment (median residual over 0.3 mm), or None."""
    if residual_px is None or px_per_mm is None or residual_px / px_per_mm <= 0.3:
        return None
    return (
        f"The alignment is uncertain (median residual {residual_px / px_per_mm:.2f} mm): fine vessels may be "
        "counted as cleared or new by mistake; look at the side-by-side image."
    )


def _detect_card(rgb: np.ndarray):
    """The calibration card found in a photo (a Calibration), or None."""
    try:
        from veinscope.calibrate import detect_card
        from veinscope.errors import CalibrationError
    except ImportError:  # pragma: no cover - calibrate.py not installed
        return None
    try:
        cal = detect_card(rgb)
    except CalibrationError as exc:
        log.info("no card: %s", exc)
        return None
    return cal if cal.homography is not None else None


def card_of_analysis(analysis):
    """The calibration card the intake found in an analysed photo.

    Returns ``(known, card)``: ``known`` is False when the analysis does not record its
    intake's card search (then the photo must be searched again); ``card`` is a
    :class:`~veinscope.calibrate.Calibration` with the card's homography, or None when the
    intake found no card.
    """
    intake = (getattr(analysis, "params", None) or {}).get("intake")
    if not isinstance(intake, dict) or "card" not in intake:
        return False, None
    if any(getattr(i, "get", lambda _k: None)("code") == "card" for i in intake.get("issues", ())):
        return False, None  # the search failed unexpectedly: look again
    card = intake["card"]
    if card is None:
        return True, None
    h = card.get("homography")
    if h is None:
        return True, None
    from veinscope.calibrate import Calibration

    hom = np.asarray(h, dtype=np.float64)
    if hom.shape != (3, 3) or not np.all(np.isfinite(hom)):
        return False, None
    return True, Calibration(px_per_mm=float(card["px_per_mm"]), source="card", homography=hom, image_shape=tuple(analysis.labels.shape))


def _card_homography(cal_b, cal_f) -> np.ndarray | None:
    """Follow-up px -> baseline px through the cards of both photos (None without both)."""
    if cal_b is None or cal_f is None:
        return None
    h = np.asarray(cal_b.homography, np.float64) @ np.linalg.inv(np.asarray(cal_f.homography, np.float64))
    return h / h[2, 2]


def _check_plausible(h: np.ndarray) -> None:
    a = h[:2, :2] / h[2, 2]
    det = float(np.linalg.det(a))
    persp = float(np.hypot(h[2, 0], h[2, 1]) / abs(h[2, 2]))
    if not np.all(np.isfinite(h)) or det <= 0:
        raise RegistrationError(f"These photos do not seem to show the same area (the best alignment is a mirror image). {_SAME_SITE_HELP}")
    scale = math.sqrt(det)
    if not (1 / 3 <= scale <= 3):
        raise RegistrationError(
            f"The follow-up photo was taken at a very different distance ({scale:.1f}x the baseline's scale), or shows "
            f"another area. {_SAME_SITE_HELP}"
        )
    if persp > 0.004:
        raise RegistrationError(f"These photos do not seem to show the same area (the alignment is implausibly oblique). {_SAME_SITE_HELP}")


def _overlap(b_skin, f_skin, h_small, bshape) -> np.ndarray:
    """Baseline pixels (working resolution) that are skin in both photos, eroded a little."""
    f_in_b = cv2.warpPerspective(f_skin.astype(np.uint8), h_small, bshape, flags=cv2.INTER_NEAREST) > 0
    frame = cv2.warpPerspective(np.ones(f_skin.shape, np.uint8), h_small, bshape, flags=cv2.INTER_NEAREST, borderValue=0) > 0
    ov = b_skin & f_in_b & frame
    return cv2.erode(ov.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0


def _ecc_refine(b_grey, f_grey, b_skin, h_small, *, ecc_px: int = _ECC_PX):
    """Refine follow-up -> baseline homography by ECC on the texture images.

    ECC runs on copies reduced to ``ecc_px`` on the long side (its cost grows with the
    pixels and the iterations; the feature homography is already within a pixel, so ECC only
    polishes it).
    """
    se = min(1.0, ecc_px / max(b_grey.shape))
    sf = min(1.0, ecc_px / max(f_grey.shape))
    ab, af = _scale_matrix(se), _scale_matrix(sf)
    b_e, f_e = _resize(b_grey, se), _resize(f_grey, sf)
    skin_e = _small_mask(b_skin, b_e.shape[:2], b_skin.shape, "skin") if se < 1 else b_skin
    h_e = ab @ h_small @ np.linalg.inv(af)
    warp = np.linalg.inv(h_e).astype(np.float32)  # baseline -> follow-up
    warp /= warp[2, 2]
    mask = cv2.erode(skin_e.astype(np.uint8), np.ones((5, 5), np.uint8))
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 40, 1e-5)
    try:
        _, w = cv2.findTransformECC(b_e.astype(np.float32), f_e.astype(np.float32), warp, cv2.MOTION_HOMOGRAPHY, crit, mask, 3)
    except cv2.error as exc:  # not converged / degenerate
        log.info("ECC failed: %s", str(exc).splitlines()[-1] if str(exc) else exc)
        return h_small, False
    hw = np.linalg.inv(ab) @ np.linalg.inv(w.astype(np.float64)) @ af
    hw /= hw[2, 2]
    # ECC may wander off on textureless skin: accept only a modest change
    pts = np.array([[0, 0], [b_grey.shape[1], 0], [0, b_grey.shape[0]], [b_grey.shape[1], b_grey.shape[0]]], np.float64)
    step = np.abs(_apply_h(np.linalg.inv(hw), pts) - _apply_h(np.linalg.inv(h_small), pts)).max()
    if not np.isfinite(step) or step > 0.03 * max(b_grey.shape):
        log.info("ECC moved the corners by %.1f px: rejected", step)
        return h_small, False
    return hw, True


def _apply_h(h: np.ndarray, xy: np.ndarray) -> np.ndarray:
    q = np.c_[xy, np.ones(len(xy))] @ h.T
    return q[:, :2] / q[:, 2:3]


def _patch_residual(b_grey, f_aligned, mask, *, patch: int = 48, max_patches: int = 160):
    """Median local shift (px) between two aligned texture images, by phase correlation.

    Returns (median shift of the agreeing patches or None, number of patches tried, share
    agreeing, median correlation of the patches' texture).
    """
    m, n = b_grey.shape
    step = max(patch, int(math.sqrt(m * n / max_patches)))
    win = cv2.createHanningWindow((patch, patch), cv2.CV_32F)
    shifts = []
    nccs: list[float] = []
    tried = 0
    for y in range(0, m - patch + 1, step):
        for x in range(0, n - patch + 1, step):
            if mask[y : y + patch, x : x + patch].mean() < 0.9:
                continue
            a = b_grey[y : y + patch, x : x + patch].astype(np.float32)
            b = f_aligned[y : y + patch, x : x + patch].astype(np.float32)
            if a.std() < 1e-4 or b.std() < 1e-4:
                continue
            tried += 1
            am, bm_ = a - a.mean(), b - b.mean()
            nccs.append(float((am * bm_).sum()) / math.sqrt(float((am * am).sum()) * float((bm_ * bm_).sum())))
            (dx, dy), resp = cv2.phaseCorrelate(a, b, win)
            if resp > 0.08 and abs(dx) < patch / 4 and abs(dy) < patch / 4:
                shifts.append(math.hypot(dx, dy))
    if tried == 0:
        return None, 0, 0.0, 0.0
    ok = len(shifts) / tried
    ncc = float(np.median(nccs))
    if len(shifts) < 3:
        return None, tried, ok, ncc
    return float(np.median(shifts)), tried, ok, ncc


def _spread(points_xy: np.ndarray, overlap: np.ndarray) -> float:
    """Share of the overlap's area inside the convex hull of the matched landmarks."""
    area = float(overlap.sum())
    if len(points_xy) < 3 or area <= 0:
        return 0.0
    hull = cv2.convexHull(np.asarray(points_xy, np.float32).reshape(-1, 1, 2))
    return min(1.0, float(cv2.contourArea(hull)) / area)


def _texture_correlation(b_grey: np.ndarray, f_aligned: np.ndarray, mask: np.ndarray) -> float:
    """Normalised cross-correlation of two aligned texture images over ``mask`` (0 without
    common texture): pores, hairs and vessels of the same skin line up; another site's do not."""
    sel = mask & (f_aligned != 0)
    if sel.sum() < 100:
        return 0.0
    a = b_grey[sel].astype(np.float64)
    b = f_aligned[sel].astype(np.float64)
    a -= a.mean()
    b -= b.mean()
    den = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / den if den > 0 else 0.0


def _dense_flow(b_grey, f_warp, mask, *, smooth_px: float) -> np.ndarray:
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    a = _to_u8(b_grey, mask)
    b = _to_u8(f_warp, mask)
    flow = dis.calc(a, b, None)
    w = mask.astype(np.float32)
    num = cv2.GaussianBlur(flow * w[..., None], (0, 0), smooth_px)
    den = cv2.GaussianBlur(w, (0, 0), smooth_px)[..., None]
    out = num / np.maximum(den, 1e-3)
    out[den[..., 0] < 1e-3] = 0.0
    return out.astype(np.float32)


def _remap_flow(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    m, n = img.shape[:2]
    xx, yy = np.meshgrid(np.arange(n, dtype=np.float32), np.arange(m, dtype=np.float32))
    return cv2.remap(img, xx + flow[..., 0], yy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _describe_uncovered(uncovered: np.ndarray, skin: np.ndarray) -> list[str]:
    """Plain-language description of the baseline skin outside the follow-up photo."""
    total = float(skin.sum())
    if total == 0 or not uncovered.any():
        return []
    m, n = skin.shape
    nl, lab, stats, cents = cv2.connectedComponentsWithStats(uncovered.astype(np.uint8), connectivity=8)
    shares: dict[str, float] = {}  # pieces in the same place are named once, their shares added
    for i in range(1, nl):
        cx, cy = cents[i]
        place = _where(cx / n, cy / m)
        shares[place] = shares.get(place, 0.0) + stats[i, cv2.CC_STAT_AREA] / total
    ranked = sorted(shares.items(), key=lambda kv: -kv[1])[:3]
    return [f"{place} of the baseline photo ({100 * share:.0f} % of its skin)" for place, share in ranked if share >= 0.01]


def _where(fx: float, fy: float) -> str:
    v = "upper" if fy < 1 / 3 else ("lower" if fy > 2 / 3 else "")
    h = "left" if fx < 1 / 3 else ("right" if fx > 2 / 3 else "")
    if v and h:
        return f"the {v} {h} corner"
    if v:
        return f"the {'top' if v == 'upper' else 'bottom'} edge"
    if h:
        return f"the {h} edge"
    return "the middle"
