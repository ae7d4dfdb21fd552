"""Following a detected vessel past the end of its centreline, where it continues faintly.

A vein fades gradually as it dives deeper under the skin; the hysteresis of
:func:`veinscope.segment.detect_vessels` stops where its band drops under the low level, often
millimetres before the vessel stops being visible. :func:`extend_ends` follows each chain end on
along its own direction at its own scale, step by step, as classical vessel trackers do (Can et
al. 1999, doi:10.1109/4233.767092; Aylward and Bullitt 2002, doi:10.1109/42.993126), and stops on
evidence: the vessel's contrast across it, averaged over a short window ahead, falls to the level
the same statistic reaches on the skin beside it; the direction turns sharply; the way runs off
the skin or into another vessel. A stretch so found is kept when its colour differs from the skin
beside it like a visible vessel's (:func:`veinscope.measure.chain_delta_e`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace

import numpy as np

from veinscope.segment import VesselDetection

__all__ = ["extend_ends"]

log = logging.getLogger(__name__)


def extend_ends(
    det: VesselDetection,
    signal,
    skin,
    *,
    max_length_px: float,
    window_px: int = 10,
    long_window_px: int = 30,
    max_through_px: int = 20,
    k_noise: float = 1.0,
    min_chain_px: int = 0,
    max_turn_deg: float = 45.0,
    rgb=None,
    min_delta_e: float | None = None,
) -> VesselDetection:
    """The detection with each chain followed on past its free ends where its vessel continues.

    From each end (a centreline point with one neighbour in its chain, of a chain of at least
    ``min_chain_px`` points) the tracker takes the chain's direction over its last 8 points and
    its half-width (the median Hessian scale there: a bar of width w answers most at
    sigma = w / 2), then steps one pixel at a time along the vessel. Each step is re-centred
    across the vessel (shifts of 0, 1/2 and 1 px to either side: the one with the most contrast
    over the next ``window_px`` points) and the direction follows the step by a fifth. The
    contrast at a point is the mean of ``signal`` across the vessel's middle half minus the
    skin on each side one and two footprints (``max(w, 2)`` px) beyond its edge, the smaller of
    the two sides (a one-sided step, a shadow's edge, has none on one side; a structure much
    wider than the vessel darkens its own flanks):
    :func:`veinscope._kernels.track.cross_contrast`.

    The tracker steps on while the mean contrast over the ``window_px`` points ahead reaches the
    stop level, or, across a dip of the vessel's contrast, the mean over ``long_window_px``
    points reaches the same rule's level for that window. The level is measured beside the end:
    the median of the same window statistic along 32 straight copies of the way ahead on the skin
    beside it (4 per side, clear of the vessel's template, starting one window behind the end,
    at it, and one and two windows ahead), at least 0, plus ``k_noise`` robust spreads (1.4826
    MAD). It stops when the direction turns by more than ``max_turn_deg`` within a window, a
    sample leaves the skin, or the way has run within the vessel's half-width plus a pixel of
    another chain's centreline for more than ``max_through_px`` steps (crossing a vessel or a
    short piece goes on; running along one stops; the points next to the other chain are not
    added). An end whose own contrast over its last points is under the level is not followed.
    The tracks are smoothed over 5 points (the half-pixel re-centring would zigzag) and rounded
    to 8-connected chains.

    Parameters
    ----------
    det : VesselDetection
        From :func:`veinscope.segment.detect_vessels`.
    signal : ndarray (M, N) float
        The map the ridges were found on (vessels bright, 0 off the skin).
    skin : ndarray (M, N) bool
    max_length_px : float
        The longest extension of one end, in pixels.
    window_px : int
        Points averaged ahead for the stop rule: the tracker stops up to about half of it before
        the place where a fading vessel's contrast meets the stop level, and at most a pixel or
        two past an abrupt end.
    long_window_px : int
        Points averaged ahead across a dip (``<= window_px``: no second window).
    max_through_px : int
        Steps a track may run beside another chain's centreline.
    k_noise : float
        The stop level above the skin's median (at least 0), in robust spreads of the window
        statistic on the skin beside the end.
    min_chain_px : int
        Ends of chains with fewer points are not followed (a speck of texture has two ends).
    max_turn_deg : float
        The largest change of direction within one window.
    rgb : ndarray (M, N, 3) uint8, optional
        The photo, for ``min_delta_e``.
    min_delta_e : float, optional
        An extension whose mean colour differs from the skin beside it by less than this
        CIEDE2000 on ``rgb`` (:func:`veinscope.measure.chain_delta_e`; not judged: kept) is
        dropped. ``None`` (or no ``rgb``) keeps every extension.

    Returns
    -------
    VesselDetection
        A new detection: the old points and the new ones (unique, sorted row-major), each new
        point in its end's chain with a normal across its track, the end's Hessian scale and
        strength, and ``tracked`` True (:func:`veinscope.measure.measure_vessels` judges a
        chain's colour and overlap on its detected points only); the input is not modified.

    Examples
    --------
    >>> from veinscope.segment import VesselDetection
    >>> sig = np.zeros((100, 120), np.float32); sig[49:53, :90] = 1.0  # a bar, 4 px wide
    >>> sig += np.random.default_rng(0).normal(0, 0.05, sig.shape).astype(np.float32)
    >>> k = 40; pts = np.stack([np.full(k, 50), np.arange(10, 10 + k)], axis=1)
    >>> det = VesselDetection(pts.astype(np.int32), np.zeros(k, np.int32), np.ones(k, np.float32),
    ...                       np.tile(np.float32([1, 0]), (k, 1)), np.full(k, 2.0, np.float32), 1, 0.01, (0.0, 0.0))
    >>> out = extend_ends(det, sig, np.ones(sig.shape, bool), max_length_px=60, window_px=8)
    >>> int(out.points_yx[:, 1].max())  # followed to the bar's end at column 89
    89
    """
    from veinscope._kernels.track import chain_ends, follow_ends, raster_track

    if not (isinstance(max_length_px, (int, float)) and math.isfinite(max_length_px) and max_length_px >= 0):
        raise ValueError(f"max_length_px must be a non-negative number of pixels, got {max_length_px!r}")
    if int(window_px) < 1:
        raise ValueError(f"window_px must be >= 1, got {window_px!r}")
    skin = np.asarray(skin, dtype=bool)
    sig = np.asarray(signal)
    if sig.shape != skin.shape:
        raise ValueError(f"signal and skin must have the same shape, got {sig.shape} and {skin.shape}")
    max_steps = int(max_length_px)
    k = det.points_yx.shape[0]
    if k == 0 or max_steps < 1:
        return det
    m, n = skin.shape
    ys = np.ascontiguousarray(det.points_yx[:, 0], np.int64)
    xs = np.ascontiguousarray(det.points_yx[:, 1], np.int64)
    seg = np.ascontiguousarray(det.segment, np.int64)
    ends = chain_ends(ys, xs, seg, n)
    if min_chain_px > 0:
        size = np.bincount(seg, minlength=det.n_segments)
        ends = ends[size[seg[ends]] >= min_chain_px]
    if ends.size == 0:
        return det
    if sig.dtype != np.float32 or not sig.flags.c_contiguous:
        sig = np.ascontiguousarray(sig, np.float32)
    out_yx = np.zeros((ends.size, max_steps, 2), np.float32)
    out_skip = np.zeros((ends.size, max_steps), bool)
    out_n = np.zeros(ends.size, np.int64)
    info = np.zeros((ends.size, 5), np.float64)
    follow_ends(sig, skin.view(np.uint8), ys, xs, seg, np.ascontiguousarray(det.scale_px, np.float64), ends, n,
                max_steps, int(window_px), float(k_noise), math.cos(math.radians(max_turn_deg)), out_yx, out_skip, out_n,
                info, int(window_px), 0.8, int(long_window_px), int(max_through_px))  # fmt: skip
    tracks = []
    buf = np.empty((max_steps, 2), np.int64)
    for a in np.flatnonzero(out_n > 0):
        c = raster_track(ys[ends[a]], xs[ends[a]], out_yx[a, : out_n[a]], out_skip[a, : out_n[a]], m, n, buf)
        if c:
            tracks.append((a, buf[:c].copy()))
    if not tracks:
        return det
    new_yx = np.concatenate([p for _, p in tracks])
    owner = np.concatenate([np.full(p.shape[0], a) for a, p in tracks])
    if rgb is not None and min_delta_e is not None:
        from veinscope.measure import chain_delta_e

        tan = _tangents(new_yx, owner)
        nrm = np.stack([tan[:, 1], -tan[:, 0]], axis=1)
        width = 2.0 * info[owner, 0]
        de = chain_delta_e(rgb, new_yx, nrm, width, owner, np.ones(owner.size, bool), skin)
        keep_end = np.array([not (de.get(int(a), np.nan) < min_delta_e) for a in range(ends.size)])
        sel = keep_end[owner]
        new_yx, owner = new_yx[sel], owner[sel]
        if new_yx.shape[0] == 0:
            return det
    tan = _tangents(new_yx, owner)
    e = ends[owner]
    pts = np.concatenate([det.points_yx.astype(np.int64), new_yx])
    key = pts[:, 0] * n + pts[:, 1]
    # unique keys, the detected point first where a new one falls on it
    order = np.lexsort((np.arange(key.size), key))
    first = np.ones(order.size, bool)
    first[1:] = key[order][1:] != key[order][:-1]
    order = order[first]
    seg_all = np.concatenate([det.segment, det.segment[e]])
    strength = np.concatenate([det.strength, det.strength[e]])
    normals = np.concatenate([det.normals_yx, np.stack([tan[:, 1], -tan[:, 0]], axis=1).astype(np.float32)])
    scale = np.concatenate([det.scale_px, det.scale_px[e]])
    old_tracked = np.zeros(k, bool) if det.tracked is None else np.asarray(det.tracked, bool)
    tracked = np.concatenate([old_tracked, np.ones(new_yx.shape[0], bool)])
    added = int(np.count_nonzero(order >= k))
    log.info("extend_ends: %d of %d ends followed, %d points added", len(tracks), ends.size, added)
    return replace(
        det,
        points_yx=pts[order].astype(np.int32),
        segment=seg_all[order].astype(np.int32),
        strength=strength[order].astype(np.float32),
        normals_yx=normals[order].astype(np.float32),
        scale_px=scale[order].astype(np.float32),
        tracked=tracked[order],
    )


def _tangents(pts: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """Unit direction of each track pixel (central differences along its own track)."""
    t = np.zeros((pts.shape[0], 2), np.float64)
    if pts.shape[0] == 0:
        return t
    nxt = np.r_[np.arange(1, pts.shape[0]), pts.shape[0] - 1]
    prv = np.r_[0, np.arange(pts.shape[0] - 1)]
    nxt = np.where(owner[nxt] == owner, nxt, np.arange(pts.shape[0]))
    prv = np.where(owner[prv] == owner, prv, np.arange(pts.shape[0]))
    t = (pts[nxt] - pts[prv]).astype(np.float64)
    norm = np.hypot(t[:, 0], t[:, 1])
    t[norm > 0] /= norm[norm > 0, None]
    t[norm == 0] = (1.0, 0.0)
    return t
