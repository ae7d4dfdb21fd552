"""Centreline measurements -> per-vessel and per-class figures, the frozen :class:`Analysis`.

Diameters are the visible width (full width at half maximum of the vessel's own deblurred
contrast profile), fitted at every centreline point by :func:`veinscope.diameter.profile_diameters`.
Lengths follow the centreline (Kulpa's unbiased chain weights). Millimetre figures need an
explicit ``px_per_mm``; without one, the ``*_mm`` figures are ``None`` and the ``*_px`` ones
are given.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from veinscope._version import __version__
from veinscope.segment import CLASS_CODES, CLASS_NAMES

log = logging.getLogger(__name__)

__all__ = ["Analysis", "ClassFigures", "MeasuredVessels", "chain_delta_e", "chroma_restored_od", "chain_lengths", "class_figures", "measure_vessels"]

_ALL = CLASS_NAMES + ("total",)


@dataclass(frozen=True)
class ClassFigures:
    """Figures of one vessel class (or ``total``)."""

    coverage_pct: float
    area_px2: float
    length_px: float
    diameter_px: dict[str, float | None]
    segments: int
    px_per_mm: float | None

    def to_dict(self) -> dict[str, Any]:
        ppm = self.px_per_mm
        mm = (lambda v: None if v is None or ppm is None else round(v / ppm, 4))
        return {
            "coverage_pct": round(self.coverage_pct, 4),
            "area_mm2": None if ppm is None else round(self.area_px2 / ppm**2, 4),
            "length_mm": mm(self.length_px),
            "diameter_mm": {k: mm(v) for k, v in self.diameter_px.items()},
            "segments": self.segments,
            "area_px2": round(self.area_px2, 2),
            "length_px": round(self.length_px, 2),
            "diameter_px": {k: None if v is None else round(v, 3) for k, v in self.diameter_px.items()},
        }


@dataclass(frozen=True)
class Analysis:
    """The result of :func:`veinscope.analyze` on one photo.

    Attributes
    ----------
    px_per_mm : float or None
        Scale used for millimetre figures (None: uncalibrated, pixel figures only).
    classes : dict[str, ClassFigures]
        Keys ``red_telangiectasia``, ``blue_telangiectasia``, ``reticular``, ``over_3mm``, ``total``.
    labels : ndarray (M, N) uint8
        0 none, 1 red_telangiectasia, 2 blue_telangiectasia, 3 reticular, 4 over_3mm.
    diameter_px : ndarray (M, N) float32
        Visible vessel diameter in pixels at vessel pixels, 0 elsewhere.
    skin : ndarray (M, N) bool
    vessels : list of dict
        One entry per vessel segment: class, length, diameter (median), colour.
    warnings : tuple of str
        Plain-language remarks on the photo and the measurement.
    params : dict
        Every parameter that produced this result.
    version : str
    """

    px_per_mm: float | None
    classes: dict[str, ClassFigures]
    labels: np.ndarray = field(repr=False)
    diameter_px: np.ndarray = field(repr=False)
    skin: np.ndarray = field(repr=False)
    vessels: list[dict[str, Any]] = field(default_factory=list, repr=False)
    warnings: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    version: str = __version__
    name: str = "photo"

    @property
    def diameter_mm(self) -> np.ndarray:
        """Diameter in mm at vessel pixels (0 elsewhere); NaN at vessel pixels when uncalibrated."""
        if self.px_per_mm is None:
            out = np.zeros_like(self.diameter_px)
            out[self.labels > 0] = np.nan
            return out
        return (self.diameter_px / np.float32(self.px_per_mm)).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """The ``analysis.json`` content (JSON-ready; arrays are written as separate files)."""
        return {
            "px_per_mm": self.px_per_mm,
            "warnings": list(self.warnings),
            "classes": {k: self.classes[k].to_dict() for k in _ALL},
            "skin_area_px2": int(self.skin.sum()),
            "skin_area_mm2": None if self.px_per_mm is None else round(float(self.skin.sum()) / self.px_per_mm**2, 2),
            "vessels": self.vessels,
            "photo": {"name": self.name, "height_px": int(self.labels.shape[0]), "width_px": int(self.labels.shape[1])},
            "parameters": self.params,
            "version": self.version,
        }


@dataclass(frozen=True)
class MeasuredVessels:
    """Centreline points with their diameter and class, the painted maps and the vessel table.

    Attributes
    ----------
    points_yx : ndarray (K, 2) int32
    width_px : ndarray (K,) float32  visible diameter at each point (NaN: rejected point)
    point_class : ndarray (K,) int64  class code of each point, 0 where rejected
    piece : ndarray (K,) int64  vessel-piece index (a chain split where its class changes), -1 rejected
    piece_class : ndarray (P,) int64
    piece_length_px : ndarray (P,) float64
    labels : ndarray (M, N) uint8
    diameter_px : ndarray (M, N) float32
    table : list of dict  one entry per vessel piece
    """

    points_yx: np.ndarray
    width_px: np.ndarray
    point_class: np.ndarray
    piece: np.ndarray
    piece_class: np.ndarray
    piece_length_px: np.ndarray
    labels: np.ndarray = field(repr=False)
    diameter_px: np.ndarray = field(repr=False)
    table: list[dict[str, Any]] = field(default_factory=list, repr=False)


DROP_RULES = (
    "accepted", "melanin", "too dark", "other", "branch melanin", "tracked into a kept vessel", "overlap",
    "red and wide", "weak, not judged", "isolated patch", "ΔE00", "weak band ΔE00", "short chain texture",
    "one-sided step", "colour undecided",
)
"""The rules of :func:`measure_vessels` by the code its ``drop_reasons`` gives (0: accepted)."""


def measure_vessels(
    det, widths, optics, skin, *, ppm, calibrated, max_melanin_frac, max_contrast_od, smooth_mm=1.0,
    max_covered=0.8, centre_shift_px=None, paint_links_between=False, join_ends=False, rgb=None, min_delta_e=None,
    restore_chroma=False, weak_min_delta_e=None, max_red_width_px=None, wide_weak_delta_e=None, colour_split_z=None,
    size_class_z=None, colour_runs_z=None, facing_widths=None, link_signal=None, length_once=False,
    branch_melanin_widths=None, short_chain_nfa=None, short_chain_px=None,
    smooth_widths=None, valley_sides=False, undecided_z=None, undecided_gap_px=None, drop_reasons=None,
):
    """Classify and measure detected centrelines.

    Each detected chain is first judged as a whole by its colour: mostly melanin-like (freckle,
    naevus, hair, stain) or far darker than any vessel (hair, nail, a gap between fingers) is
    rejected; otherwise red vs blue follows its haemoglobin vs venous share. Every point's
    diameter is then smoothed along the vessel (median over ``smooth_mm``), the size class (under
    1 mm, 1-3 mm, over 3 mm) is taken per point, and chains are split into pieces where the
    class changes (a tapering vein can be reticular at one end and a telangiectasia at the other).

    Points ``det.tracked`` marks (followed past a chain's end, :func:`veinscope.extend.extend_ends`)
    belong to their chain, but the chain's colour (melanin, contrast, ``min_delta_e``) and its
    overlap with longer chains (``max_covered``) are judged on its detected points only, and a
    tracked point inside the width of a vessel kept is that vessel's (not accepted).

    Parameters
    ----------
    det : VesselDetection
    widths : ndarray (K,) float32 or None
        Visible diameter in pixels at each detected point (NaN where the fit failed).
    optics : SkinOptics
    skin : ndarray (M, N) bool
    ppm : float
        Pixels per millimetre used for the size classes.
    centre_shift_px : ndarray (K,), optional
        Sub-pixel position of each point's cross-section centre along its normal (px, NaN:
        none); vessels are painted there, not at the centreline pixel.
    calibrated : bool
        Whether ``ppm`` is a real calibration (else millimetre values are not reported).
    smooth_mm : float
        Length along the vessel over which diameters are averaged.
    smooth_widths : float, optional
        A run of one size class shorter than its own smoothed diameter (and wider than the
        ``smooth_mm`` window) takes the median width of its chain's own points within this
        many times that diameter (:func:`_smooth_wide`): a vessel's width does not change over
        less than its width, so a chain's last few points read as a disc three times its width
        are its end's profile (shading, a crease), not a wider vessel. ``None``: the
        ``smooth_mm`` window only.
    valley_sides : bool
        Keep a chain only where the skin on both its sides is lighter than it (a dark line: a
        valley of lightness), not on one side only (a one-sided step: a shadow's edge, the
        leg's outline, a fold's shaded flank): :func:`_one_sided_chains`, read against the
        skin's own slope across the chain; chains under 1 mm wide only. Needs ``rgb``.
    max_covered : float
        A chain with more than this share of its points inside the width of longer chains
        repeats a vessel already found and is dropped (1 keeps every chain).
    paint_links_between : bool
        Also paint the band between neighbouring centreline points
        (:func:`veinscope._kernels.ridges.paint_links`), not only a disc at each: without it a
        vessel under 2 px wide is painted one pixel wide along diagonals and steps.
    join_ends : bool
        Carry each free chain end on to a chain just ahead of it, when the two painted
        vessels are at most half the end's diameter apart (:func:`_end_links`): the gap's
        length counts to the end's piece and the gap is painted. The line filter, at scales
        of half a vessel's width, does not resolve a break shorter than about the width: the
        centreline of a branch stops at the edge of the vessel it joins, and a wide vein's
        centreline breaks where its crest wanders or another vessel crosses it, while the
        vessel runs on.
    facing_widths : float, optional
        With ``join_ends``, also join two free ends of different chains that face each other
        across a longer break, up to this many of the narrower end's diameters apart, when the
        vessel's profile runs on across the break (:func:`_facing_links`, judged on
        ``link_signal``). ``None``: off.
    link_signal : ndarray (M, N) float, optional
        The detection signal with the skin's coarse background added back (the photo's own
        optical density on the matched weights, vessels bright: the map the half-maximum widths
        read), for ``facing_widths``; required with it.
    length_once : bool
        Count each vessel's length once where two centreline branches run along it
        (:func:`_repeated_points`): on a wide vein the line filter often answers with two or
        more parallel crests, and summing their lengths counts the vein two or more times. A
        stretch of a branch that lies inside the painted vessel (half the diameter) of a longer
        branch and runs parallel to it (within 30 degrees) adds no length, and neither does a
        ``join_ends`` link from an end inside it. Painting, areas and classes are unchanged.
    rgb : ndarray (M, N, 3) uint8, optional
        The photo, for ``min_delta_e``.
    min_delta_e : float, optional
        A chain whose mean colour along its length differs from the skin beside it by less
        than this CIEDE2000 (:func:`chain_delta_e`, on ``rgb``) is not a visible vessel and is
        dropped (faint blotches of redness, pores and texture the line filter answered);
        ``None`` keeps every chain.
    weak_min_delta_e : float, optional
        The chains ``det.weak`` marks (bands the hysteresis dropped,
        :func:`veinscope.segment.detect_vessels`' ``weak_bands``) are kept only when their
        :func:`chain_delta_e` on ``rgb`` is at least this (not judged: dropped) and their median
        diameter is under 1 mm (the telangiectasia classes: a wide faint band is shading
        between bulges of the leg more often than a vein), after every other rule. ``None``:
        weak chains are dropped.
    wide_weak_delta_e : float, optional
        A weak chain 1 mm wide or more (dropped under ``weak_min_delta_e``'s rule) is kept all
        the same when it continues a wide vein that is kept, along that vein's axis and at its
        scale (:func:`_continue_wide_veins`: hysteresis along the vein, Canny's connectivity
        across the vein's own break), and its :func:`chain_delta_e` is at least this.
        ``None``: wide weak chains are dropped.
    restore_chroma : bool
        Judge a thin chain (diameter at most two chroma cells of 4:2:0, 4 px) whose centre
        colour is more than ``max_melanin_frac`` melanin-like again, branch by branch (split at
        its junctions: a hair crossing a vessel is one 8-connected chain with it), on its colour
        with the chroma that compression (JPEG, HEIC) spread out of it put back
        (:func:`chroma_restored_od`). A branch is kept, as a red telangiectasia, when that
        colour is oxygenated blood (haemoglobin part above the venous part) and not
        melanin-like, at the estimate and at the four corners of its hue's error bars (2
        standard errors). On a thin red vessel the centre pixel keeps the luma dip but loses
        most of its hue and reads as a neutral, brownish darkening; a hair, a shadow line or a
        brown mark does not have blood's hue, restored or not.
    max_red_width_px : float, optional
        A chain whose colour is red (its haemoglobin part at least its venous part, the red/blue
        class rule) and whose median diameter (px) is at least this is dropped: red vessels are
        telangiectasia, under 1 mm; a vein 1 mm or wider (reticular, varicose) is blue-green,
        so a red band that wide is redness of the skin (a blotch, erythema). ``None`` keeps it.
    colour_split_z : float, optional
        Judge red vs blue piece by piece as well (:func:`_colour_by_branch`): a chain is
        8-connected, so a red vessel running into a blue one, a red spider's arm touching a blue
        or reticular vein, or two vessels of different colour crossing, is one chain, and one
        colour for the whole would misread one of them. A stretch (either side of a change
        point along a branch, or a branch against the rest of its chain), with at least 3
        sample lengths on each side, takes its own colour when that differs, the two mean
        colour signals differ by at least this many standard errors and the stretch's own mean
        is this many standard errors from the red/blue boundary (per-point noise, one
        independent sample per diameter but no closer than 8 px).
        ``None``: one colour per chain.
    colour_runs_z : float, optional
        Judge red vs blue run by run as well, after ``colour_split_z`` (:func:`_colour_runs`):
        where a blue vessel crosses or touches a red spider, the chain's skeleton does not
        follow the vessels, and a branch between junctions runs along a red arm and on along
        the blue vessel, so its colour is a mixture. The detected points of a chain are cut
        into runs where their own colour signal (haemoglobin minus venous part) changes sign;
        a run at least 3 sample lengths long (one per diameter, no closer than 8 px) whose mean
        is at least this many standard errors from the red/blue boundary (its spread, at least
        its chain's pooled over its runs) takes its own colour. ``None``: not judged.
    branch_melanin_widths : float, optional
        Judge the melanin rule (``max_melanin_frac``) on each branch of a kept chain as well (:func:`_melanin_branches`): a chain is 8-connected, so a hair (or a
        freckle's or naevus's rim) crossing or touching a vessel is one chain with it, and the
        chain's mean colour is the vessel's. A branch between junctions at least this many
        sample lengths long (one per diameter, no closer than 8 px) whose own mean colour is
        melanin-like is dropped with the points tracked on from it.
        ``None``: one colour judgement per chain.
    short_chain_nfa, short_chain_px : float, optional
        With ``rgb`` and ``min_delta_e``: a chain of at most ``short_chain_px`` judged points is
        kept only if its :func:`chain_delta_e` stands out of the photo's own skin texture
        (:func:`_texture_nfa` with ``symmetric_null``: its number of false alarms, over the
        short chains tested, under ``short_chain_nfa``). ``None``: not judged.
    size_class_z : float, optional
        Judge each size-class piece's width with its error bar (:func:`_size_class_margin`):
        a piece whose mean diameter is less than this many standard errors on its side of the
        1 mm (or 3 mm) boundary is undecided and takes the class of the longest piece it
        touches that is decided. A vein about 1 mm wide otherwise breaks into short pieces of
        alternating class where its measured width dithers about the boundary. ``None``: each
        point's class from its own smoothed diameter.
    undecided_z : float, optional
        Judge the colour of each chain made mostly of points the fixed detection levels do not
        find (fewer than half its points, tracked ones included, on their centreline:
        ``det.fixed_points``, :func:`veinscope.segment.detect_vessels`' ``rates_guard`` word
        ``"colour"``) with its error bar (:func:`_undecided_colour`): a chain under 1 mm
        wide whose mean colour signal (haemoglobin part minus venous part) lies within this many
        standard errors of the red/blue boundary is undecided, and is left unmarked: its
        contrast is at the noise (a ΔE00 of about 2) and its colour reads either way. A chain
        that follows another (``det.follows``, the followed chain accepted) takes that chain's
        class instead and is not judged; one that follows an undecided chain goes with it.
        ``None``: every chain's colour from its mean.
    undecided_gap_px : float, optional
        With ``undecided_z``: an undecided chain takes the colour of the nearest accepted point
        of a decided chain within this many pixels instead, and is left unmarked only where
        there is none. ``None``: left unmarked.
    drop_reasons : dict, optional
        Filled (diagnostics) with ``"code"``, an int8 array (K,): for each detected point the
        first rule that dropped it (0: accepted), and ``"names"``, the rules' names by code
        (:data:`DROP_RULES`). Results unchanged.
    """
    from veinscope._kernels.groups import group_means, group_medians
    from veinscope._kernels.ridges import (
        drop_covered_chains, paint_discs, paint_links, same_class_pieces, window_median,
    )
    from veinscope.chromophores import unmix

    m, n = skin.shape
    k = det.points_yx.shape[0]
    pts = det.points_yx
    labels = np.zeros((m, n), np.uint8)
    diameter = np.zeros((m, n), np.float32)
    width = np.full(k, np.nan, np.float32) if widths is None else np.asarray(widths, np.float32).copy()
    reached = getattr(det, "reached", None)
    if reached is not None:
        # a point carried on to the end face lies where the contrast falls to half: its profile
        # is the end's, not the vessel's; it takes its chain's width (below), as a failed fit
        # does, and is painted on its centreline point (no centre shift)
        width[np.asarray(reached, bool)] = np.nan
    tracked_in = getattr(det, "tracked", None)
    if tracked_in is not None and k and np.any(tracked_in):
        # a vessel followed on past its end (:func:`veinscope.extend.extend_ends`) fades as it
        # dives deeper: it does not widen. A fitted width there above any the chain has along its
        # detected points is the profile of the shading the track runs along (a crease, a
        # shadow), not the vessel's: the point is painted no wider than its vessel was seen
        t_in = np.asarray(tracked_in, bool)
        own = ~t_in & np.isfinite(width) & (det.segment >= 0) & (det.segment < det.n_segments)
        if reached is not None:
            own &= ~np.asarray(reached, bool)
        if own.any():
            own_max = np.full(det.n_segments, np.inf, np.float32)
            seen_max = np.full(det.n_segments, -np.inf, np.float32)
            np.maximum.at(seen_max, det.segment[own], width[own])
            own_max = np.where(np.isfinite(seen_max), seen_max, own_max)
            sel_t = np.flatnonzero(t_in & (det.segment >= 0) & (det.segment < det.n_segments))
            cap = own_max[det.segment[sel_t]]
            width[sel_t] = np.where(width[sel_t] > cap, cap, width[sel_t])
    point_class = np.zeros(k, np.int64)
    if k == 0:
        if drop_reasons is not None:
            drop_reasons.update(code=np.zeros(0, np.int8), names=DROP_RULES)
        return MeasuredVessels(pts, width, point_class, np.full(0, -1, np.int64), np.zeros(0, np.int64), np.zeros(0), labels, diameter, [])
    key = pts[:, 0].astype(np.int64) * n + pts[:, 1]
    if np.any(np.diff(key) <= 0):
        raise ValueError("det.points_yx must be unique and sorted row-major (as detect_vessels returns them)")
    od = optics.relative_od_at(pts)
    accepted = np.zeros(k, bool)
    red_chain = np.zeros(k, bool)
    redness = np.zeros(max(det.n_segments, 1), bool)
    # the first rule that drops each point, kept only when asked for (drop_reasons)
    tracing = drop_reasons is not None
    reason = np.zeros(k if tracing else 0, np.int8)
    was = accepted.copy() if tracing else None

    def _dropped_by(rule):
        # points accepted before this rule and not after it (the first rule that drops a point)
        if tracing:
            reason[was & ~accepted & (reason == 0)] = DROP_RULES.index(rule)
            was[:] = accepted

    chain_info = {}
    # per chain at once: its mean relative OD and mean |OD| (colour), and the median of its
    # fitted widths (the same values, to the bit, as the NumPy calls per chain)
    order = np.argsort(det.segment, kind="stable")
    bounds = np.searchsorted(det.segment[order], np.arange(det.n_segments + 1)).astype(np.int64)
    od_mean = np.empty((det.n_segments, 3), np.float32)
    od_abs_mean = np.empty((det.n_segments, 3), np.float32)
    # a chain's colour is judged on its detected points (not on those tracked past its ends)
    tracked = getattr(det, "tracked", None)
    core = np.ones(k, bool) if tracked is None else ~np.asarray(tracked, bool)
    # ... and not on those carried on to its end face (:func:`veinscope.extend.reach_end_faces`),
    # which paint the vessel and add its length, as on main before them
    judged = np.ones(k, bool) if reached is None else ~np.asarray(reached, bool)
    seen = core & judged
    order_c = order[seen[order]]
    bounds_c = np.searchsorted(det.segment[order_c], np.arange(det.n_segments + 1)).astype(np.int64)
    group_means(np.ascontiguousarray(od, np.float32), order_c.astype(np.int64), bounds_c, od_mean, od_abs_mean)
    fitted = np.isfinite(width)
    in_range = (det.segment >= 0) & (det.segment < det.n_segments)
    sel = fitted & in_range
    w_median = group_medians(width[sel], det.segment[sel], det.n_segments)
    n_fitted = np.bincount(det.segment[sel], minlength=det.n_segments)[: det.n_segments]
    colour = od_mean.astype(np.float64)
    part_of = {}  # chain -> colour of the branches kept by their restored colour
    if restore_chroma and det.n_segments:
        # a chain whose centre colour reads melanin-like is judged again on its colour with
        # the chroma that compression spread out of a thin vessel put back
        pos = np.maximum(unmix(colour), 0.0)
        total = pos.sum(axis=1)
        scale_w = 2.0 * group_medians(det.scale_px[in_range].astype(np.float32), det.segment[in_range], det.n_segments)
        chain_w = np.where(n_fitted > 0, w_median, scale_w)
        # only chains narrower than two chroma cells of 4:2:0 (4 px) have lost their hue: a
        # wider one keeps chroma samples of its own and its centre colour stands
        thin = chain_w <= 2.0 * CHROMA_CELL_PX
        suspect = np.flatnonzero((np.diff(bounds) > 0) & (pos[:, 2] > max_melanin_frac * total) & thin)
        if suspect.size:
            # judged branch by branch (a chain is 8-connected: a hair crossing a vessel, or a
            # freckle's edge touching one, is one chain with it)
            branch, n_branch = _branches(pts, det.segment, suspect, key, n)
            b_chain = np.full(n_branch, -1, np.int64)
            b_chain[branch[branch >= 0]] = det.segment[branch >= 0]
            restored = chroma_restored_od(optics.rgb, pts, det.normals_yx, chain_w[np.maximum(b_chain, 0)], branch,
                                          np.arange(n_branch), skin)  # fmt: skip
            # kept when its colour is that of oxygenated blood (haemoglobin more than venous)
            # and not melanin-like, even at the ends of the hue's error bars
            rp = np.maximum(unmix(restored), 0.0)
            ok = (np.isfinite(restored).all(axis=(1, 2)) & (rp[..., 2] <= max_melanin_frac * rp.sum(axis=2)).all(axis=1)
                  & (rp[..., 0] >= rp[..., 1]).all(axis=1))  # fmt: skip
            if ok.any():
                b_len = np.bincount(branch[branch >= 0], minlength=n_branch)
                rescued_pt = np.zeros(k, bool)
                rescued_pt[branch >= 0] = ok[branch[branch >= 0]]
                # a junction point goes with a kept branch it touches
                rescued_pt |= _touches(pts, key, n, rescued_pt, branch == -2)
                for bid in np.flatnonzero(ok)[np.argsort(-b_len[ok], kind="stable")]:
                    part_of.setdefault(int(b_chain[bid]), restored[bid, 0])  # the longest kept branch's colour
    for c_id in range(det.n_segments):
        a, b = bounds[c_id], bounds[c_id + 1]
        if a == b:
            continue
        idx = order[a:b]
        if c_id in part_of:  # only its branches kept by their restored colour, judged by it
            colour[c_id] = part_of[c_id]
            idx = idx[rescued_pt[idx]]
        pos = np.maximum(unmix(colour[c_id]), 0.0)
        total = float(pos.sum())
        mel_frac = float(pos[2] / total) if total > 0 else 1.0
        blood = float(pos[0] + pos[1])
        red_frac = float(pos[0] / blood) if blood > 0 else 0.0
        if mel_frac > max_melanin_frac or float(od_abs_mean[c_id].max()) > max_contrast_od:
            if tracing:
                reason[idx] = DROP_RULES.index("melanin" if mel_frac > max_melanin_frac else "too dark")
            continue
        if tracing and c_id in part_of:
            reason[order[a:b][~rescued_pt[order[a:b]]]] = DROP_RULES.index("melanin")
        # Where the profile fit failed, take the chain's fitted median; a chain without any
        # fit (very faint or tangled) falls back to the Hessian scale (a bar of width w
        # responds most at sigma = w / 2).
        fallback = w_median[c_id] if n_fitted[c_id] else 2.0 * float(np.median(det.scale_px[idx]))
        if max_red_width_px is not None and red_frac >= 0.5 and fallback >= max_red_width_px:
            # red and wider than a telangiectasia: redness of the skin, not a vein; dropped after
            # the overlap rule, so that the chains repeating it go with it
            redness[c_id] = True
        if n_fitted[c_id] < idx.size:
            w = width[idx]
            width[idx] = np.where(np.isfinite(w), w, fallback)
        accepted[idx] = True
        red_chain[idx] = red_frac >= 0.5
        chain_info[c_id] = (red_frac, mel_frac)
    if tracing:
        reason[(reason == 0) & ~accepted] = DROP_RULES.index("other")
        was[:] = accepted
    if branch_melanin_widths is not None and chain_info:
        ids = np.array([c for c in chain_info if c not in part_of], np.int64)
        if ids.size:
            accepted &= ~_melanin_branches(pts, key, n, det.segment, ids, od, seen, width, accepted,
                                           max_melanin_frac=max_melanin_frac, min_widths=branch_melanin_widths)  # fmt: skip
            _dropped_by("branch melanin")
    if (colour_split_z is not None or colour_runs_z is not None) and chain_info:
        split_ids = np.array([c for c in chain_info if c not in part_of], np.int64)
        if split_ids.size and colour_split_z is not None:
            red_chain = _colour_by_branch(pts, key, n, det.segment, split_ids, od, core, width, red_chain, z=colour_split_z)
        if split_ids.size and colour_runs_z is not None:
            red_chain = _colour_runs(pts, key, n, det.segment, split_ids, od, core, width, red_chain, z=colour_runs_z)
    if accepted.any() and max_covered < 1.0:
        # Longest first, a chain mostly inside the vessels already kept repeats one of them.
        members = np.argsort(det.segment, kind="stable")
        members = members[core[members]]  # overlap judged on the detected points
        starts = np.searchsorted(det.segment[members], np.arange(det.n_segments + 1)).astype(np.int64)
        # (not on the points carried on to the end face, which paint their vessel all the same)
        sizes = np.bincount(det.segment[members[judged[members]]], minlength=det.n_segments)[: det.n_segments]
        chain_ok = np.zeros(det.n_segments, bool)
        chain_ok[np.unique(det.segment[accepted])] = True
        order = np.flatnonzero(chain_ok)[np.argsort(-sizes[chain_ok], kind="stable")].astype(np.int64)
        radius = np.where(np.isfinite(width), np.maximum(0.5 * width, 0.5), 0.0).astype(np.float64)
        cover = np.zeros((m, n), np.uint8)
        keep = drop_covered_chains(
            pts[:, 0].astype(np.int64), pts[:, 1].astype(np.int64), radius, members.astype(np.int64), starts, order,
            cover, float(max_covered), judged,
        )  # fmt: skip
        if not core.all():
            # a point tracked past a chain's end into the width of a vessel kept (a wide vein it
            # runs along or crosses) is that vessel's, not a length of its own
            accepted &= core | (cover[pts[:, 0], pts[:, 1]] == 0)
            _dropped_by("tracked into a kept vessel")
        del cover
        accepted &= keep[det.segment]
        _dropped_by("overlap")
    if redness.any():
        accepted[accepted] = ~redness[det.segment[accepted]]
        _dropped_by("red and wide")
    weak = getattr(det, "weak", None)
    if weak is not None and weak.any() and (rgb is None or weak_min_delta_e is None):
        accepted &= ~weak[det.segment]
        _dropped_by("weak, not judged")
    # (a lone patch is judged on its detected points: carried on to its end faces it is no longer)
    patch = _isolated_patches(pts, det.segment, accepted & judged, width)
    if patch.any():
        accepted &= ~np.isin(det.segment, np.unique(det.segment[patch]))
        _dropped_by("isolated patch")
    judge_weak = weak is not None and weak.any() and rgb is not None and weak_min_delta_e is not None
    if rgb is not None and (min_delta_e is not None or judge_weak) and accepted.any():
        de = chain_delta_e(rgb, pts, det.normals_yx, width, det.segment, accepted & seen, skin)
        # NaN: not judged, kept; a weak chain only on clear evidence
        low = [c for c, v in de.items() if min_delta_e is not None and v < min_delta_e]
        n_low = len(low)
        if judge_weak:
            wide = np.zeros(det.n_segments, bool)
            sel = accepted & weak[det.segment] & np.isfinite(width)
            if sel.any():
                wide = group_medians(width[sel].astype(np.float32), det.segment[sel], det.n_segments) >= ppm * 1.0
            cont = np.zeros(det.n_segments, bool)
            if wide_weak_delta_e is not None and wide.any():
                dropped = np.zeros(det.n_segments, bool)
                dropped[np.array(low, np.int64)] = True
                cont = _continue_wide_veins(pts, det.segment, accepted & ~dropped[det.segment], width, det.normals_yx,
                                            weak, wide, m, min_width_px=ppm * 1.0)  # fmt: skip
            low += [
                c for c, v in de.items()
                if weak[c] and (not v >= (wide_weak_delta_e if cont[c] else weak_min_delta_e) or (wide[c] and not cont[c]))
            ]  # fmt: skip
        n_gated = len(low)
        if short_chain_nfa is not None and short_chain_px is not None:
            low += _texture_nfa(rgb, pts, det.normals_yx, width, det.segment, accepted & seen, accepted, skin, de,
                                max_px=short_chain_px, nfa=short_chain_nfa, lone_px=ppm,
                                max_width_px=1.0 * ppm, skip=set(low), symmetric_null=True)  # fmt: skip
        faint = np.array(low, np.int64)
        if faint.size:
            # the three gates' chains, in the order they were listed (ΔE00, weak bands, texture)
            accepted &= ~np.isin(det.segment, faint[:n_low])
            _dropped_by("ΔE00")
            accepted &= ~np.isin(det.segment, faint[:n_gated])
            _dropped_by("weak band ΔE00")
            accepted &= ~np.isin(det.segment, faint)
            _dropped_by("short chain texture")
    if valley_sides and rgb is not None and accepted.any():
        steps = _one_sided_chains(rgb, pts, det.normals_yx, width, det.segment, accepted & seen, skin,
                                  max_width_px=1.0 * ppm)  # fmt: skip
        if steps.size:
            accepted &= ~np.isin(det.segment, steps)
            _dropped_by("one-sided step")
    fixed_points = getattr(det, "fixed_points", None)
    if undecided_z is not None and fixed_points is not None and accepted.any():
        # chains made mostly of points the fixed levels do not find (found at the lowered levels,
        # or followed on past the ends of a chain that only they made long enough)
        fixed_points = np.asarray(fixed_points, np.int64)
        total = np.bincount(det.segment, minlength=det.n_segments)[: det.n_segments]
        follows = getattr(det, "follows", None)
        ids = np.unique(det.segment[accepted])
        ids = ids[(fixed_points[ids] >= 0) & (fixed_points[ids] < 0.5 * total[ids])
                  & ~np.isin(ids, np.array(list(part_of), np.int64))]  # fmt: skip
        if follows is not None and ids.size:
            # a follower whose followed chain is kept takes that chain's class (_followed_class)
            f = np.asarray(follows)[ids]
            led = np.zeros(det.n_segments, bool)
            led[np.unique(det.segment[accepted])] = True
            ids = ids[~((f >= 0) & led[np.maximum(f, 0)])]
        if ids.size:
            raw_median = np.full(det.n_segments, np.nan)
            sel = accepted & np.isfinite(width)
            if sel.any():
                raw_median = group_medians(width[sel].astype(np.float32), det.segment[sel], det.n_segments).astype(np.float64)
            ids = ids[~(raw_median[ids] >= ppm * 1.0)]  # telangiectasia: its class hangs on its colour
        unsure = _undecided_colour(pts, det.segment, ids, od, accepted & seen, width, z=float(undecided_z)) if ids.size else ids
        if unsure.size and follows is not None:
            # a chain that follows an undecided one is the same vessel on: undecided with it
            f = np.asarray(follows)
            on = np.unique(det.segment[accepted])
            unsure = np.union1d(unsure, on[np.isin(f[on], unsure)])
        if unsure.size:
            gone = np.isin(det.segment, unsure)
            if undecided_gap_px is not None:
                from scipy.spatial import cKDTree

                ref = np.flatnonzero(accepted & ~gone)
                if ref.size:
                    d, j = cKDTree(pts[ref].astype(np.float64)).query(pts[gone].astype(np.float64),
                                                                     distance_upper_bound=float(undecided_gap_px))  # fmt: skip
                    sub = np.flatnonzero(gone)
                    order_g = np.argsort(det.segment[sub], kind="stable")
                    for c in unsure:
                        own = order_g[det.segment[sub[order_g]] == c]
                        near = own[np.isfinite(d[own])]
                        if near.size:
                            # the whole chain takes the colour of the decided point nearest it
                            best_i = near[int(np.argmin(d[near]))]
                            red_chain[sub[own]] = red_chain[ref[j[best_i]]]
                            gone[sub[own]] = False
            log.info("colour undecided: %d chains of lowered-level points left unmarked, %d given a neighbour's colour",
                     int(np.unique(det.segment[gone]).size), int(unsure.size - np.unique(det.segment[gone]).size))
            accepted &= ~gone
            _dropped_by("colour undecided")
    if drop_reasons is not None:
        drop_reasons.update(code=reason, names=DROP_RULES)
    width[~accepted] = np.nan
    if not accepted.any():
        return MeasuredVessels(pts, width, point_class, np.full(k, -1, np.int64), np.zeros(0, np.int64), np.zeros(0), labels, diameter, [])
    # Smooth the diameter along the vessel: median over centreline points within smooth_mm
    # (a (2r+1)^2 window; points are sorted row-major); robust to the odd failed fit.
    r = max(1, int(round(smooth_mm * ppm)))
    a_pts = pts[accepted]
    smooth = np.full(k, np.nan, np.float32)
    smooth[accepted] = window_median(a_pts[:, 0], a_pts[:, 1], width[accepted], r, m)
    if smooth_widths is not None:
        smooth = _smooth_wide(pts, det.segment, accepted, width, smooth, r, m, float(smooth_widths), ppm)
    raw_width = width
    width = smooth  # the diameter reported and painted is the smoothed one
    d_mm = smooth / ppm
    red, blue, ret, big = (CLASS_CODES[c] for c in CLASS_NAMES)
    point_class = np.where(d_mm > 3.0, big, np.where(d_mm >= 1.0, ret, np.where(red_chain, red, blue)))
    point_class[~accepted] = 0
    if size_class_z is not None:
        point_class = _size_class_margin(pts, key, m, n, det.segment, accepted, point_class, raw_width, smooth, ppm,
                                         z=size_class_z)  # fmt: skip
    follows = getattr(det, "follows", None)
    if follows is not None:
        point_class = _followed_class(pts, det.segment, accepted, point_class, np.asarray(follows))
    # Pieces: 8-connected runs of centreline points of the same class.
    piece, n_piece = same_class_pieces(
        pts[:, 0], pts[:, 1], point_class.astype(np.int64), np.array([red, blue, ret, big], np.int64), m
    )
    piece_class = np.zeros(n_piece, np.int64)
    piece_class[piece[accepted]] = point_class[accepted]
    piece_len = np.zeros(n_piece, np.float64)
    repeated = None
    if length_once:
        branch, _ = _branches(pts, det.segment, np.unique(det.segment[accepted]), key, n)
        repeated = _repeated_points(a_pts, branch[accepted], width[accepted], det.normals_yx[accepted])
        piece_len[:] = chain_lengths(pts[accepted], piece[accepted], n_piece, (m, n), counted=~repeated)
    else:
        piece_len[:] = chain_lengths(pts[accepted], piece[accepted], n_piece, (m, n))
    links = (
        _end_links(a_pts, det.segment[accepted], width[accepted], det.normals_yx[accepted], m, piece=piece[accepted],
                   facing_widths=facing_widths, signal=link_signal, skin=skin)
        if join_ends else None
    )  # fmt: skip
    if links is not None:
        ends, tgt, share = links
        if repeated is not None:
            # a link from an end inside a longer parallel branch's vessel repeats that vessel
            share = np.where(repeated[ends], 0.0, share)
        np.add.at(piece_len, piece[accepted][ends], share)
    # Paint each point's disc (radius half its own diameter) with its class and diameter.
    best = np.full((m, n), np.inf, np.float32)
    cy = pts[:, 0].astype(np.float64)
    cx = pts[:, 1].astype(np.float64)
    if centre_shift_px is not None:
        shift = np.clip(np.nan_to_num(np.asarray(centre_shift_px, np.float64)), -1.0, 1.0)
        if reached is not None:
            shift[np.asarray(reached, bool)] = 0.0  # the end's profile, as its width (above)
        cy = cy + shift * det.normals_yx[:, 0]
        cx = cx + shift * det.normals_yx[:, 1]
    a_rad = np.maximum(0.5 * width[accepted].astype(np.float64), 0.5)
    a_code = point_class[accepted].astype(np.uint8)
    paint_discs(cy[accepted], cx[accepted], a_rad, a_code, width[accepted], labels, diameter, best)
    if paint_links_between:
        paint_links(a_pts[:, 0].astype(np.int64), a_pts[:, 1].astype(np.int64), cy[accepted], cx[accepted], a_rad, a_code,
                    width[accepted], labels, diameter, best)  # fmt: skip
    if links is not None and links[0].size:
        # the gaps, painted as discs every half pixel from the end to the edge of the target's
        # vessel (not into it: the pixels of the vessel joined keep its class), with the end's
        # class and width
        ends, tgt, _ = links
        ay, ax = cy[accepted], cx[accepted]
        g = np.hypot(ay[tgt] - ay[ends], ax[tgt] - ax[ends])
        reach = np.clip(1.0 - a_rad[tgt] / np.maximum(g, 1e-9), 0.0, 1.0)
        steps = np.maximum(1, np.ceil(2.0 * g * reach).astype(np.int64))
        owner = np.repeat(np.arange(ends.size), steps)
        frac = reach[owner] * (np.arange(owner.size) - np.repeat(np.cumsum(steps) - steps, steps)) / steps[owner]
        e, t = ends[owner], tgt[owner]
        paint_discs(ay[e] + frac * (ay[t] - ay[e]), ax[e] + frac * (ax[t] - ax[e]), a_rad[e], a_code[e],
                    width[accepted][e], labels, diameter, best)  # fmt: skip
    del best
    labels[~skin] = 0
    diameter[labels == 0] = 0.0
    table = []
    names = {v: kk for kk, v in CLASS_CODES.items()}
    in_piece = piece >= 0
    p_ids = piece[in_piece]
    p_count = np.bincount(p_ids, minlength=n_piece)[:n_piece]
    p_width = group_medians(width[in_piece], p_ids, n_piece)
    p_centre = group_medians(pts[in_piece], p_ids, n_piece)
    p_first = np.zeros(n_piece, np.int64)  # each piece's first point
    first_ids, first_at = np.unique(p_ids, return_index=True)
    p_first[first_ids] = np.flatnonzero(in_piece)[first_at]
    for p_id in range(n_piece):
        if p_count[p_id] == 0:
            continue
        chain = int(det.segment[p_first[p_id]])
        red_frac, mel_frac = chain_info.get(chain, (0.0, 0.0))
        w_med = float(p_width[p_id])
        table.append(
            {
                "id": p_id,
                "class": names[int(piece_class[p_id])],
                "length_px": round(float(piece_len[p_id]), 2),
                "length_mm": round(float(piece_len[p_id]) / ppm, 3) if calibrated else None,
                "diameter_px_median": round(w_med, 3),
                "diameter_mm_median": round(w_med / ppm, 4) if calibrated else None,
                "redness_frac": round(red_frac, 3),
                "melanin_frac": round(mel_frac, 3),
                "centre_yx": [int(v) for v in p_centre[p_id]],
            }
        )
    return MeasuredVessels(pts, width, point_class, piece, piece_class, piece_len, labels, diameter, table)


def _followed_class(pts, segment, accepted, point_class, follows):
    """``point_class`` with each chain that continues another (``follows`` >= 0, see
    :class:`veinscope.segment.VesselDetection`) given the class of the followed chain's
    accepted point nearest to it, where both are accepted.

    Such a chain is the faint stretch of a vessel found only with lowered detection levels, near
    a chain the fixed levels find: the same vessel on, so of its colour and size. Its own colour
    is a mean over a contrast near the noise (a ΔE00 of about 2), and its width a profile at the
    noise, where the red/blue and 1 mm rules are read off it. Returns a new (K,) array.
    """
    from scipy.spatial import cKDTree

    out = point_class.copy()
    order = np.argsort(segment, kind="stable")
    bounds = np.searchsorted(segment[order], np.arange(follows.shape[0] + 1))
    for c in np.flatnonzero(follows >= 0):
        a = int(follows[c])
        own = order[bounds[c]:bounds[c + 1]]
        own = own[accepted[own]]
        ref = order[bounds[a]:bounds[a + 1]]
        ref = ref[accepted[ref]]
        if own.size == 0 or ref.size == 0:
            continue
        d, j = cKDTree(pts[ref].astype(np.float64)).query(pts[own].astype(np.float64))
        out[own] = point_class[ref[j[int(np.argmin(d))]]]
    return out


def _undecided_colour(pts, segment, chains, od, judged, width, *, z, min_sample_px=8.0):
    """The ``chains`` whose red / blue colour is undecided: (U,) int, a sorted subset of ``chains``.

    A chain is red when the unmixed mean OD's haemoglobin part is at least its venous part
    (:func:`measure_vessels`), i.e. when the mean of the per-point colour signal ``d`` (the
    haemoglobin part minus the venous part of each ``judged`` point's relative OD ``od``
    (K, 3)) is at least 0. Its error bar is the spread of ``d`` about that mean over the chain's
    points with one independent sample per diameter (its median ``width``, px) but no closer
    than ``min_sample_px`` (a JPEG chroma block), as :func:`_colour_runs` counts samples: a
    chain is undecided when its mean lies within ``z`` such standard errors of 0. At the cut
    this is the red share ``H / (H + V)`` within ``z`` of its own standard errors of 0.5 (the
    delta method: the share moves by ``d / (2 (H + V))``); a chain with fewer than two
    judged points, or no spread, is decided.
    """
    from veinscope._kernels.groups import group_medians
    from veinscope.chromophores import unmix

    chains = np.unique(np.asarray(chains, np.int64))
    if chains.size == 0:
        return chains
    sel = np.flatnonzero(judged & np.isin(segment, chains))
    if sel.size == 0:
        return chains[:0]
    inv = np.searchsorted(chains, segment[sel])
    u = unmix(od[sel].astype(np.float64)).astype(np.float64)
    d = u[:, 0] - u[:, 1]
    cnt = np.bincount(inv, minlength=chains.size).astype(np.float64)
    s1 = np.bincount(inv, weights=d, minlength=chains.size)
    s2 = np.bincount(inv, weights=d * d, minlength=chains.size)
    fin = np.isfinite(width[sel])
    w = np.full(chains.size, np.nan)
    if fin.any():
        w = group_medians(width[sel][fin].astype(np.float32), inv[fin], chains.size).astype(np.float64)
    w = np.maximum(np.where(np.isfinite(w), w, 1.0), min_sample_px)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s1 / cnt
        var = np.maximum(s2 / cnt - mean**2, 0.0) * cnt / np.maximum(cnt - 1.0, 1.0)
        se = np.sqrt(w * var / cnt)
        unsure = (cnt >= 2) & (se > 0) & (np.abs(mean) < z * se)
    return chains[unsure]


def _end_links(a_pts: np.ndarray, chain: np.ndarray, width: np.ndarray, normals_yx: np.ndarray, m: int, *, dir_px: int = 4,
               cos_min: float = 0.7071, piece: np.ndarray | None = None, facing_widths: float | None = None,
               signal: np.ndarray | None = None, skin: np.ndarray | None = None):
    """Free chain ends carried on to the chain just ahead of them.

    ``a_pts`` (K, 2) are the accepted centreline points (sorted row-major), ``chain`` their
    chain ids and ``width`` their diameters (px). A free end (one neighbour of its own chain)
    is linked to the nearest point of another chain within 45 degrees of its outward
    direction and at most its own diameter plus half the other's away, where the link crosses
    the other vessel (a branch reaching the vessel it joins) or meets a free end of it facing
    back (two pieces of one vessel); not where it runs along the other vessel (a stub at a
    blunt end beside the main crest). :func:`veinscope._kernels.ridges.end_links`, with
    ``normals_yx`` (K, 2) across each point's vessel. Two ends linked to each other's chains
    share the gap (half each), so it is counted once. With ``piece`` (K,), the pieces whose
    lengths :func:`chain_lengths` measures, an end 8-adjacent to a
    target of its own piece adds nothing: that step is already in the piece's length. With
    ``facing_widths`` (and ``signal``, ``skin``), free ends no other end links to are also
    paired across longer breaks by :func:`_facing_links` (one of a pair may already be carried
    on to a chain ahead: the pair's mutual link replaces that link).

    Returns ``(ends, targets, share)``: indices into ``a_pts`` of the linked ends, of their
    targets, and the length (px) each end adds to its piece.
    """
    from veinscope._kernels.ridges import end_links, free_ends

    if a_pts.shape[0] == 0:
        e = np.zeros(0, np.int64)
        return e, e, np.zeros(0)
    w = np.asarray(width, np.float64)
    wmax = float(np.nanmax(w)) if np.isfinite(w).any() else 0.0
    ch = np.asarray(chain, np.int64)
    ys, xs = a_pts[:, 0].astype(np.int64), a_pts[:, 1].astype(np.int64)
    is_end, out_y, out_x = free_ends(ys, xs, ch, int(m), int(dir_px))
    nrm = np.asarray(normals_yx, np.float64)
    tgt, gap = end_links(ys, xs, ch, w, np.ascontiguousarray(nrm[:, 0]), np.ascontiguousarray(nrm[:, 1]), is_end, out_y, out_x,
                         int(m), float(cos_min), wmax)  # fmt: skip
    if facing_widths is not None:
        if signal is None:
            raise ValueError("facing_widths needs the signal the links are judged on")
        # an end another end already links to is not free: pairing it would make that link
        # read as mutual (half its gap) while it is one-sided. An end already linked to a chain
        # ahead of it (a thin vessel crossing the break, within the end's own reach) may still
        # pair with an unlinked end facing it: the pair is the vessel running on, and its link
        # replaces the one to the crossing vessel (the break counted once, half each)
        targeted = np.zeros(ys.shape[0], bool)
        targeted[tgt[tgt >= 0]] = True
        e2, f2 = _facing_links(ys, xs, ch, w, is_end & ~targeted, out_y, out_x, signal, skin,
                               max_widths=float(facing_widths), cos_min=cos_min, normals_yx=nrm,
                               linked=tgt >= 0)  # fmt: skip
        # each of the pair is the other's target (a mutual link: half the gap each)
        tgt[e2] = f2
        tgt[f2] = e2
        gap[e2] = gap[f2] = np.hypot(ys[e2] - ys[f2], xs[e2] - xs[f2])
    ends = np.flatnonzero(tgt >= 0)
    back = tgt[tgt[ends]]
    mutual = (back >= 0) & (ch[np.maximum(back, 0)] == ch[ends])
    share = np.where(mutual, 0.5, 1.0) * gap[ends]
    if piece is not None:
        t = tgt[ends]
        touching = np.maximum(np.abs(ys[ends] - ys[t]), np.abs(xs[ends] - xs[t])) <= 1
        share = np.where(touching & (np.asarray(piece)[ends] == np.asarray(piece)[t]), 0.0, share)
    return ends, tgt[ends], share


def _facing_links(ys, xs, chain, width, free, out_y, out_x, signal, skin, *, max_widths: float, cos_min: float = 0.7071,
                  normals_yx=None, linked=None):
    """Pairs of free chain ends that face each other across a break of the vessel's centreline.

    Where another vessel crosses a vein (or the vein's crest wanders), the line filter's answer
    at the vein's scale is disturbed over about a width on each side of the crossing vessel, so
    the vein's centreline comes out as two chains whose ends face each other across the
    crossing, up to about two widths plus the crossing vessel's width apart: farther than
    :func:`_end_links`' own reach (one diameter plus half the other's). Two free ends
    (``free`` (K,) bool) of different chains are paired when they are at most ``max_widths``
    times the narrower one's diameter apart, each lies within ``cos_min`` (cosine) of the
    other's outward direction (``out_y``, ``out_x`` from
    :func:`veinscope._kernels.ridges.free_ends`), at least one of the two ends' segments (``chain``:
    the 8-connected centreline component, so a spur of a longer network counts as that network)
    has two of its widths' worth of points (a course whose direction means something, not two
    blobs), their diameters (``width``, px) agree within a factor of 2 (one vessel), and the
    vessel's profile runs on across the break: the contrast
    across the straight link (:func:`veinscope._kernels.track.cross_contrast` on ``signal`` at
    the pair's mean half-width, the skin one and two footprints beyond each edge, as
    :func:`veinscope.extend.reach_end_faces` reads a vessel's end face) stays, in its median
    over the link, at least half the two ends' own contrast over their last width (the half
    maximum, as the widths and the end faces), both above 0; and no centreline runs along the
    link already (within its half-width: the end's own chain going on more than half a width
    ahead of the end, a spur beside its own vessel's crest; another chain spreading along half
    the link or more, a parallel crest overlapping both pieces; or, with ``normals_yx`` (K, 2),
    another chain's points in the break running along the link (within 30 degrees of it) over
    more than a pixel, a piece of the vessel's own centreline whose length already counts; a
    vessel crossing the break spreads over about its own width only). A link whose contrast
    samples (up to five half-widths to either side) leave the skin or the image is not judged
    (not joined), so veins at the photo's edge are not joined this way. Nearest pairs first,
    each end in one pair at most; with ``linked`` (K,) bool (ends :func:`_end_links` already
    carried on to a chain ahead), one of the two at least must be unlinked. Each end searches its own reach (``max_widths`` times its
    diameter), so a few wide ends do not widen every end's search.

    Returns ``(e, f)``: indices of the paired ends (each pair once).
    """
    from veinscope._kernels.track import cross_contrast

    cand = np.flatnonzero(free & ((out_y != 0) | (out_x != 0)) & np.isfinite(width) & (width > 0))
    # a course to carry on: a chain at least two of its widths long (a shorter one, a blob or a
    # speck, has no crest whose direction says where its vessel goes on, as for
    # :func:`veinscope.extend.reach_end_faces`); one of the two must be one
    course = np.bincount(chain)[chain] >= 2.0 * width
    none = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    if cand.size < 2:
        return none
    sig = np.ascontiguousarray(signal, np.float32)
    sk = np.ascontiguousarray(skin, dtype=bool).view(np.uint8) if skin is not None else np.ones(sig.shape, np.uint8)
    # the candidate pairs: a pair within max_widths of the narrower diameter lies within each
    # end's own reach, so the ends are searched in bins of their reach (each bin to its
    # largest, :func:`_pairs_within`) and the pairs found filtered by the rules below
    p_c = np.stack([ys[cand], xs[cand]], axis=1).astype(np.float64)
    r_c = max_widths * np.asarray(width[cand], np.float64)
    bins = np.floor(np.log2(np.maximum(r_c, 1.0))).astype(np.int64)
    found = []
    for bb in np.unique(bins):
        sub = np.flatnonzero(bins == bb)
        i, js, d = _pairs_within(p_c, p_c[sub], float(r_c[sub].max()))
        keep = (d <= r_c[sub][js]) & (i != sub[js])
        found.append(np.stack([i[keep], sub[js[keep]]], axis=1))
    both = np.concatenate(found) if found else np.zeros((0, 2), np.int64)
    both = np.unique(np.sort(both, axis=1), axis=0)  # each pair once
    i_, j_ = cand[both[:, 0]], cand[both[:, 1]]
    a_all, b_all = np.minimum(i_, j_), np.maximum(i_, j_)
    wa, wb = width[a_all], width[b_all]
    vy, vx = (ys[b_all] - ys[a_all]).astype(np.float64), (xs[b_all] - xs[a_all]).astype(np.float64)
    gg = np.hypot(vy, vx)
    ok = (chain[a_all] != chain[b_all]) & (np.maximum(wa, wb) <= 2.0 * np.minimum(wa, wb)) & (course[a_all] | course[b_all])
    if linked is not None:
        ok &= ~(linked[a_all] & linked[b_all])
    ok &= (gg > 0.0) & (gg <= max_widths * np.minimum(wa, wb))
    ok &= (vy * out_y[a_all] + vx * out_x[a_all] >= cos_min * gg) & (-(vy * out_y[b_all] + vx * out_x[b_all]) >= cos_min * gg)
    if not ok.any():
        return none
    a_all, b_all, gg = a_all[ok], b_all[ok], gg[ok]
    by = np.lexsort((b_all, a_all, gg))  # nearest pairs first (ties by index)
    pairs = zip(gg[by].tolist(), a_all[by].tolist(), b_all[by].tolist())
    used = np.zeros(ys.shape[0], bool)
    e_out, f_out = [], []
    # every centreline point, by row, for the points near a link
    row_order = np.argsort(ys, kind="stable")
    rows_sorted = ys[row_order]
    for g, a, b in pairs:
        if used[a] or used[b]:
            continue
        ty, tx = (ys[b] - ys[a]) / g, (xs[b] - xs[a]) / g
        hw = max(0.25 * float(width[a] + width[b]), 0.75)
        # no break where a centreline already runs along the link: the end's own chain going on
        # ahead of it (the end is a spur beside its own vessel's crest), or another chain
        # spreading along half the link or more within its half-width (a parallel crest of the
        # same vessel overlapping both pieces; a vessel crossing the break spreads over about
        # its own width only)
        # the points within hw of the link's samples at 1, 2, ... px from a (short of b)
        n_in = int(math.ceil(g)) - 1
        near = np.zeros(0, np.int64)
        if n_in >= 1:
            lo_r = np.searchsorted(rows_sorted, min(ys[a], ys[b]) - hw, side="left")
            hi_r = np.searchsorted(rows_sorted, max(ys[a], ys[b]) + hw, side="right")
            q = row_order[lo_r:hi_r]
            dy, dx = (ys[q] - ys[a]).astype(np.float64), (xs[q] - xs[a]).astype(np.float64)
            t_q = dy * ty + dx * tx
            t_near = np.clip(np.rint(t_q), 1.0, float(n_in))
            d2 = (dy - t_near * ty) ** 2 + (dx - t_near * tx) ** 2
            near = np.sort(q[d2 <= hw * hw])
        if near.size:
            along = (ys[near] - ys[a]) * ty + (xs[near] - xs[a]) * tx
            ca, cb = chain[near] == chain[a], chain[near] == chain[b]
            if np.any(ca & (along > hw)) or np.any(cb & (along < g - hw)):
                continue
            other = ~ca & ~cb
            if other.any():
                _, inv = np.unique(chain[near[other]], return_inverse=True)
                lo = np.full(int(inv.max()) + 1, np.inf)
                hi = np.full(lo.size, -np.inf)
                np.minimum.at(lo, inv, along[other])
                np.maximum.at(hi, inv, along[other])
                if np.max(hi - lo) >= 0.5 * g:
                    continue
                if normals_yx is not None:
                    # a piece of centreline running along the link (its normal within 30
                    # degrees of square to it) over more than a pixel: its length counts already
                    q = near[other]
                    inside = (along[other] > 0.0) & (along[other] < g)
                    runs = inside & (np.abs(normals_yx[q, 0] * ty + normals_yx[q, 1] * tx) < 0.5)
                    if runs.any():
                        lo2 = np.full(lo.size, np.inf)
                        hi2 = np.full(lo.size, -np.inf)
                        np.minimum.at(lo2, inv[runs], along[other][runs])
                        np.maximum.at(hi2, inv[runs], along[other][runs])
                        if np.max(hi2 - lo2) > 1.0:
                            continue
        foot = max(2.0 * hw, 2.0)
        d1, d2 = hw + foot, hw + 2.0 * foot
        # the ends' own contrast over their last width, walking back from each end
        ref = []
        for e, sy, sx in ((a, -ty, -tx), (b, ty, tx)):
            vals = [cross_contrast(sig, sk, float(ys[e]) + t * sy, float(xs[e]) + t * sx, ty, tx, hw, d1, d2)
                    for t in range(int(math.ceil(2.0 * hw)) + 1)]  # fmt: skip
            vals = [v for v in vals if np.isfinite(v)]
            ref.append(float(np.median(vals)) if vals else np.nan)
        link = [cross_contrast(sig, sk, float(ys[a]) + t * ty, float(xs[a]) + t * tx, ty, tx, hw, d1, d2)
                for t in range(1, int(g))]  # fmt: skip
        if not link or not np.all(np.isfinite(link)) or not np.all(np.isfinite(ref)):
            continue
        level = float(np.median(link))
        if min(ref) > 0.0 and level > 0.0 and level >= 0.5 * min(ref):
            used[a] = used[b] = True
            e_out.append(a)
            f_out.append(b)
    return np.array(e_out, np.int64), np.array(f_out, np.int64)


def _continue_wide_veins(pts, segment, accepted, width, normals_yx, weak, wide_weak, m, *, min_width_px,
                         max_ratio=2.0, max_rounds=8):
    """Weak wide chains that continue a kept wide vein: (n_segments,) bool.

    Hysteresis along a wide vein (Canny 1986, doi:10.1109/TPAMI.1986.4767851, whose weak pixels
    are kept when connected to strong ones): a wide vein's band breaks where its contrast dips
    below the low level for a stretch (a fainter, deeper stretch, texture over it), and the
    stretch beyond the break is a weak band. Such a band is taken as the vein's continuation when
    a free end of a kept (not weak) chain at least ``min_width_px`` wide links to it along its own
    axis (:func:`_end_links`: within 45 degrees of the end's outward direction, no farther than
    the end's diameter plus half the other's, crossing it or meeting a free end facing back),
    or a free end of the weak chain links back to a free end of the kept chain facing it (two
    pieces of one vessel), and the two chains' median diameters are within ``max_ratio`` of each
    other (the same vessel at its own scale, not a fine branch or a broad shading band). A weak
    chain taken this way carries the rule on from its own ends (``max_rounds`` rounds). A wide
    weak band on its own (shading between bulges of the calf) links to no vein and stays
    dropped.
    """
    from veinscope._kernels.groups import group_medians
    from veinscope._kernels.ridges import end_links, free_ends

    n_seg = weak.shape[0]
    out = np.zeros(n_seg, bool)
    sel = accepted & np.isfinite(width)
    if not sel.any():
        return out
    med = group_medians(width[sel].astype(np.float32), segment[sel], n_seg).astype(np.float64)
    wide = np.nan_to_num(med) >= min_width_px
    strong = wide & ~weak
    cand = wide_weak & wide
    if not (strong.any() and cand.any()):
        return out
    idx = np.flatnonzero(sel & wide[segment])
    ys, xs = pts[idx, 0].astype(np.int64), pts[idx, 1].astype(np.int64)
    ch = np.asarray(segment, np.int64)[idx]
    w = width[idx].astype(np.float64)
    nrm = np.asarray(normals_yx, np.float64)[idx]
    is_end, out_y, out_x = free_ends(ys, xs, ch, int(m), 4)
    tgt, _ = end_links(ys, xs, ch, w, np.ascontiguousarray(nrm[:, 0]), np.ascontiguousarray(nrm[:, 1]), is_end, out_y, out_x,
                       int(m), 0.7071, float(np.nanmax(w)))  # fmt: skip
    e = np.flatnonzero(tgt >= 0)
    t = tgt[e]
    a, b = ch[e], ch[t]
    same_scale = (med[a] <= max_ratio * med[b]) & (med[b] <= max_ratio * med[a])
    a, b, t_end = a[same_scale], b[same_scale], is_end[t[same_scale]]
    kept = strong.copy()
    for _ in range(max_rounds):
        # a kept chain's end runs into a weak one, or a weak chain's end meets a kept end facing it
        new = np.zeros(n_seg, bool)
        new[b[kept[a] & cand[b] & ~kept[b]]] = True
        new[a[cand[a] & ~kept[a] & kept[b] & t_end]] = True
        if not new.any():
            break
        kept |= new
        out |= new
    return out


def _size_class_margin(pts, key, m, n, segment, accepted, point_class, raw_width, smooth, ppm, *, z, min_sample_px=8.0):
    """Size classes judged piece by piece with their error bars: the updated (K,) ``point_class``.

    Points take their size class from their own smoothed diameter, so a vein whose width sits
    near a boundary (1 mm: telangiectasia / reticular; 3 mm: reticular / over 3 mm) breaks into
    short pieces of alternating class where the measured width dithers about it. Each piece
    (8-connected run of one class, :func:`veinscope._kernels.ridges.same_class_pieces`) is
    judged on the mean of its points' measured (unsmoothed) diameters ``raw_width`` (px): it is
    decided when that mean lies at least ``z`` standard errors inside its class, from each
    boundary the class has. The noise of one point is its chain's (1.4826 x the median
    absolute difference between measured and smoothed diameters), and neighbouring points
    share most of their pixels, so a piece counts one independent sample per diameter
    (``smooth``, its median) but no closer than ``min_sample_px`` (a JPEG block). An undecided
    piece takes the class of the longest decided piece of another size class it touches
    (8-neighbours); one that touches none keeps its own. Red and blue are one size class here:
    a telangiectasia piece taken over by a reticular one becomes reticular, a reticular piece
    taken over by a telangiectasia piece takes that piece's colour.
    """
    from veinscope._kernels.groups import group_medians
    from veinscope._kernels.ridges import neighbour_index, same_class_pieces

    red, blue, ret, big = (CLASS_CODES[c] for c in CLASS_NAMES)
    codes = np.array([red, blue, ret, big], np.int64)
    piece, n_piece = same_class_pieces(pts[:, 0], pts[:, 1], point_class.astype(np.int64), codes, m)
    piece = np.asarray(piece, np.int64)
    n_piece = int(n_piece)
    on = np.flatnonzero(accepted & (piece >= 0))
    fin = on[np.isfinite(raw_width[on]) & np.isfinite(smooth[on])]
    if n_piece < 2 or fin.size == 0:
        return point_class
    # each chain's noise of one measured diameter about the smoothed one
    c_ids, c_inv = np.unique(segment[fin], return_inverse=True)
    noise = 1.4826 * group_medians(np.abs(raw_width[fin] - smooth[fin]).astype(np.float64), c_inv, c_ids.size)
    p_fin = piece[fin]
    cnt = np.bincount(p_fin, minlength=n_piece).astype(np.float64)
    p_chain = np.zeros(n_piece, np.int64)  # a piece never leaves its chain
    p_chain[p_fin] = c_inv
    p_class = np.zeros(n_piece, np.int64)
    p_class[piece[on]] = point_class[on]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(p_fin, weights=raw_width[fin].astype(np.float64), minlength=n_piece) / cnt
        sample = np.maximum(group_medians(smooth[fin].astype(np.float64), p_fin, n_piece), min_sample_px)
        se = noise[p_chain] * np.sqrt(sample / cnt)
        lo = np.where(p_class == big, 3.0 * ppm, np.where(p_class == ret, 1.0 * ppm, -np.inf))  # the class's boundaries
        hi = np.where(p_class == ret, 3.0 * ppm, np.where(np.isin(p_class, (red, blue)), 1.0 * ppm, np.inf))
        margin = np.minimum(mean - lo, hi - mean) / se
    decided = ~(margin < z)  # no noise (NaN or infinite margin): decided
    size_of = np.where(np.isin(p_class, (red, blue)), 0, p_class)  # red and blue: one size class
    # pairs of pieces that touch (8-neighbours)
    nbr = neighbour_index(np.ascontiguousarray(key, np.int64), np.ascontiguousarray(pts[:, 1], np.int64), int(n))[on]
    a = np.repeat(piece[on], 8)
    b = nbr.reshape(-1)
    a, b = a[b >= 0], piece[b[b >= 0]]
    take = (b >= 0) & (a != b)
    a, b = a[take], b[take]
    take = ~decided[a] & decided[b] & (size_of[a] != size_of[b])
    if not take.any():
        return point_class
    a, b = a[take], b[take]
    length = np.bincount(piece[on], minlength=n_piece).astype(np.float64)
    order = np.lexsort((-length[b], a))  # per undecided piece, the longest decided neighbour first
    a, b = a[order], b[order]
    first = np.r_[True, a[1:] != a[:-1]]
    new_class = p_class.copy()
    new_class[a[first]] = p_class[b[first]]
    out = point_class.copy()
    out[on] = new_class[piece[on]]
    return out


def _smooth_wide(pts, segment, accepted, width, smooth, r, m, widths, ppm):
    """``smooth`` (K,) with the points of a short wide run given their own chain's width: a run
    of points of one size class (by ``smooth``, :data:`veinscope.segment.CLASS_CODES`'s 1 and
    3 mm bounds at ``ppm``) shorter (in points) than its median smoothed diameter, and wider
    than the first window (diameter over ``2 r / widths``), takes the median of its chain's
    ``width`` within ``widths`` times the chain's widest smoothed diameter (a (2R+1)^2 window,
    R = ceil(widths x diameter / 2), over the chain's own points only).

    A vessel's diameter changes over lengths longer than the diameter: a class run shorter
    than its own width (a chain's last few points read on a crease or a shading edge, an
    "over 3 mm" disc on a reticular chain) is outvoted by the rest of its chain. A wide run as
    long as its width or longer (a wide vein, also one joined to a narrower branch) is left as
    it is. The first window (``r``) spans every chain near the point, this one only the
    point's own chain (a fine vessel beside a wide vein keeps its width).
    """
    from veinscope._kernels.groups import group_medians
    from veinscope._kernels.ridges import same_class_pieces, window_median

    out = smooth.copy()
    ok = accepted & np.isfinite(smooth)
    if not ok.any():
        return out
    d_mm = np.where(ok, smooth, 0.0) / ppm
    cls = np.where(~ok, 0, np.where(d_mm > 3.0, 3, np.where(d_mm >= 1.0, 2, 1))).astype(np.int64)
    piece, n_piece = same_class_pieces(pts[:, 0].astype(np.int64), pts[:, 1].astype(np.int64), cls,
                                       np.array([1, 2, 3], np.int64), m)  # fmt: skip
    if n_piece == 0:
        return out
    in_p = piece >= 0
    count = np.bincount(piece[in_p], minlength=n_piece)
    p_width = group_medians(smooth[in_p].astype(np.float32), piece[in_p].astype(np.int64), n_piece).astype(np.float64)
    short = (count < p_width) & (p_width * widths > 2.0 * r)
    wide = in_p & short[np.maximum(piece, 0)]
    if not wide.any():
        return out
    for c in np.unique(segment[wide]):
        own = np.flatnonzero(accepted & (segment == c))
        sel = wide[own]
        big = int(math.ceil(0.5 * widths * float(np.nanmax(smooth[own]))))
        med = window_median(pts[own, 0], pts[own, 1], width[own], big, m)
        # a point whose window holds no finite width keeps its first median
        out[own[sel]] = np.where(np.isfinite(med[sel]), med[sel], smooth[own[sel]])
    return out


def _isolated_patches(pts: np.ndarray, segment: np.ndarray, accepted: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Points of accepted chains that are a lone patch, not a vessel: the chain is shorter than
    its own median diameter and no other accepted chain comes within 1.5 diameters of its ends
    (half its length + 1.5 diameters from its centre).

    A short, wide chain on its own is a blotch the line filter answered at a large scale
    (shading, a bruise, a skin-coloured background); a short, wide piece of a real vein has the
    rest of the vein next to it (the engine finds wide veins in pieces). On the generated
    benchmark photos (seeds 400-423) one such lone chain was found, and it was not a vessel; on
    the real legs of ../shared/data/legs-dev they were round blobs on skin and on the background.
    Returns a (K,) bool mask of the points to drop.
    """
    drop = np.zeros(accepted.shape, bool)
    if not accepted.any():
        return drop
    seg = segment[accepted]
    a_idx = np.flatnonzero(accepted)
    order = np.argsort(seg, kind="stable")
    ids, count = np.unique(seg, return_counts=True)
    bounds = np.r_[0, np.cumsum(count)]
    # only a chain shorter than its widest point can be shorter than its median width
    w_sorted = np.nan_to_num(width[a_idx[order]], nan=0.0)
    widest = np.maximum.reduceat(w_sorted, bounds[:-1])
    ay = pts[a_idx, 0].astype(np.float64)
    ax = pts[a_idx, 1].astype(np.float64)
    for j in np.flatnonzero(count < widest):
        c = ids[j]
        own = a_idx[order[bounds[j]:bounds[j + 1]]]
        d = float(np.nanmedian(width[own])) if np.isfinite(width[own]).any() else 0.0
        if own.size >= d:
            continue
        cy, cx = pts[own].astype(np.float64).mean(axis=0)
        reach = 0.5 * own.size + 1.5 * d
        near = (ay - cy) ** 2 + (ax - cx) ** 2 <= reach * reach
        if not np.any(near & (seg != c)):
            drop[own] = True
    return drop


