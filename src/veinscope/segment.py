"""Skin mask, vessel detection, and the classes of the detected vessels.

Data flow: photo -> :func:`skin_mask` -> (chromophores) -> ridge response -> :func:`detect_vessels`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np

from veinscope._grid import keep_large_filled, median_filter, nearest_fill
from veinscope.colour import srgb8_to_lab_f32

__all__ = ["CLASS_CODES", "CLASS_NAMES", "VesselDetection", "detect_vessels", "fill_vessel_gaps", "skin_mask"]

log = logging.getLogger(__name__)

#: Label codes of ``labels.png`` (output contract).
CLASS_CODES = {"red_telangiectasia": 1, "blue_telangiectasia": 2, "reticular": 3, "over_3mm": 4}
CLASS_NAMES = tuple(CLASS_CODES)

# Broad prior of skin chrominance in YCrCb (Chai and Ngan 1999, doi:10.1109/76.767122),
# widened to reach very light and very dark skin; refined per photo below.
_CR_RANGE = (133.0, 180.0)
_CB_RANGE = (77.0, 135.0)


def skin_mask(rgb, *, exclude=None, work_px: int = 512) -> np.ndarray:
    """Skin pixels of a photo of a leg.

    A broad chrominance prior (YCrCb) picks candidate pixels; the photo's own skin colour is
    then modelled robustly (median and MAD of CIELAB a*, b* over the candidates) and pixels
    close to it are kept. Small islands are removed, enclosed structures (veins, freckles,
    hair) are filled in, and very dark or clipped (glare) pixels are excluded again.

    A white, grey or beige background under warm light (a floor, a wall, tiles, gravel) can
    pass the prior. Its colour then forms a second cluster among the candidates, near the
    neutral axis: far less red than skin, whose a* comes from haemoglobin. A two-component
    Gaussian mixture of the candidates' (a*, b*) finds it (if not, a second fit over the pixels
    with the Cr bound relaxed by 6, as the mask itself, finds a background that a cooler white
    balance has taken partly out of the prior); when the clusters are well apart, the
    less red one has under half the other's a*, and the redder one holds at least a quarter of
    the candidates, and the neutral cluster covers more of the photo's border than of its centre
    (a background surrounds the subject), the skin is modelled without it and every pixel more
    likely under it is left out. (A small, very red cluster is clothing, and a cluster at the
    centre is the subject: the skin is kept.)

    Parameters
    ----------
    rgb : ndarray (M, N, 3) uint8
    exclude : ndarray (M, N) bool, optional
        Pixels that are never skin (e.g. the calibration card).
    work_px : int
        The long side of the working resolution (the mask is computed there and upsampled).

    Returns
    -------
    ndarray (M, N) bool
    """
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise ValueError(f"rgb must be a (M, N, 3) uint8 array, got shape {a.shape} dtype {a.dtype}")
    m, n = a.shape[:2]
    f = min(1.0, work_px / max(m, n))
    small = a
    if f < 1:
        size = (max(1, round(n * f)), max(1, round(m * f)))
        # halve first (OpenCV's fast path for whole factors), then area-average to the size
        while small.shape[1] >= 2 * size[0] and small.shape[0] >= 2 * size[1]:
            small = cv2.resize(small, (small.shape[1] // 2, small.shape[0] // 2), interpolation=cv2.INTER_AREA)
        if small.shape[:2] != (size[1], size[0]):
            small = cv2.resize(small, size, interpolation=cv2.INTER_AREA)
    ycc = cv2.cvtColor(small, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    lab = srgb8_to_lab_f32(small)
    y, cr, cb = ycc[..., 0], ycc[..., 1], ycc[..., 2]
    usable = (np.maximum(np.maximum(small[..., 0], small[..., 1]), small[..., 2]) < 250) & (lab[..., 0] > 12)
    prior = usable & (cr >= _CR_RANGE[0]) & (cr <= _CR_RANGE[1]) & (cb >= _CB_RANGE[0]) & (cb <= _CB_RANGE[1]) & (y > 30)
    if prior.sum() < 0.01 * prior.size:
        log.info("skin prior found %.2f%% of the photo", 100 * prior.mean())
        return np.zeros((m, n), bool) if prior.sum() == 0 else _upsample(_clean(prior, usable), (m, n), exclude=exclude)
    # Robust model of this photo's skin colour.
    ab = lab[..., 1:][prior]
    neutral = _neutral_cluster(ab)
    wide = prior
    if neutral is None:
        # then over every pixel the mask below may take (Cr relaxed by 6): a background just
        # under the prior's Cr bound (a cooler white balance) is only partly in the prior
        wide = usable & (cr >= _CR_RANGE[0] - 6) & (cr <= _CR_RANGE[1]) & (cb >= _CB_RANGE[0]) & (cb <= _CB_RANGE[1]) & (y > 30)
        neutral = _neutral_cluster(lab[..., 1:][wide])
    if neutral is not None:
        background = neutral.closer_to_neutral(lab[..., 1:].reshape(-1, 2)).reshape(prior.shape)
        if not _surrounds(background & wide):
            neutral = None  # a cluster at the centre of the photo is part of the subject: keep it
    if neutral is not None:
        # a warm-cast neutral surface (floor, wall, tiles) passed the prior: model the skin
        # without it, and leave out whatever is closer to it than to the skin
        log.info("skin prior: a neutral cluster (a* %.1f, %.0f%% of the prior) left out", neutral.mean[0],
                 100 * background[prior].mean())
        ab = lab[..., 1:][prior & ~background]
    centre = np.median(ab, axis=0)
    spread = 1.4826 * np.median(np.abs(ab - centre), axis=0)
    spread = np.maximum(spread, 2.5)
    d2 = (((lab[..., 1:] - centre) / spread) ** 2).sum(axis=2)
    skin = usable & (d2 < 4.0**2) & (cr >= _CR_RANGE[0] - 6)
    if neutral is not None:
        skin &= ~background
    return _upsample(_clean(skin, usable), (m, n), exclude=exclude, rgb=a)


def _surrounds(mask: np.ndarray, *, border_frac: float = 0.05) -> bool:
    """True when ``mask`` covers a larger share of the photo's border (the outer ``border_frac``
    of the long side) than of its central half: a background surrounds the subject."""
    m, n = mask.shape
    b = max(1, round(border_frac * max(m, n)))
    inner = mask[b : m - b, b : n - b]
    border_share = (np.count_nonzero(mask) - np.count_nonzero(inner)) / max(1, mask.size - inner.size)
    centre_share = np.count_nonzero(mask[m // 4 : 3 * m // 4, n // 4 : 3 * n // 4]) / max(1, (m - 2 * (m // 4)) * (n - 2 * (n // 4)))
    return border_share > centre_share


@dataclass(frozen=True)
class _Cluster2:
    """Two Gaussian clusters in CIELAB (a*, b*): the skin and a near-neutral background."""

    mean: np.ndarray  # (2,) the neutral cluster's mean
    cov: np.ndarray  # (2, 2)
    weight: float
    skin_mean: np.ndarray
    skin_cov: np.ndarray
    skin_weight: float

    def closer_to_neutral(self, ab: np.ndarray) -> np.ndarray:
        """(K,) bool: points more likely under the neutral cluster than under the skin's."""
        return _gauss_loglik(ab, self.mean, self.cov, self.weight) > _gauss_loglik(ab, self.skin_mean, self.skin_cov, self.skin_weight)


def _gauss_loglik(x: np.ndarray, mean: np.ndarray, cov: np.ndarray, weight: float) -> np.ndarray:
    d = np.asarray(x, np.float64) - mean
    ic = np.linalg.inv(cov)
    q = ic[0, 0] * d[:, 0] ** 2 + 2 * ic[0, 1] * d[:, 0] * d[:, 1] + ic[1, 1] * d[:, 1] ** 2
    return math.log(weight) - 0.5 * math.log(np.linalg.det(cov)) - 0.5 * q


