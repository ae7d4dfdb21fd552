"""Where the reticular (and every class's) length goes on generated photos (issue 4).

Run:  .venv/bin/python benchmarks/bench_synth_length.py [--n 24] [--seed0 400] [--size 1600x1200]
      [--cache DIR] [--set key=value ...] [--json FILE]

Same photos as ``bench_synth_accuracy.py`` (photo i: seed seed0 + i, skin type 1 + i % 6, the
rotating scales), the engine given the true scale. The engine's accepted centreline points and
their classes are recorded by wrapping ``veinscope.pipeline.measure_vessels`` for the run.
Everything is in photo pixels, so that the split is not mixed with the scale (the truth's
millimetres are on the tilted skin plane, the engine's at the photo centre's scale).

Every visible true centreline point (its share of the stretch's length, in px) of a class falls
in the first of:

- ``right``: an accepted engine centreline point within ``max(2.5, 0.6 d)`` px (``d`` the true
  visible diameter in px) has the true class;
- ``as <class>``: the nearest such point has another class (for reticular veins: read as a
  telangiectasia because its visible width was measured under 1 mm, or over 3 mm);
- ``missed, end``: no engine point near, and the point is within ``max(1 mm, d)`` of an end of
  its visible run along the branch (a vessel's tip, the junction it starts from, where it fades);
- ``missed, gap``: no engine point near, inside a visible run of which other points were found;
- ``missed, whole``: no point of its visible run was found.

The engine's length of a class (Kulpa's weights, as ``measure.chain_lengths`` on the pieces) is
split by where its points lie: on a visible true vessel of the same class (``on right``), on a
true vessel of another class, on a vessel too faint to count (truth ``ignore``), or on no
vessel. ``measure ratio`` = engine length ``on right`` / true length ``right``: the length
measure itself (steps, bends, a wide vessel's skeleton at its ends, parallel repeats). Also
printed: the engine's own reported length of each class (its pieces, with the gaps that
``join_ends`` adds) over the true length; the missed stretches inside found runs by their length
in true diameters; and, for the engine's chain ends on the right class, the distance to the
nearest point of another chain in the end's own diameters (how often a centreline breaks).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_synth_accuracy import set_a_analysed, set_a_arguments, set_a_start  # noqa: E402

CODES = {"red_telangiectasia": 1, "blue_telangiectasia": 2, "reticular": 3, "over_3mm": 4}
NAMES = {1: "red", 2: "blue", 3: "reticular", 4: "over 3 mm"}
TRUTH_CATS = ("right", "as red", "as blue", "as reticular", "as over 3 mm", "missed, end", "missed, gap", "missed, whole")
ENGINE_CATS = ("on right", "on other class", "on ignore", "on nothing")


class Recorder:
    def __init__(self):
        import veinscope.pipeline as pl

        self.pl = pl
        self.mv0 = pl.measure_vessels
        self.seen = {}
        pl.measure_vessels = self._measure

    def _measure(self, det, widths, optics, skin, **kw):
        out = self.mv0(det, widths, optics, skin, **kw)
        self.seen.update(det=det, out=out)
        return out

    def close(self):
        self.pl.measure_vessels = self.mv0


def point_lengths(pts: np.ndarray, piece: np.ndarray, shape) -> np.ndarray:
    """Each point's share of its piece's Kulpa length (half of every step it ends)."""
    pts = np.asarray(pts, np.int64)
    out = np.zeros(len(pts))
    if not len(pts):
        return out
    width = int(shape[1]) + 2
    key = (pts[:, 0] + 1) * width + (pts[:, 1] + 1)
    order = np.argsort(key, kind="stable")
    ks, ss = key[order], piece[order]

    def other(dy, dx):
        q = key + dy * width + dx
        i = np.minimum(np.searchsorted(ks, q), len(ks) - 1)
        return (ks[i] == q) & (ss[i] == piece), order[i]

    (right, ir), (down, idn), (left, _) = other(0, 1), other(1, 0), other(0, -1)
    (dr, idr), (dl, idl) = other(1, 1), other(1, -1)
    dr &= ~right & ~down
    dl &= ~left & ~down
    for ok, j, w in ((right, ir, 0.948), (down, idn, 0.948), (dr, idr, 1.343), (dl, idl, 1.343)):
        a = np.flatnonzero(ok)
        np.add.at(out, a, 0.5 * w)
        np.add.at(out, j[a], 0.5 * w)
    return out


def degree(pts, seg, shape):
    pts = np.asarray(pts, np.int64)
    width = int(shape[1]) + 2
    key = (pts[:, 0] + 1) * width + (pts[:, 1] + 1)
    order = np.argsort(key, kind="stable")
    ks, ss = key[order], seg[order]
    out = np.zeros(len(pts), int)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                q = key + dy * width + dx
                i = np.minimum(np.searchsorted(ks, q), len(ks) - 1)
                out += (ks[i] == q) & (ss[i] == seg)
    return out


def dense_truth(photo, step=0.5):
    """Every true stretch densified to ``step`` px: yx, class code, diameter px, visible."""
    ys, cs, ds, vs = [], [], [], []
    for c in photo.centrelines:
        p = c["points_yx"]
        if len(p) < 2:
            continue
        arc = np.r_[0.0, np.cumsum(np.hypot(*np.diff(p, axis=0).T))]
        u = np.arange(0.0, arc[-1] + 1e-9, step)
        ys.append(np.stack([np.interp(u, arc, p[:, 0]), np.interp(u, arc, p[:, 1])], 1))
        cs.append(np.full(len(u), CODES[c["class"]]))
        ds.append(np.interp(u, arc, c["diameter_mm"]) * photo.px_per_mm)
        vis = c["visible"][np.clip(np.searchsorted(arc, u), 0, len(arc) - 1)]
        vs.append(vis)
    if not ys:
        return np.zeros((0, 2)), np.zeros(0, int), np.zeros(0), np.zeros(0, bool)
    return np.concatenate(ys), np.concatenate(cs), np.concatenate(ds), np.concatenate(vs)


def split_photo(photo, analysis, seen, acc):
    from scipy.spatial import cKDTree

    det, out = seen["det"], seen["out"]
    m, n = analysis.labels.shape
    ok = np.isfinite(out.width_px) & (out.point_class > 0)
    e_pts = out.points_yx[ok].astype(np.float64)
    e_cls = out.point_class[ok]
    e_len = point_lengths(out.points_yx[ok], out.piece[ok], (m, n))
    deg = degree(out.points_yx[ok], det.segment[ok], (m, n))
    e_w = out.width_px[ok]
    nrm = det.normals_yx[ok]
    e_tan = 1.0 / np.maximum(np.abs(nrm).max(axis=1), 0.7071)
    ppm = photo.px_per_mm
    # --- truth points: found right, found as another class, missed (end / gap / whole)
    tree = cKDTree(e_pts) if len(e_pts) else None
    branches = {}
    for c in photo.centrelines:
        branches.setdefault((c["structure"], c["branch"]), []).append(c)
    for parts in branches.values():
        parts.sort(key=lambda c: c["start"])
        p = np.concatenate([c["points_yx"] for c in parts])
        cls = np.concatenate([np.full(len(c["points_yx"]), CODES[c["class"]]) for c in parts])
        vis = np.concatenate([c["visible"] for c in parts])
        d = np.concatenate([c["diameter_mm"] for c in parts]) * ppm
        step = np.hypot(*np.diff(p, axis=0).T) if len(p) > 1 else np.zeros(0)
        share = np.zeros(len(p))
        share[:-1] += 0.5 * step
        share[1:] += 0.5 * step
        arc = np.r_[0.0, np.cumsum(step)]
        inside = (p[:, 0] >= 0) & (p[:, 0] <= m - 1) & (p[:, 1] >= 0) & (p[:, 1] <= n - 1)
        v = vis & inside
        if tree is not None:
            dist, j = tree.query(p)
        else:
            dist, j = np.full(len(p), np.inf), np.zeros(len(p), int)
        found = dist <= np.maximum(2.5, 0.6 * d)
        # visible runs along the branch
        edges = np.flatnonzero(np.diff(np.r_[0, v.astype(int), 0]))
        for a, b in zip(edges[::2], edges[1::2]):
            run = slice(a, b)
            to_end = np.minimum(arc[run] - arc[a], arc[b - 1] - arc[run])
            any_found = found[run].any()
            if any_found:  # stretches of missed points inside the run: their length in diameters
                miss = ~found[run]
                ee = np.flatnonzero(np.diff(np.r_[0, miss.astype(int), 0]))
                for g0, g1 in zip(ee[::2] + a, ee[1::2] + a):
                    t = int(np.bincount(cls[g0:g1]).argmax())
                    glen = share[g0:g1].sum()
                    dd = max(float(np.median(d[g0:g1])), 1.0)
                    at_end = g0 == a or g1 == b
                    h = acc["gaps"].setdefault((t, at_end), np.zeros(6))
                    h[min(5, int(np.searchsorted([1, 2, 4, 8, 16], glen / dd, side="right")))] += glen
            for k, te in zip(range(a, b), to_end):
                t = int(cls[k])
                if found[k]:
                    e = int(e_cls[j[k]])
                    cat = "right" if e == t else f"as {NAMES[e]}"
                elif not any_found:
                    cat = "missed, whole"
                elif te <= max(ppm, d[k]):
                    cat = "missed, end"
                else:
                    cat = "missed, gap"
                acc["truth"].setdefault(t, dict.fromkeys(TRUTH_CATS, 0.0))[cat] += share[k]
    # --- engine points: where the engine's length lies
    ty, tc, td, tv = dense_truth(photo)
    if len(e_pts):
        if len(ty):
            dist, j = cKDTree(ty).query(e_pts)
            near = dist <= np.maximum(2.5, 0.6 * td[j])
        else:
            near = np.zeros(len(e_pts), bool)
            j = np.zeros(len(e_pts), int)
        ign = photo.ignore[e_pts[:, 0].astype(int), e_pts[:, 1].astype(int)]
        for e in range(1, 5):
            s = e_cls == e
            cell = acc["engine"].setdefault(e, dict.fromkeys(ENGINE_CATS, 0.0))
            onv = s & near & tv[j]
            cell["on right"] += e_len[onv & (tc[j] == e)].sum()
            r = onv & (tc[j] == e)
            x = acc["extra"].setdefault(e, np.zeros(4))
            ends = np.flatnonzero(r & (deg == 1))
            if len(ends):
                from scipy.spatial import cKDTree as _T
                eseg = det.segment[ok]
                dd, jj = _T(e_pts).query(e_pts[ends], k=60, distance_upper_bound=4 * np.nanmax(e_w[ends]) + 5)
                gap = np.full(len(ends), np.inf)
                for q in range(len(ends)):
                    okk = np.isfinite(dd[q]) & (jj[q] < len(e_pts))
                    other = okk.copy()
                    other[okk] = eseg[jj[q][okk]] != eseg[ends[q]]
                    if other.any():
                        gap[q] = dd[q][other].min()
                rel = gap / np.maximum(np.nan_to_num(e_w[ends], nan=1.0), 1.0)
                hh = acc["endgap"].setdefault(e, np.zeros(6))
                hh += np.bincount(np.searchsorted([0.5, 1, 2, 4, np.inf], rel, side="right"), minlength=6)[:6]
            x += (r.sum(), (r & (deg <= 1)).sum(), (0.5 * np.nan_to_num(e_w) * (deg == 1) + np.nan_to_num(e_w) * (deg == 0))[r].sum(), e_tan[r].sum())
            cell["on other class"] += e_len[onv & (tc[j] != e)].sum()
            rest = s & ~onv
            cell["on ignore"] += e_len[rest & (ign | near)].sum()
            cell["on nothing"] += e_len[rest & ~(ign | near)].sum()
    for e in range(1, 5):
        acc["pieces"][e] = acc["pieces"].get(e, 0.0) + float(out.piece_length_px[out.piece_class == e].sum())
    # --- area, px: truth class pixels by engine label
    tl = photo.labels * (~photo.ignore) * photo.skin_mask
    el = analysis.labels * photo.skin_mask
    for t in range(1, 5):
        row = acc["area"].setdefault(t, np.zeros(5))
        row += np.bincount(el[tl == t], minlength=5)[:5]
    for e in range(1, 5):
        col = acc["area_e"].setdefault(e, np.zeros(5))
        col += np.bincount(tl[el == e], minlength=5)[:5]


def new_acc():
    return {"truth": {}, "engine": {}, "area": {}, "area_e": {}, "extra": {}, "gaps": {}, "endgap": {}, "pieces": {}}


def report(acc, title):
    print(f"\n### {title}\n")
    print("Visible true length (px) by where it went, share of the class's true length:\n")
    print("| true class | true px | " + " | ".join(TRUTH_CATS) + " |")
    print("|---|---|" + "---|" * len(TRUTH_CATS))
    for t, cell in sorted(acc["truth"].items()):
        tot = sum(cell.values())
        print(f"| {NAMES[t]} | {tot:.0f} | " + " | ".join(f"{cell[k] / tot:.3f}" for k in TRUTH_CATS) + " |")
    print("\nEngine length (px, Kulpa) by where its points lie, share of the class's TRUE length:\n")
    print("| engine class | engine px / true px | " + " | ".join(ENGINE_CATS) + " | measure ratio (on right / true right) |")
    print("|---|---|" + "---|" * len(ENGINE_CATS) + "---|")
    for e, cell in sorted(acc["engine"].items()):
        tt = acc["truth"].get(e)
        tot_t = sum(tt.values()) if tt else float("nan")
        right = tt["right"] if tt and tt["right"] > 0 else float("nan")
        print(f"| {NAMES[e]} | {sum(cell.values()) / tot_t:.3f} | " + " | ".join(f"{cell[k] / tot_t:.3f}" for k in ENGINE_CATS)
              + f" | {cell['on right'] / right:.3f} |")
    for e, v in sorted(acc["pieces"].items()):
        tt = acc["truth"].get(e)
        if tt:
            print(f"  {NAMES[e]}: the engine's own length (its pieces, as reported) / true px {v / sum(tt.values()):.3f}")
    for e, x in sorted(acc["extra"].items()):
        tt = acc["truth"].get(e)
        if tt and tt["right"] > 0:
            print(f"  {NAMES[e]} on right: points {x[0]:.0f}, ends {x[1]:.0f}, half-width at ends / true right {x[2] / tt['right']:.3f}, "
                  f"points*max(|tangent|) / true right {x[3] / tt['right']:.3f}, points / true right {x[0] / tt['right']:.3f}")
    print("\nMissed stretches inside found runs (end: touching the run's end), px by length in diameters (<1, 1-2, 2-4, 4-8, 8-16, >=16) / true class px:")
    for (t, end), h in sorted(acc["gaps"].items()):
        tot = sum(acc["truth"][t].values())
        print(f"  {NAMES[t]} {'end' if end else 'inner'}: " + " ".join(f"{v / tot:.3f}" for v in h))
    print("\nChain ends on the right class: nearest point of another chain, in the end's diameters (<0.5, 0.5-1, 1-2, 2-4, >=4, none):")
    for e, h in sorted(acc["endgap"].items()):
        print(f"  {NAMES[e]}: " + " ".join(f"{v:.0f}" for v in h))
    print("\nArea (px): true class pixels by engine label, share of the true area (engine area / true area last):\n")
    print("| true class | none | red | blue | reticular | over 3 mm | engine area / true area |")
    print("|---|---|---|---|---|---|---|")
    for t, row in sorted(acc["area"].items()):
        tot = row.sum()
        eng = acc["area_e"].get(t, np.zeros(5)).sum()
        print(f"| {NAMES[t]} | " + " | ".join(f"{v / max(tot, 1):.3f}" for v in row) + f" | {eng / max(tot, 1):.3f} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    set_a_arguments(ap, cache=True)
    ap.add_argument("--json", type=Path, default=None)
    args, (w, h), kw = set_a_start(ap, argv)
    rec = Recorder()
    total, per_type = new_acc(), {t: new_acc() for t in range(1, 7)}
    try:
        for i, seed, photo, a in set_a_analysed(args, (w, h), kw, rec):
            split_photo(photo, a, rec.seen, total)
            split_photo(photo, a, rec.seen, per_type[1 + i % 6])
            print(f"seed {seed}", flush=True)
    finally:
        rec.close()
    report(total, "all photos")
    for t in range(1, 7):
        report(per_type[t], f"skin type {t}")
    if args.json:
        conv = lambda a: {k: {str(kk): (vv.tolist() if isinstance(vv, np.ndarray) else vv) for kk, vv in v.items()} for k, v in a.items()}
        args.json.write_text(json.dumps({"all": conv(total), **{str(t): conv(per_type[t]) for t in per_type}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