def class_figures(vessels: MeasuredVessels, skin, px_per_mm) -> dict[str, ClassFigures]:
    """Per-class figures (and ``total``) from measured vessels.

    Areas count painted label pixels; lengths sum the pieces' centreline lengths; diameters are
    statistics over centreline points (equal length each); ``segments`` counts pieces.
    """
    labels = vessels.labels
    # one class at a time (np.bincount would first copy 12 MP into int64: 96 MB, once the
    # analysis's peak of memory)
    counts = np.array([np.count_nonzero(labels == code) for code in range(5)], np.int64)
    skin_px = float(np.count_nonzero(skin))
    pc = vessels.point_class
    w_all = vessels.width_px
    out = {}
    for name in _ALL:
        if name == "total":
            area = float(counts[1:].sum())
            psel = pc > 0
            ssel = vessels.piece_class > 0
        else:
            code = CLASS_CODES[name]
            area = float(counts[code])
            psel = pc == code
            ssel = vessels.piece_class == code
        w = w_all[psel]
        w = w[np.isfinite(w)]
        diam = (
            {"mean": float(w.mean()), "median": float(np.median(w)), "p90": float(np.percentile(w, 90))}
            if w.size
            else {"mean": None, "median": None, "p90": None}
        )
        out[name] = ClassFigures(
            coverage_pct=100.0 * area / skin_px if skin_px else 0.0,
            area_px2=area,
            length_px=float(vessels.piece_length_px[ssel].sum()),
            diameter_px=diam,
            segments=int(np.count_nonzero(ssel)),
            px_per_mm=px_per_mm,
        )
    return out


