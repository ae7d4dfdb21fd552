"""Where the engine's false centreline lies on generated photos (issue 4, clDice's precision half).

Run:  .venv/bin/python benchmarks/diag_false_skeleton.py [--n 24] [--seed0 400] [--only 401 402 ...]
      [--set key=value ...] [--crops DIR] [--json FILE]

Same photos, masks and skeletons as ``bench_cldice_parts.py`` (and so ``bench_synth_accuracy.py``):
the engine's skeleton of its painted mask on skin, truth ``ignore`` pixels left out. Each engine
skeleton pixel outside the true vessel mask is put in the first category it fits:

- ``beside`` the true vessel mask within 2 px (width painted wider, a centre off by a pixel, a
  vessel's end run on, a parallel duplicate hugging it); split into ``beside_end`` when a true
  skeleton end point is within 4 px of the nearest true pixel, else ``beside_side``;
- ``hair`` within 2 px of the truth's hair mask (hair alpha > 0.2);
- ``faint_hair`` within 2 px of a hair of alpha 0.03-0.2 (the hair's coverage of a pixel: at
  6-8 px/mm a hair 0.04-0.09 mm thick covers under a fifth of a pixel along much of its length,
  yet a near-black line at that coverage darkens the skin 10-15 %, plainly visible); the photo is
  generated again with the generator's hair layer captured (``--cache`` is not used for it);
- ``ignore`` within 2 px of an ``ignore`` pixel not under hair (a true vessel fainter than
  ΔE00 2: perhaps visible, neither required nor penalised by the truth);
- ``naevus``, ``freckle``, ``glare``, ``card`` within 2 px of that confounder's mask;
- ``edge`` within 6 px of the skin mask's outline (the background or clothing edge);
- the rest, ``spur`` when its run of off-truth skeleton touches an on-truth skeleton pixel (a
  branch grown off a found vessel into skin), else ``isolated`` (a detection of its own: skin
  texture, shading, blotches).

Lengths are skeleton pixels (a pixel counts 1, so diagonal runs are under-counted by up to 29 %
alike in every category) divided by px/mm: millimetres. The table gives each category's share of
the photo's false length. ``--crops DIR`` writes, per photo, crops (3x, nearest) of the 4 largest
false runs: photo | photo with the true mask outlined green, on-truth engine skeleton white and
false skeleton coloured by category (beside yellow, hair magenta, ignore cyan, confounders orange,
edge blue, spur red, isolated bright red).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_synth_accuracy import set_a_arguments, set_a_photo, set_a_start, truth_skeleton  # noqa: E402

CATS = ("beside_end", "beside_side", "hair", "faint_hair", "ignore", "naevus", "freckle", "glare", "card", "edge", "spur", "isolated")
COLOUR = {"beside_end": (255, 255, 0), "beside_side": (200, 200, 0), "hair": (255, 0, 255), "faint_hair": (160, 0, 255), "ignore": (0, 255, 255),
          "naevus": (255, 140, 0), "freckle": (255, 140, 0), "glare": (255, 140, 0), "card": (255, 140, 0),
          "edge": (0, 80, 255), "spur": (200, 0, 0), "isolated": (255, 40, 40)}


def photo_with_hair(i: int, seed: int, size: tuple[int, int]):
    """Photo ``i`` of set A as :func:`set_a_photo` draws it, and the hair's alpha warped to the
    photo ((M, N) float32, the generator's ``_render_hair`` layer captured during generation)."""
    import veinscope.synth as synth

    seen = {}
    render, warp = synth._render_hair, synth._warp

    def render_hair(*a, **k):
        seen["hair"] = out = render(*a, **k)
        return out

    def warp_(img, *a, **k):
        out = warp(img, *a, **k)
        if "hair" in seen and img is seen["hair"]["alpha"]:
            seen["photo"] = out
        return out

    synth._render_hair, synth._warp = render_hair, warp_
    try:
        photo = set_a_photo(i, seed, size, None)
    finally:
        synth._render_hair, synth._warp = render, warp
    return photo, seen.get("photo", np.zeros(photo.labels.shape, np.float32))


def false_parts(photo, analysis, hair_alpha=None) -> tuple[dict, np.ndarray, np.ndarray]:
    """Category counts of the engine's off-truth skeleton pixels, and the (M, N) int8 category map
    (-1 none, -2 on truth) and the true mask's outline for crops."""
    from scipy import ndimage as ndi
    from skimage.morphology import skeletonize

    ign = photo.ignore
    truth = photo.labels > 0
    pred = (analysis.labels > 0) & photo.skin_mask
    s_gt = truth_skeleton(truth, ign)
    s_pr = skeletonize(pred) & ~ign
    conf = photo.confounders
    hair = conf["hair"]
    cat = np.full(truth.shape, -1, np.int8)
    cat[s_pr & truth] = -2
    off = s_pr & ~truth
    near = lambda mask: ndi.distance_transform_edt(~mask) <= 2 if mask.any() else np.zeros_like(mask)  # noqa: E731
    # true skeleton end points: one 8-neighbour on the skeleton
    nb = ndi.convolve(s_gt.astype(np.uint8), np.ones((3, 3), np.uint8), mode="constant") - s_gt
    ends = s_gt & (nb == 1)
    d_truth, (iy, ix) = ndi.distance_transform_edt(~truth, return_indices=True)
    near_end = ndi.distance_transform_edt(~ends) <= 4 if ends.any() else np.zeros_like(ends)
    beside = off & (d_truth <= 2)
    end_here = near_end[iy, ix]
    left = off.copy()

    def take(k, mask):
        sel = left & mask
        cat[sel] = CATS.index(k)
        left[sel] = False

    take("beside_end", beside & end_here)
    take("beside_side", beside)
    take("hair", near(hair))
    if hair_alpha is not None:
        take("faint_hair", near(hair_alpha > 0.03))
    take("ignore", near(ign & ~hair))
    for k in ("naevus", "freckle", "glare", "card"):
        take(k, near(conf[k]))
    outline = photo.skin_mask & ~ndi.binary_erosion(photo.skin_mask, border_value=0)
    take("edge", ndi.distance_transform_edt(~outline) <= 6)
    # spur vs isolated: does the run of remaining off-truth pixels touch the on-truth skeleton?
    runs, nr = ndi.label(off, structure=np.ones((3, 3)))
    if nr:
        on_grown = ndi.binary_dilation(s_pr & truth, structure=np.ones((3, 3)))
        touch = np.zeros(nr + 1, bool)
        touch[np.unique(runs[on_grown & off])] = True
        touch[0] = False
        take("spur", touch[runs] & (runs > 0))
        take("isolated", runs > 0)
    ppm = photo.px_per_mm
    out = {k: float((cat == i).sum() / ppm) for i, k in enumerate(CATS)}
    out["false_mm"] = float(off.sum() / ppm)
    out["engine_mm"] = float(s_pr.sum() / ppm)
    out["tprec"] = float((s_pr & truth).sum() / max(1, s_pr.sum()))
    out["tsens"] = float((s_gt & pred).sum() / max(1, s_gt.sum()))
    out["cldice"] = 2 * out["tsens"] * out["tprec"] / max(1e-9, out["tsens"] + out["tprec"])
    t_out = truth & ~ndi.binary_erosion(truth)
    return out, cat, t_out


def crops(photo, cat, t_out, path: Path, k: int = 4, half: int = 60) -> None:
    """The ``k`` largest false runs, photo beside overlay, each ``2 half`` px square, 3x."""
    import cv2
    from scipy import ndimage as ndi

    runs, nr = ndi.label(cat >= 0, structure=np.ones((3, 3)))
    if not nr:
        return
    size = np.bincount(runs.ravel())[1:]
    over = photo.rgb.copy()
    over[t_out] = (0, 200, 0)
    over[cat == -2] = (255, 255, 255)
    for i, name in enumerate(CATS):
        over[cat == i] = COLOUR[name]
    m, n = cat.shape
    tiles, used = [], []
    for r in np.argsort(size)[::-1]:
        ys, xs = np.nonzero(runs == r + 1)
        cy, cx = int(ys.mean()), int(xs.mean())
        if any(abs(cy - a) < half and abs(cx - b) < half for a, b in used):
            continue
        used.append((cy, cx))
        y0, x0 = min(max(0, cy - half), m - 2 * half), min(max(0, cx - half), n - 2 * half)
        sl = np.s_[y0:y0 + 2 * half, x0:x0 + 2 * half]
        tile = np.concatenate([photo.rgb[sl], np.full((2 * half, 4, 3), 255, np.uint8), over[sl]], axis=1)
        tiles.append(cv2.resize(tile, None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST))
        tiles.append(np.full((6, tiles[-1].shape[1], 3), 255, np.uint8))
        if len(used) == k:
            break
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(tiles), cv2.COLOR_RGB2BGR))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    set_a_arguments(ap)
    ap.add_argument("--only", type=int, nargs="+", default=None, help="only these seeds")
    ap.add_argument("--crops", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args, size, kw = set_a_start(ap, argv)
    import veinscope

    rows = []
    for i in range(args.n):
        seed = args.seed0 + i
        if (args.only and seed not in args.only) or (args.types and 1 + i % 6 not in args.types):
            continue
        photo, hair_alpha = photo_with_hair(i, seed, size)
        r, cat, t_out = false_parts(photo, veinscope.analyze(photo.rgb, px_per_mm=photo.px_per_mm, **kw), hair_alpha)
        r.update(seed=seed, skin_type=1 + i % 6, ppm=photo.px_per_mm)
        rows.append(r)
        if args.crops:
            args.crops.mkdir(parents=True, exist_ok=True)
            crops(photo, cat, t_out, args.crops / f"false_{seed}.png")
        print(f"seed {seed} type {r['skin_type']} {r['ppm']:4.1f} px/mm: clDice {r['cldice']:.3f} tprec {r['tprec']:.3f} "
              f"false {r['false_mm']:.0f} of {r['engine_mm']:.0f} mm", flush=True)
    print("\n| seed | type | px/mm | tprec | false mm | " + " | ".join(CATS) + " |")
    print("|" + "---|" * (5 + len(CATS)))
    for r in rows + [{"seed": "all", "skin_type": "", "ppm": float("nan"), "tprec": float("nan"),
                      **{k: sum(x[k] for x in rows) for k in (*CATS, "false_mm")}}]:
        f = max(1e-9, r["false_mm"])
        print(f"| {r['seed']} | {r['skin_type']} | {r['ppm']:.0f} | {r['tprec']:.3f} | {r['false_mm']:.0f} | "
              + " | ".join(f"{r[k] / f:.2f}" for k in CATS) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
