"""Generic vessel map of any image (retina, microscopy): a score and a binary mask.

Method (unsupervised, one fixed parameter set for every image):

1. Vessel channel: green for RGB (highest vessel contrast in fundus and bright-field images),
   the image itself for greyscale; inverted when vessels are bright (``bright=True``).
2. Outside the field of view (FOV) the image is extended by iterated mean padding, so the
   FOV rim does not look like a vessel (Soares et al. 2006, doi:10.1109/TMI.2006.879967).
3. Background normalisation: the image minus a large-scale median background, divided by the
   local contrast (robust spread) so that one threshold fits dim and bright parts alike.
4. Multi-scale Hessian line strength (scale-normalised largest eigenvalue with the ridge's
   sign, weighted by Frangi's line-likeness: Frangi et al. 1998, doi:10.1007/BFb0056195),
   from :func:`veinscope.vesselness.ridge_response`.
5. Score: the strength scaled to [0, 1] by its 99.5th percentile in the FOV; mask: hysteresis
   thresholds in units of the FOV's median strength (Canny 1986, doi:10.1109/TPAMI.1986.4767851).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from scipy import ndimage as ndi

from veinscope._version import __version__

__all__ = ["VesselMap", "vesselmap"]

_SIGMAS = (1.0, 1.5, 2.25, 3.4, 5.0)


@dataclass(frozen=True)
class VesselMap:
    """Result of :func:`vesselmap`.

    Attributes
    ----------
    score : ndarray (M, N) float32 in [0, 1], higher = more vessel; 0 outside the FOV
    mask : ndarray (M, N) bool, False outside the FOV
    params : dict
    """

    score: np.ndarray
    mask: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)


def vesselmap(
    image,
    *,
    fov=None,
    bright: bool = False,
    sigmas_px=_SIGMAS,
    background_px: float = 25.0,
    high: float = 6.0,
    low: float = 3.0,
    min_size_px: int = 30,
    line_power: float = 0.0,
) -> VesselMap:
    """Vessel score and mask of a grey or RGB image.

    Parameters
    ----------
    image : ndarray (M, N) or (M, N, 3), any dtype
    fov : ndarray (M, N) bool, optional
        Field of view; the whole image when None.
    bright : bool
        Vessels brighter than the background (fluorescence); default dark vessels.
    sigmas_px : sequence of float
        Hessian scales in pixels.
    background_px : float
        Size of the median background window.
    high, low : float
        Hysteresis thresholds in units of the FOV's median line strength.
    min_size_px : int
        Smaller connected pieces of the mask are removed.
    line_power : float
        Exponent of Frangi's line-likeness weight on the strength (0: strength alone).
    """
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] in (3, 4):
        chan = img[..., 1]
    elif img.ndim == 2:
        chan = img
    else:
        raise ValueError(f"image must have shape (M, N) or (M, N, 3), got {img.shape}")
    if chan.size == 0:
        raise ValueError("image must not be empty")
    x = chan.astype(np.float32)
    if np.issubdtype(chan.dtype, np.integer):
        x /= float(np.iinfo(chan.dtype).max)
    elif chan.dtype == np.bool_:
        x = chan.astype(np.float32)
    if not bright:
        x = 1.0 - x
    m, n = x.shape
    f = np.ones((m, n), bool) if fov is None else np.asarray(fov, dtype=bool)
    if f.shape != (m, n):
        raise ValueError(f"fov must have shape {(m, n)}, got {f.shape}")
    if not f.any():
        raise ValueError("fov is empty: no pixel to analyse")
    x = _extend_outside(x, f)
    k = int(background_px) | 1
    bg = cv2.medianBlur(np.clip(x * 255, 0, 255).astype(np.uint8), min(k, 255)).astype(np.float32) / 255.0
    d = x - bg
    spread = cv2.GaussianBlur(np.abs(d), (0, 0), background_px)
    d = d / np.maximum(spread, np.median(spread[f]) * 0.25 + 1e-6)
    from veinscope.vesselness import ridge_response

    rr = ridge_response(d, sigmas_px=tuple(sigmas_px), black_ridges=False, gamma=0.05)
    q = rr.strength * rr.vesselness**line_power
    q[~f] = 0
    unit = float(np.median(q[f])) + 1e-9
    top = float(np.percentile(q[f], 99.5)) + 1e-9
    score = np.clip(q / top, 0, 1).astype(np.float32)
    strong = q >= high * unit
    weak = q >= low * unit
    lab, nl = ndi.label(weak, structure=np.ones((3, 3), bool))
    keep = np.zeros(nl + 1, bool)
    keep[np.unique(lab[strong])] = True
    keep[0] = False
    sizes = np.bincount(lab.ravel(), minlength=nl + 1)
    keep &= sizes >= min_size_px
    mask = keep[lab] & f
    params = {
        "sigmas_px": list(sigmas_px),
        "background_px": background_px,
        "high": high,
        "low": low,
        "min_size_px": min_size_px,
        "line_power": line_power,
        "bright": bright,
        "version": __version__,
    }
    return VesselMap(score=score, mask=mask, params=params)


def _extend_outside(x: np.ndarray, fov: np.ndarray, iterations: int = 40) -> np.ndarray:
    """Iterated mean padding: each ring outside the FOV takes the mean of its inside neighbours."""
    if fov.all():
        return x.copy()
    out = np.where(fov, x, 0).astype(np.float32)
    inside = fov.copy()
    ker = np.ones((3, 3), np.float32)
    for _ in range(iterations):
        ring = cv2.dilate(inside.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~inside
        if not ring.any():
            break
        s = cv2.filter2D(out * inside, -1, ker, borderType=cv2.BORDER_CONSTANT)
        c = cv2.filter2D(inside.astype(np.float32), -1, ker, borderType=cv2.BORDER_CONSTANT)
        out[ring] = s[ring] / np.maximum(c[ring], 1)
        inside |= ring
    if not inside.all():
        out[~inside] = float(out[inside].mean())
    return out
