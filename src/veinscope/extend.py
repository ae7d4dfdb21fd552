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

__all__ = ["extend_ends", "reach_end_faces"]

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
        # the chain's own detected points: those carried to an end face (``reached``) are
        # inferred from the chain, not evidence that it is a vessel rather than a speck
        found = seg if det.reached is None else seg[~np.asarray(det.reached, bool)]
        size = np.bincount(found, minlength=det.n_segments)[seg[ends]]
        keep = size >= min_chain_px
        ends, size = ends[keep], size[keep]
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
                int(max_probes), null_hw, null_med, null_sp)  # fmt: skip
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
    """Compile (or load from the Numba cache) the kernel of :func:`reach_end_faces`' pruning on
    tiny inputs: it runs only where a walk found an end face, which :func:`veinscope.warmup`'s
    small photo need not show."""
    from veinscope._kernels.track import end_clutter

    z = np.zeros(1)
    i = np.zeros(1, np.int64)
    end_clutter(z, z, i, np.array([0, 1], np.int64), z, z, z, z, np.ones(1), i, np.zeros(1, bool))


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
