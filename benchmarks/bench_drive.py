"""`veinscope.vesselmap` on the 20 DRIVE training images (read from ../shared/data/drive-train).

Run:   .venv/bin/python benchmarks/bench_drive.py            (all figures, ~2 min)
       .venv/bin/python benchmarks/bench_drive.py --fit      (also rewrite the shipped model)
       .venv/bin/python benchmarks/bench_drive.py --markdown (also the per-image table as markdown)

What it measures, inside each image's field of view (DRIVE ``mask/``), against ``1st_manual``:

1. **Cross-half figures** (the generalisation estimate). The second-order logistic
   regression of :func:`veinscope.vesselmap.vesselmap` and its decision threshold are fitted
   on images 21-30 only and scored on 31-40, then fitted on 31-40 and scored on 21-30.
2. **The shipped model.** ``veinscope/_vesselmap_model.py`` is written by ``--fit`` from
   all 20 images (the script says whether the shipped file matches a fresh fit).
   :func:`vesselmap` is then run end to end on every image: AUC of ``score``, accuracy /
   sensitivity / specificity of ``mask``, and the warm wall time per image (median of 3).

Fitting uses 60,000 field-of-view pixels drawn per image with a fixed seed; the features
(13 per-image robust z-scores and their 91 pairwise products) are standardised on the
training pixels and the standardisation is folded into the written weights.

AUC is the rank statistic (Mann-Whitney) of the score, ties averaged; all means are over
images. Nothing from DRIVE is copied anywhere.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.optimize import minimize
from scipy.stats import rankdata

DRIVE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "drive-train"
IDS = list(range(21, 41))
HALF_A = list(range(21, 31))
HALF_B = list(range(31, 41))
SAMPLES_PER_IMAGE = 60_000
MODEL_FILE = Path(__file__).resolve().parents[1] / "src" / "veinscope" / "_vesselmap_model.py"
L2 = 1e-4  # ridge penalty of the logistic regression (on standardised features)
THRESHOLDS = np.round(np.arange(-3.0, 3.0001, 0.02), 2)


def read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB") if path.suffix == ".tif" else im.convert("L"))


def load(i: int):
    img = read(DRIVE / "images" / f"{i}_training.tif")
    gt = read(DRIVE / "1st_manual" / f"{i}_manual1.gif") > 0
    fov = read(DRIVE / "mask" / f"{i}_training_mask.gif") > 0
    return img, gt, fov


def auc(score: np.ndarray, truth: np.ndarray) -> float:
    r = rankdata(score)
    p = int(truth.sum())
    n = truth.size - p
    return float((r[truth].sum() - p * (p + 1) / 2) / (p * n))


def rates(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    acc = float((pred == truth).mean())
    se = float((pred & truth).sum() / truth.sum())
    sp = float((~pred & ~truth).sum() / (~truth).sum())
    return acc, se, sp


def fit_logistic(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Weights (K,) and intercept of a logistic regression, mean log-loss + L2 on weights."""
    X1 = np.hstack([X, np.ones((X.shape[0], 1))])
    yf = y.astype(np.float64)

    def f(w):
        z = X1 @ w
        loss = np.mean(np.logaddexp(0.0, z) - yf * z) + L2 * np.sum(w[:-1] ** 2)
        p = 0.5 * (1.0 + np.tanh(0.5 * z))
        g = X1.T @ (p - yf) / len(yf)
        g[:-1] += 2 * L2 * w[:-1]
        return loss, g

    res = minimize(f, np.zeros(X1.shape[1]), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return res.x


def best_threshold(logits: list[np.ndarray], truths: list[np.ndarray]) -> float:
    """The logit threshold of the grid with the highest mean accuracy over the images."""
    acc = np.zeros(THRESHOLDS.size)
    for s, g in zip(logits, truths):
        order = np.sort(s)
        # accuracy at threshold t: pixels above t that are vessel + below that are not
        above = s.size - np.searchsorted(order, THRESHOLDS, side="right")
        pos_sorted = np.sort(s[g])
        tp = pos_sorted.size - np.searchsorted(pos_sorted, THRESHOLDS, side="right")
        fp = above - tp
        tn = (~g).sum() - fp
        acc += (tp + tn) / s.size
    return float(THRESHOLDS[int(np.argmax(acc))])


def expand(z: np.ndarray) -> np.ndarray:
    """(P, K) features -> (P, K + K (K + 1) / 2): the features and their products a <= b."""
    k = z.shape[1]
    a, b = np.triu_indices(k)
    return np.hstack([z, z[:, a] * z[:, b]])


class Model:
    """Linear weights on expanded raw features (standardisation folded in), intercept, threshold."""

    def __init__(self, ids, data):
        rng = np.random.default_rng(2026)
        xs, ys = [], []
        for i in ids:
            z, g = data[i]
            idx = rng.choice(g.size, min(SAMPLES_PER_IMAGE, g.size), replace=False)
            xs.append(expand(z[idx]))
            ys.append(g[idx])
        x = np.vstack(xs)
        y = np.concatenate(ys)
        mu = x.mean(0)
        sd = x.std(0) + 1e-9
        w = fit_logistic((x - mu) / sd, y)
        self.w = w[:-1] / sd
        self.b = float(w[-1] - np.sum(w[:-1] * mu / sd))
        self.t = best_threshold([self.logit(data[i][0]) for i in ids], [data[i][1] for i in ids])

    def logit(self, z: np.ndarray) -> np.ndarray:
        return expand(z) @ self.w + self.b


def write_model(m: Model, names) -> None:
    k = len(names)
    lin = m.w[:k]
    quad = m.w[k:]
    fmt = lambda v: ", ".join(f"{x:.9g}" for x in v)  # noqa: E731
    MODEL_FILE.write_text(
        '"""Weights of :func:`veinscope.vesselmap.vesselmap` (generated: do not edit).\n\n'
        "Written by ``benchmarks/bench_drive.py --fit``: a second-order logistic regression of\n"
        "the per-image robust z-scores of the features below, fitted on the 20 DRIVE training\n"
        "images (doi:10.1109/TMI.2004.825627), 60,000 field-of-view pixels each, against the first\n"
        "observer's manual segmentation; the threshold maximises mean accuracy on them.\n"
        '"""\n\n'
        f"FEATURES = ({', '.join(repr(n) for n in names)},)\n"
        f"LINEAR = ({fmt(lin)},)\n"
        f"#: products z[a] * z[b] for a <= b, in numpy.triu_indices order\n"
        f"QUADRATIC = ({fmt(quad)},)\n"
        f"INTERCEPT = {m.b:.9g}\n"
        f"THRESHOLD = {m.t:.9g}\n"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fit", action="store_true", help="rewrite src/veinscope/_vesselmap_model.py from all 20 images")
    ap.add_argument("--markdown", action="store_true", help="print the per-image table as markdown too")
    args = ap.parse_args(argv)
    if not DRIVE.is_dir():
        print(f"{DRIVE} not found: nothing to measure")
        return 0
    import veinscope.vesselmap as vm

    vm.warmup()
    data, images = {}, {}
    for i in IDS:
        img, gt, fov = load(i)
        z, inside, _ = vm._feature_stack(img, fov=fov)
        data[i] = (z[:, fov].T.astype(np.float64), gt[fov])
        images[i] = (img, gt, fov)

    print(f"features: {', '.join(vm.FEATURES)}")
    cross = {}
    for train, test in ((HALF_A, HALF_B), (HALF_B, HALF_A)):
        m = Model(train, data)
        print(f"fit on {train[0]}-{train[-1]}: threshold {m.t:+.2f}")
        for i in test:
            s = m.logit(data[i][0])
            g = data[i][1]
            cross[i] = (auc(s, g), *rates(s > m.t, g))
    m_all = Model(IDS, data)
    if args.fit:
        write_model(m_all, vm.FEATURES)
        print(f"wrote {MODEL_FILE}")
        import importlib

        import veinscope._vesselmap_model

        importlib.reload(veinscope._vesselmap_model)
        vm._model.cache_clear()
    lin, quad, b, t = vm._model()
    k = len(vm.FEATURES)
    shipped = np.concatenate([lin, quad[np.triu_indices(k)]])
    same = np.allclose(shipped, m_all.w, rtol=1e-5, atol=1e-7) and abs(b - m_all.b) < 1e-5 and abs(t - m_all.t) < 1e-9
    print("shipped model: " + ("identical to a fit on all 20" if same else "DIFFERENT from a fit on all 20 (run --fit)"))

    rows = []
    for i in IDS:
        img, gt, fov = images[i]
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            r = vm.vesselmap(img, fov=fov)
            times.append(time.perf_counter() - t0)
        g = gt[fov]
        rows.append((i, auc(r.score[fov], g), *rates(r.mask[fov], g), statistics.median(times), *cross[i]))

    def mean(sel, col):
        return float(np.mean([r[col] for r in rows if r[0] in sel]))

    print()
    print("cross-half (weights and threshold fitted on the other half):")
    for name, sel in (("all 20", IDS), ("21-30 (fit on 31-40)", HALF_A), ("31-40 (fit on 21-30)", HALF_B)):
        print(f"  {name:22s} AUC {mean(sel, 6):.4f}  acc {mean(sel, 7):.4f}  Se {mean(sel, 8):.4f}  Sp {mean(sel, 9):.4f}")
    print("shipped model (fitted on all 20), end to end:")
    for name, sel in (("all 20", IDS), ("21-30", HALF_A), ("31-40", HALF_B)):
        print(f"  {name:22s} AUC {mean(sel, 1):.4f}  acc {mean(sel, 2):.4f}  Se {mean(sel, 3):.4f}  Sp {mean(sel, 4):.4f}")
    print(f"  wall time per image (warm, median of 3): median {statistics.median(r[5] for r in rows):.3f} s, "
          f"max {max(r[5] for r in rows):.3f} s")
    print()
    print(" id | cross AUC | cross acc | cross Se | cross Sp | shipped AUC | shipped acc | Se | Sp | s")
    for r in rows:
        print(f" {r[0]} | {r[6]:.4f} | {r[7]:.4f} | {r[8]:.4f} | {r[9]:.4f} | {r[1]:.4f} | {r[2]:.4f} | "
              f"{r[3]:.4f} | {r[4]:.4f} | {r[5]:.3f}")
    if args.markdown:
        print()
        print("| image | AUC (cross) | acc (cross) | Se (cross) | Sp (cross) | AUC (shipped) | acc (shipped) | Se | Sp | time s |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r[0]}_training | {r[6]:.4f} | {r[7]:.4f} | {r[8]:.4f} | {r[9]:.4f} | {r[1]:.4f} | "
                  f"{r[2]:.4f} | {r[3]:.4f} | {r[4]:.4f} | {r[5]:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
