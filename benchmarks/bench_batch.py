"""Throughput of ``veinscope batch`` on 12 MP photos: photos per second end to end.

Run:  .venv/bin/python benchmarks/bench_batch.py [--photos 8] [--jobs 1 2] [--runs 3]

Generates ``--photos`` 4032x3024 leg photos (``veinscope.synth``, seeds 100.., 12 px/mm, JPEG
q92) once into benchmarks/.cache/batch_12mp/, then, for each ``--jobs`` value and each run,
analyses them all into a fresh output folder with :func:`veinscope.batch.run_batch` (the same
code as the command) and prints the wall time (including starting and warming up the worker
processes), photos/s, and the median seconds per photo inside a worker. Medians over the runs;
the configurations alternate within each run so that they see the same machine load.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _photos(n: int) -> list[Path]:
    cache = HERE / ".cache" / "batch_12mp"
    cache.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(n):
        path = cache / f"leg_{100 + k}.jpg"
        if not path.exists():
            from PIL import Image

            from veinscope.synth import generate_photo

            t = time.perf_counter()
            ph = generate_photo(seed=100 + k, size=(4032, 3024), px_per_mm=12.0, jpeg_quality=None)
            Image.fromarray(ph.rgb).save(path, quality=92)
            print(f"generated {path.name} in {time.perf_counter() - t:.1f} s", flush=True)
        out.append(path)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=8)
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--px-per-mm", type=float, default=12.0)
    args = ap.parse_args()
    from veinscope.batch import read_manifest, run_batch

    photos = _photos(args.photos)
    print(f"{len(photos)} photos of 4032x3024 px; {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
    rates: dict[int, list[float]] = {j: [] for j in args.jobs}
    walls: dict[int, list[float]] = {j: [] for j in args.jobs}
    per_photo: dict[int, list[float]] = {j: [] for j in args.jobs}
    for run in range(args.runs):
        for jobs in args.jobs:
            out = Path(tempfile.mkdtemp(prefix="veinscope-bench-batch-"))
            try:
                rep = run_batch(photos, out, jobs=jobs, px_per_mm=args.px_per_mm)
                assert rep.counts["done"] == len(photos), rep.counts
                secs = [r["seconds"] for r in read_manifest(out).values()]
            finally:
                shutil.rmtree(out, ignore_errors=True)
            rates[jobs].append(rep.photos_per_s)
            walls[jobs].append(rep.seconds)
            per_photo[jobs].extend(secs)
            print(f"run {run + 1} -j {jobs}: {rep.seconds:.1f} s, {rep.photos_per_s:.3f} photos/s "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
    for jobs in args.jobs:
        print(f"-j {jobs}: median {statistics.median(rates[jobs]):.3f} photos/s, wall median "
              f"{statistics.median(walls[jobs]):.1f} s for {len(photos)} photos, "
              f"{statistics.median(per_photo[jobs]):.2f} s per photo in a worker (median)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
