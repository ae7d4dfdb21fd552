"""Synthetic phone photos of leg skin with exact vessel ground truth, single or as a series.

:func:`generate_photo` makes one photo; :func:`generate_series` makes the same site photographed
at several sessions of a microsclerotherapy course. Both build a scene on the skin plane in
millimetres, render it optically and photograph it with a simulated phone camera:

1. **Camera and canvas.** A phone (26 mm-equivalent lens on a 4032 x 3024 px, 12 MP frame;
   smaller sizes are centre crops of that frame) looks at the skin plane from a distance
   (20-50 cm, or what the requested ``px_per_mm`` at the photo centre implies), mildly
   tilted. The homography from the skin plane (mm) to the photo (px) follows. The scene is
   rendered on a skin-plane canvas covering every session's view, at the photo centre's
   scale, and warped into each photo by its homography: perspective, the local scale and, in
   a series, a new pose per session (shift, rotation, small perspective change).
2. **Leg and background.** A rounded, slightly tapering leg (a cylinder seen from the side)
   fills most of the frame; outside its silhouette, and beyond an optional clothing hem, lies
   background or fabric (``skin_mask`` False). The cylinder gives a Lambertian brightness
   falloff towards the silhouette and a band of patchy specular glare; the light changes
   between sessions.
3. **Skin.** Per RGB channel, optical density (OD, base-10 absorbance) adds up from a baseline
   (scattering, bloodless tissue), epidermal melanin (brown; amount set by the Fitzpatrick skin
   type 1-6), diffuse dermal haemoglobin (pink; blotchy and mottled), pores and follicles,
   freckles and naevi. Reflectance is ``10 ** -OD`` (Beer-Lambert), modulated by the skin's
   micro-relief (a network of fine furrows). Dark hairs are composited on top.
4. **Vessels.** Spider telangiectasia (a centre with radiating, tapering, tortuous branches),
   thread telangiectasia, long smooth reticular veins with tributaries and feeders, and now
   and then a vein over 3 mm. Each vessel adds OD along its centreline: a cylinder cross-section
   of its physical diameter (chord length through the blood), blurred by a Gaussian whose width
   grows with depth (scattering above the vessel). Its colour is haemoglobin absorption (oxy /
   deoxy mix) weighted by how deep each colour of light penetrates: shallow oxygenated vessels
   look red-purple, deeper venous ones blue-purple, subdermal ones blue-green to blue-grey
   (they also take a grey share: less light comes back from above them). Deep veins fade in
   and out along their course as they dive; darker skin shields all vessels (lower contrast).
5. **Calibration card.** The printed card of :mod:`veinscope.card` lies on the skin beside the
   vessels (when it covers at most 15 % of the view), lit and shaded like the skin and
   casting a faint shadow; its true corners in the photo are recorded.
6. **Camera.** Exposure and white-balance error, vignetting, pixel footprint and slight
   defocus, signal-dependent sensor noise, sRGB encoding and a JPEG round trip in memory
   (the JPEG bytes are kept). The camera never moves pixels: the truth stays on the photo's
   pixel grid.
7. **Follow-up sessions** (4-6 weeks apart; the course's treatment is done after each photo):
   treated vessels (all but those over 3 mm) fade partly or clear, unevenly along their
   course; brown staining bands (haemosiderin) appear along some treated vessels and fade
   over later sessions; matting (a patch of very fine new red vessels and a pink blush)
   appears near some treated sites; now and then a new vessel appears elsewhere.

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
* A pixel is labelled when its distance to the vessel's projected centreline is at most half
  the visible diameter at the local scale (at least half a pixel, so sub-pixel vessels stay one
  connected pixel line). Where vessels overlap, the one with the stronger local contrast owns
  the pixel.
* A centreline point is *visible* when the colour difference between the vessel's centre, as
  the photo shows it, and the skin around it (CIEDE2000, sRGB at the nominal exposure, before
  camera noise) is at least
  2 and at least 1.5 times the local RMS colour variation of the skin texture (for veins of
  1 mm and more, also of the skin's mottling and shading at the scale of millimetres). Pixels of
  invisible parts, and vessel pixels hidden under hair, are ``ignore`` (unlabelled) pixels;
  vessels under the card are simply not there (the card is not skin). Cleared parts of a
  treated vessel are not vessel at all. "As the photo shows it": the vessel's own profile
  blurred further by the pixel footprint and the camera's defocus, so a vessel thinner than a
  pixel counts with the fraction of its contrast that reaches the photo (its diameter stays
  the visible diameter above, free of the camera).
* Staining is marked where its colour difference from the skin around it passes the same
  test; matting is the area within 0.75 mm of its visible fine vessels and where the patch's
  redness read over 1 mm (its blush and its fine vessels together, as light averaged over a
  1 mm Gaussian) passes the same test against the skin around it (a spot of it apart from
  the vessels' reach counts from the area of that reach's disc up), closed and filled: a
  visible red blush of new fine vessels is matting whether or not one of them is visible on
  its own (issue 6: the truth is what a careful observer marks in the photo).
* Lengths come from the centrelines in millimetres on the skin plane (each point carries its
  share of the arc length, ``length_mm``); areas are the skin-plane area each labelled pixel
  sees (:meth:`SynthPhoto.px_area_mm2`; about ``1 / px_per_mm**2`` near the photo centre).
* Between sessions: ``improvement_pct = 100 x (1 - visible length after of the baseline's
  visible vessels / their baseline length)``, counted on the skin both photos see, overall
  and per class (the class at baseline), as the trials measure it.

Everything is drawn from one :class:`numpy.random.Generator`: the same seed and arguments give
the same bytes. The pose, leg, skin, vessels, hair, background, treatment, card and each
session's light and camera use separate streams derived from it, so a different
``jpeg_quality`` does not move a vessel.

Optical constants are illustrative, chosen so the rendered colours resemble photographs
(melanin absorbance falling with wavelength, haemoglobin absorbing green and blue much more than
red, deoxyhaemoglobin absorbing red more than oxyhaemoglobin, light of longer wavelength reaching
deeper). See Jacques, S. L. (2013) Optical properties of biological tissues: a review,
Phys. Med. Biol. 58 R37, doi:10.1088/0031-9155/58/11/R37, and Kienle et al. (1996) Why do veins
appear blue? A new look at an old question, Appl. Opt. 35 1151, doi:10.1364/AO.35.001151.
The camera is the pinhole model with a plane-induced homography (Hartley and Zisserman,
Multiple View Geometry, 2nd ed. 2004, section 13.1).
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

__all__ = [
    "CLASSES",
    "CLASS_CODES",
    "FOCAL_PX_12MP",
    "RED_BLUE_OD_RATIO",
    "SynthPhoto",
    "SynthSeries",
    "generate_photo",
    "generate_series",
    "visible_diameter_mm",
]

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
_EPS_STAIN = np.array([1.00, 1.50, 2.20], np.float32)  # haemosiderin: yellow-brown
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
_MATTING_REACH_MM = 0.75

# --- camera -----------------------------------------------------------------------------------
_FULL_FRAME = (4032, 3024)
#: Focal length in px of the simulated phone on its 12 MP frame (26 mm-equivalent lens).
FOCAL_PX_12MP = 3030.0
_CARD_MAX_FRAC = 0.15  # the card goes in when it covers at most this share of the view


# ============================================================================================
# results
# ============================================================================================
@dataclass(frozen=True, eq=False)
class SynthPhoto:
    """A generated leg photo and its exact truth.

    Attributes
    ----------
    rgb : ndarray, shape (M, N, 3), uint8
        The photo after the camera simulation (and JPEG round trip if requested).
    px_per_mm : float
        Scale at the photo centre (the skin plane's scale there; it varies a little across a
        tilted photo, see :meth:`px_area_mm2` and ``homography``).
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
        Skin (False on background, clothing and the calibration card).
    centrelines : list of dict
        One entry per vessel stretch of a single class, with ``"class"`` (str),
        ``"points_yx"`` (K, 2) float px in the photo, ``"points_mm"`` (K, 2) (y, x) mm on the
        skin plane, ``"diameter_mm"`` (K,) visible diameter, ``"physical_diameter_mm"`` (K,),
        ``"length_mm"`` (K,) each point's share of the arc length, ``"visible"`` (K,) bool,
        ``"delta_e"`` (K,) CIEDE2000 contrast, ``"depth_mm"`` (float), ``"kind"``
        (``"spider"``, ``"thread"``, ``"feeder"``, ``"reticular"``, ``"varicose"``,
        ``"matting"``), ``"structure"`` (int: stretches of one spider or one vein share it,
        and keep it across the sessions of a series), ``"branch"`` and ``"start"`` (index of
        the first point in the branch).
    params : dict
        Everything needed to regenerate the photo (``seed`` or ``rng_state``, the call's
        arguments) plus what was drawn (skin type, leg, camera pose, card) and the veinscope
        version.
    confounders : dict of str to ndarray
        Boolean (M, N) masks of things that are not vessels: ``"hair"``, ``"naevus"``,
        ``"freckle"``, ``"glare"``, ``"card"``.
    staining, matting : ndarray, shape (M, N), bool
        Visible post-sclerotherapy staining and telangiectatic matting (all False at
        baseline).
    homography : ndarray, shape (3, 3)
        Skin plane (x, y) mm -> photo (x, y) px (pixel centres at integers).
    card : dict or None
        The calibration card when it is in the photo: ``corners_px`` (4, 2) (x, y) of the card
        outline TL, TR, BR, BL, ``marker_corners_px`` {id: (4, 2)}, ``px_per_mm`` (scale at
        the card's centre), ``corners_mm`` on the skin plane.
    jpeg : bytes or None
        The JPEG file whose decoding is ``rgb`` (None without the JPEG round trip).
    session : int
        0 for the baseline, k for the k-th follow-up.

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
    staining: np.ndarray | None = None
    matting: np.ndarray | None = None
    homography: np.ndarray | None = None
    card: dict | None = None
    jpeg: bytes | None = None
    session: int = 0

    def px_area_mm2(self) -> np.ndarray:
        """(M, N) float64: skin-plane area (mm^2) each pixel sees.

        Exactly ``1 / px_per_mm**2`` for a photo taken straight on; a tilted photo sees more
        skin per pixel on its far side.
        """
        m, n = self.labels.shape
        if self.homography is None:
            return np.full((m, n), 1.0 / self.px_per_mm**2)
        hi = np.linalg.inv(self.homography)
        w = hi[2, 0] * np.arange(n)[None, :] + hi[2, 1] * np.arange(m)[:, None] + hi[2, 2]
        return np.abs(np.linalg.det(hi) / w**3)

    def truth_figures(self) -> dict[str, dict[str, float]]:
        """Length, area and coverage of the visible vessels per class and in total.

        Returns
        -------
        dict
            For each of ``"red_telangiectasia"``, ``"blue_telangiectasia"``, ``"reticular"``,
            ``"over_3mm"`` and ``"total"``: ``length_mm`` (visible centreline length),
            ``area_mm2`` (skin-plane area of the labelled pixels) and ``coverage_pct`` (vessel
            area / skin area x 100).
        """
        pa = self.px_area_mm2()
        skin_mm2 = float(pa[self.skin_mask].sum())
        areas = np.bincount(self.labels.ravel(), weights=pa.ravel(), minlength=len(CLASSES) + 1)
        lengths = dict.fromkeys(CLASSES, 0.0)
        for c in self.centrelines:
            lengths[c["class"]] += float(np.sum(c["length_mm"][c["visible"]]))
        out: dict[str, dict[str, float]] = {}
        for name in CLASSES:
            area = float(areas[CLASS_CODES[name]])
            out[name] = {
                "length_mm": lengths[name],
                "area_mm2": area,
                "coverage_pct": 100.0 * area / skin_mm2 if skin_mm2 > 0 else 0.0,
            }
        area = float(areas[1:].sum())
        out["total"] = {
            "length_mm": float(sum(lengths.values())),
            "area_mm2": area,
            "coverage_pct": 100.0 * area / skin_mm2 if skin_mm2 > 0 else 0.0,
        }
        return out

    def side_effect_figures(self) -> dict[str, dict[str, float]]:
        """``{"staining": {"area_mm2"}, "matting": {"area_mm2", "patches"}}`` of this photo."""
        pa = self.px_area_mm2()
        st = self.staining if self.staining is not None else np.zeros(self.labels.shape, bool)
        mt = self.matting if self.matting is not None else np.zeros(self.labels.shape, bool)
        n_patches = int(ndi.label(mt, structure=np.ones((3, 3)))[1]) if mt.any() else 0
        return {
            "staining": {"area_mm2": float(pa[st].sum())},
            "matting": {"area_mm2": float(pa[mt].sum()), "patches": n_patches},
        }

    def truth_overlay(self, *, alpha: float = 0.7) -> np.ndarray:
        """The photo with the truth painted on it, for looking at.

        Red telangiectasia red, blue telangiectasia blue, reticular cyan, over 3 mm magenta,
        ignored pixels yellow, hair green; staining outlined brown-orange, matting outlined
        pink, the card outlined white; outside the skin darkened.

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
        width = max(1, int(round(self.px_per_mm * 0.3)))
        for mask, col in ((self.staining, (255, 140, 0)), (self.matting, (255, 105, 180))):
            if mask is not None and mask.any():
                edge = mask & ~ndi.binary_erosion(mask, iterations=width)
                out[edge] = col
        if self.card is not None:
            poly = np.round(np.asarray(self.card["corners_px"]) * 16).astype(np.int32)
            tmp = np.ascontiguousarray(out)
            cv2.polylines(tmp, [poly.reshape(-1, 1, 2)], True, (255, 255, 255), width, cv2.LINE_AA, shift=4)
            out = tmp
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)


@dataclass(frozen=True, eq=False)
class SynthSeries:
    """One site photographed at several sessions, with the truth of what changed.

    Attributes
    ----------
    photos : list of SynthPhoto
        ``photos[0]`` is the baseline (before treatment), ``photos[k]`` the k-th follow-up.
    changes : list of dict
        ``changes[k - 1]`` compares session k with the baseline: ``improvement_pct`` (overall
        and per class: ``{"total": .., "red_telangiectasia": .., ...}``, None where the
        baseline had none), ``baseline_length_mm`` and ``remaining_length_mm`` (same keys),
        ``cleared_length_mm``, ``new_vessel_length_mm`` (vessels that appeared since,
        matting excluded), ``staining`` (``area_mm2``, ``pigmented_treated_length_pct``: share
        of the treated baseline length lying in visible staining), ``matting``
        (``area_mm2``, ``patches``), ``homography_baseline_to_session`` (3 x 3, baseline
        photo px -> session photo px) and ``days`` since the baseline.
    params : dict
        The call's arguments, the seed and what was drawn for the course.
    """

    photos: list[SynthPhoto]
    changes: list[dict]
    params: dict

    def truth_dict(self) -> dict:
        """Everything of the series that is not an image, as plain JSON-able data."""
        return {"params": self.params, "changes": self.changes, "sessions": [_photo_truth_dict(p) for p in self.photos]}


def _photo_truth_dict(p: SynthPhoto) -> dict:
    d: dict[str, Any] = {
        "session": p.session,
        "size": [int(p.rgb.shape[1]), int(p.rgb.shape[0])],
        "px_per_mm": p.px_per_mm,
        "homography_mm_to_px": np.asarray(p.homography).tolist() if p.homography is not None else None,
        "truth": p.truth_figures(),
        "side_effects": p.side_effect_figures(),
        "skin_area_mm2": float(p.px_area_mm2()[p.skin_mask].sum()),
        "card": None,
    }
    if p.card is not None:
        d["card"] = {
            "corners_px": np.asarray(p.card["corners_px"]).tolist(),
            "marker_corners_px": {str(k): np.asarray(v).tolist() for k, v in p.card["marker_corners_px"].items()},
            "px_per_mm": p.card["px_per_mm"],
            "corners_mm": np.asarray(p.card["corners_mm"]).tolist(),
        }
    return d


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


def _field_spread(low: np.ndarray, s_across: float, s_along: float) -> float:
    """The spread that :func:`_smooth_noise` divides its blurred low-resolution field by.

    The field's own standard deviation inside its 3-sample margin, except where the canvas is
    only a few correlation lengths across: an interior of under 6 samples (1 x 2 on a 200 x 150
    photo at 8 px/mm) can have any fraction of the field's spread, and dividing by it blew the
    texture up by factors of 300 (1 % of such fields) to 1e5 (an overflow); so can a spread
    under 1/50 of the expected one. There the spread that white noise blurred at these scales
    has (``1 / (2 sqrt(pi) sqrt(s_across s_along))``) is used instead. Larger canvases keep
    their own spread, so the generated sets and series keep their bytes.
    """
    inner = low[3:-3, 3:-3]
    sd = float(inner.std())
    expected = 1.0 / (2.0 * math.sqrt(math.pi * s_across * s_along))
    return sd if inner.size >= 6 and sd >= 0.02 * expected else expected


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
    low *= np.float32(1.0 / _field_spread(low, s, s * elongation))
    if f > 1.0:
        # cubic keeps fine fields smooth; for broad ones linear is as good and cheaper
        interp = cv2.INTER_CUBIC if f < 4 else cv2.INTER_LINEAR
        # resize to (lm * f, ln * f) and crop at o, in one pass: dst (i, j) samples the
        # low-resolution grid where cv2.resize would, without the full enlarged copy
        big_n, big_m = int(round(ln * f)), int(round(lm * f))
        o = int(round(3 * f))
        fx, fy = big_n / ln, big_m / lm
        warp = np.array([[fx, 0.0, 0.5 * fx - 0.5 - o], [0.0, fy, 0.5 * fy - 0.5 - o]])
        return cv2.warpAffine(low, warp, (n, m), flags=interp, borderMode=cv2.BORDER_REFLECT)
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


def _splat_into(out: np.ndarray, yx: np.ndarray, weights: np.ndarray, sigma_px: float, *, combine: str = "add") -> None:
    """Like :func:`_splat`, computed in the points' bounding box only and added to (or
    maximum-combined with) ``out`` in place."""
    if len(yx) == 0:
        return
    m, n = out.shape
    s = max(float(sigma_px), 0.5)
    pad = int(math.ceil(4 * s)) + 2
    y0, x0 = (np.floor(yx.min(0)).astype(int) - pad).clip(0)
    y1, x1 = np.ceil(yx.max(0)).astype(int) + pad + 1
    y1, x1 = min(y1, m), min(x1, n)
    if y0 >= y1 or x0 >= x1:
        return
    local = _splat((y1 - y0, x1 - x0), yx - np.array([y0, x0]), weights, sigma_px)
    region = out[y0:y1, x0:x1]
    if combine == "add":
        region += local
    else:
        np.maximum(region, local, out=region)


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
    """``exp(amp * z)`` with z smooth unit-variance noise along a path of n points. z is
    scaled by its theoretical standard deviation (not the sample's, which on a path shorter
    than the correlation length is tiny and would blow z up), and kept within +-3."""
    s = max(corr_pts, 1.0)
    pad = int(4 * s) + 4
    z = rng.standard_normal(n + 2 * pad)
    z = ndi.gaussian_filter1d(z, s, mode="nearest")[pad : pad + n]
    sd = 1.0 / math.sqrt(2.0 * math.sqrt(math.pi) * s)
    return np.exp(amp * np.clip(z / sd, -3.0, 3.0))


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
    """Where the leg lies on the skin-plane canvas (a tapering cylinder, axis along the long
    side), how it is lit by default, and whether a clothing hem crosses it."""

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
        """Full-size maps that do not depend on the light: skin_alpha, cloth, dist_out_mm and
        q (position across the leg, -1 to 1, for the shading)."""
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
        out_mm = np.abs(across)
        out_mm -= radius  # mm outside the silhouette (negative inside)
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
        del radius
        np.clip(q, -1, 1, out=q)
        skin_alpha = 1 - cloth
        skin_alpha *= leg_alpha
        np.clip(out_mm, 0, None, out=out_mm)
        return {"skin_alpha": skin_alpha, "cloth": cloth, "dist_out_mm": out_mm, "q": q}

    @staticmethod
    def shading(q: np.ndarray, light: float, ambient: float) -> tuple[np.ndarray, np.ndarray]:
        """Lambertian shade and the cosine for the specular band, for light coming from
        ``light`` radians in the leg's cross-section."""
        f32 = np.float32
        nz = np.square(q)
        np.subtract(f32(1), nz, out=nz)
        np.sqrt(nz, out=nz)
        shade = q * f32(math.sin(light))
        shade += nz * f32(math.cos(light))
        np.clip(shade, 0, None, out=shade)
        shade = cv2.pow(shade, 1.2)
        shade *= f32(1 - ambient)
        shade += f32(ambient)
        half = 0.5 * light
        spec_cos = q * f32(math.sin(half))
        spec_cos += nz * f32(math.cos(half))
        np.clip(spec_cos, 0, None, out=spec_cos)
        return shade, spec_cos