def finite_or_none(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def chain_lengths(points_yx, segment, n_segments: int, shape, *, counted=None) -> np.ndarray:
    """Centreline length of each segment, in pixels (Kulpa's unbiased chain weights).

    Each pair of 8-adjacent centreline pixels of the same segment adds a step: 0.948 for an
    axial step, 1.343 for a diagonal one (Kulpa 1977, doi:10.1016/S0146-664X(77)80022-0). A
    diagonal step is skipped where both pixels also touch a common axial neighbour of the
    segment (an L-corner), which would otherwise count the same stretch twice.

    Parameters
    ----------
    points_yx : ndarray (K, 2) int
    segment : ndarray (K,) int, values in 0..n_segments-1
    n_segments : int
    shape : (M, N) of the image
    counted : ndarray (K,) bool, optional
        Points whose length counts; a step between a counted and an uncounted point counts
        half, a step between two uncounted points not at all. ``None``: every point.

    Returns
    -------
    ndarray (n_segments,) float64

    Examples
    --------
    >>> import numpy as np
    >>> pts = np.array([[5, x] for x in range(10)])
    >>> round(float(chain_lengths(pts, np.zeros(10, int), 1, (12, 12))[0]), 3)
    8.532
    """
    pts = np.asarray(points_yx, dtype=np.int64).reshape(-1, 2)
    seg = np.asarray(segment, dtype=np.int64)
    out = np.zeros(n_segments, np.float64)
    if pts.shape[0] == 0:
        return out
    # Neighbours are looked up among the sorted point keys (row-major, one pixel of padding
    # on every side so that no neighbour wraps to another row), not in an image-sized table
    # (100 MB at 12 MP).
    width = int(shape[1]) + 2
    key = (pts[:, 0] + 1) * width + (pts[:, 1] + 1)
    order = np.argsort(key, kind="stable")
    ks = key[order]
    # a pixel listed twice keeps its last segment
    last = np.r_[ks[1:] != ks[:-1], True]
    ks, ss = ks[last], seg[order][last]

    # each listed pixel's counted flag (the pixel's last listing, as its segment); every point
    # counts unless told
    own = np.ones(pts.shape[0], bool) if counted is None else np.asarray(counted, bool)
    cs = own[order][last]
    own = own.astype(np.float64)

    def same(dy, dx):
        q = key + dy * width + dx
        i = np.minimum(np.searchsorted(ks, q), len(ks) - 1)
        return (ks[i] == q) & (ss[i] == seg), cs[i]

    (right, c_r), (down, c_d), (left, _) = same(0, 1), same(1, 0), same(0, -1)
    (dr, c_dr), (dl, c_dl) = same(1, 1), same(1, -1)
    diag_r = dr & ~right & ~down
    diag_l = dl & ~left & ~down
    # a step's weight: half for each of its two points that counts
    step = 0.948 * (right * 0.5 * (own + c_r) + down * 0.5 * (own + c_d)) + 1.343 * (
        diag_r * 0.5 * (own + c_dr) + diag_l * 0.5 * (own + c_dl)
    )
    np.add.at(out, seg, step)
    return out


def _pairs_within(p: np.ndarray, q: np.ndarray, radius: float):
    """Every pair of a point of ``p`` (K, 2) and a point of ``q`` (L, 2) at most ``radius``
    apart: ``(i, j, d)``, indices into ``p`` and ``q`` and their distances. A grid of cells
    ``radius`` wide, each point of ``q`` against the points of ``p`` in its cell and the eight
    around it (no SciPy spatial tree: the first analysis imports no more than it needs,
    tests/test_startup.py)."""
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    if p.shape[0] == 0 or q.shape[0] == 0 or not radius >= 0:
        return empty
    c = max(float(radius), 1.0)
    lo = np.minimum(p.min(axis=0), q.min(axis=0))
    cp = np.floor((p - lo) / c).astype(np.int64)
    cq = np.floor((q - lo) / c).astype(np.int64)
    ncol = int(max(cp[:, 1].max(), cq[:, 1].max())) + 3
    key = (cp[:, 0] + 1) * ncol + (cp[:, 1] + 1)
    order = np.argsort(key, kind="stable")
    ks = key[order]
    out_i, out_j = [], []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            kq = (cq[:, 0] + 1 + dy) * ncol + (cq[:, 1] + 1 + dx)
            a = np.searchsorted(ks, kq, side="left")
            b = np.searchsorted(ks, kq, side="right")
            n = b - a
            if not n.any():
                continue
            j = np.repeat(np.arange(q.shape[0]), n)
            i = order[np.repeat(a, n) + (np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n))]
            out_i.append(i)
            out_j.append(j)
    if not out_i:
        return empty
    i, j = np.concatenate(out_i), np.concatenate(out_j)
    d = np.hypot(p[i, 0] - q[j, 0], p[i, 1] - q[j, 1])
    keep = d <= radius
    return i[keep], j[keep], d[keep]


