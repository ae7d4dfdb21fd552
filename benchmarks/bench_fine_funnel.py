"""Where the fine red telangiectasia's visible length is lost, stage by stage (issue 4).

Run:  .venv/bin/python benchmarks/bench_fine_funnel.py [--n 24] [--seed0 400] [--size 1600x1200]
      [--cache DIR] [--set key=value ...] [--max-mm 0.2] [--json OUT] [--every-class] [--types 4 5 6]

Same photos as ``bench_synth_accuracy.py`` (photo i: seed seed0 + i, skin type 1 + i % 6, the
rotating scales), the engine given the true scale. The population: every visible point of a true
red telangiectasia centreline (``photo.centrelines``: ``visible``, ``diameter_mm``,
``length_mm``, ``delta_e``) with a visible diameter under ``--max-mm`` (0.2 mm; the red vessels
at or over it are counted too, as a reference), weighted by its ``length_mm``.

The engine's own detection is watched (``veinscope.pipeline.detect_vessels`` and
``measure_vessels`` wrapped; they return what they would) and its stages recomputed from the
same ridge response with the engine's kernels, so that each true point is put in the **first
stage, counted from the end, that still has it** (``R`` = 1.5 px: an engine point within R px of
the true point's pixel):

``painted red`` / ``painted other class`` (the label map at the pixel, the figure the red length
counts); ``near`` (an accepted centreline point within R, its disc off the pixel); ``dropped:
RULE`` (a centreline point within R after the chain's end faces and extension, not accepted:
the first of ``measure_vessels``' rules, switched on one at a time in the engine's order, that
takes every accepted point within R away: too dark, melanin (with the chroma restored), repeat
(``max_covered``), red and wide, lone patch, ``min_delta_e``, weak band's ``faint_delta_e``);
``pruned`` (a detected point within R that ``reach_end_faces`` dropped); ``off skin`` (the pixel
is off the detection's inner skin); ``piece < min_piece`` (a centreline candidate within R in a
band at least ``min_length`` long, no detected point: its piece was shorter than ``min_piece``
after bridging, or the crest snap moved it); ``band < min_length`` (a candidate whose band of
pixels above the low level is shorter than ``min_length``); ``profile test`` (a ridge maximum
above the low level within R that the symmetric-profile / flank test drops); ``not a crest`` (the
ridge strength passes the low level within 1 px, no ridge maximum within R: the non-maximum
suppression put the crest elsewhere); ``low x 0.6 - low`` and ``under low x 0.6`` (the strength's
maximum within 1 px against the local low level).

Separately, the ridge strength's maximum within 1 px of each point against the local hysteresis
levels (``>= high``, ``low - high``, ``< low``), and, for the points that reach a detected point,
whether it is in a strong or a weak band.

Tables by visible width, by contrast (the truth's ΔE00 at the point) and by scale (px/mm).

``--every-class`` (session 32): every class's visible points instead of the red ones, stage 0
meaning painted as any vessel class (the recall figure's hit), and the tables the recall figure's
population (visible width >= 0.2 mm) by skin type and by contrast, all types and types 4-6. The
``--json`` rows end with the seed and the skin type.

The recomputed detection stages use ``detect_vessels``' defaults that ``analyze`` does not pass
(skin border 3 px, strength floor 0.015, symmetry 0.35) and one noise pass.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_synth_accuracy import SCALES, set_a_analysed, set_a_arguments, set_a_start  # noqa: E402

R_PX = 1.5
STAGES = (
    "painted red", "painted other class", "near",
    "dropped: too dark", "dropped: melanin", "dropped: repeat", "dropped: red and wide", "dropped: lone patch",
    "dropped: min_delta_e", "dropped: weak band ΔE00", "dropped: other",
    "pruned", "off skin", "piece < min_piece", "band < min_length", "profile test", "not a crest",
    "low x 0.6 - low", "under low x 0.6",
)  # fmt: skip
RULES = ("too dark", "melanin", "repeat", "red and wide", "lone patch", "min_delta_e", "weak band ΔE00")
LEVELS = (">= high", "low - high", "< low")
WIDTHS = ((0.0, 0.1, "< 0.1 mm"), (0.1, 0.15, "0.1-0.15 mm"), (0.15, 0.2, "0.15-0.2 mm"), (0.2, np.inf, ">= 0.2 mm"))
CONTRASTS = ((0.0, 3.0, "ΔE00 < 3"), (3.0, 5.0, "3-5"), (5.0, 10.0, "5-10"), (10.0, np.inf, ">= 10"))


class Watcher:
    """Wraps the pipeline's detection and measurement for one analysis at a time; recomputes
    the detection's stage maps from the same ridge response."""

    def __init__(self):
        import veinscope.pipeline as pl

        self.pl = pl
        self.det0, self.mv0 = pl.detect_vessels, pl.measure_vessels
        self.seen = {}
        pl.detect_vessels, pl.measure_vessels = self._detect, self._measure

    def close(self):
        self.pl.detect_vessels, self.pl.measure_vessels = self.det0, self.mv0

    def _detect(self, ridge, skin, signal=None, **kw):
        import cv2

        from veinscope._kernels.ridges import centreline_candidates, ridge_regions, strong_labels
        from veinscope.segment import _inner_skin, _local_noise, _upsample_at, _without_holes

        q = ridge.strength if ridge.vesselness is None else ridge.strength * ridge.vesselness
        q = np.array(q, np.float32, copy=True)
        border = 3
        inner, closed = _inner_skin(np.asarray(skin, bool), border)
        flank = _without_holes(closed)
        cell = kw.get("noise_cell_px", 64)
        noise_map = _local_noise(q, inner, cell_px=cell)
        lo, hi, floor = kw["low_noise"], kw["high_noise"], 0.015
        region = np.empty(q.shape, np.uint8)
        ridge_regions(q, np.ascontiguousarray(inner), noise_map, float(cell), float(lo), float(hi), floor, region)
        nreg, lab, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(region, 8, cv2.CV_32S, cv2.CCL_BBDT)
        strong = strong_labels(lab, region, nreg - 1)
        extent = np.hypot(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
        long_enough = extent >= kw["min_length_px"]
        long_enough[0] = False
        sig = np.ascontiguousarray(signal, dtype=np.float32)
        cands = []
        for use_signal in (False, True):
            cand = np.empty(q.shape, np.uint8)
            centreline_candidates(q, ridge.normal_y, ridge.normal_x, ridge.scale_px, np.ascontiguousarray(inner),
                                  noise_map, float(cell), float(lo), float(lo), floor, sig, use_signal, flank, 0.35,
                                  cand)  # fmt: skip
            cands.append(cand > 0)
        in_band = cands[1] & long_enough[lab]
        self.seen.update(q=q, inner=inner, noise_map=noise_map, cell=cell, levels=(lo, hi, floor),
                         cand_nosym=cands[0], cand=cands[1], cand_band=in_band, band_strong=strong[lab] & (region > 0),
                         upsample=_upsample_at)  # fmt: skip
        det = self.det0(ridge, skin, signal, **kw)
        self.seen["det0"] = det
        return det

    def _measure(self, det, widths, optics, skin, **kw):
        import veinscope.measure as vm

        out = self.mv0(det, widths, optics, skin, **kw)
        # the rules switched on one at a time, in the engine's order
        real_patches = vm._isolated_patches
        no_weak = det if det.weak is None else dataclasses.replace(det, weak=np.zeros_like(det.weak))
        off = dict(kw, max_melanin_frac=2.0, max_contrast_od=np.inf, restore_chroma=False, max_covered=1.0,
                   max_red_width_px=None, min_delta_e=None, weak_min_delta_e=None, wide_weak_delta_e=None)  # fmt: skip
        steps = [
            ("all off", no_weak, dict(off), False),
            ("too dark", no_weak, dict(off, max_contrast_od=kw["max_contrast_od"]), False),
            ("melanin", no_weak, dict(off, max_contrast_od=kw["max_contrast_od"], max_melanin_frac=kw["max_melanin_frac"],
                                      restore_chroma=kw.get("restore_chroma", False)), False),
        ]  # fmt: skip
        k = dict(steps[-1][2], max_covered=kw["max_covered"])
        steps.append(("repeat", no_weak, k, False))
        k = dict(k, max_red_width_px=kw.get("max_red_width_px"))
        steps.append(("red and wide", no_weak, k, False))
        steps.append(("lone patch", no_weak, k, True))
        k = dict(k, min_delta_e=kw.get("min_delta_e"))
        steps.append(("min_delta_e", no_weak, k, True))
        steps.append(("weak band ΔE00", det, dict(kw), True))
        acc = []
        try:
            for _, d, kk, patches in steps:
                vm._isolated_patches = real_patches if patches else (lambda pts, seg, a, w: np.zeros(a.shape, bool))
                acc.append(np.isfinite(self.mv0(d, None if widths is None else widths.copy(), optics, skin, **kk).width_px))
        finally:
            vm._isolated_patches = real_patches
        same = bool(np.array_equal(acc[-1], np.isfinite(out.width_px)))
        self.seen.update(det=det, out=out, steps=acc, steps_same=same)
        return out


def _near_map(points_yx, shape):
    """Distance (px) from every pixel to the nearest of ``points_yx`` (inf when none)."""
    from scipy.ndimage import distance_transform_edt

    if len(points_yx) == 0:
        return np.full(shape, np.inf)
    free = np.ones(shape, bool)
    free[points_yx[:, 0], points_yx[:, 1]] = False
    return distance_transform_edt(free)


def _mask_near(mask):
    from scipy.ndimage import distance_transform_edt

    return distance_transform_edt(~mask) if mask.any() else np.full(mask.shape, np.inf)


def funnel_points(photo, analysis, seen, *, red_code=1, every_class=False):
    """Per visible true red point: (diameter_mm, length_mm, delta_e, stage index, level index,
    band: 0 none, 1 strong, 2 weak).

    With ``every_class``, every visible true point of every class (the recall figure's vessels when
    its width is >= 0.2 mm), and stage 0 (``painted red``) is painted as any vessel class."""
    from scipy.ndimage import maximum_filter

    m, n = analysis.labels.shape
    q3 = maximum_filter(seen["q"], size=3)
    det0, det, out = seen["det0"], seen["det"], seen["out"]
    pts = det.points_yx
    d_cand = _mask_near(seen["cand"])
    d_cand_band = _mask_near(seen["cand_band"])
    d_cand_nosym = _mask_near(seen["cand_nosym"])
    d_det0 = _near_map(det0.points_yx, (m, n))
    d_det = _near_map(pts, (m, n))
    d_steps = [_near_map(pts[a], (m, n)) for a in seen["steps"]]
    weak0 = np.zeros(len(det0.points_yx), bool) if det0.weak is None else det0.weak[det0.segment]
    d_weak0 = _near_map(det0.points_yx[weak0], (m, n))
    d_strong0 = _near_map(det0.points_yx[~weak0], (m, n))
    lo, hi, floor = seen["levels"]
    rows = []
    for c in photo.centrelines:
        if c["class"] != "red_telangiectasia" and not every_class:
            continue
        v = c["visible"]
        if not v.any():
            continue
        y, x = np.round(c["points_yx"][v]).astype(int).T
        ok = (y >= 0) & (y < m) & (x >= 0) & (x < n)
        y, x = y[ok], x[ok]
        dm, ll, de = c["diameter_mm"][v][ok], c["length_mm"][v][ok], c["delta_e"][v][ok]
        local = seen["upsample"](seen["noise_map"], seen["cell"], y, x)
        low = np.maximum(lo * local, floor)
        high = np.maximum(hi * local, 2 * floor)
        s = q3[y, x]
        level = np.where(s >= high, 0, np.where(s >= low, 1, 2))
        lab = analysis.labels[y, x]
        stage = np.full(len(y), -1)
        for i in range(len(y)):
            yy, xx = y[i], x[i]
            if lab[i] == red_code or (every_class and lab[i] > 0):
                k = 0
            elif lab[i] > 0:
                k = 1
            elif d_steps[-1][yy, xx] <= R_PX:
                k = 2
            elif d_det[yy, xx] <= R_PX:
                # the first rule that took every accepted point within R away
                k = STAGES.index("dropped: other")
                for j in range(1, len(d_steps)):
                    if d_steps[j - 1][yy, xx] <= R_PX and d_steps[j][yy, xx] > R_PX:
                        k = STAGES.index("dropped: " + RULES[j - 1])
                        break
            elif d_det0[yy, xx] <= R_PX:
                k = STAGES.index("pruned")
            elif not seen["inner"][yy, xx]:
                k = STAGES.index("off skin")
            elif d_cand_band[yy, xx] <= R_PX:
                k = STAGES.index("piece < min_piece")
            elif d_cand[yy, xx] <= R_PX:
                k = STAGES.index("band < min_length")
            elif d_cand_nosym[yy, xx] <= R_PX:
                k = STAGES.index("profile test")
            elif s[i] >= low[i]:
                k = STAGES.index("not a crest")
            elif s[i] >= 0.6 * low[i]:
                k = STAGES.index("low x 0.6 - low")
            else:
                k = STAGES.index("under low x 0.6")
            stage[i] = k
        band = np.where(d_strong0[y, x] <= R_PX, 1, np.where(d_weak0[y, x] <= R_PX, 2, 0))
        rows.append(np.c_[dm, ll, de, stage, level, band, np.full(len(y), photo.px_per_mm)])
    return np.concatenate(rows) if rows else np.zeros((0, 7))


def _table(rows, groups, title, stages=STAGES, col=3):
    lines = [f"\n{title}", "", "| | " + " | ".join(g[0] for g in groups) + " |", "|---" * (len(groups) + 1) + "|"]
    tot = [float(rows[g[1], 1].sum()) for g in groups]
    lines.append("| true length, mm | " + " | ".join(f"{t:.0f}" for t in tot) + " |")
    for k, name in enumerate(stages):
        cells = []
        for (_, sel), t in zip(groups, tot):
            r = rows[sel]
            cells.append(f"{r[r[:, col] == k, 1].sum() / t:.3f}" if t >= 0.5 else "")
        if any(c not in ("0.000", "") for c in cells):
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(rows, max_mm, every_class=False):
    stages = STAGES if not every_class else ("painted (any class)",) + STAGES[1:]
    if every_class:
        return _report_every_class(rows, stages)
    fine = rows[:, 0] < max_mm
    groups_w = [(name, (rows[:, 0] >= a) & (rows[:, 0] < b)) for a, b, name in WIDTHS]
    groups_w.insert(3, (f"all < {max_mm:g} mm", fine))
    groups_c = [(name, fine & (rows[:, 2] >= a) & (rows[:, 2] < b)) for a, b, name in CONTRASTS]
    nominal = np.asarray(SCALES)[np.argmin(np.abs(rows[:, 6, None] - np.asarray(SCALES)), axis=1)]  # the photo centre's
    groups_s = [(f"{s:g} px/mm", fine & (nominal == s)) for s in SCALES]
    out = [
        _table(rows, groups_w, "Stage that still has the point, by visible width (share of the true length)"),
        _table(rows, groups_c, f"Under {max_mm:g} mm, by contrast (truth's ΔE00 at the point)"),
        _table(rows, groups_s, f"Under {max_mm:g} mm, by scale"),
        _table(rows, groups_w, "Ridge strength's maximum within 1 px against the local levels", stages=LEVELS, col=4),
        _table(rows, groups_c, f"... under {max_mm:g} mm, by contrast", stages=LEVELS, col=4),
        _table(rows, groups_s, f"... under {max_mm:g} mm, by scale", stages=LEVELS, col=4),
        _table(rows, groups_w, "Detected point within R after the detection, in a strong / weak band", col=5,
               stages=("none", "strong band", "weak band")),
    ]  # fmt: skip
    return "\n".join(out)


TYPE_GROUPS = (("types 1-3", (1, 2, 3)), ("type 4", (4,)), ("type 5", (5,)), ("type 6", (6,)), ("types 4-6", (4, 5, 6)))
CONTRASTS_DARK = ((0.0, 2.0, "ΔE00 < 2"), (2.0, 3.0, "2-3"), (3.0, 5.0, "3-5"), (5.0, 10.0, "5-10"),
                  (10.0, np.inf, ">= 10"))  # fmt: skip


def _report_every_class(rows, stages):
    """Every class (``--every-class``): the recall figure's population (visible width >= 0.2 mm) by
    skin type (column 8, when the run wrote it) and by contrast, all and on types 4-6."""
    wide = rows[:, 0] >= 0.2
    typ = rows[:, 8] if rows.shape[1] > 8 else np.zeros(len(rows))
    groups_t = [("all", wide)] + [(name, wide & np.isin(typ, t)) for name, t in TYPE_GROUPS]
    groups_c = [(name, wide & (rows[:, 2] >= a) & (rows[:, 2] < b)) for a, b, name in CONTRASTS_DARK]
    dark = wide & np.isin(typ, (4, 5, 6))
    groups_cd = [(name, dark & (rows[:, 2] >= a) & (rows[:, 2] < b)) for a, b, name in CONTRASTS_DARK]
    out = [
        _table(rows, groups_t, "Every class, visible width >= 0.2 mm: stage that still has the point, by skin type",
               stages=stages),
        _table(rows, groups_c, "... all types, by contrast (truth's ΔE00 at the point)", stages=stages),
        _table(rows, groups_cd, "... types 4-6, by contrast", stages=stages),
        _table(rows, groups_t, "Ridge strength's maximum within 1 px against the local levels, by skin type",
               stages=LEVELS, col=4),
        _table(rows, groups_cd, "... types 4-6, by contrast", stages=LEVELS, col=4),
    ]  # fmt: skip
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    set_a_arguments(ap, cache=True)
    ap.add_argument("--max-mm", type=float, default=0.2)
    ap.add_argument("--json", type=Path, default=None, help="write the per-point rows here (.npy; a seed column last)")
    ap.add_argument("--rows", type=Path, default=None, help="only report the rows a --json run wrote")
    ap.add_argument("--every-class", action="store_true",
                    help="every class's visible points (the recall population), tables by skin type and contrast")
    args = ap.parse_known_args(argv)[0]
    if args.rows is not None:
        print(report(np.load(args.rows), args.max_mm, args.every_class))
        return 0
    args, (w, h), kw = set_a_start(ap, argv)
    rec = Watcher()
    allrows = []
    try:
        for i, seed, photo, a in set_a_analysed(args, (w, h), kw, rec):
            r = funnel_points(photo, a, rec.seen, every_class=args.every_class)
            allrows.append(np.c_[r, np.full(len(r), seed), np.full(len(r), 1 + i % 6)])
            fine = r[:, 0] < args.max_mm
            got = r[fine & (r[:, 3] <= 1), 1].sum() / max(r[fine, 1].sum(), 1e-9)
            what = "fine, every class," if args.every_class else "fine red"
            print(f"seed {seed} type {1 + i % 6} {photo.px_per_mm:g} px/mm: {what} {r[fine, 1].sum():.0f} mm, "
                  f"painted {got:.3f}; rule steps reproduce the engine: {rec.seen['steps_same']}", flush=True)  # fmt: skip
    finally:
        rec.close()
    rows = np.concatenate(allrows)
    if args.json is not None:
        np.save(args.json, rows)
    print(report(rows, args.max_mm, args.every_class))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
