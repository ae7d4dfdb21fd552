"""Where the engine loses visible vessel length on generated photos, and what it misclassifies (issue 4).

Run:  .venv/bin/python benchmarks/bench_synth_losses.py [--n 24] [--seed0 400] [--size 1600x1200]
      [--cache DIR] [--set key=value ...] [--types 5 6]

Same photos as ``bench_synth_accuracy.py`` (photo i: seed seed0 + i, skin type 1 + i % 6, the
rotating scales), the engine given the true scale. To see the engine's intermediate results it
wraps ``veinscope.pipeline.detect_vessels`` and ``measure_vessels`` for the run (the wrappers
record their inputs and outputs and return them unchanged), and runs detection twice more with
looser settings, only to sort the losses. Three tables:

1. **Where visible length is lost.** Every visible true centreline point of a vessel >= 0.2 mm
   (the recall figure's population), weighted by its length, falls in the first of:
   ``hit`` (its pixel is painted vessel), ``near miss`` (an accepted centreline point within
   2.5 px, its disc missing the pixel), ``off the engine's skin`` (the pixel is outside the
   engine's skin mask: the shaded rim, the card's margin, glare), ``dropped: melanin`` /
   ``dropped: too dark`` / ``dropped: ΔE00`` / ``dropped: repeat`` (a detected chain within
   2.5 px rejected by that rule of ``measure_vessels``; ``ΔE00``: the point is kept when
   ``measure_vessels`` runs again with ``min_delta_e`` off and every weak chain let through the
   ``faint_delta_e`` gate, i.e. a colour-difference gate dropped it; ``repeat``: any other rule),
   ``hysteresis/length/piece`` (a centreline candidate within 2.5 px when
   the high level, the band length and the piece length are not asked for), ``below low x 0.6``
   (a candidate only when the low level is also lowered to 0.6 of itself), ``no candidate``.
   By class and contrast band (ΔE00 at the vessel's centre, the truth's ``delta_e``).
2. **Class confusion** along the engine's centreline on true vessels (the ``class right``
   figure's pixels): true class x engine class, share of the length, with the median true and
   engine diameters of each cell.
3. **Position.** Signed offset of each accepted fine-vessel centreline point (engine width
   under 2.5 px), as a pixel and as its painted centre, from the nearest point of the true
   centreline (densified to 0.1 px; points over 1.5 px from any are left out): a mean far from
   0 would be a bias of the engine (a half-pixel shift, rounding).
4. **Width the photo shows.** At visible true centreline points of vessels >= 0.7 mm (every
   4th), the engine's half-maximum width (``veinscope.diameter.half_max_widths``, camera blur
   0.8 px out) of the detection signal measured at the *true* centreline, across the *true*
   direction, with the true width as the guess (since session 9 the engine adds the skin
   background back into that array in place before it measures widths, so this is the photo's
   own OD, as the engine's widths are); against the truth's visible diameter, and the
   engine's own painted diameter there. Tells apart what the engine gets wrong from what the
   photo does not show.

``--cache DIR`` keeps the generated photos (pickles, about 33 MB each) for reruns.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_synth_accuracy import set_a_analysed, set_a_arguments, set_a_start  # noqa: E402

CATS = ("hit", "near miss", "off the engine's skin", "dropped: melanin", "dropped: too dark", "dropped: ΔE00",
        "dropped: repeat", "hysteresis/length/piece", "below low x 0.6", "no candidate")  # fmt: skip
BANDS = ((2.0, 5.0, "<5"), (5.0, 10.0, "5-10"), (10.0, np.inf, ">=10"))
NAMES = {1: "red", 2: "blue", 3: "reticular", 4: "over 3 mm"}


class Recorder:
    """Wraps the pipeline's detection and measurement for one analysis at a time."""

    def __init__(self):
        import veinscope.pipeline as pl

        self.pl = pl
        self.det0, self.mv0 = pl.detect_vessels, pl.measure_vessels
        self.seen = {}
        pl.detect_vessels, pl.measure_vessels = self._detect, self._measure

    def _detect(self, ridge, skin, signal=None, **kw):
        loose = dict(kw, consume=False, min_length_px=0.0, min_piece_px=1, high_noise=kw["low_noise"])
        self.seen["loose"] = self.det0(ridge, skin, signal, **loose)
        low = 0.6 * kw["low_noise"]
        self.seen["looser"] = self.det0(ridge, skin, signal, **dict(loose, low_noise=low, high_noise=low))
        self.seen["signal"] = signal
        return self.det0(ridge, skin, signal, **kw)

    def _measure(self, det, widths, optics, skin, **kw):
        out = self.mv0(det, widths, optics, skin, **kw)
        # the same chains with the colour-difference gates open (min_delta_e, the weak bands'
        # faint_delta_e): what those gates alone drop
        open_kw = dict(kw, min_delta_e=None, weak_min_delta_e=-1.0 if kw.get("weak_min_delta_e") is not None else None)
        self.seen["open"] = self.mv0(det, None if widths is None else widths.copy(), optics, skin, **open_kw)
        self.seen.update(det=det, optics=optics, out=out, kw=kw)
        return out

    def close(self):
        self.pl.detect_vessels, self.pl.measure_vessels = self.det0, self.mv0


