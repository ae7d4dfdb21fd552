"""Photo-quality warnings: each a plain-language message with the fix.

Checks (``code``): ``no_scale``, ``low_scale`` (< 6 px/mm), ``blur`` (measured on the card's
marker edges when the card is there, else on the skin), ``glare`` (clipped specular spots on
the skin), ``overexposed``, ``underexposed``, ``card_tilted`` (> 20 deg), ``little_skin`` and
``no_skin``. Thresholds are module constants, tested on generated photos with and without
each defect (tests/test_quality.py).

Blur without a card: :func:`skin_blur_px`, the scale of the skin's strongest edges.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

__all__ = [
    "BLUR_CARD_SIGMA_PX",
    "BLUR_SKIN_SIGMA_PX",
    "GLARE_FRAC",
    "MIN_FINE_PX_PER_MM",
    "QualityWarning",
    "assess_quality",
    "skin_blur_px",
]

log = logging.getLogger(__name__)

#: Below this scale, vessels under 0.2 mm are 1 px or less: not measurable.
MIN_FINE_PX_PER_MM = 6.0
#: Edge blur (Gaussian sigma, px) of the card's markers above which the photo is out of focus.
BLUR_CARD_SIGMA_PX = 1.8
#: Blur (sigma, px) of the skin's strongest structures above which the photo is out of focus (no card).
BLUR_SKIN_SIGMA_PX = 2.5
#: Fraction of the skin area that is clipped white spots (glare) above which it is warned.
GLARE_FRAC = 0.003
#: Fraction of skin pixels with a clipped channel above which the photo is over-exposed.
OVEREXPOSED_FRAC = 0.15
#: Fraction of the skin (with its burnt-out parts) whose red channel is clipped while green or
#: blue is not, above which the photo is over-exposed.
OVEREXPOSED_RED_FRAC = 0.12
#: Exposure correction (stops, from the card) below which the photo was over-exposed
#: (-0.75: the card's paper, 90 % white, would be 1.5 times brighter than clipping).
OVEREXPOSED_CARD_EV = -0.75
#: Median luminance (0-255) of the skin below which the photo is under-exposed.
UNDEREXPOSED_LUMA = 45.0
#: Luminance (0-255) of the card's paper below which the photo is under-exposed.
UNDEREXPOSED_PAPER_LUMA = 100.0
#: Card tilt (deg) above which lengths along one direction err by more than ~6 %.
TILT_DEG = 20.0
#: Skin fraction of the frame below which there is little skin.
LITTLE_SKIN_FRAC = 0.20
#: Skin fraction of the frame below which there is no usable skin.
NO_SKIN_FRAC = 0.02


@dataclass(frozen=True)
class QualityWarning:
    """One photo-quality problem: a code, a plain-language message with the fix, the measure."""

    code: str
    message: str
    value: float | None = None
    threshold: float | None = None

    def to_dict(self) -> dict:
        r = (lambda v: None if v is None else round(float(v), 4))
        return {"code": self.code, "message": self.message, "value": r(self.value), "threshold": r(self.threshold)}


def skin_blur_px(rgb, mask=None) -> float | None:
    """Blur (Gaussian sigma, px) of the strongest structures inside ``mask`` (hair, vessel and furrow edges).

    The gradient magnitude of a step edge blurred by ``s`` and smoothed at scale ``t`` peaks at
    ``1 / sqrt(s**2 + t**2)``; the ratio of the peaks at ``t = 1`` and ``t = 3`` px, taken
    where the coarse gradient is strongest (so that noise does not choose the pixels), gives
    ``s**2 = (9 - R**2) / (R**2 - 1)`` (after Elder and Zucker 1998, doi:10.1109/34.689301).
    Returns None when the mask holds too few pixels or no structure.
    """
    import cv2

    a = np.asarray(rgb)
    m, n = a.shape[:2]
    mk = np.ones((m, n), bool) if mask is None else np.asarray(mask, dtype=bool)
    # a central window keeps the cost low on 12 MP photos (cut before the grey conversion,
    # which works pixel by pixel: the same values, without a full-size grey copy)
    win = 1024  # 1 MP: about 5000 pixels in the top 0.5 % that the estimate uses
    if max(m, n) > win:
        ys, xs = np.nonzero(mk[:: 8, :: 8])
        cy = int(np.median(ys) * 8) if len(ys) else m // 2
        cx = int(np.median(xs) * 8) if len(xs) else n // 2
        y0 = int(np.clip(cy - win // 2, 0, max(0, m - win)))
        x0 = int(np.clip(cx - win // 2, 0, max(0, n - win)))
        a = a[y0 : y0 + win, x0 : x0 + win]
        mk = mk[y0 : y0 + win, x0 : x0 + win]
    a = np.ascontiguousarray(a)
    g = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float32) if a.ndim == 3 else a.astype(np.float32)
    mk = cv2.erode(mk.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
    if mk.sum() < 2000:
        return None

    def grad(t: float) -> np.ndarray:
        sm = cv2.GaussianBlur(g, (0, 0), t)
        gx = cv2.Sobel(sm, cv2.CV_32F, 1, 0, ksize=3) / 8.0
        gy = cv2.Sobel(sm, cv2.CV_32F, 0, 1, ksize=3) / 8.0
        return np.hypot(gx, gy)

    fine, coarse = grad(1.0), grad(3.0)
    c = coarse[mk]
    thr = np.quantile(c, 0.995)
    sel = mk & (coarse >= thr)
    if sel.sum() < 20 or thr <= 0:
        return None
    # the fine peak sits within a pixel or two of the coarse one
    fine_peak = cv2.dilate(fine, np.ones((5, 5), np.uint8))
    r = float(np.median(fine_peak[sel] / np.maximum(coarse[sel], 1e-6)))
    r2 = r * r
    if r2 <= 1.0:
        return float("inf")
    return float(np.sqrt(max(0.0, (9.0 - r2) / (r2 - 1.0))))


def _pixels_at(a: np.ndarray, mask_s: np.ndarray, step: int) -> np.ndarray:
    """``a[::step, ::step][mask_s]`` (K, 3) of an (M, N, 3) photo: for a C-contiguous photo by
    row indices into the whole photo (0.007 s against 0.02 s for the boolean index of the
    strided view, 12 MP at step 3); the same pixels in the same order."""
    if not a.flags.c_contiguous:
        return a[::step, ::step][mask_s]
    i = np.flatnonzero(mask_s)
    w = mask_s.shape[1]
    return a.reshape(-1, 3).take((i // w) * (step * a.shape[1]) + (i % w) * step, axis=0)


def _luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of float RGB values (last axis R, G, B), 0-255 in, 0-255 out."""
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


