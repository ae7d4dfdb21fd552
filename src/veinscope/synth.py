"""Synthetic close-up photos of leg skin with exact vessel ground truth.

:func:`generate_photo` builds a scene on the skin plane in millimetres, renders it optically
and then photographs it with a simulated phone camera:

1. **Leg and background.** A rounded, slightly tapering leg (a cylinder seen from the side) fills
   most of the frame; outside its silhouette, and beyond an optional clothing hem, lies
   background or fabric (``skin_mask`` False). The cylinder gives a Lambertian brightness
   falloff towards the silhouette and a band of patchy specular glare.
2. **Skin.** Per RGB channel, optical density (OD, base-10 absorbance) adds up from a baseline
   (scattering, bloodless tissue), epidermal melanin (brown; amount set by the Fitzpatrick skin
   type 1-6), diffuse dermal haemoglobin (pink; blotchy and mottled), pores and follicles,
   freckles and naevi. Reflectance is ``10 ** -OD`` (Beer-Lambert), modulated by the skin's
   micro-relief (a network of fine furrows). Dark hairs are composited on top.
3. **Vessels.** Spider telangiectasia (a centre with radiating, tapering, tortuous branches),
   thread telangiectasia, long smooth reticular veins with tributaries and feeders, and now
   and then a vein over 3 mm. Each vessel adds OD along its centreline: a cylinder cross-section
   of its physical diameter (chord length through the blood), blurred by a Gaussian whose width
   grows with depth (scattering above the vessel). Its colour is haemoglobin absorption (oxy /
   deoxy mix) weighted by how deep each colour of light penetrates: shallow oxygenated vessels
   look red-purple, deeper venous ones blue-purple, subdermal ones blue-green to blue-grey
   (they also take a grey share: less light comes back from above them). Deep veins fade in
   and out along their course as they dive; darker skin shields all vessels (lower contrast).
4. **Camera.** Exposure and white-balance error, pixel footprint and slight defocus (Gaussian),
   signal-dependent sensor noise, sRGB encoding, and optionally a JPEG round trip in memory.
   The camera never moves pixels: the truth stays on the photo's pixel grid.

Truth
-----
* ``diameter_mm`` is the *visible* diameter: the full width at half maximum (FWHM) of the
  vessel's own OD contrast profile on the skin (cylinder convolved with the depth blur),
  computed numerically from that profile. The camera's blur is not part of it (a calibrated
  measurement should undo it), so the truth does not change with resolution.
  ``physical_diameter_mm`` is kept in ``centrelines``.
* Classes follow the visible diameter: under 1 mm red or blue telangiectasia by the colour the
  vessel shows (the ratio of its red to blue OD: red vessels absorb blue and green light, not
  red), 1-3 mm reticular, over 3 mm ``over_3mm``. A tapering vessel can change class along its
  length; its centreline is then split.
* A pixel is labelled when its distance to the vessel's centreline is at most half the visible
  diameter (at least half a pixel, so sub-pixel vessels stay one connected pixel line). Where
  vessels overlap, the one with the stronger local contrast owns the pixel.
* A centreline point is *visible* when the colour difference between the vessel's centre and the
  skin around it (CIEDE2000, sRGB at the nominal exposure, before camera noise) is at least
  2 and at least 1.5 times the local RMS colour variation of the skin texture. Pixels of
  invisible parts, and vessel pixels hidden under hair, are ``ignore`` (unlabelled) pixels.
* Lengths come from the centrelines: each point carries its share of the arc length
  (``length_mm``); areas come from the label image (pixels / px_per_mm**2), so a sub-pixel
  vessel's area is that of its one-pixel line.

Everything is drawn from one :class:`numpy.random.Generator`: the same seed gives the same
bytes. The leg, skin, vessels, hair and camera use separate streams derived from it, so a
different ``jpeg_quality`` or camera does not move a vessel.

Optical constants are illustrative, chosen so the rendered colours resemble photographs
(melanin absorbance falling with wavelength, haemoglobin absorbing green and blue much more than
red, deoxyhaemoglobin absorbing red more than oxyhaemoglobin, light of longer wavelength reaching
deeper). See Jacques, S. L. (2013) Optical properties of biological tissues: a review,
Phys. Med. Biol. 58 R37, doi:10.1088/0031-9155/58/11/R37, and Kienle et al. (1996) Why do veins
appear blue? A new look at an old question, Appl. Opt. 35 1151, doi:10.1364/AO.35.001151.
"""

from __future__ import annotations

import functools
import io as _io
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from PIL import Image
from scipy import ndimage as ndi
from scipy.signal import lfilter
from scipy.spatial import cKDTree
from skimage.color import deltaE_ciede2000, rgb2lab

from veinscope._version import __version__

__all__ = ["CLASSES", "CLASS_CODES", "RED_BLUE_OD_RATIO", "SynthPhoto", "generate_photo", "visible_diameter_mm"]

log = logging.getLogger(__name__)

#: Vessel classes in label order (label value = index + 1).
CLASSES = ("red_telangiectasia", "blue_telangiectasia", "reticular", "over_3mm")
#: Label value of each class.
CLASS_CODES = {name: i + 1 for i, name in enumerate(CLASSES)}

# --- optical constants (RGB camera channels; see module docstring) --------------------------
_OD_BASE = np.array([0.09, 0.15, 0.25], np.float32)  # bloodless, melanin-free dermis
_EPS_MEL = np.array([1.00, 1.27, 1.55], np.float32)  # melanin, per unit of red OD
_EPS_FRECKLE = np.array([1.00, 1.60, 2.20], np.float32)  # freckles: redder-brown
_EPS_BLOOD = np.array([0.04, 0.26, 0.17], np.float32)  # diffuse dermal blood, per unit
_HB_OXY = np.array([0.03, 1.00, 0.80])  # oxyhaemoglobin (relative)
_HB_DEOXY = np.array([0.30, 1.00, 1.00])  # deoxyhaemoglobin (relative)
_PENETRATION_MM = np.array([1.60, 0.30, 0.18])  # 1/e depth of remitted light per channel
#: Red-OD of epidermal melanin for Fitzpatrick skin types 1-6.
_MELANIN_BY_TYPE = {1: 0.05, 2: 0.10, 3: 0.20, 4: 0.37, 5: 0.60, 6: 0.92}
#: A telangiectasia is red when its red/blue OD ratio is below this.
RED_BLUE_OD_RATIO = 0.6
_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)
_LN10 = math.log(10.0)
_PIXEL_APERTURE_PX = 0.35  # std of the pixel footprint, used when rendering (not in the truth)
_DELTA_E_MIN = 2.0
_D_MIN_MM = 0.1  # thinnest physical vessel
_TEXTURE_FACTOR = 1.5


# ============================================================================================
# result
# ============================================================================================
@dataclass(frozen=True, eq=False)
class SynthPhoto:
    """A generated leg photo and its exact truth.

    Attributes
    ----------
    rgb : ndarray, shape (M, N, 3), uint8
        The photo after the camera simulation (and JPEG round trip if requested).
    px_per_mm : float
        Scale of the skin plane.
    labels : ndarray, shape (M, N), uint8
        0 none, 1 red_telangiectasia, 2 blue_telangiectasia, 3 reticular, 4 over_3mm
        (visible vessel pixels).
    diameter_mm : ndarray, shape (M, N), float32
        Visible vessel diameter (FWHM of the vessel's contrast profile) at vessel pixels, 0
        elsewhere.
    ignore : ndarray, shape (M, N), bool
        Vessel pixels too faint to be perceptible or hidden under hair: neither required nor
        penalised.
    skin_mask : ndarray, shape (M, N), bool
        Skin (False on background and clothing).
    centrelines : list of dict
        One entry per vessel stretch of a single class, with ``"class"`` (str),
        ``"points_yx"`` (K, 2) float px, ``"diameter_mm"`` (K,) visible diameter,
        ``"physical_diameter_mm"`` (K,), ``"length_mm"`` (K,) each point's share of the arc
        length, ``"visible"`` (K,) bool, ``"depth_mm"`` (float), ``"kind"`` (``"spider"``,
        ``"thread"``, ``"feeder"``, ``"reticular"``, ``"varicose"``) and ``"structure"`` (int:
        stretches of one spider or one vein share it).
    params : dict
        Everything needed to regenerate the photo (``seed`` or ``rng_state``, the call's
        arguments) plus what was drawn (skin type, leg, camera) and the veinscope version.
    confounders : dict of str to ndarray
        Boolean (M, N) masks of things that are not vessels: ``"hair"``, ``"naevus"``,
        ``"freckle"``, ``"glare"``.

    All arrays are read-only.
    """

    rgb: np.ndarray
    px_per_mm: float
    labels: np.ndarray
    diameter_mm: np.ndarray
    ignore: np.ndarray
    skin_mask: np.ndarray
    centrelines: list[dict]
    params: dict
    confounders: dict[str, np.ndarray] = field(default_factory=dict)

    def truth_figures(self) -> dict[str, dict[str, float]]:
        """Length, area and coverage of the visible vessels per class and in total.

        Returns
        -------
        dict
            For each of ``"red_telangiectasia"``, ``"blue_telangiectasia"``, ``"reticular"``,
            ``"over_3mm"`` and ``"total"``: ``length_mm`` (visible centreline length),
            ``area_mm2`` (labelled pixels / px_per_mm**2) and ``coverage_pct`` (vessel area /
            skin area x 100).
        """
        px_area_mm2 = 1.0 / self.px_per_mm**2
        skin_mm2 = float(np.count_nonzero(self.skin_mask)) * px_area_mm2
        counts = np.bincount(self.labels.ravel(), minlength=len(CLASSES) + 1)
        lengths = dict.fromkeys(CLASSES, 0.0)
        for c in self.centrelines:
            lengths[c["class"]] += float(np.sum(c["length_mm"][c["visible"]]))
        out: dict[str, dict[str, float]] = {}
        for name in CLASSES:
            area = float(counts[CLASS_CODES[name]]) * px_area_mm2
            out[name] = {
                "length_mm": lengths[name],
                "area_mm2": area,
                "coverage_pct": 100.0 * area / skin_mm2 if skin_mm2 > 0 else 0.0,
            }
        area = float(counts[1:].sum()) * px_area_mm2
        out["total"] = {
            "length_mm": float(sum(lengths.values())),
            "area_mm2": area,
            "coverage_pct": 100.0 * area / skin_mm2 if skin_mm2 > 0 else 0.0,
        }
        return out

    def truth_overlay(self, *, alpha: float = 0.7) -> np.ndarray:
        """The photo with the truth painted on it, for looking at.

        Red telangiectasia red, blue telangiectasia blue, reticular cyan, over 3 mm magenta,
        ignored pixels yellow, hair green; outside the skin darkened.

        Returns
        -------
        ndarray, shape (M, N, 3), uint8
        """
        colours = {
            1: (255, 30, 30),
            2: (40, 90, 255),
            3: (0, 230, 230),
            4: (255, 0, 255),
        }
        out = self.rgb.astype(np.float32)
        out[~self.skin_mask] *= 0.5
        for code, col in colours.items():
            m = self.labels == code
            out[m] = (1 - alpha) * out[m] + alpha * np.array(col, np.float32)
        m = self.ignore
        out[m] = (1 - alpha) * out[m] + alpha * np.array((255, 230, 0), np.float32)
        hair = self.confounders.get("hair")
        if hair is not None:
            out[hair] = 0.5 * out[hair] + 0.5 * np.array((0, 200, 0), np.float32)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)


