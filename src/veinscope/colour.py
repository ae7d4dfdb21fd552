"""Colour normalisation: the same skin under two lights should get the same colour.

With the card: the photo's neutral patches (paper white and five greys of known nominal
reflectance) give, per channel and in linear light, a gain (white balance and exposure) and
an offset (flare, black level): ``measured = gain * reflectance + offset``, fitted by least
squares over the unclipped patches (paper taken as :data:`PAPER_REFLECTANCE`, the greys
relative to it). Inverting it maps the card's paper to 90 % white and its greys to their
nominal values, whatever the light; the colour patches then measure how well
(CIEDE2000 against their nominal colours). A card lying on the rounded leg is lit unevenly (its
light can fall by half from one side to the other), which bends that line: the light's field
across the card is first fitted to its own blank white paper (a quadratic in the card's
millimetres, :func:`light_field`) and every patch sample divided by it (a flat-field), so the
fit sees the card as if it were lit by its mean light.

Without a card: a fallback from the skin itself (a von Kries diagonal transform that maps the
skin's median colour to a fixed reference skin colour). That makes visits of one patient
comparable but also removes real changes of the skin's colour (tan), so it is marked as less
reliable and :func:`veinscope.intake.prepare` does not apply it unless asked.

ΔE00 is CIEDE2000 (Sharma, Wu and Dalal 2005, doi:10.1002/col.20070).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from veinscope._version import __version__
from veinscope.card import CARD, CardLayout, srgb_to_linear

__all__ = [
    "ColourCorrection",
    "LightField",
    "PAPER_REFLECTANCE",
    "REFERENCE_SKIN_SRGB",
    "correction_from_card",
    "correction_from_skin",
    "delta_e00",
    "light_field",
    "linear_to_srgb8",
    "measure_patches",
    "srgb8_to_lab",
    "srgb8_to_lab_f32",
]

log = logging.getLogger(__name__)

#: Reference skin colour of the skin fallback (sRGB): ColorChecker "light skin".
REFERENCE_SKIN_SRGB = (194, 150, 130)
#: Reflectance the card's paper is mapped to (matte office paper reflects about 85-90 %), so a
#: corrected photo keeps a natural exposure and light skin is not clipped.
PAPER_REFLECTANCE = 0.9
#: Median ΔE00 of the card's colour patches after correction above which the intake warns
#: (a good correction leaves under 1; the demo's burnt-out card 1.7).
_RESIDUAL_WARN_DE00 = 4.0
#: Encoded values at or above this are clipped and carry no information.
_CLIP = 250


def linear_to_srgb8(lin: np.ndarray) -> np.ndarray:
    """Linear RGB 0-1 (any shape (..., 3)) -> sRGB uint8."""
    x = np.clip(np.asarray(lin, dtype=np.float64), 0.0, 1.0)
    enc = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(np.maximum(x, 0.0031308), 1 / 2.4) - 0.055)
    return np.clip(enc * 255.0 + 0.5, 0, 255).astype(np.uint8)


def srgb8_to_lab(rgb) -> np.ndarray:
    """sRGB 0-255 (uint8 or float) (..., 3) -> CIELAB (D65) float64 (..., 3).

    The steps and constants of scikit-image's ``rgb2lab`` (sRGB, D65, 2°; equal within 1e-9,
    tested), in NumPy: importing scikit-image's colour module would cost a command's first
    analysis with a card 0.2 s and 9 MB."""
    a = np.asarray(rgb, dtype=np.float64) / 255.0
    lin = np.where(a > 0.04045, ((a + 0.055) / 1.055) ** 2.4, a / 12.92)
    xyz = lin @ (RGB_TO_XYZ / WHITE_D65[:, None]).T
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16.0 / 116.0)
    return np.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])], axis=-1)


#: Linear sRGB -> CIE XYZ (rows X, Y, Z) and the D65 2° white, as scikit-image's ``rgb2lab``
#: (also used by the compiled ΔE00 in :mod:`veinscope._kernels.colourdiff`).
RGB_TO_XYZ = np.array(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
WHITE_D65 = np.array([0.95047, 1.0, 1.08883])


def srgb8_to_lab_f32(rgb) -> np.ndarray:
    """sRGB uint8 (M, N, 3) -> CIELAB (D65) float32 (M, N, 3): L* 0-100, a*, b*.

    NumPy only (a 256-entry linearisation table): within 0.005 of scikit-image's
    ``rgb2lab`` (:func:`srgb8_to_lab`), and without the 0.1 s set-up of OpenCV's first
    ``COLOR_RGB2Lab`` call, which counts at a process's start (:func:`veinscope.warmup`);
    OpenCV's float conversion differs by up to 0.4 (interpolated tables).
    """
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise ValueError(f"rgb must be a (M, N, 3) uint8 array, got shape {a.shape} dtype {a.dtype}")
    lin = srgb_to_linear(np.arange(256)).astype(np.float32)[a]
    xyz = lin @ (RGB_TO_XYZ / WHITE_D65[:, None]).T.astype(np.float32)
    eps = np.float32(0.008856)
    f = np.where(xyz > eps, np.cbrt(xyz), np.float32(7.787) * xyz + np.float32(16.0 / 116.0))
    lab = np.empty(a.shape, np.float32)
    lab[..., 0] = np.where(xyz[..., 1] > eps, 116.0 * f[..., 1] - 16.0, 903.3 * xyz[..., 1])
    lab[..., 1] = 500.0 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200.0 * (f[..., 1] - f[..., 2])
    return lab


def delta_e00(rgb1, rgb2) -> np.ndarray:
    """CIEDE2000 colour difference between sRGB colours (0-255, uint8 or float) of the same
    shape (..., 3); float64 of shape (...). Equal to scikit-image's ``deltaE_ciede2000`` of
    :func:`srgb8_to_lab` within 1e-9 (tested), through the compiled formula of
    :mod:`veinscope._kernels.colourdiff`."""
    from veinscope._kernels.colourdiff import delta_e_lab

    lab1, lab2 = srgb8_to_lab(rgb1), srgb8_to_lab(rgb2)
    if lab1.shape != lab2.shape:
        raise ValueError(f"the two colour arrays must have the same shape, got {lab1.shape} and {lab2.shape}")
    out = np.empty(lab1.shape[:-1], np.float64)
    delta_e_lab(np.ascontiguousarray(lab1.reshape(-1, 3)), np.ascontiguousarray(lab2.reshape(-1, 3)), out.reshape(-1))
    return out


@dataclass(frozen=True)
class ColourCorrection:
    """A per-channel linear-light correction ``corrected = (linear - offset) / gain``.

    Attributes
    ----------
    source : str
        ``"card"``, ``"skin"`` (fallback) or ``"none"``.
    reliable : bool
        True for the card; the skin fallback is less reliable.
    gain, offset : ndarray (3,)
        Per channel, linear light.
    exposure_ev : float
        ``-log2`` of the mean gain: how many stops brighter the correction makes the photo.
    residual_de00 : float or None
        Median CIEDE2000 of the card's colour patches after correction vs their nominal
        colours (card only): how well the correction holds beyond the greys.
    """

    source: str
    reliable: bool
    gain: np.ndarray
    offset: np.ndarray
    exposure_ev: float
    residual_de00: float | None = None
    warnings: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    version: str = __version__

    def apply(self, rgb) -> np.ndarray:
        """Corrected copy of an sRGB uint8 image (M, N, 3); the input is not modified."""
        a = np.asarray(rgb)
        if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
            raise ValueError(f"rgb must be a (M, N, 3) uint8 array, got shape {a.shape} dtype {a.dtype}")
        # a 256-entry table per channel: exact and fast on 12 MP photos (OpenCV's LUT looks up
        # the three channels in one pass: 0.045 s on 12 MP against 0.13 s for NumPy indexing
        # of each strided channel)
        import cv2

        lin = srgb_to_linear(np.arange(256))
        lut = np.empty((1, 256, 3), np.uint8)
        for c in range(3):
            lut[0, :, c] = linear_to_srgb8((lin - self.offset[c]) / self.gain[c])
        return cv2.LUT(np.ascontiguousarray(a), lut)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "reliable": self.reliable,
            "gain": [round(float(g), 5) for g in self.gain],
            "offset": [round(float(o), 5) for o in self.offset],
            "exposure_ev": round(float(self.exposure_ev), 3),
            "residual_de00": None if self.residual_de00 is None else round(float(self.residual_de00), 3),
            "warnings": list(self.warnings),
            "version": self.version,
        }


@dataclass(frozen=True)
class LightField:
    """The light's strength across the card, relative to its mean over the card's white paper.

    A quadratic in the card's millimetres fitted to the card's own white paper (the blank
    background around the patches, markers and ruler), so a card lying across the leg's shading
    or half in a soft shadow still calibrates: each patch is read as if it were lit like the
    card's average. ``offset`` is the flare and black level (linear light, per channel) that the
    light does not scale.

    Attributes
    ----------
    coef : ndarray (6,)
        The field in the terms ``1, u, v, u², uv, v²`` with ``u = x_mm / width - 0.5`` and
        ``v = y_mm / height - 0.5``, scaled so that its mean over the card's white paper is 1
        (the last three are 0 where a plane was fitted).
    offset : ndarray (3,)
    cells : int
        White cells the fit used (after robust rejection).
    lowest, highest : float
        The field's extremes over the card's white paper (1 = the card's mean light).
    residual : float
        Robust spread (1.4826 x MAD) of the cells about the fit, relative to the light.
    """

    coef: np.ndarray
    offset: np.ndarray
    width_mm: float
    height_mm: float
    cells: int
    lowest: float
    highest: float
    residual: float

    def at(self, xy_mm) -> np.ndarray:
        """The field (1 = the card's mean light) at card points (K, 2) mm."""
        xy = np.asarray(xy_mm, dtype=np.float64).reshape(-1, 2)
        return np.clip(_field_terms(xy, self.width_mm, self.height_mm) @ self.coef, _FIELD_FLOOR, None)

    def flatten(self, linear, xy_mm) -> np.ndarray:
        """Linear-light samples (K, 3) at card points (K, 2) mm as if lit by the card's mean light."""
        f = self.at(xy_mm)[:, None]
        return (np.asarray(linear, dtype=np.float64) - self.offset) / f + self.offset

    def to_dict(self) -> dict[str, Any]:
        return {
            "cells": int(self.cells),
            "lowest": round(float(self.lowest), 4),
            "highest": round(float(self.highest), 4),
            "residual": round(float(self.residual), 4),
        }


#: The field is never taken below this share of the card's mean light (a fit gone wild).
_FIELD_FLOOR = 0.2


def _field_terms(xy: np.ndarray, w: float, h: float) -> np.ndarray:
    u = xy[:, 0] / w - 0.5
    v = xy[:, 1] / h - 0.5
    return np.c_[np.ones_like(u), u, v, u * u, u * v, v * v]


_WHITE_CELL_MM = 1.0


@lru_cache(maxsize=4)
def _white_cells(layout: CardLayout) -> np.ndarray:
    """Centres (K, 2) mm of 1 mm cells of blank white paper, on a 1 mm lattice, at least 0.5 mm
    from anything printed: the outline, markers (their white cells too), patches, ruler and the
    printed card's text (ruler numbers and caption)."""
    import cv2

    from veinscope.card import render_card

    ppm = 8.0
    art = render_card(ppm, layout=layout)
    white = art.min(axis=2) >= 254
    yy, xx = np.mgrid[0 : art.shape[0], 0 : art.shape[1]]
    xm, ym = (xx + 0.5) / ppm, (yy + 0.5) / ppm
    ru = layout.ruler
    # the PDF prints the ruler's numbers, "cm" and a caption under the ruler (calibrate._draw_card)
    text = (xm > ru.x0_mm - 3.0) & (xm < ru.x0_mm + ru.length_mm + 6.0) & (ym > ru.y_mm - 1.0) & (ym < layout.height_mm - 3.0)
    white &= ~text
    for mk in layout.markers:  # a marker's white cells are paper, but hemmed in by black
        white &= ~((xm >= mk.x_mm) & (xm <= mk.x_mm + mk.size_mm) & (ym >= mk.y_mm) & (ym <= mk.y_mm + mk.size_mm))
    k = 2 * int(round((0.5 + _WHITE_CELL_MM / 2) * ppm)) + 1  # the cell and 0.5 mm around it
    clear = cv2.erode(white.astype(np.uint8), np.ones((k, k), np.uint8), borderValue=0) > 0
    cy, cx = np.meshgrid(np.arange(0.5, layout.height_mm, 1.0), np.arange(0.5, layout.width_mm, 1.0), indexing="ij")
    iy = np.clip(np.floor(cy * ppm).astype(int), 0, clear.shape[0] - 1)
    ix = np.clip(np.floor(cx * ppm).astype(int), 0, clear.shape[1] - 1)
    ok = clear[iy, ix]
    return np.c_[cx[ok], cy[ok]].astype(np.float64)


def _white_samples(rgb: np.ndarray, calibration, layout: CardLayout) -> tuple[np.ndarray, np.ndarray, float]:
    """The card's white cells seen in the photo: (centres (K, 2) mm, median linear (K, 3), share
    of the cells inside the photo that are clipped), cells outside the photo or with a clipped
    sample left out."""
    import cv2

    cells = _white_cells(layout)
    off = (np.arange(3) - 1) * (_WHITE_CELL_MM / 3)
    grid = (cells[:, None, None, :] + np.stack(np.meshgrid(off, off), axis=-1)[None]).reshape(-1, 2)
    pts = calibration.project_mm(grid)
    m, n = rgb.shape[:2]
    inside = ((pts[:, 0] >= 0) & (pts[:, 0] <= n - 1) & (pts[:, 1] >= 0) & (pts[:, 1] <= m - 1)).reshape(-1, 9).all(axis=1)
    if not inside.any():
        return np.empty((0, 2)), np.empty((0, 3)), 0.0
    p = pts.reshape(-1, 9, 2)[inside].reshape(-1, 2).astype(np.float32)
    vals = cv2.remap(np.ascontiguousarray(rgb), p[:, 0].reshape(1, -1), p[:, 1].reshape(1, -1), cv2.INTER_LINEAR).reshape(-1, 9, 3)
    ok = vals.max(axis=(1, 2)) < _CLIP
    lin = np.median(srgb_to_linear(vals.astype(np.float64)), axis=1)
    return cells[inside][ok], lin[ok], float(np.mean(~ok))


def light_field(rgb, calibration, *, layout: CardLayout = CARD, offset=None, min_cells: int = 24) -> LightField | None:
    """The light's field across the card from its white paper, or None when too little of the
    paper is seen unclipped (or it covers too little of the card) to fit one.

    The light scales the paper's linear value above the offset (flare, black level), so the fit is
    to ``mean over channels (white - offset)``, with cells off the fit by more than three robust
    spreads (a smudge, a finger, a glint) left out, up to twice. Where the cells span less than half the
    card's width or height, the field is a plane (three terms) rather than a quadratic.
    """
    a = np.asarray(rgb)
    xy, lin, _ = _white_samples(a, calibration, layout)
    if len(xy) < min_cells:
        return None
    off = np.zeros(3) if offset is None else np.asarray(offset, dtype=np.float64)
    y = (lin - off).mean(axis=1)
    if np.median(y) <= 1e-3:
        return None
    w, h = layout.width_mm, layout.height_mm
    span = (np.ptp(xy[:, 0]) / w, np.ptp(xy[:, 1]) / h)
    nterms = 6 if min(span) >= 0.5 else 3
    if min(span) < 0.25:
        return None
    terms = _field_terms(xy, w, h)[:, :nterms]
    keep = np.ones(len(y), bool)
    for _ in range(3):
        coef, *_ = np.linalg.lstsq(terms[keep], y[keep], rcond=None)
        rel = (y - terms @ coef) / np.maximum(terms @ coef, 1e-6)
        spread = 1.4826 * float(np.median(np.abs(rel[keep])))
        new = np.abs(rel) <= max(3.0 * spread, 0.01)
        if new.sum() < min_cells or np.array_equal(new, keep):
            break
        keep = new
    full = np.zeros(6)
    full[:nterms] = coef
    every = _field_terms(_white_cells(layout), w, h) @ full
    mean = float(every.mean())
    if mean <= 1e-6:
        return None
    full /= mean
    every /= mean
    return LightField(
        coef=full,
        offset=off,
        width_mm=w,
        height_mm=h,
        cells=int(keep.sum()),
        lowest=float(every.min()),
        highest=float(every.max()),
        residual=spread,
    )


def measure_patches(
    rgb, calibration, *, layout: CardLayout = CARD, inset_frac: float = 0.25, field: LightField | None = None
) -> dict[str, dict[str, Any]]:
    """Median colour of every card patch in the photo.

    Parameters
    ----------
    rgb : ndarray (M, N, 3) uint8
    calibration : Calibration
        A card calibration (with its homography).
    inset_frac : float
        Fraction of each patch's width and height left out at each side (edges, blur).
    field : LightField or None
        The light's field across the card (:func:`light_field`): every sample is divided by the
        field where it lies before the median, so patches read as if the card were evenly lit;
        clipped samples are then left out (a patch is ``clipped`` when under 30 % of its samples
        are not). None reads the photo as it is (``clipped``: over 20 % of the samples are).

    Returns
    -------
    dict
        ``{name: {"srgb": (3,) float, "linear": (3,) float, "clipped": bool, "visible": bool}}``.
    """
    import cv2

    a = np.asarray(rgb)
    out: dict[str, dict[str, Any]] = {}
    m, n = a.shape[:2]
    for p in layout.patches:
        gx = np.linspace(p.x_mm + inset_frac * p.w_mm, p.x_mm + (1 - inset_frac) * p.w_mm, 12)
        gy = np.linspace(p.y_mm + inset_frac * p.h_mm, p.y_mm + (1 - inset_frac) * p.h_mm, 8)
        xx, yy = np.meshgrid(gx, gy)
        pts = calibration.project_mm(np.c_[xx.ravel(), yy.ravel()])
        inside = (pts[:, 0] >= 0) & (pts[:, 0] <= n - 1) & (pts[:, 1] >= 0) & (pts[:, 1] <= m - 1)
        if inside.mean() < 0.8:
            out[p.name] = {"srgb": None, "linear": None, "clipped": False, "visible": False}
            continue
        pts = pts[inside].astype(np.float32)
        vals = cv2.remap(a, pts[:, 0].reshape(1, -1), pts[:, 1].reshape(1, -1), cv2.INTER_LINEAR).reshape(-1, 3)
        hot = vals.max(axis=1) >= _CLIP
        if field is None:
            clipped = bool(np.mean(hot) > 0.2)
            med = np.median(vals.astype(np.float64), axis=0)
            lin = srgb_to_linear(med)
        else:
            # flattened, every sample estimates the patch's value: the clipped ones (where the
            # light is strongest) are left out rather than biasing the median low
            clipped = bool(np.mean(~hot) < 0.3)
            use = ~hot if not clipped else np.ones_like(hot)
            mm = np.c_[xx.ravel(), yy.ravel()][inside][use]
            lin = np.median(field.flatten(srgb_to_linear(vals[use].astype(np.float64)), mm), axis=0)
            med = linear_to_srgb8(lin).astype(np.float64)
        out[p.name] = {"srgb": med, "linear": lin, "clipped": clipped, "visible": True}
    return out


def correction_from_card(rgb, calibration, *, layout: CardLayout = CARD, flat_field: bool = True) -> ColourCorrection:
    """White balance and exposure from the card's neutral patches.

    With ``flat_field`` (the default), the patches are first read as if the card were evenly lit:
    the light's field across the card is fitted to its own white paper (:func:`light_field`), so
    a card lying across the leg's shading still calibrates. The correction is then that of the
    card's mean light. Without enough unclipped white paper to fit a field, the patches are read
    as they are.

    Raises
    ------
    CalibrationError
        When fewer than three neutral patches are visible and unclipped.
    """
    from veinscope.errors import CalibrationError

    a = np.asarray(rgb)
    lf = light_field(a, calibration, layout=layout) if flat_field else None
    if lf is not None:
        # the offset (flare, black level) is not scaled by the light: refit the field above it
        first = _read_card(a, calibration, layout, lf)
        if first["neutrals"] and np.all(np.isfinite(first["offset"])):
            lf = light_field(a, calibration, layout=layout, offset=np.clip(first["offset"], -0.05, 0.2)) or lf
    got = _read_card(a, calibration, layout, lf)
    if lf is not None and (got["bad"] or not got["neutrals"]):
        # the field is fitted where the paper is seen unclipped; far from there (half the card
        # burnt out) it can miss: the patches read as they are may still fit
        raw = _read_card(a, calibration, layout, None)
        if raw["neutrals"] and not raw["bad"]:
            got, lf = raw, None
    meas, neutrals, gain, offset, bad = got["meas"], got["neutrals"], got["gain"], got["offset"], got["bad"]
    warns: list[str] = []
    if any(meas[p.name]["clipped"] for p in layout.neutral_patches()):
        warns.append(
            "The white of the card is burnt out (over-exposed), so exposure is corrected from the greys only. "
            "Avoid direct light or flash on the card, or lower the exposure."
        )
    if not neutrals:
        raise CalibrationError(
            "Too few of the card's grey patches are visible and not burnt out to correct the colours. "
            "Keep the whole card in the picture, without glare on it."
        )
    if got["dropped"] is not None:
        warns.append(
            f"The card's patch '{got['dropped']}' does not match the others (covered, dirty or in shadow?) and was left "
            "out of the colour correction. Keep the card clean and fully visible."
        )
    if bad and _white_samples(a, calibration, layout)[2] > 0.3:
        raise CalibrationError(
            "The white of the card is burnt out (over-exposed) over much of it, so the light on the card cannot be "
            "measured and colours cannot be corrected. Avoid direct light or flash on the card, or lower the exposure."
        )
    if bad:
        raise CalibrationError(
            "The card's grey patches do not agree with each other (the card may be dirty, faded, partly covered or "
            "unevenly lit), so colours cannot be corrected. Use a clean card in even light."
        )
    if np.any(gain <= 1e-4):
        raise CalibrationError(
            "The card's grey patches do not get lighter from dark to white in this photo, so colours cannot be "
            "corrected. Check that the card is clean, in the light and not in shadow."
        )
    exposure_ev = float(-np.log2(np.mean(gain)))
    corr = ColourCorrection("card", True, gain, offset, exposure_ev, warnings=tuple(warns))
    # how well does it hold on the colour patches?
    cols = [p for p in layout.colour_patches() if meas[p.name]["visible"] and not meas[p.name]["clipped"]]
    resid = None
    if cols:
        got = np.array([meas[p.name]["linear"] for p in cols])
        fixed = linear_to_srgb8((got - offset) / gain)
        nominal = linear_to_srgb8(PAPER_REFLECTANCE * np.array([p.reflectance for p in cols]))
        resid = float(np.median(delta_e00(fixed, nominal)))
    if resid is not None and resid > _RESIDUAL_WARN_DE00:
        warns.append(
            f"After correction the card's colour patches are still {resid:.0f} ΔE00 off their printed colours (glare, "
            "burnt-out white, a faded or dirty card?), so colours may not be comparable between visits. Use more even "
            "light without glare on the card."
        )
    if abs(exposure_ev) > 2.0:
        warns.append(
            f"The photo is {abs(exposure_ev):.1f} stops too {'dark' if exposure_ev > 0 else 'bright'} at the card; "
            "colours were corrected but noise or clipping may remain. Use more even light."
        )
    if lf is not None and lf.lowest < 0.5 * lf.highest:
        warns.append(
            f"The light on the card is very uneven (its darkest part gets {100 * lf.lowest / lf.highest:.0f} % of the light "
            "of its brightest): colours were corrected for it, but shading on the skin remains. Use more even light."
        )
    params = {
        "patches_used": [p.name for p in neutrals],
        "measured_linear": {p.name: np.round(meas[p.name]["linear"], 5).tolist() for p in neutrals},
        "light_field": None if lf is None else lf.to_dict(),
    }
    return ColourCorrection("card", True, gain, offset, exposure_ev, residual_de00=resid, warnings=tuple(warns), params=params)


def _read_card(a: np.ndarray, calibration, layout: CardLayout, lf: LightField | None) -> dict[str, Any]:
    """The neutral patches read (through the light's field ``lf`` when given) and fitted, one patch
    far off the line left out when four or more remain: ``{"meas", "neutrals" (empty when under
    three are usable), "gain", "offset", "bad", "dropped" (its name or None)}``."""
    meas = measure_patches(a, calibration, layout=layout, field=lf)
    neutrals = [p for p in layout.neutral_patches() if meas[p.name]["visible"] and not meas[p.name]["clipped"]]
    out: dict[str, Any] = {"meas": meas, "neutrals": [], "gain": None, "offset": None, "bad": True, "dropped": None}
    if len(neutrals) < 3:
        return out
    gain, offset, worst, bad = _fit_neutrals(neutrals, meas)
    if bad and len(neutrals) >= 4:
        # one patch far off the line (covered by a finger, dirty, in a shadow): refit without it
        out["dropped"] = neutrals.pop(worst).name
        gain, offset, _, bad = _fit_neutrals(neutrals, meas)
    out.update(neutrals=neutrals, gain=gain, offset=offset, bad=bad)
    return out


def _fit_neutrals(neutrals, meas) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """Per-channel least squares ``measured = gain * reflectance + offset``; (gain, offset, worst patch, fit bad)."""
    r = PAPER_REFLECTANCE * np.array([p.reflectance[0] for p in neutrals])  # neutral: equal in all channels
    m = np.array([meas[p.name]["linear"] for p in neutrals])  # (P, 3)
    design = np.c_[r, np.ones_like(r)]
    coef, *_ = np.linalg.lstsq(design, m, rcond=None)
    gain, offset = coef[0], coef[1]
    resid = np.abs(design @ coef - m).max(axis=1)
    tol = 0.01 + 0.08 * m.max(axis=1)
    worst = int(np.argmax(resid / tol))
    return gain, offset, worst, bool(np.any(resid > tol))


def correction_from_skin(rgb, skin, *, reference_srgb=REFERENCE_SKIN_SRGB) -> ColourCorrection:
    """Fallback without a card: map the skin's median colour to a reference skin colour.

    Marked ``reliable=False``: it also removes real changes of skin colour between visits.
    """
    from veinscope.errors import CalibrationError

    a = np.asarray(rgb)
    s = np.asarray(skin, dtype=bool)
    if s.shape != a.shape[:2]:
        raise ValueError(f"skin must have shape {a.shape[:2]}, got {s.shape}")
    px = a[s]
    px = px[px.max(axis=1) < _CLIP]
    if len(px) < 100:
        raise CalibrationError("Too little unclipped skin to estimate the light's colour. Photograph more skin, without glare.")
    med = srgb_to_linear(np.median(px.astype(np.float64), axis=0))
    ref = srgb_to_linear(reference_srgb)
    gain = np.maximum(med, 1e-4) / ref
    corr = ColourCorrection(
        "skin",
        False,
        gain,
        np.zeros(3),
        float(-np.log2(np.mean(gain))),
        warnings=(
            "Colours were normalised from the skin itself (no card found), which is less reliable: a real change "
            "of skin colour (tan) is normalised away too. Put the card in the photo for comparable colours.",
        ),
        params={"skin_median_linear": np.round(med, 5).tolist(), "reference_srgb": list(reference_srgb)},
    )
    return corr