def _nearest(points, shape):
    from scipy.ndimage import distance_transform_edt

    free = np.ones(shape, bool)
    if len(points):
        free[points[:, 0], points[:, 1]] = False
    return distance_transform_edt(free, return_indices=True)


def chain_rule(det, optics, kw):
    """Per chain: 0 kept by the colour rules, 1 melanin-like, 2 too dark (measure_vessels' tests).

    The centre-pixel reading only: ``measure_vessels(restore_chroma=True)`` then gives thin
    melanin-like branches that are clearly blood back, so of a chain marked 1 here only the
    points the engine did not accept count as dropped (``losses`` looks at those only)."""
    from veinscope.chromophores import unmix

    od = optics.relative_od_at(det.points_yx)
    rule = np.zeros(det.n_segments, np.int64)
    order = np.argsort(det.segment, kind="stable")
    bounds = np.searchsorted(det.segment[order], np.arange(det.n_segments + 1))
    for c in range(det.n_segments):
        idx = order[bounds[c] : bounds[c + 1]]
        pos = np.maximum(unmix(od[idx].mean(axis=0)), 0.0)
        total = float(pos.sum())
        if (pos[2] / total if total > 0 else 1.0) > kw["max_melanin_frac"]:
            rule[c] = 1
        elif float(np.abs(od[idx]).mean(axis=0).max()) > kw["max_contrast_od"]:
            rule[c] = 2
    return rule


def stage_maps(analysis, seen):
    """Per-pixel maps of where the detection stages put their points, for sorting missed truth
    by the stage that lost it: ``(det, out, pts, accepted, rule, d_acc, d_det, iy, ix, d_loose,
    d_looser, pid, painted)`` (distances to the nearest accepted / detected / loosely and more
    loosely detected point, that point's row and column, each point's index by pixel)."""
    det, out = seen["det"], seen["out"]
    m, n = analysis.labels.shape
    pts = det.points_yx
    accepted = np.isfinite(out.width_px)
    rule = chain_rule(det, seen["optics"], analysis.params)
    d_acc, _ = _nearest(pts[accepted], (m, n))
    d_det, (iy, ix) = _nearest(pts, (m, n))
    d_loose, _ = _nearest(seen["loose"].points_yx, (m, n))
    d_looser, _ = _nearest(seen["looser"].points_yx, (m, n))
    pid = np.full((m, n), -1, np.int64)
    pid[pts[:, 0], pts[:, 1]] = np.arange(len(pts))
    painted = analysis.labels > 0
    opened = seen.get("open")
    de_gate = np.zeros(len(pts), bool) if opened is None else np.isfinite(opened.width_px) & ~accepted
    return det, out, pts, accepted, rule, d_acc, d_det, iy, ix, d_loose, d_looser, pid, painted, de_gate


def category(painted, d_acc, on_skin, d_det, rule, de_gate, d_loose, d_looser, near=2.5) -> str:
    """Where one visible true centreline point's length ends (one of ``CATS``), the first that
    holds: painted; an accepted engine point within ``near`` px (its disc misses); off the
    engine's skin mask; a detected point within ``near`` px whose chain a rule dropped (``rule``
    1 melanin-like, 2 too dark; else ``de_gate``: kept when the colour-difference gates are
    open; else any other rule); a candidate of the loose detection; of the looser one; none."""
    if painted:
        return "hit"
    if d_acc <= near:
        return "near miss"
    if not on_skin:
        return "off the engine's skin"
    if d_det <= near:
        if rule in (1, 2):
            return ("dropped: melanin", "dropped: too dark")[rule - 1]
        return "dropped: ΔE00" if de_gate else "dropped: repeat"
    if d_loose <= near:
        return "hysteresis/length/piece"
    if d_looser <= near:
        return "below low x 0.6"
    return "no candidate"