# ============================================================================================
# camera model: pinhole camera over the skin plane
# ============================================================================================
@dataclass(frozen=True)
class _Pose:
    """Where the phone is: the optical axis meets the skin plane at ``target_mm`` (x, y) at
    ``distance_mm``, tilted ``tilt_deg`` from the plane's normal towards ``tilt_dir_deg``, and
    turned ``roll_deg`` about its axis."""

    distance_mm: float
    tilt_deg: float
    tilt_dir_deg: float
    roll_deg: float
    target_mm: tuple[float, float]
    size: tuple[int, int]
    focal_px: float

    def homography(self) -> np.ndarray:
        """3x3: skin plane (x, y) mm -> photo (x, y) px, pixel centres at integers."""
        w, h = self.size
        f = self.focal_px
        k = np.array([[f, 0.0, (w - 1) / 2], [0.0, f, (h - 1) / 2], [0.0, 0.0, 1.0]])
        th, ph = math.radians(self.tilt_deg), math.radians(self.tilt_dir_deg)
        r_tilt = cv2.Rodrigues(np.array([math.cos(ph), math.sin(ph), 0.0]) * th)[0]
        c, s = math.cos(math.radians(self.roll_deg)), math.sin(math.radians(self.roll_deg))
        r = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ r_tilt
        axis = r.T @ np.array([0.0, 0.0, 1.0])  # optical axis in the world
        centre = np.array([self.target_mm[0], self.target_mm[1], 0.0]) - self.distance_mm * axis
        hm = k @ np.column_stack([r[:, 0], r[:, 1], -r @ centre])
        return hm / hm[2, 2]

    def to_dict(self) -> dict:
        return {
            "distance_mm": self.distance_mm,
            "tilt_deg": self.tilt_deg,
            "tilt_dir_deg": self.tilt_dir_deg,
            "roll_deg": self.roll_deg,
            "target_mm": [float(v) for v in self.target_mm],
            "focal_px": self.focal_px,
        }


def _scale_at(h: np.ndarray, xy: tuple[float, float]) -> float:
    """sqrt|det J| of the homography at the point (x, y): px per mm there."""
    w = h[2, 0] * xy[0] + h[2, 1] * xy[1] + h[2, 2]
    return float(math.sqrt(abs(np.linalg.det(h) / w**3)))


