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

__all__ = ["extend_ends", "probe_sides", "reach_end_faces"]

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
    probe_px: int = 0,
    max_probes: int = 3,
    probe_nfa: float = 1.0,
    short_chain_px: int = 0,
    not_ends_yx=None,
    from_segment: int = 0,
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

    Where the window ahead loses the vessel, a probe (``probe_px`` > 0) looks for its faint
    continuation over a longer stretch before the track stops: the mean contrast over
    ``probe_px`` points straight on, the largest over a fan of seven directions (within 40
    degrees of the track's) and two half-widths (the end's and the finest, 0.75 px: a vessel
    tapers as it fades, and its end answers the filter at a larger scale than its faint
    continuation). The same largest value taken on the photo's skin off the vessels found
    (about 500 starting points on a lattice, directions spread by the golden angle; at the
    end's half-width) is its null: the probe is accepted when it exceeds the
    null's median by ``z`` robust spreads, with ``z`` set a-contrario (Desolneux, Moisan and Morel
    2000, doi:10.1023/A:1008325632327) so that the expected number of probes accepted on skin
    alone is at most ``probe_nfa`` per photo: the Gaussian tail ``1 - Phi(z) = probe_nfa / (E x
    max_probes)``, E the ends followed, with E x max_probes counted as at least 1000 (a full photo
    of a leg has hundreds of ends; a crop with a few dozen would otherwise accept probes at z 2). An accepted probe's points join the track, the track
    turns to its direction (and width) and steps on; at most ``max_probes`` per end. A probe
    gains evidence by length where a window cannot: a faint line of contrast c in noise of
    spread s per point is seen over L points at about c sqrt(L) / s.
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
        Ends of chains with fewer points are not followed (a speck of texture has two ends). The
        points :func:`reach_end_faces` carried to an end face (``reached``) do not count: they
        are inferred from the chain's own end, not evidence that it is a vessel (a short false
        mark on a skin crease, carried to where the crease's contrast falls, would otherwise be
        long enough to be followed on along the crease's fainter run).
    max_turn_deg : float
        The largest change of direction within one window.
    rgb : ndarray (M, N, 3) uint8, optional
        The photo, for ``min_delta_e``.
    min_delta_e : float, optional
        An extension whose mean colour differs from the skin beside it by less than this
        CIEDE2000 on ``rgb`` (:func:`veinscope.measure.chain_delta_e`; not judged: kept) is
        dropped. ``None`` (or no ``rgb``) keeps every extension.
    probe_px : int
        Points of a probe past a place the window ahead lost the vessel (0: no probe).
    max_probes : int
        Probes accepted per end at most.
    probe_nfa : float
        The expected number of probes accepted on the skin alone, per photo (the a-contrario
        number of false alarms).
    short_chain_px : int
        With the probe on, the ends of chains of at least this many detected points but fewer
        than ``min_chain_px`` are followed too, but only through an accepted probe first: a
        short chain is not trusted to be a vessel, so its window rule alone does not carry it;
        the probe's a-contrario level does (its ends count among the probes). 0: not followed.
    not_ends_yx : ndarray (R, 2) int, optional
        Points that are not followed though they end a chain (the roots of branches
        :func:`probe_sides` added, next to the chain they leave).
    from_segment : int
        Only the ends of chains numbered this or higher are followed (those :func:`probe_sides`
        added after the others were followed).

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
    first = np.zeros(0, np.uint8)
    if from_segment > 0:
        ends = ends[seg[ends] >= int(from_segment)]
    if not_ends_yx is not None and len(not_ends_yx):
        nk = np.asarray(not_ends_yx, np.int64)
        ends = ends[~np.isin(ys[ends] * n + xs[ends], nk[:, 0] * n + nk[:, 1])]
    if min_chain_px > 0:
        # the chain's own detected points: those carried to an end face (``reached``) are
        # inferred from the chain, not evidence that it is a vessel rather than a speck
        found = seg if det.reached is None else seg[~np.asarray(det.reached, bool)]
        size = np.bincount(found, minlength=det.n_segments)[seg[ends]]
        keep = size >= min_chain_px
        short = int(short_chain_px) > 0 and int(probe_px) > 0 and int(max_probes) > 0
        if short:  # ... and those of shorter chains, through a probe first
            keep |= size >= int(short_chain_px)
        ends, size = ends[keep], size[keep]
        if short:
            first = (size < min_chain_px).astype(np.uint8)
    if ends.size == 0:
        return det
    if sig.dtype != np.float32 or not sig.flags.c_contiguous:
        sig = np.ascontiguousarray(sig, np.float32)
    if int(probe_px) < 0 or int(max_probes) < 0 or not (isinstance(probe_nfa, (int, float)) and probe_nfa > 0):
        raise ValueError(f"probe_px and max_probes must be >= 0 and probe_nfa > 0, got {probe_px!r}, {max_probes!r}, {probe_nfa!r}")
    z_probe = math.inf
    null_hw = null_med = null_sp = np.zeros(0)
    if probe_px > 0 and max_probes > 0:
        from statistics import NormalDist

        # the a-contrario level (probe_nfa false probes per photo over its E x max_probes
        # probes), and at least that of one false probe in _MIN_PROBE_TESTS: a crop with a
        # few dozen ends would otherwise accept a probe at z 2
        tests = max(ends.size * max_probes, _MIN_PROBE_TESTS)
        z_probe = NormalDist().inv_cdf(max(1.0 - probe_nfa / tests, 1e-12))
        null_hw, null_med, null_sp = _probe_nulls(sig, skin, ys, xs, seg, det.scale_px, int(probe_px))
    out_yx = np.zeros((ends.size, max_steps, 2), np.float32)
    out_skip = np.zeros((ends.size, max_steps), bool)
    out_n = np.zeros(ends.size, np.int64)
    info = np.zeros((ends.size, 5), np.float64)
    follow_ends(sig, skin.view(np.uint8), ys, xs, seg, np.ascontiguousarray(det.scale_px, np.float64), ends, n,
                max_steps, int(window_px), float(k_noise), math.cos(math.radians(max_turn_deg)), out_yx, out_skip, out_n,
                info, int(window_px), 0.8, int(long_window_px), int(max_through_px), int(probe_px), float(z_probe),
                int(max_probes), null_hw, null_med, null_sp, first)  # fmt: skip
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
    return _with_points(det, new_yx, ends[owner], owner, det.scale_px[ends[owner]], n, tracked=True)