def losses(photo, analysis, seen, lengths):
    det, out, pts, accepted, rule, d_acc, d_det, iy, ix, d_loose, d_looser, pid, painted, de_gate = stage_maps(analysis, seen)
    m, n = analysis.labels.shape
    on_skin = analysis.skin
    for c in photo.centrelines:
        v = c["visible"] & (c["diameter_mm"] >= 0.2)
        if not v.any():
            continue
        y, x = np.round(c["points_yx"][v]).astype(int).T
        ok = (y >= 0) & (y < m) & (x >= 0) & (x < n)
        y, x, ll, de = y[ok], x[ok], c["length_mm"][v][ok], c["delta_e"][v][ok]
        cls = NAMES[{"red_telangiectasia": 1, "blue_telangiectasia": 2, "reticular": 3}.get(c["class"], 4)]
        for yy, xx, length, e in zip(y, x, ll, de):
            band = next((b for lo, hi, b in BANDS if lo <= e < hi), "<5")
            p = pid[iy[yy, xx], ix[yy, xx]]
            k = category(bool(painted[yy, xx]), float(d_acc[yy, xx]), bool(on_skin[yy, xx]), float(d_det[yy, xx]),
                         int(rule[det.segment[p]]) if p >= 0 else 0, bool(de_gate[p]) if p >= 0 else False,
                         float(d_loose[yy, xx]), float(d_looser[yy, xx]))  # fmt: skip
            cell = lengths.setdefault((cls, band), dict.fromkeys(CATS, 0.0))
            cell[k] += float(length)


def confusion(photo, analysis, table):
    from skimage.morphology import skeletonize

    on = skeletonize((analysis.labels > 0) & photo.skin_mask) & ~photo.ignore & (photo.labels > 0)
    y, x = np.nonzero(on)
    table.append(np.stack([photo.labels[y, x], analysis.labels[y, x], photo.diameter_mm[y, x], analysis.diameter_mm[y, x]], 1))


def offsets(photo, seen, rows):
    from scipy.spatial import cKDTree

    det, out, kw = seen["det"], seen["out"], seen["kw"]
    dense, diam = [], []
    for c in photo.centrelines:
        p = c["points_yx"]
        if len(p) < 2:
            continue
        arc = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(p, axis=0), axis=1))]
        u = np.arange(0.0, arc[-1], 0.1)
        dense.append(np.stack([np.interp(u, arc, p[:, 0]), np.interp(u, arc, p[:, 1])], 1))
        diam.append(np.interp(u, arc, c["diameter_mm"]) * photo.px_per_mm)
    if not dense:
        return
    dense, diam = np.concatenate(dense), np.concatenate(diam)
    tree = cKDTree(dense)
    fine = np.isfinite(out.width_px) & (out.width_px < 2.5)
    shift = kw.get("centre_shift_px")
    shift = np.zeros(len(fine)) if shift is None else np.clip(np.nan_to_num(shift), -1.0, 1.0)
    p = det.points_yx[fine].astype(float)
    q = p + shift[fine, None] * det.normals_yx[fine]
    dp, ip = tree.query(p)
    dq, iq = tree.query(q)
    ok = (dp < 1.5) & (diam[ip] < 2.5)
    rows.append(np.c_[p[ok] - dense[ip[ok]], q[ok] - dense[iq[ok]]])


