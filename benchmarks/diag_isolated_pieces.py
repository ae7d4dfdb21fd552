"""What set A's isolated false pieces look like to the engine, beside true pieces of the same length.

Run:  .venv/bin/python benchmarks/diag_isolated_pieces.py [--only 400 401 414 419 420 421]
      [--min-px 10] [--max-px 40] [--crops DIR] [--json FILE]

A *piece* is one 8-connected component of the engine's skeleton (its painted mask on skin,
skeletonised as ``diag_false_skeleton.py`` and clDice do). A piece is **isolated** when at least
80 % of its pixels fall in that script's ``isolated`` category (off the true mask, not beside a
true vessel, hair, confounder or the skin's edge, not touching a found vessel's skeleton), and
**true** when at least 80 % of its pixels lie on the true vessel mask. Only pieces of
``--min-px`` to ``--max-px`` skeleton pixels are compared (the isolated marks' lengths).

Per piece, all read off the engine's own maps:

- ``len_mm``: skeleton pixels / px/mm;
- ``ridge``: the detection's line strength (ridge strength x Frangi line-likeness, the map
  ``detect_vessels`` thresholds) over the local texture noise (``segment._local_noise``, the
  hysteresis unit: low 3, high 5), the maximum within 1 px of each skeleton pixel, median and
  maximum along the piece;
- ``de``: CIEDE2000 between the piece's painted pixels' mean colour and the skin ring 2-5 px
  outside the painted mask (no painted pixel in it);
- ``tort``: skeleton pixels / the largest distance between two of its pixels (1 = straight);
  ``thin``: the spread across the principal axis over the spread along it;
- ``width_mm``: painted pixels within 3 px of the piece / its skeleton pixels / px/mm;
- ``red``, ``blue``, ``mel``: shares of the unmixed (haemoglobin, venous, melanin-like)
  concentrations (negative parts set to 0) of the mean relative OD along the skeleton, as the
  chain rule reads a chain's colour;
- ``whole``: the piece is a painted component of its own (its painted component holds no other
  skeleton), else part of a larger painted component;
- ``stage``: the first of four runs in which at least half of its skeleton lies within 1 px of
  that run's painted mask: ``ordinary`` (detection only: ``extend_ends_mm=None,
  deep_veins=False``), ``extend`` (``tail_probe_nfa=None, deep_veins=False``), ``tail``
  (``deep_veins=False``), ``deep`` (the defaults).

Prints per photo and overall the medians (and quartiles) of each property for the two groups,
and the separation AUC (the chance that a random isolated piece is above a random true piece).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_synth_accuracy import set_a_arguments, set_a_start  # noqa: E402
from diag_false_skeleton import CATS, false_parts, photo_with_hair  # noqa: E402

STAGES = (("ordinary", dict(extend_ends_mm=None, deep_veins=False)), ("extend", dict(tail_probe_nfa=None, deep_veins=False)),
          ("tail", dict(deep_veins=False)), ("deep", {}))
PROPS = ("len_mm", "ridge_med", "ridge_max", "de", "p_null", "tort", "thin", "width_mm", "red", "blue", "mel")


def analyse_capturing(rgb, ppm, kw):
    """``veinscope.analyze`` with the detection's line strength, its noise map and the skin
    optics captured: (analysis, q / noise (M, N) float32, optics)."""
    import veinscope
    import veinscope.pipeline as pl
    import veinscope.segment as sg

    seen = {}
    local_noise, optics_fn = sg._local_noise, pl.skin_optics

    def _local_noise(q, where, *, cell_px):
        out = local_noise(q, where, cell_px=cell_px)
        if "q" not in seen:
            seen.update(q=q.copy(), noise=out, cell=cell_px)
        return out

    def skin_optics(*a, **k):
        seen["optics"] = out = optics_fn(*a, **k)
        return out

    sg._local_noise, pl.skin_optics = _local_noise, skin_optics
    try:
        an = veinscope.analyze(rgb, px_per_mm=ppm, **kw)
    finally:
        sg._local_noise, pl.skin_optics = local_noise, optics_fn
    m, n = seen["q"].shape
    ys, xs = np.mgrid[0:m, 0:n]
    noise = sg._upsample_at(seen["noise"], seen["cell"], ys.ravel(), xs.ravel()).reshape(m, n)
    return an, (seen["q"] / np.maximum(noise, 1e-12)).astype(np.float32), seen["optics"]


def piece_rows(photo, an, ridge, optics, cat, variants) -> list[dict]:
    import cv2
    from scipy import ndimage as ndi
    from skimage.morphology import skeletonize

    from veinscope.chromophores import unmix
    from veinscope.colour import delta_e00

    ppm = photo.px_per_mm
    truth = photo.labels > 0
    pred = (an.labels > 0) & photo.skin_mask
    skel = skeletonize(pred) & ~photo.ignore
    pieces, npc = ndi.label(skel, structure=np.ones((3, 3)))
    painted, _ = ndi.label(pred, structure=np.ones((3, 3)))
    skel_per_paint = np.bincount(painted[skel], minlength=painted.max() + 1)
    ridge_near = ndi.maximum_filter(ridge, size=3)
    grown = [ndi.binary_dilation(v, structure=np.ones((3, 3))) for v in variants]
    iso = CATS.index("isolated")
    rng = np.random.default_rng(0)
    rows = []
    for p, sl in enumerate(ndi.find_objects(pieces), start=1):
        ys, xs = np.nonzero(pieces[sl] == p)
        ys, xs = ys + sl[0].start, xs + sl[1].start
        k = ys.size
        if k < 3:
            continue
        on = truth[ys, xs].mean()
        is_iso = (cat[ys, xs] == iso).mean()
        group = "isolated" if is_iso >= 0.8 else "true" if on >= 0.8 else None
        if group is None:
            continue
        y0, y1 = max(0, ys.min() - 8), min(truth.shape[0], ys.max() + 9)
        x0, x1 = max(0, xs.min() - 8), min(truth.shape[1], xs.max() + 9)
        loc = np.zeros((y1 - y0, x1 - x0), bool)
        loc[ys - y0, xs - x0] = True
        near3 = cv2.dilate(loc.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
        paint = pred[y0:y1, x0:x1] & near3
        ring = cv2.dilate(paint.astype(np.uint8), np.ones((11, 11), np.uint8)).astype(bool) & ~cv2.dilate(
            pred[y0:y1, x0:x1].astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & photo.skin_mask[y0:y1, x0:x1]
        rgb = photo.rgb[y0:y1, x0:x1].astype(np.float64)
        de = float(delta_e00(rgb[paint].mean(0), rgb[ring].mean(0))) if paint.any() and ring.any() else float("nan")
        p_null = null_p(photo.rgb, photo.skin_mask, pred, paint, ring, de, rng) if np.isfinite(de) else float("nan")
        pts = np.stack([ys, xs], 1).astype(np.float64)
        d = pts - pts.mean(0)
        ev = np.sort(np.linalg.eigvalsh(d.T @ d / k))
        far = pts[np.argmax(((pts - pts[0]) ** 2).sum(1))]
        chord = np.sqrt(((pts - far) ** 2).sum(1)).max()
        od = optics.relative_od_at(np.stack([ys, xs], 1)).mean(0)
        c = np.maximum(unmix(od), 0.0)
        tot = float(c.sum()) or 1.0
        comp = painted[ys, xs]
        comp = comp[comp > 0]
        whole = bool(comp.size) and int(skel_per_paint[np.bincount(comp).argmax()]) <= k
        stage = next((name for (name, _), g in zip(STAGES, grown) if g[ys, xs].mean() >= 0.5), "none")
        r = ridge_near[ys, xs]
        rows.append(dict(group=group, px=int(k), len_mm=k / ppm, ridge_med=float(np.median(r)), ridge_max=float(r.max()),
                         de=de, tort=float(k / max(chord, 1.0)), thin=float(np.sqrt(ev[0] / max(ev[1], 1e-9))),
                         width_mm=float(paint.sum() / k / ppm), red=float(c[0] / tot), blue=float(c[1] / tot),
                         mel=float(c[2] / tot), p_null=p_null, whole=whole, stage=stage, cls=int(np.bincount(an.labels[ys, xs]).argmax()),
                         yx=[int(ys.mean()), int(xs.mean())]))
    return rows


def null_p(rgb, skin, pred, paint, ring, de, rng, n: int = 400) -> float:
    """The share of ``n`` copies of the piece's footprint (its painted pixels and skin ring),
    moved to random places on skin where nothing is painted, whose ΔE00 (painted mean vs ring
    mean) reaches the piece's own ``de``: the a-contrario p-value of its contrast against the
    photo's own skin texture ((1 + hits) / (1 + n))."""
    from veinscope.colour import delta_e00

    h, w = paint.shape
    m, nn = skin.shape
    foot = paint | ring
    hits = done = 0
    for _ in range(20 * n):
        y, x = int(rng.integers(0, m - h)), int(rng.integers(0, nn - w))
        if not skin[y:y + h, x:x + w][foot].all() or pred[y:y + h, x:x + w][foot].any():
            continue
        box = rgb[y:y + h, x:x + w].astype(np.float64)
        hits += float(delta_e00(box[paint].mean(0), box[ring].mean(0))) >= de
        done += 1
        if done == n:
            break
    return (1 + hits) / (1 + done)