def _repeated_points(a_pts, branch, width, normals_yx, *, cos_min: float = 0.866):
    """Centreline points that repeat a longer branch running along the same vessel.

    ``a_pts`` (K, 2) are the accepted centreline points, ``branch`` (K,) their branch ids
    (chains split at their junctions, :func:`_branches`; -2 at a junction point), ``width``
    their diameters (px) and ``normals_yx`` (K, 2) the unit normals across their vessels. A
    point is repeated when it lies beside a point of a longer branch (more points; ties by id):
    across that point's vessel (at most a pixel along it, not in the cap beyond its branch's
    end), within its painted half-width (at least half a pixel), the two normals agreeing within
    30 degrees (``cos_min``): a second crest along one wide vein, or a spur running along its
    own vein. A branch crossing or leaving the vessel at a steeper angle is not repeated, nor
    is a junction point. Returns (K,) bool.
    """
    k = a_pts.shape[0]
    rep = np.zeros(k, bool)
    if k < 2:
        return rep
    b = np.asarray(branch, np.int64)
    unit = np.where(b >= 0, b, -1)
    n_unit = int(unit.max()) + 1 if (unit >= 0).any() else 0
    if n_unit < 2:
        return rep
    size = np.bincount(unit[unit >= 0], minlength=n_unit)
    rank = np.empty(n_unit, np.int64)
    rank[np.lexsort((np.arange(n_unit), -size))] = np.arange(n_unit)
    w = np.asarray(width, np.float64)
    r = np.where(np.isfinite(w), np.maximum(0.5 * w, 0.5), 0.0)
    nrm = np.asarray(normals_yx, np.float64)
    p = a_pts.astype(np.float64)
    cover = np.flatnonzero((unit >= 0) & (r > 0))
    # the covering points in bins of their radius (each bin searched to its largest radius)
    bins = np.floor(np.log2(r[cover] * 2.0)).astype(np.int64)
    for bb in np.unique(bins):
        j_all = cover[bins == bb]
        i, js, d = _pairs_within(p, p[j_all], float(r[j_all].max()))
        if i.size == 0:
            continue
        jj = j_all[js]
        ui, uj = unit[i], unit[jj]
        ok = (ui >= 0) & (ui != uj) & (d <= r[jj])
        i, jj, ui, uj = i[ok], jj[ok], ui[ok], uj[ok]
        ok = rank[uj] < rank[ui]
        i, jj = i[ok], jj[ok]
        cos = np.abs(nrm[i, 0] * nrm[jj, 0] + nrm[i, 1] * nrm[jj, 1])
        # beside the covering point, across its vessel, not beyond its branch's end (its disc's
        # cap reaches half a width past the end, where the other crest is the vessel's only one)
        along = np.abs((p[i, 0] - p[jj, 0]) * nrm[jj, 1] - (p[i, 1] - p[jj, 1]) * nrm[jj, 0])
        rep[i[(cos >= cos_min) & (along <= 1.0)]] = True
    return rep