def widths(photo, analysis, seen, rows):
    from veinscope.diameter import half_max_widths

    ppm = photo.px_per_mm
    m, n = analysis.labels.shape
    for c in photo.centrelines:
        p = c["points_yx"]
        if len(p) < 3:
            continue
        idx = np.flatnonzero(c["visible"] & (c["diameter_mm"] >= 0.7))[::4]
        if not idx.size:
            continue
        t = np.gradient(p, axis=0)
        t /= np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-9)
        nrm = np.stack([-t[:, 1], t[:, 0]], 1)
        w, _ = half_max_widths(seen["signal"], p[idx], nrm[idx], c["diameter_mm"][idx] * ppm, psf_sigma_px=0.8,
                               max_width_px=1.5 * 5.0 * ppm)  # fmt: skip
        y = np.clip(np.round(p[idx, 0]).astype(int), 0, m - 1)
        x = np.clip(np.round(p[idx, 1]).astype(int), 0, n - 1)
        rows.append(np.c_[c["diameter_mm"][idx], w / ppm, analysis.diameter_mm[y, x]])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    set_a_arguments(ap, cache=True)
    args, (w, h), kw = set_a_start(ap, argv)
    rec = Recorder()
    lengths, conf, offs, wide = {}, [], [], []
    try:
        for i, seed, photo, a in set_a_analysed(args, (w, h), kw, rec):
            losses(photo, a, rec.seen, lengths)
            confusion(photo, a, conf)
            offsets(photo, rec.seen, offs)
            widths(photo, a, rec.seen, wide)
            print(f"seed {seed}", flush=True)
    finally:
        rec.close()

    total = sum(sum(c.values()) for c in lengths.values())
    print("\n1. Visible true length of vessels >= 0.2 mm: where it ends (share of each row)\n")
    print("| class, ΔE00 | share of all | " + " | ".join(CATS) + " |")
    print("|---|---|" + "---|" * len(CATS))
    every = dict.fromkeys(CATS, 0.0)
    for (cls, band), cell in sorted(lengths.items()):
        t = sum(cell.values())
        for k in CATS:
            every[k] += cell[k]
        print(f"| {cls} {band} | {t / total:.3f} | " + " | ".join(f"{cell[k] / t:.3f}" for k in CATS) + " |")
    print("| all | 1 | " + " | ".join(f"{every[k] / total:.3f}" for k in CATS) + " |")

    c = np.concatenate(conf) if conf else np.zeros((0, 4))
    print("\n2. Engine centreline on true vessels: true class -> engine class (share of that length; "
          "median true / engine diameter, mm)\n")
    print("| true \\ engine | " + " | ".join(NAMES.values()) + " |")
    print("|---|" + "---|" * 4)
    for t in range(1, 5):
        cells = []
        for e in range(1, 5):
            s = (c[:, 0] == t) & (c[:, 1] == e)
            share = s.mean() if len(c) else 0.0
            cells.append(f"{share:.3f}" + (f" ({np.median(c[s, 2]):.2f} / {np.median(c[s, 3]):.2f})" if s.sum() >= 20 else ""))
        print(f"| {NAMES[t]} | " + " | ".join(cells) + " |")
    right = float((c[:, 0] == c[:, 1]).mean()) if len(c) else float("nan")
    print(f"\nclass right, all photos' length pooled: {right:.3f}")

    o = np.concatenate(offs) if offs else np.zeros((0, 4))
    if len(o):
        print(f"\n3. Fine-vessel centreline points (engine width < 2.5 px) within 1.5 px of the truth: {len(o)}; "
              f"mean offset from the true centreline (px): pixel dy {o[:, 0].mean():+.3f} dx {o[:, 1].mean():+.3f}, "
              f"painted centre dy {o[:, 2].mean():+.3f} dx {o[:, 3].mean():+.3f}; median distance pixel "
              f"{np.median(np.hypot(o[:, 0], o[:, 1])):.3f}, painted {np.median(np.hypot(o[:, 2], o[:, 3])):.3f}")
    wd = np.concatenate(wide) if wide else np.zeros((0, 3))
    print("\n4. Half-maximum width at the true centrelines (vessels >= 0.7 mm), median ratio to the truth's visible diameter\n")
    print("| true visible diameter (mm) | points | photo's own width / truth | engine's painted diameter / truth |")
    print("|---|---|---|---|")
    for lo, hi in ((0.7, 1.0), (1.0, 1.5), (1.5, 2.0), (2.0, 3.0), (3.0, np.inf)):
        s = (wd[:, 0] >= lo) & (wd[:, 0] < hi) & np.isfinite(wd[:, 1])
        e = s & (wd[:, 2] > 0)
        if s.sum():
            band = f"{lo:g}-{hi:g}" if np.isfinite(hi) else f">= {lo:g}"
            eng = f"{np.median(wd[e, 2] / wd[e, 0]):.3f} ({e.sum()} painted)" if e.any() else "n/a"
            print(f"| {band} | {s.sum()} | {np.median(wd[s, 1] / wd[s, 0]):.3f} | {eng} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