# the fewest probes a photo's a-contrario level counts (a 1600 x 1200 photo of a leg has a few
# hundred followed ends, a 12 MP photo about a thousand, each with up to three probes)
_MIN_PROBE_TESTS = 1000

# starting points of the probe's null on a photo (a lattice over it; those on the skin and off
# the vessels found count)
_NULL_STARTS = 512
# ... of the side probe's null: its level is read from the null's upper tail (_tail_level)
_SIDE_NULL_STARTS = 1024
# turns (radians) of an accepted side probe tried when centring it on its branch (within half the
# fan's 10-degree step)
_SIDE_TURNS = tuple(math.radians(d) for d in (-5.0, -2.5, 0.0, 2.5, 5.0))
# the share of the null whose excesses over its quantile fit the tail
_TAIL_FRAC = 0.1


def _tail_level(null, p: float) -> float:
    """The level a value of the null distribution (sample ``null``) exceeds with probability ``p``:
    above its ``1 - _TAIL_FRAC`` quantile the tail is taken as exponential (peaks over a
    threshold, Pickands 1975, doi:10.1214/aos/1176343003: the largest of many correlated
    Gaussian contrasts has a Gumbel-like tail, which a Gaussian fitted to the median and MAD
    makes far too light: at 3.09 spreads 3 times the false alarms it claims, at 4 spreads 12
    times), its scale the mean excess; at least 0; NaN with fewer than 16 excesses."""
    null = np.asarray(null, np.float64)
    if null.size * _TAIL_FRAC < 16:
        return math.nan
    q = float(np.quantile(null, 1.0 - _TAIL_FRAC))
    beta = float(np.mean(null[null > q] - q)) if np.any(null > q) else 0.0
    if not beta > 0:
        return math.nan
    return max(q + beta * math.log(_TAIL_FRAC / min(p, _TAIL_FRAC)), 0.0)


def _probe_nulls(sig, skin, ys, xs, seg, scale_px, probe_px: int):
    """The probe's null on this photo: its largest contrast over ``probe_px`` points (the fan and
    the two half-widths, :func:`veinscope._kernels.track.probe_nulls`) from starting points on a
    lattice over the photo, on the skin and off the detected centrelines, in directions spread
    by the golden angle; for each half-width an end may have (the chains' Hessian scales, at
    least 0.75 px, to a quarter pixel): (half-widths, medians, robust spreads), each (H,)."""
    from veinscope._kernels.track import probe_nulls

    m, n = skin.shape
    step = max(math.sqrt(m * n / _NULL_STARTS), 4.0)
    gy, gx = np.meshgrid(np.arange(step / 2, m, step), np.arange(step / 2, n, step), indexing="ij")
    gy, gx = gy.ravel(), gx.ravel()
    on = skin[gy.astype(np.int64), gx.astype(np.int64)]
    gy, gx = gy[on], gx[on]
    ang = (np.arange(gy.size) * math.pi * (3.0 - math.sqrt(5.0))) % math.pi  # the golden angle
    hw = np.unique(np.r_[np.round(np.maximum(np.asarray(scale_px, np.float64), 0.75) * 4.0) / 4.0, 0.75])
    med = np.full(hw.size, np.nan)
    sp = np.full(hw.size, np.nan)
    f64 = (lambda v: np.ascontiguousarray(v, np.float64))
    probe_nulls(sig, skin.view(np.uint8), ys, xs, seg, skin.shape[1], f64(gy), f64(gx), f64(np.sin(ang)), f64(np.cos(ang)),
                hw, int(probe_px), med, sp)  # fmt: skip
    return hw, med, sp