def assess_quality(
    rgb,
    *,
    skin=None,
    calibration=None,
    px_per_mm: float | None = None,
    card_mask=None,
    colour=None,
) -> tuple[QualityWarning, ...]:
    """Photo-quality warnings for one photo.

    Parameters
    ----------
    rgb : ndarray (M, N, 3) uint8
        The photo as loaded (before colour correction: clipping is judged on what the camera recorded).
    skin : ndarray (M, N) bool, optional
        Skin mask (computed when missing).
    calibration : Calibration, optional
        The scale (card, manual or ruler).
    px_per_mm : float, optional
        The scale when there is no ``calibration``.
    card_mask : ndarray (M, N) bool, optional
        The card's region, excluded from the skin checks.
    colour : ColourCorrection, optional
        Its warnings are included.

    Returns
    -------
    tuple of QualityWarning
    """
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise ValueError(f"rgb must be a (M, N, 3) uint8 array, got shape {a.shape} dtype {a.dtype}")
    out: list[QualityWarning] = []
    ppm = calibration.px_per_mm if calibration is not None else px_per_mm
    if ppm is None:
        out.append(QualityWarning(
            "no_scale",
            "There is no scale: lengths, areas and diameters cannot be given in millimetres. Put the VeinScope card "
            "flat on the skin next to the treated area, or enter the scale by hand.",
        ))
    elif ppm < MIN_FINE_PX_PER_MM:
        out.append(QualityWarning(
            "low_scale",
            f"The scale is {ppm:.1f} px/mm, below {MIN_FINE_PX_PER_MM:.0f} px/mm: vessels finer than 0.2 mm cannot be "
            "measured. Take the photo closer (20-30 cm) or at a higher resolution.",
            ppm, MIN_FINE_PX_PER_MM,
        ))
    if calibration is not None:
        for w in calibration.warnings:
            out.append(QualityWarning("card", w))
        if calibration.tilt_deg is not None and calibration.tilt_deg > TILT_DEG:
            out.append(QualityWarning(
                "card_tilted",
                f"The card is seen at a slant ({calibration.tilt_deg:.0f} degrees), so lengths in one direction are off by "
                "several per cent. Hold the phone parallel to the skin, straight above the card, and lay the card flat on the skin.",
                calibration.tilt_deg, TILT_DEG,
            ))
    if colour is not None:
        for w in colour.warnings:
            out.append(QualityWarning("colour", w))
    if skin is None:
        from veinscope.segment import skin_mask

        skin = skin_mask(a, exclude=card_mask)
    skin = np.asarray(skin, dtype=bool)
    if card_mask is not None:
        skin = skin & ~np.asarray(card_mask, dtype=bool)
    frac = float(np.count_nonzero(skin) / max(1, skin.size))  # = skin.mean() (count, then one division)
    if frac < NO_SKIN_FRAC:
        out.append(QualityWarning(
            "no_skin",
            "Little or no skin was found in this photo, so nothing can be measured. Photograph the treated area so that "
            "skin fills most of the picture.",
            frac, NO_SKIN_FRAC,
        ))
    elif frac < LITTLE_SKIN_FRAC:
        out.append(QualityWarning(
            "little_skin",
            f"Skin fills only {100 * frac:.0f} % of the photo. Come closer so that the treated area fills most of the "
            "picture (keep the card in view).",
            frac, LITTLE_SKIN_FRAC,
        ))
    # blur
    if calibration is not None and getattr(calibration, "edge_blur_px", None) is not None:
        if calibration.edge_blur_px > BLUR_CARD_SIGMA_PX:
            out.append(QualityWarning(
                "blur",
                f"The photo is out of focus or shaken (edges blurred over {calibration.edge_blur_px:.1f} px at the card). "
                "Tap the skin on the screen to focus, hold the phone still (or brace it), and use more light.",
                calibration.edge_blur_px, BLUR_CARD_SIGMA_PX,
            ))
    elif frac >= NO_SKIN_FRAC:
        b = skin_blur_px(a, skin)
        if b is not None and b > BLUR_SKIN_SIGMA_PX:
            out.append(QualityWarning(
                "blur",
                "The skin looks out of focus or shaken. Tap the skin on the screen to focus, hold the phone still "
                "(or brace it), and use more light.",
                b, BLUR_SKIN_SIGMA_PX,
            ))
    # exposure and glare, judged on the skin region (on a copy of at most ~1.5 MP: fractions only)
    step = max(1, int(np.ceil(np.sqrt(a.shape[0] * a.shape[1] / 1.5e6))))
    a_s = a[::step, ::step]
    card_s = None if card_mask is None else np.asarray(card_mask, dtype=bool)[::step, ::step]
    if frac >= NO_SKIN_FRAC:
        skin_s = skin[::step, ::step]
        # channel by channel: NumPy's reduction over a 3-long last axis is ~10x slower
        mx = np.maximum(np.maximum(a_s[..., 0], a_s[..., 1]), a_s[..., 2])
        mn = np.minimum(np.minimum(a_s[..., 0], a_s[..., 1]), a_s[..., 2])
        clipped_white = (mn >= 235) & (mx >= 250)
        from veinscope._grid import fill_holes

        region = fill_holes(skin_s)  # skin with its glare spots (the skin mask leaves them out)
        if card_s is not None:
            region &= ~card_s
        n_region = max(1, int(region.sum()))
        any_clipped = float(((mx >= 250) & region).sum()) / n_region
        px = _pixels_at(a, skin_s, step).astype(np.float32)  # = a_s[skin_s]
        luma = _luma(px)
        med_luma = float(np.median(luma)) if luma.size else 0.0
        paper = None
        if colour is not None and colour.source == "card":
            paper = colour.params.get("measured_linear", {}).get("paper")
        # burnt-out skin: red clips first on skin while green or blue still carry detail (a white
        # background clips all three together and is not counted)
        red_clip = (a_s[..., 0] >= 250) & (np.minimum(a_s[..., 1], a_s[..., 2]) < 240)
        if card_s is not None:
            red_clip &= ~card_s
        red_clip_frac = float(red_clip.sum()) / max(1, int((skin_s | red_clip).sum()))
        card_bright = colour is not None and colour.source == "card" and colour.exposure_ev < OVEREXPOSED_CARD_EV
        if any_clipped > OVEREXPOSED_FRAC or red_clip_frac > OVEREXPOSED_RED_FRAC or card_bright:
            out.append(QualityWarning(
                "overexposed",
                f"The photo is over-exposed: {100 * max(any_clipped, red_clip_frac):.0f} % of the skin is burnt out, so colour "
                "and faint vessels are lost. Lower the exposure (tap the skin and slide down), or use softer light.",
                max(any_clipped, red_clip_frac), OVEREXPOSED_RED_FRAC,
            ))
        else:
            glare = float((clipped_white & region).sum()) / n_region
            if glare > GLARE_FRAC:
                out.append(QualityWarning(
                    "glare",
                    f"There is glare (shiny white spots) on {100 * glare:.1f} % of the skin; vessels under it cannot be "
                    "seen. Turn off the flash, use indirect or cross-polarised light, or change the angle slightly.",
                    glare, GLARE_FRAC,
                ))
        dark = med_luma < UNDEREXPOSED_LUMA
        if paper is not None:
            paper_luma = float(255 * (0.2126 * paper[0] + 0.7152 * paper[1] + 0.0722 * paper[2]) ** (1 / 2.2))
            dark = dark or paper_luma < UNDEREXPOSED_PAPER_LUMA
        if dark:
            out.append(QualityWarning(
                "underexposed",
                "The photo is too dark (under-exposed): fine vessels drown in noise. Use more light (daylight or a lamp, "
                "no flash glare) or raise the exposure.",
                med_luma, UNDEREXPOSED_LUMA,
            ))
    else:
        # too dark to tell skin from the rest: the photo as a whole (card left out) is judged, and
        # the practitioner is told to light it, not to photograph skin or to come closer
        luma = _luma(a_s.astype(np.float32))
        if card_s is not None:
            luma = luma[~card_s]
        med_luma = float(np.median(luma)) if luma.size else 0.0
        if med_luma < UNDEREXPOSED_LUMA:
            out = [w for w in out if w.code not in ("no_skin", "little_skin")]
            out.append(QualityWarning(
                "underexposed",
                "The photo is too dark (under-exposed): the skin cannot be told apart, so little or nothing can be "
                "measured. Use more light (daylight or a lamp, no flash glare) or raise the exposure, and take it again.",
                med_luma, UNDEREXPOSED_LUMA,
            ))
    if any(w.code == "overexposed" for w in out):
        # burnt-out skin is not found as skin: the photo is too bright, not taken from too far
        out = [w for w in out if w.code != "little_skin"]
    return tuple(out)