def _two_clusters(x: np.ndarray, *, iters: int = 40, bin_size: float = 1.0, splits=(0.1, 0.5, 0.9)):
    """Two-component Gaussian mixture of points ``x`` (K, 2) by EM (Dempster et al. 1977,
    doi:10.1111/j.2517-6161.1977.tb01600.x).

    The points are binned first (``bin_size`` units; a few hundred to two thousand occupied
    bins instead of up to 200 000 pixels) and EM runs on the bin centres weighted by their counts.
    It starts from splits of the points along their principal axis at the given quantiles (a
    small second cluster is missed from the median split alone) and the fit with the highest
    likelihood is returned: deterministic. Returns (weights (2,), means (2, 2), covariances (2, 2, 2)).
    """
    q = np.rint(np.asarray(x, np.float32) * np.float32(1 / bin_size)).astype(np.int32)
    q0 = q.min(axis=0)
    q -= q0
    ncol = int(q[:, 1].max()) + 1
    count = np.bincount(q[:, 0] * ncol + q[:, 1])
    key = np.flatnonzero(count)
    pts = (np.stack([key // ncol, key % ncol], axis=1) + q0) * bin_size
    cnt = count[key].astype(np.float64)
    total = cnt.sum()
    mu = (cnt @ pts) / total
    d = pts - mu
    _, vec = np.linalg.eigh((cnt[:, None] * d).T @ d / total + 1e-6 * np.eye(2))
    p = d @ vec[:, -1]
    order = np.argsort(p)
    cum = np.cumsum(cnt[order])
    ridge = (bin_size**2 / 12 + 0.1) * np.eye(2)  # the binning's variance and a floor: keeps covariances invertible
    best = None
    for quantile in splits:
        r = (p > p[order][min(len(p) - 1, np.searchsorted(cum, quantile * total))]).astype(np.float64)
        resp = np.stack([1.0 - r, r], axis=1)
        means = np.zeros((2, 2))
        for _ in range(iters):
            last = means
            wr = resp * cnt[:, None]
            nk = wr.sum(axis=0) + 1e-9
            w = nk / total
            means = (wr.T @ pts) / nk[:, None]
            covs = np.stack([((wr[:, k, None] * (pts - means[k])).T @ (pts - means[k])) / nk[k] + ridge for k in range(2)])
            ll = np.stack([_gauss_loglik(pts, means[k], covs[k], max(w[k], 1e-9)) for k in range(2)], axis=1)
            top = ll.max(axis=1, keepdims=True)
            resp = np.exp(ll - top)
            norm = resp.sum(axis=1, keepdims=True)
            resp /= norm
            if np.abs(means - last).max() < 0.01:  # a*/b* units: converged
                break
        loglik = float(cnt @ (top[:, 0] + np.log(norm[:, 0])))
        if best is None or loglik > best[0]:
            best = (loglik, w, means, covs)
    return best[1:]


# A second colour cluster among the prior's pixels is taken for a neutral background (not
# skin) when the two clusters are separated (distance of the means over their RMS spread) by at
# least _NEUTRAL_SEPARATION, its redness a* is under _NEUTRAL_REDNESS_RATIO of the other's (skin's
# redness is haemoglobin's; a white, grey or beige surface under a warm light has little), and
# the redder cluster holds at least _NEUTRAL_SKIN_SHARE of the pixels (the skin is the photo's
# subject: a small very red cluster is clothing, not the leg). Chosen on the legs-dev photos and
# synthetic set A (seeds 400-423) with wide margins; see BENCHMARKS.md, session 11.
_NEUTRAL_SEPARATION = 2.5
_NEUTRAL_REDNESS_RATIO = 0.5
_NEUTRAL_SKIN_SHARE = 0.25


def _neutral_cluster(ab: np.ndarray) -> _Cluster2 | None:
    """The near-neutral background cluster among the skin prior's (a*, b*) values, or None."""
    if len(ab) < 200:
        return None
    w, means, covs = _two_clusters(ab)
    lo = int(np.argmin(means[:, 0]))
    hi = 1 - lo
    sep = float(np.linalg.norm(means[0] - means[1]) / math.sqrt(0.5 * (np.trace(covs[0]) + np.trace(covs[1]))))
    if (
        sep >= _NEUTRAL_SEPARATION
        and means[hi, 0] > 0
        and means[lo, 0] < _NEUTRAL_REDNESS_RATIO * means[hi, 0]
        and w[hi] >= _NEUTRAL_SKIN_SHARE
    ):
        return _Cluster2(means[lo], covs[lo], float(w[lo]), means[hi], covs[hi], float(w[hi]))
    return None


def fill_vessel_gaps(skin, width_px: float, *, exclude=None, work_px: int = 1024) -> np.ndarray:
    """The skin mask with the gaps a wide vein cuts into it filled in.

    A dark reticular vein or a vein over 3 mm is far from the skin's colour, so the colour
    model leaves it out of the skin; where it runs off the edge of the leg it is not enclosed,
    so filling holes does not bring it back. A closing with a disc a little wider than the
    widest vessel searched for (``width_px``, full-resolution pixels) does, and changes little
    else (narrow notches of the outline). Returns a new (M, N) bool mask.
    """
    skin = np.asarray(skin, dtype=bool)
    m, n = skin.shape
    if width_px <= 0 or not skin.any():
        return skin.copy()
    f = min(1.0, work_px / max(m, n))
    small = skin.view(np.uint8) * np.uint8(255)
    if f < 1.0:
        small = cv2.resize(small, (max(1, round(n * f)), max(1, round(m * f))), interpolation=cv2.INTER_AREA)
    k = 2 * int(math.ceil(0.6 * width_px * f)) + 3
    closed = cv2.morphologyEx(small, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    added = cv2.subtract(closed, small)
    if f < 1.0:
        added = cv2.resize(added, (n, m), interpolation=cv2.INTER_LINEAR)
    out = skin | (added > 127)
    if exclude is not None:
        out &= ~np.asarray(exclude, dtype=bool)
    return out


def _clean(skin: np.ndarray, usable: np.ndarray) -> np.ndarray:
    k = max(3, int(round(max(skin.shape) / 150)) | 1)
    ker = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    s = cv2.morphologyEx(skin.astype(np.uint8), cv2.MORPH_OPEN, ker)
    s = cv2.morphologyEx(s, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)))
    return keep_large_filled(s, min_frac_of_largest=0.1, min_frac_of_image=0.002)


def _upsample(small: np.ndarray, shape, *, exclude=None, rgb=None) -> np.ndarray:
    m, n = shape
    up = cv2.resize(small.astype(np.uint8) * 255, (n, m), interpolation=cv2.INTER_LINEAR) > 127
    if rgb is not None:
        # Clipped highlights and near-black pixels carry no colour: never measure there.
        r, g, b = cv2.split(rgb)
        mx = cv2.max(cv2.max(r, g), b)
        bad = cv2.inRange(mx, 20, 252) == 0
        if bad.any():
            bad = cv2.dilate(bad.view(np.uint8), np.ones((3, 3), np.uint8)).view(bool)
            up &= ~bad
    if exclude is not None:
        ex = np.asarray(exclude, dtype=bool)
        if ex.shape != (m, n):
            raise ValueError(f"exclude must have shape {(m, n)}, got {ex.shape}")
        up &= ~ex
    return up


# --------------------------------------------------------------------------- vessel detection


@dataclass(frozen=True)
class VesselDetection:
    """Centreline pixels of the detected vessels, grouped into segments.

    Attributes
    ----------
    points_yx : ndarray (K, 2) int32
        Centreline pixels (row, col), sorted row-major.
    segment : ndarray (K,) int32
        Segment index 0..n_segments-1 of each point (8-connected centreline chains).
    strength : ndarray (K,) float32
        Ridge strength at the point (vessel-signal units).
    normals_yx : ndarray (K, 2) float32
        Unit vector across the vessel.
    scale_px : ndarray (K,) float32
        Hessian scale at which the vessel responded most.
    n_segments : int
    noise : float
        Robust spread of the ridge strength over the skin (the detection's noise unit).
    thresholds : tuple of float
        (low, high) hysteresis thresholds actually used, in strength units.
    weak : ndarray (n_segments,) bool or None
        With ``detect_vessels(weak_bands=True)``: segments that lie only in bands the hysteresis
        and the long-band rule would have dropped (to be judged by their colour); else None.
    tracked : ndarray (K,) bool or None
        Points added by following a chain past its end (:func:`veinscope.extend.extend_ends`):
        they belong to their chain, but its colour and overlap are judged on the detected points
        only; None: none added.
    reached : ndarray (K,) bool or None
        Points added by carrying a chain on to its vessel's end face
        (:func:`veinscope.extend.reach_end_faces`): points of their chain's vessel (its length,
        its painting, the vessels shorter chains' overlap is judged against), but the chain's
        colour, its own overlap with longer chains and the lone-patch rule are judged without
        them, and they take the chain's width (at the end face the profile is the end's);
        None: none added.
    follows : ndarray (n_segments,) int or None
        With ``detect_vessels(rates_guard=...+"follow")``: for a chain that only the lowered
        levels find and that is kept because it lies near a chain the fixed levels find
        (``"near"``), that chain (the vessel it continues, whose class it takes in
        :func:`veinscope.measure.measure_vessels`); -1 for the others. None: none recorded.
    fixed_points : ndarray (n_segments,) int or None
        With ``detect_vessels(rates_guard=...+"colour")``, where a level was lowered: how many of
        each chain's points lie on (within 1 px of) the centreline the fixed levels find in the
        bands they keep; -1 for
        the chains added after detection (deep veins). The chain's other points,
        and those followed on past its ends (``tracked``) because it grew long enough, are there
        only because a level was lowered: :func:`veinscope.measure.measure_vessels` judges the
        colour of a chain made mostly of them with its error bar. None: not recorded.
    fixed : VesselDetection or None
        With ``detect_vessels(fixed_too=True)``, where ``level_rates`` lowered a level: the
        chains at the fixed levels (``high_noise``, ``low_noise``), to the bit those of
        :func:`detect_vessels` without ``level_rates`` and ``rates_guard`` on the same ridge map
        (:func:`keep_fixed_centreline` takes both). None: not asked for, or no level lowered (the
        chains are then the fixed levels' own).
    """

    points_yx: np.ndarray
    segment: np.ndarray
    strength: np.ndarray
    normals_yx: np.ndarray
    scale_px: np.ndarray
    n_segments: int
    noise: float
    thresholds: tuple[float, float]
    weak: np.ndarray | None = None
    tracked: np.ndarray | None = None
    reached: np.ndarray | None = None
    follows: np.ndarray | None = None
    fixed_points: np.ndarray | None = None
    fixed: VesselDetection | None = None


def _without_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` (bool) with every hole filled: the parts of its complement that do
    not reach the image's frame (4-connected; a card lying on the skin, a naevus or a dark patch
    the colour model left out) become mask, so only the outline against the background and
    clothing that reach the frame stays (non-skin wholly surrounded by skin counts as a hole)."""
    m, n = mask.shape
    pad = np.ones((m + 2, n + 2), np.uint8)  # 1 off the mask and on a frame round the image
    np.logical_not(mask, out=pad[1:-1, 1:-1].view(bool))
    cv2.floodFill(pad, None, (0, 0), 2)
    return pad[1:-1, 1:-1] != 2


def _inner_skin(skin: np.ndarray, border_px: int) -> tuple[np.ndarray, np.ndarray]:
    """The skin ``detect_vessels`` measures its noise and keeps centrelines on, and the skin closed.

    ``closed``: the skin with small excluded specks (glare, clipped pixels) closed over 9 px, as
    they would otherwise cut vessels into pieces. ``inner``: ``closed`` eroded by ``border_px``
    (away from the outline) and within the skin; the skin itself when ``border_px`` is 0.
    """
    closed = cv2.morphologyEx(skin.view(np.uint8), cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8)).view(bool)
    inner = skin
    if border_px > 0 and skin.any():
        ker = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * border_px + 1, 2 * border_px + 1))
        inner = cv2.erode(closed.view(np.uint8), ker).view(bool) & skin
    return inner, closed


def detect_vessels(
    ridge,
    skin,
    signal=None,
    *,
    min_symmetry: float = 0.35,
    high_noise: float = 5.0,
    low_noise: float = 2.5,
    min_strength: float = 0.015,
    min_length_px: float = 8.0,
    min_piece_px: int = 3,
    max_gap_px: int = 1,
    long_length_px: float | None = None,
    snap: bool = True,
    border_px: int = 3,
    noise_cell_px: int = 64,
    consume: bool = False,
    weak_bands: bool = False,
    level_rates: tuple[float, float] | None = None,
    rates_guard: str | None = None,
    rates_gap_px: float = 0.0,
    rates_long_px: float | None = None,
    fixed_too: bool = False,
) -> VesselDetection:
    """Vessel centrelines by ridge non-maximum suppression and hysteresis.

    Centreline candidates are pixels where the ridge strength peaks across the vessel
    (Steger 1998, doi:10.1109/34.659930) and the strength passes ``low``. They are kept inside
    the connected bands of pixels >= ``low`` that reach ``high`` somewhere and extend at least
    ``min_length_px`` (hysteresis, Canny 1986, doi:10.1109/TPAMI.1986.4767851, on bands rather
    than on 1-pixel chains, which a faint vessel's noise breaks into pieces). Thresholds are in units of
    the photo's own texture noise (robust spread of the strength over skin), with an
    absolute floor ``min_strength`` so a perfectly clean photo does not turn noise into veins.

    Parameters
    ----------
    ridge : RidgeResponse
        From :func:`veinscope.vesselness.ridge_response` on the vessel signal (bright ridges);
        ``weighted=True`` there saves the vesselness map (the strength comes weighted by it).
    skin : ndarray (M, N) bool
    signal : ndarray (M, N) float, optional
        The map the ridges were found on; when given, points whose profile is not darker than
        the skin on both sides (edges) are dropped, and so are points whose profile sample on
        either side (``2 scale + 1`` px along the normal) lies off the skin, its holes filled
        (the shaded rim of a leg beside clothing).
    min_symmetry : float
        The weaker side's contrast must be at least this fraction of the stronger side's.
    high_noise, low_noise : float
        Hysteresis thresholds in units of the local texture strength (see :func:`_local_noise`).
    noise_cell_px : int
        Cell size of the local texture map, in pixels.
    min_strength : float
        Absolute floor of the low threshold, in strength units.
    min_length_px : float
        Shortest structure kept, in pixels: the diagonal of the bounding box of its connected
        band of ridge pixels above the low level.
    min_piece_px : int
        Pieces of centreline shorter than this (in pixels) inside a kept band are dropped.
    snap : bool
        Move candidates to the sub-pixel crest of the ridge first (see
        :func:`veinscope._kernels.ridges.snap_to_crest`): one line along a wide vessel instead of
        a staircase of dashes.
    long_length_px : float or None
        A band above the low level that does not reach the high level is kept all the same
        when it extends at least this far (the diagonal of its bounding box): evidence from
        length instead of from one strong point. ``None``: only bands that reach the high level.
    max_gap_px : int
        Chain ends are joined across gaps of up to this many pixels first (a faint vessel's
        centreline breaks where noise or the pixel grid moves its crest by a pixel).
    border_px : int
        Centreline pixels this close to the skin edge are ignored.
    consume : bool
        The caller hands ``ridge`` over: its ``strength`` array is overwritten and the arrays
        not needed any more are released as soon as possible (saves two image-sized float32
        maps at the memory peak of a 12 MP analysis when ``ridge`` is passed as a temporary).
    level_rates : (float, float) or None
        Lower ``low_noise`` and ``high_noise`` (never raise them) to the skin's own quantiles of
        the line strength in local units at these shares of its pixels (:func:`_rate_levels`).
        ``None``: the fixed levels.
    rates_guard : str or None
        Where ``level_rates`` lowered a level, how a chain that only the lowered levels find is
        judged: one with no point in (1 px from) a band the fixed levels keep. Words joined by
        ``+``: ``"weak"``, such a chain is marked weak (``weak``; with ``weak_bands`` the caller
        judges it by its colour, as a band that fails the fixed hysteresis is); ``"drop"``, it is
        dropped; ``"long"``, it is kept as any chain when its centreline extends
        ``rates_long_px`` (the diagonal of its bounding box), evidence from length; ``"near"``, it
        is kept as any chain when one of its points lies within ``rates_gap_px`` of a point of a
        chain the fixed levels find (the same vessel on across a gap where its ridge dips under
        the fixed low level: good continuation); ``"grow"`` (with ``"near"``), also of a chain
        kept by ``"long"`` or by ``"near"`` itself, piece by piece; ``"follow"`` (with ``"near"``),
        such a chain kept by ``"near"`` records the fixed levels' chain nearest it
        (``VesselDetection.follows``): it is that vessel's faint stretch, and takes its class;
        ``"colour"``, each chain records how many of its points lie on the fixed levels'
        centreline (``VesselDetection.fixed_points``; one more centreline pass at the fixed
        levels), and the colour of a chain made mostly of other points is judged with its error bar.
        A chain in a band the fixed
        levels would have judged weak stays weak. ``None``: every chain kept as the lowered levels find it.
    rates_gap_px : float
        ``rates_guard``'s ``"near"`` distance, in pixels.
    rates_long_px : float or None
        ``rates_guard``'s ``"long"`` length, in pixels; ``None``: ``long_length_px``.
    weak_bands : bool
        Keep the centrelines of the bands that fail the hysteresis and the long-band rule too
        (bands at least ``min_length_px`` long; their pieces ``min_piece_px`` like any), marked in
        ``VesselDetection.weak``: the caller judges them by other evidence (their colour against
        the skin beside them, :func:`veinscope.measure.measure_vessels`' ``weak_min_delta_e``).
        A chain that joins a kept band's centreline (a gap bridged) is not weak.
    fixed_too : bool
        Also find the chains at the fixed levels (``high_noise``, ``low_noise``), where
        ``level_rates`` lowered a level (``VesselDetection.fixed``): the same chains, to the bit,
        as this function without ``level_rates`` (and ``rates_guard``) on the same ridge map,
        found from this call's noise map, bands and centreline candidates instead of a second
        call's (:func:`keep_fixed_centreline` takes both).

    Returns
    -------
    VesselDetection
        The chains; with ``fixed_too`` the fixed levels' chains in its ``fixed`` (None where no
        level was lowered: they are the chains themselves).
    """
    from veinscope._kernels.ridges import (
        centreline_candidates, keep_in_labels, mark_in_labels, ridge_regions, strong_labels,
    )  # fmt: skip

    skin = np.asarray(skin, dtype=bool)
    if skin.shape != ridge.strength.shape:
        raise ValueError(f"skin must have shape {ridge.strength.shape}, got {skin.shape}")
    # Line strength: the scale-normalised ridge strength weighted by Frangi's line-likeness,
    # so round blobs (nails, naevi, pores) weigh less than elongated structures.
    if ridge.vesselness is None:  # ridge_response(..., weighted=True): the product already
        q = ridge.strength if consume else ridge.strength.copy()
    elif consume:
        q = ridge.strength
        np.multiply(q, ridge.vesselness, out=q)
    else:
        q = ridge.strength * ridge.vesselness
    normal_y, normal_x, scale_px = ridge.normal_y, ridge.normal_x, ridge.scale_px
    del ridge  # the vesselness map is not needed any more
    inner, closed = _inner_skin(skin, border_px)
    # the profile test's side points must lie on the skin, holes filled (see centreline_candidates)
    flank = _without_holes(closed)
    del closed
    noise_map = _local_noise(q, inner, cell_px=noise_cell_px)
    noise = float(np.median(noise_map)) if noise_map.size else 0.0
    fixed_kept = fixed_weak = fixed_band = None  # the fixed levels' kept and weak bands, when rates_guard judges the gains
    fixed_levels = None  # (low, high): the fixed levels' bands wanted, for the guard and the fixed centreline or chains
    colour = False
    if level_rates is not None:
        low0, high0 = float(low_noise), float(high_noise)
        low_noise, high_noise = _rate_levels(q, inner, noise_map, noise_cell_px, low_noise, high_noise, level_rates)
        if (rates_guard or fixed_too) and (low_noise < low0 or high_noise < high0):
            colour = bool(rates_guard) and "colour" in rates_guard.split("+")
            fixed_levels = (low0, high0)
    lvl = (float(noise_cell_px), float(low_noise), float(high_noise), float(min_strength))
    # Hysteresis on ridge regions (Canny 1986, doi:10.1109/TPAMI.1986.4767851, applied to the
    # connected band of pixels above the low level rather than to the 1-pixel centreline): a
    # band is a vessel when it reaches the high level somewhere and extends at least
    # min_length_px (the diagonal of its bounding box). Bands tolerate the small breaks and
    # side-steps of a faint vessel's centreline that cut 1-pixel chains into pieces.
    region = np.empty(q.shape, np.uint8)
    ridge_regions(q, np.ascontiguousarray(inner), noise_map, lvl[0], lvl[1], lvl[2], lvl[3], region)
    # BBDT (Grana 2010): the same components and numbering as OpenCV's default (Spaghetti), both
    # scan 2x2 blocks, but with the statistics about 3x faster on one thread (0.03 vs 0.09 s, 12 MP)
    nreg, lab, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(region, 8, cv2.CV_32S, cv2.CCL_BBDT)
    keep = _kept_bands(lab, region, nreg, stats, min_length_px, long_length_px)
    del region
    extent = np.hypot(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
    # One pass: ridge non-maximum suppression, the low level relative to the skin texture
    # around each point (texture differs across a photo: shaved vs hairy skin, shadow vs
    # light) with an absolute floor, and the symmetric-profile test: edges of broad structures
    # (a shadow, the rim of a hand) give a one-sided ridge, so only points darker than the
    # skin on BOTH sides, both sides on the skin, are kept.
    cand = np.empty(q.shape, np.uint8)
    sig = np.zeros((1, 1), np.float32) if signal is None else np.ascontiguousarray(signal, dtype=np.float32)
    centreline_candidates(
        q, normal_y, normal_x, scale_px, np.ascontiguousarray(inner), noise_map,
        lvl[0], lvl[1], lvl[1], lvl[3], sig, signal is not None, flank, float(min_symmetry), cand,
    )  # fmt: skip
    del flank
    det_f = cand_k = cand_f = None
    if weak_bands:
        weak = ~keep & (extent >= min_length_px)
        weak[0] = False
        mark_in_labels(cand, lab, keep, weak)  # weak bands' candidates 3, the kept ones' 2
    else:
        keep_in_labels(cand, lab, keep)
    del lab
    if fixed_levels is not None:
        # The fixed levels' bands (1 kept, 3 weak) and their candidates: the lowered levels'
        # candidates where the fixed levels' band map passes its low level. The same test (ridge
        # maximum, symmetric profile, both sides on the skin) at a level never lower, and the
        # same strong mark (2 from twice min_strength up) once the low level is passed; so no
        # second candidate pass, and their chains are detect_vessels' at the fixed levels to the
        # bit (tests/test_rate_levels.py). Taken from the candidates just marked (after the
        # lowered levels' labels are released, memory): a band the fixed levels keep lies in one
        # the lowered levels keep (its pixels pass the lower levels, its strong pixel the lower
        # high level, its extent is no larger), whose candidates are unmarked, and one they would
        # judge weak in one the lowered levels keep or judge weak (its candidates nonzero).
        band_f, cand_k, cand_f = _fixed_bands(q, inner, noise_map, noise_cell_px, *fixed_levels, min_strength,
                                              min_length_px, long_length_px, cand, 3 if weak_bands else 0)  # fmt: skip
        if rates_guard:
            # the fixed levels' kept bands 1 px round (the crest's snap and bridged gaps) and weak bands
            fixed_kept = cv2.dilate((band_f == 1).view(np.uint8), np.ones((3, 3), np.uint8)).view(bool)
            fixed_weak = band_f == 3
        del band_f
        if not fixed_too:
            cand_f = None
        if not colour:
            cand_k = None
    if cand_k is not None:
        # the centreline the fixed levels find in the bands they keep, 1 px round it (the
        # same crest stepped by the snap or the pixel grid): points of the lowered levels'
        # chains off it are the lowered levels' own. (A chain in a band they would judge
        # weak counts as the lowered levels' too: counting those bands as theirs keeps
        # more undecided chains, set A's precision 0.912 -> 0.911; BENCHMARKS.md session 34)
        fixed_band = _centreline_points(cand_k, q, normal_y, normal_x, scale_px, snap, int(max_gap_px),
                                        int(min_piece_px))  # fmt: skip
        fixed_band = cv2.dilate(fixed_band.view(np.uint8), np.ones((3, 3), np.uint8)).view(bool)
    if cand_f is not None:
        cand_f = _snapped_thinned(cand_f, q, normal_y, normal_x, scale_px, snap, max_gap_px)
        det_f = _detection(*_kept_chains(cand_f, min_piece_px, weak_bands), q, normal_y, normal_x, scale_px, noise,
                           (low0 * noise, high0 * noise))  # fmt: skip
    del cand_k, cand_f
    # Thin to 8-connected one-pixel chains (drops the redundant pixel of L-corners) so that
    # chain lengths follow Kulpa's weights.
    cand = _snapped_thinned(cand, q, normal_y, normal_x, scale_px, snap, max_gap_px)
    ys, xs, seg, kept, weak_seg = _kept_chains(cand, min_piece_px, weak_bands)
    del cand
    follows = fixed_points = None
    if kept and fixed_kept is not None:
        ys, xs, seg, kept, weak_seg, follows = _guard_rate_gains(ys, xs, seg, kept, weak_seg, fixed_kept, fixed_weak,
                                                                 rates_guard,
                                                                 long_length_px if rates_long_px is None else rates_long_px,
                                                                 rates_gap_px, return_follows=True)
        if kept == 0:
            weak_seg = np.zeros(0, bool) if weak_bands else None  # as found empty
        if kept == 0 or "follow" not in rates_guard.split("+") or not (follows >= 0).any():
            follows = None
    if kept and fixed_band is not None:
        # after every renumbering above: each final chain's points on the fixed levels' centreline
        fixed_points = np.bincount(seg, weights=fixed_band[ys, xs], minlength=kept)[:kept].astype(np.int64)
    return _detection(ys, xs, seg, kept, weak_seg, q, normal_y, normal_x, scale_px, noise,
                      (low_noise * noise, high_noise * noise), follows=follows, fixed_points=fixed_points, fixed=det_f)  # fmt: skip


def _kept_chains(cand, min_piece_px, weak_bands):
    """The chains of thinned centreline candidates (uint8: 2 strong, 1 not, 3 in a weak band; 0
    none): ``ys, xs, seg, kept, weak_seg``, the 8-connected pieces of at least ``min_piece_px``
    points numbered 0..kept-1 and, with ``weak_bands``, which have no strong point (else None)."""
    from veinscope._kernels.ridges import kept_points

    nlab, lab = cv2.connectedComponents(cand, connectivity=8, ltype=cv2.CV_32S)
    nlab -= 1
    ys = xs = seg = np.zeros(0, np.intp)
    kept = 0
    if nlab > 0:
        ys, xs, seg, kept = kept_points(lab, cand, nlab, int(min_piece_px))
    del lab
    if kept == 0:
        ys = xs = seg = np.zeros(0, np.intp)
    weak_seg = None
    if weak_bands:
        # a chain is weak when none of its points comes from a kept band (2); bridged pixels are 1
        weak_seg = np.bincount(seg, weights=cand[ys, xs] == 2, minlength=kept)[:kept] == 0
    return ys, xs, seg, kept, weak_seg


def _detection(ys, xs, seg, kept, weak_seg, q, normal_y, normal_x, scale_px, noise, thresholds, *, follows=None,
               fixed_points=None, fixed=None) -> VesselDetection:
    """A :class:`VesselDetection` of these chains (``kept`` of them), each point's strength,
    normal and scale read from the maps; ``noise`` and ``thresholds`` recorded as given."""
    return VesselDetection(
        points_yx=np.stack([ys, xs], axis=1).astype(np.int32),
        segment=np.asarray(seg).astype(np.int32),
        strength=q[ys, xs].astype(np.float32),
        normals_yx=np.stack([normal_y[ys, xs], normal_x[ys, xs]], axis=1).astype(np.float32),
        scale_px=scale_px[ys, xs].astype(np.float32),
        n_segments=int(kept),
        noise=float(noise),
        thresholds=(float(thresholds[0]), float(thresholds[1])),
        weak=weak_seg,
        follows=follows,
        fixed_points=fixed_points,
        fixed=fixed,
    )


def _snapped_thinned(cand, q, normal_y, normal_x, scale_px, snap, max_gap_px) -> np.ndarray:
    """Centreline candidates (uint8) moved onto the crest (when ``snap``), gaps of
    ``max_gap_px`` bridged and thinned to 8-connected one-pixel chains (in place where it can)."""
    from veinscope._kernels.ridges import bridge_gaps, snap_to_crest, thin_corners

    if snap:
        from veinscope.vesselness import MIN_LEVEL_SIGMA_PX

        snapped = np.zeros_like(cand)
        snap_to_crest(cand, q, normal_y, normal_x, scale_px, float(MIN_LEVEL_SIGMA_PX), snapped)
        cand = snapped
    bridge_gaps(cand, int(max_gap_px))
    thin_corners(cand)
    return cand


def _centreline_points(cand, q, normal_y, normal_x, scale_px, snap, max_gap_px, min_piece_px) -> np.ndarray:
    """(M, N) bool: the centreline points :func:`detect_vessels` keeps from these candidates
    (uint8, their bands' choice made; snapped, gaps bridged, thinned, pieces of ``min_piece_px``)."""
    from veinscope._kernels.ridges import kept_points

    cand = _snapped_thinned(cand, q, normal_y, normal_x, scale_px, snap, max_gap_px)
    nlab, clab = cv2.connectedComponents(cand, connectivity=8, ltype=cv2.CV_32S)
    out = np.zeros(q.shape, np.uint8)
    if nlab > 1:
        ys, xs, _, kept = kept_points(clab, cand, nlab - 1, int(min_piece_px))
        out[ys, xs] = 1
    return out.view(bool)


def keep_fixed_centreline(fixed: VesselDetection, lowered: VesselDetection, *, min_piece_px: int,
                          near_px: float = 2.0, follow: bool = False) -> VesselDetection:
    """The fixed levels' chains as they are, and the lowered levels' points only beyond them.

    ``fixed`` and ``lowered`` are :func:`detect_vessels`' chains of one photo at the fixed
    levels and with ``level_rates`` (each carried on as the caller does, e.g. past its ends by
    :func:`veinscope.extend.extend_ends`). Where the lowered levels widen a vessel's band they
    redraw its crest a pixel or two off the fixed levels' one and follow it on past its end
    themselves; and a chain they make longer pools the profiles of its faint stretch into the
    widths of its strong one (:func:`veinscope.diameter.profile_diameters` pools along a chain).
    Here every fixed chain keeps its points (one chain, as before), and a lowered point is kept only
    beyond the fixed centreline: farther than ``max(near_px, 2 sqrt(3) scale)`` across the
    nearest fixed point's chain (``scale`` its Hessian scale: a bar of width ``w`` answers
    most at ``w / (2 sqrt 3)``, so this is one width) or more than 0.75 px along it (past
    its end: beside a chain, the nearest point is the foot of the perpendicular), and not on
    it. A lowered chain none of whose points was so dropped is kept whole, with its standing;
    of the others, the 8-connected runs of at least ``min_piece_px`` points left are chains of
    their own, weak as their lowered chain, and (with ``follow``) each follows the fixed
    chain nearest it (``follows``: the same vessel on, it takes that chain's class). A fixed
    chain is weak only where every lowered chain along it (within the distance above) is: the
    lowered levels decide which bands are strong. ``fixed_points`` (when ``lowered`` has them):
    a fixed chain's point count, a run's 0, a whole chain's own. Returns a new detection, points
    row-major, chains numbered whole lowered ones, fixed ones, runs (those left without points
    dropped), noise and thresholds ``lowered``'s.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    kf, kl = fixed.points_yx.shape[0], lowered.points_yx.shape[0]
    if kf == 0 or kl == 0:
        return lowered
    nl, nf = int(lowered.n_segments), int(fixed.n_segments)
    pf = fixed.points_yx.astype(np.float64)
    pl = lowered.points_yx.astype(np.float64)
    reach_f = np.maximum(float(near_px), 2.0 * math.sqrt(3.0) * fixed.scale_px.astype(np.float64))
    d, j = cKDTree(pf).query(pl)
    off = pl - pf[j]
    nrm = fixed.normals_yx[j].astype(np.float64)
    across = np.abs(off[:, 0] * nrm[:, 0] + off[:, 1] * nrm[:, 1])
    along = np.abs(off[:, 0] * nrm[:, 1] - off[:, 1] * nrm[:, 0])
    beyond = (d >= 1.0) & ((along > 0.75) | (across > reach_f[j]))
    seg_l = lowered.segment.astype(np.int64)
    cut = np.bincount(seg_l[~beyond], minlength=nl)[:nl] > 0
    idx = np.flatnonzero(beyond)
    nrun, run = 0, np.zeros(0, np.int64)
    if idx.size:
        # 8-connected runs of the points left, within each lowered chain; a cut chain's short runs go
        pairs = cKDTree(pl[idx]).query_pairs(1.5, output_type="ndarray")
        if pairs.size:
            pairs = pairs[seg_l[idx[pairs[:, 0]]] == seg_l[idx[pairs[:, 1]]]]
        graph = coo_matrix((np.ones(pairs.shape[0]), (pairs[:, 0], pairs[:, 1])), shape=(idx.size, idx.size))
        nrun, run = connected_components(graph, directed=False)
        short = cut[seg_l[idx]] & (np.bincount(run, minlength=nrun)[run] < int(min_piece_px))
        idx, run = idx[~short], run[~short]
    # the fixed chain nearest each run, and each whole lowered chain
    near_run = np.full(nrun, -1, np.int64)
    near_whole = np.full(nl, -1, np.int64)
    if idx.size:
        first = np.lexsort((d[idx], run))
        u, at = np.unique(run[first], return_index=True)
        near_run[u] = fixed.segment[j[idx[first[at]]]]
        first = np.lexsort((d[idx], seg_l[idx]))
        u, at = np.unique(seg_l[idx][first], return_index=True)
        near_whole[u] = fixed.segment[j[idx[first[at]]]]
    # chain numbers: whole lowered chains (0..nl-1), fixed chains (nl..), runs of cut chains (nl + nf..)
    seg = np.concatenate([nl + fixed.segment.astype(np.int64), np.where(cut[seg_l[idx]], nl + nf + run, seg_l[idx])])
    used = np.bincount(seg, minlength=nl + nf + nrun) > 0
    new_id = np.cumsum(used) - 1
    run_chain = np.zeros(nrun, np.int64)  # the lowered chain each run comes from
    run_chain[run] = seg_l[idx]

    def chains(a_l, a_f, a_r=None):
        """Per chain: the lowered chains' ``a_l``, the fixed chains' ``a_f``, then the runs' ``a_r``
        (their lowered chain's ``a_l`` when None)."""
        return np.concatenate([a_l, a_f, a_l[run_chain] if a_r is None else a_r])[used]

    def per_point(name):
        a, b = getattr(fixed, name), getattr(lowered, name)
        if a is None and b is None:
            return None
        a = np.zeros(kf, bool) if a is None else np.asarray(a, bool)
        b = np.zeros(kl, bool) if b is None else np.asarray(b, bool)
        return np.concatenate([a, b[idx]])[order]

    pts = np.concatenate([fixed.points_yx, lowered.points_yx[idx]]).astype(np.int32)
    order = np.lexsort((pts[:, 1], pts[:, 0]))
    weak = None
    if lowered.weak is not None or fixed.weak is not None:
        weak_l = np.zeros(nl, bool) if lowered.weak is None else np.asarray(lowered.weak, bool)
        weak_f = np.zeros(nf, bool) if fixed.weak is None else np.asarray(fixed.weak, bool)
        # a fixed chain is weak only where every lowered chain along it is
        dd, jj = cKDTree(pl).query(pf)
        on = dd <= reach_f
        has = np.bincount(fixed.segment[on], minlength=nf)[:nf] > 0
        strong = np.bincount(fixed.segment[on], weights=~weak_l[seg_l[jj[on]]], minlength=nf)[:nf] > 0
        weak = chains(weak_l, np.where(has, ~strong, weak_f))
    follows = None
    if follow:
        fl = np.full(nl, -1, np.int64) if lowered.follows is None else np.asarray(lowered.follows, np.int64)
        to_fixed = np.where(near_whole >= 0, new_id[nl + np.maximum(near_whole, 0)], -1)
        f_run = np.where(near_run >= 0, new_id[nl + np.maximum(near_run, 0)], -1)
        follows = chains(np.where(fl >= 0, to_fixed, -1), np.full(nf, -1, np.int64), f_run)
        if not (follows >= 0).any():
            follows = None
    fixed_points = None
    if lowered.fixed_points is not None:
        fixed_points = chains(np.asarray(lowered.fixed_points, np.int64), np.bincount(fixed.segment, minlength=nf)[:nf],
                              np.zeros(nrun, np.int64))  # fmt: skip
    return VesselDetection(
        points_yx=pts[order],
        segment=new_id[seg][order].astype(np.int32),
        strength=np.concatenate([fixed.strength, lowered.strength[idx]]).astype(np.float32)[order],
        normals_yx=np.concatenate([fixed.normals_yx, lowered.normals_yx[idx]]).astype(np.float32)[order],
        scale_px=np.concatenate([fixed.scale_px, lowered.scale_px[idx]]).astype(np.float32)[order],
        n_segments=int(used.sum()),
        noise=lowered.noise,
        thresholds=lowered.thresholds,
        weak=weak,
        tracked=per_point("tracked"),
        reached=per_point("reached"),
        follows=follows,
        fixed_points=fixed_points,
    )


def _kept_bands(lab, region, nreg, stats, min_length_px, long_length_px) -> np.ndarray:
    """Per band label 0..nreg-1: kept by the hysteresis (it reaches the high level and extends
    at least ``min_length_px``, the diagonal of its bounding box) or, with ``long_length_px``, by
    its length alone (a faint vessel whose band never reaches the high level anywhere still runs
    on above the low level for ``long_length_px``: texture rises above the low level in short
    runs, pores, creases, hair ends, a vessel along its whole length)."""
    from veinscope._kernels.ridges import strong_labels

    keep = strong_labels(lab, region, nreg - 1)
    extent = np.hypot(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
    keep &= extent >= min_length_px
    if long_length_px is not None and long_length_px < np.inf:
        keep |= extent >= long_length_px
    keep[0] = False
    return keep


def _sample(img: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``img`` at float positions (clamped to the image)."""
    m, n = img.shape
    y = np.clip(y, 0, m - 1)
    x = np.clip(x, 0, n - 1)
    y0 = np.minimum(np.floor(y).astype(np.intp), m - 2 if m > 1 else 0)
    x0 = np.minimum(np.floor(x).astype(np.intp), n - 2 if n > 1 else 0)
    y1 = np.minimum(y0 + 1, m - 1)
    x1 = np.minimum(x0 + 1, n - 1)
    fy = y - y0
    fx = x - x0
    return (img[y0, x0] * (1 - fx) + img[y0, x1] * fx) * (1 - fy) + (img[y1, x0] * (1 - fx) + img[y1, x1] * fx) * fy


def _rate_levels(q, inner, noise_map, cell_px, low_noise, high_noise, rates, *, stride=4):
    """The hysteresis levels (in local noise units) lowered to the photo's own false-alarm rates.

    The levels are fixed multiples of the local noise unit, the mean line strength of the skin
    around each place (:func:`_local_noise`). How often the skin's own strength passes a fixed
    multiple of its mean depends on the shape of its distribution: light skin's texture (pores,
    hair, mottling: a few strong lines among many weak ones) is heavy-tailed, the camera noise
    that dominates dark skin (the OD's noise grows as the light falls) is not. On set A's
    generated photos, off the vessels, 1-2 % of light skin's pixels pass 5 units and 4-6 % pass
    3, against 0.2-0.3 % and 2-3 % on skin types 5-6 (BENCHMARKS.md session 32): at the same
    levels the engine asks more of a dark photo's vessels than of a light photo's.

    ``rates`` (low, high): the share of the inner skin's pixels (every ``stride``-th pixel in
    each direction; vessels included, so a photo full of strong vessels reads heavier-tailed and
    keeps its levels) whose strength in local units is at least the level. Each level becomes the
    smaller of its own and the skin's quantile at that share: never stricter than the fixed one,
    and lower only where the skin false-alarms less than that. The low level stays at most the high.
    """
    ys, xs = np.nonzero(inner[::stride, ::stride])
    if ys.size < 1000:
        return low_noise, high_noise
    ys, xs = ys * stride, xs * stride
    unit = _upsample_at(noise_map, cell_px, ys.astype(np.float64), xs.astype(np.float64))
    ok = unit > 0
    if ok.sum() < 1000:
        return low_noise, high_noise
    z = q[ys[ok], xs[ok]] / unit[ok]
    q_lo, q_hi = np.quantile(z, [1.0 - rates[0], 1.0 - rates[1]])
    high = min(float(high_noise), float(q_hi))
    low = min(float(low_noise), float(q_lo), high)
    return low, high


def _fixed_bands(q, inner, noise_map, cell_px, low_noise, high_noise, min_strength, min_length_px,
                 long_length_px, cand, weak_mark):
    """The bands :func:`detect_vessels` keeps at the fixed levels and their candidates.

    Returns ``band``, ``cand_kept``, ``cand_marked`` (each (M, N) uint8): ``band`` 1 in the bands
    kept, 3 in those it would mark weak there (at least ``min_length_px`` long but kept by
    neither the hysteresis nor their length), 0 elsewhere; ``cand_kept`` ``cand`` in the kept
    bands, 0 elsewhere; ``cand_marked`` that and ``weak_mark`` at ``cand``'s nonzero pixels in
    the weak bands. One pass over the labels (a table lookup and two masks, 2-3x slower at 12 MP).
    """
    from veinscope._kernels.ridges import ridge_regions, split_in_labels

    region = np.empty(q.shape, np.uint8)
    ridge_regions(q, np.ascontiguousarray(inner), noise_map, float(cell_px), float(low_noise), float(high_noise),
                  float(min_strength), region)  # fmt: skip
    nreg, lab, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(region, 8, cv2.CV_32S, cv2.CCL_BBDT)
    keep = _kept_bands(lab, region, nreg, stats, min_length_px, long_length_px)
    weak = ~keep & (np.hypot(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]) >= min_length_px)
    weak[0] = False
    code = keep.astype(np.uint8) + 3 * weak.astype(np.uint8)
    cand_kept = np.empty_like(cand)
    cand_marked = np.empty_like(cand)
    split_in_labels(cand, lab, code, np.uint8(weak_mark), region, cand_kept, cand_marked)  # the band map over region
    return region, cand_kept, cand_marked


def _guard_rate_gains(ys, xs, seg, kept, weak_seg, fixed_kept, fixed_weak, guard, long_px, gap_px=0.0, *,
                      return_follows=False):
    """The chains of :func:`detect_vessels` with ``level_rates`` judged by ``rates_guard``.

    A chain with a point in ``fixed_kept`` (the fixed levels' kept bands) stays as it is. Any
    other is kept as it is too when ``"long"`` and its centreline's bounding box's diagonal is at
    least ``long_px``, or ``"near"`` and one of its points lies within ``gap_px`` of a point of a
    chain on ``fixed_kept`` (with ``"grow"``: of any chain kept, repeated from each chain so kept).
    Otherwise a chain with a point in ``fixed_weak`` is weak (as the fixed
    levels would have had it) and the others, found only because a level was lowered, are weak
    (``"weak"``) or dropped (``"drop"``). Returns ``ys, xs, seg, kept, weak_seg`` and, with
    ``return_follows``, ``follows``: (kept,) int, for a chain kept by ``"near"`` the chain on ``fixed_kept`` its points
    come nearest to (with ``"grow"``, that of the chain it was kept from), -1 for the others.
    """
    words = set(guard.split("+"))
    on_kept = np.bincount(seg, weights=fixed_kept[ys, xs], minlength=kept)[:kept] > 0
    on_weak = np.bincount(seg, weights=fixed_weak[ys, xs], minlength=kept)[:kept] > 0
    judged = ~on_kept
    follows = np.full(kept, -1, np.int64)
    if "long" in words and long_px is not None and judged.any():
        y0 = np.full(kept, np.iinfo(np.int64).max)
        x0 = y0.copy()
        y1 = np.full(kept, -1)
        x1 = y1.copy()
        np.minimum.at(y0, seg, ys)
        np.minimum.at(x0, seg, xs)
        np.maximum.at(y1, seg, ys)
        np.maximum.at(x1, seg, xs)
        judged &= np.hypot(y1 - y0 + 1, x1 - x0 + 1) < long_px
    if "near" in words and gap_px > 0 and judged.any() and (~judged).any():
        from scipy.spatial import cKDTree

        pts = np.stack([ys, xs], axis=1).astype(np.float64)
        ref = (~judged) if "grow" in words else on_kept  # "grow": from the long chains too
        while ref.any():
            at = judged[seg]
            on_ref = np.flatnonzero(ref[seg])
            d, j = cKDTree(pts[on_ref]).query(pts[at], distance_upper_bound=float(gap_px))
            close = np.zeros(kept, bool)
            near = np.isfinite(d)
            close[seg[at][near]] = True
            # each chain so kept follows the reference chain its nearest point lies by (one that
            # is itself a gain passes on the fixed chain it follows)
            c_near, r_near = seg[at][near], seg[on_ref[j[near]]]
            first = np.lexsort((d[near], c_near))
            c_near, r_near = c_near[first], r_near[first]
            u, at_first = np.unique(c_near, return_index=True)
            anchor = r_near[at_first]
            follows[u] = np.where(follows[anchor] >= 0, follows[anchor], anchor)
            judged &= ~close
            # "grow": on from each chain kept so, pieces of one vessel in a row
            if "grow" not in words or not close.any() or not judged.any():
                break
            ref = close
    new = judged & ~on_weak
    weak = np.zeros(kept, bool) if weak_seg is None else weak_seg.copy()
    weak |= judged & on_weak
    if "drop" in words:
        if new.any():
            sel = ~new[seg]
            ids = np.cumsum(~new) - 1
            ys, xs, seg = ys[sel], xs[sel], ids[seg[sel]].astype(np.int32)
            weak = weak[~new]
            follows = np.where(follows >= 0, ids[np.maximum(follows, 0)], -1)[~new]  # the followed are never new
            kept = int((~new).sum())
    else:
        weak |= new
    weak = weak if weak_seg is not None or weak.any() else weak_seg
    return (ys, xs, seg, kept, weak, follows) if return_follows else (ys, xs, seg, kept, weak)


def _local_noise(q: np.ndarray, where: np.ndarray, *, cell_px: int) -> np.ndarray:
    """Coarse map of the typical line strength of the skin texture around each place.

    The mean of ``q`` over skin in cells of ``cell_px`` pixels, then a 5x5-cell median, so cells
    crossed by a vessel take the value of the texture around them. Returns (m, n) float32.
    """
    from veinscope._kernels.chroma import block_sum

    m, n = q.shape
    gm, gn = -(-m // cell_px), -(-n // cell_px)
    total = np.empty((gm, gn), np.float64)
    count = np.empty((gm, gn), np.float64)
    block_sum(q, np.ascontiguousarray(where), cell_px, total, count)
    valid = count > 0.1 * cell_px * cell_px
    if not valid.any():
        return np.zeros((gm, gn), np.float32)
    grid = np.where(valid, total / np.maximum(count, 1.0), 0).astype(np.float32)
    if not valid.all():
        grid = nearest_fill(grid, valid)
    return median_filter(grid, 5)


def _upsample_at(grid: np.ndarray, cell_px: int, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Bilinear value of a coarse grid (cell centres) at full-resolution pixels."""
    return _sample(grid, (ys + 0.5) / cell_px - 0.5, (xs + 0.5) / cell_px - 0.5)


def add_deep_veins(det: VesselDetection, red_signal, skin, *, sigmas_px, min_piece_px: float, min_length_px: float,
                   noise_cell_px: int, high_noise: float = 5.0, low_noise: float = 3.0,
                   line_gamma: float = 0.01, min_courses: float = 3.0, step: int = 1,
                   rgb=None, min_delta_e: float = 0.0, min_red_share: float = 0.0,
                   min_straight: float = 0.0, join_widths: float = 0.0, over_weak: bool = False,
                   hold_min_strength: float | None = None) -> VesselDetection:
    """``det`` with the wide veins a coarse-scale detection on the red channel finds away from it.

    A vein a millimetre or more under the skin darkens the red channel most: green and blue
    light are remitted from the upper dermis (1/e depths of about 0.3 and 0.2 mm against 1.6 mm
    for red), so the blood below them barely changes them, and it is the missing red light that
    makes such a vein look blue (Kienle et al. 1996, :DOI:`10.1364/AO.35.001151`). The
    detection signal is matched to a vessel's haemoglobin colour and to the skin's fine
    texture, and on it a deep vein is a small part of its own colour; on dark skin, whose
    melanin absorbs green and blue far more than red, the red channel is where such a vein is
    still seen. Ridges of the red channel's relative OD are found at the coarse scales
    ``sigmas_px`` only (a deep vein is wide and soft; the fine scales are texture and the
    ordinary detection's), with the same hysteresis, profile test and outline rule as
    :func:`detect_vessels` on that map's own noise unit, and every centreline piece lying over
    two of its scales (about its width) from the ordinary detection's points, at least
    ``min_piece_px`` long and at least ``min_courses`` of its widths long (two of its scales
    each: a course, not a blotch) is added as a chain of its own (not weak: it reached the high level
    of its own map). The caller measures the added chains' widths on the red channel and judges
    them like any other chain (colour, melanin, the ΔE00 gate, overlap).

    With ``step`` > 1 the search runs on the red channel and the skin mask shrunk ``step`` times
    (pixel areas averaged, :func:`cv2.resize` ``INTER_AREA``; every length and scale divided by
    ``step``): the veins sought are tens of pixels wide, a coarse scale of a millimetre is still
    several pixels there, and the search costs about a ``step``-squaredth. The pieces found are
    mapped back to full resolution (each point to the top-left pixel of its block, 8-neighbours
    joined through the pixels between them), their scales multiplied by ``step``.

    Parameters
    ----------
    det : VesselDetection
    red_signal : ndarray (M, N) float32
        The red channel's OD relative to the skin's background (vessels positive), 0 off the skin.
        May be overwritten when ``step`` is 1 (pass a copy if it is needed afterwards).
    skin : ndarray (M, N) bool
    sigmas_px : sequence of float
        The coarse Hessian scales.
    min_piece_px, min_length_px, noise_cell_px, high_noise, low_noise, line_gamma
        As for :func:`detect_vessels` (``min_piece_px``: the shortest added piece, px).
    min_courses : float
        The shortest added piece in its own widths (twice its median scale).
    step : int
        Shrink factor of the search (1: full resolution).
    rgb : ndarray (M, N, 3) uint8, optional
        The photo, for the colour gate (``min_delta_e``, ``min_red_share``); None: no colour gate.
    min_delta_e : float
        The least CIEDE2000 difference between a piece and the skin beside it (two and three of
        its scales out on both sides, read on the photo shrunk as the search; medians over the
        piece's points).
    min_red_share : float
        The least ratio of the piece's red optical-density contrast to the mean of its green and
        blue ones (linear light): a deep vein's is mostly red, shading's grey.
    min_straight : float
        The least extent of a piece end to end (along its principal axis) over its length in
        points: a piece curling round a blotch is long but spans little; 0: no such rule.
    join_widths : float
        0 (the default): every piece is judged alone. Above 0: a piece that fails the course
        rule or the colour gate alone is kept when its course passes them: the pieces of one
        ridge of the search (cut where it passes an ordinary point) and the pieces whose ends
        face each other (each within 45 degrees of the other's outward direction, along their
        principal axes) across at most ``join_widths`` of their mean width, its length their
        points, its colour read over its pieces. Such a piece (a member) must itself be at least
        ``min_piece_px`` long, half ``min_courses`` of its widths, straight (``min_straight``),
        not along the photo's frame, and its own colour must pass the gate with its margins
        halved (ΔE00 at least half ``min_delta_e``, red share at least halfway from 1 to
        ``min_red_share``); the course's length and colour are its members' and its pieces' kept
        alone (a shorter fragment between them joins them but is not counted, nor are the gaps).
        A soft vein near the visibility threshold comes out of the search in
        pieces of one to three widths (its ridge falls under the low level here and there,
        another vessel crossing it cuts it), each short of the course rule alone, and the colour
        of a short piece is a noisy median.
    over_weak : bool
        False (the default): every point of ``det`` holds the search off (two of the deep
        point's scales). True: only the points of chains not ``det.weak``; a weak chain (a band that did not reach the high level, kept by
        the caller only if its colour passes the ΔE00 gate) does not, and a deep point on a pixel
        of such a chain takes it from the chain. A soft vein's ordinary detection is often such a
        chain, dropped later, and the deep piece along it was lost with it.
    hold_min_strength : float, optional
        A chain of ``det`` whose strongest point is under this (strength units) does not hold
        the search off: with :func:`detect_vessels`' ``level_rates`` the caller passes the fixed
        high level (``high_noise`` times the photo's median noise unit), so that the thin chains
        only the lowered levels find along a soft vein do not take its deep pieces away
        (BENCHMARKS.md session 32); a deep point on one of its pixels takes it, with
        ``over_weak`` or without. None: every chain may hold it.

    Returns
    -------
    VesselDetection
        Sorted row-major as :func:`detect_vessels` returns it; the added chains numbered after
        ``det``'s; ``det`` itself when nothing is added.
    """
    from dataclasses import replace

    from veinscope.vesselness import ridge_response

    skin = np.asarray(skin, dtype=bool)
    m, n = skin.shape
    step = int(step)
    if step < 1:
        raise ValueError(f"step must be a positive integer, got {step!r}")
    if step > 1:
        ms, ns = -(-m // step), -(-n // step)  # the last partial block kept
        pad = ((0, ms * step - m), (0, ns * step - n))
        red_s = np.asarray(red_signal, np.float32)
        skin_u8 = skin.view(np.uint8) * np.uint8(255)
        if ms * step != m or ns * step != n:
            red_s, skin_u8 = np.pad(red_s, pad), np.pad(skin_u8, pad)
        red_s = cv2.resize(red_s, (ns, ms), interpolation=cv2.INTER_AREA)
        skin_s = cv2.resize(skin_u8, (ns, ms), interpolation=cv2.INTER_AREA) >= 128
        del skin_u8
        red_s[~skin_s] = 0.0
    else:
        ms, ns, red_s, skin_s = m, n, red_signal, skin
    deep = detect_vessels(
        ridge_response(red_s, sigmas_px=tuple(np.asarray(sigmas_px, float) / step), black_ridges=False, gamma=line_gamma,
                       weighted=True),
        skin_s, red_s, high_noise=high_noise, low_noise=low_noise, min_length_px=min_length_px / step,
        min_piece_px=int(round(min_piece_px / step)), long_length_px=None,
        noise_cell_px=max(8, int(round(noise_cell_px / step))), consume=True,
    )  # fmt: skip
    p = deep.points_yx
    if p.shape[0] == 0:
        return det
    # (with over_weak, a weak chain, which measure_vessels keeps only at its ΔE00 gate, does not
    # hold the deep search off the vein it may lie on, unless its colour already passes that gate)
    lifted = np.zeros(det.n_segments, bool)
    if over_weak and det.weak is not None and det.points_yx.shape[0]:
        lifted = np.asarray(det.weak, bool).copy()
    if hold_min_strength is not None and det.points_yx.shape[0]:
        top = np.full(det.n_segments, -np.inf)
        np.maximum.at(top, det.segment, det.strength.astype(np.float64))
        lifted = lifted | (top < float(hold_min_strength))

    def far_from(held_off):
        # away from the ordinary detection's chains not ``held_off``: over two of the deep
        # point's own scales (about a vein's width)
        occupied = np.full((ms, ns), 255, np.uint8)
        sel = ~held_off[det.segment] if det.points_yx.shape[0] else np.zeros(0, bool)
        if sel.any():
            occupied[det.points_yx[sel, 0] // step, det.points_yx[sel, 1] // step] = 0
        dist = cv2.distanceTransform(occupied, cv2.DIST_L2, 5)
        return dist[p[:, 0], p[:, 1]] > 2.0 * deep.scale_px

    far = far_from(lifted)
    if not far.any():
        return det

    def gated(far):
        if not far.any():
            return far, np.full(p.shape[0], -1, np.int32)
        # the pieces left, each at least min_piece_px long, numbered after det's chains
        img = np.zeros((ms, ns), np.uint8)
        img[p[far, 0], p[far, 1]] = 1
        n_lab, lab = cv2.connectedComponents(img, connectivity=8, ltype=cv2.CV_32S)
        del img
        piece = lab[p[:, 0], p[:, 1]] - 1
        del lab
        size = np.bincount(piece[far], minlength=n_lab - 1)
        # a course, not a patch: at least min_piece_px and three of its widths long (a bar of width w
        # answers most at sigma = w / 2; a soft blotch of the skin's colour is about as long as wide)
        width = 2.0 * _median_per_label(piece[far], deep.scale_px[far], n_lab - 1)
        long_enough = (size >= min_piece_px / step) & (size >= min_courses * width)
        straight = np.ones(n_lab - 1, bool)
        if min_straight > 0 and (long_enough.any() or join_widths > 0):
            # end to end as well as along: a piece curling round a blotch is long but spans little
            straight = _piece_extent(p[far], piece[far], n_lab - 1) >= min_straight * size
            long_enough &= straight
        gate = rgb is not None and (min_delta_e > 0 or min_red_share > 0)
        if gate and long_enough.any():
            # a vein's colour: seen against the skin beside it, and mostly red (shading darkens all
            # three channels alike, the skin's own mottling green and blue most)
            de, red_share = _piece_colour(rgb, step, (ms, ns), skin_s, p, deep.normals_yx, deep.scale_px,
                                          np.where(far & long_enough[np.maximum(piece, 0)], piece, -1), n_lab - 1)
            long_enough &= (de >= min_delta_e) & (red_share >= min_red_share)
        if join_widths > 0 and n_lab > 2:
            # or, short of the rules alone, judged with its course: the pieces of one ridge of the
            # search and the pieces whose ends face it; a member is itself a stretch of vessel (at
            # least min_piece_px, half the course rule in its own widths, straight, not along the
            # frame: the photo's edge, where the skin is cut off) and its own colour passes the gate
            # with its margins halved (a short piece's colour is a noisy median, but a grey piece is
            # shading, whatever course it lies on)
            framed = _along_frame(p[far], piece[far], n_lab - 1, size, (ms, ns))
            member = (size >= min_piece_px / step) & (size >= 0.5 * min_courses * width) & straight & ~long_enough & ~framed
            if gate and member.any():
                de, red_share = _piece_colour(rgb, step, (ms, ns), skin_s, p, deep.normals_yx, deep.scale_px,
                                              np.where(far & member[np.maximum(piece, 0)], piece, -1), n_lab - 1)
                member &= (de >= 0.5 * min_delta_e) & (red_share >= min_red_share - 0.5 * max(min_red_share - 1.0, 0.0))
            # the course's length is the points of its members and of its pieces kept alone (a
            # fragment between them joins them, but neither it nor a gap counts)
            inner = member | long_enough
            group, span = _deep_courses(p, far, piece, n_lab - 1, np.where(framed, 0, size), width, deep.segment,
                                        join_widths, counted=inner)  # fmt: skip
            n_g = int(group.max()) + 1
            g_pt = group[np.maximum(piece, 0)]
            g_ok = (span >= min_courses * 2.0 * _median_per_label(g_pt[far & inner[np.maximum(piece, 0)]],
                                                                  deep.scale_px[far & inner[np.maximum(piece, 0)]], n_g)) \
                & (np.bincount(group, member, n_g) > 0)
            if gate and g_ok.any():
                # the course's colour (over all its points) stands in for its members' own, each of
                # which passed the gate with its margins halved
                de, red_share = _piece_colour(rgb, step, (ms, ns), skin_s, p, deep.normals_yx, deep.scale_px,
                                              np.where(far & g_ok[g_pt], g_pt, -1), n_g)
                g_ok &= (de >= min_delta_e) & (red_share >= min_red_share)
            long_enough |= member & g_ok[group]
        return far & long_enough[np.maximum(piece, 0)], piece

    keep, piece = gated(far)
    del red_s
    if not keep.any():
        return det
    new_p = p[keep].astype(np.int64)
    new_piece = piece[keep]
    src = np.flatnonzero(keep)  # each new point's source point in ``deep``
    if step > 1:
        new_p, new_piece, src = _upsample_chain(new_p, new_piece, src, step, (m, n))
        on = skin[new_p[:, 0], new_p[:, 1]]
        new_p, new_piece, src = new_p[on], new_piece[on], src[on]
        if new_p.shape[0] == 0:
            return det
    if det.points_yx.shape[0] and (over_weak or lifted.any()):
        # a pixel both have: the deep course's (its chain runs on through it), but never a pixel
        # of a chain that is not weak or lifted. (Without over_weak a deep point reaches a
        # chain's pixel only past a chain lifted by hold_min_strength, whose pixel it takes as
        # with over_weak: no pixel kept twice. Session 37, helper rev37.)
        taken = np.zeros((m, n), np.uint8)
        taken[new_p[:, 0], new_p[:, 1]] = 1
        weak_pt = lifted[det.segment]
        both = taken[det.points_yx[:, 0], det.points_yx[:, 1]] > 0
        taken[det.points_yx[both & ~weak_pt, 0], det.points_yx[both & ~weak_pt, 1]] = 2
        fresh = taken[new_p[:, 0], new_p[:, 1]] == 1
        new_p, new_piece, src = new_p[fresh], new_piece[fresh], src[fresh]
        if new_p.shape[0] == 0:
            return det
        if (both & weak_pt).any():
            stay = ~(both & weak_pt)
            det = replace(det, points_yx=det.points_yx[stay], segment=det.segment[stay], strength=det.strength[stay],
                          normals_yx=det.normals_yx[stay], scale_px=det.scale_px[stay],
                          **{k: getattr(det, k)[stay] for k in ("tracked", "reached") if getattr(det, k) is not None})
    ids, new_seg = np.unique(new_piece, return_inverse=True)
    n_new = ids.size
    k_new = new_p.shape[0]
    log.info("deep veins: %d chains, %d points added", n_new, k_new)
    pts = np.concatenate([det.points_yx.astype(np.int64), new_p])
    order = np.argsort(pts[:, 0] * n + pts[:, 1], kind="stable")

    def joined(old, new, dtype):
        return np.concatenate([np.asarray(old), np.asarray(new)])[order].astype(dtype)

    flags = {}
    for name in ("tracked", "reached"):
        old = getattr(det, name)
        if old is not None:
            flags[name] = joined(old, np.zeros(k_new, bool), bool)
    return replace(
        det,
        points_yx=pts[order].astype(np.int32),
        segment=joined(det.segment, det.n_segments + new_seg, np.int32),
        strength=joined(det.strength, deep.strength[src], np.float32),
        normals_yx=joined(det.normals_yx, deep.normals_yx[src], np.float32),
        scale_px=joined(det.scale_px, step * deep.scale_px[src], np.float32),
        n_segments=det.n_segments + n_new,
        weak=None if det.weak is None else np.concatenate([det.weak, np.zeros(n_new, bool)]),
        follows=None if det.follows is None else np.concatenate([np.asarray(det.follows), np.full(n_new, -1)]),
        fixed_points=None if det.fixed_points is None else np.concatenate([np.asarray(det.fixed_points), np.full(n_new, -1)]),
        **flags,
    )


def _along_frame(p, piece, n, size, shape):
    """Per piece 0..n-1 of points ``p`` (K, 2) of ``size`` points each: over half its points in
    the outermost 2 px of an image of ``shape`` (the photo's edge, where the skin is cut off)."""
    m, n_cols = shape
    edge = (p[:, 0] <= 1) | (p[:, 0] >= m - 2) | (p[:, 1] <= 1) | (p[:, 1] >= n_cols - 2)
    return np.bincount(piece, edge, n) > 0.5 * np.asarray(size)


def _deep_courses(p, far, piece, n, size, width, segment, join_widths, *, counted=None):
    """The courses of the deep search's pieces 0..n-1 (``piece`` per point of ``p``; -1, or not
    ``far``, off every piece): two pieces are in one course when they come from one ridge of the
    search (``segment``) or when an end of each faces the other (the gap within 45 degrees of
    both ends' outward directions along their principal axes) at most ``join_widths`` of their
    mean ``width`` apart; each end is joined once, nearest pairs first, and a piece of ``size``
    under 3 has no direction to face with. Returns each piece's course (0..G-1) and each
    course's length in points: the ``size`` of its pieces that are ``counted`` (bool per piece;
    None: all), the gaps not counted (a course is what the search saw of it)."""
    parent = np.arange(n)

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    pf, pc = p[far].astype(np.float64), piece[far]
    first = {}
    for q, sgm in zip(pc.tolist(), np.asarray(segment)[far].tolist()):  # pieces of one ridge
        if sgm not in first:
            first[sgm] = q
        elif find(first[sgm]) != find(q):
            parent[find(q)] = find(first[sgm])
    cnt = np.maximum(np.bincount(pc, minlength=n), 1).astype(float)
    my, mx = np.bincount(pc, pf[:, 0], n) / cnt, np.bincount(pc, pf[:, 1], n) / cnt
    dy, dx = pf[:, 0] - my[pc], pf[:, 1] - mx[pc]
    syy, sxx, sxy = np.bincount(pc, dy * dy, n), np.bincount(pc, dx * dx, n), np.bincount(pc, dy * dx, n)
    ang = 0.5 * np.arctan2(2.0 * sxy, sxx - syy)
    ax = np.stack([np.sin(ang), np.cos(ang)], 1)  # each piece's principal axis (y, x)
    t = dy * ax[pc, 0] + dx * ax[pc, 1]
    ends, dirs, owner = [], [], []
    for q in np.flatnonzero(size >= 3):
        sel = np.flatnonzero(pc == q)
        ends += [pf[sel[np.argmin(t[sel])]], pf[sel[np.argmax(t[sel])]]]
        dirs += [-ax[q], ax[q]]
        owner += [q, q]
    if len(ends) >= 4:
        e, u, o = np.array(ends), np.array(dirs), np.array(owner)
        g = e[None, :, :] - e[:, None, :]  # from end i to end j
        dist = np.hypot(g[..., 0], g[..., 1])
        gu = g / np.maximum(dist, 1e-9)[..., None]
        cos = np.cos(np.pi / 4)
        facing = (np.einsum("ijk,ik->ij", gu, u) >= cos) & (np.einsum("ijk,jk->ij", -gu, u) >= cos)
        reach = join_widths * 0.5 * (width[o][:, None] + width[o][None, :])
        ii, jj = np.nonzero(np.triu(facing & (dist <= reach) & (o[:, None] != o[None, :]), 1))
        used = np.zeros(len(e), bool)
        for k in np.argsort(dist[ii, jj], kind="stable"):
            a, b = ii[k], jj[k]
            if not (used[a] or used[b]):
                used[a] = used[b] = True
                if find(o[a]) != find(o[b]):
                    parent[find(o[b])] = find(o[a])
    roots = np.array([find(q) for q in range(n)])
    _, group = np.unique(roots, return_inverse=True)
    n_g = int(group.max()) + 1
    return group, np.bincount(group, np.where(True if counted is None else counted, size, 0).astype(float), n_g)


def _piece_extent(p, piece, n):
    """Per piece 0..n-1 of points ``p`` (K, 2): its extent along its principal axis (px)."""
    cnt = np.maximum(np.bincount(piece, minlength=n), 1).astype(float)
    y, x = p[:, 0].astype(float), p[:, 1].astype(float)
    my, mx = np.bincount(piece, y, n) / cnt, np.bincount(piece, x, n) / cnt
    dy, dx = y - my[piece], x - mx[piece]
    syy, sxx, sxy = np.bincount(piece, dy * dy, n), np.bincount(piece, dx * dx, n), np.bincount(piece, dy * dx, n)
    ang = 0.5 * np.arctan2(2.0 * sxy, sxx - syy)  # the principal axis (x, y) = (cos, sin)
    t = dx * np.cos(ang)[piece] + dy * np.sin(ang)[piece]
    lo, hi = np.full(n, np.inf), np.full(n, -np.inf)
    np.minimum.at(lo, piece, t)
    np.maximum.at(hi, piece, t)
    return np.where(hi >= lo, hi - lo, 0.0)


def _shrunk_as_search(rgb, step: int, shape_s) -> np.ndarray:
    """The photo shrunk as the deep search is (``INTER_AREA`` by ``step``, the edge padded to
    ``shape_s`` times ``step`` first); the photo itself at step 1. Used by
    :func:`_piece_colour`."""
    ms, ns = shape_s
    a = np.asarray(rgb)
    if step > 1:
        m, nn = a.shape[:2]
        if ms * step != m or ns * step != nn:
            a = np.pad(a, ((0, ms * step - m), (0, ns * step - nn), (0, 0)), mode="edge")
        a = cv2.resize(a, (ns, ms), interpolation=cv2.INTER_AREA)
    return a


def _skin_beside(pp, k, sc, nr, skin_s):
    """The points ``k`` of each point's scale ``sc`` out along its normal ``nr`` from points
    ``pp`` (the grid of ``skin_s``), rounded, as ``(q, ok)``: ``ok`` where the point lies in the
    grid and on the skin (``q`` is 0 elsewhere). Used by :func:`_piece_colour`."""
    ms, ns = skin_s.shape
    q = np.rint(pp + k * sc[:, None] * nr).astype(np.int64)
    ok = (q[:, 0] >= 0) & (q[:, 0] < ms) & (q[:, 1] >= 0) & (q[:, 1] < ns)
    q[~ok] = 0
    ok &= skin_s[q[:, 0], q[:, 1]]
    return q, ok


def _piece_colour(rgb, step, shape_s, skin_s, p, normals, scale, piece, n):
    """Per piece 0..n-1 of a search on the photo shrunk ``step`` times: the CIEDE2000 difference
    between the piece's colour and the skin's beside it, and the red channel's share of its
    optical density contrast (red over the mean of green and blue, linear light). Read on the
    photo shrunk as the search (``INTER_AREA``), at the points and, for the skin, two and three
    of each point's scales out along its normal on both sides (on the skin only); medians over
    the piece's points. A piece with no point read gets ΔE00 0 and share 0."""
    from veinscope.card import srgb_to_linear
    from veinscope.colour import delta_e00

    sel = np.flatnonzero(piece >= 0)
    de = np.zeros(n)
    share = np.zeros(n)
    if sel.size == 0:
        return de, share
    a = _shrunk_as_search(rgb, step, shape_s)
    pp, nr, sc, pc = p[sel], np.asarray(normals, np.float64)[sel], np.asarray(scale, np.float64)[sel], piece[sel]
    centre = a[pp[:, 0], pp[:, 1]].astype(np.float64)
    beside = np.zeros_like(centre)
    count = np.zeros(sel.size)
    for sgn in (1.0, -1.0):
        for k in (2.0, 3.0):
            q, ok = _skin_beside(pp, sgn * k, sc, nr, skin_s)
            beside[ok] += a[q[ok, 0], q[ok, 1]]
            count += ok
    read = count >= 2
    if not read.any():
        return de, share
    beside = beside[read] / count[read, None]
    centre, pc = centre[read], pc[read]
    ids = np.unique(pc)
    c_med = np.stack([_median_per_label(pc, centre[:, j], n) for j in range(3)], 1)[ids]
    b_med = np.stack([_median_per_label(pc, beside[:, j], n) for j in range(3)], 1)[ids]
    de[ids] = delta_e00(c_med, b_med)
    od = -np.log(np.maximum(srgb_to_linear(c_med), 1e-4)) + np.log(np.maximum(srgb_to_linear(b_med), 1e-4))
    gb = 0.5 * (od[:, 1] + od[:, 2])
    share[ids] = np.where(od[:, 0] <= 0, 0.0, np.where(gb > 0, od[:, 0] / np.maximum(gb, 1e-6), np.inf))
    return de, share


def _upsample_chain(p, piece, src, step, shape):
    """Centreline points ``p`` (K, 2) of a ``step``-times shrunk image at full resolution: each
    point at the centre pixel of its block (``(step - 1) // 2`` in from its top-left, clipped to
    the image), and every two 8-neighbours of the same piece joined
    by the ``step - 1`` pixels between them (an 8-connected line again; two diagonal neighbours
    that a third already joins round the corner, not again). Returns the points
    (unique, in no particular order), their pieces and the index into ``src`` of the point each
    came from (a joining pixel: the first of its two)."""
    m, n = shape
    ns = -(-n // step)
    key = p[:, 0] * ns + p[:, 1]
    order = np.argsort(key)
    skey = key[order]
    off = (step - 1) // 2  # a block's centre pixel (the shrunk image's pixel stands for the whole block)
    out_p, out_piece, out_src = [p * step + off], [piece], [src]

    def linked(dy, dx):
        q = p + (dy, dx)
        ok = (q[:, 1] >= 0) & (q[:, 1] < ns)
        qk = q[:, 0] * ns + q[:, 1]
        j = np.minimum(np.searchsorted(skey, qk), skey.size - 1)
        hit = ok & (skey[j] == qk)
        hit[hit] = piece[order[j[hit]]] == piece[hit]
        return hit

    for dy, dx in ((0, 1), (1, -1), (1, 0), (1, 1)):
        hit = linked(dy, dx)
        if dy and dx:  # a diagonal step round a corner the chain already turns (an L): not twice
            hit &= ~linked(dy, 0) & ~linked(0, dx)
        for k in range(1, step):
            out_p.append(p[hit] * step + (off + k * dy, off + k * dx))
            out_piece.append(piece[hit])
            out_src.append(src[hit])
    p2, piece2, src2 = np.concatenate(out_p), np.concatenate(out_piece), np.concatenate(out_src)
    inside = (p2[:, 0] < m + off) & (p2[:, 1] >= 0) & (p2[:, 1] < n + off)  # the last partial block's own pixels
    p2, piece2, src2 = p2[inside], piece2[inside], src2[inside]
    p2 = np.minimum(p2, (m - 1, n - 1))
    _, first = np.unique(p2[:, 0] * n + p2[:, 1], return_index=True)
    return p2[first], piece2[first], src2[first]


def _median_per_label(label: np.ndarray, value: np.ndarray, n: int) -> np.ndarray:
    """Median of ``value`` per ``label`` 0..n-1 (NaN for an empty label)."""
    out = np.full(n, np.nan)
    if n == 0 or label.size == 0:
        return out
    order = np.lexsort((value, label))
    lab, val = label[order], value[order]
    bounds = np.searchsorted(lab, np.arange(n + 1))
    for i in np.flatnonzero(np.diff(bounds) > 0):
        out[i] = float(np.median(val[bounds[i] : bounds[i + 1]]))
    return out
