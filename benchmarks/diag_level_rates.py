"""How often the skin's own line strength passes the detection's levels, per skin type (issue 4).

Run:  .venv/bin/python benchmarks/diag_level_rates.py [--n 24] [--seed0 400] [--cache DIR] [--types 5 6]
      [--set key=value ...]

Same photos as ``bench_synth_accuracy.py`` (photo i: seed seed0 + i, skin type 1 + i % 6). The
engine runs as usual, watched (``bench_fine_funnel.Watcher``); its line strength ``q`` (ridge
strength times vesselness) is divided by the local noise unit at each pixel (the map the
hysteresis levels multiply, ``segment._local_noise``), giving ``z``, the strength in the units
``low_noise`` (3) and ``high_noise`` (5) are given in. Per photo:

- **off the vessels**: inner skin pixels at least 1 mm from any true vessel or ``ignore`` pixel:
  the share at or over 3 and 5 units, and the same among the ridge maxima (3 x 3) only; the mean
  and median of ``z`` (the unit is a mean, so the mean is about 1; the median says how
  heavy-tailed the strength is); its 99.9th percentile;
- **all the inner skin** (what the engine itself can measure, every 4th pixel each way, vessels
  included, as ``segment._rate_levels`` reads it): the shares at or over 3 and 5 units and the
  96th and 99th percentiles, the levels ``analyze(level_rates=(0.04, 0.01))`` would take (each
  capped at the fixed level).

Then the medians per skin type. Diagnostic only (session 32, helper fine32): light skin's texture
is heavy-tailed, dark skin's camera noise is not, so at the same levels in units of the mean the
skin of a dark photo false-alarms several times less.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_fine_funnel import Watcher  # noqa: E402
from bench_synth_accuracy import set_a_analysed, set_a_arguments, set_a_start  # noqa: E402

COLUMNS = ("off P>=3", "off P>=5", "off peaks P>=3", "off peaks P>=5", "off mean", "off median", "off q99.9",
           "all P>=3", "all P>=5", "all q96", "all q99")  # fmt: skip


def photo_rates(photo, seen) -> np.ndarray:
    """One photo's row of ``COLUMNS``."""
    from scipy.ndimage import binary_dilation, maximum_filter

    q, inner = seen["q"], seen["inner"]
    m, n = q.shape
    # off the vessels: the unit at every inner pixel 1 mm from the truth
    near = binary_dilation((photo.labels > 0) | photo.ignore, iterations=max(1, int(round(photo.px_per_mm))))
    off = inner & ~near
    ys, xs = np.nonzero(off)
    unit = seen["upsample"](seen["noise_map"], seen["cell"], ys.astype(np.float64), xs.astype(np.float64))
    z = q[ys, xs] / np.maximum(unit, 1e-12)
    peak = (q == maximum_filter(q, 3))[ys, xs] & (z > 0)
    zp = z[peak]
    # all the inner skin, every 4th pixel each way (segment._rate_levels' sample)
    ya, xa = np.nonzero(inner[::4, ::4])
    ya, xa = ya * 4, xa * 4
    ua = seen["upsample"](seen["noise_map"], seen["cell"], ya.astype(np.float64), xa.astype(np.float64))
    za = q[ya, xa] / np.maximum(ua, 1e-12)
    nan = float("nan")
    return np.array([
        np.mean(z >= 3) if z.size else nan, np.mean(z >= 5) if z.size else nan,
        np.mean(zp >= 3) if zp.size else nan, np.mean(zp >= 5) if zp.size else nan,
        np.mean(z) if z.size else nan, np.median(z) if z.size else nan, np.quantile(z, 0.999) if z.size else nan,
        np.mean(za >= 3), np.mean(za >= 5), np.quantile(za, 0.96), np.quantile(za, 0.99),
    ])  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    set_a_arguments(ap, cache=True)
    args, (w, h), kw = set_a_start(ap, argv)
    rec = Watcher()
    rows, types = [], []
    try:
        for i, seed, photo, _ in set_a_analysed(args, (w, h), kw, rec):
            r = photo_rates(photo, rec.seen)
            rows.append(r)
            types.append(1 + i % 6)
            print(f"seed {seed} type {1 + i % 6} {photo.px_per_mm:g} px/mm: "
                  + ", ".join(f"{c} {v:.4g}" for c, v in zip(COLUMNS, r)), flush=True)  # fmt: skip
    finally:
        rec.close()
    rows, types = np.array(rows), np.array(types)
    print("\n| median per skin type | " + " | ".join(COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for t in sorted(set(types.tolist())):
        med = np.median(rows[types == t], axis=0)
        print(f"| type {t} ({int((types == t).sum())}) | " + " | ".join(f"{v:.4g}" for v in med) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
