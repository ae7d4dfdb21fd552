"""Where the length and area of veins over 3 mm go on generated photos, photo by photo (issue 4).

Run:  .venv/bin/python benchmarks/bench_synth_wide.py [--n 24] [--seed0 400] [--size 1600x1200]
      [--cache DIR] [--set key=value ...] [--json FILE] [--floor scale|chain|checked]
      .venv/bin/python benchmarks/bench_synth_wide.py --floor scale|chain|checked --accuracy -- <bench_synth_accuracy.py options>

Same photos as ``bench_synth_accuracy.py`` (set A), the engine given the true scale; its
accepted centreline points and their classes are recorded by wrapping
``veinscope.pipeline.measure_vessels``, the map its widths are measured on (the photo's own OD
projection) and the raw widths by wrapping ``veinscope.diameter.half_max_widths``.

Every visible true centreline point of a vein over 3 mm (its share of the length, px) falls in
the first of (as ``bench_synth_length.py``: an accepted engine point within ``max(2.5, 0.6 d)``
px, ``d`` the true visible diameter in px, is a match):

- ``right``: the nearest such point is classed over 3 mm;
- ``as reticular`` / ``as blue`` / ``as red``: classed otherwise (its width read under 3 mm);
- ``missed, end`` / ``missed, gap`` / ``missed, whole``: no engine point near; within
  ``max(1 mm, d)`` of its visible run's end, inside a run of which other points were found, or
  the whole run missed.

At the matched points: the truth's visible diameter, the engine's reported (smoothed) diameter,
its raw half-maximum width at that point, and the photo's own half-maximum width measured by
the engine's method *at the true centreline point, across the true direction*, with the true
width as the guess (``photo FWHM``) and with the engine's own guess (``photo FWHM, engine
guess``): which part of a short reading is the photo's profile and which the engine's window
or fit. Area: the true over-3-mm pixels by engine label, and the engine's over-3-mm pixels off
them.

A second table gives each point's reason, pooled over the photos (shares of the visible
over-3-mm length):

- classed otherwise: ``at a crossing`` (another true vessel within the vein's own width of the
  point) or not; ``crossing vessel's chain`` when the matched engine point's direction across its
  vessel lies along the vein (within 60 degrees: the point belongs to a vessel running across
  the vein), ``own chain`` otherwise (the vein's own centreline read under 3 mm);
- missed: ``off the engine's skin`` (the pixel is outside the engine's skin mask), ``at the
  outline`` (within half the width plus the profile test's reach, ``2 x 0.29 d + 1`` px, of the
  engine's skin edge: the detection's side samples fall off the skin), ``at a crossing``,
  ``dropped`` (a detected centreline point within the tolerance was not accepted by
  ``measure_vessels``), else ``no candidate``; each by the truth's contrast ΔE00 (< 3, 3-5,
  >= 5).

``--floor`` measures a variant that was tried and not kept (BENCHMARKS.md, session 16): the
half-maximum window's first width (the bar fit's, ``analyze``'s ``guess``) raised to at least the
point's detection scale (``scale``: ``VesselDetection.scale_px``, sigma px) or to the smaller of
that and its chain's median scale (``chain``; ``checked``: the ``chain`` floor's width kept only
where it comes out at least the floor, else main's). With ``--accuracy`` the same variant goes through
``bench_synth_accuracy.py`` (every option after ``--`` is that script's).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_synth_accuracy import set_a_analysed, set_a_arguments, set_a_options  # noqa: E402

NAMES = {1: "red", 2: "blue", 3: "reticular", 4: "over 3 mm"}
CATS = ("right", "as reticular", "as blue", "as red", "missed, end", "missed, gap", "missed, whole")
DE = ((0.0, 3.0, "dE < 3"), (3.0, 5.0, "dE 3-5"), (5.0, np.inf, "dE >= 5"))


class Recorder:
    """Wraps ``measure_vessels`` and ``half_max_widths`` as ``analyze`` calls them (and
    ``detect_vessels`` / ``extend_ends``, whose detection the ``floor`` variant reads)."""

    def __init__(self, floor: str | None = None):
        import veinscope.diameter as dm
        import veinscope.extend as ex
        import veinscope.pipeline as pl

        self.pl, self.dm, self.ex, self.floor = pl, dm, ex, floor
        self.mv0, self.hm0, self.dv0, self.ee0 = pl.measure_vessels, dm.half_max_widths, pl.detect_vessels, ex.extend_ends
        self.seen: dict = {}
        pl.measure_vessels = self._measure
        dm.half_max_widths = self._half_max
        pl.detect_vessels = self._detect
        ex.extend_ends = self._extend

    def _detect(self, *a, **kw):
        self.seen["det0"] = self.dv0(*a, **kw)
        return self.seen["det0"]

    def _extend(self, det, *a, **kw):
        self.seen["det0"] = self.ee0(det, *a, **kw)
        return self.seen["det0"]

    def _measure(self, det, widths, optics, skin, **kw):
        out = self.mv0(det, widths, optics, skin, **kw)
        self.seen.update(det=det, out=out, raw=None if widths is None else np.asarray(widths).copy())
        return out

    def _half_max(self, contrast, pts, nrm, guess, **kw):
        if "guess" in self.seen:  # a second call (``deep_veins``' chains on the red channel): not recorded
            return self.hm0(contrast, pts, nrm, guess, **kw)
        det = self.seen.pop("det0", None)  # analyze's call (not the warm-up's)
        if self.floor and det is not None and det.points_yx.shape[0] == len(guess):
            from veinscope._kernels.groups import group_medians

            fl = det.scale_px.astype(np.float64)
            if self.floor in ("chain", "checked"):
                seg = det.segment.astype(np.int64)
                fl = np.minimum(fl, group_medians(det.scale_px.astype(np.float32), seg, det.n_segments)[seg])
            if self.floor == "checked":
                # the raised first width's result only where it is at least the floor itself
                w0, c0 = self.hm0(contrast, pts, nrm, guess, **kw)
                g1 = np.maximum(guess, fl)
                up = g1 > guess
                w1, c1 = self.hm0(contrast, pts[up], nrm[up], g1[up], **kw)
                take = np.flatnonzero(up)[np.isfinite(w1) & (w1 >= fl[up])]
                sel = np.isfinite(w1) & (w1 >= fl[up])
                w0[take], c0[take] = w1[sel], c1[sel]
                self.seen.update(signal=np.array(contrast, copy=True), guess=g1, hm_kw=dict(kw))
                return w0, c0
            guess = np.maximum(guess, fl)  # NaN stays NaN
        self.seen.update(signal=np.array(contrast, copy=True), guess=np.asarray(guess).copy(), hm_kw=dict(kw))
        return self.hm0(contrast, pts, nrm, guess, **kw)

    def close(self):
        self.pl.measure_vessels, self.pl.detect_vessels = self.mv0, self.dv0
        self.dm.half_max_widths, self.ex.extend_ends = self.hm0, self.ee0


def _de_band(v: float) -> str:
    return next(name for lo, hi, name in DE if lo <= v < hi)


def wide_photo(photo, analysis, seen) -> dict:
    from scipy.ndimage import distance_transform_edt
    from scipy.spatial import cKDTree

    det, out = seen["det"], seen["out"]
    m, n = analysis.labels.shape
    ppm = photo.px_per_mm
    ok = np.isfinite(out.width_px) & (out.point_class > 0)
    idx = np.flatnonzero(ok)
    e_pts = out.points_yx[ok].astype(np.float64)
    tree = cKDTree(e_pts) if len(e_pts) else None
    tree_det = cKDTree(det.points_yx.astype(np.float64)) if det.points_yx.shape[0] else None
    to_edge = distance_transform_edt(analysis.skin)  # px to the engine's skin edge (0 off the skin)
    other = (photo.labels > 0) & (photo.labels != 4)
    to_other = distance_transform_edt(~other)
    why: dict = {}
    cat = dict.fromkeys(CATS, 0.0)
    rows = []  # matched points: true d, engine smoothed, engine raw, photo fwhm (true guess), photo fwhm (engine guess), delta_e
    tp, tn, td = [], [], []
    branches: dict = {}
    for c in photo.centrelines:
        branches.setdefault((c["structure"], c["branch"]), []).append(c)
    for parts in branches.values():
        parts.sort(key=lambda c: c["start"])
        p = np.concatenate([c["points_yx"] for c in parts])
        is4 = np.concatenate([np.full(len(c["points_yx"]), c["class"] == "over_3mm") for c in parts])
        if not is4.any():
            continue
        vis = np.concatenate([c["visible"] for c in parts])
        d = np.concatenate([c["diameter_mm"] for c in parts]) * ppm
        de = np.concatenate([c["delta_e"] for c in parts])
        step = np.hypot(*np.diff(p, axis=0).T) if len(p) > 1 else np.zeros(0)
        share = np.zeros(len(p))
        share[:-1] += 0.5 * step
        share[1:] += 0.5 * step
        arc = np.r_[0.0, np.cumsum(step)]
        tang = np.gradient(p, axis=0) if len(p) > 1 else np.zeros_like(p)
        nrm = np.stack([-tang[:, 1], tang[:, 0]], 1)
        inside = (p[:, 0] >= 0) & (p[:, 0] <= m - 1) & (p[:, 1] >= 0) & (p[:, 1] <= n - 1)
        v = vis & inside
        if tree is not None:
            dist, j = tree.query(p)
        else:
            dist, j = np.full(len(p), np.inf), np.zeros(len(p), int)
        found = dist <= np.maximum(2.5, 0.6 * d)
        dist_det = tree_det.query(p)[0] if tree_det is not None else np.full(len(p), np.inf)
        yi = np.clip(np.round(p[:, 0]).astype(int), 0, m - 1)
        xi = np.clip(np.round(p[:, 1]).astype(int), 0, n - 1)
        edges = np.flatnonzero(np.diff(np.r_[0, v.astype(int), 0]))
        for a, b in zip(edges[::2], edges[1::2]):
            any_found = found[a:b].any()
            for k in range(a, b):
                if not is4[k]:
                    continue
                te = min(arc[k] - arc[a], arc[b - 1] - arc[k])
                cross = to_other[yi[k], xi[k]] < d[k]
                if found[k]:
                    e = int(out.point_class[idx[j[k]]])
                    c_ = "right" if e == 4 else f"as {NAMES[e]}"
                    ek = idx[j[k]]
                    if e != 4:
                        en = det.normals_yx[ek].astype(np.float64)
                        tg = p[min(k + 1, len(p) - 1)] - p[max(k - 1, 0)]
                        along = abs(en @ tg) > 0.5 * np.hypot(*en) * np.hypot(*tg)
                        r_ = ("classed otherwise, " + ("at a crossing, " if cross else "no crossing, ")
                              + ("crossing vessel's chain" if along else "own chain"))
                        why[r_] = why.get(r_, 0.0) + share[k]
                    rows.append((d[k], out.width_px[ek], seen["raw"][ek], np.nan, np.nan, de[k], share[k], seen["guess"][ek], ppm))
                    tp.append(p[k])
                    tn.append(nrm[k])
                    td.append((d[k], seen["guess"][ek]))
                else:
                    if not any_found:
                        c_ = "missed, whole"
                    elif te <= max(ppm, d[k]):
                        c_ = "missed, end"
                    else:
                        c_ = "missed, gap"
                    if not analysis.skin[yi[k], xi[k]]:
                        r_ = "off the engine's skin"
                    elif to_edge[yi[k], xi[k]] < 0.5 * d[k] + 2 * 0.29 * d[k] + 1:
                        r_ = "at the outline"
                    elif cross:
                        r_ = "at a crossing"
                    elif dist_det[k] <= max(2.5, 0.6 * d[k]):
                        r_ = "dropped"
                    else:
                        r_ = "no candidate"
                    r_ = f"missed, {r_}, {_de_band(de[k])}"
                    why[r_] = why.get(r_, 0.0) + share[k]
                if c_ == "right":
                    why["right"] = why.get("right", 0.0) + share[k]
                cat[c_] += share[k]
    rows = np.array(rows, np.float64).reshape(-1, 9)
    if len(tp):
        from veinscope.diameter import half_max_widths

        kw = dict(seen["hm_kw"])
        # per-point options of the engine's own call (its points, not these): left out
        kw.pop("along_max_px", None)
        kw.pop("centreline_reach", None)
        tp, tn, td = np.array(tp), np.array(tn), np.array(td)
        rows[:, 3] = half_max_widths(seen["signal"], tp, tn, td[:, 0], **kw)[0]
        g = np.where(np.isfinite(td[:, 1]), td[:, 1], td[:, 0])
        rows[:, 4] = half_max_widths(seen["signal"], tp, tn, g, **kw)[0]
    tl = photo.labels * (~photo.ignore) * photo.skin_mask
    el = analysis.labels * photo.skin_mask
    area = np.bincount(el[tl == 4], minlength=5)[:5].astype(float)
    off = float(((el == 4) & (tl != 4)).sum())
    return {"cat": cat, "why": why, "rows": rows, "area": area, "area_off": off, "ppm": ppm}


def _ratio(rows, col):
    w = rows[:, 6]
    r = rows[:, col] / rows[:, 0]
    okk = np.isfinite(r)
    if not okk.any():
        return float("nan")
    r, w = r[okk], w[okk]
    o = np.argsort(r)
    c = np.cumsum(w[o])
    return float(r[o][np.searchsorted(c, 0.5 * c[-1])])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    set_a_arguments(ap, cache=True)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--floor", choices=("scale", "chain", "checked"), default=None, help="the variant tried in session 16")
    ap.add_argument("--accuracy", action="store_true", help="run bench_synth_accuracy.py (options after --) with the variant")
    argv = list(sys.argv[1:] if argv is None else argv)
    rest = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = ap.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    import veinscope

    if args.accuracy:
        import bench_synth_accuracy

        rec = Recorder(args.floor)
        try:
            return bench_synth_accuracy.main(rest)
        finally:
            rec.close()
    (w, h), kw = set_a_options(args)
    veinscope.warmup()
    rec = Recorder(args.floor)
    res = []
    try:
        for i, seed, photo, a in set_a_analysed(args, (w, h), kw, rec):
            if not any(c["class"] == "over_3mm" and c["visible"].any() for c in photo.centrelines):
                continue
            r = wide_photo(photo, a, rec.seen)
            r.update(seed=seed, skin_type=1 + i % 6)
            tf = photo.truth_figures()["over_3mm"]
            ef = a.to_dict()["classes"]["over_3mm"]
            r["len_err"] = 100 * ((ef["length_mm"] or 0.0) / tf["length_mm"] - 1) if tf["length_mm"] >= 10 else float("nan")
            r["area_err"] = 100 * ((ef["area_mm2"] or 0.0) / tf["area_mm2"] - 1) if tf["area_mm2"] >= 5 else float("nan")
            res.append(r)
            print(f"seed {seed} done", flush=True)
    finally:
        rec.close()
    print("\nPer photo, over-3-mm truth: visible length (px) by where it went (shares), and at the matched points the "
          "median (length-weighted) ratio to the true visible width of the engine's reported width / its raw width / "
          "the photo's FWHM at the true centreline (true guess) / (engine's guess); true width px median; dE00 median\n")
    print("| seed | type | px/mm | len err % | area err % | true px | " + " | ".join(CATS)
          + " | d true px | reported | raw | photo FWHM | photo, engine guess | guess | dE00 | area: none / blue / ret / over3 | over3 off truth / true |")
    print("|" + "---|" * (6 + len(CATS) + 9))
    tot = dict.fromkeys(CATS, 0.0)
    allrows = []
    area_all = np.zeros(5)
    off_all = 0.0
    for r in res:
        t = sum(r["cat"].values())
        rows = r["rows"]
        allrows.append(rows)
        area_all += r["area"]
        off_all += r["area_off"]
        for k in CATS:
            tot[k] += r["cat"][k]
        ar = r["area"] / max(r["area"].sum(), 1)
        dmed = float(np.median(rows[:, 0])) if len(rows) else float("nan")
        print(f"| {r['seed']} | {r['skin_type']} | {r['ppm']:.0f} | {r['len_err']:+.1f} | {r['area_err']:+.1f} | {t:.0f} | "
              + " | ".join(f"{r['cat'][k] / max(t, 1e-9):.2f}" for k in CATS)
              + f" | {dmed:.1f} | {_ratio(rows, 1):.2f} | {_ratio(rows, 2):.2f} | {_ratio(rows, 3):.2f} | {_ratio(rows, 4):.2f} | "
              f"{_ratio(rows, 7):.2f} | {np.median(rows[:, 5]) if len(rows) else float('nan'):.1f} | "
              f"{ar[0]:.2f} / {ar[2]:.2f} / {ar[3]:.2f} / {ar[4]:.2f} | {r['area_off'] / max(r['area'].sum(), 1):.2f} |")
    rows = np.concatenate(allrows) if allrows else np.zeros((0, 9))
    t = sum(tot.values())
    print(f"\nPooled: true px {t:.0f}; " + ", ".join(f"{k} {tot[k] / t:.3f}" for k in CATS))
    print(f"Pooled width ratios (reported / raw / photo FWHM true guess / photo FWHM engine guess / guess): "
          f"{_ratio(rows, 1):.3f} / {_ratio(rows, 2):.3f} / {_ratio(rows, 3):.3f} / {_ratio(rows, 4):.3f} / {_ratio(rows, 7):.3f}")
    why: dict = {}
    for r in res:
        for k, v in r["why"].items():
            why[k] = why.get(k, 0.0) + v
    print("\nWhy, pooled (share of the visible over-3-mm length):\n")
    print("| reason | share |")
    print("|---|---|")
    for k, v in sorted(why.items(), key=lambda kv: -kv[1]):
        print(f"| {k} | {v / t:.3f} |")
    print(f"\nPooled area: none {area_all[0] / area_all.sum():.3f}, blue {area_all[2] / area_all.sum():.3f}, reticular "
          f"{area_all[3] / area_all.sum():.3f}, over 3 mm {area_all[4] / area_all.sum():.3f}; engine over 3 mm off the truth "
          f"{off_all / area_all.sum():.3f} of the true area")
    for lo, hi in ((0, 2), (2, 3), (3, 5), (5, 10), (10, 99)):
        s = (rows[:, 5] >= lo) & (rows[:, 5] < hi)
        if s.any():
            print(f"  dE00 {lo}-{hi}: matched px {rows[s, 6].sum():.0f}, ratios reported {_ratio(rows[s], 1):.3f}, raw "
                  f"{_ratio(rows[s], 2):.3f}, photo {_ratio(rows[s], 3):.3f}, photo engine guess {_ratio(rows[s], 4):.3f}, "
                  f"share reported > 3 mm {rows[s, 6][rows[s, 1] > 3.0 * rows[s, 8]].sum() / rows[s, 6].sum():.3f}, "
                  f"photo FWHM > 3 mm {rows[s, 6][rows[s, 3] > 3.0 * rows[s, 8]].sum() / rows[s, 6].sum():.3f}")
    if len(rows):
        # the half-maximum window's first width (the bar fit's, analyze's guess) against the
        # true width: where it failed or fell far short, the window reads the vein's shoulders
        # as skin (session 34); and what the photo's own half maximum supports
        g = rows[:, 7] / rows[:, 0]
        print("\nFirst width (the bar fit's, which sets the half-maximum window) at the matched points, against the "
              "true width (share of the matched length; reported / true, median; share reported over 3 mm):")
        for name, s in (("failed (NaN)", ~np.isfinite(g)), ("under half", np.isfinite(g) & (g < 0.5)),
                        ("half or more", np.isfinite(g) & (g >= 0.5))):
            if s.any():
                print(f"  {name}: {rows[s, 6].sum() / rows[:, 6].sum():.3f}; {np.nanmedian(rows[s, 1] / rows[s, 0]):.3f}; "
                      f"{rows[s, 6][rows[s, 1] > 3.0 * rows[s, 8]].sum() / rows[s, 6].sum():.3f}")
        over = lambda c: rows[:, 6][rows[:, c] > 3.0 * rows[:, 8]].sum() / rows[:, 6].sum()  # noqa: E731
        print(f"Share of the matched length read over 3 mm: reported {over(1):.3f}, raw {over(2):.3f}, the photo's FWHM at "
              f"the true centreline with the true window {over(3):.3f}, with the engine's window {over(4):.3f}")
    if args.json:
        args.json.write_text(json.dumps([{**{k: v for k, v in r.items() if k != "rows"}, "area": r["area"].tolist(),
                                          "rows": r["rows"].tolist()} for r in res], default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