def auc(a, b) -> float:
    """P(a > b) + P(a = b) / 2 for random draws (Mann-Whitney)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if not a.size or not b.size:
        return float("nan")
    return float(((a[:, None] > b[None]).sum() + 0.5 * (a[:, None] == b[None]).sum()) / (a.size * b.size))


def crop_sheet(photo, an, rows, path: Path, k: int = 8, half: int = 24) -> None:
    """Up to ``k`` isolated pieces (longest first), then ``k`` true ones: photo | overlay, 5x."""
    import cv2

    m, n = photo.labels.shape
    tiles = []
    for group, colour in (("isolated", (255, 0, 0)), ("true", (0, 255, 0))):
        sel = sorted((r for r in rows if r["group"] == group), key=lambda r: -r["px"])[:k]
        for r in sel:
            cy, cx = r["yx"]
            y0, x0 = min(max(0, cy - half), m - 2 * half), min(max(0, cx - half), n - 2 * half)
            sl = np.s_[y0:y0 + 2 * half, x0:x0 + 2 * half]
            over = photo.rgb[sl].copy()
            edge = (an.labels[sl] > 0) & ~cv2.erode((an.labels[sl] > 0).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            over[edge] = colour
            t = photo.labels[sl] > 0
            over[t & ~cv2.erode(t.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)] = (255, 255, 0)
            tile = np.concatenate([photo.rgb[sl], np.full((2 * half, 2, 3), 255, np.uint8), over], axis=1)
            tiles.append(cv2.resize(tile, None, fx=5, fy=5, interpolation=cv2.INTER_NEAREST))
    if not tiles:
        return
    w = max(t.shape[1] for t in tiles)
    rows_img = [np.concatenate(tiles[i:i + 2] + [np.full((tiles[i].shape[0], w * 2 - sum(t.shape[1] for t in tiles[i:i + 2]), 3), 255, np.uint8)], axis=1)
                for i in range(0, len(tiles), 2)]
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows_img), cv2.COLOR_RGB2BGR))


def summary(rows, label: str) -> None:
    iso = [r for r in rows if r["group"] == "isolated"]
    tru = [r for r in rows if r["group"] == "true"]
    print(f"\n{label}: {len(iso)} isolated pieces ({sum(r['len_mm'] for r in iso):.1f} mm), {len(tru)} true pieces "
          f"({sum(r['len_mm'] for r in tru):.1f} mm)")
    print("| property | isolated median (q1-q3) | true median (q1-q3) | AUC iso > true |")
    print("|---|---|---|---|")
    for p in PROPS:
        a, b = [r[p] for r in iso], [r[p] for r in tru]
        q = lambda v: "%.2f (%.2f-%.2f)" % tuple(np.nanpercentile(v, (50, 25, 75))) if len(v) else "-"  # noqa: E731
        print(f"| {p} | {q(a)} | {q(b)} | {auc(a, b):.2f} |")
    for g, rr in (("isolated", iso), ("true", tru)):
        if rr:
            st = {s: sum(r["len_mm"] for r in rr if r["stage"] == s) for s in ("ordinary", "extend", "tail", "deep", "none")}
            tot = sum(st.values())
            print(f"{g}: whole {sum(r['whole'] for r in rr)}/{len(rr)}; stage share of length "
                  + ", ".join(f"{s} {v / tot:.2f}" for s, v in st.items()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    set_a_arguments(ap)
    ap.add_argument("--only", type=int, nargs="+", default=[400, 401, 414, 419, 420, 421])
    ap.add_argument("--min-px", type=int, default=10)
    ap.add_argument("--max-px", type=int, default=40)
    ap.add_argument("--crops", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args, size, kw = set_a_start(ap, argv)
    import veinscope

    every = []
    for i in range(args.n):
        seed = args.seed0 + i
        if args.only and seed not in args.only:
            continue
        photo, hair_alpha = photo_with_hair(i, seed, size)
        ppm = photo.px_per_mm
        an, ridge, optics = analyse_capturing(photo.rgb, ppm, kw)
        _, cat, _ = false_parts(photo, an, hair_alpha)
        variants = [(veinscope.analyze(photo.rgb, px_per_mm=ppm, **{**kw, **v}).labels > 0) for _, v in STAGES[:-1]]
        variants.append(an.labels > 0)
        rows = [r for r in piece_rows(photo, an, ridge, optics, cat, variants) if args.min_px <= r["px"] <= args.max_px]
        for r in rows:
            r["seed"] = seed
        every += rows
        summary(rows, f"seed {seed} ({ppm:.0f} px/mm)")
        if args.crops:
            args.crops.mkdir(parents=True, exist_ok=True)
            crop_sheet(photo, an, rows, args.crops / f"pieces_{seed}.png")
    summary(every, "all")
    if args.json:
        args.json.write_text(json.dumps(every, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
