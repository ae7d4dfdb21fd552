"""Colour evidence for the bands the hysteresis drops (issue 4, session 14): a detector test.

Run:  .venv/bin/python benchmarks/bench_band_colour.py [--n 24] [--cache DIR]

Same photos as ``bench_synth_accuracy.py``. For each photo the engine runs as usual and its
detection is run once more with the high level at the low level, no band length and no piece
length (``bench_synth_losses``' "loose" run). Loose chains with at most half of their points
within 2 px of the engine's own detection are the bands the hysteresis (and the long-band
rule) dropped. Of each, on the photo: ΔE00 of the mean colour along the chain against the
median of 12 parallel copies beside it (``veinscope.measure.chain_delta_e``'s geometry, the
width 2 x the Hessian scale) and the copies' own spread (median ΔE00 of the copies from their
median), and the colour rules (melanin, too dark: ``bench_synth_losses.chain_rule``).
For each rule "ΔE00 >= a and ΔE00 >= k x spread, chain at least L mm" the table gives, per
skin type, the visible true centreline length (vessels >= 0.2 mm, not already painted or near
an accepted point) that a passing chain's new points would cover (within 2.5 px), and the new
points' length off the truth (over 3 px from every true centreline, visible or not, outside
the truth's ignore mask), in mm, with the engine's present off-truth accepted length and the
visible true length for scale. The engine's own pieces are at least 1 mm (``min_piece_mm``),
so the rows with L >= 1 are the ones a rule inside the engine could add.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_synth_accuracy import set_a_analysed, set_a_arguments, set_a_start  # noqa: E402
from bench_synth_losses import Recorder, _nearest, chain_rule  # noqa: E402

RULES = [(a, k) for a in (1.5, 2.0, 2.5, 3.0) for k in (0.0, 2.0, 3.0)]
MINLEN = (0.5, 1.0, 2.0)  # chain length (points / px per mm); the engine's own pieces are >= 1 mm


def chain_colour(rgb, det, skin, n_offsets=6):
    """Per chain of ``det``: (ΔE00 against the copies' median, median ΔE00 of the copies from it).

    The engine's sampling (``measure._chain_copies_lab``), each chain's width taken as the mean
    of 2 x its points' Hessian scale (the loose chains have no measured widths)."""
    from veinscope._kernels.colourdiff import delta_e_lab
    from veinscope.measure import _chain_copies_lab

    seg, nc = det.segment.astype(np.int64), det.n_segments
    cnt0 = np.bincount(seg, minlength=nc)
    wc = np.bincount(seg, weights=2.0 * det.scale_px, minlength=nc) / np.maximum(cnt0, 1)
    lab, level, valid = _chain_copies_lab(rgb, det.points_yx, np.asarray(det.normals_yx, np.float64), wc[seg], seg, nc, skin, n_offsets=n_offsets)
    de = np.full(nc, np.nan)
    spread = np.full(nc, np.nan)
    okc = valid[0] & (valid[1:].sum(axis=0) >= 4)
    for c in np.flatnonzero(okc):
        out = np.empty(1)
        delta_e_lab(np.ascontiguousarray(lab[0, c][None]), np.ascontiguousarray(level[c][None]), out)
        de[c] = out[0]
        v = valid[1:, c]
        cp = np.ascontiguousarray(lab[1:, c][v])
        o = np.empty(len(cp))
        delta_e_lab(cp, np.ascontiguousarray(np.repeat(level[c][None], len(cp), 0)), o)
        spread[c] = np.median(o)
    return de, spread


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    set_a_arguments(ap, cache=True)
    args, (w, h), kw = set_a_start(ap, argv)
    rec = Recorder()
    rows = []  # per photo per rule: skin type, true mm, off mm
    base = {}
    try:
        for i, seed, photo, a in set_a_analysed(args, (w, h), kw, rec):
            det, loose, out = rec.seen["det"], rec.seen["loose"], rec.seen["out"]
            m, n = a.labels.shape
            ppm = photo.px_per_mm
            st = 1 + i % 6
            d_det, _ = _nearest(det.points_yx, (m, n))
            lp = loose.points_yx
            near = d_det[lp[:, 0], lp[:, 1]] <= 2.0
            frac_near = np.bincount(loose.segment, weights=near, minlength=loose.n_segments) / np.maximum(
                np.bincount(loose.segment, minlength=loose.n_segments), 1)
            cand = frac_near <= 0.5
            de, spread = chain_colour(photo.rgb, loose, a.skin)
            rule = chain_rule(loose, rec.seen["optics"], a.params)
            # truth
            allc = np.concatenate([c["points_yx"] for c in photo.centrelines]) if photo.centrelines else np.zeros((0, 2))
            ac = np.round(allc).astype(int)
            ac = ac[(ac[:, 0] >= 0) & (ac[:, 0] < m) & (ac[:, 1] >= 0) & (ac[:, 1] < n)]
            d_true, _ = _nearest(ac, (m, n))
            off_pt = (d_true[lp[:, 0], lp[:, 1]] > 3.0) & ~photo.ignore[lp[:, 0], lp[:, 1]]
            # the engine's present off-truth length
            acc = np.isfinite(out.width_px)
            ap_ = det.points_yx[acc]
            base.setdefault(st, [0.0, 0.0])
            base[st][0] += float(((d_true[ap_[:, 0], ap_[:, 1]] > 3.0) & ~photo.ignore[ap_[:, 0], ap_[:, 1]]).sum()) / ppm
            # visible true points lost now (not painted, no accepted point within 2.5 px)
            d_acc, _ = _nearest(ap_, (m, n))
            lost_y, lost_x, lost_l = [], [], []
            for c in photo.centrelines:
                v = c["visible"] & (c["diameter_mm"] >= 0.2)
                if not v.any():
                    continue
                y, x = np.round(c["points_yx"][v]).astype(int).T
                ok = (y >= 0) & (y < m) & (x >= 0) & (x < n)
                y, x, ll = y[ok], x[ok], c["length_mm"][v][ok]
                base[st][1] += float(ll.sum())
                lost = ~(a.labels[y, x] > 0) & (d_acc[y, x] > 2.5)
                lost_y.append(y[lost]); lost_x.append(x[lost]); lost_l.append(ll[lost])
            ly, lx, llen = (np.concatenate(v) if v else np.zeros(0) for v in (lost_y, lost_x, lost_l))
            ly, lx = ly.astype(int), lx.astype(int)
            npts = np.bincount(loose.segment, minlength=loose.n_segments)
            for a_, k in RULES:
                for minlen in MINLEN:
                    passed = cand & (rule == 0) & (de >= a_) & (de >= k * spread) & (npts >= minlen * ppm)
                    newp = passed[loose.segment] & ~near
                    q = lp[newp]
                    if len(q):
                        d_new, _ = _nearest(q, (m, n))
                        true_mm = float(llen[d_new[ly, lx] <= 2.5].sum()) if len(ly) else 0.0
                    else:
                        true_mm = 0.0
                    off_mm = float((newp & off_pt).sum()) / ppm
                    rows.append((st, a_, k, minlen, true_mm, off_mm, int(passed.sum())))
            print(f"seed {seed} skin {st}: loose chains {loose.n_segments}, dropped {int(cand.sum())}", flush=True)
    finally:
        rec.close()
    r = np.array(rows)
    print("\nVisible true length gained / new off-truth length (mm, all photos), by rule and skin type")
    print("(base: engine's present off-truth length / visible true length, mm)\n")
    types = sorted(base)
    print("| ΔE00 >= | x spread | chain >= mm | chains | " + " | ".join(f"type {t}" for t in types) + " | all |")
    print("|---|---|---|---|" + "---|" * (len(types) + 1))
    print("| engine now (off / visible) | | | | " + " | ".join(f"{base[t][0]:.0f} / {base[t][1]:.0f}" for t in types)
          + f" | {sum(b[0] for b in base.values()):.0f} / {sum(b[1] for b in base.values()):.0f} |")
    for a_, k in RULES:
        for minlen in MINLEN:
            s = (r[:, 1] == a_) & (r[:, 2] == k) & (r[:, 3] == minlen)
            cells = []
            for t in types:
                u = s & (r[:, 0] == t)
                cells.append(f"+{r[u, 4].sum():.0f} / {r[u, 5].sum():.0f}")
            print(f"| {a_:g} | {k:g} | {minlen:g} | {r[s, 6].sum():.0f} | " + " | ".join(cells)
                  + f" | +{r[s, 4].sum():.0f} / {r[s, 5].sum():.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
