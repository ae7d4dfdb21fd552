"""``compare._spiders_unreported`` on a 12 MP photo (issue 6): this code (the patches' pieces
labelled in windows around them, ``_patch_pieces``) against the whole photo labelled (main
a70393b's code, kept as the reference in ``tests/test_compare.py``). Six matting patches of
3-8 mm and four spiders given back (two touching a patch, one at the photo's corner), so the
patches are regrouped; both give the same mask, boxes and figures (asserted). Time: median of
9 runs; memory: tracemalloc peak over the call (3 runs).

    .venv/bin/python benchmarks/bench_spiders_unreported.py
"""

from __future__ import annotations

import copy
import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.test_compare import _spiders_unreported_whole_photo  # noqa: E402
from veinscope.compare import _patch_part, _spiders_unreported, _VesselDistance  # noqa: E402


def main() -> int:
    rng = np.random.default_rng(0)
    m, n, ppm = 3000, 4000, 10.0
    dist = _VesselDistance(rng.random((m, n)) < 1e-5)
    kw = dict(dist=dist, shape=(m, n), ppm=ppm, calibrated=True)

    def disc_patch(cy, cx, r):
        y0, y1, x0, x1 = max(0, cy - r), min(m, cy + r + 1), max(0, cx - r), min(n, cx + r + 1)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        region = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        return _patch_part((y0, y1, x0, x1), region, region & (rng.random(region.shape) < 0.3), rng.normal(size=region.shape).astype(np.float32), **kw)

    parts = [disc_patch(600, 800, 40), disc_patch(1500, 2000, 30), disc_patch(2500, 3500, 25), disc_patch(200, 3000, 35), disc_patch(2900, 100, 30), disc_patch(1200, 3960, 40)]
    spiders = [disc_patch(600, 879, 40), disc_patch(1500, 2055, 25), disc_patch(2000, 1000, 20), disc_patch(10, 10, 15)]
    mask = np.zeros((m, n), bool)
    for p in parts:
        y0, y1, x0, x1 = p["box"]
        mask[y0:y1, x0:x1] |= p["region"]
    new_mask = np.zeros((m, n), bool)
    figures = {"detected": True, "patches": len(parts), "locations": [p["location"] for p in parts]}

    def run(fn, trace=False):
        matt = {"mask": mask.copy(), "boxes": [], "figures": copy.deepcopy(figures), "spiders": list(spiders), "_parts": list(parts)}
        if trace:
            tracemalloc.start()
        t0 = time.perf_counter()
        fn(matt, new_mask, ppm, True, dist=dist)
        dt = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] if trace else 0
        if trace:
            tracemalloc.stop()
        return dt, peak, matt

    a, b = run(_spiders_unreported_whole_photo)[2], run(_spiders_unreported)[2]
    assert (a["mask"] == b["mask"]).all() and a["boxes"] == b["boxes"] and a["figures"] == b["figures"]
    print(f"12 MP photo, {len(parts)} patches + {len(spiders)} spiders given back -> {b['figures']['patches']} patches reported (same figures)")
    for name, fn in (("whole photo labelled (main a70393b)", _spiders_unreported_whole_photo), ("windows around the patches", _spiders_unreported)):
        ts = [run(fn)[0] for _ in range(9)]
        peak = max(run(fn, trace=True)[1] for _ in range(3))
        print(f"{name:36s} median {1000 * statistics.median(ts):6.2f} ms (min {1000 * min(ts):.2f}; 9 runs), tracemalloc peak {peak / 2**20:6.2f} MiB")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