def _footprint(h: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(4, 2) (x, y) mm of the photo's corners on the skin plane."""
    w, hh = size
    corners = np.array([[-0.5, -0.5, 1], [w - 0.5, -0.5, 1], [w - 0.5, hh - 0.5, 1], [-0.5, hh - 0.5, 1]], float)
    p = corners @ np.linalg.inv(h).T
    return p[:, :2] / p[:, 2:3]


def _make_poses(
    rng: np.random.Generator, sessions: int, size: tuple[int, int], px_per_mm: float | None, tilt_deg: float | None
) -> list[_Pose]:
    """The baseline pose (its roll defines the canvas axes) and one new pose per follow-up."""
    focal = FOCAL_PX_12MP * max(1.0, size[0] / _FULL_FRAME[0], size[1] / _FULL_FRAME[1])
    tilt0 = float(min(abs(rng.normal(0.0, 5.0)), 12.0)) if tilt_deg is None else float(tilt_deg)
    dir0 = float(rng.uniform(0, 360))
    dist0 = float(rng.uniform(200.0, 500.0))
    if px_per_mm is not None:  # the distance that gives this scale at the photo centre
        probe = _Pose(1000.0, tilt0, dir0, 0.0, (0.0, 0.0), size, focal)
        dist0 = 1000.0 * _scale_at(probe.homography(), (0.0, 0.0)) / px_per_mm
    poses = [_Pose(dist0, tilt0, dir0, 0.0, (0.0, 0.0), size, focal)]
    span = np.array(size, float) / (focal / dist0)  # mm seen across and down
    for _ in range(1, sessions):
        poses.append(
            _Pose(
                float(dist0 * np.clip(math.exp(rng.normal(0.0, 0.07)), 0.85, 1.15)),
                float(min(abs(rng.normal(0.0, 6.0)), 15.0)),
                float(rng.uniform(0, 360)),
                float(np.clip(rng.normal(0.0, 7.0), -20.0, 20.0)),
                tuple(float(v) for v in rng.normal(0.0, 0.06, 2) * span),
                size,
                focal,
            )
        )
    return poses


# ============================================================================================
# the generators
# ============================================================================================
def generate_photo(
    *,
    rng: np.random.Generator | None = None,
    seed: int | None = None,
    size: tuple[int, int] = _FULL_FRAME,
    px_per_mm: float | None = None,
    skin_type: int | None = None,
    n_vessels: int | None = None,
    jpeg_quality: int | None = 92,
    tilt_deg: float | None = None,
    card: bool = True,
) -> SynthPhoto:
    """Generate a synthetic phone photo of leg skin with exact vessel truth.

    Parameters
    ----------
    rng : numpy.random.Generator, optional
        Source of randomness. Give ``rng`` or ``seed``, not both; with neither, a fresh seed is
        drawn and recorded in ``params["seed"]``.
    seed : int, optional
        Seed for :func:`numpy.random.default_rng`.
    size : (int, int)
        (width, height) of the photo in px, each 64-12000; default the 12 MP frame
        4032 x 3024. Smaller sizes are centre crops of that frame (same lens).
    px_per_mm : float, optional
        Scale at the photo centre, 2-60 px/mm (phone photos: about 6-15); sets the camera's
        distance. When None the distance is drawn from 20-50 cm.
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
    tilt_deg : float, optional
        Angle between the camera's axis and the skin's normal, 0-30 degrees; drawn (mostly
        under 8) when None. 0 gives a straight-on photo with one scale everywhere.
    card : bool
        Lay the calibration card on the skin (when it covers at most 15 % of the view).

    Returns
    -------
    SynthPhoto

    Raises
    ------
    ValueError, TypeError
        For an invalid argument (the message names it).

    Examples
    --------
    >>> photo = generate_photo(seed=1, size=(320, 240), px_per_mm=10.0, n_vessels=3)
    >>> photo.rgb.shape, photo.labels.shape
    ((240, 320, 3), (240, 320))
    >>> sorted(photo.truth_figures())
    ['blue_telangiectasia', 'over_3mm', 'red_telangiectasia', 'reticular', 'total']
    """
    series = _generate(
        rng, seed, sessions=1, size=size, px_per_mm=px_per_mm, skin_type=skin_type, n_vessels=n_vessels,
        jpeg_quality=jpeg_quality, tilt_deg=tilt_deg, card=card, generator="veinscope.synth.generate_photo",
    )
    return series.photos[0]


def generate_series(
    *,
    rng: np.random.Generator | None = None,
    seed: int | None = None,
    sessions: int = 4,
    size: tuple[int, int] = _FULL_FRAME,
    px_per_mm: float | None = None,
    skin_type: int | None = None,
    n_vessels: int | None = None,
    jpeg_quality: int | None = 92,
    tilt_deg: float | None = None,
    card: bool = True,
) -> SynthSeries:
    """Generate one site photographed at ``sessions`` visits of a microsclerotherapy course.

    The baseline is photographed before the first treatment; each follow-up 4-6 weeks after the
    previous visit, with a new pose and light. Treated vessels fade or clear, staining and
    matting appear along and near some of them (each at least once in a series of two or more
    sessions with treated vessels, so that every truth is exercised), and now and then a new
    vessel appears. See the module docstring.

    Parameters
    ----------
    sessions : int
        Number of photos, 1-8.
    others
        As for :func:`generate_photo`; ``px_per_mm`` and ``tilt_deg`` apply to the baseline
        (the follow-ups are taken from a little nearer or further and at another angle).

    Returns
    -------
    SynthSeries

    Examples
    --------
    >>> s = generate_series(seed=2, sessions=2, size=(320, 240), px_per_mm=8.0, n_vessels=4)
    >>> len(s.photos), sorted(s.changes[0]["improvement_pct"])[:2]
    (2, ['blue_telangiectasia', 'over_3mm'])
    """
    if isinstance(sessions, bool) or not isinstance(sessions, (int, np.integer)) or not 1 <= sessions <= 8:
        raise ValueError(f"sessions must be an integer 1-8, got {sessions!r}")
    return _generate(
        rng, seed, sessions=int(sessions), size=size, px_per_mm=px_per_mm, skin_type=skin_type, n_vessels=n_vessels,
        jpeg_quality=jpeg_quality, tilt_deg=tilt_deg, card=card, generator="veinscope.synth.generate_series",
    )


def _generate(rng, seed, *, sessions, size, px_per_mm, skin_type, n_vessels, jpeg_quality, tilt_deg, card, generator) -> SynthSeries:
    rng, regen = _resolve_rng(rng, seed)
    width, height = _check_size(size)
    ppm = None if px_per_mm is None else _check_float("px_per_mm", px_per_mm, 2.0, 60.0)
    if skin_type is not None and (isinstance(skin_type, bool) or not isinstance(skin_type, (int, np.integer)) or not 1 <= skin_type <= 6):
        raise ValueError(f"skin_type must be an integer 1-6 or None, got {skin_type!r}")
    if n_vessels is not None and (isinstance(n_vessels, bool) or not isinstance(n_vessels, (int, np.integer)) or n_vessels < 0):
        raise ValueError(f"n_vessels must be a non-negative integer or None, got {n_vessels!r}")
    if jpeg_quality is not None and (isinstance(jpeg_quality, bool) or not isinstance(jpeg_quality, (int, np.integer)) or not 1 <= jpeg_quality <= 100):
        raise ValueError(f"jpeg_quality must be an integer 1-100 or None, got {jpeg_quality!r}")
    tilt = None if tilt_deg is None else _check_float("tilt_deg", tilt_deg, 0.0, 30.0)
    if not isinstance(card, (bool, np.bool_)):
        raise TypeError(f"card must be True or False, got {type(card).__name__}")

    seeds = rng.integers(0, 2**63 - 1, size=10)
    r_pose, r_leg, r_skin, r_vessel, r_hair, r_bg, r_treat, r_card, r_sess, r_type = (np.random.default_rng(int(s)) for s in seeds)
    if skin_type is None:
        skin_type = int(r_type.choice(np.arange(1, 7), p=[0.12, 0.28, 0.25, 0.15, 0.11, 0.09]))
    skin_type = int(skin_type)
    size = (width, height)

    # camera poses, and the skin-plane canvas that covers every view
    poses = _make_poses(r_pose, sessions, size, ppm, tilt)
    h_world = [p.homography() for p in poses]
    ppm_c = [_scale_at(h, p.target_mm) for h, p in zip(h_world, poses)]
    ppm_s = max(ppm_c)
    feet = [_footprint(h, size) for h in h_world]
    allf = np.vstack(feet)
    margin = 2.0 + 2.0 / ppm_s
    x0, y0 = allf.min(0) - margin
    x1, y1 = allf.max(0) + margin
    shape_c = (int(math.ceil((y1 - y0) * ppm_s)) + 1, int(math.ceil((x1 - x0) * ppm_s)) + 1)
    if shape_c[0] * shape_c[1] > 6e7:
        raise ValueError(f"the views of this series span {x1 - x0:.0f} x {y1 - y0:.0f} mm: too large a canvas (size={size!r})")
    shift = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])  # canvas mm -> world mm
    h_mm = [h @ shift for h in h_world]  # canvas mm -> photo px
    h_px = [h @ np.diag([1 / ppm_s, 1 / ppm_s, 1.0]) for h in h_mm]  # canvas px -> photo px
    feet_c = [f - np.array([x0, y0]) for f in feet]  # canvas mm, (x, y)

    site = _Site(r_leg, r_skin, r_vessel, r_hair, r_bg, shape_c, ppm_s, skin_type, n_vessels, feet_c[0])
    plan = _plan_course(r_treat, site, sessions)
    # the card keeps off the matting the course will bring too: a patch under the baseline's card
    # could not be compared, and at a follow-up the practitioner lays it beside the patch
    later = [b.pts_mm for sid in plan.matting_sids for b in plan.structures[sid].branches]
    cards = [_place_card(r_card, site, f, ppm_s, also_avoid_mm=later) if card else None for f in feet_c]

    sess_seeds = r_sess.integers(0, 2**63 - 1, size=(sessions, 2))
    photos: list[SynthPhoto] = []
    records: list[dict] = []
    for k in range(sessions):
        r_light, r_cam = (np.random.default_rng(int(s)) for s in sess_seeds[k])
        photo, rec = _render_session(
            site, plan, k, h_px[k], h_mm[k], size, feet_c[k], cards[k], r_light, r_cam, jpeg_quality,
        )
        common = {
            "generator": generator,
            "veinscope_version": __version__,
            **regen,
            "size": [width, height],
            "px_per_mm": px_per_mm,
            "skin_type": skin_type,
            "n_vessels": n_vessels,
            "jpeg_quality": jpeg_quality,
            "tilt_deg": tilt_deg,
            "card": bool(card),
        }
        if generator.endswith("series"):
            common["sessions"] = sessions
        own = dict(photo.params)
        own["camera"]["pose"] = poses[k].to_dict()
        photo.params.clear()
        photo.params.update(common)
        photo.params.update(own)
        photos.append(photo)
        records.append(rec)

    changes = [_changes(plan, records, photos, k) for k in range(1, sessions)]
    params = dict(photos[0].params)
    params.pop("session", None)
    params["course"] = plan.summary()
    params["canvas"] = {"shape": list(shape_c), "px_per_mm": ppm_s, "origin_mm": [float(x0), float(y0)]}
    log.debug("synthetic series: %d sessions of %dx%d px, skin type %d, %d structures", sessions, width, height, skin_type, len(plan.structures))
    return SynthSeries(photos=photos, changes=changes, params=params)


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
# the site (what stays between sessions) and the course of treatment
# ============================================================================================
def _poly_mask(shape: tuple[int, int], poly_xy_px: np.ndarray, *, shrink: float = 0.0) -> np.ndarray:
    """Boolean mask of a convex polygon ((K, 2) x, y px), optionally shrunk towards its
    centroid by the fraction ``shrink``."""
    c = poly_xy_px.mean(0)
    p = c + (poly_xy_px - c) * (1.0 - shrink)
    out = np.zeros(shape, np.uint8)
    cv2.fillPoly(out, [np.round(p * 16).astype(np.int32).reshape(-1, 1, 2)], 1, lineType=cv2.LINE_8, shift=4)
    return out.astype(bool)


class _Site:
    """The skin-plane canvas: leg, skin, vessels, hair and background (what does not change
    between sessions)."""

    def __init__(self, r_leg, r_skin, r_vessel, r_hair, r_bg, shape, ppm, skin_type, n_vessels, foot0_mm):
        self.shape, self.ppm, self.skin_type = shape, ppm, skin_type
        self.leg = _Leg(r_leg, shape, ppm)
        self.geo = self.leg.fields()
        self.skin = _render_skin(r_skin, shape, ppm, skin_type, self.geo)
        self.skin_mask = self.geo["skin_alpha"] >= 0.5
        self.place = self.skin_mask & _poly_mask(shape, foot0_mm * ppm, shrink=0.03)
        self.structures = _make_vessels(r_vessel, shape, ppm, n_vessels, self.place, self.leg, skin_type)
        self.hair = _render_hair(r_hair, shape, ppm, self.leg, self.geo)
        self.b_idx = np.flatnonzero(self.geo["skin_alpha"].ravel() < 1)
        self.bg_cols, self.bg, self.cloth_pat = _render_background(r_bg, shape, ppm, self.geo, self.b_idx)


def _along(rng: np.random.Generator, n: int, corr_pts: float) -> np.ndarray:
    """Zero-mean, unit-variance smooth noise along a path of n points."""
    z = ndi.gaussian_filter1d(rng.standard_normal(n + 8), max(corr_pts, 1.0), mode="nearest")[4 : 4 + n]
    return (z - z.mean()) / (z.std() or 1.0)


