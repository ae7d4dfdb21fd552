"""Comparing a follow-up photo with its baseline: fading, staining, matting, improvement.

The follow-up is aligned onto the baseline (:func:`veinscope.register.register`), its light is
matched to the baseline's, and both are analysed by the engine at the baseline's scale. Then:

* **Improvement.** The baseline's vessels are followed along their centrelines (skeleton of
  the engine's vessel mask). A centreline pixel is *visible* in a photo when the vessel's blood
  contrast there (relative optical density of the haemoglobin- and venous-like chromophores,
  :mod:`veinscope.chromophores`, the strongest within a pixel and averaged over 1 mm of
  vessel) makes a colour difference from the skin around it of CIEDE2000 >= 2 and >= 1.5 x
  what the skin texture makes, the test the generator's truth uses, under the baseline's
  light. Relative optical density does not change with exposure or white balance (a gain adds
  a constant to the OD that the local skin background takes out). Melanin is left out, so a
  brown stain over a cleared vessel is not that vessel persisting. Baseline pixels not visible
  at baseline are not counted; ``improvement_pct = 100 x (1 - visible length after / visible
  length before)`` over the part both photos show, as in trials that trace vein length on
  standardised photos (Bertanha et al. 2017, doi:10.1016/j.jvsv.2017.03.003); quartile grade
  0-3 (0: < 25 %, 1: 25-50 %, 2: 50-75 %, 3: > 75 %).
* **Staining.** New brown pigmentation: the melanin-like map of the follow-up minus the
  baseline's (both relative to their own local skin) rises clearly, the follow-up itself is
  brown there and the rise is mostly melanin-like (not blood); each patch reports its distance
  to the nearest baseline (treated) vessel;
  each patch then takes the pixels where the rise is perceptible (ΔE00 >= 2 and >= 1.5 x the
  texture's). Its ΔE00 (CIEDE2000, Sharma et al. 2005, doi:10.1002/col.20070) is between the
  patch and a ring of skin around it in the light-matched follow-up.
* **Matting.** Perceptible new redness of the haemoglobin-like map (very fine vessels and
  their blush), where the follow-up itself is red, gathered as a practitioner outlines a
  patch (within 0.75 mm of the new vessels, closed and filled); a patch must be wider than
  one new vessel. The distance to the nearest treated (baseline) vessel is reported.
* **New vessels elsewhere.** Vessels the engine finds in the follow-up that were not in the
  baseline (no baseline vessel within the tolerance and no baseline contrast there), outside
  staining and matting patches.

VeinScope measures and documents; it does not diagnose.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from veinscope._version import __version__

__all__ = ["CHANGE_CODES", "Comparison", "compare", "grade_of"]

log = logging.getLogger(__name__)

_CLASSES = ("red_telangiectasia", "blue_telangiectasia", "reticular", "over_3mm")
#: Codes of :attr:`Comparison.change_map`.
CHANGE_CODES = {"cleared": 1, "persisting": 2, "staining": 3, "matting": 4, "new_vessel": 5, "not_compared": 6}
_GRADE_TEXT = {0: "under 25 % clearance", 1: "25-50 % clearance", 2: "50-75 % clearance", 3: "over 75 % clearance"}
_DISCLAIMER = "VeinScope measures and documents; it does not diagnose."
_S = np.arange(256, dtype=np.float64) / 255.0
#: sRGB 8-bit -> linear light.
_LIN_LUT = np.where(_S <= 0.04045, _S / 12.92, ((_S + 0.055) / 1.055) ** 2.4).astype(np.float32)


def grade_of(improvement_pct: float | None) -> int | None:
    """Quartile grade of clearance: 0 (< 25 %), 1 (25-50 %), 2 (50-75 %), 3 (> 75 %).

    >>> [grade_of(v) for v in (-10, 24.9, 25, 50, 74.9, 75.1, 100)]
    [0, 0, 1, 2, 2, 3, 3]
    """
    if improvement_pct is None or not math.isfinite(improvement_pct):
        return None
    if improvement_pct < 25:
        return 0
    if improvement_pct < 50:
        return 1
    if improvement_pct <= 75:
        return 2
    return 3


@dataclass(frozen=True)
class Comparison:
    """The result of :func:`compare`: change between a baseline and a follow-up photo.

    Attributes
    ----------
    improvement_pct : float or None
        100 x (1 - visible baseline-vessel length in the follow-up / baseline vessel length),
        over the part both photos show (None when no baseline vessel is there).
    improvement_by_class : dict[str, float or None]
        The same per baseline class.
    grade : int or None
        Quartile grade 0-3.
    lengths_px : dict
        ``baseline``, ``visible``, ``cleared``, ``not_compared`` centreline lengths (px), in total
        and per class.
    vessels : list of dict
        Per baseline vessel (connected centreline): class, length, visible share, contrast
        before and after (relative OD), status ``cleared`` / ``partly cleared`` / ``persisting``.
    staining, matting, new_vessels : dict
        Figures as in ``comparison.json`` (pixel units always, mm when calibrated).
    registration : Registration
    change_map : ndarray (M, N) uint8
        Baseline frame; codes in :data:`CHANGE_CODES`.
    aligned_rgb : ndarray (M, N, 3) uint8
        The follow-up aligned onto the baseline, light matched to it (black outside the photo).
    baseline_rgb : ndarray (M, N, 3) uint8
    px_per_mm : float or None
    warnings : tuple of str
    params : dict
    version : str
    """

    improvement_pct: float | None
    improvement_by_class: dict[str, float | None]
    grade: int | None
    lengths_px: dict[str, Any]
    vessels: list[dict[str, Any]]
    staining: dict[str, Any]
    matting: dict[str, Any]
    new_vessels: dict[str, Any]
    registration: Any
    change_map: np.ndarray = field(repr=False)
    aligned_rgb: np.ndarray = field(repr=False)
    baseline_rgb: np.ndarray = field(repr=False)
    px_per_mm: float | None = None
    warnings: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    version: str = __version__
    names: tuple[str, str] = ("baseline", "followup")

    def to_dict(self) -> dict[str, Any]:
        """The ``comparison.json`` content."""
        ppm = self.px_per_mm
        mm = (lambda v: None if v is None or ppm is None else round(v / ppm, 3))
        lp = self.lengths_px
        return {
            "improvement_pct": _r(self.improvement_pct, 2),
            "improvement_by_class": {k: _r(v, 2) for k, v in self.improvement_by_class.items()},
            "grade": self.grade,
            "grade_text": None if self.grade is None else _GRADE_TEXT[self.grade],
            "lengths": {
                "baseline_mm": mm(lp["baseline"]),
                "visible_mm": mm(lp["visible"]),
                "cleared_mm": mm(lp["cleared"]),
                "not_compared_mm": mm(lp["not_compared"]),
                "baseline_px": round(lp["baseline"], 2),
                "visible_px": round(lp["visible"], 2),
                "cleared_px": round(lp["cleared"], 2),
                "not_compared_px": round(lp["not_compared"], 2),
                "by_class_mm": {k: {kk: mm(vv) for kk, vv in v.items()} for k, v in lp["by_class"].items()},
            },
            "staining": self.staining,
            "matting": self.matting,
            "new_vessels": self.new_vessels,
            "vessels": self.vessels,
            "registration": self.registration.to_dict(),
            "px_per_mm": ppm,
            "photos": {"baseline": self.names[0], "followup": self.names[1]},
            "warnings": list(self.warnings),
            "note": _DISCLAIMER,
            "parameters": self.params,
            "version": self.version,
        }


def _r(v, nd):
    return None if v is None else round(float(v), nd)


# ============================================================================================
def compare(
    baseline,
    followup,
    *,
    px_per_mm: float | None = None,
    baseline_analysis=None,
    registration=None,
    tolerance_mm: float = 0.3,
    near_mm: float = 6.0,
    visible_ratio: float = 0.5,
    min_delta_e: float = 2.0,
    min_patch_mm2: float = 0.5,
    min_new_length_mm: float = 2.0,
    analyze_options: dict | None = None,
) -> Comparison:
    """Compare a follow-up photo of a treated site with its baseline.

    Parameters
    ----------
    baseline, followup : path, bytes, ndarray (M, N, 3) uint8 or Photo
    px_per_mm : float, optional
        Scale of the baseline photo (the follow-up is measured on the baseline's grid after
        alignment). Without it, figures are in pixels and millimetre figures are ``None``.
    baseline_analysis : Analysis, optional
        The baseline's analysis, if already computed (at the same ``px_per_mm``).
    registration : Registration, optional
        A ready alignment (follow-up -> baseline).
    tolerance_mm : float
        How far a follow-up vessel may lie from a baseline centreline and still be the same
        vessel (registration error, detection jitter).
    near_mm : float
        Staining and matting patches within this distance of a baseline vessel are marked
        ``near_treated`` (they are looked for everywhere: the engine may have missed the
        treated vessel itself).
    visible_ratio : float
        Share of its baseline contrast below which a follow-up vessel next to a baseline
        vessel's place is not counted as that vessel persisting (new vessels).
    min_delta_e : float
        A vessel is visible when its colour differs from the skin around it by at least this
        CIEDE2000 (and by 1.5 times the skin texture's); 2 is about the smallest difference
        an observer notices side by side.
    min_patch_mm2 : float
        Smallest staining or matting patch reported.
    min_new_length_mm : float
        Shortest new vessel reported.
    analyze_options : dict, optional
        Extra keyword arguments for :func:`veinscope.analyze` (both photos).

    Returns
    -------
    Comparison

    Raises
    ------
    RegistrationError
        The photos do not show the same site or overlap too little.
    """
    from veinscope.chromophores import skin_optics
    from veinscope.io import load_photo
    from veinscope.pipeline import NOMINAL_PX_PER_MM, analyze
    from veinscope.register import register

    t0 = time.perf_counter()
    for name, v in (("tolerance_mm", tolerance_mm), ("near_mm", near_mm), ("min_patch_mm2", min_patch_mm2), ("min_new_length_mm", min_new_length_mm)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a positive number, got {v!r}")
    if not (0 < visible_ratio < 1):
        raise ValueError(f"visible_ratio must be between 0 and 1, got {visible_ratio!r}")
    opts = dict(analyze_options or {})
    b_photo = load_photo(baseline)
    f_photo = load_photo(followup)
    b_rgb = b_photo.rgb
    a_b = baseline_analysis if baseline_analysis is not None else analyze(b_photo, px_per_mm=px_per_mm, **opts)
    if a_b.labels.shape != b_rgb.shape[:2]:
        raise ValueError(f"baseline_analysis has shape {a_b.labels.shape}, the baseline photo {b_rgb.shape[:2]}")
    t_an = time.perf_counter()
    if px_per_mm is None and a_b.px_per_mm is not None:
        px_per_mm = float(a_b.px_per_mm)  # the baseline's calibration card (intake)
    ppm = float(px_per_mm) if px_per_mm is not None else NOMINAL_PX_PER_MM
    reg = registration if registration is not None else register(b_rgb, f_photo.rgb, px_per_mm=px_per_mm)
    t_reg = time.perf_counter()
    # colours: the baseline as its card's colour normalisation made it (when it had a card),
    # the follow-up matched to it on the registered skin
    b_rgb, colour_source = _card_corrected(b_rgb, a_b)
    m, n = b_rgb.shape[:2]

    aligned = reg.warp(f_photo.rgb, interpolation="cubic", fill=0)
    b_vessel = a_b.labels > 0
    ref = reg.overlap & a_b.skin & ~cv2.dilate(b_vessel.astype(np.uint8), _disc(2)).astype(bool)
    aligned_n, gains = _match_light(b_rgb, aligned, ref)
    valid_f = reg.warp(np.ones(f_photo.rgb.shape[:2], np.uint8), interpolation="nearest") > 0
    a_f = analyze(aligned_n, px_per_mm=px_per_mm, **opts)
    t_an2 = time.perf_counter()
    # compared: the baseline's skin that the follow-up shows (the registration already checked
    # the follow-up's own skin at its working resolution)
    cmp_area = reg.overlap & a_b.skin & valid_f

    bg_px = float(a_b.params.get("background_px", max(40.0, 20.0 * ppm)))
    o_b = skin_optics(b_rgb, skin=a_b.skin, background_px=bg_px)
    o_f = skin_optics(aligned_n, skin=cmp_area, background_px=bg_px)
    tol_px = max(1.5, tolerance_mm * ppm)

    # ---- fading and improvement on the baseline centrelines ----------------------------------
    chroma_b = o_b.chromophore_maps()
    chroma_f = o_f.chromophore_maps()
    from veinscope.chromophores import OD_LUT

    def bg_od(ys, xs):  # the baseline's local skin background OD at pixels (light reference)
        pts = np.c_[ys, xs]
        return OD_LUT[b_rgb[ys, xs]].astype(np.float64) - o_b.relative_od_at(pts)

    fad = _fading(a_b, chroma_b, chroma_f, cmp_area, ppm=ppm, tol_px=tol_px, bg_od=bg_od, min_delta_e=min_delta_e)
    lengths = fad["lengths"]
    imp = fad["improvement_pct"]
    by_class = fad["by_class"]
    # ---- staining, matting, new vessels -------------------------------------------------------
    # patches are looked for a little inside the compared area (edges of the overlap carry
    # interpolation and background-estimation artefacts)
    inner = cv2.erode(cmp_area.astype(np.uint8), _disc(max(3, int(round(1.0 * ppm)))), borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
    stain = _stain(chroma_b, chroma_f, aligned_n, inner, b_vessel, a_f.labels > 0, ppm=ppm, min_area_px=min_patch_mm2 * ppm**2, calibrated=px_per_mm is not None, skel=fad["skel"], bg_od=bg_od, min_delta_e=min_delta_e)
    matt = _matting(chroma_b, chroma_f, inner, b_vessel, stain["mask"], ppm=ppm, min_area_px=min_patch_mm2 * ppm**2, calibrated=px_per_mm is not None, bg_od=bg_od, min_delta_e=min_delta_e, f_labels=a_f.labels, f_diameter_px=a_f.diameter_px)
    del chroma_b, chroma_f
    newv = _new_vessels(a_f, b_vessel, fad, inner, stain["mask"] | matt["mask"], ppm=ppm, tol_px=tol_px, min_len_px=min_new_length_mm * ppm, calibrated=px_per_mm is not None, visible_ratio=visible_ratio)

    for block in (stain["figures"], matt["figures"]):
        for loc in block["locations"]:
            d_px = loc["distance_to_treated_px"]
            loc["distance_to_treated_mm"] = round(d_px / ppm, 2) if px_per_mm is not None else None
            loc["near_treated"] = bool(d_px <= near_mm * ppm)
    # ---- change map ----------------------------------------------------------------------------
    cm = np.zeros((m, n), np.uint8)
    cm[a_b.skin & ~cmp_area] = CHANGE_CODES["not_compared"]
    cm[stain["mask"]] = CHANGE_CODES["staining"]
    cm[matt["mask"]] = CHANGE_CODES["matting"]
    cm[newv["mask"]] = CHANGE_CODES["new_vessel"]
    status_img = fad["status_img"]  # 1 cleared, 2 persisting on the skeleton
    r = int(min(31, max(1, math.ceil(0.5 * float(np.percentile(a_b.diameter_px[b_vessel], 90)) if b_vessel.any() else 1))))
    spread = cv2.dilate(status_img, _disc(r))
    vpix = b_vessel & cmp_area & (spread > 0)
    cm[vpix] = np.where(spread[vpix] == 2, CHANGE_CODES["persisting"], CHANGE_CODES["cleared"])

    warnings = list(dict.fromkeys(list(reg.warnings) + [w for w in a_b.warnings] + [f"follow-up: {w}" for w in a_f.warnings if w not in a_b.warnings]))
    if px_per_mm is None:
        warnings.append("No scale was given: lengths and areas are in pixels only; improvement percentages do not need a scale.")
    if max(abs(math.log(g)) for g in gains) > math.log(1.6):
        warnings.append(
            "The light or white balance changed strongly between the photos "
            f"(gains R {gains[0]:.2f}, G {gains[1]:.2f}, B {gains[2]:.2f}); colour figures are less certain. "
            "Use the same light and the calibration card at every visit."
        )
    if lengths["baseline"] == 0:
        warnings.append("No vessels were found in the baseline within the part both photos show: no improvement can be computed.")
    params = {
        "px_per_mm": px_per_mm,
        "tolerance_mm": tolerance_mm,
        "near_mm": near_mm,
        "visible_ratio": visible_ratio,
        "min_delta_e": min_delta_e,
        "texture_delta_e": fad["texture_delta_e"],
        "min_patch_mm2": min_patch_mm2,
        "min_new_length_mm": min_new_length_mm,
        "light_gains_rgb": [round(float(g), 4) for g in gains],
        "baseline_colour": colour_source,
        "analyze_options": opts,
        "seconds": {
            "baseline_analysis": round(t_an - t0, 3),
            "registration": round(t_reg - t_an, 3),
            "followup_analysis": round(t_an2 - t_reg, 3),
            "total": round(time.perf_counter() - t0, 3),
        },
    }
    log.info("compared in %.2f s: improvement %s %%", params["seconds"]["total"], imp)
    return Comparison(
        improvement_pct=imp,
        improvement_by_class=by_class,
        grade=grade_of(imp),
        lengths_px=lengths,
        vessels=fad["vessels"],
        staining=stain["figures"],
        matting=matt["figures"],
        new_vessels=newv["figures"],
        registration=reg,
        change_map=cm,
        aligned_rgb=aligned_n,
        baseline_rgb=b_rgb,
        px_per_mm=None if px_per_mm is None else float(px_per_mm),
        warnings=tuple(warnings),
        params=params,
        names=(b_photo.name, f_photo.name),
    )


# ============================================================================================
def _disc(r: int) -> np.ndarray:
    r = max(0, int(r))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _card_corrected(rgb: np.ndarray, analysis) -> tuple[np.ndarray, str]:
    """The photo with the colour correction its analysis' intake measured on the card applied."""
    info = (analysis.params.get("intake") or {}) if isinstance(analysis.params, dict) else {}
    col = info.get("colour")
    if not info.get("colour_applied") or not col:
        return rgb, "as photographed"
    try:
        from veinscope.colour import ColourCorrection

        cc = ColourCorrection(
            source=col["source"], reliable=bool(col["reliable"]), gain=np.asarray(col["gain"], np.float64),
            offset=np.asarray(col["offset"], np.float64), exposure_ev=float(col["exposure_ev"]),
        )
        return cc.apply(rgb), f"normalised ({col['source']})"
    except (ImportError, KeyError, TypeError, ValueError) as exc:  # pragma: no cover - older intake
        log.info("colour correction not applied: %s", exc)
        return rgb, "as photographed"


def _match_light(b_rgb: np.ndarray, f_rgb: np.ndarray, ref: np.ndarray):
    """Per-channel gains (linear light) matching the follow-up's skin to the baseline's.

    A change of exposure or white balance multiplies each linear channel by a constant; the
    median ratio over registered skin away from vessels estimates it, robust to stains and
    new vessels covering a minority of the skin. A smooth residual (light from another
    direction) is matched on a coarse grid of cells.
    """
    lut = _LIN_LUT
    if ref.sum() < 100:
        return f_rgb, (1.0, 1.0, 1.0)
    step = max(1, int(math.sqrt(ref.sum() / 200_000)))
    rs = ref[::step, ::step]
    bl = lut[b_rgb[::step, ::step][rs]]
    fl = lut[f_rgb[::step, ::step][rs]]
    ok = (bl > 0.002).all(axis=1) & (fl > 0.002).all(axis=1) & (b_rgb[::step, ::step][rs] < 250).all(axis=1) & (f_rgb[::step, ::step][rs] < 250).all(axis=1)
    if ok.sum() < 50:
        return f_rgb, (1.0, 1.0, 1.0)
    g = np.exp(np.median(np.log(bl[ok]) - np.log(fl[ok]), axis=0))
    # smooth residual on cells of 1/8 of the long side
    m, n = ref.shape
    cell = max(8, max(m, n) // 8)
    gm, gn = -(-m // cell), -(-n // cell)
    resid = np.zeros((gm, gn, 3), np.float32)
    have = np.zeros((gm, gn), bool)
    ys, xs = np.nonzero(ref[::step, ::step])
    ys, xs = ys * step, xs * step
    ys, xs = ys[ok], xs[ok]
    lr = (np.log(bl[ok]) - np.log(fl[ok]) - np.log(g)).astype(np.float32)
    ci = (ys // cell) * gn + xs // cell
    order = np.argsort(ci, kind="stable")
    ci_s = ci[order]
    starts = np.flatnonzero(np.r_[True, ci_s[1:] != ci_s[:-1]])
    ends = np.r_[starts[1:], len(ci_s)]
    for a, b in zip(starts, ends):
        if b - a >= 30:
            k = int(ci_s[a])
            resid[k // gn, k % gn] = np.median(lr[order[a:b]], axis=0)
            have[k // gn, k % gn] = True
    if have.any() and not have.all():
        from scipy import ndimage as ndi

        idx = ndi.distance_transform_edt(~have, return_distances=False, return_indices=True)
        resid = resid[idx[0], idx[1]]
    resid = cv2.GaussianBlur(resid, (0, 0), 1.0) if min(gm, gn) > 1 else resid
    out = np.empty_like(f_rgb)
    if float(np.abs(resid).max()) < 0.01:  # uniform light change: one table per channel
        for c in range(3):
            out[..., c] = _to_srgb8(lut * g[c])[f_rgb[..., c]]
        out[f_rgb.max(axis=2) == 0] = 0
        return out, tuple(float(v) for v in g)
    field_ = cv2.resize(resid, (n, m), interpolation=cv2.INTER_LINEAR).reshape(m, n, 3)
    for c in range(3):
        lin = lut[f_rgb[..., c]] * (g[c] * np.exp(field_[..., c]))
        out[..., c] = _to_srgb8(lin)
    out[f_rgb.max(axis=2) == 0] = 0
    return out, tuple(float(v) for v in g)


_ENC_N = 1 << 14
_Q = np.arange(_ENC_N + 1) / _ENC_N
#: linear light (quantised to 1/16384) -> sRGB 8-bit, within one code value of the exact curve
_ENC_LUT = np.clip(np.where(_Q <= 0.0031308, 12.92 * _Q, 1.055 * np.power(_Q, 1 / 2.4) - 0.055) * 255.0 + 0.5, 0, 255).astype(np.uint8)
del _Q


def _to_srgb8(lin: np.ndarray) -> np.ndarray:
    """Linear light -> sRGB uint8 through a table (a full-size power() costs seconds at 12 MP)."""
    idx = np.clip(np.asarray(lin, np.float32) * np.float32(_ENC_N) + np.float32(0.5), 0, _ENC_N).astype(np.int32)
    return _ENC_LUT[idx]


def _contrast(signal: np.ndarray, where: np.ndarray, r_px: float) -> np.ndarray:
    """Vessel contrast available near each pixel: max within ``r_px`` of the smoothed signal,
    minus the level skin texture alone reaches there (its median over ``where``)."""
    s = cv2.GaussianBlur(signal, (0, 0), 1.0)
    mx = cv2.dilate(s, _disc(int(math.ceil(r_px))))
    vals = mx[where]
    floor = float(np.median(vals)) if vals.size else 0.0
    return mx - floor


class _Along:
    """Mean over the centreline points within a box of ``r_px`` (Chebyshev), on the points only.

    Smoothing along a vessel without image-sized filters: the neighbour pairs are found once
    (k-d tree) and each smoothing is one sparse matrix product.
    """

    def __init__(self, ys: np.ndarray, xs: np.ndarray, r_px: int) -> None:
        from scipy.sparse import csr_matrix
        from scipy.spatial import cKDTree

        k = len(ys)
        pts = np.c_[ys, xs].astype(np.float64)
        pairs = cKDTree(pts).query_pairs(float(r_px), p=np.inf, output_type="ndarray") if k > 1 else np.zeros((0, 2), np.int64)
        i = np.r_[pairs[:, 0], pairs[:, 1], np.arange(k)]
        j = np.r_[pairs[:, 1], pairs[:, 0], np.arange(k)]
        self.w = csr_matrix((np.ones(len(i)), (i, j)), shape=(k, k))
        self.count = np.maximum(np.asarray(self.w.sum(axis=1)).ravel(), 1.0)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        return (self.w @ np.asarray(values, np.float64)) / self.count


def _fading(a_b, cb_maps, cf_maps, cmp_area, *, ppm, tol_px, bg_od, min_delta_e):
    from skimage.morphology import skeletonize

    from veinscope.measure import chain_lengths

    m, n = a_b.labels.shape
    b_vessel = a_b.labels > 0
    skel = skeletonize(b_vessel) & a_b.skin
    # blood contrast without melanin: a brown stain over a cleared vessel is not the vessel
    s_b = cb_maps["haemoglobin"] + cb_maps["venous"]
    s_f = cf_maps["haemoglobin"] + cf_maps["venous"]
    texture = a_b.skin & ~cv2.dilate(b_vessel.astype(np.uint8), _disc(3)).astype(bool) & cmp_area
    c_b = _contrast(s_b, texture, tol_px)
    c_f = _contrast(s_f, texture, tol_px)
    del s_b, s_f
    r_al = max(1, int(round(0.5 * ppm)))
    ys, xs = np.nonzero(skel)
    along = _Along(ys, xs, r_al)
    cb = along(c_b[ys, xs])
    cf = along(c_f[ys, xs])
    # perceptible (as the eye judges it, and as the generator's truth does): the colour
    # difference between the vessel and the skin around it, ΔE00 >= 2 and >= 1.5 x the skin
    # texture's, with the vessel's blood contrast only (stains do not count)
    de_b, tex_b = _blood_delta_e(cb_maps, ys, xs, along, bg_od, texture)
    de_f, tex_f = _blood_delta_e(cf_maps, ys, xs, along, bg_od, texture)
    thr_b = max(min_delta_e, 1.5 * tex_b)
    thr_f = max(min_delta_e, 1.5 * tex_f)
    # what is left where a vessel was may be a brown stain, not the vessel: judged by colour
    # as the engine judges a vessel (melanin share of the positive chromophore contrast)
    mel_frac_b = _mel_frac(cb_maps, ys, xs, along)
    mel_frac_f = _mel_frac(cf_maps, ys, xs, along)
    brown = mel_frac_f > np.maximum(0.45, mel_frac_b + 0.2)
    # ... unless the vessel still stands out from its immediate surroundings (a thin vessel
    # crossing a stain): blood contrast against the skin within ~0.6 mm, before and after
    sig_loc = max(2.0, 0.6 * ppm)

    def local(maps, box):  # only in the box around the brown points (full maps cost seconds)
        y0, y1, x0, x1 = box
        b = cv2.GaussianBlur(maps["haemoglobin"][y0:y1, x0:x1] + maps["venous"][y0:y1, x0:x1], (0, 0), 1.0)
        hp = b - cv2.GaussianBlur(b, (0, 0), sig_loc)
        out = np.zeros(len(ys), np.float32)
        inb = (ys >= y0) & (ys < y1) & (xs >= x0) & (xs < x1)
        out[inb] = cv2.dilate(hp, _disc(1))[ys[inb] - y0, xs[inb] - x0]
        return along(out)

    if brown.any():
        pad = int(4 * sig_loc) + 2 * r_al + 2
        box = (max(0, int(ys[brown].min()) - pad), min(m, int(ys[brown].max()) + pad + 1), max(0, int(xs[brown].min()) - pad), min(n, int(xs[brown].max()) + pad + 1))
        loc_b, loc_f = local(cb_maps, box), local(cf_maps, box)
        brown &= loc_f < 0.5 * np.maximum(loc_b, 1e-6)
    seen_b = de_b >= thr_b
    vis = (de_f >= thr_f) & ~brown
    inside = cmp_area[ys, xs]
    cls = a_b.labels[ys, xs].astype(np.int64)  # 1..4
    # 0 visible, 1 cleared, 2 not compared, 3 not perceptible at baseline (not counted)
    status = np.where(~inside, 2, np.where(~seen_b, 3, np.where(vis, 0, 1)))
    seg = np.where(status == 3, 12, (cls - 1) * 3 + np.minimum(status, 2))
    lens = chain_lengths(np.c_[ys, xs], seg, 13, (m, n))[:12]
    lens = lens.reshape(4, 3)
    by_class_len = {}
    by_class = {}
    for i, name in enumerate(_CLASSES):
        base = float(lens[i, 0] + lens[i, 1])
        by_class_len[name] = {"baseline": base, "visible": float(lens[i, 0]), "cleared": float(lens[i, 1]), "not_compared": float(lens[i, 2])}
        by_class[name] = None if base < 0.5 * ppm else 100.0 * float(lens[i, 1]) / base
    base = float(lens[:, 0].sum() + lens[:, 1].sum())
    lengths = {
        "baseline": base,
        "visible": float(lens[:, 0].sum()),
        "cleared": float(lens[:, 1].sum()),
        "not_compared": float(lens[:, 2].sum()),
        "by_class": by_class_len,
    }
    imp = None if base < 0.5 * ppm else 100.0 * lengths["cleared"] / base
    status_img = np.zeros((m, n), np.uint8)
    status_img[ys[status == 1], xs[status == 1]] = 1
    status_img[ys[status == 0], xs[status == 0]] = 2

    # per vessel: connected centrelines
    nl, lab = cv2.connectedComponents(skel.astype(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    comp = lab[ys, xs] - 1
    vessels = []
    if nl > 1:
        vseg = comp * 2 + (status == 1)
        vl = chain_lengths(np.c_[ys, xs], np.where(status >= 2, 2 * (nl - 1), vseg), 2 * (nl - 1) + 1, (m, n))[:-1].reshape(-1, 2)
        calibrated = a_b.px_per_mm is not None
        names = {i + 1: k for i, k in enumerate(_CLASSES)}
        order = np.argsort(comp, kind="stable")
        bounds = np.searchsorted(comp[order], np.arange(nl))
        for v in range(nl - 1):
            idx = order[bounds[v] : bounds[v + 1]]
            idx = idx[status[idx] < 2]
            total = float(vl[v].sum())
            if idx.size == 0 or total < max(4.0, 1.0 * ppm):
                continue
            vis_frac = float(vl[v, 0]) / total if total > 0 else 0.0
            before = float(np.median(cb[idx]))
            after = float(np.median(cf[idx]))
            st = "cleared" if vis_frac < 0.25 else ("persisting" if vis_frac >= 0.75 else "partly cleared")
            cy, cx = (int(v_) for v_ in np.median(np.c_[ys[idx], xs[idx]], axis=0))
            vessels.append(
                {
                    "id": len(vessels),
                    "class": names[int(np.bincount(cls[idx], minlength=5).argmax())],
                    "status": st,
                    "length_px": round(total, 2),
                    "length_mm": round(total / ppm, 3) if calibrated else None,
                    "visible_frac": round(vis_frac, 4),
                    "contrast_before_od": round(before, 4),
                    "contrast_after_od": round(after, 4),
                    "contrast_change_pct": round(100.0 * (after - before) / before, 1) if before > 1e-4 else None,
                    "centre_yx": [cy, cx],
                }
            )
    return {
        "lengths": lengths,
        "texture_delta_e": (round(tex_b, 3), round(tex_f, 3)),
        "improvement_pct": imp,
        "by_class": by_class,
        "vessels": vessels,
        "status_img": status_img,
        "skel": skel,
        "contrast_b": c_b,
        "contrast_f": c_f,
    }


def _srgb01(lin: np.ndarray) -> np.ndarray:
    x = np.clip(lin, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def delta_e_of_od(bg_od: np.ndarray, d_od: np.ndarray) -> np.ndarray:
    """CIEDE2000 between skin of optical density ``bg_od`` and the same skin with ``d_od`` added.

    Parameters
    ----------
    bg_od, d_od : ndarray (K, 3)
        Natural-log optical density of linear sRGB reflectance (as :mod:`veinscope.chromophores`).

    Returns
    -------
    ndarray (K,) float64

    Examples
    --------
    >>> import numpy as np
    >>> float(delta_e_of_od(np.full((1, 3), 0.7), np.zeros((1, 3)))[0])
    0.0
    """
    from skimage.color import deltaE_ciede2000, rgb2lab

    bg = np.asarray(bg_od, np.float64).reshape(-1, 3)
    d = np.asarray(d_od, np.float64).reshape(-1, 3)
    if bg.shape[0] == 0:
        return np.zeros(0)
    a = rgb2lab(_srgb01(np.exp(-bg))[:, None, :])
    b = rgb2lab(_srgb01(np.exp(-(bg + d)))[:, None, :])
    return deltaE_ciede2000(a, b)[:, 0]


def _blood_delta_e(maps, ys, xs, along, bg_od, texture, *, n_texture: int = 4000):
    """ΔE00 of the blood contrast along the skeleton (averaged over ``r_al``) and the RMS
    ΔE00 of the skin texture on the same map (random skin pixels away from vessels)."""
    from veinscope.chromophores import CHROMOPHORE_DIRECTIONS

    d_hb = CHROMOPHORE_DIRECTIONS["haemoglobin"]
    d_ven = CHROMOPHORE_DIRECTIONS["venous"]
    hb = cv2.GaussianBlur(maps["haemoglobin"], (0, 0), 1.0)
    ven = cv2.GaussianBlur(maps["venous"], (0, 0), 1.0)
    # the strongest blood contrast within one pixel of the centreline (centrelines of label
    # masks wander by a pixel)
    blood = hb + ven
    m, n = blood.shape
    best_y, best_x = ys.copy(), xs.copy()
    best = blood[ys, xs].copy()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            yy = np.clip(ys + dy, 0, m - 1)
            xx = np.clip(xs + dx, 0, n - 1)
            v = blood[yy, xx]
            better = v > best
            best[better] = v[better]
            best_y[better] = yy[better]
            best_x[better] = xx[better]
    hb_al = along(hb[best_y, best_x])
    ven_al = along(ven[best_y, best_x])
    d_od = np.maximum(hb_al, 0)[:, None] * d_hb[None, :] + np.maximum(ven_al, 0)[:, None] * d_ven[None, :]
    de = delta_e_of_od(bg_od(ys, xs), d_od)
    ty, tx = np.nonzero(texture)
    if ty.size:
        pick = np.linspace(0, ty.size - 1, min(n_texture, ty.size)).astype(np.int64)
        ty, tx = ty[pick], tx[pick]
        t_od = hb[ty, tx, None] * d_hb[None, :] + ven[ty, tx, None] * d_ven[None, :]
        tde = delta_e_of_od(bg_od(ty, tx), t_od)
        tex = float(np.sqrt(np.mean(tde**2)))
    else:
        tex = 0.0
    return de, tex


def _blur_at(img: np.ndarray, ys: np.ndarray, xs: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-blurred ``img`` at pixels, blurring only the bounding box around them."""
    if len(ys) == 0:
        return np.zeros(0, np.float32)
    pad = int(math.ceil(4 * sigma)) + 1
    y0, y1 = max(0, int(ys.min()) - pad), min(img.shape[0], int(ys.max()) + pad + 1)
    x0, x1 = max(0, int(xs.min()) - pad), min(img.shape[1], int(xs.max()) + pad + 1)
    return cv2.GaussianBlur(np.ascontiguousarray(img[y0:y1, x0:x1]), (0, 0), sigma)[ys - y0, xs - x0]


def _mel_frac(maps, ys, xs, along) -> np.ndarray:
    """Melanin share of the positive chromophore contrast at centreline points, averaged along."""
    pos = {k: along(np.maximum(_blur_at(maps[k], ys, xs, 1.0), 0.0)) for k in ("haemoglobin", "venous", "melanin")}
    tot = pos["haemoglobin"] + pos["venous"] + pos["melanin"]
    return pos["melanin"] / np.maximum(tot, 1e-6)


def _robust_sigma(v: np.ndarray) -> float:
    if v.size == 0:
        return 1.0
    med = np.median(v)
    return float(1.4826 * np.median(np.abs(v - med))) or 1e-3


def _patches(delta, cand, peak_ok, valid, *, min_area_px, half=True):
    """Connected candidate patches, each grown/shrunk to where ``delta`` is at least half its peak."""
    nl, lab, stats, _ = cv2.connectedComponentsWithStats(cand.astype(np.uint8), connectivity=8)
    out = []
    for i in range(1, nl):
        if stats[i, cv2.CC_STAT_AREA] < 0.3 * min_area_px:
            continue
        x, y, w, h = (int(stats[i, k]) for k in (cv2.CC_STAT_LEFT, cv2.CC_STAT_TOP, cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT))
        pad = max(4, int(0.5 * max(w, h)))
        y0, y1 = max(0, y - pad), min(delta.shape[0], y + h + pad)
        x0, x1 = max(0, x - pad), min(delta.shape[1], x + w + pad)
        comp = lab[y0:y1, x0:x1] == i
        d = delta[y0:y1, x0:x1]
        peak = float(np.percentile(d[comp], 95))
        if not peak_ok(peak):
            continue
        region = (d >= 0.5 * peak) & valid[y0:y1, x0:x1] if half else comp
        # keep the part connected to the candidate
        nl2, lab2 = cv2.connectedComponents(region.astype(np.uint8), connectivity=8)
        keep_ids = np.unique(lab2[comp & region])
        keep_ids = keep_ids[keep_ids > 0]
        region = np.isin(lab2, keep_ids)
        area = int(region.sum())
        if area < min_area_px:
            continue
        out.append(((y0, y1, x0, x1), region, peak))
    return out


def _location(box, region, shape, ppm, calibrated):
    from veinscope.register import _where

    (y0, y1, x0, x1) = box
    ys, xs = np.nonzero(region)
    cy, cx = float(ys.mean() + y0), float(xs.mean() + x0)
    m, n = shape
    return {
        "centre_yx": [int(round(cy)), int(round(cx))],
        "centre_mm": [round(cy / ppm, 2), round(cx / ppm, 2)] if calibrated else None,
        "bbox_yxyx": [int(ys.min() + y0), int(xs.min() + x0), int(ys.max() + y0), int(xs.max() + x0)],
        "where": _where(cx / n, cy / m).replace("the ", "", 1) + " of the photo",
    }


def _sample_rms_de(values: np.ndarray, where: np.ndarray, direction: np.ndarray, bg_od, *, n: int = 4000) -> float:
    """RMS ΔE00 that a chromophore map's texture makes (random pixels of ``where``)."""
    ty, tx = np.nonzero(where)
    if ty.size == 0:
        return 0.0
    pick = np.linspace(0, ty.size - 1, min(n, ty.size)).astype(np.int64)
    ty, tx = ty[pick], tx[pick]
    de = delta_e_of_od(bg_od(ty, tx), np.abs(values[ty, tx])[:, None] * direction[None, :])
    return float(np.sqrt(np.mean(de**2)))


def _perceptible(values: np.ndarray, sel: np.ndarray, direction: np.ndarray, bg_od, thr: float, offset=(0, 0)) -> np.ndarray:
    """Where ``values`` (a chromophore increase) makes a colour difference of at least ``thr``."""
    out = np.zeros(sel.shape, bool)
    ys, xs = np.nonzero(sel & (values > 0))
    if ys.size:
        de = delta_e_of_od(bg_od(ys + offset[0], xs + offset[1]), values[ys, xs, None] * direction[None, :])
        out[ys[de >= thr], xs[de >= thr]] = True
    return out


def _od_vec(maps: dict, ys, xs) -> np.ndarray:
    """OD vector (K, 3) of the positive parts of chromophore maps at pixels."""
    from veinscope.chromophores import CHROMOPHORE_DIRECTIONS

    out = np.zeros((len(ys), 3), np.float64)
    for k, v in maps.items():
        out += np.maximum(v[ys, xs], 0.0)[:, None] * CHROMOPHORE_DIRECTIONS[k][None, :]
    return out


def _sample_rms_de_vec(maps: dict, where: np.ndarray, bg_od, *, n: int = 4000) -> float:
    ty, tx = np.nonzero(where)
    if ty.size == 0:
        return 0.0
    pick = np.linspace(0, ty.size - 1, min(n, ty.size)).astype(np.int64)
    ty, tx = ty[pick], tx[pick]
    de = delta_e_of_od(bg_od(ty, tx), _od_vec(maps, ty, tx))
    return float(np.sqrt(np.mean(de**2)))


def _perceptible_vec(maps: dict, sel: np.ndarray, bg_od, thr: float, offset=(0, 0)) -> np.ndarray:
    out = np.zeros(sel.shape, bool)
    ys, xs = np.nonzero(sel)
    if ys.size:
        de = delta_e_of_od(bg_od(ys + offset[0], xs + offset[1]), _od_vec(maps, ys, xs))
        out[ys[de >= thr], xs[de >= thr]] = True
    return out


def _stain(cb, cf, aligned, cmp_area, b_vessel, f_vessel, *, ppm, min_area_px, calibrated, skel, bg_od, min_delta_e=2.0):
    """New brown pigmentation: seeds where the melanin-like map rose clearly, grown to where
    the rise is perceptible (ΔE00 >= 2 and >= 1.5 x the map's texture) and stays brown."""
    from scipy import ndimage as ndi
    from skimage.color import deltaE_ciede2000, rgb2lab

    from veinscope.chromophores import CHROMOPHORE_DIRECTIONS

    d_dir = CHROMOPHORE_DIRECTIONS["melanin"]
    sig = max(1.0, 0.25 * ppm)
    mel_b = cv2.GaussianBlur(cb["melanin"], (0, 0), sig)
    mel_f = cv2.GaussianBlur(cf["melanin"], (0, 0), sig)
    d_mel = mel_f - mel_b
    d_blood = cv2.GaussianBlur(cf["haemoglobin"] + cf["venous"] - cb["haemoglobin"] - cb["venous"], (0, 0), sig)
    valid = cmp_area
    step = max(1, int(valid.sum() // 200_000))
    noise = _robust_sigma(d_mel[valid][::step])
    noise_f = _robust_sigma(mel_f[valid][::step])
    brown = d_mel >= 1.5 * np.maximum(d_blood, 0.0)
    # the extent is judged on finer maps (a blur would widen a sharp-edged stain), and on the
    # whole colour change the stain makes: haemosiderin is not exactly the melanin direction,
    # so its rise shows partly in the other maps too (falls, e.g. a cleared vessel, do not count)
    keys = ("melanin", "haemoglobin", "venous")

    def fine_in(box):  # finer maps inside a box only (full-size blurs cost seconds at 12 MP)
        (Y0, Y1), (X0, X1) = box
        p = 5
        ya, yb, xa, xb = max(0, Y0 - p), min(cf["melanin"].shape[0], Y1 + p), max(0, X0 - p), min(cf["melanin"].shape[1], X1 + p)
        sub = (slice(ya, yb), slice(xa, xb))
        crop = (slice(Y0 - ya, Y0 - ya + (Y1 - Y0)), slice(X0 - xa, X0 - xa + (X1 - X0)))
        fine = {k: cv2.GaussianBlur(cf[k][sub] - cb[k][sub], (0, 0), 1.0)[crop] for k in keys}
        own_mel = cv2.GaussianBlur(np.ascontiguousarray(cf["melanin"][sub]), (0, 0), 1.0)[crop]
        return fine, own_mel

    dist_b = cv2.distanceTransform((~b_vessel).astype(np.uint8), cv2.DIST_L2, 5)
    # texture of the change maps, on a central window of the compared skin
    m_, n_ = valid.shape
    st_ = max(1, max(m_, n_) // 512)
    ys_v, xs_v = np.nonzero(valid[::st_, ::st_])
    if len(ys_v):
        cy, cx = int(np.median(ys_v)) * st_, int(np.median(xs_v)) * st_
        half = 512
        tb = ((max(0, cy - half), min(m_, cy + half)), (max(0, cx - half), min(n_, cx + half)))
        f_t, _ = fine_in(tb)
        sel_t = (valid & ~b_vessel)[tb[0][0] : tb[0][1], tb[1][0] : tb[1][1]]
        tex = _sample_rms_de_vec(f_t, sel_t, lambda yy, xx: bg_od(yy + tb[0][0], xx + tb[1][0]))
    else:
        tex = 0.0
    thr = max(min_delta_e, 1.5 * tex)
    # anywhere in the compared skin (the engine may have missed the treated vessel under a
    # stain); each patch reports its distance to the nearest baseline vessel
    cand = valid & (d_mel > 3.0 * noise) & (mel_f > 3.0 * noise_f) & brown
    min_peak = max(6.0 * noise, 0.04)
    seeds = _patches(d_mel, cand, lambda p: p >= min_peak, valid & brown & (mel_f > 2.0 * noise_f), min_area_px=0.5 * min_area_px)
    m, n = d_mel.shape
    mask = np.zeros((m, n), bool)
    grown = []
    for (y0, y1, x0, x1), region, peak in seeds:
        pad = int(3.0 * ppm) + 2
        Y0, Y1, X0, X1 = max(0, y0 - pad), min(m, y1 + pad), max(0, x0 - pad), min(n, x1 + pad)
        seed = np.zeros((Y1 - Y0, X1 - X0), bool)
        seed[y0 - Y0 : y1 - Y0, x0 - X0 : x1 - X0] = region
        fine, own_mel = fine_in(((Y0, Y1), (X0, X1)))
        d_fine = fine["melanin"]
        grow_ok = valid[Y0:Y1, X0:X1] & (d_fine > 0) & (d_fine >= 0.5 * np.maximum(fine["haemoglobin"] + fine["venous"], 0.0))
        ok = _perceptible_vec(fine, grow_ok, bg_od, thr, (Y0, X0))
        # ... and the follow-up itself perceptibly brown there (a cleared vessel's colour can
        # unmix into a melanin rise with nothing brown to see)
        ok = _perceptible(own_mel, ok, d_dir, bg_od, 0.5 * thr, (Y0, X0))
        ok = cv2.morphologyEx(ok.astype(np.uint8), cv2.MORPH_CLOSE, _disc(1)).astype(bool)
        ok = ndi.binary_fill_holes(ok) & valid[Y0:Y1, X0:X1]
        nl, lab = cv2.connectedComponents(ok.astype(np.uint8), connectivity=8)
        ids = np.unique(lab[seed & ok])
        reg = np.isin(lab, ids[ids > 0]) & ~mask[Y0:Y1, X0:X1]
        if reg.sum() < min_area_px:
            continue
        mask[Y0:Y1, X0:X1] |= reg
        grown.append(((Y0, Y1, X0, X1), reg, peak))
    lst = []
    total_de, total_a = 0.0, 0.0
    for box, region, peak in grown:
        Y0, Y1, X0, X1 = box
        region = region & mask[Y0:Y1, X0:X1]
        ring = cv2.dilate(region.astype(np.uint8), _disc(int(1.5 * ppm))).astype(bool) & ~cv2.dilate(region.astype(np.uint8), _disc(int(0.5 * ppm) + 1)).astype(bool)
        ring &= valid[Y0:Y1, X0:X1] & ~mask[Y0:Y1, X0:X1] & ~f_vessel[Y0:Y1, X0:X1]
        sub = aligned[Y0:Y1, X0:X1]
        de = None
        if ring.sum() >= 10 and region.any():
            c_in = _LIN_LUT[sub[region]].mean(axis=0)
            c_out = _LIN_LUT[sub[ring]].mean(axis=0)
            de = float(deltaE_ciede2000(rgb2lab(_to_srgb8(c_in).reshape(1, 1, 3)), rgb2lab(_to_srgb8(c_out).reshape(1, 1, 3)))[0, 0])
        if de is None or de < min_delta_e:
            mask[Y0:Y1, X0:X1] &= ~region  # not perceptibly different from the skin around it
            continue
        area = float(region.sum())
        entry = {
            "area_mm2": round(area / ppm**2, 3) if calibrated else None,
            "area_px2": int(area),
            "delta_e00": round(de, 2),
            "melanin_increase": round(peak, 4),
            "distance_to_treated_px": round(float(dist_b[Y0:Y1, X0:X1][region].min()), 1),
            **_location((Y0, Y1, X0, X1), region, (m, n), ppm, calibrated),
        }
        lst.append(entry)
        total_de += de * area
        total_a += area
    area_px = int(mask.sum())
    # share of the treated (baseline) vessel length lying in staining (trials report it so)
    skel_total = int((skel & cmp_area).sum())
    stained_skel = int((skel & cmp_area & cv2.dilate(mask.astype(np.uint8), _disc(1)).astype(bool)).sum())
    figures = {
        "detected": bool(lst),
        "area_mm2": round(area_px / ppm**2, 3) if calibrated else None,
        "area_px2": area_px,
        "delta_e00": round(total_de / total_a, 2) if total_a > 0 else None,
        "patches": len(lst),
        "treated_length_stained_pct": round(100.0 * stained_skel / skel_total, 2) if skel_total else None,
        "texture_delta_e": round(tex, 3),
        "locations": lst,
    }
    return {"mask": mask, "figures": figures}


def _matting(cb, cf, cmp_area, b_vessel, stain_mask, *, ppm, min_area_px, calibrated, bg_od, min_delta_e=2.0, reach_mm=0.75, min_width_mm=2.4, f_labels=None, f_diameter_px=None):
    """Matting: perceptible new fine redness (vessels under 0.2 mm and their blush), gathered
    into patches as a practitioner outlines them (within ``reach_mm`` of the new vessels,
    closed and filled), wider than a single new vessel."""
    from scipy import ndimage as ndi

    from veinscope.chromophores import CHROMOPHORE_DIRECTIONS

    d_dir = CHROMOPHORE_DIRECTIONS["haemoglobin"]
    d_hb = cv2.GaussianBlur(cf["haemoglobin"] - cb["haemoglobin"], (0, 0), 0.8)
    d_other = cv2.GaussianBlur(np.maximum(cf["melanin"] - cb["melanin"], 0) + np.maximum(cf["venous"] - cb["venous"], 0), (0, 0), 0.8)
    valid = cmp_area  # matting may lie over a stain (both are reported)
    on_vessel = cv2.dilate(b_vessel.astype(np.uint8), _disc(2)).astype(bool)
    step = max(1, int(valid.sum() // 200_000))
    noise = _robust_sigma(d_hb[valid][::step])
    tex = _sample_rms_de(d_hb, valid & ~on_vessel, d_dir, bg_od)
    thr = max(min_delta_e, 1.5 * tex)
    # anywhere in the compared skin: the engine may have missed the treated vessel next to
    # it; the distance to the nearest baseline vessel is reported with each patch
    cand = valid & ~on_vessel & (d_hb > 3.0 * noise) & (d_hb >= d_other)
    # the rise must be perceptible, and so must the follow-up's own redness there (a cleared
    # bluish vessel can unmix into a rise of haemoglobin without any redness being there)
    hb_f = cv2.GaussianBlur(cf["haemoglobin"], (0, 0), 0.8)
    dist_b = cv2.distanceTransform((~b_vessel).astype(np.uint8), cv2.DIST_L2, 5)
    new_red = _perceptible(d_hb, cand, d_dir, bg_od, thr)
    new_red = _perceptible(hb_f, new_red, d_dir, bg_od, thr)
    if f_labels is not None:
        # the engine's line detector sees fine vessels that single pixels do not show: new
        # telangiectasia under 0.3 mm away from every baseline vessel, where redness rose
        fine = ((f_labels == 1) | (f_labels == 2)) & (f_diameter_px <= 0.3 * ppm) & (f_diameter_px > 0)
        new_red |= fine & valid & (dist_b > 2.0 + 0.3 * ppm) & (d_hb > 0)
    r = max(1, int(round(reach_mm * ppm)))
    ker = _disc(r)
    mm_ = cv2.dilate(new_red.astype(np.uint8), ker)
    mm_ = cv2.morphologyEx(mm_, cv2.MORPH_CLOSE, ker)
    regions = ndi.binary_fill_holes(mm_.astype(bool)) & valid
    nl, lab, stats, _ = cv2.connectedComponentsWithStats(regions.astype(np.uint8), connectivity=8)
    m, n = d_hb.shape
    mask = np.zeros((m, n), bool)
    lst = []
    for i in range(1, nl):
        area = int(stats[i, cv2.CC_STAT_AREA])
        if area < min_area_px:
            continue
        x, y, w, h = (int(stats[i, k]) for k in (cv2.CC_STAT_LEFT, cv2.CC_STAT_TOP, cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT))
        region = lab[y : y + h, x : x + w] == i
        width_px = 2.0 * float(cv2.distanceTransform(np.pad(region, 1).astype(np.uint8), cv2.DIST_L2, 5).max())
        if width_px < min_width_mm * ppm:
            continue  # a single new vessel, not a patch of matting
        share = float(new_red[y : y + h, x : x + w][region].mean())
        if share < 0.05:
            continue
        mask[y : y + h, x : x + w] |= region
        inc = d_hb[y : y + h, x : x + w][region]
        lst.append(
            {
                "area_mm2": round(area / ppm**2, 3) if calibrated else None,
                "area_px2": area,
                "new_vessel_share": round(share, 3),
                "redness_increase": round(float(np.percentile(inc, 95)), 4),
                "distance_to_treated_px": round(float(dist_b[y : y + h, x : x + w][region].min()), 1),
                **_location((y, y + h, x, x + w), region, (m, n), ppm, calibrated),
            }
        )
    area_px = int(mask.sum())
    figures = {
        "detected": bool(lst),
        "area_mm2": round(area_px / ppm**2, 3) if calibrated else None,
        "area_px2": area_px,
        "patches": len(lst),
        "texture_delta_e": round(tex, 3),
        "locations": lst,
    }
    return {"mask": mask, "figures": figures}


def _new_vessels(a_f, b_vessel, fad, cmp_area, exclude, *, ppm, tol_px, min_len_px, calibrated, visible_ratio):
    from skimage.morphology import skeletonize

    from veinscope.measure import chain_lengths

    m, n = b_vessel.shape
    f_vessel = (a_f.labels > 0) & cmp_area
    far = cv2.distanceTransform((~b_vessel).astype(np.uint8), cv2.DIST_L2, 5) > tol_px + 1.0
    c_b, c_f = fad["contrast_b"], fad["contrast_f"]
    new_px = f_vessel & far & ~exclude & (c_b < visible_ratio * c_f)  # no such contrast at baseline
    skel = np.zeros((m, n), bool)
    if new_px.any():  # skeleton of the follow-up's vessels only around the candidates
        ys_, xs_ = np.nonzero(new_px)
        pad = int(2 * ppm) + 2
        y0, y1 = max(0, ys_.min() - pad), min(m, ys_.max() + pad + 1)
        x0, x1 = max(0, xs_.min() - pad), min(n, xs_.max() + pad + 1)
        skel[y0:y1, x0:x1] = skeletonize(f_vessel[y0:y1, x0:x1]) & new_px[y0:y1, x0:x1]
    nl, lab = cv2.connectedComponents(skel.astype(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    ys, xs = np.nonzero(skel)
    comp = lab[ys, xs] - 1
    lens = chain_lengths(np.c_[ys, xs], comp, max(nl - 1, 0), (m, n)) if nl > 1 else np.zeros(0)
    keep = np.flatnonzero(lens >= min_len_px)
    mask = np.zeros((m, n), bool)
    by_class = dict.fromkeys(_CLASSES, 0.0)
    locs = []
    if keep.size:
        kept = np.isin(lab, keep + 1)
        # paint the whole new vessel (its follow-up label area) around the kept centrelines
        mask = f_vessel & cv2.dilate(kept.astype(np.uint8), _disc(int(max(2, 0.5 * ppm)))).astype(bool) & new_px
        for k in keep:
            sel = comp == k
            cls = a_f.labels[ys[sel], xs[sel]]
            name = _CLASSES[int(np.bincount(cls, minlength=5)[1:].argmax())]
            by_class[name] += float(lens[k])
            region = np.zeros((1, 1), bool)
            box = (int(ys[sel].min()), int(ys[sel].max()) + 1, int(xs[sel].min()), int(xs[sel].max()) + 1)
            region = kept[box[0] : box[1], box[2] : box[3]] & (lab[box[0] : box[1], box[2] : box[3]] == k + 1)
            locs.append({"class": name, "length_px": round(float(lens[k]), 2), "length_mm": round(float(lens[k]) / ppm, 3) if calibrated else None, **_location(box, region, (m, n), ppm, calibrated)})
    total = float(lens[keep].sum()) if keep.size else 0.0
    figures = {
        "detected": bool(locs),
        "count": len(locs),
        "length_mm": round(total / ppm, 3) if calibrated else None,
        "length_px": round(total, 2),
        "by_class_mm": {k: (round(v / ppm, 3) if calibrated else None) for k, v in by_class.items()},
        "locations": locs,
        "note": "vessels not in the baseline, away from treated sites' staining and matting: disease progression, not a treatment failure",
    }
    return {"mask": mask, "figures": figures}
