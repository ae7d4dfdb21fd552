"""The engine end to end: photo -> skin -> vessel signal -> ridges -> centrelines -> Analysis."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import replace
from typing import Any

import numpy as np

from veinscope._version import __version__
from veinscope.chromophores import skin_optics
from veinscope.io import Photo, load_photo
from veinscope.measure import Analysis, class_figures, measure_vessels
from veinscope.segment import detect_vessels, fill_vessel_gaps, skin_mask

__all__ = ["NOMINAL_PX_PER_MM", "analyze", "warmup"]

log = logging.getLogger(__name__)

#: Scale assumed for the size classes when no scale is given (middle of 6-15 px/mm, a phone
#: 20-50 cm from the leg). Millimetre figures are never reported on this assumption.
NOMINAL_PX_PER_MM = 10.0
#: Below this scale, vessels under 0.2 mm are 1 px or less: not measurable.
MIN_FINE_PX_PER_MM = 6.0
#: Key of ``Analysis.params`` under which the PSF sigma (px) the widths were measured with is
#: recorded, given or estimated (``params["psf_sigma_px"]`` is the option: ``None`` when the PSF
#: was estimated); absent from an analysis without vessels or made by an older version.
PSF_USED_KEY = "psf_sigma_used_px"



def _add_background(signal: np.ndarray, optics, weights) -> None:
    """``signal`` (relative OD projected on ``weights``; 0 off skin) += the skin background's
    OD projected the same way, in place: the photo's own OD on skin, the skin's level off it."""
    from veinscope._kernels.chroma import add_upsampled
    from veinscope.chromophores import _bilinear_index

    m, n = signal.shape
    for o, wt in getattr(optics, "parts", ((optics, 1.0),)):  # one background or a blend of two
        coarse = (o.background_od.astype(np.float32) @ np.asarray(weights, np.float32)).astype(np.float32)
        if wt != 1.0:
            coarse *= np.float32(wt)
        y0, wy = _bilinear_index(m, coarse.shape[0], o.cell_px)
        x0, wx = _bilinear_index(n, coarse.shape[1], o.cell_px)
        add_upsampled(signal, np.ascontiguousarray(coarse), y0, wy, x0, wx)


def _chain_guess(guess_px, segment, scale_px, *, short=0.5, min_px=12.0, min_course=3.0):
    """First widths (the half-maximum window's) where the bar fit failed or fell far short on a
    wide vessel, from its chain: (K,) float64.

    Where ``guess_px`` is NaN or under ``short`` times the median ``g`` of its chain's finite
    first widths, ``g`` is over ``min_px``, the chain is a course at least ``min_course`` times
    ``g`` long (in points; a shorter one is a blob, a cluster of fine vessels read as one, whose
    width means little) and the point's detection scale says it belongs to the wide part of the
    chain (``2 scale_px >= short * g``: a bar of width w answers most at sigma w / 2), the
    first width is ``g``; elsewhere it is left as it is.

    ``min_px`` is :func:`veinscope.diameter.half_max_widths`' fixed reach (``reach[1]``, 12 px):
    its window reaches ``max(1.5 guess, guess / 2 + 12)`` px either side, so only above 12 px
    does the window shrink with the first width. On a wide, soft vein the bar fit fails at up to
    a fifth of the points and reads about as many under half the width (a crest of texture on
    the vein's top); a window set by such a width takes the vein's own shoulders for the skin
    and the half maximum reads it narrow. A fine branch of the chain answers at its own, small
    scale and keeps its own first width.

    Examples
    --------
    >>> import numpy as np
    >>> g = np.array([30.0, 31, np.nan, 29, 3, 30, 4.0, np.nan])
    >>> seg = np.zeros(8, np.int64)
    >>> scale = np.array([15.0, 15, 15, 15, 14, 15, 2, 2])
    >>> _chain_guess(g, seg, scale, min_course=0.2).round(1).tolist()
    [30.0, 31.0, 29.5, 29.0, 29.5, 30.0, 4.0, nan]
    >>> _chain_guess(g, seg, scale).round(1).tolist()  # 8 points: a blob, not a course of 3 widths
    [30.0, 31.0, nan, 29.0, 3.0, 30.0, 4.0, nan]
    """
    g = np.asarray(guess_px, np.float64)
    seg = np.asarray(segment, np.int64)
    out = g.copy()
    if g.size == 0:
        return out
    fin = np.isfinite(g)
    n = int(seg.max()) + 1
    med = np.full(n, np.nan)
    if fin.any():
        from veinscope._kernels.groups import group_medians

        cnt = np.bincount(seg[fin], minlength=n)
        gm = np.asarray(group_medians(g[fin].astype(np.float32), seg[fin], n), np.float64)
        med = np.where(cnt > 0, gm, np.nan)
    cm = med[seg]
    fill = (cm > min_px) & ~(g >= short * cm) & (2.0 * np.asarray(scale_px, np.float64) >= short * cm)
    fill &= np.bincount(seg, minlength=n)[seg] >= min_course * cm
    out[fill] = cm[fill]
    return out


def analyze(
    photo,
    *,
    px_per_mm: float | None = None,
    min_diameter_mm: float = 0.1,
    max_diameter_mm: float = 5.0,
    n_scales: int = 6,
    high_noise: float = 5.0,
    low_noise: float = 3.0,
    min_length_mm: float = 1.0,
    min_piece_mm: float = 1.0,
    max_gap_px: float = 1.0,
    faint_length_mm: float | None = 3.0,
    snap_crest: bool = True,
    max_covered: float = 0.8,
    matched_signal: bool = True,
    max_melanin_frac: float = 0.45,
    max_contrast_od: float = 1.0,
    line_gamma: float = 0.01,
    psf_sigma_px: float | None = 0.8,
    paint_at_centre: bool = True,
    paint_links: bool = True,
    join_ends: bool = True,
    join_facing_widths: float | None = 3.0,
    length_once: bool = True,
    branch_melanin_widths: float | None = None,
    short_chain_nfa: float | None = 1.0,
    level_rates: tuple[float, float] | None = None,
    level_rates_guard: str | None = None,
    level_rates_gap_mm: float = 2.0,
    level_rates_long_mm: float = 2.5,
    level_rates_colour_z: float = 2.0,
    min_delta_e: float | None = 1.0,
    max_red_diameter_mm: float | None = 1.0,
    faint_delta_e: float | None = 3.0,
    extend_ends_mm: float | None = 20.0,
    tail_probe_nfa: float | None = 1.0,
    wide_weak_delta_e: float | None = 1.0,
    colour_split_z: float | None = 3.0,
    size_class_z: float | None = 2.0,
    end_faces: bool = True,
    colour_runs_z: float | None = 3.0,
    wide_profile_mm: float | None = 0.6,
    deep_veins: bool = True,
    deep_veins_step: int | None = None,
    deep_veins_delta_e: float = 2.2,
    deep_veins_red_share: float = 1.3,
    deep_veins_straight: float = 0.7,
    deep_veins_join_widths: float = 3.0,
    deep_veins_over_weak: bool = True,
    smooth_widths: float | None = None,
    valley_sides: bool = True,
    chain_guess_widths: float | None = None,
    wide_first_widths: bool = False,
) -> Analysis:
    """Find, classify and measure the veins in a colour photo of a leg.

    Parameters
    ----------
    photo : path, bytes, ndarray (M, N, 3) or Photo
        Anything :func:`veinscope.load_photo` accepts.
    px_per_mm : float, optional
        Scale at the skin, pixels per millimetre. Without it, classes assume
        :data:`NOMINAL_PX_PER_MM`, millimetre figures are ``None`` and a warning says so.
    min_diameter_mm, max_diameter_mm : float
        Range of visible vessel diameters searched for.
    n_scales : int
        Number of Hessian scales between the two.
    high_noise, low_noise : float
        Hysteresis thresholds of the ridge strength, in units of the skin's own texture noise.
    min_length_mm : float
        Structures shorter than this are dropped (pores, specks): the extent of the connected
        band of ridge pixels a vessel's centreline runs in.
    min_piece_mm : float
        Pieces of centreline shorter than this (after bridging one-pixel gaps) are dropped,
        also inside a long band (texture next to a vessel).
    max_gap_px : int
        Centreline ends are joined across gaps of up to this many pixels.
    faint_length_mm : float or None
        A band of ridge pixels above the low level that never reaches the high level is still
        a vessel when it extends at least this far (a faint vessel stays above the low level
        along its length; texture does so in short runs). ``None``: only bands that reach the
        high level. The default 3 mm was the best of 2-8 mm on the generated photos (seeds
        400-423): recall +0.018, clDice +0.010, centreline precision -0.006 (medians). It was
        off until the skin mask left skin-coloured floors out, where it drew long lines
        (BENCHMARKS.md, sessions 10 and 11).
    snap_crest : bool
        Move centreline points to the sub-pixel crest of the ridge (one line along a wide
        vessel instead of a staircase of dashes).
    max_covered : float
        A centreline chain with more than this share of its points inside the width of
        longer vessels repeats one of them (blunt ends, parallel crests) and is dropped. 0.8
        (chosen on generated photos, seeds 400-423): a branch that starts inside a wide vein
        keeps its own length; 0.5 dropped short real branches (clDice 0.721 vs 0.736).
    matched_signal : bool
        Detect on the OD projection that sees the vessel colour with unit gain and the least
        skin texture of this photo (:func:`veinscope.chromophores.matched_vessel_weights`)
        rather than on the fixed vessel direction.
    max_melanin_frac : float
        Structures whose colour is more than this fraction melanin-like (freckles, naevi,
        hair, brown stains) are not vessels.
    max_contrast_od : float
        Structures darker than the skin by more than this optical density in any channel
        (hair, nails, gaps between fingers, clothing) are not vessels.
    psf_sigma_px : float or None
        Blur of the camera (Gaussian sigma, px) taken out of the diameters. The default 0.8 px
        is a sharp phone photo; the blur of light scattered in the skin above a deep vessel is
        part of its visible width and stays in. ``None`` estimates one blur from the widest
        vessels of the photo, which on legs is dominated by deep, soft reticular veins.
    line_gamma : float
        Frangi's ``gamma`` (c) for the line-likeness weight, in strength units: small, so the
        weight measures shape (line vs blob) rather than contrast.
    paint_at_centre : bool
        Paint each centreline point's disc at the centre of its half-maximum profile.
    paint_links : bool
        Paint the band between neighbouring centreline points too, not only a disc at each
        (a vessel under 2 px wide is otherwise painted one pixel wide along diagonals); recall
        +0.008 on the generated truth. The comparison counts a fine vessel the engine found in
        the follow-up only (as it may with these wider fine vessels) as new matting only where
        the baseline did not show it.
    join_ends : bool
        Carry a centreline that stops short of the next one ahead of it (within about its
        own width: a branch at the edge of the vein it joins, a wide vein's crest broken where
        it wanders) on to it, in the length and the painted vessel
        (:func:`veinscope.measure.measure_vessels`).
    join_facing_widths : float or None
        With ``join_ends``, also join two centreline ends of one vessel that face each other
        across a longer break, up to this many of the narrower end's diameters apart, when the
        vessel's profile runs on across the break at half its own contrast or more
        (:func:`veinscope.measure._facing_links`): where a thinner vessel crosses a vein, the
        line filter at the vein's scale is disturbed over about a width on each side of it, so
        the vein's centreline breaks over about two widths plus the crossing vessel's width.
        3.0 (default) is that geometry, set before measuring (after session 27's review: set A
        recall 0.807 -> 0.808, clDice 0.790 and the reticular length median -10.8 % unchanged;
        set B reticular length -17.6 -> -17.0 %; BENCHMARKS.md session 27, helper near27 and
        the lead's section); ``None``: off.
    length_once : bool
        Count each vessel's length once where two or more centreline branches run along it
        (:func:`veinscope.measure._repeated_points`): on a wide vein the line filter often
        answers with parallel crests, and their lengths were all summed. A stretch of a branch
        inside the painted vessel (half its diameter) of a longer branch and within 30 degrees
        of its direction adds no length. Painting and areas are unchanged. On (default): the
        lengths summed over parallel crests counted 5 % (reticular) and 8 % (over 3 mm) of set
        A's covered true length twice (8 and 20 % on set B); counted once, set A's reticular
        length error goes -10.8 -> -12.3 % and over 3 mm -10.6 -> -17.6 % (further from the
        truth, and honest; BENCHMARKS.md session 27, helper dbl27). ``False``: main's sum.
    branch_melanin_widths : float or None
        Judge the melanin rule of ``max_melanin_frac`` on each branch of a kept chain, not only on the chain as a whole (:func:`veinscope.measure._melanin_branches`):
        a hair, or a naevus's rim, crossing or touching a vessel is one 8-connected chain with
        it and passes on the vessel's colour. A branch between junctions at least this many
        sample lengths long (one per diameter, at least 8 px) whose own colour is melanin-like
        is dropped. ``None`` (default): off (BENCHMARKS.md session 30, helper fp30).
    short_chain_nfa : float or None
        With ``min_delta_e``: a lone chain (no other within 1 mm) up to 5 mm long (at most 5 mm x
        ``px_per_mm`` points) and under 1 mm wide (median) is kept only if its colour difference from the skin right beside
        it (1.5 and 2.5 widths out) is one the photo's own skin texture seldom makes: the same chain moved whole to 200 or more random places on skin
        clear of candidates and measured there the same way, its number of false alarms (the
        short chains tested x the share of copies at least as different) must be under this
        (:func:`veinscope.measure._texture_nfa`). Copies whose skin differs from one side to
        the other by more than the chain differs from its skin (or than its own sides differ)
        lie across an edge (a finger, a fold, clothing, the background) and are left out of
        the null. 1.0 (default; the house level, as ``tail_probe_nfa``): generated set A clDice
        0.829 -> 0.834, held-out set B 0.779 -> 0.784, no photo lower; issue 6's development,
        held-out and fresh series identical with it and without (session 30; the development
        series again in session 31); on the ten real legs it removes 5 marks,
        none a visible vessel (shading, a photo's edge, skin in a fold's shadow); about 2 % of
        a 12 MP analysis (BENCHMARKS.md session 30, helpers tex30 and nfa30). A chain near the
        level can be kept in one photo and dropped in another photo of the same leg (other
        random places, its own ΔE00 moved by the warp and the JPEG); with
        :func:`veinscope.compare.compare`'s ``texture_by_place`` such a flip moves a
        comparison's improvement by the mark's own length only (veins_01 against a moved copy
        of itself 6.2 points with the rule and without, 20 000 samples by place; 2.9 -> 6.8 on
        the earlier sample; session 31, helper flip31 and the lead).
        ``None``: off.
    level_rates : (float, float) or None
        The hysteresis levels (``low_noise``, ``high_noise``, in units of the skin's local
        mean line strength) each lowered, never raised, to the photo's own quantile of that
        strength over its skin at these shares (low, high) of the skin's pixels
        (:func:`veinscope.segment._rate_levels`): a constant false-alarm rate where the skin's
        strength is less heavy-tailed than the skin the levels were set on. Light skin's
        texture is heavy-tailed (1-2 % of its pixels off the vessels pass 5 units on generated
        set A), the camera noise that dominates dark skin is not (0.2-0.3 % on types 5-6): at
        fixed levels a dark photo's faint vessels are asked for more. ``(0.04, 0.01)`` is just
        under the rates that 3 and 5 units give on the lightest-tailed light photo of set A
        (seed 421, 0.047 and 0.011 of its skin including vessels), so set A's types 1-4 keep
        their levels. Where the high level is lowered, a chain that does not reach the fixed one
        (at the photo's median unit) does not hold the deep pass off a soft vein it lies along
        (``veinscope.segment.add_deep_veins``' ``hold_min_strength``). Generated set A: type 6
        clDice 0.525 -> 0.608, recall 0.413 -> 0.530, but type 5 0.834 -> 0.812 and the median
        0.834 -> 0.820 (precision 0.908 -> 0.895); held-out set B clDice 0.784 both, precision
        0.882 -> 0.862, class right 0.963 -> 0.946. ``None`` (default): the fixed levels
        (BENCHMARKS.md session 32, helper fine32).
    level_rates_guard : str or None
        With ``level_rates``, where a level was lowered, how a chain that only the lowered levels
        find is judged: a chain with no point in a band the fixed levels keep
        (:func:`veinscope.segment.detect_vessels`' ``rates_guard``). Words joined by ``+``:
        ``"near"``, kept when one of its points lies within ``level_rates_gap_mm`` of a chain
        the fixed levels find (the same vessel on across a stretch where its ridge dips under the
        fixed low level; with ``"grow"``, also of a chain kept so, piece by piece, and of a long
        one; with ``"follow"``, such a chain takes the class, colour and size, of the nearest point
        of the fixed levels' chain it continues, not its own colour and width read at the noise);
        ``"long"``, kept when its centreline extends ``level_rates_long_mm``
        (the diagonal of its bounding box): the dark skin's speckle and red blotches make short
        lone pieces; otherwise, a chain in a band the fixed levels would have judged weak is
        judged by its colour as there (``faint_delta_e``) and any other is dropped (``"drop"``) or
        judged by its colour too (``"weak"``). Generated set A, types 5-6 (BENCHMARKS.md
        session 33, helper lev33): ``"drop+near+long"`` keeps type 6's gain (clDice 0.525 ->
        0.615) without type 5's false pieces (0.834 -> 0.843; ``level_rates`` alone 0.812).
        ``"colour"``: a chain under 1 mm wide made mostly of points the fixed levels do not find
        (fewer than half its points on their centreline, counting those followed on past its
        ends) has its red / blue colour judged with its error bar (the spread of its points'
        colour signal, one sample per diameter but no closer than 8 px): within
        ``level_rates_colour_z`` standard errors of the red/blue cut it is undecided and left
        unmarked (with ``"nearest"``: it takes the colour of the nearest point of a decided
        chain within ``level_rates_gap_mm``, and is left unmarked where there is none); a
        chain following another (``"follow"``) goes with the chain it follows. Set B photo 611:
        a blue telangiectasia's faint stretch read red at a red share of 0.505 +- 0.058
        (BENCHMARKS.md session 34, helper cls34).
        ``"keep"``: the fixed levels' chains are found too (from the same detection's noise map,
        bands and candidates, ``detect_vessels(fixed_too=True)``; carried on to their end faces
        and past their ends as any) and kept as they
        are, with the lowered levels' points only beyond them
        (:func:`veinscope.segment.keep_fixed_centreline`): the lowered levels redraw a vessel's
        crest 1-3 px off and pool their faint stretch's profiles into its widths, which read a
        vessel both find wider (set A photo 417: 0.048 -> 0.102 mm at the true points both
        mark; 0.047 with ``"keep"``); they still decide which of those chains are weak, and a
        stretch they add past a fixed chain's end is a chain of its own that follows it (with
        ``"follow"``). Where no level was lowered it changes nothing (BENCHMARKS.md session 35,
        helper lvl35).
        ``None`` (default): every chain the lowered levels find is kept.
    level_rates_gap_mm : float
        ``level_rates_guard``'s ``"near"`` (and ``"nearest"``) distance, mm (2.0: twice
        ``min_length_mm``).
    level_rates_long_mm : float
        ``level_rates_guard``'s ``"long"`` length, mm (2.5, of 2.0 / 2.5 / 3.0 on set A's types
        5-6).
    level_rates_colour_z : float
        ``level_rates_guard``'s ``"colour"`` error bar, in standard errors (2.0, as
        ``size_class_z``'s undecided width; 2 and 3 give the same set A, 1 keeps more chains
        whose colour reads either way).
    min_delta_e : float or None
        A centreline chain whose mean colour along its whole length differs from the skin
        beside it (parallel copies of it on both sides) by less than this CIEDE2000 on the
        photo is not a visible vessel and is dropped (:func:`veinscope.measure.chain_delta_e`):
        faint blotches of redness and skin texture the line filter answered. 1.0, the
        classical just-noticeable difference, is half the truth's visibility threshold (ΔE00
        2), which leaves room for the JPEG's chroma subsampling (the finest vessels keep
        0.41-0.65 of their colour difference in the file). Not tuned: set once from those
        two figures (BENCHMARKS.md, session 13). ``None`` keeps every chain.
    faint_delta_e : float or None
        A band above the low level that reaches neither the high level nor
        ``faint_length_mm`` is still a vessel when its centreline's mean colour differs from
        the skin beside it by at least this CIEDE2000 on the photo
        (:func:`veinscope.measure.chain_delta_e`), its median diameter is under 1 mm (a wide
        faint band is shading between bulges of the leg more often than a vein) and it passes
        every other rule like any chain: evidence from colour along the whole chain instead
        of from one strong point. 3.0 (of 2-3 on the generated photos, seeds 400-423: recall
        +0.005, clDice +0.001, centreline precision +0.001; at 2.0 precision fell 0.006 and
        textured skin without vessels gained marks). ``None``: such bands are dropped
        (BENCHMARKS.md, session 14).
    max_red_diameter_mm : float or None
        A centreline chain whose colour is red (haemoglobin's part at least the venous part,
        the red/blue class rule) and whose median diameter is at least this is redness of the
        skin (a blotch, erythema), not a vessel, and is dropped: red vessels are
        telangiectasia, under 1 mm; veins of 1 mm and more (reticular, varicose) are blue-green
        (the domain notes' vessel table). 1.0, the class boundary itself, not tuned. On the generated
        photos (seeds 400-423) 8 mm of the 139 mm of red chains >= 1 mm lay on a true vessel
        (BENCHMARKS.md, session 17). ``None`` keeps them.
    extend_ends_mm : float or None
        Follow each centreline of at least 2 mm on past its free ends, for up to this many
        millimetres, where its vessel continues fainter than the hysteresis keeps (a vein fades
        gradually as it dives deeper): :func:`veinscope.extend.extend_ends`, at the vessel's own
        scale and direction, while its contrast across it averaged over the next 1 mm (3 mm
        across a dip) stays above the skin beside it by one robust spread of the same statistic;
        stopping at a sharp turn, the skin's edge or where it runs along another centreline for
        over 2 mm. A stretch whose colour differs from the skin beside it by less than
        ``min_delta_e`` is dropped. The points found join their chain (diameters, class and
        length as that vessel's), except inside the width of another vessel kept; the chain's
        colour is judged on its detected points only. 20 mm (of 5, 10 and 20 mm on the generated
        photos, seeds 400-423: recall +0.026, clDice +0.010, centreline precision +0.002, class
        right unchanged, total length error -21.4 % to -17.8 %; BENCHMARKS.md, session 15).
        ``None``: off.
    tail_probe_nfa : float or None
        Where ``extend_ends_mm``' window ahead loses a vessel, probe 2 mm on over a fan of
        directions (within 40 degrees) and at the finest width (a fading vessel tapers; at a fork
        or a bend the way straight on misses it), and go on where the probe's contrast stands
        out of the same probe run on this photo's own skin off the vessels found, so that at
        most this many probes per photo are expected to be accepted on skin alone (an
        a-contrario number of false alarms:
        :func:`veinscope.extend.extend_ends`, ``probe_nfa``); up to three probes per end. 1.0,
        the conventional a-contrario level, not tuned (BENCHMARKS.md, session 23). ``None``: off.
    wide_weak_delta_e : float or None
        Hysteresis along a wide vein: a band the hysteresis drops whose centreline is 1 mm
        wide or more (dropped by ``faint_delta_e``'s rule: on its own, a wide faint band is
        shading more often than a vein) is kept when it continues a kept vein 1 mm or wider,
        end to end along that vein's axis and at its scale (median diameters within a factor
        2; :func:`veinscope.measure._continue_wide_veins`), and its colour differs from the
        skin beside it by at least this CIEDE2000, as any chain's must by ``min_delta_e``.
        A wide vein's band breaks where its contrast dips under the low level for a stretch;
        the stretch beyond is its own, weaker band. 1.0, ``min_delta_e``'s level, not tuned
        (BENCHMARKS.md, session 18). ``None``: such bands are dropped.
    colour_split_z : float or None
        Red vs blue judged piece by piece, not only per chain: a chain is 8-connected, so a red
        vessel running into a blue one, or a red spider's arm crossing a vein, is one chain.
        A stretch of a chain (the two sides of a change point along a branch, or a branch
        against the rest of its chain) at least 3 diameters long on each side takes its own
        colour when that differs, the mean colour signals differ by at least this many
        standard errors, and the stretch's own mean is this many standard errors from the
        red/blue boundary (per-point noise, one sample per diameter but no closer than 8 px;
        :func:`veinscope.measure._colour_by_branch`). 3.0 (BENCHMARKS.md, session 20, helper
        "split"). ``None``: one colour per chain.
    size_class_z : float or None
        Size classes (under 1 mm, 1-3 mm, over 3 mm) judged piece by piece with their error
        bars: a piece whose mean measured diameter is under this many standard errors inside
        its class takes the class of the longest decided piece it touches
        (:func:`veinscope.measure._size_class_margin`). 2.0, two standard errors, chosen
        before measuring (BENCHMARKS.md, session 25). ``None``: each point's class from its
        own smoothed diameter.
    end_faces : bool
        Carry each centreline on to its vessel's end face before it is followed further
        (:func:`veinscope.extend.reach_end_faces`): the line filter's answer at a vessel's scale
        falls over about a width before a blunt end, so the centreline stopped up to a width
        or so short of it and the ridges forking towards the end's corners came out as vessels
        of their own. The chain is walked straight on while the contrast across it stays at
        half its own (the half maximum, as the widths) and above the skin's noise, for at most
        two widths, stopping beside another vessel's centreline; chains shorter than the
        vessel is wide inside its last width are dropped (a medial axis's end branches). The
        points added paint the vessel and add its length with its chain's width; its colour,
        its overlap with longer chains and the lone-patch rule are judged without them. No
        parameter was tuned (half maximum, two widths, the pruning's one width, a quarter
        width's margin: round values with reasons; BENCHMARKS.md, session 20). ``False``: off.
    colour_runs_z : float or None
        Red vs blue judged run by run as well, where vessels of different colour cross or touch
        inside one chain (a blue vessel through a red spider): the chain's skeleton there does
        not follow the vessels, and a branch between junctions can run along a red arm and on
        along the blue vessel. A chain's detected points are cut into runs where their own
        colour signal changes sign, and a run at least 3 sample lengths long (one per diameter,
        no closer than 8 px) whose mean colour signal is at least this many standard errors
        from the red/blue boundary takes its own colour (:func:`veinscope.measure._colour_runs`).
        3.0 is ``colour_split_z``'s level, set before measuring (BENCHMARKS.md, session 25,
        helper "cross"); on by default since: class right 0.951 -> 0.952 (set A), 0.958 ->
        0.962 (set B), detection unchanged. ``None``: off.
    wide_profile_mm : float or None
        Points whose half-maximum width (measured first as for every point) is at least this
        wide (mm) and whose profile stands under 20 times its noise above the skin have their
        half-maximum width measured again on the mean of more parallel profiles spread further
        along the vessel: as far as takes the noise down to that, at most +-2 first widths
        (the bar fit's), no further than half the point's chain length nor than the detected
        centreline runs on along its tangent (:func:`veinscope.diameter.half_max_widths`'
        ``wide_from_px``, ``wide_snr``, ``along_max_px``). A faint wide vein's half-maximum
        crossings lie on shallow flanks, so the noise left in a short average moves them by a
        large share of the width, and faint reticular veins 1.1-1.5 mm wide read under 1 mm in
        stretches (blue telangiectasia). Reticular veins run in long smooth courses, so a few
        of their widths along them are nearly straight. Generated set A: class right 0.952 ->
        0.957, diameter error 0.051 -> 0.050 mm, reticular length / area -11.8 / -9.8 ->
        -10.8 / -8.7 %; held-out set B: 0.962 -> 0.962, reticular -18.9 / -19.4 -> -17.6 /
        -18.2 %. 0.6 mm was set before measuring. ``None``: every profile over +-0.4 widths
        (BENCHMARKS.md, session 26, helper "faint").
    deep_veins : bool
        Also look for wide veins on the red channel alone, at the coarse Hessian scales (1 mm to
        half ``max_diameter_mm``, three scales), and add the centreline pieces found there at
        least 3 mm long and about a width away from every ordinary centreline
        (:func:`veinscope.segment.add_deep_veins`). A vein a millimetre or more under the skin
        darkens mostly the red channel (green and blue light come back from the upper dermis),
        which the detection signal, matched to haemoglobin's colour and the skin's fine texture,
        weighs little; on dark skin, whose melanin takes green and blue, the red channel is
        where such a vein still shows. The added chains' half-maximum widths are read on the
        red channel too (their first width from their scale); otherwise they are judged like any
        other chain (colour, melanin, the ΔE00 gate, overlap). Generated set A: clDice 0.790 ->
        0.801, recall 0.808 -> 0.817, reticular length / area -12.3 / -8.7 -> -11.7 / -5.5 %,
        over 3 mm unchanged (-17.6 / -31.3 %); held-out set B: clDice and recall medians
        unchanged, precision 0.868 -> 0.872; analyze +0.45 CPU-s at 12 MP. The scales, the 3
        mm and the red channel were set before measuring; the course rule (three widths) after
        real legs at an assumed 6 px/mm gained false marks with two (BENCHMARKS.md, session 28,
        helper "wide28"). True (default) since session 28 (helper "deep28b"): with the search
        shrunk (``deep_veins_step=None``) and the colour and straightness gate below, set A
        clDice 0.790 -> 0.799, recall 0.808 -> 0.817, precision 0.904 -> 0.904 (no photo down),
        held-out set B 0.766 -> 0.771, precision 0.868 -> 0.878; issue 6's development, held-out
        and fresh series unchanged (the final set: two pairs' improvement moved);
        analyze +0.19 CPU-s at 12 MP. False: off, the engine of before.
    deep_veins_step : int or None
        With ``deep_veins``: the red channel's ridges are searched on the photo shrunk this many
        times (pixel areas averaged; the pieces found mapped back, their widths read at full
        resolution); None: as far as the finest deep scale allows (about 3 px there: 4 at 12
        px/mm, 2 at 6 px/mm; the default). 1: full resolution. Shrunk, the pass costs about half
        (12 MP: +0.17-0.24 against +0.45-0.54 CPU-s) but finds more, true and false: set A clDice 0.801 ->
        0.805, held-out set B 0.766 -> 0.771, and false marks come back (set B's 605 an
        over-3-mm blob, real legs a wide bar or blob on plain skin on 1 photo at the nominal
        scale, 4 at 6 px/mm) (BENCHMARKS.md, session 28, helper "deep28"), which the gate below
        removes but for two marks on one real leg, both on soft blue-green bands.
    deep_veins_delta_e, deep_veins_red_share : float
        With ``deep_veins``: keep an added piece only if its colour differs from the skin beside
        it (two and three of its scales out on both sides, read on the photo shrunk as the
        search; medians over the piece) by at least ``deep_veins_delta_e`` in ΔE00 and if the
        red channel's optical-density contrast there is at least ``deep_veins_red_share`` times
        the mean of green's and blue's: a deep vein darkens mostly the red channel, shading
        darkens all three alike. Defaults 2.2 and 1.3 (0: no such gate): 1.3 between shading's
        0.9-1.1 and set A's true pieces' 1.49 and more; 2.2 on set A's photo 423, whose pieces on
        veins the truth counts invisible read 1.3-2.1 (2.0, the truth's visibility threshold,
        left one there and one on set B's 605) (BENCHMARKS.md, session 28, helper "deep28b").
    deep_veins_straight : float
        With ``deep_veins``: keep an added piece only if its extent end to end (along its
        principal axis) is at least this share of its length in centreline points (the course
        rule counts its points, and a piece curling round a blotch has many). Default 0.7 (a
        real leg's hook-shaped false mark 0.60, set A's pieces 0.80 and more); 0: no such rule.
    deep_veins_join_widths : float
        With ``deep_veins``: above 0 (default 3.0, the facing links' reach, set before
        measuring) a piece short of the course rule or the colour gate alone is also kept when
        its course passes them: the pieces of one ridge of the search (cut where it passes an ordinary
        centreline) and the pieces whose ends face each other across at most this many of their
        widths, its length and colour read over the pieces at least 3 mm and 1.5 of their widths
        long, straight and not along the photo's frame (the gaps and shorter fragments joining
        them not counted), each of which must itself pass the colour gate with its margins
        halved (a grey piece is shading whatever course it lies on). A soft vein near the
        visibility threshold comes out of the search in pieces of one to three widths, each
        short of the course rule alone. Generated set A: clDice 0.799 -> 0.801, recall 0.817
        -> 0.820, precision 0.904 -> 0.906, class right 0.957 -> 0.959, reticular length -11.7
        -> -10.0 % (no photo down); held-out set B recall 0.784 -> 0.784 (3 photos up, none
        down), reticular length -16.8 -> -14.9 %; the real legs at their nominal scale
        unchanged. 0: every piece judged alone, the engine of before (BENCHMARKS.md, session
        29, helper "ret29").
    deep_veins_over_weak : bool
        With ``deep_veins``: True (the default) lets the deep search add pieces along the
        ordinary detection's weak chains (bands that did not reach the high level, kept only if
        their colour passes the ΔE00 gate), which otherwise hold it off as every ordinary chain
        does: a soft vein's ordinary detection is often such a chain, dropped by the gate, and
        the deep piece along it was lost with it. Generated set A (with the joined courses):
        clDice 0.801 -> 0.829, recall 0.820 -> 0.838, reticular length / area -10.0 / -5.5 ->
        -6.8 / -2.0 % (no photo down); held-out set B clDice 0.771 -> 0.779, recall
        0.784 -> 0.817, reticular length / area -14.9 / -12.3 -> -8.2 / -5.2 % (none down); the
        real legs at their nominal scale unchanged. False: the engine of before
        (BENCHMARKS.md, session 29, helper "ret29").
    smooth_widths : float or None
        A run of one size class shorter than its own smoothed diameter (and wider than the 1 mm
        smoothing window) takes the median width of its chain within this many times that
        diameter (:func:`veinscope.measure.measure_vessels`): a vessel's width does not change
        over less than its width, so the round "over 3 mm" discs a chain's last few points drew
        on a shading or a crease (veins_02, veins_04) take the chain's width. ``None``: the 1 mm
        window only (BENCHMARKS.md, session 33, helper "real33").
    valley_sides : bool
        Keep a chain only where the skin on both its sides is lighter than it (a valley of
        lightness), not on one side only: a shadow's edge (a finger's shadow on veins_03), the
        leg's outline, a nail's rim (veins_05) are one-sided steps the line filter answers
        beside (:func:`veinscope.measure.measure_vessels`). Added off in session 33 (helper
        "real33"), on since session 33 (helper "val33": set A's precision up, set B, issue 6's
        series and the real self-comparisons unchanged or better; BENCHMARKS.md).
    chain_guess_widths : float or None
        Where the bar fit's first width, which sets the window the half-maximum width is read in,
        failed (NaN) or is under half the median first width of its chain, and the point's
        detection scale is the wide part's (twice the scale at least half that median), take that
        median as its first width (:func:`veinscope.pipeline._chain_guess`), in chains whose
        median is over the window's fixed 12 px reach and that are at least this many of their
        widths long (in points; 0: any). The bar fit fails on a wide, soft vein at a fifth of its
        points and reads another fifth under half its width; a window set by such a width takes the
        vein's shoulders for the skin, and stretches of a vein over 3 mm read under 3 mm (generated
        set A: 0.57 of the length read over 3 mm where the first width was under half the true
        width, 0.92 where it was not). At 3 (the deep pass's course rule): generated set A
        over-3-mm length / area -17.6 / -31.3 -> -11.9 / -28.4 %, clDice, recall, precision,
        diameter unchanged, class right 0.959 -> 0.960; held-out set B over-3-mm area -35.1 ->
        -12.2 % (length -31.6 % both), clDice, recall, precision unchanged, class right 0.962 ->
        0.963, but the diameter error 0.0493 -> 0.0496 mm; issue 6's development series:
        improvement median error 3.5 -> 3.9 points; the real legs: veins_02 at 6 px/mm +1 746 px
        over 3 mm on its marks at the knee. At 0: also a soft vein whose crest comes in
        pieces of one or two widths, but set B's precision 0.882 -> 0.881 and diameter error 0.049
        -> 0.052 mm, and a cluster of fine vessels on veins_01 painted as an over-3-mm disc. None
        (default): off (BENCHMARKS.md session 34, helper "wide34").
    wide_first_widths : bool
        The bar fit's initial estimate, which sets the fit's window and so the first width, is
        read on the whole profile instead of its inner +-12 px where it comes out under half of
        twice the point's detection scale (a bar of width w answers most at sigma w / 2;
        :func:`veinscope.diameter.profile_diameters`' ``width_hint_px``): inside a wide, soft
        vein the inner part lies on the vein's top and a crest of skin texture there passed
        for the vessel. False (default): off (BENCHMARKS.md session 35, helper "wide35").

    Returns
    -------
    Analysis
    """
    t0 = time.perf_counter()
    photo = load_photo(photo)
    # --- intake (issue 5): scale from the card, colour normalisation, card region, quality warnings ---
    from veinscope.intake import prepare

    intake = prepare(photo, px_per_mm=px_per_mm)
    px_per_mm = intake.px_per_mm
    rgb = intake.rgb
    warnings: list[str] = list(photo.warnings) + list(intake.pipeline_warnings())
    too_dark = any(i.code == "underexposed" for i in intake.issues)
    # --- end intake ---
    if px_per_mm is not None:
        if not (isinstance(px_per_mm, (int, float)) and math.isfinite(px_per_mm) and px_per_mm > 0):
            raise ValueError(f"px_per_mm must be a positive number, got {px_per_mm!r}")
        ppm = float(px_per_mm)
        if ppm < MIN_FINE_PX_PER_MM:
            warnings.append(
                f"The scale is {ppm:.1f} px/mm, below {MIN_FINE_PX_PER_MM:.0f} px/mm: vessels finer than 0.2 mm "
                "cannot be measured. Take the photo closer (20-30 cm) or at a higher resolution."
            )
    else:
        ppm = NOMINAL_PX_PER_MM
        warnings.append(
            "No scale was given: lengths, areas and diameters are in pixels only, and the size classes assume "
            f"about {NOMINAL_PX_PER_MM:.0f} px/mm. Put the calibration card on the skin or enter the scale."
        )
    if not (0 < min_diameter_mm < max_diameter_mm):
        raise ValueError(
            f"min_diameter_mm and max_diameter_mm must satisfy 0 < min < max, got {min_diameter_mm!r}, {max_diameter_mm!r}"
        )
    if join_facing_widths is not None and not (
        isinstance(join_facing_widths, (int, float)) and not isinstance(join_facing_widths, bool)
        and math.isfinite(join_facing_widths) and join_facing_widths > 0
    ):
        raise ValueError(f"join_facing_widths must be None or a positive number of vessel widths, got {join_facing_widths!r}")
    if branch_melanin_widths is not None and not (
        isinstance(branch_melanin_widths, (int, float)) and not isinstance(branch_melanin_widths, bool)
        and math.isfinite(branch_melanin_widths) and branch_melanin_widths > 0
    ):
        raise ValueError(f"branch_melanin_widths must be None or a positive number of sample lengths, got {branch_melanin_widths!r}")
    if level_rates is not None and not (
        isinstance(level_rates, (tuple, list)) and len(level_rates) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1 for v in level_rates)
    ):  # fmt: skip
        raise ValueError(f"level_rates must be None or (low, high) shares of the skin between 0 and 1, got {level_rates!r}")
    if level_rates_guard is not None and (
        not isinstance(level_rates_guard, str)
        or not set(level_rates_guard.split("+")) <= {"weak", "drop", "long", "near", "grow", "follow", "colour", "nearest",
                                                     "keep"}
        or {"weak", "drop"} <= set(level_rates_guard.split("+")) or not {"weak", "drop"} & set(level_rates_guard.split("+"))
        or ("follow" in level_rates_guard.split("+") and "near" not in level_rates_guard.split("+"))
        or ("nearest" in level_rates_guard.split("+") and "colour" not in level_rates_guard.split("+"))
    ):  # fmt: skip
        raise ValueError(
            "level_rates_guard must be None or words from weak, drop, long, near, grow, follow, colour, nearest, keep joined "
            f"by '+' (one of weak and drop; follow with near; nearest with colour), got {level_rates_guard!r}"
        )
    for name, v in (("level_rates_gap_mm", level_rates_gap_mm), ("level_rates_long_mm", level_rates_long_mm),
                    ("level_rates_colour_z", level_rates_colour_z)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
            unit = "standard errors" if name == "level_rates_colour_z" else "millimetres"
            raise ValueError(f"{name} must be a positive number of {unit}, got {v!r}")
    if short_chain_nfa is not None and not (
        isinstance(short_chain_nfa, (int, float)) and not isinstance(short_chain_nfa, bool)
        and math.isfinite(short_chain_nfa) and short_chain_nfa > 0
    ):
        raise ValueError(f"short_chain_nfa must be None or a positive expected number of false chains, got {short_chain_nfa!r}")
    if not isinstance(length_once, (bool, np.bool_)):
        raise ValueError(f"length_once must be True or False, got {length_once!r}")
    if faint_length_mm is not None and not (
        isinstance(faint_length_mm, (int, float)) and math.isfinite(faint_length_mm) and faint_length_mm > 0
    ):
        raise ValueError(f"faint_length_mm must be None or a positive number of millimetres, got {faint_length_mm!r}")
    if min_delta_e is not None and not (
        isinstance(min_delta_e, (int, float)) and math.isfinite(min_delta_e) and min_delta_e >= 0
    ):
        raise ValueError(f"min_delta_e must be None or a CIEDE2000 difference >= 0, got {min_delta_e!r}")
    if faint_delta_e is not None and not (
        isinstance(faint_delta_e, (int, float)) and math.isfinite(faint_delta_e) and faint_delta_e >= 0
    ):
        raise ValueError(f"faint_delta_e must be None or a CIEDE2000 difference >= 0, got {faint_delta_e!r}")
    if max_red_diameter_mm is not None and not (
        isinstance(max_red_diameter_mm, (int, float)) and math.isfinite(max_red_diameter_mm) and max_red_diameter_mm > 0
    ):
        raise ValueError(f"max_red_diameter_mm must be None or a positive number of millimetres, got {max_red_diameter_mm!r}")
    if extend_ends_mm is not None and not (
        isinstance(extend_ends_mm, (int, float)) and math.isfinite(extend_ends_mm) and extend_ends_mm > 0
    ):
        raise ValueError(f"extend_ends_mm must be None or a positive number of millimetres, got {extend_ends_mm!r}")
    if colour_runs_z is not None and not (
        isinstance(colour_runs_z, (int, float)) and not isinstance(colour_runs_z, bool) and math.isfinite(colour_runs_z)
        and colour_runs_z > 0
    ):
        raise ValueError(f"colour_runs_z must be None or a positive number of standard errors, got {colour_runs_z!r}")
    if size_class_z is not None and not (
        isinstance(size_class_z, (int, float)) and not isinstance(size_class_z, bool) and math.isfinite(size_class_z)
        and size_class_z > 0
    ):
        raise ValueError(f"size_class_z must be None or a positive number of standard errors, got {size_class_z!r}")
    if tail_probe_nfa is not None and not (
        isinstance(tail_probe_nfa, (int, float)) and math.isfinite(tail_probe_nfa) and tail_probe_nfa > 0
    ):
        raise ValueError(f"tail_probe_nfa must be None or a positive expected number of false probes, got {tail_probe_nfa!r}")
    if smooth_widths is not None and not (
        isinstance(smooth_widths, (int, float)) and not isinstance(smooth_widths, bool)
        and math.isfinite(smooth_widths) and smooth_widths > 0
    ):
        raise ValueError(f"smooth_widths must be None or a positive number of diameters, got {smooth_widths!r}")
    if chain_guess_widths is not None and (
        isinstance(chain_guess_widths, (bool, np.bool_)) or not isinstance(chain_guess_widths, (int, float))
        or not math.isfinite(chain_guess_widths) or chain_guess_widths < 0
    ):
        raise ValueError(f"chain_guess_widths must be None or a number of widths >= 0, got {chain_guess_widths!r}")
    if wide_weak_delta_e is not None and not (
        isinstance(wide_weak_delta_e, (int, float)) and math.isfinite(wide_weak_delta_e) and wide_weak_delta_e >= 0
    ):
        raise ValueError(f"wide_weak_delta_e must be None or a CIEDE2000 difference >= 0, got {wide_weak_delta_e!r}")
    if wide_profile_mm is not None and not (
        isinstance(wide_profile_mm, (int, float)) and not isinstance(wide_profile_mm, bool)
        and math.isfinite(wide_profile_mm) and wide_profile_mm > 0
    ):
        raise ValueError(f"wide_profile_mm must be None or a positive number of millimetres, got {wide_profile_mm!r}")
    if not isinstance(deep_veins, (bool, np.bool_)):
        raise ValueError(f"deep_veins must be True or False, got {deep_veins!r}")
    if not isinstance(deep_veins_over_weak, (bool, np.bool_)):
        raise ValueError(f"deep_veins_over_weak must be True or False, got {deep_veins_over_weak!r}")
    if deep_veins_step is not None and (
        isinstance(deep_veins_step, (bool, np.bool_))
        or not isinstance(deep_veins_step, (int, float, np.integer, np.floating))
        or not float(deep_veins_step).is_integer()
        or deep_veins_step < 1
        or deep_veins_step > 16
    ):
        raise ValueError(f"deep_veins_step must be None or a whole number from 1 to 16, got {deep_veins_step!r}")
    for name, v in (("deep_veins_delta_e", deep_veins_delta_e), ("deep_veins_red_share", deep_veins_red_share),
                    ("deep_veins_straight", deep_veins_straight), ("deep_veins_join_widths", deep_veins_join_widths)):
        if (isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating))
                or not math.isfinite(v) or not v >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    if n_scales < 2:
        raise ValueError(f"n_scales must be >= 2, got {n_scales!r}")
    sigma_lo = max(1.0, 0.5 * min_diameter_mm * ppm)
    sigma_hi = max(2.0 * sigma_lo, 0.5 * max_diameter_mm * ppm)
    sigmas = tuple(float(s) for s in np.geomspace(sigma_lo, sigma_hi, n_scales))
    background_px = max(40.0, 4.0 * max_diameter_mm * ppm)
    params: dict[str, Any] = {
        "px_per_mm": px_per_mm,
        "scale_source": intake.scale_source,  # intake (issue 5)
        "intake": intake.to_dict(),  # intake (issue 5)
        "px_per_mm_for_classes": ppm,
        "min_diameter_mm": min_diameter_mm,
        "max_diameter_mm": max_diameter_mm,
        "sigmas_px": [round(s, 3) for s in sigmas],
        "background_px": background_px,
        "high_noise": high_noise,
        "low_noise": low_noise,
        "min_length_mm": min_length_mm,
        "min_piece_mm": min_piece_mm,
        "max_gap_px": max_gap_px,
        "faint_length_mm": faint_length_mm,
        "snap_crest": bool(snap_crest),
        "max_covered": max_covered,
        "matched_signal": bool(matched_signal),
        "max_melanin_frac": max_melanin_frac,
        "max_contrast_od": max_contrast_od,
        "line_gamma": line_gamma,
        "psf_sigma_px": psf_sigma_px,
        "paint_links": bool(paint_links),
        "join_ends": bool(join_ends),
        "join_facing_widths": join_facing_widths,
        "length_once": bool(length_once),
        "branch_melanin_widths": branch_melanin_widths,
        "short_chain_nfa": short_chain_nfa,
        "level_rates": None if level_rates is None else [float(v) for v in level_rates],
        "level_rates_guard": level_rates_guard,
        "level_rates_gap_mm": float(level_rates_gap_mm),
        "level_rates_long_mm": float(level_rates_long_mm),
        "level_rates_colour_z": float(level_rates_colour_z),
        "min_delta_e": min_delta_e,
        "max_red_diameter_mm": max_red_diameter_mm,
        "faint_delta_e": faint_delta_e,
        "extend_ends_mm": extend_ends_mm,
        "tail_probe_nfa": tail_probe_nfa,
        "smooth_widths": smooth_widths,
        "chain_guess_widths": None if chain_guess_widths is None else float(chain_guess_widths),
        "wide_first_widths": bool(wide_first_widths),
        "valley_sides": bool(valley_sides),
        "wide_weak_delta_e": wide_weak_delta_e,
        "colour_split_z": colour_split_z,
        "size_class_z": size_class_z,
        "end_faces": bool(end_faces),
        "colour_runs_z": colour_runs_z,
        "wide_profile_mm": wide_profile_mm,
        "deep_veins": bool(deep_veins),
        "deep_veins_step": None if deep_veins_step is None else int(deep_veins_step),
        "deep_veins_delta_e": float(deep_veins_delta_e),
        "deep_veins_red_share": float(deep_veins_red_share),
        "deep_veins_straight": float(deep_veins_straight),
        "deep_veins_join_widths": float(deep_veins_join_widths),
        "deep_veins_over_weak": bool(deep_veins_over_weak),
    }

    # the intake's skin mask was found on the same pixels unless the colours were corrected
    skin = intake.skin if not intake.colour_applied else skin_mask(rgb, exclude=intake.card_mask)
    # wide dark veins fall outside the skin's colour model: take them back in
    skin = fill_vessel_gaps(skin, max_diameter_mm * ppm, exclude=intake.card_mask)
    # the intake's own skin and card masks (24 MB at 12 MP) are not read again: release them
    # before the ridge filter's peak (issue 3's memory limit; its corrected rgb lives on as rgb)
    del intake
    skin_frac = float(np.count_nonzero(skin) / skin.size)  # = skin.mean(), without a float pass over 12 MP
    if skin_frac < 0.02 and not too_dark:  # too dark: said by the intake
        warnings.append(
            "Little or no skin was found in this photo, so nothing was measured. Photograph the treated "
            "area so that skin fills most of the picture."
        )
    optics = skin_optics(rgb, skin=skin, background_px=background_px)
    if matched_signal:
        from veinscope.chromophores import matched_vessel_weights

        weights = matched_vessel_weights(optics, skin)
        signal = optics.project(weights)
        params["signal_weights"] = [round(float(v), 4) for v in weights]
    else:
        from veinscope.chromophores import VESSEL_DIRECTION

        weights = VESSEL_DIRECTION
        signal = optics.vessel_signal()
    signal[~skin] = 0.0

    from veinscope.diameter import half_max_widths, profile_diameters
    from veinscope.vesselness import ridge_response

    guard_words = set((level_rates_guard or "").split("+"))
    keep_fixed = level_rates is not None and "keep" in guard_words
    det_options = dict(
        high_noise=high_noise,
        low_noise=low_noise,
        min_length_px=max(4.0, min_length_mm * ppm),
        min_piece_px=int(round(max(3.0, min_piece_mm * ppm))),
        max_gap_px=int(max_gap_px),
        long_length_px=None if faint_length_mm is None else faint_length_mm * ppm,
        snap=bool(snap_crest),
        noise_cell_px=max(16, int(round(background_px / 4))),
        weak_bands=faint_delta_e is not None,
    )
    rate_options = dict(
        level_rates=None if level_rates is None else tuple(float(v) for v in level_rates),
        rates_guard=None if level_rates_guard is None else "+".join(w for w in level_rates_guard.split("+") if w != "keep"),
        rates_gap_px=float(level_rates_gap_mm) * ppm,
        rates_long_px=float(level_rates_long_mm) * ppm,
    )
    # with "keep", the lowered levels' chains and, where a level was lowered, the fixed levels'
    # chains (det.fixed), both from one pass (the fixed ones from the same noise map, bands and
    # candidates)
    det = detect_vessels(
        # passed as a temporary so that detect_vessels can release its maps early (memory)
        ridge_response(signal, sigmas_px=sigmas, black_ridges=False, gamma=line_gamma, weighted=True),
        skin, signal, consume=True, fixed_too=keep_fixed, **det_options, **rate_options,
    )  # fmt: skip
    det_fixed = det.fixed
    if det_fixed is not None:
        det = replace(det, fixed=None)
        if det.thresholds == (float(low_noise) * det.noise, float(high_noise) * det.noise):
            det_fixed = None  # none lowered (a blank photo's zero noise)
    params["noise"] = round(det.noise, 6)
    # level_rates: the fixed high level at the median unit, when the rates lowered it (the deep pass's hold)
    fixed_high = float(high_noise) * det.noise if det.thresholds[1] < float(high_noise) * det.noise * (1 - 1e-6) else None
    params["thresholds"] = [round(t, 6) for t in det.thresholds]

    def carried(det):
        """The chains carried on to their end faces and followed on past their ends."""
        if end_faces and det.points_yx.shape[0]:
            # carry each crest on to its vessel's end face, where the line filter's answer fell
            from veinscope.extend import reach_end_faces

            det = reach_end_faces(det, signal, skin)
        if extend_ends_mm is not None and det.points_yx.shape[0]:
            # follow each centreline on past its end where its vessel continues faintly (issue 4)
            from veinscope.extend import extend_ends

            win = max(5, round(ppm))  # 1 mm
            follow = dict(max_length_px=extend_ends_mm * ppm, window_px=win, long_window_px=3 * win,
                          max_through_px=2 * win, min_chain_px=2 * win, rgb=rgb, min_delta_e=min_delta_e,
                          probe_px=0 if tail_probe_nfa is None else 2 * win, probe_nfa=tail_probe_nfa or 1.0)  # fmt: skip
            det = extend_ends(det, signal, skin, **follow)
        return det

    det = carried(det)
    if det_fixed is not None:
        # the fixed levels' centreline kept where they found one; the lowered levels only add
        # what lies beyond it (their redrawn crest of the same vessel reads it wider)
        from veinscope.segment import keep_fixed_centreline

        det = keep_fixed_centreline(carried(det_fixed), det, min_piece_px=det_options["min_piece_px"],
                                    follow="follow" in guard_words)
        del det_fixed

    deep_lo_px, deep_hi_px = 1.0 * ppm, 0.5 * max_diameter_mm * ppm
    n_ordinary = det.n_segments  # chains numbered from here on are the red channel's
    if deep_veins and deep_hi_px > deep_lo_px and skin_frac >= 0.02:
        # wide veins deep under the skin, seen on the red channel at the coarse scales (issue 4)
        from veinscope.segment import add_deep_veins

        red = optics.project(np.array([1.0, 0.0, 0.0], np.float32))
        red[~skin] = 0.0
        det = add_deep_veins(det, red, skin,
                             sigmas_px=np.geomspace(deep_lo_px, deep_hi_px, 3), min_piece_px=3.0 * ppm,
                             min_length_px=5.0 * ppm, noise_cell_px=max(16, int(round(5.0 * ppm))),
                             high_noise=high_noise, low_noise=low_noise, line_gamma=line_gamma,
                             step=max(1, int(deep_lo_px // 3.0)) if deep_veins_step is None else int(deep_veins_step),
                             rgb=rgb if deep_veins_delta_e > 0 or deep_veins_red_share > 0 else None,
                             min_delta_e=float(deep_veins_delta_e), min_red_share=float(deep_veins_red_share),
                             min_straight=float(deep_veins_straight),
                             join_widths=float(deep_veins_join_widths),
                             over_weak=bool(deep_veins_over_weak),
                             hold_min_strength=fixed_high)  # fmt: skip
        del red
    widths = shift = None
    if det.points_yx.shape[0]:
        est = profile_diameters(
            signal,
            det.points_yx.astype(np.float64),
            det.normals_yx,
            max_width_px=1.5 * max_diameter_mm * ppm,
            psf_sigma_px=psf_sigma_px,
            segment=det.segment.astype(np.int64),  # pool thin vessels' profiles along their own chain only
            width_hint_px=2.0 * det.scale_px if wide_first_widths else None,
        )
        guess = np.where(est.ok & (est.width_px >= 0.5), est.width_px, np.nan)
        if chain_guess_widths is not None:
            # where the bar fit failed or fell far short on a wide vessel, the half-maximum
            # window is set by its chain's first widths instead
            guess = _chain_guess(guess, det.segment, det.scale_px, min_course=float(chain_guess_widths))
        # the visible width is the full width at half maximum of the vessel's own profile: the
        # bar fit sets the window, the half-maximum crossings give the width (camera blur out)
        psf = est.psf_sigma_px if np.isfinite(est.psf_sigma_px) else 0.0
        params[PSF_USED_KEY] = round(float(psf), 4)  # the given PSF or the one estimated here
        pts = det.points_yx.astype(np.float64)
        # ... on the photo's own OD: the half-maximum kernel takes the skin's level beside each
        # vessel itself, and the coarse background map, which wide vessels and their neighbours
        # raise in a hump about a cell wide, would bend their profiles and narrow them
        _add_background(signal, optics, weights)
        along = None
        if wide_profile_mm is not None:
            # the longer average of a faint wide profile stays on its own chain (at most half
            # the chain's point count each way: a loose limit, as a chain here is a whole
            # joined component) and, point by point, on the centreline ahead: no further along
            # the tangent than the detected centreline runs on (centreline_reach; a chain's
            # own points would not do: a faint vessel's centreline comes in pieces)
            n_pts = np.bincount(det.segment, minlength=det.n_segments)
            along = 0.5 * n_pts[det.segment].astype(np.float64)
        fwhm, shift = half_max_widths(signal, pts, det.normals_yx, guess, psf_sigma_px=psf,
                                      max_width_px=1.5 * max_diameter_mm * ppm,
                                      wide_from_px=np.inf if wide_profile_mm is None else wide_profile_mm * ppm,
                                      along_max_px=along, centreline_reach=along is not None)  # fmt: skip
        deep = det.segment >= n_ordinary
        if deep.any():
            # a deep vein found on the red channel is measured there too, where its profile
            # stands out of the skin (on the detection signal it is a small part of its colour);
            # the first width from its scale (a bar of width w answers most at sigma = w / 2)
            red = optics.project(np.array([1.0, 0.0, 0.0], np.float32))
            red[~skin] = 0.0
            _add_background(red, optics, (1.0, 0.0, 0.0))
            guess[deep] = 2.0 * det.scale_px[deep]
            f_deep, s_deep = half_max_widths(red, pts[deep], det.normals_yx[deep], guess[deep], psf_sigma_px=psf,
                                             max_width_px=1.5 * max_diameter_mm * ppm,
                                             wide_from_px=np.inf if wide_profile_mm is None else wide_profile_mm * ppm,
                                             along_max_px=None if along is None else along[deep],
                                             centreline_reach=along is not None)  # fmt: skip
            del red
            fwhm[deep], shift[deep] = f_deep, s_deep
        # widths that collapsed below half a pixel are unresolved, not measured: left to the
        # chain's median (measure_vessels)
        widths = np.where(np.isfinite(fwhm), fwhm, guess)
        widths = np.where(widths >= 0.5, widths, np.nan).astype(np.float32)
    # the facing ends' links are judged on the map the widths read (the detection signal with the
    # skin's background added back); kept only when asked for (+48 MB at 12 MP, under the peak
    # the detection stage sets, session 27's review)
    link_signal = signal if join_ends and join_facing_widths is not None else None
    del signal
    vessels = measure_vessels(
        det,
        widths,
        optics,
        skin,
        ppm=ppm,
        calibrated=px_per_mm is not None,
        max_melanin_frac=max_melanin_frac,
        max_contrast_od=max_contrast_od,
        max_covered=max_covered,
        smooth_widths=smooth_widths,
        valley_sides=bool(valley_sides),
        centre_shift_px=shift if widths is not None and paint_at_centre else None,
        paint_links_between=bool(paint_links),
        join_ends=bool(join_ends),
        facing_widths=join_facing_widths,
        link_signal=link_signal,
        length_once=bool(length_once),
        rgb=rgb,
        min_delta_e=min_delta_e,
        restore_chroma=True,
        max_red_width_px=None if max_red_diameter_mm is None else max_red_diameter_mm * ppm,
        weak_min_delta_e=faint_delta_e,
        wide_weak_delta_e=wide_weak_delta_e,
        colour_split_z=colour_split_z,
        size_class_z=size_class_z,
        colour_runs_z=colour_runs_z,
        branch_melanin_widths=branch_melanin_widths,
        short_chain_nfa=short_chain_nfa,
        short_chain_px=5.0 * ppm,
        undecided_z=float(level_rates_colour_z) if "colour" in (level_rates_guard or "").split("+") else None,
        undecided_gap_px=float(level_rates_gap_mm) * ppm if "nearest" in (level_rates_guard or "").split("+") else None,
    )
    classes = class_figures(vessels, skin, px_per_mm)
    params["seconds"] = round(time.perf_counter() - t0, 3)
    log.info("analysed %dx%d photo in %.2f s: %d vessel segments", rgb.shape[1], rgb.shape[0], params["seconds"], len(vessels.table))
    return Analysis(
        px_per_mm=None if px_per_mm is None else float(px_per_mm),
        classes=classes,
        labels=vessels.labels,
        diameter_px=vessels.diameter_px,
        skin=skin,
        vessels=vessels.table,
        warnings=tuple(warnings),
        params=params,
        version=__version__,
        name=photo.name,
    )


def warmup(*, full_size: bool = False, retain_memory: bool = True) -> float:
    """Compile (or load from the Numba cache) every kernel on tiny inputs; returns seconds.

    ``full_size=True`` (long-running processes: the app, batch workers) also analyses a plain
    12 MP frame once (about 2 s), which takes the first real 12 MP photo from about 2.7 s to
    about 1.2 s on a quiet 2-core machine (fresh memory and thread start-up are paid here).
    ``retain_memory`` (default) lets this process reuse the memory of one analysis for the
    next instead of faulting in fresh pages each time (:func:`veinscope._memory.retain_freed_memory`;
    glibc only): less CPU per photo, but the memory stays with the process until it exits.
    """
    from veinscope._numba_start import start_numba
    from veinscope.diameter import warmup as _diameter_warmup
    from veinscope.measure import warmup as _measure_warmup
    from veinscope.vesselness import warmup as _vesselness_warmup

    t0 = time.perf_counter()
    if retain_memory:
        from veinscope._memory import retain_freed_memory

        retain_freed_memory()
    start_numba()
    # only the kernels analyze() uses: the ridge filter and float32 diameter fits
    _vesselness_warmup(ridge_only=True)
    _diameter_warmup(dtypes=(np.float32,))
    rng = np.random.default_rng(0)
    rgb = np.full((96, 96, 3), (200, 150, 130), np.uint8)
    rgb[40:44, :] = (170, 120, 130)
    rgb = np.clip(rgb.astype(int) + rng.integers(-3, 4, rgb.shape), 0, 255).astype(np.uint8)
    analyze(Photo(rgb=rgb), px_per_mm=10.0)
    _measure_warmup()  # the colour split's kernels the small photo leaves out
    from veinscope.extend import warmup as _extend_warmup

    _extend_warmup()  # the end-face pruning's kernel, which that photo does not reach
    from veinscope._kernels.masks import warmup as _compare_masks_warmup

    _compare_masks_warmup()  # compare's whole-photo mask passes (a comparison's first call)
    if full_size:
        big = np.full((3000, 4000, 3), (200, 150, 130), np.uint8)
        big[1500:1506, :] = (170, 120, 130)
        analyze(Photo(rgb=big), px_per_mm=10.0)
    return time.perf_counter() - t0