class _Course:
    """What happens to the site over the sessions: treated vessels fade or clear, staining
    and matting come and go, new vessels appear."""

    def __init__(self) -> None:
        self.structures: list[_Structure] = []
        self.appear: list[int] = []
        self.remain: list[dict[int, list[np.ndarray]]] = []
        self.stains: list[dict] = []  # pts_mm, weight, sigma_mm, levels per session
        self.blush: list[dict] = []  # centre_mm (y, x), sigma_mm, amount, levels per session
        self.matting_sids: list[int] = []
        self.days: list[int] = [0]
        self.log: list[dict] = []

    def treatable(self, sid: int) -> bool:
        return self.structures[sid].kind not in ("varicose", "matting")

    def summary(self) -> dict:
        return {
            "days": self.days,
            "structures": [
                {"kind": s.kind, "colour": s.colour, "depth_mm": s.depth_mm, "blur_sigma_mm": s.blur_mm,
                 "od_rgb": [float(v) for v in s.od_vec], "branches": len(s.branches), "appears_at_session": a}
                for s, a in zip(self.structures, self.appear)
            ],
            "events": self.log,
        }

    def stain_map(self, k: int, shape: tuple[int, int], ppm: float) -> np.ndarray | None:
        """Haemosiderin OD (red-channel units) on the canvas at session k."""
        live = [s for s in self.stains if s["levels"][k] > 0]
        if not live:
            return None
        out = np.zeros(shape, np.float32)
        for s in live:  # a line of splats gives a band of peak ``weight``; bands that meet
            sig = s["sigma_mm"] * ppm  # (at a spider's centre) do not add up
            step_px = np.hypot(*np.diff(s["pts_mm"], axis=0).T).mean() * ppm if len(s["pts_mm"]) > 1 else 1.0
            w = s["weight"] * s["levels"][k] * step_px / (math.sqrt(2 * math.pi) * sig)
            _splat_into(out, s["pts_mm"] * ppm, w, sig, combine="max")
        return out

    def blush_map(self, k: int, shape: tuple[int, int], ppm: float) -> np.ndarray | None:
        """Extra diffuse dermal blood (units of ``_EPS_BLOOD``) of the matting patches."""
        live = [b for b in self.blush if b["levels"][k] > 0]
        if not live:
            return None
        out = np.zeros(shape, np.float32)
        for b in live:
            _splat_into(out, b["centre_mm"][None] * ppm, np.array([b["amount"] * b["levels"][k]]), b["sigma_mm"] * ppm)
        return out


def _plan_course(rng: np.random.Generator, site: _Site, sessions: int) -> _Course:
    plan = _Course()
    plan.structures = list(site.structures)
    plan.appear = [0] * len(plan.structures)
    ppm = site.ppm
    for k in range(1, sessions):
        plan.days.append(plan.days[-1] + int(rng.integers(28, 43)))
    for k in range(1, sessions):  # new vessels elsewhere (disease progression)
        if rng.random() < 0.3:
            plan.structures.append(_new_vessel(rng, site.place, ppm, site.leg, site.skin_type))
            plan.appear.append(k)
            plan.log.append({"session": k, "event": "new_vessel", "structure": len(plan.structures) - 1})
    step = 0.8 / ppm
    noise: dict[int, list[np.ndarray]] = {}
    level: dict[int, float] = {}
    plan.remain = [{} for _ in range(sessions)]
    stained: set[int] = set()
    matted: set[int] = set()
    mel0 = site.skin["melanin_od"]
    for k in range(1, sessions):
        treated = [sid for sid in range(len(plan.structures)) if plan.treatable(sid) and plan.appear[sid] < k]
        for sid in treated:  # the response to the last treatment
            if sid not in noise:
                noise[sid] = [_along(rng, len(b.pts_mm), 3.0 / step) for b in plan.structures[sid].branches]
            u = rng.random()
            q = 0.0 if u < 0.2 else rng.uniform(0.15, 0.6) if u < 0.6 else rng.uniform(0.55, 1.0)
            level[sid] = level.get(sid, 1.0) * q
            rem = []
            for z in noise[sid]:
                f = np.clip(level[sid] * (1.0 + 0.7 * z), 0.0, 1.0)
                f[f < 0.06] = 0.0
                rem.append(f)
            plan.remain[k][sid] = rem
        # staining along some treated vessels (each course shows it at least once)
        cand = [sid for sid in treated if sid not in stained]
        new = [sid for sid in cand if rng.random() < 0.2]
        if k == 1 and not new and cand:
            new = [cand[int(rng.integers(len(cand)))]]
        for sid in new:
            stained.add(sid)
            st = plan.structures[sid]
            n_br = min(len(st.branches), 1 + int(rng.poisson(0.7)))
            for bi in rng.choice(len(st.branches), n_br, replace=False):
                br = st.branches[int(bi)]
                npts = len(br.pts_mm)
                frac = rng.uniform(0.4, 1.0)
                a = int(rng.integers(0, max(1, int(npts * (1 - frac)) + 1)))
                b = min(npts, a + max(2, int(npts * frac)))
                pts = br.pts_mm[a:b]
                s = np.linspace(0, 1, len(pts))
                ends = np.clip(np.minimum(s, 1 - s) / 0.1, 0, 1)
                weight = rng.uniform(0.07, 0.2) * math.exp(-0.8 * mel0) * _smooth_factor(rng, len(pts), 0.35, 2.0 / step) * ends
                levels = np.zeros(sessions)
                levels[k] = 1.0
                for kk in range(k + 1, sessions):
                    levels[kk] = levels[kk - 1] * rng.uniform(0.45, 0.8)
                sigma = rng.uniform(0.4, 0.9) + 0.5 * float(np.median(br.d_mm))
                plan.stains.append({"pts_mm": pts, "weight": weight, "sigma_mm": sigma, "levels": levels, "structure": sid})
            plan.log.append({"session": k, "event": "staining", "structure": sid})
        # matting near some treated sites (at least once)
        cand = [sid for sid in treated if sid not in matted]
        new = [sid for sid in cand if rng.random() < 0.12]
        if k == 1 and not new and cand:
            new = [cand[int(rng.integers(len(cand)))]]
        for sid in new:
            matted.add(sid)
            st = plan.structures[sid]
            br = st.branches[int(rng.integers(len(st.branches)))]
            p = br.pts_mm[int(rng.integers(len(br.pts_mm)))]
            ang = rng.uniform(0, 2 * np.pi)
            centre = p + rng.uniform(1.0, 4.0) * np.array([math.sin(ang), math.cos(ang)])
            radius = rng.uniform(3.0, 7.0)
            ms = _matting(rng, centre, radius, ppm, site.skin_type)
            plan.structures.append(ms)
            plan.appear.append(k)
            msid = len(plan.structures) - 1
            plan.matting_sids.append(msid)
            levels = np.zeros(sessions)
            levels[k] = 1.0
            for kk in range(k + 1, sessions):
                levels[kk] = levels[kk - 1] * rng.uniform(0.6, 1.0)
            for kk in range(k + 1, sessions):
                plan.remain[kk][msid] = [np.full(len(b.pts_mm), levels[kk]) for b in ms.branches]
            plan.blush.append({"centre_mm": centre, "sigma_mm": 0.5 * radius, "amount": rng.uniform(0.1, 0.3), "levels": levels})
            plan.log.append({"session": k, "event": "matting", "structure": sid, "matting_structure": msid})
    return plan


def _card_artwork(ppm: float) -> dict:
    """The printed card at ``ppm``: linear reflectance (h, w, 3), its size in mm and its
    markers' corners in card mm (origin at the card's top-left corner). One place to switch
    to another card."""
    from veinscope import card as vcard

    srgb = vcard.render_card(ppm)
    lin = vcard.srgb_to_linear(srgb).astype(np.float32) * np.float32(0.88)  # paper is not a perfect white
    lay = vcard.CARD
    return {
        "linear": lin,
        "w_mm": float(lay.width_mm),
        "h_mm": float(lay.height_mm),
        "markers_mm": {int(k): np.asarray(v, float) for k, v in vcard.marker_corners_mm().items()},
        "name": f"veinscope card v{lay.version}",
        "px_convention_offset": 0.5,  # image px = mm * ppm - 0.5
    }


def _place_card(
    rng: np.random.Generator, site: _Site, foot_mm: np.ndarray, ppm: float, *, also_avoid_mm: list[np.ndarray] | None = None,
) -> dict | None:
    """Where the practitioner lays the card in this session: fully in view, on skin, beside
    rather than on the vessels. None when it would cover more than 15 % of the view.

    ``also_avoid_mm`` (arrays (K, 2), canvas mm (y, x)): centreline points the card keeps off
    before any vessel (the course's matting: a patch under the baseline's card cannot be
    compared). The same random draws whatever is avoided: only the choice among them moves."""
    from veinscope import card as vcard

    w_mm, h_mm = float(vcard.CARD.width_mm), float(vcard.CARD.height_mm)
    x, y = foot_mm[:, 0], foot_mm[:, 1]
    area = 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))
    if w_mm * h_mm > _CARD_MAX_FRAC * area:
        return None
    poly = foot_mm.astype(np.float32).reshape(-1, 1, 2)  # the view, (x, y) mm
    vessel_pts = np.vstack([b.pts_mm for s in site.structures for b in s.branches]) if site.structures else np.zeros((0, 2))
    avoid_pts = np.vstack(also_avoid_mm) if also_avoid_mm else np.zeros((0, 2))
    axis = math.atan2(site.leg.axis[0], site.leg.axis[1])
    m, n = site.shape
    best, best_score = None, None
    lo, hi = foot_mm.min(0), foot_mm.max(0)
    for _ in range(200):
        c = rng.uniform(lo, hi)
        ang = axis + rng.normal(0, 0.25) + (np.pi / 2 if rng.random() < 0.2 else 0.0)
        rot = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
        corners = c + (np.array([[0, 0], [w_mm, 0], [w_mm, h_mm], [0, h_mm]]) - [w_mm / 2, h_mm / 2]) @ rot.T
        if min(cv2.pointPolygonTest(poly, (float(px), float(py)), True) for px, py in corners) < 2.0:
            continue
        probe = np.vstack([corners, c])
        iy = np.clip(np.round(probe[:, 1] * ppm).astype(int), 0, m - 1)
        ix = np.clip(np.round(probe[:, 0] * ppm).astype(int), 0, n - 1)
        if not site.skin_mask[iy, ix].all():
            continue
        # points to avoid under the card first, then vessel points (fewer is better), then
        # nearness to the view's edge
        edge = min(cv2.pointPolygonTest(poly, (float(c[0]), float(c[1])), True), 1e6)
        score = (_n_under(avoid_pts, c, rot, w_mm, h_mm), _n_under(vessel_pts, c, rot, w_mm, h_mm) + 0.01 * edge)
        if best_score is None or score < best_score:
            best, best_score = {"centre_mm": c, "angle_rad": float(ang), "corners_mm": corners, "rot": rot}, score
    return best


def _n_under(pts_mm: np.ndarray, centre_mm: np.ndarray, rot: np.ndarray, w_mm: float, h_mm: float) -> int:
    """Points ((K, 2) mm, (y, x)) under a card of ``w_mm`` x ``h_mm`` centred at ``centre_mm``
    ((x, y)) and turned by ``rot``, or within 3 mm of its edge."""
    local = (pts_mm[:, ::-1] - centre_mm) @ rot
    return int(np.count_nonzero((np.abs(local[:, 0]) < w_mm / 2 + 3) & (np.abs(local[:, 1]) < h_mm / 2 + 3)))


