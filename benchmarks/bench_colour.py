"""ΔE00 of the same skin photographed under two lights, before and after colour normalisation.

Run:  .venv/bin/python benchmarks/bench_colour.py [--n 12] [--seed 0]

Each scene is a generated leg (``veinscope.synth``, skin types 1-6 in turn, card=False) with
the card laid on it (``veinscope.card.card_photo``, 8 px/mm, tilt up to 20 deg), rendered
clean. It is then "photographed" twice, in linear light, under

* ``daylight``: gains (0.95, 1.00, 1.05);
* ``tungsten``: gains (1.00, 0.78, 0.52) x 0.7 (warm and 0.5 stop darker), a diagonal change;
* ``mixed``: tungsten plus a 3x3 channel cross-talk (what a diagonal correction cannot undo),

and, as a check that a real change survives, ``tanned``: the skin itself made darker and
browner (linear gains 0.80, 0.74, 0.68 on the skin only) photographed under the tungsten light
against the untanned skin under daylight; there the right answer is the true ΔE00 of the tan
(also printed), not 0. Each capture with its own noise (sd 1.5) and a JPEG round trip (quality 90). Reported per
pair of lights, as medians over the scenes: ΔE00 between the two captures' mean skin
colours ("the skin's colour at two visits") and the median per-pixel ΔE00 over the skin, for
the raw photos, after the card correction, and after the skin fallback. (The mean skin colour is
used, not the median: medians of 8-bit values move in whole steps.)
"""

from __future__ import annotations

import argparse
import statistics
import sys

import numpy as np

DAYLIGHT = (np.eye(3), (0.95, 1.00, 1.05))
TUNGSTEN = (np.eye(3), tuple(0.7 * g for g in (1.00, 0.78, 0.52)))
MIXED = (np.array([[0.88, 0.12, 0.00], [0.06, 0.84, 0.10], [0.00, 0.14, 0.86]]), TUNGSTEN[1])


def capture(clean: np.ndarray, light, rng: np.random.Generator) -> np.ndarray:
    import cv2

    from veinscope.card import srgb_to_linear
    from veinscope.colour import linear_to_srgb8

    mix, gains = light
    lin = srgb_to_linear(clean) @ mix.T * np.asarray(gains)
    enc = linear_to_srgb8(lin).astype(np.float64) + rng.normal(0, 1.5, clean.shape)
    out = np.clip(enc + 0.5, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    from veinscope.calibrate import detect_card
    from veinscope.card import card_photo
    from veinscope.colour import correction_from_card, correction_from_skin, delta_e00
    from veinscope.segment import skin_mask

    rng = np.random.default_rng(a.seed)
    pairs = {"daylight vs tungsten": (DAYLIGHT, TUNGSTEN), "daylight vs mixed": (DAYLIGHT, MIXED), "tanned (real change)": (DAYLIGHT, TUNGSTEN)}
    res: dict[str, dict[str, list[float]]] = {p: {} for p in pairs}
    for k in range(a.n):
        cp = card_photo(
            seed=3000 + k, px_per_mm=8.0, tilt_deg=float(rng.uniform(0, 20)), skin_type=1 + k % 6,
            noise=0.0, jpeg_quality=None,
        )
        clean = cp.rgb
        skin = skin_mask(clean, exclude=cp.card_coverage > 0) & cp.skin_mask
        from veinscope.card import srgb_to_linear
        from veinscope.colour import linear_to_srgb8

        tan = np.where(skin[..., None], srgb_to_linear(clean) * np.array([0.80, 0.74, 0.68]), srgb_to_linear(clean))
        tanned = linear_to_srgb8(tan)
        true_tan = float(delta_e00(clean[skin].mean(axis=0), tanned[skin].mean(axis=0)))
        res["tanned (real change)"].setdefault("truth mean-skin", []).append(true_tan)
        for pname, (la, lb) in pairs.items():
            second = tanned if pname.startswith("tanned") else clean
            shots = [capture(clean, la, rng), capture(second, lb, rng)]
            versions = {"raw": shots, "card": [], "skin fallback": []}
            for s in shots:
                versions["card"].append(correction_from_card(s, detect_card(s)).apply(s))
                versions["skin fallback"].append(correction_from_skin(s, skin).apply(s))
            line = [f"scene {k:02d} type {cp.params['skin_type']} {pname}:"]
            for vname, (x, y) in versions.items():
                med = delta_e00(x[skin].mean(axis=0), y[skin].mean(axis=0))
                px = float(np.median(delta_e00(x[skin][::7], y[skin][::7])))
                res[pname].setdefault(vname + " mean-skin", []).append(float(med))
                res[pname].setdefault(vname + " per-pixel", []).append(px)
                line.append(f"{vname} {float(med):.2f}/{px:.2f}")
            if pname.startswith("tanned"):
                line.append(f"(true {true_tan:.2f})")
            print(" ".join(line), flush=True)
    print("\nΔE00 between the two captures (median over scenes): mean skin colour / per-pixel median")
    for pname, d in res.items():
        cells = []
        for vname in ("raw", "card", "skin fallback"):
            cells.append(f"{vname} {statistics.median(d[vname + ' mean-skin']):.2f} / {statistics.median(d[vname + ' per-pixel']):.2f}"
                         f" (worst {max(d[vname + ' mean-skin']):.2f})")
        truth = f" [true change {statistics.median(d['truth mean-skin']):.2f}]" if "truth mean-skin" in d else ""
        print(f"{pname}: " + "; ".join(cells) + truth)
    return 0


if __name__ == "__main__":
    sys.exit(main())