def _chain_copies_lab(rgb, pts, normals_yx, wp, inv, nc, skin, *, n_offsets: int = 6):
    """CIELAB means along chains and along their parallel copies (:func:`chain_delta_e`'s sampling).

    ``pts`` (P, 2), ``normals_yx`` (P, 2) float and ``wp`` (P,) width (px) of each point's chain;
    ``inv`` (P,) the chain index (0 .. ``nc`` - 1) of each point. Returns ``lab``
    (1 + 2 n_offsets, nc, 3): line 0 the chains' own mean colour, then the copies (NaN where a
    line has no sample on ``skin``), ``level`` (nc, 3): the copies' component-wise median, and
    ``valid`` (1 + 2 n_offsets, nc) bool.
    """
    m, n = skin.shape
    t, n_lines = _copy_line_offsets(wp, n_offsets)
    yy = np.rint(pts[:, 0] + t * normals_yx[:, 0]).astype(np.int64)
    xx = np.rint(pts[:, 1] + t * normals_yx[:, 1]).astype(np.int64)
    ok = (yy >= 0) & (yy < m) & (xx >= 0) & (xx < n)
    flat = (yy * n + xx)[ok]
    on_skin = np.ravel(skin)[flat]
    ok[ok] = on_skin
    flat = flat[on_skin]
    line = np.broadcast_to(np.tile(np.arange(n_lines), 3)[:, None], t.shape)
    key = (line * nc + inv[None])[ok]
    col = np.asarray(rgb).reshape(-1, 3)[flat]
    cnt = np.bincount(key, minlength=n_lines * nc).reshape(n_lines, nc)
    sums = np.stack([np.bincount(key, weights=col[:, ch], minlength=n_lines * nc).reshape(n_lines, nc) for ch in range(3)], axis=-1)
    return _lines_lab(sums, cnt)


def _copy_line_offsets(wp, n_offsets):
    """(3 (1 + 2 n_offsets), P) offsets (px, along each point's normal) of :func:`_chain_copies_lab`'s
    samples, row ``s (1 + 2 n_offsets) + l`` the sample ``s`` (-w/4, 0, +w/4) of line ``l``, and the
    number of lines."""
    step = np.maximum(wp, 2.0)
    j = np.arange(1, n_offsets + 1, dtype=np.float64)[:, None]
    d = 0.5 * wp + step * j  # (n_offsets, P): distance of each copy from the centreline
    offsets = np.concatenate([np.zeros((1, wp.size)), d, -d])  # line 0 the chain, then the copies
    n_lines = offsets.shape[0]
    return (offsets[None] + np.array([-0.25, 0.0, 0.25])[:, None, None] * wp).reshape(3 * n_lines, -1), n_lines


def _lines_lab(sums, cnt):
    """``lab``, ``level``, ``valid`` of :func:`_chain_copies_lab` from the colour ``sums``
    (L, C, 3) and sample counts ``cnt`` (L, C) of its lines."""
    import warnings

    from veinscope.colour import srgb8_to_lab

    means = np.full(sums.shape, np.nan)
    good = cnt > 0
    for ch in range(3):
        means[..., ch][good] = sums[..., ch][good] / cnt[good]
    valid = np.isfinite(means[..., 0])
    lab = srgb8_to_lab(np.nan_to_num(means))
    lab[~valid] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN copies of a chain: judged below
        level = np.nanmedian(lab[1:], axis=0)
    return lab, level, valid