def probe_sides(
    det: VesselDetection,
    signal,
    skin,
    *,
    probe_px: int,
    nfa: float = 1.0,
    min_chain_px: int = 0,
    step_px: float = 6.0,
    hw_px: float = 0.75,
    rgb=None,
    min_delta_e: float | None = None,
    return_roots: bool = False,
):
    """The detection with the branches that leave its chains' sides, found a-contrario.

    At a fork the line filter and its hysteresis often keep one branch and lose the others
    where they leave (a faint branch is finer than the vessel it leaves); the chain runs on past
    the fork and no end is there for :func:`extend_ends` to follow. From points along each chain
    of at least ``min_chain_px`` points (not counting those carried to an end face), one every
    ``step_px`` px (one per lattice cell of that pitch and chain), a probe looks off the chain
    along straight lines in 24 directions, 20 to 80 degrees off it in steps of 12 degrees (both
    ways along it, on both sides): the mean contrast across a line of half-width ``hw_px`` (the tracker's statistic,
    :func:`veinscope._kernels.track.cross_contrast`) over ``probe_px`` points, counted from
    where the template's far flank is clear of the chain's edge (twice its half-width and a
    pixel); each direction screened over its first quarter, the three best measured over the
    whole length, the largest is the statistic. A probe that comes within reach of a
    centreline (its own chain's or another's) is not counted.

    The statistic's null is the same statistic from about 1000 points on a lattice over the
    skin clear of the detected centrelines (farther than the probe reaches from every one:
    :func:`veinscope._kernels.track.side_nulls`). A probe is accepted when the null exceeds
    its value with probability at most ``nfa / S`` (S the starting points, counted as at least
    1000 as :func:`extend_ends`' probes): the a-contrario number of false alarms (Desolneux,
    Moisan and Morel 2000, doi:10.1023/A:1008325632327), at most ``nfa`` branches per photo on
    skin alone. The largest of many correlated Gaussian contrasts has a far heavier upper tail
    than a Gaussian fitted to its median and spread, so the level is read from the null's tail
    (:func:`_tail_level`). Of accepted probes that overlap, the strongest is kept; each is
    centred on its branch (moved along the chain by up to half the spacing and turned by up to
    5 degrees, the most contrast kept), rasterised from its chain point as an 8-connected line
    and, with ``rgb`` and ``min_delta_e``, kept only when its colour differs from the skin beside
    it by at least ``min_delta_e`` CIEDE2000 beyond the chain's width
    (:func:`veinscope.measure.chain_delta_e`). Each branch becomes a chain of its own (judged by
    its own colour in :func:`veinscope.measure.measure_vessels`, as a detected chain is: a hair
    or a crease met beside a vessel is not that vessel's) and kept only with the chain it leaves
    (``parent``: a branch of a false mark is not a new mark).

    Parameters
    ----------
    det : VesselDetection
    signal : ndarray (M, N) float
        The map the ridges were found on (vessels bright, 0 off the skin).
    skin : ndarray (M, N) bool
    probe_px : int
        The probe's length in points (pixels); 0 adds nothing.
    nfa : float
        The expected number of branches accepted on the skin alone, per photo.
    min_chain_px : int
        Chains with fewer points (not counting those carried to an end face) start no probe.
    step_px : float
        The spacing of the starting points along a chain, px.
    hw_px : float
        The probe's half-width, px (a branch that a detection loses is a fine one).
    rgb, min_delta_e
        As :func:`extend_ends`.
    return_roots : bool
        Also return each new chain's root, the point next to the chain it leaves (R, 2) int:
        not a free end for :func:`extend_ends` (``not_ends_yx``), which follows the branches on
        from their far ends (``from_segment``).

    Returns
    -------
    VesselDetection
        A new detection with each accepted branch a new chain (numbered from ``det.n_segments``,
        ``weak`` False, neither ``tracked`` nor ``reached``, its ``parent`` the chain it leaves:
        kept only with it); the input is not modified. With
        ``return_roots``, (detection, roots).

    Examples
    --------
    A faint fine branch leaving a strong bar's side at 45 degrees, on pixel noise:

    >>> from veinscope.segment import VesselDetection
    >>> rng = np.random.default_rng(0)
    >>> sig = rng.normal(0, 0.05, (120, 320)).astype(np.float32); sig[59:63, 20:300] += 1.0
    >>> for s in range(0, 55):
    ...     sig[62 + s, 152 + s] += 0.4
    >>> k = 280; pts = np.stack([np.full(k, 60), np.arange(20, 20 + k)], axis=1)
    >>> det = VesselDetection(pts.astype(np.int32), np.zeros(k, np.int32), np.ones(k, np.float32),
    ...                       np.tile(np.float32([1, 0]), (k, 1)), np.full(k, 2.0, np.float32), 1, 0.01, (0.0, 0.0))
    >>> out = probe_sides(det, sig, np.ones(sig.shape, bool), probe_px=20)
    >>> out.n_segments, int(out.points_yx[out.segment == 1][:, 0].max()) > 80
    (2, True)
    """
    from veinscope._kernels.track import raster_track, side_nulls, side_probes, window_contrast

    if int(probe_px) < 0 or not (isinstance(nfa, (int, float)) and math.isfinite(nfa) and nfa > 0):
        raise ValueError(f"probe_px must be >= 0 and nfa a positive number, got {probe_px!r}, {nfa!r}")
    if not (isinstance(step_px, (int, float)) and step_px >= 1) or not (isinstance(hw_px, (int, float)) and hw_px > 0):
        raise ValueError(f"step_px must be >= 1 and hw_px > 0, got {step_px!r}, {hw_px!r}")
    skin = np.asarray(skin, dtype=bool)
    sig = np.asarray(signal)
    if sig.shape != skin.shape:
        raise ValueError(f"signal and skin must have the same shape, got {sig.shape} and {skin.shape}")
    length = int(probe_px)
    k = det.points_yx.shape[0]
    if k == 0 or length < 1:
        return (det, np.zeros((0, 2), np.int64)) if return_roots else det
    if sig.dtype != np.float32 or not sig.flags.c_contiguous:
        sig = np.ascontiguousarray(sig, np.float32)
    m, n = skin.shape
    ys = np.ascontiguousarray(det.points_yx[:, 0], np.int64)
    xs = np.ascontiguousarray(det.points_yx[:, 1], np.int64)
    seg = np.ascontiguousarray(det.segment, np.int64)
    # the starting points: detected points of chains long enough, one per lattice cell and chain
    own = np.ones(k, bool)
    if det.reached is not None:
        own &= ~np.asarray(det.reached, bool)
    size = np.bincount(seg[own], minlength=det.n_segments)
    cand = np.flatnonzero(own & (size[seg] >= max(int(min_chain_px), 1)))
    if cand.size == 0:
        return (det, np.zeros((0, 2), np.int64)) if return_roots else det
    cy = (ys[cand] / step_px).astype(np.int64)
    cx = (xs[cand] / step_px).astype(np.int64)
    cell = (cy * (int(n / step_px) + 2) + cx) * (det.n_segments + 1) + seg[cand]
    _, first = np.unique(cell, return_index=True)
    starts = np.ascontiguousarray(cand[np.sort(first)], np.int64)
    nrm = det.normals_yx[starts].astype(np.float64)
    tys = np.ascontiguousarray(-nrm[:, 1])
    txs = np.ascontiguousarray(nrm[:, 0])
    # the chain's edge: twice its half-width (the Hessian scale; a vessel's blurred profile
    # reaches about that far), the larger of the point's and its chain's median, and a pixel
    from veinscope._kernels.groups import group_medians

    chain_hw = group_medians(det.scale_px[own].astype(np.float32), seg[own], det.n_segments).astype(np.float64)
    offs = np.ascontiguousarray(2.0 * np.maximum(np.maximum(det.scale_px[starts].astype(np.float64), chain_hw[seg[starts]]), 0.75) + 1.0)
    # the null: the same statistic on the skin off the centrelines, from a lattice over the
    # skin clear of them (cells of the probe's reach with no centreline point in or beside them)
    f64 = (lambda v: np.ascontiguousarray(v, np.float64))
    far = int(math.ceil(hw_px + 2.0 * max(2.0 * hw_px, 2.0))) + 1 + length
    occ = np.zeros((m // far + 3, n // far + 3), bool)
    occ[ys // far + 1, xs // far + 1] = True
    occ = occ[:-2, :-2] | occ[1:-1, :-2] | occ[2:, :-2] | occ[:-2, 1:-1] | occ[1:-1, 1:-1] | occ[2:, 1:-1] | occ[:-2, 2:] | occ[1:-1, 2:] | occ[2:, 2:]
    free = float(np.count_nonzero(skin)) / skin.size * max(1.0 - float(occ.mean()), 0.0)
    step = max(math.sqrt(m * n * max(free, 1e-3) / _SIDE_NULL_STARTS), 4.0)
    gy, gx = np.meshgrid(np.arange(step / 2, m, step), np.arange(step / 2, n, step), indexing="ij")
    gy, gx = gy.ravel(), gx.ravel()
    gyi, gxi = gy.astype(np.int64), gx.astype(np.int64)
    on = skin[gyi, gxi] & ~occ[gyi // far, gxi // far]
    gy, gx = gy[on], gx[on]
    ang = (np.arange(gy.size) * math.pi * (3.0 - math.sqrt(5.0))) % math.pi  # the golden angle
    null = np.empty(gy.size, np.float64)
    side_nulls(sig, skin.view(np.uint8), ys, xs, seg, n, f64(gy), f64(gx), f64(np.sin(ang)), f64(np.cos(ang)),
               float(hw_px), length, null)  # fmt: skip
    null = null[np.isfinite(null)]
    thresh = _tail_level(null, nfa / max(starts.size, _MIN_PROBE_TESTS))
    if not np.isfinite(thresh):
        log.info("side probes: %d starts, too few null values (%d): none", starts.size, null.size)
        return (det, np.zeros((0, 2), np.int64)) if return_roots else det
    val = np.empty(starts.size, np.float64)
    geo = np.empty((starts.size, 3), np.float64)
    side_probes(sig, skin.view(np.uint8), ys, xs, seg, n, starts, tys, txs, offs, float(hw_px), length, float(thresh),
                val, geo)  # fmt: skip
    hit = np.flatnonzero(val >= thresh)
    log.info("side probes: %d starts, level %.4g from %d null values, %d accepted", starts.size, thresh, null.size, hit.size)
    if hit.size == 0:
        return (det, np.zeros((0, 2), np.int64)) if return_roots else det
    hit = hit[np.argsort(-val[hit], kind="stable")]
    # the strongest of overlapping probes (a branch is seen from several starting points)
    taken = np.zeros((m // 2 + 3, n // 2 + 3), bool)
    branches = []
    foot = max(2.0 * hw_px, 2.0)
    skin_u8 = skin.view(np.uint8)
    for i in hit:
        p = starts[i]
        dy, dx, k0 = geo[i]
        k0 = int(k0)
        # centred on the branch: the probe's line moved along the chain by up to half the
        # starting points' spacing and turned by up to half the fan's step, the most contrast kept (a
        # line a pixel off a fine branch paints skin and reads the skin's colour)
        y0, x0 = float(ys[p]), float(xs[p])
        best = val[i]
        for da in _SIDE_TURNS:
            c, s_ = math.cos(da), math.sin(da)
            ry, rx = c * geo[i, 0] + s_ * geo[i, 1], -s_ * geo[i, 0] + c * geo[i, 1]
            for sh in np.arange(-(step_px // 2), step_px // 2 + 1):
                sy, sx = ys[p] + sh * tys[i], xs[p] + sh * txs[i]
                v = window_contrast(sig, skin_u8, sy + k0 * ry, sx + k0 * rx, ry, rx, float(hw_px), hw_px + foot,
                                    hw_px + 2 * foot, length)  # fmt: skip
                if v > best:
                    best, dy, dx, y0, x0 = v, ry, rx, sy, sx
        t = np.arange(1, k0 + length + 1, dtype=np.float64)
        track = np.stack([y0 + t * dy, x0 + t * dx], axis=1).astype(np.float32)
        buf = np.empty((track.shape[0] + 1, 2), np.int64)
        c = raster_track(ys[p], xs[p], track, np.zeros(track.shape[0], bool), m, n, buf)
        if c == 0:
            continue
        pts = buf[:c].copy()
        # the counted part (beyond the chain's own width)
        counted = np.hypot(pts[:, 0] - ys[p], pts[:, 1] - xs[p]) >= k0
        off_chain = pts[counted]
        if off_chain.shape[0] == 0 or np.count_nonzero(taken[off_chain[:, 0] // 2 + 1, off_chain[:, 1] // 2 + 1]) * 3 > off_chain.shape[0]:
            continue  # mostly on a stronger probe's branch
        for dyc in (0, 1, 2):
            for dxc in (0, 1, 2):
                taken[pts[:, 0] // 2 + dyc, pts[:, 1] // 2 + dxc] = True
        branches.append((i, pts, counted))
    log.info("side probes: %d branches after overlaps", len(branches))
    if not branches:
        return (det, np.zeros((0, 2), np.int64)) if return_roots else det
    new_yx = np.concatenate([b for _, b, _ in branches])
    owner = np.concatenate([np.full(b.shape[0], i) for i, b, _ in branches])
    if rgb is not None and min_delta_e is not None:
        from veinscope.measure import chain_delta_e

        # judged beyond the chain's own width (the joining pixels are the chain's colour)
        beyond = np.concatenate([f for _, _, f in branches])
        tan = _tangents(new_yx, owner)
        nrm_new = np.stack([tan[:, 1], -tan[:, 0]], axis=1)
        de = chain_delta_e(rgb, new_yx, nrm_new, np.full(owner.size, 2.0 * hw_px), owner, beyond, skin)
        keep = np.array([not (de.get(int(a), np.nan) < min_delta_e) for a in owner])
        new_yx, owner = new_yx[keep], owner[keep]
        if new_yx.shape[0] == 0:
            return (det, np.zeros((0, 2), np.int64)) if return_roots else det
    log.info("side probes: %d branches kept, %d points", np.unique(owner).size, new_yx.shape[0])
    # each branch a chain of its own, judged by its own colour as every detected chain (a hair
    # or a crease met beside a vessel is not that vessel's); its root (the point next to the
    # chain it leaves) is not a free end
    old_key = ys * n + xs
    new_key = new_yx[:, 0] * n + new_yx[:, 1]
    fresh = ~np.isin(new_key, old_key)
    _, first = np.unique(new_key, return_index=True)
    uniq = np.zeros(new_key.size, bool)
    uniq[first] = True
    sel = fresh & uniq
    new_yx, owner = new_yx[sel], owner[sel]
    if new_yx.shape[0] == 0:
        return (det, np.zeros((0, 2), np.int64)) if return_roots else det
    ids = np.unique(owner)
    roots = np.array([new_yx[owner == a][0] for a in ids], np.int64).reshape(-1, 2)
    new_seg = det.n_segments + np.searchsorted(ids, owner)
    tan = _tangents(new_yx, owner)
    pts = np.concatenate([det.points_yx.astype(np.int64), new_yx])
    order = np.argsort(pts[:, 0] * n + pts[:, 1], kind="stable")
    k = det.points_yx.shape[0]

    def grow(old, new):
        return np.concatenate([old, new])[order]

    flags = {}
    for name in ("tracked", "reached"):
        old = getattr(det, name)
        flags[name] = None if old is None else grow(np.asarray(old, bool), np.zeros(new_yx.shape[0], bool))
    out = replace(
        det,
        points_yx=pts[order].astype(np.int32),
        segment=grow(det.segment, new_seg).astype(np.int32),
        strength=grow(det.strength, det.strength[starts[owner]]).astype(np.float32),
        normals_yx=grow(det.normals_yx, np.stack([tan[:, 1], -tan[:, 0]], axis=1)).astype(np.float32),
        scale_px=grow(det.scale_px, np.full(owner.size, hw_px)).astype(np.float32),
        n_segments=det.n_segments + ids.size,
        # judged by the rules of every detected chain (not as a weak band: those need a ΔE00 of 3)
        weak=None if det.weak is None else np.concatenate([np.asarray(det.weak, bool), np.zeros(ids.size, bool)]),
        parent=np.concatenate([np.full(det.n_segments, -1, np.int64) if det.parent is None else np.asarray(det.parent, np.int64),
                               seg[starts[ids]]]),
        follows=None if det.follows is None else np.concatenate([np.asarray(det.follows), np.full(ids.size, -1)]),
        fixed_points=None if det.fixed_points is None else np.concatenate([np.asarray(det.fixed_points), np.full(ids.size, -1)]),
        **flags,
    )
    log.info("side probes: %d chains of %d points added (%d before)", ids.size, new_yx.shape[0], k)
    return (out, roots) if return_roots else out


def reach_end_faces(det: VesselDetection, signal, skin, *, max_widths: float = 2.0, k_noise: float = 1.0) -> VesselDetection:
    """The detection with each chain carried on from its free ends to its vessel's end face.

    The line filter answers a vessel at the scale of its half-width, so its response along the
    crest falls over about a width before the vessel ends: at a blunt end the crest's chain
    stops up to a width or so short of the end, and the ridges the filter finds towards the
    end's corners (a rectangle's medial axis forks there) come out as short chains of their
    own beside the crest's end. The end of a vessel is where its profile across stops being a
    vessel's: here where the contrast across it (:func:`veinscope._kernels.track.cross_contrast`,
    the middle half of the vessel against the skin one and two footprints beyond each edge,
    the weaker side) falls to half the vessel's own contrast along its last two widths, the
    half-maximum that also defines its visible width (:mod:`veinscope.diameter`), or to the
    skin's noise beside it (the level :func:`extend_ends` stops at, with one window point).
    Each free end of a chain at least two widths long (a shorter one has no crest to carry)
    is walked one pixel at a time straight on along the chord of its last two widths, for at
    most ``max_widths`` widths: past that the vessel goes on beyond its end rather than ending
    there, which is :func:`extend_ends`' evidence to weigh. A walk that meets no end face within
    them keeps none of its points: the line goes on at the vessel's own contrast, so the chain did
    not stop at a blunt end, and whether what goes on is the vessel (a stretch the filter lost)
    or a skin crease running on past a false mark made on it (a fold is long and keeps its
    contrast for many widths) is left to :func:`extend_ends` from the detected end, with its
    noise level, windows and colour test. The end's half-width is the median
    Hessian scale over its last four widths (measured by the chain's median scale): within
    about a width of a blunt end the filter answers at the next smaller scale, so the end's own
    last points read half the vessel.

    At an end whose walk stopped at the face, a chain shorter than the vessel is wide that lies
    wholly inside the vessel's last width is dropped (:func:`_end_clutter`: the forks towards a
    blunt end's corners, a medial axis's end branches). Chains on the way that are shorter than
    two of the vessel's widths are walked through (the new point wins where it falls on one of
    theirs); the walk stops within the half-width and a pixel of a longer one, or of another
    branch of its own chain.

    The points added are marked ``reached`` (not ``tracked``): they are the vessel (its length,
    its painting, the width shorter chains' overlap is judged against), but
    :func:`veinscope.measure.measure_vessels` judges the chain's colour, its own overlap and
    the lone-patch rule without them, and gives them the chain's width.

    Parameters
    ----------
    det : VesselDetection
        From :func:`veinscope.segment.detect_vessels`.
    signal : ndarray (M, N) float
        The map the ridges were found on (vessels bright, 0 off the skin).
    skin : ndarray (M, N) bool
    max_widths : float
        The farthest step from an end, in widths (twice the end's median Hessian scale).
    k_noise : float
        The noise floor of the stop level, in robust spreads of the contrast along straight
        copies of the way ahead on the skin beside it (:func:`extend_ends`).

    Returns
    -------
    VesselDetection
        A new detection (the input is not modified); ``det`` itself when nothing was added.

    Examples
    --------
    >>> from veinscope.segment import VesselDetection
    >>> sig = np.zeros((60, 120), np.float32); sig[27:33, 20:100] = 1.0  # a bar 6 px wide, x 20-99
    >>> k = 60; pts = np.stack([np.full(k, 30), np.arange(30, 30 + k)], axis=1)  # its crest, x 30-89
    >>> det = VesselDetection(pts.astype(np.int32), np.zeros(k, np.int32), np.ones(k, np.float32),
    ...                       np.tile(np.float32([1, 0]), (k, 1)), np.full(k, 3.0, np.float32), 1, 0.01, (0.0, 0.0))
    >>> out = reach_end_faces(det, sig, np.ones(sig.shape, bool))
    >>> int(out.points_yx[:, 1].min()), int(out.points_yx[:, 1].max())  # to the end faces
    (20, 99)
    """
    from veinscope._kernels.track import chain_ends, raster_track, reach_faces

    if not (isinstance(max_widths, (int, float)) and math.isfinite(max_widths) and max_widths >= 0):
        raise ValueError(f"max_widths must be a non-negative number of widths, got {max_widths!r}")
    skin = np.asarray(skin, dtype=bool)
    sig = np.asarray(signal)
    if sig.shape != skin.shape:
        raise ValueError(f"signal and skin must have the same shape, got {sig.shape} and {skin.shape}")
    k = det.points_yx.shape[0]
    if k == 0 or max_widths == 0:
        return det
    m, n = skin.shape
    ys = np.ascontiguousarray(det.points_yx[:, 0], np.int64)
    xs = np.ascontiguousarray(det.points_yx[:, 1], np.int64)
    seg = np.ascontiguousarray(det.segment, np.int64)
    ends = chain_ends(ys, xs, seg, n)
    if ends.size == 0:
        return det
    if sig.dtype != np.float32 or not sig.flags.c_contiguous:
        sig = np.ascontiguousarray(sig, np.float32)
    max_steps = int(math.ceil(max_widths * 2.0 * max(float(det.scale_px.max()), 0.75))) + 1
    out_yx = np.zeros((ends.size, max_steps, 2), np.float32)
    out_n = np.zeros(ends.size, np.int64)
    info = np.zeros((ends.size, 6), np.float64)
    size = np.bincount(seg, minlength=det.n_segments).astype(np.int64)
    from veinscope._kernels.groups import group_medians

    chain_scale = group_medians(np.ascontiguousarray(det.scale_px, np.float32), seg, det.n_segments).astype(np.float64)
    reach_faces(sig, skin.view(np.uint8), ys, xs, seg, size, np.ascontiguousarray(det.scale_px, np.float64), chain_scale, ends, n,
                float(max_widths), float(k_noise), out_yx, out_n, info)  # fmt: skip
    # a walk that ran its whole length met no end face: the line goes on at the vessel's
    # contrast (a vessel the filter lost for a while, or a skin crease running on past a mark
    # made on it), which is extend_ends' evidence to weigh from the detected end, not an end's
    out_n[info[:, 3] == 1] = 0
    tracks = []
    buf = np.empty((max_steps, 2), np.int64)
    for a in np.flatnonzero(out_n > 0):
        c = raster_track(ys[ends[a]], xs[ends[a]], out_yx[a, : out_n[a]], np.zeros(out_n[a], bool), m, n, buf, 0)
        if c:
            tracks.append((a, buf[:c].copy()))
    out = det
    if tracks:
        new_yx = np.concatenate([p for _, p in tracks])
        owner = np.concatenate([np.full(p.shape[0], a) for a, p in tracks])
        # the new points take the end's half-width (its chain's last four widths), not the
        # scale the filter answered at beside the end (smaller: the larger one lost the vessel)
        # and the normal across the walk's direction (one straight line per end)
        nrm = np.stack([info[owner, 5], -info[owner, 4]], axis=1)
        out = _with_points(det, new_yx, ends[owner], owner, info[owner, 0], n, tracked=False, new_first=True, normals=nrm)
    face = np.flatnonzero(info[:, 3] == 3)
    if face.size == 0:
        return out
    last = np.maximum(out_n[face] - 1, 0)
    fy = np.where(out_n[face] > 0, out_yx[face, last, 0], ys[ends[face]])
    fx = np.where(out_n[face] > 0, out_yx[face, last, 1], xs[ends[face]])
    drop = _end_clutter(out, fy, fx, info[face, 4], info[face, 5], info[face, 0], seg[ends[face]])
    if not drop.any():
        return out
    keep = ~drop[out.segment]
    log.info("reach_end_faces: %d chains inside a vessel's end dropped", int(np.count_nonzero(drop)))
    return replace(
        out,
        points_yx=out.points_yx[keep],
        segment=out.segment[keep],
        strength=out.strength[keep],
        normals_yx=out.normals_yx[keep],
        scale_px=out.scale_px[keep],
        tracked=None if out.tracked is None else out.tracked[keep],
        reached=None if out.reached is None else out.reached[keep],
    )


def warmup() -> None:
    """Compile (or load from the Numba cache) the kernel of :func:`reach_end_faces`' pruning and
    those of :func:`probe_sides` on tiny inputs: the first runs only where a walk found an end
    face, which :func:`veinscope.warmup`'s small photo need not show; the others are off by default."""
    from veinscope._kernels.track import end_clutter, side_nulls, side_probes

    z = np.zeros(1)
    i = np.zeros(1, np.int64)
    end_clutter(z, z, i, np.array([0, 1], np.int64), z, z, z, z, np.ones(1), i, np.zeros(1, bool))
    # ... and the side probe's (off by default, so the small photo does not reach them)
    sig = np.zeros((8, 8), np.float32)
    skin = np.ones((8, 8), np.uint8)
    side_nulls(sig, skin, i, i, i, 8, z, z, z, np.ones(1), 0.75, 2, np.zeros(1))
    side_probes(sig, skin, i, i, i, 8, i, z, np.ones(1), np.ones(1), 0.75, 2, 0.0, np.zeros(1), np.zeros((1, 3)))


def _end_clutter(det: VesselDetection, fy, fx, ty, tx, hw, own) -> np.ndarray:
    """(n_segments,) bool: the chains that are the clutter inside a vessel's end, not vessels.

    A chain with fewer points than the vessel is wide (``2 hw``, ``hw`` (F,) its half-width,
    px) that lies wholly inside the vessel's last width before its end face (``fy``, ``fx``
    (F,), the vessel running along (``ty``, ``tx``) (F,) towards it): every point at most a
    width behind the face and at most ``hw / 2`` beyond it, and at most ``1.5 hw`` from the
    vessel's axis (a quarter width's margin, where the line filter's blur at the vessel's own
    scale places a ridge). Such a chain is the ridge the line filter finds towards the corners of
    a blunt end (a rectangle's medial axis forks there) or a speck inside the end: the
    classical pruning of a medial axis removes a branch shorter than the shape is wide where
    it leaves (Shaked and Bruckstein 1998, doi:10.1006/cviu.1997.0598). ``own`` (F,): each
    face's own chain, never dropped by it.
    """
    from veinscope._kernels.track import end_clutter

    drop = np.zeros(det.n_segments, bool)
    seg = det.segment.astype(np.int64)
    if seg.size == 0 or np.size(fy) == 0:
        return drop
    order = np.argsort(seg, kind="stable")
    bounds = np.searchsorted(seg[order], np.arange(det.n_segments + 1)).astype(np.int64)
    f64 = (lambda v: np.ascontiguousarray(v, np.float64))
    end_clutter(f64(det.points_yx[:, 0]), f64(det.points_yx[:, 1]), order.astype(np.int64), bounds, f64(fy), f64(fx),
                f64(ty), f64(tx), f64(hw), np.ascontiguousarray(own, np.int64), drop)  # fmt: skip
    return drop


def _with_points(det: VesselDetection, new_yx, e, owner, scale, n: int, *, tracked: bool, new_first: bool = False,
                 normals=None) -> VesselDetection:
    """``det`` with the points ``new_yx`` (P, 2) added to the chains of the end points ``e`` (P,)
    (``owner`` (P,): the track of each, for its tangents; ``scale`` (P,) their Hessian scale),
    marked ``tracked`` (followed past the end) or else ``reached`` (carried to the end face); a
    new point on an old one is dropped (``new_first``: the old one is). ``n``: the image's width;
    ``normals`` (P, 2): across each new point's vessel (default: across its track's tangent)."""
    k = det.points_yx.shape[0]
    if normals is None:
        tan = _tangents(new_yx, owner)
        normals = np.stack([tan[:, 1], -tan[:, 0]], axis=1)
    pts = np.concatenate([det.points_yx.astype(np.int64), new_yx])
    key = pts[:, 0] * n + pts[:, 1]
    # unique keys, the detected point first where a new one falls on it (or the new one)
    rank = np.arange(key.size)
    order = np.lexsort((-rank if new_first else rank, key))
    first = np.ones(order.size, bool)
    first[1:] = key[order][1:] != key[order][:-1]
    order = order[first]
    seg_all = np.concatenate([det.segment, det.segment[e]])
    strength = np.concatenate([det.strength, det.strength[e]])
    normals = np.concatenate([det.normals_yx, np.asarray(normals, np.float32)])
    scale = np.concatenate([det.scale_px, np.asarray(scale, np.float32)])
    flags = []
    for old, new in ((det.tracked, tracked), (det.reached, not tracked)):
        if old is None and not new:
            flags.append(None)
        else:
            old = np.zeros(k, bool) if old is None else np.asarray(old, bool)
            flags.append(np.concatenate([old, np.full(new_yx.shape[0], new)])[order])
    log.info("%d points added to %d ends", int(np.count_nonzero(order >= k)), np.unique(e).size)
    return replace(
        det,
        points_yx=pts[order].astype(np.int32),
        segment=seg_all[order].astype(np.int32),
        strength=strength[order].astype(np.float32),
        normals_yx=normals[order].astype(np.float32),
        scale_px=scale[order].astype(np.float32),
        tracked=flags[0],
        reached=flags[1],
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
