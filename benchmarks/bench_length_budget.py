"""A class's length error on generated photos taken apart: detection, class, measure (issue 4).

Run:  .venv/bin/python benchmarks/bench_length_budget.py [--n 24] [--seed0 400] [--size 1600x1200]
      [--cache DIR] [--set key=value ...]

Same photos as ``bench_synth_accuracy.py`` (photo i: seed seed0 + i, skin type 1 + i % 6, the
rotating scales), the engine given the true scale; its detection and measurement are recorded
by ``bench_synth_losses.Recorder`` (which also runs the detection with looser settings, only to
sort the losses). Everything in photo pixels and pooled over the photos (the truth's millimetres
are on the tilted skin plane; on set A the two scales agree to 0.2 % at the median). All
diameters count (``bench_synth_losses`` counts vessels >= 0.2 mm only; half of the red
telangiectasia's visible length is under 0.15 mm).

1. **Budget** of each class, shares of its visible true length (px). The engine's length of
   the class (Kulpa's weights on its pieces, as ``measure.chain_lengths``; without the gaps
   ``join_ends`` adds, which the engine's reported length has) = the part on true vessels of the
   class (``on right``) + the rest (``extra``: on a true vessel of another class, on an
   ``ignore`` pixel, on no vessel). ``on right`` is split into the true length it spans
   (``span``: for each piece and true branch, the arc between the farthest true points its
   points project to, within max(2.5 px, 0.6 d)) and the ``measure ratio`` (on right / span: the
   length estimator and the centreline's wobble on the vessels found). The true length not
   spanned is: ``tolerance`` (within max(2.5 px, 0.6 d) of an engine point of the class but
   outside every span: mostly the last pixels beyond a chain's end), ``as other class``,
   ``missed tail`` (not found, between a visible run's end and its first found point),
   ``missed gap`` (not found, between two found points of the run) and ``missed whole`` (a
   visible run with no point found).
2. **Why missed**, for the class given by ``--cls`` (default red telangiectasia): every
   visible true point falls in the first of ``painted``, ``near`` (an accepted centreline
   point within 2.5 px, its disc off the pixel), ``dropped: melanin`` / ``dropped: other`` (a
   detected chain within 2.5 px rejected by the colour rule or another rule of
   ``measure_vessels``), ``loose candidate`` (a centreline candidate within 2.5 px when the
   high level, the band length and the piece length are not asked for), ``looser candidate``
   (also the low level at 0.6 of itself), ``none``; by position on the run (found run, tail,
   gap, whole), by diameter and by contrast (ΔE00 at the centre, the truth's ``delta_e``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_synth_accuracy import set_a_analysed, set_a_arguments, set_a_start  # noqa: E402
from bench_synth_length import point_lengths  # noqa: E402
from bench_synth_losses import Recorder, stage_maps  # noqa: E402

CODES = {"red_telangiectasia": 1, "blue_telangiectasia": 2, "reticular": 3, "over_3mm": 4}
NAMES = {1: "red", 2: "blue", 3: "reticular", 4: "over 3 mm"}
BUDGET = ("span", "tolerance", "as other class", "missed tail", "missed gap", "missed whole")
EXTRA = ("on right", "on other class", "on ignore", "on nothing")
STAGES = ("painted", "near", "dropped: melanin", "dropped: other", "loose candidate", "looser candidate", "none")
POSITIONS = ("found run", "tail", "gap", "whole")


def run_positions(found: np.ndarray) -> np.ndarray:
    """Position of each point of one visible run: 0 found or between found points' ends of the
    run's found stretch and found itself, 1 tail (before the first or after the last found
    point), 2 gap (not found, between found points), 3 whole (nothing of the run found).

    >>> run_positions(np.array([0, 1, 0, 1, 0, 0], bool)).tolist()
    [1, 0, 2, 0, 1, 1]
    """
    found = np.asarray(found, bool)
    pos = np.zeros(found.size, np.int64)
    if not found.any():
        pos[:] = 3
        return pos
    f = np.flatnonzero(found)
    idx = np.arange(found.size)
    pos[(idx < f[0]) | (idx > f[-1])] = 1
    pos[(idx > f[0]) & (idx < f[-1]) & ~found] = 2
    return pos


def spans(group: np.ndarray, arc: np.ndarray) -> float:
    """Sum over groups (a piece on one true branch) of the arc between the group's farthest
    projected true points.

    >>> spans(np.array([0, 0, 0, 1, 1]), np.array([2.0, 5.0, 3.0, 10.0, 10.0]))
    3.0
    """
    if group.size == 0:
        return 0.0
    _, inv = np.unique(group, return_inverse=True)
    lo = np.full(inv.max() + 1, np.inf)
    hi = np.full(inv.max() + 1, -np.inf)
    np.minimum.at(lo, inv, arc)
    np.maximum.at(hi, inv, arc)
    return float((hi - lo).sum())


def dense_branches(photo, step: float = 0.25):
    """Every true branch densified to ``step`` px: yx, arc (px), branch id, class code,
    visible, diameter (px)."""
    branches = {}
    for c in photo.centrelines:
        branches.setdefault((c["structure"], c["branch"]), []).append(c)
    out = [[], [], [], [], [], []]
    for b, parts in enumerate(branches.values()):
        parts.sort(key=lambda c: c["start"])
        p = np.concatenate([c["points_yx"] for c in parts])
        if len(p) < 2:
            continue
        cls = np.concatenate([np.full(len(c["points_yx"]), CODES[c["class"]]) for c in parts])
        vis = np.concatenate([c["visible"] for c in parts])
        d = np.concatenate([c["diameter_mm"] for c in parts]) * photo.px_per_mm
        s = np.r_[0.0, np.cumsum(np.hypot(*np.diff(p, axis=0).T))]
        u = np.arange(0.0, s[-1] + 1e-9, step)
        j = np.clip(np.searchsorted(s, u), 0, len(s) - 1)
        for lst, v in zip(out, (np.stack([np.interp(u, s, p[:, 0]), np.interp(u, s, p[:, 1])], 1), u,
                                np.full(len(u), b), cls[j], vis[j], d[j])):  # fmt: skip
            lst.append(v)
    if not out[0]:
        return np.zeros((0, 2)), np.zeros(0), np.zeros(0, int), np.zeros(0, int), np.zeros(0, bool), np.zeros(0)
    return tuple(np.concatenate(v) for v in out)


def budget_photo(photo, analysis, seen, acc, stages, want: int) -> None:
    from scipy.spatial import cKDTree

    det, out = seen["det"], seen["out"]
    m, n = analysis.labels.shape
    ok = np.isfinite(out.width_px) & (out.point_class > 0)
    e_pts = out.points_yx[ok].astype(np.float64)
    e_cls = out.point_class[ok]
    e_piece = out.piece[ok]
    e_len = point_lengths(out.points_yx[ok], e_piece, (m, n))
    ty, tarc, tb, tc, tv, td = dense_branches(photo)
    # --- the engine's length by where it lies, and the true arc its pieces span
    if len(e_pts) and len(ty):
        dist, j = cKDTree(ty).query(e_pts)
        near = dist <= np.maximum(2.5, 0.6 * td[j])
    else:
        near, j = np.zeros(len(e_pts), bool), np.zeros(len(e_pts), int)
    ign = photo.ignore[e_pts[:, 0].astype(int), e_pts[:, 1].astype(int)] if len(e_pts) else np.zeros(0, bool)
    for e in range(1, 5):
        s = e_cls == e
        right = s & near & tv[j] & (tc[j] == e)
        cell = acc.setdefault(("engine", e), dict.fromkeys(EXTRA + ("span",), 0.0))
        cell["on right"] += e_len[right].sum()
        cell["on other class"] += e_len[s & near & tv[j] & (tc[j] != e)].sum()
        rest = s & ~(near & tv[j])
        cell["on ignore"] += e_len[rest & (ign | near)].sum()
        cell["on nothing"] += e_len[rest & ~(ign | near)].sum()
        cell["span"] += spans(e_piece[right] * 1_000_003 + tb[j[right]], tarc[j[right]])
    # --- the true length: spanned, tolerance, other class, missed (tail / gap / whole)
    tree = cKDTree(e_pts) if len(e_pts) else None
    det, out, pts, accepted, rule, d_acc, d_det, iy, ix, d_loose, d_looser, pid, painted, _ = stage_maps(analysis, seen)
    inside = (ty[:, 0] >= 0) & (ty[:, 0] <= m - 1) & (ty[:, 1] >= 0) & (ty[:, 1] <= n - 1)
    vis = tv & inside
    if tree is not None and len(ty):
        dt, jt = tree.query(ty)
    else:
        dt, jt = np.full(len(ty), np.inf), np.zeros(len(ty), int)
    found = dt <= np.maximum(2.5, 0.6 * td)
    ecl = e_cls[jt] if len(e_pts) else np.zeros(len(ty), int)
    # spanned: between the farthest projections of one piece's points of the right class
    spanned = np.zeros(len(ty), bool)
    if len(e_pts):
        dd, jj = cKDTree(ty).query(e_pts)
        okp = (dd <= np.maximum(2.5, 0.6 * td[jj])) & tv[jj] & (tc[jj] == e_cls)
        key = e_piece[okp] * 1_000_003 + tb[jj[okp]]
        for k in np.unique(key):
            sel = jj[okp][key == k]
            spanned[sel.min(): sel.max() + 1] |= tb[sel.min(): sel.max() + 1] == tb[sel[0]]
    yi = np.clip(np.round(ty[:, 0]).astype(int), 0, m - 1)
    xi = np.clip(np.round(ty[:, 1]).astype(int), 0, n - 1)
    step = np.r_[np.diff(tarc), 0.0]
    step = np.where(np.r_[tb[1:] == tb[:-1], False], step, 0.0)
    w = 0.5 * (step + np.r_[0.0, step[:-1]])  # each dense point's share of its branch's arc
    pos = np.full(len(ty), -1, np.int64)
    edges = np.flatnonzero(np.diff(np.r_[0, vis.astype(int), 0]))
    for a, b in zip(edges[::2], edges[1::2]):
        # a visible run never crosses a branch boundary: split where the branch changes
        cuts = np.r_[a, a + 1 + np.flatnonzero(tb[a + 1: b] != tb[a: b - 1]), b]
        for a2, b2 in zip(cuts[:-1], cuts[1:]):
            pos[a2:b2] = run_positions(found[a2:b2])
    cat = np.select([spanned, found & (ecl == tc), found], [0, 1, 2], default=2 + np.maximum(pos, 1))
    for t in range(1, 5):
        sel = vis & (tc == t)
        if sel.any():
            cell = acc.setdefault(("truth", t), dict.fromkeys(BUDGET, 0.0))
            for i, v in enumerate(np.bincount(cat[sel], weights=w[sel], minlength=len(BUDGET))[: len(BUDGET)]):
                cell[BUDGET[i]] += float(v)
    sel = np.flatnonzero(vis & (tc == want))
    yy, xx = yi[sel], xi[sel]
    dropped = rule[det.segment[pid[iy[yy, xx], ix[yy, xx]]]] == 1 if len(pts) else np.zeros(sel.size, bool)
    st = np.select([painted[yy, xx], d_acc[yy, xx] <= 2.5, (d_det[yy, xx] <= 2.5) & dropped, d_det[yy, xx] <= 2.5,
                    d_loose[yy, xx] <= 2.5, d_looser[yy, xx] <= 2.5], [0, 1, 2, 3, 4, 5], default=6)  # fmt: skip
    dm = td[sel] / photo.px_per_mm
    dband = np.where(dm < 0.15, 0, np.where(dm < 0.2, 1, 2))
    for key, v in zip(zip(pos[sel].tolist(), st.tolist(), dband.tolist()), w[sel].tolist()):
        stages[key] = stages.get(key, 0.0) + v


def report(acc, stages, want) -> None:
    print("\n1. Budget: shares of each class's visible true length (px, pooled)\n")
    print("| class | true px | engine / true | " + " | ".join(BUDGET) + " | on right | measure ratio (on right / span) | "
          "extra: on other class / ignore / nothing |")
    print("|---|---|---|" + "---|" * len(BUDGET) + "---|---|---|")
    for t in range(1, 5):
        tr = acc.get(("truth", t))
        en = acc.get(("engine", t))
        if not tr or not en:
            continue
        tot = sum(tr.values())
        eng = sum(en[k] for k in EXTRA)
        print(f"| {NAMES[t]} | {tot:.0f} | {eng / tot:.3f} | " + " | ".join(f"{tr[k] / tot:.3f}" for k in BUDGET)
              + f" | {en['on right'] / tot:.3f} | {en['on right'] / max(en['span'], 1e-9):.3f} | "
              + " / ".join(f"{en[k] / tot:.3f}" for k in EXTRA[1:]) + " |")
    tot = sum(stages.values())
    if not tot:
        return
    print(f"\n2. Why {NAMES[want]}'s visible length is missed (share of its true length, {tot:.0f} px)\n")
    print("| position | " + " | ".join(STAGES) + " | all |")
    print("|---|" + "---|" * (len(STAGES) + 1))
    for p, name in enumerate(POSITIONS):
        row = [sum(v for k, v in stages.items() if k[0] == p and k[1] == s) / tot for s in range(len(STAGES))]
        print(f"| {name} | " + " | ".join(f"{r:.3f}" for r in row) + f" | {sum(row):.3f} |")
    row = [sum(v for k, v in stages.items() if k[1] == s) / tot for s in range(len(STAGES))]
    print("| all | " + " | ".join(f"{r:.3f}" for r in row) + " | 1 |")
    for d, name in enumerate(("< 0.15 mm", "0.15-0.2 mm", ">= 0.2 mm")):
        t = sum(v for k, v in stages.items() if k[2] == d)
        if t:
            row = [sum(v for k, v in stages.items() if k[2] == d and k[1] == s) / t for s in range(len(STAGES))]
            print(f"| diameter {name} ({t / tot:.2f} of it) | " + " | ".join(f"{r:.3f}" for r in row) + " | 1 |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    set_a_arguments(ap, cache=True)
    ap.add_argument("--cls", default="red_telangiectasia", choices=tuple(CODES))
    args, (w, h), kw = set_a_start(ap, argv)
    rec = Recorder()
    acc, stages = {}, {}
    try:
        for _, seed, photo, a in set_a_analysed(args, (w, h), kw, rec):
            budget_photo(photo, a, rec.seen, acc, stages, CODES[args.cls])
            print(f"seed {seed}", flush=True)
    finally:
        rec.close()
    report(acc, stages, CODES[args.cls])
    return 0


if __name__ == "__main__":
    sys.exit(main())