def chain_delta_e(rgb, pts, normals_yx, width, segment, accepted, skin, *, n_offsets: int = 6) -> dict[int, float]:
    """Each accepted chain's colour difference (CIEDE2000) from the skin beside it, on the photo.

    The chain's colour is the mean sRGB colour along its centreline, sampled at -w/4, 0 and
    +w/4 across it (w: the chain's median diameter), so the camera's noise averages out along
    the whole piece. The skin's colour is the component-wise median (CIELAB) of the same mean
    taken along ``2 n_offsets`` parallel copies of the chain, ``w/2 + max(w, 2 px) (j + 1)``
    from its centreline on both sides (j = 0 .. n_offsets - 1: a footprint clear of the
    vessel's edge, then one footprint apart, so that copies do not overlap): the median leaves
    out copies that fall on another vessel or a freckle. Samples off the image or off ``skin``
    are left out; a chain with fewer than 4 copies on skin gets NaN (not judged).

    Parameters
    ----------
    rgb : ndarray (M, N, 3) uint8
        The photo (sRGB).
    pts : ndarray (K, 2) int
        Centreline points (row, col).
    normals_yx : ndarray (K, 2) float
        Unit vector across the vessel at each point.
    width : ndarray (K,) float
        Diameter (px) at each point; NaN where unknown (a chain without any: 1 px).
    segment : ndarray (K,) int
        Chain id of each point.
    accepted : ndarray (K,) bool
        Points whose chains are measured.
    skin : ndarray (M, N) bool
    n_offsets : int
        Parallel copies on each side.

    Returns
    -------
    dict
        Chain id -> ΔE00 (float, NaN: not judged).

    Examples
    --------
    >>> rgb = np.full((40, 40, 3), 200, np.uint8); rgb[19:22] = (180, 120, 120)
    >>> pts = np.array([[20, x] for x in range(5, 35)]); nrm = np.tile([1.0, 0.0], (30, 1))
    >>> de = chain_delta_e(rgb, pts, nrm, np.full(30, 3.0), np.zeros(30, int), np.ones(30, bool), np.ones((40, 40), bool))
    >>> round(de[0], 1)
    27.3
    """
    from veinscope._kernels.colourdiff import delta_e_lab

    idx = np.flatnonzero(accepted)
    if idx.size == 0:
        return {}
    ids, inv, wc = _chain_widths(width, segment, idx)
    nc = ids.size
    lab, level, valid = _chain_copies_lab(rgb, pts[idx], np.asarray(normals_yx, np.float64)[idx], wc[inv], inv, nc, skin, n_offsets=n_offsets)
    de = np.full(nc, np.nan)
    ok = valid[0] & (valid[1:].sum(axis=0) >= 4)
    if ok.any():
        out = np.empty(int(ok.sum()))
        delta_e_lab(np.ascontiguousarray(lab[0, ok]), np.ascontiguousarray(level[ok]), out)
        de[ok] = out
    return {int(c): float(v) for c, v in zip(ids, de)}


def _chain_widths(width, segment, idx):
    """The chains of the points ``idx`` (their ids, each point's index into them) and each chain's
    median finite width (1 px where it has none): the parallel copies' spacing of
    :func:`chain_delta_e` and :func:`_one_sided_chains`."""
    from veinscope._kernels.groups import group_medians

    ids, inv = np.unique(np.asarray(segment)[idx].astype(np.int64), return_inverse=True)
    nc = ids.size
    w = np.asarray(width, np.float64)[idx]
    fin = np.isfinite(w)
    wc = np.ones(nc)
    if fin.any():
        med = group_medians(w[fin].astype(np.float32), inv[fin].astype(np.int64), nc).astype(np.float64)
        has = np.bincount(inv[fin], minlength=nc) > 0
        wc[has] = med[has]
    return ids, inv, wc


def _one_sided_chains(rgb, pts, normals_yx, width, segment, accepted, skin, *, min_ratio: float = 0.25,
                      max_width_px: float = np.inf) -> np.ndarray:
    """Chains (ids) whose lightness rises off them on one side only: a one-sided step.

    Lightness (CIELAB L*) along the chain and along :func:`chain_delta_e`'s parallel copies
    (``w/2 + max(w, 2 px) j`` from the centreline, j = 1 .. 6, both sides; w the chain's median
    diameter), means along the whole chain. The skin's own slope across the chain (a curved
    leg's shading) is the line through the two far copies' pairs (j = 5, 6); read against it,
    the rise from the chain to the near copies (j = 1, 2) on each side. A vessel is a valley:
    both sides rise about alike, whatever the slope. At a shading's edge (a finger's shadow on
    the leg, a fold's shaded flank, the leg's outline) the line filter answers at the step's
    foot, and the dark side rises only by the slope's share, 1/6 of the bright side's for an
    ideal step: a chain whose smaller rise is under ``min_ratio`` of its larger one (or not a
    rise at all) is such a step. A chain without all the copies on ``skin`` is not judged, nor
    one whose median diameter is ``max_width_px`` or more (a wide vein is soft-edged and lies in
    its own broad shading: on the generated set A, judging them cost 9 points of reticular
    length, BENCHMARKS.md, session 33).
    """
    idx = np.flatnonzero(accepted)
    if idx.size == 0:
        return np.zeros(0, np.int64)
    ids, inv, wc = _chain_widths(width, segment, idx)
    nc = ids.size
    n_off = 6
    lab, _, _ = _chain_copies_lab(rgb, pts[idx], np.asarray(normals_yx, np.float64)[idx], wc[inv], inv, nc, skin,
                                  n_offsets=n_off)  # fmt: skip
    light = lab[..., 0]  # (1 + 2 n_off, nc)
    plus, minus = light[1 : 1 + n_off], light[1 + n_off :]
    step = np.maximum(wc, 2.0)
    t_near = 0.5 * wc + 1.5 * step  # the mean distance of copies 1 and 2
    t_far = 0.5 * wc + 5.5 * step  # ... of copies 5 and 6
    far_p, far_m = 0.5 * (plus[4] + plus[5]), 0.5 * (minus[4] + minus[5])
    slope = (far_p - far_m) / (2.0 * t_far)
    mid = 0.5 * (far_p + far_m)
    r0 = light[0] - mid
    rise_p = 0.5 * (plus[0] + plus[1]) - (mid + slope * t_near) - r0
    rise_m = 0.5 * (minus[0] + minus[1]) - (mid - slope * t_near) - r0
    lo, hi = np.minimum(rise_p, rise_m), np.maximum(rise_p, rise_m)
    one_sided = np.isfinite(lo) & np.isfinite(hi) & (lo < min_ratio * np.maximum(hi, 0.0)) & (wc < max_width_px)
    return ids[one_sided]


def _moved_sums(rgb_flat, skin_flat, m, n, p, tny, tnx, n_lines, dy, dx, sums, cnt):
    """Add to ``sums`` (L, C, 3) and ``cnt`` (L, C) the colours of :func:`_chain_copies_lab`'s
    samples of the chain ``p`` (P, 2) int64 moved by (``dy``, ``dx``) (C,): the sample of row r
    and point i at ``rint(p + move + (tny, tnx)[r, i])``. Where an offset is not within 1e-9 px
    of a half-integer, ``rint(p + move + t) = p + move + rint(t)`` (a float64 sum near 4 000 is
    exact to 1e-12), so those samples are fixed pixels of the chain, moved whole, and taken
    once with their multiplicity (compiled: :func:`veinscope._kernels.colourdiff.moved_pixel_sums`).
    The sums are integers: the same in any order as :func:`_chain_copies_lab`'s."""
    from veinscope._kernels.colourdiff import moved_pixel_sums

    r_, p_ = tny.shape
    line = np.broadcast_to(np.tile(np.arange(n_lines, dtype=np.int64), 3)[:, None], (r_, p_)).ravel()
    py = np.broadcast_to(p[None, :, 0], (r_, p_)).ravel()
    px = np.broadcast_to(p[None, :, 1], (r_, p_)).ravel()
    ty, tx = tny.ravel(), tnx.ravel()
    amb = (np.abs(np.abs(ty - np.floor(ty)) - 0.5) < 1e-9) | (np.abs(np.abs(tx - np.floor(tx)) - 0.5) < 1e-9)
    fix = ~amb
    ry = py[fix] + np.rint(ty[fix]).astype(np.int64)
    rx = px[fix] + np.rint(tx[fix]).astype(np.int64)
    # one entry per (line, pixel): keys over a box around the chain
    y0, x0 = int(ry.min(initial=0)), int(rx.min(initial=0))
    hh = int(ry.max(initial=0)) - y0 + 1
    ww = int(rx.max(initial=0)) - x0 + 1
    key = (line[fix] * hh + (ry - y0)) * ww + (rx - x0)
    uk, wgt = np.unique(key, return_counts=True)
    uline, rest = np.divmod(uk, hh * ww)
    uy, ux = np.divmod(rest, ww)
    moved_pixel_sums(rgb_flat, skin_flat, m, n, uy + y0, ux + x0, uline, wgt.astype(np.int64),
                     np.ascontiguousarray(py[amb]), np.ascontiguousarray(px[amb]), np.ascontiguousarray(ty[amb]),
                     np.ascontiguousarray(tx[amb]), np.ascontiguousarray(line[amb]), dy, dx, sums, cnt)  # fmt: skip


