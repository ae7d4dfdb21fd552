"""Where the engine's missed vessel length lies against its own chains: past a chain's end, between two ends, or away from every chain (issue 4).

Run:  .venv/bin/python benchmarks/diag_missed_paths.py [--n 24] [--seed0 400] [--size 1600x1200]
      [--cache DIR] [--set key=value ...] [--near-mm 1.5] [--min-cos 0.5] [--evidence] [--json FILE]
      [--series 301 --series-size 2400x1800]   # the whole-photo baseline of a series instead

Set A's photos as ``bench_synth_accuracy.py`` draws them (the engine given the true scale). The
population is the recall figure's: every visible true centreline point of a vessel >= 0.2 mm,
weighted by its length; a point is *missed* when its pixel is not painted. The missed points of
one true centreline form *runs* (maximal stretches of consecutive missed points; a point that is
not visible, or under 0.2 mm, ends a run without counting either way).

The engine's chains are read off its painted mask on the photo's skin, skeletonised (as clDice
does); a chain *end* is a skeleton pixel with one 8-neighbour, its outward direction taken from
the pixel reached 8 skeleton steps back (fewer on a short piece). One side of a run (its first or
its last missed point) *meets an end* when an end lies within ``--near-mm`` of that point and the
run heads away from the end along its direction: the vector from the end to the run's point
``--near-mm`` further into the run (its far point if shorter) makes a cosine of at least
``--min-cos`` with the end's outward direction. Each run falls in the first of:

- ``between two ends``: both sides meet an end (a gap the engine's ``bridge_gaps``, 1 px, and its
  end tracking, ``extend_ends_mm``, did not close);
- ``continues an end``: one side meets an end;
- ``beside a chain``: neither, but the engine's skeleton lies within ``--near-mm`` of a point of
  the run (a vessel running along, crossing or branching from a found one);
- ``isolated``: no skeleton within ``--near-mm`` of any of its points.

Tables:

1. missed length (mm) and its shares by category, per class and per contrast band (ΔE00 at the
   vessel's centre, the truth's ``delta_e``, the length-weighted median of the run);
2. what the engine's own detection holds along each run (``veinscope.pipeline.measure_vessels``
   wrapped for the run): at least half its points within 2 px of a centreline point that
   ``measure_vessels`` accepted (``accepted centreline (painting)``: found, painted off the true
   centre or too narrow), of one it was given but dropped (``detected, dropped by measure``: a
   colour or overlap rule), or neither (``no centreline``: only there can a path method add);
3. for the runs between two ends with no centreline, how the detection's chain ends nearest the
   run's two sides lie (one chain, or two chains by gap and angle: what joining chain ends
   across a gap could close; session 39's ``analyze(link_ends_mm)`` did that, measured off and
   removed in session 40);
4. for the runs that continue an end, the missed length within 2 mm, 2-5 mm and beyond 5 mm of
   the end side; the recall (>= 0.2 mm) each category's length would add if all of it were found;
5. with ``--evidence``, an oracle's path evidence: along the *true* course from each side of a
   run that meets an end (its first 2 mm, and the whole run up to 10 mm), the mean of the
   engine's line strength over its noise unit (``diag_isolated_pieces.analyse_capturing``, the
   map ``detect_vessels`` thresholds; the maximum within 1 px of each point), against the same
   mean along 3000 straight lines of the same length on the photo's skin (1 mm inside its edge)
   at least 5 px from every true and every painted vessel: the share of that length beating their
   median by 2.33 and 3.09 robust spreads (a-contrario false-alarm rates 1e-2 and 1e-3 per
   test). The true course is given, so this bounds what a search from the end could accept.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

CATS = ("between two ends", "continues an end", "beside a chain", "isolated")
#: what the engine's own detection holds along a missed run (at least half its points within 2 px)
SUBS = ("accepted centreline (painting)", "detected, dropped by measure", "no centreline")
NAMES = {"red_telangiectasia": "red", "blue_telangiectasia": "blue", "reticular": "reticular"}
BANDS = ((2.0, 3.0, "2-3"), (3.0, 5.0, "3-5"), (5.0, 10.0, "5-10"), (10.0, np.inf, ">=10"))


def chain_ends(skel: np.ndarray, back: int = 8):
    """Skeleton ends of ``skel``: (K, 2) int positions and (K, 2) unit outward directions."""
    from scipy import ndimage as ndi

    sk = skel.astype(np.uint8)
    nb = ndi.convolve(sk, np.ones((3, 3), np.uint8), mode="constant") - sk
    ey, ex = np.nonzero(skel & (nb == 1))
    m, n = skel.shape
    dirs = np.zeros((len(ey), 2))
    for k, (y, x) in enumerate(zip(ey, ex)):
        prev, cur = None, (y, x)
        for _ in range(back):
            nxt = None
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    yy, xx = cur[0] + dy, cur[1] + dx
                    if (dy or dx) and 0 <= yy < m and 0 <= xx < n and skel[yy, xx] and (yy, xx) != prev and (yy, xx) != (y, x):
                        nxt = (yy, xx)
                        break
                if nxt is not None:
                    break
            if nxt is None:
                break
            prev, cur = cur, nxt
        d = np.array([y - cur[0], x - cur[1]], float)
        nrm = np.hypot(*d)
        dirs[k] = d / nrm if nrm > 0 else 0.0
    return np.stack([ey, ex], 1), dirs


def _runs(flag: np.ndarray):
    """(start, stop) index pairs of the True runs of ``flag``."""
    d = np.diff(np.r_[0, flag.astype(np.int8), 0])
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def classify(labels, skin, centrelines, ppm, *, near_mm=1.5, min_cos=0.5, window_mm=2.0, d_det=None, d_acc=None, det=None):
    """Rows ``(class, ΔE00 median, length_mm, category, [(dist_from_end_mm, length_mm) ...],
    windows)`` for every missed run, and the total recall population length (mm); ``windows``:
    for each side of a run that meets an end, the run's true points (K, 2) within ``window_mm``
    of that side and their length (mm), and the whole run's points (at most 10 mm from it);
    with the distance maps to the detection's centreline points ``d_det`` and to those
    ``measure_vessels`` accepted ``d_acc`` (M, N), also ``sub`` (one of ``SUBS``); with the
    detection's chain ends ``det`` (:func:`_det_ends`), for a run between two ends also how they
    lie (:func:`facing`), else None."""
    from bench_synth_accuracy import recall_population
    from scipy import ndimage as ndi
    from scipy.spatial import cKDTree
    from skimage.morphology import skeletonize

    painted = (labels > 0) & skin
    skel = skeletonize(painted)
    ends, dirs = chain_ends(skel)
    tree = cKDTree(ends) if len(ends) else None
    dist_skel = ndi.distance_transform_edt(~skel)
    r = near_mm * ppm
    m, n = labels.shape
    rows, total = [], 0.0
    for c, pop, y, x in recall_population(centrelines, (m, n)):
        p = c["points_yx"]
        total += float(c["length_mm"][pop].sum())
        miss = pop & ~painted[y, x]
        arc = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(p, axis=0), axis=1))]
        cls = NAMES.get(c["class"], "over 3 mm")
        for a, b in _runs(miss):
            ll = c["length_mm"][a:b]
            if ll.sum() <= 0:
                continue
            order = np.argsort(c["delta_e"][a:b])
            cum = np.cumsum(ll[order])
            de = float(c["delta_e"][a:b][order][np.searchsorted(cum, cum[-1] / 2)])
            met, wins = [], []
            for side, (i0, sgn) in enumerate(((a, 1), (b - 1, -1))):
                ok = False
                if tree is not None:
                    # the run's point near_mm further in (its far point if shorter)
                    target = arc[i0] + sgn * r
                    j = int(np.clip(np.searchsorted(arc, target), a, b - 1))
                    for k in tree.query_ball_point(p[i0], r):
                        v = p[j] - ends[k]
                        nv = np.hypot(*v)
                        if nv == 0 or float(v @ dirs[k]) / nv >= min_cos:
                            ok = True
                            break
                met.append(ok)
                if ok:
                    d = (arc[a:b] - arc[a]) if sgn > 0 else (arc[b - 1] - arc[a:b])
                    near, whole = d <= window_mm * ppm, d <= 10.0 * ppm
                    order = np.argsort(d)
                    wins.append((p[a:b][order][near[order]], float(ll[near].sum()), p[a:b][order][whole[order]], float(ll[whole].sum())))
            if met[0] and met[1]:
                cat = CATS[0]
            elif met[0] or met[1]:
                cat = CATS[1]
            elif (dist_skel[y[a:b], x[a:b]] <= r).any():
                cat = CATS[2]
            else:
                cat = CATS[3]
            # distance of each point from the end side (mm along the vessel), for "continues an end"
            if cat == CATS[1]:
                dist = (arc[a:b] - arc[a]) if met[0] else (arc[b - 1] - arc[a:b])
                prof = list(zip((dist / ppm).tolist(), ll.tolist()))
            else:
                prof = []
            sub = SUBS[2]
            if d_acc is not None and (d_acc[y[a:b], x[a:b]] <= 2.0).mean() >= 0.5:
                sub = SUBS[0]
            elif d_det is not None and (d_det[y[a:b], x[a:b]] <= 2.0).mean() >= 0.5:
                sub = SUBS[1]
            face = None
            if det is not None and cat == CATS[0]:
                face = facing(det, p[a], p[b - 1], ppm)
            rows.append((cls, de, float(ll.sum()), cat, prof, wins, sub, face))
    return rows, total


def _path_mean(ridge, pts):
    """Mean of ``ridge`` at the rounded points ``pts`` (K, 2)."""
    m, n = ridge.shape
    y = np.clip(np.round(pts[:, 0]).astype(int), 0, m - 1)
    x = np.clip(np.round(pts[:, 1]).astype(int), 0, n - 1)
    return float(ridge[y, x].mean())


class Null:
    """Mean line strength along straight paths on the photo's own skin away from every vessel:
    ``n`` paths of each length asked for (random start and direction, every point on ``allowed``)."""

    def __init__(self, ridge, allowed, rng, n=3000):
        self.ridge, self.allowed, self.rng, self.n, self.cache = ridge, allowed, rng, n, {}
        self.ys, self.xs = np.nonzero(allowed)

    def level(self, length_px: int, z: float) -> float:
        if length_px not in self.cache:
            m, n = self.ridge.shape
            vals, tries = [], 0
            t = np.arange(length_px + 1, dtype=float)
            while len(vals) < self.n and tries < 20 * self.n and len(self.ys):
                tries += 1
                k = self.rng.integers(len(self.ys))
                a = self.rng.uniform(0, np.pi)
                y = np.round(self.ys[k] + t * np.sin(a)).astype(int)
                x = np.round(self.xs[k] + t * np.cos(a)).astype(int)
                if y.min() < 0 or x.min() < 0 or y.max() >= m or x.max() >= n or not self.allowed[y, x].all():
                    continue
                vals.append(float(self.ridge[y, x].mean()))
            v = np.array(vals) if vals else np.zeros(1)
            med = float(np.median(v))
            self.cache[length_px] = (med, 1.4826 * float(np.median(np.abs(v - med))), v)
        med, sp, v = self.cache[length_px]
        return med + z * sp


def evidence(rows, ridge, allowed, ppm, rng, zs=(2.33, 3.09)):
    """For every side of a run that meets an end: ``(class, ΔE00, window_mm, whole_mm, passes
    of the 2 mm window at each z, passes of the whole run (<= 10 mm) at each z)``; a window
    passes when its mean line strength (max within 1 px) beats the straight skin paths' median
    of the same length by ``z`` robust spreads."""
    null = Null(ridge, allowed, rng)
    out = []
    for r in rows:
        for near_pts, near_mm, whole_pts, whole_mm in r[5]:
            if len(near_pts) < 2:
                continue
            ln = max(2, int(round(np.linalg.norm(np.diff(near_pts, axis=0), axis=1).sum())))
            lw = max(2, int(round(np.linalg.norm(np.diff(whole_pts, axis=0), axis=1).sum())))
            mn, mw = _path_mean(ridge, near_pts), _path_mean(ridge, whole_pts)
            out.append((r[0], r[1], near_mm, whole_mm, [mn > null.level(ln, z) for z in zs], [mw > null.level(lw, z) for z in zs],
                        r[6]))
    return out


def evidence_table(ev, zs=(2.33, 3.09), out=print):
    res = {}
    out("\nPath evidence on the true course (oracle: an upper bound for a search from the end): share of the "
        "missed length past an end whose mean line strength beats straight skin paths of the same length")
    out("| group | window mm | 2 mm window z " + " | z ".join(f"{z:g}" for z in zs) + " | whole mm | whole run z "
        + " | z ".join(f"{z:g}" for z in zs) + " |")
    out("|---|---|" + "---|" * len(zs) + "---|" + "---|" * len(zs))
    groups = [("all", lambda e: True)] + [(c, lambda e, c=c: e[0] == c) for c in ("red", "blue", "reticular", "over 3 mm")]
    groups += [(f"dE {b}", lambda e, b=b: _band(e[1]) == b) for *_, b in BANDS]
    groups += [(u, lambda e, u=u: e[6] == u) for u in SUBS]
    for name, f in groups:
        sel = [e for e in ev if f(e)]
        wn, ww = sum(e[2] for e in sel), sum(e[3] for e in sel)
        if wn <= 0:
            continue
        pn = [sum(e[2] for e in sel if e[4][i]) / wn for i in range(len(zs))]
        pw = [sum(e[3] for e in sel if e[5][i]) / max(ww, 1e-9) for i in range(len(zs))]
        res[name] = {"window_mm": wn, "whole_mm": ww, "window_pass": pn, "whole_pass": pw}
        out(f"| {name} | {wn:.0f} | " + " | ".join(f"{v:.2f}" for v in pn) + f" | {ww:.0f} | " + " | ".join(f"{v:.2f}" for v in pw) + " |")
    return res


def _det_ends(det, n, back=8):
    """The detection's chain ends (its own chains, not the painted skeleton's): positions (E, 2),
    outward directions (E, 2), chain of each (E,). An end's direction is the unit vector from the
    point ``back`` steps back along its chain (fewer on a short chain) to the end; (0, 0) for a
    one-point chain (as session 39's ``extend.link_ends``, since removed, read them)."""
    from veinscope._kernels.track import _walk_back, chain_ends

    ys = np.ascontiguousarray(det.points_yx[:, 0], np.int64)
    xs = np.ascontiguousarray(det.points_yx[:, 1], np.int64)
    seg = np.ascontiguousarray(det.segment, np.int64)
    ends = chain_ends(ys, xs, seg, n)
    keys = ys * n + xs
    tan = np.zeros((ends.size, 2))
    path = np.empty(back + 1, np.int64)
    for i, e in enumerate(ends.tolist()):
        far = int(path[_walk_back(keys, seg, n, e, path) - 1])
        ty, tx = float(keys[e] // n - keys[far] // n), float(keys[e] % n - keys[far] % n)
        norm = float(np.hypot(ty, tx))
        if norm > 0.0:
            tan[i] = ty / norm, tx / norm
    return np.stack([ys[ends], xs[ends]], 1).astype(float), tan, seg[ends]


def facing(det_ends, p0, p1, ppm):
    """How the detection's chain ends nearest the two sides ``p0``, ``p1`` of a missed run lie:
    ``"one chain"`` (the same chain's ends, or one end), else ``"two chains, gap G, angle A"``
    with the gap between the two ends (<= 3 mm, 3-5 mm, > 5 mm) and the larger angle between an
    end's direction and the way to the other end (<= 30, 30-45, > 45 degrees)."""
    pos, tan, seg = det_ends
    if len(pos) < 2:
        return "one chain"
    k0 = int(np.argmin(np.hypot(*(pos - p0).T)))
    k1 = int(np.argmin(np.hypot(*(pos - p1).T)))
    if k0 == k1 or seg[k0] == seg[k1]:
        return "one chain"
    v = pos[k1] - pos[k0]
    g = float(np.hypot(*v))
    u = v / max(g, 1e-9)
    c = min(float(tan[k0] @ u), float(tan[k1] @ -u))
    gb = "<= 3 mm" if g <= 3 * ppm else ("3-5 mm" if g <= 5 * ppm else "> 5 mm")
    ab = "<= 30" if c >= np.cos(np.radians(30)) else ("30-45" if c >= np.cos(np.radians(45)) else "> 45")
    return f"two chains, gap {gb}, angle {ab}"


def _band(de):
    return next((b for lo, hi, b in BANDS if lo <= de < hi), "<2")


def tables(rows, total, out=print):
    """Print the tables; return a dict of the figures."""
    res = {"population_mm": total, "missed_mm": sum(r[2] for r in rows)}
    groups = [("all", lambda r: True)]
    groups += [(c, lambda r, c=c: r[0] == c) for c in ("red", "blue", "reticular", "over 3 mm")]
    groups += [(f"dE {b}", lambda r, b=b: _band(r[1]) == b) for *_, b in BANDS]
    out(f"recall population {total:.0f} mm, missed {res['missed_mm']:.0f} mm (recall {1 - res['missed_mm'] / total:.3f})\n")
    out("| group | missed mm | runs | " + " | ".join(CATS) + " |")
    out("|---|---|---|" + "---|" * len(CATS))
    for name, f in groups:
        sel = [r for r in rows if f(r)]
        mm = sum(r[2] for r in sel)
        if mm <= 0:
            continue
        share = {k: sum(r[2] for r in sel if r[3] == k) for k in CATS}
        res[name] = {"missed_mm": mm, "runs": len(sel), **share}
        out(f"| {name} | {mm:.0f} | {len(sel)} | " + " | ".join(f"{share[k]:.0f} ({100 * share[k] / mm:.0f} %)" for k in CATS) + " |")
    out("\nWhat the engine's detection holds along the missed runs (mm; a run counts where at least half its "
        "points lie within 2 px of a centreline point the detection passes to measure_vessels / of one it accepts):")
    out("| category | " + " | ".join(SUBS) + " |")
    out("|---|" + "---|" * len(SUBS))
    for k in (*CATS, None):
        sel = [r for r in rows if k is None or r[3] == k]
        mm = sum(r[2] for r in sel)
        if mm <= 0:
            continue
        sh = {u: sum(r[2] for r in sel if r[6] == u) for u in SUBS}
        res[f"sub:{k or 'all'}"] = sh
        out(f"| {k or 'all'} | " + " | ".join(f"{sh[u]:.0f} ({100 * sh[u] / mm:.0f} %)" for u in SUBS) + " |")
    sel = [r for r in rows if r[3] == CATS[0] and r[7] is not None and r[6] == SUBS[2]]
    if sel:
        mm = sum(r[2] for r in sel)
        out(f"\nBetween two ends with no centreline ({mm:.0f} mm): the detection's chain ends nearest the run's two sides")
        out("| ends | mm | share |\n|---|---|---|")
        face = {}
        for r in sel:
            face[r[7]] = face.get(r[7], 0.0) + r[2]
        for k, v in sorted(face.items(), key=lambda t: -t[1]):
            out(f"| {k} | {v:.0f} | {100 * v / mm:.0f} % |")
        res["facing"] = face
    out("\nRecall (>= 0.2 mm) each category would add if all of its length were found:")
    for k in CATS:
        mm = sum(r[2] for r in rows if r[3] == k)
        out(f"- {k}: {mm:.0f} mm, +{mm / total:.3f}")
        res[f"gain:{k}"] = mm / total
    prof = np.array([pt for r in rows if r[3] == CATS[1] for pt in r[4]]).reshape(-1, 2)
    if len(prof):
        out("\nContinuing an end: missed length by distance from the end side")
        for lo, hi in ((0, 2), (2, 5), (5, np.inf)):
            sel = (prof[:, 0] >= lo) & (prof[:, 0] < hi)
            mm = float(prof[sel, 1].sum())
            out(f"- {lo}-{hi} mm: {mm:.0f} mm ({100 * mm / prof[:, 1].sum():.0f} %), recall +{mm / total:.3f}")
            res[f"continue_{lo}-{hi}mm"] = mm
    lens = np.array([r[2] for r in rows])
    cats = np.array([r[3] for r in rows])
    out("\nRun lengths (mm), length-weighted median by category:")
    for k in CATS:
        sel = lens[cats == k]
        if len(sel):
            o = np.sort(sel)
            med = float(o[np.searchsorted(np.cumsum(o), o.sum() / 2)])
            out(f"- {k}: {len(sel)} runs, weighted median {med:.1f} mm")
            res[f"run_median_mm:{k}"] = med
    return res


def main(argv=None) -> int:
    from bench_synth_accuracy import set_a_arguments, set_a_options, set_a_photo

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    set_a_arguments(ap, cache=True)
    ap.add_argument("--near-mm", type=float, default=1.5)
    ap.add_argument("--min-cos", type=float, default=0.5)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--series", type=int, default=None, help="the baseline photo of this compare series instead")
    ap.add_argument("--series-size", default="2400x1800")
    ap.add_argument("--evidence", action="store_true", help="also the path evidence table (the engine's line strength captured)")
    args = ap.parse_args(argv)
    (w, h), kw = set_a_options(args)
    import veinscope

    veinscope.warmup()
    rows, total, ev = [], 0.0, []
    rng = np.random.default_rng(0)
    if args.series is not None:
        from bench_compare import benchmark_series

        sw, sh = (int(v) for v in args.series_size.split("x"))
        photos = [(args.series, benchmark_series(args.series, size=(sw, sh)).photos[0])]
    else:
        photos = ((args.seed0 + i, i) for i in range(args.n) if not args.types or 1 + i % 6 in args.types)
    for seed, item in photos:
        photo = item if args.series is not None else set_a_photo(item, seed, (w, h), args.cache)
        ridge = None
        cap = {}
        import veinscope.pipeline as pl

        mv0 = pl.measure_vessels

        def _measure(det, *a, **k):
            out = mv0(det, *a, **k)
            cap.update(det=det, out=out)
            return out

        pl.measure_vessels = _measure
        if args.evidence:
            from diag_isolated_pieces import analyse_capturing

            a, ridge, _ = analyse_capturing(photo.rgb, photo.px_per_mm, kw)
            labels, skin = a.labels, a.skin
        else:
            a = veinscope.analyze(photo.rgb, px_per_mm=photo.px_per_mm, **kw)
            labels, skin = a.labels, a.skin
        pl.measure_vessels = mv0
        from scipy import ndimage as ndi

        pts = cap["det"].points_yx
        free = np.ones(labels.shape, bool)
        free[pts[:, 0], pts[:, 1]] = False
        d_det = ndi.distance_transform_edt(free)
        acc = pts[np.isfinite(cap["out"].width_px)]
        free[:] = True
        free[acc[:, 0], acc[:, 1]] = False
        d_acc = ndi.distance_transform_edt(free)
        r, t = classify(labels, photo.skin_mask, photo.centrelines, photo.px_per_mm, near_mm=args.near_mm, min_cos=args.min_cos,
                        d_det=d_det, d_acc=d_acc, det=_det_ends(cap["det"], labels.shape[1]))
        rows += r
        total += t
        if ridge is not None:
            near = ndi.maximum_filter(ridge, size=3)
            ppm = photo.px_per_mm
            away = ndi.binary_dilation((photo.labels > 0) | photo.ignore | (labels > 0), iterations=5)
            inner = ndi.binary_erosion(photo.skin_mask & skin, iterations=max(1, int(ppm)))
            ev += evidence(r, near, inner & ~away, ppm, rng)
        mm = {k: sum(x[2] for x in r if x[3] == k) for k in CATS}
        print(f"{seed}: missed {sum(mm.values()):.0f} of {t:.0f} mm; " + ", ".join(f"{k} {v:.0f}" for k, v in mm.items()), flush=True)
    res = tables(rows, total)
    if args.evidence:
        res["evidence"] = evidence_table(ev)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
