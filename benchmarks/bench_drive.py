"""`veinscope.vesselmap` on the 20 DRIVE training images (read from ../shared/data/drive-train).

Run:  .venv/bin/python benchmarks/bench_drive.py
Scores inside the field of view: AUC (rank statistic of the score), accuracy, sensitivity and
specificity of the mask, per image and mean, and for the halves 21-30 / 31-40.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

DRIVE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "drive-train"


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB") if path.suffix == ".tif" else im.convert("L"))


def auc(score: np.ndarray, truth: np.ndarray) -> float:
    from scipy.stats import rankdata

    r = rankdata(np.concatenate([score[truth], score[~truth]]))
    p, n = int(truth.sum()), int((~truth).sum())
    return float((r[:p].sum() - p * (p + 1) / 2) / (p * n))


def main() -> int:
    if not DRIVE.is_dir():
        print(f"{DRIVE} not found: nothing to measure")
        return 0
    from veinscope.vesselmap import vesselmap

    vesselmap(np.zeros((64, 64)))  # compile
    rows = []
    for i in range(21, 41):
        img = _read(DRIVE / f"images/{i}_training.tif")
        gt = _read(DRIVE / f"1st_manual/{i}_manual1.gif") > 0
        fov = _read(DRIVE / f"mask/{i}_training_mask.gif") > 0
        t = time.perf_counter()
        r = vesselmap(img, fov=fov)
        dt = time.perf_counter() - t
        g, m = gt[fov], r.mask[fov]
        rows.append((i, auc(r.score[fov], g), (m == g).mean(), (m & g).sum() / g.sum(), (~m & ~g).sum() / (~g).sum(), dt))
        print("%d  AUC %.4f  acc %.4f  Se %.4f  Sp %.4f  %.3f s" % rows[-1])
    a = np.array([r[1:] for r in rows])
    for name, sel in (("all 20", slice(None)), ("21-30", slice(0, 10)), ("31-40", slice(10, 20))):
        mu = a[sel].mean(axis=0)
        print(f"mean {name}: AUC {mu[0]:.4f}  acc {mu[1]:.4f}  Se {mu[2]:.4f}  Sp {mu[3]:.4f}  {mu[4]:.3f} s/image")
    return 0


if __name__ == "__main__":
    sys.exit(main())