# ============================================================================================
# one session: light, side effects, vessels, card, warp to the photo, camera, truth
# ============================================================================================
def _warp(img: np.ndarray, h: np.ndarray, size: tuple[int, int], *, nearest: bool = False) -> np.ndarray:
    flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.warpPerspective(img, h, size, flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _render_session(site: _Site, plan: _Course, k: int, hpx, hmm, size, foot_mm, card, r_light, r_cam, jpeg_quality):
    shape = site.shape
    ppm = site.ppm
    geo, skin = site.geo, site.skin
    leg = site.leg
    m, n = size[1], size[0]
    if k == 0:
        light, ambient, gfac = leg.light, leg.ambient, 1.0
    else:
        light, ambient, gfac = r_light.uniform(-0.55, 0.55), r_light.uniform(0.15, 0.3), math.exp(r_light.normal(0.0, 0.5))
    shade, spec = _Leg.shading(geo["q"], light, ambient)
    lit = _light_skin(skin, shade, spec, gfac, consume=k == len(plan.remain) - 1)
    del spec
    diffuse = lit["diffuse"]
    gain0 = _auto_exposure(site, diffuse, lit["glare"], shade, foot_mm, card)

    # side effects on the skin: staining (haemosiderin) and the blush of matting
    stain = plan.stain_map(k, shape, ppm)
    blush = plan.blush_map(k, shape, ppm)
    lit["texture_rms"] = _texture_threshold(lit["texture"], ppm, lit["texture_stride"], gain0)
    lit["texture_rms_coarse"] = _texture_threshold(lit["texture"], ppm, lit["texture_stride"], gain0, coarse=True)
    stain_margin = _stain_margin(stain, lit, ppm, gain0) if stain is not None else None
    # the skin smoothed over 1 mm before the blush, what matting's redness is seen against
    blush_skin = _skin_over_1mm(lit, ppm, gain0) if blush is not None else None
    if stain is not None or blush is not None:
        st = lit["texture_stride"]
        for c in range(3):
            od = np.zeros(shape, np.float32)
            if stain is not None:
                od += stain * _EPS_STAIN[c]
            if blush is not None:
                od += blush * _EPS_BLOOD[c]
            od *= np.float32(-_LN10)
            np.exp(od, out=od)
            diffuse[c] *= od
            lit["texture"][c] *= od[::st, ::st]
        del od

    # vessels of this session
    alpha = geo["skin_alpha"]
    items = [it for it in _vessel_items(plan.structures, ppm, plan.remain[k]) if plan.appear[it["sid"]] <= k]
    cam_settings = _camera_settings(r_cam)
    _visibility(items, ppm, alpha, lit, gain0, h_px=hpx, defocus_px=cam_settings["defocus"])
    od_idx, od_val = _render_od(items, len(plan.structures), shape, ppm, alpha)
    matting_margin = None
    if blush_skin is not None:
        live = set(plan.matting_sids)
        m_idx, m_val = _render_od([it for it in items if it["sid"] in live], len(plan.structures), shape, ppm, alpha)
        matting_margin = _matting_margin(blush, m_idx, m_val, blush_skin, lit, ppm)
    del blush_skin

    # compose the canvas in place, channel by channel (linear RGB relative to a white
    # reflector under the light): skin x vessels + glare, hair, card, background
    hair = site.hair
    h_idx = np.flatnonzero(hair["alpha"])
    h_a = hair["alpha"].ravel()[h_idx]
    h_shade = shade.ravel()[h_idx]
    b_idx = site.b_idx
    b_sa = alpha.ravel()[b_idx]
    b_cloth = geo["cloth"].ravel()[b_idx]
    cl_shade = shade.ravel()[b_idx] * np.float32(0.4) + np.float32(0.6)
    glare = lit["glare"]
    for c in range(3):
        flat = diffuse[c].reshape(-1)
        flat[od_idx] *= np.exp(od_val[:, c] * np.float32(-_LN10))
        flat += glare.reshape(-1)
        flat[h_idx] = flat[h_idx] * (1 - h_a) + h_a * hair["colour"][c] * h_shade
        other = site.bg_cols[0, c] * site.bg
        other = other * (1 - b_cloth) + site.bg_cols[1, c] * site.cloth_pat * cl_shade * b_cloth
        flat[b_idx] = flat[b_idx] * b_sa + other * (1 - b_sa)
    card_alpha = None
    card_truth = None
    if card is not None:
        card_alpha, card_truth = _lay_card(diffuse, card, shade, glare, ppm, hmm)
    glare_ph = _warp(glare, hpx, size) > 0.04
    del glare, lit

    # the camera: perspective, then the sensor
    scene = np.empty((3, m, n), np.float32)
    for c in range(3):
        scene[c] = _warp(diffuse[c], hpx, size)
    del diffuse
    rgb, cam, jpeg = _camera(r_cam, scene, gain0, jpeg_quality, cam_settings)
    del scene

    # truth on the photo's grid
    alpha_ph = _warp(alpha, hpx, size)
    card_ph = None
    if card_alpha is not None:
        card_ph = _warp(card_alpha, hpx, size) >= 0.5
        alpha_ph *= 1.0 - _warp(card_alpha, hpx, size)
    truth = _label_pass(items, hpx, (m, n), alpha_ph, ppm)
    labels, diam, ignore = truth["labels"], truth["diameter_mm"], truth["ignore"]
    skin_mask = alpha_ph >= 0.5
    hair_mask = _warp(hair["alpha"], hpx, size) > 0.2
    ignore |= hair_mask & (labels > 0)
    labels[hair_mask] = 0
    diam[hair_mask] = 0.0
    labels[~skin_mask] = 0
    diam[~skin_mask] = 0.0
    ignore &= skin_mask
    s_ph = _scale_at(hmm, tuple(_footprint_centre(hmm, size)))
    staining = np.zeros((m, n), bool)
    if stain_margin is not None:
        staining = (_warp(stain_margin, hpx, size) > 0) & skin_mask
    matting = np.zeros((m, n), bool)
    live_m = [sid for sid in plan.matting_sids if plan.appear[sid] <= k]
    if live_m:
        seen_m = np.isin(truth["owner"], live_m) & (labels > 0)
        for it in items:  # also where a matting vessel crosses a bigger vessel that owns the pixels
            if it["sid"] in live_m and it["visible"].any():
                yx = np.round(it["pts_photo"][it["visible"]]).astype(int)
                seen_m[yx[:, 0].clip(0, m - 1), yx[:, 1].clip(0, n - 1)] = True
        seen_m &= skin_mask
        # and where the patch's redness read over 1 mm (its blush and its fine vessels
        # together) is visible by the staining's test, whether or not one of its vessels is
        # visible on its own: a careful observer marks a visible red blush of matting
        blush_seen = (_warp(matting_margin, hpx, size) > 0) & skin_mask if matting_margin is not None else None
        if seen_m.any() or (blush_seen is not None and blush_seen.any()):
            r = max(1, int(round(_MATTING_REACH_MM * s_ph)))
            ker = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
            mm = cv2.dilate(seen_m.astype(np.uint8), ker)
            if blush_seen is not None:
                _join_blush(mm, blush_seen, r)
            mm = cv2.morphologyEx(mm, cv2.MORPH_CLOSE, ker)
            matting = ndi.binary_fill_holes(mm.astype(bool)) & skin_mask
    confounders = {
        "hair": hair_mask,
        "naevus": (_warp(skin["naevus"].astype(np.uint8), hpx, size, nearest=True) > 0) & skin_mask,
        "freckle": (_warp(skin["freckle"].astype(np.uint8), hpx, size, nearest=True) > 0) & skin_mask,
        "glare": glare_ph & skin_mask,
        "card": card_ph if card_ph is not None else np.zeros((m, n), bool),
    }
    centrelines = _centrelines(items)
    record = {
        (it["sid"], it["bi"]): {
            "visible": it["visible"], "inside": it["inside"], "code": it["code"],
            "pts_photo": it["pts_photo"], "pts_mm": it["pts_mm"],
            "delta_e": it.get("delta_e"), "thr": it.get("thr"),
        }
        for it in items
    }
    params: dict[str, Any] = {
        "session": k,
        "days_since_baseline": plan.days[k],
        "n_structures": sum(1 for a in plan.appear if a <= k),
        "leg": {
            "axis_angle_deg": math.degrees(leg.angle),
            "radius_mm": leg.radius_mm,
            "offset_mm": leg.offset_mm,
            "light_rad": float(light),
            "ambient": float(ambient),
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
            for s in plan.structures
        ],
        "hairs": hair["count"],
        "camera": {**cam, "nominal_gain": gain0, "glare_factor": gfac, "pose": None},
        "truth": {
            "visible_delta_e00_min": _DELTA_E_MIN,
            "texture_rms_factor": _TEXTURE_FACTOR,
            "visible_contrast_blur": ["depth", "pixel footprint", "camera defocus"],
            "red_blue_od_ratio": RED_BLUE_OD_RATIO,
        },
    }
    arrays = dict(rgb=rgb, labels=labels, diameter_mm=diam.astype(np.float32), ignore=ignore, skin_mask=skin_mask,
                  staining=staining, matting=matting)
    for arr in [*arrays.values(), *confounders.values()]:
        arr.setflags(write=False)
    for c in centrelines:
        for v in c.values():
            if isinstance(v, np.ndarray):
                v.setflags(write=False)
    hmm_n = hmm / hmm[2, 2]
    hmm_n.setflags(write=False)
    photo = SynthPhoto(
        px_per_mm=float(s_ph), centrelines=centrelines, params=params, confounders=confounders,
        homography=hmm_n, card=card_truth, jpeg=jpeg, session=k, **arrays,
    )
    return photo, record


def _auto_exposure(site: _Site, diffuse: np.ndarray, glare: np.ndarray, shade: np.ndarray, foot_mm: np.ndarray, card: dict | None) -> float:
    """The camera's nominal gain: the skin's median brought towards mid-grey (partly: dark
    skin stays darker), but no more than keeps the brightest things in view (glare, a white
    sheet, the card's paper) below clipping, as a phone's metering does."""
    ppm = site.ppm
    sm = site.skin_mask[::4, ::4]
    view = _poly_mask(sm.shape, foot_mm * ppm / 4)
    luma = np.tensordot(_LUMA, diffuse[:, ::4, ::4], axes=1) + glare[::4, ::4]
    sel = sm & view
    y_med = float(np.median(luma[sel])) if sel.any() else 0.3
    gain = float(np.clip((0.30 / max(y_med, 1e-4)) ** 0.55, 0.6, 6.0))
    bright = [float(np.percentile(luma[sel], 99.5))] if sel.any() else []
    other = view & ~sm
    if other.mean() > 0.03 * max(view.mean(), 1e-9):
        rr, cc = np.nonzero(other)
        idx = (rr * 4) * site.shape[1] + cc * 4
        pos = np.clip(np.searchsorted(site.b_idx, idx), 0, max(len(site.b_idx) - 1, 0))
        ok = site.b_idx[pos] == idx
        if ok.any():
            pos = pos[ok]
            cl = site.geo["cloth"].ravel()[idx[ok]]
            lum0, lum1 = float(_LUMA @ site.bg_cols[0]), float(_LUMA @ site.bg_cols[1])
            bg = (1 - cl) * lum0 * site.bg[pos] + cl * lum1 * site.cloth_pat[pos]
            bright.append(float(np.percentile(bg, 98)))
    if card is not None:
        c = np.round(card["centre_mm"] * ppm).astype(int)
        y, x = min(max(c[1], 0), site.shape[0] - 1), min(max(c[0], 0), site.shape[1] - 1)
        bright.append(0.88 * float(shade[y, x]))
    if bright:
        gain = min(gain, 0.8 / max(max(bright), 1e-4))  # headroom for the exposure error
    return float(max(gain, 0.3))


def _footprint_centre(hmm: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Skin-plane (x, y) mm seen at the photo's centre."""
    w, h = size
    p = np.linalg.inv(hmm) @ np.array([(w - 1) / 2, (h - 1) / 2, 1.0])
    return p[:2] / p[2]


def _stain_margin(stain: np.ndarray, lit: dict, ppm: float, gain0: float) -> np.ndarray:
    """How far the stain's OD is above the least OD a careful observer sees there (ΔE00 of at
    least 2 and 1.5 x the skin texture's RMS variation, against the unstained skin around it):
    positive where the staining is visible. Canvas-sized float32."""
    st = lit["texture_stride"]
    tex = lit["texture"]
    coarse = stain[::st, ::st][: tex.shape[1], : tex.shape[2]]
    thr = np.maximum(_DELTA_E_MIN, _TEXTURE_FACTOR * lit["texture_rms"])
    need = np.full(coarse.shape, 10.0, np.float32)
    cells = coarse > 1e-3
    if cells.any():
        base = np.stack([_gauss(np.ascontiguousarray(c), 1.0 * ppm / st) for c in tex], axis=-1)[cells] * gain0
        amounts = np.array([0.0, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.45, 0.7])
        lab0 = rgb2lab(_srgb_encode(base)[None])
        des = np.stack([
            deltaE_ciede2000(lab0, rgb2lab(_srgb_encode(base * np.power(10.0, -a * _EPS_STAIN))[None]), channel_axis=-1)[0]
            for a in amounts
        ], axis=1)  # (cells, amounts), rising
        t = thr[cells][:, None]
        above = des >= t
        j = np.where(above.any(1), above.argmax(1), len(amounts) - 1)
        j0 = np.maximum(j - 1, 0)
        d0, d1 = des[np.arange(len(j)), j0], des[np.arange(len(j)), j]
        frac = np.clip((t[:, 0] - d0) / np.maximum(d1 - d0, 1e-9), 0, 1)
        a_need = amounts[j0] + frac * (amounts[j] - amounts[j0])
        a_need[~above.any(1)] = 10.0
        need[cells] = a_need
    full = cv2.resize(need, (stain.shape[1], stain.shape[0]), interpolation=cv2.INTER_NEAREST) if st > 1 else need
    full = full[: stain.shape[0], : stain.shape[1]]
    return stain - full


def _skin_over_1mm(lit: dict, ppm: float, gain0: float) -> np.ndarray:
    """The skin texture smoothed over 1 mm at the nominal exposure, (mc, nc, 3) on the
    texture's coarse grid: the skin a diffuse change of colour is seen against."""
    st = lit["texture_stride"]
    return np.stack([_gauss(np.ascontiguousarray(c), 1.0 * ppm / st) for c in lit["texture"]], axis=-1) * np.float32(gain0)


def _join_blush(reach: np.ndarray, blush_seen: np.ndarray, r: int) -> None:
    """Add to ``reach`` (uint8, the visible matting vessels' reach of radius ``r`` px, in place)
    the visible blush's pieces that touch it or are at least as large as the reach's own disc
    (pi r²): a visible blush apart from the visible vessels counts, a speck no observer marks
    does not."""
    lab, nlab = ndi.label(blush_seen)
    if nlab:
        idx = np.arange(1, nlab + 1)
        big = np.asarray(ndi.sum(blush_seen, lab, idx)) >= np.pi * r * r
        on_reach = np.asarray(ndi.maximum(reach, lab, idx)) > 0
        keep = np.concatenate([[False], big | on_reach])
        reach[keep[lab]] = 1


def _matting_margin(blush: np.ndarray, m_idx: np.ndarray, m_val: np.ndarray, skin: np.ndarray, lit: dict, ppm: float) -> np.ndarray:
    """How far matting's redness read over 1 mm (its blush, ``blush`` in units of
    ``_EPS_BLOOD``, and its fine vessels' OD, sparse ``m_idx`` / ``m_val`` (P, 3) on the
    canvas, averaged as light over a Gaussian of 1 mm) stands out from the skin ``skin``
    (:func:`_skin_over_1mm`) around it: ΔE00 minus the staining's threshold (at least 2 and
    1.5 x the skin texture's RMS variation). Canvas-sized float32; positive where the patch
    is visible as a whole, whether or not any of its vessels is on its own."""
    st = lit["texture_stride"]
    mc, nc = skin.shape[:2]
    m, n = blush.shape
    out = np.full((mc, nc), -10.0, np.float32)
    trans = np.ones((mc, nc, 3), np.float32)
    # only the box of the blush and the vessels, grown by the blur's reach (light passes
    # untouched elsewhere), its corner on the coarse grid
    rows, cols = blush.any(1), blush.any(0)
    if m_idx.size:
        rows[np.unique(m_idx // n)] = True
        cols[np.unique(m_idx % n)] = True
    if not rows.any():
        return cv2.resize(out, (nc * st, mc * st), interpolation=cv2.INTER_NEAREST)[:m, :n] if st > 1 else out
    pad = int(math.ceil(4.0 * ppm)) + 2
    ry, rx = np.flatnonzero(rows), np.flatnonzero(cols)
    y0, x0 = max(0, ry[0] - pad) // st * st, max(0, rx[0] - pad) // st * st
    y1, x1 = min(m, ry[-1] + pad + 1), min(n, rx[-1] + pad + 1)
    if m_idx.size:
        iy, ix = m_idx // n - y0, m_idx % n - x0
    for c in range(3):
        od = blush[y0:y1, x0:x1] * _EPS_BLOOD[c]
        if m_idx.size:
            od[iy, ix] += m_val[:, c]  # (the indices are unique)
        t = _gauss(np.power(np.float32(10.0), -od).astype(np.float32), 1.0 * ppm)[::st, ::st]
        cy, cx = y0 // st, x0 // st
        hh, ww = min(t.shape[0], mc - cy), min(t.shape[1], nc - cx)
        trans[cy : cy + hh, cx : cx + ww, c] = t[:hh, :ww]
    cells = trans.min(-1) < 1.0 - 1e-4
    if cells.any():
        base = skin[cells]
        de = deltaE_ciede2000(rgb2lab(_srgb_encode(base)[None]), rgb2lab(_srgb_encode(base * trans[cells])[None]), channel_axis=-1)[0]
        thr = np.maximum(_DELTA_E_MIN, _TEXTURE_FACTOR * lit["texture_rms"])[:mc, :nc][cells]
        out[cells] = de - thr
    full = cv2.resize(out, (nc * st, mc * st), interpolation=cv2.INTER_NEAREST) if st > 1 else out
    return full[:m, :n]


def _lay_card(diffuse: np.ndarray, card: dict, shade: np.ndarray, glare: np.ndarray, ppm: float, hmm: np.ndarray):
    """Paint the card on the canvas (in place) with the skin's shading and a faint shadow at
    its edge; return its canvas alpha (full size) and its truth."""
    art = _card_artwork(ppm)
    m, n = shade.shape
    c, rot = card["centre_mm"], card["rot"]
    # card image px (a, b) -> card mm ((a + 0.5) / ppm, ...) -> canvas mm -> canvas px
    a_mm = np.array([[1 / ppm, 0, 0.5 / ppm - art["w_mm"] / 2], [0, 1 / ppm, 0.5 / ppm - art["h_mm"] / 2], [0, 0, 1]])
    r3 = np.array([[rot[0, 0], rot[0, 1], c[0]], [rot[1, 0], rot[1, 1], c[1]], [0, 0, 1]])
    to_canvas_px = np.diag([ppm, ppm, 1.0]) @ r3 @ a_mm
    corners_px = card["corners_mm"] * ppm
    pad = int(math.ceil(1.5 * ppm)) + 2
    x0, y0 = (np.floor(corners_px.min(0)).astype(int) - pad).clip(0)
    x1, y1 = np.ceil(corners_px.max(0)).astype(int) + pad
    x1, y1 = min(x1, n), min(y1, m)
    sub = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1.0]]) @ to_canvas_px
    bw, bh = int(x1 - x0), int(y1 - y0)
    ones = np.ones(art["linear"].shape[:2], np.float32)
    a = cv2.warpAffine(ones, sub[:2], (bw, bh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    shadow = cv2.GaussianBlur(a, (0, 0), sigmaX=max(0.4 * ppm, 0.6))
    shadow = np.clip(shadow * 1.4, 0, 1) * (1 - a) * np.float32(0.35)
    sh = shade[y0:y1, x0:x1]
    gl = glare[y0:y1, x0:x1]
    for ch in range(3):
        img = cv2.warpAffine(np.ascontiguousarray(art["linear"][..., ch]), sub[:2], (bw, bh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        reg = diffuse[ch, y0:y1, x0:x1]
        reg *= 1 - shadow
        reg[...] = reg * (1 - a) + a * (img * sh + np.float32(0.1) * gl)  # matte paper: little sheen
    alpha = np.zeros((m, n), np.float32)
    alpha[y0:y1, x0:x1] = a

    def to_photo(xy_mm: np.ndarray) -> np.ndarray:
        p = np.c_[xy_mm, np.ones(len(xy_mm))] @ hmm.T
        return p[:, :2] / p[:, 2:3]

    def card_to_canvas_mm(xy: np.ndarray) -> np.ndarray:
        return c + (np.asarray(xy) - [art["w_mm"] / 2, art["h_mm"] / 2]) @ rot.T

    truth = {
        "corners_px": to_photo(card["corners_mm"]),
        "marker_corners_px": {i: to_photo(card_to_canvas_mm(v)) for i, v in art["markers_mm"].items()},
        "px_per_mm": _scale_at(hmm, tuple(c)),
        "corners_mm": np.asarray(card["corners_mm"], float),
        "card": art["name"],
    }
    return alpha, truth


def _point_shares(pts_mm: np.ndarray) -> np.ndarray:
    """Each centreline point's share of its polyline's length (mm): half of each adjoining step."""
    seg = np.hypot(*np.diff(pts_mm, axis=0).T)
    share = np.zeros(len(seg) + 1)
    share[:-1] += 0.5 * seg
    share[1:] += 0.5 * seg
    return share


def _counted_baseline_vessels(plan: _Course, rec0: dict, reck: dict):
    """The baseline vessels a change's truth counts (present at the baseline, not matting), as
    ``(sid, a, b, share, base)``: the vessel's records at the baseline and at the follow-up, each
    point's length share (mm) and the points visible at the baseline and inside both photos."""
    for key, a in rec0.items():
        sid = key[0]
        if plan.appear[sid] != 0 or sid in plan.matting_sids:
            continue
        b = reck[key]
        yield sid, a, b, _point_shares(a["pts_mm"]), a["visible"] & a["inside"] & b["inside"]


def _changes(plan: _Course, records: list[dict], photos: list[SynthPhoto], k: int) -> dict:
    """Truth of what changed between the baseline and session k."""
    rec0, reck = records[0], records[k]
    base_len = dict.fromkeys(CLASSES, 0.0)
    kept_len = dict.fromkeys(CLASSES, 0.0)
    treated_len = pig_len = new_len = 0.0
    stain_k = photos[k].staining
    m, n = stain_k.shape
    for sid, a, b, share, base in _counted_baseline_vessels(plan, rec0, reck):
        kept = base & b["visible"]
        for name in CLASSES:
            sel = a["code"] == CLASS_CODES[name]
            base_len[name] += float(share[base & sel].sum())
            kept_len[name] += float(share[kept & sel].sum())
        if plan.treatable(sid):
            treated_len += float(share[base].sum())
            iy = np.clip(np.round(b["pts_photo"][:, 0]).astype(int), 0, m - 1)
            ix = np.clip(np.round(b["pts_photo"][:, 1]).astype(int), 0, n - 1)
            pig_len += float(share[base & stain_k[iy, ix]].sum())
    for key, b in reck.items():
        sid = key[0]
        if plan.appear[sid] >= 1 and sid not in plan.matting_sids:
            new_len += float(_point_shares(b["pts_mm"])[b["visible"]].sum())
    base_len["total"] = sum(base_len.values())
    kept_len["total"] = sum(kept_len.values())
    improvement = {c: (100.0 * (1.0 - kept_len[c] / base_len[c]) if base_len[c] > 0 else None) for c in base_len}
    side = photos[k].side_effect_figures()
    h = photos[k].homography @ np.linalg.inv(photos[0].homography)
    return {
        "session": k,
        "baseline": 0,
        "days": plan.days[k],
        "improvement_pct": improvement,
        "baseline_length_mm": base_len,
        "remaining_length_mm": kept_len,
        "cleared_length_mm": base_len["total"] - kept_len["total"],
        "new_vessel_length_mm": new_len,
        "staining": {
            "area_mm2": side["staining"]["area_mm2"],
            "pigmented_treated_length_pct": 100.0 * pig_len / treated_len if treated_len > 0 else None,
        },
        "matting": side["matting"],
        "homography_baseline_to_session": (h / h[2, 2]).tolist(),
    }


# ============================================================================================
# skin
# ============================================================================================
def _render_skin(
    rng: np.random.Generator, shape: tuple[int, int], ppm: float, skin_type: int, geo: dict
) -> dict:
    """Vessel-free skin before lighting: albedo (3, M, N), glare texture (M, N) and masks.

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
    naevi = _blobs(rng, shape, nn, radius_px=rng.uniform(0.8, 3.0, nn) * ppm, amp=rng.uniform(0.3, 0.9, nn), edge_power=5.0, wobble=0.07)
    naevus_mask = naevi > 0.15

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
    micro = _smooth_noise(rng, shape, max(0.06 * ppm, 0.6))  # fine grain
    micro *= np.float32(0.012)
    micro += np.float32(1.0)
    micro -= np.float32(relief_depth) * furrow

    # Beer-Lambert, channel by channel: OD -> reflectance x micro-relief (the leg's shading
    # and the light come per session)
    mel += pores
    stride = max(1, int(round(ppm / 2.5)))
    albedo = np.empty((3, m, n), np.float32)
    texture = np.empty((3, len(range(0, m, stride)), len(range(0, n, stride))), np.float32)
    tmp = np.empty(shape, np.float32)
    for c in range(3):
        od = albedo[c]
        np.multiply(mel, _EPS_MEL[c], out=od)
        np.multiply(freckles, _EPS_FRECKLE[c], out=tmp)
        od += tmp
        np.multiply(blood, _EPS_BLOOD[c], out=tmp)
        od += tmp
        np.multiply(pores, np.float32(0.04), out=tmp)
        od += tmp
        od += _OD_BASE[c]
        # the texture reference for visibility leaves out the naevi
        texture[c] = micro[::stride, ::stride] * np.exp(od[::stride, ::stride] * np.float32(-_LN10))
        if nn:
            np.multiply(naevi, np.float32(_EPS_MEL[c] + 0.08), out=tmp)
            od += tmp
        od *= np.float32(-_LN10)
        np.exp(od, out=od)
        od *= micro
    del tmp, mel, blood, pores, freckles, naevi, micro

    # glare texture: patchy, sparkling, broken by the furrows (its band comes with the light)
    shin = rng.uniform(15, 60)
    strength = rng.uniform(0.005, 0.05) * (0.5 + 0.5 * float(np.median(albedo[1, ::8, ::8])) / 0.3)
    patch = _smooth_noise(rng, shape, 8.0 * ppm)
    patch *= np.float32(0.2)
    patch += np.float32(0.75)
    np.clip(patch, 0, 1, out=patch)
    sparkle = _smooth_noise(rng, shape, max(0.12 * ppm, 0.7))
    sparkle *= np.float32(0.3)
    sparkle += np.float32(1.0)
    np.clip(sparkle, 0, None, out=sparkle)
    glare_tex = patch
    glare_tex *= sparkle
    del sparkle
    furrow *= np.float32(-0.3)
    furrow += np.float32(1.0)
    glare_tex *= furrow
    glare_tex[geo["skin_alpha"] <= 0] = 0

    return {
        "albedo": albedo,
        "texture": texture,
        "texture_stride": stride,
        "glare_tex": glare_tex,
        "shininess": shin,
        "glare_strength": strength,
        "freckle": freckle_mask,
        "naevus": naevus_mask,
        "melanin_od": mel0,
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


def _light_skin(skin: dict, shade: np.ndarray, spec_cos: np.ndarray, glare_factor: float, *, consume: bool = False) -> dict:
    """The skin of one session: albedo x the leg's shading, and the specular glare.
    ``consume``: the last session may shade the albedo in place (saves a copy)."""
    if consume:
        diffuse = skin["albedo"]
        diffuse *= shade[None]
        skin["albedo"] = None
    else:
        diffuse = skin["albedo"] * shade[None]
    st = skin["texture_stride"]
    texture = skin["texture"] * shade[None, ::st, ::st]
    glare = cv2.pow(spec_cos, skin["shininess"])
    glare *= skin["glare_tex"]
    glare *= np.float32(skin["glare_strength"] * glare_factor)
    return {"diffuse": diffuse, "texture": texture, "texture_stride": st, "glare": glare}


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
    """Vessel structures placed on ``skin_mask`` (the skin seen in the first photo)."""
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
    for s in out:
        _colourise(rng, s, skin_type)
    return out


def _colourise(rng: np.random.Generator, s: _Structure, skin_type: int) -> None:
    """Set the structure's OD per channel: haemoglobin (oxy / deoxy mix) seen through the
    tissue above it; contrast is lower on darker skin (epidermal melanin shields the dermis)."""
    shield = math.exp(-1.5 * _MELANIN_BY_TYPE[skin_type])
    sat = {"red": rng.uniform(0.7, 0.95), "blue": rng.uniform(0.05, 0.3), "deep": rng.uniform(0.2, 0.5)}[s.colour]
    vec = _od_vector(s.depth_mm, sat)
    if s.colour == "deep":  # less light scattered back from above a deep vein: a grey part
        vec = vec + 0.35 * vec[0]
    s.od_vec = vec * s.contrast * shield


def _new_vessel(rng: np.random.Generator, place_mask: np.ndarray, ppm: float, leg: "_Leg", skin_type: int) -> _Structure:
    """A telangiectasia that appears between sessions (disease progression)."""
    step = 0.8 / ppm
    colour = str(rng.choice(["red", "blue"]))
    start = _random_skin_point(rng, place_mask, ppm)
    if rng.random() < 0.5:
        s = _spider(rng, start, colour, step)
    else:
        s = _threads(rng, start, colour, step, math.atan2(leg.axis[0], leg.axis[1]))
    _colourise(rng, s, skin_type)
    return s


def _matting(rng: np.random.Generator, centre_mm: np.ndarray, radius_mm: float, ppm: float, skin_type: int) -> _Structure:
    """Telangiectatic matting: a patch of very fine (0.1-0.18 mm), short, tortuous red vessels."""
    step = 0.8 / ppm
    n = int(np.clip(rng.uniform(0.5, 0.9) * radius_mm**2, 6, 80))
    branches = []
    for _ in range(n):
        r = radius_mm * math.sqrt(rng.random())
        a = rng.uniform(0, 2 * np.pi)
        p0 = centre_mm + r * np.array([math.sin(a), math.cos(a)])
        pts = _walk(rng, p0, rng.uniform(0, 2 * np.pi), rng.uniform(1.0, 4.5), step_mm=step, turn=1.6, smooth_mm=0.15)
        d = np.maximum(rng.uniform(0.1, 0.18) * np.linspace(1.0, 0.7, len(pts)), _D_MIN_MM)
        branches.append(_Branch(pts, d))
    s = _Structure("matting", "red", rng.uniform(0.02, 0.07), rng.uniform(0.5, 1.0), branches)
    _colourise(rng, s, skin_type)
    # matting is red: keep it so however the saturation fell
    if s.od_vec[0] / max(s.od_vec[2], 1e-12) >= RED_BLUE_OD_RATIO:
        s.od_vec = s.od_vec * np.array([0.5, 1.0, 1.0])
    return s


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
def _vessel_items(structures: list[_Structure], ppm: float, remain: dict | None = None) -> list[dict]:
    """Per branch and centreline point: visible diameter, class, OD amplitude.

    ``remain`` maps a structure index to one factor array per branch (what is left of a
    treated vessel's contrast, 0 where it has cleared); missing structures keep 1.
    """
    items = []
    for sid, st in enumerate(structures):
        vec = st.od_vec
        tel_code = CLASS_CODES["red_telangiectasia"] if vec[0] / max(vec[2], 1e-12) < RED_BLUE_OD_RATIO else CLASS_CODES["blue_telangiectasia"]
        for bi, br in enumerate(st.branches):
            d_mm = br.d_mm
            vis_d = visible_diameter_mm(d_mm, st.blur_mm)
            amp = 1.0 - np.exp(-d_mm / 0.3)  # saturating blood path
            if br.strength is not None:
                amp = amp * br.strength
            if remain is not None and sid in remain:
                amp = amp * remain[sid][bi]
            amp = amp.astype(np.float32)
            code = np.where(vis_d < 1.0, tel_code, np.where(vis_d <= 3.0, 3, 4)).astype(np.uint8)
            items.append(dict(sid=sid, bi=bi, st=st, pts_mm=br.pts_mm, pts_px=br.pts_mm * ppm, d_mm=d_mm,
                              vis_d=vis_d, amp=amp, code=code))
    return items


def _visibility(
    items: list[dict], ppm: float, alpha: np.ndarray, lit: dict, gain0: float,
    *, h_px: np.ndarray | None = None, defocus_px: float = 0.0,
) -> None:
    """Mark each centreline point ``seen`` where the colour difference between the vessel's
    centre and the skin around it (smoothed vessel-free skin plus its glare, nominal exposure)
    reaches the threshold, on the skin-plane canvas; store ``delta_e``.

    The vessel's centre is taken as the photo shows it: its own profile (cylinder and depth
    blur) further blurred by the pixel footprint the canvas is rendered with and by the
    camera's defocus (``defocus_px`` photo pixels; ``h_px`` maps canvas px to photo px and
    gives the local scale). A vessel thinner than a pixel loses most of its contrast there.
    """
    if not items:
        return
    m, n = alpha.shape
    for it in items:
        p = it["pts_px"]
        it["iy"] = np.clip(np.round(p[:, 0]).astype(np.int64), 0, m - 1)
        it["ix"] = np.clip(np.round(p[:, 1]).astype(np.int64), 0, n - 1)
        on = (p[:, 0] >= -0.5) & (p[:, 0] < m - 0.5) & (p[:, 1] >= -0.5) & (p[:, 1] < n - 0.5)
        it["on_skin"] = on & (alpha[it["iy"], it["ix"]] >= 0.5)
    iy = np.concatenate([it["iy"] for it in items])
    ix = np.concatenate([it["ix"] for it in items])
    r = 0.4 * ppm
    diffuse, glare = lit["diffuse"], lit["glare"]
    base_d = np.stack([_local_mean(diffuse[c], iy, ix, r) for c in range(3)], axis=1)
    gl = _local_mean(glare, iy, ix, r)[:, None]
    od_pk = np.concatenate([_photo_peak(it, ppm, h_px, defocus_px)[:, None] * it["st"].od_vec[None, :] for it in items])
    base = base_d + gl
    with_v = base_d * np.power(10.0, -od_pk) + gl
    de = deltaE_ciede2000(rgb2lab(_srgb_encode(base * gain0)[None]), rgb2lab(_srgb_encode(with_v * gain0)[None]), channel_axis=-1)[0]
    stride = lit["texture_stride"]
    tex_rms = lit["texture_rms"] if "texture_rms" in lit else _texture_threshold(lit["texture"], ppm, stride, gain0)
    gy, gx = np.minimum(iy // stride, tex_rms.shape[0] - 1), np.minimum(ix // stride, tex_rms.shape[1] - 1)
    thr = np.maximum(_DELTA_E_MIN, _TEXTURE_FACTOR * tex_rms[gy, gx])
    wide = np.concatenate([it["vis_d"] for it in items]) >= 1.0  # soft veins compete with the skin's mottling
    if wide.any():
        coarse = lit["texture_rms_coarse"] if "texture_rms_coarse" in lit else _texture_threshold(lit["texture"], ppm, stride, gain0, coarse=True)
        thr[wide] = np.maximum(thr[wide], _TEXTURE_FACTOR * coarse[gy[wide], gx[wide]])
    ok = de >= thr
    k0 = 0
    for it in items:
        k = len(it["iy"])
        it["seen"] = it["on_skin"] & ok[k0 : k0 + k] & (it["amp"] > 0)
        it["delta_e"] = de[k0 : k0 + k]
        it["thr"] = thr[k0 : k0 + k]
        k0 += k


def _photo_peak(it: dict, ppm: float, h_px: np.ndarray | None, defocus_px: float) -> np.ndarray:
    """Peak OD factor of a vessel as the photo shows it, per centreline point: ``amp`` x the
    blurred cylinder's centre, the blur being the depth blur, the rendering's pixel footprint
    (canvas px) and the camera's defocus (photo px, converted at the local scale)."""
    var_mm2 = it["st"].blur_mm ** 2 + (_PIXEL_APERTURE_PX / ppm) ** 2
    if defocus_px > 0:
        if h_px is None:
            scale = np.ones(len(it["pts_px"]))
        else:  # photo px per canvas px at each point: sqrt|det J| of the homography
            p = it["pts_px"]
            w = h_px[2, 0] * p[:, 1] + h_px[2, 1] * p[:, 0] + h_px[2, 2]
            scale = np.sqrt(abs(np.linalg.det(h_px)) / np.abs(w) ** 3)
        var_mm2 = var_mm2 + (defocus_px / (ppm * scale)) ** 2
    sigma = np.sqrt(var_mm2) * np.ones(len(it["d_mm"]))
    return (it["amp"] * _profile(np.zeros_like(it["d_mm"]), sigma / (0.5 * it["d_mm"]))).astype(np.float32)


def _render_od(items: list[dict], n_structures: int, shape: tuple[int, int], ppm: float, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vessel OD on the canvas, sparse: (flat pixel indices, (P, 3) OD). Each structure is
    the maximum over its branches; structures add up."""
    od_parts: list[tuple[np.ndarray, np.ndarray]] = []
    flat_alpha = alpha.ravel()
    for sid in range(n_structures):
        acc: dict = {}
        mine = [x for x in items if x["sid"] == sid and x["amp"].max() > 0]
        if not mine:
            continue
        st = mine[0]["st"]
        vec = st.od_vec.astype(np.float32)
        sig_r_px = math.hypot(st.blur_mm * ppm, _PIXEL_APERTURE_PX)
        for it in mine:
            r_px = 0.5 * it["d_mm"] * ppm
            reach = float(r_px.max() + 3.5 * sig_r_px + 1.5)
            idx, dist, j, t, seg = _near_polyline(it["pts_px"], reach, shape, window=0 if st.colour == "deep" else 3)
            if idx.size:
                r_here = r_px[seg] * (1 - t) + r_px[seg + 1] * t
                amp = it["amp"]
                a_here = amp[seg] * (1 - t) + amp[seg + 1] * t
                p = (a_here * _profile(dist / r_here, sig_r_px / r_here)).astype(np.float32) * flat_alpha[idx]
                _accumulate_max(acc, idx, p)
        if acc:
            od_parts.append((acc["idx"], acc["val"][:, None] * vec[None, :]))
    idx = np.concatenate([p[0] for p in od_parts]) if od_parts else np.zeros(0, np.int64)
    val = np.concatenate([p[1] for p in od_parts]) if od_parts else np.zeros((0, 3), np.float32)
    order = np.argsort(idx, kind="stable")
    idx, val = idx[order], val[order]
    if not idx.size:
        return idx, val
    starts = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]])
    return idx[starts], np.add.reduceat(val, starts, axis=0)


def _project(h: np.ndarray, pts_yx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map (K, 2) points (y, x) by the homography ``h`` (acting on (x, y, 1)); return the
    mapped points (y, x) and the local scale sqrt|det J| at each point."""
    x, y = pts_yx[:, 1], pts_yx[:, 0]
    w = h[2, 0] * x + h[2, 1] * y + h[2, 2]
    u = (h[0, 0] * x + h[0, 1] * y + h[0, 2]) / w
    v = (h[1, 0] * x + h[1, 1] * y + h[1, 2]) / w
    scale = np.sqrt(np.abs(np.linalg.det(h) / w**3))
    return np.stack([v, u], axis=1), scale


def _label_pass(
    items: list[dict],
    to_photo: np.ndarray,
    photo_shape: tuple[int, int],
    alpha_photo: np.ndarray,
    ppm: float,
) -> dict:
    """Truth on the photo's pixel grid: each vessel's centreline projected by ``to_photo``
    (canvas px -> photo px); a pixel is labelled when within half the visible diameter (at
    least half a pixel) of the nearest centreline point; where vessels overlap, the one with
    the stronger local contrast owns the pixel. Points too faint to see give ``ignore``
    pixels, cleared points none. Sets ``pts_photo``, ``inside`` and ``visible`` per item."""
    m, n = photo_shape
    best = np.zeros(m * n, np.float32)
    labels = np.zeros(m * n, np.uint8)
    diam = np.zeros(m * n, np.float32)
    ignore = np.zeros(m * n, bool)
    owner = np.full(m * n, -1, np.int32)
    flat_alpha = alpha_photo.ravel()
    for it in items:
        st = it["st"]
        pts, sc = _project(to_photo, it["pts_px"])
        it["pts_photo"] = pts
        s_mm = sc * ppm  # photo px per mm at each point
        iy = np.clip(np.round(pts[:, 0]).astype(np.int64), 0, m - 1)
        ix = np.clip(np.round(pts[:, 1]).astype(np.int64), 0, n - 1)
        inframe = (pts[:, 0] >= -0.5) & (pts[:, 0] < m - 0.5) & (pts[:, 1] >= -0.5) & (pts[:, 1] < n - 0.5)
        it["inside"] = inframe & (alpha_photo[iy, ix] >= 0.5)
        it["visible"] = it["inside"] & it["seen"]
        exists = it["amp"] > 0
        if not exists.any() or not inframe.any():
            continue
        w_px = it["vis_d"] * s_mm
        half = np.maximum(0.5 * w_px, 0.5)
        idx, dist, j, t, seg = _near_polyline(pts, float(half.max()) + 1.0, photo_shape, window=0 if st.colour == "deep" else 3)
        if not idx.size:
            continue
        inlab = (dist <= half[j]) & exists[j]
        idx, dist, j, t, seg = idx[inlab], dist[inlab], j[inlab], t[inlab], seg[inlab]
        r_px = 0.5 * it["d_mm"] * s_mm
        sig = np.hypot(st.blur_mm * s_mm, _PIXEL_APERTURE_PX)
        r_here = r_px[seg] * (1 - t) + r_px[seg + 1] * t
        s_here = sig[seg] * (1 - t) + sig[seg + 1] * t
        a_here = it["amp"][seg] * (1 - t) + it["amp"][seg + 1] * t
        strength = (a_here * _profile(dist / r_here, s_here / r_here)).astype(np.float32) * flat_alpha[idx] * np.float32(st.od_vec.max())
        win = strength > best[idx]
        li, jj = idx[win], j[win]
        best[li] = strength[win]
        vis = it["visible"][jj]
        labels[li] = np.where(vis, it["code"][jj], 0)
        diam[li] = np.where(vis, it["vis_d"][jj], 0.0)
        ignore[li] = ~vis
        owner[li] = it["sid"]
    return {
        "labels": labels.reshape(photo_shape),
        "diameter_mm": diam.reshape(photo_shape),
        "ignore": ignore.reshape(photo_shape),
        "owner": owner.reshape(photo_shape),
    }


def _render_vessels(
    structures: list[_Structure], shape: tuple[int, int], ppm: float, geo: dict, skin: dict, gain0: float
) -> dict:
    """Render ``structures`` on a canvas seen straight on (the photo's grid is the canvas):
    OD (sparse), labels, diameters, ignore and centrelines. ``skin`` holds the lit skin
    (``diffuse``, ``glare``, ``texture``, ``texture_stride``)."""
    alpha = geo["skin_alpha"]
    items = _vessel_items(structures, ppm)
    _visibility(items, ppm, alpha, skin, gain0)
    od_idx, od_val = _render_od(items, len(structures), shape, ppm, alpha)
    truth = _label_pass(items, np.eye(3), shape, alpha, ppm)
    truth.update(od_idx=od_idx, od_val=od_val, centrelines=_centrelines(items))
    return truth


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


def _texture_threshold(texture: np.ndarray, ppm: float, stride: int, gain: float, *, coarse: bool = False) -> np.ndarray:
    """Local RMS colour variation (CIEDE2000) of the skin, on the texture's coarse grid.

    ``texture`` is (3, m, n) linear RGB sampled every ``stride`` px. Fine (default): the
    texture against itself smoothed over 1 mm, averaged (RMS) over about 4 mm: what competes
    with a thread vein. ``coarse``: the 1 mm-smoothed skin against the skin smoothed over 4 mm
    (mottling, blotches, the shading towards the leg's edge), RMS over about 12 mm: what
    competes with a soft vein a few millimetres wide.
    """
    def smooth(sigma_mm: float) -> np.ndarray:
        return np.stack([_gauss(np.ascontiguousarray(c), sigma_mm * ppm / stride) for c in texture], axis=-1) * np.float32(gain)

    if coarse:
        a, b, rms_mm = smooth(1.0), smooth(4.0), 12.0
    else:
        a, b, rms_mm = np.moveaxis(texture, 0, -1) * np.float32(gain), smooth(1.0), 4.0
    de = deltaE_ciede2000(rgb2lab(_srgb_encode(a)), rgb2lab(_srgb_encode(b)), channel_axis=-1).astype(np.float32)
    return np.sqrt(_gauss(de**2, rms_mm * ppm / stride))


def _centrelines(items: list[dict]) -> list[dict]:
    """Cut each branch into stretches of one class inside the photo."""
    out = []
    for it in items:
        st = it["st"]
        seg = np.hypot(*np.diff(it["pts_mm"], axis=0).T)
        share = np.zeros(len(seg) + 1)
        share[:-1] += 0.5 * seg
        share[1:] += 0.5 * seg
        key = np.where(it["inside"], it["code"].astype(int), 0)
        cuts = np.flatnonzero(np.diff(key)) + 1
        for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(key)]):
            if key[a] == 0:
                continue
            out.append(
                {
                    "class": CLASSES[key[a] - 1],
                    "points_yx": it["pts_photo"][a:b].astype(np.float64),
                    "points_mm": it["pts_mm"][a:b].astype(np.float64),
                    "diameter_mm": it["vis_d"][a:b].astype(np.float64),
                    "physical_diameter_mm": it["d_mm"][a:b].astype(np.float64),
                    "length_mm": share[a:b],
                    "visible": it["visible"][a:b].copy(),
                    "delta_e": it["delta_e"][a:b].astype(np.float64),
                    "depth_mm": float(st.depth_mm),
                    "kind": st.kind,
                    "structure": int(it["sid"]),
                    "branch": int(it["bi"]),
                    "start": int(a),
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
    rng: np.random.Generator, shape: tuple[int, int], ppm: float, geo: dict, idx: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What is not skin: a background fabric or surface, and clothing beyond the hem, at the
    flat pixel indices ``idx`` only (where the skin is not opaque).

    Returns (2, 3) colours and their brightness patterns at ``idx``: the pixel colour is
    ``colours[0] * bg`` blended into ``colours[1] * cloth`` by ``geo["cloth"]``.
    """
    m, n = shape
    yy = idx // n
    xx = idx % n

    def wave(kx: float, ky: float) -> tuple[np.ndarray, np.ndarray]:
        """sin and cos of kx * x + ky * y at the pixels, from 1-D tables (no per-pixel trig)."""
        ax, ay = kx * np.arange(n), ky * np.arange(m)
        sx, cx, sy, cy = (np.float32(1) * f(a).astype(np.float32) for f, a in ((np.sin, ax), (np.cos, ax), (np.sin, ay), (np.cos, ay)))
        return sx[xx] * cy[yy] + cx[xx] * sy[yy], cx[xx] * cy[yy] - sx[xx] * sy[yy]

    def fabric(palette: dict) -> tuple[np.ndarray, np.ndarray]:
        name = str(rng.choice(sorted(palette)))
        col, weave = palette[name]
        ang = rng.uniform(0, np.pi)
        period = rng.uniform(0.5, 1.0) * ppm
        k = 2 * np.pi / period
        su, cu = wave(k * math.cos(ang), k * math.sin(ang))
        sv, _ = wave(-k * math.sin(ang), k * math.cos(ang))
        pattern = su * sv + np.float32(0.6) * su * cu  # sin u sin v + 0.3 sin 2u
        pattern *= np.float32(0.5 * weave)
        pattern += np.float32(1)
        pattern *= _lognormal_field(rng, shape, 1.0, ((40 * ppm, 0.12), (5 * ppm, 0.025))).ravel()[idx]
        return np.array(col, np.float32), pattern

    bg_col, bg = fabric(_BACKGROUNDS)
    shadow = np.exp(geo["dist_out_mm"].ravel()[idx] * np.float32(-1 / rng.uniform(4, 15)))
    bg *= np.float32(1) - np.float32(rng.uniform(0.2, 0.6)) * shadow
    if geo["cloth"].any():
        cl_col, cl = fabric(_CLOTHES)
    else:
        cl_col, cl = np.zeros(3, np.float32), np.zeros(idx.shape, np.float32)
    return np.stack([bg_col, cl_col]), bg, cl


def _camera_settings(rng: np.random.Generator) -> dict:
    """The session camera's exposure, white balance, defocus (photo px), noise and vignetting,
    drawn first from its stream (the truth's visibility needs the defocus before the render)."""
    exposure = float(np.exp(rng.normal(0.0, 0.12)))
    temp = rng.normal(0.0, 0.07)
    tint = rng.normal(0.0, 0.03)
    wb = np.array([math.exp(temp), math.exp(tint), math.exp(-temp)], np.float32)
    defocus = float(rng.uniform(0.3, 0.8))
    shot = float(rng.uniform(0.00005, 0.0004))
    read = float(rng.uniform(1e-6, 1e-5))
    vig = float(rng.uniform(0.05, 0.2))
    return dict(exposure=exposure, wb=wb, defocus=defocus, shot=shot, read=read, vig=vig)


def _camera(
    rng: np.random.Generator, scene: np.ndarray, gain0: float, jpeg_quality: int | None, settings: dict
) -> tuple[np.ndarray, dict, bytes | None]:
    """Exposure, white balance, vignetting, defocus, sensor noise, sRGB, JPEG.

    (3, M, N) linear image on the photo's grid (overwritten) -> (M, N, 3) uint8 photo.
    ``settings`` from :func:`_camera_settings` on the same ``rng``.
    """
    exposure, wb, defocus = settings["exposure"], settings["wb"], settings["defocus"]
    shot, read, vig = settings["shot"], settings["read"], settings["vig"]
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
    jpeg = None
    if jpeg_quality is not None:
        buf = _io.BytesIO()
        Image.fromarray(rgb).save(buf, format="JPEG", quality=int(jpeg_quality))
        jpeg = buf.getvalue()
        with Image.open(_io.BytesIO(jpeg)) as im:
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    return np.ascontiguousarray(rgb), {
        "exposure": exposure,
        "white_balance_rgb": [float(x) for x in wb],
        "defocus_sigma_px": defocus,
        "shot_noise": shot,
        "read_noise_var": read,
        "vignetting": vig,
    }, jpeg