# ============================================================================================
# small numerical helpers
# ============================================================================================
def _srgb_encode(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


@functools.cache
def _srgb_lut() -> np.ndarray:
    """uint8 sRGB code for linear values quantised to 1/16383 (a table that stays in cache;
    at most a fifth of a code per step, even near black)."""
    x = np.arange(16384, dtype=np.float64) / 16383.0
    return np.clip(_srgb_encode(x) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _to_srgb8(lin: np.ndarray) -> np.ndarray:
    x = np.clip(lin, 0.0, 1.0, dtype=np.float32)
    x *= np.float32(16383.0)
    x += np.float32(0.5)
    return np.take(_srgb_lut(), x.astype(np.uint16))


def _smooth_noise(
    rng: np.random.Generator,
    shape: tuple[int, int],
    sigma_px: float,
    *,
    elongation: float = 1.0,
    angle: float = 0.0,
) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian random field, correlation length ``sigma_px``.

    Made at low resolution and resized up, so the cost does not grow with ``sigma_px``.
    ``elongation`` > 1 stretches the correlation along ``angle`` (radians from the x axis).
    """
    m, n = shape
    f = max(1.0, sigma_px / 1.5)
    lm, ln = int(math.ceil(m / f)) + 6, int(math.ceil(n / f)) + 6
    low = rng.standard_normal((lm, ln), dtype=np.float32)
    s = sigma_px / f
    if elongation == 1.0:
        low = cv2.GaussianBlur(low, (0, 0), sigmaX=s, borderType=cv2.BORDER_REFLECT)
    else:
        sl = s * elongation
        r = int(math.ceil(3 * sl))
        yy, xx = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float32)
        ca, sa = math.cos(angle), math.sin(angle)
        along = xx * ca + yy * sa
        across = -xx * sa + yy * ca
        k = np.exp(-0.5 * ((along / sl) ** 2 + (across / s) ** 2)).astype(np.float32)
        low = cv2.filter2D(low, -1, k / k.sum(), borderType=cv2.BORDER_REFLECT)
    low *= np.float32(1.0 / (float(low[3:-3, 3:-3].std()) or 1.0))
    if f > 1.0:
        # cubic keeps fine fields smooth; for broad ones linear is as good and cheaper
        interp = cv2.INTER_CUBIC if f < 4 else cv2.INTER_LINEAR
        big = cv2.resize(low, (int(round(ln * f)), int(round(lm * f))), interpolation=interp)
        o = int(round(3 * f))
        return np.ascontiguousarray(big[o : o + m, o : o + n])
    return np.ascontiguousarray(low[3 : 3 + m, 3 : 3 + n])


def _gauss(img: np.ndarray, sigma_px: float) -> np.ndarray:
    if sigma_px < 0.05:
        return img
    return cv2.GaussianBlur(img, (0, 0), sigmaX=float(sigma_px), borderType=cv2.BORDER_REFLECT)


def _blobs(
    rng: np.random.Generator,
    shape: tuple[int, int],
    count: int,
    *,
    radius_px: np.ndarray,
    amp: np.ndarray,
    edge_power: float,
    wobble: float,
) -> np.ndarray:
    """Sum of irregular round blobs ``amp * exp(-(r / radius) ** edge_power)``, placed at random."""
    m, n = shape
    out = np.zeros(shape, np.float32)
    cys, cxs = rng.uniform(0, m, count), rng.uniform(0, n, count)
    ks = rng.integers(2, 4, count)
    phases = rng.uniform(0, 2 * np.pi, (count, 2))
    elong = rng.uniform(1.0, 1.5, count)
    orient = rng.uniform(0, np.pi, count)
    for cy, cx, r, a, k, ph, el, th in zip(cys, cxs, radius_px, amp, ks, phases, elong, orient):
        rr = int(math.ceil(1.8 * r)) + 2
        y0, y1 = max(0, int(cy) - rr), min(m, int(cy) + rr + 1)
        x0, x1 = max(0, int(cx) - rr), min(n, int(cx) + rr + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        ang = np.arctan2(yy - cy, xx - cx)
        wob = 1 + wobble * np.sin(k * ang + ph[0]) + 0.5 * wobble * np.sin((k + 2) * ang + ph[1])
        u = (xx - cx) * math.cos(th) + (yy - cy) * math.sin(th)
        v = -(xx - cx) * math.sin(th) + (yy - cy) * math.cos(th)
        d = np.hypot(u / el, v * el) / (r * wob)
        out[y0:y1, x0:x1] += a * np.exp(-(d**edge_power)) * (0.85 + 0.15 * np.exp(-4 * d**2))
    return out


def _splat(shape: tuple[int, int], yx: np.ndarray, weights: np.ndarray, sigma_px: float) -> np.ndarray:
    """Sum of Gaussian blobs of peak ``weights`` at ``yx`` (bilinear splat, then blur)."""
    m, n = shape
    out = np.zeros((m, n), np.float32)
    if len(yx) == 0:
        return out
    y, x = yx[:, 0], yx[:, 1]
    y0, x0 = np.floor(y).astype(np.int64), np.floor(x).astype(np.int64)
    fy, fx = y - y0, x - x0
    for dy, dx, w in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        yy, xx = y0 + dy, x0 + dx
        ok = (yy >= 0) & (yy < m) & (xx >= 0) & (xx < n)
        np.add.at(out, (yy[ok], xx[ok]), (weights * w)[ok].astype(np.float32))
    s = max(float(sigma_px), 0.5)
    return _gauss(out, s) * np.float32(2 * math.pi * s * s)


# ============================================================================================
# vessel cross-section: cylinder (chord length) blurred by a Gaussian
# ============================================================================================
_S_MIN, _S_MAX, _NS, _NU = 0.02, 60.0, 150, 160


@functools.cache
def _cylinder_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Blurred cylinder profile h(u, s) and its FWHM.

    ``h(u, s) = integral sqrt(1 - t**2) G_s(u - t) dt`` with u the distance from the axis and s
    the Gaussian sigma, both in units of the vessel radius; ``h(u, 0) = sqrt(1 - u**2)`` is the
    normalised chord length. Returns (log-spaced s grid, table of h on u / (1 + 4 s) in [0, 1],
    FWHM / radius for each s).
    """
    s = np.geomspace(_S_MIN, _S_MAX, _NS)
    t = np.linspace(-1.0, 1.0, 601)
    dt = t[1] - t[0]
    chord = np.sqrt(np.clip(1 - t**2, 0, None)) * dt
    uq = np.linspace(0.0, 1.0, _NU)
    table = np.empty((_NS, _NU))

    def h(u: np.ndarray, si: float) -> np.ndarray:
        g = np.exp(-0.5 * ((u[:, None] - t[None, :]) / si) ** 2) / (math.sqrt(2 * math.pi) * si)
        return g @ chord

    for i, si in enumerate(s):
        table[i] = h(uq * (1 + 4 * si), si)
    # half-width at half-maximum by bisection, all s at once
    half = 0.5 * table[:, 0]
    lo, hi = np.zeros(_NS), 1.0 + 4.0 * s
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        g = np.exp(-0.5 * ((mid[:, None] - t[None, :]) / s[:, None]) ** 2) / (math.sqrt(2 * math.pi) * s[:, None])
        above = g @ chord > half
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    fwhm = lo + hi  # 2 x half-width
    return s, table.astype(np.float32), fwhm


def _s_index(s: np.ndarray) -> np.ndarray:
    ls = (np.log(np.clip(s, _S_MIN, _S_MAX)) - math.log(_S_MIN)) / (math.log(_S_MAX) - math.log(_S_MIN))
    return ls * (_NS - 1)


def _profile(u: np.ndarray, s: np.ndarray) -> np.ndarray:
    """h(u, s) for arrays of u (distance / radius) and s (sigma / radius)."""
    _, table, _ = _cylinder_tables()
    si = _s_index(s)
    ui = u / (1 + 4 * np.clip(s, _S_MIN, _S_MAX)) * (_NU - 1)
    return ndi.map_coordinates(table, [si, ui], order=1, mode="constant", cval=0.0).astype(np.float32)


def visible_diameter_mm(physical_diameter_mm: np.ndarray, blur_sigma_mm: np.ndarray | float) -> np.ndarray:
    """FWHM of a cylinder of ``physical_diameter_mm`` blurred by a Gaussian of ``blur_sigma_mm``.

    Parameters
    ----------
    physical_diameter_mm : ndarray
        Vessel diameters (mm).
    blur_sigma_mm : float or ndarray
        Sigma of the Gaussian blur (mm), broadcast against the diameters.

    Returns
    -------
    ndarray
        Visible diameters (mm), same shape.

    Examples
    --------
    >>> round(float(visible_diameter_mm(np.array([1.0]), 1e-6)[0]), 3)  # sharp: sqrt(3)/2 x D
    0.866
    """
    d = np.asarray(physical_diameter_mm, dtype=np.float64)
    r = 0.5 * d
    s_grid, _, fwhm = _cylinder_tables()
    s = np.asarray(blur_sigma_mm, dtype=np.float64) / np.maximum(r, 1e-9)
    sc = np.clip(s, _S_MIN, _S_MAX)
    g = np.interp(np.log(sc), np.log(s_grid), fwhm)
    # beyond the grid: exact limits (sharp cylinder, or pure Gaussian)
    g = np.where(s < _S_MIN, math.sqrt(3.0), g)
    g = np.where(s > _S_MAX, 2 * math.sqrt(2 * math.log(2)) * np.sqrt(s**2 + 0.25), g)
    return r * g


# ============================================================================================
# geometry in millimetres
# ============================================================================================
def _walk(
    rng: np.random.Generator,
    start: np.ndarray,
    heading: float,
    length_mm: float,
    *,
    step_mm: float,
    turn: float,
    smooth_mm: float,
    revert_per_mm: float = 0.0,
) -> np.ndarray:
    """Random walk with persistence: (K, 2) points (y, x) in mm.

    ``turn`` is the heading noise in rad / sqrt(mm); ``revert_per_mm`` pulls the heading back to
    its start value (an AR(1) heading), ``smooth_mm`` smooths the heading.
    """
    n = max(2, int(math.ceil(length_mm / step_mm)) + 1)
    dth = rng.normal(0.0, turn * math.sqrt(step_mm), n - 1)
    if revert_per_mm > 0:
        a = max(0.0, 1.0 - revert_per_mm * step_mm)
        dev = lfilter([1.0], [1.0, -a], dth)
    else:
        dev = np.cumsum(dth)
    theta = heading + dev
    if smooth_mm > 0:
        theta = ndi.gaussian_filter1d(theta, smooth_mm / step_mm, mode="nearest")
    steps = step_mm * np.stack([np.sin(theta), np.cos(theta)], axis=1)
    return np.vstack([start[None, :], start[None, :] + np.cumsum(steps, axis=0)])


def _smooth_factor(rng: np.random.Generator, n: int, amp: float, corr_pts: float) -> np.ndarray:
    z = rng.standard_normal(n + 8)
    z = ndi.gaussian_filter1d(z, max(corr_pts, 1.0), mode="nearest")[4 : 4 + n]
    sd = z.std() or 1.0
    return np.exp(amp * z / sd)


@dataclass
class _Branch:
    pts_mm: np.ndarray  # (K, 2) y, x
    d_mm: np.ndarray  # (K,) physical diameter
    strength: np.ndarray | None = None  # (K,) contrast factor along the path (deep veins dive)


@dataclass
class _Structure:
    kind: str
    colour: str  # "red", "blue" or "deep"
    depth_mm: float
    contrast: float  # OD scale
    branches: list[_Branch]
    od_vec: np.ndarray = field(default_factory=lambda: np.zeros(3))

    @property
    def blur_mm(self) -> float:
        return _blur_mm(self.depth_mm)


def _blur_mm(depth_mm: float) -> float:
    """Sigma (mm) of the Gaussian blur of a vessel at ``depth_mm``: scattering above it."""
    return 0.02 + 0.2 * depth_mm + 0.2 * max(0.0, depth_mm - 0.7) ** 2


def _od_vector(depth_mm: float, saturation: float) -> np.ndarray:
    hb = saturation * _HB_OXY + (1 - saturation) * _HB_DEOXY
    return hb * np.exp(-depth_mm / _PENETRATION_MM)


class _Leg:
    """Where the leg lies in the photo (a tapering cylinder, axis along the long side), how it
    is lit, and whether a clothing hem crosses it."""

    def __init__(self, rng: np.random.Generator, shape: tuple[int, int], ppm: float) -> None:
        m, n = shape
        self.shape, self.ppm = shape, ppm
        base = 0.0 if n >= m else math.pi / 2  # axis along the long side
        self.angle = base + rng.uniform(-0.4, 0.4)
        self.radius_mm = rng.uniform(45.0, 72.0)
        self.taper_per_mm = rng.uniform(-0.0025, 0.0025)
        ay, ax = math.sin(self.angle), math.cos(self.angle)
        self.axis = np.array([ay, ax])
        self.normal = np.array([ax, -ay])
        half_across = 0.5 * (abs(self.normal[0]) * m + abs(self.normal[1]) * n) / ppm  # mm
        r = self.radius_mm
        if r > 0.95 * half_across:  # one silhouette in view
            side = float(rng.choice([-1.0, 1.0]))
            self.offset_mm = float(side * (r - half_across * rng.uniform(0.55, 0.9)))
        else:  # both silhouettes in view
            self.offset_mm = float(rng.uniform(-1, 1) * 0.6 * (half_across - r))
        self.light = rng.uniform(-0.55, 0.55)  # light direction in the cross-section (rad)
        self.ambient = rng.uniform(0.15, 0.3)
        self.hem = rng.random() < 0.35
        half_along = 0.5 * (abs(self.axis[0]) * m + abs(self.axis[1]) * n) / ppm
        self.hem_side = float(rng.choice([-1.0, 1.0]))
        self.hem_at_mm = half_along * rng.uniform(0.6, 0.85)
        self.hem_tilt = rng.uniform(-0.25, 0.25)
        self._wobble_seed = int(rng.integers(0, 2**31 - 1))

    def fields(self) -> dict[str, np.ndarray]:
        """Full-size maps: skin_alpha, cloth, shade (Lambertian), spec_cos, dist_out_mm."""
        m, n = self.shape
        ppm = self.ppm
        f32 = np.float32
        wob = np.random.default_rng(self._wobble_seed)
        yy = np.arange(m, dtype=f32)[:, None] - f32((m - 1) / 2)
        xx = np.arange(n, dtype=f32)[None, :] - f32((n - 1) / 2)
        along = yy * f32(self.axis[0] / ppm) + xx * f32(self.axis[1] / ppm)  # mm
        across = yy * f32(self.normal[0] / ppm) + xx * f32(self.normal[1] / ppm)
        across -= f32(self.offset_mm)
        del yy, xx
        radius = _smooth_noise(wob, (m, n), 30.0 * ppm)  # a living silhouette, not a ruler
        radius *= f32(0.4)
        radius += f32(self.radius_mm)
        radius += along * f32(self.radius_mm * self.taper_per_mm)
        abs_across = np.abs(across)
        out_mm = abs_across - radius  # mm outside the silhouette (negative inside)
        leg_alpha = out_mm * f32(-ppm)
        leg_alpha += f32(0.5)
        np.clip(leg_alpha, 0, 1, out=leg_alpha)
        if self.hem:
            hem = along * f32(self.hem_side)
            hem += across * f32(self.hem_tilt)
            noise = _smooth_noise(wob, (m, n), 6 * ppm)
            noise *= f32(1.2)
            hem += noise
            del noise
            hem -= f32(self.hem_at_mm)
            hem *= f32(ppm)
            hem += f32(0.5)
            cloth = np.clip(hem, 0, 1, out=hem)
        else:
            cloth = np.zeros((m, n), f32)
        del along
        q = across
        q /= radius
        del radius, abs_across
        np.clip(q, -1, 1, out=q)
        nz = np.square(q)
        np.subtract(f32(1), nz, out=nz)
        np.sqrt(nz, out=nz)
        shade = q * f32(math.sin(self.light))
        shade += nz * f32(math.cos(self.light))
        np.clip(shade, 0, None, out=shade)
        shade = cv2.pow(shade, 1.2)
        shade *= f32(1 - self.ambient)
        shade += f32(self.ambient)
        half = 0.5 * self.light
        spec_cos = q * f32(math.sin(half))
        spec_cos += nz * f32(math.cos(half))
        np.clip(spec_cos, 0, None, out=spec_cos)
        del q, nz
        skin_alpha = 1 - cloth
        skin_alpha *= leg_alpha
        np.clip(out_mm, 0, None, out=out_mm)
        return {
            "skin_alpha": skin_alpha,
            "cloth": cloth,
            "shade": shade,
            "spec_cos": spec_cos,
            "dist_out_mm": out_mm,
        }


# ============================================================================================
# the generator
# ============================================================================================
def generate_photo(
    *,
    rng: np.random.Generator | None = None,
    seed: int | None = None,
    size: tuple[int, int] = (1600, 1200),
    px_per_mm: float = 10.0,
    skin_type: int | None = None,
    n_vessels: int | None = None,
    jpeg_quality: int | None = 92,
) -> SynthPhoto:
    """Generate a synthetic close-up photo of leg skin with exact vessel truth.

    Parameters
    ----------
    rng : numpy.random.Generator, optional
        Source of randomness. Give ``rng`` or ``seed``, not both; with neither, a fresh seed is
        drawn and recorded in ``params["seed"]``.
    seed : int, optional
        Seed for :func:`numpy.random.default_rng`.
    size : (int, int)
        (width, height) of the photo in px, each 64-12000.
    px_per_mm : float
        Scale of the skin plane, 2-60 px/mm (phone photos: about 6-15).
    skin_type : int, optional
        Fitzpatrick skin type 1 (very light) to 6 (dark); drawn when None.
    n_vessels : int, optional
        Number of vessel structures (a spider, a group of threads, a vein with its tributaries);
        drawn in proportion to the skin area when None. With 4 or more, at least one each of
        red telangiectasia, blue telangiectasia and a reticular vein is included (and, now
        and then, a vein over 3 mm). Fine feeder vessels springing from reticular veins come
        on top (``params["n_structures"]`` counts everything).
    jpeg_quality : int or None
        JPEG quality 1-100 of the in-memory round trip (Pillow, 4:2:0 chroma subsampling as
        phones do); None skips JPEG.

    Returns
    -------
    SynthPhoto

    Raises
    ------
    ValueError, TypeError
        For an invalid argument (the message names it).

    Examples
    --------
    >>> photo = generate_photo(seed=1, size=(320, 240), n_vessels=3)
    >>> photo.rgb.shape, photo.labels.shape
    ((240, 320, 3), (240, 320))
    >>> sorted(photo.truth_figures())
    ['blue_telangiectasia', 'over_3mm', 'red_telangiectasia', 'reticular', 'total']
    """
    rng, regen = _resolve_rng(rng, seed)
    width, height = _check_size(size)
    ppm = _check_float("px_per_mm", px_per_mm, 2.0, 60.0)
    if skin_type is not None and (isinstance(skin_type, bool) or not isinstance(skin_type, (int, np.integer)) or not 1 <= skin_type <= 6):
        raise ValueError(f"skin_type must be an integer 1-6 or None, got {skin_type!r}")
    if n_vessels is not None and (isinstance(n_vessels, bool) or not isinstance(n_vessels, (int, np.integer)) or n_vessels < 0):
        raise ValueError(f"n_vessels must be a non-negative integer or None, got {n_vessels!r}")
    if jpeg_quality is not None and (isinstance(jpeg_quality, bool) or not isinstance(jpeg_quality, (int, np.integer)) or not 1 <= jpeg_quality <= 100):
        raise ValueError(f"jpeg_quality must be an integer 1-100 or None, got {jpeg_quality!r}")

    streams = [np.random.default_rng(int(s)) for s in rng.integers(0, 2**63 - 1, size=6)]
    r_leg, r_skin, r_vessel, r_hair, r_cam, r_bg = streams
    shape = (height, width)
    if skin_type is None:
        skin_type = int(r_skin.choice(np.arange(1, 7), p=[0.12, 0.28, 0.25, 0.15, 0.11, 0.09]))
    skin_type = int(skin_type)

    leg = _Leg(r_leg, shape, ppm)
    geo = leg.fields()
    skin = _render_skin(r_skin, shape, ppm, skin_type, geo)
    skin_mask = geo["skin_alpha"] >= 0.5

    # nominal exposure from the skin itself (what auto-exposure would do), neutral white
    diffuse = skin["diffuse"]  # (3, M, N) linear, vessel-free, shaded
    y_med = float(np.median(np.tensordot(_LUMA, diffuse[:, ::4, ::4], axes=1)[skin_mask[::4, ::4]])) if skin_mask.any() else 0.3
    gain0 = float(np.clip((0.30 / max(y_med, 1e-4)) ** 0.55, 0.6, 6.0))

    structures = _make_vessels(r_vessel, shape, ppm, n_vessels, skin_mask, leg, skin_type)
    vessel = _render_vessels(structures, shape, ppm, geo, skin, gain0)

    hair = _render_hair(r_hair, shape, ppm, leg, geo)
    labels, diam, ignore = vessel["labels"], vessel["diameter_mm"], vessel["ignore"]
    hair_mask = hair["alpha"] > 0.2
    covered = hair_mask & (labels > 0)
    ignore |= covered
    labels[hair_mask] = 0
    diam[hair_mask] = 0.0
    labels[~skin_mask] = 0
    diam[~skin_mask] = 0.0
    ignore &= skin_mask

    # compose the scene in place, channel by channel (linear RGB, relative to a white
    # reflector under the light): skin x vessels + glare, hair over it, background around it
    bg_cols, (bg, cloth_pat) = _render_background(r_bg, shape, ppm, geo)
    scene = diffuse
    glare = skin["glare"]
    od_idx, od_val = vessel["od_idx"], vessel["od_val"]
    h_idx = np.flatnonzero(hair["alpha"])
    h_a = hair["alpha"].ravel()[h_idx]
    h_shade = geo["shade"].ravel()[h_idx]
    sa = geo["skin_alpha"]
    b_idx = np.flatnonzero(sa < 1)
    b_sa = sa.ravel()[b_idx]
    b_bg = bg.ravel()[b_idx]
    if cloth_pat.size > 1:
        b_cloth = geo["cloth"].ravel()[b_idx]
        b_cl = cloth_pat.ravel()[b_idx]
    for c in range(3):
        flat = scene[c].reshape(-1)
        flat[od_idx] *= np.exp(od_val[:, c] * np.float32(-_LN10))
        flat += glare.reshape(-1)
        flat[h_idx] = flat[h_idx] * (1 - h_a) + h_a * hair["colour"][c] * h_shade
        other = bg_cols[0, c] * b_bg
        if cloth_pat.size > 1:
            other = other * (1 - b_cloth) + bg_cols[1, c] * b_cl * b_cloth
        flat[b_idx] = flat[b_idx] * b_sa + other * (1 - b_sa)
    del bg, cloth_pat

    rgb, cam = _camera(r_cam, scene, gain0, jpeg_quality)

    centrelines = vessel["centrelines"]
    params: dict[str, Any] = {
        "generator": "veinscope.synth.generate_photo",
        "veinscope_version": __version__,
        **regen,
        "size": [width, height],
        "px_per_mm": ppm,
        "skin_type": skin_type,
        "n_vessels": n_vessels,
        "n_structures": len(structures),
        "jpeg_quality": jpeg_quality,
        "leg": {
            "axis_angle_deg": math.degrees(leg.angle),
            "radius_mm": leg.radius_mm,
            "offset_mm": leg.offset_mm,
            "light_rad": leg.light,
            "clothing_hem": bool(leg.hem),
        },
        "skin": skin["params"],
        "structures": [
            {
                "kind": s.kind,
                "colour": s.colour,
                "depth_mm": s.depth_mm,
                "blur_sigma_mm": s.blur_mm,
                "od_rgb": [float(v) for v in s.od_vec],
                "branches": len(s.branches),
            }
            for s in structures
        ],
        "hairs": hair["count"],
        "camera": {**cam, "nominal_gain": gain0},
        "truth": {
            "visible_delta_e00_min": _DELTA_E_MIN,
            "texture_rms_factor": _TEXTURE_FACTOR,
            "red_blue_od_ratio": RED_BLUE_OD_RATIO,
        },
    }
    arrays = dict(
        rgb=rgb,
        labels=labels,
        diameter_mm=diam.astype(np.float32),
        ignore=ignore,
        skin_mask=skin_mask,
    )
    for arr in arrays.values():
        arr.setflags(write=False)
    confounders = {
        "hair": hair_mask,
        "naevus": skin["naevus"] & skin_mask,
        "freckle": skin["freckle"] & skin_mask,
        "glare": (skin["glare"] > 0.04) & skin_mask,
    }
    for arr in confounders.values():
        arr.setflags(write=False)
    for c in centrelines:
        for v in c.values():
            if isinstance(v, np.ndarray):
                v.setflags(write=False)
    log.debug(
        "synthetic photo %dx%d px at %.3g px/mm: skin type %d, %d vessel structures, %d hairs",
        width, height, ppm, skin_type, len(structures), hair["count"],
    )
    return SynthPhoto(
        px_per_mm=ppm, centrelines=centrelines, params=params, confounders=confounders, **arrays
    )


# --------------------------------------------------------------------------------------------
def _resolve_rng(rng: Any, seed: Any) -> tuple[np.random.Generator, dict]:
    if rng is not None and seed is not None:
        raise ValueError("give rng or seed, not both (got both)")
    if rng is not None:
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        state = rng.bit_generator.state
        return rng, {"rng_state": _jsonable(state), "bit_generator": type(rng.bit_generator).__name__}
    if seed is None:
        seed = int(np.random.SeedSequence().entropy)
    elif isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.default_rng(int(seed)), {"seed": int(seed)}


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _check_size(size: Any) -> tuple[int, int]:
    try:
        w, h = size
    except (TypeError, ValueError):
        raise ValueError(f"size must be (width, height) in px, got {size!r}") from None
    for v in (w, h):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 64 or v > 12000:
            raise ValueError(f"size must be two integers 64-12000 (width, height), got {size!r}")
    return int(w), int(h)


def _check_float(name: str, value: Any, lo: float, hi: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}") from None
    if not (lo <= v <= hi):
        raise ValueError(f"{name} must be between {lo} and {hi}, got {value!r}")
    return v


# ============================================================================================
# skin
# ============================================================================================
def _render_skin(
    rng: np.random.Generator, shape: tuple[int, int], ppm: float, skin_type: int, geo: dict
) -> dict:
    """Vessel-free skin: diffuse reflectance x shading (3, M, N), glare (M, N) and masks.

    Works in place, channel by channel: a 12-megapixel photo holds many full-size arrays.
    """
    m, n = shape
    mel0 = _MELANIN_BY_TYPE[skin_type] * rng.uniform(0.85, 1.15)
    blood0 = rng.uniform(0.35, 0.85)
    area_scale = (m * n) / ppm**2 / 19200.0  # relative to 160 x 120 mm

    # melanin: smooth unevenness and pigment grain; blood: blotches and a faint mottled net
    mel = _lognormal_field(rng, shape, mel0, ((15 * ppm, 0.05), (3 * ppm, 0.025), (max(0.15 * ppm, 0.7), 0.02)))
    blood = _lognormal_field(rng, shape, blood0, ((15 * ppm, 0.15), (3.5 * ppm, 0.07)))
    net = _smooth_noise(rng, shape, rng.uniform(2.5, 4.0) * ppm)
    net *= np.float32(1 / 0.45)
    np.square(net, out=net)
    np.negative(net, out=net)
    np.exp(net, out=net)
    net *= np.float32(blood0 * rng.uniform(0.03, 0.15))
    blood += net  # cutis marmorata
    del net

    # freckles: small brown macules with soft but definite edges, more on light skin
    lam = {1: 90, 2: 60, 3: 25, 4: 10, 5: 5, 6: 3}[skin_type] * area_scale * rng.uniform(0.2, 1.5)
    nf = int(rng.poisson(lam))
    freckles = _blobs(
        rng, shape, nf, radius_px=rng.uniform(0.4, 1.5, nf) * ppm, amp=mel0 * rng.uniform(0.15, 0.6, nf) + 0.02,
        edge_power=4.0, wobble=0.06,
    )
    freckle_mask = freckles > 0.01 + 0.07 * mel0

    # pores / follicles: tiny darker dots
    npores = int(rng.poisson(rng.uniform(0.12, 0.35) * m * n / ppm**2))
    py, px = rng.uniform(0, m, npores), rng.uniform(0, n, npores)
    pamp = rng.uniform(0.03, 0.10, npores) * (1 + 0.5 * mel0)
    pores = _splat(shape, np.stack([py, px], 1), pamp, max(0.07 * ppm, 0.55))

    # naevi: few, darker, sharper-edged, a little irregular
    nn = int(rng.poisson(1.5 * area_scale))
    naevi = _blobs(rng, shape, nn, radius_px=rng.uniform(0.8, 3.0, nn) * ppm, amp=rng.uniform(0.5, 1.3, nn), edge_power=5.0, wobble=0.07)
    naevus_mask = naevi > 0.25

    # micro-relief: a network of fine furrows at two oblique angles, shading the surface
    furrow = _furrows(rng, shape, 0.3 * ppm, 0.6)
    np.maximum(furrow, _furrows(rng, shape, 0.3 * ppm, -0.6), out=furrow)
    mod = _smooth_noise(rng, shape, 6 * ppm)
    mod *= np.float32(0.4)
    mod += np.float32(0.6)
    np.clip(mod, 0, 1, out=mod)
    furrow *= mod
    del mod
    relief_depth = rng.uniform(0.025, 0.06)
    shade = _smooth_noise(rng, shape, max(0.06 * ppm, 0.6))  # fine grain
    shade *= np.float32(0.012)
    shade += np.float32(1.0)
    shade -= np.float32(relief_depth) * furrow
    shade *= geo["shade"]

    # Beer-Lambert, channel by channel: OD -> reflectance x shading
    mel += pores
    stride = max(1, int(round(ppm / 2.5)))
    diffuse = np.empty((3, m, n), np.float32)
    texture = np.empty((3, len(range(0, m, stride)), len(range(0, n, stride))), np.float32)
    tmp = np.empty(shape, np.float32)
    for c in range(3):
        od = diffuse[c]
        np.multiply(mel, _EPS_MEL[c], out=od)
        np.multiply(freckles, _EPS_FRECKLE[c], out=tmp)
        od += tmp
        np.multiply(blood, _EPS_BLOOD[c], out=tmp)
        od += tmp
        np.multiply(pores, np.float32(0.04), out=tmp)
        od += tmp
        od += _OD_BASE[c]
        # the texture reference for visibility leaves out the naevi
        texture[c] = shade[::stride, ::stride] * np.exp(od[::stride, ::stride] * np.float32(-_LN10))
        if nn:
            np.multiply(naevi, np.float32(_EPS_MEL[c] + 0.08), out=tmp)
            od += tmp
        od *= np.float32(-_LN10)
        np.exp(od, out=od)
        od *= shade
    del tmp, mel, blood, pores, freckles, naevi

    # glare: a patchy specular band along the leg where the surface faces half-way to the light
    shin = rng.uniform(15, 60)
    strength = rng.uniform(0.005, 0.05) * (0.5 + 0.5 * float(np.median(diffuse[1, ::8, ::8])) / 0.3)
    glare = cv2.pow(geo["spec_cos"], shin)
    patch = _smooth_noise(rng, shape, 8.0 * ppm)
    patch *= np.float32(0.2)
    patch += np.float32(0.75)
    np.clip(patch, 0, 1, out=patch)
    glare *= patch
    sparkle = patch  # reuse the buffer
    sparkle[...] = _smooth_noise(rng, shape, max(0.12 * ppm, 0.7))
    sparkle *= np.float32(0.3)
    sparkle += np.float32(1.0)
    np.clip(sparkle, 0, None, out=sparkle)
    glare *= sparkle
    furrow *= np.float32(-0.3)
    furrow += np.float32(1.0)
    glare *= furrow
    glare *= np.float32(strength)
    glare[geo["skin_alpha"] <= 0] = 0

    return {
        "diffuse": diffuse,
        "texture": texture,
        "texture_stride": stride,
        "glare": glare,
        "freckle": freckle_mask,
        "naevus": naevus_mask,
        "params": {
            "melanin_od": mel0,
            "blood": blood0,
            "freckles": nf,
            "naevi": nn,
            "pores": npores,
            "relief_depth": relief_depth,
            "glare_strength": strength,
        },
    }


def _lognormal_field(rng: np.random.Generator, shape: tuple[int, int], mean: float, octaves: tuple) -> np.ndarray:
    """``mean * exp(sum of amp_i * noise(sigma_i))``, in place."""
    out = None
    for sigma_px, amp in octaves:
        f = _smooth_noise(rng, shape, sigma_px)
        f *= np.float32(amp)
        if out is None:
            out = f
        else:
            out += f
    np.exp(out, out=out)
    out *= np.float32(mean)
    return out


def _furrows(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float, angle: float) -> np.ndarray:
    """Thin lines along the zero crossings of an oriented noise field, 0-1."""
    f = _smooth_noise(rng, shape, sigma_px, elongation=2.5, angle=angle)
    f *= np.float32(1 / 0.5)
    np.square(f, out=f)
    np.negative(f, out=f)
    np.exp(f, out=f)
    return f


# ============================================================================================
# vessels: geometry
# ============================================================================================
def _random_skin_point(rng: np.random.Generator, skin_mask: np.ndarray, ppm: float, margin_px: float = 0) -> np.ndarray:
    m, n = skin_mask.shape
    for _ in range(50):
        y = rng.uniform(margin_px, m - margin_px, 32)
        x = rng.uniform(margin_px, n - margin_px, 32)
        ok = skin_mask[y.astype(int).clip(0, m - 1), x.astype(int).clip(0, n - 1)]
        if ok.any():
            i = int(np.argmax(ok))
            return np.array([y[i], x[i]]) / ppm
    return np.array([m / 2, n / 2]) / ppm


def _make_vessels(
    rng: np.random.Generator,
    shape: tuple[int, int],
    ppm: float,
    n_vessels: int | None,
    skin_mask: np.ndarray,
    leg: _Leg,
    skin_type: int,
) -> list[_Structure]:
    m, n = shape
    skin_mm2 = float(np.count_nonzero(skin_mask)) / ppm**2
    if n_vessels is None:
        n_vessels = int(np.clip(round(rng.uniform(5, 11) * skin_mm2 / 12000.0), 1, 80))
        if skin_mm2 < 400:
            n_vessels = int(rng.integers(0, 3))
    kinds: list[str] = []
    if n_vessels >= 4:
        kinds = ["red", "blue", "reticular"]
        if rng.random() < 0.3:
            kinds.append("varicose")
    while len(kinds) < n_vessels:
        kinds.append(str(rng.choice(["red", "blue", "reticular"], p=[0.38, 0.37, 0.25])))
    kinds = kinds[:n_vessels]
    step = 0.8 / ppm
    out: list[_Structure] = []
    axis_heading = math.atan2(leg.axis[0], leg.axis[1])
    for kind in kinds:
        if kind in ("red", "blue"):
            if rng.random() < 0.55:
                out.append(_spider(rng, _random_skin_point(rng, skin_mask, ppm), kind, step))
            else:
                out.append(_threads(rng, _random_skin_point(rng, skin_mask, ppm), kind, step, axis_heading))
        elif kind == "reticular":
            ret = _reticular(rng, _random_skin_point(rng, skin_mask, ppm), step, axis_heading, varicose=False)
            out.append(ret)
            # feeders: fine blue vessels springing from the vein
            for _ in range(int(rng.poisson(1.2))):
                b = ret.branches[0]
                k = int(rng.integers(0, len(b.pts_mm)))
                out.append(_threads(rng, b.pts_mm[k], "blue", step, axis_heading + rng.choice([-1, 1]) * rng.uniform(0.6, 1.4), feeder=True))
        else:
            out.append(_reticular(rng, _random_skin_point(rng, skin_mask, ppm), step, axis_heading, varicose=True))
    # contrast is lower on darker skin: epidermal melanin shields the dermis
    shield = math.exp(-1.5 * _MELANIN_BY_TYPE[skin_type])
    for s in out:
        sat = {"red": rng.uniform(0.7, 0.95), "blue": rng.uniform(0.05, 0.3), "deep": rng.uniform(0.2, 0.5)}[s.colour]
        vec = _od_vector(s.depth_mm, sat)
        if s.colour == "deep":  # less light scattered back from above a deep vein: a grey part
            vec = vec + 0.35 * vec[0]
        s.od_vec = vec * s.contrast * shield
    return out


def _spider(rng: np.random.Generator, centre: np.ndarray, colour: str, step: float) -> _Structure:
    depth = rng.uniform(0.03, 0.12) if colour == "red" else rng.uniform(0.4, 0.65)
    contrast = rng.uniform(0.35, 0.9) if colour == "red" else rng.uniform(2.0, 4.5)
    nb = int(rng.integers(4, 11))
    d0 = rng.uniform(0.15, 0.6) if colour == "red" else rng.uniform(0.3, 0.8)
    reach = rng.uniform(3.0, 12.0)
    start_angles = rng.uniform(0, 2 * np.pi) + np.arange(nb) * 2 * np.pi / nb + rng.normal(0, 0.25, nb)
    branches: list[_Branch] = []
    for a in start_angles:
        length = reach * rng.uniform(0.4, 1.2)
        pts = _walk(rng, centre, a, length, step_mm=step, turn=0.9, smooth_mm=0.25, revert_per_mm=0.35)
        s = np.linspace(0, 1, len(pts))
        d = d0 * rng.uniform(0.6, 1.0) * (1 - 0.8 * s) * _smooth_factor(rng, len(pts), 0.1, 1.0 / step)
        d = np.maximum(d, _D_MIN_MM)
        branches.append(_Branch(pts, d))
        for _ in range(int(rng.poisson(1.0))):  # side branches
            k = int(rng.integers(len(pts) // 4, max(len(pts) // 4 + 1, 3 * len(pts) // 4)))
            seg = pts[min(k + 1, len(pts) - 1)] - pts[max(k - 1, 0)]
            h = math.atan2(seg[0], seg[1]) + rng.choice([-1, 1]) * rng.uniform(0.4, 1.1)
            sl = length * (1 - s[k]) * rng.uniform(0.4, 0.9) + 0.5
            sp = _walk(rng, pts[k], h, sl, step_mm=step, turn=0.9, smooth_mm=0.25, revert_per_mm=0.35)
            ss = np.linspace(0, 1, len(sp))
            sd = np.maximum(d[k] * rng.uniform(0.55, 0.85) * (1 - 0.7 * ss), _D_MIN_MM)
            branches.append(_Branch(sp, sd))
    return _Structure("spider", colour, depth, contrast, branches)


def _threads(
    rng: np.random.Generator, start: np.ndarray, colour: str, step: float, axis_heading: float, *, feeder: bool = False
) -> _Structure:
    depth = rng.uniform(0.03, 0.12) if colour == "red" else rng.uniform(0.4, 0.65)
    contrast = rng.uniform(0.35, 0.9) if colour == "red" else rng.uniform(2.0, 4.5)
    heading = axis_heading + rng.normal(0, 0.6) + (np.pi if rng.random() < 0.5 else 0)
    n_threads = 1 if feeder else int(rng.integers(1, 4))
    perp = np.array([math.cos(heading), -math.sin(heading)])
    branches: list[_Branch] = []
    for i in range(n_threads):
        p0 = start + perp * rng.normal(0, 2.5) * (i > 0)
        length = rng.uniform(6, 18) if feeder else rng.uniform(8, 40)
        pts = _walk(rng, p0, heading + rng.normal(0, 0.3), length, step_mm=step, turn=0.55, smooth_mm=0.4, revert_per_mm=0.08)
        dmax = rng.uniform(0.1, 0.45) if colour == "red" else rng.uniform(0.2, 0.6)
        prof = _smooth_factor(rng, len(pts), 0.2, 3.0 / step)
        taper = np.minimum(1.0, np.linspace(1.0, 0.0, len(pts)) * 4 + 0.25)
        d = np.maximum(dmax * prof * taper, _D_MIN_MM)
        branches.append(_Branch(pts, d))
        for _ in range(int(rng.poisson(0.8))):
            k = int(rng.integers(0, len(pts)))
            h = heading + rng.choice([-1, 1]) * rng.uniform(0.3, 1.0)
            sp = _walk(rng, pts[k], h, rng.uniform(2, 10), step_mm=step, turn=0.6, smooth_mm=0.3, revert_per_mm=0.1)
            sd = np.maximum(d[k] * rng.uniform(0.5, 0.9) * np.linspace(1, 0.4, len(sp)), _D_MIN_MM)
            branches.append(_Branch(sp, sd))
    return _Structure("feeder" if feeder else "thread", colour, depth, contrast, branches)


def _reticular(rng: np.random.Generator, mid: np.ndarray, step: float, axis_heading: float, *, varicose: bool) -> _Structure:
    heading = axis_heading + rng.normal(0, 0.35)
    coarse = max(step, 0.25)  # walk coarsely, then resample finely
    l1, l2 = rng.uniform(30, 130, 2)
    turn, smooth = (0.22, 4.0) if varicose else (0.12, 5.0)
    a = _walk(rng, mid, heading, l1, step_mm=coarse, turn=turn, smooth_mm=smooth, revert_per_mm=0.02)
    b = _walk(rng, mid, heading + np.pi, l2, step_mm=coarse, turn=turn, smooth_mm=smooth, revert_per_mm=0.02)
    pts = _resample(np.vstack([b[::-1], a[1:]]), step)
    if varicose:
        depth, contrast = rng.uniform(1.3, 2.0), rng.uniform(1.2, 2.2)
        d0 = rng.uniform(3.8, 6.5)
    else:
        depth, contrast = rng.uniform(0.8, 1.4), rng.uniform(0.6, 1.4)
        d0 = rng.uniform(1.15, 3.2)
    d = d0 * _smooth_factor(rng, len(pts), 0.08, 15.0 / step)
    branches = [_Branch(pts, d, _smooth_factor(rng, len(pts), 0.3, 20.0 / step) * _fade(len(pts), step, 12.0, 12.0))]
    for _ in range(int(rng.poisson(0.5 if varicose else 1.0))):  # tributaries
        k = int(rng.integers(0, len(pts)))
        seg = pts[min(k + 1, len(pts) - 1)] - pts[max(k - 1, 0)]
        h = math.atan2(seg[0], seg[1]) + rng.choice([-1, 1]) * rng.uniform(0.3, 0.9) + (np.pi if rng.random() < 0.5 else 0)
        tp = _resample(_walk(rng, pts[k], h, rng.uniform(12, 60), step_mm=coarse, turn=0.15, smooth_mm=3.0, revert_per_mm=0.02), step)
        td = d[k] * rng.uniform(0.45, 0.75) * _smooth_factor(rng, len(tp), 0.08, 10.0 / step)
        td *= np.minimum(1.0, np.linspace(1.6, 0.6, len(tp)))
        fade = _fade(len(tp), step, 0.0, rng.uniform(5.0, 15.0))
        branches.append(_Branch(tp, np.maximum(td, 0.5), _smooth_factor(rng, len(tp), 0.3, 20.0 / step) * fade))
    return _Structure("varicose" if varicose else "reticular", "deep", depth, contrast, branches)


def _fade(n: int, step: float, start_mm: float, end_mm: float) -> np.ndarray:
    """Contrast ramps (smoothstep) over the first ``start_mm`` and last ``end_mm`` of a path:
    deep veins dive out of sight rather than stop."""
    s = np.arange(n) * step
    out = np.ones(n)
    for dist, length in ((s, start_mm), (s[-1] - s, end_mm)):
        if length > 0:
            u = np.clip(dist / length, 0, 1)
            out *= u * u * (3 - 2 * u)
    return out


def _resample(pts: np.ndarray, step: float) -> np.ndarray:
    seg = np.hypot(*np.diff(pts, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if s[-1] <= 0:
        return pts[:2] if len(pts) >= 2 else np.vstack([pts, pts])
    t = np.linspace(0.0, s[-1], max(2, int(math.ceil(s[-1] / step)) + 1))
    return np.stack([np.interp(t, s, pts[:, 0]), np.interp(t, s, pts[:, 1])], axis=1)


# ============================================================================================
# vessels: rendering and truth
# ============================================================================================
def _render_vessels(
    structures: list[_Structure], shape: tuple[int, int], ppm: float, geo: dict, skin: dict, gain0: float
) -> dict:
    m, n = shape
    od_parts: list[tuple[np.ndarray, np.ndarray]] = []
    best = np.zeros(m * n, np.float32)
    labels = np.zeros(m * n, np.uint8)
    diam = np.zeros(m * n, np.float32)
    ignore = np.zeros(m * n, bool)
    centrelines: list[dict] = []
    out = {"centrelines": centrelines}
    if not structures:
        out.update(
            labels=labels.reshape(shape), diameter_mm=diam.reshape(shape), ignore=ignore.reshape(shape),
            od_idx=np.zeros(0, np.int64), od_val=np.zeros((0, 3), np.float32),
        )
        return out
    alpha = geo["skin_alpha"]

    # 1. per centreline point: visible diameter, class, peak OD, where it is
    items = []
    for sid, st in enumerate(structures):
        vec = st.od_vec
        tel_code = CLASS_CODES["red_telangiectasia"] if vec[0] / max(vec[2], 1e-12) < RED_BLUE_OD_RATIO else CLASS_CODES["blue_telangiectasia"]
        for br in st.branches:
            pts_px = br.pts_mm * ppm
            d_mm = br.d_mm
            vis_d = visible_diameter_mm(d_mm, st.blur_mm)
            amp = (1.0 - np.exp(-d_mm / 0.3)).astype(np.float32)  # saturating blood path
            if br.strength is not None:
                amp = (amp * br.strength).astype(np.float32)
            peak = amp * _profile(np.zeros_like(d_mm), st.blur_mm / (0.5 * d_mm))
            code = np.where(vis_d < 1.0, tel_code, np.where(vis_d <= 3.0, 3, 4)).astype(np.uint8)
            iy = np.clip(np.round(pts_px[:, 0]).astype(np.int64), 0, m - 1)
            ix = np.clip(np.round(pts_px[:, 1]).astype(np.int64), 0, n - 1)
            inside = (pts_px[:, 0] >= -0.5) & (pts_px[:, 0] < m - 0.5) & (pts_px[:, 1] >= -0.5) & (pts_px[:, 1] < n - 0.5)
            items.append(dict(sid=sid, st=st, pts_px=pts_px, d_mm=d_mm, vis_d=vis_d, amp=amp, peak=peak,
                              code=code, iy=iy, ix=ix, inside=inside & (alpha[iy, ix] >= 0.5)))

    # 2. visibility: colour difference between the vessel centre and the skin around it
    #    (smoothed vessel-free skin plus its glare, nominal exposure) against the threshold
    iy = np.concatenate([it["iy"] for it in items])
    ix = np.concatenate([it["ix"] for it in items])
    r = 0.4 * ppm
    diffuse, glare = skin["diffuse"], skin["glare"]
    base_d = np.stack([_local_mean(diffuse[c], iy, ix, r) for c in range(3)], axis=1)
    gl = _local_mean(glare, iy, ix, r)[:, None]
    od_pk = np.concatenate([it["peak"][:, None] * it["st"].od_vec[None, :] for it in items])
    base = base_d + gl
    with_v = base_d * np.power(10.0, -od_pk) + gl
    de = deltaE_ciede2000(rgb2lab(_srgb_encode(base * gain0)[None]), rgb2lab(_srgb_encode(with_v * gain0)[None]), channel_axis=-1)[0]
    stride = skin["texture_stride"]
    tex_rms = _texture_threshold(skin["texture"], ppm, stride, gain0)
    thr = np.maximum(_DELTA_E_MIN, _TEXTURE_FACTOR * tex_rms[np.minimum(iy // stride, tex_rms.shape[0] - 1), np.minimum(ix // stride, tex_rms.shape[1] - 1)])
    ok = de >= thr
    k0 = 0
    for it in items:
        k = len(it["iy"])
        it["visible"] = it["inside"] & ok[k0 : k0 + k]
        it["delta_e"] = de[k0 : k0 + k]
        k0 += k

    # 3. render each structure (maximum over its branches) and claim label pixels
    flat_alpha = alpha.ravel()
    for sid, st in enumerate(structures):
        acc: dict = {}
        vec = st.od_vec.astype(np.float32)
        vmax = float(vec.max())
        sig_r_px = math.hypot(st.blur_mm * ppm, _PIXEL_APERTURE_PX)
        for it in (x for x in items if x["sid"] == sid):
            r_px = 0.5 * it["d_mm"] * ppm
            reach = float(r_px.max() + 3.5 * sig_r_px + 1.5)
            idx, dist, j, t, seg = _near_polyline(it["pts_px"], reach, shape, window=0 if st.colour == "deep" else 3)
            if idx.size:
                r_here = r_px[seg] * (1 - t) + r_px[seg + 1] * t
                amp = it["amp"]
                a_here = amp[seg] * (1 - t) + amp[seg + 1] * t
                p = (a_here * _profile(dist / r_here, sig_r_px / r_here)).astype(np.float32) * flat_alpha[idx]
                _accumulate_max(acc, idx, p)
                # labels: within half the visible diameter of the nearest centreline point
                w_px = it["vis_d"][j] * ppm
                inlab = dist <= np.maximum(0.5 * w_px, 0.5)
                li, jj = idx[inlab], j[inlab]
                strength = p[inlab] * vmax
                win = strength > best[li]
                li, jj = li[win], jj[win]
                best[li] = strength[win]
                vis = it["visible"][jj]
                labels[li] = np.where(vis, it["code"][jj], 0)
                diam[li] = np.where(vis, it["vis_d"][jj], 0.0)
                ignore[li] = ~vis
            centrelines.extend(
                _split_runs(st, sid, it["pts_px"], it["d_mm"], it["vis_d"], it["code"], it["visible"], it["inside"], ppm)
            )
        if acc:
            od_parts.append((acc["idx"], acc["val"][:, None] * vec[None, :]))
    # sum the structures' OD: sparse, sorted by pixel
    idx = np.concatenate([p[0] for p in od_parts]) if od_parts else np.zeros(0, np.int64)
    val = np.concatenate([p[1] for p in od_parts]) if od_parts else np.zeros((0, 3), np.float32)
    order = np.argsort(idx, kind="stable")
    idx, val = idx[order], val[order]
    starts = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]]) if idx.size else np.zeros(0, np.int64)
    out["od_idx"] = idx[starts]
    out["od_val"] = np.add.reduceat(val, starts, axis=0) if idx.size else val
    out.update(labels=labels.reshape(shape), diameter_mm=diam.reshape(shape), ignore=ignore.reshape(shape))
    return out


def _local_mean(img: np.ndarray, iy: np.ndarray, ix: np.ndarray, r: float) -> np.ndarray:
    """Mean of ``img`` over a 5 x 5 grid of samples spanning +-r px around each (iy, ix)."""
    m, n = img.shape
    offs = np.round(np.linspace(-r, r, 5)).astype(np.int64)
    acc = np.zeros(iy.shape, np.float64)
    for dy in offs:
        yy = np.clip(iy + dy, 0, m - 1)
        for dx in offs:
            acc += img[yy, np.clip(ix + dx, 0, n - 1)]
    return acc / 25.0


def _accumulate_max(acc: dict, idx: np.ndarray, val: np.ndarray) -> None:
    """Per-structure maximum of branch contributions, kept sparse."""
    if "idx" not in acc:
        acc["idx"], acc["val"] = idx, val
        return
    allidx = np.concatenate([acc["idx"], idx])
    allval = np.concatenate([acc["val"], val])
    order = np.lexsort((-allval, allidx))
    allidx, allval = allidx[order], allval[order]
    first = np.ones(allidx.size, bool)
    first[1:] = allidx[1:] != allidx[:-1]
    acc["idx"], acc["val"] = allidx[first], allval[first]


def _near_polyline(pts: np.ndarray, reach: float, shape: tuple[int, int], *, window: int = 3):
    """Pixels within ``reach`` px of a polyline, their distance to it and where they project.

    The nearest vertex of each pixel comes from a distance transform with labels (Voronoi
    regions of the vertex pixels). With ``window`` > 0 the distance is then exact: the minimum
    over the segments within ``window`` of that vertex; with ``window`` = 0 it is the offset
    from the vertex's tangent line (exact to second order, for smooth, gently curved paths).

    Returns flat pixel indices, distances (px), index of the nearest vertex, the position t in
    [0, 1] along the nearest segment and that segment's first vertex.
    """
    m, n = shape
    k = len(pts)
    empty = np.zeros(0, np.int64)
    nothing = (empty, np.zeros(0, np.float32), empty, np.zeros(0), empty)
    lo = np.floor(pts.min(0) - reach - 1).astype(int)
    hi = np.ceil(pts.max(0) + reach + 1).astype(int)
    y0, x0 = max(lo[0], 0), max(lo[1], 0)
    y1, x1 = min(hi[0], m - 1), min(hi[1], n - 1)
    if y0 > y1 or x0 > x1 or k < 2:
        return nothing
    h, w = y1 - y0 + 1, x1 - x0 + 1
    band = np.zeros((h, w), np.uint8)
    poly = np.round((pts[:, ::-1] - np.array([x0, y0])) * 16).astype(np.int32)
    thick = int(2 * math.ceil(reach) + 1)
    cv2.polylines(band, [poly.reshape(-1, 1, 2)], False, 1, thickness=min(thick, 32000), lineType=cv2.LINE_8, shift=4)
    yy, xx = np.nonzero(band)
    if yy.size == 0:
        return nothing
    vy = np.round(pts[:, 0]).astype(np.int64) - y0
    vx = np.round(pts[:, 1]).astype(np.int64) - x0
    ok = (vy >= 0) & (vy < h) & (vx >= 0) & (vx < w)
    if ok.any():
        src = np.ones((h, w), np.uint8)
        src[vy[ok], vx[ok]] = 0
        _, lab = cv2.distanceTransformWithLabels(src, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
        lut = np.zeros(int(lab.max()) + 1, np.int64)
        lut[lab[vy[ok], vx[ok]]] = np.flatnonzero(ok)
        i = lut[lab[yy, xx]]
    else:  # the path only grazes the photo: no vertex inside
        _, i = cKDTree(pts).query(np.stack([yy + y0, xx + x0], axis=1).astype(np.float64), k=1)
        i = np.asarray(i, np.int64)
        window = max(window, 2)
    yy = yy + y0
    xx = xx + x0
    if window > 0:
        q = np.stack([yy, xx], axis=1).astype(np.float64)
        dist = np.full(q.shape[0], np.inf)
        t = np.zeros(q.shape[0])
        seg = np.zeros(q.shape[0], np.int64)
        for off in range(-window, window + 1):
            s = np.clip(i + off, 0, k - 2)
            a = pts[s]
            ab = pts[s + 1] - a
            l2 = np.maximum((ab**2).sum(1), 1e-12)
            ts = np.clip(((q - a) * ab).sum(1) / l2, 0, 1)
            ds = np.hypot(*(q - (a + ts[:, None] * ab)).T)
            better = ds < dist
            dist[better], t[better], seg[better] = ds[better], ts[better], s[better]
    else:
        tan = np.gradient(pts, axis=0)
        tan /= np.maximum(np.hypot(*tan.T), 1e-12)[:, None]
        seglen = np.maximum(np.hypot(*np.diff(pts, axis=0).T), 1e-9)
        py = yy - pts[i, 0]
        px = xx - pts[i, 1]
        tau = py * tan[i, 0] + px * tan[i, 1]
        fwd = tau >= 0
        seg = np.where(fwd, np.minimum(i, k - 2), np.maximum(i - 1, 0))
        t = np.clip(np.where(fwd, tau / seglen[seg], 1 + tau / seglen[seg]), 0, 1)
        cap = (fwd & (i == k - 1)) | (~fwd & (i == 0))
        dist = np.where(cap, np.hypot(py, px), np.abs(px * tan[i, 0] - py * tan[i, 1]))
    keep = dist <= reach
    j = np.where(t < 0.5, seg, seg + 1)
    flat = (yy * n + xx)[keep]
    return flat, dist[keep].astype(np.float32), j[keep], t[keep], seg[keep]


def _texture_threshold(texture: np.ndarray, ppm: float, stride: int, gain: float) -> np.ndarray:
    """Local RMS colour variation (CIEDE2000) of the skin texture, on the texture's coarse grid.

    ``texture`` is (3, m, n) linear RGB sampled every ``stride`` px; the variation is taken
    against the texture smoothed over 1 mm and averaged (RMS) over about 4 mm.
    """
    fine = np.moveaxis(texture, 0, -1) * np.float32(gain)
    smooth = np.stack([_gauss(np.ascontiguousarray(c), 1.0 * ppm / stride) for c in texture], axis=-1) * np.float32(gain)
    de = deltaE_ciede2000(rgb2lab(_srgb_encode(fine)), rgb2lab(_srgb_encode(smooth)), channel_axis=-1).astype(np.float32)
    return np.sqrt(_gauss(de**2, 4.0 * ppm / stride))


def _split_runs(
    st: _Structure,
    sid: int,
    pts_px: np.ndarray,
    d_mm: np.ndarray,
    vis_d: np.ndarray,
    code: np.ndarray,
    visible: np.ndarray,
    inside: np.ndarray,
    ppm: float,
) -> list[dict]:
    """Cut a branch into stretches of one class inside the photo."""
    seg = np.hypot(*np.diff(pts_px, axis=0).T) / ppm
    share = np.zeros(len(pts_px))
    share[:-1] += 0.5 * seg
    share[1:] += 0.5 * seg
    key = np.where(inside, code.astype(int), 0)
    cuts = np.flatnonzero(np.diff(key)) + 1
    out = []
    for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(key)]):
        if key[a] == 0:
            continue
        out.append(
            {
                "class": CLASSES[key[a] - 1],
                "points_yx": pts_px[a:b].astype(np.float64),
                "diameter_mm": vis_d[a:b].astype(np.float64),
                "physical_diameter_mm": d_mm[a:b].astype(np.float64),
                "length_mm": share[a:b],
                "visible": visible[a:b].copy(),
                "depth_mm": float(st.depth_mm),
                "kind": st.kind,
                "structure": sid,
            }
        )
    return out


# ============================================================================================
# hair, background, camera
# ============================================================================================
def _render_hair(rng: np.random.Generator, shape: tuple[int, int], ppm: float, leg: _Leg, geo: dict) -> dict:
    m, n = shape
    area_scale = (m * n) / ppm**2 / 19200.0
    count = int(rng.poisson(rng.uniform(3, 30) * area_scale))
    alpha = np.zeros(m * n, np.float32)
    down = math.atan2(leg.axis[0], leg.axis[1]) + (np.pi if rng.random() < 0.5 else 0.0)
    skin = geo["skin_alpha"] >= 0.5
    colour = np.array([0.020, 0.016, 0.013], np.float32) * rng.uniform(0.5, 1.8)
    step = 0.8 / ppm
    for _ in range(count):
        root = _random_skin_point(rng, skin, ppm)
        pts = _walk(rng, root, down + rng.normal(0, 0.35), rng.uniform(3, 20), step_mm=step, turn=0.12, smooth_mm=1.0)
        w = rng.uniform(0.04, 0.09) * np.linspace(1.0, 0.35, len(pts)) * ppm  # px
        opacity = rng.uniform(0.8, 0.95)
        pp = pts * ppm
        idx, dist, j, t, s = _near_polyline(pp, float(w.max()) / 2 + 1.5, shape)
        if idx.size == 0:
            continue
        wj = w[s] * (1 - t) + w[s + 1] * t
        wide = np.maximum(wj, 1.0)
        a = opacity * np.minimum(wj, 1.0) * np.clip(0.5 + (0.5 * wide - dist), 0, 1)
        np.maximum.at(alpha, idx, a.astype(np.float32))
    alpha = alpha.reshape(shape) * (geo["skin_alpha"] > 0)
    return {"alpha": alpha.astype(np.float32), "colour": colour, "count": count}


_BACKGROUNDS = {
    "exam_paper": ((0.60, 0.66, 0.64), 0.02),
    "white_sheet": ((0.70, 0.70, 0.68), 0.03),
    "grey_wall": ((0.22, 0.22, 0.24), 0.0),
    "dark_fabric": ((0.025, 0.026, 0.034), 0.25),
    "denim": ((0.035, 0.065, 0.13), 0.3),
    "green_drape": ((0.06, 0.16, 0.12), 0.15),
}
_CLOTHES = {
    "denim": ((0.035, 0.065, 0.13), 0.3),
    "dark_fabric": ((0.025, 0.026, 0.034), 0.25),
    "grey_jersey": ((0.15, 0.15, 0.16), 0.2),
    "red_shorts": ((0.30, 0.04, 0.05), 0.2),
}


def _render_background(
    rng: np.random.Generator, shape: tuple[int, int], ppm: float, geo: dict
) -> tuple[np.ndarray, np.ndarray]:
    """What is not skin: a background fabric or surface, and clothing beyond the hem.

    Returns (3,) colours and their (M, N) brightness patterns: the pixel colour is
    ``colours[0] * patterns[0]`` blended into ``colours[1] * patterns[1]`` by ``geo["cloth"]``.
    """
    m, n = shape

    def fabric(palette: dict) -> tuple[np.ndarray, np.ndarray]:
        name = str(rng.choice(sorted(palette)))
        col, weave = palette[name]
        ang = rng.uniform(0, np.pi)
        period = rng.uniform(0.5, 1.0) * ppm
        k = 2 * np.pi / period
        yy = np.arange(m, dtype=np.float32)[:, None]
        xx = np.arange(n, dtype=np.float32)[None, :]
        u = xx * np.float32(k * math.cos(ang)) + yy * np.float32(k * math.sin(ang))
        v = yy * np.float32(k * math.cos(ang)) - xx * np.float32(k * math.sin(ang))
        pattern = np.sin(u)
        pattern *= np.sin(v)
        u *= np.float32(2)
        np.sin(u, out=u)
        u *= np.float32(0.3)
        pattern += u
        pattern *= np.float32(0.5 * weave)
        pattern += np.float32(1)
        del u, v
        pattern *= _lognormal_field(rng, shape, 1.0, ((12 * ppm, 0.25), (1.0 * ppm, 0.05)))
        return np.array(col, np.float32), pattern

    bg_col, bg = fabric(_BACKGROUNDS)
    shadow = geo["dist_out_mm"] * np.float32(-1 / rng.uniform(4, 15))
    np.exp(shadow, out=shadow)
    shadow *= np.float32(-rng.uniform(0.2, 0.6))
    shadow += np.float32(1)
    bg *= shadow
    del shadow
    if geo["cloth"].any():
        cl_col, cl = fabric(_CLOTHES)
        cl *= geo["shade"] * np.float32(0.4) + np.float32(0.6)
    else:
        cl_col, cl = np.zeros(3, np.float32), np.zeros((1, 1), np.float32)
    return np.stack([bg_col, cl_col]), (bg, cl)


def _camera(
    rng: np.random.Generator, scene: np.ndarray, gain0: float, jpeg_quality: int | None
) -> tuple[np.ndarray, dict]:
    """Exposure, white balance, vignetting, defocus, sensor noise, sRGB, JPEG.

    (3, M, N) linear scene (overwritten) -> (M, N, 3) uint8 photo.
    """
    exposure = float(np.exp(rng.normal(0.0, 0.12)))
    temp = rng.normal(0.0, 0.07)
    tint = rng.normal(0.0, 0.03)
    wb = np.array([math.exp(temp), math.exp(tint), math.exp(-temp)], np.float32)
    defocus = float(rng.uniform(0.3, 0.8))
    shot = float(rng.uniform(0.00005, 0.0004))
    read = float(rng.uniform(1e-6, 1e-5))
    vig = float(rng.uniform(0.05, 0.2))
    g = gain0 * exposure
    m, n = scene.shape[1:]
    yy = np.arange(m, dtype=np.float32)[:, None] - np.float32(m / 2)
    xx = np.arange(n, dtype=np.float32)[None, :] - np.float32(n / 2)
    vignette = np.square(yy) + np.square(xx)
    vignette *= np.float32(-vig / (0.25 * (m * m + n * n)))
    vignette += np.float32(1)
    rgb = np.empty((m, n, 3), np.uint8)
    for c in range(3):
        ch = scene[c]
        ch *= vignette
        ch *= np.float32(g * wb[c])
        ch = _gauss(ch, defocus)
        sd = np.clip(ch, 0, None)
        sd *= np.float32(shot * g)
        sd += np.float32(read)
        np.sqrt(sd, out=sd)
        sd *= rng.standard_normal((m, n), dtype=np.float32)
        ch += sd
        del sd
        rgb[..., c] = _to_srgb8(ch)
    if jpeg_quality is not None:
        buf = _io.BytesIO()
        Image.fromarray(rgb).save(buf, format="JPEG", quality=int(jpeg_quality))
        buf.seek(0)
        with Image.open(buf) as im:
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    return np.ascontiguousarray(rgb), {
        "exposure": exposure,
        "white_balance_rgb": [float(x) for x in wb],
        "defocus_sigma_px": defocus,
        "shot_noise": shot,
        "read_noise_var": read,
        "vignetting": vig,
    }