def _texture_nfa(rgb, pts, normals_yx, width, segment, judged, occupied, skin, de, *, max_px, nfa, lone_px=0.0,
                 max_width_px=np.inf, skip=(), n_copies: int = 200, seed: int = 0, n_offsets: int = 2,
                 info: dict | None = None, symmetric_null: bool = False) -> list[int]:
    """Short chains whose colour difference from the skin the skin's own texture makes as often.

    A-contrario (Desolneux, Moisan and Morel 2000, doi:10.1023/A:1008139401399), as
    :func:`veinscope.extend.extend_ends`' tail probe: each chain with at most ``max_px`` judged
    points and a finite ``de`` (its :func:`chain_delta_e`) is copied ``n_copies`` times (at least
    4 x the number of chains tested / ``nfa``), moved whole (points, normals, widths) to random
    places where every point lies on ``skin`` at least 3 px from any ``occupied`` point (the
    candidates found: the null is skin without vessels), and measured there the same way, the
    chain itself too: :func:`chain_delta_e` with ``n_offsets`` parallel copies a side (2: the
    skin right beside it, 1.5 and 2.5 widths out, where the shading is the chain's own; with
    6, the reach of ``min_delta_e``'s rule, the sides reach 6.5 widths out and on a pore-rich
    real leg, veins_05, the rule dropped visible faint thread veins, BENCHMARKS.md session 30).
    With ``hits`` copies at least as different from their own skin beside them as the chain,
    its number of false alarms is ``N (1 + hits) / (1 + copies measured)``, N the chains
    tested. Only chains whose median width is under ``max_width_px`` (telangiectasias: a wider
    chain's side copies reach out several millimetres, where the skin's shading, not its
    texture, sets the difference) and lone chains are tested: no ``occupied`` point of another chain within
    ``lone_px`` of any of its points (a faint vessel's centreline comes in pieces that the
    painting and the end links join; each piece alone is short and faint); a chain at or above ``nfa`` is returned (to be dropped). The random places come
    from ``numpy.random.default_rng(seed)``, so an analysis is repeatable.

    With ``symmetric_null`` (what :func:`measure_vessels` uses), a copy whose two sides differ
    (ΔE00 between the mean CIELAB of the side copies on one side and on the other) by more than
    the chain's own ΔE00, or than the chain's own sides differ, is left out: it lies across an
    edge (a finger's or a fold's, clothing, the background), where the median of the sides is
    halfway between two surfaces and the middle differs from it as much as a vessel does; on
    the real leg veins_05 such copies (a hand's creases and edges, a nail, the shorts' border)
    were the ones that outdid a faint thread vein (BENCHMARKS.md session 30, helper nfa30).

    ``judged`` (K,) bool: the points a chain is measured on; ``occupied`` (K,) bool. ``info``
    (a dict, optional) receives, per chain judged, ``(its ΔE00, copies at least as different,
    copies measured, number of false alarms, its points, the moves (dy, dx) of the copies at least
    as different)`` (diagnostics).
    """
    import cv2

    from veinscope._kernels.colourdiff import clear_squares, delta_e_lab, moves_free
    from veinscope._kernels.groups import group_medians

    judged = np.asarray(judged, bool)
    seg = np.asarray(segment)
    count = np.bincount(seg[judged], minlength=int(seg.max()) + 1 if seg.size else 1)
    tested = [c for c, v in de.items() if np.isfinite(v) and c not in skip and 0 < count[c] <= max_px]
    if not tested:
        return []
    # each tested chain's judged points, in order (one pass over the points, not one a chain)
    is_tested = np.zeros(count.size, bool)
    is_tested[tested] = True
    sel_all = np.flatnonzero(judged & is_tested[seg])
    sel_all = sel_all[np.argsort(seg[sel_all], kind="stable")]
    bounds = np.searchsorted(seg[sel_all], np.arange(count.size + 1))
    members = {c: sel_all[bounds[c]: bounds[c + 1]] for c in tested}
    w_all = np.asarray(width, np.float64)
    if np.isfinite(max_width_px):
        thin = []
        for c in tested:
            wc = w_all[members[c]]
            wc = wc[np.isfinite(wc)]
            if not wc.size or float(np.median(wc)) < max_width_px:
                thin.append(c)
        tested = thin
    m, n = skin.shape
    occupied = np.asarray(occupied, bool)
    if tested and lone_px > 0:
        by_row = np.argsort(pts[occupied, 0], kind="stable")
        occ_pts = pts[occupied][by_row]
        occ_seg = seg[occupied][by_row]
        r = int(math.ceil(lone_px))
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        own_idx = np.flatnonzero(occupied & is_tested[seg])
        own_idx = own_idx[np.argsort(seg[own_idx], kind="stable")]
        own_at = np.searchsorted(seg[own_idx], np.arange(count.size + 1))
        lone = []
        for c in tested:
            p = pts[own_idx[own_at[c]: own_at[c + 1]]]
            y0, x0 = max(0, int(p[:, 0].min()) - r), max(0, int(p[:, 1].min()) - r)
            y1, x1 = min(m, int(p[:, 0].max()) + r + 1), min(n, int(p[:, 1].max()) + r + 1)
            # another chain's point in the box within the disc around one of this chain's points
            # (the chain's points dilated by ``disc``, as cv2.dilate takes it, at those points only)
            i0, i1 = np.searchsorted(occ_pts[:, 0], [y0, y1])
            q, qs = occ_pts[i0:i1], occ_seg[i0:i1]
            q = q[(qs != c) & (q[:, 1] >= x0) & (q[:, 1] < x1)]
            d = p[None, :, :] - q[:, None, :] + r  # (Q, P, 2)
            inside = (np.abs(d - r) <= r).all(axis=2)
            if not disc[np.where(inside, d[..., 0], 0), np.where(inside, d[..., 1], 0)][inside].any():
                lone.append(c)
        tested = lone
    if not tested:
        return []
    free = np.array(skin, bool, order="C")  # skin at least 3 px (a 7 x 7 square) from any candidate
    clear_squares(free, np.ascontiguousarray(pts[occupied, 0], np.int64), np.ascontiguousarray(pts[occupied, 1], np.int64), 3)
    rng = np.random.default_rng(seed)
    k = max(int(n_copies), int(math.ceil(4 * len(tested) / nfa)))
    rgb_flat = np.ascontiguousarray(rgb).reshape(-1, 3)
    skin_flat = np.ascontiguousarray(skin, bool).ravel()
    nrm = np.asarray(normals_yx, np.float64)
    chains, moves, all_sums, all_cnt = [], [], [], []
    for c in tested:
        sel = members[c]
        p = pts[sel].astype(np.int64)
        lo, hi = p.min(0), p.max(0)
        if hi[0] - lo[0] >= m or hi[1] - lo[1] >= n:
            continue
        dy = rng.integers(-lo[0], m - hi[0], size=3 * k)
        dx = rng.integers(-lo[1], n - hi[1], size=3 * k)
        ok = np.empty(dy.size, bool)
        moves_free(free, np.ascontiguousarray(p[:, 0]), np.ascontiguousarray(p[:, 1]), dy, dx, ok)
        dy, dx = dy[ok][:k], dx[ok][:k]
        if dy.size < k // 2:
            continue  # too little free skin to say
        # the chain itself (move 0) and its copies, sampled as :func:`chain_delta_e` samples them
        w = w_all[sel]
        fin = np.isfinite(w)
        wp = 1.0
        if fin.any():
            wp = float(group_medians(w[fin].astype(np.float32), np.zeros(int(fin.sum()), np.int64), 1)[0])
        t, n_lines = _copy_line_offsets(np.full(sel.size, wp), n_offsets)
        dy = np.concatenate([[0], dy]).astype(np.int64)
        dx = np.concatenate([[0], dx]).astype(np.int64)
        sums = np.zeros((n_lines, dy.size, 3))
        cnt = np.zeros((n_lines, dy.size), np.int64)
        _moved_sums(rgb_flat, skin_flat, m, n, p, t * nrm[sel, 0], t * nrm[sel, 1], n_lines, dy, dx, sums, cnt)
        chains.append(c)
        moves.append((dy, dx))
        all_sums.append(sums)
        all_cnt.append(cnt)
    if not chains:
        return []
    lab, level, valid = _lines_lab(np.concatenate(all_sums, axis=1), np.concatenate(all_cnt, axis=1))
    dev = np.full(valid.shape[1], np.nan)
    good = valid[0] & (valid[1:].sum(axis=0) >= 4)
    if good.any():
        v = np.empty(int(good.sum()))
        delta_e_lab(np.ascontiguousarray(lab[0, good]), np.ascontiguousarray(level[good]), v)
        dev[good] = v
    asym = np.full(valid.shape[1], np.nan)
    if symmetric_null and good.any():
        # how much the skin on one side differs from the other: a step (an object's or a
        # fold's edge) rather than a line
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            plus = np.nanmean(lab[1: 1 + n_lines // 2], axis=0)
            minus = np.nanmean(lab[1 + n_lines // 2:], axis=0)
        v = np.empty(int(good.sum()))
        delta_e_lab(np.ascontiguousarray(plus[good]), np.ascontiguousarray(minus[good]), v)
        asym[good] = v
    out = []
    start = 0
    for c, sums, mv in zip(chains, all_sums, moves):
        d = dev[start: start + sums.shape[1]]
        start += sums.shape[1]
        own = de[c] if n_offsets == 6 else d[0]
        if symmetric_null:
            a = asym[start - sums.shape[1]: start]
            if np.isfinite(own) and np.isfinite(a[0]):
                # copies no more one-sided than the chain is, or than it differs from its sides
                d = np.where(a <= max(own, a[0]), d, np.nan)
        null = d[1:][np.isfinite(d[1:])]
        if null.size < k // 2:
            continue
        if not np.isfinite(own):
            continue
        hits = int((null >= own).sum())
        nfa_c = len(tested) * (1 + hits) / (1 + null.size)
        if info is not None:
            at = np.flatnonzero(d >= own)
            at = at[at > 0]
            info[int(c)] = (float(own), hits, int(null.size), nfa_c, pts[members[c]], np.stack([mv[0][at], mv[1][at]], 1))
        if nfa_c >= nfa:
            out.append(int(c))
    return out


_CHUNK_POINTS = 4096
#: Size (px) of one chroma sample of 4:2:0 subsampling (JPEG, HEIC, most phone video).
CHROMA_CELL_PX = 2
#: JFIF (JPEG) sRGB -> Y'CbCr, the space in which JPEG and HEIC keep the chroma at half resolution.
_YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
_YCC_INV = np.linalg.inv(_YCC)


def _od_of_srgb8(v: np.ndarray) -> np.ndarray:
    """Optical density -ln(linear reflectance) of (float) 8-bit sRGB values, clamped like ``OD_LUT``."""
    s = np.clip(np.asarray(v, np.float64) / 255.0, 0.5 / 255.0, 1.0)
    return -np.log(np.where(s <= 0.04045, s / 12.92, ((s + 0.055) / 1.055) ** 2.4))


def chroma_restored_od(rgb, pts, normals_yx, chain_width, segment, chains, skin, *, spread_px: float = 8.0,
                       flank_px: int = 3, block_px: int = 4, z: float = 2.0) -> np.ndarray:  # fmt: skip
    """Relative OD (dR, dG, dB) at the centre of each chain, with the chroma the photo's
    compression spread out of a thin vessel put back.

    JPEG and HEIC keep luma (Y') at full resolution and chroma (Cb, Cr) at half resolution in
    each direction (4:2:0 subsampling), averaged over 2 x 2 pixels and interpolated back; the
    camera's demosaicing smooths chroma likewise. Across a vessel one or two pixels wide the
    luma dip stays sharp while its chroma is spread over about twice the width: the centre
    pixel keeps the dip in brightness and loses most of the hue, so a red vessel there looks
    like a neutral, brownish darkening (a large melanin-like part). Averaging and interpolating
    keep the integral of the chroma across the profile, so for a structure whose colour is the
    same across its width (Beer-Lambert: one chromophore mixture, a profile ``p(t)`` times a
    fixed colour vector; linear for small contrasts) the hue per unit of luma is the ratio of
    the integrals, ``int dCb / int dY'`` and ``int dCr / int dY'``, taken over the vessel and the
    width the chroma spread into. The centre colour is then the centre's luma dip times
    ``(1, int dCb / int dY', int dCr / int dY')``, converted back to sRGB and to OD against
    the skin beside it.

    Sums run along the chain: every point's profile across the vessel (nearest pixels at unit
    steps along its normal) out to ``chain_width / 2 + spread_px``, less the skin level beside
    it (mean of the next ``flank_px`` pixels on both sides). Points whose profile leaves the
    photo or the skin are left out. The hue's uncertainty comes from the scatter of the
    profile sums over blocks of ``block_px`` pixels along the chain (the standard error of a
    ratio estimator; neighbouring profiles share interpolated chroma, blocks two chroma cells
    wide are nearly independent): on a faint chain, skin texture and sensor noise make the
    ratio of two small integrals anything, and the colours at the hue plus and minus ``z``
    standard errors say how far it can be trusted. A chain without a luma dip over its
    profiles (the sum of dY' or the centre's dY' not negative) or with fewer than 3 blocks gets
    NaN.

    Parameters
    ----------
    rgb : ndarray (M, N, 3) uint8
        The photo (sRGB).
    pts : ndarray (K, 2) int
        Centreline points (row, col).
    normals_yx : ndarray (K, 2) float
        Unit vector across the vessel at each point.
    chain_width : ndarray (C,) float
        Diameter (px) of each chain (NaN or under 1: taken as 1).
    segment : ndarray (K,) int
        Chain id of each point (0 .. C-1).
    chains : ndarray of int
        The chains to estimate.
    skin : ndarray (M, N) bool
    spread_px : float
        How far beyond a vessel's edge its chroma is spread (2 x 2 cells, interpolated, plus
        the camera's blur).
    flank_px : int
        Width of the skin level taken beside the profile on each side.
    block_px : int
        Size of the blocks along a chain whose scatter gives the hue's standard error.
    z : float
        Standard errors of the hue at the corners returned (2: about 95 % each way).

    Returns
    -------
    ndarray (len(chains), 5, 3) float64
        Relative OD at each chain's centre: ``[:, 0]`` the estimate, ``[:, 1:]`` with the hue
        (Cb and Cr per unit of luma) moved by plus or minus ``z`` standard errors (the four
        corners); NaN: not estimated.

    Examples
    --------
    A line of uniform colour, nothing spread: its own OD against the skin.

    >>> rgb = np.full((30, 40, 3), (200, 150, 130), np.uint8); rgb[14:16] = (185, 120, 112)
    >>> pts = np.array([[14, x] for x in range(5, 35)]); nrm = np.tile([1.0, 0.0], (30, 1))
    >>> od = chroma_restored_od(rgb, pts, nrm, np.array([2.0]), np.zeros(30, int), np.array([0]), np.ones((30, 40), bool))
    >>> od.shape, np.round(od[0, 0], 2).tolist()
    ((1, 5, 3), [0.17, 0.48, 0.32])
    """
    pts = np.asarray(pts)
    nrm = np.asarray(normals_yx, np.float64)
    segment = np.asarray(segment)
    chains = np.asarray(chains, np.int64)
    m, n = skin.shape
    out = np.full((chains.size, 5, 3), np.nan)
    if chains.size == 0:
        return out
    w = np.asarray(chain_width, np.float64)[chains]
    w = np.where(np.isfinite(w) & (w >= 1.0), w, 1.0)
    half = np.ceil(0.5 * w + spread_px).astype(np.int64)  # core half-width of each chain's profile
    slot = np.full(int(segment.max()) + 1 if segment.size else 1, -1, np.int64)
    slot[chains] = np.arange(chains.size)
    in_range = (segment >= 0) & (segment < slot.size)
    pslot = np.full(segment.size, -1, np.int64)
    pslot[in_range] = slot[segment[in_range]]
    flat_rgb = np.asarray(rgb).reshape(-1, 3)
    flat_skin = np.asarray(skin).reshape(-1)
    keys, prof, cen, lev = [], [], [], []
    for r in np.unique(half):  # chains of one profile length at a time
        t = np.arange(-r - flank_px, r + flank_px + 1, dtype=np.float64)
        core = np.abs(t) <= r
        every = np.flatnonzero((pslot >= 0) & (half[np.maximum(pslot, 0)] == r))
        for start in range(0, every.size, _CHUNK_POINTS):  # a bounded block of profiles at a time (memory)
            sel = every[start : start + _CHUNK_POINTS]
            yy = np.rint(pts[sel, 0][None] + t[:, None] * nrm[sel, 0][None]).astype(np.int64)
            xx = np.rint(pts[sel, 1][None] + t[:, None] * nrm[sel, 1][None]).astype(np.int64)
            inside = (yy >= 0) & (yy < m) & (xx >= 0) & (xx < n)
            flat = np.where(inside, yy * n + xx, 0)
            del yy, xx
            ok = (inside & flat_skin[flat]).all(axis=0)  # (P,) the whole profile on the photo's skin
            if not ok.any():
                continue
            sel, flat = sel[ok], flat[:, ok]
            v = flat_rgb[flat].astype(np.float64) @ _YCC.T  # (T, P, 3)
            base = v[~core].mean(axis=0)
            d = v[core] - base[None]
            # blocks of block_px x block_px pixels along each chain: neighbouring profiles share
            # the same interpolated chroma, blocks two chroma cells wide are nearly independent
            cell = (pts[sel, 0] // block_px) * (n // block_px + 1) + pts[sel, 1] // block_px
            keys.append(pslot[sel] * ((m // block_px + 1) * (n // block_px + 1)) + cell)
            prof.append(d.sum(axis=0))
            cen.append(d[int(r)])
            lev.append(base)
    if not keys:
        return out
    key = np.concatenate(keys)
    ukey, blk = np.unique(key, return_inverse=True)
    bslot = ukey // ((m // block_px + 1) * (n // block_px + 1))  # chain slot of each block
    nb = ukey.size
    bsum = np.stack([np.bincount(blk, np.concatenate(prof)[:, j], minlength=nb) for j in range(3)], 1)
    pts_slot = bslot[blk]
    count = np.bincount(pts_slot, minlength=chains.size).astype(np.float64)
    sums = np.stack([np.bincount(bslot, bsum[:, j], minlength=chains.size) for j in range(3)], 1)
    centre = np.stack([np.bincount(pts_slot, np.concatenate(cen)[:, j], minlength=chains.size) for j in range(3)], 1)
    level = np.stack([np.bincount(pts_slot, np.concatenate(lev)[:, j], minlength=chains.size) for j in range(3)], 1)
    n_blocks = np.bincount(bslot, minlength=chains.size)
    est = (n_blocks >= 3) & (sums[:, 0] < 0) & (centre[:, 0] < 0)
    if not est.any():
        return out
    sy = np.where(est, sums[:, 0], -1.0)
    hue = sums[:, 1:] / sy[:, None]  # chroma per unit of luma across the profiles (C, 2)
    # standard error of each ratio from the scatter of the blocks (ratio estimator)
    resid = bsum[:, 1:] - hue[bslot] * bsum[:, 0:1]
    nbf = np.maximum(n_blocks, 2).astype(np.float64)
    var = np.stack([np.bincount(bslot, resid[:, j] ** 2, minlength=chains.size) for j in range(2)], 1)
    se = np.sqrt(var * (nbf / (nbf - 1.0))[:, None]) / np.abs(sy)[:, None]
    c = np.maximum(count, 1.0)[:, None]
    skin_ycc = level / c
    dy = centre[:, 0:1] / c
    corners = np.array([[0.0, 0.0], [1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    for j, sign in enumerate(corners):
        h = hue + z * sign[None] * se
        vessel = skin_ycc + dy * np.concatenate([np.ones_like(dy), h], axis=1)
        od = _od_of_srgb8(vessel @ _YCC_INV.T) - _od_of_srgb8(skin_ycc @ _YCC_INV.T)
        out[est, j] = od[est]
    return out
    c = count[est, None]
    skin_ycc = level[est] / c
    dy = centre[est, 0:1] / c
    hue = sums[est, 1:] / sums[est, 0:1]  # chroma per unit of luma across the profile
    vessel = skin_ycc + dy * np.concatenate([np.ones_like(dy), hue], axis=1)
    out[est] = _od_of_srgb8(vessel @ _YCC_INV.T) - _od_of_srgb8(skin_ycc @ _YCC_INV.T)
    return out


_NEIGHBOURS_8 = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def _neighbour_index(pts: np.ndarray, key: np.ndarray, n: int) -> np.ndarray:
    """(K, 8) index of each point's 8-neighbours among the points (``key`` = row * n + col,
    sorted), -1 where there is none. (The colour split's kernels find them in compiled code,
    :func:`veinscope._kernels.ridges.neighbour_index`, the same values.)"""
    out = np.full((pts.shape[0], 8), -1, np.int64)
    for j, (dy, dx) in enumerate(_NEIGHBOURS_8):
        x = pts[:, 1].astype(np.int64) + dx
        nk = key + dy * n + dx
        i = np.minimum(np.searchsorted(key, nk), key.size - 1)
        hit = (key[i] == nk) & (x >= 0) & (x < n)
        out[hit, j] = i[hit]
    return out


def _chain_points(pts, segment, chains, key):
    """The points of ``chains`` (indices, sorted as ``key``) and the kernels' arguments for them:
    their keys, columns and chain ids as contiguous int64."""
    sub = np.flatnonzero(np.isin(segment, chains))
    return sub, np.ascontiguousarray(key[sub], np.int64), np.ascontiguousarray(pts[sub, 1], np.int64), \
        np.ascontiguousarray(segment[sub], np.int64)


def _branches(pts: np.ndarray, segment: np.ndarray, chains: np.ndarray, key: np.ndarray, n: int, *,
              neighbours: bool = False):  # fmt: skip
    """Split the given chains at their junctions (points with 3 or more 8-neighbours in the
    chain): per point its branch id (0 .. B-1, in the order of each branch's first point), -2
    at a junction, -1 outside the chains; and B (:func:`veinscope._kernels.ridges.junction_branches`).
    ``neighbours``: also the chains' points (indices) and their (S, 8) 8-neighbour index among
    themselves."""
    from veinscope._kernels.ridges import junction_branches

    branch = np.full(pts.shape[0], -1, np.int64)
    sub, k_sub, x_sub, c_sub = _chain_points(pts, segment, chains, key)
    if sub.size == 0:
        return (branch, 0, sub, np.zeros((0, 8), np.int64)) if neighbours else (branch, 0)
    branch[sub], n_branch, nbr = junction_branches(k_sub, x_sub, int(n), c_sub)
    return (branch, int(n_branch), sub, nbr) if neighbours else (branch, int(n_branch))


def _melanin_branches(pts, key, n, segment, chains, od, seen, width, accepted, *, max_melanin_frac, min_widths=3.0,
                      z=2.0):  # fmt: skip
    """(K,) bool: the points of the branches of ``chains`` whose own colour fails the chain rule.

    The chains are split at their junctions (:func:`_branches`); a branch's colour is the mean
    relative OD ``od`` (K, 3) over its judged points (``seen``), unmixed as a chain's is: more
    than ``max_melanin_frac`` of it melanin-like fails. (The chain rule's ``max_contrast_od``
    is not judged per branch: a nail or a gap between fingers is a whole chain, while the
    darkest branch of a true vessel, where it runs shallow and wide, can pass it.) Only branches at least ``min_widths`` sample lengths long
    (their chain's median ``width``, px, per sample, at least 8 px) are judged: a shorter
    one's mean is too noisy and it is too short to matter. A branch fails only when its excess
    over the boundary is clear: the per-point signal (melanin part minus ``max_melanin_frac``
    times the three parts' sum, linear in the OD) has a mean at least ``z`` standard errors
    above zero, counting one independent sample per sample length (neighbouring points share
    most of their pixels); a faint vessel whose colour dithers about the boundary stays. Junction points stay (they belong to
    every branch they join). A hair is a near-black opaque fibre: over the part of a pixel it
    covers it darkens all three channels alike, a direction that unmixes with a large melanin
    part, as does a freckle's or a naevus's brown; blood never does.
    """
    from veinscope._kernels.groups import group_medians
    from veinscope.chromophores import unmix

    drop = np.zeros(pts.shape[0], bool)
    branch, n_branch = _branches(pts, segment, chains, key, n)
    if n_branch < 2:
        return drop
    inb = (branch >= 0) & accepted
    b_chain = np.full(n_branch, -1, np.int64)
    b_chain[branch[inb]] = segment[inb]
    # chains of a single branch were judged whole already
    per_chain = np.bincount(b_chain[b_chain >= 0], minlength=int(segment.max()) + 1)
    multi = (b_chain >= 0) & (per_chain[np.maximum(b_chain, 0)] >= 2)
    sel = inb & seen
    cnt = np.bincount(branch[sel], minlength=n_branch)
    sums = np.zeros((n_branch, 3))
    np.add.at(sums, branch[sel], od[sel])
    fin = np.isfinite(width) & (segment >= 0)
    n_seg = int(segment.max()) + 1
    w_chain = group_medians(width[fin].astype(np.float32), segment[fin], n_seg) if fin.any() else np.zeros(n_seg)
    w_chain = np.where(np.isfinite(w_chain), w_chain, 0.0)
    sample = np.maximum(w_chain[np.maximum(b_chain, 0)], 8.0)
    long_enough = multi & (cnt >= min_widths * sample)
    if not long_enough.any():
        return drop
    mean = sums[long_enough] / cnt[long_enough, None]
    pos = np.maximum(unmix(mean), 0.0)
    total = pos.sum(axis=1)
    mel = np.where(total > 0, pos[:, 2] / np.where(total > 0, total, 1.0), 1.0)
    from veinscope.chromophores import _UNMIX

    w_sig = _UNMIX[2] - max_melanin_frac * _UNMIX.sum(axis=0)
    sig = od[sel].astype(np.float64) @ w_sig
    s1 = np.bincount(branch[sel], weights=sig, minlength=n_branch)[long_enough]
    s2 = np.bincount(branch[sel], weights=sig * sig, minlength=n_branch)[long_enough]
    c = cnt[long_enough].astype(np.float64)
    mu = s1 / c
    sd = np.sqrt(np.maximum(s2 / c - mu * mu, 0.0))
    se = sd / np.sqrt(np.maximum(c / sample[long_enough], 1.0))
    bad = (mel > max_melanin_frac) & (mu >= z * se)
    fail = np.zeros(n_branch, bool)
    fail[np.flatnonzero(long_enough)[bad]] = True
    drop[branch >= 0] = fail[branch[branch >= 0]]
    return drop


def _colour_by_branch(pts, key, n, segment, chains, od, core, width, red_chain, *, z, min_widths=3.0):
    """Red vs blue judged per piece of the given ``chains``: the updated (K,) bool ``red_chain``.

    The chains are split at their junctions into branches (:func:`_branches`), each a path
    ordered along its length (:func:`veinscope._kernels.ridges.path_ranks`). The per-point
    colour signal is the haemoglobin part minus the venous part of the relative OD ``od``
    (K, 3), over the detected points (``core``); a piece is red when the unmixed mean OD's
    haemoglobin part is at least its venous part, as a chain's. Per-point noise is the spread
    of the signal about a piece's mean, and neighbouring points share most of their pixels,
    so a piece counts one independent sample per diameter (``width``, px, its chain's median,
    at least 8 px) along the vessel. Two tests, each needing ``min_widths`` such lengths on
    both sides, and each piece given its own colour must be clearly of it (its mean signal
    ``z`` standard errors from the boundary):

    - along a branch, the two-segment change point (the split maximising the difference of
      the two sides' mean signals in standard errors, Welch's): where it reaches ``z`` and the
      two sides' colours differ, each side takes its own (a red vessel running into a blue one
      end to end is one path);
    - a branch not split whose colour differs from its chain's takes it when its mean signal
      differs from the rest of the chain's (its other branches) by ``z`` standard errors (a red
      arm touching a blue vein). Junction points keep the chain's colour.
    """
    from veinscope._kernels.groups import group_medians
    from veinscope._kernels.ridges import path_ranks
    from veinscope.chromophores import unmix

    # branches of the detected points (a tracked path beside a detected one would read as a
    # line two pixels thick, all junctions); the tracked points follow the piece they touch
    branch, n_branch, c_pts, c_nbr = _branches(pts, np.where(core, segment, -1), chains, key, n, neighbours=True)
    if n_branch == 0:
        return red_chain
    out = red_chain.copy()
    on = branch >= 0
    sub = np.flatnonzero(on)
    rank = np.full(pts.shape[0], -1, np.int64)
    # the walk along each branch, over the chains' points (junctions are on no branch)
    rank[c_pts] = path_ranks(c_nbr, branch[c_pts], n_branch)
    b_chain = np.full(n_branch, -1, np.int64)
    b_chain[branch[on]] = segment[on]
    c_ids, b_inv = np.unique(b_chain, return_inverse=True)
    fin = np.flatnonzero(np.isin(segment, c_ids) & np.isfinite(width))
    c_w = group_medians(width[fin].astype(np.float64), np.searchsorted(c_ids, segment[fin]), c_ids.size)
    c_w = np.where(np.isfinite(c_w), c_w, 1.0)
    # one independent colour sample per diameter, but no closer than half a JPEG chroma block
    # (8x8 DCT on 4:2:0 chroma: 16 px; its quantisation smooths the colour over about half)
    w = np.maximum(c_w[b_inv], 4.0 * CHROMA_CELL_PX)  # per branch
    use = np.flatnonzero(on & core)
    use = use[np.lexsort((rank[use], branch[use]))]  # by branch, along it
    bu = branch[use]
    od_u = od[use].astype(np.float64)
    sig = unmix(od_u).astype(np.float64)
    d = sig[:, 0] - sig[:, 1]
    cnt = np.bincount(bu, minlength=n_branch).astype(np.float64)
    starts = np.concatenate([[0], np.cumsum(cnt).astype(np.int64)])

    def is_red(od_mean):
        pos = np.maximum(unmix(od_mean), 0.0)
        return pos[..., 0] >= pos[..., 1]

    split = np.zeros(n_branch, bool)
    min_len = min_widths * w
    for b in np.flatnonzero(cnt >= 2.0 * min_len):
        lo, hi = starts[b], starts[b + 1]
        db = d[lo:hi]
        nb_ = db.size
        k = np.arange(1, nb_)  # left side: the first k points
        c1, c2 = np.cumsum(db)[:-1], np.cumsum(db * db)[:-1]
        t1, t2 = c1[-1] + db[-1], c2[-1] + db[-1] ** 2
        ok = (k >= min_len[b]) & (nb_ - k >= min_len[b])
        if not ok.any():
            continue
        k, c1, c2 = k[ok], c1[ok], c2[ok]
        m_l, m_r = c1 / k, (t1 - c1) / (nb_ - k)
        v_l = np.maximum(c2 / k - m_l**2, 0.0)
        v_r = np.maximum((t2 - c2) / (nb_ - k) - m_r**2, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            zs = np.abs(m_l - m_r) / np.sqrt(w[b] * (v_l / k + v_r / (nb_ - k)))
        zs = np.where(np.isfinite(zs), zs, 0.0)
        i = int(np.argmax(zs))
        if zs[i] < z:
            continue
        kk = int(k[i])
        # each side clearly of its colour: its mean signal z standard errors from the boundary
        if min(abs(m_l[i]) / math.sqrt(w[b] * v_l[i] / kk + 1e-30), abs(m_r[i]) / math.sqrt(w[b] * v_r[i] / (nb_ - kk) + 1e-30)) < z:
            continue
        red_l = bool(is_red(od_u[lo : lo + kk].mean(axis=0)))
        red_r = bool(is_red(od_u[lo + kk : hi].mean(axis=0)))
        if red_l == red_r:
            continue
        split[b] = True
        cut = rank[use[lo + kk]]  # the right side's first point along the branch
        pts_b = np.flatnonzero(branch == b)
        out[pts_b] = np.where(rank[pts_b] < cut, red_l, red_r)
    # a whole branch against the rest of its chain
    s1 = np.bincount(bu, weights=d, minlength=n_branch)
    s2 = np.bincount(bu, weights=d * d, minlength=n_branch)
    od_sum = np.stack([np.bincount(bu, weights=od_u[:, j], minlength=n_branch) for j in range(3)], 1)
    c_cnt, c_s1, c_s2 = (np.bincount(b_inv, weights=v) for v in (cnt, s1, s2))
    r_cnt, r_s1, r_s2 = c_cnt[b_inv] - cnt, c_s1[b_inv] - s1, c_s2[b_inv] - s2
    with np.errstate(divide="ignore", invalid="ignore"):
        m_b, m_r = s1 / cnt, r_s1 / r_cnt
        v_b = np.maximum(s2 / cnt - m_b**2, 0.0)
        v_r = np.maximum(r_s2 / r_cnt - m_r**2, 0.0)
        zs = np.abs(m_b - m_r) / np.sqrt(w * (v_b / cnt + v_r / r_cnt))
        zs = np.minimum(zs, np.abs(m_b) / np.sqrt(w * v_b / cnt))  # the branch clearly of its colour
        b_red = is_red(od_sum / cnt[:, None])
    first = np.zeros(n_branch, np.int64)
    ids, at = np.unique(branch[on], return_index=True)
    first[ids] = sub[at]
    own = (~split & (cnt >= min_len) & (r_cnt >= min_len) & np.isfinite(zs) & (zs >= z)
           & (b_red != red_chain[first]))  # fmt: skip
    if own.any():
        sel = on & own[np.maximum(branch, 0)]
        out[sel] = b_red[branch[sel]]
    if (~core).any() and (out != red_chain).any():
        out = _tracked_follow(pts, key, n, segment, chains, core, out)
    return out


def _colour_runs(pts, key, n, segment, chains, od, core, width, red, *, z, min_samples=3.0, min_sample_px=8.0):
    """Red vs blue judged run by run where the colour changes along the centreline: the
    updated (K,) bool ``red``.

    A chain is 8-connected, and where vessels of different colour cross or touch (a blue vessel
    through a red spider) its skeleton does not follow the vessels: a branch between two
    junctions can run along a red arm and on along the blue vessel, with no junction where
    they meet, and the colour of a branch (:func:`_colour_by_branch`) is then a mixture. Here
    each detected (``core``) point of ``chains`` has its own colour signal, the haemoglobin part
    minus the venous part of its relative OD ``od`` (K, 3) unmixed, and the points of one
    chain are cut into runs (8-connected) where that signal's sign changes. A run is judged on
    its mean signal with its error bar: the spread of its points' signal about its mean, but
    at least its chain's spread pooled over the chain's runs (a short run's own spread rests on
    a few samples and is cut where the sign changes: a faint tail's smooth signal just over
    the boundary would read as certain), one independent sample per diameter (its chain's median ``width``, px) but no closer than
    ``min_sample_px`` (a JPEG chroma block). A run at least ``min_samples`` such lengths long
    whose mean is at least ``z`` standard errors from the red/blue boundary takes its own
    colour (the unmixed mean OD's haemoglobin part against its venous part, as a chain's);
    every other run keeps the colour it has in ``red``. Tracked points follow the detected
    points they touch (:func:`_tracked_follow`).
    """
    from veinscope._kernels.groups import group_medians
    from veinscope._kernels.ridges import value_runs
    from veinscope.chromophores import unmix

    sub, k_sub, x_sub, c_sub = _chain_points(pts, np.where(core, segment, -1), chains, key)
    if sub.size == 0:
        return red
    od_s = od[sub].astype(np.float64)
    u = unmix(od_s).astype(np.float64)
    d = u[:, 0] - u[:, 1]
    # runs of one sign within one chain
    value = np.ascontiguousarray(2 * c_sub + (d >= 0), np.int64)
    run, n_run = value_runs(k_sub, x_sub, int(n), value)
    run = np.asarray(run, np.int64)
    n_run = int(n_run)
    if n_run < 2:
        return red
    c_ids, c_inv = np.unique(c_sub, return_inverse=True)
    fin = np.isfinite(width[sub])
    c_w = group_medians(width[sub][fin].astype(np.float64), c_inv[fin], c_ids.size)
    c_w = np.maximum(np.where(np.isfinite(c_w), c_w, 1.0), min_sample_px)
    r_w = np.zeros(n_run)
    r_w[run] = c_w[c_inv]
    cnt = np.bincount(run, minlength=n_run).astype(np.float64)
    s1 = np.bincount(run, weights=d, minlength=n_run)
    s2 = np.bincount(run, weights=d * d, minlength=n_run)
    r_chain = np.zeros(n_run, np.int64)
    r_chain[run] = c_inv
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s1 / cnt
        var = np.maximum(s2 / cnt - mean**2, 0.0)
        # a short run's own spread is a poor estimate (a few samples, and cut where the sign
        # changes): the spread is at least its chain's, pooled over the chain's runs
        pooled = np.bincount(r_chain, weights=s2 - cnt * mean**2, minlength=c_ids.size)
        pooled = np.maximum(pooled, 0.0) / np.bincount(r_chain, weights=cnt, minlength=c_ids.size)
        var = np.maximum(var, pooled[r_chain])
        margin = np.abs(mean) / np.sqrt(r_w * var / cnt)
    od_mean = np.stack([np.bincount(run, weights=od_s[:, j], minlength=n_run) for j in range(3)], 1) / cnt[:, None]
    pos = np.maximum(unmix(od_mean), 0.0)
    r_red = pos[:, 0] >= pos[:, 1]
    decided = (cnt >= min_samples * r_w) & ~(margin < z) & (r_red == (mean >= 0))
    out = red.copy()
    sel = decided[run]
    out[sub[sel]] = r_red[run[sel]]
    if (~core).any() and (out != red).any():
        out = _tracked_follow(pts, key, n, segment, chains, core, out)
    return out


def _tracked_follow(pts, key, n, segment, chains, core, red):
    """The tracked (not ``core``) points of ``chains`` take the colour ``red`` (K,) bool holds at
    the detected points they touch, run by run (8-connected runs of tracked points of one chain;
    the majority where a run touches both colours); a run touching none keeps its own
    (:func:`veinscope._kernels.ridges.follow_detected`)."""
    from veinscope._kernels.ridges import follow_detected

    sub, k_sub, x_sub, c_sub = _chain_points(pts, segment, chains, key)
    out = red.copy()
    out[sub] = follow_detected(k_sub, x_sub, int(n), c_sub, np.ascontiguousarray(core[sub], np.bool_),
                               np.ascontiguousarray(red[sub], np.bool_))  # fmt: skip
    return out


def _touches(pts: np.ndarray, key: np.ndarray, n: int, mask: np.ndarray, among: np.ndarray) -> np.ndarray:
    """Points of ``among`` (K,) bool with an 8-neighbour in ``mask`` (K,) bool (both among the
    points ``key`` sorts), as a (K,) bool."""
    out = np.zeros(pts.shape[0], bool)
    sub = np.flatnonzero(among | mask)
    nb = _neighbour_index(pts[sub], key[sub], n)
    hit = ((nb >= 0) & mask[sub][np.maximum(nb, 0)]).any(axis=1)
    out[sub] = hit & among[sub]
    return out


def warmup() -> None:
    """Load (or compile) the chain-graph kernels of the colour split that the warm-up photo of
    :func:`veinscope.warmup` may not reach (it has no tracked run beside a recoloured piece):
    a T of detected points with a tracked tail, on the argument types the analysis passes."""
    pts = np.array(sorted([(1, x) for x in range(5)] + [(2, 2), (3, 2), (4, 2)]), np.int64)
    n = 8
    key = pts[:, 0] * n + pts[:, 1]
    segment = np.zeros(pts.shape[0], np.int64)
    core = pts[:, 0] < 4
    _branches(pts, segment, np.array([0]), key, n)
    _tracked_follow(pts, key, n, segment, np.array([0]), core, pts[:, 1] < 2)
    from veinscope._kernels.ridges import value_runs

    value_runs(np.ascontiguousarray(key, np.int64), np.ascontiguousarray(pts[:, 1], np.int64), n, segment * 2)
    # the short-chain rule's kernels (:func:`_texture_nfa`), which the warm-up photo's long line skips
    from veinscope._kernels.colourdiff import clear_squares, moved_pixel_sums, moves_free

    free = np.ones((8, 8), bool)
    i1, f1 = np.zeros(1, np.int64), np.zeros(1)
    clear_squares(free, i1, i1, 1)
    moves_free(free, i1, i1, i1, i1, np.empty(1, bool))
    moved_pixel_sums(np.zeros((64, 3), np.uint8), free.ravel(), 8, 8, i1, i1, i1, np.ones(1, np.int64), i1, i1, f1, f1, i1,
                     i1, i1, np.zeros((1, 1, 3)), np.zeros((1, 1), np.int64))  # fmt: skip
